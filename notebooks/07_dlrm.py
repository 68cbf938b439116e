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
# # 07 · DLRM
#
# The previous chapters came from research on sparse prediction; the Deep Learning
# Recommendation Model (DLRM) {cite}`naumov2019dlrm` comes from industry. Facebook published
# it as a reference design for personalisation and as a benchmark for the hardware that runs
# such models, where huge embedding tables make the memory traffic and a few MLPs make the
# arithmetic. Its design answers three practical questions the earlier models leave open:
#
# - **dense features.** Real systems have counts, ratios and averages beside categorical ids.
#   FM gives a real-valued feature one vector scaled by its value; DLRM sends all the dense
#   features $\mathbf{x}_{\mathrm{dense}}$ through their own MLP (the *bottom* MLP) to one
#   vector the size of an embedding.
# - **which interactions, at what cost.** FM interacts every pair of non-zero *features*,
#   so a history of 300 movies brings 44,850 pairs inside the bag alone. DLRM pools each
#   *field* into one vector $\mathbf{e}_f$ first and takes the dot products between fields:
#   the FM idea at field level, a fixed number of pairs.
# - **what to do with them.** The dot products are not summed, as in FM, or pooled, as in
#   NFM ([chapter 06](06_nfm.ipynb)): each one is an input of the *top* MLP, which learns how
#   much each pair of fields matters and how they combine.
#
# The seed article of this project described a simplified DLRM that concatenates the vectors
# instead of taking dot products; featint has both, `dlrm` and `dlrm_simplified`, and this
# chapter compares them.

# %% tags=["hide-input"]
# %matplotlib inline
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from featint import build_task, load_movielens
from featint.baselines import Popularity
from featint.budget import Budget, model_hparams
from featint.cache import trained
from featint.chapter import (
    evaluate_all,
    plot_histories,
    plot_results,
    results_table,
    seed_spread,
)
from featint.evaluate import evaluate, quick, rank_examples, subsample
from featint.models import build_model, count_parameters
from featint.models.dlrm import DLRM
from featint.show import source
from featint.stats import paired_bootstrap
from featint.synthetic import synthetic_movielens
from featint.task import Features
from featint.train import fit

NAMES = {"random": "random", "popular": "most popular", "markov": "Markov",
         "itemknn": "ItemKNN", "mf": "MF", "fm": "FM", "dlrm": "DLRM",
         "dlrm_simplified": "DLRM (concatenation)"}
