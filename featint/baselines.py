"""The baseline ladder: scores that need no gradient, only counting (or nothing at all).

Every baseline is a module with the models' call, ``baseline(context, items) -> scores``, so the
same ranking, metrics and leaderboard judge it. From the bottom of the ladder up:

- :class:`RandomScores`: uniform noise, the floor;
- :class:`Popularity`: how often each movie was rated, the same list for everyone;
- :class:`Markov`: what followed the user's last movie in other sequences, backed off to
  popularity;
- :class:`ItemKNN`: how often each movie was watched together with the movies the user has
  watched so far;
- (MF, plain matrix factorisation, is a trained model: ``featint.models.mf``.)

:class:`NextId` is not on the ladder: it is the rule that exposed protocol v1's tie artefact
(chapter 00), "the movies whose ids come right after the last one".

A counting baseline learns from a *period* (:meth:`featint.task.NextMovieTask.period_end`):
``"fit"`` to be scored on validation, ``"train"`` (fit + validation) to be scored on test, so
a target is never among the counts that score it. :func:`choose` picks a baseline's setting on
validation, then builds it for the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from featint.cost import check_memory
from featint.evaluate import HIGHER_IS_BETTER, metrics, rank_examples, subsample
from featint.task import Features, NextMovieTask
from featint.tuning import SPACES


def _slots(context: Features, field_number: int) -> torch.Tensor:
    """Positions of the slots of context field ``field_number``: ``(num_field_slots,)``."""
    return torch.nonzero(context.field == field_number).squeeze(-1)


def _scores_for(table: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Pick candidate columns from per-context scores of every movie.

    ``table``: ``(batch, num_items)``; ``items`` ``(batch, candidates)`` -> ``(batch,
    candidates)``, or ``(num_items,)`` -> ``(batch, num_items)``.
    """
    if items.dim() == 1:
        return table[:, items]
    return table.gather(1, items)


