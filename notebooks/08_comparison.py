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
# # 08 · The comparison
#
# Each chapter so far explained one model and trained it on the next-movie task of
# [chapter 00](00_data.ipynb): [FM](01_fm.ipynb) {cite}`rendle2010fm`,
# [FFM](02_ffm.ipynb) {cite}`juan2016ffm`, [AFM](03_afm.ipynb) {cite}`xiao2017afm`,
# [Wide & Deep](04_wide_deep.ipynb) {cite}`cheng2016wide`, [DeepFM](05_deepfm.ipynb)
# {cite}`guo2017deepfm`, [NFM](06_nfm.ipynb) {cite}`he2017nfm` and [DLRM](07_dlrm.ipynb)
# {cite}`naumov2019dlrm`, with logistic regression on the same features (`linear`) as the
# model without interactions, and [SASRec](11_sasrec.ipynb) {cite}`kang2018sasrec`, a model
# of the ordered history, as the top rung. This chapter puts them side by side and asks
# what the differences between them are worth:
#
# - **one task**: the protocol of [chapter 00](../book/protocol.md), every movie ranked for
#   every test example, the movies already watched filtered out; the test set is never
#   used to choose anything;
# - **one budget**: the same embedding size, epoch cap, batches, negatives and early
#   stopping for every model;
# - **one tuning budget**: every model with something to set gets the same number of
#   trials, each scored on *validation*; the best one is the setting all seeds train with;
# - **several seeds**, and two kinds of noise kept apart: another test set would give other
#   numbers (test-set noise), another seed another model (training noise);
# - **the ladder**: random, most popular, Markov, ItemKNN and MF below, SASRec on top. A
#   model that does not climb above the counting baselines has not earned its complexity.
#
# Nothing below is computed by hand or typed in: every table, chart and sentence about a
# result is generated from the records that `make tune`, `make run`, `make peers` and
# `make ablation` write. Without a record, the cell that needs it fails and its message
# says which command makes it.

# %% tags=["hide-input"]
# %matplotlib inline

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from featint import build_task, load_movielens
from featint.cards import budget_rows, card, overview, papers_table
from featint.chapter import load_comparison
from featint.config import RECORDS, current
from featint.evaluate import HIGHER_IS_BETTER, LABELS, per_example
from featint.report import (
    LADDER,
    ablation_effects,
    ablation_table,
    annotate_points,
    best_group_text,
    capped_runs,
    colours,
    difference_cell,
    ladder_lines,
    ladder_table,
    leaderboard_cells,
    letters_lines,
    letters_table,
    load_ablation,
    load_peers,
    markdown_table,
    names_text,
    ordered,
    pairwise_markdown,
    peer_pairs,
    plot_metric,
    plot_pairwise,
    plot_trials,
    protocol_change,
    protocol_record,
    trials_table,
)
from featint.stats import difference_by_bucket, paired_t, pairwise, pooled_interval
from featint.tuning import SPACES, RecordError

#: The records of `make peers` and `make ablation`, in the repository's results folder
#: (this notebook runs in notebooks/).
PEERS = RECORDS / "peers"
ABLATION = RECORDS / "ablation"
print("quick mode:", current().quick)

# %% [markdown]
# ## The record
#
# `make run` (that is, `featint compare`) trains every registered model with every seed
# and writes the comparison's record, shipped with featint: the settings (protocol,
# models, seeds, budget), the machine, one entry per (model, seed) run (test metrics,
# training time, epochs, best epoch, parameters, ranking time, the validation curve) with
# the rank of every test example, and one aggregate per model. A record of another
# protocol, of a quick-mode smoke test or of an unfinished run is refused: its numbers are
# not comparable with this book's task.

# %% tags=["hide-input"]
comparison, note = load_comparison()
print(note)
results = comparison.results
settings, machine = results["settings"], results["machine"]
aggregates, runs = comparison.aggregates, comparison.runs
# the top rung, once its tuning is complete; a model left out is named, with why
TOP = ["sasrec"] if "sasrec" in aggregates else []
for name, why in comparison.pending.items():
    print(f"Not in this comparison: {name}, because {why}.")
print(f"Protocol: {settings['protocol']} (history window {comparison.window}). "
      f"Date {machine['date']}; {machine['cpu']}, {machine['cores']} cores, "
      f"torch {machine['torch']}, device {machine['device']}.")
print(f"Models: {', '.join(settings['models'])}; seeds: {settings['seeds']}.")

# %% tags=["remove-input"]
counts = results["data"]["counts"]
display(Markdown(
    f"Every run ranks the same {settings['num_test_examples']:,} test examples, each "
    f"against every movie of the catalogue ({counts['movies']:,}) but those the user "
    f"has already watched; each of the {len(settings['seeds'])} seeds of a model is a "
    "model trained afresh. The budget every trained model shares:\n\n"
    + "| budget | value |\n|---|---|\n"
    + "\n".join(f"| {a} | {b} |" for a, b in budget_rows())))

# %% [markdown]
# ## The tuning budget
#
# `make tune` trains every setting of every model's search space (`featint/tuning.py`)
# with seed 0 under the budget above and ranks the *whole* validation set with the weights
# early stopping kept; a counting baseline is built from the fit period instead. One rule
# writes every trained model's space: its anchor setting at its learning rate and at half
# of it, then its paper's setting where the paper gives one we can follow, else the anchor
# at twice the rate. The comparison trains each model with its best trial by validation
# MRR. The table reads every model's card (`featint.cards`): what the trials varied, the
# trial chosen, the paper's setting, whether it was tried and whether it won, and the
# seconds of training the trials took.

# %% tags=["hide-input"]
tuned_models = ordered([n for n in SPACES if n in aggregates])
tuning = overview(tuned_models)
shown = tuning.assign(**{"valid MRR": tuning["valid MRR"].map("{:.4f}".format),
                         "tuning s": tuning["tuning s"].map(
                             lambda s: "–" if np.isnan(s) else f"{s:,.0f}")})
display(shown)
trials = trials_table()
assert tuning["trials"].nunique() == 1, "every model must get the same number of trials"

# %% tags=["remove-input"]
spent = tuning["tuning s"].sum()
trained_trials = int(trials["epochs"].gt(0).sum())
slowest = tuning["tuning s"].idxmax()
display(Markdown(
    f"Every model had {tuning['trials'].iloc[0]} trials. Training the "
    f"{trained_trials} trials of the trained models took {spent / 3600:.1f} hours of "
    f"training in all (the sum of their training times on record, validation rankings "
    f"after each epoch included), {slowest}'s the longest at "
    f"{tuning.loc[slowest, 'tuning s'] / 60:.0f} minutes."))

