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
# # 05 · DeepFM
#
# Two of the models so far leave a gap each. The FM of [chapter 01](01_fm.ipynb) learns every
# pairwise interaction from the raw features, but nothing beyond pairs. Wide & Deep
# ([chapter 04](04_wide_deep.ipynb)) adds an MLP for higher-order patterns, but its wide part
# only knows the crosses someone engineered by hand. DeepFM {cite}`guo2017deepfm` puts an FM
# where Wide & Deep had its wide part and lets it share **one embedding table** with the deep
# part: the FM component learns the low-order (pairwise) interactions, the deep component the
# high-order ones, both from the same raw fields, trained together from scratch, with no
# feature engineering and no pre-training (FNN, an earlier model, initialised an MLP from a
# separately trained FM).

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
    rank_examples,
    rank_of_target,
    subsample,
)
from featint.features import Features
from featint.layers import ContextItemMLP
from featint.models import build_model, count_parameters
from featint.models.deepfm import DeepFM
from featint.report import names_text
from featint.show import source
from featint.stats import mean_interval, pairwise
from featint.synthetic import synthetic_movielens
from featint.train import fit
from featint.training import describe, trained
from featint.tuning import SPACES


def show_table(rows: list[tuple[str, str, str]]) -> None:
    """Display rows of (what, paper, here) as a table, no cell cut short."""
    table = pd.DataFrame(rows, columns=["what", "paper", "here"]).set_index("what")
    table.index.name = None
    with pd.option_context("display.max_colwidth", None):
        display(table)


def layers(hidden) -> str:
    """Hidden layer widths as the paper writes them: 400-400-400."""
    return "-".join(map(str, hidden))


