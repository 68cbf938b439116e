"""DeepFM (Guo et al., 2017): an FM and an MLP side by side on ONE embedding table.

``y_hat = sigmoid(y_FM + y_DNN)``

- FM component: ``y_FM = w_0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j``, exactly
  :class:`featint.models.fm.FM` (same pieces, same parameter names, computed per side:
  the context alone, the movie alone, and every context-movie pair as one dot product).
- DNN component: ``z_0 = [e_1, e_2, ..., e_m]`` the field embeddings,
  ``e_f = sum_{i in f} x_i v_i`` (one vector for a categorical field; the weighted sum
  for a bag or a numeric field), then ``z_l = ReLU(W_l z_{l-1} + b_l)`` and
  ``y_DNN = w_out^T z_L + b_out``. Its first layer is split into a context part and an
  item part (:class:`featint.layers.ContextItemMLP`) so that ranking all movies stays
  cheap.

The ``v_i`` of the FM are the embeddings the DNN reads: both components learn them
together, from the raw fields alone, with no hand-made crosses (unlike Wide & Deep).
With the DNN's output layer at zero, DeepFM is the FM.
"""

from __future__ import annotations

import torch
from torch import nn

from featint.layers import (
    ContextItemMLP,
    FeaturesEmbedding,
    FeaturesLinear,
    ItemTable,
    Terms,
    bi_from_sums,
    cross_dot,
    lookup,
)
from featint.models import Model, register
from featint.models.fm import FM
from featint.task import Features, Schema


@register("deepfm")
class DeepFM(Model):
    def __init__(
        self, schema: Schema, items: Features, embed_dim: int = 16,
        hidden: tuple[int, ...] = (64, 64, 64), dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.items = ItemTable(items)
        self.w0 = nn.Parameter(torch.zeros(()))
        self.linear = FeaturesLinear(schema.num_features)                   # w_i
        # V_i, shared
        self.embedding = FeaturesEmbedding(schema.num_features, embed_dim)
        self.num_ctx_fields = len(schema.context_fields)
        self.num_item_fields = len(schema.item_fields)
        self.num_context_fields, self.num_fields = (self.num_ctx_fields,
                                                    len(schema.fields))
        self.dnn = ContextItemMLP(self.num_ctx_fields * embed_dim,
                                  self.num_item_fields * embed_dim, hidden, 1, dropout)

    def terms(self, x: Features) -> Terms:
        """DeepFM's equation by fields, for samples ``x`` (context and movie,
        ``(*batch, slots)``): the FM component's terms
        (:meth:`featint.models.fm.FM.terms`, the same parameters) and, as ``deep``, the
        DNN on ``[e_1, ..., e_m]``."""
        fm = FM.terms(self, x)
        e = self.embedding.fields(x, self.num_fields)                # (*batch, m, k)
        c = self.num_context_fields
        fm.deep = self.dnn.joint(e[..., :c, :].flatten(-2), e[..., c:, :].flatten(-2))
        fm.deep = fm.deep.squeeze(-1)
        return fm

    # -- fast: each side once, the DNN's first layer split -----------------------------

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        movies = self.items.all()
        # the field embeddings e_f = sum_{i in f} x_i V_i, context | item (every movie
        # once): both components read them
        e_c = self.embedding.fields(context, self.num_ctx_fields)  # (batch, m_C, k)
        e_m = self.embedding.fields(movies, self.num_item_fields)  # (num_items, m_M, k)
        s_c, s_m = e_c.sum(-2), e_m.sum(-2)                     # sum_i x_i V_i per side
        q_c, q_m = (self.embedding.sum_of_squares(context),
                    self.embedding.sum_of_squares(movies))
        # FM component: the context alone (batch, 1), the movie alone, the pairs across
        y_m = self.linear(movies) + bi_from_sums(s_m, q_m).sum(-1)  # (num_items,)
        y_fm = ((self.w0 + self.linear(context)
                 + bi_from_sums(s_c, q_c).sum(-1)).unsqueeze(-1)
                + lookup(y_m, items) + cross_dot(s_c, lookup(s_m, items)))
        # DNN component on the same embeddings: a^(0) = [e_1, ..., e_m], context | item
        y_dnn = self.dnn(e_c.flatten(-2), lookup(e_m.flatten(-2), items)).squeeze(-1)
        return y_fm + y_dnn
