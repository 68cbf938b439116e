"""``benchmarks/bench.py``: the earlier code it measures against is really the earlier code,
and both are measured by the same steps."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
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


def test_device_flag_reaches_the_measuring_subprocess(bench, monkeypatch):
    """`make bench BENCH_FLAGS="--device cuda"`: every model's subprocess measures on the
    device asked for (the earlier code, CPU only, is never given the flag)."""
    calls = []

    class Done:
        returncode, stdout, stderr = 0, json.dumps({"model": "fm"}), ""

    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or Done)
    bench.run_isolated("fm", 3, None, device="cuda")
    bench.run_isolated("fm", 3, None, package=Path("/elsewhere"))
    assert calls[0][-2:] == ["--device", "cuda"] and "--device" not in calls[1]


def test_device_cuda_without_cuda_is_a_clear_error(bench, ml, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--device", "cuda", "--models", "linear", "--main", "skip"])
    assert exit_.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_measure_model_names_its_device(bench, ml, monkeypatch):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    row = bench.measure_model("fm", 2, None, device=device)
    assert row["device"] == device and row["rank_seconds"] > 0
    assert ("gpu_peak_mb" in row) == (device == "cuda")


def test_speedup_interval_is_a_t_interval_on_the_log_ratios(bench):
    mean, lo, hi = bench.speedup_interval([0.8, 1.25])  # logs -a, +a: centred on 1
    assert mean == pytest.approx(1.0)
    assert lo * hi == pytest.approx(1.0) and lo < 0.8 and hi > 1.25  # t with 1 df is wide
    assert bench.speedup_interval([0.9, 0.9, 0.9]) == pytest.approx((0.9, 0.9, 0.9))
    mean, lo, hi = bench.speedup_interval([1.1])
    assert mean == pytest.approx(1.1) and np.isnan(lo) and np.isnan(hi)
