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
from featint.cards import NAMES as SETTING_NAMES
from featint.cards import budget_rows, card
from featint.chapter import (
    evaluate_all,
    load_comparison,
    plot_histories,
    plot_results,
    results_table,
    seed_spread,
    solution,
    value_text,
    verdict,
    verdict_text,
)
from featint.config import current
from featint.evaluate import evaluate, per_example
from featint.features import Features
from featint.layers import FeaturesEmbedding, bi_interaction
from featint.models import build_model, count_parameters
from featint.models.nfm import NFM
from featint.report import pairwise_method_text, trials_table
from featint.show import source
from featint.stats import pairwise
from featint.train import fit
from featint.training import fit_args, model_hparams, setting_of, trained
from featint.tuning import SPACES

config = current()
print("quick mode:", config.quick, "| torch threads:", torch.get_num_threads())

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
#   $$\mathrm{BI}(\mathbf x) = \sum_{i<j} x_i \mathbf v_i \odot x_j \mathbf v_j ;$$
# - **hidden layers**: $\mathbf z_0 = \mathrm{BI}(\mathbf x)$ and
#   $\mathbf z_l = \mathrm{ReLU}(\mathbf W_l \mathbf z_{l-1} + \mathbf b_l)$ for
#   $l = 1, \dots, L$;
# - **prediction**: the output layer $\mathbf w_{\mathrm{out}}$ (the paper's $\mathbf h$),
#
# $$\hat y(\mathbf x) = w_0 + \sum_{i=1}^n w_i x_i + \mathbf w_{\mathrm{out}}^\top
# \mathbf z_L .$$
#
# (The paper writes the pooling $f_{\mathrm{BI}}$; in this book $f$ is a field, so the
# pooling is $\mathrm{BI}$.) Component $q$ of the pooled vector is
# $\mathrm{BI}_q(\mathbf x) = \sum_{i<j} v_{i,q} x_i\, v_{j,q} x_j$, so the sum of its
# components is FM's pairwise term $\sum_{i<j} \langle \mathbf v_i, \mathbf v_j \rangle
# x_i x_j$. With $L = 0$ and $\mathbf w_{\mathrm{out}} = \mathbf 1$, the last term is
# $\mathbf 1^\top \mathrm{BI}(\mathbf x)$ and **NFM is FM**; with a hidden layer, the $k$
# components are mixed non-linearly before the projection $\mathbf w_{\mathrm{out}}$. The
# paper adds BatchNorm on $\mathrm{BI}(\mathbf x)$ and on the hidden layers, and dropout on
# both, and finds one hidden layer best. (The paper calls the output layer $\mathbf h$; in
# this book $\mathbf h$ is AFM's attention vector, and featint's code calls it `NFM.w_out`.)
#
# ### Bi-Interaction in linear time
#
# The double sum costs $O(k s^2)$ for an example with $s$ non-zero features. The sum-square
# trick of [chapter 01](01_fm.ipynb) works component by component, so it applies before the
# final sum over $q$: stop the derivation one line early and keep the vector,
#
# $$\mathrm{BI}(\mathbf x) = \frac12 \left[ \Big(\sum_{i} x_i \mathbf v_i\Big)^{\odot 2} -
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
             columns=[f"BI_{q}" for q in range(1, k + 1)]).round(3)

# %%
source(bi_interaction)

