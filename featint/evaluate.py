"""Full-ranking, filtered evaluation (the protocol, ``book/protocol.md``).

The baselines live in :mod:`featint.baselines`.

For each example every movie is scored, the movies the user watched before ``t`` are dropped,
and the target's rank among the rest is ``1 + #higher + 0.5 * #other equal``. Ties count half,
so a model that scores everything alike gets the rank random guessing would get on average.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from featint.config import Config, current, prepare
from featint.cost import ANNOUNCE_SECONDS, announce, duration
from featint.task import NextMovieTask

#: Scores held at once when ranking: ``batch x num_items`` stays under this many, so that
#: the catalogues of the large releases (tens of thousands of movies) rank in bounded memory.
RANK_ELEMENTS = 2**21
METRICS = ("mean_rank", "median_rank", "mrr", "hr@10", "ndcg@10")
#: How each metric is written in tables and on axes.
LABELS = {"mean_rank": "mean rank", "median_rank": "median rank", "mrr": "MRR",
          "hr@10": "HR@10", "ndcg@10": "NDCG@10"}
#: Which direction is better for each metric.
HIGHER_IS_BETTER = {"mean_rank": False, "median_rank": False, "mrr": True, "hr@10": True,
                    "ndcg@10": True}


def rank_of_target(scores: torch.Tensor, target: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Filtered rank of each target.

    ``scores``: ``(batch, num_items)``; ``target``: ``(batch,)``; ``seen``: ``(batch,
    num_items)`` True for movies to drop (watched before ``t``; never the target).
    Returns ``(batch,)`` float64 ranks, 1 = best.
    """
    s_target = scores.gather(1, target[:, None])
    remaining = ~seen
    higher = ((scores > s_target) & remaining).sum(1)
    equal = ((scores == s_target) & remaining).sum(1) - 1  # the target ties with itself
    return 1.0 + higher.double() + 0.5 * equal.double()


#: The metrics that are means over test examples (the median rank is not).
MEAN_METRICS = ("mean_rank", "mrr", "hr@10", "ndcg@10")


def per_example(ranks: np.ndarray, metric: str) -> np.ndarray:
    """The per-example values whose mean over examples is ``metric``: the one definition of
    the metrics, which :func:`metrics`, the intervals and the paired tests of
    :mod:`featint.stats` all use.

    ``ranks``: any shape (for example ``(seeds, num_examples)``); the result has the same
    shape, float64. ``metric``: ``mean_rank`` (the rank), ``mrr`` (``1 / rank``), ``hr@k``
    (1 when ``rank <= k``) or ``ndcg@k`` (``1 / log2(rank + 1)`` when ``rank <= k``, else 0:
    one relevant item, so the ideal DCG is 1), for any integer ``k``. The median rank is not
    a mean over examples and has none.
    """
    r = np.asarray(ranks, dtype=np.float64)
    name, _, k = metric.partition("@")
    if metric == "mean_rank":
        return r
    if metric == "mrr":
        return 1.0 / r
    if name in ("hr", "ndcg") and k.isdigit():
        hit = r <= int(k)
        if name == "hr":
            return hit.astype(np.float64)
        return np.where(hit, 1.0 / np.log2(r + 1.0), 0.0)
    raise ValueError(f"{metric!r} is not a mean over examples; use one of "
                     f"{list(MEAN_METRICS)} (any k for hr@k and ndcg@k)")


def metrics(ranks: np.ndarray, k: int = 10) -> dict[str, float]:
    """Mean and median rank, MRR, HR@k and NDCG@k of an array of ranks: every metric but
    the median is the mean of :func:`per_example`."""
    r = np.asarray(ranks, dtype=np.float64)
    mean = {m: float(per_example(r, m).mean())
            for m in ("mean_rank", "mrr", f"hr@{k}", f"ndcg@{k}")}
    return {"mean_rank": mean["mean_rank"], "median_rank": float(np.median(r)),
            "mrr": mean["mrr"], f"hr@{k}": mean[f"hr@{k}"], f"ndcg@{k}": mean[f"ndcg@{k}"]}


