"""The peer twins: the libraries a reader would use instead, trained on featint's task under
featint's rules and ranked by featint's evaluator (``make peers``).

Twins: DeepCTR-Torch 0.3.0's DeepFM, WDL, NFM and AFM, and pytorch-fm's (``torchfm`` 0.7.0)
FM, FFM, AFM, Wide & Deep, DeepFM and NFM. Each is the library's own model class, wrapped in
an ``nn.Module`` with featint's call ``model(context, items) -> logits`` so that everything
around it is featint's:

- the examples: ``featint.build_task`` (fit, validation and test as the protocol splits them);
- training: :func:`featint.train.fit` itself, so the same batches of 1,024 examples with 4
  unwatched movies drawn per positive and redrawn every epoch (``task.sample_negatives``), the
  same early stopping (patience 5 on validation MRR over the same 2,000 validation examples,
  best epoch restored, the same epoch cap: :class:`featint.config.Budget`) and Adam;
- tuning: :data:`featint.tuning.TRIALS` settings per twin (:data:`TRIAL_CHANGES`), the
  library's defaults first, each trained with seed 0 and scored on the whole validation set;
  the best validation MRR is the twin's setting, trained with every seed;
- ranking: :func:`featint.evaluate.rank_examples`, every movie scored for every test example,
  the movies watched before ``t`` filtered out.

What a twin keeps from its library: the model class, its initialisation, its embedding
tables, its layers, and its training defaults. DeepCTR-Torch's ``compile("adam",
"binary_crossentropy")`` is Adam at 1e-3 on a loss *summed* over the batch plus the L2
penalty of its ``get_regularization_loss`` (1e-5 on every embedding table and linear weight,
whole tables, every step): ``reduction="sum"`` and the twin's ``penalty``. pytorch-fm has no
training code in the package; its example script's settings are its defaults: the
constructor arguments of ``examples/main.py`` (FM k 16, FFM k 4, AFM k 16 with attention
size 16 and dropouts 0.2, Wide & Deep and DeepFM k 16 with an MLP 16-16 and dropout 0.2, NFM
k 64 with an MLP of 64 and dropouts 0.2), Adam at 1e-3 with weight decay 1e-6, the mean loss.
Not kept: the libraries' batch size (featint's 1,024 for all; torchfm's script uses 2,048)
and their fit loops (none can redraw negatives or stop on a ranking metric). DeepCTR-Torch's
embedding size is a feature column's choice, not the model's: the budget's 16.

Four changes make a library model fit featint's harness, none of which changes what it
computes: logits instead of probabilities (DeepCTR-Torch's prediction layer keeps its bias and
drops its sigmoid; torchfm's final ``torch.sigmoid`` is turned into the identity), so the loss
is ``binary_cross_entropy_with_logits`` and ranking never ties two saturated probabilities;
DeepCTR-Torch pools each context's history once, not once per (context, movie) row, with its
own pooling layer and tables (the same numbers, tested; :class:`DeepCTRTwin`); torchfm's AFM
calls ``F.dropout`` without ``training=``, so it would drop attention weights at ranking time
too: the twin honours eval mode there (a bug fix); and DeepCTR-Torch's version check, which
asks PyPI in a thread at import, is not run.

The features (``--features``), built from featint's own ``task.context`` and
``task.item_features`` so that whatever the protocol defines reaches the twins:

- ``library``: featint's fields as each library's inputs take them.
  DeepCTR-Torch: every categorical field a ``SparseFeat``; every bag (the history of movies,
  the movie's genres) a ``VarLenSparseFeat`` with the ``mean`` combiner, which is featint's
  bag exactly (its weights are 1/n); the numeric fields (user mean rating, genre shares, genre
  mean ratings) ``DenseFeat``: they reach the linear part and the MLP, not the pairwise
  interactions (FM, Bi-Interaction, attention; AFM, which has no MLP, reads them in its
  linear part only). pytorch-fm: one index per field, so the categorical fields only; the
  bags and the numeric fields have no place in its input and are left out.
- ``featint``: featint's features exactly, so that library and featint differ in nothing but
  code and training: every field enters as featint's field vector ``e_f = sum_{a in f} x_a
  v_{i_a}`` (and ``sum_a w_{i_a} x_a`` in the linear part), looked up in the library's own
  tables. DeepCTR-Torch: bags and numeric fields become ``sum`` sequences whose embedding rows
  are weighted by the slots' values. pytorch-fm: the field embedding and linear layers (and
  FFM's field-aware lookup) are replaced by the same sums over the library's tables, with one
  row per featint feature; the interaction and MLP layers are the library's. Both libraries'
  interactions act on field vectors, so pairs of slots inside one field (two movies of the
  history) are not among their pairs, as they are among featint's FM's.

Results, under ``--out`` (default ``featint/records/peers``, shipped with featint so that
chapter 08 reads them wherever it runs), per feature set: ``<features>/<twin>.json``
(the trials with their validation metrics, the chosen setting, every seed's validation and
test metrics with intervals and history, the feature mapping in words) and
``<features>/ranks/<twin>_seed<seed>.npz`` (the rank of every test example, the layout of
``results/ranks``, for paired tests), then ``summary.json`` and ``summary.md``: every twin
beside its featint model with the paired difference on the same test examples
(:func:`featint.stats.paired_difference`) when ``--featint-results`` holds them. Records on
file are not rerun (an interrupted run continues). ``--quick``: a smoke run (two epochs on
1,024 examples, one trial, one seed, 200 validation and test examples).

Speed: both libraries score every (context, movie) pair as a row of their input, so ranking
one example against 1,682 movies takes them about 2-150 ms on one CPU core where featint's
models take 0.3-3 ms; early stopping ranks 2,000 validation examples after every epoch. A
full run is a day or more on one core: run groups of twins as separate processes
(``--twins``; each twin's record is its own file) or on a GPU (``--device cuda``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from tqdm import tqdm

import featint
from featint.compare import Comparison
from featint.config import BUDGET, RECORDS, Budget, current
from featint.evaluate import METRICS, bootstrap, metrics, rank_examples, subsample
from featint.files import load_ranks, save_ranks, write_json
from featint.layers import field_sums
from featint.models import count_parameters
from featint.stats import paired_difference, per_example, pooled_interval
from featint.synthetic import synthetic_movielens
from featint.task import Features, Field, NextMovieTask
from featint.train import History, fit
from featint.training import describe
from featint.tuning import TRIALS

ROOT = Path(__file__).resolve().parent.parent
FORMAT = "featint-peers/1"
FEATURE_SETS = ("library", "featint")
#: What each feature set gives a twin, per library (the records and the summary carry it).
FEATURE_NOTES = {
    ("library", "deepctr"): "categorical fields as SparseFeat; the history and genre bags as "
                            "VarLenSparseFeat with the mean combiner (featint's bags exactly); "
                            "the numeric fields as DenseFeat, which reach the linear part and "
                            "the MLP but no pairwise interaction",
    ("library", "torchfm"): "one index per field: the categorical fields only; the history "
                            "and genre bags and the numeric fields are left out",
    ("featint", "deepctr"): "featint's field vectors exactly: bags and numeric fields as sum "
                            "sequences whose rows are weighted by the slots' values",
    ("featint", "torchfm"): "featint's field vectors exactly: the library's embedding and "
                            "linear layers (and FFM's lookup) replaced by sums over its tables",
}
LIBRARIES = {"deepctr": ("deepctr_torch", "deepctr-torch 0.3.0"),
             "torchfm": ("torchfm", "pytorch-fm (torchfm) 0.7.0")}

#: twin -> (library, the library's model class, featint's model of the same architecture)
TWINS: dict[str, tuple[str, str, str]] = {
    "deepctr_deepfm": ("deepctr", "DeepFM", "deepfm"),
    "deepctr_wdl": ("deepctr", "WDL", "wide_deep"),
    "deepctr_nfm": ("deepctr", "NFM", "nfm"),
    "deepctr_afm": ("deepctr", "AFM", "afm"),
    "torchfm_fm": ("torchfm", "fm.FactorizationMachineModel", "fm"),
    "torchfm_ffm": ("torchfm", "ffm.FieldAwareFactorizationMachineModel", "ffm"),
    "torchfm_afm": ("torchfm", "afm.AttentionalFactorizationMachineModel", "afm"),
    "torchfm_wide_deep": ("torchfm", "wd.WideAndDeepModel", "wide_deep"),
    "torchfm_deepfm": ("torchfm", "dfm.DeepFactorizationMachineModel", "deepfm"),
    "torchfm_nfm": ("torchfm", "nfm.NeuralFactorizationMachineModel", "nfm"),
}
#: The keys of a setting that go to training (``fit``, and ``library_l2``: whether the twin
#: adds its library's own regulariser); every other key goes to the library's constructor.
TRAIN_KEYS = ("lr", "weight_decay", "reduction", "library_l2")
#: Each library's defaults: DeepCTR-Torch's constructors and ``compile("adam", ...)``;
#: pytorch-fm's example script (``examples/main.py``), per model.
DEFAULTS: dict[str, dict[str, Any]] = {
    "deepctr": {"lr": 1e-3, "weight_decay": 0.0, "reduction": "sum", "library_l2": True},
    "torchfm": {"lr": 1e-3, "weight_decay": 1e-6, "reduction": "mean", "library_l2": False},
}
TORCHFM_DEFAULTS: dict[str, dict[str, Any]] = {
    "torchfm_fm": {"embed_dim": 16},
    "torchfm_ffm": {"embed_dim": 4},
    "torchfm_afm": {"embed_dim": 16, "attn_size": 16, "dropouts": [0.2, 0.2]},
    "torchfm_wide_deep": {"embed_dim": 16, "mlp_dims": [16, 16], "dropout": 0.2},
    "torchfm_deepfm": {"embed_dim": 16, "mlp_dims": [16, 16], "dropout": 0.2},
    "torchfm_nfm": {"embed_dim": 64, "mlp_dims": [64], "dropouts": [0.2, 0.2]},
}
#: The trials of every twin, in order, on top of its library's defaults: the defaults, then
#: the learning rate around the library's. The first TRIALS are run.
TRIAL_CHANGES: dict[str, dict[str, Any]] = {
    "defaults": {}, "lr 3e-3": {"lr": 3e-3}, "lr 3e-4": {"lr": 3e-4},
    "lr 1e-2": {"lr": 1e-2}, "lr 1e-4": {"lr": 1e-4},
}
#: Quick mode (a smoke run): epochs, fit examples per epoch, validation examples for early
#: stopping, validation and test examples scored.
QUICK = dict(epochs=2, max_examples=1024, valid_limit=100, valid_scored=200, test_scored=200)
#: When ranking, the most rows of one library call (at least one context's 1,682 movies; small
#: calls stay in the CPU's caches: larger ones were up to three times slower), and the most
#: (row, column) entries of one DeepCTR-Torch call.
MAX_ROWS = 2048
ROW_BUDGET = 4_000_000


class PeersError(Exception):
    """A problem the user can fix; the message says how."""


def import_library(library: str) -> types.ModuleType:
    """The library's package, or a :class:`PeersError` naming ``make peers``."""
    package, label = LIBRARIES[library]
    try:
        if library == "deepctr":
            return _import_deepctr()
        import torchfm.model  # noqa: F401

        return sys.modules[package]
    except ImportError as err:
        raise PeersError(
            f"{label} is not installed ({err}). The peer twins need the optional `peers` "
            f"extra: run `make peers` (it installs the extra, keeping your torch, then runs "
            f"this script), or `pip install -e '.[peers]'` with your torch pinned") from None


