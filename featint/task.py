"""The next-movie task, protocol v2 (the book's page ``book/protocol.md`` states it in full).

Every rating at position ``t >= 1`` of a user's time-ordered sequence is one example: the
context is what was known just before ``t``, the target is the movie rated at ``t``. Ratings
of one user within the same second have no knowable order; protocol v2 puts them in a fixed
pseudo-random order (:func:`tie_key`), protocol v1 put them in movie-id order, which leaked
the next movie through its id (chapter 00 shows how much).

Features are sparse ``(index, value)`` pairs in one global index space (index 0 is padding,
value 0 on padding), grouped into named fields. A batch of contexts is a :class:`Features`
with ``idx``/``val`` of shape ``(batch, num_slots)`` and ``field`` of shape ``(num_slots,)``
giving each slot's field; items are described the same way, once per movie, so a model can
score a context against one movie, a few, or all 1682 of them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from featint.data import MovieLens

#: The protocol :func:`build_task` follows unless told otherwise, and the ones it knows.
PROTOCOL = 2
PROTOCOLS = (1, 2)
#: The salt of protocol v2's tie key (:func:`tie_key`); changing it is a new protocol.
TIE_SALT = "featint-protocol-v2"

#: Split codes in :attr:`NextMovieTask.split`.
FIT, VALID, TEST = 0, 1, 2
SPLIT_CODES = {"fit": FIT, "valid": VALID, "test": TEST}
#: The periods a counting baseline may learn from: the ratings before each user's validation
#: examples (to be scored on validation) or before their test examples (to be scored on test).
PERIODS = {"fit": (FIT,), "train": (FIT, VALID)}

AGE_EDGES = [18, 25, 35, 45, 50, 56]  # the MovieLens-1M age groups
YEAR_EDGES = [1940, 1950, 1960, 1970, 1980, 1985, 1990, 1993, 1995, 1996, 1997, 1998]
GAP_EDGES = [1, 60, 3600, 86400, 7 * 86400, 30 * 86400]  # seconds since the previous rating


@dataclass(frozen=True)
class Field:
    """A named group of features: one categorical variable, a bag of them, or numbers.

    ``kind``: ``"categorical"`` (one slot, value 1), ``"bag"`` (a variable-length set of
    features whose values are weights), or ``"numeric"`` (``size`` slots, fixed indices,
    real values). Feature ``j`` of the field has global index ``offset + j``.
    """

    name: str
    side: str
    kind: str
    offset: int
    size: int


@dataclass(frozen=True)
class Schema:
    """The fields of the task, context side first, and the size of the feature space."""

    fields: tuple[Field, ...]
    num_features: int  # includes index 0, the padding feature

    @property
    def context_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.side == "context")

    @property
    def item_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.side == "item")

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no field {name!r}; fields are {[f.name for f in self.fields]}")


@dataclass
class Features:
    """Sparse features of a batch: ``idx`` and ``val`` of shape ``(*batch, num_slots)``,
    ``field`` of shape ``(num_slots,)`` with each slot's field number on its side (context
    fields count from 0, item fields count from 0). Padding slots have index 0 and value 0.

    ``cache`` keeps work that depends on the batch alone, done once however many layers read
    it (:func:`featint.layers.field_sums`); do not change ``idx``/``val`` in place after use.
    """

    idx: torch.Tensor
    val: torch.Tensor
    field: torch.Tensor
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def to(self, device: torch.device | str) -> Features:
        return Features(self.idx.to(device), self.val.to(device), self.field.to(device))


def _bucket(values: np.ndarray, edges: list[float]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges), values, side="right")


def tie_key(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Protocol v2's order of a user's ratings that share a second: ``uint64`` keys.

    The key of a rating is the first 8 bytes, read big-endian, of the SHA-256 digest of the
    text ``"featint-protocol-v2:<user id>:<movie id>"`` (the ids of ``u.data``). It is the same
    on every machine, unrelated to the order of the ids, and uses nothing a model sees.
    """
    return np.array([
        int.from_bytes(hashlib.sha256(f"{TIE_SALT}:{u}:{i}".encode()).digest()[:8], "big")
        for u, i in zip(np.asarray(users, dtype=np.int64).tolist(),
                        np.asarray(items, dtype=np.int64).tolist(), strict=True)
    ], dtype=np.uint64)


