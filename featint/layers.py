"""The building blocks every model in featint shares, written once.

Notation (the notebooks use the same): a sample is a sparse vector ``x``; its ``s`` non-zero
entries sit in *slots*, slot ``a`` holding feature index ``i_a`` with value ``x_a``. Feature
``i`` has a linear weight ``w_i`` and a latent vector ``v_i`` of size ``k``. Padding slots have
index 0 and value 0, so every sum over slots ignores them without a mask.
"""

from __future__ import annotations

import torch
from torch import nn

from featint.task import Features, Field


class FeaturesEmbedding(nn.Module):
    """``x_a v_{i_a}`` for every slot: ``(*batch, num_slots)`` -> ``(*batch, num_slots, k)``."""

    def __init__(self, num_features: int, embed_dim: int, std: float = 0.01) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_features, embed_dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=std)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, f: Features) -> torch.Tensor:
        return lookup(self.embedding.weight, f.idx) * f.val.unsqueeze(-1)

    def fields(self, f: Features, num_fields: int) -> torch.Tensor:
        """``pool_fields(self(f), f.field, num_fields)`` without the per-slot vectors:
        ``(*batch, num_slots)`` -> ``(*batch, num_fields, k)``.

        Narrow rows: every slot's ``x_a v_{i_a}``, summed per field. Wide rows (FFM's ``(m - 1)
        k``): one ``embedding_bag`` whose bags are the (sample, field) pairs (slots reordered so
        that each field is contiguous; an empty field gives zeros), which never stores the
        per-slot vectors, several times faster there; for ``k = 16`` the gather is faster.
        """
        if self.embedding.embedding_dim <= 64:
            return pool_fields(self(f), f.field, num_fields)
        order = torch.argsort(f.field, stable=True)
        count = torch.bincount(f.field, minlength=num_fields)
        start = torch.cumsum(count, 0) - count             # first slot of each field
        num_slots = f.idx.shape[-1]
        rows = f.idx.numel() // max(num_slots, 1)
        offsets = torch.arange(rows, device=f.idx.device)[:, None] * num_slots + start
        out = nn.functional.embedding_bag(
            f.idx[..., order].reshape(-1), self.embedding.weight, offsets.reshape(-1),
            mode="sum", per_sample_weights=f.val[..., order].reshape(-1),
            padding_idx=self.embedding.padding_idx)
        return out.view(*f.idx.shape[:-1], num_fields, -1)


class FeaturesLinear(nn.Module):
    """``sum_a w_{i_a} x_a``: ``(*batch, num_slots)`` -> ``(*batch,)``."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.weight = nn.Embedding(num_features, 1, padding_idx=0)
        nn.init.zeros_(self.weight.weight)

    def forward(self, f: Features) -> torch.Tensor:
        return (lookup(self.weight.weight, f.idx).squeeze(-1) * f.val).sum(-1)


def lookup(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The rows ``table[idx]``: ``(num_rows, width)`` and ``idx`` of any shape -> ``(*idx.shape,
    width)``.

    The numbers of ``nn.functional.embedding``, but its backward on CPU sorts the indices
    (slow for the thousands of repeated ones in a batch); the backward of ``index_select`` is
    one ``index_add`` of the gradient rows, about three times faster. Padding slots (index 0)
    are multiplied by their value 0 by every caller, so row 0 gets a zero gradient as with
    ``padding_idx``.
    """
    return table.index_select(0, idx.reshape(-1)).view(*idx.shape, table.shape[-1])


def bi_interaction(xv: torch.Tensor) -> torch.Tensor:
    """``sum_{i<j} x_i v_i * x_j v_j`` over the ``s`` non-zero slots, kept as a vector, by the
    sum-square trick in O(ks) instead of O(ks^2):

    ``1/2 [ (sum_i x_i v_i)^2 - sum_i (x_i v_i)^2 ]``, element-wise over the ``k`` factors.
    ``(*batch, num_slots, k)`` -> ``(*batch, k)``. NFM's Bi-Interaction pooling.
    """
    square_of_sum = xv.sum(-2).pow(2)
    sum_of_squares = xv.pow(2).sum(-2)
    return 0.5 * (square_of_sum - sum_of_squares)