print("quick mode:", quick(), "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## The model
#
# In the book's [notation](../book/notation.md): the dense features
# $\mathbf{x}_{\mathrm{dense}}$ go through the bottom MLP to a vector of the embedding size,
#
# $$\mathbf{e}_0 = \mathrm{MLP}_{\mathrm{bot}}(\mathbf{x}_{\mathrm{dense}}) \in \mathbb{R}^k ,$$
#
# which DLRM treats as one more field vector, field $0$. Every sparse field $f$ is an embedding
# lookup, $\mathbf{e}_f = \sum_{i : f_i = f} x_i \mathbf{v}_i$: one vector for a category, the
# weighted mean for a bag (the history, a movie's genres). Call $\mathcal{S}$ the sparse
# fields. The **dot interaction** keeps $\mathbf{e}_0$ and the dot product of every pair of
# vectors, each pair once and no vector with itself (the paper's strict lower triangle of the
# symmetric matrix of all dots), and that is the input $\mathbf{z}_0$ of the top MLP:
#
# $$\mathbf{z}_0 = \big[\mathbf{e}_0;\ \big(\langle \mathbf{e}_f, \mathbf{e}_g \rangle\big)_{
# f < g,\ f, g \in \{0\} \cup \mathcal{S}}\big], \qquad
# \hat{y} = \mathrm{MLP}_{\mathrm{top}}(\mathbf{z}_0),$$
#
# where $\mathrm{MLP}_{\mathrm{top}}$ has hidden layers
# $\mathbf{z}_l = \mathrm{ReLU}(\mathbf{W}_l \mathbf{z}_{l-1} + \mathbf{b}_l)$ and the output
# $\mathbf{w}_{\mathrm{out}}^{\top} \mathbf{z}_L + b_{\mathrm{out}}$. A sigmoid turns $\hat{y}$
# into a probability (featint keeps the logit and trains with binary cross-entropy on logits,
# the same thing). The **concatenation** variant of the seed article uses
# $\mathbf{z}_0 = [\mathbf{e}_0; \mathbf{e}_{f}]_{f \in \mathcal{S}}$ and leaves every
# interaction to the top MLP.
#
# On the next-movie task $\mathbf{x}_{\mathrm{dense}}$ holds the three numeric context fields
# (the user's mean rating so far, genre shares, genre mean ratings); every other field is
# sparse. All sizes come from the task's schema:

# %%
ml = load_movielens()
task = build_task(ml)
dlrm = build_model("dlrm", task, seed=0)
cat = build_model("dlrm_simplified", task, seed=0)
fields = pd.DataFrame([
    {"field": f.name, "side": f.side, "kind": f.kind, "size": f.size,
     "role": "dense" if f.kind == "numeric" else "sparse"}
    for f in task.schema.fields
]).set_index("field")
n_c = 1 + len(dlrm.ctx_sparse)  # context vectors, e_0 included
n_m = dlrm.num_item_fields     # movie vectors
n_pairs = (n_c + n_m) * (n_c + n_m - 1) // 2
bottom = [dlrm.num_dense] + [m.out_features for m in dlrm.bottom
                             if isinstance(m, torch.nn.Linear)]
top = [dlrm.top[0].in_features] + [m.out_features for m in dlrm.top
                                   if isinstance(m, torch.nn.Linear)]
print(f"x_dense: {dlrm.num_dense} values; bottom MLP {'-'.join(map(str, bottom))}")
print(f"vectors: e_0 + {n_c - 1} sparse context fields = {n_c} context vectors, "
      f"{n_m} movie vectors; {n_pairs} pairs")
print(f"top MLP {'-'.join(map(str, top))}: input {top[0]} = k + pairs; concatenation "
      f"variant: {cat.top[0].in_features} = {n_c + n_m} vectors x k")
# the sizes the text quotes
assert bottom == [39, 64, 32, 16] and top == [121, 64, 32, 1]
assert (n_c, n_m, n_pairs, cat.top[0].in_features) == (12, 3, 105, 240)
fields.transpose()

# %% [markdown]
# ## Ranking every movie
#
# Of the 105 dot products, those among the 12 context vectors do not depend on the movie and
# those among the 3 movie vectors do not depend on the context; only the $12 \times 3$
# context-movie dots do. Stack the context vectors ($\mathbf{e}_0$ first) as the rows of
# $\mathbf{E}_C$ and the movie's as the rows of $\mathbf{E}_M$, and write $g \in C$ for a
# context vector, $f \in M$ for a movie vector. featint lists $\mathbf{z}_0$
# in three parts, a permutation of the paper's order (the top MLP does not care about the
# order of its inputs):
#
# $$\mathbf{z}_0 = [\,\underbrace{\mathbf{e}_0;\ \text{dots inside } \mathbf{E}_C}_{
# \mathbf{z}_C}\ ;\ \underbrace{\text{dots inside } \mathbf{E}_M}_{\mathbf{z}_M}\ ;\
# (\langle \mathbf{e}_f, \mathbf{e}_g \rangle)_{f \in M,\, g \in C}\,].$$
#
# The first layer of the top MLP, $\mathbf{W}_1 = [\mathbf{W}_C \mid \mathbf{W}_M \mid
# \mathbf{W}_{\times}]$, then splits as
#
# $$\mathbf{W}_1 \mathbf{z}_0 + \mathbf{b}_1 =
# \underbrace{\mathbf{W}_C \mathbf{z}_C + \mathbf{b}_1}_{\text{once per context}}
# + \underbrace{\mathbf{W}_M \mathbf{z}_M}_{\text{once per movie}}
# + \sum_{f \in M} \sum_{g \in C} \mathbf{w}_{\times, (f, g)}\,
# \langle \mathbf{e}_f, \mathbf{e}_g \rangle ,$$
#
# with $\mathbf{w}_{\times,(f,g)}$ the column of $\mathbf{W}_{\times}$ for the pair. The last
# sum is linear in each movie vector: it is $\sum_{f \in M} \mathbf{U}_f \mathbf{e}_f$ with
# $\mathbf{U}_f = \sum_{g \in C} \mathbf{w}_{\times,(f,g)} \mathbf{e}_g^{\top} \in
# \mathbb{R}^{d_1 \times k}$, built once per context. For all 1,682 movies that is one matrix
# product per context, $[\mathbf{U}_f]_{f \in M}$ times $\operatorname{vec} \mathbf{E}_M$;
# only the rest of the top MLP runs on every (context, movie) pair. For the concatenation
# variant $\mathbf{W}_{\times}$ is empty. In the code, `t_c` and `t_m` are $\mathbf{E}_C$ and
# $\mathbf{E}_M$, `z` is $\mathbf{e}_0$, `r_c` and `r_m` are $\mathbf{z}_C$ and
# $\mathbf{z}_M$, and `u` holds the $\mathbf{U}_f$:

# %%
source(DLRM.vectors, DLRM.forward)

# %% [markdown]
# Check, in float64 with every weight random: the DLRM equation written out naively, one
# field and one pair at a time in the paper's order, then reordered and fed to the top MLP as
# one plain network, agrees with both item forms of the model.

# %%
def featint_order(model: DLRM, n_c: int, n_m: int) -> list[tuple[int, int]]:
    """The pairs (f, g), f < g, in featint's order: inside E_C, inside E_M, then the
    cross pairs (movie vector f, context vector g), movie-major."""
    inside_c = [(int(f), int(g)) for f, g in zip(model.ctx_i, model.ctx_j, strict=True)]
    inside_m = [(n_c + int(f), n_c + int(g))
                for f, g in zip(model.item_i, model.item_j, strict=True)]
    cross = [(g, n_c + f) for f in range(n_m) for g in range(n_c)]
    return inside_c + inside_m + cross


def dlrm_naive(model: DLRM, task, examples, movies) -> torch.Tensor:
    """The logit of each example and movie from the definitions: (examples, movies)."""
    V = model.embedding.embedding.weight
    ctx_fields, item_fields = task.schema.context_fields, task.schema.item_fields

    def field_embedding(f, idx, val):  # e_f = sum of x_i v_i over the field's features
        e_f = torch.zeros(V.shape[1], dtype=V.dtype)
        for i, x_i in zip(idx, val, strict=True):
            if f.offset <= i < f.offset + f.size:
                e_f = e_f + x_i * V[i]
        return e_f

    out = torch.zeros(len(examples), len(movies), dtype=torch.float64)
    for r, ex in enumerate(examples):
        c = task.context(np.array([ex]))
        idx, val = c.idx[0].tolist(), c.val[0].double().tolist()
        value = dict(zip(idx, val, strict=True))
        x_dense = [value.get(f.offset + j, 0.0)
                   for f in ctx_fields if f.kind == "numeric" for j in range(f.size)]
        e_0 = model.bottom(torch.tensor([x_dense], dtype=torch.float64))[0]
        E_C = [e_0] + [field_embedding(f, idx, val)
                       for f in ctx_fields if f.kind != "numeric"]
        for col, movie in enumerate(movies):
            m_idx = task.item_idx[movie].tolist()
            m_val = task.item_val[movie].astype(float).tolist()
            E = E_C + [field_embedding(f, m_idx, m_val) for f in item_fields]
            if model.interaction == "cat":
                z_0 = torch.cat(E)
            else:  # every pair f < g once, in the paper's order, then reordered
                dots = {(f, g): E[f] @ E[g] for g in range(len(E)) for f in range(g)}
                order = featint_order(model, len(E_C), len(E) - len(E_C))
                assert sorted(order) == sorted(dots)  # the same pairs, reordered
                z_0 = torch.cat([e_0, torch.stack([dots[p] for p in order])])
            out[r, col] = model.top(z_0[None])[0, 0]
    return out


torch.manual_seed(1)
examples = task.examples("test")[:3]
movies = [0, 49, 180, 1000]
context = task.context(examples)
context = Features(context.idx, context.val.double(), context.field)
for name in ("dlrm", "dlrm_simplified"):
    check = build_model(name, task, seed=0).double().eval()
    with torch.no_grad():
        for p in check.parameters():
            p.normal_(std=0.2)
        check.embedding.embedding.weight[0].zero_()
        naive = dlrm_naive(check, task, examples, movies)
        every = check(context, torch.arange(task.num_items))
        some = check(context, torch.tensor([movies] * len(examples)))
    assert torch.allclose(every[:, movies], naive, rtol=0, atol=1e-10)
    assert torch.allclose(some, naive, rtol=0, atol=1e-10)
    gap = (every[:, movies] - naive).abs().max().item()
    print(f"{name}: max |model - naive| = {gap:.1e}")

# %% [markdown]
# ### What a pair costs
#
# At ranking time the embedding lookups, the bottom MLP and the dots inside each side are
# paid once per context or once per movie. What is paid for every (context, movie) pair is the
# cross part of the first layer ($\operatorname{vec} \mathbf{E}_M$ against the
# $\mathbf{U}_f$: $m_M k$ multiply-adds per unit of the first layer) and the rest of the top
# MLP. FM pays one dot product of size $k$. The table counts it for featint's widths (64-32)
# and for the official Criteo widths (512-256), and times the ranking of a few hundred test
# contexts against every movie with each model (untrained: the cost does not depend on the
# weights):

# %%
def multiply_adds_per_pair(model) -> int:
    """Multiply-adds of a DLRM per (context, movie) pair when ranking all movies."""
    first, *rest = [m for m in model.top if isinstance(m, torch.nn.Linear)]
    k = model.embedding.embedding.embedding_dim
    cross = model.num_item_fields * first.out_features * k  # vec E_M against the U_f
    rest_of_top = sum(m.weight.numel() for m in rest)
    return (cross if model.interaction == "dot" else 0) + rest_of_top


fm = build_model("fm", task)
costs = {"fm": (fm, fm.embedding.embedding.embedding_dim)}  # FM: one dot of size k
for label, name, top_widths in (("dlrm", "dlrm", (64, 32)),
                                ("dlrm_simplified", "dlrm_simplified", (64, 32)),
                                ("dlrm, top 512-256", "dlrm", (512, 256))):
    model = build_model(name, task, top=top_widths)
    costs[label] = (model, multiply_adds_per_pair(model))

timed = subsample(task.examples("test"), 100 if quick() else 500)
pairs_per_test = len(task.examples("test")) * task.num_items
rows = {}
for label, (model, per_pair) in costs.items():
    start = time.perf_counter()
    rank_examples(model, task, timed)
    rows[label] = {"multiply-adds per pair": per_pair,
                   "per test set (billions)": per_pair * pairs_per_test / 1e9,
                   f"seconds for {len(timed)} contexts": time.perf_counter() - start}
pd.DataFrame.from_dict(rows, orient="index").round(2)

# %% [markdown]
# ## Defaults, and where featint deviates
#
# The paper's benchmark configurations and the official code
# (`facebookresearch/dlrm`, `dlrm_s_pytorch.py`, `bench/dlrm_s_criteo_kaggle.sh`), against
# featint:
#
# | | paper / official code (Criteo Kaggle) | featint |
# |---|---|---|
# | embedding size $k$ | 16 | 16 |
# | bottom MLP | 13-512-256-64-16 | 39-64-32-16 |
# | top MLP | 367-512-256-1 (16 + 351 dots) | 121-64-32-1 (16 + 105 dots) |
# | interaction | dots of all pairs, no self pairs | the same, reordered |
# | option `cat` | concatenate the vectors | `dlrm_simplified` |
# | multi-hot fields | `EmbeddingBag`, sum | the task's weights: a mean for bags |
# | initialisation | see below | the same |
# | regularisation | none | none: no dropout, no weight decay |
# | loss, optimiser | BCE, SGD (lr 0.1), batches of 128 | BCE, sampled negatives, Adam (*Training*) |
#
# Both MLPs have a ReLU after every hidden layer, and the bottom MLP after its output too, as
# in the official code; the top MLP ends in the logit. The official initialisation draws each
# table from $\mathcal U(\pm\sqrt{1/n})$ for a table of $n$ rows, each layer's weights from
# $\mathcal N(0, 2/(\text{in}+\text{out}))$ and its biases from $\mathcal N(0, 1/\text{out})$;
# featint does the same. The loss and optimiser here are the comparison's budget, printed
# under *Training* below.
#
# The MLPs are eight times narrower than the Criteo configuration (64 against 512 units in
# the widest layer). Criteo Kaggle has about 45 million examples and the model scores one
# (user, ad) pair per request; here there are 70,581 examples to fit on and every evaluation
# scores 1,682 movies per context, so the top MLP runs 34 million times for the test set; the
# table of *What a pair costs* shows what the official widths would cost per pass over it.

# %% tags=["remove-cell"]
# the numbers of the paragraph above
assert len(task.examples("fit")) == 70_581 and task.num_items == 1682
assert round(pairs_per_test / 1e6) == 34

# %% [markdown]
# ## Training
#
# Every model of this chapter is the comparison's seed-0 model: `featint.cache.trained` trains
# it once per machine under the comparison's budget and per-model settings, and reads it back
# afterwards, so this chapter, [chapter 08](08_comparison.ipynb) and every other chapter
# share the very same FM. Beside DLRM and its concatenation variant: FM (every pair of
# *features*, one shared dot product) and MF (the `user` and `movie` fields only, the top rung
# of the baseline ladder), to see what interactions between side features add. In quick mode
# every model sees 4,096 examples for 2 epochs: the numbers are then only smoke checks.

# %%
budget = Budget()
print("budget:", budget.describe())
models, histories = {}, {}
for name in ("mf", "fm", "dlrm_simplified", "dlrm"):
    models[name], histories[name] = trained(name, task, progress=False)
    hparams = model_hparams(name, budget)
    print(f"{name}: {count_parameters(models[name]):,} parameters, "
          f"lr {budget.lr_for(name):g}, constructor arguments {hparams}")

# %%
plot_histories({NAMES[n]: h for n, h in histories.items()})
plt.show()

# %% [markdown]
# DLRM has no regularisation of its own: every dropout layer of its MLPs has rate 0, and the
# budget's weight decay (an L2 penalty), the same for every model, is 0. The cell checks both.

# %%
dropout_rates = {name: sorted({m.p for m in model.modules()
                               if isinstance(m, torch.nn.Dropout)})
                 for name, model in models.items()}
print("dropout rates:", dropout_rates, "| weight decay:", budget.weight_decay)
assert all(rate == 0 for rate in dropout_rates["dlrm"]) and budget.weight_decay == 0


# %% tags=["remove-input"]
def curve_text(name: str) -> str:
    """What the training curve of ``name`` shows, from its history."""
    h = histories[name]
    ep = pd.DataFrame(h.epochs).set_index("epoch")
    ran, best = len(ep), h.best_epoch
    best_mrr, loss_best = ep.loc[best, "valid_mrr"], ep.loc[best, "loss"]
    loss_last = ep["loss"].iloc[-1]
    text = (f"{NAMES[name]} trained for {ran} epochs (the cap is {budget.epochs}); its "
            f"training loss fell from {ep['loss'].iloc[0]:.3f} to {loss_last:.3f}. ")
    if best < ran:
        after = ep.loc[best + 1:, "valid_mrr"]
        text += (f"Its validation MRR was best at epoch {best} ({best_mrr:.4f}); over "
                 f"the {ran - best} epochs after it the validation MRR stayed between "
                 f"{after.min():.4f} and {after.max():.4f}")
        if loss_last < loss_best:
            text += (" while the training loss kept falling, from "
                     f"{loss_best:.3f} to {loss_last:.3f}: the model went on fitting "
                     "the training examples better without ranking the validation "
                     "examples any better, which is overfitting, and early stopping "
                     f"restored the weights of epoch {best}.")
        else:
            text += ", and the training loss did not fall further either."
    else:
        text += ("Its validation MRR was still at its best at the last epoch "
                 f"({best_mrr:.4f}), so within this budget the curve shows no "
                 "overfitting.")
    rank = ep["valid_mean_rank"]
    if rank.idxmin() < ran:
        text += (" Its validation mean rank, which the targets ranked far down "
                 f"dominate, was lowest at epoch {rank.idxmin()} ({rank.min():.1f}) "
                 f"and ended at {rank.iloc[-1]:.1f}.")
    return text


lowest = min(histories, key=lambda n: histories[n].epochs[-1]["loss"])
display(Markdown(
    curve_text("dlrm") + f" Of the four models, {NAMES[lowest]} ends with the lowest "
    "training loss (none of them has dropout, so their losses are measured alike). "
    + curve_text("dlrm_simplified")
    + " Which regularisation would help, and how much, is a question for the "
    "comparison's validation search, not for the test set (exercise 3)."
    + (" (Quick mode: 2 epochs, a smoke test only.)" if quick() else "")
))

# %% [markdown]
# ## Test results
#
# The test set against all movies, beside the baseline ladder of
# [the protocol](../book/protocol.md): random scores, most popular, Markov (the last movie's
# successors), ItemKNN (movies that co-occur with the history), then MF, FM, and the two
# DLRMs. Each metric comes with its 95% bootstrap interval over test examples.

# %%
results = evaluate_all(task, models)
results_table(results).rename(index=NAMES)

# %%
plot_results(results)
plt.show()

# %% [markdown]
# These are one seed's numbers. The comparison trains every model with three seeds; its
# results (when `results/` holds a finished run under the current protocol) go beside them:

# %%
spread = seed_spread(results, ["mf", "fm", "dlrm_simplified", "dlrm"])
spread.rename(index=NAMES)

# %% [markdown]
# All the models rank the *same* test examples, so DLRM can be compared with each of them
# example by example: the paired bootstrap resamples test examples and keeps each example's
# two results together, an interval for the difference itself (per example, hit@10 is 1 when
# the rank is at most 10, the reciprocal rank is $1/\mathrm{rank}$).

# %%
per_example = {"hr@10": lambda r: (r <= 10).astype(float), "mrr": lambda r: 1.0 / r}
rows = []
for other in ("dlrm_simplified", "fm", "mf", "itemknn", "popular"):
    a, b = results["dlrm"], results[other]
    assert np.array_equal(a.examples, b.examples)  # the same test examples, paired
    for metric, score in per_example.items():
        diff, lo, hi = paired_bootstrap(score(a.ranks), score(b.ranks),
                                        num_samples=2000)
        rows.append({"DLRM minus": NAMES[other], "metric": metric,
                     "difference": diff, "lo": lo, "hi": hi})
paired = pd.DataFrame(rows)
paired.round(4)


# %% tags=["remove-input"]
def paired_sentence(other: str, metric: str = "hr@10") -> str:
    """DLRM minus ``other`` on ``metric``, from its paired interval."""
    row = paired[(paired["DLRM minus"] == NAMES[other]) & (paired["metric"] == metric)]
    d, lo, hi = row[["difference", "lo", "hi"]].iloc[0]
    fmt = ".1%" if metric == "hr@10" else ".4f"
    numbers = f"{d:+{fmt}} (95% paired interval {lo:+{fmt}} to {hi:+{fmt}})"
    if lo > 0:
        return f"above {NAMES[other]}, by {numbers}"
    if hi < 0:
        return f"below {NAMES[other]}, by {numbers}"
    return f"not distinguishable from {NAMES[other]}: {numbers}"


def seed_sentence(a: str, b: str) -> str:
    """What the comparison's seeds say about a and b (HR@10), if it is there."""
    if "mean over seeds" not in spread.columns:
        return ("The other seeds are not available here (see the note above the "
                "seed table), so this chapter cannot say whether these differences "
                "hold over seeds.")
    seeds = [c for c in spread.columns if c.startswith("seed ")]
    va, vb = spread.loc[a, seeds].dropna(), spread.loc[b, seeds].dropna()
    text = (f"Over the comparison's {len(va)} seeds, {NAMES[a]}'s HR@10 runs from "
            f"{va.min():.1%} to {va.max():.1%} and {NAMES[b]}'s from {vb.min():.1%} to "
            f"{vb.max():.1%}: ")
    if va.min() > vb.max():
        return text + f"every seed of {NAMES[a]} is above every seed of {NAMES[b]}."
    if va.max() < vb.min():
        return text + f"every seed of {NAMES[a]} is below every seed of {NAMES[b]}."
    return text + "the seeds overlap, so the seed-0 difference is not a finding."


d = results["dlrm"]
hr_lo, hr_hi = d.intervals["hr@10"]
others = ("dlrm_simplified", "fm", "mf", "itemknn", "popular")
display(Markdown(
    f"On seed 0, DLRM ranks the true next movie in the top 10 for "
    f"{d.metrics['hr@10']:.1%} of the test examples (95% interval {hr_lo:.1%} to "
    f"{hr_hi:.1%}), with a mean rank of {d.metrics['mean_rank']:.1f}. "
    "Example by example, in HR@10 seed 0's DLRM is "
    + "; ".join(paired_sentence(o) for o in others)
    + ". In MRR it is "
    + "; ".join(paired_sentence(o, "mrr") for o in ("dlrm_simplified", "fm"))
    + ". These intervals cover which test examples were drawn, for one trained model "
    "of each kind; another seed moves both models. " + seed_sentence("dlrm", "fm")
    + (" (Quick mode: a smoke test on a few thousand examples, not a result.)"
       if quick() else "")
))

# %% [markdown]
# ## Validation against test
#
# Validation and test are different periods of each user's history: validation follows the
# fit period directly, test comes after it. A model's validation score need not match its
# test score, and the difference is not DLRM's alone. The cell ranks the whole
# validation set (early stopping saw a fixed 2,000 of its examples) with every trained model,
# and with most popular counted over the fit period, the way the protocol scores a counting
# baseline on validation; on test it counts the whole training period. Most popular chose
# nothing on validation, so its change from one split to the other is the change of the
# period alone.

# %%
valid_models = {**models, "popular": Popularity(task, period="fit")}
rows = {}
for name, model in valid_models.items():
    row = {}
    valid = evaluate(model, task, split="valid", progress=False)
    for split, ev in (("valid", valid), ("test", results[name])):
        row[f"{split} MRR"] = ev.metrics["mrr"]
        row[f"{split} lo"], row[f"{split} hi"] = ev.intervals["mrr"]
        row[f"{split} HR@10"] = ev.metrics["hr@10"]
    row["test / valid MRR"] = row["test MRR"] / row["valid MRR"]
    rows[NAMES[name]] = row
valid_test = pd.DataFrame(rows).T
assert budget.valid_limit == 2000  # the text: early stopping saw 2,000 of them
valid_test.round(4)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
y = np.arange(len(valid_test))
for shift, split, color in ((-0.15, "valid", "C0"), (0.15, "test", "C1")):
    v = valid_test[f"{split} MRR"]
    err = [v - valid_test[f"{split} lo"], valid_test[f"{split} hi"] - v]
    ax.errorbar(v, y + shift, xerr=err, fmt="o", capsize=3, color=color,
                label="validation" if split == "valid" else "test")
ax.set_yticks(y, valid_test.index)
ax.invert_yaxis()
ax.set(xlabel="MRR (higher is better), 95% interval over examples",
       title="Each model on validation and on test (seed 0)")
ax.legend()
plt.show()

# %% tags=["remove-input"]
ratio = valid_test["test / valid MRR"]
trained_names = [NAMES[n] for n in models]
below = [n for n in trained_names
         if valid_test.loc[n, "test hi"] < valid_test.loc[n, "valid lo"]]
lower = [n for n in trained_names if ratio[n] < 1]
order = {split: list(valid_test.loc[trained_names, f"{split} MRR"]
                     .sort_values(ascending=False).index)
         for split in ("valid", "test")}
pop = NAMES["popular"]
if len(lower) == len(trained_names):
    models_text = "Every trained model scores a lower MRR on test than on validation"
elif not lower:
    models_text = "No trained model scores a lower MRR on test than on validation"
else:
    models_text = (f"{', '.join(lower[:-1])} and {lower[-1]} score" if len(lower) > 1
                   else f"{lower[0]} scores")
    models_text += " a lower MRR on test than on validation, the others do not"
extremes = (ratio[trained_names].idxmin(), ratio[trained_names].idxmax())
dlrm_ratio = ("" if NAMES["dlrm"] in extremes
              else f"; DLRM {ratio[NAMES['dlrm']]:.2f}")
display(Markdown(
    f"{models_text} (test over validation: from {ratio[trained_names].min():.2f} for "
    f"{ratio[trained_names].idxmin()} to {ratio[trained_names].max():.2f} for "
    f"{ratio[trained_names].idxmax()}{dlrm_ratio}); for {len(below)} of the "
    f"{len(trained_names)} the whole test interval lies below the validation interval. "
    f"{pop.capitalize()} goes from {valid_test.loc[pop, 'valid MRR']:.4f} to "
    f"{valid_test.loc[pop, 'test MRR']:.4f} (ratio {ratio[pop]:.2f}). By MRR the "
    f"order of the trained models is {', '.join(order['valid'])} on validation and "
    f"{', '.join(order['test'])} on test"
    + (" (the same order" if order["valid"] == order["test"] else
       " (a different order: a validation lead does not have to carry over")
    + "; these are point estimates of one seed, and the intervals above say which gaps "
    "are readable). Early stopping picked each model's epoch on part of the validation "
    "set, the same way for every model, which makes the trained models' validation "
    "scores a little optimistic."
    + (" (Quick mode: smoke test only.)" if quick() else "")
))

# %% [markdown]
# ## Which pairs of fields does DLRM use?
#
# Every dot product $\langle \mathbf{e}_f, \mathbf{e}_g \rangle$ has its own column
# $\mathbf{w}_{(f,g)}$ of the top MLP's first layer $\mathbf{W}_1$. How much a pair can move
# the first hidden layer is the size of that column times the typical size of the dot:
# $\lVert \mathbf{w}_{(f,g)} \rVert_2 \cdot \operatorname{std} \langle \mathbf{e}_f,
# \mathbf{e}_g \rangle$, measured here over test contexts with their target movies. A rough
# reading (the later layers can still amplify or cancel), but it shows where the trained model
# looks. The matrix is symmetric, so only its lower triangle is drawn. The pairs below the
# white line involve the movie and so differ from movie to movie; the pairs among context
# vectors are the same for every movie of a context, yet they still shape the ranking,
# because the ReLUs of the top MLP let them switch the movie terms on and off.

# %%
@torch.no_grad()
def pair_influence(model: DLRM, task, examples) -> tuple[np.ndarray, list[str]]:
    """||w_(f,g)||_2 * std <e_f, e_g> for every pair of vectors of a dot-interaction
    DLRM, over ``examples`` with their target movies: an (n, n) array holding each
    pair once, below the diagonal (NaN elsewhere), and the n vectors' names, e_0 first.
    """
    targets = torch.from_numpy(task.target[examples])[:, None]
    _, E_C, E_M = model.vectors(task.context(examples), targets)
    E = torch.cat([E_C, E_M[:, 0]], dim=1)  # (examples, n, k), e_0 first
    dots = E @ E.mT                          # (examples, n, n)
    w_c, w_m, w_x = model.top[0].weight.split(model.parts, dim=-1)
    n_c, n, k = E_C.shape[1], E.shape[1], E.shape[2]
    column = torch.zeros(n, n)  # ||w_(f,g)||, row g > column f
    column[model.ctx_j, model.ctx_i] = w_c[:, k:].norm(dim=0)  # w_c starts with e_0's k
    column[n_c + model.item_j, n_c + model.item_i] = w_m.norm(dim=0)
    column[n_c:, :n_c] = w_x.norm(dim=0).reshape(n - n_c, n_c)
    influence = (column * dots.std(0)).numpy()
    influence[np.triu_indices(n)] = np.nan  # each pair once: the strict lower triangle
    ctx_fields, item_fields = task.schema.context_fields, task.schema.item_fields
    names = (["dense (e_0)"] + [ctx_fields[int(i)].name for i in model.ctx_sparse]
             + [f.name for f in item_fields])
    return influence, names


dlrm = models["dlrm"]
measured = task.examples("test")[:: 10 if quick() else 2]
influence, names = pair_influence(dlrm, task, measured)
n = len(names)

fig, ax = plt.subplots(figsize=(7.5, 6.5), layout="constrained")
im = ax.imshow(influence, cmap="viridis")
ax.set(xticks=range(n), xticklabels=names, yticks=range(n), yticklabels=names,
       title="DLRM (seed 0): how much each pair of fields can move the top MLP")
ax.tick_params(axis="x", labelrotation=90)
ax.axhline(n_c - 0.5, color="white", lw=1)
ax.axvline(n_c - 0.5, color="white", lw=1)
pair_label = r"$\|\mathbf{w}_{(f,g)}\|_2 \cdot \mathrm{std}\,\langle e_f, e_g\rangle$"
fig.colorbar(im, ax=ax, shrink=0.8, label=pair_label)
plt.show()
pairs_table = pd.Series({f"{names[i]} · {names[j]}": influence[i, j]
                         for i in range(n) for j in range(i)})
pairs_table = pairs_table.sort_values(ascending=False)
assert np.isfinite(pairs_table.to_numpy()).all() and len(pairs_table) == n_pairs
pairs_table.head(8).round(3).to_frame("influence")

# %% [markdown]
# ## What DLRM leaves open
#
# DLRM interacts *fields*, not features: the history bag enters as one averaged vector, so
# its dot with the candidate movie compares the movie with the history as a whole, not with
# the nearest movie in it. Every pair of fields is a dot product in one shared
# $k$-dimensional space, as in FM, and the top MLP sees only these 105 numbers and
# $\mathbf{e}_0$. And the model has no regularisation of its own: no dropout, no weight
# decay, only early stopping on validation. What this costs and buys against the other
# models, over several seeds, is the subject of the [comparison](08_comparison.ipynb).
#
# ## Paper vs. here
#
# What {cite:t}`naumov2019dlrm` measured, against what this chapter measures (its own
# numbers, seed 0):

# %% tags=["remove-input"]
def interval_cell(name: str, metric: str = "hr@10") -> str:
    lo, hi = results[name].intervals[metric]
    return f"{results[name].metrics[metric]:.3f} [{lo:.3f}, {hi:.3f}]"


def short(other: str) -> str:
    row = paired[(paired["DLRM minus"] == NAMES[other]) & (paired["metric"] == "hr@10")]
    diff, lo, hi = row[["difference", "lo", "hi"]].iloc[0]
    word = "higher" if lo > 0 else "lower" if hi < 0 else "no difference readable"
    return f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]: {word}"


