# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["remove-cell"]
# Outside the featint repository (Colab, Binder): install featint first. Inside it, with
# the project's environment, featint is already importable and this cell does nothing.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("featint") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "featint @ git+https://github.com/featint/featint"], check=True)

# %% [markdown]
# # 01 · Factorization Machines
#
# A factorization machine (FM) {cite}`rendle2010fm` is a linear model plus every pairwise
# interaction between its features, with each interaction weight *factorized* into the dot
# product of two learned vectors. On sparse data, where most pairs of features are never seen
# together, that factorization is what lets a pair's weight be estimated at all: each vector
# is learned from every example its feature occurs in, and a pair's weight is then read off
# the two vectors.
#
# This chapter derives FM, computes its pairwise term three ways by hand and checks them
# against featint's, measures how the cost of each grows, shows on synthetic data what
# interactions buy, and then sets the comparison's FM beside matrix factorisation and the
# baselines on the next-movie task of [chapter 00](00_data.ipynb).

# %% tags=["hide-input"]
# %matplotlib inline
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from featint import build_task, load_movielens
from featint.baselines import RandomScores
from featint.cards import budget_rows, card
from featint.chapter import (
    evaluate_all,
    load_comparison,
    pairwise_of,
    paper_settings,
    plot_histories,
    plot_results,
    results_table,
    seed_spread,
    value_text,
    verdict,
    verdict_text,
)
from featint.config import current
from featint.evaluate import LABELS, bootstrap, metrics, per_example
from featint.features import Features
from featint.layers import FeaturesEmbedding, bi_interaction, fm_interaction
from featint.models import build_model, count_parameters
from featint.models.fm import FM
from featint.show import source
from featint.stats import pairwise
from featint.synthetic import synthetic_movielens
from featint.train import fit
from featint.training import trained

quick = current().quick
print("quick mode:", quick)

# %% [markdown]
# ## Why interactions matter
#
# The article this book started from {cite}`kumar2022sparse` motivates interactions with an
# advertising example: ads from Gucci are clicked far more often on Vogue than elsewhere,
# Nike's on ESPN. Here is a tiny table in that spirit (the numbers are **illustrative**, made
# up for this page): each publisher and each advertiser has the same overall click-through
# rate, so neither feature alone says anything; the *pair* says everything.

# %% tags=["hide-input"]
ads = pd.DataFrame({
    "publisher": ["ESPN", "ESPN", "Vogue", "Vogue"],
    "advertiser": ["Nike", "Gucci", "Nike", "Gucci"],
    "impressions": [10_000, 10_000, 10_000, 10_000],
    "clicks": [300, 50, 50, 300],
})
table = {"index": "publisher", "columns": "advertiser", "aggfunc": "sum",
         "margins": True}
clicks = ads.pivot_table("clicks", **table)
shown = ads.pivot_table("impressions", **table)
(clicks / shown).map("{:.2%}".format).rename_axis(index="CTR (illustrative)")

# %% [markdown]
# A linear model, $\hat y = w_0 + w_\text{publisher} + w_\text{advertiser}$ (in logit space),
# adds one weight per feature. Whatever weights it learns, the difference it predicts between
# Nike and Gucci is the same on both publishers; here the best it can do is 1.75% everywhere.
# To fit this table a model needs a term for the pair.
#
# ### One-hot, sparse data
#
# Models see each example as a vector $\mathbf x \in \mathbb R^n$ with one coordinate per
# feature value: one-hot for categorical variables. The four rows above become

# %% tags=["hide-input"]
pd.get_dummies(ads[["publisher", "advertiser"]], prefix_sep="=").astype(int)

# %% [markdown]
# On the next-movie task every user, movie, hour, … is a feature, and an example has a few
# dozen non-zeros out of thousands of features: we write $s = |\mathcal X|$ for the number of
# non-zero features of an example (its context's and the candidate movie's).
# featint never builds the dense $\mathbf x$: a batch is `Features(idx, val, field)`, the
# indices and values of the non-zeros ("slots"), padded with index 0 and value 0. Index 0 is
# reserved for that padding, so the feature space has one index more than there are features:
# $n$ features, $n + 1$ indices.

# %%
ml = load_movielens()
task = build_task(ml)
n = task.schema.num_features - 1  # index 0 is padding, not a feature
print(f"n = {n:,} features (indices 1..{n}; index 0 is padding)")

ctx = task.context(task.examples("test")[:4])
print(f"a batch of 4 contexts: idx and val {tuple(ctx.idx.shape)}, "
      f"non-zeros per row {(ctx.val != 0).sum(1).tolist()}, the rest padding or zero")

# s over an evenly spread sample of examples: context non-zeros + the target movie's
sample = np.linspace(0, len(task.target) - 1, 2000).round().astype(np.int64)
item_nonzero = (task.item_features().val != 0).sum(1).numpy()
s_sample = np.concatenate([
    (task.context(part).val != 0).sum(1).numpy() + item_nonzero[task.target[part]]
    for part in np.array_split(sample, 8)])
low, median, high = np.percentile(s_sample, [0, 50, 100])
bag = np.minimum(task.t[sample], task.window)  # the history bag: the last W movies
print(f"s (non-zero features of an example), over 2,000 examples: "
      f"min {low:.0f}, median {median:.0f}, max {high:.0f}; the history bag holds "
      f"at most W = {task.window} of them")
assert 10 <= low and high < 100 < n  # "a few dozen out of thousands"

# %% [markdown]
# ### Poly2: one weight per pair
#
# The direct fix is a degree-2 polynomial model, *Poly2*:
#
# $$\hat y(\mathbf x) = w_0 + \sum_{i=1}^n w_i x_i + \sum_{i=1}^n \sum_{j=i+1}^n w_{ij}\, x_i
# x_j .$$
#
# It fits the advertising table exactly, but it has $n(n-1)/2$ pair weights, each learned only
# from the examples where both features occur together, with nothing shared between pairs. A
# pair never seen in training keeps its initial weight. On the next-movie task that is the
# rule, not the exception: a user rates a movie once, so the pair (user, target movie) of a
# test example never occurs in training, and most (last movie, target movie) pairs do not
# either:

# %%
fit_ex, test_ex = task.examples("fit"), task.examples("test")
last = task.seq_items[task.seq_start[task.user] + task.t - 1]  # last movie before t


def seen_in_fit(a, b):
    """Share of test examples whose pair (a, b) also occurs in some fit example."""
    fit_pairs = set(zip(a[fit_ex].tolist(), b[fit_ex].tolist(), strict=True))
    test_pairs = zip(a[test_ex].tolist(), b[test_ex].tolist(), strict=True)
    return np.mean([pair in fit_pairs for pair in test_pairs])


user_seen = seen_in_fit(task.user, task.target)
last_seen = seen_in_fit(last, task.target)
print(f"Poly2 pair weights: {n * (n - 1) // 2:,}")
print(f"test examples whose (user, target) pair occurs in fit: {user_seen:.1%}")
print(f"test examples whose (last movie, target) pair occurs in fit: {last_seen:.1%}")
assert user_seen == 0 and last_seen < 0.5  # "never" and "most do not"

