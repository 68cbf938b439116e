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

# %% [markdown]
# # 01 · Factorization Machines
#
# A factorization machine (FM) {cite}`rendle2010fm` is a linear model plus every pairwise
# interaction between its features, with each interaction weight *factorized* into the dot
# product of two learned vectors. This chapter derives it, writes its key computation by hand
# and checks it against featint's, shows on synthetic data what interactions buy, and trains
# it on the next-movie task of [chapter 00](00_data.ipynb).

# %%
# %matplotlib inline
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Code, display

from featint import build_task, load_movielens
from featint.baselines import Popularity, RandomScores
from featint.evaluate import evaluate, leaderboard, quick
from featint.layers import FeaturesEmbedding, fm_interaction
from featint.models import build_model, count_parameters
from featint.models.fm import FM
from featint.synthetic import synthetic_movielens
from featint.task import Features
from featint.train import fit

print("quick mode:", quick())

# %% [markdown]
# ## Why interactions matter
#
# The seed article motivates interactions with an advertising example: ads from Gucci are
# clicked far more often on Vogue than elsewhere, Nike's on ESPN. Here is a tiny table in that
# spirit (the numbers are **illustrative**, made up for this page): each publisher and each
# advertiser has the same overall click-through rate, so neither feature alone says anything;
# the *pair* says everything.

# %%
ads = pd.DataFrame({
    "publisher": ["ESPN", "ESPN", "Vogue", "Vogue"],
    "advertiser": ["Nike", "Gucci", "Nike", "Gucci"],
    "impressions": [10_000, 10_000, 10_000, 10_000],
    "clicks": [300, 50, 50, 300],
})
clicks = ads.pivot_table("clicks", "publisher", "advertiser", aggfunc="sum", margins=True)
shown = ads.pivot_table("impressions", "publisher", "advertiser", aggfunc="sum", margins=True)
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

# %%
pd.get_dummies(ads[["publisher", "advertiser"]], prefix_sep="=").astype(int)

# %% [markdown]
# On the next-movie task $n$ is over six thousand (every user, movie, hour, ... is a feature) and an
# example has a few dozen to a few hundred non-zeros, mostly its history bag. featint never
# builds the dense $\mathbf x$: a batch is `Features(idx, val, field)`, the indices and values
# of the non-zeros ("slots"), padded with index 0 and value 0.

# %%
ml = load_movielens()
task = build_task(ml)
ctx = task.context(task.examples("test")[:4])
print(f"n = {task.schema.num_features:,} features; a batch of 4 contexts: idx/val "
      f"{tuple(ctx.idx.shape)}, non-zeros per row {(ctx.val != 0).sum(1).tolist()}")
print("history bag size (movies before t) over all examples: min {:.0f}, median {:.0f}, "
      "max {:.0f}".format(*np.percentile(task.t, [0, 50, 100])))

# %% [markdown]
# ### Poly2: one weight per pair
#
# The direct fix is a degree-2 polynomial model, *Poly2*:
#
# $$\hat y(\mathbf x) = w_0 + \sum_{i=1}^n w_i x_i + \sum_{i=1}^n \sum_{j=i+1}^n w_{ij}\, x_i x_j .$$
#
# It fits the advertising table exactly, but it has $n(n-1)/2$ pair weights, each learned only
# from the examples where both features occur together, with nothing shared between pairs. A
# pair never seen in training keeps its initial weight. On the next-movie task that is the
# rule, not the exception: a user rates a movie once, so the pair (user, target movie) of a
# test example never occurs in training, and most (last movie, target movie) pairs do not either.

# %%
fit_ex, test_ex = task.examples("fit"), task.examples("test")
last = task.seq_items[task.seq_start[task.user] + task.t - 1]  # last movie before t


def seen_in_fit(a, b):
    """Share of test examples whose pair (a, b) also occurs in some fit example."""
    pairs = set(zip(a[fit_ex].tolist(), b[fit_ex].tolist(), strict=True))
    return np.mean([p in pairs for p in zip(a[test_ex].tolist(), b[test_ex].tolist(),
                                            strict=True)])


n = task.schema.num_features - 1
print(f"Poly2 pair weights: {n * (n - 1) // 2:,}")
print(f"test examples whose (user, target) pair occurs in fit: "
      f"{seen_in_fit(task.user, task.target):.1%}")
print(f"test examples whose (last movie, target) pair occurs in fit: "
      f"{seen_in_fit(last, task.target):.1%}")

