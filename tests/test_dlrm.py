"""DLRM: the dot interaction (and the concatenation of the simplified variant) equals a
float64 brute force built field by field and pair by pair; the all-movie path equals the
candidates path; every input size follows from the schema."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from helpers import context64, perturbed

from featint.models import MODELS, build_model
from featint.models.dlrm import DLRM
from featint.task import Field, Schema


def field_vector(model: DLRM, field: Field, idx: list[int], val: list[float]) -> torch.Tensor:
    """``sum x_j v_j`` over the slots of one field: its one vector, or its bag pooled."""
    V = model.embedding.embedding.weight
    out = torch.zeros(V.shape[1], dtype=torch.float64)
    for i, v in zip(idx, val, strict=True):
        if field.offset <= i < field.offset + field.size:
            out = out + v * V[i]
    return out


def brute_force(model: DLRM, task, ex: np.ndarray, items: list[int]) -> torch.Tensor:
    """The logit of every (example, movie), built from the definitions one field at a time:
    dense vector -> bottom MLP -> ``z``; one vector per sparse field; then ``R`` and the top
    MLP on it, as one plain MLP. ``R`` lists the dots in the model's order (pairs inside the
    context vectors, pairs inside the movie vectors, then movie x context) and for ``"cat"``
    the vectors in field order."""
    schema = task.schema
    ctx_fields, item_fields = schema.context_fields, schema.item_fields
    out = torch.empty(len(ex), len(items), dtype=torch.float64)
    for r, e in enumerate(ex):
        idx, val = task.context(np.array([e])).idx[0].tolist(), task.context(np.array([e])).val[0]
        val = val.double().tolist()
        dense = [v for f in ctx_fields if f.kind == "numeric"
                 for j in range(f.size) for i, v in zip(idx, val, strict=True)
                 if i == f.offset + j]
        z = model.bottom(torch.tensor(dense, dtype=torch.float64)[None])[0]
        t_c = [z] + [field_vector(model, f, idx, val) for f in ctx_fields if f.kind != "numeric"]
        for c, item in enumerate(items):
            m_idx, m_val = task.item_idx[item].tolist(), task.item_val[item].astype(float)
            t_m = [field_vector(model, f, m_idx, m_val.tolist()) for f in item_fields]
            if model.interaction == "dot":
                dots = [torch.dot(a, b) for side in (t_c, t_m)
                        for a, b in itertools.combinations(side, 2)]
                dots += [torch.dot(a, b) for a in t_m for b in t_c]
                R = torch.cat([z, torch.stack(dots)])
            else:
                R = torch.cat(t_c + t_m)
            out[r, c] = model.top(R[None])[0, 0]
    return out


def short_examples(task, n: int) -> np.ndarray:
    ex = task.examples("fit")
    return ex[np.argsort(task.t[ex], kind="stable")[:n]]


@pytest.mark.parametrize("name", ["dlrm", "dlrm_simplified"])
def test_matches_brute_force(synthetic_task, name):
    task = synthetic_task
    model = perturbed(task, name)
    ex, items = short_examples(task, 3), [0, 7, 100]
    expected = brute_force(model, task, ex, items)
    with torch.no_grad():
        some = model(context64(task, ex), torch.tensor([items] * len(ex)))
        every = model(context64(task, ex), torch.arange(task.num_items))
    torch.testing.assert_close(some, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(every[:, items], expected, rtol=0, atol=1e-10)


def test_dots_are_the_papers_lower_triangle(synthetic_task):
    """The set of dots the model feeds the top MLP is the strict lower triangle of ``T T^T``
    with ``T`` all vectors, ``z`` first (the official code's interaction), reordered."""
    task = synthetic_task
    model = perturbed(task, "dlrm", seed=4)
    ex = short_examples(task, 2)
    with torch.no_grad():
        z, t_c, t_m = model.vectors(context64(task, ex), torch.tensor([[3], [9]]))
        T = torch.cat([t_c, t_m[:, 0]], dim=1)  # (batch, F, k)
        i, j = torch.tril_indices(T.shape[1], T.shape[1], offset=-1)
        paper = (T @ T.mT)[:, i, j]
        ours = torch.cat([
            (t_c @ t_c.mT)[:, model.ctx_i, model.ctx_j],
            (t_m[:, 0] @ t_m[:, 0].mT)[:, model.item_i, model.item_j],
            (t_m[:, 0] @ t_c.mT).flatten(1),
        ], dim=1)
    assert ours.shape == paper.shape
    torch.testing.assert_close(ours.sort(dim=1).values, paper.sort(dim=1).values,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["dlrm", "dlrm_simplified"])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_all_items_equal_candidates(synthetic_task, name, chunk):
    task = synthetic_task
    model = perturbed(task, name, seed=2, chunk=chunk)
    ex = task.examples("valid")[:30]
    every_item = torch.arange(task.num_items)
    with torch.no_grad():
        every = model(context64(task, ex), every_item)
        plain = model(context64(task, ex), every_item.expand(len(ex), -1))
    torch.testing.assert_close(every, plain, rtol=0, atol=1e-10)


def test_dense_vector_holds_the_numeric_values(synthetic_task):
    task = synthetic_task
    model = build_model("dlrm", task)
    ex = task.examples("test")[:50]
    numeric = [n for n, f in enumerate(task.schema.context_fields) if f.kind == "numeric"]
    expected = torch.from_numpy(task.ctx_val[ex][:, np.isin(task.ctx_field, numeric)])
    torch.testing.assert_close(model.dense(task.context(ex)), expected, rtol=0, atol=0)


def with_extra_field(schema: Schema, kind: str, size: int) -> Schema:
    """The schema with one more context field appended to the feature space."""
    extra = Field("extra", "context", kind, schema.num_features, size)
    ctx = [f for f in schema.fields if f.side == "context"]
    rest = [f for f in schema.fields if f.side != "context"]
    return dataclasses.replace(schema, fields=(*ctx, extra, *rest),
                               num_features=schema.num_features + size)


def test_input_sizes_follow_the_schema(synthetic_task):
    schema, items = synthetic_task.schema, synthetic_task.item_features()
    ctx = schema.context_fields
    num_dense = sum(f.size for f in ctx if f.kind == "numeric")
    f_c = 1 + sum(f.kind != "numeric" for f in ctx)  # z and the sparse context fields
    f_m = len(schema.item_fields)
    k = 8

    def sizes(s: Schema, **hparams) -> tuple[int, int, int]:
        model = DLRM(s, items, embed_dim=k, **hparams)
        return model.bottom[0].in_features, model.bottom.out_features, model.top[0].in_features

    pairs = lambda n: n * (n - 1) // 2  # noqa: E731
    assert sizes(schema) == (num_dense, k, k + pairs(f_c) + pairs(f_m) + f_c * f_m)
    assert sizes(schema, interaction="cat") == (num_dense, k, (f_c + f_m) * k)
    # one more numeric field: a wider bottom MLP, the same top
    assert sizes(with_extra_field(schema, "numeric", 5)) == (num_dense + 5, k, sizes(schema)[2])
    # one more sparse field: one more vector, so f_c + f_m more dots (k more inputs for cat)
    bigger = with_extra_field(schema, "categorical", 3)
    assert sizes(bigger) == (num_dense, k, sizes(schema)[2] + f_c + f_m)
    assert sizes(bigger, interaction="cat")[2] == sizes(schema, interaction="cat")[2] + k


def test_simplified_variant(synthetic_task):
    task = synthetic_task
    assert MODELS["dlrm_simplified"].registered_name == "dlrm_simplified"
    dot, cat = build_model("dlrm", task), build_model("dlrm_simplified", task)
    assert (dot.interaction, cat.interaction) == ("dot", "cat")
    ex = task.examples("fit")[:64]
    items = torch.from_numpy(task.sample_negatives(ex, 5, np.random.default_rng(0)))
    cat.train()
    logits = cat(task.context(ex), items)
    assert logits.shape == (64, 5) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="interaction"):
        build_model("dlrm", task, interaction="sum")