# %% [markdown]
# ## The factorization machine
#
# FM {cite}`rendle2010fm` keeps Poly2's form but factorizes the pair weights: every feature
# $i$ gets a vector $\mathbf v_i \in \mathbb R^k$ and $w_{ij} = \langle \mathbf v_i, \mathbf
# v_j \rangle$:
#
# $$\hat y(\mathbf x) = w_0 + \sum_{i=1}^n w_i x_i + \sum_{i=1}^n \sum_{j=i+1}^n \langle
# \mathbf v_i, \mathbf v_j \rangle\, x_i x_j, \qquad \langle \mathbf v_i, \mathbf v_j \rangle
# = \sum_{q=1}^k v_{i,q}\, v_{j,q}.$$
#
# That is $1 + n + nk$ parameters instead of $1 + n + n(n-1)/2$, and the weights of different
# pairs are tied: $\mathbf v_\text{user}$ is learned from every movie the user rated, $\mathbf
# v_\text{movie}$ from every user who rated it, so $\langle \mathbf v_\text{user}, \mathbf
# v_\text{movie} \rangle$ is defined for a pair never seen together. With only a user and a
# movie feature, FM is exactly (biased) matrix factorization, MF, the last rung of the
# baseline ladder of [the protocol](../book/protocol.md).
#
# ### The sum-square trick
#
# Written as it stands, the pairwise term costs $O(kn^2)$; over the non-zero features
# $\mathcal X$ alone, $O(ks^2)$. Rendle's rewriting brings it to $O(kn)$, in fact $O(ks)$. The
# double sum over $i < j$ is half the sum over all $i \ne j$, which is the sum over all
# $(i, j)$ minus the diagonal:
#
# $$
# \begin{aligned}
# \sum_{i=1}^n \sum_{j=i+1}^n \langle \mathbf v_i, \mathbf v_j \rangle x_i x_j
# &= \frac12 \left( \sum_{i=1}^n \sum_{j=1}^n \langle \mathbf v_i, \mathbf v_j \rangle x_i x_j
#    - \sum_{i=1}^n \langle \mathbf v_i, \mathbf v_i \rangle x_i^2 \right) \\
# &= \frac12 \left( \sum_{i=1}^n \sum_{j=1}^n \sum_{q=1}^k v_{i,q} x_i\, v_{j,q} x_j
#    - \sum_{i=1}^n \sum_{q=1}^k v_{i,q}^2 x_i^2 \right) \\
# &= \frac12 \sum_{q=1}^k \left( \Big(\sum_{i=1}^n v_{i,q} x_i\Big) \Big(\sum_{j=1}^n v_{j,q}
#    x_j\Big) - \sum_{i=1}^n v_{i,q}^2 x_i^2 \right) \\
# &= \frac12 \sum_{q=1}^k \left( \underbrace{\Big(\sum_{i=1}^n v_{i,q} x_i\Big)^2}_{\text{square
#    of sum}} - \underbrace{\sum_{i=1}^n v_{i,q}^2 x_i^2}_{\text{sum of squares}} \right).
# \end{aligned}
# $$
#
# Both sums inside run over the features once: $O(n)$ for each of the $k$ factors. Only
# non-zero $x_i$ contribute, so the sums need only run over $i \in \mathcal X$, the $s$ slots
# of the example, each holding an index $i$ and its value $x_i$; a padding slot has value 0
# and adds nothing to either sum.
#
# ### Three ways, checked
#
# The definition, one pair of slots at a time (float64 throughout, so the forms agree to
# rounding):

# %%
def pairwise_loops(v, idx, val):
    """sum_{i<j} <v_i, v_j> x_i x_j for each row, by the definition: pair by pair."""
    out = torch.zeros(idx.shape[0], dtype=v.dtype)
    for row in range(idx.shape[0]):
        for a in range(idx.shape[1]):
            for b in range(a + 1, idx.shape[1]):
                product = v[idx[row, a]] @ v[idx[row, b]]
                out[row] += product * val[row, a] * val[row, b]
    return out


# %% [markdown]
# The same $O(ks^2)$ computation without Python loops: the $s \times s$ Gram matrix of the
# vectors $x_i \mathbf v_i$ holds every $\langle \mathbf v_i, \mathbf v_j \rangle x_i x_j$;
# the pairs $i < j$ are its upper triangle.

# %%
def pairwise_gram(v, idx, val):
    """The same, vectorised, O(k s^2): the upper triangle of the Gram matrix, summed."""
    xv = v[idx] * val.unsqueeze(-1)           # x_i v_i:      (batch, slots, k)
    gram = xv @ xv.transpose(-1, -2)          # all products: (batch, slots, slots)
    return torch.triu(gram, diagonal=1).sum((-2, -1))


# %% [markdown]
# And the sum-square form, each line one piece of the last equation:

# %%
def pairwise_sum_square(v, idx, val):
    """The same, O(k s): 1/2 sum_q [(sum_i v_iq x_i)^2 - sum_i v_iq^2 x_i^2]."""
    xv = v[idx] * val.unsqueeze(-1)           # v_iq x_i:            (batch, slots, k)
    square_of_sum = xv.sum(-2).pow(2)         # (sum_i v_iq x_i)^2:  (batch, k)
    sum_of_squares = xv.pow(2).sum(-2)        # sum_i v_iq^2 x_i^2:  (batch, k)
    return 0.5 * (square_of_sum - sum_of_squares).sum(-1)


# %% [markdown]
# Random features, as featint lays them out: distinct indices per row, values one or real,
# and padding slots (index 0, value 0) at the end of the shorter rows. The padding row,
# $\mathbf v_0$, is filled with noise on purpose: the zero value alone must cancel it. All three
# agree with featint's `fm_interaction`, which takes the $x_i \mathbf v_i$ from
# `FeaturesEmbedding`:

# %%
gen = torch.Generator().manual_seed(0)
num_features, k, batch, slots = 50, 8, 6, 12
v = torch.randn(num_features, k, generator=gen, dtype=torch.float64)
idx = torch.stack([torch.randperm(num_features - 1, generator=gen)[:slots] + 1
                   for _ in range(batch)])
val = torch.where(torch.rand(batch, slots, generator=gen) < 0.5, 1.0,
                  torch.randn(batch, slots, generator=gen)).double()
for row, length in enumerate([12, 10, 7, 3, 1, 0]):  # pad the tail of each row
    idx[row, length:], val[row, length:] = 0, 0.0

embedding = FeaturesEmbedding(num_features, k).double()
with torch.no_grad():
    embedding.embedding.weight.copy_(v)
    field = torch.zeros(slots, dtype=torch.long)  # one field: FM does not look at it
    featint_fm = fm_interaction(embedding(Features(idx, val, field)))
forms = {"loops": pairwise_loops(v, idx, val), "Gram": pairwise_gram(v, idx, val),
         "sum-square": pairwise_sum_square(v, idx, val)}
