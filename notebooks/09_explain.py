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
# # 09 · Why this movie?
#
# Every chapter so far built a score out of feature interactions and measured how well the
# scores rank. None showed, for one recommendation, **which interactions put that movie
# there**. Users of recommender libraries ask for exactly this (which feature pair mattered,
# what the attention weights are) and rarely get an answer. Here every model of the book can
# answer precisely, because every feature model is built from terms of fields and field
# pairs: this chapter takes each model's score for one user, at one moment, and one candidate
# movie apart into those terms, checks that the parts add up to the model's own score, and
# then asks, over the whole test set, which pairs move the rankings. The sequence model
# SASRec has no fields, only the movies watched before, in order: its score is taken apart
# by position of that history instead.
#
# Two lessons come out of the bookkeeping alone. For one context, the terms that involve only
# context fields add **the same amount to every candidate**: they cannot change a ranking,
# however large they are. And AFM's attention weight on a pair is not the pair's importance:
# the weighted term is, and the two can disagree, a question the AFM authors' own repository
# was asked, and one instance of a general finding about attention {cite}`jain2019attention`.
# For the deep models, whose networks do not split into terms by themselves, the chapter uses
# integrated gradients {cite}`sundararajan2017axiomatic`, arranged so that the parts still add
# up to the score.

# %% tags=["hide-input"]
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import HTML, Markdown, display

from featint import build_task, load_movielens
from featint.config import current
from featint.explain import (
    CANDIDATE,
    CONTEXT,
    CROSS,
    SEQUENCE_STEPS,
    STEPS,
    example_of,
    explain,
    pair_ranking,
    positions,
    rank_of,
    summarise,
    top_movies,
)
from featint.explorer import (
    explorer_data,
    explorer_html,
    legend_handles,
    merged_parts,
    position_bars,
    position_parts,
    top_table,
    waterfall,
)
from featint.models import MODELS
from featint.models.deepfm import DeepFM
from featint.models.fm import FM
from featint.models.sasrec import SASRec
from featint.report import ordered
from featint.show import source
from featint.training import trained
from featint.tuning import PAPERS, pending, shown_setting

QUICK = current().quick
print("quick mode:", QUICK, "| torch threads:", torch.get_num_threads())
task = build_task(load_movielens())
FIELDS = [f.name for f in task.schema.fields]
C = len(task.schema.context_fields)

# %% [markdown]
# ## A score as parts
#
# Write a sample as its context $c$ (what was known before the user's next rating) and a
# candidate movie $m$, with the $m_C$ context fields and the $m_M$ movie fields numbered
# together, $f = 1, \dots, m_C + m_M$. Every model of this book scores a sample as
#
# $$\hat y(c, m) = b + \sum_f \phi_f + \sum_{f \le g} \phi_{fg} + D(c, m),$$
#
# a bias $b$, a first-order part $\phi_f = \sum_{i \in f} w_i x_i$ per field, a part per
# field pair, and for the deep models a network's output $D$. The pair parts are the models'
# own terms: FM's $\phi_{fg} = \langle \mathbf e_f, \mathbf e_g \rangle$ (all feature pairs
# across the two fields; $\phi_{ff}$ holds the pairs inside a field such as the history),
# FFM's $\langle \mathbf u_{f,g}, \mathbf u_{g,f} \rangle$, AFM's $a_{fg}\, \mathbf p^\top
# (\mathbf e_f \odot \mathbf e_g)$, the active cross weights of Wide & Deep's wide part.
#
# Each part falls into one of three groups:
#
# - **context only**: $b$, the context fields' parts and the context × context pairs. For one
#   context they are the same for every candidate, so they shift all scores alike and cannot
#   change the order;
# - **candidate only**: the movie's fields and the pairs inside the movie, the same for every
#   user (a popularity-like term);
# - **context × candidate**: the pairs that match this context to this movie.
#
# Only the last two can move a movie up or down one user's list.
#
# ### The deep parts
#
# A network $D(c, m)$ of the feature values has no terms to read off. Its baseline is every
# feature absent (all values 0: the models' own "nothing known", as for padding), and it is
# split exactly into
#
# $$D(c, m) = D(0, 0) + \big[D(c, 0) - D(0, 0)\big] + \big[D(0, m) - D(0, 0)\big] +
# I(c, m),$$
#
# a bias, a context-only part, a candidate-only part and the interaction $I$, what is left.
# The context-only part goes to the context fields by **integrated gradients**
# {cite}`sundararajan2017axiomatic`: along the straight path $\alpha c$ from the baseline,
#
# $$\mathrm{IG}_f = \sum_{i \in f} x_i \int_0^1 \frac{\partial D(\alpha c, 0)}{\partial x_i}\,
# d\alpha, \qquad \sum_f \mathrm{IG}_f = D(c, 0) - D(0, 0),$$
#
# the second identity being the method's *completeness*. The candidate-only part goes to the
# movie's three fields by their exact Shapley values (eight subsets of fields). The
# interaction goes to the pairs (context field $f$, movie field $g$): movie field $g$'s
# Shapley value in the game $v(T) = D(c, m_T) - D(0, m_T)$ (only the movie fields $T$
# present), whose values add up to $I(c, m)$, split over the context fields by integrated
# gradients along $\alpha c$ with $m_T$ fixed. The integrals are computed with the midpoint
# rule; the parts then add up to $D$ up to that rule's error, which every explanation
# reports.
#
# ## The textbook path
#
# To be taken apart, a model's equation must be written out term by term, and the fast code
# of the earlier chapters (one side at a time, all movies by matrix products) is not that.
# So every model file starts with its equation as written, `terms`, for a batch of (context,
# movie) samples. FM's, and DeepFM's, which is FM's plus its network:

