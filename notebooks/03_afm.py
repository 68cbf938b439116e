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
# # 03 · Attentional Factorization Machines
#
# FM ([chapter 01](01_fm.ipynb)) and FFM ([chapter 02](02_ffm.ipynb)) add up every pairwise
# interaction with the same weight, one. Some pairs carry signal (the user's history against
# the candidate movie), others mostly noise (the hour of the day against the zip code), and an
# unhelpful pair can only be silenced by shrinking the vectors it is made of, which also
# weakens every other pair those vectors take part in. The attentional factorization machine
# (AFM) {cite}`xiao2017afm` learns, **for each example, how much each pair counts**, with a
# small attention network. This chapter derives it, handles the details that matter on our
# task (absent fields, dropout, ranking 1,682 movies fast), checks the efficient code against a
# naive version, and trains it.

# %%
# %matplotlib inline
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Code, display
from matplotlib.colors import TwoSlopeNorm

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
from featint.layers import fm_interaction
from featint.models import build_model, count_parameters
from featint.models.afm import AFM
from featint.task import Features
from featint.train import fit

print("quick mode:", quick(), "| torch threads:", torch.get_num_threads())
task = build_task(load_movielens())

# %% [markdown]
# ## From FM to AFM
#
# The AFM paper rewrites FM's pairwise term as a small neural network. For the non-zero
# features $\mathcal X$ of an example, the *pair-wise interaction layer* forms one vector per
# pair, the element-wise product
#
# $$f_\text{PI}(\mathcal E) = \big\{ (\mathbf v_i \odot \mathbf v_j)\, x_i x_j \big\}_{(i,j)
# \in \mathcal R_x}, \qquad \mathcal R_x = \{(i, j) : i, j \in \mathcal X,\ i < j\}.$$
#
# Summing these vectors and projecting with $\mathbf p \in \mathbb R^k$ gives
# $\mathbf p^\top \sum_{(i,j)} (\mathbf v_i \odot \mathbf v_j) x_i x_j$: with $\mathbf p =
# \mathbf 1$ this is exactly FM's $\sum_{i<j} \langle \mathbf v_i, \mathbf v_j \rangle x_i
# x_j$. AFM replaces the plain sum by a weighted one, the *attention-based pooling*:
#
# $$\hat y_\text{AFM}(\mathbf x) = w_0 + \sum_{i=1}^n w_i x_i + \mathbf p^\top \sum_{(i,j) \in
# \mathcal R_x} a_{ij}\, (\mathbf v_i \odot \mathbf v_j)\, x_i x_j .$$
#
# Learning a free weight $a_{ij}$ per pair would fail for pairs never seen together in training
# (chapter 01's problem again), so the weights come from a one-layer *attention network*
# applied to the pair's own vector, normalised by a softmax over the pairs of the example:
#
# $$a'_{ij} = \mathbf h^\top \mathrm{ReLU}\big(\mathbf W (\mathbf v_i \odot \mathbf v_j) x_i x_j
# + \mathbf b\big), \qquad a_{ij} = \frac{\exp(a'_{ij})}{\sum_{(i',j') \in \mathcal R_x}
# \exp(a'_{i'j'})},$$
#
# with $\mathbf W \in \mathbb R^{t \times k}$, $\mathbf b, \mathbf h \in \mathbb R^t$ and the
# *attention factor* $t$. The new parameters, $\mathbf W, \mathbf b, \mathbf h, \mathbf p$, are
# a few hundred: AFM has FM's size, not FFM's.
#
# ## Pairs of fields
#
# On the next-movie task an example has a few dozen to several hundred non-zeros, most of them
# in the history bag, so feature pairs would number in the tens of thousands per example, each
# through the attention network, and for every candidate movie. featint's AFM, like DLRM
# and the deep models of later chapters, works on **fields**: each field is pooled into one
# vector with its own weights,
#
# $$\mathbf e_f = \sum_{i : f_i = f} x_i \mathbf v_i$$
#
# (a categorical field's one vector, the history's mean vector, a numeric field's $\sum_j x_j
# \mathbf v_j$), and the pairs are the $m(m-1)/2 = 136$ pairs of fields $f < g$, with pair
# vector $\mathbf e_f \odot \mathbf e_g$. For categorical fields this is exactly the paper's
# model. For a bag it is coarser: AFM weighs the history as a whole against, say, the
# candidate's genres, and pairs inside one field are not modelled at all (FM's history ×
# history pairs are gone, as in FFM).
#
# ## Absent fields and the softmax
#
# $\mathcal R_x$ only holds pairs of **non-zero** features. A field can be empty: a numeric
# field whose values are all 0 (`user_mean_rating` is centred, so a user whose mean rating so
# far is exactly 3 stars has 0 there), a bag without members. Its vector $\mathbf e_f$ is zero,
# and so is every pair vector with it, but its attention logit would still be
# $\mathbf h^\top \mathrm{ReLU}(\mathbf b)$, and an unmasked softmax would hand it a share of
# the weight that then multiplies zero: the valid pairs would sum to less than one, by an
# amount that depends on how many fields happen to be empty. featint masks such pairs: their
# logits are set to the lowest float before the softmax, so they get weight exactly 0 and the
# weights of the valid pairs sum to 1.
#
# The axis matters as much as the mask. In the official TensorFlow code the logits have shape
# `(batch, pairs, 1)`, and in the version of `AFM.py` discussed in the repository's issue #19
# they are normalised with `tf.nn.softmax(...)`, which works on the **last** axis, the one of
# size 1. A softmax over one element is $e^{a}/e^{a} = 1$, so every pair gets weight 1 and
# "AFM" is FM with a projection $\mathbf p$ (and dropout); another version of the same file
# divides by the sum over axis 1, the pairs, which is right. The difference in two lines:

