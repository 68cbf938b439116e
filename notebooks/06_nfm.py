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
# # 06 · Neural Factorization Machines
#
# The factorization machine of [chapter 01](01_fm.ipynb) models every pairwise interaction,
# but it adds them up with weight one: its second-order term is a *sum* of products
# $\langle \mathbf v_i, \mathbf v_j \rangle x_i x_j$, linear in those products. Whether two
# interactions reinforce each other, or one matters only when another is absent, is beyond it.
# The neural factorization machine (NFM) {cite}`he2017nfm` keeps FM's pairwise products but
# stops one step before FM sums them: it pools them into a vector, the **Bi-Interaction**
# vector, and lets a small neural network turn that vector into the score. FM is the special
# case with no hidden layer.
#
# This chapter writes the Bi-Interaction pooling by hand and checks it against featint's,
# shows how NFM ranks all 1,682 movies for a context without building a vector per
# (context, movie) pair, checks that it collapses to FM exactly, and then sets the
# comparison's NFM ([chapter 08](08_comparison.ipynb)) beside FM, matrix factorisation and
# the baselines on the next-movie task.

# %% tags=["hide-input"]
# %matplotlib inline
import copy
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch import nn

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
from featint.evaluate import quick
from featint.layers import FeaturesEmbedding, bi_interaction
from featint.models import build_model, count_parameters
from featint.models.nfm import NFM
from featint.report import trials_table
from featint.show import source
from featint.task import Features
from featint.train import fit