def bootstrap(
    ranks: np.ndarray, num_samples: int = 1000, level: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric, resampling test examples."""
    rng = np.random.default_rng(seed)
    r = np.asarray(ranks, dtype=np.float64)
    samples = [metrics(r[rng.integers(0, len(r), len(r))]) for _ in range(num_samples)]
    stats = {name: [s[name] for s in samples] for name in METRICS}
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {name: (float(np.percentile(v, lo)), float(np.percentile(v, hi)))
            for name, v in stats.items()}


@dataclass
class Evaluation:
    """Ranks of the evaluated examples, their metrics and 95% bootstrap intervals."""

    ranks: np.ndarray
    examples: np.ndarray
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]

    def row(self) -> dict[str, float]:
        """Metrics and interval ends as one flat dict (``hr@10``, ``hr@10_lo``, ...)."""
        out = dict(self.metrics)
        for name, (lo, hi) in self.intervals.items():
            out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
        return out


def subsample(examples: np.ndarray, limit: int | None) -> np.ndarray:
    """At most ``limit`` examples, evenly spread (deterministic)."""
    if limit is None or len(examples) <= limit:
        return examples
    return examples[np.linspace(0, len(examples) - 1, limit).round().astype(np.int64)]


def device_of(model: nn.Module) -> torch.device:
    """Where ``model`` lives: the device of its first parameter or buffer (CPU for a model
    with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def rank_examples(
    model: nn.Module, task: NextMovieTask, examples: np.ndarray, batch_size: int = 512,
    device: str | torch.device | None = None, progress: bool = False,
) -> np.ndarray:
    """Filtered rank of the target of each example: one batched call scores all movies, on
    ``device`` (default: where the model lives, :func:`device_of`; a model that lives
    elsewhere is moved there for the ranking and back afterwards).

    At most ``batch_size`` contexts a batch, fewer where the catalogue is large (the scores
    of a batch stay under :data:`RANK_ELEMENTS` numbers). The batch of the longest histories
    goes first and is timed; where the whole ranking would take long (at least
    :data:`featint.cost.ANNOUNCE_SECONDS` with ``progress``, ten times that without), its
    estimate is announced before the rest runs.
    """
    home = device_of(model)
    device = home if device is None else torch.device(device)
    prepare(device)
    was_training = model.training
    model.to(device).eval()
    all_items = torch.arange(task.num_items, device=device)
    batch_size = max(1, min(batch_size, RANK_ELEMENTS // task.num_items))
    # Batches of similar history length pad less; ranks are put back in the given order.
    by_length = np.argsort(task.t[examples], kind="stable")
    starts = list(range(0, len(examples), batch_size))
    ranks = np.empty(len(examples))
    try:
        for n, start in enumerate(tqdm(starts[::-1], desc="ranking", leave=False,
                                       disable=not progress, mininterval=1.0)):
            began = time.perf_counter()
            rows = by_length[start:start + batch_size]
            ex = examples[rows]
            scores = model(task.context_for(model, ex).to(device), all_items).float()
            target = torch.from_numpy(task.target[ex]).to(device)
            seen = task.seen_before(ex).to(device)
            ranks[rows] = rank_of_target(scores, target, seen).cpu().numpy()
            if n == 0 and len(starts) > 1:  # per context, the longest histories cost most
                estimate = (time.perf_counter() - began) / len(rows) * len(examples)
                if estimate >= ANNOUNCE_SECONDS * (1 if progress else 10):
                    announce(f"ranking {len(examples):,} contexts against {task.num_items:,} "
                             f"movies: at most about {duration(estimate)}, from the "
                             f"{len(rows)} contexts of the longest histories")
    finally:
        model.to(home).train(was_training)
    return ranks


def evaluate(
    model: nn.Module, task: NextMovieTask, split: str = "test", limit: int | None = None,
    batch_size: int = 512, device: str | torch.device | None = None, progress: bool = True,
    bootstrap_samples: int = 1000, config: Config | None = None,
) -> Evaluation:
    """Rank every example of ``split`` against all movies and summarise (on ``device``,
    default: where the model lives).

    ``limit`` caps the number of examples (evenly spread); in quick mode (``config``, default
    :func:`featint.config.current`) it defaults to the quick test size.
    """
    config = config or current()
    if limit is None and config.quick:
        limit = config.sizes.test_examples
    examples = subsample(task.examples(split), limit)
    ranks = rank_examples(model, task, examples, batch_size, device, progress)
    return Evaluation(ranks, examples, metrics(ranks), bootstrap(ranks, bootstrap_samples))
