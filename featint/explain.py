"""Why this movie? A model's score for one example and one candidate movie, taken apart.

Every model here writes out its equation (:meth:`featint.models.Model.terms`): a bias, one
first-order term per field, one term per field pair, and for the deep models a network's
output. :func:`explain` turns that into **parts** whose sum is the model's own score:

- the exact terms as they are (FM, FFM: each pair's ``<e_f, e_g>``-like term; AFM: the
  attention weight ``a_fg`` and the weighted term ``a_fg p^T (e_f * e_g)``, both reported;
  Wide & Deep: the active cross weights ``w_c x_a x_b``);
- the deep part (Wide & Deep's deep network, DeepFM's DNN, NFM's MLP over the Bi-Interaction,
  DLRM's top MLP over its dots) **attributed** to fields and field pairs, below.

Each part falls in one of three groups: **context only** (the same for every candidate: the
bias, context fields, context x context pairs; it cannot change a ranking), **candidate only**
(the movie's fields and pairs inside the movie; the same for every context), and **context x
candidate** (what matches a context to a movie).

The deep part ``D(c, m)`` is a function of the context's feature values ``c`` and the
candidate's ``m``. Its baseline is every feature absent (all values 0, the models' own meaning
of "nothing known": padding, an empty field). It is split exactly into

``D(c, m) = D(0, 0) + [D(c, 0) - D(0, 0)] + [D(0, m) - D(0, 0)] + I(c, m)``

(bias, context only, candidate only, and the interaction ``I``, what is left). Then

- ``D(c, 0) - D(0, 0)`` goes to the context fields by **integrated gradients**
  (Sundararajan et al., 2017) along ``alpha c``, ``alpha`` from 0 to 1, the candidate absent:
  the same for every candidate;
- ``D(0, m) - D(0, 0)`` goes to the movie fields by their exact **Shapley values** (the movie
  has 3 fields: 8 subsets; the context absent);
- ``I(c, m)`` goes to the pairs (context field ``f``, movie field ``g``): the Shapley value of
  movie field ``g`` in the game ``v(T) = D(c, m_T) - D(0, m_T)`` (``m_T``: only the movie
  fields ``T`` present), whose values add up to ``I``, each split over the context fields by
  integrated gradients along ``alpha c`` with ``m_T`` fixed.

The parts add up to ``D(c, m)`` up to the error of the integrals, computed by the midpoint rule
with ``steps`` points; :attr:`Explanation.error` reports it (the tests bound it).

A sequence model (SASRec, one with a ``sequence_length``) has no fields: it reads the movies
before ``t`` in order. Its score is taken apart by position of that prefix instead
(:func:`explain_sequence`): integrated gradients on its input embeddings, one part per movie of
the history (context x candidate) and the score at the baseline (candidate only); it has no
context-only part. Any other model without :meth:`terms` is explained by integrated gradients
over its context's slot values alone (:func:`explain_by_gradients`).
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from featint.task import Features, NextMovieTask

#: The three groups of parts, and how the tables name them.
CONTEXT, CANDIDATE, CROSS = "context only", "candidate only", "context x candidate"
GROUPS = (CONTEXT, CANDIDATE, CROSS)
#: Midpoint-rule points of the integrated gradients (their error is reported, and tested).
STEPS = 256


@dataclass
class Explanation:
    """One example (a context) scored against candidates, every score as parts.

    Shapes: ``C`` candidates, ``m`` fields (context fields first). ``score`` is the model's own
    score (``forward``, float64). The parts: ``bias`` ``(C,)``; ``first`` ``(C, m)``, a
    field's first-order term; ``pairs`` ``(C, m, m)``, field pair ``f < g`` above the diagonal
    and pairs inside field ``f`` on it; the deep part's ``deep_bias`` ``(C,)`` (at the
    baseline), ``deep_first`` ``(C, m)`` (a context field's part with the candidate absent,
    a movie field's with the context absent) and ``deep_pairs`` ``(C, m, m)`` (context field
    ``f``, movie field ``g``: the interaction). ``extra``: AFM's ``attention`` and ``term``
    ``(C, m, m)``; Wide & Deep's ``crosses``, a table of the active cross weights. A sequence
    model's "fields" are the positions of its history and then the movie
    (:func:`explain_sequence`; ``extra["history"]``: the movie at each position).
    """

    model: str
    example: int
    items: np.ndarray
    fields: list[str]
    num_context_fields: int
    score: torch.Tensor
    bias: torch.Tensor
    first: torch.Tensor
    pairs: torch.Tensor
    deep_bias: torch.Tensor
    deep_first: torch.Tensor
    deep_pairs: torch.Tensor
    method: str
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("score", "bias", "first", "pairs", "deep_bias", "deep_first",
                     "deep_pairs"):
            setattr(self, name, getattr(self, name).detach())

    @property
    def total(self) -> torch.Tensor:
        """The sum of the parts, ``(C,)``: the score, up to :attr:`error`."""
        return (self.bias + self.first.sum(-1) + self.pairs.sum((-2, -1)) + self.deep_bias
                + self.deep_first.sum(-1) + self.deep_pairs.sum((-2, -1)))

    @property
    def error(self) -> float:
        """The largest ``|sum of the parts - score|`` over the candidates."""
        return float((self.total - self.score).abs().max())

    def side(self, f: int) -> str:
        return CONTEXT if f < self.num_context_fields else CANDIDATE

    def group_of(self, f: int, g: int) -> str:
        """The group of field pair ``(f, g)`` (``f == g``: the field itself)."""
        sides = {self.side(f), self.side(g)}
        return sides.pop() if len(sides) == 1 else CROSS

    def label(self, f: int, g: int) -> str:
        return self.fields[f] if f == g else f"{self.fields[f]} x {self.fields[g]}"

    def table(self) -> pd.DataFrame:
        """Every non-zero part of every candidate: one row each, with its candidate's position
        ``candidate`` (0..C-1), movie, ``part`` (name), ``kind`` (``bias``, ``field``,
        ``pair``, ``deep``), ``fields`` (``f``, ``g``; ``f == g`` for a field, -1 for a bias),
        ``group`` and ``value``; AFM adds ``attention`` and ``term`` to its pairs."""
        rows = []
        m = len(self.fields)
        attention, term = self.extra.get("attention"), self.extra.get("term")
        first, deep_first = self.first.numpy(), self.deep_first.numpy()
        pairs, deep_pairs = self.pairs.numpy(), self.deep_pairs.numpy()
        upper = np.triu(np.ones((m, m), dtype=bool))
        attended = np.zeros_like(pairs, dtype=bool)
        if attention is not None:  # a pair AFM attends to is listed even if its term is 0
            attended = np.asarray(attention > 0) & ~np.eye(m, dtype=bool)
        for c, movie in enumerate(self.items.tolist()):
            def add(part, kind, f, g, value, c=c, movie=movie, **more):
                rows.append(dict(candidate=c, movie=movie, part=part, kind=kind, f=f, g=g,
                                 group=CONTEXT if f < 0 else self.group_of(f, g),
                                 value=float(value), **more))
            add("bias", "bias", -1, -1, self.bias[c])
            if self.deep_bias[c] != 0:
                add("deep: baseline", "deep", -1, -1, self.deep_bias[c])
            # only the non-zero parts are visited (a sequence model has hundreds of fields)
            for f in np.flatnonzero((first[c] != 0) | (deep_first[c] != 0)):
                if first[c, f] != 0:
                    add(self.fields[f], "field", f, f, first[c, f])
                if deep_first[c, f] != 0:
                    add(f"deep: {self.fields[f]}", "deep", f, f, deep_first[c, f])
            shown = upper & ((pairs[c] != 0) | (deep_pairs[c] != 0) | attended[c])
            for f, g in zip(*np.nonzero(shown), strict=True):
                more = {}
                if attention is not None and f != g:
                    more = dict(attention=float(attention[c, f, g]), term=float(term[c, f, g]))
                if pairs[c, f, g] != 0 or more.get("attention", 0) > 0:
                    add(self.label(f, g), "pair", f, g, pairs[c, f, g], **more)
                if deep_pairs[c, f, g] != 0:
                    add(f"deep: {self.label(f, g)}", "deep", f, g, deep_pairs[c, f, g])
        return pd.DataFrame(rows)

    def by_pair(self) -> torch.Tensor:
        """Exact and deep parts merged by field pair, ``(C, m, m)``: a field's own parts (first
        order, deep) on the diagonal, each pair once above it; the biases left out."""
        return (self.pairs + self.deep_pairs + torch.diag_embed(self.first + self.deep_first))

    def groups(self) -> pd.DataFrame:
        """The sum of the parts of each group, per candidate: ``(C, 3)`` (biases in context
        only: they are the same for every candidate)."""
        out = np.zeros((len(self.items), 3))
        merged = self.by_pair().numpy()
        m = len(self.fields)
        for f, g in zip(*np.triu_indices(m), strict=True):
            out[:, GROUPS.index(self.group_of(f, g))] += merged[:, f, g]
        out[:, 0] += (self.bias + self.deep_bias).numpy()
        return pd.DataFrame(out, columns=list(GROUPS), index=self.items)


def context_of(task: NextMovieTask, example: int, model: nn.Module | None = None
               ) -> Features:
    """The context of one example as ``model`` reads it (with the ordered prefix for a
    sequence model, :meth:`featint.task.NextMovieTask.context_for`), ``(1, slots)``, in
    float64."""
    c = task.context_for(model, np.array([example]))
    return Features(c.idx, c.val.double(), c.field, c.seq)


def explain(model: nn.Module, task: NextMovieTask, example: int, items, steps: int = STEPS,
            ) -> Explanation:
    """The scores of ``items`` (movie indices, ``(C,)``) for ``example`` (an example index of
    ``task``) as parts; computed in float64 on a copy of ``model`` in eval mode."""
    if getattr(model, "sequence_length", None) is not None:
        return explain_sequence(model, task, example, items, steps)
    model = _float64(model)
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    context = context_of(task, example)
    candidates = torch.from_numpy(items)[None]
    with torch.no_grad():
        score = model(context, candidates)[0]
    names = [f.name for f in task.schema.fields]
    if not hasattr(model, "terms") or _has_no_terms(model):
        return explain_by_gradients(model, task, example, items, steps, score=score)
    x = model.sample(context, candidates)
    with torch.no_grad():
        terms = model.terms(x)
    first, pairs = terms.first[0], terms.pairs[0]
    extra: dict = {k: v[0] for k, v in terms.extra.items()}
    c = model.num_context_fields
    if "attention" in extra:
        pairs = _afm_reference(pairs, extra["attention"], extra["term"], c)
    num = len(items)
    zeros = torch.zeros(num, dtype=torch.float64)
    deep_bias, deep_first = zeros.clone(), torch.zeros_like(first)
    deep_pairs = torch.zeros_like(pairs)
    method = "exact: the model's own terms"
    if terms.deep is not None:
        deep_bias, deep_first, deep_pairs = _attribute_deep(model, x, c, len(names), steps)
        method = (f"exact terms; the deep part by integrated gradients ({steps} midpoint "
                  "steps, baseline: every feature absent) within a Shapley split over the "
                  "movie's fields")
    if hasattr(model, "active_crosses"):
        extra["crosses"] = _crosses_table(model, x, task, names, c)
    return Explanation(getattr(model, "registered_name", type(model).__name__), example, items,
                       names, c, score, terms.bias[0].expand(num).clone(), first, pairs,
                       deep_bias, deep_first, deep_pairs, method, extra)


def _has_no_terms(model: nn.Module) -> bool:
    from featint.models import Model

    return type(model).terms is Model.terms


def _float64(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` in eval mode (the model itself if it already is one)."""
    if next(model.parameters()).dtype == torch.float64 and not model.training:
        return model
    return copy.deepcopy(model).double().eval()


