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
# # 00 · The data and the next-movie task
#
# Every model in this book is trained and judged on one task: **given what a user has done so
# far, which movie will they rate next?** This chapter builds that task from MovieLens 100K,
# step by step, and shows that nothing in it peeks into the future. It then shows how a
# harmless-looking detail, the order of ratings given within the same second, decided an
# earlier version of this very comparison, and ends with the ladder of baselines every later
# model has to climb.
#
# The task follows the article this project grew from {cite}`kumar2022sparse`, which
# framed next-movie prediction with user, time, history and movie features and judged models
# by the rank of the true next movie. featint fixes that framing as a written protocol,
# [version 2](../book/protocol.md), so that the comparison between models is fair.

# %% tags=["hide-input"]
# %matplotlib inline
import dataclasses
import hashlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from featint import build_task, load_movielens
from featint.baselines import NextId, Popularity, RandomScores, choose
from featint.cache import trained
from featint.chapter import plot_results, results_table
from featint.data import REQUIRED_FILES, official_sha256
from featint.evaluate import Evaluation, bootstrap, evaluate, metrics, quick
from featint.synthetic import scaled_movielens
from featint.task import AGE_EDGES, GAP_EDGES, sequence_order

pd.set_option("display.max_colwidth", 60)
print("quick mode:", quick())

# %% [markdown]
# ## MovieLens 100K
#
# MovieLens 100K {cite}`harper2015movielens` is a classic data set from the GroupLens research
# group: 100,000 ratings (1 to 5 stars) of 1,682 movies by 943 users of the MovieLens
# recommender, collected from September 1997 to April 1998. Every user has rated at least 20
# movies, and the users' age, gender, occupation and zip code come with it.
#
# Its licence forbids redistribution, so featint never ships the files. `load_movielens` finds
# them, in this order: a folder named by the `FEATINT_DATA_DIR` environment variable, the user
# cache (`~/.cache/featint/ml-100k`), or a download of `ml-100k.zip` from GroupLens (checked
# against its published md5). Whatever the source, every file is checked against the sha256 of
# the official release before it is parsed: a truncated or altered copy is an error that says
# how to fix it, never a silently different data set.

# %%
ml = load_movielens()
print(f"loaded from a folder named {ml.source.name!r}: "
      f"{len(REQUIRED_FILES)} files verified")

# %% [markdown]
# `load_movielens` has already verified every file (it raises `DataError` otherwise). Here we
# recompute the digests ourselves and set them beside the official ones that featint carries
# in `featint/SHA256SUMS`:

# %%
official = official_sha256()
digests = pd.DataFrame([
    {"file": name, "bytes": (ml.source / name).stat().st_size,
     "sha256 (recomputed)": hashlib.sha256((ml.source / name).read_bytes()).hexdigest(),
     "official": official[name]}
    for name in REQUIRED_FILES
]).set_index("file")
digests["verified"] = digests["sha256 (recomputed)"] == digests["official"]
assert digests["verified"].all()
digests.assign(**{c: digests[c].str[:16] + "…"
                  for c in ["sha256 (recomputed)", "official"]})

# %% [markdown]
# ### The three tables
#
# `u.data` holds the ratings: user id, movie id, stars and a unix timestamp.

# %%
print(f"{len(ml.ratings):,} ratings, {ml.ratings.user.nunique()} users, "
      f"{ml.ratings.item.nunique()} movies, "
      f"density {len(ml.ratings) / (len(ml.users) * len(ml.items)):.1%}")
ml.ratings.head()

# %% [markdown]
# `u.user` describes the users,

# %%
ml.users.head()

# %% [markdown]
# and `u.item` the movies: a title, a release date and 19 genre flags (a movie can have several).

# %% tags=["hide-input"]
items = ml.items[["title", "release_date"]].copy()
flags = ml.items[list(ml.genres)].to_numpy().astype(bool)
items["genres"] = [", ".join(g for g, on in zip(ml.genres, row, strict=True) if on)
                   for row in flags]
items.head()

# %% [markdown]
# ### A look at the ratings
#
# Four things matter for the task. Most ratings are 3 or 4 stars. Popularity has a long tail:
# a few hundred movies collect most ratings while hundreds have a handful, so "recommend what
# is popular" is a strong baseline. History lengths range from 20 to over 700 ratings per user.
# And ratings arrive in bursts: users rated dozens of movies in one sitting, most of them less
# than a minute after the previous one, half of them in the very same second.

# %% tags=["hide-input"]
r = ml.ratings
when = pd.to_datetime(r.timestamp, unit="s")
per_item = r.item.value_counts().to_numpy()  # sorted, most rated first
per_user = r.user.value_counts().to_numpy()

fig, ax = plt.subplots(2, 2, figsize=(11, 7))
r.rating.value_counts().sort_index().plot.bar(ax=ax[0, 0], color="C0", rot=0)
ax[0, 0].set(title="Rating distribution", xlabel="stars", ylabel="ratings")

