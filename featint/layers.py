"""The building blocks every model in featint shares, written once.

Notation (the notebooks use the same): a sample is a sparse vector ``x``; its ``s``
non-zero entries sit in *slots*, slot ``a`` holding feature index ``i_a`` with value
``x_a``. Feature ``i`` has a linear weight ``w_i`` and a latent vector ``v_i`` of size
``k``. Padding slots have index 0 and value 0, so every sum over slots ignores them
without a mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from featint.task import Features, Field


class FeaturesEmbedding(nn.Module):
    """``x_a v_{i_a}`` for every slot: ``(*batch, num_slots)`` ->
    ``(*batch, num_slots, k)``.

    The models mostly need sums of those vectors, never the vectors themselves: per
    field (:meth:`fields`) and their squares (:meth:`sum_of_squares`). Both go through
    :func:`field_sums`, which never builds the ``(batch, num_slots, k)`` tensor.
    """

    def __init__(self, num_features: int, embed_dim: int, std: float = 0.01) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_features, embed_dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=std)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, f: Features) -> torch.Tensor:
        return lookup(self.embedding.weight, f.idx) * f.val.unsqueeze(-1)

    def fields(self, f: Features, num_fields: int | None = None) -> torch.Tensor:
        """``e_g = sum_{a in g} x_a v_{i_a}`` for every field ``g``:
        ``(*batch, num_slots)`` -> ``(*batch, num_fields, k)``; equals
        ``pool_fields(self(f), f.field, num_fields)``."""
        return field_sums(self.embedding.weight, f, num_fields)

    def sum_of_squares(self, f: Features) -> torch.Tensor:
        """``sum_a (x_a v_{i_a})^2`` element-wise: ``(*batch, num_slots)`` ->
        ``(*batch, k)``; equals ``self(f).pow(2).sum(-2)``."""
        return field_sums(self.embedding.weight, f, squared=True).sum(-2)

    def sums(self, f: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """The two sums of the sum-square trick, ``s = sum_a x_a v_{i_a}`` and
        ``q = sum_a (x_a v_{i_a})^2``: ``(*batch, num_slots)`` -> ``(*batch, k)``
        each."""
        return self.fields(f).sum(-2), self.sum_of_squares(f)


def init_embeddings(model: nn.Module, std: float, seed: int = 0) -> None:
    """Draw the table of every :class:`FeaturesEmbedding` in ``model`` afresh from
    ``N(0, std^2)``, in module order, from a generator seeded with ``seed`` (the same
    numbers for the same seed, whatever else was drawn before); the padding row 0 stays
    zero. The ``init_std`` option of :func:`featint.models.build_model`."""
    if not std > 0:
        raise ValueError(f"init_std must be positive, got {std}")
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, FeaturesEmbedding):
            weight = module.embedding.weight
            with torch.no_grad():
                weight.copy_(torch.randn(weight.shape, generator=generator) * std)
                weight[0].zero_()


class FeaturesLinear(nn.Module):
    """``sum_a w_{i_a} x_a``: ``(*batch, num_slots)`` -> ``(*batch,)``."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.weight = nn.Embedding(num_features, 1, padding_idx=0)
        nn.init.zeros_(self.weight.weight)

    def forward(self, f: Features) -> torch.Tensor:
        return field_sums(self.weight.weight, f).sum((-2, -1))


@dataclass
class Terms:
    """A model's score split the way its equation writes it, for samples of shape
    ``batch`` (e.g. ``(batch, candidates)``), over the ``m`` fields of a (context,
    movie) sample, context fields first:

    - ``bias``: ``(*batch,)``, what no field contributes (``w_0``; 0 for a model
      without);
    - ``first``: ``(*batch, m)``, the first-order term of each field,
      ``sum_{i in f} w_i x_i``;
    - ``pairs``: ``(*batch, m, m)``, the term of each field pair ``f < g`` above the
      diagonal, the pairs of features inside field ``f`` on the diagonal, zeros below;
    - ``deep``: ``(*batch,)`` or None, a network's output, not split by the equation
      (:mod:`featint.explain` attributes it to fields and field pairs);
    - ``extra``: what else the equation computes per pair, e.g. AFM's attention weights.

    The score is their sum, :meth:`total`.
    """

    bias: torch.Tensor
    first: torch.Tensor
    pairs: torch.Tensor
    deep: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def total(self) -> torch.Tensor:
        """The score: ``bias + sum first + sum pairs (+ deep)``, ``(*batch,)``."""
        y = self.bias + self.first.sum(-1) + self.pairs.sum((-2, -1))
        return y if self.deep is None else y + self.deep


