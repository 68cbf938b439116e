"""DLRM on TorchRec (``featint.torchrec_dlrm``): the same model as chapter 07's, its tables in
TorchRec's collections, trained by two processes with the tables sharded between them.

TorchRec comes with the ``scale`` extra (``make setup-scale``, which ``make test`` runs):
without it these tests are skipped, except under CI, where they must run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

if not os.environ.get("CI"):
    pytest.importorskip("torchrec", reason="the scale extra is not installed: make setup-scale")

from featint.evaluate import rank_examples  # noqa: E402
from featint.models import build_model  # noqa: E402
from featint.torchrec_dlrm import (  # noqa: E402
    TorchRecDLRM,
    from_featint,
    jagged,
    load_task,
    to_featint,
)


@pytest.fixture(scope="module")
def task():
    return load_task("synthetic")


def twins(task, seed: int = 0):
    """featint's DLRM and the TorchRec one with the same weights, in eval mode."""
    reference = build_model("dlrm", task, seed=seed).eval()
    model = TorchRecDLRM(task.schema, task.item_features()).eval()
    model.load_state_dict(from_featint(reference.state_dict(), task.schema))
    return reference, model


def test_jagged_input_holds_the_real_slots_only(task):
    ex = task.examples("test")[:5]
    context = task.context(ex)
    model = TorchRecDLRM(task.schema, task.item_features())
    kjt = jagged(context, model.context_fields, model.context_numbers)
    assert kjt.keys() == [f.name for f in model.context_fields]
    history = kjt["history"]
    seen = np.minimum(task.t[ex], task.window or task.t[ex])  # the movies in the bag
    assert history.lengths().tolist() == seen.tolist()  # one value per movie, no padding
    assert torch.allclose(history.weights().view(-1)[:seen[0]],
                          torch.full((seen[0],), 1.0 / seen[0]))
    assert kjt["user"].values().tolist() == task.user[ex].tolist()  # indices local to a table


def test_same_weights_same_scores(task):
    reference, model = twins(task)
    ex = task.examples("test")[:40]
    rng = np.random.default_rng(0)
    candidates = torch.from_numpy(np.column_stack([task.target[ex],
                                                   task.sample_negatives(ex, 4, rng)]))
    everything = torch.arange(task.num_items)
    with torch.no_grad():
        assert torch.allclose(model(task.context(ex), candidates),
                              reference(task.context(ex), candidates), atol=1e-5)
        assert torch.allclose(model(task.context(ex), everything.expand(len(ex), -1)),
                              reference(task.context(ex), everything), atol=1e-5)


def test_checkpoints_convert_both_ways(task):
    reference, model = twins(task)
    back = build_model("dlrm", task, seed=7)
    back.load_state_dict(to_featint(model.state_dict(), task.schema))
    ex = task.examples("test")
    assert np.array_equal(rank_examples(back, task, ex), rank_examples(reference, task, ex))


@pytest.mark.slow
def test_two_processes_train_the_sharded_model(task, tmp_path):
    """torchrun with two gloo processes: the plan shards the tables between them, the sharded
    model scores as featint's DLRM with the same weights, the loss falls, and the checkpoint
    in featint's layout ranks as the sharded model did."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", "-m", "featint.torchrec_dlrm", "--steps", "40", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["world_size"] == 2 and "table_wise" in report["plan"]
    assert "rank:0" in report["plan"] and "rank:1" in report["plan"]  # both hold tables
    assert "sharding plan" in done.stdout
    assert report["score_gap"] < 1e-5
    losses = report["losses"]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
    checkpoint = torch.load(out / "dlrm.pt", weights_only=True)
    model = build_model("dlrm", task, seed=3, **checkpoint["hparams"])
    model.load_state_dict(checkpoint["state"])
    found = np.load(out / "ranks.npz")
    ranks = rank_examples(model, task, found["examples"])
    assert np.mean(ranks == found["ranks"]) > 0.99
    assert np.abs(ranks - found["ranks"]).max() <= 1.0
