"""The pieces every chapter shares (``featint.chapter``), on the synthetic task."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

from featint.chapter import (
    evaluate_all,
    load_comparison,
    pair_verdict,
    pair_verdict_text,
    pairwise_of,
    plot_histories,
    plot_results,
    results_table,
    seed_spread,
)
from featint.compare import compare
from featint.evaluate import Evaluation, metrics
from featint.report import BASELINES
from featint.training import trained
from featint.tuning import RecordError

pytestmark = pytest.mark.slow  # trains and compares on the synthetic task

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def chapter_run(synthetic_task, tmp_path_factory):
    """FM trained as a chapter trains it, and a finished one-seed comparison of FM."""
    folder = tmp_path_factory.mktemp("chapter")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATINT_QUICK", "1")
        fm, history = trained("fm", synthetic_task, folder=folder / "models", progress=False)
        results = evaluate_all(synthetic_task, {"fm": fm})
        compare(["fm"], seeds=[0], out_dir=folder / "results", task=synthetic_task,
                progress=False, bootstrap_samples=50, quick=False, epochs=2)
    return folder, fm, history, results


def test_the_ladder_comes_first_then_the_models(chapter_run):
    _, _, _, results = chapter_run
    assert list(results) == [*BASELINES, "fm"]
    table = results_table(results)
    assert set(table.index) == set(results) and "[" in table.loc["fm", "HR@10"]


def test_seed_spread_reads_the_comparison_of_this_protocol(chapter_run, capsys):
    folder, _, _, results = chapter_run
    table = seed_spread(results, ["fm", "popular"], folder=folder / "results",
                        dataset="synthetic")
    assert "every seed" in capsys.readouterr().out
    assert {"this chapter (seed 0)", "comparison seed 0", "mean over seeds",
            "seed 0"} <= set(table.columns)
    saved = json.loads((folder / "results" / "results.json").read_text())
    fm = next(r for r in saved["runs"] if r["model"] == "fm")
    assert table.loc["fm", "seed 0"] == fm["metrics"]["hr@10"]


def test_other_protocols_and_missing_results_are_errors_that_say_the_fix(chapter_run,
                                                                       tmp_path):
    folder, _, _, results = chapter_run
    saved = json.loads((folder / "results" / "results.json").read_text())
    saved["settings"]["protocol"] = "next-movie v1"
    (tmp_path / "results.json").write_text(json.dumps(saved))
    with pytest.raises(RecordError, match="protocol v1.*not comparable.*make run"):
        load_comparison(tmp_path, dataset="synthetic")
    with pytest.raises(RecordError, match="results of synthetic, not of ml-100k.*never"):
        load_comparison(tmp_path)  # the chapters read MovieLens 100K's comparison only
    with pytest.raises(RecordError, match="no comparison record.*make run"):
        load_comparison(tmp_path / "missing")
    with pytest.raises(RecordError, match="make run"):
        seed_spread(results, ["fm"], folder=tmp_path / "missing")
    saved["settings"]["protocol"] = json.loads(
        (folder / "results" / "results.json").read_text())["settings"]["protocol"]
    saved["settings"]["quick"] = True
    (tmp_path / "results.json").write_text(json.dumps(saved))
    with pytest.raises(RecordError, match="quick-mode"):
        load_comparison(tmp_path, dataset="synthetic")


def test_compare_quick_false_is_not_quick_under_featint_quick(chapter_run):
    """``compare(quick=False)`` under ``FEATINT_QUICK=1`` runs in full, and records the
    configuration that ran."""
    folder, *_ = chapter_run
    saved = json.loads((folder / "results" / "results.json").read_text())
    assert saved["settings"]["quick"] is False and saved["settings"]["config"]["quick"] is False
    assert saved["settings"]["config"]["budget"]["epochs"] == 2


def test_plots_draw_every_model(chapter_run):
    _, _, history, results = chapter_run
    axes = plot_histories({"fm": history})
    assert axes[1].get_ylabel() == "MRR"
    # one legend, outside the axes: it covers no curve
    assert axes[0].get_legend() is None and axes[1].get_legend() is not None
    assert axes[1].get_legend().get_bbox_to_anchor().x0 > axes[1].bbox.x1 - 1
    axes = plot_results(results)
    assert len(axes[0].patches) == len(results) and "interval" in axes[0].get_title()


def _evaluation(ranks, examples=None) -> Evaluation:
    ranks = np.asarray(ranks, dtype=np.float64)
    examples = np.arange(len(ranks)) if examples is None else examples
    return Evaluation(ranks, examples, metrics(ranks), {})


def test_pairwise_of_finds_a_planted_difference_and_not_a_tie():
    rng = np.random.default_rng(0)
    same = rng.integers(1, 50, 2000)
    results = {"good": _evaluation(np.where(rng.random(2000) < 0.6, 1, 500)),
               "bad": _evaluation(np.where(rng.random(2000) < 0.1, 1, 500)),
               "twin": _evaluation(same), "twin2": _evaluation(same.copy())}
    result = pairwise_of(results, ["good", "bad"])
    assert pair_verdict(result, "good", "bad") == "better than"
    assert pair_verdict(result, "bad", "good") == "worse than"
    text = pair_verdict_text(result, "bad", "good")
    assert text.startswith("worse than good (-0.") and text.endswith("HR@10)")
    # the direction is the metric's: a lower mean rank is better
    by_rank = pairwise_of(results, ["good", "bad"], "mean_rank")
    assert pair_verdict(by_rank, "good", "bad") == "better than"
    assert pair_verdict_text(by_rank, "good", "bad").startswith("better than bad (+")
    tie = pairwise_of(results, ["twin", "twin2"], "mrr")
    assert pair_verdict(tie, "twin", "twin2") == "not separated from"
    # a subgroup: where "good" is no better, the test says so
    where = np.asarray(results["good"].ranks == results["bad"].ranks)
    sub = pairwise_of(results, ["good", "bad"], where=where)
    assert sub.num_examples == where.sum()
    assert pair_verdict(sub, "good", "bad") == "not separated from"


def test_pairwise_of_refuses_unpaired_evaluations():
    results = {"a": _evaluation([1, 2, 3]), "b": _evaluation([1, 2, 3], np.array([3, 4, 5]))}
    with pytest.raises(ValueError, match="other examples.*same examples"):
        pairwise_of(results)
    with pytest.raises(ValueError, match="mask over the 3 evaluated examples"):
        pairwise_of({"a": results["a"], "c": _evaluation([2, 2, 2])}, where=np.ones(2, bool))