# %% [markdown]
# ## The factorization machine
#
# FM {cite}`rendle2010fm` keeps Poly2's form but factorizes the pair weights: every feature
# $i$ gets a vector $\mathbf v_i \in \mathbb R^k$ and $w_{ij} = \langle \mathbf v_i, \mathbf
# v_j \rangle$:
#
# $$\hat y(\mathbf x) = w_0 + \sum_{i=1}^n w_i x_i + \sum_{i=1}^n \sum_{j=i+1}^n \langle
# \mathbf v_i, \mathbf v_j \rangle\, x_i x_j, \qquad \langle \mathbf v_i, \mathbf v_j \rangle
# = \sum_{f=1}^k v_{i,f}\, v_{j,f}.$$
#
# That is $1 + n + nk$ parameters instead of $1 + n + n(n-1)/2$, and the weights of different
# pairs are tied: $\mathbf v_\text{user}$ is learned from every movie the user rated, $\mathbf
# v_\text{movie}$ from every user who rated it, so $\langle \mathbf v_\text{user}, \mathbf
# v_\text{movie} \rangle$ is defined for a pair never seen together. With only a user and a
# movie feature, FM is exactly (biased) matrix factorization.
#
# ### The sum-square trick
#
# Written as it stands, the pairwise term costs $O(kn^2)$. Rendle's rewriting brings it to
# $O(kn)$, in fact $O(k\,m)$ for $m$ non-zeros. The double sum over $i < j$ is half the sum over
# all $i \ne j$, which is the sum over all $(i, j)$ minus the diagonal:
#
# $$
# \begin{aligned}
# \sum_{i=1}^n \sum_{j=i+1}^n \langle \mathbf v_i, \mathbf v_j \rangle x_i x_j
# &= \frac12 \left( \sum_{i=1}^n \sum_{j=1}^n \langle \mathbf v_i, \mathbf v_j \rangle x_i x_j
#    - \sum_{i=1}^n \langle \mathbf v_i, \mathbf v_i \rangle x_i^2 \right) \\
# &= \frac12 \left( \sum_{i=1}^n \sum_{j=1}^n \sum_{f=1}^k v_{i,f} x_i\, v_{j,f} x_j
#    - \sum_{i=1}^n \sum_{f=1}^k v_{i,f}^2 x_i^2 \right) \\
# &= \frac12 \sum_{f=1}^k \left( \Big(\sum_{i=1}^n v_{i,f} x_i\Big) \Big(\sum_{j=1}^n v_{j,f}
#    x_j\Big) - \sum_{i=1}^n v_{i,f}^2 x_i^2 \right) \\
# &= \frac12 \sum_{f=1}^k \left( \underbrace{\Big(\sum_{i=1}^n v_{i,f} x_i\Big)^2}_{\text{square
#    of sum}} - \underbrace{\sum_{i=1}^n v_{i,f}^2 x_i^2}_{\text{sum of squares}} \right).
# \end{aligned}
# $$
#
# Both sums inside are over the features once: $O(n)$ for each of the $k$ factors. Only
# non-zero $x_i$ contribute, so the sums run over an example's slots $s$ with index $i_s$ and
# value $x_s$; a padding slot has $x_s = 0$ and adds nothing to either.
#
# ### Both ways, by hand
#
# The definition, one pair at a time (float64, so the two agree to rounding):

# %%
def pairwise_naive(v, idx, val):
    """sum_{s<t} <v_{i_s}, v_{i_t}> x_s x_t for each row: two loops over the slots, O(k m^2)."""
    out = torch.zeros(idx.shape[0], dtype=v.dtype)
    for b in range(idx.shape[0]):
        for s in range(idx.shape[1]):
            for t in range(s + 1, idx.shape[1]):
                out[b] += (v[idx[b, s]] @ v[idx[b, t]]) * val[b, s] * val[b, t]
    return out


# %% [markdown]
# and the sum-square form, each line one piece of the last equation:

# %%
def pairwise_sum_square(v, idx, val):
    """The same, O(k m): 1/2 sum_f [(sum_s v_{i_s,f} x_s)^2 - sum_s v_{i_s,f}^2 x_s^2]."""
    xv = v[idx] * val.unsqueeze(-1)           # v_{i_s,f} x_s:            (batch, slots, k)
    square_of_sum = xv.sum(1).pow(2)          # (sum_s v_{i_s,f} x_s)^2:  (batch, k)
    sum_of_squares = xv.pow(2).sum(1)         # sum_s v_{i_s,f}^2 x_s^2:  (batch, k)
    return 0.5 * (square_of_sum - sum_of_squares).sum(1)


