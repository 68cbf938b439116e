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
                     source=Path("<synthetic>"))