ax[0, 1].plot(np.arange(1, len(per_item) + 1), per_item)
ax[0, 1].set(yscale="log", title="Item popularity: the long tail",
             xlabel="movies, most rated first", ylabel="ratings per movie (log)")
top = int(np.searchsorted(np.cumsum(per_item), 0.5 * len(r)))
ax[0, 1].axvline(top, color="C3", ls="--")
ax[0, 1].annotate(f"the top {top} movies\nhold half the ratings", (top, per_item[top]),
                  xytext=(top + 150, 200), color="C3")

ax[1, 0].hist(per_user, bins=np.geomspace(20, per_user.max() + 1, 30), color="C0")
ax[1, 0].set(xscale="log", title="History length per user",
             xlabel="ratings per user (log)", ylabel="users")
ax[1, 0].set_xticks([20, 50, 100, 200, 500], ["20", "50", "100", "200", "500"])
ax[1, 0].xaxis.set_minor_formatter(plt.NullFormatter())

weekly = when.dt.to_period("W").dt.start_time.value_counts().sort_index()
ax[1, 1].bar(weekly.index, weekly.to_numpy(), width=6, color="C0")
ax[1, 1].set(title="Ratings over time", xlabel="week", ylabel="ratings per week")
ax[1, 1].tick_params(axis="x", rotation=30)
fig.tight_layout()
plt.show()
gaps = r.sort_values(["user", "timestamp"]).groupby("user").timestamp.diff().dropna()
print(f"consecutive ratings of a user: {(gaps < 60).mean():.0%} less than a minute "
      f"apart, {(gaps == 0).mean():.0%} in the same second")

# %% [markdown]
# ## From ratings to examples
#
# Sort each user's ratings by time into a sequence $i_0, i_1, \dots, i_{n}$ (ratings given
# in the same second get a fixed pseudo-random order, the subject of a whole section below).
# **Every position $t \ge 1$ is one example**: its *target* is the movie $i_t$, its
# *context* is what was known just before $t$, computed from positions $< t$ only. Position 0
# has no history and gives no example. The context holds
#
# * who the user is: user id, age bucket, gender, occupation, first zip digit;
# * when it happens: hour, weekday, and the gap since the previous rating (bucketed), all from
#   the timestamp at $t$;
# * what happened before: the last movie and its rating, the *bag* of all movies watched so
#   far (each weighted $1/t$, so the bag is their average), the user's mean rating so far, and
#   per genre the share of movies watched so far and their mean rating.
#
# The candidate movie is described by its id, its genres (a bag weighted $1/\#\text{genres}$)
# and a release-year bucket. `build_task` turns the tables into these examples in a second.

# %%
task = build_task(ml)
task.counts()

# %% [markdown]
# ### One example, by hand
#
# User 42 starts like this (`sequence_order` is the protocol's order; some of these ratings
# share a second, and their order among themselves is the protocol's fixed random one).

# %%
USER, T = 42, 5
ordered = sequence_order(ml.ratings[ml.ratings.user == USER])
raw = ordered.assign(t=np.arange(len(ordered)),
                     when=pd.to_datetime(ordered.timestamp, unit="s"),
                     title=ml.items.title.loc[ordered.item].to_numpy()).set_index("t")
raw.head(T + 2)

# %% [markdown]
# The example at $t = 5$ asks for the movie in row 5, knowing only the five ratings above it.
# Here are its context features, decoded: each slot holds a feature index (one global index
# space, 0 is padding) and a value. The numeric genre fields have one slot per genre; slots
# with value 0 add nothing to any model and are left out of the table.

# %% tags=["hide-input"]
u = int(np.searchsorted(task.user_ids, USER))
e = int(np.flatnonzero((task.user == u) & (task.t == T))[0])
ctx = task.context(np.array([e]))
fields = task.schema.context_fields


def bucket(edges, j, names=None):
    """The interval of bucket j of ``np.searchsorted(edges, x, side="right")``."""
    names = names or [str(x) for x in edges]
    return (f"< {names[0]}" if j == 0 else f">= {names[-1]}" if j == len(edges)
            else f"[{names[j - 1]}, {names[j]})")


def label(field, j):
    """A readable name for feature j of a field."""
    if field.name in ("last_movie", "history", "movie"):
        return task.titles[j]
    if field.name in ("genre_share", "genre_mean_rating", "genre"):
        return ml.genres[j]
    readable = {
        "user": lambda: f"user id {task.user_ids[j]}",
        "age": lambda: "age " + bucket(AGE_EDGES, j),
        "gender": lambda: "MF"[j],
        "occupation": lambda: sorted(ml.users.occupation.unique())[j],
        "zip": lambda: "zip " + sorted({z if z.isdigit() else "x"
                                        for z in ml.users.zip.str[0]})[j],
        "hour": lambda: f"{j}:00-{j}:59 (UTC)",
        "weekday": lambda: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][j],
        "gap": lambda: "gap " + bucket(GAP_EDGES, j, ["1 s", "1 min", "1 h", "1 day",
                                                      "1 week", "30 days"]),
        "last_rating": lambda: f"{j + 1} stars",
        "user_mean_rating": lambda: "(mean - 3) / 2",
    }
    return readable[field.name]()


