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

# %%

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
# # 08 · The comparison
#
# Each chapter so far explained one model and trained it on the next-movie task of
# [chapter 00](00_data.ipynb): [FM](01_fm.ipynb) {cite}`rendle2010fm`,
# [FFM](02_ffm.ipynb) {cite}`juan2016ffm`, [AFM](03_afm.ipynb) {cite}`xiao2017afm`,
# [Wide & Deep](04_wide_deep.ipynb) {cite}`cheng2016wide`, [DeepFM](05_deepfm.ipynb)
# {cite}`guo2017deepfm`, [NFM](06_nfm.ipynb) {cite}`he2017nfm` and [DLRM](07_dlrm.ipynb)
# {cite}`naumov2019dlrm`, with logistic regression on the same features (`linear`) as the
# model without interactions. This chapter puts them side by side, under rules that make the
# comparison fair:
#
# - **one task**: [protocol v2](../book/protocol.md), full filtered ranking of all 1,682
#   movies for each of the 20,187 test examples; the test set is never used to choose
#   anything;
# - **one budget**: the same embedding size, epoch cap, batches, negatives and early stopping
#   for every model, printed below from the results file;
# - **one tuning budget**: every model with something to set (learning rate, regularisation,
#   its paper's options) gets the same number of trials from a search space written for it
#   (`featint/tuning.py`), its paper's recommended setting among them, each scored on
#   *validation*; the best is the setting every seed trains with. The chapters train their
#   seed-0 models with the very same budget and settings, so their numbers are this
#   chapter's seed 0;
# - **several seeds**: every model is trained with seeds 0, 1 and 2; the tables show the mean
#   over seeds, the spread over seeds (training noise) and a 95% bootstrap interval over test
#   examples (test-set noise);
# - **the baseline ladder** of chapter 00: random, most popular, Markov, ItemKNN (their
#   settings chosen on validation) and MF, matrix factorisation on user and movie alone. A
#   model that does not climb above them has not earned its complexity.
#
# The numbers are not computed in this notebook: `make run` (that is, `featint compare`)
# trains every registered model and writes `results/` (a JSON file with every run, a CSV
# leaderboard, the charts and the rank of every test example for every run). This notebook
# reads that folder; without usable results (none, unfinished, or of another protocol) it
# runs a *quick-mode* comparison of three models itself, a smoke test whose numbers mean
# nothing, and says so.

# %% tags=["hide-input"]
# %matplotlib inline
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from featint import build_task, load_movielens
from featint.chapter import load_comparison
from featint.compare import compare
from featint.evaluate import LABELS, METRICS, quick
from featint.report import (
    LADDER,
    hparams_text,
    ordered,
    pairwise_markdown,
    plot_metric,
    plot_pairwise,
    plot_trials,
    trials_table,
)
from featint.stats import pairwise, pooled_interval

print("quick mode:", quick())

# %% [markdown]
# ## The results file
#
# `results/results.json` holds the settings (protocol, models, seeds, budget), the machine
# (CPU, cores, torch version, date), one record per (model, seed) run (test metrics with
# their intervals, training time, epochs, best epoch, parameters, ranking time, the
# validation curve, and for a counting baseline every setting it tried on validation) and
# one aggregate per model. Results of another protocol are not read: they are not comparable
# with this book's task.

# %% tags=["hide-input"]
comparison, note = load_comparison()
print(note)
if comparison is None:
    print("Running `compare` here in QUICK MODE (2 epochs on 4096 examples, 2000 "
          "test examples, one seed, the untrained baselines, MF, linear and FM) into "
          "a temporary folder: a smoke test of this notebook, not results. For the "
          "comparison run `make run` and re-execute this notebook.")
    comparison = compare(["mf", "linear", "fm"], seeds=[0], quick=True, progress=False,
                         out_dir=tempfile.mkdtemp(prefix="featint-compare-"))

results = comparison.results
settings, machine = results["settings"], results["machine"]
aggregates, runs = comparison.aggregates, comparison.runs
full_results = not settings["quick"]
print(f"Protocol: {settings['protocol']}. Date {machine['date']}; {machine['cpu']}, "
      f"{machine['cores']} cores, torch {machine['torch']}, "
      f"device {machine['device']}.")