class RandomScores(nn.Module):
    """Independent uniform random scores, from a seeded generator."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        shape = (context.idx.shape[0], *items.shape[-1:])
        return torch.rand(shape, generator=self.generator, dtype=torch.float64).to(items.device)


class Popularity(nn.Module):
    """Score every movie by its number of ratings in ``period``, the same for every user."""

    def __init__(self, task: NextMovieTask, period: str = "train") -> None:
        super().__init__()
        self.register_buffer("counts", torch.from_numpy(task.popularity(period)).double())

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        return self.counts[items].expand(context.idx.shape[0], *items.shape[-1:])


class _LastMovie(nn.Module):
    """Reads the last movie (0-based movie index) out of a batch of contexts."""

    def __init__(self, task: NextMovieTask) -> None:
        super().__init__()
        names = [f.name for f in task.schema.context_fields]
        self.field_number = names.index("last_movie")
        self.offset = task.schema.field("last_movie").offset

    def forward(self, context: Features) -> torch.Tensor:
        slot = _slots(context, self.field_number)[0]
        return context.idx[:, slot] - self.offset  # (batch,)


class NextId(nn.Module):
    """The movies whose ids follow the last movie's, nearest first (wrapping around).

    ``score(m) = -((m - l - 1) mod num_items)`` for last movie ``l``: movie ``l + 1`` scores
    0, ``l + 2`` scores -1, ... It learns nothing; it can only read the order of the ids.
    """

    def __init__(self, task: NextMovieTask) -> None:
        super().__init__()
        self.last = _LastMovie(task)
        self.num_items = task.num_items

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        last = self.last(context)
        if items.dim() == 1:
            items = items.expand(len(last), -1)
        return -torch.remainder(items - last[:, None] - 1, self.num_items).double()


class Markov(nn.Module):
    """First-order Markov chain over movies, smoothed towards popularity.

    ``score(m | l) = (T[l, m] + alpha p(m)) / (n_l + alpha)``: ``T[l, m]`` counts how often
    movie ``m`` came right after movie ``l`` in the sequences of ``period``, ``n_l = sum_m
    T[l, m]``, ``p(m)`` is the share of ``period``'s ratings that went to ``m``. Within one
    last movie the denominator is a constant, so the ranking is by ``T[l, m] + alpha p(m)``:
    while ``alpha p(m) < 1`` for every movie (``alpha < 1 / max_m p(m)``)
    transitions decide and popularity only orders the movies with equal counts, among them
    those never seen after ``l`` (a pure back-off); a larger ``alpha`` lets popularity
    outweigh a few transitions.
    """

    def __init__(self, task: NextMovieTask, period: str = "train", alpha: float = 1.0) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"alpha must be positive (it weights the back-off), got {alpha}")
        check_memory(4 * 8 * task.num_items**2, f"Markov's {task.num_items:,} x "
                     f"{task.num_items:,} transition tables", "leave out the Markov baseline "
                     "on this release (--no-baselines)")
        self.last = _LastMovie(task)
        counts = torch.from_numpy(task.transitions(period)).double()
        popularity = torch.from_numpy(task.popularity(period)).double()
        share = popularity / popularity.sum()
        table = (counts + alpha * share) / (counts.sum(1, keepdim=True) + alpha)
        self.register_buffer("table", table)  # (num_items, num_items): row l, column m

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        return _scores_for(self.table[self.last(context)], items)


#: How ItemKNN turns co-occurrence counts into a similarity; ``c`` = users who watched both
#: movies, ``n_a``/``n_b`` = users who watched each, ``lam`` = the shrinkage.
SIMILARITIES = {
    "cosine": lambda c, n_a, n_b, lam: c / (np.sqrt(n_a * n_b) + lam),
    "jaccard": lambda c, n_a, n_b, lam: c / (n_a + n_b - c + lam),
    # P(b | a): how often a watcher of a (the history movie) also watched b
    "conditional": lambda c, n_a, n_b, lam: c / (n_a + lam),
}


class ItemKNN(nn.Module):
    """Item-based neighbourhood scoring: ``score(m) = sum_{h in history} sim(h, m)``.

    The similarity comes from co-occurrence over the users' sets of movies in ``period``
    (:data:`SIMILARITIES`; a movie is not its own neighbour); ``shrink`` pulls similarities
    built on few users towards zero. The history is every movie the user watched before ``t``
    (the protocol's rung: "the movies watched so far", not protocol v3's window of the
    history field): the context's ordered prefix, which featint builds for a model that
    declares a ``sequence_length`` (:meth:`featint.task.NextMovieTask.context_for`), here
    longer than any user's sequence. A test example counts the movies its user watched before
    ``t``, test period included, but the similarities only ever come from ``period``.
    ``window`` counts the last ``window`` movies before ``t`` only (an experiment on recency,
    chapter 00; None, the default, is the protocol's rung).
    """

    def __init__(self, task: NextMovieTask, period: str = "train",
                 similarity: str = "cosine", shrink: float = 0.0,
                 window: int | None = None) -> None:
        super().__init__()
        if window is not None and window < 1:
            raise ValueError(f"window must be at least 1 (the last movie), or None (every "
                             f"movie watched so far), got {window}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; use one of "
                             f"{list(SIMILARITIES)}")
        if shrink < 0:
            raise ValueError(f"shrink must be at least 0, got {shrink}")
        check_memory(8 * task.num_items * (task.num_users + 4 * task.num_items),
                     f"ItemKNN's {task.num_items:,} x {task.num_items:,} similarities",
                     "leave out the ItemKNN baseline on this release (--no-baselines)")
        watched = task.watched(period).astype(np.float64)  # (num_users, num_items)
        together = watched.T @ watched                     # c: (num_items, num_items)
        n = np.diag(together).copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = SIMILARITIES[similarity](together, n[:, None], n[None, :], shrink)
        sim = np.nan_to_num(sim, nan=0.0, posinf=0.0)  # movies nobody watched: 0 / 0
        np.fill_diagonal(sim, 0.0)
        self.register_buffer("sim", torch.from_numpy(sim))  # row h (history), column m
        self.num_items = task.num_items
        # every movie before t, or the last `window` of them
        self.sequence_length = int(task.seq_len.max()) if window is None else window

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        if context.seq is None:
            raise ValueError("ItemKNN reads every movie watched before t and this context has "
                             "none: build it with task.context_for(model, ex)")
        # the history as a multi-hot row per context (movie index + 1; padding 0 -> dropped)
        hot = self.sim.new_zeros(len(context.seq), self.num_items + 1)
        hot.scatter_(1, context.seq, 1.0)
        return _scores_for(hot[:, 1:] @ self.sim, items)


COUNTING = {"popular": Popularity, "markov": Markov, "itemknn": ItemKNN}


@dataclass
class Choice:
    """What :func:`choose` found: the baseline built for the test, its setting and every
    trial with its validation metrics."""

    model: nn.Module
    setting: dict[str, Any]
    trials: list[dict[str, Any]]


def choose(
    name: str, task: NextMovieTask, monitor: str = "mrr", valid_limit: int | None = None,
    device: str | torch.device = "cpu",
) -> Choice:
    """Build counting baseline ``name`` for the test set, its setting chosen on validation.

    Every setting of its space (:data:`featint.tuning.SPACES`, the same number of trials as
    every model) is built from the fit period and ranks the validation examples (all, or
    ``valid_limit`` evenly spread); the best by ``monitor`` (MRR, as for the models) is rebuilt
    from the whole training period. A baseline without a space (most popular) is built at once.
    """
    if name not in COUNTING:
        raise ValueError(f"unknown counting baseline {name!r}; use one of {list(COUNTING)}")
    cls, space = COUNTING[name], SPACES.get(name, {})
    if not space:
        return Choice(cls(task, period="train"), {}, [])
    valid = subsample(task.examples("valid"), valid_limit)
    sign = 1.0 if HIGHER_IS_BETTER[monitor] else -1.0
    trials = []
    for label, setting in space.items():
        model = cls(task, period="fit", **setting).to(device)
        found = metrics(rank_examples(model, task, valid, device=device))
        trials.append({"label": label, "setting": dict(setting),
                       **{f"valid_{k}": v for k, v in found.items()}})
    best = max(trials, key=lambda trial: sign * trial[f"valid_{monitor}"])
    return Choice(cls(task, period="train", **best["setting"]), best["setting"], trials)