rows = []
for idx, val, number in zip(ctx.idx[0].tolist(), ctx.val[0].tolist(),
                            ctx.field.tolist(), strict=True):
    f = fields[number]
    rows.append({"field": f.name, "index": idx, "feature": label(f, idx - f.offset),
                 "value": val})
example = pd.DataFrame(rows)
print("target:", task.titles[task.target[e]],
      "| split:", ["fit", "valid", "test"][task.split[e]])
example[example.value != 0].set_index("field")

# %% [markdown]
# Now the same features straight from the raw ratings table, using only the rows before $t$.
# If `build_task` leaked anything from position $t$ or later, these would differ.

# %%
before, now = raw.loc[: T - 1], raw.loc[T]
genres = list(ml.genres)
g = ml.items.loc[before.item, genres].to_numpy()
watched = g.sum(0)
genre_mean = np.where(watched > 0, (g * before.rating.to_numpy()[:, None]).sum(0)
                      / np.maximum(watched, 1), 3.0)
expected = {
    "target": now["item"],
    "last_movie": before.item.iloc[-1],
    "last_rating": before.rating.iloc[-1],
    "history": sorted(before.item),
    "hour": now["when"].hour,
    "weekday": now["when"].weekday(),
    "gap": int(np.searchsorted(GAP_EDGES, now["timestamp"] - before.timestamp.iloc[-1],
                               "right")),
    "user_mean_rating": (before.rating.mean() - 3) / 2,
    "genre_share": watched / T,
    "genre_mean_rating": (genre_mean - 3) / 2,
}


def local(name):
    """The within-field indices (as movie ids for movie fields) and values of one
    field."""
    f = task.schema.field(name)
    part = example[example.field == name]
    j = part["index"].to_numpy() - f.offset
    return (task.item_ids[j] if f.size == task.num_items else j), part.value.to_numpy()


assert task.item_ids[task.target[e]] == expected["target"]
assert task.user_ids[local("user")[0].item()] == USER
for name in ("last_movie", "hour", "weekday", "gap"):
    assert local(name)[0].item() == expected[name], name
assert local("last_rating")[0].item() + 1 == expected["last_rating"]
hist_ids, hist_w = local("history")
assert sorted(hist_ids) == expected["history"] and np.allclose(hist_w, 1 / T)
for name in ("user_mean_rating", "genre_share", "genre_mean_rating"):
    assert np.allclose(local(name)[1], expected[name], atol=1e-6), name
print("every context feature of the example recomputed from ratings before t")

# %% [markdown]
# A second, blunter check: delete everything user 42 rated after $t$, rebuild the task, and
# the context of this example must not change by a single bit.

# %%
future = ordered.index[T + 1 :]
truncated = build_task(dataclasses.replace(ml, ratings=ml.ratings.drop(future)))
e2 = int(np.flatnonzero((truncated.user == u) & (truncated.t == T))[0])
ctx2 = truncated.context(np.array([e2]))
assert np.array_equal(ctx.idx, ctx2.idx) and np.array_equal(ctx.val, ctx2.val)
print(f"removed {len(future)} later ratings of user {USER}: same context")

# %% [markdown]
# ### The fields
#
# Features are grouped into named *fields*; FFM and AFM (later chapters) need to know them.
# A *categorical* field fills one slot with value 1, a *bag* a variable number of slots whose
# values are weights, a *numeric* field a fixed set of slots with real values. Context fields
# describe the situation, item fields the candidate movie.

# %% tags=["hide-input"]
schema = pd.DataFrame([
    {"field": f.name, "side": f.side, "kind": f.kind, "size": f.size,
     "offset": f.offset}
    for f in task.schema.fields
]).set_index("field")
print(f"{len(schema)} fields, {task.schema.num_features:,} features "
      "(index 0 is padding)")
display(schema)

# %% [markdown]
# ## The split: per user, in time order
#
# For a user with $n$ examples, the last $n_\text{test} = \lceil n/5 \rceil$ are the **test**
# set and the $n_\text{train} = n - n_\text{test}$ before them are for training. The last
# $n_\text{val} = \lceil n_\text{train}/10 \rceil$ training examples are the **validation** set,
# used for early stopping and tuning; models **fit** on the rest. The test set is never used
# to choose anything. Every user has test examples, and every test example is later than all
# of its user's training examples.

# %% tags=["hide-input"]
counts = task.counts()
spec = {"users": 943, "examples": 99_057, "fit": 70_581, "valid": 8_289, "test": 20_187}
split_table = pd.DataFrame({"this run": {k: counts[k] for k in spec}, "protocol": spec})
# the official files (load_movielens accepts nothing else)
if len(ml.ratings) == 100_000:
    assert split_table["this run"].equals(split_table["protocol"])
