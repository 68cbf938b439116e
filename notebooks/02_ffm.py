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
# # 02 · Field-aware Factorization Machines
#
# A factorization machine ([chapter 01](01_fm.ipynb)) gives every feature **one** latent vector
# and uses it against every other feature. The field-aware factorization machine (FFM)
# {cite}`juan2016ffm`, which won two click-through-rate competitions (Criteo and Avazu) for its
# authors, gives every feature one vector **per field it can meet**. This chapter derives it,
# computes it without a loop over pairs, checks the result against the textbook double sum,
# and measures on the next-movie task what the extra vectors buy, and what they cost.

# %%
# %matplotlib inline
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Code, display
from matplotlib.colors import LogNorm

from featint import build_task, load_movielens
from featint.baselines import Popularity, RandomScores
from featint.evaluate import (
    Evaluation,
    bootstrap,
    leaderboard,
    metrics,
    quick,
    rank_examples,
    subsample,
)
from featint.models import build_model, count_parameters
from featint.models.ffm import FFM
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
# With $f_i$ the field of feature $i$ and $\mathbf v_{i,g} \in \mathbb R^k$ the vector feature
# $i$ uses against features of field $g$, the FFM score is (the paper writes $\mathbf w_{j_1,
# f_2}$ for our $\mathbf v_{i, f_j}$ and leaves out the linear part; we keep $w_0 + \sum w_i
# x_i$ as in every model of the book):
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
#   double sum does not collapse into a square of one sum; the paper computes it in $O(\bar n^2
#   k)$ for $\bar n$ non-zeros per example. Grouping the non-zeros by field brings it back to
#   $O(\bar n\, m k + m^2 k)$, as shown next.
# - **Latent spaces per field pair.** $\mathbf v_{i,g}$ only ever meets vectors $\mathbf
#   v_{j,f_i}$ of features of field $g$: each pair of fields has its own latent space, so FFM
#   typically needs a smaller $k$ than FM (the paper uses $k = 4$).
#
# ## Fields on the next-movie task
#
# The task's schema ([chapter 00](00_data.ipynb)) defines $m = 17$ fields: fourteen on the
# context side, three on the movie side. Some are categorical (one non-zero), some are bags
# (the history: every movie watched so far with value $1/t$; the genres of the candidate), some
# are numeric (a fixed set of features with real values):

# %%
ml = load_movielens()
task = build_task(ml)
schema = task.schema
display(pd.DataFrame([{"field": f.name, "side": f.side, "kind": f.kind, "features": f.size}
                      for f in schema.fields]).rename_axis("f").T)

# %% [markdown]
# ### Fields with several non-zeros
#
# FFM is defined on feature pairs. A pair inside one field (two movies of the history, two
# genres of the candidate, two entries of `genre_share`) would need the vector $\mathbf v_{i,
# f_i}$ of a feature for its **own** field. featint keeps $m - 1$ vectors per feature, so such
# pairs are **not modelled**: FFM here sums over pairs of features in *different* fields. (FM
# in chapter 01 does include them.)
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
# width $(m-1)k$ of a single embedding table; `column[f, g]` says where $\mathbf v_{\cdot, g}$
# sits in a row of a feature of field $f$ (the columns skip $f$ itself). One pass over the
# non-zeros (`FeaturesEmbedding.fields`, an `embedding_bag` that sums each field's slots)
# gives all $\mathbf u_{f,g}$ of a batch, a tensor of shape `(batch, fields, m - 1, k)`; the
# pair blocks are then picked with index tensors, with no loop over field pairs.
#
# Like FM, the score splits by side. Context-context pairs are computed once per context,
# movie-movie pairs once per movie, and the $14 \times 3$ context-movie pairs are one dot
# product of two flattened blocks:
#
# $$\sum_{f \in C} \sum_{g \in M} \langle \mathbf u_{f,g}, \mathbf u_{g,f} \rangle =
# \big\langle [\mathbf u_{f,g}]_{f \in C, g \in M},\ [\mathbf u_{g,f}]_{f \in C, g \in M}
# \big\rangle ,$$
#
# a $42k$-dimensional context vector against a $42k$-dimensional movie vector, so ranking a
# batch of contexts against all 1,682 movies is one matrix product (`cross_dot`), as for FM.

# %%
display(Code(inspect.getsource(FFM), language="python"))

# %% [markdown]
# ### Check: the textbook double sum
#
# Here is the equation exactly as written, in float64: every pair of non-zero features of the
# concatenated context and movie, one at a time, skipping pairs inside a field.