h = histories["dlrm"]
n_sparse = int((fields["role"] == "sparse").sum())
fit_wd = budget.fit_args("dlrm")["weight_decay"]
top_dropout = budget.hparams_for("dlrm").get("dropout", 0.0)
dlrm_reg = ", ".join([f"weight decay {fit_wd:g}"] * bool(fit_wd)
                     + [f"dropout {top_dropout:g} in the top MLP"] * bool(top_dropout)
                     ) or "no regularisation"
dlrm_reg += " (chosen on validation)"
rows = [
    ("data",
     "Criteo Ad Kaggle: about 45 million ad impressions, 13 numeric and 26 "
     "categorical features",
     f"MovieLens 100K: {len(task.examples('fit')):,} fit examples, {dlrm.num_dense} "
     f"dense values and {n_sparse} sparse fields, each user's ratings split in time"),
    ("task", "will this ad be clicked?",
     f"which of {task.num_items:,} movies comes next?"),
    ("metric", "accuracy of the click prediction, on training and validation data",
     "full ranking of every unrated movie: HR@10, MRR, mean rank on the test period"),
    ("negatives", "real non-clicks",
     f"{budget.num_negatives} movies sampled uniformly per positive"),
    ("compared with", "DCN, one other deep model",
     "the baseline ladder, MF, FM and the concatenation variant"),
    ("headline",
     "DLRM slightly above DCN in training and validation accuracy, with SGD and with "
     "Adagrad, without extensive tuning",
     f"DLRM test HR@10 {interval_cell('dlrm')} (seed 0); paired differences: minus FM "
     f"{short('fm')}, minus the concatenation variant {short('dlrm_simplified')}"),
    ("sizes",
     "k = 16; bottom 512-256-64, top 512-256; about 540 million parameters, nearly all "
     "in the embedding tables",
     f"k = {budget.embed_dim}; bottom {'-'.join(map(str, bottom[1:-1]))}, top "
     f"{'-'.join(map(str, top[1:-1]))}; {count_parameters(dlrm):,} parameters"),
    ("training", "one pass over the data with SGD or Adagrad, no regularisation",
     f"Adam, lr {budget.lr_for('dlrm'):g}, {dlrm_reg}; {len(h.epochs)} epochs "
     f"over the fit examples, epoch {h.best_epoch} kept by validation MRR"),
]
display(Markdown("| | paper | here |\n|---|---|---|\n"
                 + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)))
