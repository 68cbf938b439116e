"""Wide & Deep: the hashed crosses by hand, the two item forms, the deep part against the MLP on
the concatenated input in float64, and the wide table's gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import context64, perturbed

from featint.layers import NumericValues
from featint.models import build_model
from featint.models.wide_deep import CROSSES, WideDeep, cross_bucket
from featint.task import Features


def slot(task, name: str) -> int:
    """Position of the (one) slot of a categorical context field in ``task.context``."""
    number = [f.name for f in task.schema.context_fields].index(name)
    return int(np.flatnonzero(task.ctx_field == number)[0])


def wide_part(model: WideDeep, context: Features, items: torch.Tensor) -> torch.Tensor:
    movie = model.items(items)
    return (model.linear(context).unsqueeze(-1) + model.linear(movie)
            + model.wide_crosses(context, movie))


def test_cross_bucket_is_knuths_multiplicative_hash():
    a, b, num_features, bits = 37, 4012, 5000, 20
    expected = (((a * num_features + b) * 2654435761) % 2**32) // 2 ** (32 - bits)
    assert cross_bucket(torch.tensor(a), torch.tensor(b), num_features, bits).item() == expected
    buckets = cross_bucket(torch.arange(1, 200)[:, None], torch.arange(1, 200), 40_000, 12)
    assert buckets.min() >= 0 and buckets.max() < 2**12
    assert buckets.unique().numel() > 0.9 * 2**12  # 39,601 pairs spread over the table


def test_occupation_genre_cross_hits_its_bucket(synthetic_task):
    task = synthetic_task
    model = build_model("wide_deep", task).double().eval()
    occupation, genre = task.schema.field("occupation"), task.schema.field("genre")
    ex = task.examples("fit")[:1]
    context = context64(task, ex)
    i_occ = int(context.idx[0, slot(task, "occupation")])
    movie = 3
    genre_cols = task.item_field == 1
    i_genre = task.item_idx[movie, genre_cols]
    x_genre = task.item_val[movie, genre_cols]
    i_genre, x_genre = i_genre[x_genre > 0], x_genre[x_genre > 0]
    assert occupation.offset <= i_occ < occupation.offset + occupation.size
    assert all(genre.offset <= i < genre.offset + genre.size for i in i_genre)
    # the expected bucket, computed by hand for each genre of the movie
    number = i_occ * task.schema.num_features + i_genre.astype(np.int64)
    bucket = (number * 2654435761 % 2**32) // 2 ** (32 - model.bits)
    with torch.no_grad():
        model.cross_weight.weight[torch.from_numpy(bucket)] = 2.5
    score = model.wide_crosses(context, model.items(torch.tensor([[movie]])))
    # every other cross reads a zero weight unless it collides with these buckets
    others = [cross_bucket(torch.tensor(int(context.idx[0, slot(task, a)])),
                           torch.from_numpy(task.item_idx[movie]), task.schema.num_features,
                           model.bits) for a, _ in CROSSES if a != "occupation"]
    assert not np.isin(bucket, torch.cat(others).numpy()).any()
    torch.testing.assert_close(score, torch.tensor([[2.5 * x_genre.sum()]], dtype=torch.float64))


def test_contexts_differing_in_occupation_differ_only_through_its_terms(synthetic_task):
    task = synthetic_task
    model = perturbed(task, "wide_deep")
    c1 = context64(task, task.examples("test")[:1])
    s = slot(task, "occupation")
    occupation = task.schema.field("occupation")
    c2 = Features(c1.idx.clone(), c1.val, c1.field)
    other = occupation.offset + (int(c1.idx[0, s]) - occupation.offset + 1) % occupation.size
    c2.idx[0, s] = other
    items = torch.arange(task.num_items)
    diff = wide_part(model, c1, items) - wide_part(model, c2, items)  # (1, num_items)
    # by hand: the raw occupation weight and the occupation x genre crosses it activates
    w_lin, w_cross = model.linear.weight.weight[:, 0], model.cross_weight.weight[:, 0]
    genre_cols = torch.from_numpy(task.item_field == 1)
    i_genre, x_genre = model.items.idx[:, genre_cols], model.items.val[:, genre_cols]

    def occupation_terms(i_occ: int) -> torch.Tensor:  # w_occ + sum_g w_h(occ, g) x_g
        bucket = cross_bucket(torch.tensor(i_occ), i_genre, task.schema.num_features, model.bits)
        return w_lin[i_occ] + (w_cross[bucket] * x_genre).sum(-1)

    expected = occupation_terms(int(c1.idx[0, s])) - occupation_terms(other)
    torch.testing.assert_close(diff[0], expected, rtol=0, atol=1e-12)
    assert (diff.abs() > 1e-6).all()
    # the deep part also sees the occupation, through its embedding
    with torch.no_grad():
        assert not torch.allclose(model(c1, items), model(c2, items) + diff)


def test_all_items_equals_candidates(synthetic_task):
    task = synthetic_task
    model = perturbed(task, "wide_deep", seed=3)
    context = context64(task, task.examples("valid")[:40])
    rng = np.random.default_rng(0)
    candidates = torch.from_numpy(rng.integers(0, task.num_items, (40, 7)))
    with torch.no_grad():
        every = model(context, torch.arange(task.num_items))
        some = model(context, candidates)
    assert every.shape == (40, task.num_items) and some.shape == (40, 7)
    torch.testing.assert_close(some, every.gather(1, candidates), rtol=0, atol=1e-12)
    wide = wide_part(model, context, torch.arange(task.num_items))
    torch.testing.assert_close(wide_part(model, context, candidates), wide.gather(1, candidates),
                               rtol=0, atol=1e-12)


def test_deep_part_is_the_mlp_on_the_concatenated_input(synthetic_task):
    """Naive float64 reference: per (context, movie) the field embeddings are pooled by hand,
    joined with the numeric values, and go through the full (unsplit) first layer."""
    task = synthetic_task
    model = perturbed(task, "wide_deep", seed=5, hidden=(12, 6))
    context = context64(task, task.examples("fit")[:5])
    items = torch.tensor([0, 7, 42])
    V = model.embedding.embedding.weight
    W = torch.cat([model.deep.context.weight, model.deep.item.weight], 1)  # W [a_c; a_m]
    numeric = [f for f in task.schema.context_fields if f.kind == "numeric"]
    expected = torch.empty(5, 3, dtype=torch.float64)
    for r in range(5):
        fields = {}
        for i, x, f in zip(context.idx[r].tolist(), context.val[r].tolist(),
                           context.field.tolist(), strict=True):
            fields[f] = fields.get(f, 0) + x * V[i]
        embedded = [fields.get(f, torch.zeros_like(V[0])) for f in model.embedded.tolist()]
        dense = torch.cat([context.val[r, context.idx[r] == f.offset + j]
                           for f in numeric for j in range(f.size)])
        for c, m in enumerate(items.tolist()):
            movie = [sum((float(x) * V[i] for i, x, f in zip(
                task.item_idx[m], task.item_val[m], task.item_field, strict=True) if f == g),
                torch.zeros_like(V[0])) for g in range(3)]
            a0 = torch.cat([*embedded, dense, *movie])
            h = torch.relu(W @ a0 + model.deep.context.bias)
            expected[r, c] = model.deep.head[-1](h)
    with torch.no_grad():
        y = model(context, items) - wide_part(model, context, items)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-10)


def test_numeric_values_ignores_order_and_padding(synthetic_task):
    task = synthetic_task
    numeric = [f for f in task.schema.context_fields if f.kind == "numeric"]
    dense = NumericValues(numeric, task.schema.num_features)
    c = task.context(task.examples("fit")[:4])
    out = dense(c)
    assert out.shape == (4, sum(f.size for f in numeric))
    first = numeric[0]
    torch.testing.assert_close(out[:, 0], c.val[c.idx == first.offset])
    perm = torch.randperm(c.idx.shape[1], generator=torch.Generator().manual_seed(0))
    pad = torch.zeros(4, 3, dtype=c.idx.dtype)
    shuffled = Features(torch.cat([c.idx[:, perm], pad], 1),
                        torch.cat([c.val[:, perm], pad.float()], 1),
                        torch.cat([c.field[perm], torch.zeros(3, dtype=c.field.dtype)]))
    torch.testing.assert_close(dense(shuffled), out)
    with pytest.raises(ValueError, match="not numeric"):
        NumericValues([task.schema.field("user")], task.schema.num_features)


def test_gradient_reaches_only_the_buckets_of_the_batch(synthetic_task):
    task = synthetic_task
    model = build_model("wide_deep", task)
    ex = task.examples("fit")[:16]
    candidates = torch.from_numpy(np.column_stack([task.target[ex], (task.target[ex] + 1)
                                                   % task.num_items]))
    context = task.context(ex)
    model(context, candidates).sum().backward()
    grad = model.cross_weight.weight.grad[:, 0]
    item_number = {f.name: n for n, f in enumerate(task.schema.item_fields)}
    movie = model.items(candidates)
    touched = torch.cat([
        cross_bucket(context.idx[:, slot(task, a)][:, None, None],
                     movie.idx[..., movie.field == item_number[b]],
                     task.schema.num_features, model.bits).flatten()
        for a, b in CROSSES])
    assert grad.abs().sum() > 0
    outside = torch.ones_like(grad, dtype=torch.bool)
    outside[touched] = False
    assert (grad[outside] == 0).all()


def test_crosses_must_join_a_context_categorical_to_an_item_field(synthetic_task):
    with pytest.raises(ValueError, match="categorical context field"):
        build_model("wide_deep", synthetic_task, crosses=(("history", "movie"),))
    with pytest.raises(ValueError, match="item field"):
        build_model("wide_deep", synthetic_task, crosses=(("gender", "age"),))
