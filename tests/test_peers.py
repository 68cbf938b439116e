"""The peer twins (``benchmarks/peers.py``): each library model behind featint's call scores
candidates as it ranks, its logits are the library's, ``--features featint`` hands it
featint's field vectors exactly, and a quick run on the synthetic data writes every file.

The libraries are the optional ``peers`` extra (``make peers``); without them these tests
are skipped, except the one that checks the error message naming it."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import load_script

from featint.evaluate import METRICS
from featint.files import load_ranks
from featint.layers import field_sums
from featint.tuning import TRIALS

ROOT = Path(__file__).resolve().parents[1]
peers = load_script(ROOT / "benchmarks" / "peers.py")

INSTALLED = all(importlib.util.find_spec(m) is not None for m in ("deepctr_torch", "torchfm"))
needs_libraries = pytest.mark.skipif(
    not INSTALLED, reason="the peer libraries (deepctr-torch, torchfm) are the optional `peers` "
                          "extra: `make peers` installs them")
EVERY_TWIN = [(t, f) for t in peers.TWINS for f in peers.FEATURE_SETS]


def twin(task, name: str, features: str, seed: int = 0, **change):
    """The twin with its defaults and every parameter drawn from N(0, 0.3^2): the libraries
    start their tables near 1e-4, where any comparison would pass."""
    setting = {**peers.space(name, 1)["defaults"], **change}
    model = peers.build_twin(task, name, features, setting, seed, embed_dim=8)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def batch(task, n: int = 6):
    ex = task.examples("valid")[:n]
    candidates = np.column_stack([task.target[ex], task.sample_negatives(
        ex, 4, np.random.default_rng(0))])
    return task.context(ex), torch.from_numpy(candidates)


@needs_libraries
@pytest.mark.parametrize("name, features", EVERY_TWIN)
def test_a_twin_scores_candidates_as_it_ranks_them(synthetic_task, name, features):
    model = twin(synthetic_task, name, features).eval()
    context, candidates = batch(synthetic_task)
    with torch.no_grad():
        scored = model(context, candidates)
        ranked = model(context, torch.arange(synthetic_task.num_items))
    assert scored.shape == candidates.shape
    assert ranked.shape == (len(candidates), synthetic_task.num_items)
    assert torch.isfinite(ranked).all() and ranked.std() > 0.05
    torch.testing.assert_close(scored, ranked.gather(1, candidates), rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # eval mode is deterministic (torchfm's AFM dropout included)
        torch.testing.assert_close(model(context, candidates), scored)
    # training reaches the parameters through featint's call
    model.train()
    model(context, candidates).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@needs_libraries
@pytest.mark.parametrize("name", ["torchfm_fm", "torchfm_nfm", "deepctr_deepfm"])
def test_the_logits_are_the_librarys_probabilities_before_its_sigmoid(synthetic_task, name):
    model = twin(synthetic_task, name, "library").eval()
    context, candidates = batch(synthetic_task)
    with torch.no_grad():
        logits = model(context, candidates)
        if isinstance(model, peers.DeepCTRTwin):
            model.library.out.task = "binary"
            probabilities = model(context, candidates)
        else:
            probabilities = model.library(model._rows(context, candidates)).view(
                candidates.shape)
    torch.testing.assert_close(torch.sigmoid(logits), probabilities)


@needs_libraries
def test_torchfms_afm_drops_out_at_evaluation_and_the_twin_does_not(synthetic_task):
    model = twin(synthetic_task, "torchfm_afm", "library").eval()
    context, candidates = batch(synthetic_task)
    x = model._rows(context, candidates)
    with torch.no_grad():
        assert not torch.equal(model.library(x), model.library(x))  # the library's own call
        torch.testing.assert_close(model(context, candidates), model(context, candidates))


def global_table(model, task) -> torch.Tensor:
    """The embedding rows of a ``--features featint`` DeepCTR twin laid out by featint's
    global feature index (the library keeps one table per field)."""
    schema = task.schema
    dim = model.library.embedding_dict["user"].weight.shape[1]
    table = torch.zeros(schema.num_features, dim)
    for field in schema.fields:
        layer = model.library.embedding_dict[field.name]
        while not isinstance(layer, torch.nn.Embedding):  # inside the twin's wrappers
            layer = layer.embedding
        weight = layer.weight
        shift = 0 if field.kind == "categorical" else 1  # bags keep row 0 for padding
        table[field.offset:field.offset + field.size] = weight[shift:shift + field.size]
    return table


@needs_libraries
def test_deepctr_with_featint_features_gets_featints_field_vectors(synthetic_task):
    task = synthetic_task
    model = twin(task, "deepctr_nfm", "featint").eval()
    context, candidates = batch(task, 3)
    lib = model.library
    captured = {}
    real = lib.input_from_feature_columns
    lib.input_from_feature_columns = lambda *a, **k: captured.setdefault("out", real(*a, **k))
    with torch.no_grad():
        model(context, candidates)
    vectors, dense = captured["out"]
    assert dense == []  # nothing bypasses the embeddings
    got = torch.cat(vectors, 1)  # (rows, fields in the library's order, k)
    table = global_table(model, task)
    e_c = field_sums(table, context, len(task.schema.context_fields))
    movies = task.item_features()
    e_m = field_sums(table, movies, len(task.schema.item_fields))[candidates.flatten()]
    # the library lists its one-index fields first, then its sequences, each in input order
    order = sorted(model.order, key=lambda side_slot: side_slot[1].kind != "categorical")
    expected = []
    for side, slot in order:
        e = e_c.repeat_interleave(candidates.shape[1], 0) if side == "context" else e_m
        expected.append(e[:, slot.number])
    torch.testing.assert_close(got, torch.stack(expected, 1))


@needs_libraries
@pytest.mark.parametrize("model", ["DeepFM", "WDL", "NFM", "AFM"])
@pytest.mark.parametrize("features", peers.FEATURE_SETS)
def test_pooling_the_history_once_per_context_changes_no_number(synthetic_task, model,
                                                                  features):
    """``pool_once`` hands DeepCTR-Torch each context's pooled history instead of the history
    itself in every row: the logits are those of the plain input, in training and ranking."""
    task = synthetic_task
    once = peers.DeepCTRTwin(task, model, features, seed=0, embed_dim=8)
    plain = peers.DeepCTRTwin(task, model, features, seed=0, embed_dim=8, pool_once=False)
    assert once.notes["history"].endswith("pooled once per context)")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p, q in zip(once.parameters(), plain.parameters(), strict=True):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            q.copy_(p)
    context, candidates = batch(task, 10)
    for mode in ("train", "eval"):
        once.train(mode == "train"), plain.train(mode == "train")
        items = candidates if mode == "train" else torch.arange(task.num_items)
        torch.manual_seed(0)
        a = once(context, items)
        torch.manual_seed(0)
        b = plain(context, items)
        assert a.std() > 0.1
        torch.testing.assert_close(a, b)


@needs_libraries
def test_torchfm_with_featint_features_gets_featints_field_vectors(synthetic_task):
    task = synthetic_task
    model = twin(task, "torchfm_deepfm", "featint").eval()
    context, candidates = batch(task, 3)
    rows = model._rows(context, candidates)
    weight = model.library.embedding.table.weight
    table = torch.cat([torch.zeros(1, weight.shape[1]), weight])  # featint index i: row i - 1
    e_c = field_sums(table, context, len(task.schema.context_fields))
    e_m = field_sums(table, task.item_features(), len(task.schema.item_fields))
    expected = torch.cat([e_c.repeat_interleave(candidates.shape[1], 0),
                          e_m[candidates.flatten()]], 1)
    torch.testing.assert_close(model.library.embedding(rows), expected)
    # the FFM layer: u_{f,g} * u_{g,f} for every pair, from the library's tables
    ffm = twin(task, "torchfm_ffm", "featint").eval()
    pairs = ffm.library.ffm(ffm._rows(context, candidates))
    m = len(task.schema.fields)
    assert pairs.shape == (candidates.numel(), m * (m - 1) // 2, 4)


@needs_libraries
def test_the_defaults_on_record_are_the_librarys():
    """The settings peers.py and ablation.py write down as DeepCTR-Torch's are its own."""
    ablation = load_script(ROOT / "benchmarks" / "ablation.py")
    peers.import_library("deepctr")
    from deepctr_torch.models import NFM, DeepFM

    def default(f, name):
        return inspect.signature(f).parameters[name].default

    assert default(DeepFM, "dnn_hidden_units") == ablation.DEEPCTR_HIDDEN["deepfm"]
    assert default(NFM, "dnn_hidden_units") == ablation.DEEPCTR_HIDDEN["nfm"]
    for model in (DeepFM, NFM):
        assert default(model, "init_std") == ablation.DEEPCTR_INIT_STD
        assert default(model, "l2_reg_embedding") == ablation.DEEPCTR_L2
        assert default(model, "dnn_dropout") == 0
    # compile("adam") builds torch's Adam with its default learning rate
    assert default(torch.optim.Adam, "lr") == ablation.DEEPCTR_LR
    assert peers.DEFAULTS["deepctr"]["lr"] == ablation.DEEPCTR_LR