def _afm_reference(pairs: torch.Tensor, a: torch.Tensor, y: torch.Tensor, c: int
                   ) -> torch.Tensor:
    """AFM's pair parts with the context x context pairs made context only.

    With context pairs attended, their weights ``a_fg`` depend on the candidate (the softmax
    runs over all pairs), so ``a_fg y_fg`` is not the same for every candidate. Exactly the
    same sum, regrouped: with ``A = sum_cc a_fg`` and ``y_C = sum_cc a_fg y_fg / A`` (the
    context pairs' own softmax mean, the same for every candidate), the pairwise term is
    ``y_C + sum_r a_r (y_r - y_C)`` over the other pairs ``r``: part ``a_fg y_fg / A`` for a
    context pair, ``a_r (y_r - y_C)`` for the others. ``(C, m, m)`` each."""
    cc = torch.zeros_like(a, dtype=torch.bool)
    cc[:, :c, :c] = True
    total_cc = (a * cc).sum((-2, -1), keepdim=True)                    # A: (C, 1, 1)
    if not (total_cc > 0).any():
        return pairs
    safe = total_cc.clamp_min(torch.finfo(a.dtype).tiny)
    y_c = (a * y * cc).sum((-2, -1), keepdim=True) / safe
    regrouped = torch.where(cc, a * y / safe, a * (y - y_c))
    return torch.where(total_cc > 0, regrouped, pairs)


