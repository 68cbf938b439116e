"""The shared building blocks (``featint.layers``) and the FM model against brute force.

The reference FM is the textbook formula, written as slowly as possible: a double loop over
every pair of non-zero slots, in float64.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from featint.layers import (
    MLP,
    Dropout,
    FeaturesEmbedding,
    FeaturesLinear,
    ItemTable,
    bi_from_sums,
    bi_interaction,
    cross_dot,
    field_sums,
    fm_interaction,
    lookup,
    pairs,
    pool_fields,
)
from featint.models.fm import FM
from featint.task import Features, Field, Schema

# -- random sparse inputs with padded multi-valued fields -------------------------------------

CONTEXT_LAYOUT = [("a", "categorical", 5), ("bag", "bag", 12), ("b", "categorical", 4),
                  ("num", "numeric", 3), ("bag2", "bag", 6)]
ITEM_LAYOUT = [("movie", "categorical", 7), ("tags", "bag", 5), ("year", "categorical", 3)]


def make_schema() -> Schema:
    fields, offset = [], 1
    for side, layout in (("context", CONTEXT_LAYOUT), ("item", ITEM_LAYOUT)):
        for name, kind, size in layout:
            fields.append(Field(name, side, kind, offset, size))
            offset += size
    return Schema(tuple(fields), offset)


def random_features(schema: Schema, side: str, rows: int, rng: np.random.Generator,
                    extra_padding: int = 2, one_per_row: bool = False) -> Features:
    """Random Features of ``rows`` samples: categorical fields one slot, bags a random number
    of distinct members (0 up to the field size) with random weights, numeric fields every
    index with a real value; every bag padded to the row's widest, plus ``extra_padding``
    slots. ``one_per_row``: row ``r`` of a categorical field takes value ``r`` (movie ids)."""
    fields = [f for f in schema.fields if f.side == side]
    idx_cols, val_cols, field_cols = [], [], []
    for number, f in enumerate(fields):
        if f.kind == "categorical":
            value = np.arange(rows) % f.size if one_per_row else rng.integers(0, f.size, rows)
            idx, val = (f.offset + value)[:, None], np.ones((rows, 1))
        elif f.kind == "numeric":
            idx = np.broadcast_to(f.offset + np.arange(f.size), (rows, f.size))
            val = rng.normal(size=(rows, f.size))
        else:
            width = rng.integers(0, f.size + 1, rows)
            cols = int(width.max()) + extra_padding
            idx, val = np.zeros((rows, cols), dtype=np.int64), np.zeros((rows, cols))
            for r in range(rows):
                members = rng.choice(f.size, width[r], replace=False)
                idx[r, :width[r]] = f.offset + members
                val[r, :width[r]] = rng.uniform(0.1, 1.5, width[r])
        idx_cols.append(idx)
        val_cols.append(val)
        field_cols.append(np.full(idx.shape[1], number))
    return Features(torch.from_numpy(np.concatenate(idx_cols, 1).astype(np.int64)),
                    torch.from_numpy(np.concatenate(val_cols, 1)),
                    torch.from_numpy(np.concatenate(field_cols)))


def with_padding(f: Features, where: str, count: int) -> Features:
    """``f`` with ``count`` padding slots (index 0, value 0) at the front, middle or end."""
    rows, slots = f.idx.shape
    at = {"front": 0, "middle": slots // 2, "end": slots}[where]
    pad_idx = torch.zeros(rows, count, dtype=f.idx.dtype)
    pad_val = torch.zeros(rows, count, dtype=f.val.dtype)
    pad_field = f.field[min(at, slots - 1)].repeat(count)
    cat = lambda a, b: torch.cat([a[..., :at], b, a[..., at:]], -1)  # noqa: E731
    return Features(cat(f.idx, pad_idx), cat(f.val, pad_val), cat(f.field, pad_field))


def random_fm(schema: Schema, items: Features, seed: int, embed_dim: int = 4) -> FM:
    """An FM in float64 with every parameter random, the padding rows included: padding
    must vanish because its value is 0, not because its weights happen to be 0."""
    torch.manual_seed(seed)
    model = FM(schema, items, embed_dim=embed_dim).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return model


def fm_reference(model: FM, idx: np.ndarray, val: np.ndarray) -> float:
    """``w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j`` over the non-zero slots."""
    w0 = model.w0.detach().double().item()
    w = model.linear.weight.weight.detach().double().numpy()[:, 0]
    v = model.embedding.embedding.weight.detach().double().numpy()
    slots = [(i, x) for i, x in zip(idx.tolist(), val.tolist(), strict=True) if x != 0.0]
    assert len({i for i, _ in slots}) == len(slots), "each feature at most once"
    y = w0 + sum(w[i] * x for i, x in slots)
    for s in range(len(slots)):
        for t in range(s + 1, len(slots)):
            (i, xi), (j, xj) = slots[s], slots[t]
            y += float(np.dot(v[i], v[j])) * xi * xj
    return y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fm_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    schema = make_schema()
    items = random_features(schema, "item", 7, rng, extra_padding=1, one_per_row=True)
    model = random_fm(schema, items, seed)
    context = random_features(schema, "context", 5, rng, extra_padding=3)
    candidates = torch.from_numpy(rng.integers(0, 7, (5, 4)))
    with torch.no_grad():
        some = model(context, candidates)
        every = model(context, torch.arange(7))
    assert some.shape == (5, 4) and every.shape == (5, 7)
    assert some.dtype == every.dtype == torch.float64
    for b in range(5):
        for m in range(7):
            x_idx = np.concatenate([context.idx[b].numpy(), items.idx[m].numpy()])
            x_val = np.concatenate([context.val[b].numpy(), items.val[m].numpy()])
            expected = fm_reference(model, x_idx, x_val)
            assert every[b, m].item() == pytest.approx(expected, rel=1e-10, abs=1e-10)
        for c in range(4):
            assert some[b, c].item() == pytest.approx(every[b, candidates[b, c]].item(),
                                                      rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("where", ["front", "middle", "end"])
def test_fm_padding_changes_nothing(where):
    rng = np.random.default_rng(5)
    schema = make_schema()
    items = random_features(schema, "item", 7, rng, one_per_row=True)
    model = random_fm(schema, items, 5)
    context = random_features(schema, "context", 6, rng, extra_padding=0)
    candidates = torch.from_numpy(rng.integers(0, 7, (6, 3)))
    padded = with_padding(context, where, 9)
    padded_items = with_padding(items, where, 4)
    other = random_fm(schema, padded_items, 5)
    other.load_state_dict(model.state_dict())
    if where == "end":  # what the task does: the sums see the same numbers in the same order
        same = torch.equal
    else:  # moving the real slots may reorder the float sums: equal up to rounding
        same = lambda a, b: torch.allclose(a, b, rtol=1e-12, atol=1e-12)  # noqa: E731
    with torch.no_grad():
        for chosen in (candidates, torch.arange(7)):
            assert same(model(context, chosen), model(padded, chosen))
            assert same(model(context, chosen), other(context, chosen))


def test_fm_reference_can_fail():
    # a sanity check of the checker: drop one pair and the reference must disagree
    rng = np.random.default_rng(0)
    schema = make_schema()
    items = random_features(schema, "item", 7, rng, one_per_row=True)
    model = random_fm(schema, items, 0)
    context = random_features(schema, "context", 1, rng)
    with torch.no_grad():
        y = model(context, torch.arange(1)).item()
    x_idx = np.concatenate([context.idx[0].numpy(), items.idx[0].numpy()])
    x_val = np.concatenate([context.val[0].numpy(), items.val[0].numpy()])
    nonzero = np.flatnonzero(x_val)
    x_val[nonzero[-1]] = 0.0
    assert fm_reference(model, x_idx, x_val) != pytest.approx(y, rel=1e-10, abs=1e-10)


# -- the blocks ------------------------------------------------------------------------------


def test_bi_interaction_is_the_sum_over_pairs():
    xv = torch.randn(3, 2, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.zeros(3, 2, 5, dtype=torch.float64)
    for s, t in itertools.combinations(range(6), 2):
        expected += xv[..., s, :] * xv[..., t, :]
    torch.testing.assert_close(bi_interaction(xv), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fm_interaction(xv), expected.sum(-1), rtol=1e-12, atol=1e-12)


def test_bi_interaction_of_one_slot_is_zero():
    xv = torch.randn(4, 1, 3)
    assert torch.equal(bi_interaction(xv), torch.zeros(4, 3))


def test_features_embedding_and_linear():
    torch.manual_seed(0)
    emb, lin = FeaturesEmbedding(10, 3), FeaturesLinear(10)
    assert torch.equal(emb.embedding.weight[0], torch.zeros(3))
    assert torch.equal(lin.weight.weight, torch.zeros(10, 1))
    with torch.no_grad():
        lin.weight.weight.normal_()
    f = Features(torch.tensor([[1, 4, 0], [9, 2, 2]]), torch.tensor([[1.0, 0.5, 0.0],
                                                                      [2.0, 1.0, -1.0]]),
                 torch.tensor([0, 1, 1]))
    xv = emb(f)
    assert xv.shape == (2, 3, 3)
    torch.testing.assert_close(xv[0, 1], 0.5 * emb.embedding.weight[4])
    assert torch.equal(xv[0, 2], torch.zeros(3))
    w = lin.weight.weight[:, 0]
    torch.testing.assert_close(lin(f), torch.stack([w[1] + 0.5 * w[4], 2 * w[9]]))


def test_cross_dot_both_forms_agree():
    g = torch.Generator().manual_seed(0)
    a, table = torch.randn(4, 3, generator=g), torch.randn(6, 3, generator=g)
    chosen = torch.tensor([[0, 5], [2, 2], [1, 3], [4, 0]])
    every = cross_dot(a, table)
    assert every.shape == (4, 6)
    torch.testing.assert_close(every, torch.stack([table @ a[b] for b in range(4)]))
    torch.testing.assert_close(cross_dot(a, table[chosen]), every.gather(1, chosen))


def test_pool_fields():
    g = torch.Generator().manual_seed(0)
    xv = torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64)
    field = torch.tensor([2, 0, 2, 2, 3, 0, 3])  # field 1 has no slot, 4 does not exist here
    pooled = pool_fields(xv, field, 5)
    assert pooled.shape == (2, 3, 5, 4)
    for f in range(5):
        expected = xv[..., field == f, :].sum(-2)
        torch.testing.assert_close(pooled[..., f, :], expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(pooled[..., 1, :], torch.zeros(2, 3, 4))
    # the sum over fields is the sum over slots
    torch.testing.assert_close(pooled.sum(-2), xv.sum(-2))


def test_pool_fields_ignores_padding():
    emb = FeaturesEmbedding(6, 2)
    f = Features(torch.tensor([[1, 2, 3]]), torch.tensor([[1.0, 0.5, 0.5]]),
                 torch.tensor([0, 1, 1]))
    padded = with_padding(f, "end", 3)
    torch.testing.assert_close(pool_fields(emb(padded), padded.field, 2),
                               pool_fields(emb(f), f.field, 2))


def test_pairs():
    rows, cols = pairs(5)
    assert len(rows) == len(cols) == 10
    found = sorted(zip(rows.tolist(), cols.tolist(), strict=True))
    assert found == list(itertools.combinations(range(5), 2))
    assert len(pairs(1)[0]) == 0


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("out_dim", [1, None, 3])
def test_mlp_on_three_dimensional_input(batch_norm, out_dim):
    torch.manual_seed(0)
    mlp = MLP(8, (16, 4), out_dim=out_dim, dropout=0.2, batch_norm=batch_norm)
    width = out_dim if out_dim is not None else 4
    assert mlp.out_features == width
    x = torch.randn(5, 6, 8)
    assert mlp(x).shape == (5, 6, width)
    if not batch_norm:  # batch norm needs more than one value per feature in training
        assert mlp(x[0, 0]).shape == (width,)
    mlp.eval()  # per-position results do not depend on the leading shape
    torch.testing.assert_close(mlp(x), mlp(x.reshape(30, 8)).reshape(5, 6, width))
    torch.testing.assert_close(mlp(x)[2:3], mlp(x[2:3]))


def test_mlp_layers():
    mlp = MLP(8, (16, 4), out_dim=1, dropout=0.1, batch_norm=True)
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "_BatchNormLast", "ReLU", "Dropout",
                     "Linear", "_BatchNormLast", "ReLU", "Dropout", "Linear"]
    assert [type(m).__name__ for m in MLP(3, [], out_dim=2)] == ["Linear"]


def test_mlp_batch_norm_uses_every_position():
    torch.manual_seed(0)
    mlp = MLP(3, (4,), out_dim=None, batch_norm=True).train()
    x = torch.randn(5, 6, 3) * 3 + 1
    mlp(x)
    bn = mlp[1]
    flat = mlp[0](x.reshape(-1, 3)).detach()
    torch.testing.assert_close(bn.running_mean, 0.1 * flat.mean(0))


def test_item_table():
    f = Features(torch.arange(12).reshape(4, 3), torch.rand(4, 3), torch.tensor([0, 1, 1]))
    table = ItemTable(f)
    assert not list(table.parameters()) and not table.state_dict()  # non-persistent buffers
    some = table(torch.tensor([[3, 1], [0, 0]]))
    assert some.idx.shape == (2, 2, 3) and torch.equal(some.idx[0, 0], f.idx[3])
    assert torch.equal(some.field, f.field)
    every = table(torch.arange(4))
    assert torch.equal(every.idx, f.idx) and torch.equal(every.val, f.val)


# -- the fast sums: field_sums against the per-slot vectors -------------------------------------


def per_slot_sums(table: torch.Tensor, f: Features, num_fields: int,
                  squared: bool = False) -> torch.Tensor:
    """The plain definition: every slot's ``x_a t_{i_a}``, summed per field."""
    xv = table[f.idx] * f.val.unsqueeze(-1)
    return pool_fields(xv.pow(2) if squared else xv, f.field, num_fields)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("where", ["front", "middle", "end"])
