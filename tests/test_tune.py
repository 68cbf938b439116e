"""``benchmarks/tune.py``: the learning-rate search runs, keeps the test set out, and refuses
bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import load_script

from featint.task import SPLIT_CODES, NextMovieTask

TUNE = Path(__file__).resolve().parents[1] / "benchmarks" / "tune.py"


@pytest.fixture(scope="module")
def tune():
    return load_script(TUNE)


def test_tune_picks_the_best_validation_rate(tune, ml, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    contexts = []
    original = NextMovieTask.context
    monkeypatch.setattr(NextMovieTask, "context",
                        lambda self, ex: contexts.append(self.split[ex]) or original(self, ex))
    out = tmp_path / "tune.json"
    assert tune.main(["--models", "linear", "--lrs", "1e-2,2e-2", "--epochs", "1",
                      "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [(r["model"], r["lr"]) for r in runs] == [("linear", 1e-2), ("linear", 2e-2)]
    assert all(0 < r["valid_mrr"] <= 1 and r["epochs"] == 1 for r in runs)
    best = max(runs, key=lambda r: r["valid_mrr"])
    assert f"linear          {best['lr']:g}" in capsys.readouterr().out
    used = {int(code) for part in contexts for code in set(part.tolist())}
    assert SPLIT_CODES["test"] not in used


@pytest.mark.parametrize("argv, message", [
    (["--models", "nope"], "unknown model"),
    (["--lrs", "fast"], "comma-separated numbers"),
    (["--lrs", "-1"], "must be positive"),
    (["--hparams", "{oops"], "not JSON"),
    (["--hparams", "[1]"], "JSON object"),
])
def test_tune_argument_errors(tune, argv, message, capsys):
    with pytest.raises(SystemExit):
        tune.main(argv)
    assert message in capsys.readouterr().err
