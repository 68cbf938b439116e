"""The statistics of the comparison (``featint.stats``): intervals, the t distribution, paired
tests over seeds, every pair with Holm's correction, and the letters. The pairwise tests are
checked on synthetic scores whose truth is known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

import featint.evaluate
import featint.stats
from featint.evaluate import MEAN_METRICS, METRICS, bootstrap, metrics, per_example
from featint.stats import (
    _betainc,
    compact_letters,
    difference_by_bucket,
    holm,
    mean_interval,
    paired_bootstrap,
    paired_difference,
    paired_t,
    pairwise,
    pooled_interval,
    t_quantile,
    t_two_sided_p,
)


# -- the one definition of the metrics ---------------------------------------------------------
def test_per_example_values_average_to_the_metrics():
    ranks = np.array([1.0, 2.5, 10.0, 11.0, 700.0])
    found = metrics(ranks)
    for m in MEAN_METRICS:
        assert per_example(ranks, m).mean() == pytest.approx(found[m])
    assert per_example(ranks, "hr@5").mean() == metrics(ranks, k=5)["hr@5"]
    assert per_example(ranks, "ndcg@5").mean() == pytest.approx(metrics(ranks, k=5)["ndcg@5"])
    for bad in ("median_rank", "hr@", "hr@x", "recall@10"):
        with pytest.raises(ValueError, match="not a mean"):
            per_example(ranks, bad)


def test_every_interval_and_test_uses_the_one_definition():
    """stats has no formula of its own: its per-example values are evaluate's, and the means
    its intervals and tests are built on are the metrics of ``evaluate.metrics``."""
    assert featint.stats.per_example is featint.evaluate.per_example
    rng = np.random.default_rng(7)
    ranks = {n: rng.integers(1, 500, size=(3, 400)) + 0.5 * rng.integers(0, 2, (3, 400))
             for n in ("x", "y")}
    for m in MEAN_METRICS:
        expected = {n: np.mean([metrics(row)[m] for row in r]) for n, r in ranks.items()}
        mean, lo, hi = mean_interval(per_example(ranks["x"], m))
        assert mean == pytest.approx(expected["x"]) and lo < mean < hi
        found = pairwise({n: per_example(r, m) for n, r in ranks.items()}, m)
        assert found.means.to_dict() == pytest.approx(expected)
        sign = 1 if featint.evaluate.HIGHER_IS_BETTER[m] else -1
        assert found.pairs.loc[0, "difference"] == pytest.approx(
            abs(sign * (expected["x"] - expected["y"])))


# -- the t distribution ------------------------------------------------------------------------
def test_incomplete_beta_closed_forms():
    x = np.linspace(0.01, 0.99, 25)
    assert _betainc(1.0, 1.0, x) == pytest.approx(x, rel=1e-12)
    assert _betainc(3.0, 1.0, x) == pytest.approx(x ** 3, rel=1e-12)
    assert _betainc(1.0, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, rel=1e-12)
    assert _betainc(0.5, 0.5, x) == pytest.approx(2 / np.pi * np.arcsin(np.sqrt(x)), rel=1e-12)
    assert _betainc(2.0, 3.0, np.array([0.0, 1.0])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize(("p", "df", "table"), [
    (0.975, 1, 12.706205), (0.975, 2, 4.302653), (0.975, 5, 2.570582), (0.975, 10, 2.228139),
    (0.975, 30, 2.042272), (0.95, 3, 2.353363), (0.995, 5, 4.032143), (0.995, 10, 3.169273),
    (0.999, 20, 3.551808), (0.9995, 3, 12.923979), (0.9995, 60, 3.460200),
    (0.975, 1e7, 1.959964), (0.9995, 1e7, 3.290527),  # the normal's quantiles
])
def test_t_quantile_matches_the_table(p, df, table):
    assert float(t_quantile(p, df)) == pytest.approx(table, abs=2e-6)


def test_t_quantile_exact_forms_and_inverse():
    p = np.array([0.6, 0.9, 0.975, 1 - 1e-4, 1 - 1e-9])
    assert t_quantile(p, 1.0) == pytest.approx(1 / np.tan(np.pi * (1 - p)), rel=1e-9)  # Cauchy
    assert t_quantile(p, 2.0) == pytest.approx((2 * p - 1) / np.sqrt(2 * p * (1 - p)),
                                               rel=1e-9)
    rng = np.random.default_rng(0)  # any level and any real df: the p-value inverts it
    level, df = 1 - 10 ** rng.uniform(-12, -0.5, 300), 10 ** rng.uniform(-0.3, 4.5, 300)
    back = t_two_sided_p(t_quantile(level, df), df)
    assert back == pytest.approx(2 * (1 - level), rel=1e-9)
    assert float(t_quantile(0.5, 3.0)) == 0.0
    with pytest.raises(ValueError, match="0.5 <= p < 1"):
        t_quantile(0.3, 4.0)


# -- intervals ---------------------------------------------------------------------------------
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


def test_mean_interval_holds_the_training_noise():
    """The audit's case: three seeds whose HR@10 is 0.1451, 0.1316 and 0.1401 on 20,187
    examples. The interval over test examples alone leaves seeds outside; the interval with
    the seed term holds all three (with three seeds it always does: its half-width is at
    least t(0.975, 2) / sqrt(3) = 2.48 standard deviations over seeds, and no value of three
    lies more than 2 / sqrt(3) = 1.15 from their mean)."""
    n, rng = 20187, np.random.default_rng(3)
    hits = np.stack([rng.permutation(np.arange(n) < round(rate * n))
                     for rate in (0.1451, 0.1316, 0.1401)]).astype(float)
    per_seed = hits.mean(1)
    mean, lo, hi = mean_interval(hits)
    assert mean == pytest.approx(per_seed.mean())
    assert lo < per_seed.min() and per_seed.max() < hi
    test_lo, test_hi = pooled_interval(np.where(hits > 0, 1.0, 100.0), num_samples=300)["hr@10"]
    assert per_seed.max() > test_hi or per_seed.min() < test_lo  # what the audit found
    # one seed: the t interval over examples, mean +- t(0.975, n - 1) sd / sqrt(n)
    mean1, lo1, hi1 = mean_interval(hits[0])
    half = float(t_quantile(0.975, n - 1)) * hits[0].std(ddof=1) / math.sqrt(n)
    assert (lo1, hi1) == pytest.approx((mean1 - half, mean1 + half), rel=1e-12)


# -- two models --------------------------------------------------------------------------------
def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.random(3000)
    b = a + rng.normal(0, 0.1, 3000)
    mean, lo, hi = paired_bootstrap(a, b)
    assert mean == pytest.approx(np.mean(a - b))
    assert lo < mean < hi and hi - lo == pytest.approx(2 * 1.96 * 0.1 / math.sqrt(3000), rel=0.1)


def test_paired_t_with_one_seed_is_the_paired_t_over_examples():
    rng = np.random.default_rng(1)
    a = rng.random(2000)
    b = a + rng.normal(0.01, 0.1, 2000)
    found = paired_t(a, b)
    d = a - b
    assert found.difference == pytest.approx(d.mean())
    assert found.se == pytest.approx(d.std(ddof=1) / math.sqrt(2000))
    assert found.df == pytest.approx(1999)
    _, lo, hi = paired_bootstrap(a, b, num_samples=4000)  # the bootstrap agrees
    assert (found.lo, found.hi) == pytest.approx((lo, hi), abs=4e-4)
    assert found.interval(0.95) == pytest.approx((found.lo, found.hi))
    assert paired_difference(a, b) == pytest.approx((found.difference, found.lo, found.hi))


def test_paired_t_holds_the_training_noise():
    """Seeds that disagree widen the interval: a difference that one seed pair would call
    certain is not, when the seeds of one model scatter more than the gap."""
    rng = np.random.default_rng(2)
    base = rng.random(5000)
    a = np.stack([base + shift for shift in (0.00, 0.04, 0.08)])  # seed spread 0.04
    b = np.stack([base + 0.03 + rng.normal(0, 0.01, 5000) for _ in range(3)])
    found = paired_t(a, b)
    assert found.difference == pytest.approx(a.mean() - b.mean())
    assert found.lo < 0 < found.hi and found.p > 0.05  # not separable
    assert found.df < 5  # the seed term dominates: about 2 + 2 degrees of freedom
    assert paired_t(a[:1], b[:1]).hi < 0  # one pair of seeds would have said b is better
    with pytest.raises(ValueError, match="same examples"):
        paired_t(a, b[:, :10])


def test_paired_t_without_noise():
    same = np.ones((3, 50))
    assert paired_t(same, same).p == 1.0
    shifted = paired_t(same + 1, same)
    assert shifted.p == 0.0 and shifted.lo == shifted.hi == 1.0


# -- Holm and the letters ----------------------------------------------------------------------
def test_holm_by_hand():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 -> max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 0.5 x 2, then the running max
    assert len(holm([])) == 0


@pytest.mark.parametrize(("separated", "expected"), [
    ([], {"A": "a", "B": "a", "C": "a"}),
    ([("A", "C")], {"A": "a", "B": "ab", "C": "b"}),  # A~B, B~C, A!=C: not transitive
    ([("A", "B"), ("A", "C"), ("B", "C")], {"A": "a", "B": "b", "C": "c"}),
    ([("A", "B"), ("A", "C")], {"A": "a", "B": "b", "C": "b"}),
    ([("B", "C"), ("A", "C")], {"A": "a", "B": "a", "C": "b"}),
])
def test_letters_by_hand(separated, expected):
    assert compact_letters(["A", "B", "C"], separated) == expected


def test_letters_of_a_chain():
    # A~B, B~C, C~D, every other pair separated: overlapping letters along the chain
    found = compact_letters("ABCD", [("A", "C"), ("A", "D"), ("B", "D")])
    assert found == {"A": "a", "B": "ab", "C": "bc", "D": "c"}
    assert compact_letters(["D", "C", "B", "A"], [("A", "C"), ("A", "D"), ("B", "D")]) == {
        "D": "a", "C": "ab", "B": "bc", "A": "c"}  # the best model always carries a


def check_letters(letters: dict[str, str], separated: set[frozenset[str]]) -> None:
    """Two models share a letter exactly when they are not separated."""
    for x, y in itertools.combinations(letters, 2):
        share = bool(set(letters[x]) & set(letters[y]))
        assert share == (frozenset((x, y)) not in separated), (x, y, letters)


def test_letters_are_valid_for_any_pattern():
    rng = np.random.default_rng(4)
    names = [f"m{i}" for i in range(7)]
    for _ in range(300):
        pairs = list(itertools.combinations(names, 2))
        separated = {frozenset(p) for p in pairs if rng.random() < rng.random()}
        letters = compact_letters(names, [tuple(p) for p in separated])
        check_letters(letters, separated)
        assert "a" in letters["m0"] and all(letters.values())


# -- every pair, on scores whose truth is known ------------------------------------------------
def family(rng: np.random.Generator, means: list[float], seed_sd: float, n: int = 400,
           seeds: int = 3) -> dict[str, np.ndarray]:
    """Synthetic per-example values of several models: an example effect all models share
    (so pairing matters), each seed's shift (training noise, common to every example of
    that run) and each example's own noise in each run."""
    shared = rng.normal(0, 1, n)
    return {f"m{i}": mu + shared + rng.normal(0, seed_sd, (seeds, 1))
            + rng.normal(0, 0.5, (seeds, n)) for i, mu in enumerate(means)}


