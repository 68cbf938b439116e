"""One module per architecture, each registered under its name.

Every model has the same constructor, ``Model(schema, items, **hyperparameters)``, and
the same call, ``model(context, items) -> logits``:

- ``context``: :class:`featint.task.Features` of shape ``(batch, context_slots)``;
- ``items``: movie indices, ``(batch, candidates)`` -> logits ``(batch, candidates)``
  (training: the target and its negatives), or ``(num_items,)`` ->
  ``(batch, num_items)`` (ranking: every context against the same movies, the context
  side computed once).
"""

from __future__ import annotations

import torch
from torch import nn

from featint.layers import Terms, init_embeddings, join
from featint.task import Features, NextMovieTask

MODELS: dict[str, type[nn.Module]] = {}


class Model(nn.Module):
    """What the models share: their equation as written (:meth:`terms`, the textbook
    path, which :mod:`featint.explain` takes apart) beside their fast ``forward``
    (training on a few candidates, ranking every movie). A model sets
    ``num_context_fields`` and ``num_fields`` (context fields first) and ``items``, an
    :class:`featint.layers.ItemTable`."""

    num_context_fields: int
    num_fields: int

    def terms(self, x: Features) -> Terms:
        """The model's equation for samples ``x``, context and movie joined
        (:func:`featint.layers.join`), ``(*batch, slots)``: its :class:`Terms`."""
        raise NotImplementedError(f"{type(self).__name__} does not write out its terms")

    def sample(self, context: Features, items: torch.Tensor) -> Features:
        """Context ``(batch, ctx_slots)`` joined to each of its candidates ``items``
        ``(batch, candidates)``: ``(batch, candidates, slots)``."""
        return join(context, self.items(items), self.num_context_fields)

    def textbook(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        """Scores of candidates ``items`` ``(batch, candidates)`` by the equation as
        written (:meth:`terms`): ``(batch, candidates)``, the numbers of ``forward``,
        slower."""
        return self.terms(self.sample(context, items)).total()


def register(name: str):
    """Class decorator: make a model available to ``build_model``, ``fit`` and the
    CLI."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        MODELS[name] = cls
        cls.registered_name = name
        return cls

    return add


def build_model(name: str, task: NextMovieTask, seed: int = 0,
                init_std: float | None = None, **hparams: object) -> nn.Module:
    """Create model ``name`` for ``task`` with its parameters initialised from ``seed``.

    ``init_std``: None (default) keeps each model's own initialisation; a number draws
    every embedding table (each :class:`featint.layers.FeaturesEmbedding`) from
    ``N(0, init_std^2)`` instead, from ``seed`` (:func:`featint.layers.init_embeddings`;
    DeepCTR-Torch's default is 1e-4, featint's tables start at 0.01). The same option
    for every model."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; "
                         f"choose from {', '.join(sorted(MODELS))}")
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
