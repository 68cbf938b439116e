"""Trained models kept per machine (``featint.cache``): trained once, then read back."""

from __future__ import annotations

import torch

from featint.budget import train_model
from featint.cache import trained


def test_trained_once_then_read_back(tmp_path, synthetic_task, monkeypatch):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    first, history = trained("fm", synthetic_task, folder=tmp_path, progress=False)
    files = list(tmp_path.glob("fm-seed0-*.pt"))
    assert len(files) == 1
    again, history_again = trained("fm", synthetic_task, folder=tmp_path, progress=False)
    assert history_again == history and not again.training
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # the comparison's own training gives the same weights: a chapter's seed 0 is 08's seed 0
    direct, _, _ = train_model(synthetic_task, "fm", 0, progress=False)
    for a, b in zip(first.state_dict().values(), direct.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_anything_that_decides_the_model_gets_its_own_file(tmp_path, synthetic_task,
                                                            monkeypatch):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    trained("fm", synthetic_task, folder=tmp_path, progress=False)
    trained("fm", synthetic_task, seed=1, folder=tmp_path, progress=False)
    monkeypatch.setenv("FEATINT_QUICK", "0")  # full training is another model
    monkeypatch.setattr("featint.cache.source_digest", lambda: "changed source")
    monkeypatch.setattr("featint.budget.Budget.epochs", 1)
    trained("fm", synthetic_task, folder=tmp_path, progress=False)
    assert len(list(tmp_path.glob("fm-seed*.pt"))) == 3


def test_the_cache_folder_can_be_moved(tmp_path, synthetic_task, monkeypatch):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    monkeypatch.setenv("FEATINT_MODEL_CACHE", str(tmp_path / "elsewhere"))
    trained("linear", synthetic_task, progress=False)
    assert len(list((tmp_path / "elsewhere").glob("linear-seed0-*.pt"))) == 1