# %% [markdown]
# Random features, as featint lays them out: distinct indices per row, values one or real,
# and padding slots (index 0, value 0) at the end of the shorter rows. The padding row of $V$
# is filled with noise on purpose: the zero value alone must cancel it. All three agree with
# featint's `fm_interaction`, which takes the $x_s \mathbf v_{i_s}$ from `FeaturesEmbedding`:

# %%
gen = torch.Generator().manual_seed(0)
num_features, k, batch, slots = 50, 8, 6, 12
v = torch.randn(num_features, k, generator=gen, dtype=torch.float64)
idx = torch.stack([torch.randperm(num_features - 1, generator=gen)[:slots] + 1
                   for _ in range(batch)])
val = torch.where(torch.rand(batch, slots, generator=gen) < 0.5, 1.0,
                  torch.randn(batch, slots, generator=gen)).double()
for b, length in enumerate([12, 10, 7, 3, 1, 0]):  # pad the tail of each row
    idx[b, length:], val[b, length:] = 0, 0.0

embedding = FeaturesEmbedding(num_features, k).double()
with torch.no_grad():
    embedding.embedding.weight.copy_(v)
    featint_fm = fm_interaction(embedding(Features(idx, val, torch.zeros(slots, dtype=torch.long))))
naive, sum_square = pairwise_naive(v, idx, val), pairwise_sum_square(v, idx, val)
assert torch.allclose(naive, featint_fm, rtol=0, atol=1e-10)
assert torch.allclose(sum_square, featint_fm, rtol=0, atol=1e-10)
assert naive[-2:].abs().max() < 1e-12  # one slot or none: no pair at all
pd.DataFrame({"naive": naive, "sum-square": sum_square, "featint": featint_fm})

# %% [markdown]
# ### How the cost grows
#
# One example with $m$ non-zero features and $k = 16$: the double loop grows as $m^2$, the
# sum-square form as $m$ (flat at first, where the fixed cost of a call dominates).