# %%
logits = torch.randn(2, 5, 1)                # (batch, pairs, 1), as in the official code
print("softmax over the last axis (size 1):\n", torch.softmax(logits, dim=-1).squeeze(-1))
print("softmax over the pairs:\n", torch.softmax(logits, dim=1).squeeze(-1))
assert torch.all(torch.softmax(logits, dim=-1) == 1)

# %% [markdown]
# ## Dropout
#
# The paper fights overfitting with dropout on the pair-wise interaction layer and an L2
# penalty on $\mathbf W$. The official code has two dropout rates: one on the attention weights
# (off by default, keep probability 1.0) and one, 0.5, on the attention-pooled vector
# $\sum a_{ij} (\mathbf v_i \odot \mathbf v_j) x_i x_j$. Dropout on the weights themselves
# would break what the softmax just guaranteed: inverted dropout zeroes some weights and
# scales the rest by $1/(1-\text{rate})$, so they sum to one only on average:

# %%
a = torch.softmax(torch.randn(4, 136), dim=-1)
dropped = torch.nn.functional.dropout(a, p=0.5, training=True)
print("sum of the weights after dropout on them:", dropped.sum(-1).numpy().round(3))

# %% [markdown]
# featint follows the official default: dropout (rate 0.5) on the attention-pooled
# $k$-vector, before $\mathbf p$. That is dropout on the pair-interaction vectors with one mask
# per example shared by all pairs, so the attention weights are untouched and sum to one in
# training too; at evaluation dropout is off.
#
# ## The code
#
# `featint/models/afm.py`. `attend` is the equation as written, used for training and for
# any `(batch, candidates)` call: field vectors, the pair vectors of the three kinds of pairs
# (context-context, computed once per context; movie-movie; context-movie), the attention
# logits, the masked softmax over all pairs of a sample, the weighted sum.

# %%
display(Code(inspect.getsource(AFM.attend), language="python"))

