"""Neural Factorization Machine (He & Chua, 2017).

``y(x) = w_0 + sum_i w_i x_i + w_out^T MLP(f_BI(x))``, with Bi-Interaction pooling

``f_BI(x) = sum_{i<j} x_i v_i * x_j v_j``  (element-wise product: a vector of
size ``k``).

FM sums that vector (``1^T f_BI``); NFM puts BatchNorm, dropout and a small MLP between
``f_BI`` and the sum, so second-order interactions can combine non-linearly. With no
hidden layer, no BatchNorm, no dropout and ``w_out = 1`` it is exactly FM.

Ranking splits ``x`` into its context part ``c`` and item part ``m``. Pairs inside ``c``
and inside ``m`` give one vector per side; every cross pair adds up to ``s_c * s_m``
with ``s = sum x v``:

``f_BI(c + m) = f_BI(c) + f_BI(m) + s_c * s_m``

so training builds the ``k``-vector of each (context, candidate) pair from the two
sides. Ranking all movies goes one step further (eval mode, :meth:`NFM._rank_all`):
BatchNorm and the first layer are affine, so the first hidden layer of every pair comes
out of one matrix product per context, and only the layers after it run on
``(batch, num_items, hidden)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from featint.layers import (
    MLP,
    Dropout,
    FeaturesEmbedding,
    FeaturesLinear,
    ItemTable,
    Terms,
    _BatchNormLast,
    bi_from_sums,
    field_sums,
    load_fm_weights,
    lookup,
)
from featint.models import Model, register
from featint.task import Features, Schema


@register("nfm")
class NFM(Model):
    """``hidden``: sizes of the hidden layers; ``None`` gives the paper's choice, one
    layer as wide as the embedding. ``bi_dropout``/``dropout``: dropout on ``f_BI`` and
    after each hidden layer (official code: keep probabilities 0.5 and 0.8).
    ``batch_norm`` on ``f_BI`` and on every hidden layer, as in the paper."""

    def __init__(
        self, schema: Schema, items: Features, embed_dim: int = 16,
        hidden: tuple[int, ...] | list[int] | None = None, bi_dropout: float = 0.5,
        dropout: float = 0.2, batch_norm: bool = True, pretrain: str | None = None,
    ) -> None:
        """``pretrain``: ``"fm"`` to start from a trained FM's ``w_0``, ``w_i``, ``v_i``
        (the paper; done by :func:`featint.training.trained`)."""
        super().__init__()
        self.pretrain = pretrain
        self.num_context_fields, self.num_fields = (len(schema.context_fields),
                                                    len(schema.fields))
        hidden = (embed_dim,) if hidden is None else tuple(hidden)
        self.items = ItemTable(items)
        self.w0 = nn.Parameter(torch.zeros(()))
        self.linear = FeaturesLinear(schema.num_features)                   # w_i
        self.embedding = FeaturesEmbedding(schema.num_features, embed_dim)  # v_i
        self.bi_norm = _BatchNormLast(embed_dim) if batch_norm else nn.Identity()
        self.bi_dropout = Dropout(bi_dropout)
        # sigma(W f + b), per layer
        self.mlp = MLP(embed_dim, hidden, None, dropout, batch_norm)
        self.w_out = nn.Linear(self.mlp.out_features, 1, bias=False)  # the paper's h
        # Initialised as the official code: Glorot-normal layers; with no hidden layer
        # w_out = 1, so NFM-0 starts out as FM.
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                std = math.sqrt(2.0 / (layer.in_features + layer.out_features))
                nn.init.normal_(layer.weight, std=std)
                nn.init.normal_(layer.bias, std=std)
        if hidden:
            nn.init.normal_(self.w_out.weight, std=math.sqrt(2.0 / (hidden[-1] + 1)))
        else:
            nn.init.ones_(self.w_out.weight)

    def terms(self, x: Features) -> Terms:
        """NFM's equation by fields, for samples ``x`` (context and movie,
        ``(*batch, slots)``): ``w_0``, ``sum_{i in f} w_i x_i`` per field, and, as
        ``deep``, ``w_out^T MLP(f_BI(x))`` with
        ``f_BI(x) = sum_{i<j} x_i v_i * x_j v_j`` (BatchNorm and dropout inside, as in
        training). The pairs meet only inside the MLP."""
        s, q = self.embedding.sums(x)                    # sum x v, sum (x v)^2: (*b, k)
        f_bi = bi_from_sums(s, q)                        # the Bi-Interaction pooling
        deep = self.w_out(self.mlp(self.bi_dropout(self.bi_norm(f_bi)))).squeeze(-1)
        first = field_sums(self.linear.weight.weight, x, self.num_fields).squeeze(-1)
        no_pairs = first.new_zeros(*first.shape, self.num_fields)
        return Terms(self.w0.expand(first.shape[:-1]), first, no_pairs, deep)

    def load_pretrained(self, fm: nn.Module) -> None:
        """Start from a trained FM (``pretrain``)."""
        load_fm_weights(self, fm)

    # -- fast: each side once; ranking folds the affine layers into one product per
    # context --------------------------------------------------------------------------

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        s_c, q_c = self.embedding.sums(context)  # sum x v, sum (x v)^2 over the context
        movies = self.items.all()
        s_m, q_m = self.embedding.sums(movies)   # the same over each movie's slots
        # each side once: context (batch, 1, k); every movie (items, k), then the
        # candidates' rows (batch, candidates, k) (all movies when ranking)
        f_c, s_c = bi_from_sums(s_c, q_c).unsqueeze(-2), s_c.unsqueeze(-2)
        f_m, s_m = lookup(bi_from_sums(s_m, q_m), items), lookup(s_m, items)
        # w_0 + sum_c w x: (batch, 1)
        y_c = self.w0 + self.linear(context).unsqueeze(-1)
        # sum_m w x: (batch, C) or (items,)
        y_m = lookup(self.linear(movies), items)
        if items.dim() == 1 and not self.training and len(self.mlp) > 0:
            return y_c + y_m + self._rank_all(f_c, s_c, f_m, s_m)
        # f_BI(context + movie) = f_BI(c) + f_BI(m) + s_c * s_m:
        # (batch, candidates|items, k)
        f_bi = f_c + f_m + s_c * s_m
        z = self.mlp(self.bi_dropout(self.bi_norm(f_bi)))
        return y_c + y_m + self.w_out(z).squeeze(-1)

    def _rank_all(self, f_c: torch.Tensor, s_c: torch.Tensor, f_m: torch.Tensor,
                  s_m: torch.Tensor, chunk: int = 32) -> torch.Tensor:
        """``w_out^T MLP(f_BI)`` for every context and movie, in eval mode:
        ``(batch, num_items)``.

        With dropout off and BatchNorm using its running statistics, everything between
        ``f_BI`` and the first ReLU (BatchNorm, Linear, BatchNorm) is one affine map
        ``A f + a``. On ``f_BI = f_c + f_m + s_c * s_m`` it splits into ``A f_c + a``
        per context, ``A f_m`` per movie and ``A (s_c * s_m) = (A diag(s_c)) s_m``, one
        matrix product per context, so no ``(batch, num_items, k)`` tensor is ever
        built.
        """
        scale, a = _as_affine(self.bi_norm, f_c[0, 0])
        A = torch.diag(scale)
        layers = list(self.mlp)
        # fold Linear and BatchNorm into (A, a)
        while not isinstance(layers[0], nn.ReLU):
            layer = layers.pop(0)
            if isinstance(layer, nn.Linear):
                A, a = layer.weight @ A, layer.weight @ a + layer.bias
            else:
                scale, shift = _as_affine(layer, a)
                A, a = scale.unsqueeze(-1) * A, scale * a + shift
        a_c = (f_c @ A.T + a).transpose(-1, -2)  # (batch, hidden, 1)
        a_m = f_m @ A.T                          # (num_items, hidden)
        # [s_m, 1] @ [A diag(s_c), a_c]^T + a_m:
        # the column of ones adds the context's constant
        x_m = torch.cat([s_m, torch.ones_like(s_m[:, :1])],  # (num_items, k + 1)
                        dim=-1)
        out = []
        for a_part, s_part in zip(a_c.split(chunk), s_c.split(chunk), strict=True):
            u = torch.cat([s_part * A, a_part], dim=-1)  # (chunk, hidden, k + 1)
            z = torch.baddbmm(a_m, x_m.expand(len(u), -1, -1), u.transpose(-1, -2))
            z = z.relu_()  # (chunk, num_items, hidden), the first hidden layer
            for layer in layers[1:]:  # Dropout (off) -> further hidden layers
                z = layer(z)
            out.append(self.w_out(z).squeeze(-1))
        return torch.cat(out)


def _as_affine(norm: nn.Module, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with ``norm(x) = x * scale + shift`` per channel in eval mode,
    for BatchNorm or ``nn.Identity``; ``ref`` ``(channels,)`` gives size, dtype and
    device."""
    if isinstance(norm, nn.BatchNorm1d):
        scale = norm.weight / (norm.running_var + norm.eps).sqrt()
        return scale, norm.bias - norm.running_mean * scale
    return torch.ones_like(ref), torch.zeros_like(ref)