display(split_table)

# %% [markdown]
# A few users who rated over several months, short histories to long: each row is one
# user's examples. On the left, the position in the user's own sequence: the last fifth is
# test, validation sits just before it. On the right, the same examples in calendar time: the
# split is per user, not one global date, so one user's test ratings can come before another
# user's training ratings. That is the protocol's choice: each user is predicted from their
# own past, in a data set that spans only seven months.

# %% tags=["hide-input"]
ordered_all = sequence_order(ml.ratings)
ex_time = pd.to_datetime(
    ordered_all.timestamp.to_numpy()[task.seq_start[task.user] + task.t], unit="s")
span = pd.Series(ex_time).groupby(task.user).agg(lambda x: x.max() - x.min())
lengths = task.seq_len - 1
long_lived = np.flatnonzero(span.to_numpy() > pd.Timedelta(days=90))
picks = long_lived[np.argsort(lengths[long_lived])]
picks = picks[np.linspace(0, len(picks) - 1, 8).round().astype(int)]

names, colors = ["fit", "valid", "test"], ["C0", "C1", "C3"]
fig, ax = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for row, user in enumerate(picks):
    ex = np.flatnonzero(task.user == user)
    for code in range(3):
        sel = ex[task.split[ex] == code]
        ax[0].scatter(task.t[sel] / lengths[user], np.full(len(sel), row), s=40,
                      marker="|", color=colors[code],
                      label=names[code] if row == 0 else None)
        ax[1].scatter(ex_time[sel], np.full(len(sel), row), s=40, marker="|",
                      color=colors[code])
ax[0].set(xlabel="position t / n in the user's sequence", title="Split by position",
          yticks=range(len(picks)),
          yticklabels=[f"user {task.user_ids[p]} (n={lengths[p]})" for p in picks])
ax[0].legend(loc="upper left", bbox_to_anchor=(0, -0.2), ncol=3, markerscale=1.5)
ax[1].set(xlabel="date", title="The same examples in calendar time")
ax[1].tick_params(axis="x", rotation=30)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Negatives for training
#
# The data only says which movie came next, never which movies the user *declined*: it is
# implicit feedback. So training pairs each example's true next movie (label 1) with
# `num_negatives` movies drawn uniformly, with replacement, from those the user had **not**
# watched before $t$ (label 0), redrawn every epoch. Movies the user rates later may be drawn:
# at time $t$ they were not chosen. Eight negatives for our example:

# %%
rng = np.random.default_rng(0)
neg = task.sample_negatives(np.array([e]), 8, rng)[0]
position = task.pos_of[u, neg]
pd.DataFrame({
    "negative": task.titles[neg],
    "rated by the user": [f"later, at t = {p}" if p < task.seq_len[u] else "never"
                          for p in position],
})

# %% [markdown]
# None of them was watched before $t$, none is the target; the same holds over all fit
# examples:

# %%
fit_ex = task.examples("fit")
neg = task.sample_negatives(fit_ex, 4, rng)
seen = task.seen_before(fit_ex).numpy()
assert not np.take_along_axis(seen, neg, axis=1).any()
assert not (neg == task.target[fit_ex][:, None]).any()
print(f"{neg.size:,} negatives drawn: none watched before t, none the target")

# %% [markdown]
# ## Evaluation
#
# At test time a model scores **all 1,682 movies** for each test example; the movies the user
# watched before $t$ are dropped (they will not be watched "next" again), and the target's
# rank among the rest is
#
# $$\text{rank} = 1 + \#\{\text{higher score}\}
#   + \tfrac12\,\#\{\text{other movies with an equal score}\}.$$
#
# Counting ties as half means a model that scores everything alike gets the rank random
# guessing would get. Over the test examples we report the **mean rank** (the metric of the
# article this project grew from), the median rank, the mean reciprocal rank
# $\text{MRR} = \overline{1/\text{rank}}$, the hit rate $\text{HR@10}$ (target in the top 10)
# and $\text{NDCG@10} = \overline{[\text{rank} \le 10]/\log_2(1 + \text{rank})}$, each with a
# 95% bootstrap interval over test examples. (In quick mode, `FEATINT_QUICK=1`, `evaluate`
# uses 2,000 evenly spread test examples.)
#
# The simplest reference points are **random** scores and **most popular**: every user gets
# the movies with the most ratings in the training part of the data, filtered the same way.

# %%
random_scores, most_popular = RandomScores(seed=0), Popularity(task)
first = {"random": evaluate(random_scores, task, progress=False),
         "most popular": evaluate(most_popular, task, progress=False)}
results_table(first)

# %% [markdown]
# Random guessing among the $1682 - t$ movies not yet watched has expected rank
# $(1682 - t + 1)/2$; the random baseline lands on it. Most popular is far better on every
# metric.