def test_identical_models_are_not_separated_beyond_the_stated_rate():
    """200 families of six models from one distribution: the share of families in which
    any pair is called separated stays within 5% plus a binomial margin (2.33 standard
    errors of a proportion of 0.05 over 200 repetitions: a false alarm of this test has a
    chance of 1%)."""
    rng = np.random.default_rng(5)
    repetitions, any_separated = 200, 0
    for _ in range(repetitions):
        found = pairwise(family(rng, [0.0] * 6, seed_sd=0.03), "hr@10")
        any_separated += bool(found.pairs["separated"].any())
        assert found.num_pairs == 15
    rate = any_separated / repetitions
    assert rate <= 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / repetitions)


def test_a_planted_difference_is_found():
    """One model of six better by 0.3 (about ten standard errors of a difference): found
    separated from every other one in nearly every repetition, with the letters saying so."""
    rng = np.random.default_rng(6)
    found_all = 0
    for _ in range(40):
        found = pairwise(family(rng, [0.3] + [0.0] * 5, seed_sd=0.01), "hr@10")
        if all(found.is_separated("m0", f"m{i}") for i in range(1, 6)):
            found_all += 1
            assert found.order[0] == "m0" and found.best_group() == ["m0"]
            assert found.letters["m0"] == "a" and all("a" not in found.letters[f"m{i}"]
                                                      for i in range(1, 6))
    assert found_all >= 36
    # lower is better for ranks: the same data as ranks order the other way round
    ranks = {n: 100 - v for n, v in family(rng, [30.0] + [0.0] * 3, seed_sd=0.01).items()}
    by_rank = pairwise(ranks, "mean_rank")
    assert by_rank.order[0] == "m0" and (by_rank.pairs["difference"] >= 0).all()
    assert by_rank.is_separated("m0", "m3")


