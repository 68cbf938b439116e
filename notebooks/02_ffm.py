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
import torch.nn.functional as F
from IPython.display import Markdown, display
from matplotlib.colors import LogNorm

from featint import build_task, load_movielens
from featint.cards import budget_rows, card
from featint.chapter import (
    evaluate_all,
    load_comparison,
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
from featint.evaluate import evaluate, per_example, rank_examples, subsample
from featint.features import Features
from featint.layers import FeaturesEmbedding
from featint.models import build_model, count_parameters
from featint.models.ffm import FFM
from featint.show import source
from featint.stats import mean_interval, pairwise
from featint.synthetic import synthetic_movielens
from featint.train import fit
from featint.training import trained

config = current()
quick = config.quick
print("quick mode:", quick, "| torch threads:", torch.get_num_threads())

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
# (the history: the last $W$ movies rated before $t$, each with value $1/\min(t, W)$; the
# genres of the candidate), some are numeric (a fixed set of features with real values):

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
budget = config.budget
sizes = pd.DataFrame({
    name: {"parameters": count_parameters(build_model(name, task,
                                                      embed_dim=budget.embed_dim)),
           "latent vectors per feature": {"fm": 1, "ffm": m - 1}[name]}
    for name in ("fm", "ffm")}).T
sizes["× FM"] = (sizes["parameters"] / sizes.loc["fm", "parameters"]).round(1)
print(f"k = {budget.embed_dim} for both (the budget's embedding size; the k each model "
      "trains with is on its card below)")
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
# budget of [chapter 08](08_comparison.ipynb), with its own setting chosen on validation,
# seed 0, and read back from the model cache after that (`featint.training.trained`), so FM
# here is the very FM of chapter 01. The budget every model shares, then the card of each
# model this chapter trains: every setting, where it comes from, what the trials varied and
# the paper's setting.

# %% tags=["remove-input"]
display(Markdown("| the budget (every model) | |\n|---|---|\n" + "\n".join(
    f"| {what} | {value} |" for what, value in budget_rows())
    + (f"\n\nQuick mode: {config.sizes.describe()}." if quick else "")))
for name in ("mf", "fm", "ffm"):
    display(Markdown(card(name).markdown()))

# %%
mf, mf_history = trained("mf", task, progress=False)
fm, fm_history = trained("fm", task, progress=False)
ffm, ffm_history = trained("ffm", task, progress=False)
models = {"mf": mf, "fm": fm, "ffm": ffm}
histories = {"mf": mf_history, "fm": fm_history, "ffm": ffm_history}
assert ffm.embed_dim == card("ffm").value("embed_dim")  # the card is what trained
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
    cap = config.sizes.epochs if quick else budget.epochs
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
                f"at most {cap}, {best['valid_mrr']:.4f}): within this "
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
# These are one training run per model, seed 0, and the bars are intervals over test
# examples only: they say nothing about another seed. Whether FFM is better than another
# model is the comparison's question (chapter 08): every model trained with three seeds, the
# same test examples ranked, and every pair of models tested example by example with the
# training noise counted in, Holm-corrected over every pair. The seeds first, then what that
# test says:

# %%
comparison, _ = load_comparison()  # seed_spread says where it comes from
seed_spread(results, ["mf", "fm", "ffm"])

# %% tags=["remove-input"]
NAMES = {"popular": "most popular", "markov": "Markov", "itemknn": "ItemKNN",
         "mf": "MF", "linear": "the linear model", "fm": "FM"}
metrics_said = ("hr@10", "mean_rank")
standing = {b: {verdict(comparison, "ffm", b, metric) for metric in metrics_said}
            for b in NAMES if b != "fm"}
groups = {key: ", ".join(NAMES[b] for b, found in standing.items() if found == {key})
          for key in ("better than", "not separated from", "worse than")}
groups["separated on one of the two only from"] = ", ".join(
    NAMES[b] for b, found in standing.items() if len(found) > 1)
ladder_text = "; ".join(f"{key} {names}" for key, names in groups.items() if names)
vs_fm = {metric: verdict_text(comparison, "ffm", "fm", metric).replace(" fm (", " FM (")
         for metric in metrics_said}
display(Markdown(
    f"With seed 0, FFM's test HR@10 is {value_text(results['ffm'], 'hr@10')} and FM's "
    f"{value_text(results['fm'], 'hr@10')}. By the comparison's pairwise test, FFM is, "
    f"by HR@10, {vs_fm['hr@10']}; by mean rank, {vs_fm['mean_rank']}. Against the "
    f"others, on HR@10 and mean rank both, FFM is {ladder_text}."
    + (" (Quick mode: this chapter's own numbers are a smoke test; the comparison's "
       "are its record.)" if quick else "")))
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
sample = subsample(task.examples("test"), 2000 if quick else None)
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
ffm_card = card("ffm")
paper_side, here_side = paper_settings(ffm_card)
init_std = inspect.signature(FeaturesEmbedding).parameters["std"].default
fm_text = verdict_text(comparison, "ffm", "fm").replace(" fm (", " FM (")
table = f"""
| | FFM paper | here |
| --- | --- | --- |
| data | Criteo and Avazu ad logs (tens of millions of impressions), plus smaller \
public sets | MovieLens 100K, next-movie task: {task.counts()['fit']:,} fit examples |
| task, metric | click or not; logloss on held-out impressions \
| rank all {task.num_items:,} movies; HR@10, MRR, mean rank (test set) |
| headline | FFM's logloss below that of a linear model, Poly2 and FM on Criteo \
and Avazu; won both Kaggle competitions | FFM (seed 0): HR@10 \
{value_text(results['ffm'], 'hr@10')}; by the comparison's test FFM is {fm_text} |
| negatives | the real non-clicks | {ffm_card.value('num_negatives')} movies per \
positive, drawn uniformly from those not yet rated |
| settings | {paper_side} | {here_side} |
| latent size $k$, L2 | $k = 4$, $\\lambda = 2 \\cdot 10^{{-5}}$ | \
$k = {ffm_card.value('embed_dim')}$, weight decay {ffm_card.value('weight_decay'):g} \
(Adam's, on every parameter) |
| optimiser | AdaGrad-style SGD, learning rate 0.2, one instance at a time \
| Adam, learning rate {ffm_card.value('lr'):g}, batches of \
{ffm_card.value('batch_size'):,} |
| initialisation | uniform in $[0, 1/\\sqrt k]$ | normal, std {init_std:g} |
| instance normalisation | each $\\mathbf x$ scaled to unit length | none: bags \
weighted $1/\\lvert \\text{{bag}} \\rvert$, numeric fields scaled |
| early stopping | on validation logloss; the paper stresses that FFM overfits \
after few epochs | on validation MRR, patience {ffm_card.value('patience')}, at most \
{ffm_card.value('epochs')} epochs |
| pairs inside a field | modelled ($m$ vectors per feature) | not modelled ($m - 1$) |
"""
display(Markdown(table))

# %% tags=["remove-input"]
tried = ("FFM's trials included the paper's $k$ and L2 (its card above), so the choice "
         "between them was made on validation" if ffm_card.paper_tried else
         "the paper's setting was not among FFM's trials")
display(Markdown(
    "Why the results may differ: the paper predicts clicks, where every field pair "
    "can move the probability it is judged on; here only the context-movie pairs can "
    "move a ranking, and most of FFM's vectors serve other pairs (above). MovieLens "
    "100K is a few orders of magnitude smaller than the CTR logs, which leaves a model "
    "with many parameters little data for each; the negatives are sampled, not "
    "observed; and "
    f"{tried}, with Adam in place of the paper's optimiser. Exercise 2 sets the "
    "paper's $k$ and L2 beside the budget's on a small task, over three seeds."))

# %% [markdown]
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
# - Whether the extra vectors help is measured, not assumed: the comparison's pairwise test,
#   over every seed, says which models FFM is separated from.
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
# $\lambda = 2 \cdot 10^{-5}$ (FFM's card above says what the comparison trains, and whether
# that setting was among its trials). On the synthetic task of chapter 01
# (`build_task(synthetic_movielens(seed=0))`, small enough to train in seconds), train FFM
# three ways with `fit`: $k = 16$ without a penalty, $k = 4$ without, and $k = 4$ with
# `weight_decay=2e-5`, each for 15 epochs with `patience=15`, so that the whole validation
# curve shows, and each with seeds 0, 1 and 2, so that you can tell a difference between
# settings from one between seeds. Which peaks highest, which falls after its peak, and which
# differences hold over the seeds? (featint's `weight_decay` is Adam's L2 penalty on every
# parameter at every step; the paper's AdaGrad-style SGD penalises only the features of the
# instance at hand, so the same $\lambda$ is not the same strength.) On MovieLens the same
# question is what FFM's tuning trials answered on validation; one of them is the paper's:
# `trained("ffm", task, setting=SPACES["ffm"][card("ffm").paper])` trains it.

# %% tags=["hide-input"]
syn = build_task(synthetic_movielens(seed=0))
variants = {"k = 16, no L2": (16, 0.0), "k = 4, no L2": (4, 0.0),
            "k = 4, L2 2e-5": (4, 2e-5)}
SEEDS, EPOCHS = (0, 1, 2), 15
runs, valid_ranks = {}, {}
for label, (k, decay) in variants.items():
    for seed in SEEDS:
        model = build_model("ffm", syn, seed=seed, embed_dim=k)
        runs[label, seed] = fit(model, syn, epochs=EPOCHS, patience=EPOCHS,
                                weight_decay=decay, seed=seed, progress=False,
                                verbose=False)
        # fit restores the best epoch: its ranks of the validation examples
        valid_ranks[label, seed] = evaluate(model, syn, split="valid",
                                            progress=False).ranks

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
for color, label in zip(("C0", "C1", "C2"), variants, strict=True):
    for ax, key in zip(axes, ("loss", "valid_mrr"), strict=True):
        curves = np.array([[row[key] for row in runs[label, seed].epochs]
                           for seed in SEEDS])              # (seeds, epochs run)
        epochs = np.arange(1, curves.shape[1] + 1)
        ax.plot(epochs, curves.mean(0), "o-", color=color, label=label, ms=3)
        ax.fill_between(epochs, curves.min(0), curves.max(0), color=color, alpha=0.2)
axes[0].set(xlabel="epoch", ylabel="training BCE", title="Training loss")
axes[1].set(xlabel="epoch", ylabel="validation MRR",
            title="Validation MRR: mean of 3 seeds, band from lowest to highest")
axes[0].legend(loc="upper right")
for ax in axes:
    ax.xaxis.get_major_locator().set_params(integer=True)
plt.show()

# the best epoch of each run: per-example reciprocal ranks, seeds as rows
rr = {label: per_example(np.stack([valid_ranks[label, seed] for seed in SEEDS]), "mrr")
      for label in variants}
settings_test = pairwise(rr, "mrr")  # paired over examples, seeds counted in, Holm
rows = {}
for label in variants:
    mean, lo, hi = mean_interval(rr[label])
    best = [runs[label, seed].best["valid_mrr"] for seed in SEEDS]
    last = [runs[label, seed].epochs[-1]["valid_mrr"] for seed in SEEDS]
    rows[label] = {"best epoch per seed": [runs[label, s].best_epoch for s in SEEDS],
                   "valid MRR, best epoch": f"{mean:.4f} [{lo:.4f}, {hi:.4f}]",
                   "fell after its peak (seeds)": int(np.sum(np.greater(best, last))),
                   "mean fall": np.mean(best) - np.mean(last)}
summary = pd.DataFrame.from_dict(rows, orient="index")
display(summary.round(4))

top = settings_test.order[0]
against = "; ".join(f"{verdict_text(settings_test, top, other)}"
                    for other in variants if other != top)
fell = [f"`{label}` ({row['fell after its peak (seeds)']} of {len(SEEDS)} seeds)"
        for label, row in rows.items() if row["fell after its peak (seeds)"]]
display(Markdown(
    f"On this synthetic task ({len(rr[top][0])} validation examples, {len(SEEDS)} "
    f"seeds each), `{top}` has the highest validation MRR at its best epoch (mean "
    "over seeds). By the paired test over the validation examples, with the spread of "
    f"the seeds counted in, it is {against}. After the best epoch the validation MRR "
    "fell for " + (", ".join(fell) if fell else "no run")
    + ". The interval in the table is the t interval of the mean with both kinds of "
    "noise, the examples and the seeds (`featint.stats.mean_interval`); the band in "
    "the plot is the range of the three seeds. Nothing here says what the same "
    "settings do on MovieLens: FFM's tuning trials do."))

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
# positive and its negatives depends on where they sit, so the offset has a gradient (unless
# positive and negatives pull exactly equally).
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
# The cell below checks (a) and (c) on one batch of the synthetic task: the gradient on the
# context-context vectors of an FFM under each loss, beside the gradient on its
# context-movie vectors.
# :::

# %% tags=["hide-input"]
probe = build_model("ffm", syn, seed=0, embed_dim=4)
k_probe, fields = 4, syn.schema.fields
ex = syn.examples("fit")[:512]
negatives = syn.sample_negatives(ex, budget.num_negatives, np.random.default_rng(0))
candidates = torch.from_numpy(np.column_stack([syn.target[ex], negatives]))
labels = torch.zeros(candidates.shape)
labels[:, 0] = 1.0                                     # the positive is column 0
context = [n for n, f in enumerate(fields) if f.side == "context"]
empty = torch.zeros(len(fields), len(fields) - 1, dtype=torch.bool)  # [f, column]
kinds = {"context x context": empty.clone(), "context x movie": empty.clone()}
for f in context:                                      # the vectors v_{i,g} of field f
    for g in range(len(fields)):
        if g != f:
            kind = "context x context" if g in context else "context x movie"
            kinds[kind][f, probe.column[f, g]] = True
owner = torch.zeros(syn.schema.num_features, dtype=torch.long)  # each feature's field
for n, f in enumerate(fields):
    owner[f.offset:f.offset + f.size] = n
losses = {
    "binary cross-entropy": lambda z: F.binary_cross_entropy_with_logits(z, labels),
    "softmax over the candidates": lambda z: F.cross_entropy(
        z, torch.zeros(len(z), dtype=torch.long)),
}
grads = {}
for name, loss in losses.items():
    probe.zero_grad()
    loss(probe(syn.context(ex), candidates)).backward()
    table = probe.embedding.embedding.weight.grad.view(-1, len(fields) - 1, k_probe)
    grads[name] = {"w0": probe.w0.grad.abs().item(), **{
        kind: table[mask[owner]].abs().max().item() for kind, mask in kinds.items()}}
grads = pd.DataFrame.from_dict(grads, orient="index")
display(grads.rename(columns=lambda c: f"largest |gradient|: {c}").map("{:.2e}".format))
softmax = grads.loc["softmax over the candidates"]
assert softmax["w0"] < 1e-6 and softmax["context x context"] < 1e-6 * softmax[
    "context x movie"]
assert grads.loc["binary cross-entropy", "context x context"] > 1e-3 * grads.loc[
    "binary cross-entropy", "context x movie"]
