"""DeepFM: it collapses to FM when the DNN's output layer is zero, its FM part is the textbook
formula (brute force, float64), its DNN part is the MLP on the concatenated field embeddings,
and both read the one embedding table."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from helpers import context64, perturbed

from featint.layers import ContextItemMLP
from featint.models import build_model
from featint.models.deepfm import DeepFM
from featint.task import Features


def short_examples(task, n: int) -> np.ndarray:
    """``n`` fit examples with short histories, so the brute force stays fast."""
    ex = task.examples("fit")
    return ex[np.argsort(task.t[ex], kind="stable")[:n]]


def brute_force_fm(model: DeepFM, task, ex: np.ndarray, items: list[int]) -> torch.Tensor:
    """``w_0 + sum_i w_i x_i + sum_{i<j} <V_i, V_j> x_i x_j`` over the non-zero slots of the
    joined context + movie vector, one pair at a time: ``(len(ex), len(items))``."""
    w, V = model.linear.weight.weight[:, 0], model.embedding.embedding.weight
    context = task.context(ex)
    out = torch.empty(len(ex), len(items), dtype=torch.float64)
    for r, c in itertools.product(range(len(ex)), range(len(items))):
        idx = context.idx[r].tolist() + task.item_idx[items[c]].tolist()
        val = context.val[r].double().tolist() + task.item_val[items[c]].astype(float).tolist()
        x = [(i, v) for i, v in zip(idx, val, strict=True) if v != 0]
        y = model.w0 + sum(w[i] * v for i, v in x)
        for (i, xi), (j, xj) in itertools.combinations(x, 2):
            y = y + torch.dot(V[i], V[j]) * xi * xj
        out[r, c] = y
    return out


def test_fm_part_matches_brute_force(synthetic_task):
    task = synthetic_task
    model = perturbed(task, "deepfm")
    with torch.no_grad():
        model.dnn.output.weight.zero_()
        model.dnn.output.bias.zero_()
    ex, items = short_examples(task, 4), [0, 5, 99]
    with torch.no_grad():
        y = model(context64(task, ex), torch.tensor(items))
    torch.testing.assert_close(y, brute_force_fm(model, task, ex, items), rtol=0, atol=1e-10)


def test_collapses_to_fm_when_the_dnn_output_is_zero(synthetic_task):
    task = synthetic_task
    deepfm = perturbed(task, "deepfm", seed=2)
    fm = build_model("fm", task).double().eval()
    fm.load_state_dict({k: v for k, v in deepfm.state_dict().items()
                        if not k.startswith("dnn.")})  # w0, linear, embedding: copied
    context = context64(task, task.examples("valid")[:30])
    candidates = torch.from_numpy(np.random.default_rng(0).integers(0, task.num_items, (30, 6)))
    every = torch.arange(task.num_items)
    with torch.no_grad():
        assert (deepfm(context, every) - fm(context, every)).abs().max() > 1e-3  # DNN is on
        deepfm.dnn.output.weight.zero_()
        deepfm.dnn.output.bias.zero_()
        torch.testing.assert_close(deepfm(context, every), fm(context, every), rtol=0, atol=1e-10)
        torch.testing.assert_close(deepfm(context, candidates), fm(context, candidates),
                                   rtol=0, atol=1e-10)


def test_dnn_part_is_the_mlp_on_the_field_embeddings(synthetic_task):
    """Naive float64 reference: field embeddings pooled by hand per (context, movie), joined,
    through the full (unsplit) first layer and the rest of the network."""
    task = synthetic_task
    model = perturbed(task, "deepfm", seed=4, hidden=(10, 8, 6))
    # the same model, its DNN output zeroed below
    fm_only = perturbed(task, "deepfm", seed=4, hidden=(10, 8, 6))
    with torch.no_grad():
        fm_only.dnn.output.weight.zero_()
        fm_only.dnn.output.bias.zero_()
    ex, items = short_examples(task, 3), [2, 17]
    context = context64(task, ex)
    V = model.embedding.embedding.weight
    W = torch.cat([model.dnn.context.weight, model.dnn.item.weight], 1)
    expected = torch.empty(3, 2, dtype=torch.float64)
    for r, c in itertools.product(range(3), range(2)):
        m = items[c]
        e = [torch.zeros_like(V[0]) for _ in range(model.num_ctx_fields + model.num_item_fields)]
        for i, x, f in zip(context.idx[r].tolist(), context.val[r].tolist(),
                           context.field.tolist(), strict=True):
            e[f] = e[f] + x * V[i]
        for i, x, f in zip(task.item_idx[m], task.item_val[m], task.item_field, strict=True):
            e[model.num_ctx_fields + f] = e[model.num_ctx_fields + f] + float(x) * V[i]
        h = torch.relu(W @ torch.cat(e) + model.dnn.context.bias)
        expected[r, c] = model.dnn.head[-1](h)
    with torch.no_grad():
        y_dnn = model(context, torch.tensor(items)) - fm_only(context, torch.tensor(items))
    torch.testing.assert_close(y_dnn, expected, rtol=0, atol=1e-10)


def test_one_embedding_table_feeds_both_components(synthetic_task):
    task = synthetic_task
    model = build_model("deepfm", task)
    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    assert len(embeddings) == 2  # w_i (FeaturesLinear) and V_i: no second table for the DNN
    ex = task.examples("fit")[:8]
    context, items = task.context(ex), torch.from_numpy(task.target[ex][:, None])
    model.dnn(*_dnn_inputs(model, context, items)).sum().backward()
    assert model.embedding.embedding.weight.grad.abs().sum() > 0  # the DNN reads V


def _dnn_inputs(model: DeepFM, context: Features, items: torch.Tensor):
    movie = model.items(items)
    e_c = model.embedding.fields(context, model.num_ctx_fields).flatten(-2)
    e_m = model.embedding.fields(movie, model.num_item_fields).flatten(-2)
    return e_c, e_m


def test_all_items_equals_candidates(synthetic_task):
    task = synthetic_task
    model = perturbed(task, "deepfm", seed=6)
    context = context64(task, task.examples("test")[:50])
    candidates = torch.from_numpy(np.random.default_rng(1).integers(0, task.num_items, (50, 5)))
    with torch.no_grad():
        every = model(context, torch.arange(task.num_items))
        some = model(context, candidates)
    torch.testing.assert_close(some, every.gather(1, candidates), rtol=0, atol=1e-12)


def test_context_item_mlp_equals_the_mlp_on_the_concatenation():
    torch.manual_seed(0)
    mlp = ContextItemMLP(7, 4, (9, 5), 2, dropout=0.3, batch_norm=True, chunk=3).double()
    with torch.no_grad():  # BatchNorm statistics away from their identity start
        for bn in (m for m in mlp.modules() if isinstance(m, torch.nn.BatchNorm1d)):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    mlp.eval()
    a, b = torch.randn(10, 7, dtype=torch.float64), torch.randn(13, 4, dtype=torch.float64)
    W = torch.cat([mlp.context.weight, mlp.item.weight], 1)
    joined = torch.cat([a[:, None].expand(10, 13, 7), b.expand(10, 13, 4)], -1)
    expected = mlp.head(joined @ W.T + mlp.context.bias)
    torch.testing.assert_close(mlp(a, b), expected, rtol=0, atol=1e-12)  # (10, 13, 2), chunked
    picked = b[torch.arange(13).reshape(1, 13).expand(10, 13)]
    torch.testing.assert_close(mlp(a, picked), expected, rtol=0, atol=1e-12)
    assert mlp.output is mlp.head[-1][-1] and mlp.output.out_features == 2
