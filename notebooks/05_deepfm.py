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
from featint.budget import Budget, model_hparams
from featint.cache import trained
from featint.chapter import (
    evaluate_all,
    load_comparison,
    plot_histories,
    plot_results,
    results_table,
    seed_spread,
)
from featint.evaluate import (
    Evaluation,
    bootstrap,
    evaluate,
    metrics,
    quick,
    rank_examples,
    rank_of_target,
    subsample,
)
from featint.layers import ContextItemMLP
from featint.models import MODELS, build_model, count_parameters
from featint.models.deepfm import DeepFM
from featint.show import source
from featint.stats import paired_bootstrap, paired_difference, per_example
from featint.synthetic import synthetic_movielens
from featint.task import Features
from featint.train import fit


def show_table(rows: list[tuple[str, str, str]]) -> None:
    """Display rows of (what, paper, here) as a table, no cell cut short."""
    table = pd.DataFrame(rows, columns=["what", "paper", "here"]).set_index("what")
    table.index.name = None
    with pd.option_context("display.max_colwidth", None):
        display(table)


def words(items: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def layers(hidden: tuple[int, ...]) -> str:
    """Hidden layer widths as the paper writes them: 400-400-400."""
    return "-".join(map(str, hidden))


NAMES = {"random": "random", "popular": "most popular", "markov": "Markov",
         "itemknn": "ItemKNN", "mf": "MF", "fm": "FM", "wide_deep": "Wide & Deep",
         "deepfm": "DeepFM"}
print("quick mode:", quick(), "| torch threads:", torch.get_num_threads())

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
      f"max |naive - split| = {(naive - split).abs().max():.1e}, "
      f"max |naive - y_DNN in DeepFM| = {(naive - y_dnn).abs().max():.1e}")
assert torch.allclose(naive, split, rtol=0, atol=1e-10)
assert torch.allclose(naive, y_dnn, rtol=0, atol=1e-10)

# %% [markdown]
# ### Settings, and where featint departs from the paper
#
# The comparison of [chapter 08](08_comparison.ipynb) builds every model with its defaults
# (the paper's settings where the task allows) and the settings recorded in
# `featint.budget`; this chapter uses the very same models. For DeepFM:

# %% tags=["hide-input"]
budget = Budget()


def setting(name: str, arg: str):
    """Constructor argument ``arg`` of model ``name`` as the comparison builds it."""
    chosen = model_hparams(name, budget)
    default = inspect.signature(MODELS[name].__init__).parameters[arg].default
    return chosen.get(arg, default)


dfm_hidden, dfm_dropout = setting("deepfm", "hidden"), setting("deepfm", "dropout")
dfm_k = setting("deepfm", "embed_dim")
wd_hidden = setting("wide_deep", "hidden")
show_table([
    ("deep layers", "400-400-400, ReLU", f"{layers(dfm_hidden)}, ReLU"),
    ("dropout", "0.5", f"{dfm_dropout:g} (after every hidden layer, as in the paper)"),
    ("shape", "constant width (best in their study)",
     f"constant width, {len(dfm_hidden)} layers"),
    ("optimiser", "Adam",
     f"Adam, learning rate {budget.lr_for('deepfm'):g} (the comparison's budget)"),
    ("embeddings", "shared by FM and DNN, learned from scratch",
     f"the same, k = {dfm_k}"),
])

# %% [markdown]
# (The paper's "dropout" is the probability of *keeping* a unit; at 0.5 the two readings
# agree. Its hyper-parameter study found keep probabilities 0.6–0.9 best.)
#
# Width is the deviation. Every layer after the (split) first one, and the output unit, is
# paid once per (context, movie) pair when ranking all movies:

# %%
def per_pair_cost(hidden: tuple[int, ...]) -> int:
    """Multiply-adds per (context, movie) pair after the split first layer."""
    return sum(a * b for a, b in zip(hidden, hidden[1:], strict=False)) + hidden[-1]


paper_hidden = (400, 400, 400)
cost_here, cost_paper = per_pair_cost(dfm_hidden), per_pair_cost(paper_hidden)
cost_wd = per_pair_cost(wd_hidden)  # chapter 04's Wide & Deep
print(f"multiply-adds per pair: {cost_here:,} here, {cost_wd:,} for Wide & Deep's "
      f"{layers(wd_hidden)}, {cost_paper:,} with the paper's {layers(paper_hidden)} "
      f"({cost_paper / cost_here:.0f}x)")