def pair_matrix(values: torch.Tensor, f: torch.Tensor, g: torch.Tensor,
                num_fields: int) -> torch.Tensor:
    """Values of field pairs ``(f[p], g[p])`` placed in an ``m x m`` matrix (zeros
    elsewhere): ``(*batch, pairs)`` -> ``(*batch, m, m)``."""
    out = values.new_zeros(*values.shape[:-1], num_fields * num_fields)
    return out.index_add(-1, f * num_fields + g, values).unflatten(
        -1, (num_fields, num_fields))


def join(context: Features, movie: Features, num_ctx_fields: int) -> Features:
    """A (context, movie) sample as one set of slots with the fields numbered globally
    (the movie's fields after the ``num_ctx_fields`` context fields), as the equations
    read it: context ``(batch, ctx_slots)`` and movies
    ``(batch, candidates, item_slots)`` ->
    ``(batch, candidates, ctx_slots + item_slots)``."""
    shape = movie.idx.shape[:-1]
    expand = (*shape, context.idx.shape[-1])
    return Features(
        torch.cat([context.idx.unsqueeze(-2).expand(expand), movie.idx], -1),
        torch.cat([context.val.unsqueeze(-2).expand(expand),
                   movie.val.to(context.val.dtype)], -1),
        torch.cat([context.field, movie.field + num_ctx_fields]))