print(f"Models: {', '.join(settings['models'])}; seeds: {settings['seeds']}; "
      f"{settings['num_test_examples']:,} test examples.")
print(f"Budget: {settings['budget_text']}.")
if settings["hparams"]:
    print("Per-model constructor arguments (chosen on validation): "
          + hparams_text(settings["hparams"]))
chosen = {r["model"]: r["hparams"] for r in runs if r["model"] in ("markov", "itemknn")}
print("Counting baselines, settings chosen on validation: "
      + hparams_text(chosen))

# %% [markdown]
# ## The tuning budget
#
# `make tune` trains every setting of every model's search space with seed 0 under the
# budget above and ranks the whole validation set (8,289 examples) with the weights early
# stopping kept; a counting baseline is built from the fit period instead. Every trial is in
# `results/tuning/`, one file per model; `featint compare` trains with each model's best
# trial by validation MRR. Each row of the chart is one model's trials: a long row is a
# model whose result depends on how it is set up, which is a finding in itself.

# %% tags=["hide-input"]
trials = trials_table()
if trials.empty:
    print("No tuning trials on record (results/tuning): run `make tune`.")
else:
    counts = trials.groupby("model").size()
    print(f"{counts.iloc[0]} trials per model" if counts.nunique() == 1 else
          f"UNEQUAL: trials per model {counts.to_dict()}")
    fig, ax = plt.subplots(figsize=(8, 0.4 * trials["model"].nunique() + 1.4),
                           layout="constrained")
    plot_trials(trials, ax)
    ax.set_title("Every tuning trial, validation MRR (seed 0)")
    plt.show()

# %% tags=["hide-input"]
if not trials.empty:
    shown = trials.assign(mrr=trials["mrr"].round(4), hr10=trials["hr@10"].round(4),
                          paper=trials["paper"].map({True: "paper", False: ""}),
                          chosen=trials["chosen"].map({True: "✓", False: ""}))
    display(shown.set_index(["model", "setting"])[
        ["paper", "chosen", "mrr", "hr10", "best_epoch", "epochs"]])

# %% tags=["remove-input"]
if not trials.empty:
    spread = trials.groupby("model")["mrr"].agg(lambda v: v.max() - v.min())
    first = trials.groupby("model").head(1).set_index("model")
    changed = sorted(n for n in first.index if not first.loc[n, "chosen"])
    paper = trials[trials["paper"]]
    won = sorted(paper.loc[paper["chosen"], "model"])
    widest = spread.sort_values(ascending=False)
    # the noise of one seed: the spread over seeds of each trained model's best
    # validation MRR in the comparison (the early-stopping sample), median over models
    best_valid = pd.DataFrame([{"model": r["model"], "seed": r["seed"],
                                "mrr": max(row["valid_mrr"] for row in r["history"])}
                               for r in runs if r["history"]])
    seed_noise = best_valid.groupby("model")["mrr"].std().median()
    text = (
        f"Tuning changed the setting of {len(changed)} of {len(first)} models "
        f"({', '.join(changed) or 'none'}): the others kept the setting they had "
        "before tuning was equalised (each space's first). The paper's own setting won "
        f"for {', '.join(won) or 'no model'} of the {len(paper)} models whose paper "
        "gives one. The widest spread between a model's best and worst trial: "
        + ", ".join(f"{n} {v:.4f}" for n, v in widest.head(3).items())
        + " validation MRR. For scale, the seed alone moves a model's best validation "
        f"MRR by {seed_noise:.4f} (the median over models of the standard deviation "
        "over the comparison's seeds): trials closer than that were chosen by noise as "
        "much as by their setting.")
    display(Markdown(text))

# %% [markdown]
# ## The leaderboard
#
# One row per model, the ladder first, then the models in the order of the chapters. Each
# metric is the mean over seeds, `±` the standard deviation over seeds, and in brackets the
# 95% interval of that mean over test examples (a bootstrap that resamples the test examples
# once for all seeds, since every run ranks the same examples). Mean and median rank: lower
# is better; MRR, HR@10 (the target in the top 10) and NDCG@10: higher is better. The costs
# are means over seeds; training time includes the validation ranking after every epoch.

