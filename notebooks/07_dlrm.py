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
from featint.evaluate import LABELS, evaluate, rank_examples, subsample
from featint.features import Features
from featint.models import build_model, count_parameters
from featint.models.dlrm import DLRM
from featint.report import names_text
from featint.show import source
from featint.synthetic import synthetic_movielens
from featint.train import fit
from featint.training import model_hparams, trained
from featint.tuning import DLRM_PAPER, SPACES

config = current()
budget = config.budget
NAMES = {"random": "random", "popular": "most popular", "markov": "Markov",
         "itemknn": "ItemKNN", "mf": "MF", "fm": "FM", "dlrm": "DLRM",
         "dlrm_simplified": "DLRM (concatenation)"}
print("quick mode:", config.quick, "| torch threads:", torch.get_num_threads())

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
# sparse. All sizes come from the task's schema, and the MLPs' widths from DLRM's card:

# %%
ml = load_movielens()
task = build_task(ml)
cards = {name: card(name, budget) for name in ("mf", "fm", "dlrm_simplified", "dlrm")}
dlrm_card = cards["dlrm"]
dlrm = build_model("dlrm", task, seed=0, **model_hparams("dlrm", budget))
cat = build_model("dlrm_simplified", task, seed=0,
                  **model_hparams("dlrm_simplified", budget))
fields = pd.DataFrame([
    {"field": f.name, "side": f.side, "kind": f.kind, "size": f.size,
     "role": "dense" if f.kind == "numeric" else "sparse"}
    for f in task.schema.fields
]).set_index("field")
n_c = 1 + len(dlrm.ctx_sparse)  # context vectors, e_0 included
n_m = dlrm.num_item_fields     # movie vectors
n_pairs = (n_c + n_m) * (n_c + n_m - 1) // 2
k = dlrm_card.value("embed_dim")


def widths(mlp) -> list[int]:
    """The input size, then each layer's output size, of an MLP."""
    linear = [m for m in mlp if isinstance(m, torch.nn.Linear)]
    return [linear[0].in_features] + [m.out_features for m in linear]


bottom, top = widths(dlrm.bottom), widths(dlrm.top)
print(f"x_dense: {dlrm.num_dense} values; bottom MLP {'-'.join(map(str, bottom))}")
print(f"vectors: e_0 + {n_c - 1} sparse context fields = {n_c} context vectors, "
      f"{n_m} movie vectors; {n_pairs} pairs")
print(f"top MLP {'-'.join(map(str, top))}: input {top[0]} = k + pairs; concatenation "
      f"variant: {cat.top[0].in_features} = {n_c + n_m} vectors x k")
# the sizes the text quotes, and the MLPs of DLRM's card
assert (n_c, n_m, n_pairs, dlrm.num_dense) == (12, 3, 105, 39)
assert cat.top[0].in_features == (n_c + n_m) * k
assert bottom == [39, *dlrm_card.value("bottom"), k]
assert top == [k + n_pairs, *dlrm_card.value("top"), 1]
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
# MLP. FM pays one dot product of size $k$. The table counts it for the MLP widths DLRM's
# trials tried (featint's default and the paper's Criteo widths), and for each of the two
# DLRMs as the comparison trains them, and times the ranking of a few hundred test contexts
# against every movie with each model (untrained: the cost does not depend on the weights):

# %%
def multiply_adds_per_pair(model) -> int:
    """Multiply-adds of a DLRM per (context, movie) pair when ranking all movies."""
    first, *rest = [m for m in model.top if isinstance(m, torch.nn.Linear)]
    k = model.embedding.embedding.embedding_dim
    cross = model.num_item_fields * first.out_features * k  # vec E_M against the U_f
    rest_of_top = sum(m.weight.numel() for m in rest)
    return (cross if model.interaction == "dot" else 0) + rest_of_top


def mlp_text(model) -> str:
    """``bottom 64-32, top 64-32``: the hidden widths of a DLRM's two MLPs."""
    return ", ".join(f"{part} {'-'.join(map(str, widths(getattr(model, part))[1:-1]))}"
                     for part in ("bottom", "top"))


