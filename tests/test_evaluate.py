"""Full-ranking, filtered evaluation (``featint.evaluate``) on cases small enough to do by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from featint.baselines import Popularity, RandomScores
from featint.evaluate import (
    LABELS,
    METRICS,
    Evaluation,
    bootstrap,
    evaluate,
    metrics,
    rank_of_target,
    subsample,
)
from featint.report import evaluation_table


@pytest.fixture(autouse=True)
def full_mode(monkeypatch):
    monkeypatch.delenv("FEATINT_QUICK", raising=False)


def ranks_of(scores, target, seen=None) -> list[float]:
    scores = torch.tensor(scores, dtype=torch.float64)
    seen = torch.zeros_like(scores, dtype=torch.bool) if seen is None else torch.tensor(seen)
    return rank_of_target(scores, torch.tensor(target), seen).tolist()


# -- rank_of_target ----------------------------------------------------------------------------


def test_rank_without_ties():
    assert ranks_of([[0.1, 0.9, 0.5, 0.3]], [0]) == [4.0]
    assert ranks_of([[0.1, 0.9, 0.5, 0.3]], [1]) == [1.0]
    assert ranks_of([[0.1, 0.9, 0.5, 0.3]], [2]) == [2.0]


def test_rank_counts_ties_half():
    # target 2 scores 2; higher: 3 and 5; equal (other than itself): two more 2s
    assert ranks_of([[3, 1, 2, 2, 5, 2]], [2]) == [1 + 2 + 0.5 * 2]
    assert ranks_of([[7, 7, 7, 7]], [3]) == [1 + 0.5 * 3]


def test_seen_movies_are_dropped_even_when_scored_higher():
    scores = [[3, 1, 2, 2, 5, 2]]
    #           seen: item 4 (scored 5, higher) and item 5 (a tie)
    seen = [[False, False, False, False, True, True]]
    assert ranks_of(scores, [2], seen) == [1 + 1 + 0.5 * 1]
    seen_all_higher = [[True, False, False, False, True, False]]
    assert ranks_of(scores, [2], seen_all_higher) == [1 + 0 + 0.5 * 2]


def test_rank_is_per_row():
    scores = [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 1.0, 0.0]]
    seen = [[False, False, False], [True, False, False], [False, False, False]]
    assert ranks_of(scores, [0, 2, 1], seen) == [3.0, 2.0, 1.5]


def test_rank_returns_float64():
    out = rank_of_target(torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 3, dtype=bool))
    assert out.dtype == torch.float64 and out.shape == (2,)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constant_scores_give_the_middle_rank(seed):
    rng = np.random.default_rng(seed)
    batch, num_items = 50, 40
    target = rng.integers(0, num_items, batch)
    seen = rng.random((batch, num_items)) < 0.3
    seen[np.arange(batch), target] = False
    ranks = rank_of_target(torch.full((batch, num_items), 0.7), torch.from_numpy(target),
                           torch.from_numpy(seen)).numpy()
    n_remaining = num_items - seen.sum(1)
    assert np.array_equal(ranks, (n_remaining + 1) / 2)


def test_rank_agrees_with_a_loop():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, (30, 20)).astype(np.float64)  # many ties
    target = rng.integers(0, 20, 30)
    seen = rng.random((30, 20)) < 0.4
    seen[np.arange(30), target] = False
    got = rank_of_target(torch.from_numpy(scores), torch.from_numpy(target),
                         torch.from_numpy(seen)).numpy()
    for b in range(30):
        s = scores[b, target[b]]
        others = [scores[b, j] for j in range(20) if j != target[b] and not seen[b, j]]
        assert got[b] == 1 + sum(o > s for o in others) + 0.5 * sum(o == s for o in others)


# -- metrics and intervals ---------------------------------------------------------------------


def test_metrics_by_hand():
    ranks = np.array([1.0, 2.5, 10.0, 11.0, 100.0])
    m = metrics(ranks)
    assert list(m) == list(METRICS)
    assert m["mean_rank"] == pytest.approx(124.5 / 5)
    assert m["median_rank"] == 10.0
    assert m["mrr"] == pytest.approx((1 + 1 / 2.5 + 1 / 10 + 1 / 11 + 1 / 100) / 5)
    assert m["hr@10"] == pytest.approx(3 / 5)  # rank 10 is a hit, 11 is not
    assert m["ndcg@10"] == pytest.approx(
        (1 / math.log2(2) + 1 / math.log2(3.5) + 1 / math.log2(11)) / 5)


def test_metrics_other_k_and_even_median():
    m = metrics(np.array([1.0, 3.0, 6.0, 8.0]), k=5)
    assert m["median_rank"] == 4.5
    assert m["hr@5"] == 0.5
    assert m["ndcg@5"] == pytest.approx((1 + 1 / 2) / 4)


def test_perfect_and_hopeless_rankings():
    assert metrics(np.ones(7)) == {"mean_rank": 1.0, "median_rank": 1.0, "mrr": 1.0,
                                   "hr@10": 1.0, "ndcg@10": 1.0}
    worst = metrics(np.full(3, 500.0))
    assert worst["hr@10"] == 0.0 and worst["ndcg@10"] == 0.0 and worst["mrr"] == 1 / 500


def test_bootstrap_contains_the_estimate_and_is_seeded():
    ranks = np.random.default_rng(0).integers(1, 300, 500).astype(np.float64)
    point = metrics(ranks)
    a = bootstrap(ranks, num_samples=300, seed=0)
    assert set(a) == set(METRICS)
    for name, (lo, hi) in a.items():
        assert lo <= point[name] <= hi, name
        assert lo < hi, name  # 500 distinct-ish ranks: the interval is not degenerate
    assert bootstrap(ranks, num_samples=300, seed=0) == a
    assert bootstrap(ranks, num_samples=300, seed=1) != a


def test_bootstrap_narrows_with_more_examples():
    rng = np.random.default_rng(1)
    small = bootstrap(rng.integers(1, 300, 100).astype(float), num_samples=300)
    large = bootstrap(rng.integers(1, 300, 10_000).astype(float), num_samples=300)
    width = lambda iv: iv["mean_rank"][1] - iv["mean_rank"][0]  # noqa: E731
    assert width(large) < width(small) / 3


def test_subsample():
    ex = np.arange(100, 200)
    assert subsample(ex, None) is ex and subsample(ex, 500) is ex
    part = subsample(ex, 10)
    assert len(part) == 10 and part[0] == 100 and part[-1] == 199
    assert np.all(np.diff(part) > 0)


# -- baselines -------------------------------------------------------------------------------


def test_baseline_shapes(synthetic_task):
    task = synthetic_task
    ex = task.examples("fit")[:6]
    context = task.context(ex)
    candidates = torch.from_numpy(np.column_stack([task.target[ex], ex % task.num_items]))
    all_items = torch.arange(task.num_items)
    popularity = Popularity(task)
    counts = torch.from_numpy(task.popularity()).float()
    assert popularity(context, candidates).shape == (6, 2)
    assert torch.equal(popularity(context, candidates), counts[candidates])
    assert popularity(context, all_items).shape == (6, task.num_items)
    assert torch.equal(popularity(context, all_items), counts.expand(6, -1))

    random = RandomScores(seed=0)
    assert random(context, candidates).shape == (6, 2)
    scores = random(context, all_items)
    assert scores.shape == (6, task.num_items)
    assert len(torch.unique(scores)) == scores.numel()  # no ties to speak of
    assert torch.equal(RandomScores(seed=3)(context, all_items),
                       RandomScores(seed=3)(context, all_items))
    assert not torch.equal(RandomScores(seed=3)(context, all_items), scores)


class Constant(nn.Module):
    def forward(self, context, items):
        return torch.zeros(context.idx.shape[0], *items.shape[-1:])


def brute_force_ranks(task, scores_of, examples) -> np.ndarray:
    """Ranks from the definition, one example at a time, seen movies from the raw sequence."""
    out = []
    for e in examples:
        start = task.seq_start[task.user[e]]
        watched = set(task.seq_items[start:start + task.t[e]].tolist())
        scores = scores_of(e)
        s = scores[task.target[e]]
        rest = [scores[j] for j in range(task.num_items)
                if j != task.target[e] and j not in watched]
        out.append(1 + sum(r > s for r in rest) + 0.5 * sum(r == s for r in rest))
    return np.array(out)


def test_evaluate_popularity_on_synthetic(synthetic_task):
    task = synthetic_task
    result = evaluate(Popularity(task), task, progress=False, bootstrap_samples=200)
    assert isinstance(result, Evaluation)
    assert np.array_equal(result.examples, task.examples("test"))
    counts = task.popularity().astype(np.float64)
    expected = brute_force_ranks(task, lambda e: counts, result.examples)
    assert np.array_equal(result.ranks, expected)
    assert result.metrics == metrics(expected)
    assert result.intervals == bootstrap(expected, 200)
    row = result.row()
    for name in METRICS:
        assert row[f"{name}_lo"] <= row[name] <= row[f"{name}_hi"]


def test_evaluate_constant_model_gets_the_middle_rank(synthetic_task):
    task = synthetic_task
    result = evaluate(Constant(), task, split="valid", progress=False, bootstrap_samples=10)
    seen = task.seen_before(result.examples).numpy()
    assert np.array_equal(result.ranks, (task.num_items - seen.sum(1) + 1) / 2)


def test_evaluate_limit_and_quick_mode(synthetic_task, monkeypatch):
    task = synthetic_task
    limited = evaluate(Popularity(task), task, limit=50, progress=False, bootstrap_samples=10)
    assert len(limited.ranks) == 50
    assert np.array_equal(limited.examples, subsample(task.examples("test"), 50))
    full = evaluate(Popularity(task), task, progress=False, bootstrap_samples=10)
    where = np.searchsorted(full.examples, limited.examples)
    assert np.array_equal(limited.ranks, full.ranks[where])  # batching does not matter
    monkeypatch.setenv("FEATINT_QUICK", "1")
    assert len(evaluate(Popularity(task), task, split="fit", progress=False,
                        bootstrap_samples=10).ranks) == 2000


def test_evaluate_leaves_the_training_mode_alone(synthetic_task):
    model = Constant().train()
    evaluate(model, synthetic_task, limit=20, progress=False, bootstrap_samples=10)
    assert model.training
    model.eval()
    evaluate(model, synthetic_task, limit=20, progress=False, bootstrap_samples=10)
    assert not model.training


def test_random_baseline_is_near_the_middle(synthetic_task):
    task = synthetic_task
    result = evaluate(RandomScores(seed=0), task, progress=False, bootstrap_samples=200)
    seen = task.seen_before(result.examples).numpy()
    middle = ((task.num_items - seen.sum(1) + 1) / 2).mean()
    lo, hi = result.intervals["mean_rank"]
    assert lo - 5 < middle < hi + 5


# -- the leaderboard of single evaluations (a chapter's) ------------------------------------


def test_evaluation_table_of_evaluations(synthetic_task):
    task = synthetic_task
    evals = {name: evaluate(model, task, progress=False, bootstrap_samples=50)
             for name, model in [("popular", Popularity(task)), ("random", RandomScores(0))]}
    table = evaluation_table(evals)
    assert list(table.columns) == [LABELS[m] for m in METRICS]
    assert list(table.index) == ["random", "popular"]  # leaderboard order, as everywhere
    for name, ev in evals.items():
        lo, hi = ev.intervals["mrr"]
        assert table.loc[name, "MRR"] == f"{ev.metrics['mrr']:.4f} [{lo:.4f}, {hi:.4f}]"
        lo, hi = ev.intervals["mean_rank"]
        assert table.loc[name, "mean rank"] == (
            f"{ev.metrics['mean_rank']:.1f} [{lo:.1f}, {hi:.1f}]")
