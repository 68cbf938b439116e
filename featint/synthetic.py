"""A small synthetic data set shaped like MovieLens 100K, with one planted interaction.

Half the movies are Action films, half Romance films, equally popular overall. Men pick their
next movie among Action films ``exp(strength)`` times more often than among Romance films,
women the other way round. The signal lives only in the pair (gender, genre): a linear model
sees two equally popular genres and cannot use it, a model of pairwise interactions can.
Used by the unit tests (seconds, no download) and by the FM notebook's first experiment.

``plant="hour"`` plants another pair instead, (hour, genre): Action films in the afternoon and
evening (from 12:00), Romance films in the night and morning, for everyone, with ratings a day
apart at random times, so that no other field (the user, their history, the last movie) carries
the signal: the explainer's tests look for that pair and no proxy of it.

``plant="last"`` plants an order instead: everyone's next movie is of the genre of the movie
just before it ``exp(strength)`` times more often, whatever their gender and the hour. Only the
last movie carries the signal (earlier ones only through it): a sequence model's explanation
should give the last position of the history the largest part.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from featint.data import MovieLens

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
OCCUPATIONS = ("engineer", "student", "writer", "educator", "other")


def synthetic_movielens(
    num_users: int = 120, num_items: int = 150, min_ratings: int = 20, max_ratings: int = 50,
    strength: float = 2.0, seed: int = 0, plant: str = "gender",
) -> MovieLens:
    """Generate MovieLens-shaped tables (1-based ids, same columns as :func:`load_movielens`).

    Each user rates between ``min_ratings`` and ``max_ratings`` distinct movies, one after the
    other; the movie of the planted genre of their gender (``plant="hour"``: of the hour of the
    rating; ``plant="last"``: of the movie before it) is ``exp(strength)`` times likelier.
    """
    if not 0 < min_ratings <= max_ratings < num_items:
        raise ValueError("need 0 < min_ratings <= max_ratings < num_items")
    if plant not in ("gender", "hour", "last"):
        raise ValueError(f"plant must be 'gender', 'hour' or 'last', got {plant!r}")
    rng = np.random.default_rng(seed)
    female = rng.random(num_users) < 0.5
    users = pd.DataFrame({
        "user": np.arange(1, num_users + 1),
        "age": rng.integers(15, 70, num_users),
        "gender": np.where(female, "F", "M"),
        "occupation": rng.choice(OCCUPATIONS, num_users),
        "zip": [f"{z:05d}" for z in rng.integers(0, 100_000, num_users)],
    }).set_index("user")

    romance = np.arange(num_items) % 2 == 1  # alternate so both halves are alike otherwise
    flags = np.zeros((num_items, len(GENRES)), dtype=np.int64)
    flags[:, GENRES.index("Action")] = ~romance
    flags[:, GENRES.index("Romance")] = romance
    years = rng.integers(1950, 1999, num_items)
    items = pd.DataFrame({
        "item": np.arange(1, num_items + 1),
        "title": [f"Synthetic movie {i + 1} ({y})" for i, y in enumerate(years)],
        "release_date": pd.to_datetime([f"{y}-01-01" for y in years]),
    })
    items = pd.concat([items, pd.DataFrame(flags, columns=list(GENRES))], axis=1)
    items = items.set_index("item")

    rows = []
    clock = 880_000_000
    for u in range(num_users):
        likes = romance == female[u]
        weight = np.where(likes, np.exp(strength), 1.0)
        n = int(rng.integers(min_ratings, max_ratings + 1))
        if plant == "hour":  # a day apart at a random time: the hour is new at every rating
            stamps = clock + 86_400 * np.arange(1, n + 1) + rng.integers(0, 86_400, n)
            afternoon = (stamps // 3600) % 24 >= 12
        order = []
        if plant == "last":  # no preference before the first movie
            weight = np.ones(num_items)
        for step in range(n):  # sequential draws without replacement
            if plant == "hour":
                chosen = weight > 0
                weight = np.where(romance != afternoon[step], np.exp(strength), 1.0) * chosen
            if plant == "last" and order:
                chosen = weight > 0
                weight = np.where(romance == romance[order[-1]], np.exp(strength), 1.0) * chosen
            p = weight / weight.sum()
            i = int(rng.choice(num_items, p=p))
            order.append(i)
            weight[i] = 0.0
        if plant in ("gender", "last"):
            stamps = clock + np.cumsum(rng.integers(1, 5_000, n))
        for step, (i, ts) in enumerate(zip(order, stamps, strict=True)):
            if plant == "hour":
                likes = romance == ((ts // 3600) % 24 < 12)
            if plant == "last":  # liked: of the genre of the movie before it
                likes = romance == romance[order[step - 1]] if step else np.ones_like(romance)
            rating = int(np.clip(round(rng.normal(4.0 if likes[i] else 2.5, 1.0)), 1, 5))
            rows.append((u + 1, i + 1, rating, int(ts)))
    ratings = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return MovieLens(ratings=ratings, users=users, items=items, genres=GENRES,
                     source=Path("<synthetic>"), release="synthetic")


#: Sizes of the real releases a scaled synthetic data set can take: users, movies, ratings
#: (the counts of :data:`featint.data.RELEASES`; movies: those with at least one rating).
SIZES: dict[str, tuple[int, int, int]] = {
    "ml-100k": (943, 1_682, 100_000),
    "ml-1m": (6_040, 3_706, 1_000_209),
    "ml-20m": (138_493, 26_744, 20_000_263),
}
LATER_GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
#: Star shares of MovieLens-like ratings, 1 to 5 stars.
STAR_SHARES = (0.06, 0.11, 0.27, 0.34, 0.22)


def ratings_per_user(num_users: int, num_ratings: int, num_items: int, min_ratings: int = 20,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """How many movies each user rates: at least ``min_ratings``, the rest log-normal (a
    long tail of heavy raters, as in MovieLens), at most half the catalogue, summing to
    ``num_ratings`` exactly (when that is possible)."""
    rng = rng or np.random.default_rng(0)
    cap = max(min_ratings, num_items // 2)
    if not min_ratings * num_users <= num_ratings <= cap * num_users:
        raise ValueError(f"{num_ratings} ratings cannot be spread over {num_users} users "
                         f"with {min_ratings} to {cap} each")
    extra = rng.lognormal(0.0, 1.3, num_users)
    counts = min_ratings + np.floor(extra / extra.sum() * (num_ratings - min_ratings
                                                           * num_users)).astype(np.int64)
    counts = np.minimum(counts, cap)
    short = num_ratings - counts.sum()  # rounding and the cap: hand out one by one
    while short > 0:
        room = np.flatnonzero(counts < cap)
        take = room[rng.permutation(len(room))[:short]]
        counts[take] += 1
        short -= len(take)
    return counts


def _distinct_draws(counts: np.ndarray, weights: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each user ``u`` of a chunk, ``counts[u]`` distinct movies drawn with probability
    proportional to ``weights``, in draw order: draws with replacement, repeats dropped,
    drawn again until every user has enough. Returns (user in the chunk, movie), grouped by
    user."""
    cdf = np.cumsum(weights / weights.sum())
    num_items = len(weights)
    have = np.zeros(len(counts), dtype=np.int64)
    users, items, order = [], [], []
    step = 0
    while (need := counts - have).any():
        draw = np.ceil(need * 1.3 + 4).astype(np.int64) * (need > 0)
        u = np.repeat(np.arange(len(counts)), draw)
        i = np.minimum(np.searchsorted(cdf, rng.random(len(u))), num_items - 1)
        users.append(u)
        items.append(i)
        order.append(step + np.arange(len(u)))
        step += len(u)
        u, i, o = (np.concatenate(x) for x in (users, items, order))
        key = u * num_items + i
        _, first = np.unique(key, return_index=True)  # first draw of each (user, movie)
        first = first[np.lexsort((o[first], u[first]))]  # by user, then draw order
        u, i, o = u[first], i[first], o[first]
        rank = np.arange(len(u)) - np.searchsorted(u, u)  # position among the user's movies
        keep = rank < counts[u]
        users, items, order = [u[keep]], [i[keep]], [o[keep]]
        have = np.bincount(u[keep], minlength=len(counts))
    return users[0], items[0]


