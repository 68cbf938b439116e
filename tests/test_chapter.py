"""The pieces every chapter shares (``featint.chapter``), on the synthetic task."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

from featint.cards import Card
from featint.chapter import (
    evaluate_all,
    load_comparison,
    pairwise_of,
    paper_settings,
    plot_histories,
    plot_results,
    results_table,
    seed_spread,
    solution,
    verdict,
    verdict_text,
)
from featint.compare import compare
from featint.evaluate import Evaluation, bootstrap, metrics
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
    # one legend, outside the axes: it covers no curve
    assert axes[0].get_legend() is None and axes[1].get_legend() is not None
    assert axes[1].get_legend().get_bbox_to_anchor().x0 > axes[1].bbox.x1 - 1
    axes = plot_results(results)
    assert len(axes[0].patches) == len(results) and "interval" in axes[0].get_title()


# -- the pairwise test of a chapter's own runs ------------------------------------------------
def evaluation(ranks, examples=None):
    ranks = np.asarray(ranks, dtype=np.float64)
    examples = np.arange(len(ranks)) if examples is None else examples
    return Evaluation(ranks, examples, metrics(ranks), bootstrap(ranks, 50))


def test_pairwise_of_a_chapter_s_runs_finds_a_planted_difference_and_no_phantom():
    rng = np.random.default_rng(0)
    base = rng.integers(1, 200, 2000).astype(np.float64)
    results = {"same": evaluation(base), "copy": evaluation(base.copy()),
               "better": evaluation(np.maximum(1, base - 40))}
    for metric in ("mean_rank", "mrr", "hr@10"):
        result = pairwise_of(results, metric=metric)
        assert verdict(result, "same", "copy") == "not separated from"
        assert verdict(result, "better", "same") == "better than"
        assert verdict(result, "same", "better") == "worse than"
    text = verdict_text(pairwise_of(results, metric="mean_rank"), "same", "better")
    assert text.startswith("worse than better (-") and "mean rank)" in text
    with pytest.raises(ValueError, match="not 'mrr'"):
        verdict(pairwise_of(results, metric="hr@10"), "same", "copy", "mrr")


def test_pairwise_of_refuses_runs_on_other_examples():
    results = {"a": evaluation([1, 2, 3]), "b": evaluation([1, 2, 3], np.array([4, 5, 6]))}
    with pytest.raises(ValueError, match="other examples.*same examples"):
        pairwise_of(results)


def test_paper_settings_come_from_the_card():
    card = Card("ffm", "k 16, lr 0.005", {"embed_dim": 16, "lr": 0.005, "weight_decay": 0.0},
                {"embed_dim": "budget", "lr": "tuned", "weight_decay": "budget"},
                ["embed_dim", "lr", "weight_decay"], 3, "k 4, L2 2e-5, lr 0.005",
                "Juan et al. (2016), §4.5", "AdaGrad here Adam", True)
    paper, here = paper_settings(card)
    assert paper == "`k 4, L2 2e-5, lr 0.005` (Juan et al. (2016), §4.5)"
    assert here.startswith("learning rate 0.005, chosen on validation among 3 trials that "
                           "varied embedding size k, learning rate, weight decay")
    assert "was one of the trials" in here and here.endswith("not followed: AdaGrad here Adam")
    untuned = Card("random", None, {}, {}, [], 0, None, "a baseline", "", False)
    assert paper_settings(untuned) == ("a baseline",
                                       "nothing to choose; no paper's setting to try")
    waiting = Card("sasrec", None, {"lr": 0.001}, {"lr": "paper"}, ["loss", "lr"], 3,
                   "BCE, 1 negative (paper), lr 0.001", "Kang & McAuley (2018)", "d = 50",
                   True, pending="its tuning record holds 1 of its 3 trials")
    paper, here = paper_settings(waiting)
    assert paper == "`BCE, 1 negative (paper), lr 0.001` (Kang & McAuley (2018))"
    assert here == ("the paper's setting, as no setting is chosen yet (its tuning record "
                    "holds 1 of its 3 trials); 3 trials are planned; not followed: d = 50")


def _plain(ranks, examples=None) -> Evaluation:
    ranks = np.asarray(ranks, dtype=np.float64)
    examples = np.arange(len(ranks)) if examples is None else examples
    return Evaluation(ranks, examples, metrics(ranks), {})


def test_pairwise_of_finds_a_planted_difference_and_not_a_tie():
    rng = np.random.default_rng(0)
    same = rng.integers(1, 50, 2000)
    results = {"good": _plain(np.where(rng.random(2000) < 0.6, 1, 500)),
               "bad": _plain(np.where(rng.random(2000) < 0.1, 1, 500)),
               "twin": _plain(same), "twin2": _plain(same.copy())}
    result = pairwise_of(results, ["good", "bad"])
    assert verdict(result, "good", "bad") == "better than"
    assert verdict(result, "bad", "good") == "worse than"
    text = verdict_text(result, "bad", "good")
    assert text.startswith("worse than good (-0.") and text.endswith("HR@10)")
    # the direction is the metric's: a lower mean rank is better
    by_rank = pairwise_of(results, ["good", "bad"], "mean_rank")
    assert verdict(by_rank, "good", "bad") == "better than"
    assert verdict_text(by_rank, "good", "bad").startswith("better than bad (+")
    tie = pairwise_of(results, ["twin", "twin2"], "mrr")
    assert verdict(tie, "twin", "twin2") == "not separated from"
    # a subgroup: where "good" is no better, the test says so
    where = np.asarray(results["good"].ranks == results["bad"].ranks)
    sub = pairwise_of(results, ["good", "bad"], where=where)
    assert sub.num_examples == where.sum()
    assert verdict(sub, "good", "bad") == "not separated from"


def test_pairwise_of_refuses_unpaired_evaluations():
    results = {"a": _plain([1, 2, 3]), "b": _plain([1, 2, 3], np.array([3, 4, 5]))}
    with pytest.raises(ValueError, match="other examples.*same examples"):
        pairwise_of(results)
    with pytest.raises(ValueError, match="mask over the 3 evaluated examples"):
        pairwise_of({"a": results["a"], "c": _plain([2, 2, 2])}, where=np.ones(2, bool))


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
    with pytest.raises(ValueError, match="not 'mrr'"):
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