# %%
rand, pop = first["random"], first["most popular"]
expected_rank = ((task.num_items - task.t[rand.examples] + 1) / 2).mean()
print(f"random: mean rank {rand.metrics['mean_rank']:.1f}, "
      f"expected {expected_rank:.1f}")
assert abs(rand.metrics["mean_rank"] - expected_rank) < 0.02 * expected_rank
assert pop.metrics["hr@10"] > rand.metrics["hr@10"]
assert pop.metrics["mean_rank"] < rand.metrics["mean_rank"]

# %% [markdown]
# ## Same-second ratings: how a sort key decided a comparison
#
# Half of all consecutive ratings of a user carry **the same timestamp**: MovieLens showed new
# users pages of movies to rate, and a page was often saved in one go. Within such a *burst*
# the true order is unknowable {cite}`woolridge2021pseudo,fan2024movielens`: the data says
# only that these movies were rated in the same second. Yet the task needs an order, since
# every position is "the next movie" of the one before. Here is how long the bursts are:

# %%
seq = sequence_order(ml.ratings)
same_user = seq.user.to_numpy()[1:] == seq.user.to_numpy()[:-1]
tied = same_user & (np.diff(seq.timestamp.to_numpy()) == 0)
# a new burst wherever the tie breaks
burst_id = np.cumsum(np.concatenate([[True], ~tied]))
burst_size = np.bincount(burst_id)[1:]
in_burst = burst_size[burst_size > 1]
print(f"{tied.sum():,} of {same_user.sum():,} consecutive pairs "
      f"({tied.mean():.0%} of all rating pairs) share a second; "
      f"{in_burst.sum():,} ratings sit in {len(in_burst):,} bursts of 2 to "
      f"{in_burst.max()} ratings (median {np.median(in_burst):.0f})")

# %% [markdown]
# **Protocol v1** of this project broke those ties by movie id: inside every burst the movies
# were sorted by id, so the next movie's id was always larger than the last one's. **Protocol
# v2**, the one this book uses ([the protocol](../book/protocol.md)), orders them by a
# pseudo-random key, a SHA-256 hash of the user and movie ids (`featint.task.tie_key`):
# fixed and reproducible, and unrelated to anything a model sees. Among tied pairs, the share
# whose movie id goes up:

# %%
for protocol in (1, 2):
    order = sequence_order(ml.ratings, protocol)
    items, users = order.item.to_numpy(), order.user.to_numpy()
    pair = (users[1:] == users[:-1]) & (np.diff(order.timestamp.to_numpy()) == 0)
    ascending = (items[1:] > items[:-1])[pair].mean()
    print(f"protocol v{protocol}: {ascending:.1%} of same-second pairs "
          "ascend in movie id")
    if protocol == 1:
        assert ascending == 1.0
    else:
        assert 0.45 < ascending < 0.55

# %% [markdown]
# Why the user is part of the key: a key of the movie alone would be one fixed order of all
# movies, shared by every user, and a model could learn it as easily as it learned the id
# order. With the user in the key, two movies come in one order for one user and in the other
# order for another, half and half: nothing is left to learn.
#
# ### A rule that reads the sort key
#
# Under v1 no learning was needed to exploit the order: **"recommend the 10 unwatched movies
# whose ids come right after the last movie's"** (`NextId`) is a rule that knows nothing about
# movies. Here it is under both protocols, beside most popular:

# %%
task_v1 = build_task(ml, protocol=1)
rules = {}
for label, tk in (("v1", task_v1), ("v2", task)):
    rules[f"next id, {label}"] = evaluate(NextId(tk), tk, progress=False)
    rules[f"most popular, {label}"] = evaluate(Popularity(tk), tk, progress=False)
plot_results(rules, metrics=("hr@10",))
plt.show()
nxt1, pop1 = (rules["next id, v1"].intervals["hr@10"],
              rules["most popular, v1"].intervals["hr@10"])
nxt2, pop2 = (rules["next id, v2"].intervals["hr@10"],
              rules["most popular, v2"].intervals["hr@10"])
if not quick():
    assert nxt1[0] > pop1[1]  # v1: the id rule beats most popular, intervals apart
    assert nxt2[1] < pop2[0]  # v2: it falls below most popular

# %% [markdown]
# Under v1 the id rule beat most popular with intervals apart; under v2 it falls below it.
# (It still beats random: movie ids are not random either, neighbouring ids were often entered
# together and share a release period, which is legitimate structure, not a tie artefact.)
#
# ### Where the sort key leaked, and what a trained model made of it
#
# The id order leaked in two places. *Inside* a burst, the next movie always had a larger id
# than the last one. And at the *start* of a burst, the first rating of a new second was
# always the burst's smallest id; small ids are not random either (the catalogue was numbered
# roughly in the order movies entered MovieLens, and its first entries are among its most
# rated), so v1 also quietly put popular movies first. The test examples split by the gap
# before the target: within the same second as the rating before it, or a second or more
# later (the gap of a position is the same under both protocols; which movie stands there is
# not).