def sequence_order(ratings: pd.DataFrame, protocol: int = PROTOCOL) -> pd.DataFrame:
    """``ratings`` (columns ``user``, ``item``, ``timestamp``, ...) sorted into each user's
    sequence: by user, then time; ties in time by :func:`tie_key` (v2) or by movie id (v1)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; featint knows protocols {PROTOCOLS}")
    if protocol == 1:
        return ratings.sort_values(["user", "timestamp", "item"], kind="stable")
    key = tie_key(ratings["user"].to_numpy(), ratings["item"].to_numpy())
    # the movie id only orders keys that collide, which none of MovieLens 100K's do
    keyed = ratings.assign(_tie=key)
    return keyed.sort_values(["user", "timestamp", "_tie", "item"], kind="stable").drop(
        columns="_tie")


class _FieldBuilder:
    """Assigns global feature offsets to fields in the order they are declared."""

    def __init__(self) -> None:
        self.fields: list[Field] = []
        self.next_offset = 1  # 0 is padding

    def add(self, name: str, side: str, kind: str, size: int) -> Field:
        field = Field(name, side, kind, self.next_offset, size)
        self.fields.append(field)
        self.next_offset += size
        return field


class NextMovieTask:
    """Examples, features, split and negatives of the next-movie task, held as arrays.

    Build it with :func:`build_task`. Example ``e`` is user ``user[e]`` at position ``t[e]``
    of their sequence with target movie ``target[e]`` (0-based movie index) and split code
    ``split[e]`` (:data:`FIT`, :data:`VALID` or :data:`TEST`).
    """

    def __init__(self, **arrays: object) -> None:
        self.__dict__.update(arrays)
        self.num_users = int(self.seq_start.shape[0])
        self.num_items = int(self.item_idx.shape[0])

    # -- examples -----------------------------------------------------------------------
    def examples(self, split: str) -> np.ndarray:
        """Indices of the examples of ``split`` (``"fit"``, ``"valid"`` or ``"test"``)."""
        if split not in SPLIT_CODES:
            raise ValueError(f"unknown split {split!r}; use one of {list(SPLIT_CODES)}")
        return np.flatnonzero(self.split == SPLIT_CODES[split])

    def counts(self) -> dict[str, int]:
        """Number of users and of examples per split."""
        return {
            "users": self.num_users,
            "movies": self.num_items,
            "examples": int(len(self.split)),
            "fit": int((self.split == FIT).sum()),
            "valid": int((self.split == VALID).sum()),
            "test": int((self.split == TEST).sum()),
        }

    # -- features -----------------------------------------------------------------------
    def history(self, ex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Movies watched before ``t`` for examples ``ex``: padded ``(batch, max_t)`` movie
        indices and a mask of the real (non-padding) entries."""
        t = self.t[ex]
        width = max(int(t.max()), 1)
        cols = np.arange(width)
        mask = cols[None, :] < t[:, None]
        pos = np.where(mask, self.seq_start[self.user[ex]][:, None] + cols[None, :], 0)
        return self.seq_items[pos], mask

    def context(self, ex: np.ndarray) -> Features:
        """Context features of examples ``ex``: the fixed slots, then the history bag."""
        items, mask = self.history(ex)
        hist = self.schema.field("history")
        t = self.t[ex].astype(np.float32)
        hist_idx = np.where(mask, hist.offset + items, 0)
        hist_val = np.where(mask, 1.0 / t[:, None], 0.0).astype(np.float32)
        idx = np.concatenate([self.ctx_idx[ex], hist_idx], axis=1)
        val = np.concatenate([self.ctx_val[ex], hist_val], axis=1)
        field = np.concatenate(
            [self.ctx_field, np.full(hist_idx.shape[1], self.history_field_number)]
        )
        return Features(torch.from_numpy(idx), torch.from_numpy(val), torch.from_numpy(field))

    def item_features(self) -> Features:
        """Features of all movies: ``idx``/``val`` of shape ``(num_items, item_slots)``."""
        return Features(
            torch.from_numpy(self.item_idx), torch.from_numpy(self.item_val),
            torch.from_numpy(self.item_field),
        )

    # -- what the user had seen ---------------------------------------------------------
    def seen_before(self, ex: np.ndarray) -> torch.Tensor:
        """``(batch, num_items)`` bool: movie watched before ``t`` (to drop when ranking)."""
        return torch.from_numpy(self.pos_of[self.user[ex]] < self.t[ex][:, None])

    def sample_negatives(
        self, ex: np.ndarray, num_negatives: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``(batch, num_negatives)`` movies drawn uniformly with replacement from those the
        user had not watched before ``t``, never the target.

        A movie at position ``p`` of the user's sequence is allowed iff ``p > t``: ``p < t`` is
        watched before, ``p == t`` is the target; movies never rated have ``p`` = infinity.
        """
        user = self.user[ex][:, None]
        t = self.t[ex][:, None]
        neg = rng.integers(0, self.num_items, size=(len(ex), num_negatives))
        bad = self.pos_of[user, neg] <= t
        while bad.any():  # rejection sampling; at least 56% of movies are always allowed
            neg[bad] = rng.integers(0, self.num_items, size=int(bad.sum()))
            bad = self.pos_of[user, neg] <= t
        return neg

    # -- what a counting baseline may learn from -------------------------------------------
    def period_end(self, period: str = "train") -> np.ndarray:
        """Per user, the number of leading ratings of their sequence that lie in ``period``.

        ``"train"``: every rating before the user's first test example, the knowledge a test
        example may be scored with; ``"fit"``: every rating before their first validation
        example, for scoring validation (a validation target must never be counted). The
        rating at position 0 (no example) belongs to both.
        """
        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}; use one of {list(PERIODS)}")
        end = np.ones(self.num_users, dtype=np.int64)
        for code in PERIODS[period]:
            sel = self.split == code
            np.maximum.at(end, self.user[sel], self.t[sel] + 1)
        return end

    def period_mask(self, period: str = "train") -> np.ndarray:
        """``(num_ratings,)`` bool over :attr:`seq_items`: the rating lies in ``period``."""
        pos = np.arange(len(self.seq_items)) - np.repeat(self.seq_start, self.seq_len)
        return pos < np.repeat(self.period_end(period), self.seq_len)

    def popularity(self, period: str = "train") -> np.ndarray:
        """Ratings per movie in ``period`` (default: everything before each user's test
        period, the train counts)."""
        known = self.period_mask(period)
        return np.bincount(self.seq_items[known], minlength=self.num_items)

    def transitions(self, period: str = "train") -> np.ndarray:
        """``(num_items, num_items)`` counts of "movie ``a`` rated, then movie ``b`` next" over
        consecutive ratings of a user that both lie in ``period``."""
        known = self.period_mask(period)
        nxt = np.flatnonzero(known[1:] & known[:-1]) + 1
        same_user = np.repeat(np.arange(self.num_users), self.seq_len)
        nxt = nxt[same_user[nxt] == same_user[nxt - 1]]
        counts = np.zeros((self.num_items, self.num_items), dtype=np.int64)
        np.add.at(counts, (self.seq_items[nxt - 1], self.seq_items[nxt]), 1)
        return counts

    def watched(self, period: str = "train") -> np.ndarray:
        """``(num_users, num_items)`` bool: the user rated the movie in ``period``."""
        known = self.period_mask(period)
        users = np.repeat(np.arange(self.num_users), self.seq_len)
        out = np.zeros((self.num_users, self.num_items), dtype=bool)
        out[users[known], self.seq_items[known]] = True
        return out


def build_task(ml: MovieLens, protocol: int = PROTOCOL) -> NextMovieTask:
    """Turn the MovieLens tables into the examples, features and split of ``protocol`` (v2
    unless asked for v1, which chapter 00 uses to show what v2 fixes)."""
    ratings = sequence_order(ml.ratings, protocol)
    user_ids = np.sort(ml.users.index.to_numpy())
    item_ids = np.sort(ml.items.index.to_numpy())
    u = np.searchsorted(user_ids, ratings["user"].to_numpy())
    i = np.searchsorted(item_ids, ratings["item"].to_numpy())
    r = ratings["rating"].to_numpy().astype(np.float64)
    ts = ratings["timestamp"].to_numpy()
    num_users, num_items = len(user_ids), len(item_ids)

    seq_len = np.bincount(u, minlength=num_users)
    seq_start = np.concatenate([[0], np.cumsum(seq_len)[:-1]])
    pos = np.arange(len(u)) - seq_start[u]
    pos_of = np.full((num_users, num_items), np.iinfo(np.int32).max, dtype=np.int32)
    pos_of[u, i] = pos

    # Running sums up to and including each rating; the features of position t read row t-1,
    # so they only ever see positions < t.
    genre_flags = ml.items.loc[item_ids, list(ml.genres)].to_numpy().astype(np.float64)
    g = genre_flags[i]

    def running(x: np.ndarray) -> np.ndarray:
        total = np.cumsum(x, axis=0)
        before_user = np.concatenate([np.zeros_like(total[:1]), total])[seq_start[u]]
        return total - before_user

    seen = pos + 1  # ratings seen up to and including this one
    mean_rating = running(r) / seen
    genre_count = running(g)
    genre_share = genre_count / seen[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        genre_mean = np.where(genre_count > 0, running(g * r[:, None]) / genre_count, 3.0)

    # Examples: every position t >= 1; row e of the example arrays comes from rating e.
    is_ex = pos >= 1
    cur = np.flatnonzero(is_ex)
    prev = cur - 1
    ex_user, ex_t, ex_target = u[cur], pos[cur], i[cur]

    # Split per user in time order: last ceil(n/5) test, last ceil(n_train/10) of the rest
    # validation. n is the number of examples of the user (ratings - 1).
    n = seq_len - 1
    n_test = np.ceil(n / 5).astype(np.int64)
    n_train = n - n_test
    n_val = np.ceil(n_train / 10).astype(np.int64)
    k = ex_t - 1  # 0-based example number within the user
    split = np.full(len(cur), FIT, dtype=np.int8)
    split[k >= (n_train - n_val)[ex_user]] = VALID
    split[k >= n_train[ex_user]] = TEST

    users = ml.users.loc[user_ids]
    zip_first = users["zip"].str[0]
    zip_code = np.where(zip_first.str.isdigit(), zip_first, "x")
    zip_vocab = sorted(set(zip_code))
    occ_vocab = sorted(users["occupation"].unique())
    when = pd.to_datetime(ts[cur], unit="s")

    fb = _FieldBuilder()
    categorical = {  # name -> (vocabulary size, value per example)
        "user": (num_users, ex_user),
        "age": (len(AGE_EDGES) + 1, _bucket(users["age"].to_numpy(), AGE_EDGES)[ex_user]),
        "gender": (2, (users["gender"].to_numpy() == "F").astype(np.int64)[ex_user]),
        "occupation": (len(occ_vocab),
                       np.searchsorted(occ_vocab, users["occupation"].to_numpy())[ex_user]),
        "zip": (len(zip_vocab), np.searchsorted(zip_vocab, zip_code)[ex_user]),
        "hour": (24, when.hour.to_numpy()),
        "weekday": (7, when.day_of_week.to_numpy()),
        "gap": (len(GAP_EDGES) + 1, _bucket(ts[cur] - ts[prev], GAP_EDGES)),
        "last_movie": (num_items, i[prev]),
        "last_rating": (5, r[prev].astype(np.int64) - 1),
    }
    ctx_idx, ctx_val, ctx_field = [], [], []
    for number, (name, (size, value)) in enumerate(categorical.items()):
        field = fb.add(name, "context", "categorical", size)
        ctx_idx.append(field.offset + value[:, None])
        ctx_val.append(np.ones((len(cur), 1)))
        ctx_field.append([number])
    history_field_number = len(fb.fields)
    fb.add("history", "context", "bag", num_items)
    numeric = {  # centred so that "no information" is 0
        "user_mean_rating": (mean_rating[prev, None] - 3.0) / 2.0,
        "genre_share": genre_share[prev],
        "genre_mean_rating": (genre_mean[prev] - 3.0) / 2.0,
    }
    for name, value in numeric.items():
        field = fb.add(name, "context", "numeric", value.shape[1])
        ctx_idx.append(np.broadcast_to(field.offset + np.arange(value.shape[1]), value.shape))
        ctx_val.append(value)
        ctx_field.append([len(fb.fields) - 1] * value.shape[1])

    # Item side: movie id, genres (a bag weighted 1/number of genres), release-year bucket.
    movie = fb.add("movie", "item", "categorical", num_items)
    genre = fb.add("genre", "item", "bag", len(ml.genres))
    year = fb.add("year", "item", "categorical", len(YEAR_EDGES) + 2)
    released = ml.items.loc[item_ids, "release_date"].dt.year.to_numpy()
    year_bucket = np.where(np.isnan(released), 0, 1 + _bucket(np.nan_to_num(released),
                                                               YEAR_EDGES))
    width = max(int(genre_flags.sum(1).max()), 1)
    order = np.argsort(-genre_flags, axis=1, kind="stable")[:, :width]
    has = np.take_along_axis(genre_flags, order, axis=1) > 0
    n_genres = np.maximum(genre_flags.sum(1, keepdims=True), 1)
    item_idx = np.concatenate([
        movie.offset + np.arange(num_items)[:, None],
        np.where(has, genre.offset + order, 0),
        year.offset + year_bucket[:, None],
    ], axis=1)
    item_val = np.concatenate([np.ones((num_items, 1)), has / n_genres,
                               np.ones((num_items, 1))], axis=1)
    item_field = np.array([0] + [1] * width + [2])

    return NextMovieTask(
        protocol=protocol, schema=Schema(tuple(fb.fields), fb.next_offset),
        user=ex_user, t=ex_t, target=ex_target, split=split,
        ctx_idx=np.concatenate(ctx_idx, axis=1).astype(np.int64),
        ctx_val=np.concatenate(ctx_val, axis=1).astype(np.float32),
        ctx_field=np.concatenate(ctx_field).astype(np.int64),
        history_field_number=history_field_number,
        item_idx=item_idx.astype(np.int64), item_val=item_val.astype(np.float32),
        item_field=item_field.astype(np.int64),
        seq_items=i, seq_start=seq_start, seq_len=seq_len, pos_of=pos_of,
        user_ids=user_ids, item_ids=item_ids, titles=ml.items.loc[item_ids, "title"].to_numpy(),
        vocabularies={"genre": list(ml.genres), "occupation": occ_vocab, "zip": zip_vocab,
                      "age": _bucket_names(AGE_EDGES), "year": ["unknown"] + _bucket_names(
                          YEAR_EDGES), "gap": _bucket_names(GAP_EDGES),
                      "gender": ["M", "F"], "last_rating": ["1", "2", "3", "4", "5"],
                      "weekday": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]},
    )


def _bucket_names(edges: list[float]) -> list[str]:
    """Names of the buckets of :func:`_bucket` with these edges: ``<18``, ``18-25``, ..."""
    inner = [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return [f"<{edges[0]:g}", *inner, f">={edges[-1]:g}"]


def split_sizes(num_examples: int) -> tuple[int, int, int]:
    """(fit, valid, test) sizes of one user with ``num_examples`` examples."""
    n_test = math.ceil(num_examples / 5)
    n_train = num_examples - n_test
    n_val = math.ceil(n_train / 10)
    return n_train - n_val, n_val, n_test