def _import_deepctr() -> types.ModuleType:
    """``deepctr_torch`` without its import-time version check, which starts a thread asking
    PyPI for a newer release: featint never goes to the network at run time."""
    if "deepctr_torch" not in sys.modules:
        quiet = types.ModuleType("deepctr_torch.utils")
        quiet.check_version = lambda version: None
        sys.modules.setdefault("deepctr_torch.utils", quiet)
    import deepctr_torch.models

    return deepctr_torch


# -- featint's fields as a library's inputs ------------------------------------------------
@dataclass(frozen=True)
class Slot:
    """One featint field as a library input: its side, its number there (``Features.field``)
    and how it enters: ``categorical`` (one index), ``bag`` (several indices), ``numeric``
    (several values at fixed indices); ``width``: its slots (None: a context bag, as wide as
    the batch needs)."""

    field: Field
    number: int
    width: int | None

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def kind(self) -> str:
        return self.field.kind


def slots_of(task: NextMovieTask) -> tuple[list[Slot], list[Slot]]:
    """(context, item) :class:`Slot` lists in field order; an item field's width is read off
    the movies' features, a context bag's is variable (its width changes from batch to
    batch)."""
    schema = task.schema
    items = task.item_features()
    context = [Slot(f, n, None if f.kind == "bag" else (1 if f.kind == "categorical" else f.size))
               for n, f in enumerate(schema.context_fields)]
    item = [Slot(f, n, int((items.field == n).sum())) for n, f in enumerate(schema.item_fields)]
    return context, item


