"""Factorization Machine (Rendle, 2010).

``y(x) = w_0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j``

The pairwise term costs O(kn) with the sum-square trick
(:func:`featint.layers.fm_interaction`), which needs only two sums over the slots,
``s = sum_i x_i v_i`` and ``q = sum_i (x_i v_i)^2``:
``sum_{i<j} <v_i, v_j> x_i x_j = 1/2 sum_f (s_f^2 - q_f)``.
Scoring a context against candidate movies splits ``x`` into its context part ``c`` and
item part ``m``: pairs inside ``c`` and inside ``m`` are computed once per side, and
every pair across the sides adds up to one dot product ``<sum_c x v, sum_m x v>``, so
ranking all movies is a single matrix product.
"""

from __future__ import annotations

import torch
from torch import nn

from featint.layers import (
    FeaturesEmbedding,
    FeaturesLinear,
    ItemTable,
    Terms,
    bi_from_sums,
    cross_dot,
    field_sums,
    lookup,
)
from featint.models import Model, register
from featint.task import Features, Schema


@register("fm")
class FM(Model):
    def __init__(self, schema: Schema, items: Features, embed_dim: int = 16) -> None:
        super().__init__()
        self.num_context_fields, self.num_fields = (len(schema.context_fields),
                                                    len(schema.fields))
        self.items = ItemTable(items)
        self.w0 = nn.Parameter(torch.zeros(()))
        self.linear = FeaturesLinear(schema.num_features)           # w_i
        self.embedding = FeaturesEmbedding(schema.num_features, embed_dim)  # v_i

    def terms(self, x: Features) -> Terms:
        """FM's equation by fields, for samples ``x`` (context and movie,
        ``(*batch, slots)``): ``w_0``; ``sum_{i in f} w_i x_i`` per field ``f``; per
        field pair ``f < g`` the feature pairs across them,
        ``sum_{i in f, j in g} <v_i, v_j> x_i x_j = <e_f, e_g>``; on the diagonal the
        pairs inside a field, ``1/2 (|e_f|^2 - sum_{i in f} |x_i v_i|^2)``."""
        m, v = self.num_fields, self.embedding.embedding.weight
        e = self.embedding.fields(x, m)                     # e_f: (*batch, m, k)
        q = field_sums(v, x, m, squared=True).sum(-1)       # (*batch, m)
        gram = e @ e.mT                                     # <e_f, e_g>: (*batch, m, m)
        inside = 0.5 * (gram.diagonal(dim1=-2, dim2=-1) - q)
        pairs = gram.triu(1) + torch.diag_embed(inside)
        first = field_sums(self.linear.weight.weight, x, m).squeeze(-1)
        return Terms(self.w0.expand(first.shape[:-1]), first, pairs)

    # -- fast: each side once, the pairs across the sides as one dot product -----------

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        s_c, q_c = self.embedding.sums(context)  # sum x v, sum (x v)^2 over the context
        # terms of the context alone: (batch, 1)
        y_c = (self.w0 + self.linear(context)
               + bi_from_sums(s_c, q_c).sum(-1)).unsqueeze(-1)
        # terms of the movie alone, once per movie, then the candidates' rows: (batch,
        # candidates) or (num_items,)
        movies = self.items.all()
        s_m, q_m = self.embedding.sums(movies)   # the same sums over each movie's slots
        y_m = self.linear(movies) + bi_from_sums(s_m, q_m).sum(-1)
        y_m, s_m = lookup(y_m, items), lookup(s_m, items)
        # every context-movie pair at once: <s_c, s_m>
        return y_c + y_m + cross_dot(s_c, s_m)