for form in forms.values():
    assert torch.allclose(form, featint_fm, rtol=0, atol=1e-10)
assert forms["loops"][-2:].abs().max() < 1e-12  # one slot or none: no pair at all
pd.DataFrame({**forms, "featint": featint_fm})

# %% [markdown]
# featint's version is the sum-square form, kept as a $k$-vector before the last sum
# (`bi_interaction`, which NFM reuses in [chapter 06](06_nfm.ipynb)):

# %%
source(bi_interaction, fm_interaction)

# %% [markdown]
# ### How the cost grows
#
# Both vectorised forms in torch, with $k = 16$ and $s$ non-zero features per example: the Gram
# form does $O(ks^2)$ work and stores an $s \times s$ matrix per example, the sum-square form
# does $O(ks)$. Every timed call handles the same number of slots, spread over fewer and
# longer examples as $s$ grows (many examples of $s = 8$, one of the largest $s$), so the fixed
# cost of a call and the memory it touches stay alike from size to size. On a log-log plot a
# cost that grows as $s^p$ is a line of slope $p$; the dashed lines are least-squares fits from
# $s = 32$ on.

# %% tags=["hide-input"]
def seconds(fn, *args, repeats=3):
    """Best wall time of a few calls."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


k = 16
total = 2**12 if quick else 2**14         # slots per timed call
largest = {"Gram": 2**9 if quick else 2**10, "sum-square": total}
functions = {"Gram": pairwise_gram, "sum-square": pairwise_sum_square}
gen = torch.Generator().manual_seed(0)
timings = {}
for form, function in functions.items():
    for s in 2 ** np.arange(3, int(np.log2(largest[form])) + 1):
        rows = total // s                   # examples per call, s slots each
        v = torch.randn(total + 1, k, generator=gen, dtype=torch.float64)
        idx = (torch.randperm(total, generator=gen) + 1).reshape(rows, s)
        val = torch.rand(rows, s, generator=gen, dtype=torch.float64)
        timings[form, int(s)] = seconds(function, v, idx, val) / rows
timings = pd.Series(timings).unstack(0)  # rows: s, columns: the two forms

# the growth exponent p of time ~ s^p, fitted from s = 32 on
slopes = {}
fig, ax = plt.subplots(figsize=(6.4, 4.2))
for form, style, color in (("Gram", "o-", "C3"), ("sum-square", "s-", "C0")):
    measured = timings[form].dropna()
    fitted = measured[measured.index >= 32]
    log_s, log_t = np.log(fitted.index.to_numpy()), np.log(fitted.to_numpy())
    slopes[form], intercept = np.polyfit(log_s, log_t, 1)
    label = r"Gram, $O(ks^2)$" if form == "Gram" else r"sum-square, $O(ks)$"
    ax.loglog(measured.index, measured, style, color=color,
              label=f"{label}: fitted slope {slopes[form]:.2f}")
    ax.loglog(fitted.index, np.exp(intercept) * fitted.index.to_numpy() ** slopes[form],
              "--", color=color, lw=3, alpha=0.4)
ax.set(xlabel="non-zero features per example, $s$", ylabel="seconds per example",
       title="FM's pairwise term: Gram matrix vs sum-square")
ax.legend()
plt.show()

# the two forms agree at the largest size both were timed at
s = int(timings["Gram"].dropna().index.max())
v = torch.randn(s + 1, k, generator=gen, dtype=torch.float64)
idx = torch.arange(1, s + 1)[None]
val = torch.rand(1, s, generator=gen, dtype=torch.float64)
gram_value, fast_value = pairwise_gram(v, idx, val), pairwise_sum_square(v, idx, val)
assert torch.allclose(gram_value, fast_value, rtol=1e-9, atol=1e-9)
median_s = int(2 ** round(np.log2(np.median(s_sample))))
if not quick:
    assert slopes["Gram"] > 1.6 and slopes["sum-square"] < 1.4  # quadratic vs linear

# %% tags=["remove-input"]
ratio_large = timings.loc[s, "Gram"] / timings.loc[s, "sum-square"]
ratio_task = timings.loc[median_s, "Gram"] / timings.loc[median_s, "sum-square"]
display(Markdown(
    f"The fitted slopes are {slopes['Gram']:.2f} for the Gram form and "
    f"{slopes['sum-square']:.2f} for the sum-square form. At s = {s:,} the sum-square "
    f"form is {ratio_large:,.0f} times faster, and both give the same value (float64, "
    f"to {abs(gram_value - fast_value).item():.1e}). At s = {median_s}, about the "
    f"median example of the next-movie task, it is {ratio_task:.0f} times faster. "
    "The trick's larger gift is another one, shown next: its sums split into a context "
    "part and a movie part."))

# %% [markdown]
# ## FM in featint
#
# Here is the whole model, `featint/models/fm.py`: $w_0$, a `FeaturesLinear` for the $w_i$
# and a `FeaturesEmbedding` for the $\mathbf v_i$ (one table over the global feature space, so
# the context and the movie share it). The sum-square trick needs only two sums over the
# non-zeros, the sum $\sum_i x_i \mathbf v_i$ and the sum of squares
# $\sum_i (x_i \mathbf v_i) \odot (x_i \mathbf v_i)$ (`s` and `q` in the code):
# `FeaturesEmbedding.sums` returns both without ever building the `(batch, slots, k)` tensor
# of the $x_i \mathbf v_i$, and `bi_from_sums` is half the square of the first minus the
# second, element-wise. Everything that depends on the movie alone is computed once for each
# of the 1,682 movies, then the candidates' rows are looked up (`lookup`).

# %%
source(FM.__init__, FM.forward)

# %% [markdown]
# The forward pass never concatenates the context and the movie. Split the non-zeros of
# $\mathbf x$ into the context's, $C$, and the candidate movie's, $M$. The pairs inside $C$,
# the pairs inside $M$, and the pairs across:
#
# $$\hat y(\mathbf x_C, \mathbf x_M) = \underbrace{w_0 + \sum_{i \in C} w_i x_i +
# \sum_{\substack{i<j\\ i,j \in C}} \langle \mathbf v_i, \mathbf v_j\rangle x_i x_j}_{y_C
# \text{: context alone}} + \underbrace{\sum_{j \in M} w_j x_j + \sum_{\substack{i<j\\ i,j \in
# M}} \langle \mathbf v_i, \mathbf v_j\rangle x_i x_j}_{y_M \text{: movie alone}} + \sum_{i
# \in C} \sum_{j \in M} \langle \mathbf v_i, \mathbf v_j\rangle x_i x_j .$$
#
# The last double sum is bilinear, so it factors into one dot product:
# $\big\langle \mathbf v_C, \mathbf v_M \big\rangle$ with $\mathbf v_C = \sum_{i \in C} x_i
# \mathbf v_i$ and $\mathbf v_M = \sum_{j \in M} x_j \mathbf v_j$, the very sums the
# sum-square trick computes anyway (`s_c` and `s_m` in the code). For a batch of contexts and
# all 1,682 movies, stack the $\mathbf v_C$ of the contexts as the rows of $\mathbf V_C$ and
# the $\mathbf v_M$ of the movies as the rows of $\mathbf V_M$; the scores are
# $\mathbf y_C \mathbf 1^\top + \mathbf 1 \mathbf y_M^\top + \mathbf V_C \mathbf V_M^\top$:
# the context side is computed once per context, the movie side once per movie, and ranking
# everything is one matrix product (`cross_dot`).
#
# Two checks, in float64 with random weights large enough that every term matters: scoring
# all movies and picking the candidates gives the candidates' scores, and both equal the FM
# equation applied to the concatenated sparse vector $\mathbf x = (\mathbf x_C, \mathbf x_M)$.

# %%
check = build_model("fm", task, seed=0, embed_dim=16).double()
with torch.no_grad():
    for p in (check.w0, check.linear.weight.weight, check.embedding.embedding.weight):
        p.normal_(std=0.1)
ex = task.examples("test")[:64]
ctx = task.context(ex)
candidates = torch.from_numpy(np.column_stack(
    [task.target[ex], task.sample_negatives(ex, 9, np.random.default_rng(0))]))
with torch.no_grad():
    all_scores = check(ctx, torch.arange(task.num_items))        # (64, 1682)
    cand_scores = check(ctx, candidates)                           # (64, 10)
    # the plain FM equation on x = (context, movie), one candidate at a time
    movie = check.items(candidates)                        # (64, 10, item slots)
    repeat = (-1, candidates.shape[1], -1)                 # the context, per candidate
    joint = Features(torch.cat([ctx.idx[:, None].expand(*repeat), movie.idx], -1),
                     torch.cat([ctx.val[:, None].expand(*repeat), movie.val], -1),
                     torch.cat([ctx.field, movie.field]))
    plain = check.w0 + check.linear(joint) + fm_interaction(check.embedding(joint))
print(f"all-movie scores {tuple(all_scores.shape)}, "
      f"candidate scores {tuple(cand_scores.shape)}")
assert torch.allclose(all_scores.gather(1, candidates), cand_scores, rtol=0, atol=1e-10)
assert torch.allclose(cand_scores, plain, rtol=0, atol=1e-10)
print("max |difference|:", (cand_scores - plain).abs().max().item())

# %% [markdown]
# ## A planted interaction
#
# `featint.synthetic` makes a small MovieLens-shaped data set with one planted interaction:
# half the movies are Action, half Romance; each user picks their movies one after the other,
# and each Action film is $e^2 \approx 7.4$ times likelier to be picked by a man than each
# Romance film, the other way round for a woman. The user also rates what they pick: around 4
# stars for a film of their gender's genre, around 2.5 for the other. Age, occupation, zip
# code and the gaps between ratings are random.
#
# What carries the signal? No feature on its own can rank movies differently for different
# users: a context feature adds the same amount to every candidate, a movie feature the same
# amount for every user, and the two genres are about equally popular overall. The signal is
# in pairs of a context feature and the candidate's genre, and the planted pair (gender,
# genre) is not the only one. Anything in the context that reveals the user's taste carries it
# too: their user id, the history bag and the genre shares of what they rated (mostly their
# genre), the last movie, and the mean rating per genre (higher for their genre, because of
# how the ratings were drawn). Here is how well each context feature tells the genre of the
# next movie, by the simplest rule on it:

# %%
syn_ml = synthetic_movielens(seed=0)
syn = build_task(syn_ml)
print(syn.counts())
romance = syn_ml.items.loc[syn.item_ids, "Romance"].to_numpy().astype(bool)
ACTION, ROMANCE = syn_ml.genres.index("Action"), syn_ml.genres.index("Romance")
syn_test = syn.examples("test")
syn_ctx = syn.context(syn_test)


def category(name):
    """The value (0-based) of a one-hot context field for each example of syn_ctx."""
    f = syn.schema.field(name)
    inside = (syn_ctx.idx >= f.offset) & (syn_ctx.idx < f.offset + f.size)
    return torch.where(inside, syn_ctx.idx - f.offset, 0).sum(1).numpy()


def numeric(name, j):
    """The value of feature j of a numeric context field for each example of syn_ctx."""
    f = syn.schema.field(name)
    return ((syn_ctx.idx == f.offset + j) * syn_ctx.val).sum(1).numpy()


# the user's most frequent genre among their fit targets
fit_romance = pd.Series(romance[syn.target[syn.examples("fit")]])
user_romance = fit_romance.groupby(syn.user[syn.examples("fit")]).mean() > 0.5
rules = {  # context feature -> "the next movie is a Romance" by the simplest rule
    "gender: F": category("gender") == 1,
    "user: most of their fit targets were Romance":
        user_romance.loc[syn.user[syn_test]].to_numpy(),
    "genre_share: Romance above Action": (numeric("genre_share", ROMANCE)
                                          > numeric("genre_share", ACTION)),
    "genre_mean_rating: Romance above Action": (numeric("genre_mean_rating", ROMANCE)
                                                > numeric("genre_mean_rating", ACTION)),
    "last_movie: a Romance": romance[category("last_movie")],
    "last_rating: 4 or 5 stars": category("last_rating") >= 3,
}
is_romance = romance[syn.target[syn_test]]
majority = max(is_romance.mean(), 1 - is_romance.mean())
signal = pd.Series({rule: np.mean(guess == is_romance)
                    for rule, guess in rules.items()})
romance_share = romance[syn.seq_items].mean()
assert 0.4 < romance_share < 0.6  # "about equally popular"
print(f"Romance share of all synthetic ratings: {romance_share:.1%}; "
      f"of test targets: {is_romance.mean():.1%}")
signal.rename("test examples whose genre it gets right").to_frame().style.format(
    "{:.1%}")

# %% tags=["remove-input"]
leaky = [rule.split(":")[0] for rule in rules if signal[rule] > majority + 0.1]
display(Markdown(
    f"Always guessing the more common genre is right for {majority:.0%} of the test "
    f"examples. {len(leaky)} of these features reach at least ten points more, each on "
    f"its own: {', '.join(leaky)}. The last rating alone does not "
    f"({signal.iloc[-1]:.0%}): every user rates their own genre high, whichever it is, "
    "so it tells which genre only together with the last movie, a three-way pattern."))
# the prose above names these five; the data are fixed (seed 0), so this always holds
assert leaky == ["gender", "user", "genre_share", "genre_mean_rating", "last_movie"]

# %% [markdown]
# A linear model (`featint/models/linear.py`) gives every user the same ranking, so it can use
# none of these pairs; FM can use all of them. Both are trained with `fit` on the synthetic
# task with the settings of the next cell, this experiment's own (the synthetic task is small;
# the comparison's settings come later), and ranked beside random scores.

# %%
SYNTHETIC_FIT = {"epochs": 30, "batch_size": 256, "lr": 1e-2, "patience": 5, "seed": 0}
SYNTHETIC_K = 8  # FM's embedding size here
syn_models = {}
for name in ("linear", "fm"):
    hparams = {"embed_dim": SYNTHETIC_K} if name == "fm" else {}
    syn_models[name] = build_model(name, syn, seed=0, **hparams)
    fit(syn_models[name], syn, **SYNTHETIC_FIT, progress=False, verbose=False)
syn_results = evaluate_all(syn, {"random": RandomScores(seed=0), **syn_models},
                           with_baselines=False)
results_table(syn_results)

# %% tags=["remove-input"]
fit_defaults = {k: p.default for k, p in inspect.signature(fit).parameters.items()}
display(Markdown(
    f"FM with $k = {SYNTHETIC_K}$; both with Adam at learning rate "
    f"{SYNTHETIC_FIT['lr']:g}, batches of {SYNTHETIC_FIT['batch_size']}, "
    f"{fit_defaults['num_negatives']} sampled negatives per positive and binary "
    f"cross-entropy (`fit`'s defaults), at most {SYNTHETIC_FIT['epochs']} epochs with "
    f"early stopping after {SYNTHETIC_FIT['patience']} without a better validation MRR "
    f"(quick mode: {current().sizes.describe()})."))

# %% [markdown]
# ### Why the linear model is no better than random
#
# The linear model scores a movie by its own weights (its id, genres and year; the context's
# weights add the same amount to every movie of a context), so it gives every user the same
# ranking. On this task no single ranking can be right for everyone: men pick Action, women
# Romance. Two things are worth computing. Which genre did the model put first, and what did
# that do to each gender? And what does *random* score, not on one draw of random scores but
# in expectation? A uniformly random ranking of the $|R|$ movies a user has not rated puts the
# target at each rank with probability $1/|R|$: expected rank $(|R| + 1)/2$, expected hit
# rate $\min(10, |R|)/|R|$ and expected reciprocal rank $\frac{1}{|R|}\sum_{r=1}^{|R|} 1/r$,
# exactly, per test example.

# %%
syn_ex = syn_results["random"].examples
remaining = (~syn.seen_before(syn_ex)).numpy().sum(1)  # |R| of each test example
expected = {"mean_rank": (remaining + 1) / 2,
            "hr@10": np.minimum(10, remaining) / remaining,
            "mrr": np.array([(1 / np.arange(1, r + 1)).mean() for r in remaining])}
women = syn_ml.users.gender.loc[syn.user_ids[syn.user[syn_ex]]].to_numpy() == "F"
with torch.no_grad():  # the linear model's score of every movie, for any one context
    movie_score = syn_models["linear"](syn.context(syn_ex[:1]),
                                       torch.arange(syn.num_items))[0].numpy()
gap_romance = movie_score[romance].mean() - movie_score[~romance].mean()
first = "Romance" if gap_romance > 0 else "Action"
favoured = "women" if first == "Romance" else "men"
groups = {"women": women, "men": ~women, "all": np.ones_like(women)}
by_group, against_random = {}, {}
for group, mask in groups.items():
    for metric in ("hr@10", "mean_rank"):
        values = {name: per_example(syn_results[name].ranks[mask], metric)
                  for name in ("random", "linear", "fm")}
        values["random's expectation"] = expected[metric][mask]
        for name, v in values.items():
            by_group.setdefault(name, {})[LABELS[metric], group] = v.mean()
        test = pairwise({n: v[None] for n, v in values.items()}, metric)
        against_random[group, metric] = test  # one family per group and metric
by_group = pd.DataFrame.from_dict(by_group, orient="index")[
    [(LABELS[metric], group) for metric in ("hr@10", "mean_rank") for group in groups]]
print(f"the linear model scores {first} movies higher: mean score difference "
      f"{abs(gap_romance):.3f}")
by_group.style.format("{:.4f}").format("{:.1f}", subset=["mean rank"])

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
x, top = np.arange(len(groups)), 0.0
for i, (name, color) in enumerate((("linear", "C0"), ("fm", "C1"))):
    hr = np.array([metrics(syn_results[name].ranks[m])["hr@10"]
                   for m in groups.values()])
    lo, hi = np.array([bootstrap(syn_results[name].ranks[m], 1000)["hr@10"]
                       for m in groups.values()]).T
    ax.bar(x + (i - 0.5) * 0.36, hr, 0.36, yerr=[hr - lo, hi - hr], capsize=3,
           color=color, label={"linear": "linear", "fm": "FM"}[name])
    top = max(top, hi.max())
for j, mask in enumerate(groups.values()):
    ax.plot([j - 0.4, j + 0.4], [expected["hr@10"][mask].mean()] * 2, color="0.4",
            lw=2, label="random's expectation" if j == 0 else None)
ax.set_xticks(x, ["women's test examples", "men's test examples", "all test examples"])
ax.set_ylim(0, 1.3 * top)  # room for the legend above the bars
ax.set(ylabel="test HR@10 (95% interval)",
       title="One ranking for everyone: right for one gender, wrong for the other")
ax.legend(loc="upper left", fontsize=8)
plt.show()

# %% tags=["remove-input"]
other = "men" if favoured == "women" else "women"
said = {g: verdict_text(against_random[g, "hr@10"], "linear", "random's expectation")
        for g in groups}
draw = syn_results["random"].metrics["hr@10"]
cancel = verdict(against_random["all", "hr@10"], "linear",
                 "random's expectation") == "not separated from"
display(Markdown(
    f"The linear model ranks {first} movies higher (their mean score is "
    f"{abs(gap_romance):.3f} above the other genre's). For the {favoured}, whose genre "
    f"it put first, it is {said[favoured]}; for the {other} it is {said[other]}. Over "
    f"all test examples, {np.mean(groups[favoured]):.0%} of them the {favoured}'s, "
    + ("the gains and the losses cancel within the noise"
       if cancel else "the gains and the losses do not cancel")
    + f": it is {said['all']}. One draw of random scores is noisy too: this one's "
    f"HR@10 is {draw:.4f}, its expectation {expected['hr@10'].mean():.4f}. So on one "
    "run the linear model can land a little above or a little below the random "
    "*scores* of the table; what keeps it near random is that one ranking cannot serve "
    "two tastes. (Each statement is a paired test over the test examples of its group "
    "against the exact expectation.)"))
if not quick:
    assert verdict(against_random[favoured, "hr@10"], "linear",
                   "random's expectation") == "better than"
    assert verdict(against_random[other, "hr@10"], "linear",
                   "random's expectation") == "worse than"

# %% [markdown]
# What FM learned about the planted pair: the interaction weight $\langle \mathbf
# v_\text{gender}, \mathbf v_\text{genre} \rangle$ for the four combinations. The planted
# pattern (men × Action, women × Romance) shows as the diagonal; since the taste is also
# readable from the other fields, FM need not put all of it here.

# %%
fm_syn = syn_models["fm"]
weights = fm_syn.embedding.embedding.weight.detach()
gender, genre = syn.schema.field("gender"), syn.schema.field("genre")
genre_names = ["Action", "Romance"]
v_gender = weights[gender.offset + torch.tensor([0, 1])]  # M, F (gender value 1 = F)
v_genre = weights[genre.offset + torch.tensor([ACTION, ROMANCE])]
interaction = (v_gender @ v_genre.T).numpy()

fig, ax = plt.subplots(figsize=(4.2, 3.2))
lim = np.abs(interaction).max()
im = ax.imshow(interaction, cmap="RdBu_r", vmin=-lim, vmax=lim)
for (r, c), weight in np.ndenumerate(interaction):
    ax.text(c, r, f"{weight:+.2f}", ha="center", va="center",
            color="white" if abs(weight) > lim / 2 else "black")
ax.set(xticks=[0, 1], xticklabels=genre_names, yticks=[0, 1], yticklabels=["M", "F"],
       xlabel="genre of the candidate movie", ylabel="gender of the user",
       title="FM's learned pair weights")
fig.colorbar(im, ax=ax, shrink=0.8,
             label=r"$\langle \mathbf{v}_{gender}, \mathbf{v}_{genre} \rangle$")
plt.show()

# %%
syn_tests = {metric: pairwise_of(syn_results, metric=metric)
             for metric in ("hr@10", "mean_rank")}
for metric, result in syn_tests.items():
    print(f"{LABELS[metric]}: FM is {verdict_text(result, 'fm', 'linear')}")
for ev in syn_results.values():
    assert all(np.isfinite(list(ev.metrics.values())))
planted = interaction[0, 0] + interaction[1, 1] - interaction[0, 1] - interaction[1, 0]
if not quick:
    for result in syn_tests.values():  # FM better than the linear model, by the test
        assert verdict(result, "fm", "linear") == "better than"
    # the planted pattern: (M,Action) - (M,Romance) - (F,Action) + (F,Romance) > 0
    assert planted > 0

# %% [markdown]
# On the synthetic task FM is better than the linear model on both HR@10 and mean rank by
# the paired test over the test examples (printed above), and the learned gender × genre
# weights show the planted diagonal (both asserted in the cell above on a full run).
#
# ## FM on the next-movie task
#
# Now the real task. FM is trained the one way every model of the comparison
# ([chapter 08](08_comparison.ipynb)) is trained, under the same budget, with seed 0, and kept
# on disk, so this chapter's FM is the comparison's seed-0 FM, trained once per machine. Two
# rungs below it are trained the same way: MF, the same model given only the user and movie
# fields, and the linear model, FM without its pairs. The budget every model shares, then
# each model's card: every setting it trains with and where the setting comes from (the
# tuning record that ships with featint), what its trials varied, and its paper's setting.

# %% tags=["remove-input"]
display(Markdown("| the budget (every model) | |\n|---|---|\n" + "\n".join(
    f"| {what} | {value} |" for what, value in budget_rows())
    + (f"\n\nQuick mode: {current().sizes.describe()}." if quick else "")))
for name in ("mf", "linear", "fm"):
    display(Markdown(card(name).markdown()))

# %%
mf, mf_history = trained("mf", task, progress=False)
linear, linear_history = trained("linear", task, progress=False)
fm, fm_history = trained("fm", task, progress=False)
histories = {"mf": mf_history, "linear": linear_history, "fm": fm_history}
for (name, history), model in zip(histories.items(), (mf, linear, fm), strict=True):
    print(f"{name}: {count_parameters(model):,} parameters, "
          f"best epoch {history.best_epoch} of {len(history.epochs)}")

# %%
plot_histories(histories)
plt.show()

# %% [markdown]
# ### Test results
#
# The test set, seen for the first time, ranked against all movies as in
# [chapter 00](00_data.ipynb), beside the baseline ladder of [the protocol](../book/protocol.md)
# (random, most popular, Markov, ItemKNN), MF and the linear model:

# %%
results = evaluate_all(task, {"mf": mf, "linear": linear, "fm": fm})
results_table(results)

# %%
plot_results(results)
plt.show()

# %% [markdown]
# These are one training run per model, seed 0, and the bars are intervals over test
# examples only. Whether FM is better than another model is a question about every seed:
# the comparison trains each model with three seeds, ranks the same test examples, and tests
# every pair of models example by example, with training noise counted in (chapter 08
# explains the test). The sentences below read that test.

# %%
comparison, _ = load_comparison()  # seed_spread says where it comes from
seed_spread(results, ["mf", "linear", "fm"])

# %% tags=["remove-input"]
NAMES = {"popular": "most popular", "markov": "Markov", "itemknn": "ItemKNN",
         "mf": "MF", "linear": "the linear model"}


def standing(metric):
    """FM against each rung, as the comparison's pairwise test says it."""
    said = (verdict_text(comparison, "fm", b, metric) for b in NAMES)
    return "; ".join(text.replace(f" {b} (", f" {NAMES[b]} (")
                     for b, text in zip(NAMES, said, strict=True))


