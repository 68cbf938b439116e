"""Factorization Machine (Rendle, 2010).

``y(x) = w_0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j``

The pairwise term costs O(kn) with the sum-square trick (:func:`featint.layers.fm_interaction`).
Scoring a context against candidate movies splits ``x`` into its context part ``c`` and item
part ``m``: pairs inside ``c`` and inside ``m`` are computed once per side, and every pair
across the sides adds up to one dot product ``<sum_c x v, sum_m x v>``, so ranking all movies
is a single matrix product.
"""

from __future__ import annotations

import torch
from torch import nn

from featint.layers import FeaturesEmbedding, FeaturesLinear, ItemTable, cross_dot, fm_interaction
from featint.models import register
from featint.task import Features, Schema


@register("fm")
class FM(nn.Module):
    def __init__(self, schema: Schema, items: Features, embed_dim: int = 16) -> None:
        super().__init__()
        self.items = ItemTable(items)
        self.w0 = nn.Parameter(torch.zeros(()))
        self.linear = FeaturesLinear(schema.num_features)           # w_i
        self.embedding = FeaturesEmbedding(schema.num_features, embed_dim)  # v_i

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        movie = self.items(items)
        xv_c, xv_m = self.embedding(context), self.embedding(movie)  # x_i v_i per slot
        # terms of the context alone: (batch, 1)
        y_c = (self.w0 + self.linear(context) + fm_interaction(xv_c)).unsqueeze(-1)
        # terms of the movie alone: (batch, candidates) or (num_items,)
        y_m = self.linear(movie) + fm_interaction(xv_m)
        # every context-movie pair at once: <sum_c x v, sum_m x v>
        return y_c + y_m + cross_dot(xv_c.sum(-2), xv_m.sum(-2))