def test_the_seed_term_matters():
    """Two models of the same mean whose seeds scatter (training noise) are not separated,
    however many test examples there are; a test over examples alone (no seed term) calls
    them different most of the time."""
    rng = np.random.default_rng(8)
    repetitions, ours, examples_only = 200, 0, 0
    for _ in range(repetitions):
        values = family(rng, [0.0, 0.0], seed_sd=0.05, n=5000)
        found = paired_t(values["m0"], values["m1"])
        ours += found.p < 0.05
        d = values["m0"].mean(0) - values["m1"].mean(0)
        z = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
        examples_only += abs(z) > 1.96
    assert ours / repetitions <= 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / repetitions)
    assert examples_only / repetitions > 0.5


def test_pairwise_matrix_letters_and_intervals_agree():
    rng = np.random.default_rng(9)
    values = family(rng, [0.5, 0.45, 0.25, 0.2, 0.0, 0.0, -0.3], seed_sd=0.02, n=800)
    found = pairwise(values, "mrr")
    k = len(found.order)
    assert found.order == sorted(values, key=lambda n: -values[n].mean())
    difference, separated = found.matrix("difference"), found.matrix("separated")
    assert list(difference.index) == list(difference.columns) == found.order
    assert np.isnan(np.diag(difference)).all() and not np.diag(separated).any()
    assert np.allclose(difference, -difference.T, equal_nan=True)
    assert (separated == separated.T).all().all()
    assert np.allclose(found.matrix("lo"), -found.matrix("hi").T, equal_nan=True)
    for x, y in itertools.combinations(found.order, 2):  # x before y: x is ahead by mean
        assert difference.loc[x, y] == pytest.approx(values[x].mean() - values[y].mean())
    pairs = found.pairs
    assert len(pairs) == k * (k - 1) // 2 and pairs["separated"].any()
    assert ((pairs["lo"] > 0) == pairs["separated"]).all()  # the interval is the test
    assert (pairs["p_adjusted"] >= pairs["p"]).all()
    assert (pairs["lo_simultaneous"] <= pairs["lo"] + 1e-12).all()  # Bonferroni is wider
    # Holm tests the i-th smallest p at alpha / (m - i + 1): between alpha / m and alpha
    assert pairs["level"].between(1 - found.alpha, 1 - found.alpha / len(pairs)).all()
    check_letters(found.letters, {frozenset((r["a"], r["b"]))
                                  for _, r in pairs[pairs["separated"]].iterrows()})
    best = found.order[0]
    assert found.best_group() == [best] + [n for n in found.order[1:]
                                           if not separated.loc[best, n]]
    for name in found.order:
        ahead, behind = found.separated_from(name)
        assert set(ahead) == {n for n in found.order if separated.loc[name, n]
                              and difference.loc[name, n] > 0}
        assert set(behind) == {n for n in found.order if separated.loc[name, n]
                               and difference.loc[name, n] < 0}
    for letter, members in found.groups().items():
        assert all(letter in found.letters[n] for n in members)
        assert not any(separated.loc[x, y] for x, y in itertools.combinations(members, 2))


