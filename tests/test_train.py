"""``featint.train.fit`` on the synthetic task: seeding, early stopping, history, arguments,
and the point of the whole project in miniature: FM learns the planted interaction, the
linear model cannot."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
import torch

import featint.train as train
from featint.evaluate import METRICS, evaluate, metrics, rank_examples
from featint.models import build_model
from featint.synthetic import synthetic_movielens
from featint.task import SPLIT_CODES, build_task
from featint.train import History, fit

QUICK_FIT = dict(epochs=2, batch_size=256, lr=1e-2, device="cpu", progress=False, verbose=False)


@pytest.fixture(autouse=True)
def full_mode(monkeypatch):
    monkeypatch.delenv("FEATINT_QUICK", raising=False)


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def without_seconds(history: History) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history.epochs]


def test_fit_is_deterministic_per_seed(synthetic_task):
    runs = []
    for seed in (0, 0, 1):
        model = build_model("fm", synthetic_task, seed=0)
        history = fit(model, synthetic_task, seed=seed, **QUICK_FIT)
        runs.append((without_seconds(history), history.best_epoch, state(model)))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert same_state(runs[0][2], runs[1][2])
    # another seed shuffles and samples differently
    assert runs[0][0] != runs[2][0]
    assert not same_state(runs[0][2], runs[2][2])


def test_history_fields(synthetic_task):
    model = build_model("fm", synthetic_task)
    history = fit(model, synthetic_task, epochs=3, patience=5, monitor="mrr", **{
        k: v for k, v in QUICK_FIT.items() if k != "epochs"})
    assert isinstance(history, History) and history.monitor == "mrr"
    assert [row["epoch"] for row in history.epochs] == [1, 2, 3]
    for row in history.epochs:
        assert set(row) == {"epoch", "loss", "seconds", *(f"valid_{m}" for m in METRICS)}
        assert np.isfinite(row["loss"]) and 0 < row["loss"]
        assert row["seconds"] >= 0
        assert 1 <= row["valid_mean_rank"] <= synthetic_task.num_items
    mrr = [row["valid_mrr"] for row in history.epochs]
    assert history.best_epoch == 1 + int(np.argmax(mrr))  # the first best
    assert history.best == history.epochs[history.best_epoch - 1]
    assert history.seconds >= sum(row["seconds"] for row in history.epochs)
    assert History().best == {}
    assert not model.training  # fit leaves the model ready to evaluate


def test_restored_weights_give_the_best_validation(synthetic_task):
    task = synthetic_task
    model = build_model("fm", task)
    history = fit(model, task, epochs=4, batch_size=256, lr=1e-2, device="cpu",
                  progress=False, verbose=False)
    valid = metrics(rank_examples(model, task, task.examples("valid")))
    assert {f"valid_{k}": v for k, v in valid.items()} == {
        k: v for k, v in history.best.items() if k.startswith("valid_")}


def scripted(monkeypatch, monitor: str, values: list[float]) -> list[dict]:
    """Make ``fit`` see ``values`` as its validation metric, epoch after epoch, and keep a
    copy of the weights it validated each time."""
    snapshots: list[dict] = []
    script = iter(values)
    real_rank_examples = train.rank_examples

    def rank_and_snapshot(model, *args, **kwargs):
        snapshots.append(state(model))
        return real_rank_examples(model, *args, **kwargs)

    def scripted_metrics(ranks):
        out = metrics(ranks)
        out[monitor] = next(script)
        return out

    monkeypatch.setattr(train, "rank_examples", rank_and_snapshot)
    monkeypatch.setattr(train, "metrics", scripted_metrics)
    return snapshots


@pytest.mark.parametrize("monitor, values, best, stopped", [
    ("mrr", [0.1, 0.5, 0.2, 0.3, 0.9], 2, 4),           # higher is better, patience 2
    ("mean_rank", [50, 40, 45, 30, 35, 36, 1], 4, 6),   # lower is better
    ("hr@10", [0.2, 0.2, 0.2, 0.9], 1, 3),              # a tie is no improvement
])
def test_early_stopping_restores_the_best_epoch(synthetic_task, monkeypatch, monitor, values,
                                                best, stopped):
    snapshots = scripted(monkeypatch, monitor, values)
    model = build_model("fm", synthetic_task)
    history = fit(model, synthetic_task, epochs=10, patience=2, monitor=monitor,
                  **{k: v for k, v in QUICK_FIT.items() if k != "epochs"})
    assert len(history.epochs) == len(snapshots) == stopped
    assert history.best_epoch == best
    assert history.best[f"valid_{monitor}"] == values[best - 1]
    assert same_state(state(model), snapshots[best - 1])
    assert not same_state(state(model), snapshots[-1])  # the weights did move after the best


def test_epochs_caps_training(synthetic_task, monkeypatch):
    scripted(monkeypatch, "mrr", [0.1, 0.2, 0.3, 0.4, 0.5])
    model = build_model("linear", synthetic_task)
    history = fit(model, synthetic_task, epochs=3, patience=1,
                  **{k: v for k, v in QUICK_FIT.items() if k != "epochs"})
    assert len(history.epochs) == 3 and history.best_epoch == 3


def test_quick_mode_caps_epochs(synthetic_task, monkeypatch):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    model = build_model("linear", synthetic_task)
    history = fit(model, synthetic_task, epochs=5, patience=5,
                  **{k: v for k, v in QUICK_FIT.items() if k != "epochs"})
    assert len(history.epochs) == 2


def test_fit_never_looks_at_the_test_set(monkeypatch):
    task = build_task(synthetic_movielens(seed=0))  # its own: the context is patched
    used: list[np.ndarray] = []
    real_context = type(task).context
    monkeypatch.setattr(task, "context", lambda ex: used.append(ex) or real_context(task, ex))
    fit(build_model("fm", task), task, **QUICK_FIT)
    used_all = np.concatenate(used)
    assert np.all(task.split[used_all] != SPLIT_CODES["test"])
    assert set(task.split[used_all]) == {SPLIT_CODES["fit"], SPLIT_CODES["valid"]}


def test_valid_limit_ranks_the_same_subsample_every_epoch(synthetic_task, monkeypatch):
    ranked: list[np.ndarray] = []
    real = train.rank_examples
    monkeypatch.setattr(train, "rank_examples",
                        lambda model, task, ex, **kw: ranked.append(ex) or real(model, task, ex,
                                                                               **kw))
    valid = synthetic_task.examples("valid")
    fit(build_model("linear", synthetic_task), synthetic_task, valid_limit=50, **QUICK_FIT)
    assert len(ranked) == 2
    assert len(ranked[0]) == 50 < len(valid) and np.array_equal(ranked[0], ranked[1])
    assert set(ranked[0]) <= set(valid)
    assert ranked[0].min() < np.median(valid) < ranked[0].max()  # spread, not the first 50
    ranked.clear()
    fit(build_model("linear", synthetic_task), synthetic_task, **QUICK_FIT)
    assert np.array_equal(ranked[0], valid)  # default: all of them


@pytest.mark.parametrize("bad", [
    dict(epochs=0), dict(batch_size=0), dict(patience=0), dict(num_negatives=0),
    dict(monitor="auc"), dict(epochs=-1), dict(valid_limit=0),
])
def test_bad_arguments(synthetic_task, bad):
    model = build_model("linear", synthetic_task)
    before = state(model)
    with pytest.raises(ValueError, match=next(iter(bad))):
        fit(model, synthetic_task, progress=False, verbose=False, **bad)
    assert same_state(state(model), before)


def test_length_bucketed_batches_cover_every_example_once():
    rng = np.random.default_rng(0)
    order = rng.permutation(1000)
    length = rng.integers(1, 500, 1000)
    batches = train.length_bucketed_batches(order, length, 64, rng, chunk_batches=4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert all(len(b) <= 64 for b in batches)
    assert all(np.all(np.diff(length[b]) >= 0) for b in batches)  # sorted inside a batch


@pytest.mark.parametrize("seed", [0, 1])
def test_fm_learns_the_planted_interaction_linear_cannot(synthetic_task, seed):
    task = synthetic_task
    result = {}
    for name in ("linear", "fm"):
        model = build_model(name, task, seed=seed)
        fit(model, task, epochs=4, batch_size=256, lr=1e-2, seed=seed, device="cpu",
            progress=False, verbose=False)
        result[name] = evaluate(model, task, progress=False, bootstrap_samples=10).metrics
    # about 0.17 against 0.09 (and mean rank about 34 against 59)
    assert result["fm"]["hr@10"] > result["linear"]["hr@10"] + 0.04
    assert result["fm"]["mean_rank"] < 0.8 * result["linear"]["mean_rank"]


def test_fused_adam_makes_the_update_of_plain_adam():
    from featint.train import adam

    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    twin = copy.deepcopy(model)
    fused, plain = adam(model, 1e-2, 1e-3), torch.optim.Adam(twin.parameters(), 1e-2,
                                                           weight_decay=1e-3)
    x = torch.randn(64, 5)
    for _ in range(5):
        for net, opt in ((model, fused), (twin, plain)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_a_models_penalty_is_added_to_the_loss(synthetic_task):
    """fit adds ``model.penalty()`` to every batch's loss: a constant penalty leaves the
    gradients, hence training, unchanged and raises every epoch's mean loss by itself."""
    losses, calls = [], []
    for penalty in (None, 5.0):
        model = build_model("fm", synthetic_task)
        if penalty is not None:
            model.penalty = lambda p=penalty: calls.append(1) or torch.tensor(p)
        history = train.fit(model, synthetic_task, epochs=2, max_examples=2048,
                            progress=False, verbose=False)
        losses.append([row["loss"] for row in history.epochs])
    assert losses[1] == pytest.approx([x + 5.0 for x in losses[0]], rel=1e-6)
    assert len(calls) == 4                                       # 2 epochs of 2 batches