def _shapley_weights(n: int) -> dict[int, float]:
    """``|S|! (n - |S| - 1)! / n!`` by ``|S|``."""
    return {s: math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
            for s in range(n)}


def _deep(model: nn.Module, x: Features) -> torch.Tensor:
    return model.terms(x).deep


def _attribute_deep(model: nn.Module, x: Features, c: int, m: int, steps: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The deep part of samples ``x`` ``(1, C, slots)`` as ``(bias (C,), fields (C, m),
    pairs (C, m, m))`` (module docstring)."""
    num = x.idx.shape[1]
    is_ctx = x.field < c
    item_fields = list(range(c, m))
    subsets = [frozenset(s) for r in range(len(item_fields) + 1)
               for s in itertools.combinations(item_fields, r)]

    def with_values(ctx_scale: torch.Tensor, keep: frozenset) -> torch.Tensor:
        """Values of x with the context scaled by ``ctx_scale`` (n,) and only the movie fields
        ``keep``: (n, C, slots)."""
        keep_slot = is_ctx | torch.isin(x.field, torch.tensor(sorted(keep), dtype=torch.long))
        scale = torch.where(is_ctx, ctx_scale[:, None], keep_slot.double()[None].expand(
            len(ctx_scale), -1))                                           # (n, slots)
        return x.val[0][None] * scale[:, None, :]

    def run(val: torch.Tensor) -> torch.Tensor:
        rows = val.shape[0]
        xs = Features(x.idx.expand(rows, num, -1), val, x.field)
        return _deep(model, xs)                                           # (rows, C)

    # D(0, m_T) for every T: the candidate-only game, exactly
    with torch.no_grad():
        absent = run(torch.stack([with_values(torch.zeros(1), T)[0] for T in subsets]))
    at = {T: absent[i] for i, T in enumerate(subsets)}
    weights = _shapley_weights(len(item_fields))
    deep_bias = at[frozenset()].clone()
    deep_first = torch.zeros(num, m, dtype=torch.float64)
    for g in item_fields:
        for T in subsets:
            if g not in T:
                deep_first[:, g] += weights[len(T)] * (at[T | {g}] - at[T])
    # integrated gradients over the context values, for every T at once
    alpha = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    val = torch.cat([with_values(alpha, T) for T in subsets]).requires_grad_(True)
    run(val).sum().backward()
    grad = val.grad.view(len(subsets), steps, num, -1).mean(1)           # (T, C, slots)
    per_slot = grad * x.val[0][None]                                      # (T, C, slots)
    ig = torch.zeros(len(subsets), num, m, dtype=torch.float64)
    ig.index_add_(-1, x.field, per_slot)                                 # A_f(T): (T, C, m)
    index = {T: i for i, T in enumerate(subsets)}
    deep_first[:, :c] = ig[index[frozenset()], :, :c]
    deep_pairs = torch.zeros(num, m, m, dtype=torch.float64)
    for g in item_fields:
        for T in subsets:
            if g not in T:
                deep_pairs[:, :c, g] += weights[len(T)] * (
                    ig[index[T | {g}], :, :c] - ig[index[T], :, :c])
    return deep_bias, deep_first, deep_pairs


def explain_by_gradients(model: nn.Module, task: NextMovieTask, example: int, items,
                         steps: int = STEPS, score: torch.Tensor | None = None
                         ) -> Explanation:
    """For a model without field terms (e.g. a sequence model): the score of each candidate
    as ``model(context absent, candidate)`` (candidate only, with the bias) plus one
    integrated-gradients part per context slot (context x candidate: it depends on the
    candidate), along ``alpha x`` of the context's values, baseline 0. Slots are summed by
    field in ``deep_first``; ``extra["slots"]`` ``(C, slots)`` keeps them one by one (a
    history position each). A model whose inputs are not values to scale (item indices fed to
    its own embeddings) needs to expose those embeddings to be explained this way."""
    model = _float64(model)
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    context = context_of(task, example)
    candidates = torch.from_numpy(items)[None]
    if score is None:
        with torch.no_grad():
            score = model(context, candidates)[0]
    alpha = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    slots = torch.zeros(len(items), context.val.shape[1], dtype=torch.float64)
    for i in range(len(items)):  # one candidate at a time: (steps, slots) along alpha x
        v = (context.val * alpha[:, None]).requires_grad_(True)
        model(Features(context.idx.expand(steps, -1), v, context.field),
              candidates[:, i:i + 1].expand(steps, -1)).sum().backward()
        slots[i] = v.grad.mean(0) * context.val[0]
    with torch.no_grad():
        absent = model(Features(context.idx, torch.zeros_like(context.val), context.field),
                       candidates)[0]
    names = [f.name for f in task.schema.fields]
    c = len(task.schema.context_fields)
    m = len(names)
    deep_pairs = torch.zeros(len(items), m, m, dtype=torch.float64)
    # a context slot's part depends on the candidate: put field f's on pair (f, movie)
    movie = names.index("movie") if "movie" in names else m - 1
    by_field = torch.zeros(len(items), m, dtype=torch.float64)
    by_field.index_add_(-1, context.field, slots)
    deep_pairs[:, :c, movie] = by_field[:, :c]
    zeros = torch.zeros(len(items), m, dtype=torch.float64)
    deep_first = zeros.clone()
    deep_first[:, movie] = absent
    return Explanation(getattr(model, "registered_name", type(model).__name__), example, items,
                       names, c, score, torch.zeros(len(items), dtype=torch.float64), zeros,
                       torch.zeros_like(deep_pairs), torch.zeros(len(items),
                                                                 dtype=torch.float64),
                       deep_first, deep_pairs,
                       f"integrated gradients over the context's values ({steps} midpoint "
                       "steps, baseline: the context absent)", {"slots": slots})


def explain_sequence(model: nn.Module, task: NextMovieTask, example: int, items,
                     steps: int = STEPS, chunk: int = 64) -> Explanation:
    """A sequence model's (SASRec's) scores of ``items`` ``(C,)`` for ``example``, one part
    per position of the prefix it reads; float64, on a copy in eval mode.

    SASRec scores ``r_m = <F_t(E), M_m>`` (:meth:`featint.models.sasrec.SASRec.textbook`),
    ``E = M_s + P`` the history's movie rows plus the position rows. The **baseline** is
    ``E_0 = P``: every movie of the prefix replaced by the padding row ``M_0 = 0``, the
    positions, and which of them hold a movie, kept. The model is told how long the history
    is but not which movies it holds; the positions are the model's own parameters, the
    same for every user, while the movies are what this user did. (All of ``E`` set to 0
    would take away the length and the order too, and leave every position alike; neither
    baseline is an input seen in training, this one keeps what is not the user's.)
    Integrated gradients along ``E(alpha) = P + alpha M_s`` (midpoint rule, ``steps``
    points, in chunks of ``chunk``): since ``r_m`` is linear in ``F_t``, one integral per
    coordinate of ``F_t`` serves every candidate,

    ``F_t(E) = F_t(P) + sum_i g_i``, ``g_i = sum_j M_{s_i, j} int_0^1 dF_t/dE_ij d alpha``,

    so ``r_m = <F_t(P), M_m> + sum_i <g_i, M_m>`` up to the integrals' error. The parts:

    - **candidate only**: ``<F_t(P), M_m>``, the score at the baseline (on the field
      ``movie``): the same for every context whose prefix has this length;
    - **context x candidate**: ``<g_i, M_m>``, what the movie at position ``i`` adds (on the
      pair (position, ``movie``)); zero on padding;
    - **context only**: nothing. SASRec's score has no bias and no term without ``M_m``, so
      every part depends on the candidate; the group is empty (its sum is 0).

    The fields: the model's ``max_len`` positions, named ``t-k`` (``k = 1``: the movie just
    before ``t``) and the movie's title where the prefix has one, then ``movie``;
    ``extra["history"]`` ``(max_len,)`` holds each position's movie index (-1: none)."""
    model = _float64(model)
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    context = context_of(task, example, model)
    candidates = torch.from_numpy(items)[None]
    with torch.no_grad():
        score = model(context, candidates)[0]
        M_s, P, real = model.inputs(context.seq)                   # (1, n, d), (n, d), (1, n)
        baseline = model.output(P[None], real)[0]                  # F_t(P): (d,)
    n, d = P.shape
    alpha = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    grads = torch.zeros(d, n, d, dtype=torch.float64)              # (F_t coordinate, i, j)
    for a in alpha.split(chunk):
        path = (P + a[:, None, None] * M_s).requires_grad_(True)   # (chunk, n, d)
        f_t = model.output(path, real.expand(len(a), -1))          # (chunk, d)
        for k in range(d):
            grads[k] += torch.autograd.grad(f_t[:, k].sum(), path, retain_graph=k < d - 1
                                            )[0].sum(0)
    g = (grads / steps * M_s[0]).sum(-1).T                         # g_i: (n, d)
    M_m = model.item_embedding.weight.detach()[1:][candidates[0]]  # (C, d)
    L, num = model.sequence_length, len(items)
    history = np.full(L, -1)
    history[L - n:] = context.seq[0, -n:].numpy() - 1
    fields = [f"t-{L - f}" + (f" {task.titles[h]}" if h >= 0 else "")
              for f, h in enumerate(history)] + ["movie"]
    zeros = torch.zeros(num, dtype=torch.float64)
    deep_first = torch.zeros(num, L + 1, dtype=torch.float64)
    deep_first[:, L] = M_m @ baseline
    deep_pairs = torch.zeros(num, L + 1, L + 1, dtype=torch.float64)
    deep_pairs[:, L - n:L, L] = M_m @ g.T
    return Explanation(
        getattr(model, "registered_name", type(model).__name__), example, items, fields, L,
        score, zeros, torch.zeros_like(deep_first), torch.zeros_like(deep_pairs), zeros.clone(),
        deep_first, deep_pairs,
        f"integrated gradients on the input embeddings E = M_s + P ({steps} midpoint steps, "
        "baseline: every movie of the prefix replaced by padding, M_0 = 0, its positions "
        "kept)", {"history": history})


