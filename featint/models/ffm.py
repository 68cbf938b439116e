"""Field-aware Factorization Machine (Juan et al., 2016).

``y(x) = w_0 + sum_i w_i x_i + sum_{i<j} <v_{i,f_j}, v_{j,f_i}> x_i x_j``

FM gives feature ``i`` one vector ``v_i`` for all its partners; FFM gives it one vector
per field it can meet: ``v_{i,g}`` is what ``i`` uses against features of field ``g``. A
feature never meets its own field (pairs inside one field are not modelled), so each
feature keeps ``m - 1`` vectors, stored side by side in one embedding row of width
``(m - 1) k``.

Fields with several active features (the history bag, genres, the numeric fields) are
summed first: ``u_{f,g} = sum_{i in f} x_i v_{i,g}`` is field ``f``'s vector towards
field ``g``, and
``<u_{f,g}, u_{g,f}> = sum_{i in f} sum_{j in g} <v_{i,g}, v_{j,f}> x_i x_j`` is exactly
the feature-level double sum over the pair of fields ``(f, g)``. So

``y(x) = w_0 + sum_i w_i x_i + sum_{f<g} <u_{f,g}, u_{g,f}>``

As in FM, the field pairs split by side: context-context pairs are computed once per
context, item-item pairs once per movie, and the ``F_c x F_i`` context-item pairs add up
to one dot product of the flattened blocks ``[u_{f,g}]_{f in ctx, g in item}`` and
``[u_{g,f}]_{f in ctx, g in item}``, so ranking all movies is one matrix product.
"""

from __future__ import annotations

import torch
from torch import nn

from featint.layers import (
    FeaturesEmbedding,
    FeaturesLinear,
    ItemTable,
    Terms,
    cross_dot,
    field_sums,
    lookup,
    pairs,
)
from featint.models import Model, register
from featint.task import Features, Schema


