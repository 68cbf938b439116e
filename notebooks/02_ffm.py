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
# # 02 · Field-aware Factorization Machines
#
# A factorization machine ([chapter 01](01_fm.ipynb)) gives every feature **one** latent vector
# and uses it against every other feature. The field-aware factorization machine (FFM)
# {cite}`juan2016ffm`, which won two click-through-rate competitions (Criteo and Avazu) for its
# authors, gives every feature one vector **per field it can meet**. This chapter derives it,
# computes it without a loop over pairs, checks the result against the textbook double sum,
# counts where its many extra vectors go, and sets the comparison's FFM
# ([chapter 08](08_comparison.ipynb)) beside FM, matrix factorisation and the baselines on the
# next-movie task.

# %% tags=["hide-input"]
# %matplotlib inline
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from matplotlib.colors import LogNorm

from featint import build_task, load_movielens
from featint.budget import Budget, model_hparams
from featint.cache import trained
from featint.chapter import (
    evaluate_all,
    plot_histories,
    plot_results,
    results_table,
    seed_spread,
)
from featint.evaluate import (
    HIGHER_IS_BETTER,
    LABELS,
    evaluate,
    quick,
    rank_examples,
    subsample,
)
from featint.layers import FeaturesEmbedding
from featint.models import build_model, count_parameters
from featint.models.ffm import FFM
from featint.show import source
from featint.synthetic import synthetic_movielens
from featint.task import Features
from featint.train import fit