def _crosses_table(model: nn.Module, x: Features, task: NextMovieTask, names: list[str],
                   c: int) -> pd.DataFrame:
    """Wide & Deep's active crosses per candidate: context feature, movie feature, weight,
    value ``x_a x_b`` and their product."""
    rows = []
    with torch.no_grad():
        for a, b, weight, value in model.active_crosses(x):
            slot_a = int(torch.nonzero(x.field == a)[0])
            slots_b = torch.nonzero(x.field == c + b).squeeze(-1)
            for cand in range(x.idx.shape[1]):
                for j, slot in enumerate(slots_b.tolist()):
                    if value[0, cand, j] == 0:
                        continue
                    rows.append(dict(
                        candidate=cand, cross=f"{names[a]} x {names[c + b]}",
                        context=feature_label(task, int(x.idx[0, cand, slot_a])),
                        movie=feature_label(task, int(x.idx[0, cand, slot])),
                        weight=float(weight[0, cand, j]), value=float(value[0, cand, j]),
                        part=float(weight[0, cand, j] * value[0, cand, j])))
    return pd.DataFrame(rows)


def feature_label(task: NextMovieTask, index: int) -> str:
    """A global feature index as ``field=value`` (a movie by its title)."""
    for f in task.schema.fields:
        if f.offset <= index < f.offset + f.size:
            j = index - f.offset
            if f.name in ("movie", "history", "last_movie"):
                return f"{f.name}={task.titles[j]}"
            if f.name == "user":
                return f"user={task.user_ids[j]}"
            names = getattr(task, "vocabularies", {}).get(
                "genre" if f.kind == "numeric" or f.name == "genre" else f.name)
            if f.name == "hour":
                return f"hour={j}"
            if names is not None and j < len(names):
                return f"{f.name}={names[j]}"
            return f"{f.name}={j}"
    return f"feature {index}"