def test_field_sums_equal_the_per_slot_sums_and_their_gradients(squared, where):
    schema = make_schema()
    rng = np.random.default_rng(3)
    f = with_padding(random_features(schema, "context", 9, rng), where, 3)
    num_fields = len(CONTEXT_LAYOUT) + 1  # one more field than the slots name: zeros
    table = torch.randn(schema.num_features, 5, dtype=torch.float64, requires_grad=True)
    fast = field_sums(table, f, num_fields, squared)
    slow = per_slot_sums(table, f, num_fields, squared)
    torch.testing.assert_close(fast, slow)
    assert fast[:, -1].abs().max() == 0
    weights = torch.randn_like(slow)
    (g_fast,) = torch.autograd.grad((fast * weights).sum(), table)
    (g_slow,) = torch.autograd.grad((slow * weights).sum(), table)
    torch.testing.assert_close(g_fast, g_slow)


def test_field_sums_of_a_shuffled_field_and_of_padding_only():
    """Slots of a field need not be contiguous; a field whose slots are all padding adds 0."""
    table = torch.randn(10, 3, dtype=torch.float64)
    f = Features(torch.tensor([[4, 2, 5, 0], [6, 0, 7, 0]]),
                 torch.tensor([[1.0, 0.5, 2.0, 0.0], [3.0, 0.0, 1.5, 0.0]], dtype=torch.float64),
                 torch.tensor([1, 0, 1, 2]))
    fast = field_sums(table, f)
    torch.testing.assert_close(fast, per_slot_sums(table, f, 3))
    assert fast.shape == (2, 3, 3) and fast[:, 2].abs().max() == 0