# %% [markdown]
# Each row of the chart is one model's trials: a long row is a model whose result depends
# on how it is set up, which is a finding in itself.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(9, 0.4 * trials["model"].nunique() + 1.4),
                       layout="constrained")
plot_trials(trials, ax)
ax.set_title("Every tuning trial, validation MRR (seed 0)")
plt.show()

# %% tags=["hide-input"]
table_trials = trials.assign(
    mrr=trials["mrr"].round(4), hr10=trials["hr@10"].round(4),
    paper=trials["paper"].map({True: "paper", False: ""}),
    chosen=trials["chosen"].map({True: "✓", False: ""}),
    seconds=trials["train_seconds"].round(0).astype(int))
display(table_trials.set_index(["model", "setting"])[
    ["paper", "chosen", "mrr", "hr10", "best_epoch", "epochs", "seconds"]])

# %% tags=["remove-input"]
spread = trials.groupby("model")["mrr"].agg(lambda v: v.max() - v.min())
changed = [n for n in tuned_models if tuning.loc[n, "chosen"] != next(iter(SPACES[n]))]
with_paper = tuning[tuning["paper tried"] != "–"]
won = list(with_paper.index[with_paper["paper chosen"] == "yes"])
lost = list(with_paper.index[with_paper["paper chosen"] == "no"])
widest = spread.reindex(tuned_models).sort_values(ascending=False)
# the noise of one seed: each trained model's best validation MRR in the comparison
# (early stopping's sample) varies over seeds; the median over models of its std
best_valid = pd.DataFrame([{"model": r["model"], "seed": r["seed"],
                            "mrr": max(row["valid_mrr"] for row in r["history"])}
                           for r in runs if r["history"]])
seed_noise = best_valid.groupby("model")["mrr"].std().median()
close = [n for n in tuned_models if n in spread and spread[n] < seed_noise]
display(Markdown(
    f"The first trial of a space (for a trained model, its anchor at its rate) won for "
    f"{len(tuned_models) - len(changed)} of {len(tuned_models)} models, another trial "
    f"for {names_text(changed) if changed else 'none'}. Of the {len(with_paper)} "
    f"models whose paper gives a setting to follow, the paper's setting won for "
    f"{names_text(won) if won else 'none'}"
    + (f" and lost for {names_text(lost)}." if lost else ".")
    + " The widest spread between a model's best and worst trial: "
    + ", ".join(f"{n} {v:.4f}" for n, v in widest.head(3).items())
    + " validation MRR. For scale, the seed alone moves a model's best validation MRR "
    f"by {seed_noise:.4f} (the median over models of its standard deviation over the "
    "comparison's seeds): "
    + (f"the trials of {names_text(close)} lie closer together than that, so their "
       "choice was made by noise as much as by the setting." if close else
       "every model's trials spread wider than that.")))

# %% [markdown]
# Every model's card, the full setting it trains with and where each value comes from
# (click to show):

# %% tags=["remove-input", "hide-output"]
for name in tuned_models:
    display(Markdown(f"**{name}**\n\n" + card(name).markdown()))

# %% [markdown]
# ## The leaderboard
#
# One row per model, the ladder first, then the models in the order of the chapters. Each
# metric is the mean over seeds with two 95% intervals: in brackets the interval over test
# examples (a bootstrap that resamples the test examples once for all seeds, since every
# run ranks the same examples), and under *with seeds* the interval that also holds the
# training noise (a t interval whose variance adds each model's spread over its seeds:
# `featint.stats.mean_interval`). The first says how much another test set would move the
# number; the second how much another test set *and* another three seeds would. Mean and
# median rank: lower is better; MRR, HR@10 (the target in the top 10) and NDCG@10: higher is
# better. The costs are means over seeds; training time includes the validation ranking
# after every epoch.

# %% tags=["hide-input"]
table = comparison.leaderboard()
display(leaderboard_cells(table, intervals="both"))
metrics_shown = ("mean_rank", "mrr", "hr@10", "ndcg@10")
for m in metrics_shown:  # every number is there and every interval surrounds its mean
    assert np.isfinite(table[m]).all()
    for lo, hi in (("_lo", "_hi"), ("_lo_seeds", "_hi_seeds")):
        assert ((table[m + lo] <= table[m]) & (table[m] <= table[m + hi])).all()
models = [n for n in table.index if n not in LADDER]
contenders = [n for n in table.index if n != "random"]

# %% [markdown]
# The same numbers as bars: means over seeds, black dots the single seeds, error bars the
# 95% interval over test examples; the ladder in grey. Random guessing is left out of the
# charts (its mean rank, about half the unseen catalogue, would flatten every other bar)
# and noted under them.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(13, 0.42 * len(aggregates) + 1.8),
                         layout="constrained")
for ax, metric in zip(axes, ("hr@10", "mean_rank"), strict=True):
    plot_metric(aggregates, metric, ax, runs)
    ax.set_title(LABELS[metric])
    ax.set_ylabel("model")
plt.show()

# %% [markdown]
# ## Which models differ? Every pair, tested
#
# A difference in the table can be noise of either kind. Since every run ranks the same
# test examples, two models are compared example by example, each averaged over its
# seeds; the uncertainty of the difference adds each model's spread over its seeds to the
# test-set noise, and a t distribution (with the few degrees of freedom three seeds give)
# turns it into a test (`featint.stats.pairwise`; its docstring has the formula). **Every
# pair** of models is tested, since a table invites a reader to compare any two, and
# Holm's correction {cite}`holm1979simple` over all the pairs keeps the chance of even one
# false separation at 5%. The result is a matrix for each metric (each cell: how much
# better the row is than the column, coloured where the data separate the two) and a
# **compact letter display** {cite}`piepho2004letters`: two models that share a letter are
# not separated, two that share none are. Letters are not tiers: a model can share a
# letter with two models that are separated from each other. Three metrics are tested,
# each its own family: HR@10 (is the target in the top 10?), MRR (how high is it, with the
# top counting most) and mean rank (how high is it, with every place counting alike).

# %% tags=["hide-input"]
TESTED = ("hr@10", "mrr", "mean_rank")
tested = {m: comparison.pairwise(m) for m in TESTED}
display(letters_table([tested[m] for m in TESTED]))

# %% tags=["hide-input"]
for metric in TESTED:
    size = len(tested[metric].order)
    fig, ax = plt.subplots(figsize=(0.55 * size + 3, 0.5 * size + 1.5),
                           layout="constrained")
    plot_pairwise(tested[metric], ax)
    plt.show()

