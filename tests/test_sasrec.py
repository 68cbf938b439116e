"""SASRec: the ordered prefix it reads (the feature models' history, never the future), its
causal mask, training on the fit period only with either loss, and its scores against a
float64 reference written out with loops over positions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import perturbed
from test_task import later_positions_changed

from featint.config import BUDGET
from featint.models import build_model
from featint.models.sasrec import SelfAttention, causal_attention, causal_mask
from featint.synthetic import synthetic_movielens
from featint.task import FIT, build_task
from featint.train import cross_entropy_all, fit
from featint.training import fit_args, model_hparams


def some_examples(task, count: int = 200, seed: int = 0) -> np.ndarray:
    """Examples of every split, the shortest and the longest prefixes among them."""
    rng = np.random.default_rng(seed)
    ex = rng.choice(len(task.t), min(count, len(task.t)), replace=False)
    return np.concatenate([ex, np.flatnonzero(task.t == 1)[:3], [int(np.argmax(task.t))]])


def prefix(seq_row: np.ndarray) -> np.ndarray:
    """The movies of one row of ``seq`` (movie index + 1, 0 = padding), in order."""
    return seq_row[seq_row > 0] - 1


# -- the prefix: the feature models' history, in order, capped -------------------------------


@pytest.mark.parametrize("source", ["synthetic", "real"])
@pytest.mark.parametrize("max_len", [1, 10, 200])
def test_prefix_is_the_history_the_feature_models_see(source, max_len, request):
    """For every example, the prefix holds the last min(t, max_len) movies before t, in the
    order watched, left-padded: the end of ``task.history(ex)``, the movies that every other
    model's history field is built from (however long a window that field keeps)."""
    task = request.getfixturevalue("task" if source == "real" else "synthetic_task")
    ex = some_examples(task)
    seq = task.sequence(ex, max_len)
    items, mask = task.history(ex)
    assert seq.shape == (len(ex), min(max_len, int(task.t[ex].max())))
    for row, e in enumerate(ex):
        mine, theirs = prefix(seq[row]), items[row][mask[row]]
        t = int(task.t[e])
        assert len(mine) == min(t, max_len)
        assert (seq[row, :seq.shape[1] - len(mine)] == 0).all()  # padding on the left only
        k = min(len(mine), len(theirs))
        assert k >= 1 and np.array_equal(mine[-k:], theirs[-k:])
        start = task.seq_start[task.user[e]]  # and they end just before t, in time order
        assert np.array_equal(mine, task.seq_items[start + t - len(mine):start + t])
    # the same prefix reaches the model through its context; other models' contexts are
    # exactly what they were
    model = build_model("sasrec", task, max_len=max_len)
    assert np.array_equal(task.context_for(model, ex).seq.numpy(), seq)
    fm, plain = build_model("fm", task), task.context(ex)
    ctx = task.context_for(fm, ex)
    assert ctx.seq is None and torch.equal(ctx.idx, plain.idx) and torch.equal(ctx.val, plain.val)


def test_prefix_argument_errors(synthetic_task):
    with pytest.raises(ValueError, match="max_len must be at least 1"):
        synthetic_task.sequence(np.array([0]), 0)
    model = build_model("sasrec", synthetic_task)
    with pytest.raises(ValueError, match="context_for"):
        model(synthetic_task.context(np.array([0])), torch.arange(3))


def test_changing_the_future_leaves_the_prefix_unchanged():
    ml = synthetic_movielens(seed=1)
    before = build_task(ml)
    changed, cuts = later_positions_changed(ml, change_items=True)
    after = build_task(changed)
    cut = np.array([cuts[int(uid)] for uid in before.user_ids])[before.user]
    past, future = np.flatnonzero(before.t <= cut), np.flatnonzero(before.t > cut)
    assert np.array_equal(before.sequence(past, 200), after.sequence(past, 200))
    # the test can fail: the prefixes after the cut see the changes
    assert (before.sequence(future, 200) != after.sequence(future, 200)).any(1).all()


# -- the causal mask -----------------------------------------------------------------------


def test_causal_mask():
    real = torch.tensor([[False, False, True, True], [True, True, True, True]])
    allowed = causal_mask(real)
    assert allowed.shape == (2, 1, 4, 4)
    expected_0 = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]])
    assert torch.equal(allowed[0, 0], expected_0.bool())
    assert torch.equal(allowed[1, 0], torch.ones(4, 4).tril().bool())


