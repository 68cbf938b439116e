"""The tables chapter 08 reads off the models' cards (``featint.cards``): the tuning of every
model and paper vs here, checked on a small tuning record written for the test."""

from __future__ import annotations

import json

import numpy as np
import pytest

import featint.tuning
from featint.cards import card, overview, papers_table
from featint.tuning import FORMAT, PAPERS, SPACES


def _write(folder, name: str, mrr: dict[str, float], seconds: float | None = 10.0) -> None:
    trials = []
    for label, setting in SPACES[name].items():
        trial = {"label": label, "setting": setting, "valid_mrr": mrr[label],
                 **{f"valid_{m}": 0.1 for m in ("hr@10", "mean_rank", "median_rank",
                                                 "ndcg@10")}}
        if seconds is not None:
            trial.update(train_seconds=seconds, best_epoch=3, epochs=5)
        trials.append(trial)
    (folder / f"{name}.json").write_text(json.dumps({"format": FORMAT, "trials": trials}))


@pytest.fixture
def records(tmp_path, monkeypatch):
    """A tuning record where DeepFM's paper setting wins and FFM's does not; Markov is a
    counting baseline (no training time)."""
    monkeypatch.setattr(featint.tuning, "TUNING_DIR", tmp_path)
    deepfm, ffm, markov = (list(SPACES[n]) for n in ("deepfm", "ffm", "markov"))
    _write(tmp_path, "deepfm", {deepfm[0]: 0.07, deepfm[1]: 0.06, deepfm[2]: 0.08}, 100.0)
    _write(tmp_path, "ffm", {ffm[0]: 0.07, ffm[1]: 0.075, ffm[2]: 0.06}, 20.0)
    _write(tmp_path, "markov", {markov[0]: 0.04, markov[1]: 0.05, markov[2]: 0.03}, None)
    return tmp_path


def test_overview_reads_the_cards(records):
    found = overview(["markov", "ffm", "deepfm"])
    assert list(found.index) == ["markov", "ffm", "deepfm"]
    assert (found["trials"] == 3).all()
    deepfm = found.loc["deepfm"]
    assert deepfm["chosen"] == PAPERS["deepfm"].setting == card("deepfm").chosen
    assert (deepfm["paper tried"], deepfm["paper chosen"]) == ("yes", "yes")
    assert deepfm["tuning s"] == pytest.approx(300.0)  # three trials of 100 s
    assert deepfm["valid MRR"] == pytest.approx(0.08)
    assert "learning rate" in deepfm["varied"] and "hidden layers" in deepfm["varied"]
    ffm = found.loc["ffm"]
    assert ffm["chosen"] == list(SPACES["ffm"])[1]
    assert (ffm["paper tried"], ffm["paper chosen"]) == ("yes", "no")
    markov = found.loc["markov"]
    assert (markov["paper's setting"], markov["paper tried"]) == ("none given", "–")
    assert np.isnan(markov["tuning s"])  # built, not trained


def test_papers_table_says_where_and_what_is_not_followed(records):
    found = papers_table(["markov", "deepfm"])
    assert found.loc["deepfm", "where the paper states it"] == PAPERS["deepfm"].source
    assert found.loc["deepfm", "not followed here"] == PAPERS["deepfm"].differs
    assert found.loc["deepfm", "tried / chosen"] == "yes / yes"
    assert found.loc["markov", "tried / chosen"] == "–"