# %% [markdown]
# ### Ranking all movies
#
# Unlike FM and FFM, AFM's score does not split into a context part plus a movie part: the
# softmax couples all pairs of a (context, movie) sample. Scoring 20,187 test contexts against
# 1,682 movies means $3.4 \cdot 10^7$ samples with 136 pairs each. `rank_all` (used in
# evaluation mode when `items` are all movies) computes the same numbers in an order that is
# fast:
#
# - $\mathbf p^\top \sum a_{fg} (\mathbf e_f \odot \mathbf e_g) = \sum a_{fg} s_{fg}$ with the
#   scalars $s_{fg} = \mathbf p^\top (\mathbf e_f \odot \mathbf e_g)$, so no pair vector has to
#   be kept per (context, movie);
# - the softmax over the union of three groups of pairs is merged from per-group summaries
#   (largest logit $\tau$, $Z = \sum e^{a' - \tau}$, $N = \sum e^{a' - \tau} s$; the result is
#   $\sum_\text{groups} e^{\tau - \tau^*} N / \sum_\text{groups} e^{\tau - \tau^*} Z$ with
#   $\tau^*$ the largest $\tau$), so the 91 context-context pairs are summarised once per
#   context and the 3 movie-movie pairs once per movie;
# - for the $14 \times 3$ context-movie pairs, $\mathbf W (\mathbf e_f \odot \mathbf e_g) +
#   \mathbf b = [\mathbf W \operatorname{diag}(\mathbf e_g),\ \mathbf b]\,[\mathbf e_f; 1]$ is a
#   matrix product between all context fields and all movie fields, taken a few movies at a
#   time so that the $t$-wide hidden layer stays in the CPU cache; the ReLU and $\mathbf h$
#   follow, and $s_{fg} = (\mathbf p \odot \mathbf e_f)^\top \mathbf e_g$ is one more product.
#
# The attention network still runs on every context-movie pair of every sample, $20{,}187
# \times 1{,}682 \times 42 \times t$ hidden units: AFM ranks far slower than FM and FFM.

# %%
display(Code(inspect.getsource(AFM.rank_all), language="python"))

# %% [markdown]
# ### Check: AFM written out by hand
#
# The naive version, in float64: field vectors by a loop over the slots, then every pair of
# present fields, its logit, the softmax, the pooled vector. A model with random weights large
# enough for the attention to be far from uniform; one context gets an empty history and an
# empty `user_mean_rating` by hand, so that some pairs are absent; the bags of the batch are
# padded. The two code paths, candidates `(batch, 3)` through `attend` and all movies through
# `rank_all`, must agree with it.

# %%
def afm_naive(model, context, b, movie):
    """AFM of context row b and movie index `movie`, field by field, pair by pair."""
    c = model.num_context_fields
    m = c + model.num_item_fields
    items = model.items
    slots = [(int(i), float(x), int(f))                       # (feature i, x_i, field f_i)
             for i, x, f in zip(context.idx[b], context.val[b], context.field, strict=True)]
    slots += [(int(i), float(x), c + int(f))
              for i, x, f in zip(items.idx[movie], items.val[movie], items.field, strict=True)]
    v = model.embedding.embedding.weight.detach()
    w = model.linear.weight.weight.detach().squeeze(-1)
    W, bias = model.attention.weight.detach(), model.attention.bias.detach()
    h, p = model.h.detach(), model.p.detach()
    e = [torch.zeros(v.shape[1], dtype=v.dtype) for _ in range(m)]      # e_f
    present = [False] * m
    for i, x, f in slots:
        e[f] = e[f] + x * v[i]
        present[f] = present[f] or x != 0.0
    pair_vectors, logits = [], []
    for f in range(m):
        for g in range(f + 1, m):
            if present[f] and present[g]:                  # absent pairs are not in R_x
                pair_vectors.append(e[f] * e[g])
                logits.append(float(h @ torch.relu(W @ pair_vectors[-1] + bias)))
    weights = np.exp(logits) / np.exp(logits).sum()
    pooled = sum(a * u for a, u in zip(weights, pair_vectors, strict=True))
    linear = float(model.w0.detach()) + sum(float(w[i]) * x for i, x, _ in slots)
    return linear + float(p @ pooled)


check = build_model("afm", task, seed=0).double().eval()
with torch.no_grad():
    for param in check.parameters():
        param.normal_(0.0, 1.0)
    check.embedding.embedding.weight[0].zero_()                      # padding rows stay zero
    check.linear.weight.weight[0].zero_()
