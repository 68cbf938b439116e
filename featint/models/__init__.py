"""One module per architecture, each registered under its name.

Every model has the same constructor, ``Model(schema, items, **hyperparameters)``, and the same
call, ``model(context, items) -> logits``:

- ``context``: :class:`featint.task.Features` of shape ``(batch, context_slots)``;
- ``items``: movie indices, ``(batch, candidates)`` -> logits ``(batch, candidates)``
  (training: the target and its negatives), or ``(num_items,)`` -> ``(batch, num_items)``
  (ranking: every context against the same movies, the context side computed once).
"""

from __future__ import annotations

import torch
from torch import nn

from featint.layers import init_embeddings
from featint.task import NextMovieTask

MODELS: dict[str, type[nn.Module]] = {}


def register(name: str):
    """Class decorator: make a model available to ``build_model``, ``fit`` and the CLI."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        MODELS[name] = cls
        cls.registered_name = name
        return cls

    return add


def build_model(name: str, task: NextMovieTask, seed: int = 0, init_std: float | None = None,
                **hparams: object) -> nn.Module:
    """Create model ``name`` for ``task`` with its parameters initialised from ``seed``.

    ``init_std``: None (default) keeps each model's own initialisation; a number draws every
    embedding table (each :class:`featint.layers.FeaturesEmbedding`) from ``N(0, init_std^2)``
    instead, from ``seed`` (:func:`featint.layers.init_embeddings`; DeepCTR-Torch's default is
    1e-4, featint's tables start at 0.01). The same option for every model."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    torch.manual_seed(seed)
    model = MODELS[name](task.schema, task.item_features(), **hparams)
    if init_std is not None:
        init_embeddings(model, init_std, seed)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Importing a model module registers it; the order is the order of the notebooks.
from featint.models import linear  # noqa: E402, F401, I001
from featint.models import mf  # noqa: E402, F401, I001
from featint.models import fm  # noqa: E402, F401, I001
from featint.models import ffm  # noqa: E402, F401, I001
from featint.models import afm  # noqa: E402, F401, I001
from featint.models import wide_deep  # noqa: E402, F401, I001
from featint.models import deepfm  # noqa: E402, F401, I001
from featint.models import nfm  # noqa: E402, F401, I001
from featint.models import dlrm  # noqa: E402, F401, I001
from featint.models import sasrec  # noqa: E402, F401, I001