# %% [markdown]
# Does that factor show up in the clock? Rank the same test contexts against all movies with
# an (untrained) DeepFM of each width; the time does not depend on the weights.

# %%
timed = subsample(test_ex, 8 if quick() else 64)
seconds = {}
for label, hidden in (("here", dfm_hidden), ("paper", paper_hidden)):
    model = build_model("deepfm", task, seed=0, embed_dim=dfm_k, hidden=hidden)
    rank_examples(model, task, timed[:4])  # warm-up
    start = time.perf_counter()
    rank_examples(model, task, timed)
    seconds[label] = time.perf_counter() - start
    print(f"{label}, {layers(hidden)}: {count_parameters(model.dnn):,} "
          f"parameters in the deep component, {seconds[label]:.2f} s for "
          f"{len(timed)} contexts x {task.num_items:,} movies")
assert all(s > 0 for s in seconds.values())

# %% tags=["remove-input"]
n_test, n_valid = len(test_ex), budget.valid_limit or len(task.examples("valid"))
here, paper = (seconds[label] / len(timed) for label in ("here", "paper"))
same_cost = cost_here == cost_wd
display(Markdown(
    f"Measured here ({torch.get_num_threads()} thread(s), {len(timed)} contexts): "
    f"ranking one context against every movie takes {here * 1e3:.0f} ms with "
    f"{layers(dfm_hidden)} and {paper * 1e3:.0f} ms with {layers(paper_hidden)}, "
    f"{paper / here:.0f} times as long. Extrapolated, the {n_test:,} test contexts "
    f"would take about {here * n_test / 60:.1f} min against "
    f"{paper * n_test / 60:.0f} min, and the {n_valid:,} validation contexts ranked "
    f"after every training epoch for early stopping about {here * n_valid:.0f} s "
    f"against {paper * n_valid / 60:.1f} min. "
    "That is why featint keeps the paper's depth and constant shape but not its width; "
    f"{len(dfm_hidden)} layers of {dfm_hidden[0]} cost "
    + ("the same per pair as" if same_cost else "a different amount per pair from")
    + f" Wide & Deep's {layers(wd_hidden)} ({cost_here:,} against {cost_wd:,} "
    "multiply-adds)."
))

# %% [markdown]
# ## Training
#
# Every model of this chapter is the comparison's seed-0 model: `featint.cache.trained` trains
# it once per machine under the comparison's budget and reads it back afterwards, so this
# chapter, [chapter 08](08_comparison.ipynb) and every other chapter share the very same FM,
# Wide & Deep and DeepFM. Beside DeepFM: MF (the `user` and `movie` fields only, the ladder's
# top rung), FM (DeepFM without its deep component) and Wide & Deep (the deep component beside
# a linear model with hand-made crosses). In quick mode every model sees 4,096 examples for
# 2 epochs: the numbers are then only smoke checks.

# %%
print("budget:", budget.describe())
models, histories = {}, {}
for name in ("mf", "fm", "wide_deep", "deepfm"):
    models[name], histories[name] = trained(name, task, progress=False)
    hparams = model_hparams(name, budget)
    print(f"{name}: {count_parameters(models[name]):,} parameters, "
          f"lr {budget.lr_for(name):g}, constructor arguments {hparams}")
deepfm = models["deepfm"].eval()
print(f"deepfm: {count_parameters(deepfm.dnn):,} of its parameters in the deep "
      "component")

# %%
plot_histories(histories)
plt.show()

# %% tags=["remove-input"]
def dropout_of(model: torch.nn.Module) -> float:
    """The largest dropout rate in a model (0 without dropout)."""
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    return max(rates, default=0.0)


lines = []
for name, history in histories.items():
    ran, best = len(history.epochs), history.best_epoch
    how = ("stopped early" if ran < budget.epochs and not quick() else
           "reached the epoch cap" if not quick() else "quick mode")
    lines.append(f"{NAMES[name]} kept epoch {best} of {ran} ({how})")
with_dropout = [NAMES[n] for n, m in models.items() if dropout_of(m) > 0]
without = [NAMES[n] for n, m in models.items() if dropout_of(m) == 0]
at_cap = any(len(h.epochs) == h.best_epoch == budget.epochs for h in histories.values())
dropout_text = (
    f"{words(with_dropout)} measure{'s its' if len(with_dropout) == 1 else ' their'} "
    f"training loss with dropout on, {words(without)} without, so"
    if with_dropout and without else "so")
