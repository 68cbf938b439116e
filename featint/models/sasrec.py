"""Self-attentive sequential recommendation, SASRec (Kang & McAuley, ICDM 2018).

The model reads one thing: the movies a user watched before ``t``, in order (the
context's ``seq``, :meth:`featint.task.NextMovieTask.sequence`: the last ``max_len`` of
them, left-padded). No demographics, no genres, no time. The paper, Section III:

- embedding: ``E_i = M_{s_i} + P_i``, item plus learned position embedding;
- self-attention: ``S = softmax(Q K^T / sqrt(d)) V``, ``Q, K, V = E W^Q, E W^K, E W^V``,
  where position ``i`` attends to ``j`` only if ``j <= i`` (causality);
- point-wise feed-forward: ``F_i = ReLU(S_i W^(1) + b^(1)) W^(2) + b^(2)``;
- each layer wrapped as ``g(x) = x + Dropout(g(LayerNorm(x)))``; ``b`` such blocks;
- prediction: ``r_{m,t} = <F_t, M_m>``, the last position's output against the same
  item embeddings the input used (shared).

Positions count from the end: the movie just before ``t`` always has position
``max_len - 1``, as when the paper left-pads every sequence to length ``n``; so more
padding on the left, or a batch trimmed to its longest prefix, changes nothing.

The equations come first, written out (:meth:`SASRec.textbook`: the input embedding
:meth:`SASRec.inputs`, the blocks with :func:`causal_attention`, :meth:`SASRec.output`);
:mod:`featint.explain` reads them, attributing ``F_t`` to the positions of ``E``. The
fast path (``forward``) computes the same numbers with torch's fused attention kernel;
ranking all movies is one matrix product of the ``(batch, d)`` outputs with the
``(num_items, d)`` item embeddings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from featint.layers import Dropout, cross_dot, lookup
from featint.models import register
from featint.task import Features, Schema


def causal_mask(real: torch.Tensor) -> torch.Tensor:
    """Which key ``j`` query ``i`` may attend to: ``j <= i`` (the past, never the
    future) and ``j`` a movie, not padding. ``real``: ``(batch, n)`` bool, False on
    padding -> ``(batch, 1, n, n)`` bool. A padding query sees only itself (it has no
    past; its output is never read), so no row of the softmax is empty."""
    i = torch.arange(real.shape[-1], device=real.device)
    past = i[None, :] <= i[:, None]                              # j <= i: (n, n)
    return past & (real[:, None, None, :] | (i[None, :] == i[:, None]))


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     real: torch.Tensor) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d)) V`` with the future and padding masked out
    (:func:`causal_mask`), written out. ``q``, ``k``, ``v``: ``(batch, heads, n,
    d_head)``; ``real``: ``(batch, n)`` -> ``(batch, heads, n, d_head)``. The model
    computes the same numbers with torch's fused kernel (:class:`SelfAttention`)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # (batch, heads, n, n)
    scores = scores.masked_fill(~causal_mask(real), float("-inf"))  # exp(-inf) = 0
    return torch.softmax(scores, dim=-1) @ v


class SelfAttention(nn.Module):
    """``SA(E) = Attention(E W^Q, E W^K, E W^V)``, causal, split into ``num_heads``
    heads (the paper: one). ``(batch, n, d)`` -> ``(batch, n, d)``."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads "
                             f"{num_heads}; choose a number of heads that divides it")
        self.num_heads = num_heads
        # the paper's projection matrices: no bias, no output projection
        self.W_Q = nn.Linear(embed_dim, embed_dim, bias=False)
        self.W_K = nn.Linear(embed_dim, embed_dim, bias=False)
        self.W_V = nn.Linear(embed_dim, embed_dim, bias=False)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def heads(w: nn.Linear) -> torch.Tensor:  # (batch, heads, n, d / heads)
            return w(x).view(b, n, self.num_heads, -1).transpose(1, 2)

        # causal_attention(q, k, v, real) in one fused kernel: the same numbers, about
        # four times faster on CPU, and no (batch, n, n) weights kept for backward
        q, k, v = heads(self.W_Q), heads(self.W_K), heads(self.W_V)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(real))
        return out.transpose(1, 2).reshape(b, n, d)


