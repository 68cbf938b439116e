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
# # 04 · Wide & Deep
#
# The factorization machines of [chapter 01](01_fm.ipynb) (and their field-aware and
# attentional variants, [FFM](02_ffm.ipynb) and [AFM](03_afm.ipynb)) *generalise*: every
# feature has a vector, and any two vectors give an interaction weight, even for a pair never
# seen in training. That is their strength on sparse data, and also a weakness the Wide &
# Deep paper {cite}`cheng2016wide` points out: when the real interactions are sparse and
# specific (this movie is watched right after that one, far more than their vectors would
# say), low-dimensional embeddings smooth them away and recommend what is merely similar. A
# plain linear model over *cross-product* features has the opposite profile: it *memorises*
# exactly the pairs it has seen, with one weight each, and knows nothing about the others.
#
# Wide & Deep trains both jointly: a **wide** linear model over raw and crossed features for
# memorisation, and a **deep** MLP over feature embeddings for generalisation, summed into
# one logit. This chapter builds it on the next-movie task, checks its efficient ranking
# against a naive computation, trains it beside MF and FM, and looks at what each part
# learned.

# %% tags=["hide-input"]
# %matplotlib inline
import copy
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from featint import build_task, load_movielens
from featint.cards import card
from featint.chapter import (
    evaluate_all,
    load_comparison,
    pairwise_of,
    plot_histories,
    plot_results,
    results_table,
    seed_spread,
    value_text,
    verdict,
    verdict_text,
)
from featint.config import current
from featint.evaluate import (
    Evaluation,
    bootstrap,
    evaluate,
    metrics,
    per_example,
    subsample,
)
from featint.features import GAP_EDGES
from featint.models import build_model, count_parameters
from featint.models.wide_deep import CROSSES, WideDeep, cross_bucket
from featint.show import source
from featint.stats import mean_interval, paired_difference
from featint.training import describe, setting_of, trained