def test_wide_deep_penalty_is_l1_and_l2_of_the_wide_weights(synthetic_task):
    model = build_model("wide_deep", synthetic_task, wide_l1=0.5, wide_l2=2.0)
    with torch.no_grad():
        model.linear.weight.weight.normal_()
        model.cross_weight.weight[:100].normal_()
    w = torch.cat([model.linear.weight.weight.flatten(), model.cross_weight.weight.flatten()])
    assert torch.isclose(model.penalty(), 0.5 * w.abs().sum() + 2.0 * w.square().sum())
    assert build_model("wide_deep", synthetic_task).penalty() == 0.0


# -- the training options that move towards a library's recipe ------------------------------
def reference_epoch(model, task, *, seed, batch_size=256, lr=1e-2, num_negatives=4):
    """One epoch of ``fit`` as it was before ``reduction`` and ``embedding_l2`` existed: the
    default path must still make exactly these weights."""
    optimizer = train.adam(model, lr)
    labels = torch.zeros(1 + num_negatives)
    labels[0] = 1.0
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    fit_examples = task.examples("fit")
    batches = train.length_bucketed_batches(rng.permutation(fit_examples), task.t, batch_size,
                                            rng)
    model.train()
    for ex in batches:
        negatives = task.sample_negatives(ex, num_negatives, rng)
        candidates = torch.from_numpy(np.column_stack([task.target[ex], negatives]))
        logits = model(task.context(ex), candidates)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, labels.expand_as(logits))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("name", ["fm", "deepfm", "nfm"])