# %% tags=["remove-input"]
cap, patience = settings["budget"]["epochs"], settings["budget"]["patience"]
capped = sorted({r["model"] for r in capped_runs(runs, cap, patience)})
cap_text = (f"Stopped by the {cap}-epoch cap in at least one seed (fewer than "
            f"{patience} epochs after its best): {names_text(capped)}. Those models "
            "might still improve: they are compared at this budget, not at their best."
            if capped else
            f"Early stopping, not the {cap}-epoch cap, ended every run.")
other_metrics = []
for metric in TESTED[1:]:
    other_metrics += [best_group_text(tested[metric]),
                      f"The letters on {LABELS[metric]}:",
                      "\n".join(letters_lines(tested[metric]))]
display(Markdown(pairwise_markdown(tested["hr@10"]) + "\n\n"
                 + "\n\n".join(other_metrics) + "\n\n" + cap_text))

# %% [markdown]
# ## The ladder: what each architecture adds
#
# The question to ask of every model: what does it buy over the simple methods, and how far
# is it from a model of the order itself? For each model, the difference in HR@10 to each
# rung (the model minus the rung, mean over seeds, + is better), with its interval from
# the pairwise test above (these pairs are among the ones Holm's correction counted). A
# separated pair is marked ▲ (the model is better) or ▼ (worse); the rest is within the
# noise. Random guessing is not in the family of tests (nobody needs a test to be told a
# model beats guessing): its column is the plain paired difference with its 95% interval.

# %% tags=["hide-input"]
RUNGS = ("popular", "markov", "itemknn", "mf", *TOP)
result = tested["hr@10"]
climbers = [n for n in models if n != "sasrec"]
ladder = ladder_table(result, climbers + TOP, RUNGS)
random_hits = comparison.per_example("random", "hr@10")
over_random = {}
for name in climbers + TOP:
    test = paired_t(comparison.per_example(name, "hr@10"), random_hits)
    over_random[name] = test
    ladder.loc[name, "random"] = (f"{test.difference:+.4f} "
                                  f"[{test.lo:+.4f}, {test.hi:+.4f}]")
assert all(t.lo > 0 for t in over_random.values()), "a model is not above random"
display(ladder[["random", *RUNGS]])
# the counting baselines are the bar that matters: the better one is above most popular
counting = [n for n in ("markov", "itemknn") if n in result.order]
best_count = max(counting, key=lambda n: result.means[n])
assert "popular" in result.separated_from(best_count)[0], "popular is not the low bar"

# %% tags=["remove-input"]
top_rung = result.separated_from("sasrec") if TOP else ([], [])
# SASRec against the feature-interaction models (the linear model has no pairs: a rung)
feature_models = [n for n in climbers if n != "linear"]
sasrec_ahead_of = [n for n in feature_models if n in top_rung[0]]
sasrec_behind = [n for n in feature_models if n in top_rung[1]]
level = [n for n in feature_models if n not in sasrec_ahead_of + sasrec_behind]
rungs_text = "\n".join(ladder_lines(result, climbers + TOP, RUNGS))
text = ("Random guessing finds the target in the top 10 for "
        f"{aggregates['random']['mean']['hr@10']:.4f} of the test examples; every "
        "model is above it by the differences in its column. Against the rest of the "
        f"ladder, on the pairwise test of HR@10:\n\n{rungs_text}\n\n")
if not TOP:
    text += ("SASRec, the top rung, is not in this comparison: "
             + comparison.pending.get("sasrec", "it was not run") + ".")
elif set(sasrec_ahead_of) >= set(feature_models):
    text += ("SASRec, which sees only the ordered history, is above every "
             "feature-interaction model beyond the noise: modelling the order buys "
             "more than any pair of features does on this task.")
elif set(sasrec_behind) >= set(feature_models):
    text += ("SASRec, which sees only the ordered history, is below every "
             "feature-interaction model beyond the noise: the features these models "
             "are given (the history window, the last movie, time and side "
             "information) carry more than the order alone.")
else:
    parts = [f"above {names_text(sasrec_ahead_of)}" if sasrec_ahead_of else "",
             f"below {names_text(sasrec_behind)}" if sasrec_behind else "",
             f"not separated from {names_text(level)}" if level else ""]
    text += ("SASRec, which sees only the ordered history, is "
             + "; ".join(p for p in parts if p) + " beyond the noise on HR@10: the "
             "top rung is not clearly above the family, nor below it.")
if "linear" in climbers and "popular" not in result.separated_from("linear")[0]:
    text += (" The linear model is not above most popular: without interactions its "
             "score is a context part plus a movie part, and the context part is the "
             "same for every movie of a context, so it ranks the movies of *every* "
             "user in one fixed order, at best popularity.")
display(Markdown(text))

# %% [markdown]
# ## Mean rank against HR@10: which examples make the difference
#
# The audit of the first edition asked a fair question: why are AFM and DLRM among the
# worst models by mean rank, yet in the first group by HR@10? The two metrics weigh the
# examples very differently. HR@10 counts a hit in the top 10 and nothing else: a target at
# place 11 and one at place 1,500 are the same miss. The mean rank counts every place: a
# target that falls from place 600 to 1,200 costs as much as 600 examples that each fall by
# one place. A model can therefore hit the top 10 as often as the best and still have a
# poor mean rank, if on the examples it gets wrong it gets them *very* wrong.
#
# Where each of the two models stands on this comparison:

# %% tags=["remove-input"]
PUZZLE = ("afm", "dlrm")  # the models the audit asked about
REFERENCE = "fm"
by_rank = [n for n in tested["mean_rank"].order if n in feature_models]
by_hits = tested["hr@10"]
lines = []
for name in PUZZLE:
    place = by_rank.index(name) + 1
    in_best = name in by_hits.best_group()
    lines.append(
        f"- {name}: by mean rank {place} of the {len(by_rank)} feature-interaction "
        f"models ({aggregates[name]['mean']['mean_rank']:.1f}); on HR@10 "
        + ("in the group not separated from the best" if in_best else
           "separated from the best")
        + f" (letters {by_hits.letters[name]}, HR@10 "
        f"{aggregates[name]['mean']['hr@10']:.4f}).")