def scaled_movielens(
    num_users: int, num_items: int, num_ratings: int, *, demographics: bool = True,
    half_stars: bool = False, only_users: int | None = None, seed: int = 0,
    chunk_ratings: int = 2_000_000, release: str = "synthetic",
) -> MovieLens:
    """MovieLens-shaped tables of any size, generated in vectorised chunks of users: for
    measuring cost, not for learning (there is no planted signal).

    ``num_users`` users rate ``num_ratings`` distinct (user, movie) pairs in all: at least
    20 each, a long tail of heavy raters (:func:`ratings_per_user`); movies are drawn by a
    Zipf-like popularity; half of a user's consecutive ratings share their second, as in
    MovieLens 100K. ``demographics``: a users table like 1M's (else none, like 10M on);
    ``half_stars``: ratings in half stars. ``only_users``: generate only the first that many
    users of the population (their counts drawn for all ``num_users``), to measure a data set
    too large to hold by a subsample of it. Memory stays bounded by ``chunk_ratings``
    ratings' worth of draws at a time, beside the tables themselves.
    """
    rng = np.random.default_rng(seed)
    counts = ratings_per_user(num_users, num_ratings, num_items, rng=rng)
    kept = num_users if only_users is None else min(only_users, num_users)
    counts = counts[:kept]
    popularity = 1.0 / (np.arange(num_items) + 10.0) ** 0.9
    popularity = popularity[rng.permutation(num_items)]  # popular movies spread over ids

    parts = []
    bounds = np.searchsorted(np.cumsum(counts), np.arange(chunk_ratings, counts.sum(),
                                                          chunk_ratings))
    for lo, hi in zip(np.r_[0, bounds + 1], np.r_[bounds + 1, kept], strict=True):
        if lo >= hi:
            continue
        u, i = _distinct_draws(counts[lo:hi], popularity, rng)
        n = len(u)
        first = np.r_[True, u[1:] != u[:-1]]
        gap = np.where(rng.random(n) < 0.5, 0, rng.exponential(20_000, n).astype(np.int64) + 1)
        start = 880_000_000 + rng.integers(0, 100_000_000, hi - lo)
        ts = np.cumsum(np.where(first, 0, gap))
        ts = ts - ts[first][np.cumsum(first) - 1] + start[u]  # restart the clock per user
        stars = rng.choice(5, n, p=STAR_SHARES) + 1.0
        if half_stars:
            stars = np.clip(stars - 0.5 * (rng.random(n) < 0.4), 0.5, 5.0)
        parts.append(pd.DataFrame({"user": u + lo + 1, "item": i + 1, "rating": stars,
                                   "timestamp": ts}))
    ratings = pd.concat(parts, ignore_index=True)
    if not half_stars:
        ratings["rating"] = ratings["rating"].astype(np.int64)

    user_index = pd.Index(np.arange(1, kept + 1), name="user")
    if demographics:
        users = pd.DataFrame({
            "age": rng.choice([1, 18, 25, 35, 45, 50, 56], kept),
            "gender": np.where(rng.random(kept) < 0.28, "F", "M"),
            "occupation": rng.integers(0, 21, kept),
            "zip": [f"{z:05d}" for z in rng.integers(0, 100_000, kept)],
        }, index=user_index)
    else:
        users = pd.DataFrame(index=user_index)
    genres = GENRES[1:] if demographics else LATER_GENRES
    flags = np.zeros((num_items, len(genres)), dtype=np.int64)
    for _ in range(2):  # one or two genres per movie
        flags[np.arange(num_items), rng.integers(0, len(genres), num_items)] = 1
    years = rng.integers(1920, 2000 if demographics else 2019, num_items).astype(np.float64)
    items = pd.DataFrame(flags, columns=list(genres),
                         index=pd.Index(np.arange(1, num_items + 1), name="item"))
    items.insert(0, "title", [f"Synthetic movie {m} ({int(y)})"
                              for m, y in zip(items.index, years, strict=True)])
    items.insert(1, "year", years)
    return MovieLens(ratings=ratings, users=users, items=items, genres=tuple(genres),
                     source=Path("<synthetic>"), release=release)


