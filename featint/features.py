"""The features of the next-movie task: fields, their schema, and sparse feature batches.

Features are sparse ``(index, value)`` pairs in one global index space (index 0 is padding,
value 0 on padding), grouped into named fields (:class:`Field`, :class:`Schema`). A batch of
contexts is a :class:`Features` with ``idx``/``val`` of shape ``(batch, num_slots)`` and
``field`` of shape ``(num_slots,)`` giving each slot's field; items are described the same way,
once per movie, so a model can score a context against one movie, a few, or all of them.

:func:`build_features` computes every field of the protocol from a user's ratings before
``t`` only (``book/protocol.md``); :func:`history_slots` turns the movies watched before ``t``
into the history bag (protocol v3: the last ``W`` of them, each weighing ``1 / W``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

AGE_EDGES = [18, 25, 35, 45, 50, 56]  # the MovieLens-1M age groups
YEAR_EDGES = [1940, 1950, 1960, 1970, 1980, 1985, 1990, 1993, 1995, 1996, 1997, 1998]
#: More year edges for the releases with movies after 1998 (each used up to the latest year).
LATER_YEAR_EDGES = [2000, 2005, 2010, 2015, 2020]
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

    ``seq`` (context side, only for a model that reads the order: one with a
    ``sequence_length``, :meth:`featint.task.NextMovieTask.context_for`): the last movies
    before ``t`` in the order watched, ``(batch, width)`` movie indices plus 1, left-padded
    with 0 (:meth:`featint.task.NextMovieTask.sequence`); None otherwise.

    ``cache`` keeps work that depends on the batch alone, done once however many layers read
    it (:func:`featint.layers.field_sums`); do not change ``idx``/``val`` in place after use.
    """

    idx: torch.Tensor
    val: torch.Tensor
    field: torch.Tensor
    seq: torch.Tensor | None = None
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def to(self, device: torch.device | str) -> Features:
        seq = None if self.seq is None else self.seq.to(device)
        return Features(self.idx.to(device), self.val.to(device), self.field.to(device), seq)


