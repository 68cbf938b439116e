"""Matrix factorisation: the FM of chapter 01 restricted to the user and movie fields.

``y(u, m) = w_0 + w_u + w_m + <v_u, v_m>``

With only two non-zero features, one user and one movie, FM's sum over pairs has a
single term. Everything else the context knows (demographics, time, the last movie, the
history) is left out: the rung of the baseline ladder that shows what those side
features add.
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
)
from featint.models import Model, register
from featint.task import Features, Field, Schema


def only_field(f: Features, field_number: int, field: Field) -> Features:
    """The slots of one field (``field_number`` on its side) of a batch of features,
    with its features renumbered ``1 .. field.size`` (0 stays padding)."""
    slots = torch.nonzero(f.field == field_number).squeeze(-1)
    idx = f.idx[..., slots]
    return Features(torch.where(idx > 0, idx - field.offset + 1, 0), f.val[..., slots],
                    f.field[slots])


@register("mf")
class MF(Model):
    def __init__(self, schema: Schema, items: Features, embed_dim: int = 16) -> None:
        super().__init__()
        self.num_context_fields, self.num_fields = (len(schema.context_fields),
                                                    len(schema.fields))
        self.items = ItemTable(items)
        self.user, self.movie = schema.field("user"), schema.field("movie")
        self.user_number = schema.context_fields.index(self.user)
        self.movie_number = schema.item_fields.index(self.movie)
        self.w0 = nn.Parameter(torch.zeros(()))
        self.user_linear = FeaturesLinear(self.user.size + 1)                # w_u
        self.movie_linear = FeaturesLinear(self.movie.size + 1)              # w_m
        self.user_embedding = FeaturesEmbedding(self.user.size + 1, embed_dim)    # v_u
        self.movie_embedding = FeaturesEmbedding(self.movie.size + 1, embed_dim)  # v_m

    def terms(self, x: Features) -> Terms:
        """``y = w_0 + w_u + w_m + <v_u, v_m>`` over the ``m`` fields of ``x`` (context
        and movie, ``(*batch, slots)``): the user's and the movie's terms and their one
        pair."""
        u, m = self.user_number, self.num_context_fields + self.movie_number
        user, movie = only_field(x, u, self.user), only_field(x, m, self.movie)
        first = x.val.new_zeros(*x.val.shape[:-1], self.num_fields)
        first[..., u], first[..., m] = self.user_linear(user), self.movie_linear(movie)
        pairs = first.new_zeros(*first.shape, self.num_fields)
        pairs[..., u, m] = (self.user_embedding(user).sum(-2)
                            * self.movie_embedding(movie).sum(-2)).sum(-1)
        return Terms(self.w0.expand(first.shape[:-1]), first, pairs)

    # -- fast: each side once ----------------------------------------------------------

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        user = only_field(context, self.user_number, self.user)             # (batch, 1)
        movie = only_field(self.items(items), self.movie_number, self.movie)  # (..., 1)
        y_u = (self.w0 + self.user_linear(user)).unsqueeze(-1)              # (batch, 1)
        y_m = self.movie_linear(movie)                # (batch, candidates) or (N,)
        v_u = self.user_embedding(user).sum(-2)       # (batch, k)
        v_m = self.movie_embedding(movie).sum(-2)     # (batch, candidates, k) or (N, k)
        return y_u + y_m + cross_dot(v_u, v_m)