# %% [markdown]
# ## Ranking every movie
#
# Training scores a context against 5 movies, evaluation against all 1,682, and NFM's MLP
# does not split into a context part and a movie part the way FM's sum does. It does not have
# to be run on a naively built vector either. Split the non-zeros into the context's, $C$, and
# the movie's, $M$, write $\mathrm{BI}(C)$ and $\mathrm{BI}(M)$ for the pooling of each side's
# features alone, and $\mathbf v_C = \sum_{i \in C} x_i \mathbf v_i$ and
# $\mathbf v_M = \sum_{j \in M} x_j \mathbf v_j$ for the summed vectors of the two sides.
# The pairs inside $C$, inside $M$ and across:
#
# $$\mathrm{BI}(C \cup M) = \mathrm{BI}(C) + \mathrm{BI}(M) + \mathbf v_C \odot
# \mathbf v_M .$$
#
# The first term is computed once per context, the second once per movie, the third is one
# element-wise product per pair. At evaluation time BatchNorm uses its running statistics and
# dropout is off, so everything from $\mathrm{BI}$ up to the first ReLU
# (BatchNorm, $\mathbf W_1 \cdot + \mathbf b_1$, BatchNorm) is one affine map
# $\mathbf z \mapsto \mathbf D \mathbf z + \mathbf d$, with one row of $\mathbf D$ and one
# entry of $\mathbf d$ per unit of the first hidden layer, and
#
# $$\mathbf D\, \mathrm{BI}(C \cup M) + \mathbf d = \underbrace{\mathbf D\, \mathrm{BI}(C)
# + \mathbf d}_{\text{per context}} + \underbrace{\mathbf D\, \mathrm{BI}(M)}_{\text{per
# movie}} + \underbrace{\big(\mathbf D \operatorname{diag}(\mathbf v_C)\big)\, \mathbf
# v_M}_{\text{one matrix product per context}} .$$
#
# So the $k$-vectors of the (context, movie) pairs are never built: for every context, one
# matrix product with the 1,682 movie vectors gives the first hidden layer. featint's
# `NFM.forward` and its all-movie path `NFM._rank_all` follow; in the code, `f_c` and `f_m`
# are $\mathrm{BI}(C)$ and $\mathrm{BI}(M)$ (the `f` of the paper's $f_{\mathrm{BI}}$),
# `s_c` and `s_m` are $\mathbf v_C$ and $\mathbf v_M$, and `A` and `a` are $\mathbf D$ and
# $\mathbf d$:

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
    bi = bi_interaction(model.embedding(joint))                   # (batch, movies, k)
    w_out = model.w_out                                           # the output layer
    deep = w_out(model.mlp(model.bi_dropout(model.bi_norm(bi)))).squeeze(-1)
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
# computes $w_0 + \sum_i w_i x_i + \mathbf 1^\top \mathrm{BI}(\mathbf x)$. Copy an FM's
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
# ## The paper's NFM and featint's
#
# The paper and its official implementation (`hexiangnan/neural_factorization_machine`,
# `NeuralFM.py` and its README) against featint's NFM, in what the code does:
#
# | | paper / official code | featint |
# |---|---|---|
# | BatchNorm | on $\mathrm{BI}(\mathbf x)$ and on the hidden layer | in the same places |
# | initialisation | $\mathbf v \sim \mathcal N(0, 0.01^2)$, $w_i = 0$, Glorot-normal | the same |
# | output layer, no hidden layer | $\mathbf w_{\mathrm{out}} = \mathbf 1$ | the same |
# | feature values | binary (the code sums embeddings) | real $x_i$ (numeric fields, bags) |
# | loss | squared loss on $\pm 1$ targets | binary cross-entropy, sampled negatives |
#
# featint's feature values are real, as in the paper's equations: numeric fields, and
# $1/\lvert\text{bag}\rvert$ for each member of a bag.
#
# The paper's own setting, as it states it: embedding size 64, one hidden layer as wide as the
# embedding (the official code's `--layers [64]`), and mini-batch Adagrad (§4.1.4). The paper
# drops half of the Bi-Interaction vector (§4.4, the last entry of the official code's
# `--keep_prob [0.8,0.5]`), and the official code drops a fifth of the hidden layer (the
# first entry). The paper can start from a trained FM's embeddings, and its §4.3.1 finds that
# this pre-training speeds up convergence, not that it ends better. Which of these featint's
# NFM trains with is its card, next.
#
# ## Training
#
# Every model on the next-movie task is the comparison's: `featint.training.trained` trains it
# under the budget every model shares, with its own setting from the tuning record, seed 0,
# and reads it back from the model cache after that, so this chapter's NFM is the one
# [chapter 08](08_comparison.ipynb) ranks. The budget, then the card of each model this
# chapter trains: every setting with its value and where the value comes from.