worse_half = by_rank[len(by_rank) // 2:]
pattern = [n for n in by_hits.best_group() if n in worse_half]
display(Markdown(
    "\n".join(lines) + "\n\nEvery model in HR@10's best group that is in the worse "
    "half of the feature-interaction models by mean rank: "
    + (names_text(pattern) if pattern else "none, on this comparison") + "."))

# %% [markdown]
# The distribution of the ranks shows where the mean rank comes from. The chart below
# plots, for each rank on its horizontal axis, the share of test examples (all seeds
# pooled) whose target is ranked worse than that; both axes are logarithmic, so the right
# tail, the examples ranked in the hundreds or beyond, is visible beside the top 10 (the
# dashed line). A curve that lies higher on the right has more examples in the far tail:
# each of them pulls its mean rank up by hundreds of places.

# %% tags=["hide-input"]
best_by_rank = by_rank[0]
shown_tails = list(dict.fromkeys([REFERENCE, *PUZZLE, best_by_rank]))
palette = colours(shown_tails)
seed_ranks = {n: np.stack([comparison.ranks(n, s)[0] for s in aggregates[n]["seeds"]])
              for n in shown_tails}
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
for name in shown_tails:
    ranks = np.sort(seed_ranks[name].ravel())
    beyond = 1.0 - np.arange(1, len(ranks) + 1) / len(ranks)
    ax.step(ranks, beyond, where="post", color=palette[name], label=name)
ax.axvline(10, color="0.4", linestyle="--", linewidth=1)
ax.set(xscale="log", yscale="log", ylim=(1e-3, 1.05),
       xlabel="rank of the target (log scale)",
       ylabel="share of test examples ranked worse",
       title="The tail of the ranks (every seed pooled)")
ax.legend(loc="lower left", title="model")
plt.show()

# %% [markdown]
# Now the difference itself, example by example. For each of the two models and each test
# example, the difference to FM (the model minus FM, each averaged over its seeds) is
# split by how hard the example is for the pair: the mean of the two models' ranks, in
# five buckets. Each bucket's **contribution** is its share of the examples times the mean
# difference inside it, so the contributions add up to the whole difference in the
# leaderboard (`featint.stats.difference_by_bucket`), with a 95% interval that holds
# test-set and training noise. For the mean rank a positive contribution is worse (more
# places); for HR@10 a negative one is worse (fewer hits).

# %% tags=["hide-input"]
EDGES = (0, 10, 50, 200, 500, np.inf)
buckets = {}
for name in PUZZLE:
    pair_rank = (seed_ranks[name].mean(0) + seed_ranks[REFERENCE].mean(0)) / 2
    for metric in ("mean_rank", "hr@10"):
        buckets[(name, metric)] = difference_by_bucket(
            comparison.per_example(name, metric),
            comparison.per_example(REFERENCE, metric), pair_rank, EDGES)
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), layout="constrained")
labels = list(buckets[(PUZZLE[0], "mean_rank")].index)
x = np.arange(len(labels))
for ax, metric in zip(axes, ("mean_rank", "hr@10"), strict=True):
    for i, name in enumerate(PUZZLE):
        b = buckets[(name, metric)]
        err = [b["contribution"] - b["contribution_lo"],
               b["contribution_hi"] - b["contribution"]]
        ax.bar(x + (i - 0.5) * 0.38, b["contribution"], 0.38, yerr=err, capsize=3,
               color=colours(PUZZLE)[name], label=f"{name} − {REFERENCE}")
    ax.axhline(0, color="0.3", linewidth=0.8)
    sizes = buckets[(PUZZLE[0], metric)]["examples"]
    ax.set_xticks(x, [f"{lab}\n{n:,} ex."
                      for lab, n in zip(labels, sizes, strict=True)])
    worse = "worse: +" if metric == "mean_rank" else "worse: −"
    ax.set(xlabel="bucket: the pair's mean rank on the example (last: all examples)",
           ylabel=f"contribution to the {LABELS[metric]} difference ({worse})",
           title=f"Where the {LABELS[metric]} difference to {REFERENCE} comes from")
handles, names = axes[1].get_legend_handles_labels()
fig.legend(handles, names, loc="outside lower center", ncol=len(PUZZLE))
plt.show()

# %% tags=["remove-input"]
task = build_task(load_movielens())
examples = comparison.ranks(REFERENCE, aggregates[REFERENCE]["seeds"][0])[1]
target_popularity = task.popularity()[task.target[examples]]
TAIL = list(buckets[(PUZZLE[0], "mean_rank")].index)[-2]  # the last bucket before "all"
sentences = []
for name in PUZZLE:
    rank_b, hit_b = buckets[(name, "mean_rank")], buckets[(name, "hr@10")]
    whole = rank_b.loc["all"]
    tail = rank_b.loc[TAIL]
    share = tail["contribution"] / whole["contribution"] if whole["contribution"] else 0
    top = hit_b.loc[list(hit_b.index)[0]]
    sentences.append(
        f"- **{name}**: its mean rank is {whole['difference']:+.1f} places against "
        f"{REFERENCE} [{whole['lo']:+.1f}, {whole['hi']:+.1f}]; the examples the pair "
        f"ranks beyond {EDGES[-2]} on average ({tail['share']:.1%} of all) contribute "
        f"{tail['contribution']:+.1f} [{tail['contribution_lo']:+.1f}, "
        f"{tail['contribution_hi']:+.1f}] of it ({share:.0%}). Its HR@10 differs by "
        f"{hit_b.loc['all', 'difference']:+.4f} [{hit_b.loc['all', 'lo']:+.4f}, "
        f"{hit_b.loc['all', 'hi']:+.4f}], of which the examples the pair ranks in the "
        f"top {EDGES[1]} contribute {top['contribution']:+.4f}.")
pair_rank = (seed_ranks[PUZZLE[0]].mean(0) + seed_ranks[REFERENCE].mean(0)) / 2
in_tail = pair_rank > EDGES[-2]
tail_share = {n: float((seed_ranks[n] > EDGES[-2]).mean()) for n in shown_tails}
tail_median, all_median = (np.median(target_popularity[in_tail]),
                           np.median(target_popularity))
display(Markdown(
    "\n".join(sentences) + "\n\n"
    f"Share of (example, seed) ranks beyond {EDGES[-2]}: "
    + ", ".join(f"{n} {v:.1%}" for n, v in tail_share.items()) + ". "
    f"The targets of the examples {PUZZLE[0]} and {REFERENCE} rank beyond {EDGES[-2]} "
    f"on average have a median of {tail_median:.0f} training ratings, against "
    f"{all_median:.0f} over all test examples"
    + (": they are rare movies. " if tail_median < all_median / 2 else ". ")
    + "So the two metrics answer different questions: HR@10 asks how often the target "
    "is near the top, the mean rank how badly the misses miss, and a model can push a "
    "target to the bottom of the catalogue without losing a single hit."))