# %%
gap = task.schema.field("gap")
gap_column = task.schema.context_fields.index(gap)


def by_gap(model, tk):
    """HR@10 with its 95% bootstrap interval, on the test examples within the same
    second as the previous rating, on the others, and on all."""
    ev = evaluate(model, tk, progress=False, bootstrap_samples=200)
    same = tk.ctx_idx[ev.examples, gap_column] == gap.offset  # bucket 0: under 1 s
    out = {"all": ev}
    for group, mask in (("same second", same), ("new second", ~same)):
        ranks = ev.ranks[mask]
        out[group] = Evaluation(ranks, ev.examples[mask], metrics(ranks),
                                bootstrap(ranks, 200))
    return out


split = {}
for label, tk in (("v1", task_v1), ("v2", task)):
    fm, _ = trained("fm", tk, progress=False)
    for name, model in (("next id", NextId(tk)), ("most popular", Popularity(tk)),
                        ("FM", fm)):
        split[name, label] = by_gap(model, tk)
groups = ("same second", "new second", "all")
gap_table = pd.DataFrame(
    {f"HR@10, {g}": [split[key][g].metrics["hr@10"] for key in split] for g in groups},
    index=pd.MultiIndex.from_tuples(list(split), names=["rule or model", "protocol"]))
gap_table.style.format("{:.4f}")

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained", sharey=True)
for ax, name in zip(axes, ("next id", "most popular", "FM"), strict=True):
    for i, label in enumerate(("v1", "v2")):
        value = np.array([split[name, label][g].metrics["hr@10"] for g in groups])
        lo, hi = np.array([split[name, label][g].intervals["hr@10"] for g in groups]).T
        x = np.arange(len(groups)) + (i - 0.5) * 0.38
        ax.bar(x, value, 0.38, yerr=[value - lo, hi - value], capsize=3,
               label=f"protocol {label}")
    ax.set_xticks(np.arange(len(groups)), ["same\nsecond", "new\nsecond", "all"])
    ax.set(title=name, xlabel="test examples, by the gap before the target")
axes[0].set_ylabel("test HR@10 (95% interval)")
axes[0].legend()
plt.show()

# %% tags=["remove-input"]
hr = {(name, label, g): split[name, label][g].metrics["hr@10"]
      for name, label in split for g in groups}
share_same = np.mean(task.ctx_idx[task.examples("test"), gap_column] == gap.offset)
display(Markdown(
    f"{share_same:.0%} of the test examples come within the same second as the rating "
    "before them. Under v1 the id rule found the target in its top 10 for "
    f"{hr['next id', 'v1', 'same second']:.1%} of them and for "
    f"{hr['next id', 'v1', 'new second']:.1%} of the others; under v2, "
    f"{hr['next id', 'v2', 'same second']:.1%} and "
    f"{hr['next id', 'v2', 'new second']:.1%}. "
    "Most popular, which never looks at ids, still moved: on the first rating of a new "
    f"second it scored {hr['most popular', 'v1', 'new second']:.1%} under v1 and "
    f"{hr['most popular', 'v2', 'new second']:.1%} under v2, the burst-start leak. FM, "
    f"trained and tested under each protocol, fell from {hr['FM', 'v1', 'all']:.1%} to "
    f"{hr['FM', 'v2', 'all']:.1%} overall: from {hr['FM', 'v1', 'same second']:.1%} to "
    f"{hr['FM', 'v2', 'same second']:.1%} within a second and from "
    f"{hr['FM', 'v1', 'new second']:.1%} to {hr['FM', 'v2', 'new second']:.1%} on a "
    "new second."))
if not quick():
    fm1, fm2 = split["FM", "v1"]["all"], split["FM", "v2"]["all"]
    # v2 is harder, beyond the noise
    assert fm2.intervals["hr@10"][1] < fm1.intervals["hr@10"][0]
    # inside a burst, the id rule worked only through the sort key
    assert hr["next id", "v1", "same second"] > 2 * hr["next id", "v2", "same second"]
    popular_first = np.corrcoef(np.arange(task.num_items), task.popularity())[0, 1]
    assert popular_first < 0  # small ids are the more rated movies