def lookup(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The rows ``table[idx]``: ``(num_rows, *row)`` and ``idx`` of any shape ->
    ``(*idx.shape, *row)``.

    The numbers of ``nn.functional.embedding``, but its backward on CPU sorts the
    indices (slow for the thousands of repeated ones in a batch); the backward of
    ``index_select`` is one ``index_add`` of the gradient rows, about three times
    faster. Padding slots (index 0) are multiplied by their value 0 by every caller, so
    row 0 gets a zero gradient as with ``padding_idx``.
    """
    return table.index_select(0, idx.reshape(-1)).view(*idx.shape, *table.shape[1:])


def field_sums(
    table: torch.Tensor, f: Features, num_fields: int | None = None,
    squared: bool = False,
) -> torch.Tensor:
    """``sum_{a in g} x_a t_{i_a}`` for every field ``g`` (``squared``:
    ``sum x_a^2 t_{i_a}^2``, element-wise), ``t`` the rows of ``table``
    ``(num_features, width)``: Features ``(*batch, num_slots)`` ->
    ``(*batch, num_fields, width)``. ``num_fields`` defaults to ``f.field.max() + 1``; a
    field without slots gives zeros.

    The same numbers as ``pool_fields(lookup(table, f.idx) * f.val[..., None], ...)``,
    much faster for long rows. A field of one slot (a categorical field) is one row
    lookup. A field of many slots (the history bag, a numeric field) is written as what
    it is, a sparse row ``x_g`` over the field's features, made dense over the span of
    indices it uses (at most the field's size, 1682 for the history), and multiplied by
    that span of the table: ``x_g^T T_g``. A matrix product replaces a lookup of every
    slot, and its backward ``x_g t_grad`` replaces a scatter of every slot's gradient
    row. The dense rows are built once per batch (kept in ``f.cache``) for all the
    tables that read it.
    """
    layout = f.cache.get("layout")
    if layout is None:
        layout = f.cache["layout"] = _Layout(f)
    if num_fields is None:
        num_fields = layout.num_fields
    if squared:
        table = table * table
    parts = [table.new_zeros(layout.rows, table.shape[-1])] * num_fields
    # one lookup for all one-slot fields: (rows, num_single, width)
    if layout.single_fields:
        x = layout.single_val.to(table.dtype)  # squares in the table's precision
        looked_up = (lookup(table, layout.single_idx)
                     * (x.square() if squared else x)[..., None])
        for g, part in zip(layout.single_fields, looked_up.unbind(-2), strict=True):
            parts[g] = part
    for g, (lo, hi) in layout.spans.items():
        parts[g] = layout.dense(g, squared, table.dtype) @ table[lo:hi + 1]
    return torch.stack(parts, -2).view(*layout.batch, num_fields, table.shape[-1])


class _Layout:
    """The slots of a batch grouped by field, for :func:`field_sums`: the one-slot
    fields' indices and values, and each many-slot field's span of feature indices
    ``lo..hi`` with its rows made dense over it."""

    def __init__(self, f: Features) -> None:
        slots_of: dict[int, list[int]] = {}
        for slot, g in enumerate(f.field.tolist()):
            slots_of.setdefault(g, []).append(slot)
        self.num_fields = max(slots_of, default=-1) + 1
        num_slots = f.idx.shape[-1]
        self.batch = f.idx.shape[:-1]
        self.idx, self.val = f.idx.reshape(-1, num_slots), f.val.reshape(-1, num_slots)
        self.rows = self.idx.shape[0]
        single = {s[0]: g for g, s in slots_of.items() if len(s) == 1}
        self.single_fields = list(single.values())
        slots = torch.tensor(list(single), dtype=torch.long, device=f.idx.device)
        self.single_idx = self.idx.index_select(1, slots)
        self.single_val = self.val.index_select(1, slots)
        self.spans: dict[int, tuple[int, int]] = {}
        self._cols: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._dense: dict[tuple, torch.Tensor] = {}
        for g, s in slots_of.items():
            if len(s) == 1:
                continue
            # contiguous slots (always, for featint's tasks)
            if s[-1] - s[0] == len(s) - 1:
                i, x = self.idx[:, s[0]:s[-1] + 1], self.val[:, s[0]:s[-1] + 1]
            else:
                slots = torch.tensor(s, dtype=torch.long, device=f.idx.device)
                i, x = self.idx.index_select(1, slots), self.val.index_select(1, slots)
            hi = int(i.max())
            if hi > 0:  # a field of padding only adds nothing
                self.spans[g] = (int(torch.where(i > 0, i, hi).min()), hi)
                self._cols[g] = i, x

    def dense(self, g: int, squared: bool = False,
              dtype: torch.dtype | None = None) -> torch.Tensor:
        """Field ``g``'s values (``squared``: their squares) as dense rows over its
        span, in ``dtype`` (default: the values'): ``(rows, hi - lo + 1)``; padding
        (index 0, value 0) lands in column 0 and adds 0."""
        key = (g, squared, dtype)
        if key not in self._dense:
            lo, hi = self.spans[g]
            i, x = self._cols[g]
            x = x.to(dtype or x.dtype)
            x = x.square() if squared else x
            self._dense[key] = x.new_zeros(self.rows, hi - lo + 1).scatter_add_(
                1, (i - lo).clamp_(min=0), x)
        return self._dense[key]


def bi_interaction(xv: torch.Tensor) -> torch.Tensor:
    """``sum_{i<j} x_i v_i * x_j v_j`` over the ``s`` non-zero slots, kept as a vector,
    by the sum-square trick in O(ks) instead of O(ks^2):

    ``1/2 [ (sum_i x_i v_i)^2 - sum_i (x_i v_i)^2 ]``, element-wise over the ``k``
    factors. ``(*batch, num_slots, k)`` -> ``(*batch, k)``. NFM's Bi-Interaction
    pooling.
    """
    return bi_from_sums(xv.sum(-2), xv.pow(2).sum(-2))


def bi_from_sums(sum_xv: torch.Tensor, sum_of_squares: torch.Tensor) -> torch.Tensor:
    """:func:`bi_interaction` from its two sums, ``s = sum_i x_i v_i`` and
    ``q = sum_i (x_i v_i)^2`` (``(*batch, k)`` each, e.g.
    ``FeaturesEmbedding.fields(f).sum(-2)`` and ``FeaturesEmbedding.sum_of_squares(f)``,
    which never build the per-slot vectors): ``1/2 (s^2 - q)``."""
    square_of_sum = sum_xv.pow(2)
    return 0.5 * (square_of_sum - sum_of_squares)


def fm_interaction(xv: torch.Tensor) -> torch.Tensor:
    """FM's pairwise term ``sum_{i<j} <v_i, v_j> x_i x_j``: ``(*batch, num_slots, k)``
    -> ``(*batch,)``."""
    return bi_interaction(xv).sum(-1)


def cross_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dot products of a context vector with candidate vectors.

    ``a``: ``(batch, k)``. ``b``: ``(batch, candidates, k)`` gives
    ``(batch, candidates)``; ``b``: ``(num_items, k)`` (the same items for every
    context) gives ``(batch, num_items)`` as one matrix product.
    """
    if b.dim() == 2:
        return a @ b.T
    return torch.einsum("bk,bck->bc", a, b)


def pool_fields(xv: torch.Tensor, field: torch.Tensor, num_fields: int) -> torch.Tensor:
    """Sum the slots of each field: ``(*batch, num_slots, k)`` ->
    ``(*batch, num_fields, k)``.

    A categorical field gives its one vector, a bag the weighted sum of its members
    (with the task's 1/n weights, their mean), a numeric field ``sum_j x_j v_j``.
    Padding adds zero.
    """
    out = xv.new_zeros(*xv.shape[:-2], num_fields, xv.shape[-1])
    return out.index_add(-2, field, xv)


def pairs(
    num_fields: int, device: torch.device | None = None,
) -> tuple[torch.Tensor, ...]:
    """Row and column indices of the field pairs ``(f, g)`` with ``f < g``."""
    return tuple(torch.triu_indices(num_fields, num_fields, offset=1, device=device))


def load_fm_weights(model: nn.Module, fm: nn.Module) -> None:
    """Start ``model`` from a trained FM: copy its bias ``w_0``, linear weights ``w_i``
    and embeddings ``v_i`` (the AFM and NFM papers pre-train this way). Both must name
    them ``w0``, ``linear`` and ``embedding``, with the same shapes (the same embedding
    size)."""
    for part in ("w0", "linear", "embedding"):
        target, source = getattr(model, part), getattr(fm, part)
        if isinstance(target, nn.Parameter):
            target, source = {"": target}, {"": source}
        else:
            target, source = target.state_dict(keep_vars=True), source.state_dict()
        for key, value in target.items():
            if value.shape != source[key].shape:
                raise ValueError(f"cannot start from this FM: {part} {key} has shape "
                                 f"{tuple(source[key].shape)}, the model "
                                 f"{tuple(value.shape)}; train the FM with the same "
                                 f"embedding size")
            with torch.no_grad():
                value.copy_(source[key])


class Dropout(nn.Dropout):
    """``nn.Dropout`` (zero each value with probability ``p``, scale the rest by
    ``1 / (1 - p)``) whose mask, on CPU, comes from numpy's PCG64 generator.

    Torch's CPU ``bernoulli_`` draws the mask one value at a time from a Mersenne
    twister: for DeepFM's three hidden layers it was a third of a training step. Numpy
    draws 32 random bits per value several times faster; a value is kept when its bits
    are at least ``p * 2**32``. The generator is seeded from torch's, so
    ``torch.manual_seed`` still fixes every mask. Elsewhere (CUDA, eval mode, ``p = 0``)
    it is ``nn.Dropout`` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.p == 1:
            return super().forward(x)
        seed = int(torch.randint(0, 2**62, ()))
        bits = np.random.default_rng(seed).integers(
            0, 2**32, x.numel(), dtype=np.uint32)
        keep = torch.from_numpy(
            bits >= np.uint32(min(round(self.p * 2**32), 2**32 - 1)))
        scale = keep.view(x.shape).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x.mul_(scale) if self.inplace else x * scale


class MLP(nn.Sequential):
    """Linear -> [BatchNorm] -> ReLU -> Dropout for each hidden size, then a linear
    output layer of ``out_dim`` (skipped when ``out_dim`` is None). ``(..., in_dim)`` ->
    ``(..., out)``.
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
            # in place: less memory traffic
            layers += [nn.ReLU(inplace=True), Dropout(dropout)]
            in_dim = size
        if out_dim is not None:
            layers.append(nn.Linear(in_dim, out_dim))
        super().__init__(*layers)
        self.out_features = out_dim if out_dim is not None else in_dim


class _BatchNormLast(nn.BatchNorm1d):
    """BatchNorm over the last axis of a tensor of any rank (candidates are an extra
    axis)."""

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

    def all(self) -> Features:
        """The features of every movie, ``(num_items, item_slots)``.

        A training batch scores 1024 contexts x 5 candidates, more (context, movie)
        pairs than there are movies (1682): the models compute what depends on the movie
        alone once per movie from these, then :func:`lookup` the rows of the candidates.
        The numbers are those of ``self(items)``; the work is a third.
        """
        return Features(self.idx, self.val, self.field)


class ContextItemMLP(nn.Module):
    """An :class:`MLP` over ``[a; b]``, a context vector ``a`` joined to an item vector
    ``b``, with the first layer split so that ranking many items stays cheap:

    ``W [a; b] + bias = (W_a a + bias) + W_b b``

    ``W_a a`` is computed once per context and ``W_b b`` once per item; their broadcast
    sum then goes through the rest of the network. The result equals the MLP on the
    concatenation.

    ``a``: ``(batch, ctx_dim)``.
    ``b``: ``(batch, candidates, item_dim)`` -> ``(batch, candidates, out_dim)``, or
    ``(num_items, item_dim)`` (the same items for every context) ->
    ``(batch, num_items, out_dim)``. With ``out_dim=None`` the last hidden layer is
    returned instead. ``context``/``item`` are ``W_a`` (with the bias) and ``W_b``;
    ``head`` is the rest: [BatchNorm] -> ReLU -> Dropout after the first layer, then
    ``MLP(hidden[0], hidden[1:], out_dim)``. ``chunk`` contexts at a time are pushed
    through ``head`` when ranking all items, so the ``(chunk, num_items, hidden[0])``
    activations stay small.
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
            *activation, nn.ReLU(inplace=True), Dropout(dropout),
            MLP(first, rest, out_dim, dropout, batch_norm),
        )
        self.chunk = chunk
        self.out_features = self.head[-1].out_features

    @property
    def output(self) -> nn.Linear:
        """The output layer (``out_dim`` set): the last ``nn.Linear`` of ``head``."""
        return self.head[-1][-1]

    def joint(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The MLP on ``[a; b]`` as written, one context per item: ``a`` ``(*batch,
        ctx_dim)``, ``b`` ``(*batch, item_dim)`` -> ``(*batch, out_dim)``."""
        return self.head(self.context(a) + self.item(b))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h_a = self.context(a).unsqueeze(-2)  # (batch, 1, hidden[0])
        h_b = self.item(b)  # (batch, candidates, hidden[0]) or (num_items, hidden[0])
        # ranking: same items, contexts in chunks
        if b.dim() == 2 and not self.training:
            return torch.cat([self.head(part + h_b) for part in h_a.split(self.chunk)])
        return self.head(h_a + h_b)


class NumericValues(nn.Module):
    """The numeric fields as one dense vector of their values, for models that feed
    numbers to an MLP directly (Wide & Deep's continuous features, DLRM's bottom MLP).

    ``fields``: the numeric fields to gather (others are ignored), in the order of the
    columns. ``(*batch, num_slots)`` -> ``(*batch, num_values)`` with ``num_values`` the
    sum of their sizes; feature ``j`` of a field lands in its own column, every other
    slot (categorical, bag, padding) in a dropped column, so the slot order does not
    matter.
    """

    def __init__(
        self, fields: tuple[Field, ...] | list[Field], num_features: int,
    ) -> None:
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