# %% [markdown]
# ## Protocol v3, looking back
#
# The first edition of this comparison ran under protocol v2, whose history field held
# *every* movie watched so far; protocol v3 holds the last few. [Chapter 00](00_data.ipynb)
# tells why recency matters for next-movie prediction and how the window was chosen on
# validation, never on test. Everything else stayed: the examples, the split, the negatives, the
# ranking, the ladder. The record of the v2 comparison is kept for this look back alone
# (v2 and v3 numbers are never mixed anywhere else). It keeps each model's aggregates, not
# its per-example ranks, so the change below has no paired test: beside it stands each
# side's spread over its seeds.

# %% tags=["hide-input"]
v2 = protocol_record()
assert v2["settings"]["num_test_examples"] == settings["num_test_examples"]
change = protocol_change(v2["aggregate"], aggregates)
trained_both = [n for n in change.index if aggregates[n]["kind"] == "model"
                or n == "mf"]


def cell_pm(mean: float, std: float | None, digits: int) -> str:
    """A mean over seeds with its standard deviation over seeds."""
    return f"{mean:.{digits}f}" + ("" if not std else f" ±{std:.{digits}f}")


display(pd.DataFrame({
    f"{LABELS[m]} {side}": [cell_pm(change.loc[n, f"{m} {key}"],
                                    change.loc[n, f"{m} {key} std"], d)
                            for n in change.index]
    for m, d in (("hr@10", 4), ("mean_rank", 1))
    for side, key in (("v2", "before"), ("v3", "after"))
} | {f"Δ {LABELS[m]}": [f"{change.loc[n, f'{m} change']:+.{d}f}" for n in change.index]
     for m, d in (("hr@10", 4), ("mean_rank", 1))}, index=change.index))

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(12, 0.38 * len(trained_both) + 1.6),
                         layout="constrained", sharey=True)
palette = colours(trained_both)
for ax, metric in zip(axes, ("hr@10", "mean_rank"), strict=True):
    for i, name in enumerate(trained_both):
        before, after = change.loc[name, [f"{metric} before", f"{metric} after"]]
        ax.annotate("", (after, i), (before, i),
                    arrowprops={"arrowstyle": "->", "color": palette[name], "lw": 1.5})
        ax.plot([before], [i], "o", color=palette[name], markerfacecolor="white")
        ax.plot([after], [i], "o", color=palette[name])
    better = "higher" if HIGHER_IS_BETTER[metric] else "lower"
    ax.set(xlabel=f"test {LABELS[metric]} ({better} is better): ○ v2 → ● v3",
           title=f"{LABELS[metric]}, protocol v2 → v3 (mean over seeds)")
    ax.margins(x=0.08)
axes[0].set_yticks(range(len(trained_both)), trained_both)
axes[0].set_ylabel("model")
axes[0].invert_yaxis()
plt.show()

# %% tags=["remove-input"]
fi_models = [n for n in feature_models if n in change.index]
gains = change.loc[fi_models, "hr@10 change"]
rank_gains = change.loc[fi_models, "mean_rank change"]
v2_spread = np.ptp(change.loc[fi_models, "hr@10 before"])
v3_spread = np.ptp(change.loc[fi_models, "hr@10 after"])
seed_sd = np.nanmedian(change.loc[fi_models, ["hr@10 before std", "hr@10 after std"]]
                       .to_numpy(dtype=float))
display(Markdown(
    f"From v2 to v3, HR@10 rose for {int((gains > 0).sum())} of the {len(fi_models)} "
    f"feature-interaction models (median change {gains.median():+.4f}, from "
    f"{gains.min():+.4f} for {gains.idxmin()} to {gains.max():+.4f} for "
    f"{gains.idxmax()}) and the mean rank fell for {int((rank_gains < 0).sum())} "
    f"(median change {rank_gains.median():+.1f} places). For scale: under v2 the best "
    f"and the worst of these models were {v2_spread:.4f} HR@10 apart, under v3 "
    f"{v3_spread:.4f}, and a model's standard deviation over its seeds is typically "
    f"{seed_sd:.4f}. "
    + ("The change of one feature's definition moved the models by more than the whole "
       "spread of their architectures." if abs(gains.median()) > v2_spread else
       "The change of one feature's definition moved the models by less than the "
       "spread of their architectures.")))

# %% [markdown]
# ## A feature's definition and the training details
#
# Would a reader get better models from a library? To find out, the repository trains the
# models of two libraries a reader might use instead, DeepCTR-Torch and pytorch-fm, on this
# very task: the same examples, featint's training loop, budget, early stopping and number
# of tuning trials (the library's defaults among them), three seeds, and featint's
# evaluator (`benchmarks/peers.py`, `make peers`). Each library model is a *twin* of a
# featint model, trained twice: on the features as the library can take them (`library`)
# and on featint's features exactly (`featint`), so that library and featint then differ in
# nothing but code and training details. Each twin is compared with its featint model on
# the same test examples, each side averaged over its seeds, with Holm's correction over
# all the twins for each metric (the difference is featint minus the twin, + is better
# for featint on every metric).

# %% tags=["hide-input"]
try:
    peers = load_peers(PEERS)
except RecordError:  # `make peers` has not been run for this release of featint
    peers = None
    display(Markdown(
        "**Not measured yet.** This release of featint ships no record of the "
        "twins: `make peers` trains them (long: every twin, three seeds, the same "
        "number of tuning trials as every model), and this section then shows "
        "them. Until then the chapter makes no claim about the libraries."))
signed = {m: 1 if HIGHER_IS_BETTER[m] else -1 for m in TESTED}


def peer_cell(row: pd.Series, metric: str) -> str:
    """featint minus the twin (+: featint better), its interval and the verdict."""
    s, d = signed[metric], 1 if "rank" in metric else 4
    lo, hi = sorted((s * row[f"{metric} lo"], s * row[f"{metric} hi"]))
    mark = {"featint better": "▲", "twin better": "▼"}.get(row[f"{metric} verdict"], "")
    return (f"{mark} {s * row[f'{metric} difference']:+.{d}f} "
            f"[{lo:+.{d}f}, {hi:+.{d}f}]").strip()


if peers is not None:
    pairs = peer_pairs(comparison, peers)
    display(pd.DataFrame({
        "library": pairs["library"], "features": pairs["features"],
        "featint model": pairs["featint_model"],
        "twin HR@10": pairs["hr@10 twin"].map("{:.4f}".format),
        "twin mean rank": pairs["mean_rank twin"].map("{:.1f}".format),
        **{f"featint − twin {LABELS[m]}": [peer_cell(r, m) for _, r in pairs.iterrows()]
           for m in TESTED}}).set_index(pairs["twin"]))