# %% tags=["hide-input"]
budget = config.budget
budget_lines = [f"| {what} | {value} |" for what, value in budget_rows(budget)]
display(Markdown("| the budget (every model) | |\n|---|---|\n" + "\n".join(budget_lines)
                 + ("\n\nQuick mode: " + config.sizes.describe() + "." if config.quick
                    else "")))
cards = {name: card(name, budget) for name in ("mf", "fm", "nfm")}
for model_card in cards.values():
    display(Markdown(model_card.markdown()))

# %%
mf, mf_history = trained("mf", task, progress=False)
fm, fm_history = trained("fm", task, progress=False)
nfm, nfm_history = trained("nfm", task, progress=False)
nfm_card = cards["nfm"]
# the trained NFM is the card's
hidden = [m.out_features for m in nfm.mlp if isinstance(m, nn.Linear)]
assert hidden == list(nfm_card.value("hidden")), hidden
assert nfm.bi_dropout.p == nfm_card.value("bi_dropout")
hidden_dropout = {m.p for m in nfm.mlp if isinstance(m, nn.Dropout)}
assert hidden_dropout == {nfm_card.value("dropout")}
assert nfm.pretrain == nfm_card.value("pretrain")
assert isinstance(nfm.bi_norm, nn.BatchNorm1d) == nfm_card.value("batch_norm")
# the text below: NFM trains with dropout, MF and FM have none
assert max(nfm_card.value("bi_dropout"), nfm_card.value("dropout")) > 0
models = {"mf": mf, "fm": fm, "nfm": nfm}
histories = {"mf": mf_history, "fm": fm_history, "nfm": nfm_history}

# %% [markdown]
# ### NFM's trials
#
# `make tune` trained each of NFM's trials (`featint/tuning.py`) under the budget above with
# seed 0 and scored it on the whole validation set; the comparison trains the best, and the
# test set played no part. One rule makes the trials of every trained model, so every one gets
# as many: its anchor (the setting it had before) at its learning rate and at half of it, then
# a third trial, for NFM the setting its paper states ([chapter 08](08_comparison.ipynb)
# shows every model's trials).

# %% tags=["hide-input"]
nfm_trials = trials_table().query("model == 'nfm'").set_index("setting")
shown = ["paper", "chosen", "mrr", "hr@10", "best_epoch", "epochs"]
display(nfm_trials[shown].round(4))

# %% tags=["remove-input"]
assert list(nfm_trials.index) == list(SPACES["nfm"]) and nfm_card.paper_tried
assert list(SPACES["nfm"])[2] == nfm_card.paper  # the text: the third is the paper's
won, paper = nfm_card.chosen, nfm_card.paper
mrr = nfm_trials["mrr"]
if won == paper:
    standing = (f"The paper's setting won: `{won}` has the best validation MRR "
                f"({mrr[won]:.4f}), ahead of the next trial by "
                f"{mrr[won] - mrr.drop(won).max():.4f}.")
else:
    standing = (f"The comparison's NFM is `{won}` (validation MRR {mrr[won]:.4f}); the "
                f"paper's setting, `{paper}`, reached {mrr[paper]:.4f}.")
display(Markdown(
    f"{nfm_card.summary()} {standing} One seed each: chapter 08 sets such differences "
    "beside the spread that the seed alone causes."))

# %% tags=["hide-input"]
pd.DataFrame({name: {"parameters": count_parameters(models[name]),
                     "best epoch": h.best_epoch, "epochs run": len(h.epochs),
                     "best valid MRR": h.best["valid_mrr"],
                     "s per epoch": np.mean([row["seconds"] for row in h.epochs])}
              for name, h in histories.items()}).T.round(4)

