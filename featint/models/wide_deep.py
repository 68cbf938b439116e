"""Wide & Deep (Cheng et al., 2016): a linear model and an MLP trained jointly.

``P(y=1 | x) = sigmoid( w_wide^T [x, phi(x)]  +  w_deep^T z_L  +  b_out )``

- Wide part: a linear model over the raw sparse features ``x`` and over cross-product
  transformations ``phi_c(x) = prod_i x_i^{c_ci}`` (for binary features an AND, e.g.
  AND(occupation=doctor, genre=Drama)). It *memorises* pairs seen in training. Each
  cross here joins one context feature to one item feature (a cross inside the context
  adds the same number to every movie, so it cannot change a ranking); its value is the
  product of the two feature values, and the pair is hashed into one table of
  ``2**bits`` weights.
- Deep part: ``z_0 = [e_1; ...; e_m; x_dense]`` the field embeddings (a bag field pooled
  into one vector by its weights) and the numeric fields as dense values, then
  ``z_l = ReLU(W_l z_{l-1} + b_l)``. It *generalises* through the embeddings. Its first
  layer is split into a context part and an item part
  (:class:`featint.layers.ContextItemMLP`) so that ranking all movies costs one context
  product per context.

The paper trains the wide part with FTRL + L1 and the deep part with AdaGrad; featint's
shared :func:`featint.train.fit` uses Adam for both, with the wide part's penalties
(``wide_l1``, ``wide_l2``) as settings its tuning tries (its card says which was
chosen).
"""

from __future__ import annotations

import torch
from torch import nn

from featint.layers import (
    ContextItemMLP,
    FeaturesEmbedding,
    FeaturesLinear,
    ItemTable,
    NumericValues,
    Terms,
    field_sums,
    lookup,
)
from featint.models import Model, register
from featint.task import Features, Schema

#: The cross-product transformations: (context field, item field). A bag (genre) crosses
#: with each of its members.
CROSSES = (("occupation", "genre"), ("gender", "genre"), ("age", "year"),
           ("last_movie", "movie"))


def cross_bucket(a: torch.Tensor, b: torch.Tensor, num_features: int,
                 bits: int) -> torch.Tensor:
    """Hashed bucket in ``[0, 2**bits)`` of the cross of global features ``a`` and
    ``b``.

    The pair gets the unique number ``a * num_features + b`` (global indices never
    repeat across fields, so different crosses never share a number), and Knuth's
    multiplicative hash keeps the top ``bits`` bits of
    ``number * 2654435761 mod 2**32``. ``a`` and ``b`` broadcast; the result has their
    broadcast shape.
    """
    number = a * num_features + b  # < 2**26 for this task, so the product fits in int64
    return ((number * 2654435761) & 0xFFFFFFFF) >> (32 - bits)