# %%
source(FM.terms, DeepFM.terms)

# %% [markdown]
# SASRec (chapter 11) reads no fields but the movies before $t$ in order, $s_1, \dots,
# s_n$. Its equations are written out as two steps: the input embedding $\mathbf E_i =
# \mathbf M_{s_i} + \mathbf P_i$ (`inputs`), and the blocks from $\mathbf E$ to the last
# position's output $\mathbf F_t$, the attention written out rather than torch's fused
# kernel (`output`); the score of movie $m$ is $r_{m,t} = \langle \mathbf F_t, \mathbf M_m
# \rangle$:

# %%
source(SASRec.output)

# %% [markdown]
# There are no field terms to read off, so its score is taken apart by **position**, with
# integrated gradients on $\mathbf E$. The baseline replaces every movie of the history by
# the padding row, $\mathbf M_0 = \mathbf 0$, and keeps the positions: the model is told how
# long the history is, not which movies it holds (the positions are the model's own
# parameters, the same for every user; the movies are what this user did). Along
# $\mathbf E(\alpha) = \mathbf P + \alpha \mathbf M_s$, and because the score is linear in
# $\mathbf F_t$,
#
# $$\mathbf F_t(\mathbf E) = \mathbf F_t(\mathbf P) + \sum_i \mathbf g_i, \qquad
# \mathbf g_i = \sum_j M_{s_i, j} \int_0^1 \frac{\partial \mathbf F_t(\mathbf E(\alpha))}
# {\partial E_{ij}}\, d\alpha,$$
#
# so $r_{m,t} = \langle \mathbf F_t(\mathbf P), \mathbf M_m \rangle + \sum_i \langle
# \mathbf g_i, \mathbf M_m \rangle$: a **candidate-only** part, the score at the baseline
# (the same for every history of that length), and one **context × candidate** part per
# movie of the history. Nothing is **context only**: the score has no bias and no term
# without $\mathbf M_m$, so every part depends on the candidate.

# %% [markdown]
# ## Check: the parts are the scores
#
# The parts of FM's pair (`history`, `genre`) must be the feature-level double sum
# $\sum_{i \in \text{history}} \sum_{j \in \text{genre}} \langle \mathbf v_i, \mathbf v_j
# \rangle x_i x_j$, written out below in float64, and every model's parts must add up to the
# score its fast `forward` gives (the tests check the same for random weights):

# %% tags=["hide-input"]
# Every model as the comparison trains it (its tuned setting); a model whose tuning
# is not complete yet, at its paper's setting (one seed), as its card shows it.
waiting = pending(list(MODELS))
models = {name: trained(name, task, setting=shown_setting(name), progress=False)[0]
          for name in ordered(list(MODELS))}

# %% tags=["remove-input"]
if waiting:
    display(Markdown(" ".join(
        f"{name}'s tuning is not complete ({why}): it is explained here at its paper's "
        f"setting, `{PAPERS[name].setting}`, seed 0, and the comparison, which leaves "
        "out a model whose tuning is not complete, does not hold it yet."
        for name, why in waiting.items())))

# %%
user = int(task.user_ids[41])                       # user 42, at their last position
example = example_of(task, user)
fm = models["fm"]
target = int(task.target[example])
fm_ex = explain(fm, task, example, [target])
v = fm.embedding.embedding.weight.detach().double()
ctx = task.context(np.array([example]))
history, genre = FIELDS.index("history"), FIELDS.index("genre")
item_slots = fm.items.field == genre - C
hist = [(int(i), float(x)) for i, x, f in zip(ctx.idx[0], ctx.val[0], ctx.field,
                                              strict=True)
        if f == history and x != 0]