fm_seed0 = results["fm"]
display(Markdown(
    f"Here, with seed 0, FM's test HR@10 is {value_text(fm_seed0, 'hr@10')} and its "
    f"mean rank {value_text(fm_seed0, 'mean_rank')}. By the comparison's pairwise "
    f"test (every seed), FM is, by HR@10, {standing('hr@10')}; by mean rank, "
    f"{standing('mean_rank')}."
    + (" (Quick mode: this chapter's own numbers are a smoke test and mean nothing; "
       "the comparison's are its record.)" if quick else "")))
assert np.isfinite(results["fm"].metrics["mean_rank"])
assert 1 <= results["fm"].metrics["mean_rank"] <= task.num_items

# %% [markdown]
# ## What FM cannot do
#
# FM gives each feature **one** vector and uses it against every other feature. The vector of
# a movie in the history bag has to explain at once how it goes with the candidate movie, with
# the hour of the day and with the user's occupation, although these are different kinds of
# relation that might want different latent spaces. Every pair also counts with the same
# weight, informative or not, and the model stays a sum of pairwise products, with no way to
# express a three-way pattern (like last movie × last rating × candidate genre above) or a
# non-linear one. The next chapter's [field-aware FM](02_ffm.ipynb) tackles the first limit:
# each feature keeps a separate vector for each field it meets.
#
# ## Paper vs. here
#
# Rendle's paper {cite}`rendle2010fm` introduces FM as a general predictor, shows that it
# subsumes matrix factorization and other factorization models, and tests it on rating
# prediction with Netflix data against support vector machines (SVMs). Its point: the SVM with
# a polynomial kernel, which has a free weight per pair like Poly2, does no better than the
# linear SVM, because the pairs it would need are hardly ever observed; FM estimates them.

