"""The statistics of the comparison: how sure can we be of a number, and of an order?

Two kinds of noise sit in every result. The **test-set noise**: another 20,000 test examples
would give other numbers; a bootstrap over test examples measures it. The **training noise**:
another seed (initialisation, negatives, batch order) gives another model; the spread over
seeds measures it. Every run of the comparison ranks the *same* test examples, so two models
are best compared example by example (a paired comparison), which removes the variation
between examples that both models share.

- :func:`pooled_interval`: the interval of a seed-averaged metric (the leaderboard's);
- :func:`paired_bootstrap`: the mean difference of two paired samples and its interval;
- :func:`paired_difference`: the same for two models trained with several seeds each,
  resampling test examples *and* each model's seeds, so both kinds of noise are in it;
- :func:`tiers`: the groups of models that the data cannot separate on one metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from featint.evaluate import HIGHER_IS_BETTER, METRICS

#: The metrics that are means over test examples, as the per-example value they average.
PER_EXAMPLE = {
    "mean_rank": lambda r: r,
    "mrr": lambda r: 1.0 / r,
    "hr@10": lambda r: (r <= 10).astype(np.float64),
    "ndcg@10": lambda r: np.where(r <= 10, 1.0 / np.log2(r + 1.0), 0.0),
}


def per_example(ranks: np.ndarray, metric: str) -> np.ndarray:
    """The per-example values whose mean is ``metric`` (any shape of ranks). The median rank
    is not a mean and has none."""
    if metric not in PER_EXAMPLE:
        raise ValueError(f"{metric!r} is not a mean over examples; use one of "
                         f"{list(PER_EXAMPLE)}")
    return PER_EXAMPLE[metric](np.asarray(ranks, dtype=np.float64))


def pooled_interval(
    ranks: np.ndarray, num_samples: int = 1000, level: float = 0.95, seed: int = 0,
    chunk: int = 100,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of the seed-averaged metrics.

    ``ranks``: ``(num_seeds, num_examples)``, column ``j`` the same test example in every row.
    Each replicate draws ``num_examples`` example indices with replacement, computes each
    metric of :func:`featint.evaluate.metrics` on every row at those indices and averages over
    rows. Computed without building the resampled arrays: a replicate is a vector of counts
    ``w`` (how often each example was drawn), the means are ``w @ values / n``, and the median
    is read off the cumulative counts of the distinct rank values (a test checks the result
    against the direct computation).
    """
    ranks = np.atleast_2d(np.asarray(ranks, dtype=np.float64))
    num_seeds, n = ranks.shape
    per_example = {  # the metrics that are means over examples, as (num_seeds, n) values
        "mean_rank": ranks,
        "mrr": 1.0 / ranks,
        "hr@10": (ranks <= 10).astype(np.float64),
        "ndcg@10": np.where(ranks <= 10, 1.0 / np.log2(ranks + 1.0), 0.0),
    }
    distinct = [np.unique(row, return_inverse=True) for row in ranks]  # (values, value index)
    k_low, k_high = (n + 1) // 2, n // 2 + 1  # the order statistics the median averages
    rng = np.random.default_rng(seed)
    stats: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    for start in range(0, num_samples, chunk):
        size = min(chunk, num_samples - start)
        idx = rng.integers(0, n, size=(size, n))
        row_offset = np.arange(size)[:, None]
        counts = np.bincount((idx + n * row_offset).ravel(), minlength=size * n)
        counts = counts.reshape(size, n).astype(np.float64)
        for m, values in per_example.items():
            stats[m].append((counts @ values.T / n).mean(1))  # (size, num_seeds) -> (size,)
        medians = np.empty((size, num_seeds))
        for s, (values, value_index) in enumerate(distinct):
            drawn = value_index[idx] + len(values) * row_offset  # drawn rank values, by row
            per_value = np.bincount(drawn.ravel(), minlength=size * len(values))
            cumulative = np.cumsum(per_value.reshape(size, len(values)), axis=1)
            low = values[(cumulative < k_low).sum(1)]
            high = values[(cumulative < k_high).sum(1)]
            medians[:, s] = (low + high) / 2
        stats["median_rank"].append(medians.mean(1))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {m: (float(np.percentile(np.concatenate(stats[m]), lo)),
                float(np.percentile(np.concatenate(stats[m]), hi))) for m in METRICS}


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, num_samples: int = 10000, level: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired examples and its percentile bootstrap interval
    ``(mean, lo, hi)``: resample examples, keep the pairs together."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate([
        d[rng.integers(0, len(d), size=(min(500, num_samples - s), len(d)))].mean(1)
        for s in range(0, num_samples, 500)
    ])
    lo, hi = np.percentile(means, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(d.mean()), float(lo), float(hi)

def paired_difference(
    a: np.ndarray, b: np.ndarray, num_samples: int = 2000, level: float = 0.95,
    seed: int = 0, chunk: int = 100,
) -> tuple[float, float, float]:
    """Difference of the seed-averaged means of ``a`` and ``b`` with a two-stage bootstrap
    interval ``(mean, lo, hi)``.

    ``a``: ``(seeds_a, num_examples)`` per-example values of model A, one row per training
    seed; ``b`` likewise, column ``j`` the same test example in both. Each replicate draws
    the test examples with replacement (the same draw for both models: the pairing) and, for
    each model, its seeds with replacement; the replicate's difference is mean over drawn
    seeds of A's mean over drawn examples, minus the same for B. So the interval holds the
    test-set noise and the training noise; with one seed per model it is the paired
    bootstrap of :func:`paired_bootstrap`.
    """
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must hold the same examples, got {a.shape} and {b.shape}")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, num_samples, chunk):
        size = min(chunk, num_samples - start)
        idx = rng.integers(0, n, size=(size, n))
        counts = np.bincount((idx + n * np.arange(size)[:, None]).ravel(),
                             minlength=size * n).reshape(size, n).astype(np.float64)
        per_seed_a, per_seed_b = counts @ a.T / n, counts @ b.T / n  # (size, seeds)
        pick_a = rng.integers(0, len(a), size=(size, len(a)))
        pick_b = rng.integers(0, len(b), size=(size, len(b)))
        rows = np.arange(size)[:, None]
        diffs.append(per_seed_a[rows, pick_a].mean(1) - per_seed_b[rows, pick_b].mean(1))
    lo, hi = np.percentile(np.concatenate(diffs), [(1 - level) / 2 * 100,
                                                   (1 + level) / 2 * 100])
    return float(a.mean() - b.mean()), float(lo), float(hi)


@dataclass
class Tiers:
    """The result of :func:`tiers`: ``groups`` (best tier first, each best model first) and
    ``tests``, one row per comparison made (model, the leader of its tier, the difference
    leader minus model oriented so that positive means the leader is better, its interval, and
    whether the interval excludes zero)."""

    metric: str
    level: float
    groups: list[list[str]]
    tests: pd.DataFrame

    def tier_of(self, name: str) -> int:
        """1 for the best tier, 2 for the next, ..."""
        return next(i for i, group in enumerate(self.groups, 1) if name in group)


def tiers(
    values: dict[str, np.ndarray], metric: str, level: float = 0.95,
    num_samples: int = 2000, seed: int = 0,
) -> Tiers:
    """Group models into tiers that the data cannot separate on ``metric``.

    ``values[name]``: ``(seeds, num_examples)`` per-example values of ``metric`` (see
    :func:`per_example`). The models are sorted by their mean, best first. The best model
    leads the first tier; each next model is compared with the leader of the current tier by
    :func:`paired_difference` and joins the tier unless the leader is better beyond the
    interval, in which case it leads a new tier. Every model in a tier is thus within the
    noise of its leader (two members may still differ from each other a little). The level of
    each interval is Bonferroni-corrected for the ``len(values) - 1`` comparisons, so that
    all of them hold together with probability ``level``.
    """
    if metric not in PER_EXAMPLE:
        raise ValueError(f"tiers need a metric that is a mean over examples, not {metric!r}")
    if not values:
        return Tiers(metric, level, [], pd.DataFrame())
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    order = sorted(values, key=lambda n: -sign * float(np.mean(values[n])))
    each = 1 - (1 - level) / max(len(order) - 1, 1)
    groups, rows = [[order[0]]], []
    for name in order[1:]:
        leader = groups[-1][0]
        d, lo, hi = paired_difference(values[leader], values[name], num_samples, each, seed)
        d, lo, hi = (d, lo, hi) if sign > 0 else (-d, -hi, -lo)  # positive: leader better
        separated = lo > 0
        rows.append({"model": name, "leader": leader, "difference": d, "lo": lo, "hi": hi,
                     "separated": separated})
        if separated:
            groups.append([name])
        else:
            groups[-1].append(name)
    return Tiers(metric, level, groups, pd.DataFrame(rows))


__all__ = ["PER_EXAMPLE", "Tiers", "paired_bootstrap", "paired_difference",
           "per_example", "pooled_interval", "tiers"]