fm = build_model("fm", task)
costs = {"fm": (fm, fm.embedding.embedding.embedding_dim)}  # FM: one dot of size k
for trial in SPACES["dlrm"].values():  # the MLPs of DLRM's trials
    model = build_model("dlrm", task, **model_hparams("dlrm", budget, trial))
    mark = " (the comparison's)" if mlp_text(model) == mlp_text(dlrm) else ""
    costs[f"dlrm, {mlp_text(model)}{mark}"] = (model, multiply_adds_per_pair(model))
costs[f"dlrm_simplified, {mlp_text(cat)} (the comparison's)"] = (
    cat, multiply_adds_per_pair(cat))

timed = subsample(task.examples("test"), 100 if config.quick else 500)
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
# ## The paper's DLRM and featint's
#
# The paper's benchmark configurations and the official code
# (`facebookresearch/dlrm`, `dlrm_s_pytorch.py`, `bench/dlrm_s_criteo_kaggle.sh`), against
# featint's code:
#
# | | paper / official code (Criteo Kaggle) | featint |
# |---|---|---|
# | interaction | dots of all pairs, no self pairs | the same, reordered |
# | option `cat` | concatenate the vectors | `dlrm_simplified` |
# | multi-hot fields | `EmbeddingBag`, sum | the task's weights: a mean for bags |
# | ReLU | after every layer of both MLPs but the logit | the same |
# | initialisation | see below | the same |
# | loss | BCE on clicks and non-clicks | BCE on sampled negatives (the budget) |
#
# The official initialisation draws each table from
# $\mathcal U(\pm 1/\sqrt{\text{rows}})$, with rows the table's number of rows, each layer's
# weights from $\mathcal N(0, 2/(\text{in}+\text{out}))$ and its biases from
# $\mathcal N(0, 1/\text{out})$; featint does the same.
#
# The paper's own setting on Criteo Kaggle (its §5.1) is an embedding size of 16, a bottom
# MLP 512-256-64 (13-512-256-64-16 with its input and its output), a top MLP 512-256
# (367-512-256-1: 16 + 351 dots in), no regularisation at all, and SGD or Adagrad (the
# official script runs SGD with learning rate 0.1 on batches of 128). Which of these
# featint's DLRM trains with is its card, in *Training*.

# %% tags=["remove-input"]
widest = max(dlrm_card.value("bottom") + dlrm_card.value("top"))
paper_widest = max(DLRM_PAPER["bottom"] + DLRM_PAPER["top"])
if widest == paper_widest:
    width_text = (f"The comparison's DLRM has MLPs as wide as Criteo's ({widest} units "
                  "in the widest layer).")
else:
    width_text = (f"The comparison's DLRM has MLPs {paper_widest / widest:g} times "
                  f"narrower than Criteo's ({widest} against {paper_widest} units "
                  "in the widest layer).")
fit_examples = len(task.examples("fit"))
top_runs = pairs_per_test / 1e6
display(Markdown(
    f"{width_text} Criteo Kaggle has about 45 million examples and the model scores "
    "one (user, ad) pair per request; here there are "
    f"{fit_examples:,} examples to fit on and every evaluation scores "
    f"{task.num_items:,} movies per context, so the top MLP runs {top_runs:.0f} "
    "million times for the test set; the table of *What a pair costs* shows what each "
    "width costs per pass over it."))

# %% [markdown]
# ## Training
#
# Every model of this chapter is the comparison's seed-0 model: `featint.training.trained`
# trains it once per machine under the budget every model shares, with its own setting from
# the tuning record, and reads it back afterwards, so this chapter,
# [chapter 08](08_comparison.ipynb) and every other chapter share the very same FM. Beside
# DLRM and its concatenation variant: FM (every pair of *features*, one shared dot product)
# and MF (the `user` and `movie` fields only, the top rung of the baseline ladder), to see what
# interactions between side features add. The budget, then each model's card: every setting
# with its value and where the value comes from.

# %% tags=["hide-input"]
budget_lines = [f"| {what} | {value} |" for what, value in budget_rows(budget)]
display(Markdown("| the budget (every model) | |\n|---|---|\n" + "\n".join(budget_lines)
                 + (f"\n\nQuick mode: {config.sizes.describe()}, a smoke test only."
                    if config.quick else "")))