print("quick mode:", quick(), "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## The model
#
# NFM scores a sparse feature vector $\mathbf x \in \mathbb R^n$ as the linear part of FM plus
# a small network on the pairwise interactions, built in layers:
#
# - **embedding layer**: every non-zero feature gives its latent vector scaled by its value,
#   $x_i \mathbf v_i$ (zeros drop out);
# - **Bi-Interaction pooling**: the element-wise products of all pairs, summed into one
#   $k$-vector,
#   $$f_{\mathrm{BI}}(\mathbf x) = \sum_{i<j} x_i \mathbf v_i \odot x_j \mathbf v_j ;$$
# - **hidden layers**: $\mathbf z_0 = f_{\mathrm{BI}}(\mathbf x)$ and
#   $\mathbf z_l = \mathrm{ReLU}(\mathbf W_l \mathbf z_{l-1} + \mathbf b_l)$ for
#   $l = 1, \dots, L$;
# - **prediction**: the output layer $\mathbf w_{\mathrm{out}}$ (the paper's $\mathbf h$),
#
# $$\hat y(\mathbf x) = w_0 + \sum_{i=1}^n w_i x_i + \mathbf w_{\mathrm{out}}^\top
# \mathbf z_L .$$
#
# Component $q$ of $f_{\mathrm{BI}}$ is $\sum_{i<j} v_{i,q} x_i\, v_{j,q} x_j$, so the sum of
# its components is FM's pairwise term $\sum_{i<j} \langle \mathbf v_i, \mathbf v_j \rangle
# x_i x_j$. With $L = 0$ and $\mathbf w_{\mathrm{out}} = \mathbf 1$, the last term is
# $\mathbf 1^\top f_{\mathrm{BI}}(\mathbf x)$ and **NFM is FM**; with a hidden layer, the $k$
# components are mixed non-linearly before the projection $\mathbf w_{\mathrm{out}}$. The
# paper adds BatchNorm on $f_{\mathrm{BI}}$ and on the hidden layers, and dropout on both,
# and finds one hidden layer best. (The paper calls the output layer $\mathbf h$; in this
# book $\mathbf h$ is AFM's attention vector, and featint's code calls it `NFM.w_out`.)
#
# ### Bi-Interaction in linear time
#
# The double sum costs $O(k s^2)$ for an example with $s$ non-zero features. The sum-square
# trick of [chapter 01](01_fm.ipynb) works component by component, so it applies before the
# final sum over $q$: stop the derivation one line early and keep the vector,
#
# $$f_{\mathrm{BI}}(\mathbf x) = \frac12 \left[ \Big(\sum_{i} x_i \mathbf v_i\Big)^{\odot 2} -
# \sum_{i} (x_i \mathbf v_i)^{\odot 2} \right],$$
#
# with $\odot 2$ the element-wise square: $O(k s)$. By hand, both ways, in float64, against
# featint's `bi_interaction` (shown after the check):

# %%
def bi_interaction_naive(v, idx, val):
    """sum over slot pairs a < b of x_a v_{i_a} * x_b v_{i_b}, per row: O(k s^2)."""
    out = torch.zeros(idx.shape[0], v.shape[1], dtype=v.dtype)
    for r in range(idx.shape[0]):
        for a, b in itertools.combinations(range(idx.shape[1]), 2):
            out[r] += (val[r, a] * v[idx[r, a]]) * (val[r, b] * v[idx[r, b]])
    return out


def bi_interaction_sum_square(v, idx, val):
    """The same in O(k s): 1/2 [(sum_a x_a v_a)^2 - sum_a (x_a v_a)^2], element-wise."""
    xv = v[idx] * val.unsqueeze(-1)                     # x_a v_{i_a}: (batch, slots, k)
    return 0.5 * (xv.sum(1).pow(2) - xv.pow(2).sum(1))  # (batch, k)


gen = torch.Generator().manual_seed(0)
num_features, k, batch, slots = 50, 8, 5, 12
v = torch.randn(num_features, k, generator=gen, dtype=torch.float64)
idx = torch.stack([torch.randperm(num_features - 1, generator=gen)[:slots] + 1
                   for _ in range(batch)])
val = torch.where(torch.rand(batch, slots, generator=gen) < 0.5, 1.0,
                  torch.randn(batch, slots, generator=gen)).double()
for r, length in enumerate([12, 9, 5, 1, 0]):  # padding slots: index 0, value 0
    idx[r, length:], val[r, length:] = 0, 0.0
embedding = FeaturesEmbedding(num_features, k).double()
with torch.no_grad():
    embedding.embedding.weight.copy_(v)
    xv = embedding(Features(idx, val, torch.zeros(slots, dtype=torch.long)))
    featint_bi = bi_interaction(xv)
naive = bi_interaction_naive(v, idx, val)
sum_square = bi_interaction_sum_square(v, idx, val)
assert torch.allclose(naive, featint_bi, rtol=0, atol=1e-10)
assert torch.allclose(sum_square, featint_bi, rtol=0, atol=1e-10)
assert naive[-2:].abs().max() < 1e-12  # one slot or none: no pair, a zero vector
print("max |naive - featint|:", (naive - featint_bi).abs().max().item())
pd.DataFrame(featint_bi.numpy(),
             columns=[f"f_BI[q={q}]" for q in range(1, k + 1)]).round(3)

# %%
source(bi_interaction)

# %% [markdown]
# ## Ranking every movie
#
# Training scores a context against 5 movies, evaluation against all 1,682, and NFM's MLP
# does not split into a context part and a movie part the way FM's sum does. It does not have
# to be run on a naively built vector either. Split the non-zeros into the context's, $C$, and
# the movie's, $M$, and write $\mathbf v_C = \sum_{i \in C} x_i \mathbf v_i$ and
# $\mathbf v_M = \sum_{j \in M} x_j \mathbf v_j$ for the summed vectors of the two sides
# (`s_c`, `s_m` in the code). The pairs inside $C$, inside $M$ and across:
#
# $$f_{\mathrm{BI}}(C \cup M) = f_{\mathrm{BI}}(C) + f_{\mathrm{BI}}(M) + \mathbf v_C \odot
# \mathbf v_M .$$
#
# The first term is computed once per context, the second once per movie, the third is one
# element-wise product per pair. At evaluation time BatchNorm uses its running statistics and
# dropout is off, so everything from $f_{\mathrm{BI}}$ up to the first ReLU
# (BatchNorm, $\mathbf W_1 \cdot + \mathbf b_1$, BatchNorm) is one affine map
# $\mathbf z \mapsto \mathbf A \mathbf z + \mathbf a$, and
#
# $$\mathbf A f_{\mathrm{BI}}(C \cup M) + \mathbf a = \underbrace{\mathbf A f_{\mathrm{BI}}(C)
# + \mathbf a}_{\text{per context}} + \underbrace{\mathbf A f_{\mathrm{BI}}(M)}_{\text{per
# movie}} + \underbrace{\big(\mathbf A \operatorname{diag}(\mathbf v_C)\big)\, \mathbf
# v_M}_{\text{one matrix product per context}} .$$
#
# So the $k$-vectors of the (context, movie) pairs are never built: for every context, one
# matrix product with the 1,682 movie vectors gives the first hidden layer. featint's
# `NFM.forward` and its all-movie path `NFM._rank_all`:

# %%
source(NFM.forward, NFM._rank_all)

# %% [markdown]
# Check, in float64 with every weight and every BatchNorm statistic random: the fast
# all-movie path, the candidates path and the definition (Bi-Interaction of the joined context
# + movie vector, then BatchNorm, the MLP and $\mathbf w_{\mathrm{out}}$, without any split)
# agree.

# %%
ml = load_movielens()
task = build_task(ml)


def randomized_nfm(seed=0, **hparams):
    model = build_model("nfm", task, seed=seed, **hparams).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        model.embedding.embedding.weight[0].zero_()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.1, generator=gen)
                module.running_var.uniform_(0.5, 1.5, generator=gen)
    return model.eval()