# %% tags=["remove-input"]
paper_side, here_side = paper_settings(card("fm"))
display(Markdown(f"""
| | the paper | here |
| --- | --- | --- |
| data | Netflix movie ratings | MovieLens 100K: {task.counts()['examples']:,} \
next-movie examples |
| task | predict a user's rating of a movie (regression) | rank the next movie among \
all {task.num_items:,} |
| metric | RMSE | full filtered ranking: HR@10, mean rank, MRR, NDCG@10 |
| headline | FM's error clearly below both SVMs' | FM (seed 0): HR@10 \
{value_text(results['fm'], 'hr@10')}; by the comparison's test FM is \
{verdict_text(comparison, 'fm', 'mf').replace(' mf (', ' MF (')} |
| settings | {paper_side} | {here_side}; every model shares the budget above |
| against | SVMs with a linear and a polynomial kernel | the baseline ladder, MF and \
the linear model |
"""))

# %% [markdown]
# Why the numbers cannot be compared: the task differs (a rating given against the next movie
# chosen), and so do the metric (an error on observed ratings against a rank among every
# unwatched movie), the data (Netflix ratings, not MovieLens 100K), the training signal (here,
# implicit feedback with sampled negatives, so the loss depends on which negatives are drawn)
# and the tuning (here one shared budget and the same number of tuning trials for every model,
# each scored on validation). The paper's qualitative point can be checked, and is above: a
# factorized pair weight is estimated where a free one cannot be (the Poly2 counts, the
# synthetic task).