# -- examples, rankings, and summaries over many examples -----------------------------------


def positions(task: NextMovieTask, user: int) -> tuple[int, int]:
    """The positions ``t`` a user (MovieLens id) has examples at: ``(first, last)``."""
    u = np.searchsorted(task.user_ids, user)
    if u >= len(task.user_ids) or task.user_ids[u] != user:
        raise ValueError(f"no user {user}; users are {task.user_ids[0]}..{task.user_ids[-1]}")
    return 1, int(task.seq_len[u]) - 1


def example_of(task: NextMovieTask, user: int, position: int | None = None) -> int:
    """The example index of ``user`` (MovieLens id) at ``position`` (default: the last)."""
    first, last = positions(task, user)
    position = last if position is None else position
    if not first <= position <= last:
        raise ValueError(f"user {user} has positions {first}..{last}, not {position}")
    u = np.searchsorted(task.user_ids, user)
    return int(np.flatnonzero((task.user == u) & (task.t == position))[0])


@torch.no_grad()
def top_movies(model: nn.Module, task: NextMovieTask, example: int, k: int = 10
               ) -> tuple[np.ndarray, np.ndarray]:
    """The model's ``k`` best movies for ``example`` (movies watched before dropped, as the
    protocol ranks) and their scores: ``(k,)`` each."""
    was = model.training
    model.eval()
    try:
        scores = model(task.context_for(model, np.array([example])),
                       torch.arange(task.num_items))[0]
    finally:
        model.train(was)
    scores = scores.double().masked_fill(task.seen_before(np.array([example]))[0], -np.inf)
    top = torch.topk(scores, k)
    return top.indices.numpy(), top.values.numpy()