for model_card in cards.values():
    display(Markdown(model_card.markdown()))

# %%
models, histories = {}, {}
for name in ("mf", "fm", "dlrm_simplified", "dlrm"):
    models[name], histories[name] = trained(name, task, progress=False)
    print(f"{name}: {count_parameters(models[name]):,} parameters, "
          f"{len(histories[name].epochs)} epochs, "
          f"epoch {histories[name].best_epoch} kept")


def dropout_rates(model) -> set[float]:
    return {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}


for name in ("dlrm_simplified", "dlrm"):  # each trained DLRM is its card
    model, model_card = models[name], cards[name]
    assert widths(model.bottom)[1:-1] == list(model_card.value("bottom")), name
    assert widths(model.top)[1:-1] == list(model_card.value("top")), name
    assert dropout_rates(model) <= {model_card.value("dropout")}, name
    assert model.interaction == model_card.value("interaction"), name

# %%
plot_histories({NAMES[n]: h for n, h in histories.items()})
plt.show()


# %% tags=["remove-input"]
REGULARISERS = {"weight_decay": "weight decay", "dropout": "dropout in the top MLP",
                "embedding_l2": "L2 on the embeddings a batch uses"}


def regularisation_text(model_card) -> str:
    """What regularises a DLRM besides early stopping, from its card."""
    parts = [f"{REGULARISERS[key]} {value:g}"
             for key, value in model_card.values.items()
             if key in REGULARISERS and isinstance(value, int | float) and value]
    return ", ".join(parts) if parts else "nothing but early stopping"


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
with_dropout = [NAMES[n] for n in histories if any(cards[n].values.get(key)
                for key in ("dropout", "bi_dropout"))]
alike = ("none of them has dropout, so their losses are measured alike"
         if not with_dropout else
         f"{names_text(with_dropout)} measured with dropout on, the others without")
regularised = regularisation_text(dlrm_card)
display(Markdown(
    ("DLRM's card has no regulariser: early stopping on validation is its only brake. "
     if regularised == "nothing but early stopping" else
     f"Besides early stopping, DLRM is regularised by {regularised} (its card). ")
    + curve_text("dlrm") + f" Of the four models, {NAMES[lowest]} ends "
    f"with the lowest training loss ({alike}). " + curve_text("dlrm_simplified")
    + " Which regularisation would help, and how much, is a question for the "
    "comparison's validation search, not for the test set (exercise 3)."
    + (" (Quick mode: a smoke test only.)" if config.quick else "")
))

# %% [markdown]
# ## Test results
#
# The test set against all movies, beside the baseline ladder of
# [the protocol](../book/protocol.md): random scores, most popular, Markov (the last movie's
# successors), ItemKNN (movies that co-occur with the history), MF, then FM and the two
# DLRMs. Each metric comes with its 95% bootstrap interval over test examples, for this
# chapter's seed-0 models.

# %%
results = evaluate_all(task, models)
results_table(results).rename(index=NAMES)

# %%
plot_results(results)
plt.show()

# %% [markdown]
# These are one seed's numbers. The comparison trains every model with several seeds; its
# results go beside them:

# %%
spread = seed_spread(results, ["mf", "fm", "dlrm_simplified", "dlrm"])
spread.rename(index=NAMES)

# %% [markdown]
# Whether DLRM is above or below another model is the comparison's pairwise test: every pair
# of its models, each averaged over its seeds and paired over the same test examples, the
# uncertainty holding both the test examples and the seeds, with Holm's correction over every
# pair of the comparison (chapter 08 shows the whole family). DLRM's rows of it, the
# difference DLRM minus the other model in each metric's direction (positive: DLRM is better)
# with its interval at the level Holm tested the pair at:

# %%
comparison, where = load_comparison()
print(where)
others = ("dlrm_simplified", "fm", "mf", "itemknn", "markov", "popular")
metrics = ("hr@10", "mrr", "mean_rank")
rows = []
for metric in metrics:
    result = comparison.pairwise(metric)
    for other in others:
        row = result.pair("dlrm", other)
        sign = 1.0 if row["a"] == "dlrm" else -1.0
        rows.append({"DLRM against": NAMES[other], "metric": LABELS[metric],
                     "DLRM better by": sign * row["difference"],
                     "lo": min(sign * row["lo"], sign * row["hi"]),
                     "hi": max(sign * row["lo"], sign * row["hi"]),
                     "p (Holm)": row["p_adjusted"],
                     "verdict": verdict(comparison, "dlrm", other, metric)})
paired = pd.DataFrame(rows)
paired.round(4)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, len(metrics), figsize=(12, 2.8), sharey=True,
                         layout="constrained")
for ax, metric in zip(axes, metrics, strict=True):
    part = paired[paired["metric"] == LABELS[metric]]
    y = np.arange(len(part))
    colors = ["C0" if v == "better than" else "C3" if v == "worse than" else "0.6"
              for v in part["verdict"]]
    for yi, (_, row), color in zip(y, part.iterrows(), colors, strict=True):
        ax.errorbar(row["DLRM better by"], yi, fmt="o", color=color, capsize=3,
                    xerr=[[row["DLRM better by"] - row["lo"]],
                          [row["hi"] - row["DLRM better by"]]])
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set(xlabel="difference (+: DLRM better)", title=LABELS[metric])
axes[0].set_yticks(y, part["DLRM against"])
axes[0].set_ylabel("DLRM against")
axes[0].invert_yaxis()
fig.suptitle("The comparison's pairwise test (every seed; blue: DLRM better, red: "
             "worse, grey: not separated)")
plt.show()

# %% tags=["remove-input"]
d = results["dlrm"]
display(Markdown(
    "On this chapter's test set, seed 0's DLRM ranks the true next movie in the top "
    f"10 for {d.metrics['hr@10']:.1%} of the test examples (HR@10 "
    f"{value_text(d, 'hr@10')}), with a mean rank of {value_text(d, 'mean_rank')}. "
    "Over the comparison's seeds, in HR@10 DLRM is "
    + "; ".join(verdict_text(comparison, "dlrm", o, label=NAMES[o]) for o in others)
    + ". In MRR it is "
    + "; ".join(verdict_text(comparison, "dlrm", o, "mrr", NAMES[o])
                for o in ("dlrm_simplified", "fm"))
    + ". In mean rank it is "
    + "; ".join(verdict_text(comparison, "dlrm", o, "mean_rank", NAMES[o])
                for o in ("dlrm_simplified", "fm"))
    + "." + (" (Quick mode: this chapter's seed-0 numbers are a smoke test on a few "
             "thousand examples; the verdicts are the comparison's record.)"
             if config.quick else "")
))

# %% [markdown]
# ## Validation against test
#
# Validation and test are different periods of each user's history: validation follows the
# fit period directly, test comes after it. A model's validation score need not match its
# test score, and the difference is not DLRM's alone. The cell ranks the whole
# validation set (early stopping saw a fixed 2,000 of its examples, the budget's) with every
# trained model,
# and with most popular counted over the fit period, the way the protocol scores a counting
# baseline on validation; on test it counts the whole training period. Most popular chose
# nothing on validation, so its change from one split to the other is the change of the
# period alone.

# %%
valid_models = {**models, "popular": Popularity(task, period="fit")}
assert budget.valid_limit == 2000  # the text: early stopping saw 2,000 of them
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
valid_test.round(4)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(8, 3.2), layout="constrained")
y = np.arange(len(valid_test))
for shift, split, color in ((-0.15, "valid", "C0"), (0.15, "test", "C1")):
    v = valid_test[f"{split} MRR"]
    err = [v - valid_test[f"{split} lo"], valid_test[f"{split} hi"] - v]
    ax.errorbar(v, y + shift, xerr=err, fmt="o", capsize=3, color=color,
                label="validation" if split == "valid" else "test")