@pytest.mark.parametrize("num_heads", [1, 2])
def test_a_later_movie_never_changes_an_earlier_score(synthetic_task, num_heads):
    """Position i's output F_i (the score of the movie after i is <F_i, M_m>) does not change
    when any movie after i changes; it does when a movie at i changes (the test can fail)."""
    task = synthetic_task
    model = perturbed(task, "sasrec", num_heads=num_heads).float()
    gen = torch.Generator().manual_seed(0)
    n = 12
    seq = torch.randint(1, task.num_items + 1, (6, n), generator=gen)
    seq[0, :5] = 0  # a left-padded row
    with torch.no_grad():
        out = model.encode(seq)
        for i in range(4, n - 1):
            later = seq.clone()
            later[:, i + 1:] = torch.randint(1, task.num_items + 1, (6, n - i - 1),
                                             generator=gen)
            changed = model.encode(later)
            torch.testing.assert_close(changed[:, :i + 1], out[:, :i + 1], rtol=0, atol=1e-6)
            assert ((changed[:, i + 1:] - out[:, i + 1:]).abs() > 1e-4).any()
            earlier = seq.clone()
            earlier[1:, i] = earlier[1:, i] % task.num_items + 1
            assert ((model.encode(earlier)[1:, i] - out[1:, i]).abs() > 1e-4).any()


def test_written_out_attention_is_the_fused_kernel():
    gen = torch.Generator().manual_seed(0)
    layer = SelfAttention(8, 2).double()
    x = torch.randn(3, 6, 8, generator=gen, dtype=torch.float64)
    real = torch.ones(3, 6, dtype=torch.bool)
    real[0, :4], real[1, :1] = False, False

    def heads(w):
        return w(x).view(3, 6, 2, 4).transpose(1, 2)

    expected = causal_attention(heads(layer.W_Q), heads(layer.W_K), heads(layer.W_V), real)
    torch.testing.assert_close(layer(x, real), expected.transpose(1, 2).reshape(3, 6, 8))


# -- a float64 reference, written out --------------------------------------------------------


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean, var = x.mean(), ((x - x.mean()) ** 2).mean()
    return (x - mean) / math.sqrt(var + eps) * weight + bias


def reference_output(model, seq_row: list[int]) -> np.ndarray:
    """The last position's output F_t of one prefix (movie index + 1, 0 = padding), with
    Python loops over positions, heads and keys: the paper's equations one by one."""
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    eps = model.norm.eps
    n_max = model.sequence_length
    heads = model.blocks[0].attention.num_heads if len(model.blocks) else 1
    seq = seq_row[-n_max:]
    n = len(seq)
    M, P = p["item_embedding.weight"], p["position_embedding.weight"]
    x = [M[s] + P[n_max - n + i] for i, s in enumerate(seq)]          # E_i = M_{s_i} + P_i
    for b in range(len(model.blocks)):
        pre = f"blocks.{b}."
        h = [layer_norm(xi, p[pre + "attention_norm.weight"], p[pre + "attention_norm.bias"],
                        eps) for xi in x]
        q = [p[pre + "attention.W_Q.weight"] @ hi for hi in h]
        k = [p[pre + "attention.W_K.weight"] @ hi for hi in h]
        v = [p[pre + "attention.W_V.weight"] @ hi for hi in h]
        d_head = len(q[0]) // heads
        s = []
        for i in range(n):
            out = np.zeros(len(q[0]))
            for a in range(heads):
                part = slice(a * d_head, (a + 1) * d_head)
                keys = [j for j in range(i + 1) if seq[j] > 0 or j == i]   # past, no padding
                logits = [q[i][part] @ k[j][part] / math.sqrt(d_head) for j in keys]
                top = max(logits)
                w = [math.exp(z - top) for z in logits]
                for j, wj in zip(keys, w, strict=True):
                    out[part] += wj / sum(w) * v[j][part]
            s.append(x[i] + out)                                      # S = x + SA(LN(x))
        x = []
        for si in s:
            hi = layer_norm(si, p[pre + "ffn_norm.weight"], p[pre + "ffn_norm.bias"], eps)
            hidden = np.maximum(p[pre + "ffn.0.weight"] @ hi + p[pre + "ffn.0.bias"], 0.0)
            x.append(si + p[pre + "ffn.2.weight"] @ hidden + p[pre + "ffn.2.bias"])
    return layer_norm(x[-1], p["norm.weight"], p["norm.bias"], eps)


@pytest.mark.parametrize("hparams", [{}, {"num_heads": 2, "max_len": 7, "num_blocks": 1},
                                     {"num_blocks": 3, "max_len": 30}])