# %% [markdown]
# ## Summary
#
# - FM is a linear model plus every pairwise interaction, each pair weight factorized as
#   $\langle \mathbf v_i, \mathbf v_j \rangle$: $nk$ parameters instead of $n^2/2$, and a weight
#   for pairs never seen together.
# - The sum-square trick computes all pairs in $O(ks)$ instead of $O(ks^2)$ (measured above).
# - Split into context and movie, FM's cross terms are one dot product, so ranking every movie
#   for a batch of contexts is one matrix product.
# - Interactions are what let a model rank movies differently for different users: a linear
#   model cannot, so on the synthetic task it ranks like random, right for one taste and
#   wrong for the other; FM recovers the planted pair, which the context also reveals in
#   several ways.
# - On the next-movie task, FM's seed-0 numbers sit beside MF, the linear model and the
#   baselines; which of them FM is separated from is the comparison's paired test, over three
#   seeds ([chapter 08](08_comparison.ipynb)).
#
# ## Exercises
#
# **1. By hand.** Take three features with $\mathbf x = (x_1, x_2, x_3) = (1, 1, 0.5)$, $k = 2$,
# $w_0 = 0.1$, $(w_1, w_2, w_3) = (0.2, -0.3, 0.4)$ and $\mathbf v_1 = (1, 2)$,
# $\mathbf v_2 = (0, 1)$, $\mathbf v_3 = (2, -1)$. Compute $\hat y(\mathbf x)$ once pair by
# pair and once with the sum-square form, and the predicted probability $\sigma(\hat y)$.
#
# :::{admonition} Solution
# :class: dropdown
#
# Linear part: $0.1 + 0.2 - 0.3 + 0.4 \cdot 0.5 = 0.2$.
#
# Pair by pair: $\langle \mathbf v_1, \mathbf v_2 \rangle x_1 x_2 = 2 \cdot 1 = 2$,
# $\langle \mathbf v_1, \mathbf v_3 \rangle x_1 x_3 = 0 \cdot 0.5 = 0$,
# $\langle \mathbf v_2, \mathbf v_3 \rangle x_2 x_3 = -1 \cdot 0.5 = -0.5$; together $1.5$.
#
# Sum-square: for $q = 1$, $\sum_i v_{i,1} x_i = 1 + 0 + 1 = 2$ and
# $\sum_i v_{i,1}^2 x_i^2 = 1 + 0 + 1 = 2$, giving $4 - 2 = 2$; for $q = 2$,
# $\sum_i v_{i,2} x_i = 2 + 1 - 0.5 = 2.5$ and $\sum_i v_{i,2}^2 x_i^2 = 4 + 1 + 0.25 = 5.25$,
# giving $6.25 - 5.25 = 1$. Half of $2 + 1$ is $1.5$ again.
#
# So $\hat y = 0.2 + 1.5 = 1.7$ and $\sigma(1.7) \approx 0.846$.
# :::