movie_idx, movie_val = fm.items.idx[target], fm.items.val[target]
gens = [(int(i), float(x))
        for i, x in zip(movie_idx[item_slots], movie_val[item_slots], strict=True)
        if x != 0]
double_sum = sum(float(v[i] @ v[j]) * x * y for i, x in hist for j, y in gens)
part = float(fm_ex.pairs[0, history, genre])
print(f"FM, history x genre: double sum {double_sum:.10f}, part {part:.10f}")
assert abs(double_sum - part) < 1e-9

errors, methods = {}, {}
for name, model in models.items():
    top, _ = top_movies(model, task, example, 10)
    ex = explain(model, task, example, np.append(top, target))
    errors[name], methods[name] = ex.error, ex.method
sums = pd.Series(errors, name="max |sum of parts - score|")
display(sums.to_frame().T.style.format("{:.1e}"))
exact = [n for n in models if methods[n].startswith("exact:")]
sequence = [n for n in models if hasattr(models[n], "sequence_length")]
assert all(errors[n] < 1e-9 for n in exact)
assert all(e < 2e-2 for e in errors.values())

# %% tags=["remove-input"]
deep_names = [n for n in models if n not in exact + sequence]
display(Markdown(
    f"The parts of the exact models ({', '.join(exact)}) add up to their scores to "
    f"{max(errors[n] for n in exact):.0e}, rounding; those of the deep models "
    f"({', '.join(deep_names)}) to {max(errors[n] for n in deep_names):.0e}, and "
    + " and ".join(f"{n}'s, by position of its history, to {errors[n]:.0e}"
                   for n in sequence)
    + f": the error of {STEPS} midpoint steps of the integrals ({SEQUENCE_STEPS} for "
    + " and ".join(sequence) + "), for 11 candidates of one user."))

# %% [markdown]
# ## One user, one moment
#
# User 42 at their last position: the context is everything known before that rating (their
# profile, time, last movie, history), the true next movie is the one they rated there. Each
# model's top 10 (movies they had rated before are dropped, as in the protocol), the true
# next movie marked with ★:

# %% tags=["hide-input"]
first, last = positions(task, user)
display(Markdown(f"User {user}, position {task.t[example]} of their {last + 1} "
                 f"ratings; the true next movie is *{task.titles[target]}*."))
tops = top_table(models, task, example)
display(tops)
ranks = {name: rank_of(model, task, example, target) for name, model in models.items()}
display(pd.Series(ranks, name="rank of the true next movie").to_frame().T)

# %% [markdown]
# Why does a model put its first movie first, and where does it lose the true one? The
# waterfall below starts at 0 and adds DeepFM's parts for both movies, largest first, merged
# by field pair (a field's own parts on its name, exact and deep parts of a pair together);
# the black line is the score. Grey parts are context only: they are the same bars in both
# panels.

# %% tags=["hide-input"]
shown = "deepfm"
top_movie = top_movies(models[shown], task, example, 1)[0][0]
both = explain(models[shown], task, example, [top_movie, target])
fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), sharex=True)
waterfall(axes[0], both, 0, f"{shown}: first, {task.titles[top_movie]}")
waterfall(axes[1], both, 1, f"{shown}: true next, {task.titles[target]} "
          f"(rank {ranks[shown]:g})")
fig.legend(handles=legend_handles(), loc="lower center", ncol=3, frameon=False)
fig.tight_layout(rect=(0, 0.05, 1, 1))
plt.show()

# %% tags=["remove-input"]
gap = both.groups().iloc[0] - both.groups().iloc[1]
assert abs(gap[CONTEXT]) < 1e-9
lead = gap[[CANDIDATE, CROSS]].idxmax()
display(Markdown(
    f"The context-only parts are identical in the two panels (their difference is "
    f"{abs(gap[CONTEXT]):.0e}): the first movie's lead of {gap.sum():.2f} comes from "
    f"the candidate-only parts ({gap[CANDIDATE]:+.2f}) and the context × candidate "
    f"parts ({gap[CROSS]:+.2f}); the larger share is {lead}."))

# %% [markdown]
# ### SASRec: the parts by position
#
# SASRec's parts are not field pairs but the movies of the history, one bar per position
# ($t-1$ is the movie rated just before $t$), for the same two movies: its first, and the
# true next one. What the bars leave out, the score at the baseline (the history's length
# known, not its movies), is the candidate-only part; the bars add up to the context ×
# candidate part.