def test_pairwise_refuses_what_it_cannot_test():
    values = {"a": np.ones((2, 10)), "b": np.zeros((2, 12))}
    with pytest.raises(ValueError, match="same test examples"):
        pairwise(values, "hr@10")
    with pytest.raises(ValueError, match="mean over examples"):
        pairwise({"a": np.ones((2, 10))}, "median_rank")
    single = pairwise({"a": np.ones((2, 10))}, "hr@10")
    assert single.letters == {"a": "a"} and single.num_pairs == 0
    assert isinstance(single.matrix(), pd.DataFrame) and single.best_group() == ["a"]


# -- the report of a pairwise result ------------------------------------------------------------
def test_pairwise_text_says_only_what_the_test_shows():
    from featint.report import best_group_text, pairwise_markdown, separations_lines

    rng = np.random.default_rng(10)
    found = pairwise(family(rng, [0.4, 0.38, 0.1, 0.08, -0.2], seed_sd=0.01, n=600), "hr@10")
    text = pairwise_markdown(found)
    assert f"({found.num_pairs} pairs)" in text and "600 test examples" in text
    assert "3 seeds per model" in text and "Holm" in text
    top = found.best_group()
    sentence = best_group_text(found)
    assert sentence.startswith(f"On HR@10, {top[0]} has the best mean")
    for name in found.order:  # named as not separated from the best exactly when it is not
        assert (name in sentence.split("from ", 1)[1]) == (name in top[1:])
    for letter, members in found.groups().items():
        line = next(line for line in text.splitlines() if line.startswith(f"- **{letter}**"))
        assert [part.split(" (")[0] for part in line.split(": ", 1)[1].split(", ")] == members
    for name, line in zip(found.order, separations_lines(found), strict=True):
        ahead, behind = found.separated_from(name)
        assert line.startswith(f"- {name} ({found.letters[name]}): ")
        assert ("better than" in line) == bool(ahead) and ("worse than" in line) == bool(behind)
    one_seed = pairwise({"a": np.zeros((1, 50)), "b": np.ones((3, 50))}, "mrr")
    assert "a has one seed" in pairwise_markdown(one_seed)
    all_one = pairwise({"a": np.zeros((1, 50)), "b": np.ones((1, 50))}, "mrr")
    assert "the test-set noise only" in pairwise_markdown(all_one)
    assert "spread of each model" not in pairwise_markdown(all_one)
    alone = pairwise({"a": np.ones((2, 50)), "b": np.zeros((2, 50))}, "mrr")
    assert "a (1.0000) is separated from every other model" in best_group_text(alone)
    assert "(1 pair)" in pairwise_markdown(alone) and "over that one pair" in pairwise_markdown(
        alone)