assert len(h.epochs) > 1 or quick()  # the text below: each fit example seen many times

# %% [markdown]
# Why the two may differ: the paper predicts clicks with tens of millions of examples, each
# seen once, so a model without regularisation has little chance to memorise; here every fit
# example is seen once per epoch, for as many epochs as validation keeps improving, and early
# stopping is the only brake. A
# click prediction is judged against real non-clicks; here every model must find one movie
# among all the unrated ones, trained on a few sampled negatives. The paper compared two deep
# models, untuned; here DLRM stands beside counting baselines and simpler factorisation
# models, each with the same number of settings tried on validation (for DLRM: none, L2 and
# dropout in the top MLP), and the MLPs are narrower (for the
# ranking cost measured above). And the paper reports one run; here a difference counts only
# when it holds over seeds ([chapter 08](08_comparison.ipynb)).
#
# ## Summary
#
# - DLRM pools each field into one vector $\mathbf{e}_f$, sends $\mathbf{x}_{\mathrm{dense}}$
#   through a bottom MLP to one more vector $\mathbf{e}_0$, and feeds $\mathbf{e}_0$ and every
#   dot product $\langle \mathbf{e}_f, \mathbf{e}_g \rangle$, $f < g$, to a top MLP.
# - The dot products are FM's idea at field level: a fixed number of pairs (105 here), each
#   with its own weights in the top MLP; the concatenation variant leaves the pairs to the MLP.
# - Ranking all movies is cheap only after splitting the top MLP's first layer into context,
#   movie and cross parts; the rest of the top MLP still runs for every (context, movie) pair.
# - DLRM has no dropout and no weight decay: read its training loss beside its validation
#   curve, and let early stopping on validation choose the epoch.
# - Validation and test are different periods; compare models on the same split (paired, and
#   over seeds), and read the validation-to-test change of every model, not of one.
#
# ## Exercises
#
# **1. By hand: Criteo's DLRM.** Criteo Kaggle has 13 numeric and 26 categorical features;
# the official code uses $k = 16$, one bottom MLP for all 13 numbers and one embedding table
# per categorical feature. How many vectors interact, how many dot products are there, and how
# wide is the input of the top MLP? How does that change with the option that also keeps each
# vector's dot with itself? And on our task, how many of the 105 dots must be computed again
# for every candidate movie?
#
# :::{admonition} Solution
# :class: dropdown
#
# $1 + 26 = 27$ vectors, $27 \cdot 26 / 2 = 351$ dots, so the top MLP reads $16 + 351 = 367$
# numbers: the 367 of the official configuration. With the self dots, $27 \cdot 28 / 2 = 378$
# dots and an input of $394$. On our task $12 + 3 = 15$ vectors give $105$ dots: $66$ inside
# the context, $3$ inside the movie and $12 \cdot 3 = 36$ across. Only the $36$ cross dots
# change from one candidate to the next within a context (the $3$ movie dots are computed once
# per movie), and featint does not even form them: it folds them into $\mathbf{U}_f$.
# :::
#
# **2. Code: the planted pair.** The synthetic task of `featint.synthetic` has one planted
# interaction: men pick Action films, women Romance films, both genres equally popular. Train
# a DLRM on it with `fit` (learning rate $10^{-2}$, 10 epochs, no early stopping: patience 10;
# quick mode: 2 epochs) and list the pairs of fields by `pair_influence`. Where does
# gender · genre come? If it is not first, which other vectors could carry the same
# information? (Look at what $\mathbf{x}_{\mathrm{dense}}$ and the history hold.)