display(Markdown(
    "; ".join(lines) + f". Training losses are not alike: {dropout_text} compare the "
    "models on the validation MRR (dropout off for every model), not on the loss."
    + (" A model that kept its last epoch at the cap might still have improved with "
       "more epochs; every model gets the same cap." if at_cap else "")
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
# results (when `results/` holds a finished run under the current protocol) go beside them:

# %%
spread = seed_spread(results, ["mf", "fm", "wide_deep", "deepfm"])
display(spread)


# %% tags=["remove-input"]
def interval_verdict(a: str, b: str, metric: str = "hr@10") -> str:
    """How the 95% intervals of models a and b on ``metric`` lie (higher is better)."""
    a_lo, a_hi = results[a].intervals[metric]
    b_lo, b_hi = results[b].intervals[metric]
    if a_lo > b_hi:
        return "above"
    if a_hi < b_lo:
        return "below"
    return "overlapping"


ladder_names = ["random", "popular", "markov", "itemknn", "mf"]
groups = {}
for rung in ladder_names:
    groups.setdefault(interval_verdict("deepfm", rung), []).append(NAMES[rung])
phrases = {"above": "lies above that of {}", "below": "lies below that of {}",
           "overlapping": "overlaps that of {} (no difference can be read)"}
dfm_hr, (dfm_lo, dfm_hi) = results["deepfm"].metrics["hr@10"], results[
    "deepfm"].intervals["hr@10"]
display(Markdown(
    f"On seed 0, DeepFM ranks the true next movie in the top 10 for {dfm_hr:.1%} of "
    f"the test examples (95% interval {dfm_lo:.1%} to {dfm_hi:.1%}). "
    "Its HR@10 interval " + "; it ".join(
        phrases[k].format(words(v)) for k, v in groups.items()) + "."
    + (" (Quick mode: a smoke test on a few thousand examples, not a result.)"
       if quick() else "")
))

# %% [markdown]
# ## DeepFM against Wide & Deep, head to head
#
# The two models differ in one thing: what sits beside the MLP. Wide & Deep has a linear model
# on the raw features and four hand-made crosses; DeepFM has an FM on the raw features,
# sharing its embeddings with the MLP. Separate intervals are a blunt tool here: both models
# rank the *same* test examples, and most of the variation between examples (some targets are
# easy for everyone) is shared. The paired bootstrap resamples test examples and keeps each
# example's two results together, which gives an interval for the *difference* itself
# (per example: hit@10 is 1 when the rank is at most 10, the reciprocal rank is
# $1/\mathrm{rank}$). The same for DeepFM against FM and against MF:

# %%
rows = []
for other in ("wide_deep", "fm", "mf"):
    a, b = results["deepfm"], results[other]
    assert np.array_equal(a.examples, b.examples)  # the same test examples, paired
    for metric in ("hr@10", "mrr"):
        diff, lo, hi = paired_bootstrap(per_example(a.ranks, metric),
                                        per_example(b.ranks, metric), num_samples=2000)
        rows.append({"DeepFM minus": NAMES[other], "metric": metric,
                     "difference": diff, "lo": lo, "hi": hi})
paired = pd.DataFrame(rows)
paired.round(4)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(10, 2.6), layout="constrained")
for ax, (metric, part) in zip(axes, paired.groupby("metric", sort=False), strict=True):
    y = np.arange(len(part))
    ax.errorbar(part["difference"], y, capsize=4, fmt="o",
                xerr=[part["difference"] - part["lo"], part["hi"] - part["difference"]])
    ax.axvline(0, color="grey", lw=0.8)
    ax.xaxis.set_major_locator(plt.MaxNLocator(5))
    ax.set_yticks(y, [f"DeepFM − {n}" for n in part["DeepFM minus"]])
    ax.invert_yaxis()
    ax.set(xlabel=f"difference in test {metric.upper()} (seed 0), 95% paired interval",
           title=f"{metric.upper()}: right of 0 favours DeepFM")
plt.show()


# %% tags=["remove-input"]
def paired_row(other: str, metric: str) -> tuple[float, float, float]:
    """DeepFM minus ``other`` on ``metric``: the difference and its paired interval."""
    mine = (paired["DeepFM minus"] == NAMES[other]) & (paired["metric"] == metric)
    return tuple(paired.loc[mine, ["difference", "lo", "hi"]].iloc[0])


def paired_sentence(other: str, metric: str) -> str:
    """One sentence on DeepFM minus ``other`` from its paired interval."""
    d, lo, hi = paired_row(other, metric)
    numbers = f"{d:+.4f} (95% paired interval {lo:+.4f} to {hi:+.4f})"
    label = metric.upper()
    if lo > 0 or hi < 0:
        higher = "a higher" if lo > 0 else "a lower"
        return (f"seed 0's DeepFM has {higher} {label} than seed 0's {NAMES[other]} on "
                f"these test examples, a difference of {numbers}")
    return (f"DeepFM minus {NAMES[other]} in {label} is {numbers}: the interval "
            "contains zero, so these test examples do not tell the two apart")


def over_seeds(a: str, b: str, metric: str = "hr@10"):
    """a minus b on ``metric`` over the comparison's seeds and test examples (paired by
    example, each model's spread over seeds added), or None without usable results."""
    comparison, _ = load_comparison()
    if comparison is None:
        return None
    values, examples = [], []
    for name in (a, b):
        seeds = sorted(r["seed"] for r in comparison.runs if r["model"] == name)
        runs = [comparison.ranks(name, seed) for seed in seeds]
        if not runs:
            return None
        values.append(np.stack([per_example(ranks, metric) for ranks, _ in runs]))
        examples += [ex for _, ex in runs]
    if any(not np.array_equal(ex, examples[0]) for ex in examples):
        return None
    return paired_difference(values[0], values[1])


def seed_sentence(a: str, b: str) -> str:
    """What the comparison's seeds say about a and b (HR@10), if it is there."""
    if "mean over seeds" not in spread.columns:
        return ("The other seeds are not available here (see the note above the seed "
                "table), so this chapter cannot say whether the difference holds.")
    seeds = [c for c in spread.columns if c.startswith("seed ")]
    va, vb = spread.loc[a, seeds].dropna(), spread.loc[b, seeds].dropna()
    text = (f"Over the comparison's {len(va)} seeds, {NAMES[a]}'s HR@10 runs from "
            f"{va.min():.4f} to {va.max():.4f} and {NAMES[b]}'s from {vb.min():.4f} to "
            f"{vb.max():.4f}. ")
    found = over_seeds(a, b)
    if found is None:
        return text + ("The per-example ranks of those seeds are not available, so "
                       "no interval over seeds can be given here.")
    d, lo, hi = found
    text += (f"Pairing the test examples and adding each model's spread over its seeds "
             f"(both kinds of noise), {NAMES[a]} minus {NAMES[b]} in HR@10 is {d:+.4f} "
             f"(95% interval {lo:+.4f} to {hi:+.4f}): ")
    if lo > 0 or hi < 0:
        side = "above" if lo > 0 else "below"
        return text + (f"over these seeds {NAMES[a]} is {side} {NAMES[b]} on this "
                       "task, beyond both kinds of noise.")
    return text + "the interval contains zero, so the two cannot be told apart."


display(Markdown(
    "Head to head: " + paired_sentence("wide_deep", "hr@10") + "; "
    + paired_sentence("wide_deep", "mrr") + ". Against FM, "
    + paired_sentence("fm", "hr@10") + ".\n\n"
    "These intervals cover one source of variation only: which test examples were "
    "drawn, for one trained model of each kind. Training another seed changes the "
    "initial weights, the negatives, the dropout masks and the batch order, and moves "
    "both models; a seed-0 difference is not a finding without the other seeds. "
    + seed_sentence("deepfm", "wide_deep")
))

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


sample = subsample(test_ex, 1000 if quick() else 5000)
parts, alone = components(deepfm, sample)
assert np.isfinite(parts.to_numpy()).all()
parts.describe().loc[["mean", "50%", "std"]].round(3)

# %%
results_table(alone)

# %% tags=["hide-input"]
fig, ax = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
bins = np.linspace(0, parts[["spread FM", "spread DNN"]].to_numpy().max(), 40)
for name in ("FM", "DNN"):
    ax[0].hist(parts[f"spread {name}"], bins=bins, alpha=0.6,
               label=f"$y_{{\\mathrm{{{name}}}}}$")
ax[0].set(xlabel="std of the component over the unrated movies (logit units)",
          ylabel="test contexts", title="How much each component varies")
ax[0].legend()
ax[1].scatter(parts["lift FM"], parts["lift DNN"], s=3, alpha=0.3)
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
hits = {name: (ev.ranks <= 10).astype(float) for name, ev in alone.items()}
both = hits["y_hat = y_FM + y_DNN"]
vs_alone = {}
for name in ("y_FM alone", "y_DNN alone"):
    vs_alone[name] = paired_bootstrap(both, hits[name], num_samples=2000)
mean_spread = parts[["spread FM", "spread DNN"]].mean()
share_wider = (parts["spread DNN"] > parts["spread FM"]).mean()
lift_pos = {name: (parts[f"lift {name}"] > 0).mean() for name in ("FM", "DNN")}
mean_lift = {name: parts[f"lift {name}"].mean() for name in ("FM", "DNN")}


def sum_vs(name: str) -> str:
    """Ranking by the sum against ranking by one component, HR@10, paired."""
    d, lo, hi = vs_alone[name]
    where = ("above" if lo > 0 else "below" if hi < 0 else "not distinguishable from")
    return f"{where} {name} (HR@10 {d:+.4f}, paired interval {lo:+.4f} to {hi:+.4f})"


wider = "y_DNN" if mean_spread["spread DNN"] > mean_spread["spread FM"] else "y_FM"
display(Markdown(
    f"On {len(sample):,} test contexts of seed 0's DeepFM: y_DNN varies more over the "
    f"unrated movies than y_FM in {share_wider:.0%} of them (mean spread "
    f"{mean_spread['spread DNN']:.2f} against {mean_spread['spread FM']:.2f} logit "
    f"units: {wider} moves the scores more). y_FM lifts the "
    f"target above the average unrated movie in {lift_pos['FM']:.0%} of the contexts "
    f"(mean lift {mean_lift['FM']:+.2f}), y_DNN in {lift_pos['DNN']:.0%} "
    f"(mean lift {mean_lift['DNN']:+.2f}). Ranking by the sum is "
    f"{sum_vs('y_FM alone')} and {sum_vs('y_DNN alone')}. Shared embeddings mean the "
    "two are not independent experts: the FM term shapes the vectors the MLP reads, "
    "and the MLP's gradients move the vectors the FM multiplies."
    + (" (Quick mode: smoke test only.)" if quick() else "")
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
# ## Paper vs. here
#
# What {cite:t}`guo2017deepfm` measured, against what this chapter measures (its own numbers,
# seed 0):

# %% tags=["remove-input"]
def cell(name: str, metric: str = "hr@10") -> str:
    """A metric of this chapter's test results with its 95% interval."""
    lo, hi = results[name].intervals[metric]
    return f"{results[name].metrics[metric]:.4f} [{lo:.4f}, {hi:.4f}]"


def short(other: str) -> str:
    """DeepFM minus ``other`` in HR@10 with its paired interval, in a few words."""
    d, lo, hi = paired_row(other, "hr@10")
    word = "higher" if lo > 0 else "lower" if hi < 0 else "no difference readable"
    return f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]: {word}"


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
     f"{budget.num_negatives} movies sampled uniformly per positive"),
    ("headline", "DeepFM above LR, FM, FNN, three PNNs and Wide & Deep (with LR or FM "
     "as its wide part) in AUC and logloss on both; Criteo AUC 0.8007, logloss 0.45083",
     f"DeepFM test HR@10 {cell('deepfm')}, MRR {cell('deepfm', 'mrr')} (seed 0)"),
    ("DeepFM vs Wide & Deep", "better (Wide & Deep's wide part on raw features)",
     f"HR@10 difference {short('wide_deep')} (seed 0, paired)"),
    ("DeepFM vs FM", "better", f"HR@10 difference {short('fm')} (seed 0, paired)"),
    ("deep layers, dropout", "400-400-400, ReLU, dropout 0.5",
     f"{layers(dfm_hidden)}, ReLU, dropout {dfm_dropout:g}"),
    ("optimiser", "Adam", f"Adam, lr {budget.lr_for('deepfm'):g}, k = {dfm_k}, at most "
     f"{budget.epochs} epochs with early stopping"),
])