def test_the_default_path_makes_the_weights_it_made_before_the_options(synthetic_task, name):
    task = synthetic_task
    model, twin = build_model(name, task, seed=1), build_model(name, task, seed=1)
    fit(model, task, epochs=1, batch_size=256, lr=1e-2, seed=3, device="cpu", progress=False,
        verbose=False)
    reference_epoch(twin, task, seed=3)
    assert same_state(state(model), state(twin))
    # and naming the defaults changes nothing either
    named = build_model(name, task, seed=1, init_std=None)
    fit(named, task, epochs=1, batch_size=256, lr=1e-2, seed=3, device="cpu", progress=False,
        verbose=False, reduction="mean", embedding_l2=0.0)
    assert same_state(state(model), state(named))


def test_summed_loss_is_the_mean_times_the_number_of_pairs(synthetic_task, monkeypatch):
    """``reduction="sum"``: a batch's loss is its mean times its (example, candidate) pairs;
    the logged loss is per pair either way (with a learning rate of 0 both runs see the same
    weights, so they log the same loss)."""
    seen = {}
    real = torch.nn.functional.binary_cross_entropy_with_logits

    def spy(logits, target, reduction="mean"):
        out = real(logits, target, reduction=reduction)
        seen.setdefault(reduction, []).append((out.item(), logits.numel(),
                                               real(logits, target).item()))
        return out

    monkeypatch.setattr(train.F, "binary_cross_entropy_with_logits", spy)
    losses = {}
    for reduction in train.REDUCTIONS:
        model = build_model("fm", synthetic_task)
        history = fit(model, synthetic_task, epochs=1, lr=0.0, max_examples=1024,
                      batch_size=256, reduction=reduction, progress=False, verbose=False)
        losses[reduction] = history.epochs[0]["loss"]
    for total, pairs, mean in seen["sum"]:
        assert total == pytest.approx(mean * pairs, rel=1e-5)
    assert losses["sum"] == pytest.approx(losses["mean"], rel=1e-5)