def bucket(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """The bucket of each value: the number of ``edges`` at or below it."""
    return np.searchsorted(np.asarray(edges), values, side="right")


class FieldBuilder:
    """Assigns global feature offsets to fields in the order they are declared."""

    def __init__(self) -> None:
        self.fields: list[Field] = []
        self.next_offset = 1  # 0 is padding

    def add(self, name: str, side: str, kind: str, size: int) -> Field:
        field = Field(name, side, kind, self.next_offset, size)
        self.fields.append(field)
        self.next_offset += size
        return field


@dataclass(frozen=True)
class FeatureArrays:
    """Every example's fixed context slots, the history fields' numbers, and every movie's
    slots (see :func:`build_features`)."""

    schema: Schema
    ctx_idx: np.ndarray      # (examples, fixed context slots) int64
    ctx_val: np.ndarray      # (examples, fixed context slots) float32
    ctx_field: np.ndarray    # (fixed context slots,) field number of each slot
    history_fields: dict[str, int]  # history field name -> its field number
    item_idx: np.ndarray     # (movies, item slots) int64
    item_val: np.ndarray     # (movies, item slots) float32
    item_field: np.ndarray   # (item slots,)
    vocabularies: dict[str, list[str]]  # field -> the display name of each of its features


def bucket_names(edges: list[float]) -> list[str]:
    """Names of the buckets of :func:`bucket` with these edges: ``<18``, ``18-25``, ..."""
    inner = [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return [f"<{edges[0]:g}", *inner, f">={edges[-1]:g}"]


def running(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per user, the running sum of ``x`` (rows in sequence order) up to and including each
    row; ``starts[row]`` is the first row of that row's user."""
    total = np.cumsum(x, axis=0)
    before_user = np.concatenate([np.zeros_like(total[:1]), total])[starts]
    return total - before_user


def build_features(
    ml: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray, u: np.ndarray,
    i: np.ndarray, r: np.ndarray, ts: np.ndarray, starts: np.ndarray, cur: np.ndarray,
    history_all: bool = False,
) -> FeatureArrays:
    """The protocol's features of the examples at rows ``cur`` of the sorted ratings.

    ``u``, ``i``, ``r``, ``ts``: user index, movie index, rating and timestamp of every rating
    in sequence order; ``starts[row]``: the first row of that rating's user; ``cur``: the rows
    that are examples (position ``t >= 1``); the context of row ``e`` reads rows ``< e`` of the
    same user only: running sums up to row ``e - 1``. ``history_all``: a second bag of every
    movie watched so far beside the history window (the field ``history_all``).
    """
    prev = cur - 1
    num_users, num_items = len(user_ids), len(item_ids)
    seen = np.arange(len(u)) - starts + 1  # ratings seen up to and including this one
    genre_flags = ml.items.loc[item_ids, list(ml.genres)].to_numpy().astype(np.float64)
    g = genre_flags[i]
    mean_rating = running(r, starts) / seen
    genre_count = running(g, starts)
    genre_share = genre_count / seen[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        genre_mean = np.where(genre_count > 0, running(g * r[:, None], starts) / genre_count,
                              3.0)

    users = ml.users.loc[user_ids]
    when = pd.to_datetime(ts[cur], unit="s")
    ex_user = u[cur]
    levels = rating_levels(r)

    fb = FieldBuilder()
    demographics = demographic_fields(users, ex_user)  # those the release has (100K and 1M)
    categorical = {  # name -> (vocabulary size, value per example)
        "user": (num_users, ex_user),
        **{name: (len(names), value) for name, (names, value) in demographics.items()},
        "hour": (24, when.hour.to_numpy()),
        "weekday": (7, when.day_of_week.to_numpy()),
        "gap": (len(GAP_EDGES) + 1, bucket(ts[cur] - ts[prev], GAP_EDGES)),
        "last_movie": (num_items, i[prev]),
        "last_rating": (len(levels), np.searchsorted(levels, r[prev])),
    }
    ctx_idx, ctx_val, ctx_field = [], [], []
    for number, (name, (size, value)) in enumerate(categorical.items()):
        f = fb.add(name, "context", "categorical", size)
        ctx_idx.append(f.offset + value[:, None])
        ctx_val.append(np.ones((len(cur), 1)))
        ctx_field.append([number])
    history_fields = {}
    for name in ("history", "history_all") if history_all else ("history",):
        history_fields[name] = len(fb.fields)
        fb.add(name, "context", "bag", num_items)
    numeric = {  # centred so that "no information" is 0
        "user_mean_rating": (mean_rating[prev, None] - 3.0) / 2.0,
        "genre_share": genre_share[prev],
        "genre_mean_rating": (genre_mean[prev] - 3.0) / 2.0,
    }
    for name, value in numeric.items():
        f = fb.add(name, "context", "numeric", value.shape[1])
        ctx_idx.append(np.broadcast_to(f.offset + np.arange(value.shape[1]), value.shape))
        ctx_val.append(value)
        ctx_field.append([len(fb.fields) - 1] * value.shape[1])

    # Item side: movie id, genres (a bag weighted 1/number of genres), release-year bucket.
    movie = fb.add("movie", "item", "categorical", num_items)
    genre = fb.add("genre", "item", "bag", len(ml.genres))
    released = release_years(ml.items.loc[item_ids])
    edges = year_edges(released)
    year = fb.add("year", "item", "categorical", len(edges) + 2)
    year_bucket = np.where(np.isnan(released), 0, 1 + bucket(np.nan_to_num(released), edges))
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
    vocabularies = {  # the display names of the features of the fields that have them
        "genre": list(ml.genres), **{name: names for name, (names, _) in demographics.items()},
        "year": ["unknown"] + bucket_names(edges), "gap": bucket_names(GAP_EDGES),
        "last_rating": [f"{v:g}" for v in levels],
        "weekday": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}
    return FeatureArrays(
        schema=Schema(tuple(fb.fields), fb.next_offset), vocabularies=vocabularies,
        ctx_idx=np.concatenate(ctx_idx, axis=1).astype(np.int64),
        ctx_val=np.concatenate(ctx_val, axis=1).astype(np.float32),
        ctx_field=np.concatenate(ctx_field).astype(np.int64),
        history_fields=history_fields,
        item_idx=item_idx.astype(np.int64), item_val=item_val.astype(np.float32),
        item_field=item_field.astype(np.int64),
    )


def demographic_fields(users: pd.DataFrame,
                       ex_user: np.ndarray) -> dict[str, tuple[list[str], np.ndarray]]:
    """The user fields a release has, as ``name -> (the name of each feature, value per
    example)``: age (bucketed), gender, occupation, zip (first digit), each where ``users``
    (one row per user index) has the column. Releases after 1M have none: the fields are
    absent, not constant."""
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    if "age" in users:
        out["age"] = (bucket_names(AGE_EDGES),
                      bucket(users["age"].to_numpy(), AGE_EDGES)[ex_user])
    if "gender" in users:
        out["gender"] = (["M", "F"],
                         (users["gender"].to_numpy() == "F").astype(np.int64)[ex_user])
    if "occupation" in users:
        occ_vocab = sorted(users["occupation"].unique())
        out["occupation"] = (list(occ_vocab), np.searchsorted(
            occ_vocab, users["occupation"].to_numpy())[ex_user])
    if "zip" in users:
        zip_first = users["zip"].str[0]
        zip_code = np.where(zip_first.str.isdigit(), zip_first, "x")
        zip_vocab = sorted(set(zip_code))
        out["zip"] = (list(zip_vocab), np.searchsorted(zip_vocab, zip_code)[ex_user])
    return out


def rating_levels(r: np.ndarray) -> np.ndarray:
    """The rating scale: 1 to 5 stars, or 0.5 to 5 in half stars where a rating is not whole
    (10M and later), one feature per level of the ``last_rating`` field."""
    if np.all(r == np.round(r)):
        return np.arange(1.0, 6.0)
    return np.arange(1, 11) / 2.0


def release_years(items: pd.DataFrame) -> np.ndarray:
    """Each movie's release year as a float (NaN: unknown): the ``year`` column, or the year
    of ``release_date`` for tables that have only that."""
    if "year" in items:
        return items["year"].to_numpy(dtype=np.float64)
    return items["release_date"].dt.year.to_numpy(dtype=np.float64)


def year_edges(years: np.ndarray) -> list[int]:
    """The release-year buckets' edges: :data:`YEAR_EDGES`, then those of
    :data:`LATER_YEAR_EDGES` that the latest movie reaches (none for MovieLens 100K)."""
    latest = np.nanmax(years) if np.isfinite(years).any() else YEAR_EDGES[-1]
    return YEAR_EDGES + [e for e in LATER_YEAR_EDGES if e <= latest]


def history_slots(
    items: np.ndarray, mask: np.ndarray, offset: int, window: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The history bag's slots from the movies watched before ``t``.

    ``items``, ``mask``: ``(batch, width)`` movie indices in position order, left-aligned,
    and which of them are real (:meth:`featint.task.NextMovieTask.history`). ``window``: keep
    the last ``window`` real movies (None: all). Returns ``idx``, ``val`` of shape ``(batch,
    width')``: feature indices ``offset + movie`` and weights ``1 / n`` for the ``n`` movies
    kept (a mean), padding (0, 0) elsewhere.
    """
    t = mask.sum(1)
    if window is not None:
        start = np.maximum(t - window, 0)
        cols = np.arange(items.shape[1])
        mask = mask & (cols[None, :] >= start[:, None])
        width = max(int(min(window, items.shape[1])), 1)
        # shift each row left so the kept movies start at column 0: fewer padding slots
        take = np.minimum(start[:, None] + np.arange(width)[None, :], items.shape[1] - 1)
        items = np.take_along_axis(items, take, axis=1)
        mask = np.take_along_axis(mask, take, axis=1) & (np.arange(width)[None, :]
                                                         < (t - start)[:, None])
    n = np.maximum(mask.sum(1), 1).astype(np.float32)
    idx = np.where(mask, offset + items, 0)
    val = np.where(mask, 1.0 / n[:, None], 0.0).astype(np.float32)
    return idx, val