print("quick mode:", quick(), "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## One vector per feature must serve every field
#
# Take a movie in the user's history, say *Star Wars*. In FM its vector $\mathbf v_\text{Star
# Wars}$ meets the candidate movie (is the next film like this one?), the hour of the day (do
# people watch it in the evening?), the occupation of the user, the year bucket of the
# candidate, and so on, and every one of these dot products is read off the **same** $k$
# numbers. The relation "similar films" and the relation "evening film" have nothing to do with
# each other, yet FM must fit both in one latent space.
#
# The FFM paper's example is an ad impression with three fields, Publisher = ESPN,
# Advertiser = Nike, Gender = Male. FM scores the pairs as
# $\langle \mathbf v_\text{ESPN}, \mathbf v_\text{Nike}\rangle + \langle \mathbf v_\text{ESPN},
# \mathbf v_\text{Male}\rangle + \langle \mathbf v_\text{Nike}, \mathbf v_\text{Male}\rangle$:
# $\mathbf v_\text{ESPN}$ is used to learn both its effect with Nike and its effect with Male.
# FFM gives ESPN one vector for the advertiser field (A) and one for the gender field (G):
#
# $$\langle \mathbf v_{\text{ESPN},A}, \mathbf v_{\text{Nike},P}\rangle
# + \langle \mathbf v_{\text{ESPN},G}, \mathbf v_{\text{Male},P}\rangle
# + \langle \mathbf v_{\text{Nike},G}, \mathbf v_{\text{Male},A}\rangle .$$
#
# ## The model
#
# With $f_i$ the field of feature $i$ and $\mathbf v_{i,f} \in \mathbb R^k$ the latent vector
# feature $i$ uses when it meets a feature of field $f$, the FFM score is (the paper writes
# $\mathbf w_{j_1, f_2}$ for our $\mathbf v_{i, f_j}$ and leaves out the linear part; we keep
# $w_0 + \sum_i w_i x_i$ as in every model of the book):
#
# $$\hat y(\mathbf x) = w_0 + \sum_{i=1}^n w_i x_i + \sum_{i=1}^n \sum_{j=i+1}^n \langle
# \mathbf v_{i, f_j}, \mathbf v_{j, f_i} \rangle\, x_i x_j .$$
#
# Three consequences:
#
# - **Parameters.** With $m$ fields, a feature can keep a vector for each of them: $n\,m\,k$
#   latent parameters instead of FM's $n\,k$. Ours keep $m - 1$: a feature never needs a vector
#   for its own field, because featint does not model pairs inside one field (below).
# - **No sum-square trick.** The vector used for $i$ depends on its partner's field, so the
#   double sum does not collapse into a square of one sum; the paper computes it in
#   $O(s^2 k)$ for the $s$ non-zero features of an example. Grouping the non-zeros by field
#   brings it down to $O(s\,(m-1)\,k + m^2 k)$, as shown next.
# - **Latent spaces per field pair.** For a feature $i$ of field $f$, $\mathbf v_{i,g}$ only
#   ever meets vectors $\mathbf v_{j,f}$ of features $j$ of field $g$: each pair of fields has
#   its own latent space, so FFM typically needs a smaller $k$ than FM (the paper uses
#   $k = 4$).
#
# ## Fields on the next-movie task
#
# The task's schema ([chapter 00](00_data.ipynb)) defines $m = 17$ fields: $m_C = 14$ on the
# context side, $m_M = 3$ on the movie side. Some are categorical (one non-zero), some are bags
# (the history: every movie watched so far with value $1/t$; the genres of the candidate), some
# are numeric (a fixed set of features with real values):

# %% tags=["hide-input"]
ml = load_movielens()
task = build_task(ml)
schema = task.schema
m, m_C, m_M = len(schema.fields), len(schema.context_fields), len(schema.item_fields)
assert (m, m_C, m_M) == (17, 14, 3)  # quoted in the text
fields = pd.DataFrame([{"field": f.name, "side": f.side, "kind": f.kind,
                        "features": f.size} for f in schema.fields])
display(fields.rename_axis("f").T)

# %% [markdown]
# ### Fields with several non-zeros
#
# FFM is defined on feature pairs. A pair inside one field (two movies of the history, two
# genres of the candidate, two entries of `genre_share`) would need the vector
# $\mathbf v_{i, f_i}$ of a feature for its **own** field. featint keeps $m - 1$ vectors per
# feature, so such pairs are **not modelled**: FFM here sums over pairs of features in
# *different* fields. (FM in chapter 01 does include them.)
#
# Across fields, group the non-zeros by field. With the field vector
# $\mathbf u_{f,g} = \sum_{i : f_i = f} x_i \mathbf v_{i,g}$ ("field $f$ as seen from field
# $g$"), the pairs between fields $f$ and $g$ add up to one dot product, **exactly**:
#
# $$\sum_{i : f_i = f} \; \sum_{j : f_j = g} \langle \mathbf v_{i,g}, \mathbf v_{j,f}\rangle\,
# x_i x_j = \Big\langle \sum_{i : f_i = f} x_i \mathbf v_{i,g},\ \sum_{j : f_j = g} x_j
# \mathbf v_{j,f} \Big\rangle = \langle \mathbf u_{f,g}, \mathbf u_{g,f} \rangle,
# \qquad
# \hat y(\mathbf x) = w_0 + \sum_i w_i x_i + \sum_{f < g} \langle \mathbf u_{f,g}, \mathbf
# u_{g,f}\rangle .$$
#
# For a categorical field $\mathbf u_{f,g}$ is the one vector $\mathbf v_{i,g}$; for the history
# bag it is the mean of the watched movies' vectors towards field $g$.
#
# ## The computation
#
# `featint/models/ffm.py` stores the $m-1$ vectors of feature $i$ side by side, as one row of
# width $(m-1)k$ of a single embedding table; `column[f, g]`, built in the constructor, says
# where $\mathbf v_{\cdot, g}$ sits in a row of a feature of field $f$ (the columns skip $f$
# itself). `field_vectors` (`FeaturesEmbedding.fields`, which sums each field's slots)
# gives all $\mathbf u_{f,g}$ of a batch, a tensor of shape `(batch, fields, m - 1, k)`;
# `block` then picks the pairs' vectors with one index tensor, with no loop over field
# pairs. The movie side is computed once for each of the 1,682 movies and the candidates'
# rows looked up (`lookup`): a training batch has 5,120 candidates, three times as many.
#
# Like FM, the score splits by side. Context-context pairs are computed once per context,
# movie-movie pairs once per movie, and the $m_C \times m_M = 14 \times 3 = 42$ context-movie
# pairs are one dot product of two flattened blocks:
#
# $$\sum_{f \in C} \sum_{g \in M} \langle \mathbf u_{f,g}, \mathbf u_{g,f} \rangle =
# \big\langle [\mathbf u_{f,g}]_{f \in C, g \in M},\ [\mathbf u_{g,f}]_{f \in C, g \in M}
# \big\rangle ,$$
#
# a $42k$-dimensional context vector against a $42k$-dimensional movie vector, so ranking a
# batch of contexts against all 1,682 movies is one matrix product (`cross_dot`), as for FM:

# %%
source(FFM.field_vectors, FFM.block, FFM.forward)

# %% [markdown]
# ### Check: the textbook double sum
#
# Here is the equation exactly as written, in float64: every pair of non-zero features of the
# concatenated context and movie, one at a time, skipping pairs inside a field.

# %%
def ffm_naive(model, context, b, movie):
    """w_0 + sum_i w_i x_i + sum_{i<j, f_i != f_j} <v_{i,f_j}, v_{j,f_i}> x_i x_j for
    context row b and movie index `movie`, looping over pairs of non-zero features."""
    c, m, k = model.num_context_fields, model.num_fields, model.embed_dim
    items = model.items
    slots = [(int(i), float(x), int(f))                 # (feature i, x_i, field f_i)
             for i, x, f in zip(context.idx[b], context.val[b], context.field,
                                strict=True)]
    slots += [(int(i), float(x), c + int(f))            # item fields come after the
              for i, x, f in zip(items.idx[movie], items.val[movie], items.field,
                                 strict=True)]
    slots = [s for s in slots if s[1] != 0.0]            # non-zeros only
    w = model.linear.weight.weight.detach().squeeze(-1)
    V = model.embedding.embedding.weight.detach().view(-1, m - 1, k)

    def v(i, f_i, g):                                    # v_{i,g}; no column for f_i
        return V[i, g - (g > f_i)]

    y = float(model.w0.detach()) + sum(float(w[i]) * x for i, x, _ in slots)
    for s, (i, x_i, f_i) in enumerate(slots):
        for j, x_j, f_j in slots[s + 1:]:
            if f_i != f_j:
                y += float(v(i, f_i, f_j) @ v(j, f_j, f_i)) * x_i * x_j
    return y


# %% [markdown]
# A model with random weights large enough that every term matters (float64), test contexts
# with histories of different lengths (so the history bags of the batch are padded with index
# 0, value 0), the target and two sampled negatives per context. Both ways of calling the model,
# with candidates `(batch, 3)` and with all movies `(batch, 1682)`, must agree with the double
# sum:

# %%
check = build_model("ffm", task, seed=0, embed_dim=4).double().eval()
with torch.no_grad():
    for p in check.parameters():
        p.normal_(0.0, 0.3)
    check.embedding.embedding.weight[0].zero_()          # padding rows stay zero
    check.linear.weight.weight[0].zero_()
test_ex = task.examples("test")
short = test_ex[task.t[test_ex] <= 60]                   # keep the double loop short
ex = short[np.argsort(task.t[short])][np.linspace(0, len(short) - 1, 4).astype(int)]
ctx = task.context(ex)
ctx = Features(ctx.idx, ctx.val.double(), ctx.field)
candidates = torch.from_numpy(np.column_stack(
    [task.target[ex], task.sample_negatives(ex, 2, np.random.default_rng(0))]))
with torch.no_grad():
    y_candidates = check(ctx, candidates)
    y_all = check(ctx, torch.arange(task.num_items))
y_naive = torch.tensor([[ffm_naive(check, ctx, b, int(movie)) for movie in row]
                        for b, row in enumerate(candidates)], dtype=torch.float64)
print("history lengths:", task.t[ex].tolist(), "| padding slots per row:",
      (ctx.val == 0).sum(1).tolist())
print("max |efficient - naive|:", (y_candidates - y_naive).abs().max().item())
assert (ctx.val == 0).any()
assert torch.allclose(y_candidates, y_naive, rtol=0, atol=1e-10)
assert torch.allclose(y_all.gather(1, candidates), y_naive, rtol=0, atol=1e-10)

# %% [markdown]
# ## Parameters, and which pairs they serve
#
# FM has $1 + n + nk$ parameters, FFM $1 + n + n(m-1)k$: with the same $k$, $m - 1$ times FM's
# latent parameters (the counts include the padding row of index 0).

# %% tags=["hide-input"]
budget = Budget()
sizes = pd.DataFrame({
    name: {"parameters": count_parameters(build_model(name, task,
                                                      embed_dim=budget.embed_dim)),
           "latent vectors per feature": {"fm": 1, "ffm": m - 1}[name]}
    for name in ("fm", "ffm")}).T
sizes["× FM"] = (sizes["parameters"] / sizes.loc["fm", "parameters"]).round(1)
print(f"k = {budget.embed_dim} (the comparison's embedding size)")
display(sizes)

# %% [markdown]
# Not every pair can matter to a recommender. The model ranks the movies **for one context**,
# and a term that is the same for every candidate movie of a context shifts all their scores
# alike: it cannot change the ranking. That is true of every context-context pair. Only the
# context-movie pairs rank movies differently for different contexts; the movie-movie pairs
# add a fixed amount per movie, the same for every context, like popularity.
#
# In FM one vector per feature serves all three kinds of pair. In FFM every vector serves one
# kind only, so the schema says how many serve which: a feature of a context field keeps
# $m_C - 1$ vectors for the other context fields and $m_M$ for the movie fields; a feature of a
# movie field keeps $m_C$ for the context fields and $m_M - 1$ for the other movie fields.

# %%
def vectors_by_pair_kind(context_sizes, movie_sizes):
    """FFM's latent vectors by the kind of field pair they serve, from the number of
    features of each context field and of each movie field."""
    m_C, m_M = len(context_sizes), len(movie_sizes)
    n_C, n_M = sum(context_sizes), sum(movie_sizes)
    return {"context x context": n_C * (m_C - 1),
            "context x movie": n_C * m_M + n_M * m_C,
            "movie x movie": n_M * (m_M - 1)}


def field_vectors_by_kind(field):
    """The same count for one field's features alone (the others given 0 features)."""
    if field.side == "context":
        return vectors_by_pair_kind([field.size] + [0] * (m_C - 1), [0] * m_M)
    return vectors_by_pair_kind([0] * m_C, [field.size] + [0] * (m_M - 1))


per_field = pd.DataFrame.from_dict(
    {f.name: field_vectors_by_kind(f) for f in schema.fields}, orient="index")
per_field.insert(0, "features", [f.size for f in schema.fields])
per_field.loc["all fields"] = per_field.sum()
counts = vectors_by_pair_kind([f.size for f in schema.context_fields],
                              [f.size for f in schema.item_fields])
assert counts == per_field.loc["all fields"].drop("features").to_dict()
assert sum(counts.values()) == (schema.num_features - 1) * (m - 1)  # no padding row
display(per_field)

# %% tags=["remove-input"]
total = sum(counts.values())
cc, cx = counts["context x context"], counts["context x movie"]
mm = counts["movie x movie"]
big = per_field.drop("all fields")["context x context"].nlargest(2)
assert cc > total / 2 and cc > cx  # "most of FFM's vectors", in the text
k = budget.embed_dim
held = (f"{big.iloc[0]:,} of them each" if big.iloc[0] == big.iloc[1] else
        f"{big.iloc[0]:,} and {big.iloc[1]:,} of them")
display(Markdown(
    f"FFM keeps {total:,} latent vectors of $k$ numbers each ({total * k:,} "
    f"parameters at $k = {k}$). **{cc:,} of them ({cc / total:.0%}) serve "
    f"context-context pairs**, which cannot change any ranking; {cx:,} "
    f"({cx / total:.0%}) serve the context-movie pairs, the only ones that rank "
    f"movies differently for different contexts; {mm:,} ({mm / total:.0%}) serve the "
    f"movie-movie pairs. Most of the context-context vectors belong to the large id "
    f"fields: `{big.index[0]}` and `{big.index[1]}` hold {held}. They are trained all "
    "the same, because the training loss scores each candidate's logit on its own and "
    "a context's offset moves it (exercise 3)."))

# %% [markdown]
# ## Training
#
# Every model on the next-movie task is the comparison's: trained once per machine under the
# budget of [chapter 08](08_comparison.ipynb), with its per-model settings, seed 0, and read
# back from the model cache after that (`featint.cache.trained`), so FM here is the very FM of
# chapter 01. The budget, and the settings of the models this chapter uses (quick mode: at
# most 2 epochs on 4,096 examples):

# %%
print(budget.describe())
settings = {name: {**model_hparams(name, budget),
                   "lr": budget.lr_for(name)} for name in ("mf", "fm", "ffm")}
display(pd.DataFrame.from_dict(settings, orient="index"))

# %%
mf, mf_history = trained("mf", task, progress=False)
fm, fm_history = trained("fm", task, progress=False)
ffm, ffm_history = trained("ffm", task, progress=False)
models = {"mf": mf, "fm": fm, "ffm": ffm}
histories = {"mf": mf_history, "fm": fm_history, "ffm": ffm_history}
assert ffm.embed_dim == budget.embed_dim
assert budget.embed_dim == 16 and budget.weight_decay == 0  # quoted in the text
pd.DataFrame([{"parameters": count_parameters(models[name]),
               "best epoch": h.best_epoch, "epochs run": len(h.epochs),
               "best valid MRR": h.best["valid_mrr"],
               "s per epoch": np.mean([row["seconds"] for row in h.epochs])}
              for name, h in histories.items()], index=list(histories)).round(4)

# %% [markdown]
# How FM and FFM learn: the training loss and the validation MRR after each epoch (all-movie
# ranking of the same validation examples for both; neither has dropout).

# %%
plot_histories({"fm": fm_history, "ffm": ffm_history})
plt.show()


# %% tags=["remove-input"]
def curve_sentence(label, h):
    """What one training curve shows, in words, from its numbers."""
    b, run = h.best_epoch, len(h.epochs)
    best, last = h.epochs[b - 1], h.epochs[-1]
    after = last["loss"] < best["loss"] and last["valid_mrr"] < best["valid_mrr"]
    if run > b and after:
        return (f"{label}'s validation MRR was best at epoch {b} "
                f"({best['valid_mrr']:.4f}); in the {run - b} epochs after it the "
                f"training loss kept falling ({best['loss']:.4f} to "
                f"{last['loss']:.4f}) while the validation MRR fell to "
                f"{last['valid_mrr']:.4f}: it fitted the training examples better "
                "and ranked unseen ones worse, which is overfitting. Early stopping "
                f"kept epoch {b}.")
    if b == run:
        return (f"{label}'s validation MRR was at its best in its last epoch ({b} of "
                f"at most {budget.epochs}, {best['valid_mrr']:.4f}): within this "
                "budget it shows no overfitting.")
    return (f"{label}'s validation MRR was best at epoch {b} of {run} "
            f"({best['valid_mrr']:.4f}; {last['valid_mrr']:.4f} in the last epoch).")


seconds = {name: np.mean([row["seconds"] for row in h.epochs])
           for name, h in histories.items()}
display(Markdown(
    curve_sentence("FM", fm_history) + " " + curve_sentence("FFM", ffm_history)
    + f" An epoch of FFM took {seconds['ffm'] / seconds['fm']:.1f} times as long as "
    f"one of FM on this machine ({seconds['ffm']:.1f} s against "
    f"{seconds['fm']:.1f} s)."))

# %% [markdown]
# Ranking stays cheap: FFM ranks all movies with one matrix product per batch of contexts,
# as FM does, only $42k$ wide instead of $k$. The time to rank 2,000 test contexts against
# all movies, on this machine:

# %% tags=["hide-input"]
timed = subsample(task.examples("test"), 2000)
rank_seconds = {}
for name, model in models.items():
    start = time.perf_counter()
    rank_examples(model, task, timed)
    rank_seconds[name] = time.perf_counter() - start
pd.Series(rank_seconds, name="seconds to rank 2,000 contexts x 1,682 movies").round(2)

# %% [markdown]
# ## Test results
#
# The test set against all movies: FFM beside the baseline ladder (random scores, the most
# popular movies, a first-order Markov chain on the last movie, ItemKNN), matrix factorisation
# (user and movie only: no side features, no other interactions) and FM (every pair, one
# vector per feature). Bars are 95% bootstrap intervals over test examples.

# %%
results = evaluate_all(task, models)
results_table(results)

# %%
plot_results(results)
plt.show()

# %% [markdown]
# The same models with other seeds, from the comparison of chapter 08 (when `results/` holds
# it): the bootstrap intervals above cover the choice of test examples, not the seed.

# %%
seed_spread(results, ["mf", "fm", "ffm"])

# %% tags=["remove-input"]
NAMES = {"random": "random scores", "popular": "most popular", "markov": "Markov",
         "itemknn": "ItemKNN", "mf": "MF", "fm": "FM", "ffm": "FFM"}


def versus(a, b, metric):
    """'better', 'worse' or 'overlap': model a against b, 95% intervals of metric."""
    lo_a, hi_a = results[a].intervals[metric]
    lo_b, hi_b = results[b].intervals[metric]
    if lo_a > hi_b:
        return "better" if HIGHER_IS_BETTER[metric] else "worse"
    if hi_a < lo_b:
        return "worse" if HIGHER_IS_BETTER[metric] else "better"
    return "overlap"


def value(name, metric):
    lo, hi = results[name].intervals[metric]
    digits = 1 if "rank" in metric else 4
    mid = results[name].metrics[metric]
    return f"{mid:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def pair_sentence(metric):
    said = {"better": "FFM's is better, and the intervals do not overlap",
            "worse": "FFM's is worse, and the intervals do not overlap",
            "overlap": "the intervals overlap: this run does not separate them"}
    return (f"FFM's test {LABELS[metric]} is {value('ffm', metric)} and FM's "
            f"{value('fm', metric)}; {said[versus('ffm', 'fm', metric)]}.")


others = [n for n in results if n not in ("ffm", "fm")]
verdict = {}
for other in others:
    found = {versus("ffm", other, metric) for metric in ("hr@10", "mrr")}
    verdict[other] = found.pop() if len(found) == 1 else "mixed"
groups = {key: ", ".join(NAMES[n] for n in others if verdict[n] == key)
          for key in ("better", "overlap", "worse", "mixed")}
ladder_text = "; ".join(text for text in (
    groups["better"] and f"better than {groups['better']} on both HR@10 and MRR",
    groups["overlap"] and f"not separated from {groups['overlap']}",
    groups["worse"] and f"worse than {groups['worse']} on both",
    groups["mixed"] and f"separated on one metric only from {groups['mixed']}") if text)
display(Markdown(
    pair_sentence("hr@10") + " " + pair_sentence("mrr") + f" Beside the rest, FFM is "
    f"{ladder_text} (judged by whether their 95% intervals overlap). These are the "
    "numbers of seed 0 "
    "alone; the seed table above, and chapter 08, say whether they hold over seeds."))
for name, ev in results.items():
    assert all(np.isfinite(list(ev.metrics.values()))), name
    assert 1 <= ev.metrics["mean_rank"] <= task.num_items, name

# %% [markdown]
# ## Which field pairs matter?
#
# FFM's pairwise term is a sum over field pairs, $\sum_{f<g} \langle \mathbf u_{f,g}, \mathbf
# u_{g,f}\rangle$, so it can be read pair by pair. The strength of a pair of fields is the mean
# of $\lvert \langle \mathbf u_{f,g}, \mathbf u_{g,f}\rangle \rvert$ over the test contexts
# with their true next movie (`FFM.pair_terms`; for single-valued fields this is $\lvert
# \langle \mathbf v_{i,g}, \mathbf v_{j,f}\rangle x_i x_j \rvert$). A large value means the
# pair moves the score a lot, in either direction; a large context-context value moves every
# candidate of the context alike.

# %%
sample = subsample(task.examples("test"), 2000 if quick() else None)
strength = torch.zeros(m, m, dtype=torch.float64)  # [f, g] for f < g; zero elsewhere
for start in range(0, len(sample), 1024):
    ex = sample[start:start + 1024]
    target = torch.from_numpy(task.target[ex])[:, None]
    strength += ffm.pair_terms(task.context(ex), target).abs().sum((0, 1)).double()
strength /= len(sample)
names = [f.name for f in schema.fields]


def pair_kind(f, g):
    sides = {f < m_C, g < m_C}
    return ("context x context" if sides == {True} else
            "movie x movie" if sides == {False} else "context x movie")


# %% tags=["hide-input"]
shown = strength.T.numpy().copy()       # row g > column f: each pair drawn once
shown[np.triu_indices(m)] = np.nan
fig, ax = plt.subplots(figsize=(8.5, 7.5))
im = ax.imshow(shown, cmap="viridis", norm=LogNorm())
ax.set_xticks(range(m), names, rotation=90)
ax.set_yticks(range(m), names)
ax.set(xlabel="field $f$", ylabel="field $g$")
for pos in (m_C - 0.5,):
    ax.axhline(pos, color="0.4", lw=1)
    ax.axvline(pos, color="0.4", lw=1)
ax.text(m - 1, 0, "above the horizontal line: context x context pairs,\n"
        "the same for every candidate movie of a context;\n"
        "below it, left: context x movie pairs;\nbottom right: movie x movie",
        ha="right", va="top", fontsize=9)
ax.set_title("FFM: strength of each field pair over test examples\n"
             "(grey lines separate context and movie fields)")
bar = fig.colorbar(im, ax=ax, shrink=0.8)
bar.set_label(r"mean $|\langle \mathbf{u}_{f,g}, \mathbf{u}_{g,f} \rangle|$"
              " (log scale)")
plt.show()

# %% tags=["hide-input"]
rows = [{"field f": names[f], "field g": names[g], "kind": pair_kind(f, g),
         "mean |term|": float(strength[f, g])}
        for f in range(m) for g in range(f + 1, m)]
pairs_table = pd.DataFrame(rows).sort_values("mean |term|", ascending=False)
pairs_table.head(8).reset_index(drop=True)

# %% tags=["remove-input"]
by_kind = pairs_table.groupby("kind")["mean |term|"].sum()
share = (by_kind / by_kind.sum()).reindex(list(counts), fill_value=0.0)
top = pairs_table.head(8)["kind"].value_counts()
top_cx = int(top.get("context x movie", 0))
first = pairs_table.iloc[0]
display(Markdown(
    f"The strongest pair is `{first['field f']}` x `{first['field g']}` "
    f"({first['kind']}); {top_cx} of the eight strongest are context-movie pairs. Of "
    f"the summed strength of all pairs, {share['context x context']:.0%} lies in "
    "context-context pairs, which shift every candidate movie of a context alike, "
    f"{share['context x movie']:.0%} in the context-movie pairs that can rank, and "
    f"{share['movie x movie']:.0%} in movie-movie pairs."))

# %% [markdown]
# ## What FFM leaves open
#
# FFM fixes FM's "one vector for everything" at a price of $m - 1$ times the latent
# parameters, most of them spent, on this task, on pairs that cannot change a ranking; and
# both models still add every pair with weight one, useful or not: an irrelevant pair is only
# as quiet as its vectors are small. The next chapter's attentional FM
# ([chapter 03](03_afm.ipynb)) keeps one vector per feature and instead learns, for each
# example, **how much each pair counts**.
#
# ## Paper vs. here
#
# The FFM paper {cite}`juan2016ffm` measured click prediction on advertising logs; this
# chapter measures next-movie ranking. What each did, with this chapter's numbers:

# %% tags=["remove-input"]
task_counts = task.counts()
init_std = inspect.signature(FeaturesEmbedding).parameters["std"].default
ffm_decay = budget.fit_args("ffm")["weight_decay"]
decay_text = ("none: early stopping only" if ffm_decay == 0 else
              f"weight decay {ffm_decay:g}, and early stopping")
decay_text += " (chosen on validation; the paper's L2 was among FFM's trials)"
ffm_k = ffm.embed_dim
relation = {"better": "FFM higher, intervals disjoint",
            "worse": "FFM lower, intervals disjoint",
            "overlap": "intervals overlap"}[versus("ffm", "fm", "hr@10")]
table = f"""
| | FFM paper | here |
| --- | --- | --- |
| data | Criteo and Avazu ad logs (tens of millions of impressions), plus smaller \
public sets | MovieLens 100K, next-movie task: {task_counts['fit']:,} fit examples |
| task, metric | click or not; logloss on held-out impressions \
| rank all {task.num_items:,} movies; HR@10, MRR, mean rank (test set) |
| headline | FFM's logloss below that of a linear model, Poly2 and FM on Criteo \
and Avazu; won both Kaggle competitions | HR@10: FFM {value('ffm', 'hr@10')}, FM \
{value('fm', 'hr@10')} ({relation}; seed 0) |
| negatives | the real non-clicks | {budget.num_negatives} movies per positive, drawn \
uniformly from those not yet rated |
| latent size $k$ | 4 | {ffm_k}, chosen on validation (the paper's 4 was one of \
the trials) |
| regularisation | L2, $\\lambda = 2 \\cdot 10^{{-5}}$ | {decay_text} |
| optimiser | AdaGrad-style SGD, learning rate 0.2, one instance at a time \
| Adam, learning rate {budget.lr_for('ffm'):g}, batches of {budget.batch_size:,} |
| initialisation | uniform in $[0, 1/\\sqrt k]$ | normal, std {init_std:g} |
| instance normalisation | each $\\mathbf x$ scaled to unit length | none: bags \
weighted $1/\\lvert \\text{{bag}} \\rvert$, numeric fields scaled |
| early stopping | on validation logloss; the paper stresses that FFM overfits \
after few epochs | on validation MRR, patience {budget.patience}, at most \
{budget.epochs} epochs |
| pairs inside a field | modelled ($m$ vectors per feature) | not modelled ($m - 1$) |
"""
display(Markdown(table))

# %% [markdown]
# Why the results may differ: the paper predicts clicks, where every field pair can move the
# probability it is judged on; here only the context-movie pairs can move a ranking, and
# most of FFM's vectors serve other pairs (above). MovieLens 100K is a few orders of magnitude
# smaller than the CTR logs, which leaves a model with many parameters little data for each;
# the negatives are sampled, not observed; and the comparison gives every model one budget
# ($k$, no penalty, early stopping) instead of the paper's setting for FFM: exercise 2 tries
# that setting on a small task.
#
# ## Summary
#
# - FFM gives feature $i$ a vector $\mathbf v_{i,f}$ per field $f$ it meets and scores a pair
#   by $\langle \mathbf v_{i,f_j}, \mathbf v_{j,f_i} \rangle x_i x_j$: $m - 1$ times FM's latent
#   parameters here.
# - There is no sum-square trick, but pooling each field towards each other field,
#   $\mathbf u_{f,g}$, makes every field pair one dot product, checked against the double sum.
# - The context/movie split survives: ranking all movies is still one matrix product, $42k$
#   wide instead of $k$.
# - Context-context pairs cannot change a ranking, and on this schema they hold most of FFM's
#   vectors: count them from the schema before paying for them.
# - Whether the extra vectors help is measured, not assumed: the test table and the seed table
#   set FFM beside FM, MF and the baselines with their intervals.
#
# ## Exercises
#
# **1. Count by hand.** A schema has two context fields, `user` (100 features) and `hour`
# (24), and two movie fields, `movie` (50) and `genre` (6, a bag). With $k = 4$: (a) how many
# latent parameters do FM and featint's FFM have? (b) How many of FFM's vectors serve
# context-context, context-movie and movie-movie pairs? (c) Which of these can change the
# ranking of the movies for one context? (d) The paper's FFM keeps $m$ vectors per feature,
# one for its own field too. Which of those extra vectors could ever be used here?
#
# :::{admonition} Solution
# :class: dropdown
#
# (a) $n = 180$ features. FM: $180 \cdot 4 = 720$. FFM, $m = 4$ fields: $180 \cdot 3 = 540$
# vectors, $2{,}160$ parameters.
#
# (b) Context features ($n_C = 124$) keep $m_C - 1 = 1$ context vector and $m_M = 2$ movie
# vectors each; movie features ($n_M = 56$) keep $m_C = 2$ context vectors and $m_M - 1 = 1$
# movie vector. Context-context: $124$. Context-movie: $124 \cdot 2 + 56 \cdot 2 = 360$.
# Movie-movie: $56$. Total $540$.
#
# (c) Only the context-movie pairs rank movies differently for different contexts. The
# movie-movie pairs do change the order of the movies, but in the same way for every context,
# like popularity; the context-context pairs never change it.
#
# (d) A vector for a feature's own field only meets another feature of the same field of the
# same example. `user`, `hour` and `movie` are one-hot: one non-zero each, so their
# $100 + 24 + 50$ own-field vectors would never be used. Only `genre`, a bag, has pairs inside
# the field: its $6$ own-field vectors.
# :::

# %% tags=["remove-cell"]
assert vectors_by_pair_kind([100, 24], [50, 6]) == {
    "context x context": 124, "context x movie": 360, "movie x movie": 56}

# %% [markdown]
# **2. The paper's setting.** The FFM paper uses $k = 4$ and an L2 penalty
# $\lambda = 2 \cdot 10^{-5}$; the comparison's FFM uses $k = 16$ and none. On the synthetic
# task of chapter 01 (`build_task(synthetic_movielens(seed=0))`, small enough to train in
# seconds), train FFM three ways with `fit`: $k = 16$ without a penalty, $k = 4$ without,
# and $k = 4$ with `weight_decay=2e-5`, each for 15 epochs with `patience=15`, so that the
# whole validation curve shows. Which peaks highest, and which falls after its peak? (featint's
# `weight_decay` is Adam's L2 penalty on every parameter at every step; the paper's
# AdaGrad-style SGD penalises only the features of the instance at hand, so the same
# $\lambda$ is not the same strength.) The same question on MovieLens takes minutes per model:
# `trained("ffm", task, budget=Budget(embed_dim=4, weight_decay=2e-5))`.

# %% tags=["hide-input"]
syn = build_task(synthetic_movielens(seed=0))
variants = {"k = 16, no L2": (16, 0.0), "k = 4, no L2": (4, 0.0),
            "k = 4, L2 2e-5": (4, 2e-5)}
syn_histories, syn_valid = {}, {}
for label, (k, decay) in variants.items():
    model = build_model("ffm", syn, seed=0, embed_dim=k)
    syn_histories[label] = fit(model, syn, epochs=15, patience=15, weight_decay=decay,
                               seed=0, progress=False, verbose=False)
    # fit restores the best epoch: its validation ranks, with bootstrap intervals
    syn_valid[label] = evaluate(model, syn, split="valid", progress=False)
plot_histories(syn_histories)
plt.show()
summary = pd.DataFrame.from_dict({label: {
    "best epoch": h.best_epoch, "epochs run": len(h.epochs),
    "valid MRR (best epoch)": syn_valid[label].metrics["mrr"],
    "95% interval": "[{:.4f}, {:.4f}]".format(*syn_valid[label].intervals["mrr"]),
    "valid MRR (last epoch)": h.epochs[-1]["valid_mrr"]}
    for label, h in syn_histories.items()}, orient="index")
display(summary.round(4))

top = summary["valid MRR (best epoch)"].idxmax()
clear = [label for label in variants if label != top
         and syn_valid[label].intervals["mrr"][1] < syn_valid[top].intervals["mrr"][0]]
if len(clear) == len(variants) - 1:
    verdict = "and its 95% interval lies above both others'"
elif clear:
    verdict = f"its 95% interval lies above that of `{clear[0]}` only"
else:
    verdict = "but the 95% intervals of all three overlap: they do not separate"
drop = summary["valid MRR (best epoch)"] - summary["valid MRR (last epoch)"]
fell = ", ".join(f"`{label}` by {d:.4f}" for label, d in drop.items() if d > 0)
l2 = (summary.loc["k = 4, L2 2e-5", "valid MRR (best epoch)"]
      - summary.loc["k = 4, no L2", "valid MRR (best epoch)"])
display(Markdown(
    f"On this synthetic task ({len(syn_valid[top].ranks)} validation examples), "
    f"`{top}` has the highest validation MRR at its best epoch, {verdict}. After the "
    "best epoch "
    + (f"validation MRR fell: {fell}." if fell else "no variant's validation MRR fell.")
    + f" The paper's L2 penalty moved the $k = 4$ model's MRR by {l2:+.4f}. Nothing "
    "here says what the same settings do on MovieLens: FFM's tuning trials do (chapter "
    "08 shows them)."))

# %% [markdown]
# **3. Pairs that cannot rank.** (a) Context-context pairs cannot change a ranking. Why does
# training still move their vectors? (b) Could you delete them from FFM without changing
# which rankings the model can express? From FM? (c) With which loss would they receive no
# gradient at all?
#
# :::{admonition} Solution
# :class: dropdown
#
# (a) The loss is binary cross-entropy on each candidate's logit. A context's offset moves
# all its candidates' probabilities together, towards 1 or towards 0, and the loss of the
# one positive and four negatives depends on where they sit, so the offset has a gradient
# (unless positive and negatives pull exactly equally).
#
# (b) In FFM, yes: a vector $\mathbf v_{i,g}$ of a context feature $i$ towards a context
# field $g$ appears in no other term, so deleting all of them (with the context's linear
# terms) leaves every ranking the model can produce within reach; it removes the vectors
# counted in the context-context column above. In FM, no parameters can go: the same
# $\mathbf v_i$ serves the feature's context-context and context-movie pairs, so the
# context-context terms could be dropped from the score, but their vectors cannot, and while
# they are in the score their gradient pulls on the vectors the ranking uses too.
#
# (c) With a loss that depends on the candidates' logits only through their differences:
# a softmax over the positive and its negatives, or BPR's $-\log \sigma(\hat y_{+} -
# \hat y_{-})$. A per-context offset cancels from both, so its gradient is exactly zero.
# :::
