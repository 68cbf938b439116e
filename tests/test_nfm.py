"""NFM: Bi-Interaction on the joined context + movie vector (brute force, float64), the
fast all-movie path equals the plain one, and with no hidden layer, no BatchNorm, no dropout
and ``w_out = 1`` it is exactly FM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from helpers import context64, perturbed
from torch import nn

from featint.models import build_model
from featint.models.nfm import NFM


def brute_force(model: NFM, task, ex: np.ndarray, items: list[int]) -> torch.Tensor:
    """``w_0 + sum_i w_i x_i + h^T MLP(BN(f_BI))`` with ``f_BI = sum_{i<j} x_i v_i * x_j v_j``
    over the non-zero slots of the joined context + movie vector, pair by pair."""
    w, V = model.linear.weight.weight[:, 0], model.embedding.embedding.weight
    context = task.context(ex)
    out = torch.empty(len(ex), len(items), dtype=torch.float64)
    for r, c in itertools.product(range(len(ex)), range(len(items))):
        idx = context.idx[r].tolist() + task.item_idx[items[c]].tolist()
        val = context.val[r].double().tolist() + task.item_val[items[c]].astype(float).tolist()
        x = [(i, v) for i, v in zip(idx, val, strict=True) if v != 0]
        f_bi = torch.zeros(V.shape[1], dtype=torch.float64)
        for (i, xi), (j, xj) in itertools.combinations(x, 2):
            f_bi = f_bi + (xi * V[i]) * (xj * V[j])
        deep = model.w_out(model.mlp(model.bi_norm(f_bi[None])))[0, 0]
        out[r, c] = model.w0 + sum(w[i] * v for i, v in x) + deep
    return out


def short_examples(task, n: int) -> np.ndarray:
    ex = task.examples("fit")
    return ex[np.argsort(task.t[ex], kind="stable")[:n]]


@pytest.mark.parametrize("hparams", [{}, {"hidden": (8, 4)}, {"batch_norm": False}])
def test_matches_brute_force(synthetic_task, hparams):
    task = synthetic_task
    model = perturbed(task, "nfm", **hparams)
    ex, items = short_examples(task, 3), [0, 7, 100]
    expected = brute_force(model, task, ex, items)
    with torch.no_grad():
        some = model(context64(task, ex), torch.tensor([items] * len(ex)))
        every = model(context64(task, ex), torch.arange(task.num_items))
    torch.testing.assert_close(some, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(every[:, items], expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("hparams", [{}, {"hidden": (8, 4)}, {"batch_norm": False}])
def test_fast_ranking_path_equals_the_plain_one(synthetic_task, hparams):
    """The eval-mode all-movie path folds BatchNorm and the first layer into one affine map;
    it must give what the plain path gives on the same (context, movie) pairs."""
    task = synthetic_task
    model = perturbed(task, "nfm", seed=3, **hparams)
    ex = task.examples("valid")[:40]
    every_item = torch.arange(task.num_items)
    with torch.no_grad():
        every = model(context64(task, ex), every_item)
        plain = model(context64(task, ex), every_item.expand(len(ex), -1))  # candidates path
    torch.testing.assert_close(every, plain, rtol=0, atol=1e-10)


def test_without_hidden_layers_it_is_fm(synthetic_task):
    task = synthetic_task
    fm = build_model("fm", task, seed=0).double().eval()
    nfm = build_model("nfm", task, seed=1, hidden=(), batch_norm=False, bi_dropout=0.0,
                      dropout=0.0).double().eval()
    # w_out = 1, as initialised
    assert torch.equal(nfm.w_out.weight, torch.ones_like(nfm.w_out.weight))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in fm.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
        fm.embedding.embedding.weight[0].zero_()
        fm.linear.weight.weight[0].zero_()
    missing = nfm.load_state_dict(fm.state_dict(), strict=False).missing_keys
    assert missing == ["w_out.weight"]  # w0, linear and embedding copied; nothing else exists
    context = context64(task, task.examples("test")[:25])
    candidates = torch.from_numpy(np.random.default_rng(0).integers(0, task.num_items, (25, 6)))
    every = torch.arange(task.num_items)
    with torch.no_grad():
        torch.testing.assert_close(nfm(context, candidates), fm(context, candidates),
                                   rtol=0, atol=1e-10)
        torch.testing.assert_close(nfm(context, every), fm(context, every), rtol=0, atol=1e-10)
        nfm.w_out.weight.mul_(2.0)  # and the check can fail
        assert (nfm(context, every) - fm(context, every)).abs().max() > 1e-3


def test_defaults_follow_the_paper(synthetic_task):
    """One hidden layer as wide as the embedding, BatchNorm on f_BI and on the hidden layer,
    dropout 0.5 on f_BI and 0.2 on the hidden layer (the official code's keep [0.8, 0.5])."""
    model = build_model("nfm", synthetic_task, embed_dim=12)
    linears = [m for m in model.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 12)]
    assert isinstance(model.bi_norm, nn.BatchNorm1d)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.mlp) == 1
    assert model.bi_dropout.p == 0.5
    assert [m.p for m in model.mlp if isinstance(m, nn.Dropout)] == [0.2]
    assert model.w_out.bias is None  # w_0 is the only bias of the output