class Block(nn.Module):
    """One self-attention block, each layer wrapped as ``x + Dropout(layer(LN(x)))``:
    ``S = x + Dropout(SA(LN(x)))``, then ``F = S + Dropout(FFN(LN(S)))``.
    ``(batch, n, d)`` -> ``(batch, n, d)``."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(embed_dim)
        self.attention = SelfAttention(embed_dim, num_heads)
        self.ffn_norm = nn.LayerNorm(embed_dim)
        self.ffn = nn.Sequential(  # ReLU(S W1 + b1) W2 + b2, the same at every position
            nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        s = x + self.dropout(self.attention(self.attention_norm(x), real))
        return s + self.dropout(self.ffn(self.ffn_norm(s)))


@register("sasrec")
class SASRec(nn.Module):
    """SASRec over the ordered prefix ``context.seq``.

    ``embed_dim``: ``d`` (the paper: 50; here the budget's). ``num_blocks``: ``b`` (2).
    ``num_heads``: heads per attention layer (1). ``dropout``: on the embeddings and
    after each layer (0.2 on MovieLens-1M). ``max_len``: ``n``, the longest prefix read
    (200 on MovieLens-1M); as ``sequence_length`` it tells featint to put the ordered
    prefix into the contexts it builds for this model
    (:meth:`featint.task.NextMovieTask.context_for`).
    """

    def __init__(
        self, schema: Schema, items: Features, embed_dim: int = 16, num_blocks: int = 2,
        num_heads: int = 1, dropout: float = 0.2, max_len: int = 200,
    ) -> None:
        super().__init__()
        if max_len < 1 or num_blocks < 0:
            raise ValueError(f"need max_len >= 1 and num_blocks >= 0, got {max_len} "
                             f"and {num_blocks}")
        self.sequence_length = max_len
        self.num_items = items.idx.shape[0]
        # M: row m + 1 is movie m, row 0 padding; the prediction reads the same rows
        self.item_embedding = nn.Embedding(self.num_items + 1, embed_dim, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, embed_dim)    # P
        # Glorot's scale for M, as the authors' code, and the same for P so that neither
        # drowns the other in E = M + P; small tables move fast under Adam
        std = math.sqrt(2.0 / (self.num_items + 1 + embed_dim))
        for table in (self.item_embedding, self.position_embedding):
            nn.init.normal_(table.weight, std=std)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, dropout) for _ in range(num_blocks))
        # pre-norm blocks leave their last sum unnormalised: one LayerNorm on the
        # output (as the authors' code does)
        self.norm = nn.LayerNorm(embed_dim)

    # -- the paper's equations, written out (what featint.explain reads) ---------------

    def inputs(self, seq: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The input embedding ``E = M_s + P`` in its two parts, for the last ``n =
        min(width, max_len)`` columns of ``seq`` ``(batch, width)`` (movie index + 1,
        left-padded with 0): the movies' rows ``M_s`` ``(batch, n, d)`` (zero on
        padding), the positions' rows ``P`` ``(n, d)``, and ``real`` ``(batch, n)``,
        False on padding."""
        seq = seq[:, -self.sequence_length:]
        n = seq.shape[1]
        P = self.position_embedding.weight[self.sequence_length - n:]
        return self.item_embedding.weight[seq], P, seq > 0

    def output(self, E: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """``F_t``, the last position's output, from the input embedding ``E``
        ``(batch, n, d)`` and ``real`` ``(batch, n)``: Section III line by line ->
        ``(batch, d)``."""
        x = self.dropout(E)
        b, n, d = x.shape

        def heads(y: torch.Tensor, count: int) -> torch.Tensor:  # (b, count, n, .)
            return y.view(b, n, count, -1).transpose(1, 2)

        for block in self.blocks:
            a = block.attention
            h = block.attention_norm(x)                       # LN(x)
            q, k, v = (heads(h @ W.weight.T, a.num_heads)     # Q, K, V, per head
                       for W in (a.W_Q, a.W_K, a.W_V))
            sa = causal_attention(q, k, v, real).transpose(1, 2).reshape(b, n, d)
            s = x + block.dropout(sa)                         # S = x + SA(LN(x))
            W1, W2 = block.ffn[0], block.ffn[2]
            h = block.ffn_norm(s)                             # LN(S)
            ffn = torch.relu(h @ W1.weight.T + W1.bias) @ W2.weight.T + W2.bias
            x = s + block.dropout(ffn)                        # F = S + FFN(LN(S))
        return self.norm(x[:, -1])                            # F_t

    def textbook(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        """``r_{m,t} = <F_t, M_m>`` for candidates ``items`` ``(batch, candidates)``,
        the equations as written: ``(batch, candidates)``, the numbers of ``forward``,
        slower."""
        M_s, P, real = self.inputs(context.seq)
        F_t = self.output(M_s + P, real)                      # (batch, d)
        M_m = self.item_embedding.weight[1:][items]           # (batch, candidates, d)
        return (F_t[:, None, :] * M_m).sum(-1)

    # -- fast: the fused attention kernel, every movie as one matrix product -----------

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """``F^(b)`` at every position: ``seq`` ``(batch, width)``, movie index + 1,
        left-padded with 0, -> ``(batch, n, d)`` for its last ``n <= min(width,
        max_len)`` columns. Position ``i``'s output depends on columns ``<= i`` only.
        Leading columns of padding only are dropped first (they change nothing)."""
        seq = seq[:, -self.sequence_length:]
        seq = seq[:, int((seq > 0).any(0).int().argmax()):]  # from the first movie
        n = seq.shape[1]
        real = seq > 0
        positions = torch.arange(self.sequence_length - n, self.sequence_length,
                                 device=seq.device)
        x = lookup(self.item_embedding.weight, seq) + self.position_embedding(positions)
        x = self.dropout(x)                                   # E = M_s + P, dropout
        for block in self.blocks:
            x = block(x, real)
        return self.norm(x)

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        if context.seq is None:
            raise ValueError(
                "SASRec reads the ordered history and this context has none: build "
                "it with task.context_for(model, ex) (or task.context(ex, "
                "sequence_length=model.sequence_length))")
        f_t = self.encode(context.seq)[:, -1]        # F_t, the last position: (b, d)
        movies = self.item_embedding.weight[1:]      # M, shared: (num_items, d)
        return cross_dot(f_t, lookup(movies, items))  # r_{m,t} = <F_t, M_m>