# %% tags=["hide-input"]
# the numbers of the solution, checked
x_hand = torch.tensor([[1.0, 1.0, 0.5]], dtype=torch.float64)
w_hand = torch.tensor([0.2, -0.3, 0.4], dtype=torch.float64)
v_hand = torch.tensor([[0, 0], [1, 2], [0, 1], [2, -1]],  # row 0 is the padding row
                      dtype=torch.float64)
pairs_by_hand = pairwise_loops(v_hand, torch.tensor([[1, 2, 3]]), x_hand)
y_hand = 0.1 + (w_hand * x_hand).sum() + pairs_by_hand
assert torch.allclose(pairs_by_hand, torch.tensor([1.5], dtype=torch.float64))
assert abs(y_hand.item() - 1.7) < 1e-12
assert abs(torch.sigmoid(y_hand).item() - 0.846) < 5e-4
print(f"y = {y_hand.item():.3f}, sigma(y) = {torch.sigmoid(y_hand).item():.4f}")

# %% [markdown]
# **2. Code: the gradient in $O(k)$.** Training needs $\partial \hat y / \partial v_{i,q}$
# for every non-zero feature. Show from the sum-square form that
# $\partial \hat y / \partial v_{i,q} = x_i \sum_{j} v_{j,q} x_j - v_{i,q} x_i^2$, so that
# once the $k$ sums $\sum_j v_{j,q} x_j$ are known each gradient costs $O(1)$. Code it for a
# batch of slots and check it against autograd in float64 (padding slots must get zero).

# %% tags=["hide-input"]
def fm_grad_v(v, idx, val):
    """d(pairwise term)/d v_{i,q} for each slot: x_i sum_j v_jq x_j - v_iq x_i^2."""
    xv = v[idx] * val.unsqueeze(-1)                       # (batch, slots, k)
    sums = xv.sum(-2, keepdim=True)                # sum_j v_jq x_j: (batch, 1, k)
    return val.unsqueeze(-1) * sums - v[idx] * val.unsqueeze(-1) ** 2


gen = torch.Generator().manual_seed(1)
v = torch.randn(30, 4, generator=gen, dtype=torch.float64, requires_grad=True)
idx = torch.stack([torch.randperm(29, generator=gen)[:6] + 1 for _ in range(3)])
val = torch.randn(3, 6, generator=gen, dtype=torch.float64)
idx[2, 4:], val[2, 4:] = 0, 0.0                            # padding in the last row
pairwise_sum_square(v, idx, val).sum().backward()          # autograd, summed over rows
by_formula = torch.zeros_like(v).index_put_((idx,), fm_grad_v(v.detach(), idx, val),
                                            accumulate=True)
assert torch.allclose(v.grad, by_formula, rtol=0, atol=1e-12)
print("formula = autograd, max |difference|:", (v.grad - by_formula).abs().max().item())