def test_scores_match_a_float64_reference(synthetic_task, hparams):
    """Both calls, the candidates of training and every movie of ranking, and the textbook
    path (the equations written out, the attention by ``causal_attention``) against the
    loops: r_{m,t} = <F_t, M_m>. The batch mixes short (left-padded) and long (capped)
    prefixes."""
    task = synthetic_task
    model = perturbed(task, "sasrec", **hparams)
    ex = some_examples(task, 10, seed=3)
    context = task.context_for(model, ex)
    candidates = torch.from_numpy(np.column_stack(
        [task.target[ex], task.sample_negatives(ex, 4, np.random.default_rng(0))]))
    M = model.item_embedding.weight.detach().double().numpy()[1:]
    expected = np.stack([M @ reference_output(model, row.tolist()) for row in context.seq])
    with torch.no_grad():
        every, some = model(context, torch.arange(task.num_items)), model(context, candidates)
        textbook = model.textbook(context, candidates)
    assert every.dtype == torch.float64
    np.testing.assert_allclose(every.numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(some.numpy(), np.take_along_axis(expected, candidates.numpy(), 1),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(textbook.numpy(), some.numpy(), rtol=1e-10, atol=1e-10)


# -- training: the fit period only, either loss ----------------------------------------------


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_training_reads_the_fit_period_only(synthetic_task, monkeypatch, loss):
    """Every prefix and target that a training step reads lies in the user's fit period;
    validation and test targets (and anything after them) never do. Every fit example is
    trained on, with its whole prefix up to the cap."""
    task = synthetic_task
    model = build_model("sasrec", task, max_len=15)
    seen: list[tuple[bool, np.ndarray, np.ndarray]] = []
    original = task.context_for

    def recording(m, ex):
        ctx = original(m, ex)
        seen.append((m.training, np.asarray(ex).copy(), ctx.seq.numpy().copy()))
        return ctx

    monkeypatch.setattr(task, "context_for", recording)
    fit(model, task, epochs=2, batch_size=128, loss=loss, num_negatives=1, seed=0,
        device="cpu", progress=False, verbose=False)
    fit_end = task.period_end("fit")
    trained = [(ex, seq) for training, ex, seq in seen if training]
    assert trained and any(not training for training, _, _ in seen)  # validation was ranked
    for ex, seq in trained:
        assert (task.split[ex] == FIT).all()
        assert (task.t[ex] < fit_end[task.user[ex]]).all()   # the target is in the fit period
        for row, e in enumerate(ex):
            movies = prefix(seq[row])
            positions = task.pos_of[task.user[e], movies]
            assert len(movies) == min(task.t[e], 15)
            assert (positions < task.t[e]).all()              # before t, never t or later
            assert (positions < fit_end[task.user[e]]).all()  # never a validation/test rating
    epoch = np.concatenate([ex for ex, _ in trained[:len(trained) // 2]])
    assert np.array_equal(np.sort(epoch), task.examples("fit"))


def test_cross_entropy_over_all_unseen_movies(synthetic_task):
    """loss="ce": -log softmax of the target's logit among every movie not watched before t
    (as the protocol ranks), computed here by hand."""
    task = synthetic_task
    model = perturbed(task, "sasrec")
    ex = task.examples("fit")[:20]
    context = task.context_for(model, ex)
    got = cross_entropy_all(model, task, ex, context, torch.arange(task.num_items))
    with torch.no_grad():
        logits = model(context, torch.arange(task.num_items)).numpy()
    seen = task.seen_before(ex).numpy()
    expected = np.mean([
        -logits[row, task.target[e]] + math.log(np.exp(logits[row][~seen[row]]).sum())
        for row, e in enumerate(ex)])
    assert got.item() == pytest.approx(expected, rel=1e-10)
    # and it is not the loss with the seen movies left in (the test can fail)
    unmasked = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(task.target[ex]))
    assert abs(unmasked.item() - expected) > 1e-3


def test_fit_loss_option(synthetic_task):
    with pytest.raises(ValueError, match="unknown loss"):
        fit(build_model("fm", synthetic_task), synthetic_task, loss="hinge")
    # any model can be trained with cross-entropy; it learns the planted interaction
    model = build_model("fm", synthetic_task)
    history = fit(model, synthetic_task, epochs=3, batch_size=256, lr=1e-2, loss="ce",
                  device="cpu", progress=False, verbose=False)
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert history.best["valid_mean_rank"] < 50  # a linear model stays near 59


def test_a_setting_passes_its_loss_and_negatives_to_fit():
    setting = {"lr": 1e-3, "loss": "ce", "num_negatives": 1, "max_len": 50}
    args = fit_args("sasrec", setting=setting)
    assert args["loss"] == "ce" and args["num_negatives"] == 1
    assert model_hparams("sasrec", setting=setting) == {"embed_dim": 16, "max_len": 50}
    fm = fit_args("fm", setting={"lr": 5e-3})
    assert "loss" not in fm and fm["num_negatives"] == BUDGET.num_negatives == 4
