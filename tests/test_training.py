"""The one way a model is trained (``featint.training``): its setting from the record, the
model cache and its key."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import featint.training as training
import featint.tuning
from featint.config import BUDGET, QuickSizes, use
from featint.task import build_task
from featint.train import History
from featint.training import (
    TRAINING_SOURCES,
    cache_key,
    digest_of,
    list_cache,
    prune_cache,
    setting_of,
    trained,
)


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setenv("FEATINT_QUICK", "1")


def test_trained_once_then_read_back(tmp_path, synthetic_task, quick):
    first, history = trained("fm", synthetic_task, folder=tmp_path, progress=False)
    (weights,) = tmp_path.glob("fm-seed0-*.pt")
    key = json.loads(weights.with_suffix(".json").read_text())  # the full key beside it
    assert key["model"] == "fm" and key["setting"] == setting_of("fm")
    assert digest_of({k: v for k, v in key.items() if k != "created"}) in weights.name
    again, history_again = trained("fm", synthetic_task, folder=tmp_path, progress=False)
    assert history_again == history and not again.training
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


class Counter:
    """Replaces the training itself: counts the models really trained."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, task, name, seed, budget, setting, device, progress, folder, config):
        self.calls += 1
        model = training.build_model(name, task, seed=seed,
                                     **training.model_hparams(name, budget, setting))
        return model, History()


def _change_source(entry: str):
    """Change the code (not the comments) of one entry of TRAINING_SOURCES."""
    real = training._code

    def code(path):
        text = real(path)
        return text + "changed" if entry in path.as_posix() else text

    return code


#: Each component of the key, as a change to make before training again.
CHANGES = {
    "seed": lambda mp, kw: kw.update(seed=1),
    "learning rate": lambda mp, kw: kw.update(setting={**setting_of("fm"), "lr": 0.123}),
    "constructor argument": lambda mp, kw: kw.update(setting={**setting_of("fm"),
                                                              "embed_dim": 4}),
    "budget: epochs": lambda mp, kw: kw.update(budget=replace(BUDGET, epochs=7)),
    "budget: patience": lambda mp, kw: kw.update(budget=replace(BUDGET, patience=2)),
    "budget: validation examples": lambda mp, kw: kw.update(
        budget=replace(BUDGET, valid_limit=None)),
    "budget: negatives": lambda mp, kw: kw.update(budget=replace(BUDGET, num_negatives=2)),
    "history window": lambda mp, kw: kw.update(task="window"),
    "task arrays, same counts": lambda mp, kw: kw.update(task="values"),
    "quick mode": lambda mp, kw: mp.setenv("FEATINT_QUICK", "0"),
    "quick sizes": lambda mp, kw: kw.update(config=QuickSizes(fit_examples=100)),
    "thread count": lambda mp, kw: mp.setattr(torch, "get_num_threads", lambda: 97),
    "torch version": lambda mp, kw: mp.setattr(torch, "__version__", "0.0.1"),
    "numpy version": lambda mp, kw: mp.setattr(np, "__version__", "0.0.1"),
    **{f"code of {entry}": (lambda e: lambda mp, kw: mp.setattr(training, "_code",
                                                              _change_source(e)))(entry)
       for entry in (*TRAINING_SOURCES, "models/fm.py")},
}


@pytest.mark.parametrize("component", list(CHANGES))
def test_each_key_component_forces_a_retrain(component, tmp_path, synthetic_ml,
                                             synthetic_task, monkeypatch, quick):
    counter = Counter()
    monkeypatch.setattr(training, "_train", counter)
    base = {"seed": 0, "setting": setting_of("fm"), "budget": BUDGET}
    trained("fm", synthetic_task, folder=tmp_path, progress=False, **base)
    trained("fm", synthetic_task, folder=tmp_path, progress=False, **base)
    assert counter.calls == 1  # read back, not trained again
    kw = dict(base)
    CHANGES[component](monkeypatch, kw)
    task = kw.pop("task", None)
    if task == "window":
        task = build_task(synthetic_ml, window=3)
    elif task == "values":
        task = build_task(synthetic_ml)
        task.ctx_val = task.ctx_val.copy()
        task.ctx_val[0, -1] += 0.5
        assert task.counts() == synthetic_task.counts()
    sizes = kw.pop("config", None)
    with use(**({"sizes": sizes} if sizes else {})):
        trained("fm", task or synthetic_task, folder=tmp_path, progress=False, **kw)
    assert counter.calls == 2, component


