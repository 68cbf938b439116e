"""The next-movie task: examples, split, negatives (the book's page ``book/protocol.md``
states the protocol in full).

Every rating at position ``t >= 1`` of a user's time-ordered sequence is one example: the
context is what was known just before ``t``, the target is the movie rated at ``t``. Ratings
of one user within the same second have no knowable order; protocols v2 and v3 put them in a
fixed pseudo-random order (:func:`tie_key`), protocol v1 put them in movie-id order, which
leaked the next movie through its id (chapter 00 shows how much). Protocol v3 keeps v2's
examples and split and changes one feature: the history bag holds the last ``W`` movies
watched before ``t`` instead of all of them.

The features themselves (fields, schema, sparse batches) live in :mod:`featint.features`;
the names are re-exported here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike

from featint.cost import check_memory, task_bytes
from featint.data import MovieLens
from featint.features import (  # noqa: F401 (re-exported)
    AGE_EDGES,
    GAP_EDGES,
    YEAR_EDGES,
    Features,
    Field,
    Schema,
    build_features,
    history_slots,
)

#: The protocol :func:`build_task` follows unless told otherwise, and the ones it knows.
PROTOCOL = 3
PROTOCOLS = (1, 2, 3)
#: The history window of each protocol: the last ``W`` movies before ``t`` (None: all). v3's
#: was chosen on validation by ``make window`` (its record: featint/records/protocol/window.json,
#: which a test holds this value to), and so was leaving out a second, all-history bag.
WINDOWS: dict[int, int | None] = {1: None, 2: None, 3: 10}
#: The salt of protocol v2's tie key (:func:`tie_key`); changing it is a new protocol.
TIE_SALT = "featint-protocol-v2"

#: Split codes in :attr:`NextMovieTask.split`.
FIT, VALID, TEST = 0, 1, 2
SPLIT_CODES = {"fit": FIT, "valid": VALID, "test": TEST}
#: The periods a counting baseline may learn from: the ratings before each user's validation
#: examples (to be scored on validation) or before their test examples (to be scored on test).
PERIODS = {"fit": (FIT,), "train": (FIT, VALID)}

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


class NextMovieTask:
    """Examples, features, split and negatives of the next-movie task, held as arrays.

    Build it with :func:`build_task`. Example ``e`` is user ``user[e]`` at position ``t[e]``
    of their sequence with target movie ``target[e]`` (0-based movie index) and split code
    ``split[e]`` (:data:`FIT`, :data:`VALID` or :data:`TEST`). ``dataset`` names the release
    the task was built from (``"ml-100k"``, ``"ml-1m"``, ... or ``"synthetic"``).
    """

    dataset: str = "ml-100k"

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

    def sequence(self, ex: np.ndarray, max_len: int) -> np.ndarray:
        """The last ``min(t, max_len)`` movies watched before ``t`` for examples ``ex``, in the
        order watched, as movie index + 1 (0 is padding), left-padded: ``(batch, width)`` int64
        with ``width = min(max_len, max t)``, the movie at position ``t - 1`` in the last column.
        The same movies, in the same order, as the end of :meth:`history`."""
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        t = self.t[ex]
        width = max(min(int(t.max(initial=0)), max_len), 1)
        pos = t[:, None] - width + np.arange(width)[None, :]  # column j: position t - width + j
        real = pos >= np.maximum(t - max_len, 0)[:, None]     # in the prefix, and in the cap
        flat = np.where(real, self.seq_start[self.user[ex]][:, None] + pos, 0)
        return np.where(real, self.seq_items[flat] + 1, 0)

    def context(self, ex: np.ndarray, sequence_length: int | None = None) -> Features:
        """Context features of examples ``ex``: the fixed slots, then each history bag
        (``history``: the last :attr:`window` movies before ``t``, all of them when the
        window is None; ``history_all``, where the task has it: every movie before ``t``);
        with ``sequence_length``, also the ordered prefix ``seq`` (:meth:`sequence`)."""
        items, mask = self.history(ex)
        idx, val, field = [self.ctx_idx[ex]], [self.ctx_val[ex]], [self.ctx_field]
        for name, number in self.history_fields.items():
            window = self.window if name == "history" else None
            h_idx, h_val = history_slots(items, mask, self.schema.field(name).offset, window)
            idx.append(h_idx)
            val.append(h_val)
            field.append(np.full(h_idx.shape[1], number))
        seq = (None if sequence_length is None else
               torch.from_numpy(self.sequence(ex, sequence_length)))
        return Features(torch.from_numpy(np.concatenate(idx, axis=1)),
                        torch.from_numpy(np.concatenate(val, axis=1)),
                        torch.from_numpy(np.concatenate(field)), seq)

    def context_for(self, model: object, ex: np.ndarray) -> Features:
        """The context of examples ``ex`` as ``model`` reads it: :meth:`context`, with the
        ordered prefix when the model declares a ``sequence_length`` (a sequence model such
        as SASRec); every other model gets exactly ``context(ex)``."""
        length = getattr(model, "sequence_length", None)
        return self.context(ex) if length is None else self.context(ex, sequence_length=length)

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


def build_task(ml: MovieLens, protocol: int = PROTOCOL, window: int | None | str = "protocol",
               history_all: bool = False) -> NextMovieTask:
    """Turn the MovieLens tables into the examples, features and split of ``protocol``
    (:data:`PROTOCOL` unless asked for an earlier one, which chapter 00 uses to show what
    each version fixed).

    ``window``: the history bag's window, the last ``window`` movies before ``t`` (None: all
    of them); by default the protocol's (:data:`WINDOWS`). Another window is an experiment on
    the protocol (choosing ``W`` on validation), not the protocol. ``history_all`` adds a
    second bag of every movie watched so far.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; featint knows protocols {PROTOCOLS}")
    if window == "protocol":
        window = WINDOWS[protocol]
    if window is not None and (not isinstance(window, int | np.integer) or window < 1):
        raise ValueError(f"window must be a whole number of at least 1, or None (every "
                         f"movie so far), got {window!r}")
    check_memory(task_bytes(len(ml.ratings), len(ml.users), len(ml.items), len(ml.genres)),
                 f"the next-movie task of {ml.release} ({len(ml.ratings):,} ratings, "
                 f"{len(ml.users):,} users, {len(ml.items):,} movies)",
                 "use a machine with more memory, or a smaller release (a subsample of "
                 "users: featint.synthetic.scaled_movielens shows how cost grows)")
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

    # Examples: every position t >= 1; row e of the example arrays comes from rating e.
    cur = np.flatnonzero(pos >= 1)
    ex_user, ex_t, ex_target = u[cur], pos[cur], i[cur]
    split = split_codes(ex_user, ex_t - 1, seq_len - 1)
    features = build_features(ml, user_ids, item_ids, u, i, r, ts, seq_start[u], cur,
                              history_all)
    return NextMovieTask(
        dataset=ml.release, protocol=protocol, window=None if window is None else int(window),
        schema=features.schema, user=ex_user, t=ex_t, target=ex_target, split=split,
        ctx_idx=features.ctx_idx, ctx_val=features.ctx_val, ctx_field=features.ctx_field,
        history_fields=features.history_fields,
        item_idx=features.item_idx, item_val=features.item_val, item_field=features.item_field,
        seq_items=i, seq_start=seq_start, seq_len=seq_len, pos_of=pos_of,
        user_ids=user_ids, item_ids=item_ids, titles=ml.items.loc[item_ids, "title"].to_numpy(),
        vocabularies=features.vocabularies,
    )


