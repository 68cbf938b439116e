"""The tuning budget: every model's search space, pretraining from FM, the trials and the
choice, and the committed record of ``make tune`` that the comparison reads."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import load_script

import featint.training as training_module
import featint.tuning
from featint.chapter import COMPARISON
from featint.config import BUDGET
from featint.models import MODELS, build_model
from featint.report import BASELINES
from featint.task import SPLIT_CODES, NextMovieTask
from featint.training import model_hparams, setting_of, trained
from featint.tuning import (
    FIT_KEYS,
    FORMAT,
    PAPER,
    SPACES,
    TRIALS,
    TUNING_DIR,
    chosen,
    load_trials,
    pending,
    split,
)

ROOT = Path(__file__).resolve().parents[1]
TUNE = ROOT / "benchmarks" / "tune.py"
COMMITTED = TUNING_DIR


@pytest.fixture(scope="module")
def tune():
    return load_script(TUNE)


def test_every_model_has_the_same_number_of_trials():
    assert set(SPACES) == (set(MODELS) | set(BASELINES)) - {"random", "popular"}
    for name, space in SPACES.items():
        assert len(space) == TRIALS, name
        assert len({json.dumps(s, sort_keys=True) for s in space.values()}) == TRIALS, name
        assert PAPER[name] is None or PAPER[name] in space, name


def test_every_setting_builds(synthetic_task):
    for name, space in SPACES.items():
        if name not in MODELS:
            continue
        for setting in space.values():
            fit, constructor = split(setting)
            assert set(fit) <= set(FIT_KEYS)
            # the loss and the negatives are the budget's, except for the model whose
            # literature compares losses
            assert name == "sasrec" or set(fit) <= {"lr", "weight_decay"}
            build_model(name, synthetic_task, **model_hparams(name, setting=constructor))


def test_pretraining_starts_from_the_trained_fm(synthetic_task, monkeypatch, tmp_path):
    """pretrain="fm": the model starts with the FM's w_0, w_i and v_i (the FM of the same seed
    and budget, from the model cache) and only then is fitted."""
    budget = replace(BUDGET, epochs=1)
    monkeypatch.setenv("FEATINT_MODEL_CACHE", str(tmp_path))
    fm, _ = trained("fm", synthetic_task, 0, budget, progress=False)
    started = {}
    real_fit = training_module.fit

    def fit(model, task, **kw):
        started.update({k: v.clone() for k, v in model.state_dict().items()})
        return real_fit(model, task, **kw)

    monkeypatch.setattr(training_module, "fit", fit)
    for name in ("afm", "nfm"):
        started.clear()
        trained(name, synthetic_task, 0, budget, {**setting_of(name), "pretrain": "fm"},
                progress=False)
        for key in ("w0", "linear.weight.weight", "embedding.embedding.weight"):
            assert torch.equal(started[key], fm.state_dict()[key]), (name, key)
    with pytest.raises(ValueError, match="same embedding size"):
        model = build_model("afm", synthetic_task, embed_dim=4)
        model.load_pretrained(fm)


@pytest.mark.slow
def test_tune_records_every_trial_on_validation_only(tune, synthetic_task, tmp_path,
                                                      monkeypatch, capsys):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    monkeypatch.setenv("FEATINT_MODEL_CACHE", str(tmp_path / "models"))
    contexts = []
    original = NextMovieTask.context
    monkeypatch.setattr(NextMovieTask, "context",
                        lambda self, ex: contexts.append(self.split[ex]) or original(self, ex))
    folder = tmp_path / "tuning"
    found = tune.tune(synthetic_task, ["markov", "linear", "nfm"], folder, progress=False)
    for name in ("markov", "linear", "nfm"):
        record = json.loads((folder / f"{name}.json").read_text())
        assert record["format"] == FORMAT and record["quick"]
        assert [t["label"] for t in record["trials"]] == list(SPACES[name])
        assert found[name] == load_trials(name, folder)
        best = max(record["trials"], key=lambda t: t["valid_mrr"])
        assert chosen(folder)[name] == best["setting"]
    assert all(0 < t["valid_mrr"] <= 1 for t in found["nfm"])
    used = {int(code) for part in contexts for code in set(part.tolist())}
    assert SPLIT_CODES["test"] not in used
    # on record: nothing is trained again
    monkeypatch.setattr(tune, "model_trial", lambda *a, **k: pytest.fail("trained again"))
    assert tune.tune(synthetic_task, ["linear"], folder, progress=False)["linear"] == \
        found["linear"]


def test_tune_argument_errors(tune, capsys):
    with pytest.raises(SystemExit):
        tune.main(["--models", "random"])
    assert "no search space for 'random'" in capsys.readouterr().err


def test_the_committed_tuning_is_complete_and_what_the_comparison_used():
    """The tuning record shipped with featint holds every compared model's trials (none
    quick, none stopped by the epoch cap), and the comparison's record was trained with the
    settings chosen from them. A model whose trials are not all on record is not compared:
    the comparison's record names it as pending, with why."""
    committed = chosen(COMMITTED)
    results = json.loads((COMPARISON / "results.json").read_text())
    left_out = results["settings"].get("pending", {})
    assert left_out == pending(list(MODELS), COMMITTED)
    assert not set(left_out) & set(results["settings"]["models"])
    for name, space in SPACES.items():
        record = json.loads((COMMITTED / f"{name}.json").read_text())
        assert not record["quick"]
        trials = load_trials(name, COMMITTED)
        labels = [t["label"] for t in trials]
        if name in left_out:
            assert set(labels) < set(space), name
        else:
            assert labels == list(space), name
        for t in trials:  # ended by early stopping, not by the epoch cap
            if "epochs" in t:
                assert t["epochs"] - t["best_epoch"] >= BUDGET.patience, (name, t["label"])
    assert {n: s for n, s in results["settings"]["settings"].items() if n in SPACES} == \
        committed


def test_a_model_with_trials_missing_is_pending_and_says_how_to_finish(tmp_path):
    space = featint.tuning.SPACES["fm"]
    first = next(iter(space))
    record = {"format": featint.tuning.FORMAT,
              "trials": [{"label": first, "setting": space[first], "valid_mrr": 0.1}]}
    (tmp_path / "fm.json").write_text(json.dumps(record))
    found = featint.tuning.pending(["fm", "random", "itemknn"], tmp_path)
    assert list(found) == ["fm", "itemknn"]  # random has nothing to tune
    assert f"1 of its {len(space)} trials" in found["fm"] and "--models fm" in found["fm"]
    assert "0 of its" in found["itemknn"]


def test_a_pending_model_is_shown_at_its_paper_s_trial_and_a_tuned_one_at_its_choice():
    assert featint.tuning.shown_setting("fm") is None  # tuned: setting_of decides
    left_out = pending(list(SPACES))
    for name in left_out:
        shown = featint.tuning.shown_setting(name)
        assert shown == SPACES[name][featint.tuning.PAPERS[name].setting]
