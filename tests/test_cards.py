"""The models' cards (``featint.cards``): the tables chapter 08 reads off them (the tuning of
every model and paper vs here, checked on a small tuning record written for the test), and
every setting a model trains with stated, the defaults its constructor works out or inherits
included."""

from __future__ import annotations

import json

import numpy as np
import pytest

import featint.tuning
from featint import cards
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


@pytest.fixture
def setting(monkeypatch):
    """Cards read from a given setting instead of the tuning record."""
    chosen: dict = {}
    monkeypatch.setattr(cards, "setting_of", lambda name: dict(chosen))
    monkeypatch.setattr(cards, "load_trials", lambda name: [])
    monkeypatch.setattr(cards, "chosen_trial", lambda name: None)
    monkeypatch.setattr(cards, "pending", lambda names: {})
    return chosen


def test_a_subclass_card_holds_its_base_class_defaults_and_what_it_fixes():
    dlrm, simplified = cards._defaults("dlrm"), cards._defaults("dlrm_simplified")
    assert simplified["interaction"] == "cat" and dlrm["interaction"] == "dot"
    assert {k: v for k, v in simplified.items() if k != "interaction"} == {
        k: v for k, v in dlrm.items() if k != "interaction"}


def test_nfm_s_card_states_its_hidden_layer_not_none(setting):
    setting.update({"lr": 0.005, "bi_dropout": 0.2})
    card = cards.card("nfm")
    assert card.value("hidden") == [card.value("embed_dim")]
    assert card.origin["hidden"] == "default" and card.value("bi_dropout") == 0.2
    setting["hidden"] = [32, 8]
    assert cards.card("nfm").value("hidden") == [32, 8]


def test_dlrm_simplified_s_card_shows_its_mlps(setting):
    setting.update({"lr": 0.02})
    rows = {what: value for what, value, _ in cards.card("dlrm_simplified").rows()}
    assert rows["bottom MLP"] == "64-32" and rows["interaction"] == "cat"


def test_a_model_whose_tuning_is_pending_is_shown_at_its_paper_s_trial(records):
    paper = PAPERS["sasrec"].setting
    (records / "sasrec.json").write_text(json.dumps({"format": FORMAT, "trials": [
        {"label": paper, "setting": SPACES["sasrec"][paper], "valid_mrr": 0.06}]}))
    found = card("sasrec")
    assert found.chosen is None and "1 of its 3 trials" in found.pending
    assert found.value("lr") == SPACES["sasrec"][paper]["lr"]
    assert found.value("num_negatives") == 1 and found.origin["lr"] == "paper"
    assert "no setting is chosen yet" in found.summary() and "0.0600" in found.summary()
    assert all(origin != "tuned" for origin in found.origin.values())
    assert card("deepfm").pending == ""  # a complete record: tuned, nothing pending
    (records / "fm.json").write_text(json.dumps({"format": FORMAT, "trials": []}))
    with pytest.raises(featint.tuning.RecordError):  # no paper's trial to show instead
        card("fm")
