"""Logistic regression on the raw sparse features: no interactions at all.

``y(x) = w_0 + sum_i w_i x_i``. It ranks movies the same way for every user (the context
part is a per-user constant), so it can learn popularity but no taste: the reference
point that shows what the interaction terms of the other models add.
"""

from __future__ import annotations

import torch
from torch import nn

from featint.layers import FeaturesLinear, ItemTable, Terms, field_sums, lookup
from featint.models import Model, register
from featint.task import Features, Schema


@register("linear")
class Linear(Model):
    def __init__(self, schema: Schema, items: Features) -> None:
        super().__init__()
        self.num_context_fields, self.num_fields = (len(schema.context_fields),
                                                    len(schema.fields))
        self.items = ItemTable(items)
        self.w0 = nn.Parameter(torch.zeros(()))
        self.linear = FeaturesLinear(schema.num_features)

    def terms(self, x: Features) -> Terms:
        """``y = w_0 + sum_f sum_{i in f} w_i x_i``: the bias and one term per field; no
        pairs. ``x``: context and movie, ``(*batch, slots)``."""
        first = field_sums(self.linear.weight.weight, x, self.num_fields).squeeze(-1)
        no_pairs = first.new_zeros(*first.shape, self.num_fields)
        return Terms(self.w0.expand(first.shape[:-1]), first, no_pairs)

    # -- fast: a movie's terms once per movie ------------------------------------------

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        # a movie's term once per movie, then the candidates' (all movies when ranking)
        y_m = lookup(self.linear(self.items.all()), items)
        return (self.w0 + self.linear(context)).unsqueeze(-1) + y_m