# %% [markdown]
# Why the two may differ: the paper predicts clicks on ads and apps, with millions of examples
# and dozens of raw fields, where high-order crosses of sparse fields are plentiful and each is
# seen often; here a much smaller data set (the table gives its size) and a ranking task judged
# against every movie, with fewer examples from which high-order patterns could be learned.
# AUC on real negatives and top-10 hits in a full ranking reward different things.
# The paper's Wide & Deep had no hand-made crosses (its point is that DeepFM needs none); this
# book's Wide & Deep has four. The deep part here is narrower (for the ranking cost measured
# above), and every model here got the same small search (three settings from its own
# space, the paper's among them) and the same epoch cap, not a tuning per data set. And here a difference counts only when it holds
# over seeds ([chapter 08](08_comparison.ipynb)), not on one run.
#
# ## Summary
#
# - DeepFM adds an MLP to an FM, both reading **one** embedding table: $\hat{y} =
#   y_{\mathrm{FM}} + y_{\mathrm{DNN}}$, the sigmoid applied once to the sum.
# - With the MLP's output layer at zero it *is* the FM; the split first layer makes ranking
#   all movies a broadcast addition per pair, but every further layer is still paid per pair.
# - Width is paid per (context, movie) pair when ranking: the cell above measures the paper's
#   400-400-400 against the narrower layers used here.
# - Because the logit is a sum, each component's share of a ranking can be read off exactly;
#   a component switched off is still not a model trained alone.
# - Compare DeepFM with Wide & Deep or FM through intervals: a paired interval for seed 0,
#   then the other seeds; one seed's difference is not a finding.
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
wide = build_model("deepfm", task, seed=0, embed_dim=16, hidden=paper_hidden)
narrow = build_model("deepfm", task, seed=0, embed_dim=16, hidden=(64, 64, 64))
assert count_parameters(wide.dnn) == 430_401 and count_parameters(narrow.dnn) == 25_857
assert per_pair_cost(paper_hidden) == 320_400 and per_pair_cost((64, 64, 64)) == 8_256
print(f"deep component: {count_parameters(wide.dnn):,} parameters (400-400-400), "
      f"{count_parameters(narrow.dnn):,} (64-64-64)")