quick = current().quick
print("quick mode:", quick, "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## The model
#
# DeepFM scores an example $\mathbf{x}$, a context and a candidate movie, with the sum of two
# logits,
#
# $$\hat{y}(\mathbf{x}) = y_{\mathrm{FM}}(\mathbf{x}) + y_{\mathrm{DNN}}(\mathbf{x}),$$
#
# and $\sigma(\hat{y})$ is the predicted probability that the movie comes next: the sigmoid
# is applied once, to the sum.
#
# The **FM component** is exactly the factorization machine of [chapter 01](01_fm.ipynb),
#
# $$y_{\mathrm{FM}} = w_0 + \sum_{i} w_i x_i
#   + \sum_{i<j} \langle \mathbf{v}_i, \mathbf{v}_j \rangle\, x_i x_j ,$$
#
# with a latent vector $\mathbf{v}_i \in \mathbb{R}^{k}$ for every feature $i$.
#
# The **deep component** reads the same vectors. The embedding of field $f$ is
# $\mathbf{e}_f = \sum_{i : f_i = f} x_i \mathbf{v}_i$: for a one-hot field, the
# $\mathbf{v}_i$ of its one feature; for the history bag or the genres, the weighted mean of
# the members' vectors; for a numeric field, the values times their vectors (the paper's
# treatment of continuous fields). Then
#
# $$\mathbf{z}_0 = [\mathbf{e}_1; \mathbf{e}_2; \ldots; \mathbf{e}_m], \qquad
# \mathbf{z}_l = \mathrm{ReLU}\big(\mathbf{W}_l \mathbf{z}_{l-1} + \mathbf{b}_l\big),
# \ l = 1, \ldots, L, \qquad
# y_{\mathrm{DNN}} = \mathbf{w}_{\mathrm{out}}^{\top} \mathbf{z}_L + b_{\mathrm{out}},$$
#
# with dropout after every hidden layer while training, and a linear output unit. (The paper
# writes $V_i$ for $\mathbf{v}_i$, $a^{(l)}$ for $\mathbf{z}_l$ and $|H|$ for $L$.) Seen
# from the deep component, the table of the $\mathbf{v}_i$ is the weight matrix from the
# sparse input to the embedding layer, so every gradient the MLP sends back trains the FM's
# vectors too, and the reverse.
#
# On the next-movie task the $m$ fields are the context's $m_C$ and the movie's $m_M$ (the
# cell prints them). The model, `featint/models/deepfm.py`, is FM's pieces plus one
# `ContextItemMLP`:

# %%
ml = load_movielens()
task = build_task(ml)
test_ex = task.examples("test")
ctx_fields, item_fields = task.schema.context_fields, task.schema.item_fields
m_c, m_m = len(ctx_fields), len(item_fields)
print(f"m = {m_c + m_m} fields: m_C = {m_c} of the context "
      f"({', '.join(f.name for f in ctx_fields)}) and m_M = {m_m} of the movie "
      f"({', '.join(f.name for f in item_fields)})")
assert (m_c, m_m) == (14, 3)
source(DeepFM.__init__, DeepFM.forward)

# %% [markdown]
# The FM part is computed per side as in [chapter 01](01_fm.ipynb): the context alone, the
# movie alone, and all context-movie pairs as one dot product. The deep part splits its first
# layer by columns, $\mathbf{W}_1 = [\mathbf{W}_{1,C}\ \mathbf{W}_{1,M}]$, and its input,
# $\mathbf{z}_0 = [\mathbf{z}_C; \mathbf{z}_M]$ with
# $\mathbf{z}_C = [\mathbf{e}_1; \ldots; \mathbf{e}_{m_C}]$ and
# $\mathbf{z}_M = [\mathbf{e}_{m_C+1}; \ldots; \mathbf{e}_m]$:
#
# $$\mathbf{W}_1 \mathbf{z}_0 + \mathbf{b}_1 =
# \underbrace{\mathbf{W}_{1,C}\, \mathbf{z}_C + \mathbf{b}_1}_{\text{once per context}}
# + \underbrace{\mathbf{W}_{1,M}\, \mathbf{z}_M}_{\text{once per movie}} ,$$
#
# so ranking all 1,682 movies costs a broadcast addition per pair before the remaining layers
# (as in [chapter 04](04_wide_deep.ipynb)):

# %%
source(ContextItemMLP.forward)

# %% [markdown]
# ### Two checks in float64
#
# **DeepFM contains FM.** With the deep component's output layer at zero
# ($\mathbf{w}_{\mathrm{out}} = \mathbf{0}$, $b_{\mathrm{out}} = 0$), $y_{\mathrm{DNN}} = 0$
# and DeepFM must be the FM with the same $w_0$, $w_i$ and $\mathbf{v}_i$: copy them into
# featint's `fm` model and compare, on all movies and on sampled candidates.

# %%
deepfm64 = build_model("deepfm", task, seed=0).double().eval()
with torch.no_grad():
    for param in deepfm64.parameters():  # random weights everywhere: every term counts
        param.normal_(std=0.1)
fm64 = build_model("fm", task, seed=1).double().eval()
shared = {k: v for k, v in deepfm64.state_dict().items() if not k.startswith("dnn.")}
fm64.load_state_dict(shared)  # strict: exactly FM's parameters, w0, linear, embedding
print("copied into FM:", sorted(shared))

ctx = task.context(test_ex[:64])
ctx.val = ctx.val.double()
all_items = torch.arange(task.num_items)
rng = np.random.default_rng(0)
candidates = torch.from_numpy(rng.integers(0, task.num_items, (64, 5)))
with torch.no_grad():
    before = (deepfm64(ctx, all_items) - fm64(ctx, all_items)).abs().max()
    deepfm64.dnn.output.weight.zero_()
    deepfm64.dnn.output.bias.zero_()
    gap_all = (deepfm64(ctx, all_items) - fm64(ctx, all_items)).abs().max()
    gap_cand = (deepfm64(ctx, candidates) - fm64(ctx, candidates)).abs().max()
print(f"max |DeepFM - FM|: {before:.3f} with the DNN on; {gap_all:.1e} (all movies) "
      f"and {gap_cand:.1e} (candidates) with its output layer at zero")
assert before > 1e-3 and gap_all < 1e-10 and gap_cand < 1e-10

# %% [markdown]
# **The split first layer is the MLP on the concatenation.** A naive version builds
# $\mathbf{z}_0 = [\mathbf{e}_1; \ldots; \mathbf{e}_m]$ for each of 8 contexts × 1,682 movies
# and applies the full $\mathbf{W}_1$; it must give the deep component's scores, and so must
# DeepFM minus the same model with $y_{\mathrm{DNN}}$ switched off.

# %%
check = build_model("deepfm", task, seed=0).double().eval()
with torch.no_grad():
    for param in check.parameters():
        param.normal_(std=0.1)
    ctx8 = task.context(test_ex[:8])
    ctx8.val = ctx8.val.double()
    movies = check.items(all_items)
    z0_c = check.embedding.fields(ctx8, m_c).flatten(-2)      # (8, m_C k)
    z0_m = check.embedding.fields(movies, m_m).flatten(-2)    # (1682, m_M k)
    z0 = torch.cat([z0_c[:, None].expand(-1, task.num_items, -1),
                    z0_m[None].expand(8, -1, -1)], -1)        # (8, 1682, m k)
    w1 = torch.cat([check.dnn.context.weight, check.dnn.item.weight], 1)  # W_1
    naive = check.dnn.head(z0 @ w1.T + check.dnn.context.bias).squeeze(-1)
    split = check.dnn(z0_c, z0_m).squeeze(-1)
    # y_DNN inside the model: DeepFM minus the same model with y_DNN switched off
    y_all = check(ctx8, all_items)
    check.dnn.output.weight.zero_()
    check.dnn.output.bias.zero_()
    y_dnn = y_all - check(ctx8, all_items)
print(f"z_0 per pair {tuple(z0.shape)}: "
      f"max |naive - split| = {(naive - split).abs().max():.1e}, max |naive - y_DNN in "
      f"DeepFM| = {(naive - y_dnn).abs().max():.1e}")
assert torch.allclose(naive, split, rtol=0, atol=1e-10)
assert torch.allclose(naive, y_dnn, rtol=0, atol=1e-10)

# %% [markdown]
# ### The setting the comparison trains, and where it departs from the paper
#
# DeepFM has three tuning trials, like every trained model of the book, each trained with
# seed 0 under the comparison's budget and scored on the whole validation set: its anchor setting
# (the model's defaults) at its learning rate and at half of it, and its paper's setting.
# Its card, generated from the tuning record that training reads:

# %% tags=["remove-input"]
dfm_card = card("deepfm")
v = dfm_card.values
display(Markdown(dfm_card.markdown()))

# %% tags=["remove-input"]
paper_setting = SPACES["deepfm"][dfm_card.paper]
paper_hidden, paper_dropout = tuple(paper_setting["hidden"]), paper_setting["dropout"]
dfm_hidden, dfm_dropout, dfm_k = tuple(v["hidden"]), v["dropout"], v["embed_dim"]
anchor_hidden = tuple(inspect.signature(DeepFM).parameters["hidden"].default)  # default
paper_won = dfm_card.chosen == dfm_card.paper
wd_hidden = tuple(card("wide_deep").value("hidden"))
display(Markdown(
    f"The paper's setting, {layers(paper_hidden)} with dropout {paper_dropout:g}, "
    + ("is the trial chosen: DeepFM trains with the paper's network."
       if paper_won else
       f"was tried and not chosen: DeepFM trains with {layers(dfm_hidden)} and dropout "
       f"{dfm_dropout:g} (the trial `{dfm_card.chosen}`).")))
show_table([
    ("deep layers", f"{layers(paper_hidden)}, ReLU", f"{layers(dfm_hidden)}, ReLU"),
    ("dropout", f"{paper_dropout:g}",
     f"{dfm_dropout:g} (after every hidden layer, as in the paper)"),
    ("shape", "constant width (best in their study)",
     f"constant width, {len(dfm_hidden)} layers"),
    ("optimiser", "Adam", f"Adam, learning rate {v['lr']:g}"
     + (" (varied by the trials)" if "lr" in dfm_card.tuned else "")),
    ("embeddings", "shared by FM and DNN, learned from scratch",
     f"the same, k = {dfm_k}"),
])

# %% [markdown]
# (The paper's "dropout" is the probability of *keeping* a unit; at 0.5 the two readings
# agree. Its hyper-parameter study found keep probabilities 0.6–0.9 best.)
#
# Width has a price when ranking all movies: every layer after the (split) first one, and the
# output unit, is paid once per (context, movie) pair. The anchor's widths against the
# paper's:

# %%
def per_pair_cost(hidden: tuple[int, ...]) -> int:
    """Multiply-adds per (context, movie) pair after the split first layer."""
    return sum(a * b for a, b in zip(hidden, hidden[1:], strict=False)) + hidden[-1]


cost_anchor, cost_paper = per_pair_cost(anchor_hidden), per_pair_cost(paper_hidden)
cost_wd = per_pair_cost(wd_hidden)  # chapter 04's Wide & Deep
print(f"multiply-adds per pair: {cost_anchor:,} with the anchor's "
      f"{layers(anchor_hidden)}, {cost_wd:,} for Wide & Deep's {layers(wd_hidden)}, "
      f"{cost_paper:,} with the paper's {layers(paper_hidden)} "
      f"({cost_paper / cost_anchor:.0f}x)")

# %% [markdown]
# Does that factor show up in the clock? Rank the same test contexts against all movies with
# an (untrained) DeepFM of each width; the time does not depend on the weights.

# %%
timed = subsample(test_ex, 8 if quick else 64)
seconds = {}
for label, hidden in (("anchor", anchor_hidden), ("paper", paper_hidden)):
    model = build_model("deepfm", task, seed=0, embed_dim=dfm_k, hidden=hidden)
    rank_examples(model, task, timed[:4])  # warm-up
    start = time.perf_counter()
    rank_examples(model, task, timed)
    seconds[label] = time.perf_counter() - start
    print(f"{label}, {layers(hidden)}: {count_parameters(model.dnn):,} "
          f"parameters in the deep component, {seconds[label]:.2f} s for {len(timed)} "
          f"contexts x {task.num_items:,} movies")
assert all(s > 0 for s in seconds.values())

# %% tags=["remove-input"]
n_test = len(test_ex)
n_valid = current().budget.valid_limit or len(task.examples("valid"))
anchor, paper = (seconds[label] / len(timed) for label in ("anchor", "paper"))
display(Markdown(
    f"Measured here ({torch.get_num_threads()} thread(s), {len(timed)} contexts): "
    f"ranking one context against every movie takes {anchor * 1e3:.0f} ms with "
    f"{layers(anchor_hidden)} and {paper * 1e3:.0f} ms with {layers(paper_hidden)}, "
    f"{paper / anchor:.0f} times as long. Extrapolated, the {n_test:,} test contexts "
    f"would take about {anchor * n_test / 60:.1f} min against "
    f"{paper * n_test / 60:.0f} min, and the {n_valid:,} validation contexts ranked "
    f"after every training epoch for early stopping about {anchor * n_valid:.0f} s "
    f"against {paper * n_valid / 60:.1f} min. "
    + ("The trials paid that price and the paper's width won on validation."
       if paper_won else
       "The trials paid that price once, and the paper's width did not win on "
       "validation.")
    + f" {len(anchor_hidden)} layers of {anchor_hidden[0]} cost "
    + ("the same per pair as" if cost_anchor == cost_wd else
       "a different amount per pair from")
    + f" Wide & Deep's {layers(wd_hidden)} ({cost_anchor:,} against {cost_wd:,} "
    "multiply-adds)."
))

# %% [markdown]
# ## Training
#
# Every model of this chapter is the comparison's seed-0 model: `featint.training.trained`
# trains it once per machine under the comparison's budget and its own setting, and reads it
# back from the model cache afterwards, so this chapter, [chapter 08](08_comparison.ipynb) and
# every other chapter share the very same FM, Wide & Deep and DeepFM. Beside DeepFM: MF (the
# `user` and `movie` fields only, the ladder's top rung), FM (DeepFM without its deep
# component) and Wide & Deep (the deep component beside a linear model with hand-made
# crosses). In quick mode the budget is cut to a smoke test (its sizes print below): the
# numbers are then only smoke checks.

# %%
print("budget:", describe())
if quick:
    print("quick mode:", current().sizes.describe())
models, histories = {}, {}
for name in ("mf", "fm", "wide_deep", "deepfm"):
    models[name], histories[name] = trained(name, task, progress=False)
    print(f"{name}: {count_parameters(models[name]):,} parameters, kept epoch "
          f"{histories[name].best_epoch} of {len(histories[name].epochs)}")
deepfm = models["deepfm"].eval()
print(f"deepfm: {count_parameters(deepfm.dnn):,} of its parameters in the deep "
      "component")

# %%
plot_histories(histories)
plt.show()

# %% tags=["remove-input"]
NAMES = {"random": "random", "popular": "most popular", "markov": "Markov",
         "itemknn": "ItemKNN", "mf": "MF", "fm": "FM", "wide_deep": "Wide & Deep",
         "deepfm": "DeepFM"}


def dropout_of(model: torch.nn.Module) -> float:
    """The largest dropout rate in a model (0 without dropout)."""
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    return max(rates, default=0.0)


cap = current().sizes.epochs if quick else current().budget.epochs
lines = []
for name, history in histories.items():
    ran, best = len(history.epochs), history.best_epoch
    how = ("quick mode" if quick else "stopped early" if ran < cap
           else "reached the epoch cap")
    lines.append(f"{NAMES[name]} kept epoch {best} of {ran} ({how})")
with_dropout = [NAMES[n] for n, m in models.items() if dropout_of(m) > 0]
without = [NAMES[n] for n, m in models.items() if dropout_of(m) == 0]
at_cap = any(len(h.epochs) == h.best_epoch == cap for h in histories.values())
dropout_text = (
    f"{names_text(with_dropout)} "
    f"measure{'s its' if len(with_dropout) == 1 else ' their'} training loss with "
    f"dropout on, {names_text(without)} without, so"
    if with_dropout and without else "so")
display(Markdown(
    "; ".join(lines) + f". Training losses are not alike: {dropout_text} compare the "
    "models on the validation MRR (dropout off for every model), not on the loss."
    + (" A model that kept its last epoch at the cap might still have improved with "
       "more epochs; every model gets the same cap." if at_cap and not quick else "")
))

# %% [markdown]
# ## Test results
#
# The test set against all movies, beside the baseline ladder of
# [the protocol](../book/protocol.md): random scores, most popular, Markov (the last movie's
# successors), ItemKNN (movies that co-occur with the history), then MF, FM, Wide & Deep and
# DeepFM. Each metric comes with its 95% bootstrap interval over test examples.

# %%
results = evaluate_all(task, models)
results_table(results)

# %%
plot_results(results)
plt.show()

# %% [markdown]
# These are one seed's numbers. The comparison trains every model with three seeds; its
# numbers go beside them:

# %%
spread = seed_spread(results, ["mf", "fm", "wide_deep", "deepfm"])
display(spread)

# %% tags=["remove-input"]
comparison, _ = load_comparison()
rungs = ["popular", "markov", "itemknn", "mf"]
standing = {}
for rung in rungs:
    standing.setdefault(verdict(comparison, "deepfm", rung), []).append(NAMES[rung])
display(Markdown(
    "On seed 0, DeepFM ranks the true next movie in the top 10 for "
    f"{results['deepfm'].metrics['hr@10']:.1%} of the test examples (HR@10 "
    f"{value_text(results['deepfm'], 'hr@10')}). Over the comparison's seeds, paired "
    "over test examples with training noise included and Holm over every pair "
    "([chapter 08](08_comparison.ipynb)), DeepFM on HR@10 is "
    + "; ".join(f"{how} {names_text(names)}" for how, names in standing.items())
    + " (random scores are not in the comparison's test)."
    + (" (Quick mode: this chapter's numbers come from a smoke test; the verdicts come "
       "from the comparison's record.)" if quick else "")
))

# %% [markdown]
# ## DeepFM against Wide & Deep, head to head
#
# The two models differ in one thing: what sits beside the MLP. Wide & Deep has a linear model
# on the raw features and four hand-made crosses; DeepFM has an FM on the raw features,
# sharing its embeddings with the MLP. Separate intervals are a blunt tool here: both models
# rank the *same* test examples, and most of the variation between examples (some targets are
# easy for everyone) is shared. The comparison's test pairs the two on each test example
# (per example: hit@10 is 1 when the rank is at most 10, the reciprocal rank is
# $1/\mathrm{rank}$), averages each model over its seeds, adds each model's spread over seeds
# to the uncertainty, and corrects for every pair of the comparison (Holm), so the interval
# below is at the level its pair was tested at. The same for DeepFM against FM and MF:

# %%
rows = []
for metric in ("hr@10", "mrr"):
    result = comparison.pairwise(metric)
    for other in ("wide_deep", "fm", "mf"):
        row = result.pair("deepfm", other)
        sign = 1.0 if row["a"] == "deepfm" else -1.0   # DeepFM minus the other
        lo, hi = sorted((sign * row["lo"], sign * row["hi"]))
        rows.append({"DeepFM minus": NAMES[other], "metric": metric,
                     "difference": sign * row["difference"], "lo": lo, "hi": hi,
                     "tested at": row["level"], "separated": bool(row["separated"])})
paired = pd.DataFrame(rows)
paired.round(4)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8), layout="constrained")
for ax, (metric, part) in zip(axes, paired.groupby("metric", sort=False), strict=True):
    y = np.arange(len(part))
    ax.errorbar(part["difference"], y, capsize=4, fmt="o", color="C0",
                xerr=[part["difference"] - part["lo"], part["hi"] - part["difference"]])
    ax.axvline(0, color="grey", lw=0.8)
    ax.xaxis.set_major_locator(plt.MaxNLocator(5))
    ax.set_yticks(y, [f"DeepFM − {n}" for n in part["DeepFM minus"]])
    ax.invert_yaxis()
    ax.set(xlabel=f"difference in test {metric.upper()}, every seed (Holm level)",
           title=f"{metric.upper()}: right of 0 favours DeepFM")