# %% [markdown]
# How they learn: the training loss and the validation MRR after each epoch (all-movie
# ranking of the same validation examples for every model). The training loss is measured
# with NFM's dropout on, where MF and FM have none: it says how each model's training went,
# not which model fits the training data better (exercise 2 measures that, with dropout off).

# %%
plot_histories(histories)
plt.show()

# %% [markdown]
# ## What BatchNorm sees
#
# The Bi-Interaction vector sums products of many embeddings, so nothing keeps its components
# centred or on a common scale, and they move while the embeddings learn; the paper
# normalises it before the MLP for that reason. Here are the components of
# $\mathrm{BI}(\mathbf x)$ for test contexts and their target movies under the trained NFM,
# before and after its BatchNorm (running statistics and the learned scale and shift, as at
# evaluation time).

# %%
ex = task.examples("test")[:: 10 if config.quick else 2]
with torch.no_grad():
    ctx = task.context(ex)
    movie = nfm.items(torch.from_numpy(task.target[ex]))
    xv_c, xv_m = nfm.embedding(ctx), nfm.embedding(movie)
    bi = bi_interaction(xv_c) + bi_interaction(xv_m) + xv_c.sum(-2) * xv_m.sum(-2)
    normed = nfm.bi_norm(bi)
order = np.argsort(bi.std(0).numpy())[::-1]
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5), sharex=True)
ax[0].boxplot(bi.numpy()[:, order], showfliers=False)
ax[0].set(title=r"$\mathrm{BI}_q(\mathbf{x})$ (raw)",
          xlabel="component $q$, by spread", ylabel="value")
ax[1].boxplot(normed.numpy()[:, order], showfliers=False)
ax[1].set(title="after BatchNorm", xlabel="component $q$, by spread",
          ylabel="value after BatchNorm")
fig.suptitle(f"{len(ex):,} test contexts with their target movie")
fig.tight_layout()
plt.show()
spread = bi.std(0)
assert torch.isfinite(spread).all() and spread.min() > 0
print(f"raw spread per component: {spread.min():.3g} to {spread.max():.3g} "
      f"(ratio {spread.max() / spread.min():.0f}); after BatchNorm: "
      f"{normed.std(0).min():.2f} to {normed.std(0).max():.2f}")

# %% [markdown]
# ## What BatchNorm buys
#
# An ablation: the comparison's NFM with `batch_norm` off and nothing else changed, trained
# under the same budget with each of the comparison's seeds (and cached the same way), beside
# the NFM of each seed. Both rank the same test examples; the test below compares the two over
# the examples and the seeds, as the comparison compares its models. It is a family of its
# own, one pair, outside the comparison's.

# %%
comparison, where = load_comparison()
seeds = comparison.aggregates["nfm"]["seeds"]
plain_setting = {**setting_of("nfm"), "batch_norm": False}
print(where, "| seeds:", seeds, "| the ablation's setting:", plain_setting)
WITH, WITHOUT = "NFM with BatchNorm", "NFM without BatchNorm"
ablation = {WITH: {}, WITHOUT: {}}
for seed in seeds:
    for label, setting in ((WITH, None), (WITHOUT, plain_setting)):
        model, history = trained("nfm", task, seed=seed, setting=setting,
                                 progress=False)
        assert isinstance(model.bi_norm, nn.BatchNorm1d) == (setting is None)
        ablation[label][seed] = (evaluate(model, task, progress=False), history)
ablation_test = pairwise({label: np.stack([per_example(run[0].ranks, "hr@10")
                                          for run in runs.values()])
                          for label, runs in ablation.items()}, "hr@10")
pd.DataFrame({f"{label}, seed {seed}": {
    "HR@10": run.metrics["hr@10"], "mean rank": run.metrics["mean_rank"],
    "best epoch": history.best_epoch, "best valid MRR": history.best["valid_mrr"]}
    for label, runs in ablation.items()
    for seed, (run, history) in runs.items()}).T.round(4)