@register("wide_deep")
class WideDeep(Model):
    def __init__(
        self, schema: Schema, items: Features, embed_dim: int = 16,
        hidden: tuple[int, ...] = (128, 64), dropout: float = 0.0,
        crosses: tuple[tuple[str, str], ...] = CROSSES, bits: int = 20,
        wide_l1: float = 0.0, wide_l2: float = 0.0,
    ) -> None:
        """``wide_l1``, ``wide_l2``: penalties on the wide part's weights (raw features
        and crosses; the paper trains it with FTRL and L1)."""
        super().__init__()
        self.wide_l1, self.wide_l2 = wide_l1, wide_l2
        if not 0 < bits <= 32:
            raise ValueError(f"bits must be in 1..32, got {bits}")
        # the cross's number a * n + b must stay < 2**31
        if schema.num_features ** 2 >= 2**31:
            raise ValueError(f"the cross hash needs fewer than 46,341 features, "
                             f"the task has {schema.num_features:,}: "
                             f"Wide & Deep cannot be built on it")
        self.items = ItemTable(items)
        self.num_features, self.bits = schema.num_features, bits
        # -- wide: w for the raw features, one hashed table for every cross
        self.linear = FeaturesLinear(schema.num_features)
        self.cross_weight = nn.Embedding(2**bits, 1)
        nn.init.zeros_(self.cross_weight.weight)
        ctx_number = {f.name: n for n, f in enumerate(schema.context_fields)}
        item_number = {f.name: n for n, f in enumerate(schema.item_fields)}
        for a, b in crosses:
            if (schema.field(a).side != "context"
                    or schema.field(a).kind != "categorical"):
                raise ValueError(f"cross ({a}, {b}): {a!r} must be a categorical "
                                 f"context field")
            if schema.field(b).side != "item":
                raise ValueError(f"cross ({a}, {b}): {b!r} must be an item field")
        self.crosses = [(ctx_number[a], item_number[b]) for a, b in crosses]
        self.num_context_fields, self.num_fields = len(ctx_number), len(schema.fields)
        # -- deep: embeddings of the categorical and bag fields, numeric fields as
        # values
        self.embedding = FeaturesEmbedding(schema.num_features, embed_dim)
        self.num_ctx_fields, self.num_item_fields = len(ctx_number), len(item_number)
        embedded = [n for n, f in enumerate(schema.context_fields)
                    if f.kind != "numeric"]
        self.register_buffer("embedded", torch.tensor(embedded), persistent=False)
        self.dense = NumericValues(
            [f for f in schema.context_fields if f.kind == "numeric"],
            schema.num_features)
        self.deep = ContextItemMLP(
            len(self.embedded) * embed_dim + self.dense.num_values,
            self.num_item_fields * embed_dim, hidden, 1, dropout)

    def terms(self, x: Features) -> Terms:
        """Wide & Deep's equation by fields, for samples ``x`` (context and movie,
        ``(*batch, slots)``): the wide part's ``w_i x_i`` per field and its crosses as
        pairs, ``w_c x_a x_b`` of each cross (context field ``a``, movie field ``b``) on
        pair ``(a, b)`` (a bag crosses with each member); the deep part, the MLP on
        ``[e_f ...; x_dense; e_g ...]``, as ``deep``. The wide part has no bias: the
        output layer's is the deep's."""
        c, m = self.num_context_fields, self.num_fields
        first = field_sums(self.linear.weight.weight, x, m).squeeze(-1)
        pairs = first.new_zeros(*first.shape, m)
        for a, b, weight, x_ab in self.active_crosses(x):
            pairs[..., a, c + b] = (weight * x_ab).sum(-1)
        e = self.embedding.fields(x, m)                                 # (*batch, m, k)
        a_c = torch.cat([e[..., self.embedded, :].flatten(-2), self.dense(x)], -1)
        deep = self.deep.joint(a_c, e[..., c:, :].flatten(-2)).squeeze(-1)
        return Terms(first.new_zeros(first.shape[:-1]), first, pairs, deep)

    def active_crosses(self, x: Features):
        """For each cross (context field ``a``, movie field ``b``; numbers on their
        sides): ``(a, b, w, x_a x_b)`` with the weights of its active crosses ``w`` and
        their values, ``(*batch, slots_b)`` each (one per slot of ``b``; padding has
        value 0)."""
        c = self.num_context_fields
        for a, b in self.crosses:
            slot_a = torch.nonzero(x.field == a).squeeze(-1)   # the one slot of field a
            slots_b = torch.nonzero(x.field == c + b).squeeze(-1)
            i_a, x_a = x.idx[..., slot_a], x.val[..., slot_a]     # (*batch, 1)
            i_b, x_b = x.idx[..., slots_b], x.val[..., slots_b]   # (*batch, slots_b)
            bucket = cross_bucket(i_a, i_b, self.num_features, self.bits)
            yield a, b, lookup(self.cross_weight.weight, bucket).squeeze(-1), x_a * x_b

    # -- fast: each side once, crosses by gathers, the deep part's first layer split ---

    def wide_crosses(self, context: Features, movie: Features) -> torch.Tensor:
        """``sum_c w_{bucket(c)} phi_c(x)`` over the crosses ``c``, ``phi_c = x_a x_b``
        (hashed).

        ``movie`` of shape ``(batch, candidates, slots)`` gives ``(batch, candidates)``,
        of shape ``(num_items, slots)`` gives ``(batch, num_items)``: one gather per
        cross, no loop over movies. Ranking computes one row of all movies per
        *distinct* context feature (21 occupations, not one per context) and copies it
        to the contexts that have it.
        """
        total = 0.0
        for a, b in self.crosses:
            mask = context.field == a  # the one slot of the categorical field a
            i_a, x_a = ((context.idx * mask).sum(-1),
                        (context.val * mask).sum(-1))  # (batch,)
            cols = movie.field == b  # the slots of item field b (several for a bag)
            i_b, x_b = movie.idx[..., cols], movie.val[..., cols]  # (..., slots_b)
            # all movies: rows for the distinct i_a, then (batch, items)
            if i_b.dim() == 2:
                i_a, row = torch.unique(i_a, return_inverse=True)
            else:
                row = slice(None)
            w = lookup(self.cross_weight.weight, cross_bucket(
                i_a[:, None, None], i_b, self.num_features, self.bits)).squeeze(-1)
            total = total + x_a[:, None] * (w * x_b).sum(-1)[row]
        return total

    def penalty(self) -> torch.Tensor | float:
        """``l1 ||w_wide||_1 + l2 ||w_wide||^2``, added to the training loss."""
        total = 0.0
        for w in (self.linear.weight.weight, self.cross_weight.weight):
            if self.wide_l1:
                total = total + self.wide_l1 * w.abs().sum()
            if self.wide_l2:
                total = total + self.wide_l2 * w.square().sum()
        return total

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        movie, movies = self.items(items), self.items.all()
        # wide: w^T [x, phi(x)], raw features of both sides (a movie's once per movie)
        # plus the crosses
        y_wide = (self.linear(context).unsqueeze(-1)
                  + lookup(self.linear(movies), items)
                  + self.wide_crosses(context, movie))
        # deep: a^(0) = [e_1; ...; e_m; dense] split into its context and item parts
        e_c = self.embedding.fields(context, self.num_ctx_fields).index_select(
            1, self.embedded)
        a_c = torch.cat([e_c.flatten(-2), self.dense(context)], -1)
        a_m = lookup(
            self.embedding.fields(movies, self.num_item_fields).flatten(-2), items)
        # w_deep^T a^(l_f) + b, b = the output bias
        y_deep = self.deep(a_c, a_m).squeeze(-1)
        return y_wide + y_deep