def rank_of(model: nn.Module, task: NextMovieTask, example: int, movie: int) -> int:
    """The filtered rank of ``movie`` for ``example`` (1 = first)."""
    from featint.evaluate import rank_of_target

    model.eval()
    with torch.no_grad():
        scores = model(task.context_for(model, np.array([example])),
                       torch.arange(task.num_items))
    return int(rank_of_target(scores, torch.tensor([movie]),
                              task.seen_before(np.array([example])))[0])


def summarise(model: nn.Module, task: NextMovieTask, examples, num_negatives: int = 9,
              steps: int = 32, seed: int = 0) -> dict:
    """Parts over many examples: each example's true next movie and ``num_negatives``
    unwatched movies as candidates. Returns per example (``E``) and field pair: ``pairs``
    ``(E, m, m)``, the mean over the candidates of ``|part - its mean over the candidates|``
    (how much the pair moves this example's ranking; zero for a context-only part), and
    ``abs`` ``(E, m, m)`` the mean ``|part|``; ``groups`` ``(E, 3)`` the mean absolute sum of
    each group; ``error`` ``(E,)`` each example's largest sum-to-score error; AFM:
    ``attention`` ``(E, m, m)`` the mean attention weight; ``deep``/``exact`` ``(E, m, m)``
    the centred measure of the deep and the exact parts alone."""
    rng = np.random.default_rng(seed)
    examples = np.asarray(examples)
    model = _float64(model)
    negatives = task.sample_negatives(examples, num_negatives, rng)
    out: dict[str, list] = {k: [] for k in ("pairs", "abs", "groups", "error", "attention",
                                            "deep", "exact", "context_share")}
    for e, neg in zip(examples.tolist(), negatives, strict=True):
        ex = explain(model, task, e, np.concatenate([[task.target[e]], neg]), steps)
        merged = ex.by_pair()
        centred = (merged - merged.mean(0)).abs().mean(0)
        out["pairs"].append(centred.numpy())
        out["abs"].append(merged.abs().mean(0).numpy())
        for name, part in (("deep", ex.deep_pairs + torch.diag_embed(ex.deep_first)),
                           ("exact", ex.pairs + torch.diag_embed(ex.first))):
            out[name].append((part - part.mean(0)).abs().mean(0).numpy())
        groups = ex.groups().to_numpy()
        out["groups"].append(np.abs(groups).mean(0))
        out["context_share"].append(float(np.mean(np.abs(groups[:, 0])
                                                  / np.abs(groups).sum(1).clip(1e-12))))
        out["error"].append(ex.error)
        if "attention" in ex.extra:
            out["attention"].append(ex.extra["attention"].mean(0).numpy())
    return {k: np.array(v) for k, v in out.items() if len(v)}


def pair_ranking(summary: dict, fields: list[str], num_context_fields: int,
                 key: str = "pairs", seed: int = 0, samples: int = 1000) -> pd.DataFrame:
    """The context x candidate pairs of a :func:`summarise` by their mean over the examples
    of ``key``, largest first, with 95% bootstrap intervals over the examples."""
    values = summary[key]
    c, m = num_context_fields, len(fields)
    f, g = np.meshgrid(np.arange(c), np.arange(c, m), indexing="ij")
    f, g = f.ravel(), g.ravel()
    per = values[:, f, g]                                               # (E, pairs)
    rng = np.random.default_rng(seed)
    boot = np.stack([per[rng.integers(0, len(per), len(per))].mean(0) for _ in range(samples)])
    table = pd.DataFrame({"pair": [f"{fields[a]} x {fields[b]}" for a, b in zip(f, g,
                                                                                strict=True)],
                          "mean": per.mean(0), "lo": np.percentile(boot, 2.5, 0),
                          "hi": np.percentile(boot, 97.5, 0)})
    return table.sort_values("mean", ascending=False, ignore_index=True)