# %% tags=["remove-input"]
bn_verdict = verdict(ablation_test, WITHOUT, WITH)
lesson = {
    "not separated from": "Over these seeds, BatchNorm buys nothing on the test set "
    "that this test can tell apart, although it puts the components on one scale "
    "(above).",
    "worse than": "BatchNorm pays here: without it the same NFM ranks the next movie "
    "worse, beyond the noise of the test examples and of the seeds.",
    "better than": "BatchNorm costs here: without it the same NFM ranks the next movie "
    "better, beyond the noise of the test examples and of the seeds.",
}[bn_verdict]
display(Markdown(
    f"{WITHOUT} is {verdict_text(ablation_test, WITHOUT, WITH)}. {lesson} "
    + pairwise_method_text(ablation_test)
    + (" (Quick mode: a smoke test on a few thousand examples, not a result.)"
       if config.quick else "")))

# %% [markdown]
# ## Test results
#
# The test set against all movies: NFM beside the baseline ladder (random scores, the most
# popular movies, a first-order Markov chain on the last movie, ItemKNN, matrix factorisation
# on the user and the movie alone) and FM (every pair, summed). Bars are 95% bootstrap
# intervals over test examples, for this chapter's seed-0 models.

# %%
results = evaluate_all(task, models)
results_table(results)

# %%
plot_results(results)
plt.show()

# %% tags=["remove-input"]
for name, res in results.items():
    assert np.isfinite(res.metrics["hr@10"]), name
    assert 1 <= res.metrics["mean_rank"] <= task.num_items, name
rungs = ("popular", "markov", "itemknn", "mf", "fm")
nfm_fm = verdict(comparison, "nfm", "fm")
lesson = {
    "better than": "Mixing the Bi-Interaction components in a hidden layer pays here: "
    "NFM ranks the next movie better than FM's plain sum of the same pairs.",
    "worse than": "The hidden layer costs more than it gives here: FM's plain sum of "
    "the components is one of the functions NFM can represent, but NFM has to learn it "
    "back through the hidden layer and the output layer, under dropout.",
    "not separated from": "The hidden layer buys nothing that the comparison can tell "
    "apart from FM's plain sum of the same pairs.",
}[nfm_fm]
display(Markdown(
    f"On the test set, this chapter's seed-0 NFM has an HR@10 of "
    f"{value_text(results['nfm'], 'hr@10')} (FM {value_text(results['fm'], 'hr@10')}, "
    f"MF {value_text(results['mf'], 'hr@10')}). Whether NFM is above or below another "
    "model is the comparison's pairwise test, over every seed, paired over the test "
    "examples, with Holm's correction over every pair of the comparison. On HR@10 NFM "
    "is "
    + "; ".join(verdict_text(comparison, "nfm", b) for b in rungs)
    + f". On mean rank it is {verdict_text(comparison, 'nfm', 'fm', 'mean_rank')}. "
    + lesson
    + (" (Quick mode: this chapter's seed-0 numbers are a smoke test; the verdicts are "
       "the comparison's record.)" if config.quick else "")))

# %% [markdown]
# One seed is one draw of initial weights, negatives and dropout masks. The comparison trains
# every model with several seeds; next to this chapter's seed-0 numbers:

# %%
seed_spread(results, ["mf", "fm", "nfm"])

# %% [markdown]
# ## What NFM leaves open
#
# NFM's non-linearity sits *after* the pooling: the Bi-Interaction vector is a sum over all
# pairs, so the MLP sees how strongly the pairs agree, component by component, but not which
# pair contributed what. A strong (last movie, candidate) signal and a weak (hour, candidate)
# one arrive mixed into the same $k$ numbers (exercise 1 builds an example where a whole
# feature's pairs vanish from $\mathrm{BI}(\mathbf x)$). Attention over the pairs
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
WHERE = {"tuned": "chosen on validation", "budget": "the budget's",
         "default": "featint's default"}