def test_plot_pairwise_greys_what_is_not_separated():
    from matplotlib.figure import Figure

    from featint.report import plot_pairwise

    rng = np.random.default_rng(11)
    found = pairwise(family(rng, [0.5, 0.48, 0.0, -0.02], seed_sd=0.01, n=600), "mean_rank")
    ax = Figure().subplots()
    plot_pairwise(found, ax)
    image = ax.images[0].get_array()  # (k, k, 4) RGBA
    separated = found.matrix("separated").to_numpy()
    grey = np.all(np.isclose(image[..., :3], 0.9), axis=-1)
    off_diagonal = ~np.eye(len(found.order), dtype=bool)
    assert (grey[off_diagonal] == ~separated[off_diagonal]).all()
    assert len(ax.texts) == len(found.order) * (len(found.order) - 1)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{n} ({found.letters[n]})" for n in found.order]
    assert ax.get_xlabel() and ax.get_ylabel()


# -- where a difference comes from ---------------------------------------------------------------
def test_difference_by_bucket_adds_up_and_finds_where_the_difference_is():
    rng = np.random.default_rng(7)
    n = 6000
    # an example's rank is about the same for every seed: its difficulty, plus a little
    base = (rng.integers(1, 1000, n) + rng.integers(0, 3, (3, n))).astype(float)
    other = base.copy()
    tail = base.mean(0) > 500  # B is worse only on the examples ranked beyond 500
    other[:, tail] += 200.0 + rng.normal(0, 5, (3, int(tail.sum())))
    by = (base.mean(0) + other.mean(0)) / 2
    edges = (0, 10, 100, 500, np.inf)
    found = difference_by_bucket(other, base, by, edges)
    assert list(found.index) == ["(0, 10]", "(10, 100]", "(100, 500]", "(500, inf]", "all"]
    assert found["examples"].iloc[:-1].sum() == n
    whole = found.loc["all"]
    assert found["contribution"].iloc[:-1].sum() == pytest.approx(whole["difference"])
    assert whole["difference"] == pytest.approx((other - base).mean())
    first = paired_t(other, base)
    assert (whole["lo"], whole["hi"]) == pytest.approx((first.lo, first.hi))
    # the tail carries the whole difference, the other buckets none of it
    assert found.loc["(500, inf]", "contribution"] == pytest.approx(whole["difference"],
                                                                     rel=0.05)
    assert found.loc["(500, inf]", "contribution_lo"] > 0
    for bucket in ("(0, 10]", "(10, 100]"):
        assert found.loc[bucket, "difference"] == pytest.approx(0.0, abs=1e-9)
    inside = found.loc["(500, inf]"]
    assert inside["contribution_lo"] == pytest.approx(inside["share"] * inside["lo"])


def test_difference_by_bucket_refuses_bad_input():
    a = np.zeros((2, 10))
    with pytest.raises(ValueError, match="same examples"):
        difference_by_bucket(a, np.zeros((2, 9)), np.arange(10), (0, 5, 10))
    with pytest.raises(ValueError, match="increasing"):
        difference_by_bucket(a, a, np.arange(10), (5, 0))
    empty = difference_by_bucket(a, a + 1, np.arange(10), (-1, 0, 100, 200))
    assert empty.loc["(100, 200]", "examples"] == 0
    assert np.isnan(empty.loc["(100, 200]", "difference"])
    assert empty.loc["(100, 200]", "contribution"] == 0.0
    assert np.isnan(empty.loc["(-1, 0]", "lo"])  # one example: no interval
