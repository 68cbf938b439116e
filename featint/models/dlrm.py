"""Deep Learning Recommendation Model (Naumov et al., 2019).

The dense features ``x_dense`` go through a bottom MLP to a vector ``e_0`` of the
embedding size; every sparse field ``f`` (categorical, or a bag pooled per field) gives
one embedding vector ``e_f``. With ``e_0`` and the field vectors ``e_1 .. e_m``, the
interaction is either

- ``"dot"`` (the paper): ``R = [e_0, (<e_f, e_g>)_{f>g}]``, every pair once, no self
  pairs;
- ``"cat"`` (the seed article's simplified variant): ``R = [e_0, e_1, ..., e_m]``;

and the top MLP turns ``R`` into the logit. Here the dense features are the numeric
context fields (a user's mean rating, genre shares, genre mean ratings); the sparse ones
are the other context fields and the movie's fields.

Ranking: the vectors split into context ones ``E_C`` (``e_0`` first) and movie ones
``E_M``, and ``R`` (its entries in this order, a permutation of the paper's) into a
context part ``r_C`` (``e_0`` and the dots inside ``E_C``), a movie part ``r_M`` (the
dots inside ``E_M``) and the cross dots ``<e_g, e_f>`` (``g`` a movie field, ``f`` a
context one). The top MLP's first layer ``W = [W_C | W_M | W_X]`` is applied in the same
parts: ``W_C r_C + b`` once per context, ``W_M r_M`` once per movie, and the cross part,
in training, on the cross dots themselves; when ranking all movies, with ``W_X`` folded
into the context vectors, as one matrix product per chunk of contexts, for each hidden
unit ``j``:

``sum_{g,f} W_X[j,g,f] <e_g, e_f> = <vec(E_M), U[j]>``,
``U[j, g] = sum_f W_X[j,g,f] e_f``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from featint.layers import MLP, FeaturesEmbedding, ItemTable, Terms, lookup, pairs
from featint.models import Model, register
from featint.task import Features, Schema


@register("dlrm")
class DLRM(Model):
    """``bottom``: hidden sizes of the bottom MLP (its output has ``embed_dim`` units;
    ReLU after every layer, as in the official code). ``top``: hidden sizes of the top
    MLP, then one logit. ``interaction``: ``"dot"`` or ``"cat"``. ``dropout``: after
    each hidden layer of the top MLP (the paper has none). Every input size comes from
    the schema."""

    def __init__(
        self, schema: Schema, items: Features, embed_dim: int = 16,
        bottom: tuple[int, ...] | list[int] = (64, 32),
        top: tuple[int, ...] | list[int] = (64, 32),
        interaction: str = "dot", chunk: int = 32, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if interaction not in ("dot", "cat"):
            raise ValueError(f"interaction must be 'dot' or 'cat', got {interaction!r}")
        if any(f.kind == "numeric" for f in schema.item_fields):
            raise ValueError("DLRM takes dense (numeric) features "
                             "on the context side only")
        ctx = schema.context_fields
        numeric = [f for f in ctx if f.kind == "numeric"]
        sparse = [n for n, f in enumerate(ctx) if f.kind != "numeric"]
        self.interaction, self.chunk = interaction, chunk
        self.num_ctx_fields, self.num_item_fields = len(ctx), len(schema.item_fields)
        self.num_context_fields, self.num_fields = len(ctx), len(schema.fields)
        self.num_dense = sum(f.size for f in numeric)
        # each numeric feature's global index -> its column of the dense vector
        # (0: not dense)
        column, start = torch.zeros(schema.num_features, dtype=torch.long), 1
        for f in numeric:
            column[f.offset:f.offset + f.size] = torch.arange(start, start + f.size)
            start += f.size
        self.register_buffer("dense_column", column, persistent=False)
        self.register_buffer("ctx_sparse", torch.tensor(sparse, dtype=torch.long),
                             persistent=False)
        f_c, f_m = 1 + len(sparse), self.num_item_fields  # vectors per side, z included
        # the pairs {i, j}, i != j, once each (the paper's strict lower triangle of the
        # symmetric matrix of dots)
        for side, n in (("ctx", f_c), ("item", f_m)):
            i, j = pairs(n)
            self.register_buffer(f"{side}_i", i, persistent=False)
            self.register_buffer(f"{side}_j", j, persistent=False)
        if interaction == "dot":  # R = [z, dots in T_c | dots in T_m | <t_m, t_c>]
            self.parts = (embed_dim + len(self.ctx_i), len(self.item_i), f_m * f_c)
        else:                     # R = [vec T_c | vec T_m]
            self.parts = (f_c * embed_dim, f_m * embed_dim, 0)

        self.items = ItemTable(items)
        self._tables(schema, embed_dim)
        # z = bottom(dense)
        self.bottom = MLP(self.num_dense, (*bottom, embed_dim), None)
        # logit = top(R)
        self.top = MLP(sum(self.parts), top, 1, dropout)
        self._init_as_official(schema)
        # the paper's order of R, [z, <T_i, T_j> for i < j] over T = [z, context, movie]
        # vectors, as positions of the top MLP's inputs (which keep each side's apart)
        n = f_c + f_m
        position = torch.full((n, n), -1, dtype=torch.long)
        ci, cj = pairs(f_c)
        position[ci, cj] = embed_dim + torch.arange(len(ci))
        mi, mj = pairs(f_m)
        position[f_c + mi, f_c + mj] = sum(self.parts[:1]) + torch.arange(len(mi))
        g, f = torch.meshgrid(torch.arange(f_m), torch.arange(f_c), indexing="ij")
        position[f.flatten(), f_c + g.flatten()] = (sum(self.parts[:2])
                                                    + torch.arange(f_m * f_c))
        i, j = pairs(n)
        self.register_buffer("paper_order",
                             torch.cat([torch.arange(embed_dim), position[i, j]]),
                             persistent=False)
        self.register_buffer("sparse", torch.cat([self.ctx_sparse, torch.arange(
            len(ctx), len(ctx) + f_m)]), persistent=False)

    def terms(self, x: Features) -> Terms:
        """DLRM's equation, for samples ``x`` (context and movie, ``(*batch, slots)``):
        ``z = bottom(x_dense)``, ``T = [z, e_f for every sparse field]``,
        ``R = [z, <T_i, T_j>_{i<j}]`` (``"dot"``) or ``[vec T]`` (``"cat"``), the logit
        ``top(R)``: all of it ``deep``."""
        z = self.bottom(self.dense(x))                               # (*batch, k)
        e = self.embedding.fields(x, self.num_fields)[..., self.sparse, :]
        t = torch.cat([z.unsqueeze(-2), e], -2)                      # T: (*batch, n, k)
        if self.interaction == "dot":
            i, j = pairs(t.shape[-2], device=t.device)
            r = torch.cat([z, (t @ t.mT)[..., i, j]], -1)            # the paper's R
            r = r.new_zeros(r.shape).index_copy(
                -1, self.paper_order, r)                             # as top's inputs
        else:
            r = torch.cat([t[..., :len(self.ctx_sparse) + 1, :].flatten(-2),
                           t[..., len(self.ctx_sparse) + 1:, :].flatten(-2)], -1)
        deep = self.top(r).squeeze(-1)
        zero = deep.new_zeros(*deep.shape, self.num_fields)
        return Terms(torch.zeros_like(deep), zero, zero.unsqueeze(-1).expand(
            *zero.shape, self.num_fields), deep)

    def _tables(self, schema: Schema, embed_dim: int) -> None:
        """The embedding tables: one per sparse field, as slices of one table (the
        numeric features' rows are never looked up: their values go to the bottom MLP).
        :class:`featint.torchrec_dlrm.TorchRecDLRM` keeps them in TorchRec's instead."""
        self.embedding = FeaturesEmbedding(schema.num_features, embed_dim)

    def _init_tables(self, schema: Schema) -> None:
        """As the official code: uniform in +-sqrt(1/n) for a table of n rows."""
        with torch.no_grad():
            weight = self.embedding.embedding.weight
            for f in schema.fields:
                bound = math.sqrt(1.0 / f.size)
                weight[f.offset:f.offset + f.size].uniform_(-bound, bound)

    def _init_as_official(self, schema: Schema) -> None:
        """As the official code: the tables (:meth:`_init_tables`), then layer weights
        normal with std sqrt(2 / (fan_in + fan_out)), biases std sqrt(1 / fan_out)."""
        self._init_tables(schema)
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                fan_in, fan_out = layer.in_features, layer.out_features
                nn.init.normal_(layer.weight, std=math.sqrt(2.0 / (fan_in + fan_out)))
                nn.init.normal_(layer.bias, std=math.sqrt(1.0 / fan_out))

    # -- fast: each side once, the cross dots folded into the top MLP's first layer ----

    def dense(self, context: Features) -> torch.Tensor:
        """The numeric features' values as a dense vector: ``(*batch, num_dense)``."""
        out = context.val.new_zeros(*context.val.shape[:-1], self.num_dense + 1)
        return out.scatter_add(-1, self.dense_column[context.idx], context.val)[..., 1:]

    def vectors(
        self, context: Features, items: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """``z`` ``(batch, k)``; context vectors ``T_c`` ``(batch, F_c, k)``, ``z``
        first; item vectors ``T_m`` ``(batch, candidates, F_m, k)`` or
        ``(num_items, F_m, k)``."""
        z = self.bottom(self.dense(context))
        e_c = self.embedding.fields(context, self.num_ctx_fields)
        t_c = torch.cat([z.unsqueeze(-2), e_c[:, self.ctx_sparse]], dim=-2)
        # every movie once, then the candidates' rows (all movies when ranking)
        t_m = lookup(
            self.embedding.fields(self.items.all(), self.num_item_fields), items)
        return z, t_c, t_m

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        z, t_c, t_m = self.vectors(context, items)
        if self.interaction == "dot":
            # dots inside each side: once per context, once per movie
            r_c = torch.cat([z, (t_c @ t_c.mT)[:, self.ctx_i, self.ctx_j]], dim=-1)
            r_m = (t_m @ t_m.mT)[..., self.item_i, self.item_j]
        else:
            r_c, r_m = t_c.flatten(-2), t_m.flatten(-2)
        first, rest = self.top[0], list(self.top)[1:]
        w_c, w_m, w_x = first.weight.split(self.parts, dim=-1)
        # W_c r_c + b: (batch, 1, hidden)
        a_c = (r_c @ w_c.T + first.bias).unsqueeze(-2)
        # W_m r_m: (batch, C | items, hidden)
        a_m = r_m @ w_m.T
        if items.dim() == 2:  # candidates: the cross dots <t_m, t_c> themselves
            h = a_c + a_m
            if self.interaction == "dot":
                # (b, C, F_m F_c)
                cross = (t_m.flatten(1, 2) @ t_c.mT).view(*items.shape, -1)
                h = h + cross @ w_x.T
            return self._rest(h, rest)
        # all movies: sum_{m,c} W_x[h, m, c] <t_m, t_c> = <vec T_m, U[h]> with
        # U[h, m] = sum_c W_x[h, m, c] t_c built once per context; one product per
        # chunk. Activations are laid out (num_items, chunk, hidden): the product needs
        # no copy.
        if self.interaction == "dot":
            batch, f_c, _ = t_c.shape
            # (b, h, F_m k)
            u = (w_x.reshape(-1, f_c) @ t_c).view(batch, len(first.bias), -1)
        x_m, a_c, a_m = t_m.flatten(-2), a_c.transpose(0, 1), a_m.unsqueeze(-2)
        out = []  # contexts in chunks, so (num_items, chunk, hidden) stays small
        for b in range(0, a_c.shape[1], self.chunk):
            h = a_c[:, b:b + self.chunk] + a_m  # (num_items, chunk, hidden)
            if self.interaction == "dot":
                u_b = u[b:b + self.chunk]
                h += (x_m @ u_b.flatten(0, 1).T).view(len(x_m), *u_b.shape[:2])
            out.append(self._rest(h, rest).T)
        return torch.cat(out)

    @staticmethod
    def _rest(h: torch.Tensor, rest: list[nn.Module]) -> torch.Tensor:
        """The top MLP after its first linear layer: ``(..., hidden)`` -> logits
        ``(...)``."""
        for layer in rest:  # ReLU -> Dropout -> ... -> the logit
            h = layer(h)
        return h.squeeze(-1)


@register("dlrm_simplified")
class DLRMSimplified(DLRM):
    """DLRM with the field vectors concatenated instead of their dot products."""

    def __init__(self, schema: Schema, items: Features, embed_dim: int = 16,
                 **hparams: object) -> None:
        super().__init__(schema, items, embed_dim, interaction="cat", **hparams)