plt.show()

# %% tags=["remove-input"]
display(Markdown(
    "Head to head over the comparison's seeds: on HR@10 DeepFM is "
    f"{verdict_text(comparison, 'deepfm', 'wide_deep')}, on MRR "
    f"{verdict_text(comparison, 'deepfm', 'wide_deep', 'mrr')}. Against FM it is "
    f"{verdict_text(comparison, 'deepfm', 'fm')} on HR@10 and "
    f"{verdict_text(comparison, 'deepfm', 'fm', 'mrr')} on MRR. Exercise 4 sets these "
    "intervals beside the ones seed 0 alone would give."))

# %% [markdown]
# ## Which component does the work?
#
# The logit of DeepFM is a sum, so it splits exactly: $y_{\mathrm{FM}}$ is DeepFM with its
# output layer at zero, $y_{\mathrm{DNN}} = \hat{y} - y_{\mathrm{FM}}$. For a sample of test
# contexts, three questions per component, each over the movies $R$ the user has not rated
# yet (the ones ranking sorts):
#
# - **spread**: the standard deviation of the component over $R$ (a component that gives
#   every movie the same score ranks nothing; a term that is the same for every movie, like
#   $w_0$ or the context-only pairs of $y_{\mathrm{FM}}$, adds no spread);
# - **lift**: the target's value of the component minus its mean over $R$ (positive: the
#   component pushes the true next movie above the average one);
# - **rank alone**: the target's rank when the movies are sorted by that component only.
#
# Spread and lift are in logit units, the same for both, because the two logits are added.
# A component switched off in a jointly trained model is not a model trained alone: the two
# learned together, and each may lean on the other. The `fm` row of the test results above is
# the FM trained alone.