# %% tags=["hide-input"]
table = comparison.leaderboard()


def cell(row: pd.Series, metric: str) -> str:
    digits = 1 if "rank" in metric else 4
    text = f"{row[metric]:.{digits}f}"
    if pd.notna(row[f"{metric}_std"]) and row[f"{metric}_std"] > 0:
        text += f" ±{row[f'{metric}_std']:.{digits}f}"
    lo, hi = row[metric + "_lo"], row[metric + "_hi"]
    return text + f" [{lo:.{digits}f}, {hi:.{digits}f}]"


shown = pd.DataFrame({LABELS[m]: [cell(row, m) for _, row in table.iterrows()]
                      for m in METRICS}, index=table.index)
shown["params"] = table["params"].map("{:,}".format)
shown["train s"] = table["train_seconds"].round(0).astype(int)
shown["epochs (best)"] = (table["epochs"].map("{:.1f}".format) + " ("
                         + table["best_epoch"].map("{:.1f}".format) + ")")
shown["rank s"] = table["rank_seconds"].round(1)
display(shown)

# every number is there and every interval surrounds its mean
assert set(LADDER) - {"mf"} <= set(table.index)
for m in METRICS:
    assert np.isfinite(table[m]).all()
    assert ((table[f"{m}_lo"] <= table[m]) & (table[m] <= table[f"{m}_hi"])).all()
models = [n for n in table.index if n not in LADDER]
ladder = [n for n in LADDER if n in table.index]

# %% [markdown]
# The same numbers as bars: means over seeds, black dots the single seeds, error bars the 95%
# interval over test examples; the ladder in grey. Random guessing is left out of the charts
# (its mean rank, about half the unseen catalogue, would flatten every other bar) and noted
# under them.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(13, 0.42 * len(aggregates) + 1.8),
                         layout="constrained")
for ax, metric in zip(axes, ("hr@10", "mean_rank"), strict=True):
    plot_metric(aggregates, metric, ax, runs)
    ax.set_title(LABELS[metric])
plt.show()

# %% [markdown]
# ## How sure is an order? Every pair, tested
#
# A difference in the table can be noise, of two kinds: another test set would give other
# numbers (test-set noise), another seed another model (training noise). The comparison
# orders the models by **one metric, HR@10**, and tests that same metric. Since every run
# ranks the same test examples, two models are compared example by example, each averaged
# over its seeds; the uncertainty of the difference adds each model's spread over its seeds
# to the test-set noise, and a t distribution (with the few degrees of freedom three seeds
# give) turns it into a test (`featint.stats.pairwise`; its docstring has the formula).
# **Every pair** of models is tested, since a table invites a reader to compare any two,
# and Holm's correction over all the pairs keeps the chance of even one false separation
# at 5%. The result is a matrix (each cell: how much better the row is than the column,
# coloured where the data separate the two) and a **compact letter display**: two models
# that share a letter are not separated, two that share none are. Letters are not tiers:
# a model can share a letter with two models that are separated from each other.

# %%
ORDER_METRIC = "hr@10"
contenders = [n for n in table.index if n != "random"]
values = {n: comparison.per_example(n, ORDER_METRIC) for n in contenders}
found = pairwise(values, ORDER_METRIC)
cap = settings["budget"]["epochs"]
capped = sorted({r["model"] for r in runs
                 if r["kind"] == "model" and r["best_epoch"] == cap})
letter_table = pd.DataFrame({
    "letters": [found.letters[n] for n in found.order],
    "HR@10": [cell(table.loc[n], ORDER_METRIC) for n in found.order],
    "stopped by the epoch cap": ["yes" if n in capped else "" for n in found.order],
}, index=pd.Index(found.order, name="model"))
display(letter_table)

# %% tags=["hide-input"]
size = len(found.order)
fig, ax = plt.subplots(figsize=(0.55 * size + 3, 0.5 * size + 1.5),
                       layout="constrained")
plot_pairwise(found, ax)
plt.show()