# %% [markdown]
# **2. Code: the deep component alone.** Write `DeepOnly`, a DeepFM whose score is
# $y_{\mathrm{DNN}}$ only (no $w_0$, no $w_i$, no pairs), check on random weights that it
# equals DeepFM minus DeepFM with its output layer at zero, and train it beside FM and DeepFM
# on the synthetic task of `featint.synthetic` (one planted pairwise interaction, gender ×
# genre), with the same settings for all three. Compare test HR@10 with intervals. What does
# the FM component add there?

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

settings = dict(epochs=30, lr=1e-2, patience=5, seed=0, progress=False, verbose=False)
print("settings for all three:", settings)
syn_results = {}
for name in ("fm", "deepfm", "deep only"):
    if name == "deep only":
        torch.manual_seed(0)
        model = DeepOnly(syn.schema, syn.item_features())
    else:
        model = build_model(name, syn, seed=0)
    fit(model, syn, **settings)
    syn_results[name] = evaluate(model, syn, progress=False)
results_table(syn_results)

# %% [markdown]
# Read the table with its intervals: the synthetic test set has only a few hundred examples,
# so they are wide. The planted signal is a pair (gender, genre), exactly what an FM term
# models with one dot product; the MLP has to build the same product out of ReLUs on the
# concatenated embeddings. On MovieLens, the FM row of the ladder against DeepFM asks the
# opposite question: what does the MLP add to the FM?
#
# **3. Think: switched off is not trained alone.** The section "Which component does the
# work?" ranks with $y_{\mathrm{FM}}$ alone, from the jointly trained DeepFM. Why is that not
# the same as the FM trained alone (the `fm` row of the ladder)? Could $y_{\mathrm{FM}}$ alone
# rank worse than the FM trained alone, even though it has the same form?
#
# :::{admonition} Solution
# :class: dropdown
#
# The two components were trained on their *sum*: each only had to make up for what the
# other got wrong, so neither was pushed to rank well by itself. The shared vectors
# $\mathbf{v}_i$ were also shaped by the MLP's gradients, for the MLP's use. So $y_{\mathrm{FM}}$
# of a DeepFM is an FM fitted to a residual, with vectors chosen for two purposes; it can rank
# worse than an FM trained alone, although both have the same form and parameters. To ask what
# the deep component adds, compare *trained* models, DeepFM against FM, each over several seeds.
# :::
#
# **4. Think: what a paired interval leaves out.** The paired interval of DeepFM minus
# Wide & Deep above might exclude zero. Which sources of variation does it cover, which not?
# What would you need before writing "DeepFM beats Wide & Deep on this task"?
#
# :::{admonition} Solution
# :class: dropdown
#
# It covers the choice of test examples: another sample of users and positions, ranked by the
# *same two trained models*. It does not cover training: another seed gives other initial
# weights, negatives, dropout masks and batch order, and both models move, often by more than
# the width of a test-set interval. Nor does it cover choices such as the learning rate, the
# width or the epoch cap. Before the claim you need several seeds per model (the comparison
# trains three), a difference that holds across them (for example an interval over seeds and
# examples, as [chapter 08](08_comparison.ipynb) reports), and the same care in tuning both.
# :::
