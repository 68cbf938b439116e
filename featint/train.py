"""One ``fit`` for every model: BCE on the target and sampled negatives, Adam, early stopping.

Each fit example contributes its true next movie (label 1) and ``num_negatives`` movies drawn
uniformly from those the user had not watched before ``t`` (label 0), redrawn every epoch.
``loss="ce"`` replaces that with cross-entropy over all movies (the softmax of the target's
logit against every movie's; the sequence-model literature compares the two, chapter 11).
After every epoch the model ranks the validation examples (all, or a fixed evenly spread
subsample: ``valid_limit``) against all movies; training stops
when the monitored metric has not improved for ``patience`` epochs, and the best weights are
restored. The test set is never looked at.

Two options change the loss, both off by default (the default path is the comparison's):
``reduction="sum"`` sums the binary cross-entropy over the batch instead of averaging it, and
``embedding_l2`` adds an L2 penalty on the embedding rows the batch used (DeepCTR-Torch's
recipe is both: a summed loss and L2 1e-5 on its embeddings).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from featint.config import BUDGET, Config, current, prepare
from featint.cost import ANNOUNCE_SECONDS, announce, duration
from featint.evaluate import HIGHER_IS_BETTER, device_of, metrics, rank_examples, subsample
from featint.layers import FeaturesEmbedding
from featint.task import Features, NextMovieTask

#: The values of ``fit``'s ``reduction``: how the batch's losses become one number.
REDUCTIONS = ("mean", "sum")
#: The losses :func:`fit` knows.
LOSSES = ("bce", "ce")


@dataclass
class History:
    """What happened in ``fit``: one dict per epoch (loss, validation metrics, seconds)."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    monitor: str = "mrr"
    best_epoch: int = 0
    seconds: float = 0.0

    @property
    def best(self) -> dict[str, float]:
        return self.epochs[self.best_epoch - 1] if self.epochs else {}


def adam(model: nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam over the model's parameters, with torch's fused kernel: the same update, about
    five times faster on CPU than the default loop over parameters (Wide & Deep's million
    hashed cross weights spent a fifth of a training step there)."""
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def embedding_tables(model: nn.Module, num_features: int) -> list[torch.Tensor]:
    """The tables ``v`` of every :class:`featint.layers.FeaturesEmbedding` in ``model``, each
    ``(num_features, width)`` and indexed by the task's global feature index (what
    ``embedding_l2`` penalises). A model without one, or with a table indexed otherwise (MF's
    user and movie tables), is an error: the rows a batch uses are read off that index."""
    tables = [m.embedding.weight for m in model.modules() if isinstance(m, FeaturesEmbedding)]
    if not tables:
        raise ValueError(f"embedding_l2 needs a model with a FeaturesEmbedding; "
                         f"{type(model).__name__} has none (use embedding_l2=0)")
    for table in tables:
        if table.shape[0] != num_features:
            raise ValueError(f"embedding_l2 needs embedding tables indexed by the global feature "
                             f"index ({num_features} rows); {type(model).__name__} has one of "
                             f"{table.shape[0]} rows (use embedding_l2=0 for this model)")
    return tables


def used_rows(context: Features, item_idx: np.ndarray) -> torch.Tensor:
    """The global feature indices a batch looks up, each once, padding (0) left out: the
    context's slots and the slots of the candidate movies (``item_idx``: their rows of
    :attr:`NextMovieTask.item_idx`, any shape). ``(num_used,)`` int64, sorted."""
    rows = torch.unique(torch.cat([context.idx.reshape(-1),
                                   torch.from_numpy(np.asarray(item_idx)).reshape(-1)]))
    return rows[rows > 0]


def embedding_penalty(tables: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """``sum_{i in rows} ||v_i||^2`` over every table: the squared norm of the rows a batch
    used, not of the whole table (rows no batch touches are left alone)."""
    return sum(table.index_select(0, rows.to(table.device)).square().sum() for table in tables)


def cross_entropy_all(model: nn.Module, task: NextMovieTask, ex: np.ndarray,
                      context: Features, all_items: torch.Tensor,
                      reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the targets of ``ex`` against every movie (the mean over the batch,
    or the sum: ``reduction``): ``-log softmax`` of the target's logit among the
    ``(batch, num_items)`` logits of ``model``.

    The movies watched before ``t`` are masked out of the softmax. The protocol drops them
    from the ranking (``book/protocol.md``) and a MovieLens user rates a movie once, so they
    are never the target: keeping them would spend the gradient on pushing down movies the
    model is never judged on (and that BCE's negatives never include either), and would make
    the loss disagree with the ranking it stands for.
    """
    logits = model(context, all_items)
    seen = task.seen_before(ex).to(logits.device)
    target = torch.from_numpy(task.target[ex]).to(logits.device)
    return F.cross_entropy(logits.masked_fill(seen, float("-inf")), target,
                           reduction=reduction)


