"""FFM: the vectorised model equals the textbook double sum over feature pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featint.layers import FeaturesEmbedding, pool_fields
from featint.models import build_model, count_parameters
from featint.task import Features


def _batch(task, num: int = 6, num_candidates: int = 4, seed: int = 0):
    """Test contexts of different history lengths (so the history bag is padded) in float64,
    and candidate movies ``(batch, candidates)``."""
    ex = task.examples("test")
    ex = ex[np.argsort(task.t[ex])][np.linspace(0, len(ex) - 1, num).round().astype(int)]
    ctx = task.context(ex)
    ctx = Features(ctx.idx, ctx.val.double(), ctx.field)
    rng = np.random.default_rng(seed)
    items = np.column_stack([task.target[ex], task.sample_negatives(ex, num_candidates - 1, rng)])
    return ex, ctx, torch.from_numpy(items)


def _ffm(task):
    model = build_model("ffm", task, embed_dim=3).double().eval()
    with torch.no_grad():  # larger, non-zero weights so that every term matters
        for p in model.parameters():
            p.normal_(0.0, 0.5)
        model.embedding.embedding.weight[0].zero_()
        model.linear.weight.weight[0].zero_()
    return model


def _brute_force(model, ctx: Features, b: int, movie: int) -> float:
    """w0 + sum_i w_i x_i + sum_{i<j, f_i != f_j} <v_{i,f_j}, v_{j,f_i}> x_i x_j, one slot at a
    time, over the non-zero slots of context ``b`` and ``movie``."""
    c, m, k = model.num_context_fields, model.num_fields, model.embed_dim
    items = model.items
    slots = [(int(i), float(x), int(f)) for i, x, f in zip(ctx.idx[b], ctx.val[b], ctx.field,
                                                            strict=True)]
    slots += [(int(i), float(x), int(f) + c) for i, x, f in zip(
        items.idx[movie], items.val[movie], items.field, strict=True)]
    slots = [s for s in slots if s[1] != 0.0]
    v = model.embedding.embedding.weight.detach().view(-1, m - 1, k)
    w = model.linear.weight.weight.detach().squeeze(-1)

    def vec(i: int, own: int, other: int) -> torch.Tensor:  # v_{i, other}; skips i's own field
        return v[i, other - (other > own)]

    y = float(model.w0.detach()) + sum(float(w[i]) * x for i, x, _ in slots)
    for s, (i, xi, fi) in enumerate(slots):
        for j, xj, fj in slots[s + 1:]:
            if fi != fj:  # pairs inside one field are not modelled
                y += float(vec(i, fi, fj) @ vec(j, fj, fi)) * xi * xj
    return y


def test_ffm_equals_brute_force_double_sum(synthetic_task):
    task = synthetic_task
    model = _ffm(task)
    _, ctx, items = _batch(task)
    assert (ctx.val == 0).any(), "the batch should contain padding slots"
    with torch.no_grad():
        y = model(ctx, items)
        y_all = model(ctx, torch.arange(task.num_items))
    for b in range(items.shape[0]):
        for c in range(items.shape[1]):
            expected = _brute_force(model, ctx, b, int(items[b, c]))
            assert abs(float(y[b, c]) - expected) < 1e-10
            assert abs(float(y_all[b, items[b, c]]) - expected) < 1e-10


def test_ffm_pair_terms_add_up_to_the_interaction(synthetic_task):
    model = _ffm(synthetic_task)
    _, ctx, items = _batch(synthetic_task)
    terms = model.pair_terms(ctx, items)                       # (batch, candidates, m, m)
    m = model.num_fields
    assert terms.shape == (*items.shape, m, m)
    assert torch.all(terms.tril() == 0)                        # only f < g, never f == g
    with torch.no_grad():
        linear = model.w0 + model.linear(ctx)[:, None] + model.linear(model.items(items))
        assert torch.allclose(linear + terms.sum((-2, -1)), model(ctx, items), atol=1e-10)


def test_ffm_has_one_vector_per_other_field(synthetic_task):
    task = synthetic_task
    m, k = len(task.schema.fields), 4
    model = build_model("ffm", task, embed_dim=k)
    assert model.embedding.embedding.weight.shape == (task.schema.num_features, (m - 1) * k)
    assert count_parameters(model) == 1 + task.schema.num_features * (1 + (m - 1) * k)
    fm = build_model("fm", task, embed_dim=k)
    assert count_parameters(model) - 1 == (count_parameters(fm) - 1 - task.schema.num_features
                                           ) * (m - 1) + task.schema.num_features


def test_ffm_uses_the_vector_for_the_partner_field(synthetic_task):
    """Changing v_{i,g} only moves scores through pairs of i with field g."""
    task = synthetic_task
    model = _ffm(task)
    _, ctx, items = _batch(task, num=3)
    before = model.pair_terms(ctx, items)
    gender = task.schema.field("gender")
    g_item = len(task.schema.context_fields) + 1              # the item field "genre"
    with torch.no_grad():
        v = model.embedding.embedding.weight.view(task.schema.num_features, -1, 3)
        v[gender.offset:gender.offset + gender.size, g_item - 1] += 1.0  # v_{gender, genre}
    changed = (model.pair_terms(ctx, items) - before).abs() > 1e-12
    f_gender = [f.name for f in task.schema.fields].index("gender")
    assert changed[..., f_gender, g_item].all()
    changed[..., f_gender, g_item] = False
    assert not changed.any()


@pytest.mark.parametrize("embed_dim", [1, 5])
def test_ffm_both_item_forms_agree(synthetic_task, embed_dim):
    task = synthetic_task
    model = build_model("ffm", task, embed_dim=embed_dim).eval()
    _, ctx, items = _batch(task)
    ctx = Features(ctx.idx, ctx.val.float(), ctx.field)
    with torch.no_grad():
        y = model(ctx, items)
        y_all = model(ctx, torch.arange(task.num_items))
    assert y_all.shape == (items.shape[0], task.num_items)
    assert torch.allclose(y_all.gather(1, items), y, atol=1e-6)


def test_fields_embedding_equals_pooling_the_slots():
    """``FeaturesEmbedding.fields`` (embedding_bag) == ``pool_fields`` of the per-slot vectors,
    values and gradients, with padding, an empty field and any batch shape."""
    gen = torch.Generator().manual_seed(0)
    emb = FeaturesEmbedding(30, 5).double()
    with torch.no_grad():
        emb.embedding.weight.normal_(generator=gen)
        emb.embedding.weight[0].zero_()
    field = torch.tensor([2, 0, 0, 3, 0, 2])                   # field 1 has no slot at all
    idx = torch.randint(1, 30, (2, 3, 6), generator=gen)
    val = torch.randn(2, 3, 6, generator=gen, dtype=torch.float64)
    idx[0, 1, 2:], val[0, 1, 2:] = 0, 0.0                       # padding
    f = Features(idx, val, field)
    fast = emb.fields(f, 4)
    slow = pool_fields(emb(f), field, 4)
    assert fast.shape == (2, 3, 4, 5)
    assert torch.allclose(fast, slow, atol=1e-12)
    assert torch.all(fast[..., 1, :] == 0)
    weights = torch.randn(fast.shape, generator=gen, dtype=torch.float64)
    grad_fast = torch.autograd.grad((fast * weights).sum(), emb.embedding.weight)[0]
    grad_slow = torch.autograd.grad((slow * weights).sum(), emb.embedding.weight)[0]
    assert torch.allclose(grad_fast, grad_slow, atol=1e-12)