def field_columns(f: Features, slot: Slot) -> tuple[torch.Tensor, torch.Tensor]:
    """The field's slots of ``f``: ``(idx, val)``, each ``(*batch, slots)``."""
    where = (f.field == slot.number).nonzero().flatten()
    return f.idx.index_select(-1, where), f.val.index_select(-1, where)


def local_index(idx: torch.Tensor, field: Field, padded: bool) -> torch.Tensor:
    """A featint index as the field's own: 0-based, or 1-based with 0 kept for padding."""
    if padded:
        return torch.where(idx > 0, idx - field.offset + 1, 0)
    return idx - field.offset


def check_mean_bag(idx: torch.Tensor, val: torch.Tensor, field: Field) -> None:
    """A ``mean`` combiner reproduces a bag only if its values are 1/n: check it."""
    real = idx > 0
    count = real.sum(-1, keepdim=True).clamp(min=1)
    if not torch.allclose(torch.where(real, val * count, 1.0), torch.ones_like(val), atol=1e-5):
        raise PeersError(f"bag {field.name!r} is not a mean (its weights are not 1/n), so the "
                         f"library's mean combiner would change it; use --features featint")


# -- DeepCTR-Torch ---------------------------------------------------------------------------
class _Weighted(nn.Module):
    """A library embedding whose looked-up rows are multiplied by the slots' values, which the
    twin puts in ``values[name]`` before every call: ``(rows, width)`` -> ``(rows, width, d)``.
    """

    def __init__(self, embedding: nn.Embedding, values: dict[str, torch.Tensor], name: str):
        super().__init__()
        self.embedding, self.values, self.name = embedding, values, name

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.embedding(idx) * self.values[self.name].unsqueeze(-1)


class _PooledOnce(nn.Module):
    """A library embedding of the context bag whose pooled vector the twin has already
    computed, once per context, with the library's own pooling layer: each row's one-slot
    sequence (index 1) looks up its context's vector, ``(rows, 1)`` -> ``(rows, 1, d)``, and
    the library's ``sum`` over that one slot gives it back unchanged."""

    def __init__(self, embedding: nn.Module, pooled: dict[str, torch.Tensor], key: str):
        super().__init__()
        self.embedding, self.pooled, self.key = embedding, pooled, key

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.pooled[self.key]


