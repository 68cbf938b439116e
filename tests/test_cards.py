"""A model's card (``featint.cards``) states every setting the model is trained with, the
defaults its constructor works out or inherits included."""

from __future__ import annotations

import pytest

from featint import cards


@pytest.fixture
def setting(monkeypatch):
    """Cards read from a given setting instead of the tuning record."""
    chosen: dict = {}
    monkeypatch.setattr(cards, "setting_of", lambda name: dict(chosen))
    monkeypatch.setattr(cards, "load_trials", lambda name: [])
    monkeypatch.setattr(cards, "chosen_trial", lambda name: None)
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