# %%
def seconds(fn, *args, repeats=3):
    """Best wall time of a few calls."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


k = 16
naive_sizes = [4, 8, 16, 32] if quick() else [4, 8, 16, 32, 64, 128]
fast_sizes = [2**p for p in range(2, 11 if quick() else 17)]
timings = []
for m in sorted(set(naive_sizes + fast_sizes)):
    v = torch.randn(m + 1, k, dtype=torch.float64)
    idx, val = torch.arange(1, m + 1)[None], torch.rand(1, m, dtype=torch.float64)
    timings.append({
        "m": m,
        "naive": (seconds(pairwise_naive, v, idx, val, repeats=3 if m <= 64 else 1)
                  if m in naive_sizes else None),
        "sum-square": seconds(pairwise_sum_square, v, idx, val),
    })
timings = pd.DataFrame(timings).set_index("m")

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(timings.index, timings["naive"], "o-", label="double loop, $O(k m^2)$")
ax.loglog(timings.index, timings["sum-square"], "s-", label="sum-square, $O(k m)$")
ax.set(xlabel="non-zero features m", ylabel="seconds per example",
       title="FM pairwise term: naive vs sum-square")
ax.legend()
plt.show()

# %% [markdown]
# ## FM in featint
#
# Here is the whole model, `featint/models/fm.py`: $w_0$, a `FeaturesLinear` for the $w_i$ and
# a `FeaturesEmbedding` for the $\mathbf v_i$ (one table over the global feature space, so the
# context and the movie share it).

# %%
display(Code(inspect.getsource(FM), language="python"))

# %% [markdown]
# The forward pass never concatenates the context and the movie. Split the non-zeros of
# $\mathbf x$ into the context's, $C$, and the candidate movie's, $M$. The pairs inside $C$,
# the pairs inside $M$, and the pairs across:
#
# $$\hat y(c, m) = \underbrace{w_0 + \sum_{i \in C} w_i x_i + \sum_{\substack{i<j\\ i,j \in C}}
# \langle \mathbf v_i, \mathbf v_j\rangle x_i x_j}_{y_c \text{: context alone}}
# + \underbrace{\sum_{j \in M} w_j x_j + \sum_{\substack{i<j\\ i,j \in M}} \langle \mathbf v_i,
# \mathbf v_j\rangle x_i x_j}_{y_m \text{: movie alone}}
# + \sum_{i \in C} \sum_{j \in M} \langle \mathbf v_i, \mathbf v_j\rangle x_i x_j .$$
#
# The last double sum is bilinear, so it factors into one dot product:
# $\big\langle \mathbf a_c, \mathbf b_m \big\rangle$ with $\mathbf a_c = \sum_{i \in C} x_i
# \mathbf v_i$ and $\mathbf b_m = \sum_{j \in M} x_j \mathbf v_j$. For a batch of contexts and
# all 1,682 movies, the scores are $y_c \mathbf 1^\top + \mathbf 1 y_m^\top + A B^\top$: the
# context side is computed once per context, the movie side once per movie, and ranking
# everything is one matrix product (`cross_dot`).
#
# Two checks, in float64 with random weights large enough that every term matters: scoring all
# movies and picking the candidates gives the candidates' scores, and both equal the FM
# equation applied to the concatenated sparse vector $\mathbf x = (c, m)$.

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
    movie = check.items(candidates)                                # (64, 10, item slots)
    joint = Features(
        torch.cat([ctx.idx[:, None].expand(-1, candidates.shape[1], -1), movie.idx], -1),
        torch.cat([ctx.val[:, None].expand(-1, candidates.shape[1], -1), movie.val], -1),
        torch.cat([ctx.field, movie.field]))
    plain = check.w0 + check.linear(joint) + fm_interaction(check.embedding(joint))
print(f"all-movie scores {tuple(all_scores.shape)}, candidate scores {tuple(cand_scores.shape)}")
assert torch.allclose(all_scores.gather(1, candidates), cand_scores, rtol=0, atol=1e-10)
assert torch.allclose(cand_scores, plain, rtol=0, atol=1e-10)
print("max |difference|:", (cand_scores - plain).abs().max().item())

# %% [markdown]
# ## A planted interaction
#
# `featint.synthetic` makes a small MovieLens-shaped data set with one planted interaction:
# half the movies are Action, half Romance, equally popular overall; when a man picks his next
# movie, each Action film is $e^2 \approx 7.4$ times likelier than each Romance film, and for
# women the other way round. Like the advertising table, the signal lives only in the pair (gender,
# genre). A linear model (`featint/models/linear.py`) gives every user the same ranking, so it
# cannot use it; FM can.

# %%
syn_ml = synthetic_movielens(seed=0)
syn = build_task(syn_ml)
print(syn.counts())
syn_models, syn_results = {}, {}
for name in ("linear", "fm"):
    hparams = {"embed_dim": 8} if name == "fm" else {}
    syn_models[name] = build_model(name, syn, seed=0, **hparams)
    fit(syn_models[name], syn, epochs=30, batch_size=256, lr=1e-2, patience=5,
        progress=False, verbose=False)
    syn_results[name] = evaluate(syn_models[name], syn, progress=False).row()
syn_results["random"] = evaluate(RandomScores(seed=0), syn, progress=False).row()
leaderboard(syn_results)

# %% [markdown]
# What FM learned about the pair: the interaction weight $\langle \mathbf v_\text{gender},
# \mathbf v_\text{genre} \rangle$ for the four combinations. The planted pattern (men ×
# Action, women × Romance) should stand out as a diagonal.

# %%
fm_syn = syn_models["fm"]
weights = fm_syn.embedding.embedding.weight.detach()
gender, genre = syn.schema.field("gender"), syn.schema.field("genre")
genre_names = ["Action", "Romance"]
v_gender = weights[gender.offset + torch.tensor([0, 1])]         # M, F (gender value 1 = F)
v_genre = weights[genre.offset + torch.tensor([syn_ml.genres.index(g) for g in genre_names])]
interaction = (v_gender @ v_genre.T).numpy()

fig, ax = plt.subplots(figsize=(3.6, 3))
lim = np.abs(interaction).max()
im = ax.imshow(interaction, cmap="RdBu_r", vmin=-lim, vmax=lim)
for (r, c), value in np.ndenumerate(interaction):
    ax.text(c, r, f"{value:+.2f}", ha="center", va="center",
            color="white" if abs(value) > lim / 2 else "black")
ax.set(xticks=[0, 1], xticklabels=genre_names, yticks=[0, 1], yticklabels=["M", "F"],
       title=r"$\langle v_{gender}, v_{genre} \rangle$")
fig.colorbar(im, ax=ax, shrink=0.8)
plt.show()

# %%
lin, fm_row = syn_results["linear"], syn_results["fm"]
assert all(np.isfinite(list(fm_row.values()))) and all(np.isfinite(list(lin.values())))
if not quick():
    # FM clearly better: the bootstrap intervals do not even overlap
    assert fm_row["hr@10_lo"] > lin["hr@10_hi"]
    assert fm_row["mean_rank_hi"] < lin["mean_rank_lo"]
    # and it found the planted pattern: (M,Action) - (M,Romance) - (F,Action) + (F,Romance) > 0
    assert interaction[0, 0] - interaction[0, 1] - interaction[1, 0] + interaction[1, 1] > 0

# %% [markdown]
# ## FM on the next-movie task
#
# Now the real task, with the hyper-parameters used throughout the book for FM: $k = 16$,
# Adam with learning rate $5 \cdot 10^{-3}$, batches of 1,024 examples each with 4 sampled
# negatives, binary cross-entropy, at most 20 epochs, early stopping when the validation MRR
# has not improved for 3 epochs (the best epoch's weights are kept). In quick mode `fit` runs
# at most 2 epochs on 4,096 examples.

# %%
fm = build_model("fm", task, seed=0, embed_dim=16)
print(f"{count_parameters(fm):,} parameters")
history = fit(fm, task, epochs=20, batch_size=1024, lr=5e-3, patience=3, seed=0,
              progress=False)
print(f"best epoch {history.best_epoch} of {len(history.epochs)}, {history.seconds:.0f} s")

# %%
epochs = pd.DataFrame(history.epochs).set_index("epoch")
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(epochs.index, epochs["loss"], "o-")
ax[0].set(xlabel="epoch", ylabel="BCE", title="Training loss")
for metric, style in (("valid_mrr", "o-"), ("valid_hr@10", "s-")):
    ax[1].plot(epochs.index, epochs[metric], style, label=metric.removeprefix("valid_"))
ax[1].axvline(history.best_epoch, color="grey", ls="--", label="best epoch")
ax[1].set(xlabel="epoch", title="Validation (all-movie ranking)")
ax[1].legend()
for a in ax:
    a.xaxis.get_major_locator().set_params(integer=True)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Test results
#
# The test set, seen for the first time, ranked against all movies as in
# [chapter 00](00_data.ipynb), beside the two baselines:

# %%
results = {
    "random": evaluate(RandomScores(seed=0), task, progress=False).row(),
    "most popular": evaluate(Popularity(task), task, progress=False).row(),
    "fm": evaluate(fm, task, progress=False).row(),
}
print(f"fm: {count_parameters(fm):,} parameters, {len(history.epochs)} epochs "
      f"(best {history.best_epoch}), {history.seconds:.0f} s of training")
print(f"fm / most popular: HR@10 x{results['fm']['hr@10'] / results['most popular']['hr@10']:.1f}, "
      f"mean rank x{results['fm']['mean_rank'] / results['most popular']['mean_rank']:.2f}")
leaderboard(results)

# %%
names = ["random", "most popular", "fm"]
fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
for a, metric, title in ((ax[0], "hr@10", "HR@10 (higher is better)"),
                         (ax[1], "mean_rank", "Mean rank (lower is better)")):
    value = np.array([results[n][metric] for n in names])
    err = np.array([[value[i] - results[n][f"{metric}_lo"], results[n][f"{metric}_hi"] - value[i]]
                    for i, n in enumerate(names)]).T
    a.bar(names, value, yerr=err, capsize=4, color=["C7", "C0", "C3"])
    a.set(title=title)
fig.suptitle("Test set, 95% bootstrap intervals")
fig.tight_layout()
plt.show()

# %%
fm_res, pop_res = results["fm"], results["most popular"]
assert np.isfinite(fm_res["mean_rank"]) and 1 <= fm_res["mean_rank"] <= task.num_items
if not quick():
    assert fm_res["hr@10_lo"] > pop_res["hr@10_hi"]
    assert fm_res["mean_rank_hi"] < pop_res["mean_rank_lo"]

# %% [markdown]
# ## What FM cannot do
#
# FM gives each feature **one** vector and uses it against every other feature. The vector of
# a movie in the history bag has to explain at once how it goes with the candidate movie, with
# the hour of the day and with the user's occupation, although these are different kinds of
# relation that might want different latent spaces. Every pair also counts with the same
# weight, informative or not, and the model stays a sum of pairwise products, with no way to
# express a three-way pattern or a non-linear one. The next chapter's field-aware FM tackles
# the first limit: each feature keeps a separate vector for each field it meets.