# %% [markdown]
# Two lessons. First, v1 was easier for every model, and not only inside bursts: an earlier
# version of this book ranked its models under v1, and part of what it measured was how well
# each read the sort key. The models best able to pair the last movie with the candidate
# gained most, so the order of the leaderboard moved with it. Evaluation choices can decide a
# comparison. Second, under v2 the same-second examples are still the easier ones, and that is
# not an artefact: a movie rated in the same second as the last one was often on the same
# rating page, and the set of movies on a page is real information (the Markov baseline below
# lives on it).
#
# ### Why a random order, and not dropping the bursts
#
# One could drop every rating that shares a second with the one before it. That would delete
# half of the data, and not at random: the rating pages of new users are bursts, so the task
# would lose most of every user's first sessions and become a task about slow raters. The
# order within a second is not knowable, but the *set* of movies in a burst is real
# information, and so is the gap itself (a user on a rating page behaves differently from one
# who comes back a week later). A fixed random order keeps all of that and makes the one
# thing the data does not know, the order inside a second, carry no signal. The bursts still
# make the task easier than a true sequence would be: the target of a same-second example was
# often on the same page as the last movie, and the Markov baseline below exploits exactly
# that, legitimately.
#
# ## The baseline ladder
#
# A number like "HR@10 0.15" means little alone. Counting baselines, carefully tuned, are the
# honest reference for any neural recommender {cite}`ferraridacrema2019progress`, and each
# rung of this ladder adds one idea:
#
# 1. **random**: the floor;
# 2. **most popular**: one list for everyone;
# 3. **Markov**: what other users rated right after the user's last movie, backed off to
#    popularity: $\text{score}(m \mid l) = (T_{lm} + \alpha\, p_m) / (n_l + \alpha)$ with
#    $T_{lm}$ the count of "$l$, then $m$" in the training sequences, $n_l = \sum_m T_{lm}$
#    and $p_m$ the popularity share of $m$;
# 4. **ItemKNN**: how often each movie was watched by the same users as the movies this user
#    has watched so far, summed over the history (cosine, Jaccard or conditional similarity,
#    with a shrinkage that distrusts pairs seen by few users);
# 5. **MF**: matrix factorisation, the FM of [chapter 01](01_fm.ipynb) on the user and movie
#    fields only, trained like every model (chapter 08 sets every model beside it).
#
# Counting baselines have a leak of their own to avoid: a validation example must never be
# scored with counts that include its own target. So a baseline scored on validation counts
# only the **fit** period (every rating before the user's first validation example), one
# scored on test counts the **training** period (fit and validation). The two differ by
# exactly the validation targets:

# %%
valid = task.examples("valid")
added = task.popularity("train") - task.popularity("fit")
assert np.array_equal(added, np.bincount(task.target[valid], minlength=task.num_items))
print(f"the training period adds {added.sum():,} ratings to the fit period: "
      f"the {len(valid):,} validation targets, nothing else")

# %% [markdown]
# Markov and ItemKNN have settings. Each is chosen the way the models' settings are: every
# setting of its search space (three, as for every model: `featint/tuning.py`) is built
# from the fit period and ranks the validation examples, and the best validation MRR wins;
# only then is the baseline rebuilt from the training period and ranked on the test set
# (`featint.baselines.choose`; `make tune` records the same trials in `results/tuning/`).

# %%
choices = {name: choose(name, task, valid_limit=1000 if quick() else None)
           for name in ("markov", "itemknn")}
trials = pd.DataFrame([
    {"baseline": name,
     "setting": ", ".join(f"{k}={v}" for k, v in t["setting"].items()),
     "valid MRR": t["valid_mrr"], "valid HR@10": t["valid_hr@10"],
     "chosen": t["setting"] == choice.setting}
    for name, choice in choices.items() for t in choice.trials
]).set_index(["baseline", "setting"])
share = task.popularity("fit") / task.popularity("fit").sum()
print("alpha p_m < 1 for every movie while alpha < 1 / max p_m = "
      f"{1 / share.max():.0f}")
trials.style.format({"valid MRR": "{:.4f}", "valid HR@10": "{:.4f}"})

# %% [markdown]
# Within one last movie $l$ the Markov chain ranks by $T_{lm} + \alpha p_m$: while
# $\alpha p_m < 1$ for every movie (the bound printed above), the counts decide and popularity
# only breaks their ties, so every such $\alpha$ gives the same ranking. The ladder on the
# test set:

# %%
ladder = {**first, "markov": evaluate(choices["markov"].model, task, progress=False),
          "itemknn": evaluate(choices["itemknn"].model, task, progress=False)}
display(results_table(ladder))
plot_results(ladder)
plt.show()
if not quick():
    for name in ("markov", "itemknn"):  # both climb above most popular, intervals apart
        assert ladder[name].intervals["hr@10"][0] > pop.intervals["hr@10"][1], name

# %% tags=["remove-input"]
best = max(("markov", "itemknn"), key=lambda n: ladder[n].metrics["hr@10"])
display(Markdown(
    f"Both counting baselines climb well above most popular: Markov reaches HR@10 "
    f"{ladder['markov'].metrics['hr@10']:.3f} and ItemKNN "
    f"{ladder['itemknn'].metrics['hr@10']:.3f}, against "
    f"{pop.metrics['hr@10']:.3f} for most popular. Every model of the following "
    "chapters is judged against this ladder."))