def nfm_definition(model, context, movies):
    """y of each context and movie from the joined sparse vector: (batch, movies)."""
    movie = model.items(movies)                                   # (movies, item slots)
    n_ctx, n_mov = context.idx.shape[0], len(movies)
    joint = Features(
        torch.cat([context.idx[:, None].expand(-1, n_mov, -1),
                   movie.idx.expand(n_ctx, -1, -1)], -1),
        torch.cat([context.val[:, None].expand(-1, n_mov, -1),
                   movie.val.expand(n_ctx, -1, -1)], -1),
        torch.cat([context.field, movie.field]))
    f_bi = bi_interaction(model.embedding(joint))                 # (batch, movies, k)
    w_out = model.w_out                                               # the output layer
    deep = w_out(model.mlp(model.bi_dropout(model.bi_norm(f_bi)))).squeeze(-1)
    return model.w0 + model.linear(joint) + deep


check = randomized_nfm()
ex = task.examples("test")[:6]
context = task.context(ex)
context = Features(context.idx, context.val.double(), context.field)
movies = torch.arange(0, task.num_items, 7)  # every 7th movie: a small joined tensor
with torch.no_grad():
    every = check(context, torch.arange(task.num_items))  # (6, 1682), fast path
    some = check(context, movies.expand(len(ex), -1))     # candidates path
    plain = nfm_definition(check, context, movies)
assert torch.allclose(every[:, movies], plain, rtol=0, atol=1e-10)
assert torch.allclose(some, plain, rtol=0, atol=1e-10)
print(f"all-movie scores {tuple(every.shape)}; max |fast - definition| "
      f"{(every[:, movies] - plain).abs().max().item():.1e}")

# %% [markdown]
# ### NFM without hidden layers is FM
#
# An NFM with no hidden layer, no BatchNorm, no dropout and $\mathbf w_{\mathrm{out}} =
# \mathbf 1$ (the official code initialises the output layer to ones in exactly this case)
# computes $w_0 + \sum_i w_i x_i + \mathbf 1^\top f_{\mathrm{BI}}(\mathbf x)$. Copy an FM's
# $w_0$, $w_i$ and $\mathbf v_i$ into it: the two models agree to rounding on both item forms.

# %%
fm_check = build_model("fm", task, seed=0).double().eval()
with torch.no_grad():
    for p in fm_check.parameters():
        p.normal_(std=0.1)
    fm_check.embedding.embedding.weight[0].zero_()
    fm_check.linear.weight.weight[0].zero_()
nfm0 = build_model("nfm", task, seed=1, hidden=(), batch_norm=False, bi_dropout=0.0,
                   dropout=0.0).double().eval()
missing = nfm0.load_state_dict(fm_check.state_dict(), strict=False).missing_keys
print("not copied:", missing, "(the output layer w_out)")
assert missing == ["w_out.weight"]
assert torch.equal(nfm0.w_out.weight, torch.ones_like(nfm0.w_out.weight))
candidates = torch.from_numpy(
    np.random.default_rng(0).integers(0, task.num_items, (len(ex), 10)))
with torch.no_grad():
    for items in (candidates, torch.arange(task.num_items)):
        gap = (nfm0(context, items) - fm_check(context, items)).abs().max().item()
        assert gap < 1e-10, gap
        print(f"items {tuple(items.shape)}: max |NFM-0 - FM| = {gap:.1e}")