quick = current().quick
print("quick mode:", quick, "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## The model
#
# The **wide** component is a generalised linear model over the raw features $\mathbf x$
# and their *cross-product transformations*
#
# $$\phi_c(\mathbf x) = \prod_{i=1}^{n} x_i^{c_{ci}}, \qquad c_{ci} \in \{0, 1\},$$
#
# where $c_{ci} = 1$ if feature $i$ is part of cross $c$ (the paper writes $\phi_k$; here
# $k$ is the embedding size). For binary features a cross is an AND: $\phi_c = 1$ exactly
# when, say, occupation = doctor *and* genre = Drama. The **deep** component is a
# feed-forward network over dense embeddings of the sparse features,
#
# $$\mathbf z_l = \mathrm{ReLU}\big(\mathbf W_l \mathbf z_{l-1} + \mathbf b_l\big), \qquad
# l = 1, \dots, L,$$
#
# with $\mathbf z_0$ the concatenated field embeddings $\mathbf e_f$ (and real-valued
# features). Both feed one logit, and they are trained *jointly*, on the same loss, at the
# same time:
#
# $$\hat y(\mathbf x) = \mathbf w_{\mathrm{wide}}^\top [\mathbf x; \boldsymbol\phi(\mathbf x)]
# + \mathbf w_{\mathrm{deep}}^\top \mathbf z_L + b_{\mathrm{out}}, \qquad
# P(y = 1 \mid \mathbf x) = \sigma\big(\hat y(\mathbf x)\big).$$
#
# Joint training is not an ensemble: the wide part only has to fix what the deep part gets
# wrong, so it can stay small (a few crosses rather than every pair). The paper writes
# $\mathbf a^{(l)}$ for $\mathbf z_l$ and $W^{(l)}, \mathbf b^{(l)}$ for
# $\mathbf W_{l+1}, \mathbf b_{l+1}$ (see the [notation](../book/notation.md)).
#
# ### The wide part on this task
#
# Here $\mathbf x$ is featint's sparse vector of the context and the candidate movie (user,
# occupation, history, ..., movie, genres, year), and there are four crosses, each joining a
# context feature to a movie feature:

# %% tags=["hide-input"]
ml = load_movielens()
task = build_task(ml)
schema = task.schema
fit_ex, test_ex = task.examples("fit"), task.examples("test")
context_slot = {f.name: int(np.flatnonzero(task.ctx_field == n)[0])
                for n, f in enumerate(schema.context_fields) if f.kind == "categorical"}
item_number = {f.name: n for n, f in enumerate(schema.item_fields)}


def cross_features(a: str, b: str, ex: np.ndarray):
    """Global indices of the two sides of cross (a, b) for examples ``ex`` and their
    target movie: context feature (n,), item features (n, slots of b) with values."""
    i_a = task.ctx_idx[ex, context_slot[a]]
    cols = task.item_field == item_number[b]
    target = task.target[ex]
    return i_a, task.item_idx[target][:, cols], task.item_val[target][:, cols]


bits = inspect.signature(WideDeep).parameters["bits"].default  # a table of 2**bits
assert bits == 20                                  # "2^20" in the prose
rows = []
for a, b in CROSSES:
    i_a, i_b, x_b = cross_features(a, b, fit_ex)
    used = x_b > 0  # the real members of the genre bag, not its padding
    pair_numbers = np.unique((i_a[:, None] * schema.num_features + i_b)[used])
    buckets = cross_bucket(torch.from_numpy(i_a)[:, None], torch.from_numpy(i_b),
                           schema.num_features, bits)[torch.from_numpy(used)]
    rows.append({"cross": f"{a} × {b}",
                 "possible pairs": schema.field(a).size * schema.field(b).size,
                 "pairs in fit targets": len(pair_numbers),
                 "buckets they use": buckets.unique().numel()})
crosses_table = pd.DataFrame(rows).set_index("cross")
display(crosses_table)

# %% tags=["hide-input"]
coarse = crosses_table.iloc[:3]
memo_row = crosses_table.loc["last_movie × movie"]
assert (coarse["possible pairs"] < 1000).all()
assert (coarse["pairs in fit targets"] > 0.9 * coarse["possible pairs"]).all()
assert memo_row["possible pairs"] > 1e6 and 1e4 < memo_row["pairs in fit targets"] < 1e5
assert memo_row["buckets they use"] < memo_row["pairs in fit targets"]

# %% [markdown]
# A cross is worth adding only if it joins the two sides: a cross of two *context* features
# (say gender × age) adds the same number to the score of every movie, so it cannot change a
# ranking. Three crosses are coarse (occupation, gender or age against the movie's genres or
# release years: a few hundred possible pairs, nearly all of them in the fit targets); the
# fourth, last movie × movie, is the kind the paper had in mind (*user installed app ×
# impression app*): millions of possible pairs, tens of thousands of them seen, each a small
# fact to memorise. A genre is a bag whose members carry the weight $1/\#\text{genres}$, so
# its cross gets the product of the two values, $\phi_c = x_i x_j$ (still 1 or 0 for two
# one-hot features).
#
# Rather than a vocabulary of pairs, every cross is **hashed** into one table of $2^{20}$
# weights, as production systems do (no dictionary to build or ship, new pairs cost
# nothing). The $n$ features are numbered $1, \dots, n$ and index 0 is padding, so the code's
# indices take $n + 1$ values (`schema.num_features`, printed below). The pair of global
# feature indices $(i, j)$ gets the number $i\,(n + 1) + j$ (unique, since indices never
# repeat across fields) and the bucket
#
# $$\phi(i, j) = \Big\lfloor \frac{\big((i\,(n + 1) + j) \cdot 2654435761\big) \bmod
# 2^{32}}{2^{32 - 20}} \Big\rfloor,$$
#
# Knuth's multiplicative hash (the bucket of the cross whose value is $\phi_c(\mathbf x)$
# above). The table above shows the cost: some of the last movie × movie pairs share a
# bucket (compare the last two columns), and then share its weight. By hand, for the first
# fit example's occupation and its target movie's first genre:

# %%
i_a, i_b, _ = cross_features("occupation", "genre", fit_ex[:1])
i, j = int(i_a[0]), int(i_b[0, 0])
n = schema.num_features - 1                    # the features; index 0 is padding
number = i * (n + 1) + j
by_hand = (number * 2654435761 % 2**32) // 2 ** (32 - bits)
print(f"n = {n:,} features, indices 0..{n:,} (n + 1 = {n + 1:,}, padding included)")
print(f"occupation feature {i}, genre feature {j}: pair number {number:,} "
      f"-> bucket {by_hand:,}")
assert by_hand == cross_bucket(torch.tensor(i), torch.tensor(j), schema.num_features,
                               bits)

# %% [markdown]
# Scoring a context against all 1,682 movies needs, per cross, one bucket per (context,
# movie) pair: a broadcast of the context's feature against every movie's features, then one
# gather from the table, with no loop over movies. (featint computes it once per *distinct*
# context feature, 21 occupations rather than 512 contexts, and copies the rows.)
#
# ### The deep part and its split first layer
#
# $\mathbf z_0 = [\mathbf z_C; \mathbf z_M]$ joins a context part and a movie part. The
# context part $\mathbf z_C$ holds the context's field embeddings $\mathbf e_f = \sum_{i :
# f_i = f} x_i \mathbf v_i$ (one vector for a categorical field; for the history bag the
# weighted mean of the movies watched) and its numeric fields **as values** (mean rating so
# far, genre shares, genre mean ratings: 39 numbers, fed directly as the paper feeds
# continuous features); the movie part $\mathbf z_M$ holds the movie's three field
# embeddings. Ranking all movies with a plain MLP would build $\mathbf z_0$ for every
# (context, movie) pair and multiply it by $\mathbf W_1$: the context part of that product
# would be recomputed 1,682 times. Splitting the matrix by columns,
# $\mathbf W_1 = [\mathbf W_{1,C}\ \mathbf W_{1,M}]$,
#
# $$\mathbf W_1 \mathbf z_0 + \mathbf b_1 = \underbrace{\mathbf W_{1,C} \mathbf z_C +
# \mathbf b_1}_{\text{once per context}} + \underbrace{\mathbf W_{1,M} \mathbf
# z_M}_{\text{once per movie}},$$
#
# leaves only a broadcast addition per pair before the ReLU; the remaining layers run on
# `(contexts, movies, hidden)` (`featint.layers.ContextItemMLP`; the package calls the two
# parts `a_c` and `a_m`). The check: a naive float64 version, concatenating $\mathbf z_0$
# for every pair and applying the full first layer, gives the same scores as the split one.

# %%
check = build_model("wide_deep", task, seed=0).double().eval()
with torch.no_grad():
    for param in check.parameters():  # random weights everywhere, so every term counts
        param.normal_(std=0.1)
ctx = task.context(test_ex[:8])
ctx.val = ctx.val.double()
all_items = torch.arange(task.num_items)
with torch.no_grad():
    e_c = check.embedding.fields(ctx, check.num_ctx_fields)[:, check.embedded]
    z_c = torch.cat([e_c.flatten(-2), check.dense(ctx)], -1)              # (8, 215)
    z_m = check.embedding.fields(check.items(all_items), 3).flatten(-2)   # (1682, 48)
    # naive: z_0 = [z_C; z_M] for each of the 8 x 1682 pairs, the full W_1
    z0 = torch.cat([z_c[:, None].expand(-1, task.num_items, -1),
                    z_m[None].expand(8, -1, -1)], -1)                  # (8, 1682, 263)
    W1 = torch.cat([check.deep.context.weight, check.deep.item.weight], 1)
    naive = check.deep.head(z0 @ W1.T + check.deep.context.bias).squeeze(-1)
    split = check.deep(z_c, z_m).squeeze(-1)
print(f"z_C {tuple(z_c.shape)}, z_M {tuple(z_m.shape)}, "
      f"z_0 per pair {tuple(z0.shape)}; max |naive - split| = "
      f"{(naive - split).abs().max():.1e}")
assert torch.allclose(naive, split, rtol=0, atol=1e-10)
assert check.dense.num_values == 39  # the numeric fields, fed as values

# %% [markdown]
# What it saves, in float32 on 64 contexts × all movies (the MLP only, on the threads shown
# at the top):

# %%
model32 = build_model("wide_deep", task, seed=0).eval()
ctx64 = task.context(test_ex[:64])
with torch.no_grad():
    e_c = model32.embedding.fields(ctx64, model32.num_ctx_fields)[:, model32.embedded]
    z_c = torch.cat([e_c.flatten(-2), model32.dense(ctx64)], -1)
    z_m = model32.embedding.fields(model32.items(all_items), 3).flatten(-2)
    W1 = torch.cat([model32.deep.context.weight, model32.deep.item.weight], 1)

    def naive_mlp():
        z0 = torch.cat([z_c[:, None].expand(-1, task.num_items, -1),
                        z_m[None].expand(len(z_c), -1, -1)], -1)
        return model32.deep.head(z0 @ W1.T + model32.deep.context.bias)

    def best_of(fn):
        times = []
        for _ in range(1 if quick else 3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    t_naive, t_split = best_of(naive_mlp), best_of(lambda: model32.deep(z_c, z_m))
print(f"naive {t_naive * 1e3:.0f} ms, split {t_split * 1e3:.0f} ms "
      f"({t_naive / t_split:.1f}x); first-layer multiply-adds per pair: {W1.numel():,} "
      f"naive vs {W1.shape[0]} additions split")

# %% [markdown]
# The model in `featint/models/wide_deep.py`: the hash, the crosses and the forward pass.

# %%
source(cross_bucket, WideDeep.wide_crosses, WideDeep.forward)

# %% [markdown]
# ### The setting the comparison trains, and where it departs from the paper
#
# Wide & Deep's card, generated from the tuning record that training reads: every value it
# is trained with and where it comes from, what its trials varied, and its paper's setting.

# %% tags=["remove-input"]
wd_card = card("wide_deep")
v = wd_card.values
display(Markdown(wd_card.markdown()))

# %% tags=["remove-input"]
wd_hidden = tuple(v["hidden"])
hidden_text = "-".join(map(str, wd_hidden))
penalties = ", ".join(
    [f"L1 {v['wide_l1']:g} on the wide weights" if v["wide_l1"]
     else "no L1 on the wide weights"]
    + ([f"L2 {v['wide_l2']:g}"] if v["wide_l2"] else []))
defaults = [
    ("deep layers", "1024-512-256, ReLU",
     f"{hidden_text}, ReLU, dropout {v['dropout']:g}"),
    ("embeddings", "32 per categorical feature",
     f"{v['embed_dim']} (every model's $k$)"),
    ("continuous features", "concatenated as values",
     f"the same: {model32.dense.num_values} numeric values"),
    ("crosses", "user installed app × impression app",
     "the four above, hashed into $2^{20}$ weights"),
    ("optimiser", "FTRL with L1 (wide), AdaGrad (deep)",
     f"Adam for both, learning rate {v['lr']:g}; {penalties}"),
    ("training", "joint, warm-started from the previous model",
     "joint, from scratch, early stopping"),
]
display(Markdown("| | paper (Google Play) | here |\n|---|---|---|\n"
                 + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in defaults)))

# %% [markdown]
# The deep layers are the main deviation. With the first layer split, ranking pays per
# (context, movie) pair for every layer after the first (and the output unit):

# %%
def per_pair_cost(hidden: tuple[int, ...]) -> int:
    """Multiply-adds per (context, movie) pair after the split first layer."""
    return sum(a * b for a, b in zip(hidden, hidden[1:], strict=False)) + hidden[-1]


cost_here, cost_paper = per_pair_cost(wd_hidden), per_pair_cost((1024, 512, 256))
assert 70 < cost_paper / cost_here < 90     # "about 80 times" in the summary
print(f"multiply-adds per pair: {cost_here:,} with {hidden_text}, {cost_paper:,} with "
      f"the paper's layers ({cost_paper / cost_here:.0f}x)")

# %% [markdown]
# That factor multiplies the deep part's share of the ranking time measured below, paid
# again on the validation set after every epoch: the paper scores the short list of
# candidates its retrieval stage returns, we rank all 1,682 movies for every context. The
# "pyramid" shape (each layer half the previous) is kept.
#
# ## Training
#
# Every model is trained with the comparison's budget, the same for all models of the book,
# and its own setting from its card, with seed 0; the trained weights are kept in the model
# cache, so [chapter 08](08_comparison.ipynb) and every chapter share the very same models.
# Besides Wide & Deep: MF (the user and movie fields only) and FM (every field, every
# pairwise interaction), to see what the wide and deep parts add. In quick mode the budget
# is cut to a smoke test (its sizes print below): its numbers are not results.

# %%
print(describe())
if quick:
    print("quick mode:", current().sizes.describe())
models, histories = {}, {}
for name in ("mf", "fm", "wide_deep"):
    models[name], histories[name] = trained(name, task, progress=False)
    history = histories[name]
    print(f"{name}: {count_parameters(models[name]):,} parameters, best epoch "
          f"{history.best_epoch} of {len(history.epochs)}")
mf, fm, wd = models["mf"], models["fm"], models["wide_deep"]
wide_params = wd.linear.weight.weight.numel() + wd.cross_weight.weight.numel()
print(f"wide_deep: {wide_params:,} wide weights (raw + hashed crosses), "
      f"{count_parameters(wd) - wide_params:,} deep (embeddings and MLP)")

# %%
plot_histories(histories)
plt.show()

# %% [markdown]
# The paper trains the wide part with FTRL and L1, which sets many weights exactly to zero:
# a sparse wide part. Here Adam trains both parts, with the wide part's penalty from the
# card. How many wide weights are zero, and how many are no larger than one Adam step
# (Adam moves a weight by up to about its learning rate per step)?

# %%
wide = torch.cat([wd.linear.weight.weight.detach().flatten(),
                  wd.cross_weight.weight.detach().flatten()])
step = v["lr"]
small_moved = (wide != 0) & (wide.abs() <= step)
sparsity = pd.Series({"wide weights": len(wide), "exactly zero": int((wide == 0).sum()),
                      "non-zero": int((wide != 0).sum()),
                      "non-zero, at most one step in size": int(small_moved.sum())})
display(sparsity.to_frame("count"))

# %% tags=["remove-input"]
moved = sparsity["non-zero"]
small = sparsity["non-zero, at most one step in size"] / moved if moved else 0.0
display(Markdown(
    f"Of the {len(wide):,} wide weights, {sparsity['exactly zero'] / len(wide):.1%} "
    "are exactly zero (a hashed bucket that no pair reached keeps its initial zero: no "
    f"gradient, not even the penalty's, moves it); of the {moved:,} that training "
    f"moved, {small:.0%} are no larger than one Adam step ({step:g}). "
    + (f"The chosen setting has an L1 penalty of {v['wide_l1']:g}: with Adam, whose "
       "steps do not shrink with the gradient, a penalised weight hovers around zero "
       "instead of landing on it, so the wide part is small but not sparse in FTRL's "
       "sense." if v["wide_l1"] else
       "The chosen setting has no L1 penalty: nothing pulls a weight to zero, and "
       "early stopping on validation does the regularising.")))

# %% [markdown]
# ## Test results
#
# The test set ranked against all movies, beside the baseline ladder of
# [the protocol](../book/protocol.md) (random, most popular, Markov, ItemKNN), MF and FM,
# with 95% bootstrap intervals over test examples. The ranking time of Wide & Deep is that of
# `evaluate` for the whole test split (every context against all 1,682 movies, plus the
# bootstrap), on the threads shown at the top.

# %%
results = evaluate_all(task, {"mf": mf, "fm": fm})
start = time.perf_counter()
results["wide_deep"] = evaluate(wd, task, progress=False)
wd_seconds = time.perf_counter() - start
paper_minutes = wd_seconds * cost_paper / cost_here / 60
print(f"wide_deep: test ranking {wd_seconds:.1f} s for "
      f"{len(results['wide_deep'].ranks):,} contexts; with the paper's layers, about "
      f"{paper_minutes:.0f} min (the time scaled by the ratio of per-pair costs, an "
      "estimate)")
results_table(results)

# %%
plot_results(results)
plt.show()

# %%
seed_spread(results, ["mf", "fm", "wide_deep"])

# %% tags=["remove-input"]
comparison, _ = load_comparison()
counting = ("popular", "markov", "itemknn")
best_baseline = max(counting, key=lambda n: comparison.aggregates[n]["mean"]["hr@10"])
display(Markdown(
    "This chapter's run (seed 0): Wide & Deep's test HR@10 is "
    f"{value_text(results['wide_deep'], 'hr@10')}, FM's "
    f"{value_text(results['fm'], 'hr@10')}, MF's {value_text(results['mf'], 'hr@10')} "
    f"and that of {best_baseline}, the best counting baseline of the comparison, "
    f"{value_text(results[best_baseline], 'hr@10')}. Whether two models differ is the "
    "comparison's call, over all its seeds (paired over test examples, training noise "
    "included, Holm over every pair, [chapter 08](08_comparison.ipynb)): on HR@10 Wide "
    f"& Deep is {verdict_text(comparison, 'wide_deep', 'fm')}, "
    f"{verdict_text(comparison, 'wide_deep', 'mf')} and "
    f"{verdict_text(comparison, 'wide_deep', best_baseline)}; on mean rank it is "
    f"{verdict_text(comparison, 'wide_deep', 'fm', 'mean_rank')}."
))

# %% tags=["hide-input"]
wd_res = results["wide_deep"].metrics
assert all(np.isfinite(value) for value in wd_res.values())
assert 1 <= wd_res["mean_rank"] <= task.num_items
if not quick:  # a trained model above the most-popular list, on this run's test set
    above_popular = pairwise_of(results, ["wide_deep", "popular"])
    assert verdict(above_popular, "wide_deep", "popular") == "better than"

# %% [markdown]
# ## What the wide part memorises, what the deep part generalises
#
# Take each test example's pair (last movie rated, target movie) and count how often that
# exact pair was a *positive* in the fit examples: never, once, a few times, often. Two
# questions per group. How far above the average movie does each part of Wide & Deep lift
# the target? (The *lift* of a part is its score for the target minus its mean score over
# all movies, so per-context constants cancel; the parts are the last movie × movie cross,
# one hashed weight, the rest of the wide part, and the deep part.) And how well does the
# model rank, against FM and against the same trained Wide & Deep with that one cross
# switched off (every other weight unchanged)?

# %% tags=["hide-input"]
last_slot = context_slot["last_movie"]
last_movie = task.ctx_idx[:, last_slot] - schema.field("last_movie").offset  # 0..1681
assert GAP_EDGES[0] == 1  # gap bucket 0: under one second since the rating before
same_second = task.ctx_idx[:, context_slot["gap"]] == schema.field("gap").offset
pair_code = last_movie * task.num_items + task.target
fit_count = pd.Series(pair_code[fit_ex]).value_counts()
times_seen = fit_count.reindex(pair_code, fill_value=0).to_numpy()
groups = pd.cut(times_seen, [-1, 0, 1, 4, np.inf],
                labels=["never", "once", "2-4 times", "5+ times"])


def interval(values) -> tuple[float, float, float]:
    """Mean of per-example values with its 95% t interval over the examples
    (featint.stats.mean_interval, one run); NaN for fewer than two examples."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(np.mean(values)) if len(values) else np.nan, np.nan, np.nan
    return mean_interval(values)


MEMO = ("last_movie", "movie")                      # the memorising cross


@torch.no_grad()
def lifts(model: WideDeep, ex: np.ndarray) -> pd.DataFrame:
    """Lift of the target over the mean movie, per part of the logit, for ``ex`` (the
    cross part is 0 for a model without the last movie x movie cross)."""
    out = []
    movie = model.items(all_items)
    memo_index = dict(zip(CROSSES, wd.crosses, strict=True))[MEMO]
    for batch in np.array_split(ex, max(1, len(ex) // 256)):
        context = task.context(batch)
        memo = model.cross_weight.weight[cross_bucket(
            context.idx[:, last_slot, None], movie.idx[None, :, 0], model.num_features,
            model.bits), 0]                                            # (batch, movies)
        if memo_index not in model.crosses:
            memo = torch.zeros_like(memo)
        wide = (model.linear(context)[:, None] + model.linear(movie)
                + model.wide_crosses(context, movie))
        deep = model(context, all_items) - wide
        target = torch.from_numpy(task.target[batch])[:, None]
        out.append(pd.DataFrame({
            name: (part.gather(1, target)[:, 0] - part.mean(1)).numpy()
            for name, part in (("last movie × movie cross", memo),
                               ("rest of wide", wide - memo), ("deep", deep))}))
    return pd.concat(out, ignore_index=True)


# the trained model without its memorising cross: every other weight unchanged
no_memo = copy.deepcopy(wd)
no_memo.crosses = [c for c, names in zip(wd.crosses, CROSSES, strict=True)
                   if names != MEMO]
ablated = {"fm": results["fm"],
           "W&D without the cross": evaluate(no_memo, task, progress=False),
           "wide_deep": results["wide_deep"]}

parts = ["last movie × movie cross", "rest of wide", "deep"]
sample = subsample(test_ex, 500 if quick else 8000)
lift = lifts(wd, sample).assign(group=np.asarray(groups[sample]))
in_group = {g: np.asarray(groups[results["wide_deep"].examples] == g)
            for g in groups.categories}
rows = {}
for group in groups.categories:
    row = {}
    for part in parts:
        row[part], row[f"{part} lo"], row[f"{part} hi"] = interval(
            lift.loc[lift["group"] == group, part])
    row["test examples"] = int(in_group[group].sum())
    for label, ev in ablated.items():
        hits = per_example(ev.ranks[in_group[group]], "hr@10")
        row[f"HR@10 {label}"], row[f"HR@10 {label} lo"], row[f"HR@10 {label} hi"] = (
            interval(hits))
    rows[group] = row
table = pd.DataFrame.from_dict(rows, orient="index")
table.index.name = "pair seen in fit"
# which differences are real: the pairwise test within each group (Holm over its three
# pairs), each group at 5% / (number of groups), so all groups hold together at 95%
tested = [g for g in groups.categories if table.loc[g, "test examples"] >= 2]
by_group = {g: pairwise_of(ablated, where=in_group[g], alpha=0.05 / len(tested))
            for g in tested}
table[[*parts, "test examples", *(f"HR@10 {label}" for label in ablated)]].round(3)

# %% tags=["hide-input"]
fig, ax = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
x = np.arange(len(table))
labels = [f"{g}\n({c:,} ex.)" for g, c in zip(table.index, table["test examples"],
                                              strict=True)]
for a, part, title, color in ((ax[0], "last movie × movie cross",
                               "Wide: the last movie × movie cross", "C0"),
                              (ax[1], "deep", "Deep: the MLP", "C1")):
    err = [table[part] - table[f"{part} lo"], table[f"{part} hi"] - table[part]]
    a.bar(x, table[part], yerr=err, color=color, capsize=3)
    a.axhline(0, color="black", lw=0.8)
    a.set(xticks=x, xticklabels=labels, ylabel="mean lift of the target (logit)",
          xlabel="(last movie, target) pair seen as a fit positive",
          title=f"{title}, 95% interval")
for n, (label, color) in enumerate(zip(ablated, ("C2", "C3", "C4"), strict=True)):
    col = f"HR@10 {label}"
    err = [table[col] - table[f"{col} lo"], table[f"{col} hi"] - table[col]]
    ax[2].bar(x + (n - 1) * 0.27, table[col], width=0.27, yerr=err, capsize=2,
              label=label, color=color)
ax[2].set(xticks=x, xticklabels=table.index, ylabel="HR@10",
          xlabel="(last movie, target) pair seen as a fit positive",
          title="Test HR@10 by group, 95% interval")
ax[2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
plt.show()


# %% tags=["remove-input"]
def hr_text(a: str, b: str, group: str) -> str:
    """HR@10 of ``a`` against ``b`` on one group, as its pairwise test says it."""
    if group not in by_group:
        return f"not tested against {b} (too few examples)"
    return verdict_text(by_group[group], a, b)


memo, deep_lift = table["last movie × movie cross"], table["deep"]
seen_groups = [g for g in table.index[1:] if table.loc[g, "test examples"] > 0]
memo_seen = memo[seen_groups]
growing = bool(np.all(np.diff(memo_seen.to_numpy()) > 0))
share_seen = float((groups[test_ex] != "never").mean())
filled = [g for g in table.index if table.loc[g, "test examples"] > 0]
deep_above = bool((table.loc[filled, "deep lo"] > 0).all())
sentences = [
    f"{share_seen:.0%} of the test examples have a (last movie, target) pair that was "
    "a fit positive at least once.",
    f"Left: the cross's mean lift of the target is {memo['never']:+.3f} for pairs "
    "never seen as a positive (such a bucket was only ever trained by sampled "
    "negatives, or by another pair that shares it) and "
    + ", ".join(f"{memo[g]:+.3f} for pairs seen {g}" for g in seen_groups)
    + ("; its mean grows with the count." if growing
       else "; its mean does not grow steadily with the count."),
    "Middle: the deep part has no weight of its own for a pair; its mean lift is "
    + ", ".join(f"{deep_lift[g]:+.2f} ({g})" for g in filled)
    + (", above zero in every group (95% intervals), seen or not: generalisation "
       "through embeddings (it also carries popularity and the user's taste)."
       if deep_above else "."),
    "Right: on the pairs never seen, Wide & Deep's HR@10 is "
    f"{hr_text('wide_deep', 'fm', 'never')} and "
    f"{hr_text('wide_deep', 'W&D without the cross', 'never')}; on the pairs seen 5+ "
    f"times, it is {hr_text('wide_deep', 'fm', '5+ times')} and "
    f"{hr_text('wide_deep', 'W&D without the cross', '5+ times')}. These are one "
    "trained model of each, paired over the test examples of the group (Holm over the "
    f"three pairs of a group, each of the {len(tested)} groups at "
    f"{0.05 / len(tested):.2%}, so all hold together at 95%).",
]
display(Markdown(" ".join(sentences)))

# %% [markdown]
# The switch-off is one-sided: the model was trained with the cross, so the rest of it never
# had to learn what the cross holds (Exercise 3 retrains without it). The cross pushes up the
# movies that usually followed the last movie; when the true next movie is one of them that
# is a hit, when it is not they crowd it out, and the joint model settles that trade-off on
# the training distribution. The pairs seen in fit whose cross weights are the largest, with
# how often each pair was a fit positive, how many of those times the two ratings fell in
# the same second (the `gap` feature), and how often the pair was seen the other way round:

# %% tags=["hide-input"]
seen_pairs = fit_count.index.to_numpy()
a_idx = seen_pairs // task.num_items + schema.field("last_movie").offset
b_idx = seen_pairs % task.num_items + schema.field("movie").offset
bucket = cross_bucket(torch.from_numpy(a_idx), torch.from_numpy(b_idx), wd.num_features,
                      wd.bits)
weight = wd.cross_weight.weight.detach()[bucket, 0].numpy()
same_second_count = pd.Series(same_second[fit_ex]).groupby(pair_code[fit_ex]).sum()
first, second = seen_pairs // task.num_items, seen_pairs % task.num_items
reverse_code = second * task.num_items + first
top = np.argsort(-weight)[:10]
top_pairs = pd.DataFrame({
    "last movie": task.titles[seen_pairs[top] // task.num_items],
    "next movie": task.titles[seen_pairs[top] % task.num_items],
    "cross weight": weight[top].round(2),
    "seen in fit": fit_count.to_numpy()[top],
    "of them same second": same_second_count.reindex(seen_pairs[top]).to_numpy(),
    "seen reversed": fit_count.reindex(reverse_code[top], fill_value=0).to_numpy(),
})
display(top_pairs)

# %% tags=["remove-input"]
n_top, occurrences = len(top_pairs), int(top_pairs["seen in fit"].sum())
top_same = int(top_pairs["of them same second"].sum())
n_reversed = int((top_pairs["seen reversed"] > 0).sum())
display(Markdown(
    f"These {n_top} pairs were fit positives {occurrences:,} times in all (each "
    f"between {top_pairs['seen in fit'].min()} and {top_pairs['seen in fit'].max()} "
    f"times); {top_same:,} of those ({top_same / occurrences:.0%}) were two ratings in "
    f"the same second, against {same_second[fit_ex].mean():.0%} of all fit examples, "
    f"and {n_reversed} of the {n_top} pairs were also seen in the opposite order. "
    "Within one second the order of a user's ratings is unknown, and the protocol puts "
    "it in a fixed pseudo-random order: what a weight earned in same-second bursts "
    "records is that the two movies were rated in one sitting, not which came first. "
    "The hash may also have put another seen pair in the same bucket, which then "
    "shares the weight."
))

# %% tags=["hide-input"]
assert np.isfinite(table.loc[table["test examples"] > 0, parts].to_numpy()).all()
assert 0.2 < share_seen < 0.3  # a data fact: about a quarter of test pairs repeat
assert (top_pairs["of them same second"] <= top_pairs["seen in fit"]).all()

# %% [markdown]
# ## What Wide & Deep leaves open
#
# The wide part only knows the crosses someone chose: here four, picked by hand from what
# the fields mean, and the paper's single cross came from product knowledge of Google Play.
# Every new data set needs that engineering again, and a useful cross nobody thought of is
# never learned. The deep part, for its part, has to discover low-order interactions (the
# FM's pairwise terms) implicitly, through layers that are not built for products of
# embeddings. The next chapter, [DeepFM](05_deepfm.ipynb), replaces the hand-made wide part
# with an FM that shares the deep part's embeddings: every pairwise interaction, learned,
# with no feature engineering.
#
# ## Summary
#
# - The wide part is a linear model over the raw features and hand-chosen crosses
#   $\phi_c(\mathbf x)$: one weight per pair, hashed here into $2^{20}$ buckets. It memorises.
# - The deep part is an MLP over the field embeddings: it scores pairs it never saw. It
#   generalises.
# - Both are trained jointly into one logit, so the wide part only has to correct the deep
#   part.
# - Only crosses of a context feature with a movie feature can change a ranking, and a split
#   first layer makes ranking all movies cheap; the paper's layer widths would cost about 80
#   times more per (context, movie) pair.
# - Memorising a pair pays only when test pairs repeat training pairs (here about a quarter
#   of the test examples); elsewhere the memorised pairs can crowd out the right movie.
#
# ## Exercises
#
# **1. A cross with a bag (by hand).** A user's occupation is crossed with a candidate
# movie's genres, and the movie has three genres. The occupation × genre cross holds the
# weights 0.6, −0.3 and 0.9 for the three (occupation, genre) pairs. What does the cross add
# to the logit? What would it add if every genre of the bag had the value 1?
#
# :::{admonition} Solution
# :class: dropdown
# Each genre of a three-genre bag has the value $x_j = 1/3$ and the occupation $x_i = 1$, so
# $\phi_c = x_i x_j = 1/3$ for each pair and the cross adds
# $(0.6 - 0.3 + 0.9) / 3 = 0.4$. With values of 1 it would add $1.2$: a movie with more
# genres would collect more cross weights, which is why the bag is normalised.
# The cell below checks this against the package.
# :::

# %% tags=["hide-input"]
n_genres = (task.item_val[:, task.item_field == item_number["genre"]] > 0).sum(1)
movie3 = int(np.flatnonzero(n_genres == 3)[0])
toy = build_model("wide_deep", task, seed=0, crosses=(("occupation", "genre"),)).eval()
one_ctx = task.context(test_ex[:1])
occupation = int(task.ctx_idx[test_ex[0], context_slot["occupation"]])
movie_feats = toy.items(torch.tensor([movie3]))
genre_idx = movie_feats.idx[0, movie_feats.field == item_number["genre"]]
genre_idx = genre_idx[genre_idx > 0]
with torch.no_grad():
    buckets = cross_bucket(torch.tensor(occupation), genre_idx, toy.num_features,
                           toy.bits)
    assert len(genre_idx) == 3 and buckets.unique().numel() == 3
    toy.cross_weight.weight[buckets, 0] = torch.tensor([0.6, -0.3, 0.9])
    added = toy.wide_crosses(one_ctx, toy.items(torch.tensor([[movie3]])))
print(f"{task.titles[movie3]}: the occupation × genre cross adds {added.item():.4f}")
assert abs(added.item() - 0.4) < 1e-6

# %% [markdown]
# **2. The cost of wider layers (by hand).** With the first layer split, how many
# multiply-adds per (context, movie) pair does a deep part with hidden layers (256, 128, 64)
# cost, output unit included? And how many would the first layer alone cost per pair without
# the split, with $\mathbf z_0$ of the size printed by the check above?
#
# :::{admonition} Solution
# :class: dropdown
# After the split: $256 \cdot 128 + 128 \cdot 64 + 64 = 41{,}024$ per pair, about five times
# the 8,256 of (128, 64). Without the split the first layer alone costs
# $263 \cdot 256 = 67{,}328$ per pair, where the split leaves 256 additions.
# :::

# %% tags=["hide-input"]
assert per_pair_cost((256, 128, 64)) == 41_024 and per_pair_cost((128, 64)) == 8_256
assert z0.shape[-1] * 256 == 67_328

# %% [markdown]
# **3. Retrain without the cross (code).** The "W&D without the cross" above is the trained
# model with one cross switched off; the rest of the model never had a reason to learn what
# the cross held. Train Wide & Deep without the last movie × movie cross, under the
# comparison's budget and Wide & Deep's own setting, and compare it with the comparison's
# model (with the cross) on test pairs seen and never seen in fit. Does the deep part take
# over the memorisation?

# %% tags=["hide-input"]
# Without the cross: the comparison's budget, Wide & Deep's setting from its card and
# seed 0, so that only the cross differs from the model above (cached like it).
without_cross = {**setting_of("wide_deep"),
                 "crosses": [list(c) for c in CROSSES if c != MEMO]}
retrained, retrained_history = trained("wide_deep", task, setting=without_cross,
                                       progress=False)
print(f"retrained without the cross: kept epoch {retrained_history.best_epoch} of "
      f"{len(retrained_history.epochs)}")
W, R, S = "W&D with the cross", "W&D retrained without it", "W&D, cross switched off"
variants = {W: results["wide_deep"], R: evaluate(retrained, task, progress=False),
            S: ablated["W&D without the cross"], "markov": results["markov"]}
seen_test = np.asarray(groups[results["wide_deep"].examples] != "never")
subsets = {"all test examples": None, "seen pairs": seen_test,
           "never-seen pairs": ~seen_test}
# Holm over the six pairs of a subset, each subset at 5% / 3: all hold together at 95%
tests = {part: pairwise_of(variants, where=mask, alpha=0.05 / len(subsets))
         for part, mask in subsets.items()}
retrained_lift = lifts(retrained, sample)
often = np.asarray(groups[sample] == "5+ times")
deep_gain = (paired_difference(retrained_lift["deep"][often], lift["deep"][often])
             if often.sum() >= 2 else (np.nan, np.nan, np.nan))


def hr_cell(ev: Evaluation, mask) -> str:
    """HR@10 of an evaluation on a subset of its examples, with its 95% interval."""
    ranks = ev.ranks if mask is None else ev.ranks[mask]
    return value_text(Evaluation(ranks, ev.examples, metrics(ranks),
                                 bootstrap(ranks, 200)), "hr@10")


pd.DataFrame({f"HR@10, {part}": {label: hr_cell(ev, mask) for label, ev in
                                 variants.items()} for part, mask in subsets.items()})

# %% tags=["remove-input"]
seen, never = tests["seen pairs"], tests["never-seen pairs"]
retrained_seen, switched_seen = verdict(seen, R, W), verdict(seen, S, W)
answer = {
    "not separated from": "So yes, as far as this test can tell: trained without the "
    "cross, the rest of the model learns to rank the seen pairs as well as the model "
    "with it"
    + (", while the same cross switched off in the model trained with it is missed."
       if switched_seen == "worse than" else "."),
    "worse than": "So only in part: trained without the cross, the model still ranks "
    "the seen pairs worse than with it: the hashed cross memorises what the "
    "embeddings, shared by every pair, do not.",
    "better than": "So the cross is not needed for the seen pairs: trained without it, "
    "the model ranks them better.",
}[retrained_seen]
d, lo, hi = deep_gain
budget_note = (
    "Quick mode: both variants are smoke-test models, and these numbers say nothing "
    "yet."
    if quick else "Both variants get the comparison's full budget, so that the answer "
    "is about the model, not about a training run cut short.")
display(Markdown(
    ":::{admonition} Solution\n:class: dropdown\nThe cell above is one solution. On "
    "the test pairs seen in fit, the model retrained without the cross is "
    f"{verdict_text(seen, R, W)}, and the trained model with the cross switched "
    f"off is {verdict_text(seen, S, W)}. On the pairs never seen, the retrained "
    f"model is {verdict_text(never, R, W)}. On the pairs seen 5+ times, the "
    f"retrained model's deep part lifts the target by {d:+.2f} [{lo:+.2f}, {hi:+.2f}] "
    "logits more than the deep part of the model with the cross (paired over the same "
    f"test examples; positive: it took over part of the lift). {answer} Over all test "
    "examples the retrained model is "
    f"{verdict_text(tests['all test examples'], R, 'markov')}. {budget_note} (One "
    "trained model each, paired over the test examples; Holm over the "
    f"{seen.num_pairs} pairs of a subset, each of the {len(subsets)} subsets at "
    f"{0.05 / len(subsets):.2%}.)\n:::"))

# %% [markdown]
# **4. Bursts (to think about).** About half of a user's consecutive ratings fall in the same
# second, and [the protocol](../book/protocol.md) puts the ratings of one second in a fixed
# pseudo-random order. Two movies A and B that a user rated in one sitting: what does the
# last movie × movie cross learn from them, and should the pair (B, A) get a weight too?
# What would the cross learn if the ratings of one second were sorted by movie id instead?
#
# :::{admonition} Solution
# :class: dropdown
# Within a second the order is a coin flip: across users the pair shows up as (A, B) about
# as often as (B, A), so both directions collect weight, and the cross learns that A and B
# are rated in one sitting: a co-occurrence, not a sequence. Sorted by movie id, only the
# ascending direction would ever be a positive: the cross would learn the id order of the
# sort, a pattern with nothing to do with taste that would still look like a good
# next-movie predictor on a test set sorted the same way. The "same second" column of the
# table of top pairs shows how much of each weight comes from such bursts.
# :::

# %% tags=["hide-input"]
assert 0.4 < same_second[fit_ex].mean() < 0.6     # "about half" in exercise 4

# %% [markdown]
# ## Paper vs. here
#
# The paper {cite}`cheng2016wide` evaluated Wide & Deep on app recommendation in Google
# Play; its numbers beside this chapter's (seed 0, and the comparison's verdict over seeds):

# %% tags=["remove-input"]
fewer = 500e9 / len(fit_ex)
paper_rows = {
    "data": (
        "Google Play: over 1 billion active users, over 1 million apps, over 500 "
        "billion training examples",
        f"MovieLens 100K: {task.num_users} users, {task.num_items:,} movies, "
        f"{len(fit_ex):,} fit examples",
        f"about {fewer / 1e6:.0f} million times fewer examples: fewer pairs repeat, so "
        "there is less to memorise"),
    "task": (
        "will the user install an app shown to them (candidates from a retrieval "
        "stage)",
        "which movie the user rates next, ranked against every movie not yet rated",
        "ranking the whole catalogue is harder than scoring a short list"),
    "metric": (
        "offline AUC; app acquisitions in a 3-week online A/B test",
        "HR@10, MRR, mean rank on each user's last fifth, 95% bootstrap intervals",
        "an AUC gain need not move the top 10 of a full ranking"),
    "headline result": (
        "acquisitions +3.9% over the wide-only model (deep only: +2.9%); AUC 0.728 "
        "against 0.726 (wide only) and 0.722 (deep only)",
        f"HR@10 {value_text(results['wide_deep'], 'hr@10')} (seed 0); over the "
        f"comparison's seeds {verdict_text(comparison, 'wide_deep', 'fm')}",
        "one A/B test there; here no wide-only or deep-only model"),
    "model": (
        "32-dimensional embeddings, ReLU 1024-512-256, one cross (installed app × "
        "impression app)",
        f"{v['embed_dim']}-dimensional embeddings, ReLU {hidden_text}, four crosses "
        "hashed into 2^20 weights",
        "smaller layers keep ranking all movies affordable on a CPU"),
    "training": (
        "FTRL with L1 (wide), AdaGrad (deep), warm-started from the previous model",
        f"Adam, lr {v['lr']:g}, {penalties}, at most {v['epochs']} epochs with early "
        f"stopping, {v['num_negatives']} sampled negatives per positive, from scratch",
        ("with Adam, L1 shrinks the wide weights but does not set them to zero"
         if v["wide_l1"] else "without L1 nothing makes the wide weights sparse")
        + "; negatives are sampled movies, not impressions the user saw"),
}
paper_vs_here = pd.DataFrame.from_dict(paper_rows, orient="index",
                                       columns=["paper", "here", "why they may differ"])
with pd.option_context("display.max_colwidth", None):
    display(paper_vs_here)