# %% [markdown]
# ## Other MovieLens releases
#
# MovieLens 100K is the smallest of the releases GroupLens publishes; 1M, 10M, 20M, 25M and
# 32M have up to 320 times as many ratings. The task carries over unchanged (the same sort,
# tie key, examples, split, negatives and full ranking; the [protocol](../book/protocol.md)
# says how), and `load_movielens(release="ml-1m")` reads any of them into the same three
# tables, each release checked by the md5 GroupLens publishes for its archive. What changes is
# which features exist: 1M still has a users table (its age is already in the seven groups
# featint uses here), but from 10M on there is none, ratings come in half stars, genres
# arrive as a `|`-separated string (some movies have none) and the year only inside the
# title. A field a release lacks is **absent** from the schema, not a constant. featint's
# generator of MovieLens-shaped data (`featint.synthetic.scaled_movielens`) can take the shape
# of those releases; its fields beside MovieLens 100K's:

# %%
later = build_task(scaled_movielens(300, 400, 300 * 40, demographics=False,
                                    half_stars=True, seed=0))
fields = pd.DataFrame({
    "MovieLens 100K": {f.name: f.size for f in task.schema.fields},
    "shaped like 10M to 32M": {f.name: f.size for f in later.schema.fields},
}).fillna(0).astype(int).replace(0, "absent")
demographics = ["age", "gender", "occupation", "zip"]
assert not set(demographics) & {f.name for f in later.schema.fields}
assert later.schema.field("last_rating").size == 10  # half stars: ten levels
display(fields)

# %% [markdown]
# Results of different releases are never compared: every comparison records its release
# beside the protocol version. The larger releases also change what a step costs (the
# README's section *Past MovieLens 100K* measures it): featint estimates the memory of a task
# before building it, and ranks tens of thousands of movies in bounded batches.

# %% [markdown]
# ## Summary
#
# - Every rating at position $t \ge 1$ of a user's time-ordered history is one example; its
#   context is computed from positions $< t$ only, and two independent checks prove it.
# - Per user, the last fifth of the examples is test, the last tenth of the rest validation;
#   models are ranked against all 1,682 movies, watched ones removed.
# - Half of all consecutive ratings share a second; protocol v1 ordered them by movie id, and
#   a rule that reads ids beat most popular. Protocol v2 orders them by a random key.
# - Counting baselines (Markov, ItemKNN) are strong; they count only the period before the
#   examples they score, and choose their settings on validation.
# - Evaluation choices (a sort key, a leak in the counts) can decide a comparison.
#
# ## Exercises
#
# 1. *(by hand)* A user has watched 30 movies. A model gives the target a score of 2.0; among
#    the 1,652 unwatched movies left, 12 others score higher and 3 others score exactly 2.0.
#    What is the target's rank, its reciprocal rank, and does it count as a hit at 10?
#
# :::{admonition} Solution
# :class: dropdown
# rank $= 1 + 12 + \tfrac12 \cdot 3 = 14.5$, reciprocal rank $1/14.5 \approx 0.069$, and it
# is not a hit at 10 (14.5 > 10).
# :::
#
# 2. *(code)* How much of the v1 artefact does a model need? Evaluate the next-id rule
#    under v1 on the same-second test examples only, and on the others.

# %% tags=["hide-input"]
ev = evaluate(NextId(task_v1), task_v1, progress=False, bootstrap_samples=10)
same = task_v1.ctx_idx[ev.examples, gap_column] == gap.offset
for group, mask in (("same second", same), ("1 s or more", ~same)):
    print(f"next id under v1, gap {group}: "
          f"HR@10 {metrics(ev.ranks[mask])['hr@10']:.3f}")

# %% [markdown]
# 3. *(think)* Why must the tie key depend on the user, and not on the movie alone? What
#    could a model learn if the key were a hash of the movie id only?
#
# :::{admonition} Solution
# :class: dropdown
# A key of the movie alone is one fixed order of the 1,682 movies, shared by every user:
# inside every burst the next movie would come later in that order than the last one, and a
# model that pairs the last movie with the candidate could learn the order, as it learned the
# id order of v1. With the user in the key, each pair of movies comes in either order, half
# the time each, so there is nothing to learn.
# :::
#
# 4. *(think)* The Markov baseline counts transitions inside bursts too. Is that a leak? What
#    does its strength say about the task?
#
# :::{admonition} Solution
# :class: dropdown
# It is not a leak: its counts come from the period before the scored examples, and under v2
# the order inside a burst is random, so a count "$l$ then $m$" inside a burst says only that
# $l$ and $m$ were rated together, often on the same rating page. That co-rating is real,
# and a model that sees the last movie may use it too. But it means a part of "next movie"
# prediction on MovieLens is predicting the rest of a rating page, not a viewing sequence.
# :::
#
# 5. *(code)* Count how many of the v2 test targets differ from the v1 test targets, and why
#    the split sizes do not change.

# %% tags=["hide-input"]
test_ex = task.examples("test")
print(f"{(task_v1.target[test_ex] != task.target[test_ex]).sum():,} of "
      f"{len(test_ex):,} test targets differ; the split depends only on the number of "
      "ratings per user")
assert task_v1.counts() == task.counts()
