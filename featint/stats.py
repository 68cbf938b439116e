"""The statistics of the comparison: how sure can we be of a number, and of an order?

Two kinds of noise sit in every result. The **test-set noise**: another 20,000 test examples
would give other numbers. The **training noise**: another seed (initialisation, negatives,
batch order) gives another model, and that model is better or worse on *every* test example
at once, a shift that no number of test examples averages away. Every run of the comparison
ranks the *same* test examples, so two models are best compared example by example (a paired
comparison), which removes the variation between examples that both models share.

**The method of the pairwise tests** (:func:`paired_t`, :func:`pairwise`). Model A has
per-example values ``a[s, j]`` for seeds ``s = 1..S_A`` and test examples ``j = 1..n`` (the
hit, the reciprocal rank or the rank itself: :func:`featint.evaluate.per_example`), B
likewise on the same examples. Each model's seeds are averaged per example, and the
difference ``D`` is the mean over examples of ``d_j = mean_s a[s, j] - mean_s b[s, j]``
(the difference of the seed-averaged metrics in the leaderboard). Its variance is estimated as

    var(D) = var_j(d_j) / n  +  var_s(A's per-seed means) / S_A  +  var_s(B's ...) / S_B

(sample variances). The first term is the test-set noise of the paired difference; the other
two are the training noise, each model's spread over seeds of its whole-test-set metric. The
estimate errs on the safe side: the part of the seed-to-seed spread that differs from example
to example (one run ranks this target higher, another that one) is in ``var_j(d_j)`` and, as
its mean over ``n`` examples, again in each spread over seeds; so the excess is at most the
seed terms themselves, small for models whose seeds agree. Subtracting an estimate of that
part (a two-way analysis of variance) would remove the excess but can leave a negative
variance, and the degrees of freedom of a difference of variances are poorly defined; the
simple sum is the honest choice for three seeds. ``D / sqrt(var(D))`` is referred to a
t distribution with Welch-Satterthwaite degrees of freedom (``n - 1`` for the first term,
``S - 1`` for each seed term), because with three seeds a seed variance is itself very
uncertain: two degrees of freedom, and the t quantile then says so. With one seed per model
the seed term cannot be estimated and is left out: the test then holds the test-set noise
only, and the report says so. A counting baseline gives the same ranks for every seed, so its
seed term is zero, which is right: it has no training noise.

Why this and not a bootstrap: the corrected level of many pairs is strict (the first Holm
step of 78 pairs is ``1 - 0.05 / 78``), and a percentile bound that far in the tail rests on
a handful of bootstrap draws, so it moves with the bootstrap's seed; a bootstrap over three
seeds is also a coarse distribution of three values. The t interval is analytic: the same
data always give the same bounds, at any level.

**The family.** :func:`pairwise` tests every pair of the models given (``m = k (k - 1) / 2``
for ``k`` models), all the statements a table or a letter display implies, and corrects with
Holm's step-down method at a family-wise level (default 0.05): with probability at least 95%
not one pair is called separated that is not. Separated pairs are shown as a matrix and as a
compact letter display (:func:`compact_letters`): models that share a letter are not
separated.

- :func:`pooled_interval`: the percentile bootstrap interval of a seed-averaged metric over
  test examples only (the leaderboard's test-set interval);
- :func:`mean_interval`: the t interval of a seed-averaged metric with test-set *and*
  training noise (the leaderboard's second interval);
- :func:`paired_bootstrap`: the mean difference of two paired samples (one seed each) and its
  bootstrap interval;
- :func:`paired_t`, :func:`paired_difference`: the difference of two models over their seeds;
- :func:`pairwise`: every pair, Holm-corrected, with its matrix and letters (:class:`Pairwise`);
- :func:`difference_by_bucket`: where a difference of two models comes from, bucket by bucket
  of the test examples;
- :func:`t_quantile`, :func:`t_two_sided_p`: the t distribution, computed here (numpy has
  none and torch's ``StudentT`` has no inverse).
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from featint.evaluate import HIGHER_IS_BETTER, METRICS, per_example


# -- the t distribution ----------------------------------------------------------------------
def _betainc(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Regularised incomplete beta function ``I_x(a, b)``, elementwise (arrays broadcast).

    The continued fraction of ``I_x(a, b)`` (evaluated by the modified Lentz method)
    converges fast for ``x < (a + 1) / (a + b + 2)``; above that point the symmetry
    ``I_x(a, b) = 1 - I_{1-x}(b, a)`` is used instead.
    """
    a, b, x = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, x)))
    flip = x > (a + 1.0) / (a + b + 2.0)
    p, q, y = np.where(flip, b, a), np.where(flip, a, b), np.where(flip, 1.0 - x, x)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    with np.errstate(divide="ignore"):
        log_front = (p * np.log(y) + q * np.log1p(-y)
                     - (lgamma(p) + lgamma(q) - lgamma(p + q)))
    tiny, eps = 1e-300, 1e-15
    c = np.ones_like(y)
    d = 1.0 - (p + q) * y / (p + 1.0)
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    for m in range(1, 10_000):
        for coefficient in (m * (q - m) * y / ((p + 2 * m - 1) * (p + 2 * m)),
                            -(p + m) * (p + q + m) * y / ((p + 2 * m) * (p + 2 * m + 1))):
            d = 1.0 + coefficient * d
            d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1.0 + coefficient / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            step = c * d
            h = h * step
        if np.all(np.abs(step - 1.0) < eps):
            break
    value = np.exp(log_front) * h / p
    value = np.where(y <= 0.0, 0.0, np.where(y >= 1.0, 1.0, value))
    return np.where(flip, 1.0 - value, value)