ax.set_yticks(y, valid_test.index)
ax.invert_yaxis()
ax.set(xlabel="MRR (higher is better), 95% interval over examples",
       ylabel="model (seed 0)", title="Each model on validation and on test (seed 0)")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
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
    + "; these are point estimates of one seed, and which models differ is the "
    "comparison's pairwise test above). Early stopping picked each model's epoch on "
    "part of the validation set, the same way for every model, which makes the trained "
    "models' validation scores a little optimistic."
    + (" (Quick mode: smoke test only.)" if config.quick else "")
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
measured = task.examples("test")[:: 10 if config.quick else 2]
influence, names = pair_influence(dlrm, task, measured)
n = len(names)

fig, ax = plt.subplots(figsize=(7.5, 6.5), layout="constrained")
im = ax.imshow(influence, cmap="viridis")
ax.set(xticks=range(n), xticklabels=names, yticks=range(n), yticklabels=names,
       xlabel=r"vector $\mathbf{e}_f$ of the pair",
       ylabel=r"vector $\mathbf{e}_g$ of the pair ($g > f$)",
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
# $\mathbf{e}_0$. What this costs and buys against the other models, over several seeds, is
# the subject of the [comparison](08_comparison.ipynb).
#
# ## Paper vs. here
#
# What {cite:t}`naumov2019dlrm` measured, against what this chapter measures (its own
# numbers, seed 0, and the comparison's verdicts over every seed):

# %% tags=["remove-input"]
WHERE = {"tuned": "chosen on validation", "budget": "the budget's",
         "default": "featint's default"}


def from_card(text: str, key: str, model_card=dlrm_card) -> str:
    """A setting of the card in words, with where its value comes from."""
    return f"{text} ({WHERE[model_card.origin[key]]})"


h = histories["dlrm"]
n_sparse = int((fields["role"] == "sparse").sum())
values = dlrm_card.values
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
     f"{values['num_negatives']} movies sampled uniformly per positive"),
    ("compared with", "DCN, one other deep model",
     "the baseline ladder, MF, FM and the concatenation variant"),
    ("headline",
     "DLRM slightly above DCN in training and validation accuracy, with SGD and with "
     "Adagrad, without extensive tuning",
     f"DLRM test HR@10 {value_text(results['dlrm'], 'hr@10')} (seed 0); over the "
     f"comparison's seeds it is {verdict_text(comparison, 'dlrm', 'fm', label='FM')} "
     "and " + verdict_text(comparison, "dlrm", "dlrm_simplified",
                           label=NAMES["dlrm_simplified"])),
    ("sizes",
     "k = 16; bottom 512-256-64, top 512-256; about 540 million parameters, nearly all "
     "in the embedding tables",
     "; ".join([from_card(f"k = {values['embed_dim']}", "embed_dim"),
                from_card(f"bottom {'-'.join(map(str, values['bottom']))}", "bottom"),
                from_card(f"top {'-'.join(map(str, values['top']))}", "top")])
     + f"; {count_parameters(models['dlrm']):,} parameters"),
    ("training", "one pass over the data with SGD or Adagrad, no regularisation",
     "; ".join([from_card(f"Adam, learning rate {values['lr']:g}", "lr"),
                from_card(f"weight decay {values['weight_decay']:g}", "weight_decay"),
                from_card(f"dropout {values['dropout']:g} in the top MLP", "dropout")])
     + f"; {len(h.epochs)} epochs over the fit examples, epoch {h.best_epoch} kept by "
     "validation MRR"),
]
display(Markdown("| | paper | here |\n|---|---|---|\n"
                 + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)))
assert len(h.epochs) > 1 or config.quick  # the text below: each fit example seen often

# %% tags=["remove-input"]
brakes = regularisation_text(dlrm_card)
brakes = ("early stopping is the only brake" if brakes == "nothing but early stopping"
          else f"early stopping and {brakes} are the brakes")
varied = ", ".join(SETTING_NAMES.get(key, key) for key in dlrm_card.tuned)
widest = max(values["bottom"] + values["top"])
narrower = ("" if widest >= paper_widest else
            "; and the MLPs are narrower (for the ranking cost measured above)")
