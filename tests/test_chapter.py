"""The pieces every chapter shares (``featint.chapter``), on the synthetic task."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

from featint.chapter import (
    evaluate_all,
    load_comparison,
    plot_histories,
    plot_results,
    results_table,
    seed_spread,
    solution,
    verdict,
    verdict_text,
)
from featint.compare import compare
from featint.report import BASELINES
from featint.stats import pairwise
from featint.train import History
from featint.training import trained
from featint.tuning import RecordError

slow = pytest.mark.slow  # trains and compares on the synthetic task

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


@slow
def test_the_ladder_comes_first_then_the_models(chapter_run):
    _, _, _, results = chapter_run
    assert list(results) == [*BASELINES, "fm"]
    table = results_table(results)
    assert set(table.index) == set(results) and "[" in table.loc["fm", "HR@10"]


@slow
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


@slow
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


@slow
def test_compare_quick_false_is_not_quick_under_featint_quick(chapter_run):
    """``compare(quick=False)`` under ``FEATINT_QUICK=1`` runs in full, and records the
    configuration that ran."""
    folder, *_ = chapter_run
    saved = json.loads((folder / "results" / "results.json").read_text())
    assert saved["settings"]["quick"] is False and saved["settings"]["config"]["quick"] is False
    assert saved["settings"]["config"]["budget"]["epochs"] == 2


@slow
def test_plots_draw_every_model(chapter_run):
    _, _, history, results = chapter_run
    axes = plot_histories({"fm": history})
    assert axes[1].get_ylabel() == "MRR"
    axes = plot_results(results)
    assert len(axes[0].patches) == len(results) and "interval" in axes[0].get_title()


def planted_pairwise(metric: str = "hr@10"):
    """Three models over two seeds and 4,000 examples: ``good`` planted 0.1 above ``bad`` (a
    hit rate), ``same`` equal to ``bad`` in distribution."""
    rng = np.random.default_rng(0)
    hits = {name: (rng.random((2, 4000)) < p).astype(float)
            for name, p in (("good", 0.3), ("bad", 0.2), ("same", 0.2))}
    return pairwise(hits, metric)


def test_verdict_reads_a_pairwise_result_in_the_metric_s_direction():
    result = planted_pairwise()
    assert verdict(result, "good", "bad") == "better than"
    assert verdict(result, "bad", "good") == "worse than"
    assert verdict(result, "same", "bad") == "not separated from"
    text = verdict_text(result, "bad", "good")
    assert text.startswith("worse than good (-0.") and text.endswith("HR@10)")
    named = verdict_text(result, "bad", "good", label="the good model")
    assert named == text.replace("than good (", "than the good model (")
    with pytest.raises(ValueError, match="not of 'mrr'"):
        verdict(result, "good", "bad", "mrr")


def test_verdict_on_mean_rank_calls_the_lower_rank_better():
    rng = np.random.default_rng(1)
    ranks = {"low": rng.integers(1, 50, (2, 3000)).astype(float),
             "high": rng.integers(40, 200, (2, 3000)).astype(float)}
    result = pairwise(ranks, "mean_rank")
    assert verdict(result, "low", "high", "mean_rank") == "better than"
    assert verdict_text(result, "low", "high", "mean_rank").startswith("better than high (+")


def test_solution_folds_the_text_into_the_book_s_dropdown():
    text = solution("The answer is **42**.\n")
    assert text.splitlines()[:2] == [":::{admonition} Solution", ":class: dropdown"]
    assert "The answer is **42**." in text and text.endswith("\n:::")
    with pytest.raises(ValueError, match="':::'"):
        solution("a :::{note} inside")


def test_the_histories_legend_sits_outside_the_panels():
    history = History(epochs=[{"epoch": 1, "loss": 0.5, "valid_mrr": 0.1},
                              {"epoch": 2, "loss": 0.4, "valid_mrr": 0.2}], best_epoch=2)
    axes = plot_histories({"a": history, "b": history})
    assert axes[0].get_legend() is None
    legend = axes[1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b"]
    assert legend.get_bbox_to_anchor().x0 >= axes[1].get_window_extent().x1