# %% tags=["remove-input"]
top = found.best_group()
cap_text = (f"Stopped by the {cap}-epoch cap in at least one seed (best epoch = the "
            f"last one allowed): {', '.join(capped)}. Those models might still "
            "improve: they are compared at this budget, not at their best."
            if capped else
            f"Early stopping, not the {cap}-epoch cap, ended every run.")
display(Markdown(pairwise_markdown(found) + "\n\n" + cap_text))

# %% [markdown]
# ## What each architecture adds over the ladder
#
# The question a reader should ask of every model: what does it buy over the simple methods?
# For each model, the difference in HR@10 to each rung (model minus rung, mean over seeds),
# with its interval from the pairwise test above (these pairs are among the ones Holm's
# correction counted). A separated pair is marked ▲ (the model is better) or ▼ (worse); the
# rest is within the noise.

# %%
rungs = [n for n in ("popular", "markov", "itemknn", "mf") if n in values]
trained_models = [n for n in models if n in values]
over = {}
for name in trained_models:
    over[name] = {}
    for rung in rungs:
        test = found.pair(name, rung)  # test["a"] is the better of the two by mean
        ahead = test["a"] == name
        d = test["difference"] if ahead else -test["difference"]
        lo_d, hi_d = ((test["lo"], test["hi"]) if ahead
                      else (-test["hi"], -test["lo"]))
        mark = ("▲" if ahead else "▼") if test["separated"] else " "
        over[name][rung] = (d, lo_d, hi_d, mark)
adds = pd.DataFrame({
    f"vs {rung}": [f"{over[n][rung][3]} {over[n][rung][0]:+.4f} "
                   f"[{over[n][rung][1]:+.4f}, {over[n][rung][2]:+.4f}]"
                   for n in trained_models]
    for rung in rungs}, index=pd.Index(trained_models, name="Δ HR@10"))
display(adds)

# %% tags=["remove-input"]
sentences = []
for rung in rungs:
    above = [n for n in trained_models if over[n][rung][3] == "▲"]
    below = [n for n in trained_models if over[n][rung][3] == "▼"]
    level_text = (f"above {rung} beyond the noise: {', '.join(above) or 'none'}"
                  + (f"; below it: {', '.join(below)}" if below else ""))
    sentences.append(level_text)
why_linear = (
    " The linear model cannot do better than a single order for everybody: without "
    "interactions its score is a context part plus a movie part, and the context part "
    "is the same for every movie of a context, so it ranks the movies of *every* user "
    "in one fixed order, at best popularity.")
display(Markdown("Models " + "; ".join(sentences) + "."
                 + (why_linear if "linear" in trained_models else "")))
if full_results:
    interaction_models = [n for n in trained_models if n != "linear"]
    # every model with interactions climbs above most popular beyond the noise
    assert all(over[n]["popular"][3] == "▲" for n in interaction_models)

# %% [markdown]
# ## Against the seed article's ordering
#
# The article this project grew from {cite}`kumar2022sparse` ranked its models, by mean rank,
# as **AFM > FFM ≫ DeepFM > DLRM (simplified) > Wide & Deep > NFM > FM**. Its setting was not
# this protocol (its own split and features, its own training choices), so the orderings
# need not agree; where they do, the agreement survived a change of protocol, and where they
# do not, the question is whether featint's difference is larger than its noise. The text
# under the cell is generated from the results.

# %%
SEED_ARTICLE = ["afm", "ffm", "deepfm", "dlrm_simplified", "wide_deep", "nfm", "fm"]
common = [m for m in SEED_ARTICLE if m in aggregates]
ours = sorted(common, key=lambda m: aggregates[m]["mean"]["mean_rank"])
display(pd.DataFrame({
    "seed article": [SEED_ARTICLE.index(m) + 1 for m in common],
    "featint": [ours.index(m) + 1 for m in common],
    "featint mean rank": [round(aggregates[m]["mean"]["mean_rank"], 1) for m in common],
}, index=pd.Index(common, name="model")))


