"""The cost of a long step is said before it starts (``featint.cost``): a task or a baseline
that would not fit stops with a clear error, a ranking runs in bounded memory on a large
catalogue and announces a long run."""

from __future__ import annotations

import numpy as np
import pytest

from featint import cost, evaluate, train
from featint.baselines import ItemKNN, Markov
from featint.cost import MemoryEstimateError, check_memory, task_bytes
from featint.evaluate import rank_examples
from featint.models import build_model
from featint.synthetic import synthetic_movielens
from featint.task import build_task


def test_an_estimate_over_the_memory_stops_with_the_fix():
    with pytest.raises(MemoryEstimateError, match=r"about 4\.0 GB.*1\.0 GB.*Fix: smaller"):
        check_memory(4 * 2**30, "a step", "smaller", available=2**30)
    check_memory(2**20, "a step", "unused", available=2**30)  # fits: nothing happens


def test_a_large_estimate_is_announced(capsys):
    check_memory(3 * 2**30, "a big step", "unused", available=2**40)
    assert "a big step: about 3.0 GB" in capsys.readouterr().err


def test_task_estimate_grows_with_ratings_and_the_position_table():
    small = task_bytes(100_000, 943, 1682, 19)
    assert 200 * 2**20 < small < 300 * 2**20  # 221 MB measured on MovieLens 100K
    big = task_bytes(20_000_263, 138_493, 26_744, 19)
    assert big > 4 * 138_493 * 26_744 > 13 * 2**30  # the (users, movies) table alone


def test_build_task_refuses_what_would_not_fit(monkeypatch):
    ml = synthetic_movielens(seed=0)
    monkeypatch.setattr(cost, "available_memory", lambda: 2**20)
    with pytest.raises(MemoryEstimateError, match="next-movie task of synthetic"):
        build_task(ml)


def test_baselines_refuse_what_would_not_fit(synthetic_task, monkeypatch):
    monkeypatch.setattr(cost, "available_memory", lambda: 1000)
    with pytest.raises(MemoryEstimateError, match="Markov.*--no-baselines"):
        Markov(synthetic_task)
    with pytest.raises(MemoryEstimateError, match="ItemKNN.*--no-baselines"):
        ItemKNN(synthetic_task)


def test_ranking_in_small_batches_gives_the_same_ranks(synthetic_task, monkeypatch):
    model = build_model("fm", synthetic_task, seed=0)
    examples = synthetic_task.examples("test")
    whole = rank_examples(model, synthetic_task, examples)
    monkeypatch.setattr(evaluate, "RANK_ELEMENTS", 7 * synthetic_task.num_items)
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda c, i: calls.append(len(c.idx)) or forward(c, i))
    assert np.array_equal(rank_examples(model, synthetic_task, examples), whole)
    assert max(calls) == 7 and sum(calls) == len(examples)


def test_a_long_ranking_and_a_long_epoch_are_announced(synthetic_task, monkeypatch, capsys):
    monkeypatch.setattr(evaluate, "ANNOUNCE_SECONDS", 0.0)
    monkeypatch.setattr(train, "ANNOUNCE_SECONDS", 0.0)
    model = build_model("fm", synthetic_task, seed=0)
    rank_examples(model, synthetic_task, synthetic_task.examples("test"), batch_size=64)
    err = capsys.readouterr().err
    assert f"ranking {len(synthetic_task.examples('test')):,} contexts against 150 movies" in err
    train.fit(model, synthetic_task, epochs=1, batch_size=64, progress=False, verbose=False)
    assert "one epoch of" in capsys.readouterr().err
