"""Logistic regression on the raw sparse features: no interactions at all.

``y(x) = w_0 + sum_i w_i x_i``. It ranks movies the same way for every user (the context part
is a per-user constant), so it can learn popularity but no taste: the reference point that
shows what the interaction terms of the other models add.
"""

from __future__ import annotations

import torch
from torch import nn

from featint.layers import FeaturesLinear, ItemTable, lookup
from featint.models import register
from featint.task import Features, Schema


@register("linear")
class Linear(nn.Module):
    def __init__(self, schema: Schema, items: Features) -> None:
        super().__init__()
        self.items = ItemTable(items)
        self.w0 = nn.Parameter(torch.zeros(()))
        self.linear = FeaturesLinear(schema.num_features)

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        # a movie's term once per movie, then the candidates' (all movies when ranking)
        y_m = lookup(self.linear(self.items.all()), items)
        return (self.w0 + self.linear(context)).unsqueeze(-1) + y_m