def kendall_tau(a: list[str], b: list[str]) -> tuple[float, int, int]:
    """Kendall's tau between two orderings of the same items, and the numbers of
    concordant and discordant pairs."""
    pos = {m: i for i, m in enumerate(b)}
    pairs = [(x, y) for i, x in enumerate(a) for y in a[i + 1:]]
    concordant = sum(pos[x] < pos[y] for x, y in pairs)
    discordant = len(pairs) - concordant
    return (concordant - discordant) / max(len(pairs), 1), concordant, discordant


# %% tags=["remove-input"]
if len(common) < 2:
    display(Markdown(f"Only {len(common)} of the seed article's models are in these "
                     "results, so the two orderings cannot be compared."))
else:
    tau, concordant, discordant = kendall_tau(common, ours)
    flipped = [(a, b) for i, a in enumerate(common) for b in common[i + 1:]
               if ours.index(a) > ours.index(b)]
    by_rank = pairwise({m: comparison.per_example(m, "mean_rank") for m in contenders},
                       "mean_rank")
    real, noise = [], []
    for a, b in flipped:  # a before b in the seed article, after b here
        test = by_rank.pair(a, b)  # b is ahead: the difference is a's rank minus b's
        text = (f"{a} vs {b} ({test['difference']:+.1f} "
                f"[{test['lo']:+.1f}, {test['hi']:+.1f}])")
        (real if test["separated"] else noise).append(text)
    display(Markdown(
        f"Of the {concordant + discordant} pairs among the {len(common)} models both "
        f"compare, featint orders {concordant} the way the seed article does and "
        f"{discordant} the other way (Kendall's tau {tau:+.2f}; +1 is the same order, "
        "-1 the reverse). For each reversed pair, the mean-rank difference (the seed "
        "article's winner minus featint's, over all seeds, with its interval from the "
        "pairwise test on mean rank, Holm over all its pairs): "
        f"beyond the noise for {', '.join(real) or 'none'}; "
        f"within it for {', '.join(noise) or 'none'}."))

# %% [markdown]
# ## Accuracy against cost
#
# What does each point of HR@10 cost? Parameters, training time (to the early stop,
# including the validation rankings) and the time to rank the whole test set, for the models
# and MF. Axes are logarithmic; the dashed lines are the best counting baseline and most
# popular.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained", sharey=True)
costs = {"params": "parameters", "train_seconds": "training time (s)",
         "rank_seconds": "full test ranking (s)"}
priced = [n for n in table.index if table.loc[n, "params"] > 0]
counting = [n for n in ("markov", "itemknn") if n in table.index]
for ax, (column, label) in zip(axes, costs.items(), strict=True):
    for name in priced:
        row = table.loc[name]
        ax.errorbar(row[column], row["hr@10"],
                    yerr=[[row["hr@10"] - row["hr@10_lo"]],
                          [row["hr@10_hi"] - row["hr@10"]]], fmt="o", capsize=3)
        ax.annotate(name, (row[column], row["hr@10"]), xytext=(5, 4),
                    textcoords="offset points", fontsize=8)
    ax.axhline(table.loc["popular", "hr@10"], color="0.5", linestyle="--", linewidth=1,
               label="most popular")
    if counting:
        best_count = max(counting, key=lambda n: table.loc[n, "hr@10"])
        ax.axhline(table.loc[best_count, "hr@10"], color="0.3", linestyle=":",
                   linewidth=1, label=f"{best_count} (best counting baseline)")
    ax.set_xscale("log")
    ax.margins(x=0.2)
    ax.set_xlabel(label)
axes[0].set_ylabel("HR@10 (mean over seeds, 95% interval)")
axes[0].legend(fontsize=8)
plt.show()

# %% tags=["remove-input"]
cheapest_top = min(top, key=lambda m: table.loc[m, "params"])
better = found.separated_from(cheapest_top)[1]
display(Markdown(
    "The smallest of the models not separated from the best on HR@10 is "
    f"{cheapest_top} ({table.loc[cheapest_top, 'params']:,} parameters, "
    f"{table.loc[cheapest_top, 'train_seconds']:.0f} s of training): "
    + (f"{', '.join(better)} {'is' if len(better) == 1 else 'are'} better beyond the "
       "noise." if better else
       "no model is better beyond the noise, so anything larger buys no accuracy "
       "this test set can see.")))