def test_a_missing_library_names_the_make_target(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_torchfm(name, *args, **kwargs):
        if name.startswith("torchfm"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchfm)
    with pytest.raises(peers.PeersError, match="make peers"):
        peers.import_library("torchfm")


def test_every_twin_has_featints_number_of_trials_defaults_first():
    for name, (library, _, counterpart) in peers.TWINS.items():
        settings = peers.space(name)
        assert len(settings) == TRIALS and next(iter(settings)) == "defaults"
        assert settings["defaults"]["lr"] == peers.DEFAULTS[library]["lr"]
        assert counterpart in {"fm", "ffm", "afm", "wide_deep", "deepfm", "nfm"}
    with pytest.raises(peers.PeersError, match="TRIAL_CHANGES"):
        peers.space("torchfm_fm", len(peers.TRIAL_CHANGES) + 1)


@needs_libraries
def test_a_quick_run_writes_every_twins_records_and_a_summary(tmp_path, monkeypatch, capsys):
    """The smoke test of ``make peers``: a quick run on the synthetic data, then a rerun that
    finds everything on record and trains nothing."""
    monkeypatch.setenv("FEATINT_MODEL_CACHE", str(tmp_path / "cache"))
    twins = ["deepctr_nfm", "torchfm_ffm", "torchfm_afm"]
    argv = ["--quick", "--synthetic", "--quiet", "--out", str(tmp_path / "peers"),
            "--twins", ",".join(twins)]
    assert peers.main(argv) == 0
    out = tmp_path / "peers"
    for features in peers.FEATURE_SETS:
        for name in twins:
            record = json.loads((out / features / f"{name}.json").read_text())
            assert record["format"] == peers.FORMAT and record["quick"] is True
            assert record["features"] == features and record["chosen"] == "defaults"
            assert [t["label"] for t in record["trials"]] == ["defaults"]
            assert [r["seed"] for r in record["runs"]] == [0]
            run = record["runs"][0]
            assert run["valid"]["mrr"] == record["trials"][0]["valid_mrr"]  # the same model
            assert set(run["test"]) == set(METRICS) and np.isfinite(run["test"]["mrr"])
            assert 1 <= run["epochs"] <= 2 and run["params"] > 0
            assert set(record["feature_map"]) == {"user", "history", "movie", "genre", "year",
                                                  "age", "gender", "occupation", "zip", "hour",
                                                  "weekday", "gap", "last_movie", "last_rating",
                                                  "user_mean_rating", "genre_share",
                                                  "genre_mean_rating"}
            ranks, examples = load_ranks(out / features / run["ranks_file"])
            assert len(ranks) == len(examples) == run["num_examples"] == 200
            assert np.all(ranks >= 1)
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["twins"]) == 2 * len(twins)
    assert "| torchfm_afm | featint |" in (out / "summary.md").read_text()
    assert "| deepctr_nfm | library |" in capsys.readouterr().out

    monkeypatch.setattr(peers, "train_twin", lambda *a, **k: pytest.fail("retrained"))
    assert peers.main(argv) == 0