class DeepCTRTwin(nn.Module):
    """A DeepCTR-Torch model with featint's call: ``(context (batch, slots), items (batch, C)
    or (num_items,)) -> logits``. Each (context, movie) pair is one row of the library's input
    ``X``, as the library scores one row per impression; the columns are the fixed-width
    context fields, the item fields, then the context bag (see the module docstring).

    ``pool_once`` (default): the context bag (the history, hundreds of movies) is pooled once
    per context instead of once per row, by the library's own ``SequencePoolingLayer`` over
    its own table, and handed to the model as a one-slot ``sum`` sequence: the same numbers
    (a test checks them against ``pool_once=False``), without pooling the same history again
    for each of 1,682 movies, which made ranking one test example take about half a second.
    """

    def __init__(self, task: NextMovieTask, model: str, features: str, seed: int,
                 embed_dim: int, device: str | torch.device = "cpu", library_l2: bool = True,
                 pool_once: bool = True, **kwargs: Any) -> None:
        super().__init__()
        deepctr = import_library("deepctr")
        from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat
        from deepctr_torch.layers.sequence import SequencePoolingLayer

        self.features, self.library_l2, self.pool_once = features, library_l2, pool_once
        self.context_slots, self.item_slots = slots_of(task)
        self.weighted: dict[str, torch.Tensor] = {}
        self.pooled: dict[str, torch.Tensor] = {}
        fixed = [s for s in self.context_slots if s.width is not None]
        self.bags = [s for s in self.context_slots if s.width is None]
        if len(self.bags) > 1 and not pool_once:  # each would have to be the last input
            raise PeersError(f"pool_once=False takes one context bag, the task has "
                             f"{len(self.bags)}: {', '.join(s.name for s in self.bags)}")
        self.order = [("context", s) for s in fixed] + [("item", s) for s in self.item_slots] + [
            ("context", s) for s in self.bags]
        self.combiner = "mean" if features == "library" else "sum"
        columns, self.notes = [], {}
        for _, s in self.order:
            if s.kind == "categorical":
                columns.append(SparseFeat(s.name, s.field.size, embed_dim))
                self.notes[s.name] = "SparseFeat"
            elif s.kind == "numeric" and features == "library":
                columns.append(DenseFeat(s.name, s.field.size))
                self.notes[s.name] = "DenseFeat (linear part and MLP only)"
            else:
                once = pool_once and s.width is None
                columns.append(VarLenSparseFeat(
                    SparseFeat(s.name, s.field.size + 1, embed_dim),
                    maxlen=1 if once else s.width or s.field.size,
                    combiner="sum" if once else self.combiner))
                self.notes[s.name] = (
                    f"VarLenSparseFeat ({self.combiner}"
                    + (", rows weighted by the values" if features == "featint" else "")
                    + (", pooled once per context" if once else "") + ")")
        dnn_columns = ([c for c in columns if not isinstance(c, DenseFeat)] if model == "AFM"
                       else columns)
        self.library = getattr(deepctr.models, model)(columns, dnn_columns, seed=seed,
                                                      device=str(torch.device(device)), **kwargs)
        self.library.out.task = "regression"  # the prediction layer's bias, no sigmoid: logits
        self.pool = SequencePoolingLayer(mode=self.combiner, supports_masking=True,
                                         device=str(torch.device(device)))
        tables = {"dnn": self.library.embedding_dict,
                  "linear": self.library.linear_model.embedding_dict}
        for _, s in self.order:
            if s.kind == "categorical" or (s.kind == "numeric" and features == "library"):
                continue
            for which, table in tables.items():
                if features == "featint":  # rows weighted by the slots' values
                    table[s.name] = _Weighted(table[s.name], self.weighted, s.name)
                if pool_once and s.width is None:
                    table[s.name] = _PooledOnce(table[s.name], self.pooled, f"{which}:{s.name}")
        x, values = self._side(task.item_features(), "item")
        self.register_buffer("item_x", x, persistent=False)
        for name, value in values.items():
            self.register_buffer(f"item_values_{name}", value, persistent=False)
        self.item_weighted = list(values)
        self.context_fixed = sum(s.width for side, s in self.order
                                 if side == "context" and s.width)

    def _side(self, f: Features, side: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One side's columns of ``X`` (float, as the library reads them) in input order, and
        the values of its weighted fields (and, with ``pool_once``, the context bag's
        ``(idx, val)`` under ``"bag:<name>"``)."""
        parts, values = [], {}
        for s_side, s in self.order:
            if s_side != side:
                continue
            idx, val = field_columns(f, s)
            if s.kind == "categorical":
                parts.append(local_index(idx, s.field, padded=False))
            elif s.kind == "numeric" and self.features == "library":
                dense = val.new_zeros(*val.shape[:-1], s.field.size)
                parts.append(dense.scatter_add(-1, idx - s.field.offset, val))
            else:
                if self.features == "library":
                    check_mean_bag(idx, val, s.field)
                local = local_index(idx, s.field, padded=True)
                if self.pool_once and s.width is None:
                    values[f"bag:{s.name}"] = local, val
                    parts.append(torch.ones_like(local[..., :1]))  # one slot, index 1
                    continue
                if self.features == "featint":
                    values[s.name] = val
                parts.append(local)
        return torch.cat([p.float() for p in parts], -1), values

    def _pool_context_bags(self, values: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The context bags pooled once per context, as the library pools a sequence (its
        ``SequencePoolingLayer`` over the non-zero slots), from both of its tables: key
        ``"<table>:<name>"`` -> ``(batch, 1, d)``."""
        out = {}
        for s in self.bags:
            if f"bag:{s.name}" not in values:
                continue
            idx, val = values.pop(f"bag:{s.name}")
            for which, table in (("dnn", self.library.embedding_dict),
                                 ("linear", self.library.linear_model.embedding_dict)):
                layer = table[s.name].embedding  # inside _PooledOnce
                inner = layer.embedding if isinstance(layer, _Weighted) else layer
                rows = inner(idx)
                if self.features == "featint":
                    rows = rows * val.unsqueeze(-1)
                out[f"{which}:{s.name}"] = self.pool([rows, idx != 0])
        return out

    def penalty(self) -> torch.Tensor | float:
        """The library's regulariser (``get_regularization_loss``: L2 over whole tables) when
        the setting keeps it, else nothing."""
        return self.library.get_regularization_loss().squeeze() if self.library_l2 else 0.0

    def _call(self, context_x: torch.Tensor, context_values: dict[str, torch.Tensor],
              pooled: dict[str, torch.Tensor], rows_ctx: torch.Tensor,
              rows_item: torch.Tensor) -> torch.Tensor:
        """The library on the rows (context ``rows_ctx[r]``, movie ``rows_item[r]``)."""
        n = self.context_fixed
        ctx = context_x.index_select(0, rows_ctx)
        x = torch.cat([ctx[:, :n], self.item_x.index_select(0, rows_item), ctx[:, n:]], -1)
        self.weighted.clear()
        self.weighted.update({k: v.index_select(0, rows_ctx) for k, v in context_values.items()})
        self.weighted.update({k: getattr(self, f"item_values_{k}").index_select(0, rows_item)
                              for k in self.item_weighted})
        self.pooled.clear()
        self.pooled.update({k: v.index_select(0, rows_ctx) for k, v in pooled.items()})
        return self.library(x).squeeze(-1)

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        context_x, context_values = self._side(context, "context")
        pooled = self._pool_context_bags(context_values)
        batch = context_x.shape[0]
        if items.dim() == 2:  # training: (batch, candidates)
            rows_ctx = torch.arange(batch, device=items.device).repeat_interleave(items.shape[1])
            return self._call(context_x, context_values, pooled, rows_ctx,
                              items.flatten()).view(items.shape)
        width = context_x.shape[1] + self.item_x.shape[1]
        chunk = max(1, min(ROW_BUDGET // width, MAX_ROWS) // len(items))
        out = []
        for start in range(0, batch, chunk):
            ctx = torch.arange(start, min(start + chunk, batch), device=items.device)
            rows_ctx = ctx.repeat_interleave(len(items))
            out.append(self._call(context_x, context_values, pooled, rows_ctx,
                                  items.repeat(len(ctx))).view(len(ctx), len(items)))
        return torch.cat(out)


# -- pytorch-fm --------------------------------------------------------------------------------
class _LibraryLogits(TorchFunctionMode):
    """Inside a torchfm model's forward: its one ``torch.sigmoid`` (the last step) returns its
    input, the logit; ``F.dropout`` follows the model's train/eval mode (torchfm's AFM calls
    it with ``training`` left at True, which would make ranking random)."""

    def __init__(self, training: bool) -> None:
        super().__init__()
        self.training, self.sigmoids = training, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = dict(kwargs or {})
        if func is torch.sigmoid:
            self.sigmoids += 1
            return args[0]
        if func is F.dropout:
            kwargs["training"] = kwargs.get("training", True) and self.training
        return func(*args, **kwargs)


@dataclass
class _Rows:
    """What a torchfm twin's layers receive with ``--features featint``: the contexts, every
    movie's features and the movie of each row; ``join`` makes per-row tensors out of a
    per-context and a per-movie one."""

    context: Features
    movies: Features
    items: torch.Tensor  # (batch, candidates), or (num_items,): every movie for every context
    memo: dict = field(default_factory=dict)  # per-movie sums, shared by a call's chunks

    def join(self, c: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``c`` ``(batch, *shape_c)`` and ``m`` ``(num_items, *shape_m)`` -> rows
        ``(batch * candidates, ...)``, joined along axis 1 (fields) when both have one."""
        if self.items.dim() == 2:
            c_rows = c.repeat_interleave(self.items.shape[1], 0)
            m_rows = m.index_select(0, self.items.flatten())
        else:
            c_rows = c.repeat_interleave(len(self.items), 0)
            m_rows = m.index_select(0, self.items).repeat(len(c), *([1] * (m.dim() - 1)))
        return torch.cat([c_rows, m_rows], 1) if c.dim() > 1 else c_rows + m_rows


def _padded(table: torch.Tensor) -> torch.Tensor:
    """A torchfm table (row ``i - 1`` for featint feature ``i``) with a zero row 0 in front,
    so featint's indices (0: padding) read it directly."""
    return torch.cat([table.new_zeros(1, table.shape[1]), table])


def field_vectors(table: nn.Embedding, rows: _Rows, num_fields: tuple[int, int]) -> torch.Tensor:
    """The field vectors ``e_f = sum_{a in f} x_a v_{i_a}`` of every row from a torchfm table:
    ``(rows, num_fields, k)``, the context's fields then the movie's (``num_fields``: how many
    on each side)."""
    weight = _padded(table.weight)
    key = ("fields", id(table))
    if key not in rows.memo:
        rows.memo[key] = field_sums(weight, rows.movies, num_fields[1])
    return rows.join(field_sums(weight, rows.context, num_fields[0]), rows.memo[key])


class _FieldVectors(nn.Module):
    """torchfm's ``FeaturesEmbedding`` on featint's features (:func:`field_vectors`), with
    the library's table."""

    def __init__(self, embedding: nn.Module, num_fields: tuple[int, int]) -> None:
        super().__init__()
        self.table, self.num_fields = embedding.embedding, num_fields

    def forward(self, rows: _Rows) -> torch.Tensor:
        return field_vectors(self.table, rows, self.num_fields)


class _LinearSum(nn.Module):
    """torchfm's ``FeaturesLinear`` on featint's features: ``b + sum_a w_{i_a} x_a`` from the
    library's weights: ``(rows, 1)``."""

    def __init__(self, linear: nn.Module, num_fields: tuple[int, int]) -> None:
        super().__init__()
        self.fc, self.bias = linear.fc, linear.bias

    def forward(self, rows: _Rows) -> torch.Tensor:
        table = _padded(self.fc.weight)
        key = ("linear", id(self.fc))
        if key not in rows.memo:
            rows.memo[key] = field_sums(table, rows.movies).sum((-2, -1))
        w_c = field_sums(table, rows.context).sum((-2, -1))
        return (rows.join(w_c, rows.memo[key]) + self.bias).unsqueeze(-1)


class _FieldAwarePairs(nn.Module):
    """torchfm's ``FieldAwareFactorizationMachine`` on featint's features: table ``g`` gives
    every field's vector towards field ``g``, ``u_{f,g} = sum_{a in f} x_a v_{i_a,g}``; the
    output is ``u_{f,g} * u_{g,f}`` for every pair ``f < g``: ``(rows, pairs, k)``, from the
    library's tables (its lookup takes one index per field, so this layer is redone)."""

    def __init__(self, ffm: nn.Module, num_fields: tuple[int, int]) -> None:
        super().__init__()
        self.embeddings, self.num_fields = ffm.embeddings, num_fields

    def forward(self, rows: _Rows) -> torch.Tensor:
        u = [field_vectors(e, rows, self.num_fields) for e in self.embeddings]
        m = len(u)
        return torch.stack([u[g][:, f] * u[f][:, g] for f in range(m - 1)
                            for g in range(f + 1, m)], 1)


class TorchFMTwin(nn.Module):
    """A pytorch-fm model with featint's call (see :class:`DeepCTRTwin`): one row per
    (context, movie) pair; ``--features library`` gives it one index per categorical field,
    ``featint`` hands its layers featint's field vectors (the module docstring)."""

    def __init__(self, task: NextMovieTask, model: str, features: str, seed: int,
                 **kwargs: Any) -> None:
        super().__init__()
        import_library("torchfm")
        module, cls = model.split(".")
        schema = task.schema
        self.features = features
        self.context_slots, self.item_slots = slots_of(task)
        if features == "library":
            self.used = [(side, s) for side, slots in (("context", self.context_slots),
                                                       ("item", self.item_slots))
                         for s in slots if s.kind == "categorical"]
            field_dims = [s.field.size for _, s in self.used]
        else:
            ends = [f.offset for f in schema.fields] + [schema.num_features]
            if ends[0] != 1 or any(f.offset + f.size != end for f, end in zip(
                    schema.fields, ends[1:], strict=True)):
                raise PeersError("featint's fields are not contiguous from index 1; the "
                                 "torchfm twins need them so (benchmarks/peers.py)")
            field_dims = [f.size for f in schema.fields]
        torch.manual_seed(seed)
        self.library = getattr(importlib.import_module(f"torchfm.model.{module}"), cls)(
            field_dims, **kwargs)
        sides = (len(schema.context_fields), len(schema.item_fields))
        if features == "featint":  # the input layers read featint's features
            for name, layer in (("embedding", _FieldVectors), ("linear", _LinearSum),
                                ("ffm", _FieldAwarePairs)):
                if hasattr(self.library, name):
                    setattr(self.library, name, layer(getattr(self.library, name), sides))
        items = task.item_features()
        self.register_buffer("item_idx", items.idx, persistent=False)
        self.register_buffer("item_val", items.val, persistent=False)
        self.register_buffer("item_field", items.field, persistent=False)
        if features == "library":
            self.register_buffer("item_x", self._side(items, "item"), persistent=False)

    def _side(self, f: Features, side: str) -> torch.Tensor:
        """One side's categorical fields as the library's per-field indices (0-based)."""
        return torch.cat([local_index(field_columns(f, s)[0], s.field, padded=False)
                          for s_side, s in self.used if s_side == side], -1)

    def _call(self, x: Any) -> torch.Tensor:
        mode = _LibraryLogits(self.training)
        with mode:
            out = self.library(x)
        if mode.sigmoids != 1:
            raise PeersError(f"expected the torchfm model to call torch.sigmoid once, at the "
                             f"end; it called it {mode.sigmoids} times")
        return out

    def _rows(self, context: Features, items: torch.Tensor, memo: dict | None = None) -> Any:
        if self.features == "featint":
            return _Rows(context, Features(self.item_idx, self.item_val, self.item_field),
                         items, {} if memo is None else memo)
        c, m = self._side(context, "context"), self.item_x
        if items.dim() == 2:
            return torch.cat([c.repeat_interleave(items.shape[1], 0),
                              m.index_select(0, items.flatten())], 1)
        return torch.cat([c.repeat_interleave(len(items), 0),
                          m.index_select(0, items).repeat(len(c), 1)], 1)

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        batch = context.idx.shape[0]
        if items.dim() == 2:
            return self._call(self._rows(context, items)).view(items.shape)
        chunk = max(1, MAX_ROWS // len(items))
        out, memo = [], {}  # the movies' sums once for every chunk of contexts
        for start in range(0, batch, chunk):
            part = Features(context.idx[start:start + chunk], context.val[start:start + chunk],
                            context.field)
            out.append(self._call(self._rows(part, items, memo)).view(-1, len(items)))
        return torch.cat(out)


# -- one twin: build, train, score -------------------------------------------------------------
def split_setting(setting: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training keys, constructor keys) of a twin's setting."""
    return ({k: v for k, v in setting.items() if k in TRAIN_KEYS},
            {k: v for k, v in setting.items() if k not in TRAIN_KEYS})


def space(twin: str, trials: int = TRIALS) -> dict[str, dict[str, Any]]:
    """Label -> full setting: the library's defaults, then :data:`TRIAL_CHANGES` on top of
    them; the first ``trials``."""
    if trials > len(TRIAL_CHANGES):
        raise PeersError(f"{trials} trials asked for, {len(TRIAL_CHANGES)} are written out in "
                         f"TRIAL_CHANGES (benchmarks/peers.py): add more")
    library = TWINS[twin][0]
    base = {**DEFAULTS[library], **TORCHFM_DEFAULTS.get(twin, {})}
    return {label: {**base, **change} for label, change in list(TRIAL_CHANGES.items())[:trials]}


def build_twin(task: NextMovieTask, twin: str, features: str, setting: dict[str, Any],
               seed: int, embed_dim: int, device: str | torch.device = "cpu") -> nn.Module:
    """The twin with ``setting`` (its constructor keys), initialised from ``seed``."""
    library, model, _ = TWINS[twin]
    train, kwargs = split_setting(setting)
    if library == "deepctr":
        return DeepCTRTwin(task, model, features, seed, embed_dim, device,
                           library_l2=train.get("library_l2", False), **kwargs)
    return TorchFMTwin(task, model, features, seed, **kwargs)


def describe_features(model: nn.Module) -> dict[str, str]:
    """Field -> how the twin takes it (absent fields: left out)."""
    if isinstance(model, DeepCTRTwin):
        return dict(model.notes)
    fields = [s for s in model.context_slots + model.item_slots]
    if model.features == "featint":
        return {s.name: "field vector sum x v (adapter over the library's table)"
                for s in fields}
    used = {s.name for _, s in model.used}
    return {s.name: "one index per field" if s.name in used else "left out (not categorical)"
            for s in fields}


@dataclass
class Options:
    """How much work a run does: ``quick`` is the smoke test's size."""

    quick: bool = False
    device: str = "cpu"
    progress: bool = True
    verbose: bool = False

    def fit_args(self, budget: Budget, setting: dict[str, Any]) -> dict[str, Any]:
        train, _ = split_setting(setting)
        args = dict(epochs=budget.epochs, batch_size=budget.batch_size,
                    num_negatives=budget.num_negatives, patience=budget.patience,
                    monitor=budget.monitor, valid_limit=budget.valid_limit,
                    lr=train["lr"], weight_decay=train["weight_decay"],
                    reduction=train["reduction"])
        if self.quick:
            args.update(epochs=QUICK["epochs"], max_examples=QUICK["max_examples"],
                        valid_limit=QUICK["valid_limit"])
        return args

    def scored(self, task: NextMovieTask, split: str) -> np.ndarray:
        """The examples of ``split`` a trial (valid) or a run (test) is scored on."""
        return subsample(task.examples(split),
                         QUICK[f"{split}_scored"] if self.quick else None)


def train_twin(task: NextMovieTask, twin: str, features: str, setting: dict[str, Any],
               seed: int, budget: Budget, options: Options) -> tuple[nn.Module, History]:
    """Build the twin from ``seed`` and train it with featint's ``fit`` under ``budget``."""
    model = build_twin(task, twin, features, setting, seed, budget.embed_dim, options.device)
    history = fit(model, task, **options.fit_args(budget, setting), seed=seed,
                  device=options.device, progress=options.progress, verbose=options.verbose)
    return model, history


def state_file(twin: str, features: str, label: str, quick: bool) -> Path:
    """Where the weights of a trial wait to become the twin's seed-0 run."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return (current().models_folder / "peers"
            / f"{features}-{twin}-{slug}{'-quick' if quick else ''}.pt")


def run_record(model: nn.Module, history: History, task: NextMovieTask, seed: int,
               label: str, options: Options, out: Path, rel: str,
               valid: dict[str, float] | None = None) -> dict[str, Any]:
    """Score a trained twin on validation (unless its ``valid`` metrics are known) and test,
    save its test ranks at ``out/rel``."""
    if valid is None:
        valid = metrics(rank_examples(model, task, options.scored(task, "valid"),
                                      device=options.device))
    examples = options.scored(task, "test")
    start = time.perf_counter()
    ranks = rank_examples(model, task, examples, device=options.device)
    rank_seconds = time.perf_counter() - start
    save_ranks(out / rel, ranks, examples)
    epochs = len(history.epochs)
    return {"seed": seed, "setting": label, "params": count_parameters(model),
            "valid": valid, "test": metrics(ranks),
            "test_intervals": {m: list(v) for m, v in bootstrap(ranks).items()},
            "best_epoch": history.best_epoch, "epochs": epochs,
            "train_seconds": history.seconds,
            "seconds_per_epoch": history.seconds / epochs if epochs else 0.0,
            "rank_seconds": rank_seconds, "num_examples": len(examples),
            "history": history.epochs, "ranks_file": rel}


def run_twin(task: NextMovieTask, twin: str, features: str, seeds: list[int], trials: int,
             out: Path, budget: Budget, options: Options, bar: tqdm) -> dict[str, Any]:
    """Every trial (seed 0, whole validation), the best one's setting with every seed; the
    record is written after each step, and steps on record are not run again."""
    library, model_name, counterpart = TWINS[twin]
    path = out / features / f"{twin}.json"
    settings = space(twin, trials)
    record = {"format": FORMAT, "twin": twin, "library": LIBRARIES[library][1],
              "model": model_name, "featint_model": counterpart, "features": features,
              "features_note": FEATURE_NOTES[(features, library)],
              "protocol": task.protocol, "counts": task.counts(), "quick": options.quick,
              "budget": describe(budget), "space": settings, "trials": [], "runs": []}
    if path.exists():
        old = featint_json(path)
        if (old.get("format"), old.get("quick"), old.get("space"), old.get("counts")) == (
                FORMAT, options.quick, settings, task.counts()):
            record.update(trials=old["trials"], runs=old["runs"],
                          **{k: old[k] for k in ("chosen", "feature_map") if k in old})
    for label, setting in settings.items():
        if any(t["label"] == label for t in record["trials"]):
            continue
        bar.set_postfix_str(f"{twin} ({features}) trial {label!r}")
        model, history = train_twin(task, twin, features, setting, 0, budget, options)
        record["feature_map"] = describe_features(model)
        valid = metrics(rank_examples(model, task, options.scored(task, "valid"),
                                      device=options.device))
        record["trials"].append({"label": label, "setting": setting,
                                 **{f"valid_{k}": v for k, v in valid.items()},
                                 "best_epoch": history.best_epoch, "epochs": len(history.epochs),
                                 "epoch_cap": options.fit_args(budget, setting)["epochs"],
                                 "train_seconds": history.seconds})
        keep = state_file(twin, features, label, options.quick)
        keep.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state": model.state_dict(), "history": history.__dict__}, keep)
        write_json(path, record)
        bar.update()
    best = max(record["trials"], key=lambda t: t["valid_mrr"])
    record["chosen"] = best["label"]
    done = {r["seed"] for r in record["runs"] if (out / features / r["ranks_file"]).exists()}
    record["runs"] = [r for r in record["runs"] if r["seed"] in done]
    for seed in seeds:
        if seed in done:
            continue
        bar.set_postfix_str(f"{twin} ({features}) seed {seed}")
        setting = settings[best["label"]]
        keep = state_file(twin, features, best["label"], options.quick)
        valid = None
        if seed == 0 and keep.exists():  # the chosen trial is the seed-0 run
            stored = torch.load(keep, map_location=options.device, weights_only=True)
            model = build_twin(task, twin, features, setting, 0, budget.embed_dim,
                               options.device)
            model.load_state_dict(stored["state"])
            history = History(**stored["history"])
            valid = {k.removeprefix("valid_"): v for k, v in best.items()
                     if k.startswith("valid_")}
        else:
            model, history = train_twin(task, twin, features, setting, seed, budget, options)
        rel = f"ranks/{twin}_seed{seed}.npz"
        record["runs"].append(run_record(model, history, task, seed, best["label"], options,
                                         out / features, rel, valid))
        record["runs"].sort(key=lambda r: r["seed"])
        write_json(path, record)
        bar.update()
    return record


def featint_json(path: Path) -> dict[str, Any]:
    """A JSON file written by :func:`featint.files.write_json`."""
    return json.loads(path.read_text(encoding="utf-8"))


# -- the summary: every twin beside its featint model ---------------------------------------
PAIRED = ("hr@10", "mrr", "mean_rank")


def summarise(out: Path, featint_results: Path | None) -> dict[str, Any]:
    """Every twin on record under ``out``, its seeds' mean test metrics and pooled interval,
    and the paired difference featint minus twin (examples and seeds resampled) where
    ``featint_results`` ranked the same test examples; writes ``summary.json`` and
    ``summary.md``."""
    comparison = None
    if featint_results is not None and (featint_results / "results.json").exists():
        comparison = Comparison.load(featint_results)
    rows = []
    for features in FEATURE_SETS:
        for path in sorted((out / features).glob("*.json")):
            record = featint_json(path)
            if record.get("format") != FORMAT or not record["runs"]:
                continue
            ranks = [load_ranks(out / features / r["ranks_file"]) for r in record["runs"]]
            stacked = np.stack([r for r, _ in ranks])
            row = {"twin": record["twin"], "features": features, "library": record["library"],
                   "featint_model": record["featint_model"], "chosen": record["chosen"],
                   "seeds": [r["seed"] for r in record["runs"]], "quick": record["quick"],
                   "test": {m: float(np.mean([r["test"][m] for r in record["runs"]]))
                            for m in METRICS},
                   "test_intervals": {m: list(v) for m, v in pooled_interval(stacked).items()},
                   "epochs": [r["epochs"] for r in record["runs"]],
                   "best_epochs": [r["best_epoch"] for r in record["runs"]]}
            row["paired"] = paired_with_featint(comparison, record["featint_model"], ranks)
            rows.append(row)
    summary = {"format": FORMAT, "featint_results": str(featint_results), "twins": rows}
    write_json(out / "summary.json", summary)
    (out / "summary.md").write_text(summary_markdown(rows), encoding="utf-8")
    return summary


def paired_with_featint(comparison: Comparison | None, model: str,
                        ranks: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """featint's ``model`` minus the twin on each of :data:`PAIRED`, with the two-stage
    bootstrap interval, or why there is none."""
    if comparison is None:
        return {"note": "no featint results to pair with"}
    if model not in comparison.aggregates:
        return {"note": f"featint's results hold no {model}"}
    seeds = comparison.aggregates[model]["seeds"]
    theirs = [comparison.ranks(model, s) for s in seeds]
    if any(not np.array_equal(ex, theirs[0][1]) for _, ex in ranks):
        return {"note": "featint's results ranked other test examples (another protocol, or "
                        "quick mode): no paired test"}
    out: dict[str, Any] = {"featint_seeds": seeds}
    for metric in PAIRED:
        a = np.stack([per_example(r, metric) for r, _ in theirs])
        b = np.stack([per_example(r, metric) for r, _ in ranks])
        diff, lo, hi = paired_difference(a, b)
        out[metric] = {"featint": float(a.mean()), "twin": float(b.mean()),
                       "difference": diff, "lo": lo, "hi": hi}
    higher = {"hr@10": True, "mrr": True, "mean_rank": False}
    out["twin_significantly_better"] = [
        m for m in PAIRED if (out[m]["hi"] < 0 if higher[m] else out[m]["lo"] > 0)]
    return out


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table (the differences are featint minus twin)."""
    notes = [f"- {features} features, {library}: {note}."
             for (features, library), note in FEATURE_NOTES.items()]
    lines = ["Test metrics: mean over seeds. Differences: featint's model minus the twin on "
             "the same test examples, two-stage bootstrap over examples and seeds [95%].", "",
             *notes, "",
             "| twin | features | chosen | HR@10 | MRR | mean rank | featint model | "
             "featint − twin HR@10 [95%] | featint − twin MRR [95%] | twin better on |",
             "|---" * 10 + "|"]
    for r in rows:
        p = r["paired"]

        def cell(metric: str, digits: int, p: dict = p) -> str:
            if metric not in p:
                return "–"
            d = p[metric]
            return f"{d['difference']:+.{digits}f} [{d['lo']:+.{digits}f}, {d['hi']:+.{digits}f}]"

        better = ", ".join(p.get("twin_significantly_better", [])) or (
            "nothing" if "hr@10" in p else p.get("note", ""))
        lines.append(f"| {r['twin']} | {r['features']} | {r['chosen']} | "
                     f"{r['test']['hr@10']:.4f} | {r['test']['mrr']:.4f} | "
                     f"{r['test']['mean_rank']:.1f} | {r['featint_model']} | "
                     f"{cell('hr@10', 4)} | {cell('mrr', 4)} | {better} |")
    return "\n".join(lines) + "\n"


# -- the command -----------------------------------------------------------------------------
def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--twins", type=_list, default=list(TWINS), metavar="NAMES",
                        help=f"comma-separated (default: all): {', '.join(TWINS)}")
    parser.add_argument("--features", type=_list, default=list(FEATURE_SETS), metavar="SETS",
                        help="library, featint or both (default: both)")
    parser.add_argument("--seeds", type=lambda t: [int(s) for s in _list(t)], default=None,
                        metavar="LIST", help="default 0,1,2 (quick: 0)")
    parser.add_argument("--trials", type=int, default=None,
                        help=f"settings per twin (default featint's {TRIALS}; quick: 1)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="a lower epoch cap, for smoke runs only (default: the budget's)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2 epochs on a few thousand examples, 1 trial, 1 seed")
    parser.add_argument("--synthetic", action="store_true",
                        help="featint's small synthetic data set instead of MovieLens")
    parser.add_argument("--data-dir", default=None, help="the ml-100k folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: the record shipped with featint, "
                             "featint/records/peers; quick: a temporary one)")
    parser.add_argument("--featint-results", type=Path, default=RECORDS / "comparison",
                        help="featint's comparison to pair the twins with (default: its "
                             "record, featint/records/comparison)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="one line per epoch")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    bad = [t for t in args.twins if t not in TWINS] + [
        f for f in args.features if f not in FEATURE_SETS]
    if bad:
        parser.error(f"unknown twin or feature set {bad[0]!r}; twins: {', '.join(TWINS)}; "
                     f"feature sets: {', '.join(FEATURE_SETS)}")
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    trials = args.trials if args.trials is not None else (1 if args.quick else TRIALS)
    if not 1 <= trials:
        parser.error("--trials must be at least 1")
    out = args.out or (Path(tempfile.gettempdir()) / "featint-peers-quick" if args.quick
                       else RECORDS / "peers")
    try:
        for library in sorted({TWINS[t][0] for t in args.twins}):
            import_library(library)
        ml = (synthetic_movielens(seed=0) if args.synthetic
              else featint.load_movielens(args.data_dir))
        task = featint.build_task(ml)
        budget = BUDGET
        if args.epochs is not None:
            if args.epochs < 1:
                parser.error("--epochs must be at least 1")
            budget = replace(budget, epochs=args.epochs)
        options = Options(quick=args.quick, device=args.device, progress=not args.quiet,
                          verbose=args.verbose)
        jobs = len(args.twins) * len(args.features) * (trials + len(seeds))
        print(f"{len(args.twins)} twins x {len(args.features)} feature sets: {trials} trials "
              f"(seed 0, scored on validation), then seeds {seeds}; results in {out}",
              flush=True)
        with tqdm(total=jobs, desc="peers", disable=args.quiet, dynamic_ncols=True) as bar:
            for features in args.features:
                for twin in args.twins:
                    run_twin(task, twin, features, seeds, trials, out, budget, options, bar)
        summary = summarise(out, None if args.synthetic else args.featint_results)
    except PeersError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary_markdown(summary["twins"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