# %% tags=["hide-input"]
seq_name = sequence[0]
seq_top = top_movies(models[seq_name], task, example, 1)[0][0]
seq_ex = explain(models[seq_name], task, example, [seq_top, target])
fig, axes = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
position_bars(axes[0], seq_ex, 0, f"{seq_name}: first, {task.titles[seq_top]}")
position_bars(axes[1], seq_ex, 1, f"{seq_name}: true next, {task.titles[target]} "
              f"(rank {ranks[seq_name]:g})")
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
def recent_share(parts: pd.DataFrame, k: int = 10) -> float:
    """The share of the parts' absolute sum on the ``k`` most recent movies."""
    size = parts.value.abs()
    return float(size[parts.back <= k].sum() / size.sum())


seq_parts = position_parts(seq_ex, 0)
seq_best = seq_parts.loc[seq_parts.value.abs().idxmax()]
seq_groups = seq_ex.groups().iloc[0]
display(Markdown(
    f"Of {seq_name}'s score for *{task.titles[seq_top]}* "
    f"({float(seq_ex.score[0]):.2f}), "
    f"{seq_groups[CANDIDATE]:+.2f} is the score at the baseline and "
    f"{seq_groups[CROSS]:+.2f} comes from the {len(seq_parts)} movies of the history; "
    f"the one that moves it most is *{seq_best.title}* at t-{seq_best.back} "
    f"({seq_best.value:+.3f}), and the 10 most recent movies hold "
    f"{recent_share(seq_parts):.0%} of the parts' absolute size"
    + (" (quick mode: a model trained for a smoke test)." if QUICK else ".")))

# %% [markdown]
# ## The same user across the models
#
# The same moment through every model: the score of its first movie split into the three
# groups, and the context × candidate pair that adds most to it.

# %% tags=["hide-input"]
rows = {}
for name, model in models.items():
    top = top_movies(model, task, example, 1)[0][0]
    ex = explain(model, task, example, [top])
    groups = ex.groups().iloc[0]
    cross = merged_parts(ex, 0, 100).query("group == @CROSS")
    best = cross.loc[cross.value.idxmax()] if len(cross) else None
    strongest = f"{best.part} ({best.value:+.2f})" if best is not None else "none"
    rows[name] = {"first movie": task.titles[top], "score": float(ex.score[0]),
                  **groups.round(2).to_dict(),
                  "strongest context x candidate pair": strongest}
across = pd.DataFrame(rows).T
display(across)
fig, ax = plt.subplots(figsize=(9, 4))
across[list((CONTEXT, CANDIDATE, CROSS))].astype(float).plot.barh(
    ax=ax, color=["#9e9e9e", "#4c72b0", "#dd8452"])
ax.axvline(0, color="black", lw=0.5)
ax.invert_yaxis()
ax.set_xlabel("sum of the parts of each group (logit)")
ax.set_title(f"User {user}: each model's first movie, its score by group")
plt.show()

# %% [markdown]
# ## Over the test set: which pairs move rankings
#
# One user is an anecdote. Over test examples, for each example its true next movie and nine
# movies the user had not rated are the candidates, and each part is measured by **how much
# it moves between candidates**: the mean over the candidates of $|\phi - \bar\phi|$,
# $\bar\phi$ the part's mean over the ten. A context-only part scores exactly 0 on this
# measure, a context × candidate pair that is large but the same for every movie scores
# little, and one that tells movies apart scores much. The bars are means over the examples
# with 95% bootstrap intervals; each pair (one context field, one movie field) appears once.

# %%
NUM_EXAMPLES = 40 if QUICK else 500
sample = task.examples("test")[np.linspace(0, len(task.examples("test")) - 1,
                                           NUM_EXAMPLES).round().astype(int)]
summaries = {name: summarise(model, task, sample, steps=32)
             for name, model in models.items()}
# field pairs: the feature models (a sequence model's "fields" are its positions, below)
rankings = {name: pair_ranking(s, FIELDS, C) for name, s in summaries.items()
            if name not in sequence}
print(f"{len(sample)} test examples x 10 candidates per model; "
      "largest sum-to-score error: "
      + ", ".join(f"{n} {s['error'].max():.0e}" for n, s in summaries.items()))