# %% tags=["hide-input"]
if peers is not None:
    twin_models = ordered(list(pairs["featint_model"].unique()))
    rows = []  # (label, model, mean, lo, hi, marker) from top to bottom
    marker = {"library": "s", "featint": "D"}
    for name in twin_models:
        lo, hi = aggregates[name]["interval"]["hr@10"]
        rows.append((name, name, aggregates[name]["mean"]["hr@10"], lo, hi, "o"))
        for peer in peers:
            if peer["featint_model"] == name:
                lo, hi = peer["test_intervals"]["hr@10"]
                rows.append((f"{peer['twin']} ({peer['features']} features)", name,
                             peer["test"]["hr@10"], lo, hi, marker[peer["features"]]))
    palette = colours(twin_models)
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(rows) + 1.6), layout="constrained")
    for y, (_, name, mean, lo, hi, shape) in enumerate(rows):
        ax.errorbar(mean, y, xerr=[[mean - lo], [hi - mean]], fmt=shape, capsize=2,
                    color=palette[name], markersize=7 if shape == "o" else 5,
                    markerfacecolor=palette[name] if shape == "o" else "white")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_fontweight("bold" if row[5] == "o" else "normal")
    ax.invert_yaxis()
    ax.set(xlabel="test HR@10, mean over seeds, 95% interval over test examples",
           ylabel="featint model (bold, ●), its twins "
           "(□ library's, ◇ featint's features)",
           title="Every twin beside its featint model")
    plt.show()

# %% tags=["remove-input"]
if peers is not None:
    verdicts = {m: pairs[f"{m} verdict"].value_counts() for m in TESTED}
    notes = {(p["library"], p["features"]): p["features_note"] for p in peers
             if p["features_note"]}
    better_twins = {m: list(pairs.loc[pairs[f"{m} verdict"] == "twin better", "twin"]
                            + " (" + pairs.loc[pairs[f"{m} verdict"] == "twin better",
                                               "features"] + ")") for m in TESTED}
    display(Markdown(
        f"Of the {len(pairs)} twins, on each metric: "
        + "; ".join(f"{LABELS[m]}: featint's model better for "
                    f"{int(verdicts[m].get('featint better', 0))}, not separated for "
                    f"{int(verdicts[m].get('not separated', 0))}, the twin better for "
                    f"{int(verdicts[m].get('twin better', 0))}"
                    + (f" ({', '.join(better_twins[m])})" if better_twins[m] else "")
                    for m in TESTED) + ". "
        + ("No twin is better than its featint model beyond the noise on any of the "
           "three metrics." if not any(better_twins.values()) else
           "Where a twin is better, the ablation below looks for the detail that "
           "makes it.")
        + ("\n\nHow each library takes the features:\n\n" + "\n".join(
            f"- {lib}, {features} features: {text}."
            for (lib, features), text in notes.items()) if notes else "")))

# %% [markdown]
# What makes a library's twin better or worse? The ablation (`benchmarks/ablation.py`,
# `make ablation`) changes featint's DeepFM and NFM one thing at a time from the setting of
# the comparison towards the library's defaults (the learning rate, the initialisation,
# dropout, the MLP's widths, a summed loss with an L2 penalty on the embeddings, the FM
# pre-training, the early-stopping metric, and all of them together), trains each variant
# with every seed and ranks validation and test. Each effect is the variant minus the
# baseline, seed by seed, as the mean over seeds with its 95% t-interval over seeds.

# %% tags=["hide-input"]
try:
    ablation = load_ablation(ABLATION)
    display(ablation_table(ablation))
except RecordError:  # `make ablation` has not been run for this release of featint
    ablation = None
    display(Markdown(
        "**Not measured yet.** This release of featint ships no record of the "
        "ablation: `make ablation` trains its variants (three seeds each), and this "
        "section then shows them."))

# %% tags=["hide-input"]
if ablation is not None:
    effects = ablation_effects(ablation)
    test_hits = effects[(effects["split"] == "test") & (effects["metric"] == "hr@10")]
    arch = [n for n in feature_models if n in aggregates]
    arch_spread = np.ptp([aggregates[n]["mean"]["hr@10"] for n in arch])
    fig, ax = plt.subplots(figsize=(10, 0.34 * len(test_hits) + 1.8),
                           layout="constrained")
    labels, palette = [], colours(list(test_hits["model"].unique()))
    for i, (_, e) in enumerate(test_hits.iterrows()):
        lo, hi = (e["lo"], e["hi"]) if np.isfinite(e["lo"]) else (e["mean"], e["mean"])
        ax.errorbar(e["mean"], i, xerr=[[e["mean"] - lo], [hi - e["mean"]]], fmt="o",
                    color=palette[e["model"]], capsize=3)
        labels.append(f"{e['model']}: {e['change']}")
    ax.axvspan(-arch_spread, arch_spread, color="C2", alpha=0.12, lw=0)
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set(xlabel="effect on test HR@10: the change minus the comparison's setting "
           "(mean over seeds, 95% t-interval over seeds)", ylabel="model: change",
           title="One change at a time; green band: ± the HR@10 spread of the "
           f"{len(arch)} feature-interaction architectures")
    plt.show()

# %% tags=["remove-input"]
if ablation is not None:
    big = test_hits[test_hits["mean"].abs() >= arch_spread]
    sure = test_hits[(test_hits["lo"] > 0) | (test_hits["hi"] < 0)]


    def effect_text(rows: pd.DataFrame) -> str:
        return names_text([f"{r['model']}: {r['change']} ({r['mean']:+.4f})"
                           for _, r in rows.iterrows()])


    display(Markdown(
        f"The HR@10 of the best and the worst of the {len(arch)} feature-interaction "
        f"architectures of the comparison lie {arch_spread:.4f} apart. "
        + (f"{len(big)} of the {len(test_hits)} changes move a model's test HR@10 by "
           f"at least that much: {effect_text(big)}. " if len(big) else
           f"None of the {len(test_hits)} changes moves a model's test HR@10 that "
           f"much. ")
        + (f"The changes whose 95% interval over seeds excludes zero: "
           f"{effect_text(sure)}. "
           if len(sure) else "No change's interval over seeds excludes zero. ")
        + ("Together with the look back at protocol v3 above, this is the lesson: a "
           "feature's definition and the training details can move a model as much as "
           "its architecture does." if len(big) or abs(gains.median()) > v2_spread else
           "On this comparison neither the history window nor any single training "
           "detail moved a model as much as the architectures differ.")))

# %% [markdown]
# A comparison of architectures is only as fair as the care given to the features and to
# the training of every model in it {cite}`rendle2019difficulty`: that is why the twins and
# the ablation are part of this chapter.
#
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
tau, concordant, discordant = kendall_tau(common, ours)
flipped = [(a, b) for i, a in enumerate(common) for b in common[i + 1:]
           if ours.index(a) > ours.index(b)]