def fm_interaction(xv: torch.Tensor) -> torch.Tensor:
    """FM's pairwise term ``sum_{i<j} <v_i, v_j> x_i x_j``: ``(*batch, num_slots, k)`` ->
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
            layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]  # in place: less memory traffic
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


class ContextItemMLP(nn.Module):
    """An :class:`MLP` over ``[a; b]``, a context vector ``a`` joined to an item vector ``b``,
    with the first layer split so that ranking many items stays cheap:

    ``W [a; b] + bias = (W_a a + bias) + W_b b``

    ``W_a a`` is computed once per context and ``W_b b`` once per item; their broadcast sum
    then goes through the rest of the network. The result equals the MLP on the concatenation.

    ``a``: ``(batch, ctx_dim)``.
    ``b``: ``(batch, candidates, item_dim)`` -> ``(batch, candidates, out_dim)``, or
    ``(num_items, item_dim)`` (the same items for every context) -> ``(batch, num_items,
    out_dim)``. With ``out_dim=None`` the last hidden layer is returned instead.
    ``context``/``item`` are ``W_a`` (with the bias) and ``W_b``; ``head`` is the rest:
    [BatchNorm] -> ReLU -> Dropout after the first layer, then ``MLP(hidden[0], hidden[1:],
    out_dim)``. ``chunk`` contexts at a time are pushed through ``head`` when ranking all
    items, so the ``(chunk, num_items, hidden[0])`` activations stay small.
    """

    def __init__(
        self, ctx_dim: int, item_dim: int, hidden: tuple[int, ...] | list[int],
        out_dim: int | None = 1, dropout: float = 0.0, batch_norm: bool = False,
        chunk: int = 16,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("ContextItemMLP needs at least one hidden layer")
        first, *rest = hidden
        self.context = nn.Linear(ctx_dim, first)            # W_a and the layer's bias
        self.item = nn.Linear(item_dim, first, bias=False)  # W_b
        activation: list[nn.Module] = [_BatchNormLast(first)] if batch_norm else []
        self.head = nn.Sequential(
            *activation, nn.ReLU(inplace=True), nn.Dropout(dropout),
            MLP(first, rest, out_dim, dropout, batch_norm),
        )
        self.chunk = chunk
        self.out_features = self.head[-1].out_features

    @property
    def output(self) -> nn.Linear:
        """The output layer (``out_dim`` set): the last ``nn.Linear`` of ``head``."""
        return self.head[-1][-1]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h_a = self.context(a).unsqueeze(-2)  # (batch, 1, hidden[0])
        h_b = self.item(b)  # (batch, candidates, hidden[0]) or (num_items, hidden[0])
        if b.dim() == 2 and not self.training:  # ranking: same items, contexts in chunks
            return torch.cat([self.head(part + h_b) for part in h_a.split(self.chunk)])
        return self.head(h_a + h_b)


class NumericValues(nn.Module):
    """The numeric fields as one dense vector of their values, for models that feed numbers to
    an MLP directly (Wide & Deep's continuous features, DLRM's bottom MLP).

    ``fields``: the numeric fields to gather (others are ignored), in the order of the
    columns. ``(*batch, num_slots)`` -> ``(*batch, num_values)`` with ``num_values`` the sum
    of their sizes; feature ``j`` of a field lands in its own column, every other slot
    (categorical, bag, padding) in a dropped column, so the slot order does not matter.
    """

    def __init__(self, fields: tuple[Field, ...] | list[Field], num_features: int) -> None:
        super().__init__()
        self.num_values = sum(f.size for f in fields)
        column = torch.full((num_features,), self.num_values)  # the dropped column
        start = 0
        for f in fields:
            if f.kind != "numeric":
                raise ValueError(f"field {f.name!r} is {f.kind}, not numeric")
            column[f.offset:f.offset + f.size] = torch.arange(start, start + f.size)
            start += f.size
        self.register_buffer("column", column, persistent=False)

    def forward(self, f: Features) -> torch.Tensor:
        out = f.val.new_zeros(*f.val.shape[:-1], self.num_values + 1)
        return out.scatter_add(-1, self.column[f.idx], f.val)[..., :-1]