# %% tags=["hide-input"]
pair_models = [n for n in rankings if rankings[n]["mean"].max() > 0]
cols = 3
lines = -(-len(pair_models) // cols)
fig, axes = plt.subplots(lines, cols, figsize=(13, 2.6 * lines), squeeze=False)
for ax, name in zip(axes.flat, pair_models, strict=False):
    top = rankings[name].query("mean > 0").head(6)
    y = np.arange(len(top))
    ax.barh(y, top["mean"], xerr=[top["mean"] - top["lo"], top["hi"] - top["mean"]],
            color="#dd8452")
    ax.set_yticks(y, top["pair"], fontsize=8)
    ax.invert_yaxis()
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("mean |part - its mean over candidates|", fontsize=8)
for ax in axes.flat[len(pair_models):]:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
leaders = pd.DataFrame({n: rankings[n]["pair"].head(3).to_list() for n in pair_models},
                       index=["first", "second", "third"]).T
display(leaders)
common = leaders["first"].value_counts()
display(Markdown(
    f"The pair that moves rankings most is *{common.index[0]}* for {common.iloc[0]} of "
    f"the {len(pair_models)} models with context × candidate pairs"
    + (f", *{common.index[1]}* for {common.iloc[1]}" if len(common) > 1 else "")
    + (" (quick mode: models trained for a smoke test, not the comparison's)."
       if QUICK else ".")))

# %% [markdown]
# SASRec has no field pairs to rank. The same measure by position of the history instead,
# over the same examples: how much the movie $k$ positions before $t$ moves its rankings,
# for the 30 most recent positions (95% intervals).

# %% tags=["hide-input"]
seq_summary = summaries[seq_name]
L = models[seq_name].sequence_length
by_position = pair_ranking(seq_summary, [f"t-{L - f}" for f in range(L)] + ["movie"], L)
by_position["back"] = by_position.pair.str.extract(r"t-(\d+) ", expand=False)
by_position["back"] = by_position["back"].astype(int)
by_position = by_position.sort_values("back").set_index("back")
shown_positions = by_position.loc[1:30]
fig, ax = plt.subplots(figsize=(10, 3.2))
ax.bar(shown_positions.index, shown_positions["mean"], color="#dd8452",
       yerr=[shown_positions["mean"] - shown_positions["lo"],
             shown_positions["hi"] - shown_positions["mean"]])
ax.set_xlabel("position in the history, k movies before t (t-k)")
ax.set_ylabel("mean |part - its mean|")
ax.set_title(f"{seq_name}: how much each position moves rankings")
plt.show()

# %% tags=["remove-input"]
leading = by_position["mean"].idxmax()
ahead = by_position.loc[leading, "lo"] > by_position.drop(index=leading)["hi"].max()
recent = by_position.loc[1:10, "mean"].sum() / by_position["mean"].sum()
display(Markdown(
    f"Over these examples the position that moves {seq_name}'s rankings most is "
    f"t-{leading}" + (", ahead of every other beyond the noise" if ahead else
                      ", though not beyond the noise of the others")
    + f"; the 10 most recent movies carry {recent:.0%} of the measure summed over all "
    f"{L} positions"
    + (" (quick mode: a model trained for a smoke test)." if QUICK else ".")))

# %% [markdown]
# ## How much of a score is context only
#
# The context-only parts cannot rank, yet they are part of every score. Per example, the
# share of the score's parts (in absolute value, by group) that is context only, bias
# included, averaged over the examples (SASRec's is 0 by construction: nothing in its score
# is the same for every candidate):

# %% tags=["hide-input"]
def with_interval(values, samples=1000, seed=0):
    """Mean and 95% percentile-bootstrap interval over the examples."""
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean()
             for _ in range(samples)]
    return {"context only": values.mean(), "lo": np.percentile(means, 2.5),
            "hi": np.percentile(means, 97.5)}


share = pd.DataFrame({name: with_interval(s["context_share"])
                      for name, s in summaries.items()}).T
fig, ax = plt.subplots(figsize=(8, 3.5))
y = np.arange(len(share))
ax.barh(y, share["context only"], color="#9e9e9e",
        xerr=[share["context only"] - share["lo"], share["hi"] - share["context only"]])
ax.set_yticks(y, share.index)
ax.invert_yaxis()
ax.set_xlim(0, 1)
ax.set_xlabel("share of the score's parts that is context only (95% interval)")
plt.show()

# %% tags=["remove-input"]
fields_share = share.drop(index=sequence)["context only"]
most, least = fields_share.idxmax(), fields_share.idxmin()
assert (share.loc[sequence, "context only"] == 0).all()
display(Markdown(
    f"For the feature models, from {fields_share.min():.0%} ({least}) to "
    f"{fields_share.max():.0%} ({most}) of a score, by this measure, is the "
    "same for every candidate movie: size that carries no ranking information. "
    + " and ".join(sequence) + " spends none of its score that way: its context "
    "reaches the score only through the dot product with the candidate's embedding."))

