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

# %% [markdown]
# # 00 · The data and the next-movie task
#
# Every model in this book is trained and judged on one task: **given what a user has done so
# far, which movie will they rate next?** This chapter builds that task from MovieLens 100K,
# step by step, and shows that nothing in it peeks into the future. It ends with the two
# baselines every later model has to beat.
#
# The task follows the blog post this project grew from (the *seed article*), which framed
# next-movie prediction with user, time, history and movie features and judged models by the
# rank of the true next movie. featint fixes that framing as a written protocol
# (`shared/spec/next-movie-task.md`, protocol v1) so the comparison between models is fair.

# %%
# %matplotlib inline
import dataclasses
import hashlib
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from featint import build_task, load_movielens
from featint.baselines import Popularity, RandomScores
from featint.data import ENV_VAR, REQUIRED_FILES, official_sha256
from featint.evaluate import evaluate, leaderboard, quick
from featint.task import AGE_EDGES, GAP_EDGES

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
print(f"${ENV_VAR} = {os.environ.get(ENV_VAR)}")
print("loaded from:", ml.source)

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
digests.assign(**{c: digests[c].str[:16] + "…" for c in ["sha256 (recomputed)", "official"]})

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

# %%
items = ml.items[["title", "release_date"]].copy()
flags = ml.items[list(ml.genres)].to_numpy().astype(bool)
items["genres"] = [", ".join(g for g, on in zip(ml.genres, row, strict=True) if on) for row in flags]
items.head()

# %% [markdown]
# ### A look at the ratings
#
# Four things matter for the task. Most ratings are 3 or 4 stars. Popularity has a long tail:
# a few hundred movies collect most ratings while hundreds have a handful, so "recommend what
# is popular" is a strong baseline. History lengths range from 20 to over 700 ratings per user.
# And ratings arrive in bursts: users rated dozens of movies in one sitting, most of them less
# than a minute after the previous one, half of them in the very same second.

# %%
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
ax[1, 0].set(xscale="log", title="History length per user", xlabel="ratings per user (log)",
             ylabel="users")
ax[1, 0].set_xticks([20, 50, 100, 200, 500], ["20", "50", "100", "200", "500"])
ax[1, 0].xaxis.set_minor_formatter(plt.NullFormatter())

weekly = when.dt.to_period("W").dt.start_time.value_counts().sort_index()
ax[1, 1].bar(weekly.index, weekly.to_numpy(), width=6, color="C0")
ax[1, 1].set(title="Ratings over time", xlabel="week", ylabel="ratings per week")
ax[1, 1].tick_params(axis="x", rotation=30)
fig.tight_layout()
plt.show()
gaps = r.sort_values(["user", "timestamp", "item"]).groupby("user").timestamp.diff().dropna()
print(f"consecutive ratings of a user: {(gaps < 60).mean():.0%} less than a minute apart, "
      f"{(gaps == 0).mean():.0%} in the same second")

# %% [markdown]
# ## From ratings to examples
#
# Sort each user's ratings by time (ties by movie id) into a sequence $i_0, i_1, \dots,
# i_{n}$. **Every position $t \ge 1$ is one example**: its *target* is the movie $i_t$, its
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
# User 42 starts like this. Twister and Courage Under Fire share a timestamp, so the movie id
# breaks the tie. Such ties are frequent (see the bursts above), so within a burst the order,
# and with it which movie counts as "next", is partly an artefact of the movie ids.

# %%
USER, T = 42, 5
ordered = ml.ratings[ml.ratings.user == USER].sort_values(["timestamp", "item"], kind="stable")
raw = ordered.assign(t=np.arange(len(ordered)), when=pd.to_datetime(ordered.timestamp, unit="s"),
                     title=ml.items.title.loc[ordered.item].to_numpy()).set_index("t")
raw.head(T + 2)

# %% [markdown]
# The example at $t = 5$ asks for Mission: Impossible, knowing only the five ratings above it.
# Here are its context features, decoded: each slot holds a feature index (one global index
# space, 0 is padding) and a value. The numeric genre fields have one slot per genre; slots
# with value 0 add nothing to any model and are left out of the table.

# %%
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
        "zip": lambda: "zip " + sorted({z if z.isdigit() else "x" for z in ml.users.zip.str[0]})[j],
        "hour": lambda: f"{j}:00-{j}:59 (UTC)",
        "weekday": lambda: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][j],
        "gap": lambda: "gap " + bucket(GAP_EDGES, j, ["1 s", "1 min", "1 h", "1 day",
                                                      "1 week", "30 days"]),
        "last_rating": lambda: f"{j + 1} stars",
        "user_mean_rating": lambda: "(mean - 3) / 2",
    }
    return readable[field.name]()