def from_card(text: str, key: str, model_card=nfm_card) -> str:
    """A setting of the card in words, with where its value comes from."""
    return f"{text} ({WHERE[model_card.origin[key]]})"


values = nfm_card.values
pretrain = (f"starts from a trained {values['pretrain'].upper()}" if values["pretrain"]
            else "no pre-training")
rel = (results["nfm"].metrics["hr@10"] / results["fm"].metrics["hr@10"] - 1) * 100
paper_vs_here = pd.DataFrame({
    "paper": {
        "data": "Frappe (app usage in context), MovieLens tags (user, movie, tag)",
        "task, metric": "regression on +1 / −1 targets (2 sampled negatives per "
                        "log), RMSE",
        "headline": "NFM with one hidden layer beats FM by 7.3% (relative RMSE)",
        "key settings": "k = 64, dropout 0.5 on BI(x) (§4.4), squared loss, "
                        "mini-batch Adagrad; FM pre-training only speeds up "
                        "convergence (§4.3.1)",
    },
    "here": {
        "data": "MovieLens 100K next-movie task (the protocol of this book)",
        "task, metric": "full ranking of all 1,682 movies per test example, "
                        "HR@10, MRR, mean rank",
        "headline": f"NFM {value_text(results['nfm'], 'hr@10')} against FM "
                    f"{value_text(results['fm'], 'hr@10')} HR@10 (seed 0, {rel:+.1f}% "
                    f"relative); over the comparison's seeds NFM is "
                    f"{verdict_text(comparison, 'nfm', 'fm')}",
        "key settings": "; ".join([
            from_card(f"k = {values['embed_dim']}", "embed_dim"),
            from_card(f"dropout {values['bi_dropout']:g} on BI(x)", "bi_dropout"),
            from_card(pretrain, "pretrain"),
            from_card(f"Adam, learning rate {values['lr']:g}", "lr"),
            from_card(f"BCE with {values['num_negatives']} sampled negatives",
                      "num_negatives")]),
    },
})
rows = [f"| | {' | '.join(paper_vs_here.columns)} |",
        "|---" * (1 + len(paper_vs_here.columns)) + "|"]
rows += [f"| {row} | {' | '.join(cells)} |" for row, cells in paper_vs_here.iterrows()]
display(Markdown("\n".join(rows)))

# %% tags=["remove-input"]
varied = ", ".join(SETTING_NAMES.get(key, key) for key in nfm_card.tuned)
display(Markdown(
    "Why the two may differ: the paper fits a score to a label, where here the model "
    f"must put one movie out of {task.num_items:,} near the top, and a small gain in "
    "RMSE need not move a rank; its data sets have a handful of one-hot fields, where "
    f"ours adds a bag of the last {task.window} movies and numeric fields; its "
    f"settings were chosen for its data, ours on our validation set, where NFM's "
    f"{nfm_card.trials} trials varied {varied}, as many trials as every other trained "
    "model gets, under one budget with early stopping; and its negatives are two per "
    f"log for a regression target, ours {values['num_negatives']} per positive for a "
    "cross-entropy on a ranking task."))