def test_another_model_s_code_does_not_retrain_this_one(tmp_path, synthetic_task,
                                                        monkeypatch, quick):
    counter = Counter()
    monkeypatch.setattr(training, "_train", counter)
    trained("fm", synthetic_task, folder=tmp_path, progress=False)
    monkeypatch.setattr(training, "_code", _change_source("models/deepfm.py"))
    trained("fm", synthetic_task, folder=tmp_path, progress=False)
    assert counter.calls == 1
    monkeypatch.setattr(training, "_code", _change_source("models/fm.py"))
    trained("fm", synthetic_task, folder=tmp_path, progress=False)
    assert counter.calls == 2


def test_the_device_is_in_the_key(synthetic_task):
    keys = [cache_key(synthetic_task, "fm", 0, BUDGET, setting_of("fm"), d)
            for d in ("cpu", "cuda")]
    assert digest_of(keys[0]) != digest_of(keys[1])


def test_a_pretrained_model_is_retrained_when_its_fm_changes(synthetic_task, monkeypatch):
    setting = {**setting_of("nfm"), "pretrain": "fm"}
    before = cache_key(synthetic_task, "nfm", 0, BUDGET, setting, "cpu")
    real = training.setting_of
    monkeypatch.setattr(training, "setting_of",
                        lambda name: {"lr": 0.5} if name == "fm" else real(name))
    after = cache_key(synthetic_task, "nfm", 0, BUDGET, setting, "cpu")
    assert before["pretrain"]["setting"] != after["pretrain"]["setting"]
    assert digest_of(before) != digest_of(after)


def test_comments_and_docstrings_do_not_count(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text('"""Doc."""\n\ndef f(x):\n    """Twice."""\n    return x + 1  # why\n')
    b.write_text('"""Other doc."""\n\n\ndef f(x):\n    # a new comment\n    return x + 1\n')
    assert training._code(a) == training._code(b)
    b.write_text('def f(x):\n    return x + 2\n')
    assert training._code(a) != training._code(b)


def test_list_and_prune(tmp_path, synthetic_task, quick, monkeypatch):
    trained("linear", synthetic_task, folder=tmp_path, progress=False)
    (tmp_path / "old-seed0-0000.pt").write_bytes(b"weights of a key never stored")
    assert sorted(e.current for e in list_cache(tmp_path)) == [False, True]
    removed = prune_cache(tmp_path)
    assert [e.label for e in removed] == ["old-seed0-0000"]
    assert [e.current for e in list_cache(tmp_path)] == [True]
    monkeypatch.setattr(torch, "__version__", "0.0.1")  # another torch: nothing is current
    assert [e.current for e in list_cache(tmp_path)] == [False]


def test_the_cache_folder_can_be_moved(tmp_path, synthetic_task, monkeypatch, quick):
    monkeypatch.setenv("FEATINT_MODEL_CACHE", str(tmp_path / "elsewhere"))
    trained("linear", synthetic_task, progress=False)
    assert len(list((tmp_path / "elsewhere").glob("linear-seed0-*.pt"))) == 1


def test_a_missing_record_is_an_error_that_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(featint.tuning, "TUNING_DIR", tmp_path)
    with pytest.raises(training.RecordError, match="make tune"):
        setting_of("fm")
    assert setting_of("popular") == {}  # nothing to tune: nothing on record needed