# %% [markdown]
# ## Memorisation or generalisation?
#
# Averages hide where a model wins. Wide & Deep's paper {cite}`cheng2016wide` names two
# abilities: *memorisation*, learning what was frequent in the training data, and
# *generalisation*, transferring to what was rare. The test examples are split below into
# four equal groups by how often the target movie was rated in the training period, and
# separately by how long the user's history was at that point. The charts show HR@10 in
# each group (mean over seeds, with its 95% interval over the group's examples), and the
# text names, per group, the model with the best mean and those the group's examples do
# not separate from it (every pair tested as above, on the group's examples alone), never a
# single winner inside the noise.

# %% tags=["hide-input"]
task = build_task(load_movielens())
examples = comparison.ranks(contenders[0], settings["seeds"][0])[1]
target_popularity = task.popularity()[task.target[examples]]
history_length = task.t[examples]


def group_labels(values: np.ndarray, unit: str) -> pd.Categorical:
    """Four groups of (about) equal size by quantiles of ``values``, labelled by
    range."""
    edges = np.unique(np.quantile(values, [0, 0.25, 0.5, 0.75, 1.0]))
    codes = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    names = [f"{int(lo)}–{int(hi) - 1 if i < len(edges) - 2 else int(hi)} {unit}"
             for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=False))]
    return pd.Categorical.from_codes(codes, names)


groupings = {
    "target movie's train ratings": group_labels(target_popularity, "ratings"),
    "user's history length": group_labels(history_length, "movies"),
}
shown_models = [n for n in ordered(contenders) if n != "linear"]
all_ranks = {n: np.stack([comparison.ranks(n, s)[0] for s in aggregates[n]["seeds"]])
             for n in shown_models}
fig, axes = plt.subplots(1, 2, figsize=(13, 4.4), layout="constrained", sharey=True)
group_tops = {}
for ax, (title, groups) in zip(axes, groupings.items(), strict=True):
    labels = list(groups.categories)
    x = np.arange(len(labels))
    width = 0.8 / len(shown_models)
    for i, name in enumerate(shown_models):
        mean_g, err = [], [[], []]
        for label in labels:
            mask = np.asarray(groups == label)
            ranks_g = all_ranks[name][:, mask]
            m = float((ranks_g <= 10).mean())
            lo_g, hi_g = pooled_interval(ranks_g, num_samples=200)["hr@10"]
            mean_g.append(m)
            err[0].append(m - lo_g)
            err[1].append(hi_g - m)
        colour = "0.6" if name in LADDER else f"C{i % 10}"
        ax.bar(x + (i - len(shown_models) / 2 + 0.5) * width, mean_g, width, yerr=err,
               color=colour, label=name, error_kw={"elinewidth": 0.6})
    counts = pd.Series(groups).value_counts().reindex(labels)
    ax.set_xticks(x, labels)
    ax.set(xlabel=f"{title} (test examples per group: {', '.join(map(str, counts))})",
           title=f"HR@10 by {title}")
    for label in labels:
        mask = np.asarray(groups == label)
        group_values = {n: (all_ranks[n][:, mask] <= 10).astype(float)
                        for n in shown_models}
        group_tops[(title, label)] = pairwise(group_values, "hr@10").best_group()
axes[0].set_ylabel("HR@10 (95% interval)")
axes[1].legend(fontsize=7, ncol=2)
plt.show()

# %% tags=["remove-input"]
lines = [f"- {title}, {label}: {', '.join(top_g)}"
         for (title, label), top_g in group_tops.items()]
by_target = groupings["target movie's train ratings"]
pop_by = {label: float((all_ranks["popular"][:, np.asarray(by_target == label)] <= 10)
                       .mean()) for label in by_target.categories}
rare_label, frequent_label = list(pop_by)[0], list(pop_by)[-1]
display(Markdown(
    "In each group, the model with the best mean, then those the group's examples do "
    "not separate from it:\n\n" + "\n".join(lines) + "\n\n"
    f"Most popular reaches HR@10 {pop_by[rare_label]:.4f} on the targets with the "
    f"fewest train ratings ({rare_label}) and {pop_by[frequent_label]:.4f} on those "
    f"with the most ({frequent_label}): popularity is memorisation and nothing else."))