def write_release(ml: MovieLens, release: str, folder: str | Path) -> Path:
    """Write ``ml``'s tables in the exact file format of ``release`` into ``folder`` (created),
    as GroupLens ships them: 1M's ``::``-separated Latin-1 ``.dat`` files with a users table,
    10M's ``.dat`` files without one, the header-and-quotes CSV of 20M, 25M and 32M, genres as
    a ``|``-separated string (:data:`featint.data.NO_GENRES` for none), the year inside the
    title. For tests and examples of :func:`featint.data.load_movielens` on releases that
    cannot be shipped; 100K's own format is not written (featint verifies it by the official
    sha256). Returns ``folder``."""
    import csv

    from featint.data import NO_GENRES, release_of

    rel = release_of(release)
    if rel.name == "ml-100k":
        raise ValueError("MovieLens 100K is verified file by file against the official "
                         "sha256: it cannot be written, only the later formats can")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flags = ml.items[list(ml.genres)].to_numpy().astype(bool)
    genres = ["|".join(g for g, on in zip(ml.genres, row, strict=True) if on) or NO_GENRES
              for row in flags]
    movies = list(zip(ml.items.index.tolist(), ml.items["title"].tolist(), genres,
                      strict=True))
    stars = ml.ratings["rating"].to_numpy()
    if rel.name in ("ml-1m", "ml-10m"):  # whole stars as integers, halves as 3.5
        rating_text = [f"{s:g}" for s in stars]
    else:  # the CSV releases write every rating with one decimal: 4.0, 3.5
        rating_text = [f"{s:.1f}" for s in stars]
    rows = zip(ml.ratings["user"].tolist(), ml.ratings["item"].tolist(), rating_text,
               ml.ratings["timestamp"].tolist(), strict=True)
    if rel.name in ("ml-1m", "ml-10m"):
        encoding = "latin-1" if rel.name == "ml-1m" else "utf-8"
        with open(folder / "ratings.dat", "w", encoding="ascii", newline="\n") as f:
            f.writelines(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows)
        with open(folder / "movies.dat", "w", encoding=encoding, newline="\n") as f:
            f.writelines(f"{i}::{title}::{g}\n" for i, title, g in movies)
        if rel.name == "ml-1m":
            users = ml.users.reset_index()
            with open(folder / "users.dat", "w", encoding="ascii", newline="\n") as f:
                f.writelines(f"{r.user}::{r.gender}::{r.age}::{r.occupation}::{r.zip}\n"
                             for r in users.itertuples())
        return folder
    with open(folder / "ratings.csv", "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["userId", "movieId", "rating", "timestamp"])
        out.writerows(rows)
    with open(folder / "movies.csv", "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")  # quotes a title with a comma or a quote
        out.writerow(["movieId", "title", "genres"])
        out.writerows(movies)
    return folder
