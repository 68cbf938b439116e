"""The next-movie task (``featint.task``): counts, split, features, negatives, the history
window of protocol v3.

The features are checked against a second, deliberately naive implementation written here: a
plain Python loop over each user's raw ratings that looks only at the positions before ``t``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

from featint.synthetic import synthetic_movielens
from featint.task import (
    AGE_EDGES,
    FIT,
    GAP_EDGES,
    TEST,
    VALID,
    NextMovieTask,
    build_task,
    sequence_order,
    split_sizes,
)

# -- a naive reference -----------------------------------------------------------------------


def raw_sequences(ml) -> dict[int, list[tuple[int, int, int]]]:
    """user id -> [(item id, rating, timestamp)] in protocol v2's order: by timestamp, ties
    by the first 8 bytes of sha256("featint-protocol-v2:<user>:<item>") (computed here)."""
    seqs: dict[int, list[tuple[int, int, int]]] = {}
    for user, item, rating, ts in ml.ratings[["user", "item", "rating", "timestamp"]].itertuples(
        index=False
    ):
        seqs.setdefault(int(user), []).append((int(item), int(rating), int(ts)))
    def key(user: int, row: tuple[int, int, int]) -> tuple[int, int]:
        digest = hashlib.sha256(f"featint-protocol-v2:{user}:{row[0]}".encode()).digest()
        return row[2], int.from_bytes(digest[:8], "big")

    return {u: sorted(s, key=lambda r, u=u: key(u, r)) for u, s in seqs.items()}


def count_edges_at_or_below(value: float, edges: list[float]) -> int:
    return sum(value >= e for e in edges)


class Reference:
    """The raw tables of ``ml`` as plain Python lookups, for the naive recomputation."""

    def __init__(self, ml) -> None:
        self.ml = ml
        self.seqs = raw_sequences(ml)
        self.movie = {item_id: k for k, item_id in enumerate(sorted(ml.items.index))}
        self.flags = {int(i): row.tolist() for i, row in ml.items[list(ml.genres)].iterrows()}

    def history(self, task: NextMovieTask, before: list) -> dict[str, dict[int, float]]:
        """The history bags: the last ``task.window`` movies before ``t`` (all when None),
        each weighing one over their number; ``history_all``, where the task has it, all."""
        window = task.window if task.window is not None else len(before)
        recent = before[-window:]
        out = {"history": {self.movie[item]: 1 / len(recent) for item, _, _ in recent}}
        if "history_all" in task.history_fields:
            out["history_all"] = {self.movie[item]: 1 / len(before) for item, _, _ in before}
        return out

    def context(self, task: NextMovieTask, e: int) -> dict[str, object]:
        """Every context feature of example ``e``, from the raw ratings before ``t``."""
        ml, movie = self.ml, self.movie
        user_id = int(task.user_ids[task.user[e]])
        t = int(task.t[e])
        seq = self.seqs[user_id]
        before = seq[:t]  # strictly before t
        profile = ml.users.loc[user_id]
        zip_prefix = lambda z: z[0] if z[0].isdigit() else "x"  # noqa: E731
        when = datetime.fromtimestamp(seq[t][2], tz=timezone.utc)
        ratings = [r for _, r, _ in before]
        share, genre_mean = [], []
        for g in range(len(ml.genres)):
            rated = [r for item, r, _ in before if self.flags[item][g] == 1]
            share.append(len(rated) / t)
            genre_mean.append((sum(rated) / len(rated) - 3) / 2 if rated else 0.0)
        return {
            "user": sorted(ml.users.index).index(user_id),
            "age": count_edges_at_or_below(profile["age"], AGE_EDGES),
            "gender": int(profile["gender"] == "F"),
            "occupation": sorted(set(ml.users["occupation"])).index(profile["occupation"]),
            "zip": sorted({zip_prefix(z) for z in ml.users["zip"]}).index(
                zip_prefix(profile["zip"])),
            "hour": when.hour,
            "weekday": when.weekday(),
            "gap": count_edges_at_or_below(seq[t][2] - seq[t - 1][2], GAP_EDGES),
            "last_movie": movie[before[-1][0]],
            "last_rating": before[-1][1] - 1,
            **self.history(task, before),
            "user_mean_rating": [(sum(ratings) / t - 3) / 2],
            "genre_share": share,
            "genre_mean_rating": genre_mean,
            "target": movie[seq[t][0]],
        }


def decode_context(task: NextMovieTask, e: int) -> dict[str, object]:
    """The context features of example ``e`` as ``task.context`` gives them, by field name."""
    f = task.context(np.array([e]))
    idx, val, field = f.idx[0].numpy(), f.val[0].numpy().astype(np.float64), f.field.numpy()
    assert idx.shape == val.shape == field.shape
    assert np.all(val[idx == 0] == 0), "padding slots must have value 0"
    out: dict[str, object] = {}
    for number, spec in enumerate(task.schema.context_fields):
        slots = (field == number) & (idx != 0)
        local = idx[slots] - spec.offset
        assert np.all((local >= 0) & (local < spec.size)), spec.name
        if spec.kind == "categorical":
            assert slots.sum() == 1 and val[slots][0] == 1.0, spec.name
            out[spec.name] = int(local[0])
        elif spec.kind == "bag":
            assert len(set(local)) == len(local), "a bag holds each feature once"
            out[spec.name] = dict(zip(local.tolist(), val[slots].tolist(), strict=True))
        else:
            assert local.tolist() == list(range(spec.size)), spec.name
            out[spec.name] = val[slots].tolist()
    return out


def assert_context_matches(ml, task, examples) -> None:
    ref = Reference(ml)
    for e in examples:
        want, got = ref.context(task, int(e)), decode_context(task, int(e))
        assert int(task.target[e]) == want.pop("target")
        assert got.keys() == want.keys()
        for name, value in want.items():
            if name.startswith("history"):
                assert got[name].keys() == value.keys(), (e, name)
                assert got[name] == pytest.approx(value, rel=1e-6), (e, name)
            elif isinstance(value, list):
                assert got[name] == pytest.approx(value, rel=1e-6, abs=1e-6), (e, name)
            else:
                assert got[name] == value, (e, name)


def sample_examples(task: NextMovieTask, size: int, seed: int = 0) -> np.ndarray:
    """A random sample plus the edge cases: the first example (t = 1) and the last of a user."""
    rng = np.random.default_rng(seed)
    first = np.flatnonzero(task.t == 1)[:3]
    last = np.flatnonzero(np.diff(task.user, append=-1) != 0)[:3]
    return np.unique(np.concatenate([rng.choice(len(task.t), size, replace=False), first, last]))


# -- counts and split (real data) ------------------------------------------------------------


def test_counts_match_the_spec(task):
    assert task.counts() == {"users": 943, "movies": 1682, "examples": 99_057,
                             "fit": 70_581, "valid": 8_289, "test": 20_187}
    assert len(task.examples("fit")) + len(task.examples("valid")) + len(
        task.examples("test")) == 99_057


def test_every_user_has_a_test_example(task):
    per_user = np.bincount(task.user[task.examples("test")], minlength=task.num_users)
    assert per_user.min() >= 1


def test_examples_are_every_position_after_the_first(ml, task):
    ratings_per_user = ml.ratings.groupby("user").size().sort_index().to_numpy()
    assert np.array_equal(np.bincount(task.user, minlength=943), ratings_per_user - 1)
    for u in range(task.num_users):
        t = task.t[task.user == u]
        assert np.array_equal(t, np.arange(1, ratings_per_user[u]))


def test_split_is_by_time_within_each_user(ml, task):
    seqs = raw_sequences(ml)
    for u in range(task.num_users):
        mine = task.user == u
        t, split = task.t[mine], task.split[mine]
        n = len(t)
        n_test = math.ceil(n / 5)
        n_val = math.ceil((n - n_test) / 10)
        assert (int((split == FIT).sum()), int((split == VALID).sum()), n_test) == split_sizes(n)
        assert t[split == FIT].max() < t[split == VALID].min()
        assert t[split == VALID].max() < t[split == TEST].min()
        assert np.array_equal(np.sort(t[split == TEST]), np.arange(n - n_test + 1, n + 1))
        assert (split == VALID).sum() == n_val
        # and the positions follow the clock: timestamps never decrease along the sequence
        stamps = [ts for _, _, ts in seqs[int(task.user_ids[u])]]
        assert stamps == sorted(stamps)
        fit_end = max(stamps[k] for k in t[split == FIT])
        assert fit_end <= min(stamps[k] for k in t[split == TEST])


# -- the features: recomputed by hand, no leakage ---------------------------------------------


def test_context_recomputed_by_hand_real(ml, task):
    assert_context_matches(ml, task, sample_examples(task, 150))


def test_context_recomputed_by_hand_synthetic():
    ml = synthetic_movielens(seed=3)
    task = build_task(ml)
    assert_context_matches(ml, task, sample_examples(task, 150))


def test_batched_context_equals_single_contexts(synthetic_task):
    ex = np.array([5, 0, 17, 400, 3000])
    batch = synthetic_task.context(ex)
    assert batch.idx.shape == batch.val.shape and batch.field.shape == batch.idx.shape[1:]
    for row, e in enumerate(ex):
        one = synthetic_task.context(np.array([e]))
        width = one.idx.shape[1]
        assert np.array_equal(batch.idx[row, :width], one.idx[0])
        assert np.array_equal(batch.val[row, :width], one.val[0])
        assert (batch.idx[row, width:] == 0).all() and (batch.val[row, width:] == 0).all()


def later_positions_changed(ml, change_items: bool, seed: int = 0):
    """A copy of ``ml`` where, for every user, ratings (and optionally movies) at positions
    >= a random cut are changed. Returns (copy, cut per user id).

    The cut falls where the clock moves on (a later second than the rating before it): a movie
    changed inside a same-second burst may legitimately move within the burst, since protocol
    v2 orders ties by a hash of (user, movie)."""
    rng = np.random.default_rng(seed)
    ratings = sequence_order(ml.ratings).copy()
    pos = ratings.groupby("user").cumcount().to_numpy()
    ts = ratings["timestamp"].to_numpy()
    moves_on = np.concatenate([[False], ts[1:] > ts[:-1]]) & (pos >= 1)
    cuts = {u: int(rng.choice(pos[rows][moves_on[rows]]))
            for u, rows in ratings.groupby("user").indices.items()}
    later = pos >= ratings["user"].map(cuts).to_numpy()
    new = ratings["rating"].to_numpy().copy()
    new[later] = 6 - new[later]  # mirror 1..5 around 3
    new[later & (new == 3)] = 1  # so every changed rating really changes
    ratings["rating"] = new
    if change_items:
        # give every later position an unused movie: the user's sequence keeps its timestamps
        items = ratings["item"].to_numpy().copy()
        all_items = np.sort(ml.items.index.to_numpy())
        for u, rows in ratings.groupby("user").indices.items():
            rows = rows[later[rows]]
            unused = np.setdiff1d(all_items, items[ratings["user"].to_numpy() == u])
            items[rows] = rng.choice(unused, len(rows), replace=False)
        ratings["item"] = items
    return replace(ml, ratings=ratings.reset_index(drop=True)), cuts


@pytest.mark.parametrize("source", ["synthetic", "real"])
def test_changing_the_future_leaves_the_context_unchanged(source, request):
    if source == "real":
        ml = request.getfixturevalue("ml")
        before = request.getfixturevalue("task")
        changed, cuts = later_positions_changed(ml, change_items=False)
    else:
        ml = synthetic_movielens(seed=1)
        before = build_task(ml)
        # synthetic timestamps are distinct, so new movies cannot reorder the sequence
        changed, cuts = later_positions_changed(ml, change_items=True)
    after = build_task(changed)
    assert np.array_equal(before.user, after.user) and np.array_equal(before.t, after.t)
    cut = np.array([cuts[int(uid)] for uid in before.user_ids])[before.user]
    rng = np.random.default_rng(0)
    some = lambda ex: np.sort(rng.choice(ex, min(len(ex), 3000), replace=False))  # noqa: E731
    # every example at or before its user's cut: all that changed is at positions >= t
    past = np.flatnonzero(before.t <= cut)
    assert np.array_equal(before.ctx_idx[past], after.ctx_idx[past])
    assert np.array_equal(before.ctx_val[past], after.ctx_val[past])
    past = np.union1d(some(past), np.flatnonzero(before.t == cut))  # incl. target changed
    a, b = before.context(past), after.context(past)
    assert np.array_equal(a.idx, b.idx) and np.array_equal(a.val, b.val)
    assert np.array_equal(a.field, b.field)
    # the test can fail: the contexts after the cut do see the changes
    future = some(np.flatnonzero(before.t > cut))
    a, b = before.context(future), after.context(future)
    rows_differ = (a.idx != b.idx).any(1) | (a.val != b.val).any(1)
    assert rows_differ.all()


# -- seen movies and negatives ---------------------------------------------------------------


def test_seen_before_is_the_history(synthetic_task):
    task = synthetic_task
    ex = sample_examples(task, 300, seed=1)
    seen = task.seen_before(ex).numpy()
    items, mask = task.history(ex)
    for row, e in enumerate(ex):
        start = task.seq_start[task.user[e]]
        watched = set(task.seq_items[start:start + task.t[e]].tolist())
        assert set(np.flatnonzero(seen[row]).tolist()) == watched
        assert set(items[row][mask[row]].tolist()) == watched
        assert not seen[row, task.target[e]]


@pytest.mark.parametrize("source", ["synthetic", "real"])
def test_negatives_are_unseen_and_never_the_target(source, request):
    ml = request.getfixturevalue("ml") if source == "real" else synthetic_movielens(seed=2)
    task = request.getfixturevalue("task") if source == "real" else build_task(ml)
    seqs = raw_sequences(ml)
    movie = {item_id: k for k, item_id in enumerate(task.item_ids)}
    ex = sample_examples(task, 200, seed=4)
    neg = task.sample_negatives(ex, 64, np.random.default_rng(0))
    assert neg.shape == (len(ex), 64) and neg.dtype.kind == "i"
    assert neg.min() >= 0 and neg.max() < task.num_items
    later_drawn = 0
    for row, e in enumerate(ex):
        seq = [movie[item] for item, _, _ in seqs[int(task.user_ids[task.user[e]])]]
        t = int(task.t[e])
        assert seq[t] == task.target[e]
        drawn = set(neg[row].tolist())
        assert not drawn & set(seq[:t]), "a movie watched before t"
        assert seq[t] not in drawn, "the target"
        later_drawn += len(drawn & set(seq[t + 1:]))
    assert later_drawn > 0, "movies rated after t are allowed negatives"


def test_negatives_cover_every_allowed_movie(synthetic_task):
    task = synthetic_task
    e = int(np.flatnonzero(task.t == 3)[0])
    neg = task.sample_negatives(np.full(2000, e), 5, np.random.default_rng(0))
    start = task.seq_start[task.user[e]]
    seq = task.seq_items[start:start + task.seq_len[task.user[e]]].tolist()
    allowed = set(range(task.num_items)) - set(seq[:task.t[e] + 1])
    assert set(neg.ravel().tolist()) == allowed  # uniform over all allowed, later ones included
    assert set(seq[task.t[e] + 1:]) <= allowed


def test_negatives_are_seeded(synthetic_task):
    ex = np.arange(0, 4000, 7)
    draw = lambda seed: synthetic_task.sample_negatives(  # noqa: E731
        ex, 4, np.random.default_rng(seed))
    assert np.array_equal(draw(0), draw(0))
    assert not np.array_equal(draw(0), draw(1))


# -- the rest of the task --------------------------------------------------------------------


def test_build_task_is_deterministic():
    a, b = build_task(synthetic_movielens(seed=0)), build_task(synthetic_movielens(seed=0))
    assert a.schema == b.schema
    for name, value in vars(a).items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, getattr(b, name)), name
    ex = np.arange(0, len(a.t), 5)
    assert np.array_equal(a.context(ex).idx, b.context(ex).idx)
    assert np.array_equal(a.context(ex).val, b.context(ex).val)


def test_schema_layout(synthetic_task):
    schema = synthetic_task.schema
    offsets = 1  # index 0 is padding
    for f in schema.fields:
        assert f.offset == offsets
        offsets += f.size
    assert schema.num_features == offsets
    assert [f.name for f in schema.context_fields] == [
        "user", "age", "gender", "occupation", "zip", "hour", "weekday", "gap", "last_movie",
        "last_rating", "history", "user_mean_rating", "genre_share", "genre_mean_rating"]
    assert [f.name for f in schema.item_fields] == ["movie", "genre", "year"]
    with pytest.raises(KeyError):
        schema.field("nope")
    with pytest.raises(ValueError):
        synthetic_task.examples("train")


def test_item_features(ml, task):
    items = task.item_features()
    assert items.idx.shape == items.val.shape == (1682, items.field.shape[0])
    movie, genre, year = task.schema.item_fields
    idx, val, field = items.idx.numpy(), items.val.numpy(), items.field.numpy()
    for k in [0, 1, 266, 1681]:
        item_id = task.item_ids[k]
        assert idx[k, field == 0].tolist() == [movie.offset + k]
        flags = ml.items.loc[item_id, list(ml.genres)].to_numpy()
        members = idx[k, (field == 1) & (idx[k] != 0)] - genre.offset
        assert sorted(members.tolist()) == np.flatnonzero(flags).tolist()
        weights = val[k, (field == 1) & (idx[k] != 0)]
        assert weights == pytest.approx([1 / flags.sum()] * len(members))
        assert year.offset <= idx[k, field == 2][0] < year.offset + year.size
    assert np.all(val[idx == 0] == 0)


def test_popularity_counts_ratings_before_each_test_period(synthetic_task):
    task = synthetic_task
    expected = np.zeros(task.num_items, dtype=np.int64)
    for u in range(task.num_users):
        first_test = task.t[(task.user == u) & (task.split == TEST)].min()
        start = task.seq_start[u]
        np.add.at(expected, task.seq_items[start:start + first_test], 1)
    assert np.array_equal(task.popularity(), expected)


# -- protocol v3: the history window ------------------------------------------------------------
@pytest.mark.parametrize("window", [1, 3, 10, None])
def test_the_window_holds_exactly_the_last_w_positions_before_t(synthetic_ml, window):
    task = build_task(synthetic_ml, protocol=3, window=window, history_all=window == 3)
    assert task.window == window
    examples = sample_examples(task, 60)
    assert_context_matches(synthetic_ml, task, examples)  # against the naive reference
    context = task.context(examples)
    for name, number in task.history_fields.items():
        slots = context.field == number
        weights = context.val[:, slots].double().sum(1).numpy()
        assert weights == pytest.approx(np.ones(len(examples)), abs=1e-6), name  # a mean
        kept = (context.idx[:, slots] > 0).sum(1).numpy()
        t = task.t[examples]
        expected = t if name == "history_all" or window is None else np.minimum(t, window)
        assert np.array_equal(kept, expected), name


def test_the_window_of_the_real_data_against_the_reference(ml):
    task = build_task(ml, protocol=3, window=10)
    assert_context_matches(ml, task, sample_examples(task, 40, seed=3))


@pytest.mark.parametrize("window", [5, None])
def test_changing_the_future_leaves_the_windowed_context_unchanged(synthetic_ml, window):
    """Leakage under v3: ratings at t and later (targets of this and later examples) never
    reach the context of position t, whatever the window."""
    task = build_task(synthetic_ml, protocol=3, window=window, history_all=True)
    ratings = synthetic_ml.ratings.copy()
    changed = replace(synthetic_ml, ratings=ratings)
    e = int(np.flatnonzero(task.t == 12)[0])
    user_id = int(task.user_ids[task.user[e]])
    mine = sequence_order(ratings, 3)
    mine = mine[mine["user"] == user_id]
    future = mine.index[12:]  # the ratings from position t on
    ratings.loc[future, "rating"] = 6 - ratings.loc[future, "rating"]
    unseen = sorted(set(synthetic_ml.items.index) - set(mine["item"]))
    ratings.loc[future, "item"] = unseen[:len(future)]
    other = build_task(changed, protocol=3, window=window, history_all=True)
    before, after = task.context(np.array([e])), other.context(np.array([e]))
    assert np.array_equal(before.idx, after.idx) and np.array_equal(before.val, after.val)


def test_a_window_must_be_a_positive_whole_number(synthetic_ml):
    for bad in (0, -2, 2.5, "10"):
        with pytest.raises(ValueError, match="window must be a whole number"):
            build_task(synthetic_ml, protocol=3, window=bad)