# %% [markdown]
# ## Summary
#
# - NFM keeps FM's pairwise products as a $k$-vector, $\mathrm{BI}(\mathbf x) =
#   \sum_{i<j} x_i \mathbf v_i \odot x_j \mathbf v_j$, and feeds it to an MLP; the sum of
#   its components is FM's pairwise term.
# - The sum-square trick works per component, so $\mathrm{BI}(\mathbf x)$ costs $O(ks)$.
# - With no hidden layer, no BatchNorm, no dropout and $\mathbf w_{\mathrm{out}} = \mathbf 1$,
#   NFM is exactly FM (checked above to rounding).
# - Ranking all movies never builds a vector per (context, movie) pair: in eval mode
#   BatchNorm and the first layer are affine and split into context and movie parts.
# - What NFM trains with, what its trials varied and whether the paper's setting won are on
#   its card, read from the record training reads; whether NFM is above FM is the comparison's
#   pairwise test over every seed, not one seed's interval.
#
# ## Exercises
#
# **1. By hand.** An example has three non-zero features, with $k = 2$ and
# $x_a \mathbf v_a = (1, 2)$, $x_b \mathbf v_b = (-1, 1)$, $x_c \mathbf v_c = (2, 0)$.
# (a) Compute $\mathrm{BI}(\mathbf x)$ pair by pair and with the sum-square formula.
# (b) What is FM's pairwise term? (c) An NFM with one hidden unit, $\mathbf W_1 = (1, -1)$,
# $b_1 = 0$, $\mathbf w_{\mathrm{out}} = 2$, no BatchNorm and no dropout: what does its
# interaction part add to $\hat y$? (d) Remove feature $c$: what changes in
# $\mathrm{BI}(\mathbf x)$?
#
# :::{admonition} Solution
# :class: dropdown
# (a) $ab$: $(-1, 2)$; $ac$: $(2, 0)$; $bc$: $(-2, 0)$; sum $(-1, 2)$. Sum-square:
# $\sum x\mathbf v = (2, 3)$, squared $(4, 9)$; $\sum (x\mathbf v)^{\odot 2} =
# (1 + 1 + 4, 4 + 1 + 0) = (6, 5)$; $\tfrac12[(4, 9) - (6, 5)] = (-1, 2)$.
# (b) The sum of the components: $-1 + 2 = 1$.
# (c) $\mathbf W_1 \mathrm{BI}(\mathbf x) = -1 - 2 = -3$, $\mathrm{ReLU}(-3) = 0$, so it adds
# $2 \cdot 0 = 0$: where FM adds 1, this NFM adds nothing, the non-linearity at work.
# (d) Nothing: $c$'s two pairs, $(2, 0)$ and $(-2, 0)$, cancel, so $\mathrm{BI}(\mathbf x)$
# is $(-1, 2)$ with or without $c$. The pooled vector cannot tell which pairs were there,
# which is what "What NFM leaves open" is about.
# :::
#
# **2. Code: the training loss with dropout off.** The loss curves above were measured in
# train mode, with NFM's dropout on and BatchNorm on batch statistics. Take 1,024 fit
# examples with 4 sampled negatives each, and compute NFM's binary cross-entropy in
# `model.eval()` and in `model.train()` (average a few dropout draws), and FM's. Which of
# NFM's two numbers can be set beside FM's? Careful: a forward pass in train mode updates
# BatchNorm's running statistics, so work on a copy.

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

# %% tags=["remove-input"]
rates = (f"dropout {nfm_card.value('bi_dropout'):g} on BI(x) and "
         f"{nfm_card.value('dropout'):g} after the hidden layer, from its card")
lower = "lower" if bce.iloc[0] < bce.iloc[2] else "higher"
display(Markdown(solution(
    f"With dropout off, NFM's BCE on these 1,024 fit examples is {bce.iloc[0]:.4f}, "
    f"{lower} than FM's {bce.iloc[2]:.4f}; with dropout on ({rates}) it is "
    f"{bce.iloc[1]:.4f}. Only the eval-mode number measures the same function FM is "
    "measured with: the train-mode loss is that of a randomly thinned network whose "
    "BatchNorm uses the batch's own statistics, the loss the curves above show.")))