# %% [markdown]
# ## Defaults, and where featint deviates
#
# The official implementation (`hexiangnan/neural_factorization_machine`, `NeuralFM.py` and
# its README) and the paper, against featint's NFM under the comparison's settings (printed
# and checked below):
#
# | | paper / official code | featint |
# |---|---|---|
# | embedding size $k$ | 64 | 16, the comparison's common size |
# | hidden layers | one, as wide as $k$ (`--layers [64]`) | one, as wide as $k$ |
# | BatchNorm | on $f_{\mathrm{BI}}$ and on the hidden layer | the same |
# | dropout on $f_{\mathrm{BI}}$ | 0.5 (last entry of `--keep_prob [0.8,0.5]`) | tuned (below) |
# | dropout on the hidden layer | 0.2 (first entry of `--keep_prob`) | the same |
# | initialisation | $\mathbf v \sim \mathcal N(0, 0.01^2)$, $w_i = 0$, Glorot-normal | the same |
# | feature values | binary (the code sums embeddings) | real $x_i$ (numeric fields, bags) |
# | loss, optimiser | squared loss, Adagrad (lr 0.05), batches of 128 | BCE, Adam (budget below) |
# | pre-training | optional, FM's embeddings | an option, tuned (below) |
#
# Without a hidden layer both initialise $\mathbf w_{\mathrm{out}} = \mathbf 1$. featint's
# default dropout on $f_{\mathrm{BI}}$ is the paper's; the comparison, and so this chapter,
# uses the setting chosen on validation (below). featint's feature values are real, as in the
# paper's equations: numeric fields, and $1/\lvert\text{bag}\rvert$ for each member of a
# bag.
#
# ## Training
#
# Every model on the next-movie task is the comparison's: trained once per machine under the
# budget of [chapter 08](08_comparison.ipynb), with its per-model settings, seed 0, and read
# back from the model cache after that (`featint.cache.trained`). The budget, and the settings
# of the models this chapter uses:

# %%
budget = Budget()
print(budget.describe())
settings = {name: {**model_hparams(name, budget),
                   "lr": budget.lr_for(name)} for name in ("mf", "fm", "nfm")}
pd.DataFrame.from_dict(settings, orient="index").astype(object).fillna("")

# %%
mf, mf_history = trained("mf", task)
fm, fm_history = trained("fm", task)
nfm, nfm_history = trained("nfm", task)
assert budget.embed_dim == 16 and nfm.mlp[0].out_features == budget.embed_dim
assert nfm.bi_dropout.p == budget.hparams_for("nfm").get("bi_dropout", 0.5)
assert nfm.mlp[3].p == 0.2                     # the hidden layer's, as in the paper

# %% [markdown]
# ### The paper's settings, tuned like every model's
#
# The paper drops half of the Bi-Interaction vector at every step and can start from a
# trained FM's embeddings. Neither is taken on trust here: `make tune` trained NFM's three
# settings of `featint/tuning.py` (the paper's among them) under the comparison's budget
# with seed 0, scored each on the whole validation set, and the comparison trains with the
# best; the test set played no part. Every model got the same number of trials
# ([chapter 08](08_comparison.ipynb) shows them all).

# %% tags=["hide-input"]
nfm_trials = trials_table().query("model == 'nfm'").set_index("setting")
shown = ["paper", "chosen", "mrr", "hr@10", "best_epoch", "epochs"]
display(nfm_trials[shown].round(4))

# %% tags=["remove-input"]
if len(nfm_trials):
    won = nfm_trials.index[nfm_trials["chosen"]][0]
    paper_label = nfm_trials.index[nfm_trials["paper"]][0]
    display(Markdown(
        f"The comparison's NFM is \"{won}\" (validation MRR "
        f"{nfm_trials.loc[won, 'mrr']:.4f}); the paper's setting, \"{paper_label}\", "
        f"reached {nfm_trials.loc[paper_label, 'mrr']:.4f}. One seed each: chapter 08 "
        "sets such differences beside the spread that the seed alone causes."))

# %% [markdown]
# The NFM without BatchNorm is an ablation, the lesson of a later section: the comparison's
# NFM with `batch_norm=False` and nothing else changed, trained under the same budget (and
# cached the same way).

# %%
nfm_plain_hparams = {**budget.hparams_for("nfm"), "batch_norm": False}
print("nfm (no BatchNorm):", nfm_plain_hparams)
nfm_plain, plain_history = trained("nfm", task, hparams=nfm_plain_hparams)
models = {"mf": mf, "fm": fm, "nfm": nfm, "nfm (no BatchNorm)": nfm_plain}
histories = {"mf": mf_history, "fm": fm_history, "nfm": nfm_history,
             "nfm (no BatchNorm)": plain_history}

