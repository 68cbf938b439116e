"""Attentional Factorization Machine (Xiao et al., 2017).

``y(x) = w_0 + sum_i w_i x_i + p^T sum_{(f,g)} a_{fg} (e_f * e_g)``

FM adds every pairwise interaction with the same weight 1. AFM keeps the element-wise
products ``e_f * e_g`` (the *pair-interaction vectors*, ``*`` element-wise) and pools
them with weights from a one-layer attention network, normalised over the pairs of the
sample:

``a'_{fg} = h^T ReLU(W (e_f * e_g) + b)``, ``a_{fg} = exp(a'_{fg}) / sum_{valid (f',g')}
exp(a'_{f'g'})``

Here the interacting units are the fields: ``e_f = sum_{i in f} x_i v_i`` is field
``f``'s vector (a categorical field's one ``x_i v_i``, a bag's weighted mean, a numeric
field's ``sum_j x_j v_j``), so there are ``m (m - 1) / 2`` pairs whatever the length of
the history. A pair is *valid* when both fields are present (have a non-zero value);
invalid pairs get weight 0 and the valid weights sum to 1.

The softmax ties all pairs of a (context, movie) sample together, so unlike FM the score
does not split into a context part plus a movie part. Ranking still computes everything
it can once: the field vectors of the context and of every movie, the context-context
pairs and their attention scores once per context, the movie-movie pairs once per movie;
only the ``F_c x F_i`` context-movie pairs are formed per (context, movie), a chunk of
movies at a time.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from featint.layers import (
    Dropout,
    FeaturesEmbedding,
    FeaturesLinear,
    ItemTable,
    Terms,
    field_sums,
    load_fm_weights,
    lookup,
    pair_matrix,
    pairs,
    pool_fields,
)
from featint.models import Model, register
from featint.task import Features, Schema


@register("afm")
class AFM(Model):
    def __init__(
        self, schema: Schema, items: Features, embed_dim: int = 16,
        attention_dim: int = 16, dropout: float = 0.5, chunk_elements: int = 2**22,
        attend: str = "all", p_init: float | str = 1.0, attention_l2: float = 0.0,
        pretrain: str | None = None,
    ) -> None:
        """``attend``: ``"all"`` pairs, or ``"ranking"``: only the pairs that can change
        a ranking (context-movie, movie-movie; the context-context pairs are the same
        for every movie). ``p_init``: the starting value of every entry of ``p``, or
        ``"pairs"``: the number of attended pairs, so that uniform attention starts at
        FM's sum of the pairs, not their mean. ``attention_l2``: the paper's L2 penalty
        on ``W``. ``pretrain``: ``"fm"`` to start from a trained FM's ``w_0``, ``w_i``,
        ``v_i`` (the paper; done by :func:`featint.training.trained`)."""
        super().__init__()
        if attend not in ("all", "ranking"):
            raise ValueError(f"attend must be 'all' or 'ranking', got {attend!r}")
        self.num_fields = m = len(schema.fields)
        self.num_context_fields = c = len(schema.context_fields)
        self.num_item_fields = m - c
        # ranking: hidden-layer values per chunk of movies
        self.chunk_elements = chunk_elements
        self.items = ItemTable(items)
        self.w0 = nn.Parameter(torch.zeros(()))
        self.linear = FeaturesLinear(schema.num_features)                  # w_i
        self.embedding = FeaturesEmbedding(schema.num_features, embed_dim)  # v_i
        # attention network: W (d_a x k) and b (d_a) in one Linear, h (d_a);
        # k_a = attention_dim (the paper's t). Initialised as in the official code:
        # W, b ~ N(0, 2 / (d_a + k)), h ~ N(0, 1), p = 1.
        self.attention = nn.Linear(embed_dim, attention_dim)
        glorot = math.sqrt(2.0 / (attention_dim + embed_dim))
        nn.init.normal_(self.attention.weight, std=glorot)
        nn.init.normal_(self.attention.bias, std=glorot)
        self.h = nn.Parameter(torch.randn(attention_dim))
        self.attend_cc = attend == "all"
        c_m = (m - c) * (m - c - 1) // 2 + c * (m - c)  # pairs with a movie field
        num_pairs = c_m + (c * (c - 1) // 2 if self.attend_cc else 0)
        self.p = nn.Parameter(torch.full((embed_dim,), float(
            num_pairs if p_init == "pairs" else p_init)))
        self.attention_l2, self.pretrain = attention_l2, pretrain
        # dropout on the attention-pooled vector (see the notebook):
        # weights keep summing to 1
        self.dropout = Dropout(dropout)
        cc, ii = pairs(c), pairs(m - c)
        for name, tensor in (("cc_f", cc[0]), ("cc_g", cc[1]),
                             ("ii_f", ii[0]), ("ii_g", ii[1])):
            self.register_buffer(name, tensor, persistent=False)
        # global field numbers of every pair in the order of the pair axis: cc, ii, cx
        cx = (torch.arange(c).repeat_interleave(m - c), torch.arange(c, m).repeat(c))
        self.register_buffer("pair_fields", torch.stack([
            torch.cat([cc[0], ii[0] + c, cx[0]]),
            torch.cat([cc[1], ii[1] + c, cx[1]])], 1),
            persistent=False)
        # the pairs the softmax runs over: all, or (attend="ranking") all but
        # context x context
        attended = torch.ones(len(self.pair_fields), dtype=torch.bool)
        attended[:len(cc[0])] = self.attend_cc
        self.register_buffer("attended", attended, persistent=False)

    def terms(self, x: Features) -> Terms:
        """AFM's equation by fields, for samples ``x`` (context and movie,
        ``(*batch, slots)``): ``w_0``; ``sum_{i in f} w_i x_i`` per field; per field
        pair ``f < g`` ``a_fg p^T (e_f * e_g)``, ``a`` the softmax of
        ``h^T ReLU(W (e_f * e_g) + b)`` over the valid attended pairs. ``extra``:
        ``attention`` ``a_fg`` and ``term`` ``p^T (e_f * e_g)``, ``(*batch, m, m)``
        each."""
        m, (f, g) = self.num_fields, self.pair_fields.unbind(-1)
        e, present = self.field_vectors(x, m)                      # e_f: (*batch, m, k)
        pv = e[..., f, :] * e[..., g, :]                     # e_f * e_g: (*batch, P, k)
        valid = present[..., f] & present[..., g] & self.attended
        logits = self.score(pv).masked_fill(~valid, torch.finfo(pv.dtype).min)
        a = torch.softmax(logits, -1) * valid                    # 0 for an invalid pair
        y = pv @ self.p                                   # p^T (e_f * e_g): (*batch, P)
        first = field_sums(self.linear.weight.weight, x, m).squeeze(-1)
        return Terms(self.w0.expand(first.shape[:-1]), first,
                     pair_matrix(a * y, f, g, m),
                     extra={"attention": pair_matrix(a, f, g, m),
                            "term": pair_matrix(y, f, g, m)})

    def penalty(self) -> torch.Tensor | float:
        """``lambda ||W||^2``, added to the training loss (0 unless
        ``attention_l2``)."""
        if not self.attention_l2:
            return 0.0
        return self.attention_l2 * self.attention.weight.square().sum()

    def load_pretrained(self, fm: nn.Module) -> None:
        """Start from a trained FM (``pretrain``)."""
        load_fm_weights(self, fm)

    def field_vectors(
        self, f: Features, num_fields: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``e_f = sum_{i in f} x_i v_i`` and whether field ``f`` is present (any
        non-zero value): Features ``(*batch, slots)`` -> ``(*batch, fields, k)``,
        ``(*batch, fields)``."""
        e = self.embedding.fields(f, num_fields)
        present = pool_fields((f.val != 0).to(e.dtype).unsqueeze(-1), f.field,
                              num_fields)
        return e, present.squeeze(-1) > 0

    def score(self, pv: torch.Tensor) -> torch.Tensor:
        """Attention logits ``a' = h^T ReLU(W pv + b)``: ``(..., pairs, k)`` ->
        ``(..., pairs)``."""
        return torch.relu(self.attention(pv)) @ self.h

    # -- fast: context side once, movie side once, only context x movie pairs per sample

    def attend(
        self, e_c: torch.Tensor, ok_c: torch.Tensor, cc: tuple[torch.Tensor, ...],
        e_m: torch.Tensor, ok_m: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention-pooled pair-interaction vector and the attention weights.

        ``e_c``, ``ok_c``: context field vectors ``(batch, F_c, k)`` and presence;
        ``cc``: the context-context pair vectors, logits and validity (computed once per
        context); ``e_m``, ``ok_m``: movie field vectors ``(batch, candidates, F_i, k)``
        and presence. Returns ``(batch, candidates, k)`` and weights
        ``(batch, candidates, pairs)`` in the order of :attr:`pair_fields`.
        """
        pv_cc, s_cc, ok_cc = cc
        # (·, candidates, P_ii, k); index_select, not e_m[..., ii_f, :]:
        # a faster backward
        pv_ii = e_m.index_select(-2, self.ii_f) * e_m.index_select(-2, self.ii_g)
        ok_ii = ok_m[..., self.ii_f] & ok_m[..., self.ii_g]
        # context-movie pairs:
        # (batch, candidates, F_c, F_i, k) -> (batch, candidates, P_cx, k)
        pv_cx = (e_c[:, None, :, None, :] * e_m[..., None, :, :]).flatten(-3, -2)
        ok_cx = (ok_c[:, None, :, None] & ok_m[..., None, :]).flatten(-2)
        shape = pv_cx.shape[:2]
        logits = torch.cat([s_cc.unsqueeze(1).expand(*shape, -1),
                            self.score(pv_ii).expand(*shape, -1),
                            self.score(pv_cx)], -1)
        valid = torch.cat([ok_cc.unsqueeze(1).expand(*shape, -1),
                           ok_ii.expand(*shape, -1), ok_cx], -1)
        # softmax over the pair axis, invalid pairs excluded: they get exactly 0 and the
        # valid ones sum to 1 (a sample without any valid pair gets all zeros, not NaN)
        logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
        a = torch.softmax(logits, -1) * valid
        a_cc, a_ii, a_cx = a.split(
            [pv_cc.shape[-2], pv_ii.shape[-2], pv_cx.shape[-2]], -1)
        pooled = (torch.einsum("bcp,bpk->bck", a_cc, pv_cc)
                  + (a_ii.unsqueeze(-1) * pv_ii).sum(-2)
                  + (a_cx.unsqueeze(-1) * pv_cx).sum(-2))
        return pooled, a

    def context_side(self, context: Features):
        """Context field vectors and the context-context pairs (once per context): their
        vectors ``(batch, P_cc, k)``, logits and validity ``(batch, P_cc)``; with
        ``attend="ranking"`` none (``P_cc = 0``): they would only be masked."""
        e_c, ok_c = self.field_vectors(context, self.num_context_fields)
        if not self.attend_cc:
            return e_c, ok_c, (e_c[..., :0, :], e_c[..., :0, 0], ok_c[..., :0])
        pv_cc = (e_c.index_select(-2, self.cc_f)
                 * e_c.index_select(-2, self.cc_g))  # (b, P_cc, k)
        ok_cc = ok_c[..., self.cc_f] & ok_c[..., self.cc_g]
        return e_c, ok_c, (pv_cc, self.score(pv_cc), ok_cc)

    def forward(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        # y = w_0 + sum_i w_i x_i + p^T dropout(sum_{valid (f, g)} a_fg (e_f * e_g))
        movies = self.items.all()  # what depends on the movie alone, once per movie
        e_c, ok_c, cc = self.context_side(context)
        e_m, ok_m = (lookup(t, items)
                     for t in self.field_vectors(movies, self.num_item_fields))
        y = (self.w0 + self.linear(context).unsqueeze(-1)
             + lookup(self.linear(movies), items))
        if items.dim() == 1 and not (self.training and self.dropout.p > 0):
            return y + self.rank_all(e_c, ok_c, cc, e_m, ok_m)  # fast, same numbers
        if items.dim() == 1:                   # all movies in train mode: plain path
            e_m, ok_m = (t.expand(e_c.shape[0], *t.shape) for t in (e_m, ok_m))
        pooled, _ = self.attend(e_c, ok_c, cc, e_m, ok_m)
        return y + self.dropout(pooled) @ self.p

    def rank_all(
        self, e_c: torch.Tensor, ok_c: torch.Tensor, cc: tuple[torch.Tensor, ...],
        e_m: torch.Tensor, ok_m: torch.Tensor,
    ) -> torch.Tensor:
        """``p^T sum a_fg (e_f * e_g)`` of every context against every movie without
        dropout: context ``(batch, F_c, k)``, movies ``(N, F_i, k)`` -> ``(batch, N)``.

        Since ``p^T sum_fg a_fg pv_fg = sum_fg a_fg (p^T pv_fg)``, the score is a
        softmax-weighted mean of the scalars ``s_fg = p^T pv_fg``. The softmax is split
        into three groups of pairs, each summarised by its largest logit ``top``,
        ``z = sum exp(a' - top)`` and ``n = sum exp(a' - top) s`` (log-sum-exp merging):
        context-context once per context, movie-movie once per movie, context-movie per
        (context, movie) by matrix products:
        ``W (e_f * e_g) + b = [W * e_g, b] [e_f, 1]`` is one product per chunk of
        movies, and ``s_fg = (p * e_f)^T e_g`` another. A logit depends on the two field
        vectors alone, and most fields take few distinct vectors (2 genders, 24 hours,
        14 release-year buckets, a few hundred sets of genres), so the hidden layer is
        computed for the distinct vectors of each side only (when no gradient is needed)
        and the logits are looked up from them.
        """
        pv_cc, s_cc, ok_cc = cc
        pv_ii = (e_m.index_select(-2, self.ii_f)
                 * e_m.index_select(-2, self.ii_g))  # (N, P_ii, k)
        ok_ii = ok_m[..., self.ii_f] & ok_m[..., self.ii_g]
        low = torch.finfo(e_c.dtype).min     # the logit of an invalid pair: weight 0
        if pv_cc.shape[-2]:
            top_c, z_c, n_c = _softmax_parts(  # (batch,)
                s_cc.masked_fill(~ok_cc, low), pv_cc @ self.p, ok_cc.any(-1))
        else:                                # attend="ranking": no context-context pair
            top_c = e_c.new_full(e_c.shape[:1], low)
            z_c = n_c = e_c.new_zeros(e_c.shape[:1])
        top_m, z_m, n_m = _softmax_parts(  # (N,)
            self.score(pv_ii).masked_fill(~ok_ii, low), pv_ii @ self.p, ok_ii.any(-1))
        # context-movie pairs, held as (N, F_i, batch, F_c):
        # W (e_f * e_g) + b = [W * e_g, b] [e_f, 1] is one matrix product per chunk of
        # distinct movie-field vectors (all the batch's distinct context-field vectors
        # at once), and the values s_fg = (p * e_f)^T e_g one product for all movies. In
        # this layout the softmax below reduces the short F_i axis and the contiguous
        # F_c axis: no transposing copies.
        # W: (k_a, k), b: (k_a,)
        weight, bias = self.attention.weight, self.attention.bias
        batch, num_c, k_a = e_c.shape[0], e_c.shape[1], weight.shape[0]
        num_m, num_i = e_m.shape[:2]
        (u_c, at_c), (u_m, at_m) = (_distinct(e.flatten(0, 1)) for e in (e_c, e_m))
        rows = torch.cat(
            [u_c, torch.ones_like(u_c[:, :1])], -1).T.contiguous()      # (k+1, U_c)
        cols = torch.cat([weight * u_m.unsqueeze(-2),
                          bias[:, None].expand(len(u_m), k_a, 1)],
                         -1).flatten(0, 1)                          # (U_m k_a, k+1)
        # movie vectors per chunk
        chunk = max(1, self.chunk_elements // (rows.shape[1] * k_a))
        h = self.h.expand(chunk, 1, k_a)
        distinct = e_c.new_empty(len(u_m), rows.shape[1])               # (U_m, U_c)
        for lo in range(0, len(u_m), chunk):
            # (n k_a, U_c)
            hidden = torch.relu_(cols[lo * k_a:(lo + chunk) * k_a] @ rows)
            n = hidden.shape[0] // k_a
            distinct[lo:lo + n] = torch.bmm(h[:n], hidden.view(n, k_a, -1)).squeeze(1)
        logits = (distinct.index_select(1, at_c)
                  .index_select(0, at_m))                               # (N F_i, b F_c)
        logits = logits.view(num_m, num_i, batch, num_c)
        values = (e_m.flatten(0, 1) @ (e_c * self.p).flatten(0, 1).T).view_as(logits)
        if not ok_c.all():                        # pairs with an absent field: weight 0
            logits.masked_fill_(~ok_c[None, None], low)
        if not ok_m.all():
            logits.masked_fill_(~ok_m[:, :, None, None], low)
        some = ok_m.any(-1)[:, None] & ok_c.any(-1)[None, :]                # (N, batch)
        top_x, z_x, n_x = (part.T for part in _softmax_parts(
            logits, values, some, dims=(1, 3)))                             # (batch, N)
        top = torch.maximum(torch.maximum(top_c[:, None], top_m[None, :]), top_x)
        scale_c, scale_m = (top_c[:, None] - top).exp(), (top_m[None, :] - top).exp()
        z = scale_c * z_c[:, None] + scale_m * z_m[None, :] + (top_x - top).exp() * z_x
        n = scale_c * n_c[:, None] + scale_m * n_m[None, :] + (top_x - top).exp() * n_x
        return n / z.clamp_min(torch.finfo(z.dtype).tiny)  # no valid pair at all: 0

    @torch.no_grad()
    def attention_weights(self, context: Features, items: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(batch, candidates, pairs)`` for candidates ``items`` of
        shape ``(batch, candidates)``; pair ``p`` is the field pair ``pair_fields[p]``
        (with ``attend="ranking"`` the context-context pairs' weights are 0)."""
        e_c, ok_c, cc = self.context_side(context)
        e_m, ok_m = self.field_vectors(self.items(items), self.num_item_fields)
        a = self.attend(e_c, ok_c, cc, e_m, ok_m)[1]
        missing = len(self.pair_fields) - a.shape[-1]  # the unattended context pairs
        return torch.cat([a.new_zeros(*a.shape[:-1], missing), a], -1)


def _distinct(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of ``rows`` ``(n, k)`` and where each row is among them:
    ``(U, k)`` and ``(n,)``. When a gradient is needed, every row is kept (``U = n``):
    autograd must reach each row's own parameters."""
    if rows.requires_grad:
        return rows, torch.arange(len(rows), device=rows.device)
    distinct, at = torch.unique(rows, dim=0, return_inverse=True)
    return distinct, at


def _softmax_parts(
    logits: torch.Tensor, values: torch.Tensor, some: torch.Tensor,
    dims: tuple[int, ...] = (-1,),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax summary over the axes ``dims`` (one summary per index of the other axes)
    of logits whose invalid entries hold the lowest float: the largest logit ``top``,
    ``z = sum exp(l - top)`` and ``n = sum exp(l - top) * value``. ``some``: whether
    there is a valid entry at all (if not, ``z = n = 0``). Overwrites ``logits`` (in
    place: the context-movie tensors are large). One axis at a time, the last first:
    about twice as fast on CPU as one reduction over the non-adjacent axes of the
    context-movie layout."""
    def reduce(x: torch.Tensor, op) -> torch.Tensor:
        for d in sorted((d % x.dim() for d in dims), reverse=True):
            x = op(x, d)
        return x
    top = reduce(logits.detach(), lambda x, d: x.amax(d, keepdim=True))  # only a shift
    e = logits.sub_(top).exp_()                 # invalid entries: exp(lowest - top) = 0
    z = torch.where(some, reduce(e, lambda x, d: x.sum(d, keepdim=True))
                    .view(some.shape), 0.0)
    # autograd needs e intact
    weighted = e * values if e.requires_grad else e.mul_(values)
    n = torch.where(some, reduce(weighted, lambda x, d: x.sum(d, keepdim=True))
                    .view(some.shape), 0.0)
    return top.view(some.shape), z, n