def split_codes(user: np.ndarray, k: np.ndarray, num_examples: np.ndarray) -> np.ndarray:
    """The split code of each example: ``user`` (per example), ``k`` its 0-based number
    among the user's examples, ``num_examples`` per user. Per user in time order, with ``n``
    examples: the last ``ceil(n / 5)`` are test, the last ``ceil(n_train / 10)`` of the
    ``n_train`` before them validation, the rest fit (:func:`split_sizes`)."""
    n_fit, n_val, _ = split_sizes(num_examples)
    split = np.full(len(user), FIT, dtype=np.int8)
    split[k >= n_fit[user]] = VALID
    split[k >= (n_fit + n_val)[user]] = TEST
    return split


def split_sizes(num_examples: ArrayLike) -> tuple[Any, Any, Any]:
    """(fit, valid, test) sizes of a user with ``num_examples`` examples (a number, or an
    array of them): ``n_test = ceil(n / 5)``, ``n_val = ceil((n - n_test) / 10)``."""
    n = np.asarray(num_examples, dtype=np.int64)
    n_test = -(-n // 5)  # ceil in integers: exact for any n
    n_train = n - n_test
    n_val = -(-n_train // 10)
    if n.ndim == 0:
        return int(n_train - n_val), int(n_val), int(n_test)
    return n_train - n_val, n_val, n_test