# %%
def ffm_naive(model, context, b, movie):
    """w_0 + sum_i w_i x_i + sum_{i<j, f_i != f_j} <v_{i,f_j}, v_{j,f_i}> x_i x_j for context
    row b and movie index `movie`, looping over pairs of non-zero features."""
    c, m, k = model.num_context_fields, model.num_fields, model.embed_dim
    items = model.items
    slots = [(int(i), float(x), int(f))                       # (feature i, x_i, field f_i)
             for i, x, f in zip(context.idx[b], context.val[b], context.field, strict=True)]
    slots += [(int(i), float(x), c + int(f))                  # item fields come after the
              for i, x, f in zip(items.idx[movie], items.val[movie], items.field, strict=True)]
    slots = [s for s in slots if s[1] != 0.0]                  # non-zeros only
    w = model.linear.weight.weight.detach().squeeze(-1)
    V = model.embedding.embedding.weight.detach().view(-1, m - 1, k)

    def v(i, f_i, g):                                          # v_{i,g}; no column for f_i
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
    check.embedding.embedding.weight[0].zero_()                # padding rows stay zero
    check.linear.weight.weight[0].zero_()
test_ex = task.examples("test")
short = test_ex[task.t[test_ex] <= 60]                         # keep the double loop short
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
# ## Parameters
#
# FM has $1 + n + nk$ parameters, FFM $1 + n + n(m-1)k$: with $m = 17$ fields and the same $k$,
# sixteen times FM's latent parameters.

# %%
sizes = pd.DataFrame({
    name: {"parameters": count_parameters(build_model(name, task, embed_dim=16)),
           "latent vectors per feature": {"fm": 1, "ffm": len(schema.fields) - 1}[name]}
    for name in ("fm", "ffm")}).T
sizes["× FM"] = (sizes["parameters"] / sizes.loc["fm", "parameters"]).round(1)
display(sizes)

# %% [markdown]
# ## Defaults, and where we deviate
#
# | | FFM paper / LIBFFM | here |
# | --- | --- | --- |
# | latent size $k$ | 4 | 16, as every model of the book, so that the comparison changes one thing at a time |
# | loss | logistic loss on clicks | binary cross-entropy on the next movie and 4 sampled negatives (the task's protocol) |
# | optimiser | AdaGrad-style SGD, learning rate 0.2 | Adam, learning rate $5 \cdot 10^{-3}$, batches of 1,024 (as FM) |
# | regularisation | L2, $\lambda = 2 \cdot 10^{-5}$ | none, early stopping only |
# | initialisation | uniform in $[0, 1/\sqrt k]$ | normal, std 0.01 (as FM) |
# | instance normalisation | each $\mathbf x$ scaled to unit length | none: bags are already weighted $1/\lvert \text{bag} \rvert$ and the numeric fields are scaled |
# | early stopping | on a validation set, stressed by the paper: FFM overfits fast | on validation MRR, patience 3 |
# | pairs inside a field | modelled ($m$ vectors per feature) | not modelled ($m - 1$ vectors) |
#
# ## Training
#
# Both FM and FFM with the book's settings: $k = 16$, at most 20 epochs, early stopping on the
# validation MRR with patience 3, learning rate $5 \cdot 10^{-3}$. (Quick mode: at most 2
# epochs on 4,096 examples.) The test set is only used afterwards.

# %%
SETTINGS = dict(epochs=20, batch_size=1024, lr=5e-3, patience=3, seed=0, progress=False)


def test_row(model):
    """Test-set metrics with 95% bootstrap intervals, plus the wall time of ranking every test
    context against all movies (quick mode: 2,000 test contexts)."""
    examples = subsample(task.examples("test"), 2000 if quick() else None)
    start = time.perf_counter()
    ranks = rank_examples(model, task, examples)
    seconds = time.perf_counter() - start
    row = Evaluation(ranks, examples, metrics(ranks), bootstrap(ranks)).row()
    return {**row, "rank_seconds": seconds, "contexts": len(examples)}


models, histories, results = {}, {}, {}
for name in ("fm", "ffm"):
    models[name] = build_model(name, task, seed=0, embed_dim=16)
    print(f"--- {name}: {count_parameters(models[name]):,} parameters")
    histories[name] = fit(models[name], task, **SETTINGS)
    results[name] = test_row(models[name])

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
for name, history in histories.items():
    epochs = pd.DataFrame(history.epochs).set_index("epoch")
    ax[0].plot(epochs.index, epochs["loss"], "o-", label=name)
    ax[1].plot(epochs.index, epochs["valid_mrr"], "o-", label=name)
    ax[1].plot(history.best_epoch, history.best["valid_mrr"], "k*", ms=12)
ax[0].set(xlabel="epoch", ylabel="BCE", title="Training loss")
ax[1].set(xlabel="epoch", ylabel="MRR", title="Validation MRR (★ best epoch, kept)")
for a in ax:
    a.legend()
    a.xaxis.get_major_locator().set_params(integer=True)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Test results
#
# All 20,187 test contexts ranked against all movies, beside the baselines of chapter 00 and
# FM:

# %%
results["random"] = test_row(RandomScores(seed=0))
results["most popular"] = test_row(Popularity(task))
for name in ("fm", "ffm"):
    h = histories[name]
    results[name].update(params=count_parameters(models[name]), epochs=len(h.epochs),
                         train_seconds=round(h.seconds))
    print(f"{name}: best epoch {h.best_epoch} of {len(h.epochs)}, "
          f"{np.mean([e['seconds'] for e in h.epochs]):.1f} s per training epoch, "
          f"ranking {results[name]['contexts']:,} test contexts x {task.num_items:,} movies: "
          f"{results[name]['rank_seconds']:.1f} s")
leaderboard(results)

# %%
ffm_res, fm_res, pop_res = results["ffm"], results["fm"], results["most popular"]
assert all(np.isfinite([ffm_res["hr@10"], ffm_res["mean_rank"], fm_res["mean_rank"]]))
assert 1 <= ffm_res["mean_rank"] <= task.num_items
if not quick():
    assert ffm_res["hr@10_lo"] > pop_res["hr@10_hi"]
    assert ffm_res["mean_rank_hi"] < pop_res["mean_rank_lo"]

# %% [markdown]
# How to read the run stored with this notebook: FFM learns much faster per epoch (its
# training loss and validation MRR after two or three epochs are where FM needs many more),
# but its validation MRR peaks after a few epochs and then falls while its training loss keeps
# dropping. With fifteen times FM's parameters it overfits, which is why the FFM paper insists
# on early stopping; early stopping keeps its best epoch, but FM, slower and steadier, ends at
# least as good on the test set. The paper's L2 penalty or a smaller $k$ (the paper uses 4)
# might change that; this book keeps one setting for all models.
#
# Ranking is cheap for both: like FM, FFM ranks all movies with one matrix product per batch
# of contexts, only $42k$ wide instead of $k$.

# %% [markdown]
# ## Which field pairs matter?
#
# FFM's pairwise term is a sum over field pairs, $\sum_{f<g} \langle \mathbf u_{f,g}, \mathbf
# u_{g,f}\rangle$, so it can be read pair by pair. The strength of a pair of fields is the mean
# of $\lvert \langle \mathbf u_{f,g}, \mathbf u_{g,f}\rangle \rvert$ over the test contexts
# with their true next movie (`FFM.pair_terms`; for single-valued fields this is $\lvert
# \langle \mathbf v_{i,g}, \mathbf v_{j,f}\rangle x_i x_j \rvert$). A large value means the
# pair moves the score a lot, in either direction; the colour scale is logarithmic.

# %%
ffm = models["ffm"]
sample = subsample(task.examples("test"), 2000 if quick() else None)
strength = torch.zeros(len(schema.fields), len(schema.fields), dtype=torch.float64)
for start in range(0, len(sample), 1024):
    ex = sample[start:start + 1024]
    target = torch.from_numpy(task.target[ex])[:, None]
    strength += ffm.pair_terms(task.context(ex), target).abs().sum((0, 1)).double()
strength /= len(sample)
strength = strength + strength.T                       # symmetric for reading; diagonal is 0
names = [f.name for f in schema.fields]

fig, ax = plt.subplots(figsize=(8.5, 7))
shown = np.where(np.eye(len(names), dtype=bool), np.nan, strength.numpy())
im = ax.imshow(shown, cmap="viridis", norm=LogNorm())
ax.set_xticks(range(len(names)), names, rotation=90)
ax.set_yticks(range(len(names)), names)
c = ffm.num_context_fields
for pos in (c - 0.5,):
    ax.axhline(pos, color="white", lw=1)
    ax.axvline(pos, color="white", lw=1)
ax.set_title(r"FFM: mean $|\langle u_{f,g}, u_{g,f} \rangle|$ over test examples"
             "\n(lines separate context and movie fields)")
fig.colorbar(im, ax=ax, shrink=0.8)
plt.show()

# %%
upper = torch.triu(strength, diagonal=1)
order = torch.argsort(upper.flatten(), descending=True)[:8]
pd.DataFrame([{"field f": names[int(i) // len(names)], "field g": names[int(i) % len(names)],
               "mean |term|": float(upper.flatten()[i])} for i in order])

# %% [markdown]
# The pairs a recommender needs are those across the two sides: only they can rank movies
# differently for different contexts. Pairs inside the context add the same amount to every
# candidate movie of a context and do not change its ranking at all; pairs inside the movie add
# a per-movie constant, like popularity. FFM spends parameters on all of them alike: the 91
# context-context pairs hold as many vectors as the 42 context-movie pairs that do the work.
#
# ## What FFM leaves open
#
# FFM fixes FM's "one vector for everything" at a price of $m - 1$ times the latent
# parameters, and both models still add every pair with weight one, useful or not: an
# irrelevant pair is only as quiet as its vectors are small. The next chapter's attentional FM
# keeps one vector per feature and instead learns, for each example, **how much each pair
# counts**.