# %% tags=["hide-input"]
pd.DataFrame({name: {"parameters": count_parameters(models[name]),
                     "best epoch": h.best_epoch, "epochs run": len(h.epochs),
                     "best valid MRR": h.best["valid_mrr"],
                     "s per epoch": np.mean([row["seconds"] for row in h.epochs])}
              for name, h in histories.items()}).T.round(4)

# %% [markdown]
# How they learn: the training loss and the validation MRR after each epoch (all-movie
# ranking of the same validation examples for every model). The training loss is measured
# with dropout on for NFM, where MF and FM have none: it says how each model's training went,
# not which model fits the training data better (exercise 2 measures that, with dropout off).

# %%
plot_histories(histories)
plt.show()

# %% [markdown]
# ## What BatchNorm sees
#
# The Bi-Interaction vector sums products of many embeddings, so nothing keeps its components
# centred or on a common scale, and they move while the embeddings learn; the paper
# normalises it before the MLP for that reason. Here are the components of $f_{\mathrm{BI}}$
# for test contexts and their target movies under the trained NFM, before and after its
# BatchNorm (running statistics and the learned scale and shift, as at evaluation time).

# %%
ex = task.examples("test")[:: 10 if quick() else 2]
with torch.no_grad():
    ctx = task.context(ex)
    movie = nfm.items(torch.from_numpy(task.target[ex]))
    xv_c, xv_m = nfm.embedding(ctx), nfm.embedding(movie)
    f_bi = bi_interaction(xv_c) + bi_interaction(xv_m) + xv_c.sum(-2) * xv_m.sum(-2)
    normed = nfm.bi_norm(f_bi)
order = np.argsort(f_bi.std(0).numpy())[::-1]
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5), sharex=True)
ax[0].boxplot(f_bi.numpy()[:, order], showfliers=False)
ax[0].set(title="$f_{BI}$ components (raw)", xlabel="component $q$, by spread",
          ylabel="value")
ax[1].boxplot(normed.numpy()[:, order], showfliers=False)
ax[1].set(title="after BatchNorm", xlabel="component $q$, by spread",
          ylabel="value after BatchNorm")
fig.suptitle(f"{len(ex):,} test contexts with their target movie")
fig.tight_layout()
plt.show()
spread = f_bi.std(0)
assert torch.isfinite(spread).all() and spread.min() > 0
print(f"raw spread per component: {spread.min():.3g} to {spread.max():.3g} "
      f"(ratio {spread.max() / spread.min():.0f}); after BatchNorm: "
      f"{normed.std(0).min():.2f} to {normed.std(0).max():.2f}")

# %% [markdown]
# ## Test results
#
# The test set against all movies: NFM beside the baseline ladder (random scores, the most
# popular movies, a first-order Markov chain on the last movie, ItemKNN), matrix factorisation
# (user and movie only: no side features, no other interactions), FM (every pair, summed)
# and the NFM without BatchNorm. Bars are 95% bootstrap intervals over test examples.

# %%
results = evaluate_all(task, models)
results_table(results)

# %%
plot_results(results)
plt.show()

# %% tags=["hide-input"]
def versus(a, b, metric="hr@10"):
    """How model a's test metric stands against b's: 'above' or 'below' where their 95%
    intervals are disjoint, 'level with' where they overlap."""
    a_lo, a_hi = results[a].intervals[metric]
    b_lo, b_hi = results[b].intervals[metric]
    if a_lo > b_hi:
        return "above"
    if a_hi < b_lo:
        return "below"
    return "level with"


def hr(name):
    lo, hi = results[name].intervals["hr@10"]
    return f"{results[name].metrics['hr@10']:.3f} [{lo:.3f}, {hi:.3f}]"


for name, res in results.items():
    assert np.isfinite(res.metrics["hr@10"]), name
    assert 1 <= res.metrics["mean_rank"] <= task.num_items, name
nfm_vs = {b: versus("nfm", b) for b in ("popular", "itemknn", "mf", "fm")}
bn_vs = versus("nfm (no BatchNorm)", "nfm")
text = (
    f"On the test set, with the seed-0 models, NFM's HR@10 is {hr('nfm')}: "
    f"{nfm_vs['popular']} the most-popular baseline ({hr('popular')}), "
    f"{nfm_vs['itemknn']} ItemKNN ({hr('itemknn')}), {nfm_vs['mf']} MF ({hr('mf')}) "
    f"and {nfm_vs['fm']} FM ({hr('fm')}); \"level with\" means that the 95% intervals "
    "overlap. "
)
if nfm_vs["fm"] == "above":
    text += ("Mixing the Bi-Interaction components in a hidden layer pays here: NFM "
             "ranks the next movie better than FM's plain sum of the same pairs. ")