# %% [markdown]
# **3. Think: what dropout on $\mathrm{BI}(\mathbf x)$ does to FM.** Take NFM with no hidden
# layer and $\mathbf w_{\mathrm{out}} = \mathbf 1$, and put (inverted) dropout with rate $p$ on
# $\mathrm{BI}(\mathbf x)$: at each step every component is kept with probability $1 - p$ and
# then divided by $1 - p$. What are the mean and the variance, over the dropout mask, of the
# interaction term during training? How does the ratio between $p = 0.5$ and $p = 0.2$ come
# out, and why does a cross-entropy loss care about that variance?
#
# :::{admonition} Solution
# :class: dropdown
# The term is $\sum_q \delta_q \mathrm{BI}_q / (1 - p)$ with independent $\delta_q \sim
# \mathrm{Bernoulli}(1 - p)$ and $\mathrm{BI}_q$ the components of $\mathrm{BI}(\mathbf x)$.
# Its mean is $\sum_q \mathrm{BI}_q$, FM's pairwise term, and its variance is
# $\frac{p}{1 - p} \sum_q \mathrm{BI}_q^2$: a factor $1$ for $p = 0.5$, $0.25$ for $p = 0.2$.
# At evaluation no component is dropped, so the model scores with the mean. The BCE is convex
# in the logit, so by Jensen's inequality its expectation over masks is at least the loss of
# the mean logit, and more so the larger the variance: training pays for large components
# and is pushed to keep $\sum_q \mathrm{BI}_q^2$ small, a regulariser whose strength
# $p / (1 - p)$ is four times larger at 0.5 than at 0.2. Whether that much regularisation
# helps is a question for the validation set.
# :::
#
# **4. Code: the paper's 0.5 against 0.2, on a small budget.** Try NFM with dropout 0.5, 0.2
# and 0 on $\mathrm{BI}(\mathbf x)$, everything else as the comparison trains NFM (its card,
# pre-training included), but for at most 3 epochs on 20,000 fit examples per epoch, and
# compare their validation MRR. What would you need before trusting the order you see?

# %% tags=["hide-input"]
setting = setting_of("nfm")
small = {"epochs": 3, "max_examples": 20_000}  # all that differs from the comparison
comparison_args = fit_args("nfm", budget, setting)
print("as the comparison trains NFM:", setting, "| except:",
      {key: f"{comparison_args.get(key, 'all')} -> {value:,}"
       for key, value in small.items()})
dropout_trials = {}
for p in (0.5, 0.2, 0.0):
    trial_setting = {**setting, "bi_dropout": p}
    trial = build_model("nfm", task, seed=0,
                        **model_hparams("nfm", budget, trial_setting))
    if trial.pretrain:  # as featint.training.trained does: the same seed's trained FM
        trial.load_pretrained(trained(trial.pretrain, task, progress=False)[0])
    trial_args = {**fit_args("nfm", budget, trial_setting), **small}
    trial_history = fit(trial, task, **trial_args, seed=0, progress=False,
                        verbose=False)
    dropout_trials[p] = {"best valid MRR": trial_history.best["valid_mrr"],
                         "best epoch": trial_history.best_epoch,
                         "epochs run": len(trial_history.epochs)}
trials = pd.DataFrame(dropout_trials).T.rename_axis("dropout on BI(x)")
assert np.isfinite(trials["best valid MRR"]).all()
display(trials.round(4))

# %% tags=["remove-input"]
best_p = trials["best valid MRR"].idxmax()
gap = trials["best valid MRR"].max() - trials["best valid MRR"].drop(best_p).max()
valid_limit = config.sizes.valid_examples if config.quick else budget.valid_limit
valid_text = ("every validation example" if valid_limit is None
              else f"at most {valid_limit:,} validation examples")
display(Markdown(solution(
    f"On this small budget, dropout {best_p:g} has the best validation MRR, ahead of "
    f"the next by {gap:.4f}. That is one seed, at most "
    f"{int(trials['epochs run'].max())} short epochs and {valid_text}: another seed "
    "moves a model's validation MRR too "
    "(chapter 08 shows how much the seeds alone move each model's test scores), and "
    "a setting that "
    "trains slowly can be behind after three epochs and ahead after fifteen. Before "
    "trusting the order, repeat it over seeds, under the full budget, on the whole "
    "validation set (`make tune` does the last two)."
    + (" (Quick mode: the epochs and the fit examples are capped further, "
       f"{config.sizes.describe()}.)" if config.quick else ""))))