@register("ffm")
class FFM(Model):
    def __init__(self, schema: Schema, items: Features, embed_dim: int = 16) -> None:
        super().__init__()
        # fields are numbered context first: 0..F_c-1, then the items
        m = len(schema.fields)
        self.num_fields, self.embed_dim = m, embed_dim
        self.num_context_fields = c = len(schema.context_fields)
        self.num_fields = m
        self.items = ItemTable(items)
        self.w0 = nn.Parameter(torch.zeros(()))
        self.linear = FeaturesLinear(schema.num_features)                      # w_i
        self.embedding = FeaturesEmbedding(schema.num_features,
                                           (m - 1) * embed_dim)                # v_{i,g}
        # column[f, g]: where v_{i,g} sits among the m - 1 vectors of a feature i of
        # field f (g skips f itself); the diagonal is never used.
        f, g = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
        column = g - (g > f).long()
        # the three kinds of field pairs (f, g), as global field numbers
        cc = pairs(c)                                              # both context, f < g
        ii = tuple(t + c for t in pairs(m - c))                    # both item, f < g
        cx = (torch.arange(c).repeat_interleave(m - c), torch.arange(c, m).repeat(c))
        for name, tensor in (("column", column), ("cc_f", cc[0]), ("cc_g", cc[1]),
                             ("ii_f", ii[0]), ("ii_g", ii[1]),
                             ("cx_f", cx[0]), ("cx_g", cx[1])):
            self.register_buffer(name, tensor, persistent=False)

    def terms(self, x: Features) -> Terms:
        """FFM's equation by fields, for samples ``x`` (context and movie, ``(*batch,
        slots)``): ``w_0``; ``sum_{i in f} w_i x_i`` per field; per field pair ``f < g``
        ``<u_{f,g}, u_{g,f}>`` with ``u_{f,g} = sum_{i in f} x_i v_{i,g}``."""
        m = self.num_fields
        u = self.embedding.fields(x, m).unflatten(
            -1, (m - 1, self.embed_dim))                        # (*b, m, m-1, k)
        f = torch.arange(m, device=u.device)[:, None].expand(m, m)
        u_fg = u[..., f, self.column.clamp(max=m - 2), :]       # u_{f,g}: (*b, m, m, k)
        # <u_{f,g}, u_{g,f}>, f < g
        pairs = (u_fg * u_fg.transpose(-3, -2)).sum(-1).triu(1)
        first = field_sums(self.linear.weight.weight, x, m).squeeze(-1)
        return Terms(self.w0.expand(first.shape[:-1]), first, pairs)

    # -- fast: the three kinds of pairs, each where it is cheapest ---------------------

    def field_vectors(self, f: Features, first_field: int = 0) -> torch.Tensor:
        """``u_{f,g} = sum_{i in f} x_i v_{i,g}`` for the fields of one side: Features
        ``(*batch, slots)`` -> ``(*batch, num_side_fields, m - 1, k)``; ``first_field``
        is the global number of the side's field 0 (0 for the context, ``F_c`` for
        items)."""
        num_side_fields = self.num_context_fields if first_field == 0 else (
            self.num_fields - self.num_context_fields)
        u = self.embedding.fields(f, num_side_fields)        # (*batch, fields, (m-1) k)
        return u.unflatten(-1, (self.num_fields - 1, self.embed_dim))

    def block(self, u: torch.Tensor, f: torch.Tensor, g: torch.Tensor,
              first_field: int):
        """``u_{f,g}`` for index tensors ``f`` (fields of ``u``'s side) and ``g`` (any
        field): ``(*batch, fields, m - 1, k)`` -> ``(pairs, *batch, k)``, pairs
        first."""
        # u_{f,g} for every (f, g) of the side as the first axis, so that picking pairs
        # is a copy of whole (rows, k) blocks, and so is its backward: several times
        # faster on CPU than picking along a middle axis
        flat = (f - first_field) * (self.num_fields - 1) + self.column[f, g]
        return u.flatten(-3, -2).movedim(-2, 0).index_select(0, flat)

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        c = self.num_context_fields
        u_c = self.field_vectors(context)          # (batch, F_c, m-1, k)
        # terms of the context alone, once per context:
        # sum_{f<g in ctx} <u_{f,g}, u_{g,f}>
        cc = (self.block(u_c, self.cc_f, self.cc_g, 0)
              * self.block(u_c, self.cc_g, self.cc_f, 0)).sum((0, -1))
        y_c = (self.w0 + self.linear(context) + cc).unsqueeze(-1)          # (batch, 1)
        # terms of the movie alone, once per movie of the table, then the candidates'
        # rows
        movies = self.items.all()
        u_m = self.field_vectors(movies, c)        # (num_items, F_i, m-1, k)
        ii = (self.block(u_m, self.ii_f, self.ii_g, c)
              * self.block(u_m, self.ii_g, self.ii_f, c)).sum((0, -1))
        y_m = lookup(self.linear(movies) + ii, items)      # (batch, candidates) or (N,)
        # every context-item field pair at once: one dot product of the flattened blocks
        a = (self.block(u_c, self.cx_f, self.cx_g, 0)
             .transpose(0, 1).flatten(1))  # (b, F_c F_i k)
        b = (self.block(u_m, self.cx_g, self.cx_f, c)
             .transpose(0, 1).flatten(1))  # (N, F_c F_i k)
        return y_c + y_m + cross_dot(a, lookup(b, items))

    @torch.no_grad()
    def pair_terms(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        """``<u_{f,g}, u_{g,f}>`` for every field pair ``f < g`` (zero elsewhere) for
        candidates ``items`` of shape ``(batch, candidates)``:
        ``(batch, candidates, m, m)``. Their sum is the pairwise part of
        :meth:`forward`."""
        c, m = self.num_context_fields, self.num_fields
        u = torch.cat([  # (batch, candidates, m, m-1, k)
            self.field_vectors(context).unsqueeze(1).expand(
                -1, items.shape[1], -1, -1, -1),
            self.field_vectors(self.items(items), c)], dim=-3)
        f, g = pairs(m, device=u.device)
        out = u.new_zeros(*u.shape[:2], m, m)
        out[..., f, g] = (self.block(u, f, g, 0)
                          * self.block(u, g, f, 0)).sum(-1).movedim(0, -1)
        return out