elif nfm_vs["fm"] == "below":
    text += ("The hidden layer costs more than it gives here: FM's plain sum of "
             "the components is one of the functions NFM can represent, but NFM has "
             "to learn it back through the hidden layer and the output layer, under "
             "dropout. ")
else:
    text += ("The hidden layer buys nothing that this test set can tell apart "
             "from FM's plain sum of the same pairs. ")
text += (f"Without BatchNorm, the same NFM is {bn_vs} the NFM with it in HR@10 "
         f"({hr('nfm (no BatchNorm)')}). "
         "All of this rests on one seed; the spread over the comparison's seeds "
         "follows.")
display(Markdown(text))

# %% [markdown]
# One seed is one draw of initial weights, negatives and dropout masks. The comparison trains
# every model with several seeds; next to this chapter's seed-0 numbers (when `results/`
# holds a comparison of the current protocol):

# %%
seed_spread(results, ["mf", "fm", "nfm"])

# %% [markdown]
# ## What NFM leaves open
#
# NFM's non-linearity sits *after* the pooling: the Bi-Interaction vector is a sum over all
# pairs, so the MLP sees how strongly the pairs agree, component by component, but not which
# pair contributed what. A strong (last movie, candidate) signal and a weak (hour, candidate)
# one arrive mixed into the same $k$ numbers (exercise 1 builds an example where a whole
# feature's pairs vanish from $f_{\mathrm{BI}}$). Attention over the pairs
# ([AFM](03_afm.ipynb)) weights them before pooling; the next chapter's DLRM keeps one dot
# product per *pair of fields* and gives all of them, side by side, to its top MLP.
#
# ## Paper vs. here
#
# He and Chua {cite}`he2017nfm` evaluate NFM on two regression tasks built from implicit
# feedback, each positive log paired with two sampled negatives: Frappe (context-aware app
# usage, 288,609 instances over 5,382 features) and a MovieLens tag data set (user, movie,
# tag). They report RMSE, and with one hidden layer NFM improves on FM by 7.3% (relative).
# Here:

# %% tags=["remove-input"]
rel = (results["nfm"].metrics["hr@10"] / results["fm"].metrics["hr@10"] - 1) * 100
paper_vs_here = pd.DataFrame({
    "paper": {
        "data": "Frappe (app usage in context), MovieLens tags (user, movie, tag)",
        "task, metric": "regression on +1 / −1 targets (2 sampled negatives per "
                        "log), RMSE",
        "headline": "NFM with one hidden layer beats FM by 7.3% (relative RMSE)",
        "key settings": "k = 64, dropout 0.5 on f_BI, squared loss, Adagrad, "
                        "optional FM pre-training",
    },
    "here": {
        "data": "MovieLens 100K next-movie task (the protocol of this book)",
        "task, metric": "full ranking of all 1,682 movies per test example, "
                        "HR@10, MRR, mean rank",
        "headline": f"NFM {hr('nfm')} vs FM {hr('fm')} HR@10 (seed 0): "
                    f"{rel:+.1f}% relative, {nfm_vs['fm']} FM",
        "key settings": f"k = {budget.embed_dim}, dropout "
                        f"{nfm.bi_dropout.p:g} on f_BI (chosen on validation), "
                        f"BCE with {budget.num_negatives} sampled negatives, Adam, "
                        + ("FM pre-training" if nfm.pretrain else "no pre-training")
                        + " (chosen on validation)",
    },
})
rows = [f"| | {' | '.join(paper_vs_here.columns)} |",
        "|---" * (1 + len(paper_vs_here.columns)) + "|"]
rows += [f"| {row} | {' | '.join(cells)} |" for row, cells in paper_vs_here.iterrows()]
display(Markdown("\n".join(rows)))