# %%
@torch.no_grad()
def components(model: DeepFM, ex: np.ndarray, batch_size: int = 256):
    """Per example: spread over R and lift of the target for y_FM and y_DNN, and
    the rank of the target under y_FM alone, y_DNN alone and y_hat."""
    fm_only = copy.deepcopy(model).eval()  # the same model with y_DNN switched off
    fm_only.dnn.output.weight.zero_()
    fm_only.dnn.output.bias.zero_()
    rows, ranks = [], {"y_FM alone": [], "y_DNN alone": [], "y_hat = y_FM + y_DNN": []}
    for part in np.array_split(ex, max(1, len(ex) // batch_size)):
        context = task.context(part)
        y_hat = model(context, all_items)
        y_fm = fm_only(context, all_items)
        y_dnn = y_hat - y_fm
        target, seen = torch.from_numpy(task.target[part]), task.seen_before(part)
        for name, y in zip(ranks, (y_fm, y_dnn, y_hat), strict=True):
            ranks[name].append(rank_of_target(y, target, seen).numpy())
        keep = (~seen).double()  # R: movies not rated before t (the target is in R)
        row = {}
        for name, y in (("FM", y_fm.double()), ("DNN", y_dnn.double())):
            mean = (y * keep).sum(1) / keep.sum(1)
            var = ((y - mean[:, None]) ** 2 * keep).sum(1) / keep.sum(1)
            row[f"spread {name}"] = var.sqrt().numpy()
            row[f"lift {name}"] = (y.gather(1, target[:, None])[:, 0] - mean).numpy()
        rows.append(pd.DataFrame(row))
    alone = {}
    for name, parts in ranks.items():
        r = np.concatenate(parts)
        alone[name] = Evaluation(r, ex, metrics(r), bootstrap(r))
    return pd.concat(rows, ignore_index=True), alone


def median_interval(values, draws: int = 2000, seed: int = 0):
    """Median and its 95% percentile-bootstrap interval over the examples."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    medians = np.median(values[rng.integers(0, len(values), (draws, len(values)))], 1)
    return float(np.median(values)), *np.percentile(medians, [2.5, 97.5])


sample = subsample(test_ex, 1000 if quick else 5000)
parts, alone = components(deepfm, sample)
assert np.isfinite(parts.to_numpy()).all()
wider = (parts["spread DNN"] > parts["spread FM"]).astype(float)
summary = {
    "mean": {c: mean_interval(parts[c]) for c in parts},
    "median": {c: median_interval(parts[c]) for c in parts},
    "share of contexts above 0": {c: mean_interval((parts[c] > 0).astype(float))
                                  for c in ("lift FM", "lift DNN")},
}
summary["share of contexts above 0"]["spread DNN > spread FM"] = mean_interval(wider)
summary["median"]["spread DNN − spread FM"] = median_interval(
    parts["spread DNN"] - parts["spread FM"])
pd.DataFrame({stat: {c: "{:.3f} [{:.3f}, {:.3f}]".format(*x) for c, x in cells.items()}
              for stat, cells in summary.items()}).fillna("")

# %%
results_table(alone)

# %% tags=["hide-input"]
fig, ax = plt.subplots(1, 3, figsize=(15, 4.3), layout="constrained")
bins = np.linspace(0, parts[["spread FM", "spread DNN"]].to_numpy().max(), 40)
for name, color in (("FM", "C0"), ("DNN", "C1")):
    ax[0].hist(parts[f"spread {name}"], bins=bins, alpha=0.6, color=color,
               label=f"$y_{{\\mathrm{{{name}}}}}$")
    ax[0].axvline(parts[f"spread {name}"].median(), color=color, ls="--", lw=1)
ax[0].set(xlabel="std of the component over the unrated movies (logit units)",
          ylabel="test contexts",
          title="How much each component varies (dashed: medians)")
fig.legend(*ax[0].get_legend_handles_labels(), loc="outside upper left", ncols=2)
ax[1].scatter(parts["lift FM"], parts["lift DNN"], s=3, alpha=0.3, color="C0")
ax[1].axhline(0, color="grey", lw=0.8)
ax[1].axvline(0, color="grey", lw=0.8)
lim = np.percentile(np.abs(parts[["lift FM", "lift DNN"]].to_numpy()), 99.5)
ax[1].set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal",
          xlabel="lift of the target by $y_{\\mathrm{FM}}$ (logit units)",
          ylabel="lift of the target by $y_{\\mathrm{DNN}}$ (logit units)",
          title="Who lifts the true next movie?")
plot_results(alone, metrics=("hr@10",), axes=ax[2])
ax[2].set(title="Test HR@10 ranking by one component, 95% interval")
plt.show()

# %% tags=["remove-input"]
shares = summary["share of contexts above 0"]
share, share_lo, share_hi = shares["spread DNN > spread FM"]
mean = summary["mean"]
median = summary["median"]
gap, gap_lo, gap_hi = median["spread DNN − spread FM"]
if share_lo > 0.5:
    typical = "y_DNN varies more than y_FM in most contexts"
elif share_hi < 0.5:
    typical = "y_FM varies more than y_DNN in most contexts"
else:
    typical = "neither component varies more in most contexts"
mean_more = ("y_DNN" if mean["spread DNN"][1] > mean["spread FM"][2] else "y_FM"
             if mean["spread FM"][1] > mean["spread DNN"][2] else None)
median_more = "y_DNN" if gap_lo > 0 else "y_FM" if gap_hi < 0 else None
if mean_more and median_more and mean_more != median_more:
    reading = (f"The mean spread says {mean_more} moves the scores more, the typical "
               f"context says {median_more}: a minority of contexts where {mean_more} "
               "varies far more pulls its mean up. Neither component can be called the "
               "one that moves the scores more.")
elif mean_more and mean_more == median_more:
    reading = (f"Mean and median agree: {mean_more} moves the scores more.")
else:
    reading = ("The intervals of the means or of the median difference do not single "
               "out one component as moving the scores more.")
ranked = pairwise_of(alone, metric="hr@10")
total = "y_hat = y_FM + y_DNN"
display(Markdown(
    f"On {len(sample):,} test contexts of seed 0's DeepFM, y_DNN varies more over the "
    f"unrated movies than y_FM in {share:.0%} [{share_lo:.0%}, {share_hi:.0%}] of "
    f"them: {typical}. Median spread: y_FM {median['spread FM'][0]:.2f} "
    f"[{median['spread FM'][1]:.2f}, {median['spread FM'][2]:.2f}], y_DNN "
    f"{median['spread DNN'][0]:.2f} [{median['spread DNN'][1]:.2f}, "
    f"{median['spread DNN'][2]:.2f}], the median of y_DNN's minus y_FM's {gap:+.2f} "
    f"[{gap_lo:+.2f}, {gap_hi:+.2f}]; mean spread: y_FM {mean['spread FM'][0]:.2f} "
    f"[{mean['spread FM'][1]:.2f}, {mean['spread FM'][2]:.2f}], y_DNN "
    f"{mean['spread DNN'][0]:.2f} [{mean['spread DNN'][1]:.2f}, "
    f"{mean['spread DNN'][2]:.2f}] logit units (95% intervals). {reading} y_FM lifts "
    "the target above the average unrated movie in "
    f"{summary['share of contexts above 0']['lift FM'][0]:.0%} of the contexts (mean "
    f"lift {mean['lift FM'][0]:+.2f}), y_DNN in "
    f"{summary['share of contexts above 0']['lift DNN'][0]:.0%} (mean lift "
    f"{mean['lift DNN'][0]:+.2f}). Ranking by the sum is "
    f"{verdict_text(ranked, total, 'y_FM alone')} and "
    f"{verdict_text(ranked, total, 'y_DNN alone')} (one trained model, paired "
    f"over these test examples, Holm over the {ranked.num_pairs} pairs). Shared "
    "embeddings mean the two are not independent experts: the FM term shapes the "
    "vectors the MLP reads, and the MLP's gradients move the vectors the FM multiplies."
    + (" (Quick mode: smoke test only.)" if quick else "")
))

# %% [markdown]
# ## What DeepFM leaves open
#
# The deep component still sees the embeddings only through a concatenation: it has to learn
# with generic layers that *products* of embeddings matter, while the FM part, which knows it,
# sums those products into a single number. NFM {cite}`he2017nfm`
# ([chapter 06](06_nfm.ipynb)) keeps the products as a vector (Bi-Interaction pooling) and
# feeds *that* to the MLP; DLRM {cite}`naumov2019dlrm` ([chapter 07](07_dlrm.ipynb)) feeds
# the MLP the dot products of every pair of fields.
#
# ## Summary
#
# - DeepFM adds an MLP to an FM, both reading **one** embedding table: $\hat{y} =
#   y_{\mathrm{FM}} + y_{\mathrm{DNN}}$, the sigmoid applied once to the sum.
# - With the MLP's output layer at zero it *is* the FM; the split first layer makes ranking
#   all movies a broadcast addition per pair, but every further layer is still paid per pair.
# - Width is paid per (context, movie) pair when ranking: the cells above measure the paper's
#   layers against the anchor's, and the card says which the trials chose.
# - Because the logit is a sum, each component's share of a ranking can be read off exactly;
#   a component switched off is still not a model trained alone, and a mean over contexts
#   can say another thing than the typical context.
# - Compare DeepFM with Wide & Deep or FM through the comparison's pairwise test over every
#   seed; one seed's difference is not a finding.
#
# ## Exercises
#
# **1. By hand: the paper's width.** With $k = 16$, $m_C = 14$ context fields and $m_M = 3$
# movie fields, how many parameters does the deep component have with the paper's 400-400-400
# layers (weights and biases, output layer included)? How many multiply-adds of it are paid
# per (context, movie) pair when ranking, after the split first layer?
#
# :::{admonition} Solution
# :class: dropdown
#
# The input has $(14 + 3) \cdot 16 = 272$ entries. First layer: $272 \cdot 400 + 400 =
# 109{,}200$ (in featint split into $224 \cdot 400 + 400$ for the context and $48 \cdot 400$
# for the movie). Two more hidden layers: $2 \cdot (400 \cdot 400 + 400) = 320{,}800$. Output:
# $400 + 1 = 401$. In all $430{,}401$, against the $25{,}857$ of 64-64-64. Per pair, the split
# first layer costs only an addition; the rest costs $2 \cdot 400 \cdot 400 + 400 = 320{,}400$
# multiply-adds, against $2 \cdot 64 \cdot 64 + 64 = 8{,}256$. The next cell checks it.
# :::

# %% tags=["hide-input"]
wide = build_model("deepfm", task, seed=0, embed_dim=16, hidden=(400, 400, 400))
narrow = build_model("deepfm", task, seed=0, embed_dim=16, hidden=(64, 64, 64))
assert count_parameters(wide.dnn) == 430_401 and count_parameters(narrow.dnn) == 25_857
assert per_pair_cost((400, 400, 400)) == 320_400
assert per_pair_cost((64, 64, 64)) == 8_256
print(f"deep component: {count_parameters(wide.dnn):,} parameters (400-400-400), "
      f"{count_parameters(narrow.dnn):,} (64-64-64)")

# %% [markdown]
# **2. Code: the deep component alone.** Write `DeepOnly`, a DeepFM whose score is
# $y_{\mathrm{DNN}}$ only (no $w_0$, no $w_i$, no pairs), check on random weights that it
# equals DeepFM minus DeepFM with its output layer at zero, and train it beside FM and DeepFM
# on the synthetic task of `featint.synthetic` (one planted pairwise interaction, gender ×
# genre), with the same settings for all three and three seeds each. Compare test HR@10 with
# the pairwise test. What does the FM component add there?

# %% tags=["hide-input"]
class DeepOnly(DeepFM):
    """DeepFM without its FM component: y_hat = y_DNN."""

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        movie = self.items(items)
        e_c = self.embedding.fields(context, self.num_ctx_fields).flatten(-2)
        e_m = self.embedding.fields(movie, self.num_item_fields).flatten(-2)
        return self.dnn(e_c, e_m).squeeze(-1)


syn = build_task(synthetic_movielens(seed=0))
print("synthetic task:", syn.counts())

# the check: same weights, DeepOnly = DeepFM - (DeepFM with y_DNN off)
full = build_model("deepfm", syn, seed=0).eval()
only = DeepOnly(syn.schema, syn.item_features()).eval()
with torch.no_grad():
    for param in full.parameters():
        param.normal_(std=0.1)
    only.load_state_dict(full.state_dict())
    syn_ctx = syn.context(syn.examples("test")[:16])
    syn_items = torch.arange(syn.num_items)
    off = copy.deepcopy(full)  # y_DNN switched off
    off.dnn.output.weight.zero_()
    off.dnn.output.bias.zero_()
    y_dnn_syn = full(syn_ctx, syn_items) - off(syn_ctx, syn_items)
    gap = only(syn_ctx, syn_items) - y_dnn_syn
assert gap.abs().max() < 1e-5

settings = dict(epochs=30, lr=1e-2, patience=5, progress=False, verbose=False)
seeds = (0, 1, 2)
print("settings for all three:", settings, "seeds", seeds)
syn_runs = {"fm": [], "deepfm": [], "deep only": []}
for name in syn_runs:
    for seed in seeds:
        if name == "deep only":
            torch.manual_seed(seed)
            model = DeepOnly(syn.schema, syn.item_features())
        else:
            model = build_model(name, syn, seed=seed)
        fit(model, syn, seed=seed, **settings)
        syn_runs[name].append(evaluate(model, syn, progress=False))
syn_test = pairwise({name: np.stack([per_example(ev.ranks, "hr@10") for ev in runs])
                     for name, runs in syn_runs.items()}, "hr@10")
display(results_table({f"{name} (seed 0)": runs[0] for name, runs in syn_runs.items()}))
syn_test.pairs[["a", "b", "difference", "lo", "hi", "separated"]].round(4)

# %% tags=["remove-input"]
fm_part = verdict(syn_test, "deepfm", "deep only")
added = {
    "better than": "the FM component adds what the planted signal is made of: a "
    "gender × genre pair is one dot product for an FM, while the MLP alone has to "
    "build that product out of ReLUs on the concatenated embeddings",
    "not separated from": "the test does not show that the FM component adds anything "
    "there: the MLP alone learns the planted pair as well, as far as three seeds on a "
    "few hundred test examples can tell",
    "worse than": "the FM component does not help there: DeepFM ranks worse than its "
    "MLP alone",
}[fm_part]
display(Markdown(
    ":::{admonition} Solution\n:class: dropdown\nThe cell above is one solution. Over "
    f"three seeds each, on the synthetic task's {syn_test.num_examples:,} test "
    f"examples (training noise included, Holm over the {syn_test.num_pairs} pairs), "
    f"DeepFM is {verdict_text(syn_test, 'deepfm', 'deep only')}, FM is "
    f"{verdict_text(syn_test, 'fm', 'deep only')}, and DeepFM is "
    f"{verdict_text(syn_test, 'deepfm', 'fm')}. So {added}. On MovieLens, the FM "
    "row of the ladder against DeepFM asks the opposite question: what does the MLP "
    "add to the FM?\n:::"))

# %% [markdown]
# **3. Think: switched off is not trained alone.** The section "Which component does the
# work?" ranks with $y_{\mathrm{FM}}$ alone, from the jointly trained DeepFM. Why is that not
# the same as the FM trained alone (the `fm` row of the ladder)? Could $y_{\mathrm{FM}}$ alone
# rank worse than the FM trained alone, even though it has the same form?
#
# The cell below sets the two side by side on the sample of test contexts above.

# %% tags=["hide-input"]
fm_alone_ranks = rank_examples(models["fm"], task, sample)
fm_versus = {"y_FM of DeepFM": alone["y_FM alone"],
             "FM trained alone": Evaluation(fm_alone_ranks, sample,
                                            metrics(fm_alone_ranks),
                                            bootstrap(fm_alone_ranks, 200))}
switched = pairwise_of(fm_versus, metric="hr@10")
results_table(fm_versus)

# %% tags=["remove-input"]
display(Markdown(
    ":::{admonition} Solution\n:class: dropdown\nThe two components were trained on "
    "their *sum*: each only had to make up for what the other got wrong, so neither "
    "was pushed to rank well by itself. The shared vectors $\\mathbf{v}_i$ were also "
    "shaped by the MLP's gradients, for the MLP's use. So $y_{\\mathrm{FM}}$ of a "
    "DeepFM is an FM fitted to a residual, with vectors chosen for two purposes; it "
    "can rank worse than an FM trained alone, although both have the same form and "
    f"parameters. Here, on {len(sample):,} test contexts, $y_{{\\mathrm{{FM}}}}$ of "
    "seed 0's DeepFM is "
    f"{verdict_text(switched, 'y_FM of DeepFM', 'FM trained alone')} (one trained "
    "model each, paired over the contexts). To ask what the deep component adds, "
    "compare *trained* models, DeepFM against FM, each over several seeds.\n:::"))

# %% [markdown]
# **4. Code: what one seed leaves out.** The intervals of the head-to-head section come from
# every seed of the comparison. Compute the paired test of DeepFM against Wide & Deep and FM
# on this chapter's seed-0 models alone (`pairwise_of` over the test results above) and set
# its intervals beside the comparison's. Which is wider, and why? What would you need before
# writing "DeepFM beats Wide & Deep on this task"?

# %% tags=["hide-input"]
one_seed = pairwise_of(results, ["deepfm", "wide_deep", "fm"])
every_seed = comparison.pairwise("hr@10")
widths = pd.DataFrame({
    label: {f"DeepFM − {NAMES[other]}": float(result.pair("deepfm", other)["hi"]
                                              - result.pair("deepfm", other)["lo"])
            for other in ("wide_deep", "fm")}
    for label, result in (("seed 0 alone", one_seed), ("every seed", every_seed))})
widths.round(4).rename_axis("width of the HR@10 interval")

# %% tags=["remove-input"]
wider = {other: widths.loc[f"DeepFM − {NAMES[other]}", "every seed"]
         > widths.loc[f"DeepFM − {NAMES[other]}", "seed 0 alone"]
         for other in ("wide_deep", "fm")}
order = ("wider over every seed for both pairs" if all(wider.values()) else
         "narrower over every seed for both pairs" if not any(wider.values()) else
         "wider over every seed for one pair, narrower for the other")
seed_range = {n: spread.loc[n, [c for c in spread.columns if c.startswith("seed ")]]
              for n in ("deepfm", "wide_deep")}
display(Markdown(
    ":::{admonition} Solution\n:class: dropdown\nThe cell above is one solution. On "
    f"seed 0 alone DeepFM is {verdict_text(one_seed, 'deepfm', 'wide_deep')} and "
    f"{verdict_text(one_seed, 'deepfm', 'fm')}; over every seed it is "
    f"{verdict_text(comparison, 'deepfm', 'wide_deep')} and "
    f"{verdict_text(comparison, 'deepfm', 'fm')}. The intervals are {order}. Three "
    "things pull in different directions. A seed-0 interval covers one source of "
    "variation, the choice of test examples, for one trained model of each kind; "
    "averaging each example over the seeds tends to shrink that part. But training is "
    "a source of its own: another seed gives other initial weights, negatives, dropout "
    "masks and batch order, and moves a model on every test example at once (DeepFM's "
    f"seeds run from {seed_range['deepfm'].min():.4f} to "
    f"{seed_range['deepfm'].max():.4f} in HR@10, Wide & Deep's from "
    f"{seed_range['wide_deep'].min():.4f} to {seed_range['wide_deep'].max():.4f}); the "
    "comparison adds each model's spread over its seeds, and tests every pair of its "
    "models at Holm's stricter level, and both widen the interval. A seed-0 interval "
    "says nothing about the training noise, however narrow it is. Before the claim you "
    "need several seeds per model, a difference that holds across them under a test "
    "that counts every pair stated, and the same care in tuning both (the same number "
    "of trials here). "
    + ("This chapter's seed-0 models are quick-mode smoke tests, ranked on fewer test "
       "examples: in a full run they are the comparison's seed 0." if quick else "")
    + "\n:::"))

# %% [markdown]
# ## Paper vs. here
#
# What {cite:t}`guo2017deepfm` measured, against what this chapter measures (its own numbers,
# seed 0, and the comparison's verdicts over every seed):

# %% tags=["remove-input"]
n_fit = len(task.examples("fit"))
show_table([
    ("data", "Criteo (45 million click records, random 90/10 split) and a Huawei App "
     "Store data set (7 days of clicks for training, the next day for testing)",
     f"MovieLens 100K: {n_fit:,} fit examples, {m_c + m_m} fields, each user's ratings "
     "split in time"),
    ("task", "click-through rate: will this ad / app be clicked?",
     f"which of {task.num_items:,} movies comes next?"),
    ("metric", "AUC and logloss of the click probability",
     "full ranking of all unrated movies: HR@10, MRR, mean rank"),
    ("negatives", "real non-clicks",
     f"{v['num_negatives']} movies sampled uniformly per positive"),
    ("headline", "DeepFM above LR, FM, FNN, three PNNs and Wide & Deep (with LR or FM "
     "as its wide part) in AUC and logloss on both; Criteo AUC 0.8007, logloss 0.45083",
     f"DeepFM test HR@10 {value_text(results['deepfm'], 'hr@10')}, MRR "
     f"{value_text(results['deepfm'], 'mrr')} (seed 0)"),
    ("DeepFM vs Wide & Deep", "better (Wide & Deep's wide part on raw features)",
     f"{verdict_text(comparison, 'deepfm', 'wide_deep')}, every seed"),
    ("DeepFM vs FM", "better",
     f"{verdict_text(comparison, 'deepfm', 'fm')}, every seed"),
    ("deep layers, dropout", f"{layers(paper_hidden)}, ReLU, dropout {paper_dropout:g}",
     f"{layers(dfm_hidden)}, ReLU, dropout {dfm_dropout:g} (the trial "
     f"`{dfm_card.chosen}`)"),
    ("optimiser", "Adam", f"Adam, lr {v['lr']:g}, k = {dfm_k}, at most "
     f"{v['epochs']} epochs with early stopping"),
])

# %% [markdown]
# Why the two may differ: the paper predicts clicks on ads and apps, with millions of examples
# and dozens of raw fields, where high-order crosses of sparse fields are plentiful and each is
# seen often; here a much smaller data set (the table gives its size) and a ranking task judged
# against every movie, with fewer examples from which high-order patterns could be learned.
# AUC on real negatives and top-10 hits in a full ranking reward different things.
# The paper's Wide & Deep had no hand-made crosses (its point is that DeepFM needs none); this
# book's Wide & Deep has four. Every model here got the same small search (three trials; the
# card above lists DeepFM's) and the same epoch cap, not a tuning per data set. And here a
# difference counts only when the comparison's pairwise test finds it over every seed
# ([chapter 08](08_comparison.ipynb)), not on one run.
