"""AFM: attention over the valid field pairs, the fast ranking path, the collapse to FM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featint.layers import fm_interaction
from featint.models import build_model
from featint.task import Features


def _batch(task, num: int = 6, num_candidates: int = 4, dtype=torch.float64):
    """Test contexts of different history lengths (padded bags) and candidates; in context 0
    the history bag and the numeric field ``user_mean_rating`` are emptied (values 0), so the
    pairs with them are absent."""
    ex = task.examples("test")
    ex = ex[np.argsort(task.t[ex])][np.linspace(0, len(ex) - 1, num).round().astype(int)]
    ctx = task.context(ex)
    val = ctx.val.to(dtype).clone()
    for name in ("history", "user_mean_rating"):
        number = [f.name for f in task.schema.context_fields].index(name)
        val[0, ctx.field == number] = 0.0
    rng = np.random.default_rng(0)
    items = np.column_stack([task.target[ex], task.sample_negatives(ex, num_candidates - 1, rng)])
    return Features(ctx.idx, val, ctx.field), torch.from_numpy(items)


def _afm(task, **hparams):
    model = build_model("afm", task, embed_dim=4, attention_dim=3, **hparams).double().eval()
    with torch.no_grad():  # larger weights so that the attention is far from uniform
        for p in model.parameters():
            p.normal_(0.0, 1.0)
        model.embedding.embedding.weight[0].zero_()
        model.linear.weight.weight[0].zero_()
    return model


def _valid_pairs(model, ctx: Features, items: torch.Tensor) -> torch.Tensor:
    """(batch, candidates, pairs): both fields of the pair have a non-zero value."""
    c = model.num_context_fields
    m = c + model.num_item_fields
    present = torch.zeros(*items.shape, m, dtype=torch.bool)
    for f in range(c):
        present[..., f] = (ctx.val[:, ctx.field == f] != 0).any(-1)[:, None]
    movie = model.items(items)
    for g in range(model.num_item_fields):
        present[..., c + g] = (movie.val[..., movie.field == g] != 0).any(-1)
    f, g = model.pair_fields.T
    return present[..., f] & present[..., g]


def _brute_force(model, ctx: Features, b: int, movie: int) -> float:
    """AFM of context ``b`` and ``movie`` written out field by field, pair by pair."""
    c = model.num_context_fields
    v = model.embedding.embedding.weight.detach()
    w = model.linear.weight.weight.detach().squeeze(-1)
    items = model.items
    slots = [(int(i), float(x), int(f)) for i, x, f in zip(ctx.idx[b], ctx.val[b], ctx.field,
                                                            strict=True)]
    slots += [(int(i), float(x), int(f) + c) for i, x, f in zip(
        items.idx[movie], items.val[movie], items.field, strict=True)]
    m = c + model.num_item_fields
    e = [torch.zeros(v.shape[1], dtype=v.dtype) for _ in range(m)]
    present = [False] * m
    for i, x, f in slots:
        e[f] = e[f] + x * v[i]
        present[f] = present[f] or x != 0.0
    W, bias = model.attention.weight.detach(), model.attention.bias.detach()
    h, p = model.h.detach(), model.p.detach()
    pv, logits = [], []
    for f in range(m):
        for g in range(f + 1, m):
            if present[f] and present[g]:
                pv.append(e[f] * e[g])
                logits.append(float(h @ torch.relu(W @ pv[-1] + bias)))
    z = sum(np.exp(a) for a in logits)
    pooled = sum(np.exp(a) / z * u for a, u in zip(logits, pv, strict=True))
    return float(model.w0.detach()) + sum(float(w[i]) * x for i, x, _ in slots) + float(p @ pooled)


def test_afm_equals_brute_force(synthetic_task):
    task = synthetic_task
    model = _afm(task)
    ctx, items = _batch(task)
    with torch.no_grad():
        y = model(ctx, items)
        y_all = model(ctx, torch.arange(task.num_items))        # the fast ranking path
    for b in range(items.shape[0]):
        for c in range(items.shape[1]):
            expected = _brute_force(model, ctx, b, int(items[b, c]))
            assert abs(float(y[b, c]) - expected) < 1e-10
            assert abs(float(y_all[b, items[b, c]]) - expected) < 1e-10


def test_attention_sums_to_one_over_valid_pairs(synthetic_task):
    model = _afm(synthetic_task)
    ctx, items = _batch(synthetic_task)
    a = model.attention_weights(ctx, items)                     # (batch, candidates, pairs)
    valid = _valid_pairs(model, ctx, items)
    assert not valid[0].all() and valid[1:].all()               # context 0 lost some pairs
    assert torch.all(a[~valid] == 0)
    assert torch.allclose(a.sum(-1), torch.ones_like(a[..., 0]), atol=1e-12)
    assert (a[valid] > 0).all()
    assert a.std() > 1e-3                                        # not uniform


def test_dropout_in_train_mode_keeps_the_weights_normalised(synthetic_task):
    model = _afm(synthetic_task, dropout=0.5).train()
    ctx, items = _batch(synthetic_task)
    a = model.attention_weights(ctx, items)
    assert torch.allclose(a.sum(-1), torch.ones_like(a[..., 0]), atol=1e-12)
    assert torch.equal(a, model.eval().attention_weights(ctx, items))
    model.train()
    torch.manual_seed(0)
    y1 = model(ctx, items)
    y2 = model(ctx, items)
    assert not torch.allclose(y1, y2)                            # dropout is active ...
    y_all = model(ctx, torch.arange(synthetic_task.num_items))   # ... also for all movies
    assert y_all.shape == (items.shape[0], synthetic_task.num_items)


def test_uniform_attention_collapses_to_a_scaled_fm(synthetic_task):
    """h = 0 gives equal logits, so a_fg = 1 / #valid pairs; with p = 1 the pairwise term is
    FM's over the field vectors divided by the number of valid pairs."""
    model = _afm(synthetic_task)
    ctx, items = _batch(synthetic_task)
    with torch.no_grad():
        model.h.zero_()
        model.p.fill_(1.0)
        e = torch.cat([model.field_vectors(ctx, model.num_context_fields)[0][:, None].expand(
            -1, items.shape[1], -1, -1),
            model.field_vectors(model.items(items), model.num_item_fields)[0]], -2)
        fm = fm_interaction(e) / _valid_pairs(model, ctx, items).sum(-1)
        linear = model.w0 + model.linear(ctx)[:, None] + model.linear(model.items(items))
        assert torch.allclose(model(ctx, items), linear + fm, atol=1e-12)
        y_all = model(ctx, torch.arange(synthetic_task.num_items))
        assert torch.allclose(y_all.gather(1, items), linear + fm, atol=1e-12)
        a = model.attention_weights(ctx, items)
        valid = _valid_pairs(model, ctx, items)
        uniform = 1.0 / valid.sum(-1, keepdim=True).double()
        assert torch.allclose(a[valid], uniform.expand_as(a)[valid], atol=1e-12)