# %% [markdown]
# Why the two may differ: the paper fits a score to a label, where here the model must put
# one movie out of 1,682 near the top, and a small gain in RMSE need not move a rank; its
# data sets have a handful of one-hot fields, where ours adds a long history bag and numeric
# fields; its dropout, pre-training and learning rate were tuned for its data, ours on our
# validation set, with as many trials as every other model and one budget with early
# stopping; and its negatives are two per log for a regression target, ours four per
# positive for a cross-entropy on a ranking task.
#
# ## Summary
#
# - NFM keeps FM's pairwise products as a $k$-vector, $f_{\mathrm{BI}}(\mathbf x) =
#   \sum_{i<j} x_i \mathbf v_i \odot x_j \mathbf v_j$, and feeds it to an MLP; the sum of
#   its components is FM's pairwise term.
# - The sum-square trick works per component, so $f_{\mathrm{BI}}$ costs $O(ks)$.
# - With no hidden layer, no BatchNorm, no dropout and $\mathbf w_{\mathrm{out}} = \mathbf 1$,
#   NFM is exactly FM (checked above to rounding).
# - Ranking all movies never builds a vector per (context, movie) pair: in eval mode
#   BatchNorm and the first layer are affine and split into context and movie parts.
# - The paper's dropout of 0.5 on $f_{\mathrm{BI}}$ and its FM pre-training are settings to
#   choose on validation, like every model's; the table of NFM's trials shows which won.
#
# ## Exercises
#
# **1. By hand.** An example has three non-zero features, with $k = 2$ and
# $x_a \mathbf v_a = (1, 2)$, $x_b \mathbf v_b = (-1, 1)$, $x_c \mathbf v_c = (2, 0)$.
# (a) Compute $f_{\mathrm{BI}}$ pair by pair and with the sum-square formula.
# (b) What is FM's pairwise term? (c) An NFM with one hidden unit, $\mathbf W_1 = (1, -1)$,
# $b_1 = 0$, $\mathbf w_{\mathrm{out}} = 2$, no BatchNorm and no dropout: what does its
# interaction part add to $\hat y$? (d) Remove feature $c$: what changes in $f_{\mathrm{BI}}$?
#
# :::{admonition} Solution
# :class: dropdown
# (a) $ab$: $(-1, 2)$; $ac$: $(2, 0)$; $bc$: $(-2, 0)$; sum $(-1, 2)$. Sum-square:
# $\sum x\mathbf v = (2, 3)$, squared $(4, 9)$; $\sum (x\mathbf v)^{\odot 2} =
# (1 + 1 + 4, 4 + 1 + 0) = (6, 5)$; $\tfrac12[(4, 9) - (6, 5)] = (-1, 2)$.
# (b) The sum of the components: $-1 + 2 = 1$.
# (c) $\mathbf W_1 f_{\mathrm{BI}} = -1 - 2 = -3$, $\mathrm{ReLU}(-3) = 0$, so it adds
# $2 \cdot 0 = 0$: where FM adds 1, this NFM adds nothing, the non-linearity at work.
# (d) Nothing: $c$'s two pairs, $(2, 0)$ and $(-2, 0)$, cancel, so $f_{\mathrm{BI}}$ is
# $(-1, 2)$ with or without $c$. The pooled vector cannot tell which pairs were there, which
# is what "What NFM leaves open" is about.
# :::
#
# **2. Code: the training loss with dropout off.** The loss curves above were measured in
# train mode, with dropout on $f_{\mathrm{BI}}$ and on the hidden layer, and BatchNorm on
# batch statistics. Take 1,024 fit examples with 4 sampled negatives each, and compute NFM's
# binary cross-entropy in `model.eval()` and in `model.train()` (average a few dropout
# draws), and FM's. Which of NFM's two numbers can be set beside FM's? Careful: a forward
# pass in train mode updates BatchNorm's running statistics, so work on a copy.

# %% tags=["hide-input"]
rng = np.random.default_rng(0)
batch_ex = rng.choice(task.examples("fit"), 1024, replace=False)
batch_candidates = torch.from_numpy(
    np.column_stack([task.target[batch_ex], task.sample_negatives(batch_ex, 4, rng)]))
batch_labels = torch.zeros(batch_candidates.shape)
batch_labels[:, 0] = 1.0


def fit_bce(model, train_mode, draws=5):
    """Mean BCE on the batch above over `draws` dropout draws (eval mode: one)."""
    model = copy.deepcopy(model).train(train_mode)  # the cached model stays untouched
    losses = []
    with torch.no_grad():
        for draw in range(draws if train_mode else 1):
            torch.manual_seed(draw)
            logits = model(task.context(batch_ex), batch_candidates)
            loss = F.binary_cross_entropy_with_logits(logits, batch_labels)
            losses.append(loss.item())
    return float(np.mean(losses))


