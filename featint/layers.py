"""The building blocks every model in featint shares, written once.

Notation (the notebooks use the same): a sample is a sparse vector ``x``; its non-zero entries
sit in *slots*, slot ``s`` holding feature index ``i_s`` with value ``x_s``. Feature ``i`` has a
linear weight ``w_i`` and a latent vector ``v_i`` of size ``k``. Padding slots have index 0 and
value 0, so every sum over slots ignores them without a mask.
"""

from __future__ import annotations

import torch
from torch import nn

from featint.task import Features


class FeaturesEmbedding(nn.Module):
    """``x_s v_{i_s}`` for every slot: ``(*batch, num_slots)`` -> ``(*batch, num_slots, k)``."""

    def __init__(self, num_features: int, embed_dim: int, std: float = 0.01) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_features, embed_dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=std)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, f: Features) -> torch.Tensor:
        return self.embedding(f.idx) * f.val.unsqueeze(-1)


class FeaturesLinear(nn.Module):
    """``sum_s w_{i_s} x_s``: ``(*batch, num_slots)`` -> ``(*batch,)``."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.weight = nn.Embedding(num_features, 1, padding_idx=0)
        nn.init.zeros_(self.weight.weight)

    def forward(self, f: Features) -> torch.Tensor:
        return (self.weight(f.idx).squeeze(-1) * f.val).sum(-1)


def bi_interaction(xv: torch.Tensor) -> torch.Tensor:
    """``sum_{s<t} x_s v_s * x_t v_t`` kept as a vector, by the sum-square trick in O(nk):

    ``1/2 [ (sum_s x_s v_s)^2 - sum_s (x_s v_s)^2 ]``, element-wise over the ``k`` factors.
    ``(*batch, num_slots, k)`` -> ``(*batch, k)``. NFM's Bi-Interaction pooling.
    """
    square_of_sum = xv.sum(-2).pow(2)
    sum_of_squares = xv.pow(2).sum(-2)
    return 0.5 * (square_of_sum - sum_of_squares)


def fm_interaction(xv: torch.Tensor) -> torch.Tensor:
    """FM's pairwise term ``sum_{s<t} <v_s, v_t> x_s x_t``: ``(*batch, num_slots, k)`` ->
    ``(*batch,)``."""
    return bi_interaction(xv).sum(-1)


def cross_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dot products of a context vector with candidate vectors.

    ``a``: ``(batch, k)``. ``b``: ``(batch, candidates, k)`` gives ``(batch, candidates)``;
    ``b``: ``(num_items, k)`` (the same items for every context) gives ``(batch, num_items)``
    as one matrix product.
    """
    if b.dim() == 2:
        return a @ b.T
    return torch.einsum("bk,bck->bc", a, b)


def pool_fields(xv: torch.Tensor, field: torch.Tensor, num_fields: int) -> torch.Tensor:
    """Sum the slots of each field: ``(*batch, num_slots, k)`` -> ``(*batch, num_fields, k)``.

    A categorical field gives its one vector, a bag the weighted sum of its members (with the
    task's 1/n weights, their mean), a numeric field ``sum_j x_j v_j``. Padding adds zero.
    """
    out = xv.new_zeros(*xv.shape[:-2], num_fields, xv.shape[-1])
    return out.index_add(-2, field, xv)


def pairs(num_fields: int, device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
    """Row and column indices of the field pairs ``(f, g)`` with ``f < g``."""
    return tuple(torch.triu_indices(num_fields, num_fields, offset=1, device=device))


class MLP(nn.Sequential):
    """Linear -> [BatchNorm] -> ReLU -> Dropout for each hidden size, then a linear output
    layer of ``out_dim`` (skipped when ``out_dim`` is None). ``(..., in_dim)`` -> ``(..., out)``.
    """

    def __init__(
        self, in_dim: int, hidden: tuple[int, ...] | list[int], out_dim: int | None = 1,
        dropout: float = 0.0, batch_norm: bool = False,
    ) -> None:
        layers: list[nn.Module] = []
        for size in hidden:
            layers.append(nn.Linear(in_dim, size))
            if batch_norm:
                layers.append(_BatchNormLast(size))
            layers += [nn.ReLU(), nn.Dropout(dropout)]
            in_dim = size
        if out_dim is not None:
            layers.append(nn.Linear(in_dim, out_dim))
        super().__init__(*layers)
        self.out_features = out_dim if out_dim is not None else in_dim


class _BatchNormLast(nn.BatchNorm1d):
    """BatchNorm over the last axis of a tensor of any rank (candidates are an extra axis)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


class ItemTable(nn.Module):
    """The features of every movie, looked up by movie index.

    ``items`` of shape ``(batch, candidates)`` gives Features of shape
    ``(batch, candidates, item_slots)``; ``items`` of shape ``(num_items,)`` gives
    ``(num_items, item_slots)``. Buffers, not parameters: they come from the task.
    """

    def __init__(self, features: Features) -> None:
        super().__init__()
        self.register_buffer("idx", features.idx, persistent=False)
        self.register_buffer("val", features.val, persistent=False)
        self.register_buffer("field", features.field, persistent=False)

    def forward(self, items: torch.Tensor) -> Features:
        return Features(self.idx[items], self.val[items], self.field)