# %% [markdown]
# :::{admonition} Solution (the derivation)
# :class: dropdown
#
# In the sum-square form only the factor $q$ contains $v_{i,q}$, once in the square of the sum
# and once in the sum of squares:
#
# $$\frac{\partial}{\partial v_{i,q}} \frac12 \Big[ \Big(\sum_j v_{j,q} x_j\Big)^2 - \sum_j
# v_{j,q}^2 x_j^2 \Big] = \Big(\sum_j v_{j,q} x_j\Big) x_i - v_{i,q} x_i^2 .$$
#
# The sum is the same for every $i$ and is computed once per example in $O(ks)$; then each of
# the $ks$ partial derivatives costs $O(1)$. A padding slot has $x_i = 0$, so both terms vanish.
# :::

# %% [markdown]
# **3. Think.** FM ranks all 1,682 movies for a batch of contexts with one matrix product.
# Which property of the model makes that possible? Would it survive (a) a sigmoid or any
# other function applied to the whole score, (b) a non-linearity applied to each pair's
# product before the sum, (c) an MLP on the concatenated embeddings of context and movie?
#
# :::{admonition} Solution
# :class: dropdown
#
# Bilinearity: every term of $\hat y$ involves the context alone, the movie alone, or a
# product of one context feature and one movie feature, and the sum of those cross products is
# $\langle \mathbf v_C, \mathbf v_M \rangle$. So the score is a function of three things, $y_C$
# (one number per context), $y_M$ (one per movie) and $\mathbf V_C \mathbf V_M^\top$.
#
# (a) survives: a function of the whole score is applied element-wise after the matrix
# product, and a monotone one (the sigmoid) does not even change the ranking. (b) does not: a
# non-linearity on each product $\langle \mathbf v_i, \mathbf v_j \rangle x_i x_j$ keeps the
# cross pairs from adding up to one dot product, so every (context, movie) pair needs its own
# sum over $|C| \cdot |M|$ terms. (c) survives only in part: the first layer is linear, so it
# splits into a context part and a movie part (featint's deep models do that), but every later
# layer must run once per (context, movie) pair. FFM, the next chapter, keeps bilinearity: its
# cross terms are still one dot product, of vectors $m_C m_M$ times wider. The cell below puts
# (a) and (b) in numbers with the chapter's trained FM: the cross terms of 64 contexts and 200
# movies form a $64 \times 200$ matrix; FM's is $\mathbf V_C \mathbf V_M^\top$, of rank at
# most $k$, while a tanh on each pair's product gives a matrix of full rank, which no product
# of two $k$-column matrices can equal.
# :::

# %% tags=["hide-input"]
contexts = task.context(task.examples("test")[:64])
movies = task.item_features()
pick = torch.arange(200)
with torch.no_grad():
    table = fm.embedding.embedding.weight.double()                  # v_i, row per index
    xv_c = table[contexts.idx] * contexts.val.double().unsqueeze(-1)  # (64, slots, k)
    xv_m = table[movies.idx[pick]] * movies.val[pick].double().unsqueeze(-1)
    pair = torch.einsum("aik,bjk->abij", xv_c, xv_m)  # every cross pair's product
    cross = {"FM: the sum of the pairs": pair.sum((-2, -1)),
             "tanh of each pair, then the sum": torch.tanh(pair).sum((-2, -1))}
    rank = {name: int(torch.linalg.matrix_rank(m)) for name, m in cross.items()}
    scores = fm(contexts, torch.arange(task.num_items)).double()
k_fm = table.shape[1]
print(f"rank of the 64 x 200 cross-term matrix (k = {k_fm}):", rank)
assert rank["FM: the sum of the pairs"] <= k_fm
assert rank["tanh of each pair, then the sum"] == 64  # full rank: (b) cannot factor
order = torch.argsort(scores, dim=1, stable=True)
squashed_order = torch.argsort(torch.sigmoid(scores), dim=1, stable=True)
assert torch.equal(order, squashed_order)  # (a)
print("(a) the sigmoid of the score ranks every movie as the score does")

# %% [markdown]
# **4. Code: a ranking loss.** featint trains with binary cross-entropy on the target and
# sampled negatives. Bayesian personalised ranking (BPR) {cite}`rendle2009bpr` instead
# maximises $\log \sigma(\hat y_\text{target} - \hat y_\text{negative})$: only the
# *difference* of two scores matters, as it does for a ranking. Write a small training loop on
# the synthetic task that can use either loss (same model, data, negatives, optimiser and
# number of epochs), train FM with each, and compare them with the paired test over the test
# examples. Which terms of FM can BPR not learn at all, and why does that not hurt the
# ranking?

# %% tags=["hide-input"]
def train_synthetic(loss, epochs, seed=0, num_negatives=4, batch_size=256):
    """FM trained on the synthetic task with loss 'bce' or 'bpr' for a fixed number of
    epochs (the embedding size and learning rate of the synthetic experiment above)."""
    model = build_model("fm", syn, seed=seed, embed_dim=SYNTHETIC_K)
    optimizer = torch.optim.Adam(model.parameters(), lr=SYNTHETIC_FIT["lr"])
    rng = np.random.default_rng(seed)
    fit_examples = syn.examples("fit")
    for _ in range(epochs):
        order = rng.permutation(fit_examples)
        for start in range(0, len(order), batch_size):
            ex = order[start:start + batch_size]
            negatives = syn.sample_negatives(ex, num_negatives, rng)
            candidates = torch.from_numpy(np.column_stack([syn.target[ex], negatives]))
            logits = model(syn.context(ex), candidates)  # (batch, 1 + num_negatives)
            if loss == "bpr":  # target against each negative
                batch_loss = -F.logsigmoid(logits[:, :1] - logits[:, 1:]).mean()
            else:
                labels = torch.zeros_like(logits)
                labels[:, 0] = 1.0
                batch_loss = F.binary_cross_entropy_with_logits(logits, labels)
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()
    return model.eval()


epochs = 2 if quick else 15
losses = {f"fm, {loss}": train_synthetic(loss, epochs) for loss in ("bce", "bpr")}
print(f"{epochs} epochs each, no early stopping")
loss_results = evaluate_all(syn, losses, with_baselines=False)
display(results_table(loss_results))
for metric in ("hr@10", "mean_rank"):
    losses = pairwise_of(loss_results, metric=metric)
    print(f"{LABELS[metric]}: BPR is {verdict_text(losses, 'fm, bpr', 'fm, bce')}")

# %% [markdown]
# :::{admonition} Solution (the question)
# :class: dropdown
#
# BPR sees only differences $\hat y_\text{target} - \hat y_\text{negative}$ of two movies for
# the same context, so every term of the context alone, $y_C$, cancels. $w_0$ and the
# context's linear weights get no gradient at all and stay where they were initialised; the
# vectors of context features still learn, but only through the cross terms. These terms add
# the same amount to every movie of a context, so they never change a ranking; BCE has to learn
# them only to get the probabilities right.
# Whether BPR ranks better or worse here is for the paired test above to say; it covers the
# test examples, not the training seed, so with one seed and a fixed number of epochs, do not
# read much into a small difference.
# :::
