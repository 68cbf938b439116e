"""The ``featint`` command and the comparison behind it (:mod:`featint.cli`,
:mod:`featint.compare`)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import featint.training as training_module
from featint import cli, tuning
from featint.compare import FORMAT, Comparison, compare
from featint.evaluate import METRICS, metrics
from featint.files import atomic_open, finite, load_ranks, write_json
from featint.models import MODELS, build_model, count_parameters
from featint.models.linear import Linear
from featint.report import BASELINES, CANONICAL_ORDER, ordered
from featint.tuning import FORMAT as TUNING_FORMAT
from featint.tuning import SPACES, tuning_file

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run ``featint argv``; return (exit status, stdout, stderr)."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


# -- argument errors: one line naming the problem and the fix, status 2, no traceback ------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--models", "fm,no_such_model"], ["'no_such_model'", "registered models are", "fm"]),
        (["--models", ","], ["no model named"]),
        (["--epochs", "-3"], ["--epochs", "at least 1", "-3"]),
        (["--epochs", "ten"], ["--epochs", "whole number"]),
        (["--embed-dim", "0"], ["--embed-dim", "at least 1"]),
        (["--seeds", "0,x"], ["--seeds", "not a list of seeds", "e.g. --seeds 0,1,2"]),
        (["--seeds", "1,1"], ["--seeds", "repeated"]),
        (["--seeds", "0,-1"], ["--seeds", "negative"]),
        (["--num-seeds", "0"], ["--num-seeds", "at least 1"]),
        (["--valid-limit", "-5"], ["--valid-limit", "at least 0"]),
        (["--valid-limit", "all"], ["--valid-limit", "whole number"]),
        (["--seeds", "0", "--num-seeds", "2"], ["not allowed with"]),
        (["--device", "tpu"], ["--device", "invalid choice"]),
        (["--data-dir", "/no/such/ml-100k"], ["/no/such/ml-100k", "does not exist",
                                               "FEATINT_DATA_DIR"]),
    ],
)
def test_compare_argument_errors(capsys, argv, expected):
    status, out, err = run_cli(capsys, "compare", *argv)
    assert status == 2
    assert out == ""
    message = err.strip().splitlines()[-1]
    assert message.startswith("featint compare: error:")
    for text in expected:
        assert text in message
    assert "Traceback" not in err


def test_data_dir_that_is_not_movielens(capsys, tmp_path):
    status, _, err = run_cli(capsys, "data", "--data-dir", str(tmp_path))
    assert status == 2
    assert "does not look like MovieLens 100K" in err and "Fix:" in err
    assert "Traceback" not in err


def test_out_that_is_a_file(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    status, _, err = run_cli(capsys, "compare", "--out", str(tmp_path / "file"))
    assert status == 2
    assert "is a file" in err


@pytest.mark.slow
def test_python_dash_m_featint():
    done = subprocess.run([sys.executable, "-m", "featint", "compare", "--models", "nope"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown model 'nope'" in done.stderr
    assert "Traceback" not in done.stderr


def test_help(capsys):
    status, out, _ = run_cli(capsys, "--help")
    assert status == 0 and "compare" in out and "data" in out
    status, out, _ = run_cli(capsys, "compare", "--help")
    assert status == 0 and "--num-seeds" in out and "--quick" in out


# -- atomic files --------------------------------------------------------------------------
def test_atomic_open_leaves_no_partial_file(tmp_path):
    target = tmp_path / "results.json"
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_open(target) as f:
            f.write('{"half": ')
            raise RuntimeError("writer failed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too

    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("garbage")
            raise RuntimeError("writer failed")
    assert json.loads(target.read_text()) == {"a": 1}  # the previous version survives
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_write_json_rejects_nan_without_touching_the_file(tmp_path):
    target = tmp_path / "r.json"
    write_json(target, {"ok": 1.0})
    with pytest.raises(ValueError):
        write_json(target, {"bad": math.nan})
    assert json.loads(target.read_text()) == {"ok": 1.0}


# -- ordering and statistics -------------------------------------------------------------------
def test_ordered_puts_baselines_then_canonical_then_others():
    names = ["zeta_model", "dlrm", "fm", "popular", "afm", "linear", "random", "alpha_model",
             "mf", "itemknn", "markov"]
    assert ordered(names) == ["random", "popular", "markov", "itemknn", "mf", "linear", "fm",
                              "afm", "dlrm", "alpha_model", "zeta_model"]
    assert ordered(list(CANONICAL_ORDER)) == list(CANONICAL_ORDER)


# -- the comparison itself --------------------------------------------------------------------
def check_outputs(out: Path, models: list[str], seeds: list[int]) -> dict:
    """Every file of a finished comparison exists and is well formed; returns the JSON."""
    results = json.loads((out / "results.json").read_text())
    assert results["format"] == FORMAT and results["complete"] is True
    names = list(BASELINES) + models
    assert {(r["model"], r["seed"]) for r in results["runs"]} == {
        (n, s) for n in names for s in seeds}
    assert list(results["aggregate"]) == names
    for name, agg in results["aggregate"].items():
        for m in METRICS:
            lo, hi = agg["interval"][m]
            assert lo <= agg["mean"][m] <= hi, (name, m)
            assert (agg["std"][m] is None) == (len(seeds) == 1)
        assert list(agg["interval_seeds"]) == [m for m in METRICS if m != "median_rank"]
        for m, (lo, hi) in agg["interval_seeds"].items():
            assert lo <= agg["mean"][m] <= hi, (name, m)
    for run in results["runs"]:
        ranks, examples = load_ranks(out / run["ranks_file"])
        assert len(ranks) == len(examples) == run["num_examples"]
        assert metrics(ranks)["mean_rank"] == pytest.approx(run["metrics"]["mean_rank"])
        if run["kind"] == "model":
            assert run["params"] > 0 and 1 <= run["best_epoch"] <= run["epochs"]
    for key in ("cpu", "cores", "torch", "date"):
        assert results["machine"][key]
    assert "embedding size" in results["settings"]["budget_text"]

    with open(out / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == names
    for row in rows:
        assert float(row["hr@10_lo"]) <= float(row["hr@10"]) <= float(row["hr@10_hi"])
    for stem in ("mean_rank", "hr10"):
        assert (out / f"{stem}.png").read_bytes().startswith(PNG_MAGIC)
        assert "<svg" in (out / f"{stem}.svg").read_text()
    assert not [p for p in out.rglob(".*.tmp")]  # no temporary file left behind
    return results


@pytest.mark.slow
def test_compare_on_synthetic_task_and_resume(tmp_path, synthetic_task):
    out = tmp_path / "results"
    first = compare(["fm", "linear"], seeds=[0, 1], epochs=2, out_dir=out,
                    task=synthetic_task, progress=False, bootstrap_samples=200)
    results = check_outputs(out, ["linear", "fm"], [0, 1])
    assert results["settings"]["budget"]["epochs"] == 2
    fm = next(r for r in results["runs"] if r["model"] == "fm" and r["seed"] == 0)
    assert fm["hparams"] == {"embed_dim": 16}
    assert fm["setting"] == training_module.setting_of("fm")
    assert Comparison.load(out).leaderboard().index.tolist() == [*BASELINES, "linear", "fm"]
    loaded = Comparison.load(out)
    assert results["settings"]["protocol"] == "next-movie v3" and loaded.protocol == 3
    assert results["data"]["window"] == synthetic_task.window == 10
    assert results["data"]["counts"] == synthetic_task.counts()
    assert loaded.protocol_warning() is None
    # every counting baseline is built with its tuned setting, its trials in the record
    for name in ("markov", "itemknn"):
        run = next(r for r in results["runs"] if r["model"] == name and r["seed"] == 0)
        assert run["hparams"] == training_module.setting_of(name)
        assert [t["label"] for t in run["trials"]] == list(SPACES[name])

    # Resume: the finished runs are reused as they are, only the new seed is trained.
    second = compare(["linear", "fm"], seeds=[0, 1, 2], epochs=2, out_dir=out,
                     task=synthetic_task, progress=False, bootstrap_samples=200, resume=True)
    check_outputs(out, ["linear", "fm"], [0, 1, 2])
    before = {(r["model"], r["seed"]): r["train_seconds"] for r in first.runs}
    after = {(r["model"], r["seed"]): r["train_seconds"] for r in second.runs}
    assert all(after[key] == seconds for key, seconds in before.items())

    # Resuming with another budget is refused rather than mixing budgets.
    with pytest.raises(ValueError, match="different settings"):
        compare(["fm"], seeds=[0], epochs=3, out_dir=out, task=synthetic_task,
                progress=False, resume=True)


class Broken(Linear):
    """A model whose training fails after it has been built, like a bug in a new model."""

    # the model cache digests the module of a model inside featint's package (its key's
    # "source"); this test double lives in the tests, so it names its parent's module
    __module__ = Linear.__module__

    def forward(self, context, items):
        raise RuntimeError("broken model")


def test_interrupted_compare_leaves_whole_files_and_resumes(tmp_path, synthetic_task,
                                                            monkeypatch):
    monkeypatch.setitem(MODELS, "broken", Broken)
    out = tmp_path / "results"
    with pytest.raises(RuntimeError, match="broken model"):
        compare(["linear", "broken"], seeds=[0], epochs=1, out_dir=out, task=synthetic_task,
                progress=False, bootstrap_samples=50)
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False
    assert [r["model"] for r in partial["runs"]] == [*BASELINES, "linear"]
    assert not (out / "leaderboard.csv").exists()
    assert not [p for p in out.rglob(".*.tmp")]

    monkeypatch.delitem(MODELS, "broken")
    linear_seconds = partial["runs"][len(BASELINES)]["train_seconds"]
    done = compare(["linear"], seeds=[0], epochs=1, out_dir=out, task=synthetic_task,
                   progress=False, bootstrap_samples=50, resume=True)
    assert done.runs[len(BASELINES)]["train_seconds"] == linear_seconds  # reused, not retrained
    check_outputs(out, ["linear"], [0])


def test_finite_turns_nan_into_null():
    assert finite({"a": [1.0, math.nan], "b": {"c": math.inf}, "d": "x", "e": 2}) == {
        "a": [1.0, None], "b": {"c": None}, "d": "x", "e": 2}


def test_compare_rejects_bad_arguments(tmp_path, synthetic_task):
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        compare(["nope"], out_dir=tmp_path, task=synthetic_task)
    with pytest.raises(ValueError, match="seeds"):
        compare(["fm"], seeds=[0, 0], out_dir=tmp_path, task=synthetic_task)
    with pytest.raises(ValueError, match="epochs"):
        compare(["fm"], epochs=0, out_dir=tmp_path, task=synthetic_task)
    with pytest.raises(ValueError, match="no model to compare"):
        compare([], baselines=False, out_dir=tmp_path, task=synthetic_task)
    with pytest.raises(ValueError, match="settings given for ffm"):
        compare(["fm"], settings={"ffm": {"embed_dim": 4}}, out_dir=tmp_path,
                task=synthetic_task)
    assert list(tmp_path.iterdir()) == []


def test_per_model_override_is_used_and_recorded(tmp_path, synthetic_task):
    done = compare(["fm"], seeds=[0], epochs=1, settings={"fm": {"embed_dim": 4}},
                   baselines=False, out_dir=tmp_path, task=synthetic_task, progress=False,
                   bootstrap_samples=50)
    (run,) = done.runs
    assert run["hparams"] == {"embed_dim": 4}
    assert done.results["settings"]["settings"] == {"fm": {"embed_dim": 4}}
    assert run["params"] == count_parameters(build_model("fm", synthetic_task, embed_dim=4))
    assert list(done.aggregates) == ["fm"]


def record_trials(folder: Path, name: str, scores: dict[str, float]) -> None:
    """A tuning file for ``name``: every setting of its space with the given MRR."""
    trials = [{"label": label, "setting": SPACES[name][label],
               **{f"valid_{m}": mrr for m in METRICS}} for label, mrr in scores.items()]
    folder.mkdir(parents=True, exist_ok=True)
    write_json(tuning_file(name, folder), {"format": TUNING_FORMAT, "trials": trials})


def test_tuned_settings_are_the_default_and_recorded(tmp_path, synthetic_task, monkeypatch):
    monkeypatch.setenv("FEATINT_MODEL_CACHE", str(tmp_path / "models"))  # train, don't read
    folder = tmp_path / "tuning"
    monkeypatch.setattr(tuning, "TUNING_DIR", folder)
    monkeypatch.setitem(SPACES, "linear", {"a": {"lr": 5e-3}, "b": {"lr": 0.5}})
    monkeypatch.setitem(SPACES, "fm", {"a": {"lr": 5e-3}, "b": {"lr": 1e-2, "embed_dim": 4}})
    record_trials(folder, "linear", {"a": 0.1, "b": 0.2})
    record_trials(folder, "fm", {"a": 0.1, "b": 0.3})
    record_trials(folder, "markov", dict(zip(SPACES["markov"], (0.1, 0.2, 0.3),
                                                   strict=True)))
    record_trials(folder, "itemknn", dict(zip(SPACES["itemknn"], (0.3, 0.2, 0.1),
                                                    strict=True)))
    seen = {}
    real_fit = training_module.fit

    def fit(model, task, **kw):
        seen[type(model).__name__] = kw["lr"]
        return real_fit(model, task, **kw)

    monkeypatch.setattr(training_module, "fit", fit)
    done = compare(["linear", "fm"], seeds=[0], epochs=1, out_dir=tmp_path,
                   task=synthetic_task, progress=False, bootstrap_samples=50)
    assert seen == {"Linear": 0.5, "FM": 1e-2}
    settings = done.results["settings"]
    assert settings["settings"]["fm"] == {"lr": 1e-2, "embed_dim": 4}
    assert settings["settings"]["linear"] == {"lr": 0.5}
    assert "chosen on validation" in settings["budget_text"]
    fm = next(r for r in done.runs if r["model"] == "fm")
    assert fm["params"] == count_parameters(build_model("fm", synthetic_task, embed_dim=4))
    # a counting baseline is built with its best trial, and its trials are in the record
    markov = next(r for r in done.runs if r["model"] == "markov")
    assert markov["hparams"] == SPACES["markov"]["alpha 1000"]
    assert [t["valid_mrr"] for t in markov["trials"]] == [0.1, 0.2, 0.3]
    # one trial missing: not tuned, an error that says how to tune it (never a fallback)
    record_trials(folder, "fm", {"a": 0.1})
    with pytest.raises(tuning.RecordError, match="make tune"):
        training_module.setting_of("fm")
    with pytest.raises(tuning.RecordError, match="--models fm"):
        compare(["fm"], seeds=[0], epochs=1, baselines=False, out_dir=tmp_path / "c",
                task=synthetic_task, progress=False)
    # models not compared need no record
    alone = compare(["linear"], seeds=[0], epochs=1, baselines=False, out_dir=tmp_path / "b",
                    task=synthetic_task, progress=False, bootstrap_samples=50)
    assert alone.results["settings"]["settings"] == {"linear": {"lr": 0.5}}


@pytest.mark.slow
def test_cli_quick_end_to_end(capsys, tmp_path, task):
    """``featint compare --quick`` on the real data: prints the leaderboard, writes files.
    (The ``task`` fixture only makes the test skip where MovieLens is not available.)"""
    models = [m for m in ("linear", "fm") if m in MODELS]
    out = tmp_path / "results"
    status, stdout, err = run_cli(capsys, "compare", "--quick", "--quiet", "--models",
                                  ",".join(models), "--seeds", "0", "--out", str(out))
    assert status == 0, err
    assert "QUICK MODE" in stdout and "Budget:" in stdout
    for text in ("mean rank", "HR@10", "NDCG@10", "params", *BASELINES, *models):
        assert text in stdout
    results = check_outputs(out, models, [0])
    assert results["settings"]["quick"] is True
    assert results["settings"]["num_test_examples"] == 2000
    assert results["data"]["counts"]["test"] == 20187
    popular = results["aggregate"]["popular"]["mean"]
    assert popular["hr@10"] > 5 * results["aggregate"]["random"]["mean"]["hr@10"]


def test_cli_data(capsys, ml):
    status, out, _ = run_cli(capsys, "data")
    assert status == 0
    assert "matches the official sha256" in out and "test 20,187" in out
    assert "protocol v3" in out and "The counts match protocol v3." in out


def test_cli_leaderboard(capsys, tmp_path, synthetic_task):
    out = tmp_path / "results"
    done = compare(["fm"], seeds=[0], epochs=1, out_dir=out, task=synthetic_task,
                   progress=False, bootstrap_samples=50)
    assert cli.main(["leaderboard", "--results", str(out), "--markdown"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("| model | mean rank |") and table[1].startswith("|---|")
    assert [line.split(" | ")[0] for line in table[2:]] == [f"| {n}" for n in (*BASELINES, "fm")]
    fm = done.leaderboard().loc["fm"]
    assert f"{fm['hr@10']:.4f} [{fm['hr@10_lo']:.4f}, {fm['hr@10_hi']:.4f}]" in table[-1]
    assert cli.main(["leaderboard", "--results", str(out)]) == 0
    assert "mean rank" in capsys.readouterr().out

    with pytest.raises(SystemExit):
        cli.main(["leaderboard", "--results", str(tmp_path / "missing")])
    assert "run `featint compare" in capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    results["complete"] = False
    (out / "results.json").write_text(json.dumps(results))
    with pytest.raises(SystemExit):
        cli.main(["leaderboard", "--results", str(out)])
    assert "--resume" in capsys.readouterr().err

    # results of another protocol are printed with a plain warning, never mixed in silently
    results["complete"] = True
    results["settings"]["protocol"] = "next-movie v1"
    (out / "results.json").write_text(json.dumps(results))
    assert cli.main(["leaderboard", "--results", str(out)]) == 0
    err = capsys.readouterr().err
    assert "protocol v1 results" in err and "protocol v3" in err


def test_leaderboard_shows_the_interval_with_seeds_beside_the_test_interval():
    """aggregate adds the interval that holds the training noise; format_leaderboard shows
    either interval or both, and refuses results that lack the second."""
    import numpy as np

    from featint.compare import aggregate
    from featint.report import COST_FIELDS, format_leaderboard, leaderboard
    from featint.stats import mean_interval, per_example

    rng = np.random.default_rng(0)
    ranks = {("fm", s): rng.integers(1, 200, 500).astype(float) + 10 * s for s in range(3)}
    ranks.update({("popular", s): ranks[("fm", 0)] + 50 for s in range(3)})
    runs = [{"model": n, "seed": s, "kind": "baseline" if n == "popular" else "model",
             "params": 1, "metrics": metrics(r), **{c: 1.0 for c in COST_FIELDS}}
            for (n, s), r in ranks.items()]
    found = aggregate(runs, ranks, bootstrap_samples=100)
    stacked = np.stack([ranks[("fm", s)] for s in range(3)])
    assert found["fm"]["interval_seeds"]["hr@10"] == pytest.approx(
        list(mean_interval(per_example(stacked, "hr@10"))[1:]))
    table = leaderboard(found)
    fm = table.loc["fm"]
    assert fm["mean_rank_hi_seeds"] - fm["mean_rank_lo_seeds"] > fm["mean_rank_hi"] - fm[
        "mean_rank_lo"]  # seeds 10 ranks apart: the training noise widens the interval
    test_only = format_leaderboard(table)
    assert f"[{fm['mean_rank_lo']:.1f}, {fm['mean_rank_hi']:.1f}]" in test_only
    seeds = format_leaderboard(table, intervals="seeds")
    assert f"[{fm['mean_rank_lo_seeds']:.1f}, {fm['mean_rank_hi_seeds']:.1f}]" in seeds
    both = format_leaderboard(table, markdown=True, intervals="both")
    assert "| mean rank with seeds |" in both and "median rank with seeds" not in both
    assert f"[{fm['mrr_lo']:.4f}, {fm['mrr_hi']:.4f}] | [{fm['mrr_lo_seeds']:.4f}" in both
    with pytest.raises(ValueError, match="intervals must be one of"):
        format_leaderboard(table, intervals="all")
    for agg in found.values():
        del agg["interval_seeds"]  # results written before the interval existed
    with pytest.raises(ValueError, match="recompute the aggregates"):
        format_leaderboard(leaderboard(found), intervals="both")
    assert format_leaderboard(leaderboard(found)) == test_only


def test_convergence_text_names_runs_stopped_by_the_cap():
    from featint.report import capped_runs, convergence_text

    runs = [{"model": "fm", "seed": 0, "best_epoch": 12, "epochs": 17, "history": [{}]},
            {"model": "afm", "seed": 1, "best_epoch": 50, "epochs": 50, "history": [{}]},
            # still improving 3 epochs before the cap: the cap ended it, not early stopping
            {"model": "nfm", "seed": 2, "best_epoch": 47, "epochs": 50, "history": [{}]},
            {"model": "popular", "seed": 0, "best_epoch": 0, "epochs": 0, "history": []}]
    assert [r["model"] for r in capped_runs(runs, 50, 5)] == ["afm", "nfm"]
    text = convergence_text(runs, 50, 5)
    assert text.startswith("NOT CONVERGED: 2 of 3") and "afm seed 1, nfm seed 2" in text
    assert "fm seed 0" not in text
    text = convergence_text(runs[:1], 50, 5)
    assert "none by the 50-epoch cap" in text and "best epochs 12 to 12" in text
    # five epochs past its best at the cap: early stopping ended it at the cap's epoch
    assert convergence_text([{**runs[2], "best_epoch": 45}], 50, 5).startswith("every one")


def test_tuning_command_prints_each_models_choice(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(SPACES, "fm", {"a": {"lr": 5e-3}, "b": {"lr": 1e-2}})
    record_trials(tmp_path, "fm", {"a": 0.1, "b": 0.3})
    status, out, _ = run_cli(capsys, "tuning", "--tuning", str(tmp_path), "--markdown")
    assert status == 0
    assert "| fm | 2 | b | 0.3000 | - | - | 0.2000 |" in out
    status, _, err = run_cli(capsys, "tuning", "--tuning", str(tmp_path / "none"))
    assert status == 2 and "run `make tune` first" in err


def test_valid_limit_reaches_the_budget(tmp_path, synthetic_task):
    done = compare(["linear"], seeds=[0], epochs=1, baselines=False, out_dir=tmp_path,
                   task=synthetic_task, progress=False, bootstrap_samples=50,
                   valid_limit=None)
    assert done.results["settings"]["budget"]["valid_limit"] is None
    assert "all validation examples" in done.results["settings"]["budget_text"]


# -- featint explain -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--user", "0"], ["--user 0", "no such user", "users are 1..120"]),
        (["--user", "42", "--position", "999"], ["--position 999", "user 42 has positions 1..",
                                                  "--last"]),
        (["--user", "42", "--position", "0"], ["--position", "at least 1"]),
        (["--user", "42", "--position", "3", "--last"], ["not allowed with"]),
    ],
)
def test_explain_argument_errors(capsys, argv, expected):
    status, out, err = run_cli(capsys, "explain", "--model", "fm", "--synthetic", *argv)
    assert status == 2 and out == ""
    message = err.strip().splitlines()[-1]
    assert message.startswith("featint explain: error:")
    for text in expected:
        assert text in message, message
    assert "Traceback" not in err


def test_explain_without_a_tuning_record(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "TUNING_DIR", tmp_path)  # nothing tuned
    status, out, err = run_cli(capsys, "explain", "--model", "fm", "--user", "42",
                               "--synthetic", "--quick")
    assert status == 2 and out == "" and "Traceback" not in err
    assert "no complete tuning record for 'fm'" in err and "make tune" in err


def test_explain_unknown_model(capsys):
    status, _, err = run_cli(capsys, "explain", "--model", "nope", "--user", "1", "--synthetic")
    assert status == 2 and "invalid choice" in err and "deepfm" in err


@pytest.mark.parametrize("name", ["deepfm", "afm", "sasrec"])
def test_explain_prints_the_top_and_the_parts_of_the_first(capsys, monkeypatch, name):
    from featint.explain import example_of
    from featint.synthetic import synthetic_movielens
    from featint.task import build_task
    from featint.tuning import PAPER, chosen_trial

    if chosen_trial(name) is None:  # SASRec before `make tune` records it: its paper's setting
        paper = dict(SPACES[name][PAPER[name]])
        real = training_module.setting_of
        monkeypatch.setattr(training_module, "setting_of",
                            lambda n, folder=None: paper if n == name else real(n, folder))

    status, out, err = run_cli(capsys, "explain", "--model", name, "--user", "42",
                               "--synthetic", "--quick", "--top", "5", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert [r["rank"] for r in report["top"]] == [1, 2, 3, 4, 5]
    first = report["first"]
    assert first["movie"] == report["top"][0]["movie"]
    assert abs(first["sum_of_parts"] - first["score"]) < 1e-3
    assert abs(sum(first["groups"].values()) - first["sum_of_parts"]) < 1e-9
    assert abs(sum(p["value"] for p in first["parts"]) - first["sum_of_parts"]) < 1e-9
    assert abs(first["score"] - report["top"][0]["score"]) < 1e-4  # float32 vs float64
    # the text form: the same top, the true next movie marked if it is there
    status, text, _ = run_cli(capsys, "explain", "--model", name, "--user", "42",
                              "--synthetic", "--quick", "--top", "5", "--last")
    assert status == 0
    for row in report["top"]:
        assert row["movie"] in text
    assert ("<- the true next movie" in text) == any(r["true_next"] for r in report["top"])
    assert f"Why {first['movie']}" in text
    # the same example and movie through the package
    task = build_task(synthetic_movielens())
    example = example_of(task, 42)
    assert report["position"] == task.t[example]
    assert report["true_next"]["movie"] == task.titles[task.target[example]]