def test_embedding_l2_penalises_exactly_the_rows_the_batch_used(synthetic_task):
    task = synthetic_task
    model = build_model("deepfm", task)
    tables = train.embedding_tables(model, task.schema.num_features)
    assert [t.data_ptr() for t in tables] == [model.embedding.embedding.weight.data_ptr()]
    ex = task.examples("fit")[:7]
    candidates = np.column_stack([task.target[ex], task.sample_negatives(
        ex, 4, np.random.default_rng(0))])
    context = task.context(ex)
    rows = train.used_rows(context, task.item_idx[candidates])
    expected = set(context.idx.flatten().tolist()) | set(task.item_idx[candidates].flatten())
    assert rows.tolist() == sorted(expected - {0})
    penalty = train.embedding_penalty(tables, rows)
    torch.testing.assert_close(penalty, tables[0][rows].square().sum())
    penalty.backward()
    touched = tables[0].grad.abs().sum(1) > 0
    assert touched.nonzero().flatten().tolist() == [
        r for r in rows.tolist() if tables[0][r].abs().sum() > 0]
    assert touched.sum() < len(touched) // 2  # most of the table is left alone


def test_embedding_l2_shrinks_the_embeddings_and_names_models_it_cannot_serve(synthetic_task):
    norms = {}
    for l2 in (0.0, 1.0):
        model = build_model("fm", synthetic_task)
        fit(model, synthetic_task, epochs=2, max_examples=2048, lr=1e-2, embedding_l2=l2,
            progress=False, verbose=False)
        norms[l2] = model.embedding.embedding.weight.norm().item()
    assert norms[1.0] < 0.8 * norms[0.0]
    with pytest.raises(ValueError, match="global feature index"):
        fit(build_model("mf", synthetic_task), synthetic_task, embedding_l2=1e-5,
            progress=False, verbose=False)
    with pytest.raises(ValueError, match="FeaturesEmbedding"):
        fit(build_model("linear", synthetic_task), synthetic_task, embedding_l2=1e-5,
            progress=False, verbose=False)


@pytest.mark.parametrize("bad", [dict(reduction="max"), dict(embedding_l2=-1.0)])
def test_bad_options(synthetic_task, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        fit(build_model("fm", synthetic_task), synthetic_task, progress=False, verbose=False,
            **bad)


def test_init_std_redraws_every_embedding_table_and_nothing_else(synthetic_task):
    from featint.layers import FeaturesEmbedding

    plain = build_model("ffm", synthetic_task, seed=2)
    small = build_model("ffm", synthetic_task, seed=2, init_std=1e-4)
    again = build_model("ffm", synthetic_task, seed=2, init_std=1e-4)
    assert same_state(state(small), state(again))  # the same seed, the same draw
    tables = {n for n, m in small.named_modules() if isinstance(m, FeaturesEmbedding)}
    for key, value in state(small).items():
        if key.rsplit(".", 2)[0] in tables:
            assert torch.all(value[0] == 0)  # padding
            assert value[1:].std().item() == pytest.approx(1e-4, rel=0.05)
        else:
            assert torch.equal(value, state(plain)[key])
    other_seed = build_model("ffm", synthetic_task, seed=3, init_std=1e-4)
    assert not torch.equal(other_seed.embedding.embedding.weight, small.embedding.embedding.weight)
    with pytest.raises(ValueError, match="init_std"):
        build_model("fm", synthetic_task, init_std=0.0)


def test_a_settings_training_keys_reach_fit():
    from featint.training import fit_args, model_hparams

    setting = {"lr": 1e-3, "reduction": "sum", "embedding_l2": 1e-5, "init_std": 1e-4}
    args = fit_args("fm", setting=setting)
    assert (args["lr"], args["reduction"], args["embedding_l2"]) == (1e-3, "sum", 1e-5)
    hparams = model_hparams("fm", setting=setting)
    assert "init_std" not in args and hparams == {"embed_dim": 16, "init_std": 1e-4}
    assert set(fit_args("fm", setting={})) <= set(inspect.signature(fit).parameters)
    assert "reduction" not in fit_args("fm", setting={})  # fit's default
