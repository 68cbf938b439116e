"""The statistics of the comparison (``featint.stats``): intervals, paired differences, tiers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from featint.evaluate import METRICS, bootstrap, metrics
from featint.stats import (
    paired_bootstrap,
    paired_difference,
    per_example,
    pooled_interval,
    tiers,
)


@pytest.mark.parametrize("num_examples", [301, 300])  # odd and even: two kinds of median
def test_pooled_interval_matches_the_direct_bootstrap(num_examples):
    rng = np.random.default_rng(0)
    shape = (3, num_examples)
    ranks = rng.integers(1, 400, size=shape) + 0.5 * rng.integers(0, 2, size=shape)
    fast = pooled_interval(ranks, num_samples=200, chunk=50)
    draw = np.random.default_rng(0)  # the same draws, used the obvious way
    replicates = {m: [] for m in METRICS}
    for _ in range(4):
        for rows in draw.integers(0, num_examples, size=(50, num_examples)):
            per_seed = [metrics(ranks[s, rows]) for s in range(3)]
            for m in METRICS:
                replicates[m].append(np.mean([p[m] for p in per_seed]))
    for m in METRICS:
        expected = np.percentile(replicates[m], [2.5, 97.5])
        assert fast[m] == pytest.approx(tuple(expected), rel=1e-9), m


def test_pooled_interval():
    rng = np.random.default_rng(1)
    one = rng.integers(1, 300, size=4000).astype(float)
    # one seed: the ordinary bootstrap of that run (different draws, same distribution)
    pooled, plain = pooled_interval(one[None]), bootstrap(one)
    for m in ("mean_rank", "mrr", "hr@10"):
        width = plain[m][1] - plain[m][0]
        assert pooled[m][0] == pytest.approx(plain[m][0], abs=0.15 * width)
        assert pooled[m][1] == pytest.approx(plain[m][1], abs=0.15 * width)
    # three seeds: the interval surrounds the seed-averaged metric
    three = np.stack([one, np.maximum(one + rng.integers(-5, 6, 4000), 1),
                      np.maximum(one - 3, 1)])
    interval = pooled_interval(three)
    for m in METRICS:
        mean = np.mean([metrics(row)[m] for row in three])
        assert interval[m][0] <= mean <= interval[m][1]


def test_per_example_values_average_to_the_metrics():
    ranks = np.array([1.0, 2.5, 10.0, 11.0, 700.0])
    found = metrics(ranks)
    for m in ("mean_rank", "mrr", "hr@10", "ndcg@10"):
        assert per_example(ranks, m).mean() == pytest.approx(found[m])
    with pytest.raises(ValueError, match="not a mean"):
        per_example(ranks, "median_rank")


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.random(3000)
    b = a + rng.normal(0, 0.1, 3000)
    mean, lo, hi = paired_bootstrap(a, b)
    assert mean == pytest.approx(np.mean(a - b))
    assert lo < mean < hi and hi - lo == pytest.approx(2 * 1.96 * 0.1 / math.sqrt(3000), rel=0.1)


def test_paired_difference_with_one_seed_is_the_paired_bootstrap():
    rng = np.random.default_rng(1)
    a = rng.random(2000)
    b = a + rng.normal(0.01, 0.1, 2000)
    _, lo, hi = paired_difference(a[None], b[None], num_samples=4000)
    _, lo2, hi2 = paired_bootstrap(a, b, num_samples=4000)
    assert lo == pytest.approx(lo2, abs=0.002) and hi == pytest.approx(hi2, abs=0.002)


def test_paired_difference_holds_the_training_noise():
    """Seeds that disagree widen the interval: a difference that one seed pair would call
    certain is not, when the seeds of one model scatter more than the gap."""
    rng = np.random.default_rng(2)
    base = rng.random(5000)
    a = np.stack([base + shift for shift in (0.00, 0.04, 0.08)])  # seed spread 0.04
    b = np.stack([base + 0.03 + rng.normal(0, 0.01, 5000) for _ in range(3)])
    d, lo, hi = paired_difference(a, b, num_samples=2000)
    assert d == pytest.approx(a.mean() - b.mean())
    assert lo < 0 < hi  # not separable: the seeds of a straddle b
    _, lo1, hi1 = paired_difference(a[:1], b[:1], num_samples=2000)
    assert hi1 < 0  # a single pair of seeds would have said b is better
    with pytest.raises(ValueError, match="same examples"):
        paired_difference(a, b[:, :10])


def test_tiers_group_what_the_data_cannot_separate():
    rng = np.random.default_rng(3)
    hits = lambda p: (rng.random((3, 20000)) < p).astype(float)  # noqa: E731
    values = {"a": hits(0.20), "b": hits(0.199), "c": hits(0.15), "d": hits(0.149),
              "e": hits(0.05)}
    found = tiers(values, "hr@10", num_samples=500)
    assert found.groups == [["a", "b"], ["c", "d"], ["e"]]
    assert found.tier_of("d") == 2
    assert list(found.tests["leader"]) == ["a", "a", "c", "c"]
    assert list(found.tests["separated"]) == [False, True, False, True]
    # lower is better for ranks: the order and the sign of the differences flip
    ranks = {"low": np.full((2, 1000), 10.0) + rng.random((2, 1000)),
             "high": np.full((2, 1000), 50.0) + rng.random((2, 1000))}
    by_rank = tiers(ranks, "mean_rank", num_samples=200)
    assert by_rank.groups == [["low"], ["high"]]
    assert by_rank.tests.loc[0, "difference"] > 0
    with pytest.raises(ValueError, match="mean over examples"):
        tiers(values, "median_rank")