test_ex = task.examples("test")
ex = test_ex[np.argsort(task.t[test_ex])][np.linspace(0, len(test_ex) - 1, 4).astype(int)]
ctx = task.context(ex)
val = ctx.val.double()
context_names = [f.name for f in task.schema.context_fields]
for name in ("history", "user_mean_rating"):                        # empty two fields of row 0
    val[0, ctx.field == context_names.index(name)] = 0.0
ctx = Features(ctx.idx, val, ctx.field)
candidates = torch.from_numpy(np.column_stack(
    [task.target[ex], task.sample_negatives(ex, 2, np.random.default_rng(0))]))
with torch.no_grad():
    y_candidates = check(ctx, candidates)
    y_all = check(ctx, torch.arange(task.num_items))
    a = check.attention_weights(ctx, candidates)                    # (batch, 3, 136)
y_naive = torch.tensor([[afm_naive(check, ctx, b, int(movie)) for movie in row]
                        for b, row in enumerate(candidates)], dtype=torch.float64)
print("valid pairs per row:", (a[:, 0] > 0).sum(-1).tolist(), "of", a.shape[-1])
print("max |attend - naive|:", (y_candidates - y_naive).abs().max().item())
print("max |rank_all - naive|:", (y_all.gather(1, candidates) - y_naive).abs().max().item())
assert torch.allclose(y_candidates, y_naive, rtol=0, atol=1e-10)
assert torch.allclose(y_all.gather(1, candidates), y_naive, rtol=0, atol=1e-10)
assert torch.allclose(a.sum(-1), torch.ones_like(a[..., 0]), rtol=0, atol=1e-12)

# %% [markdown]
# ### Check: with uniform attention AFM is a scaled FM
#
# With $\mathbf h = \mathbf 0$ every logit is 0 and every valid pair gets $a_{fg} = 1/P$, $P$
# the number of valid pairs; with $\mathbf p = \mathbf 1$ the pairwise term becomes FM's
# pairwise term over the field vectors divided by $P$ (`fm_interaction` of chapter 01, applied
# to the 17 $\mathbf e_f$):

# %%
with torch.no_grad():
    check.h.zero_()
    check.p.fill_(1.0)
    e_c = check.field_vectors(ctx, check.num_context_fields)[0]            # (batch, 14, k)
    e_m = check.field_vectors(check.items(candidates), check.num_item_fields)[0]
    e = torch.cat([e_c[:, None].expand(-1, candidates.shape[1], -1, -1), e_m], -2)  # 17 fields
    num_valid = (check.attention_weights(ctx, candidates) > 0).sum(-1)
    linear = check.w0 + check.linear(ctx)[:, None] + check.linear(check.items(candidates))
    collapse = linear + fm_interaction(e) / num_valid
    assert torch.allclose(check(ctx, candidates), collapse, rtol=0, atol=1e-10)
    assert torch.allclose(check(ctx, torch.arange(task.num_items)).gather(1, candidates),
                          collapse, rtol=0, atol=1e-10)
print("AFM with h = 0, p = 1  ==  FM over the field vectors / number of valid pairs")