# %% [markdown]
# ## Summary
#
# - One task (protocol v2), one budget, the same number of tuning trials for every model
#   (chosen on validation), three seeds, and the baseline ladder: every number above comes
#   from `results/`, written by `make tune` and `make run`, or from a cell of this notebook.
# - Models are ordered by one metric, HR@10, and tested on it with paired intervals that
#   hold both test-set and training noise; every pair is tested (Holm's correction over
#   all of them) and the letters show what the data cannot separate.
# - The counting baselines (Markov, ItemKNN) are the bar that matters: most popular is far
#   too low a bar for this task.
# - A model whose best epoch was the epoch cap is compared at this budget, not at its best.
# - Where a model wins depends on the users and movies: averages hide it.
#
# ## Exercises
#
# 1. *(by hand)* Two models have HR@10 0.150 and 0.140 over 20,000 test examples; their
#    hits agree on 95% of the examples. Roughly how large is the standard error of the
#    difference, and is 0.010 beyond the noise? (Hint: the difference of two paired hit
#    indicators is $-1$, 0 or $+1$.)
#
# :::{admonition} Solution
# :class: dropdown
# The per-example difference is non-zero on 5% of the examples; with $p_{+} - p_{-} = 0.010$
# and $p_{+} + p_{-} = 0.05$, its variance is about $0.05 - 0.01^2 \approx 0.0499$, so the
# standard error of the mean is $\sqrt{0.0499 / 20000} \approx 0.0016$: 0.010 is about six
# standard errors, beyond the test-set noise. Whether it survives the *training* noise
# depends on the spread over seeds, which is what the pairwise test above adds.
# :::
#
# 2. *(code)* Test every pair on MRR instead of HR@10. Do the models not separated from
#    the best agree, and do the letters?

# %% tags=["hide-input"]
by_mrr = pairwise({n: comparison.per_example(n, "mrr") for n in contenders}, "mrr")
print("not separated from the best by HR@10:", ", ".join(found.best_group()))
print("not separated from the best by MRR:  ", ", ".join(by_mrr.best_group()))
display(pd.DataFrame({"HR@10": found.letters, "MRR": by_mrr.letters}).loc[found.order])

# %% [markdown]
# 3. *(think)* Three models A, B, C: A and B are not separated, B and C are not
#    separated, but A and C are. Which letters do they get, and why is this no
#    contradiction?
#
# :::{admonition} Solution
# :class: dropdown
# A gets *a*, B gets *ab* and C gets *b*: A and B share *a*, B and C share *b*, A and C
# share nothing. "Not separated" is not "equal" and is not transitive: B may sit close
# enough to A and to C that neither difference is beyond the noise, while A and C, twice as
# far apart, are. This is why the letters are not tiers: a chain of "within the noise of
# the one above" can end far from where it started.
# :::
#
# 4. *(think)* Each model's setting is the best of its trials on validation, so its
#    validation score is an optimistic estimate of that setting (the best of several noisy
#    numbers). Does that optimism reach the test results above?
#
# :::{admonition} Solution
# :class: dropdown
# No: the test set played no part in the choice, so a test score is an unbiased estimate of
# the chosen setting's quality. What the choice can do is pick a setting that was lucky on
# validation rather than good; with the same number of trials for every model that luck is
# spread evenly, and it is one reason to read the letters, not the ranks.
# :::
#
# ## Reproducing this chapter
#
# - `make run` (or `featint compare --out results`) retrains every model with seeds 0, 1, 2
#   and rewrites `results/`; `featint compare --models fm,ffm --num-seeds 1` runs a subset;
#   `--quick` is a smoke test. An interrupted run continues with `--resume`.
# - `make tune` runs every tuning trial that is not on record (long: three per model) and
#   writes `results/tuning/`; run it before `make run` after changing a search space.
# - `make bench` measures training throughput, ranking time and memory per model.
# - Then re-execute this notebook: every number and sentence above comes from `results/` or
#   from a cell of this notebook.
