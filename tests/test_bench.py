"""``benchmarks/bench.py``: the earlier code it measures against is really the earlier code,
and both are measured by the same steps."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import load_script

pytestmark = pytest.mark.slow  # measures real training steps in subprocesses

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
REPO = BENCH.parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_script(BENCH)


def has_revision(revision: str) -> bool:
    """The clone holds ``revision`` (a shallow clone does not hold the older commits)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return False
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{revision}^{{commit}}"],
                           capture_output=True)
    return found.returncode == 0


needs_earlier = pytest.mark.skipif(
    not has_revision("dfa391c"),
    reason="measures against commit dfa391c, which this clone does not hold (shallow)")


@needs_earlier
def test_earlier_package_is_the_code_of_that_revision(bench, tmp_path, capsys):
    old = bench.earlier_package(bench.BEFORE, tmp_path)
    assert old == tmp_path
    old_fm = (tmp_path / "featint" / "models" / "fm.py").read_text()
    assert "fm_interaction(xv_c)" in old_fm  # the per-slot forward the speed-up replaced
    assert old_fm != (REPO / "featint" / "models" / "fm.py").read_text()
    assert bench.earlier_package("no-such-revision", tmp_path / "x") is None
    assert "no comparison with no-such-revision" in capsys.readouterr().out


def test_measure_model_times_the_training_steps(bench, ml, monkeypatch):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    row = bench.measure_model("linear", 2, None, train_only=True)
    assert row["model"] == "linear" and row["train_examples_per_s"] > 0


def test_epochs_run_reads_the_mean_epochs_of_trained_runs(bench, tmp_path):
    path = tmp_path / "results.json"
    assert bench.epochs_run(path) == {}
    runs = [{"model": "fm", "epochs": 10, "history": [{}]},
            {"model": "fm", "epochs": 13, "history": [{}]},
            {"model": "popular", "epochs": 0, "history": []}]
    path.write_text(json.dumps({"runs": runs}))
    assert bench.epochs_run(path) == {"fm": 11.5}


@needs_earlier
def test_the_earlier_package_runs_in_its_subprocess(bench, ml, tmp_path, monkeypatch):
    """The earlier revision has no featint.tuning: the subprocess falls back to its own
    recorded settings instead of failing."""
    monkeypatch.setenv("FEATINT_QUICK", "1")
    old = bench.earlier_package(bench.BEFORE, tmp_path)
    row = bench.run_isolated("linear", 1, None, old)
    assert "error" not in row and row["train_examples_per_s"] > 0


def test_profile_and_chosen_setting(bench, ml, monkeypatch):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    row = bench.measure_model("fm", 1, None, profile=True)
    assert "Self CPU" in row["profile"] and row["train_examples_per_s"] > 0
    row = bench.measure_model("fm", 1, None, train_only=True, setting="chosen")
    assert row["train_examples_per_s"] > 0