# %% tags=["hide-input"]
synthetic = build_task(synthetic_movielens(seed=0))
toy = build_model("dlrm", synthetic, seed=0)
toy_history = fit(toy, synthetic, epochs=10, lr=1e-2, patience=10, seed=0,
                  progress=False, verbose=False)
toy_influence, toy_names = pair_influence(toy.eval(), synthetic,
                                          synthetic.examples("test"))
toy_pairs = pd.Series({f"{toy_names[i]} · {toy_names[j]}": toy_influence[i, j]
                       for i in range(len(toy_names)) for j in range(i)})
toy_pairs = toy_pairs.sort_values(ascending=False)
place = 1 + list(toy_pairs.index).index("genre · gender")  # movie side listed first
print(f"{len(toy_history.epochs)} epochs, validation MRR "
      f"{toy_history.epochs[-1]['valid_mrr']:.3f}; gender · genre is pair {place} of "
      f"{len(toy_pairs)}")
toy_pairs.head(6).round(3).to_frame("influence")

# %% [markdown]
# The gender is not the only way to the planted genre: a user's genre shares in
# $\mathbf{x}_{\mathrm{dense}}$ (hence $\mathbf{e}_0$) and their history already say which
# genre they watch, so $\mathbf{e}_0 \cdot$ genre, history · genre or history · movie can carry
# the same signal, and the top MLP can lean on any of them. The influence measure shows what
# the trained network uses, not which pair is "true".
#
# **3. Think: regularising DLRM.** The paper's DLRM has no dropout and no weight decay, and
# a training curve like the one above shows what it does after its best epoch. Which regularisers could you add, where
# in the model, and how would you choose their strength so that the comparison with the other
# models stays fair?
#
# :::{admonition} Solution
# :class: dropdown
#
# Dropout in the top MLP (after its ReLUs; `MLP` has the layer, DLRM's `dropout`), or in
# the bottom MLP; an L2 penalty (the optimiser's weight decay), perhaps on the embedding
# tables only, which hold most of the parameters; a smaller $k$ or narrower MLPs. The strength
# must be chosen on validation only, under the same budget and with as many trials as every
# other model (`featint/tuning.py` and `make tune` do that: DLRM's space tries none, an L2
# penalty and dropout 0.2 in the top MLP; chapter 08 shows the trials), and the winner
# judged over several seeds. Choosing it on the test set, or
# giving DLRM a search the other models did not get, would make its test score optimistic.
# :::
#
# **4. Think: dots or concatenation.** The concatenation variant gives the top MLP the vectors
# themselves, from which it could in principle compute every dot product. Why can it still
# need more data or epochs to reach the same place, and what does it gain in exchange?
#
# :::{admonition} Solution
# :class: dropdown
#
# A ReLU MLP has no multiplication: it can only approximate a product of two inputs piecewise,
# with many units, and it has to find out from data which of the 105 products matter, while
# the dot interaction hands them over exactly. In exchange the concatenation variant is not
# limited to dot products in one shared space: it can use single coordinates, weigh the
# factors $q$ differently for different pairs, and combine more than two fields. It is also
# cheaper per pair when ranking (no cross part; the table of *What a pair costs*). Which side
# wins on a given data set is an empirical question for validation, and then for several
# seeds.
# :::