real, noise = [], []
for a, b in flipped:  # a before b in the seed article, after b here
    mark, diff = difference_cell(tested["mean_rank"], b, a)
    text = f"{a} vs {b} ({diff} places better for {b})"
    (real if mark else noise).append(text)
display(Markdown(
    f"Of the {concordant + discordant} pairs among the {len(common)} models both "
    f"compare, featint orders {concordant} the way the seed article does and "
    f"{discordant} the other way (Kendall's tau {tau:+.2f}; +1 is the same order, "
    "-1 the reverse). For each reversed pair, featint's mean-rank difference, from the "
    "pairwise test on mean rank above: "
    f"beyond the noise for {'; '.join(real) or 'none'}; "
    f"within it for {'; '.join(noise) or 'none'}."))

# %% [markdown]
# ## Accuracy against cost
#
# What does each point of HR@10 cost? Parameters, training time (to the early stop,
# including the validation rankings) and the time to rank the whole test set, for the
# trained models. Axes are logarithmic; the error bars are the 95% interval with seeds;
# the dashed lines are the best counting baseline and most popular.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(15, 5), layout="constrained", sharey=True)
costs = {"params": "parameters", "train_seconds": "training time (s)",
         "rank_seconds": "full test ranking (s)"}
priced = [n for n in table.index if table.loc[n, "params"] > 0]
palette = colours(priced)
for ax, (column, label) in zip(axes, costs.items(), strict=True):
    for name in priced:
        row = table.loc[name]
        ax.errorbar(row[column], row["hr@10"], fmt="o", capsize=3, color=palette[name],
                    yerr=[[row["hr@10"] - row["hr@10_lo_seeds"]],
                          [row["hr@10_hi_seeds"] - row["hr@10"]]])
    ax.axhline(table.loc["popular", "hr@10"], color="0.5", linestyle="--", linewidth=1,
               label="most popular")
    ax.axhline(table.loc[best_count, "hr@10"], color="0.3", linestyle=":", linewidth=1,
               label=f"{best_count} (best counting baseline)")
    ax.set_xscale("log")
    ax.margins(x=0.25)
    ax.set_xlabel(f"{label}, log scale")
axes[0].set_ylabel("test HR@10 (mean over seeds, 95% interval with seeds)")
handles, names = axes[0].get_legend_handles_labels()
fig.legend(handles, names, loc="outside lower center", ncol=2)
for ax, column in zip(axes, costs, strict=True):
    annotate_points(ax, {n: (table.loc[n, column], table.loc[n, "hr@10"])
                         for n in priced})
plt.show()

# %% tags=["remove-input"]
top = tested["hr@10"].best_group()
cheapest_top = min([n for n in top if n in priced],
                   key=lambda m: table.loc[m, "params"])