def test_field_sums_keep_batch_axes_and_reuse_the_batch_layout():
    schema = make_schema()
    items = random_features(schema, "item", 6, np.random.default_rng(0), one_per_row=True)
    cand = torch.tensor([[0, 5, 2], [3, 3, 1]])
    f = ItemTable(items)(cand)
    table = torch.randn(schema.num_features, 4, dtype=torch.float64)
    torch.testing.assert_close(field_sums(table, f), per_slot_sums(table, f, 3))
    assert "layout" in f.cache  # built once, read by every later call on this batch
    emb = FeaturesEmbedding(schema.num_features, 4).double()
    torch.testing.assert_close(emb.sum_of_squares(f), emb(f).pow(2).sum(-2))
    s, q = emb.sums(f)
    torch.testing.assert_close(bi_from_sums(s, q), bi_interaction(emb(f)))


def test_item_table_all_is_every_row():
    schema = make_schema()
    items = random_features(schema, "item", 6, np.random.default_rng(0), one_per_row=True)
    table = ItemTable(items)
    every, rows = table.all(), table(torch.arange(6))
    assert torch.equal(every.idx, rows.idx) and torch.equal(every.val, rows.val)
    values = torch.randn(6, 2, 3)
    idx = torch.tensor([[5, 0], [2, 2]])
    assert torch.equal(lookup(values, idx), values[idx])


# -- dropout with numpy's masks ------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_rate_scale_and_seed(p):
    layer = Dropout(p).train()
    x = torch.ones(200_000)
    torch.manual_seed(0)
    y = layer(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    torch.manual_seed(0)
    assert torch.equal(layer(x), y)  # torch's seed fixes the mask
    assert not torch.equal(layer(x), y)  # and the next call draws a new one
    assert torch.equal(layer.eval()(x), x)


def test_dropout_gradient_is_the_mask():
    layer = Dropout(0.5).train()
    x = torch.randn(1000, requires_grad=True)
    y = layer(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, (y != 0).double().float() * 2.0)