def length_bucketed_batches(
    order: np.ndarray, length: np.ndarray, batch_size: int, rng: np.random.Generator,
    chunk_batches: int = 32,
) -> list[np.ndarray]:
    """Split the shuffled ``order`` into batches of examples with similar history length.

    The history bag is padded to the longest history in a batch; lengths range from 1 to
    several hundred (mean about 70), so random batches would be mostly padding. Sorting by
    length inside chunks of ``chunk_batches`` batches, then shuffling the batches, keeps the
    epoch random while cutting the padding (a "sortish" sampler).
    """
    batches = []
    chunk = batch_size * chunk_batches
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(length[part], kind="stable")]
        batches += [part[b:b + batch_size] for b in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _announce_epoch(seconds: float, steps: int, total: int, verbose: bool) -> None:
    """Announce an epoch's time, extrapolated from its first ``steps`` steps, where it is long
    (:data:`featint.cost.ANNOUNCE_SECONDS`; ten times that when not ``verbose``)."""
    estimate = seconds / steps * total
    if estimate >= ANNOUNCE_SECONDS * (1 if verbose else 10):
        announce(f"one epoch of {total:,} batches: about {duration(estimate)} (from its first "
                 f"{steps}), then the validation ranking")


def fit(
    model: nn.Module,
    task: NextMovieTask,
    *,
    epochs: int = BUDGET.epochs,
    batch_size: int = BUDGET.batch_size,
    lr: float = BUDGET.lr,
    weight_decay: float = BUDGET.weight_decay,
    num_negatives: int = BUDGET.num_negatives,
    loss: str = "bce",
    patience: int = BUDGET.patience,
    monitor: str = BUDGET.monitor,
    reduction: str = "mean",
    embedding_l2: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    max_examples: int | None = None,
    valid_limit: int | None = BUDGET.valid_limit,
    progress: bool = True,
    verbose: bool = True,
    config: Config | None = None,
) -> History:
    """Train ``model`` on the fit examples of ``task``; returns the :class:`History`.

    ``max_examples`` caps the fit examples per epoch; ``valid_limit`` the validation examples
    ranked after each epoch (the same evenly spread subsample every epoch; None: all 8,289).
    The defaults are the comparison's budget (:data:`featint.config.BUDGET`). In quick mode
    (``config``, default :func:`featint.config.current`) its sizes cap the epochs, the fit
    examples and the validation examples. ``device`` (default: the configuration's) is
    where the model trains; it is returned where it was (a chapter's model trained on a GPU
    comes back to the CPU, where the chapter inspects it).
    ``seed`` fixes the shuffling, the negatives and dropout. A model with a ``penalty()``
    method has it added to every batch's loss (``weight_decay`` is Adam's L2 on every
    parameter).

    ``loss``: ``"bce"`` (the protocol's: binary cross-entropy on the target and
    ``num_negatives`` sampled negatives) or ``"ce"`` (cross-entropy of the target against every
    movie the user had not watched before ``t``; ``num_negatives`` is then unused).
    ``reduction``: ``"mean"`` (default) averages the loss over the batch's (example,
    candidate) pairs; ``"sum"`` sums it (DeepCTR-Torch's loss), which scales the data term by
    ``batch_size * (1 + num_negatives)`` against any penalty (Adam's steps themselves hardly
    change with a constant scale of the loss).
    ``embedding_l2``: ``lambda``, adding ``lambda * sum_{i used} ||v_i||^2`` to every batch's
    loss, the sum over the feature indices the batch looks up (its contexts' slots and its
    candidate movies' slots, each index once; :func:`used_rows`) in every
    :class:`featint.layers.FeaturesEmbedding` table of the model (:func:`embedding_tables`).
    Rows the batch does not use are not penalised (unlike ``weight_decay``, or an L2 over the
    whole table). 0 (default): no penalty.
    The logged ``loss`` is per (example, candidate) pair whatever the reduction.
    """
    if monitor not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown monitor {monitor!r}; choose from {list(HIGHER_IS_BETTER)}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {list(LOSSES)}")
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got {num_negatives}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose from {list(REDUCTIONS)}")
    if not embedding_l2 >= 0:
        raise ValueError(f"embedding_l2 must be at least 0, got {embedding_l2}")
    if valid_limit is not None and valid_limit < 1:
        raise ValueError(f"valid_limit must be at least 1 (or None for all), got {valid_limit}")
    config = config or current()
    if config.quick:
        sizes = config.sizes
        epochs = min(epochs, sizes.epochs)
        max_examples = min(max_examples or sizes.fit_examples, sizes.fit_examples)
        valid_limit = min(valid_limit or sizes.valid_examples, sizes.valid_examples)
    device = torch.device(device) if device is not None else config.torch_device()
    prepare(device, config)
    home = device_of(model)  # where the model goes back to when trained
    if config.threads:
        torch.set_num_threads(config.threads)
    model.to(device)
    optimizer = adam(model, lr, weight_decay)
    penalty = getattr(model, "penalty", None)
    tables = embedding_tables(model, task.schema.num_features) if embedding_l2 else []
    fit_examples = task.examples("fit")
    valid_examples = subsample(task.examples("valid"), valid_limit)
    all_items = torch.arange(task.num_items, device=device)
    labels = torch.zeros(1 + num_negatives, device=device)
    labels[0] = 1.0
    sign = 1.0 if HIGHER_IS_BETTER[monitor] else -1.0

    torch.manual_seed(seed)
    history = History(monitor=monitor)
    best_value, best_state, stale = -np.inf, None, 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        rng = np.random.default_rng([seed, epoch])
        batches = length_bucketed_batches(
            rng.permutation(fit_examples)[:max_examples], task.t, batch_size, rng)
        model.train()
        total, seen = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", leave=False,
                   disable=not progress, mininterval=1.0)
        epoch_start = time.perf_counter()
        for step, ex in enumerate(bar):
            if epoch == 1 and step == 3:  # after a warm-up: what an epoch will take
                _announce_epoch(time.perf_counter() - epoch_start, step, len(batches),
                                verbose or progress)
            context = task.context_for(model, ex)
            if loss == "bce":
                negatives = task.sample_negatives(ex, num_negatives, rng)
                candidates = np.column_stack([task.target[ex], negatives])
                logits = model(context.to(device), torch.from_numpy(candidates).to(device))
                value = F.binary_cross_entropy_with_logits(logits, labels.expand_as(logits),
                                                           reduction=reduction)
            else:
                candidates = np.arange(task.num_items)
                value = cross_entropy_all(model, task, ex, context.to(device), all_items,
                                          reduction)
            if penalty is not None:  # a model's own regulariser (AFM, Wide & Deep options)
                value = value + penalty()
            if embedding_l2:  # the rows this batch used, from its indices
                rows = used_rows(context, task.item_idx[candidates])
                value = value + embedding_l2 * embedding_penalty(tables, rows)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            # per (example, candidate) pair: the mean's weight, or the sum spread over pairs
            pairs = labels.numel() if loss == "bce" else 1
            total += value.item() * (len(ex) if reduction == "mean" else 1 / pairs)
            seen += len(ex)
            bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
        train_seconds = time.perf_counter() - epoch_start
        valid = metrics(rank_examples(model, task, valid_examples, device=device))
        row = {"epoch": epoch, "loss": total / seen, "seconds": train_seconds,
               **{f"valid_{k}": v for k, v in valid.items()}}
        history.epochs.append(row)
        value = sign * valid[monitor]
        improved = value > best_value
        if improved:
            best_value, best_state, stale = value, copy.deepcopy(model.state_dict()), 0
            history.best_epoch = epoch
        else:
            stale += 1
        if verbose:
            tqdm.write(f"epoch {epoch:2d}  loss {row['loss']:.4f}  valid mrr {valid['mrr']:.4f}"
                       f"  hr@10 {valid['hr@10']:.4f}  mean rank {valid['mean_rank']:.1f}"
                       f"  ({train_seconds:.1f}s){'  *' if improved else ''}")
        if stale >= patience:
            break
    history.seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to(home).eval()
    return history