display(Markdown(
    "Why the two may differ: the paper predicts clicks with tens of millions of "
    "examples, each seen once, so a model without regularisation has little chance to "
    "memorise; here every fit example is seen once per epoch, for as many epochs as "
    f"validation keeps improving, and {brakes}. A click prediction is judged against "
    "real non-clicks; here every model must find one movie among all the unrated ones, "
    "trained on a few sampled negatives. The paper compared two deep models, untuned; "
    "here DLRM stands beside counting baselines and simpler factorisation models, each "
    f"with the same number of settings tried on validation (DLRM's {dlrm_card.trials} "
    f"trials varied {varied}){narrower}. And the paper reports one run; here a "
    "difference counts only when the comparison's test over every seed shows it "
    "([chapter 08](08_comparison.ipynb))."))

# %% [markdown]
# ## Summary
#
# - DLRM pools each field into one vector $\mathbf{e}_f$, sends $\mathbf{x}_{\mathrm{dense}}$
#   through a bottom MLP to one more vector $\mathbf{e}_0$, and feeds $\mathbf{e}_0$ and every
#   dot product $\langle \mathbf{e}_f, \mathbf{e}_g \rangle$, $f < g$, to a top MLP.
# - The dot products are FM's idea at field level: a fixed number of pairs (105 here), each
#   with its own weights in the top MLP; the concatenation variant leaves the pairs to the MLP.
# - Ranking all movies is cheap only after splitting the top MLP's first layer into context,
#   movie and cross parts; the rest of the top MLP still runs for every (context, movie) pair.
# - What DLRM trains with, its regularisation included, is its card; read its training loss
#   beside its validation curve, and let early stopping on validation choose the epoch.
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

# %% tags=["remove-input"]
ahead = list(toy_pairs.index[:min(place - 1, 5)])
if place - 1 > len(ahead):
    ahead.append(f"{place - 1 - len(ahead)} more pairs")
if place == 1:
    standing = (f"Gender · genre comes first of the {len(toy_pairs)} pairs: the "
                "trained network leans on the planted pair most. ")
else:
    ordinal = {2: "second", 3: "third"}.get(place, f"{place}th")
    standing = (f"Gender · genre comes {ordinal} of the {len(toy_pairs)} pairs, "
                f"behind {names_text(ahead)}. ")
display(Markdown(solution(
    standing + "The gender is not the only way to the planted genre: a user's genre "
    "shares in $\\mathbf{x}_{\\mathrm{dense}}$ (hence $\\mathbf{e}_0$) and their "
    "history already say which genre they watch, so $\\mathbf{e}_0 \\cdot$ genre, "
    "history · genre or history · movie can carry the same signal, and the top MLP "
    "can lean on any of them. "
    "The influence measure shows what the trained network uses, not which pair is "
    "\"true\"." + (" (Quick mode: 2 epochs, so the order is barely trained.)"
                   if config.quick else ""))))

# %% [markdown]
# **3. Think: regularising DLRM.** The paper uses no regularisation at all (its §5.1), and a
# training curve like the one above shows what a model does after its best epoch. Which
# regularisers could you add, where in the model, and how would you choose their strength so
# that the comparison with the other models stays fair? Which did featint's tuning try?

# %% tags=["remove-input"]
trial_list = "; ".join(f"`{label}`" for label in SPACES["dlrm"])
display(Markdown(solution(
    "Dropout in the top MLP (after its ReLUs; `MLP` has the layer, DLRM's `dropout`), "
    "or in the bottom MLP; an L2 penalty (the optimiser's weight decay), perhaps on "
    "the embedding tables only, which hold most of the parameters; a smaller $k$ or "
    "narrower MLPs. The strength must be chosen on validation only, under the same "
    "budget and with as many trials as every other model, and the winner judged over "
    "several seeds. Choosing it on the test set, or giving DLRM a search the other "
    "models did not get, "
    f"would make its test score optimistic. featint's tuning tried {trial_list} "
    f"(`featint/tuning.py`, `make tune`; chapter 08 shows the trials). "
    + dlrm_card.summary() + f" So the comparison's DLRM is regularised by "
    f"{regularisation_text(dlrm_card)}.")))

# %% [markdown]
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