bce = pd.Series({"nfm, eval mode (dropout off)": fit_bce(nfm, False),
                 "nfm, train mode (dropout on)": fit_bce(nfm, True),
                 "fm (no dropout, no BatchNorm)": fit_bce(fm, False)}, name="BCE")
# FM has neither dropout nor BatchNorm: the same loss in both modes
assert abs(fit_bce(fm, True) - bce["fm (no dropout, no BatchNorm)"]) < 1e-6
assert np.isfinite(bce).all()
display(bce.round(4).to_frame())
lower = "lower" if bce.iloc[0] < bce.iloc[2] else "higher"
display(Markdown(
    f"With dropout off, NFM's BCE on these 1,024 fit examples is {bce.iloc[0]:.4f}, "
    f"{lower} than FM's {bce.iloc[2]:.4f}; with dropout on it is {bce.iloc[1]:.4f}. "
    "Only the eval-mode number measures the same function FM is measured with: the "
    "train-mode loss is that of a randomly thinned network whose BatchNorm uses the "
    "batch's own statistics, the loss the curves above show."))

# %% [markdown]
# **3. Think: what dropout on $f_{\mathrm{BI}}$ does to FM.** Take NFM with no hidden layer
# and $\mathbf w_{\mathrm{out}} = \mathbf 1$, and put (inverted) dropout with rate $p$ on
# $f_{\mathrm{BI}}$: at each step every component is kept with probability $1 - p$ and then
# divided by $1 - p$. What are the mean and the variance, over the dropout mask, of the
# interaction term during training? How does the ratio between $p = 0.5$ and $p = 0.2$ come
# out, and why does a cross-entropy loss care about that variance?
#
# :::{admonition} Solution
# :class: dropdown
# The term is $\sum_q \delta_q f_q / (1 - p)$ with independent $\delta_q \sim
# \mathrm{Bernoulli}(1 - p)$ and $f_q$ the components of $f_{\mathrm{BI}}$. Its mean is
# $\sum_q f_q$, FM's pairwise term, and its variance is $\frac{p}{1 - p} \sum_q f_q^2$: a
# factor $1$ for $p = 0.5$, $0.25$ for $p = 0.2$. At evaluation no component is dropped, so
# the model scores with the mean. The BCE is convex in the logit, so by Jensen's inequality
# its expectation over masks is at least the loss of the mean logit, and more so the larger
# the variance: training pays for large components and is pushed to keep
# $\sum_q f_q^2$ small, a regulariser whose strength $p / (1 - p)$ is four times larger at 0.5
# than at 0.2. Whether that much regularisation helps is a question for the validation set.
# :::
#
# **4. Code: the paper's 0.5 against 0.2, on a small budget.** Train NFM with dropout 0.5,
# 0.2 and 0 on $f_{\mathrm{BI}}$, everything else as in the comparison, but on 20,000 fit
# examples per epoch for 3 epochs, and compare their validation MRR. What would you need
# before trusting the order you see?

# %% tags=["hide-input"]
small = dict(epochs=3, max_examples=20_000, valid_limit=2000, lr=budget.lr_for("nfm"),
             batch_size=budget.batch_size, num_negatives=budget.num_negatives, seed=0,
             progress=False, verbose=False)
print("settings:", {name: value for name, value in small.items()
                    if name not in ("progress", "verbose")})
dropout_trials = {}
for p in (0.5, 0.2, 0.0):
    trial = build_model("nfm", task, seed=0, embed_dim=budget.embed_dim, bi_dropout=p)
    trial_history = fit(trial, task, **small)
    dropout_trials[p] = {"best valid MRR": trial_history.best["valid_mrr"],
                         "best epoch": trial_history.best_epoch}
trials = pd.DataFrame(dropout_trials).T.rename_axis("dropout on f_BI")
assert np.isfinite(trials["best valid MRR"]).all()
display(trials.round(4))
best_p = trials["best valid MRR"].idxmax()
gap = trials["best valid MRR"].max() - trials["best valid MRR"].drop(best_p).max()
display(Markdown(
    f"On this small budget, dropout {best_p:g} has the best validation MRR, ahead of "
    f"the next by {gap:.4f}. That is one seed, a few short epochs and at most 2,000 "
    "validation examples, where seeds alone move the best validation MRR by about as "
    "much as the settings do (chapter 08 measures that spread), and a setting that "
    "trains slowly can be behind after three "
    "epochs and ahead after fifteen. Before trusting the order, repeat it over seeds, "
    "under the full budget, on the whole validation set (`make tune` does the last "
    "two)."))