better = tested["hr@10"].separated_from(cheapest_top)[1]
display(Markdown(
    "The smallest of the models not separated from the best on HR@10 is "
    f"{cheapest_top} ({table.loc[cheapest_top, 'params']:,.0f} parameters, "
    f"{table.loc[cheapest_top, 'train_seconds']:.0f} s of training): "
    + (f"{names_text(better)} {'is' if len(better) == 1 else 'are'} better beyond the "
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
# each group (mean over seeds, with its 95% interval over the group's examples; the ladder
# in greys), and the text names, per group, the model with the best mean and those the
# group's examples do not separate from it (every pair tested as above, on the group's
# examples alone), never a single winner inside the noise.

# %% tags=["hide-input"]
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
palette = colours(shown_models)
all_ranks = {n: np.stack([comparison.ranks(n, s)[0] for s in aggregates[n]["seeds"]])
             for n in shown_models}
fig, axes = plt.subplots(1, 2, figsize=(14, 4.6), layout="constrained", sharey=True)
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
        ax.bar(x + (i - len(shown_models) / 2 + 0.5) * width, mean_g, width, yerr=err,
               color=palette[name], label=name, error_kw={"elinewidth": 0.6})
    counts_g = pd.Series(groups).value_counts().reindex(labels)
    ax.set_xticks(x, labels)
    ax.set(xlabel=f"{title} (test examples per group: {', '.join(map(str, counts_g))})",
           title=f"HR@10 by {title}")
    for label in labels:
        mask = np.asarray(groups == label)
        group_values = {n: per_example(all_ranks[n][:, mask], "hr@10")
                        for n in shown_models}
        group_tops[(title, label)] = pairwise(group_values, "hr@10").best_group()
axes[0].set_ylabel("HR@10 (95% interval over the group's examples)")
handles, names = axes[0].get_legend_handles_labels()
fig.legend(handles, names, loc="outside right upper", title="model")
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
# - One task, one budget, the same number of tuning trials for every model (chosen on
#   validation), three seeds, and the ladder from random guessing to SASRec: every number
#   above comes from the records of `make tune`, `make run`, `make peers` and
#   `make ablation`, or from a cell of this notebook.
# - Every pair of models is tested on HR@10, MRR and mean rank, paired over the test
#   examples with test-set and training noise, Holm's correction over every pair; the
#   letters show what the data cannot separate. No single winner is named inside the noise.
# - The counting baselines (Markov, ItemKNN) are the bar that matters: most popular is far
#   too low a bar for this task.
# - HR@10 and the mean rank answer different questions: HR@10 counts the hits in the top
#   10, the mean rank every place, so a few targets ranked near the bottom of the catalogue
#   weigh heavily in the mean rank and not at all in HR@10.
# - A feature's definition (the history window of protocol v3) and the training details
#   are as much part of a model as its architecture; the library twins, trained under the
#   same rules, show whether featint's models are trained as well as a library would train
#   them.
#
# What this comparison found:

# %% tags=["remove-input"]
if ablation is not None:
    largest = test_hits.loc[test_hits["mean"].abs().idxmax()]
found = [
    best_group_text(tested["hr@10"]),
    (f"SASRec against the {len(feature_models)} feature-interaction models on HR@10: "
     + "; ".join(p for p in (
         f"better than {names_text(sasrec_ahead_of)}" if sasrec_ahead_of else "",
         f"worse than {names_text(sasrec_behind)}" if sasrec_behind else "",
         f"not separated from {names_text(level)}" if level else "") if p) + "."
     if TOP else "SASRec is not in this comparison: "
     + comparison.pending.get("sasrec", "it was not run") + "."),
    "In HR@10's best group but in the worse half by mean rank: "
    + (names_text(pattern) if pattern else "no model") + ".",
    f"Protocol v3's history window moved the feature-interaction models' HR@10 by "
    f"{gains.median():+.4f} (median), against a spread of {v2_spread:.4f} between "
    "their architectures under v2.",
    ("Twins better than their featint model beyond the noise: "
     + ("none" if not any(better_twins.values()) else "; ".join(
         f"{LABELS[m]}: {', '.join(better_twins[m])}"
         for m in TESTED if better_twins[m]))
     + f" (of {len(pairs)})." if peers is not None else
     "The library twins are not measured yet (`make peers`)."),
    (f"The largest effect of one change in the ablation: {largest['model']}, "
     f"{largest['change']}, {largest['mean']:+.4f} test HR@10, against a spread of "
     f"{arch_spread:.4f} between the architectures." if ablation is not None else
     "The ablation is not measured yet (`make ablation`)."),
]
display(Markdown("\n".join(f"- {line}" for line in found)))

# %% [markdown]
# ## Exercises
#
# 1. *(by hand)* Two models have HR@10 0.150 and 0.140 over 20,000 test examples; their
#    hits agree on 95% of the examples. Roughly how large is the standard error of the
#    difference, and is 0.010 beyond the noise? (Hint: the difference of two paired hit
#    indicators is $-1$, 0 or $+1$.)
#
# :::{admonition} Solution
# :class: dropdown
# The per-example difference is $+1$ or $-1$ on 5% of the examples and 0 elsewhere, and its
# mean is 0.010; so its mean square is 0.05 and its variance about
# $0.05 - 0.01^2 \approx 0.0499$, and the standard error of the mean is
# $\sqrt{0.0499 / 20000} \approx 0.0016$: 0.010 is about six standard errors, beyond the
# test-set noise. Whether it survives the *training* noise
# depends on the spread over seeds, which is what the pairwise test above adds.
# :::
#
# 2. *(code)* Which models do HR@10 and mean rank disagree on most? For every model, put
#    its place by HR@10 beside its place by mean rank, and list the models whose two
#    places differ by three or more.

# %% tags=["hide-input"]
places = pd.DataFrame({
    "place by HR@10": {n: i + 1 for i, n in enumerate(tested["hr@10"].order)},
    "place by mean rank": {n: i + 1 for i, n in enumerate(tested["mean_rank"].order)},
}).loc[tested["hr@10"].order]
places["difference"] = places["place by mean rank"] - places["place by HR@10"]
display(places)
far = list(places.index[places["difference"].abs() >= 3])
print("places three or more apart:", ", ".join(far) or "none")

# %% [markdown]
# :::{admonition} Solution
# :class: dropdown
# The table above prints both places; the models it lists are those whose misses are
# unusually far from (or close to) the top compared with how often they hit it. The
# section on mean rank against HR@10 shows how to find out why: split the difference by
# how far down the pair ranks each example, since HR@10 never sees an example ranked
# below 10 and the mean rank weighs it by its place. Places are not tests, though: read
# the letters before concluding that two models differ.
# :::
#
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
# 4. *(code)* Repeat the bucket analysis for NFM against FM on MRR. Which bucket carries
#    most of the difference?

# %% tags=["hide-input"]
nfm_ranks = np.stack([comparison.ranks("nfm", s)[0]
                      for s in aggregates["nfm"]["seeds"]])
pair_rank_nfm = (nfm_ranks.mean(0) + seed_ranks[REFERENCE].mean(0)) / 2
by_bucket = difference_by_bucket(comparison.per_example("nfm", "mrr"),
                                 comparison.per_example(REFERENCE, "mrr"),
                                 pair_rank_nfm, EDGES)
display(by_bucket.round(5))
buckets_only = by_bucket.drop(index="all")
largest_bucket = buckets_only["contribution"].abs().idxmax()
print("largest contribution (in size):", largest_bucket)
# the prose of the solution: MRR's difference lives near the top, not in the tail
assert largest_bucket in buckets_only.index[:2]

# %% [markdown]
# :::{admonition} Solution
# :class: dropdown
# MRR weighs an example by $1/\text{rank}$, so its differences come from the examples
# near the top: the bucket printed above, one of the first two, carries most of the MRR
# difference, the opposite of the mean rank, whose difference grows with the rank. Two
# models can therefore be ordered one way by MRR (or HR@10) and the other
# way by mean rank without any contradiction: they are better on different examples.
# :::
#
# 5. *(think)* Each model's setting is the best of its trials on validation, so its
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
# 6. *(think)* Protocol v3 replaced the history of every movie so far by the last few. Why
#    can that one change move every feature-interaction model, whatever its architecture,
#    by as much as the differences between architectures?
#
# :::{admonition} Solution
# :class: dropdown
# A feature-interaction model learns which movies were watched before $t$ from the history
# field alone (besides the last movie), mean-pooled: each movie of it weighs
# $1/|\text{history}|$. With every movie so far, the last ones, which say most about the
# next, are drowned among hundreds; no interaction, however clever, can recover what the
# pooling threw away, and a window keeps them heavy. The architectures differ in how they
# combine the fields, not in what the fields hold, so a better field can lift them all,
# and a better combination cannot make up for what a field does not hold. (SASRec reads
# the ordered sequence itself, so the window does not change its input.)
# :::
#
# ## Papers vs here
#
# Each model's paper, the setting it recommends, whether that setting was one of the
# trials and whether it won, and what of it is not followed here (from the cards):

# %% tags=["remove-input"]
display(Markdown(markdown_table(papers_table(tuned_models).astype(str))))

# %% [markdown]
# Beyond the settings, three things differ from the papers for every model, by design: the
# task (next-movie prediction with full ranking, not click-through rate prediction on
# Criteo or Avazu), the budget (one embedding size and one optimiser for every model, so
# that the comparison measures architectures rather than budgets) and the evaluation (every
# movie ranked, as {cite}`krichene2020sampled` recommend, never a sample of negatives).
#
# ## Reproducing this chapter
#
# - `make tune` runs every tuning trial that is not on record and writes the tuning record
#   (`featint/records/tuning/`); run it before `make run` after changing a search space.
# - `make run` (or `featint compare`) retrains every model with seeds 0, 1, 2 and rewrites
#   the comparison's record; `featint compare --models fm,ffm --num-seeds 1` runs a subset;
#   `--quick` is a smoke test. An interrupted run continues with `--resume`.
# - `make peers` trains the library twins (`featint/records/peers`), `make ablation` the one-change
#   variants (`featint/records/ablation`); both are long.
# - `make bench` measures training throughput, ranking time and memory per model.
# - Then re-execute this notebook: every number and sentence above comes from those records
#   or from a cell of this notebook.