# %% [markdown]
# ## Defaults, and where we deviate
#
# | | paper / official code | here |
# | --- | --- | --- |
# | units of interaction | pairs of non-zero features | pairs of fields (bags pooled), 136 |
# | embedding size $k$ | 256 in the paper; 16 in the README's quick demo and the code's default | 16, as every model of the book |
# | attention factor $t$ | code default 16 (with $k = 16$); the README's tuned run uses 8 with $k = 256$ | 16 |
# | dropout | on the pair-wise interaction layer; code: 0.5 on the pooled vector, none on the attention weights | the same, 0.5 on the pooled vector |
# | L2 on $\mathbf W$ | tuned; README: $\lambda = 100$ ($k = 16$), $\lambda = 2$ ($k = 256$), on a summed squared loss | none: `fit` has one weight decay for all parameters, and early stopping regularises every model of the book alike |
# | loss, optimiser | squared loss (regression), Adagrad with learning rate 0.1, batches of 4,096 | binary cross-entropy with 4 sampled negatives, Adam with learning rate $2 \cdot 10^{-2}$ (tuned on validation, below), batches of 1,024 |
# | initialisation | $\mathbf v \sim \mathcal N(0, 0.01^2)$, or a trained FM's embeddings (the README trains FM first); $\mathbf W, \mathbf b \sim \mathcal N(0, 2/(t+k))$, $\mathbf h \sim \mathcal N(0, 1)$, $\mathbf p = \mathbf 1$ | the same, from scratch (no FM pre-training) |
# | absent pairs | not in $\mathcal R_x$ | masked out of the softmax |
#
# ## Training
#
# FM and FFM are trained again here with the book's settings, so that the comparison is run by
# this notebook: $k = 16$, at most 20 epochs, early stopping on the validation MRR with
# patience 3, learning rate $5 \cdot 10^{-3}$ (quick mode: at most 2 epochs on 4,096 examples).
#
# AFM gets a larger learning rate, $2 \cdot 10^{-2}$, chosen on the **validation** set: with the
# default $5 \cdot 10^{-3}$ it stayed close to the most-popular baseline for the first epochs,
# $5 \cdot 10^{-2}$ was worse than $2 \cdot 10^{-2}$. The check above says why it needs one.
# At the start the attention is uniform (the logits hardly depend on the tiny initial
# embeddings), so AFM is FM over the field vectors **divided by the number of pairs**, 136:
# the softmax turns FM's sum into a mean. To move scores as much as FM does, AFM must grow
# its embeddings and $\mathbf p$ by an order of magnitude more, and Adam moves each parameter
# by about one learning rate per step. (The official code starts AFM from a trained FM
# instead.)

# %%
SETTINGS = dict(epochs=20, batch_size=1024, patience=3, seed=0, progress=False)
LEARNING_RATE = {"fm": 5e-3, "ffm": 5e-3, "afm": 2e-2}


def test_row(model):
    """Test-set metrics with 95% bootstrap intervals, plus the wall time of ranking every test
    context against all movies (quick mode: 1,000 test contexts)."""
    examples = subsample(task.examples("test"), 1000 if quick() else None)
    start = time.perf_counter()
    ranks = rank_examples(model, task, examples)
    seconds = time.perf_counter() - start
    row = Evaluation(ranks, examples, metrics(ranks), bootstrap(ranks)).row()
    return {**row, "rank_seconds": seconds, "contexts": len(examples)}


models, histories, results = {}, {}, {}
for name in ("fm", "ffm", "afm"):
    models[name] = build_model(name, task, seed=0, embed_dim=16)
    print(f"--- {name}: {count_parameters(models[name]):,} parameters")
    histories[name] = fit(models[name], task, lr=LEARNING_RATE[name], **SETTINGS)
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
for a_ in ax:
    a_.legend()
    a_.xaxis.get_major_locator().set_params(integer=True)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Test results

# %%
results["random"] = test_row(RandomScores(seed=0))
results["most popular"] = test_row(Popularity(task))
for name in ("fm", "ffm", "afm"):
    h = histories[name]
    results[name].update(params=count_parameters(models[name]), epochs=len(h.epochs),
                         train_seconds=round(h.seconds))
    print(f"{name}: best epoch {h.best_epoch} of {len(h.epochs)}, "
          f"{np.mean([e['seconds'] for e in h.epochs]):.1f} s per training epoch, "
          f"ranking {results[name]['contexts']:,} test contexts x {task.num_items:,} movies: "
          f"{results[name]['rank_seconds']:.1f} s")
leaderboard(results)

# %%
afm_res, pop_res = results["afm"], results["most popular"]
assert np.isfinite(afm_res["hr@10"]) and 1 <= afm_res["mean_rank"] <= task.num_items
if not quick():
    assert afm_res["hr@10_lo"] > pop_res["hr@10_hi"]
    assert afm_res["mean_rank_hi"] < pop_res["mean_rank_lo"]