def test_no_valid_pair_gives_zero_not_nan(synthetic_task):
    model = _afm(synthetic_task)
    ctx, items = _batch(synthetic_task, num=2)
    ctx = Features(ctx.idx, torch.zeros_like(ctx.val), ctx.field)   # every context field empty
    with torch.no_grad():
        model.items.val.zero_()                                     # ... and every item field
        y = model(ctx, items)
        y_all = model(ctx, torch.arange(synthetic_task.num_items))
    assert torch.allclose(y, model.w0.detach().expand_as(y))
    assert torch.allclose(y_all, model.w0.detach().expand_as(y_all))


@pytest.mark.parametrize("chunk_elements", [1, 2**10, 2**30])
def test_fast_ranking_path_matches_the_plain_one(synthetic_task, chunk_elements):
    """All movies at once (split softmax, chunked) == every movie as a candidate (plain);
    with dropout 0 the fast path also runs, with gradients, in train mode."""
    task = synthetic_task
    model = _afm(task, dropout=0.0, chunk_elements=chunk_elements).train()
    ctx, items = _batch(task)
    every = torch.arange(task.num_items)
    y_all = model(ctx, every)
    y_plain = model(ctx, every.expand(items.shape[0], -1))
    assert torch.allclose(y_all, y_plain, atol=1e-10)
    y_all.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_ranking_pairs_only_drops_the_context_pairs(synthetic_task):
    """attend="ranking": the context-context pairs get weight 0, the others sum to 1, both
    scoring paths agree with a brute force over the pairs that include a movie field."""
    task = synthetic_task
    model = _afm(task, attend="ranking")
    ctx, items = _batch(task)
    a = model.attention_weights(ctx, items)
    c = model.num_context_fields
    context_only = (model.pair_fields < c).all(-1)
    assert torch.all(a[..., context_only] == 0)
    assert torch.allclose(a.sum(-1), torch.ones_like(a[..., 0]), atol=1e-12)
    with torch.no_grad():
        y, y_all = model(ctx, items), model(ctx, torch.arange(task.num_items))
        full = _afm(task)            # the same weights (same seed), every pair attended
        full.load_state_dict(model.state_dict())
        # brute force: the full model's pooling restricted to the ranking pairs
        for b in range(items.shape[0]):
            for j in range(items.shape[1]):
                e_c, ok_c, cc = full.context_side(Features(ctx.idx[b:b + 1], ctx.val[b:b + 1],
                                                           ctx.field))
                cc = (cc[0], cc[1], torch.zeros_like(cc[2]))
                e_m, ok_m = full.field_vectors(full.items(items[b:b + 1, j:j + 1]),
                                               full.num_item_fields)
                pooled, _ = full.attend(e_c, ok_c, cc, e_m, ok_m)
                expected = (full.w0 + full.linear(Features(
                    ctx.idx[b:b + 1], ctx.val[b:b + 1], ctx.field)) + full.linear(
                    full.items(items[b:b + 1, j:j + 1]))[0] + pooled[0] @ full.p)
                assert abs(float(y[b, j]) - float(expected)) < 1e-10
                assert abs(float(y_all[b, items[b, j]]) - float(expected)) < 1e-10


def test_p_init_and_attention_penalty(synthetic_task):
    task = synthetic_task
    m = len(task.schema.fields)
    c = len(task.schema.context_fields)
    every = build_model("afm", task, p_init="pairs")
    ranking = build_model("afm", task, p_init="pairs", attend="ranking")
    assert torch.all(every.p == m * (m - 1) // 2)
    assert torch.all(ranking.p == m * (m - 1) // 2 - c * (c - 1) // 2)
    assert torch.all(build_model("afm", task, p_init=3.0).p == 3.0)
    assert every.penalty() == 0.0
    model = build_model("afm", task, attention_l2=0.5)
    assert torch.isclose(model.penalty(), 0.5 * model.attention.weight.square().sum())
    with pytest.raises(ValueError, match="attend must be"):
        build_model("afm", task, attend="some")