def t_two_sided_p(t: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom (any positive real;
    arrays broadcast): ``I_{df / (df + t^2)}(df / 2, 1 / 2)``."""
    t, df = np.asarray(t, dtype=np.float64), np.asarray(df, dtype=np.float64)
    return _betainc(df / 2, 0.5, df / (df + t * t))


def t_quantile(p: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, for ``p`` in
    ``[0.5, 1)`` (arrays broadcast): the ``t >= 0`` with ``P(T <= t) = p``.

    Solves ``log P(|T| >= t) = log(2 (1 - p))`` for ``s = log t`` by Newton's method (the
    derivative is ``-2 t f(t) / P(|T| >= t)``, ``f`` the density), falling back to bisection
    whenever a step would leave the bracket known to hold the root, so it converges for any
    ``p`` a float can hold and any ``df > 0``; exact to about 1e-13 relative in the tail."""
    p, df = np.broadcast_arrays(np.asarray(p, np.float64), np.asarray(df, np.float64))
    if np.any((p < 0.5) | (p >= 1.0)) or np.any(~(df > 0)):
        raise ValueError(f"t_quantile needs 0.5 <= p < 1 and df > 0, got p={p}, df={df}")
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    log_tail = np.log(2.0 * (1.0 - p))
    log_density_0 = lgamma((df + 1) / 2) - lgamma(df / 2) - 0.5 * np.log(df * math.pi)
    lo, hi = np.full(p.shape, -40.0), np.full(p.shape, 700.0)  # the bracket of s = log t
    s = 0.5 * np.log(np.maximum(-2.0 * log_tail, 1e-12))  # about the normal's tail: a start
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(200):
            log_x = -np.logaddexp(0.0, 2 * s - np.log(df))  # x = df / (df + t^2)
            log_p2 = np.log(_betainc(df / 2, 0.5, np.exp(log_x)))
            g = log_p2 - log_tail  # > 0: the tail is still too heavy, t is too small
            lo, hi = np.where(g > 0, s, lo), np.where(g > 0, hi, s)
            slope = -2.0 * np.exp(s + log_density_0 + (df + 1) / 2 * log_x - log_p2)
            new = np.where(g == 0, s, s - g / slope)
            outside = ~((new >= lo) & (new <= hi))
            new = np.where(outside, (lo + hi) / 2, new)
            done = (np.abs(g) < 1e-13) | (np.abs(new - s) < 1e-13) | (hi - lo < 1e-13)
            s = new
            if np.all(done):
                break
    return np.where(p == 0.5, 0.0, np.exp(s))


# -- intervals of one model --------------------------------------------------------------------
def pooled_interval(
    ranks: np.ndarray, num_samples: int = 1000, level: float = 0.95, seed: int = 0,
    chunk: int = 100,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of the seed-averaged metrics, over test examples only.

    ``ranks``: ``(num_seeds, num_examples)``, column ``j`` the same test example in every row.
    Each replicate draws ``num_examples`` example indices with replacement, computes each
    metric of :func:`featint.evaluate.metrics` on every row at those indices and averages over
    rows. Computed without building the resampled arrays: a replicate is a vector of counts
    ``w`` (how often each example was drawn), the means are ``w @ values / n``, and the median
    is read off the cumulative counts of the distinct rank values (a test checks the result
    against the direct computation). The spread over seeds is not in it: see
    :func:`mean_interval`.
    """
    ranks = np.atleast_2d(np.asarray(ranks, dtype=np.float64))
    num_seeds, n = ranks.shape
    means = [m for m in METRICS if m != "median_rank"]
    values = {m: per_example(ranks, m) for m in means}  # (num_seeds, n) each
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
        for m in means:
            stats[m].append((counts @ values[m].T / n).mean(1))  # (size, num_seeds) -> (size,)
        medians = np.empty((size, num_seeds))
        for s, (levels, value_index) in enumerate(distinct):
            drawn = value_index[idx] + len(levels) * row_offset  # drawn rank values, by row
            per_value = np.bincount(drawn.ravel(), minlength=size * len(levels))
            cumulative = np.cumsum(per_value.reshape(size, len(levels)), axis=1)
            low = levels[(cumulative < k_low).sum(1)]
            high = levels[(cumulative < k_high).sum(1)]
            medians[:, s] = (low + high) / 2
        stats["median_rank"].append(medians.mean(1))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {m: (float(np.percentile(np.concatenate(stats[m]), lo)),
                float(np.percentile(np.concatenate(stats[m]), hi))) for m in METRICS}


def _welch(terms: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """``(variance, df)`` of a sum of independent variance estimates ``(v_k, df_k)`` by
    Welch-Satterthwaite: ``df = (sum v_k)^2 / sum(v_k^2 / df_k)``; ``inf`` when every term
    is zero."""
    terms = [(v, df) for v, df in terms if df > 0]
    total = sum(v for v, _ in terms)
    denominator = sum(v * v / df for v, df in terms)
    return total, (total * total / denominator if denominator > 0 else math.inf)


def _seed_term(values: np.ndarray) -> tuple[float, float]:
    """The training-noise term of a model's seed-averaged metric: ``(var over seeds of the
    per-seed means / S, S - 1)``; ``(0, 0)`` with one seed. ``values``: ``(S, n)``."""
    seeds = len(values)
    if seeds < 2:
        return 0.0, 0.0
    return float(np.var(values.mean(1), ddof=1)) / seeds, float(seeds - 1)


def _as_seeds(values: np.ndarray, name: str = "values") -> np.ndarray:
    """``values`` as a float64 ``(seeds, num_examples)`` array with at least two examples."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if values.ndim != 2 or values.shape[1] < 2:
        raise ValueError(f"{name} must be (seeds, num_examples) per-example values with at "
                         f"least two examples, got shape {values.shape}")
    return values


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """The seed-averaged mean of ``values`` and its t interval ``(mean, lo, hi)`` with both
    kinds of noise.

    ``values``: ``(seeds, num_examples)`` per-example values of one metric
    (:func:`featint.evaluate.per_example`). The variance of the mean is the variance over
    examples of the seed-averaged values over ``n`` (test-set noise, ``n - 1`` degrees of
    freedom) plus the variance over seeds of the per-seed means over ``S`` (training noise,
    ``S - 1`` degrees of freedom), with Welch-Satterthwaite degrees of freedom for the t
    quantile. With one seed it is the t interval over test examples alone.
    """
    values = _as_seeds(values)
    n = values.shape[1]
    averaged = values.mean(0)
    variance, df = _welch([(float(np.var(averaged, ddof=1)) / n, n - 1.0),
                           _seed_term(values)])
    mean = float(averaged.mean())
    half = float(t_quantile((1 + level) / 2, df)) * math.sqrt(variance) if variance else 0.0
    return mean, mean - half, mean + half


# -- two models --------------------------------------------------------------------------------
def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, num_samples: int = 10000, level: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired examples and its percentile bootstrap interval
    ``(mean, lo, hi)``: resample examples, keep the pairs together. ``a``, ``b``:
    ``(num_examples,)``, one run each (for several seeds use :func:`paired_t`)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate([
        d[rng.integers(0, len(d), size=(min(500, num_samples - s), len(d)))].mean(1)
        for s in range(0, num_samples, 500)
    ])
    lo, hi = np.percentile(means, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(d.mean()), float(lo), float(hi)


@dataclass(frozen=True)
class PairedTest:
    """The result of :func:`paired_t`: ``difference`` (A minus B, seed-averaged), its
    standard error ``se`` (test-set and training noise), the degrees of freedom ``df``, the
    two-sided ``p`` of "no difference", and the interval ``(lo, hi)`` at ``level``."""

    difference: float
    se: float
    df: float
    p: float
    level: float
    lo: float
    hi: float

    def interval(self, level: float) -> tuple[float, float]:
        """The interval of the difference at another ``level``."""
        if self.se == 0:
            return self.difference, self.difference
        half = float(t_quantile((1 + level) / 2, self.df)) * self.se
        return self.difference - half, self.difference + half


def _paired_moments(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """``(difference, variance, df)`` of A minus B (see the module docstring)."""
    n = a.shape[1]
    d = a.mean(0) - b.mean(0)  # (n,) seed-averaged per-example differences
    variance, df = _welch([(float(np.var(d, ddof=1)) / n, n - 1.0),
                           _seed_term(a), _seed_term(b)])
    return float(d.mean()), variance, df


def paired_t(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> PairedTest:
    """Difference of the seed-averaged means of ``a`` and ``b``, paired over test examples,
    with its t test and interval (the method of the module docstring).

    ``a``: ``(seeds_a, num_examples)`` per-example values of model A, one row per training
    seed; ``b``: ``(seeds_b, num_examples)`` likewise, column ``j`` the same test example in
    both. A one-dimensional array is one seed.
    """
    a, b = _as_seeds(a, "a"), _as_seeds(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must hold the same examples, got {a.shape} and {b.shape}")
    difference, variance, df = _paired_moments(a, b)
    se = math.sqrt(variance)
    if se == 0:  # no noise at all: equal means are not separated, unequal ones are
        p = 1.0 if difference == 0 else 0.0
        return PairedTest(difference, 0.0, df, p, level, difference, difference)
    p = float(t_two_sided_p(difference / se, df))
    half = float(t_quantile((1 + level) / 2, df)) * se
    return PairedTest(difference, se, df, p, level, difference - half, difference + half)


def paired_difference(
    a: np.ndarray, b: np.ndarray, level: float = 0.95,
) -> tuple[float, float, float]:
    """:func:`paired_t` as ``(difference, lo, hi)``: A minus B over seeds and examples."""
    found = paired_t(a, b, level)
    return found.difference, found.lo, found.hi


# -- every pair ----------------------------------------------------------------------------------
def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given: sort ascending, multiply the
    ``i``-th smallest (from 1) by ``m - i + 1``, carry the running maximum, cap at 1. A pair
    is rejected at family-wise level ``alpha`` when its adjusted p is at most ``alpha``."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def _holm_levels(p: np.ndarray, alpha: float) -> np.ndarray:
    """The per-pair error rate Holm tested each pair at: ``alpha / (m - i + 1)`` for the
    ``i``-th smallest p up to the first pair Holm keeps, and that step's rate for the rest.
    An interval at ``1 -`` this rate excludes zero exactly when Holm separates the pair."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    rates = alpha / (m - np.arange(m))
    kept = np.nonzero(p[order] > rates)[0]
    if len(kept):
        rates[kept[0]:] = rates[kept[0]]
    out = np.empty(m)
    out[order] = rates
    return out


def compact_letters(order: Sequence[str], separated: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A compact letter display: letters such that two models share a letter exactly when
    they are not separated.

    ``order``: the models, best first; ``separated``: the separated pairs. Piepho's (2004)
    insert-and-absorb algorithm: start with one letter for all; for each separated pair,
    split every letter that holds both into a copy without the one and a copy without the
    other; drop a letter whose models are all in another letter (absorb). Then a sweep
    drops a model from a letter when every model it shares that letter with and is not
    separated from shares another letter with it. Letters are named in order of their best
    model, so ``a`` holds the best one. Returns ``{model: letters}`` in ``order``.
    """
    names = list(order)
    index = {name: i for i, name in enumerate(names)}
    pairs = sorted({tuple(sorted((index[x], index[y]))) for x, y in separated if x != y})
    apart = set(pairs)
    columns: list[frozenset[int]] = [frozenset(range(len(names)))] if names else []
    for i, j in pairs:
        split: list[frozenset[int]] = []
        for col in columns:
            split += [col - {i}, col - {j}] if i in col and j in col else [col]
        columns = _absorb(split)
    columns = _sweep(columns, apart)
    columns.sort(key=sorted)
    alphabet = string.ascii_lowercase + string.ascii_uppercase
    if len(columns) > len(alphabet):
        raise ValueError(f"{len(columns)} letters needed, more than the {len(alphabet)} of "
                         "a-z and A-Z; show the pairwise matrix instead")
    return {name: "".join(alphabet[c] for c, col in enumerate(columns) if index[name] in col)
            for name in names}


def _absorb(columns: list[frozenset[int]]) -> list[frozenset[int]]:
    """``columns`` without duplicates and without a column inside another one."""
    unique = list(dict.fromkeys(columns))
    return [c for c in unique if c and not any(c < other for other in unique)]


def _sweep(columns: list[frozenset[int]], apart: set[tuple[int, int]]) -> list[frozenset[int]]:
    """Drop redundant letters: model ``k`` leaves column ``c`` when every model of ``c`` that
    is not separated from ``k`` shares another column with ``k``, and ``k`` keeps a letter."""
    columns = [set(c) for c in columns]
    for c, col in enumerate(columns):
        for k in sorted(col):
            elsewhere = [other for i, other in enumerate(columns) if i != c and k in other]
            if not elsewhere:  # k's only letter: it stays
                continue
            needed = [j for j in col if j != k and tuple(sorted((k, j))) not in apart
                      and not any(j in other for other in elsewhere)]
            if not needed:
                col.discard(k)
    return _absorb([frozenset(c) for c in columns])


@dataclass
class Pairwise:
    """The result of :func:`pairwise` for one metric.

    - ``order``: the models, best first by their seed-averaged mean;
    - ``means``: that mean per model (a Series in ``order``);
    - ``seeds``: the number of seeds per model; ``num_examples``: the test examples;
    - ``pairs``: one row per pair, ``a`` the better of the two by mean, ``b`` the other:
      ``difference`` (how much better ``a`` is, in the metric's units: positive, or zero on a
      tie), ``se``, ``df``, ``p`` (two-sided, uncorrected), ``p_adjusted`` (Holm),
      ``separated`` (``p_adjusted <= alpha``), ``level`` and ``lo``/``hi``: the interval at
      the level Holm tested the pair at, so that it excludes zero exactly when the pair is
      separated; ``lo_simultaneous``/``hi_simultaneous``: Bonferroni intervals at
      ``1 - alpha / m``, which all hold together with probability ``1 - alpha``;
    - ``letters``: the compact letter display (:func:`compact_letters`).
    """

    metric: str
    alpha: float
    order: list[str]
    means: pd.Series
    seeds: dict[str, int]
    num_examples: int
    pairs: pd.DataFrame
    letters: dict[str, str]

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    def pair(self, x: str, y: str) -> pd.Series:
        """The row of the pair ``{x, y}`` (in either order)."""
        mine = ((self.pairs["a"] == x) & (self.pairs["b"] == y)
                | (self.pairs["a"] == y) & (self.pairs["b"] == x))
        if not mine.any():
            raise KeyError(f"no pair {x!r}, {y!r}; models are {self.order}")
        return self.pairs[mine].iloc[0]

    def is_separated(self, x: str, y: str) -> bool:
        return bool(self.pair(x, y)["separated"])

    def matrix(self, value: str = "difference") -> pd.DataFrame:
        """A ``(k, k)`` frame, rows and columns in ``order``. ``difference``, ``lo``, ``hi``:
        how much better the row is than the column (negative: worse); ``separated``,
        ``p``, ``p_adjusted``: symmetric. The diagonal is NaN (False for ``separated``)."""
        signed = {"difference", "lo", "hi", "lo_simultaneous", "hi_simultaneous"}
        if value not in signed | {"separated", "p", "p_adjusted"}:
            raise ValueError(f"unknown value {value!r} for the matrix")
        k = len(self.order)
        out = np.full((k, k), False if value == "separated" else np.nan, dtype=object)
        index = {n: i for i, n in enumerate(self.order)}
        flip = {"lo": "hi", "hi": "lo", "lo_simultaneous": "hi_simultaneous",
                "hi_simultaneous": "lo_simultaneous", "difference": "difference"}
        for _, row in self.pairs.iterrows():
            i, j = index[row["a"]], index[row["b"]]
            out[i, j] = row[value]
            out[j, i] = -row[flip[value]] if value in signed else row[value]
        frame = pd.DataFrame(out, index=self.order, columns=self.order)
        return frame.astype(bool if value == "separated" else float)

    def separated_from(self, name: str) -> tuple[list[str], list[str]]:
        """``(ahead of, behind)``: the models ``name`` is separated from, above and below
        it, each in ``order``."""
        ahead, behind = [], []
        for _, row in self.pairs[self.pairs["separated"]].iterrows():
            if row["a"] == name:
                ahead.append(row["b"])
            elif row["b"] == name:
                behind.append(row["a"])
        rank = {n: i for i, n in enumerate(self.order)}
        return sorted(ahead, key=rank.get), sorted(behind, key=rank.get)

    def best_group(self) -> list[str]:
        """The best model by mean and every model not separated from it, in ``order``."""
        best = self.order[0]
        return [best] + [n for n in self.order[1:] if not self.is_separated(best, n)]

    def groups(self) -> dict[str, list[str]]:
        """Letter -> the models that carry it, in ``order`` (no two of them separated)."""
        letters = sorted({c for text in self.letters.values() for c in text},
                         key=lambda c: (c.isupper(), c))
        return {c: [n for n in self.order if c in self.letters[n]] for c in letters}


def pairwise(
    values: dict[str, np.ndarray], metric: str, alpha: float = 0.05,
) -> Pairwise:
    """Every pair of the models in ``values`` compared on ``metric`` by :func:`paired_t`,
    Holm-corrected at family-wise level ``alpha``, with the matrix and the letters.

    ``values[name]``: ``(seeds, num_examples)`` per-example values of ``metric``
    (:func:`featint.evaluate.per_example`, e.g. :meth:`featint.compare.Comparison.per_example`),
    the same examples in the same columns for every model. The models are ordered best
    first by their seed-averaged mean (``HIGHER_IS_BETTER`` says the direction).
    """
    if metric not in HIGHER_IS_BETTER or metric == "median_rank":
        raise ValueError(f"pairwise tests need a metric that is a mean over examples, not "
                         f"{metric!r}: use mean_rank, mrr, hr@10 or ndcg@10")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    arrays = {n: _as_seeds(v, n) for n, v in values.items()}
    sizes = {v.shape[1] for v in arrays.values()}
    if len(sizes) > 1:
        raise ValueError(f"every model must hold the same test examples, got sizes {sizes}")
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    mean = {n: float(v.mean()) for n, v in arrays.items()}
    order = sorted(arrays, key=lambda n: -sign * mean[n])  # stable: ties keep the given order
    rows = []
    for i, x in enumerate(order):
        for y in order[i + 1:]:
            difference, variance, df = _paired_moments(arrays[x], arrays[y])
            # positive difference: x, ahead by mean, is better
            rows.append({"a": x, "b": y, "difference": sign * difference,
                         "se": math.sqrt(variance), "df": df})
    pairs = pd.DataFrame(rows, columns=["a", "b", "difference", "se", "df"])
    m = len(pairs)
    if m:
        se, noisy = pairs["se"].to_numpy(), pairs["se"].to_numpy() > 0
        p = np.where(pairs["difference"].to_numpy() == 0, 1.0, 0.0)  # no noise: exact
        p[noisy] = t_two_sided_p(pairs["difference"].to_numpy()[noisy] / se[noisy],
                                 pairs["df"].to_numpy()[noisy])
        pairs["p"] = p
        pairs["p_adjusted"] = holm(pairs["p"].to_numpy())
        pairs["separated"] = pairs["p_adjusted"] <= alpha
        pairs["level"] = 1 - _holm_levels(pairs["p"].to_numpy(), alpha)
        for suffix, level in (("", pairs["level"].to_numpy()), ("_simultaneous", 1 - alpha / m)):
            half = np.zeros(m)  # no noise (se 0, df inf): the interval is the difference
            half[noisy] = t_quantile((1 + np.broadcast_to(level, (m,))[noisy]) / 2,
                                     pairs["df"].to_numpy()[noisy]) * se[noisy]
            pairs["lo" + suffix] = pairs["difference"] - half
            pairs["hi" + suffix] = pairs["difference"] + half
    else:
        for column in ("p", "p_adjusted", "separated", "level", "lo", "hi",
                       "lo_simultaneous", "hi_simultaneous"):
            pairs[column] = pd.Series(dtype=bool if column == "separated" else float)
    separated = [(r["a"], r["b"]) for _, r in pairs[pairs["separated"]].iterrows()]
    return Pairwise(
        metric=metric, alpha=alpha, order=order,
        means=pd.Series({n: mean[n] for n in order}, name=metric),
        seeds={n: len(arrays[n]) for n in order}, num_examples=sizes.pop() if sizes else 0,
        pairs=pairs, letters=compact_letters(order, separated),
    )


# -- where a difference comes from -----------------------------------------------------------
def difference_by_bucket(
    a: np.ndarray, b: np.ndarray, by: np.ndarray, edges: Sequence[float],
    level: float = 0.95,
) -> pd.DataFrame:
    """Where the difference of two models' seed-averaged means comes from: the test examples
    split into buckets of ``by`` (for example each example's rank), and per bucket the mean
    difference A minus B there and its *contribution* to the whole difference.

    ``a``, ``b``: ``(seeds, num_examples)`` per-example values of one metric
    (:func:`featint.evaluate.per_example`), column ``j`` the same test example in both;
    ``by``: ``(num_examples,)``, the value that puts an example in a bucket; ``edges``: the
    bucket edges, increasing, bucket ``i`` holding ``edges[i] < by <= edges[i + 1]`` (use
    ``-inf`` and ``inf`` at the ends to cover every example). One row per bucket, then one
    for all examples (``all``): ``examples``, ``share`` (of all examples), ``difference``
    (A minus B inside the bucket, seed-averaged, in the metric's units, positive: A's values
    are larger), ``lo``/``hi`` its :func:`paired_t` interval at ``level`` (test-set and
    training noise, inside the bucket; NaN under two examples), and ``contribution``,
    ``contribution_lo``/``contribution_hi``: the same times ``share``. The contributions add
    up to the whole difference (the ``all`` row). The intervals are conditional on the
    buckets: when ``by`` comes from the two models' own ranks, a bucket is chosen by the data,
    and its interval says how sure the difference *inside that bucket* is, not how often
    such a bucket would be found.
    """
    a, b = _as_seeds(a, "a"), _as_seeds(b, "b")
    by = np.asarray(by, dtype=np.float64)
    if a.shape[1] != b.shape[1] or by.shape != (a.shape[1],):
        raise ValueError(f"a, b and by must hold the same examples, got shapes {a.shape}, "
                         f"{b.shape} and {by.shape}")
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(x >= y for x, y in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"edges must be at least two increasing values, got {edges}")
    n = a.shape[1]
    rows = []
    masks = [(by > lo) & (by <= hi) for lo, hi in zip(edges, edges[1:], strict=False)]
    labels = [f"({lo:g}, {hi:g}]" for lo, hi in zip(edges, edges[1:], strict=False)]
    for label, mask in [*zip(labels, masks, strict=True), ("all", np.ones(n, bool))]:
        count = int(mask.sum())
        share = count / n
        difference = lo = hi = math.nan
        if count:
            difference = float((a[:, mask].mean(0) - b[:, mask].mean(0)).mean())
        if count >= 2:
            found = paired_t(a[:, mask], b[:, mask], level)
            lo, hi = found.lo, found.hi
        rows.append({"bucket": label, "examples": count, "share": share,
                     "difference": difference, "lo": lo, "hi": hi,
                     "contribution": share * difference if count else 0.0,
                     "contribution_lo": share * lo, "contribution_hi": share * hi})
    return pd.DataFrame(rows).set_index("bucket")


__all__ = ["PairedTest", "Pairwise", "compact_letters", "difference_by_bucket", "holm",
           "mean_interval", "paired_bootstrap", "paired_difference", "paired_t", "pairwise",
           "per_example", "pooled_interval", "t_quantile", "t_two_sided_p"]