rows = []
for idx, val, number in zip(ctx.idx[0].tolist(), ctx.val[0].tolist(), ctx.field.tolist(), strict=True):
    f = fields[number]
    rows.append({"field": f.name, "index": idx, "feature": label(f, idx - f.offset),
                 "value": val})
example = pd.DataFrame(rows)
print("target:", task.titles[task.target[e]], "| split:", ["fit", "valid", "test"][task.split[e]])
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
    "gap": int(np.searchsorted(GAP_EDGES, now["timestamp"] - before.timestamp.iloc[-1], "right")),
    "user_mean_rating": (before.rating.mean() - 3) / 2,
    "genre_share": watched / T,
    "genre_mean_rating": (genre_mean - 3) / 2,
}


def local(name):
    """The within-field indices (as movie ids for movie fields) and values of one field."""
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

# %%
schema = pd.DataFrame([
    {"field": f.name, "side": f.side, "kind": f.kind, "size": f.size, "offset": f.offset}
    for f in task.schema.fields
]).set_index("field")
print(f"{len(schema)} fields, {task.schema.num_features:,} features (index 0 is padding)")
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

# %%
counts = task.counts()
spec = {"users": 943, "examples": 99_057, "fit": 70_581, "valid": 8_289, "test": 20_187}
split_table = pd.DataFrame({"this run": {k: counts[k] for k in spec}, "protocol v1": spec})
if len(ml.ratings) == 100_000:  # the full data set (load_movielens only accepts the official files)
    assert split_table["this run"].equals(split_table["protocol v1"])
display(split_table)

# %% [markdown]
# A few users who rated over several months, short histories to long: each row is one
# user's examples. On the left, the position in the user's own sequence: the last fifth is
# test, validation sits just before it. On the right, the same examples in calendar time: the
# split is per user, not one global date, so one user's test ratings can come before another
# user's training ratings. That is the protocol's choice: each user is predicted from their
# own past, in a data set that spans only seven months.

# %%
ordered_all = ml.ratings.sort_values(["user", "timestamp", "item"], kind="stable")
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
        ax[0].scatter(task.t[sel] / lengths[user], np.full(len(sel), row), s=40, marker="|",
                      color=colors[code], label=names[code] if row == 0 else None)
        ax[1].scatter(ex_time[sel], np.full(len(sel), row), s=40, marker="|", color=colors[code])
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
# ## Evaluation and the baselines
#
# At test time a model scores **all 1,682 movies** for each test example; the movies the user
# watched before $t$ are dropped (they will not be watched "next" again), and the target's
# rank among the rest is
#
# $$\text{rank} = 1 + \#\{\text{higher score}\} + \tfrac12\,\#\{\text{other movies with an equal score}\}.$$
#
# Counting ties as half means a model that scores everything alike gets the rank random
# guessing would get. Over the test examples we report the **mean rank** (the seed article's
# metric), the median rank, the mean reciprocal rank $\text{MRR} = \overline{1/\text{rank}}$,
# the hit rate $\text{HR@10}$ (target in the top 10) and $\text{NDCG@10} = \overline{[\text{rank}
# \le 10]/\log_2(1 + \text{rank})}$, each with a 95% bootstrap interval over test examples.
#
# Two baselines frame every result: **random** scores, and **most popular**: every user gets
# the movies with the most ratings in the training part of the data, filtered the same way.
# (In quick mode, `FEATINT_QUICK=1`, `evaluate` uses 2,000 evenly spread test examples.)

# %%
baselines = {
    "random": evaluate(RandomScores(seed=0), task, progress=False),
    "most popular": evaluate(Popularity(task), task, progress=False),
}
leaderboard({name: ev.row() for name, ev in baselines.items()})

# %% [markdown]
# Random guessing among the $1682 - t$ movies not yet watched has expected rank
# $(1682 - t + 1)/2$; the random baseline lands on it. Most popular is far better on every
# metric: the bar the models of the next chapters have to clear.

# %%
rand, pop = baselines["random"], baselines["most popular"]
expected_rank = ((task.num_items - task.t[rand.examples] + 1) / 2).mean()
print(f"random: mean rank {rand.metrics['mean_rank']:.1f}, expected {expected_rank:.1f}")
assert abs(rand.metrics["mean_rank"] - expected_rank) < 0.02 * expected_rank
assert pop.metrics["hr@10"] > rand.metrics["hr@10"]
assert pop.metrics["mean_rank"] < rand.metrics["mean_rank"]