# %% [markdown]
# ## AFM: attention against contribution
#
# AFM reports an attention weight $a_{fg}$ per pair, and it is tempting to read it as the
# pair's importance. The AFM authors were asked which to read, the weight or the weighted term
# $a_{fg}\, \mathbf p^\top (\mathbf e_f \odot \mathbf e_g)$, since the term can be negative.
# Over the test examples, per context × candidate pair: its mean attention weight against its
# measure of moving rankings.

# %% tags=["hide-input"]
afm_summary = summaries["afm"]
f_idx, g_idx = np.meshgrid(np.arange(C), np.arange(C, len(FIELDS)), indexing="ij")
f_idx, g_idx = f_idx.ravel(), g_idx.ravel()
attention = afm_summary["attention"].mean(0)[f_idx, g_idx]
moves = afm_summary["pairs"].mean(0)[f_idx, g_idx]
rank_corr = pd.Series(attention).rank().corr(pd.Series(moves).rank())
fig, ax = plt.subplots(figsize=(6.5, 4.5))
ax.scatter(attention, moves, s=14, color="#dd8452")
for i in np.argsort(-moves)[:5]:
    ax.annotate(f"{FIELDS[f_idx[i]]} x {FIELDS[g_idx[i]]}", (attention[i], moves[i]),
                fontsize=8)
ax.set_xlabel("mean attention weight a_fg")
ax.set_ylabel("mean |part - its mean over candidates|")
ax.set_title(f"AFM, context x candidate pairs (Spearman {rank_corr:.2f})")
plt.show()

# %% tags=["remove-input"]
uniform = 1 / int((afm_summary["attention"].mean(0) > 0).sum())
def pair_name(i):
    return f"{FIELDS[f_idx[i]]} x {FIELDS[g_idx[i]]}"


by_attention, by_moves = pair_name(np.argmax(attention)), pair_name(np.argmax(moves))
display(Markdown(
    f"The attention weights lie between {attention.min():.3f} and "
    f"{attention.max():.3f} (uniform over the attended pairs would be {uniform:.3f}); "
    f"the rank correlation between a pair's weight and how much it moves rankings is "
    f"{rank_corr:.2f}. The pair with the largest weight is *{by_attention}*, the pair "
    f"that moves rankings most is *{by_moves}*"
    + (": the same pair." if by_attention == by_moves else ": not the same pair.")
    + " A weight says how much of the softmax a pair gets, not what the pair adds: the "
    "weighted term does, and it is the part reported here."))

# %% [markdown]
# The answer to the AFM authors' question, then: read the weighted term, and read it across
# candidates. The weight is a share of a softmax over pairs whose terms can be small, the
# same for every candidate, or negative; Jain and Wallace {cite}`jain2019attention` found, for
# attention in text models, that weights correlate weakly with gradient-based importance.

# %% [markdown]
# ## Wide & Deep: its strongest crosses
#
# The wide part's crosses are memorised weights, one per (context feature, movie feature)
# pair seen in training. Over the same test examples, the active crosses that add most to
# the true next movie's score:

# %% tags=["hide-input"]
crosses = []
for e in sample[: len(sample) // 2]:
    ex = explain(models["wide_deep"], task, int(e), [int(task.target[e])], steps=8)
    crosses.append(ex.extra["crosses"])
crosses = pd.concat(crosses)
strongest = (crosses.groupby(["cross", "context", "movie"])["part"]
             .agg(["mean", "count"]).sort_values("mean", ascending=False))
display(strongest.head(10).round(3))

# %% [markdown]
# ## Where a deep part agrees with the pairwise part
#
# DeepFM and Wide & Deep have both: pair terms written out (FM's pairs, the wide crosses)
# and a network over the same fields. For each context × candidate pair and example, does
# the network push the true next movie the same way as the pair's own term, relative to the
# other candidates? The share of examples where the signs of the two agree, for the pairs
# that move rankings most:

# %% tags=["hide-input"]
agree_rows = []
for name in ("deepfm", "wide_deep"):
    for e in sample[: len(sample) // 2]:
        rng = np.random.default_rng(int(e))
        negatives = task.sample_negatives(np.array([e]), 9, rng)[0]
        candidates = np.append(int(task.target[e]), negatives)
        ex = explain(models[name], task, int(e), candidates, steps=32)
        exact_gap = (ex.pairs[0] - ex.pairs[1:].mean(0)).numpy()
        deep_gap = (ex.deep_pairs[0] - ex.deep_pairs[1:].mean(0)).numpy()
        for f, g in zip(f_idx, g_idx, strict=True):
            if exact_gap[f, g] != 0 and deep_gap[f, g] != 0:
                agree_rows.append(dict(model=name, pair=f"{FIELDS[f]} x {FIELDS[g]}",
                                       agree=np.sign(exact_gap[f, g]) == np.sign(
                                           deep_gap[f, g]),
                                       exact=exact_gap[f, g], deep=deep_gap[f, g]))
agree = pd.DataFrame(agree_rows)
table = (agree.groupby(["model", "pair"])
         .agg(agree=("agree", "mean"), exact=("exact", "mean"), deep=("deep", "mean"),
              examples=("agree", "size")))
table["size"] = table["exact"].abs() + table["deep"].abs()
table = table.sort_values("size", ascending=False).groupby("model").head(5)
display(table.drop(columns="size").round(3))

# %% tags=["remove-input"]
overall = agree.groupby("model")["agree"].mean()


def verdict(share: float) -> str:
    if share > 0.6:
        return "mostly repeats what the pair terms say"
    if share < 0.4:
        return "mostly pushes against the pair terms"
    return "goes with the pair terms about as often as against them"


display(Markdown(
    "Over all pairs and examples, the network's part and the pair's own term push the "
    "true next movie the same way in "
    + " and ".join(f"{overall[n]:.0%} of cases for {n}" for n in overall.index) + ": "
    + "; ".join(f"{n}'s network {verdict(overall[n])}" for n in overall.index) + "."))

# %% [markdown]
# ## Explore
#
# In JupyterLab, pick a user, a moment and a model: the cell below redraws that model's top
# 10 and the waterfall of its first movie. (It needs a running kernel.)

# %% tags=["remove-output"]
try:
    import ipywidgets as widgets
except ImportError:  # the notebooks extra installs it
    widgets = None


def show_moment(user_id: int, position: int, name: str) -> None:
    e = example_of(task, user_id, min(position, positions(task, user_id)[1]))
    true = int(task.target[e])
    top, _ = top_movies(models[name], task, e, 10)
    ex = explain(models[name], task, e, [top[0], true])
    display(top_table({name: models[name]}, task, e))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharex=True)
    waterfall(axes[0], ex, 0, f"first: {task.titles[top[0]]}")
    waterfall(axes[1], ex, 1, f"true next: {task.titles[true]}")
    fig.tight_layout()
    plt.show()


if widgets is not None:
    picker = widgets.interactive(
        show_moment,
        user_id=widgets.BoundedIntText(value=user, min=int(task.user_ids[0]),
                                       max=int(task.user_ids[-1]), description="user"),
        position=widgets.IntSlider(value=last, min=1, max=last, description="moment"),
        name=widgets.Dropdown(options=list(models), value=shown, description="model"))
    display(picker)

# %% [markdown]
# The published book has no kernel, so here is the same for a fixed sample of users at their
# last position, precomputed: choose a user and a model.

# %% tags=["remove-input"]
spread = np.linspace(0, task.num_users - 1, 4 if QUICK else 12).round().astype(int)
SAMPLE_USERS = [int(u) for u in task.user_ids[spread]]
if user not in SAMPLE_USERS:
    SAMPLE_USERS = [user] + SAMPLE_USERS
explorer = explorer_html(explorer_data(models, task, SAMPLE_USERS, start=shown))
display(HTML(explorer))

# %% tags=["remove-input"]
size = len(explorer.encode())
display(Markdown(
    f"The explorer holds {len(SAMPLE_USERS)} users × {len(models)} models in "
    f"{size / 1024:.0f} KiB of HTML, data and script, with nothing loaded from "
    "elsewhere."))
assert size < 200 * 1024

# %% [markdown]
# ## Summary
#
# - Every model's score is a bias, a part per field, a part per field pair and, for the deep
#   models, a network; written out (`terms`), the parts add up to the score exactly, and the
#   networks' parts by integrated gradients up to the integrals' error.
# - Parts that involve only the context are the same for every candidate: they shift scores,
#   never rankings. Much of a score can be of that kind, except in SASRec, whose score is a
#   dot product with the candidate.
# - SASRec, which has no fields, is taken apart by position of the history: integrated
#   gradients on its input embeddings, from a baseline that keeps the positions and replaces
#   every movie by padding.
# - Which pairs move rankings is measured by how much a part changes between candidates, not
#   by its size.
# - AFM's attention weight is not a pair's importance; the weighted term is.
# - A deep part can agree or disagree with the pair terms written beside it: reading only
#   the pair terms of DeepFM or Wide & Deep misses part of why a movie ranks where it does.
#
# ## Exercises
#
# **1. By hand: a context-only pair.** FM with $k = 1$: the user's gender vector is $2$, the
# hour's $-1$, a movie's genre vector $0.5$ and another movie's $-0.5$. Write the pair parts
# (gender, hour), (gender, genre) and (hour, genre) for both movies. Which part is the same
# for both, and which decides their order?
#
# :::{admonition} Solution
# :class: dropdown
# (gender, hour) $= 2 \cdot (-1) = -2$ for both movies: context only. (gender, genre) is
# $1$ and $-1$, (hour, genre) $-0.5$ and $0.5$: the first movie gets $1 - 0.5 = 0.5$ from
# the context × candidate pairs, the second $-0.5$, so the first ranks higher, whatever the
# $-2$ of the context-only pair.
# :::
#
# **2. Code: integrated gradients by hand.** For $D(x) = \mathrm{ReLU}(x_1 + x_2 - 0.7)$
# at $x = (1, 1)$ with baseline $0$, compute both attributions with the midpoint rule for 4,
# 64 and 1,024 steps and compare their sum with $D(x) - D(0)$.

# %% tags=["hide-input"]
def relu_net(x):
    return torch.relu(x.sum(-1) - 0.7)


point = torch.tensor([1.0, 1.0], dtype=torch.float64)
for steps in (4, 64, 1024):
    alpha = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    path = (alpha[:, None] * point).requires_grad_(True)
    relu_net(path).sum().backward()
    ig = point * path.grad.mean(0)
    print(f"{steps:5d} steps: IG = {ig.numpy().round(4)}, sum {float(ig.sum()):.4f}, "
          f"D(x) - D(0) = {float(relu_net(point) - relu_net(0 * point)):.4f}")
assert abs(float(ig.sum()) - 1.3) < 1e-2

# %% [markdown]
# :::{admonition} Solution
# :class: dropdown
# Along the path the sum is $2\alpha - 0.7$, so the gradient is $(1, 1)$ for $\alpha >
# 0.35$ and 0 before: each attribution is $0.65$ exactly, and they add up to $D(x) - D(0) =
# 1.3$. With 4 steps three of the four midpoints lie past the kink, so each attribution is
# $0.75$ and the sum $1.5$; the error comes from the step that straddles the kink and shrinks
# as $1/\text{steps}$, which is why the chapter reports the error of every explanation, and
# why a ReLU network needs more steps than a smooth one.
# :::
#
# **3. Think: attention and importance.** An AFM gives a pair attention $0.4$ and the pair's
# term $\mathbf p^\top(\mathbf e_f \odot \mathbf e_g)$ is $-0.01$ for every candidate; another
# pair gets $0.05$ and a term that is $+2$ for one movie and $-2$ for another. Which pair
# matters for the ranking?
#
# :::{admonition} Solution
# :class: dropdown
# The second: its weighted term is $\pm 0.1$, a gap of $0.2$ between the two movies; the
# first adds $-0.004$ to both, no gap at all. A large weight on a term that is small, or the
# same for every candidate, moves nothing.
# :::
#
# **4. Code: the context-only share of one score.** For the user above and FM, compute the
# share of the absolute parts of the true movie's score that is context only, with
# `explain(...).groups()`.

# %% tags=["hide-input"]
groups = explain(models["fm"], task, example, [target]).groups().iloc[0]
print(groups.round(3).to_dict())
print(f"context-only share: {abs(groups[CONTEXT]) / groups.abs().sum():.0%}")

# %% [markdown]
# :::{admonition} Solution
# :class: dropdown
# The cell above: `groups()` sums the parts by group, bias included in context only; the
# share is the context-only group's absolute value over the sum of the three.
# :::
#
# ## Paper vs. here
#
# The two papers this chapter rests on, integrated gradients {cite}`sundararajan2017axiomatic`
# and attention as explanation {cite}`jain2019attention`, and what it does with them:

# %% tags=["remove-input"]
paper_vs_here = [
    ("integrated gradients (Sundararajan et al., 2017)",
     "attribution of a network's output to its inputs against a baseline (a black "
     "image, an all-zero embedding), 20 to 300 Riemann steps, checked by completeness",
     f"the baseline is every feature absent; {STEPS} midpoint steps for one user, 32 "
     "over the test set, arranged with exact Shapley values over the movie's fields so "
     "that the parts group into context only, candidate only and context × candidate; "
     "for SASRec, on its input embeddings, the baseline every movie of the history "
     f"replaced by padding, positions kept, {SEQUENCE_STEPS} steps for one user; "
     "completeness errors printed above"),
    ("attention (Jain and Wallace, 2019)",
     "in text classifiers, attention weights correlate weakly with gradient-based "
     "importance (Kendall's tau), and other weights give the same predictions",
     f"AFM's mean attention against how much a pair moves rankings: Spearman "
     f"{rank_corr:.2f} over its context × candidate pairs"),
]
display(Markdown("| | paper | here |\n| --- | --- | --- |\n"
                 + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in paper_vs_here)))