# %% [markdown]
# ## What did the attention learn?
#
# The mean attention weight of each field pair over the test contexts with their true next
# movie, shown relative to uniform attention: a value of 2 means the pair gets twice the weight
# it would get if all valid pairs counted alike ($1/P$, $P$ the number of valid pairs of the
# example, usually 136).

# %%
afm = models["afm"]
sample = subsample(task.examples("test"), 1000 if quick() else None)
m = afm.num_context_fields + afm.num_item_fields
relative = torch.zeros(afm.pair_fields.shape[0], dtype=torch.float64)
for start in range(0, len(sample), 1024):
    ex = sample[start:start + 1024]
    target = torch.from_numpy(task.target[ex])[:, None]
    w = afm.attention_weights(task.context(ex), target)[:, 0]          # (batch, pairs)
    relative += (w * (w > 0).sum(-1, keepdim=True)).sum(0).double()   # a_fg * P
relative /= len(sample)
grid = torch.full((m, m), float("nan"), dtype=torch.float64)
f, g = afm.pair_fields.T
grid[f, g] = grid[g, f] = relative
names = [field.name for field in task.schema.fields]

fig, ax = plt.subplots(figsize=(8.5, 7))
log_ratio = np.log2(grid.numpy())
norm = TwoSlopeNorm(vmin=np.nanmin(log_ratio), vcenter=0.0, vmax=np.nanmax(log_ratio))
im = ax.imshow(log_ratio, cmap="RdBu_r", norm=norm)
ax.set_xticks(range(m), names, rotation=90)
ax.set_yticks(range(m), names)
ax.axhline(afm.num_context_fields - 0.5, color="k", lw=1)
ax.axvline(afm.num_context_fields - 0.5, color="k", lw=1)
bar = fig.colorbar(im, ax=ax, shrink=0.8)
bar.set_label(r"$\log_2$ (mean $a_{fg}$ / uniform)")
ax.set_title("AFM: mean attention per field pair, test examples\n"
             "(red: more than uniform; lines separate context and movie fields)")
plt.show()

# %%
order = torch.argsort(relative, descending=True)
top = pd.DataFrame([{"field f": names[int(f[i])], "field g": names[int(g[i])],
                     "mean a_fg / uniform": float(relative[i])} for i in order])
display(pd.concat([top.head(6), top.tail(3)]))
context_movie = afm.pair_fields[:, 0] < afm.num_context_fields
context_movie &= afm.pair_fields[:, 1] >= afm.num_context_fields
share = float((relative[context_movie]).sum() / relative.sum())
print(f"context-movie pairs: {int(context_movie.sum())} of {len(relative)} pairs, "
      f"{share:.1%} of the attention (uniform: {float(context_movie.float().mean()):.1%})")
assert torch.isfinite(relative).all() and (relative > 0).all()

# %% [markdown]
# The weights are per example, and the map shows only their average. Its pattern is the point
# of this task: only the 42 context-movie pairs can tell the candidate movies of a context
# apart. A context-context pair has the same vector and the same logit for every candidate, so
# weight on it can only dilute the pairs that rank. The attention network, which sees nothing
# but the pair vector, has learned to give the context-movie pairs most of the weight (the
# printout above compares their share with the uniform one), and to mute most pairs inside the
# context.
#
# Still, in the run stored here AFM ends behind FM and FFM on the test set, though far ahead of
# the baselines, and its training loss stays above FM's: it underfits rather than overfits.
# Likely reasons: the softmax makes the pairwise term a weighted *mean* over the pairs where FM
# has a *sum*, so it is bounded by its largest pair and large scores need large embeddings
# (slow to reach with Adam's steps; the official README starts AFM from a trained FM), and
# half of the pooled vector is dropped at every training step (dropout 0.5, the official
# default). AFM's published gains were on data with three and ten fields, pairs of single
# features, and a regression loss.
#
# ## What AFM leaves open
#
# AFM reweighs pairs but keeps FM's form: a weighted sum of element-wise products, linear in
# each pair vector, with nothing beyond pairs. The following chapters put a neural network
# on top of the embeddings instead, to learn interactions of higher order and non-linear ones.
