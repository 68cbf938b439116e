"""The report's helpers that chapter 08 builds on: colours, labels that do not overlap, the
ladder and the letters read off a pairwise result, and the records beside the comparison (the
peer twins, the ablation, protocol v2). Checked on small synthetic records whose answers are
known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from featint.evaluate import METRICS, metrics, per_example
from featint.files import save_ranks
from featint.report import (
    ABLATION_FORMAT,
    LADDER,
    PEERS_FORMAT,
    ablation_effects,
    ablation_table,
    annotate_points,
    colours,
    difference_cell,
    ladder_lines,
    ladder_table,
    letters_table,
    load_ablation,
    load_peers,
    peer_pairs,
    protocol_change,
    protocol_record,
)
from featint.stats import paired_t, pairwise
from featint.tuning import RecordError


# -- colours and labels -------------------------------------------------------------------------
def test_colours_keep_grey_for_the_ladder_and_give_no_model_c7():
    names = ["random", "popular", "markov", "itemknn", "mf", "linear", "fm", "ffm", "afm",
             "wide_deep", "deepfm", "nfm", "dlrm_simplified", "dlrm", "sasrec", "newmodel"]
    found = colours(names)
    models = [n for n in names if n not in LADDER]
    assert "C7" not in found.values()
    assert all(found[n].replace(".", "").isdigit() for n in LADDER)  # greys
    assert len({found[n] for n in LADDER}) == len(LADDER)  # the rungs differ
    assert len({found[n] for n in models}) == len(models)  # so do the models
    assert not any(found[n].replace(".", "").isdigit() for n in models)
    # a model keeps its colour whichever models a chart shows
    assert colours(["wide_deep"])["wide_deep"] == found["wide_deep"]
    assert colours(["sasrec", "fm"]) == {"sasrec": found["sasrec"], "fm": found["fm"]}


def _boxes(fig, texts):
    """The labels' boxes, the text alone (an annotation's own box holds its line too)."""
    renderer = fig.canvas.get_renderer()
    return [Text.get_window_extent(t, renderer) for t in texts]


def test_annotate_points_never_overlaps_two_labels():
    # the audit's chart: several models near 10^5 parameters at almost the same HR@10
    points = {"fm": (1.04e5, 0.1425), "afm": (1.05e5, 0.1421), "nfm": (1.05e5, 0.1409),
              "dlrm": (1.13e5, 0.1390), "deepfm": (1.30e5, 0.1426),
              "dlrm_simplified": (1.21e5, 0.1305), "wide_deep": (1.2e6, 0.1379),
              "linear": (6.1e3, 0.0539)}
    fig = Figure(figsize=(5, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for x, y in points.values():
        ax.plot(x, y, "o")
    ax.set_xscale("log")
    ax.margins(x=0.3)
    texts = annotate_points(ax, points)
    fig.canvas.draw()
    boxes = _boxes(fig, texts)
    assert [t.get_text() for t in texts] == list(points)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    # an isolated point keeps its label right beside it, without a line
    lonely = texts[list(points).index("linear")]
    assert lonely.arrow_patch is None
    # and no label covers another point's marker
    for text, box in zip(texts, boxes, strict=True):
        for name, xy in points.items():
            if name != text.get_text():
                x, y = ax.transData.transform(xy)
                assert not box.contains(x, y)


# -- the ladder and the letters -----------------------------------------------------------------
def _result(metric: str = "hr@10"):
    """Three models on 4,000 examples and three seeds: a clearly best, b and c close."""
    rng = np.random.default_rng(0)
    n = 4000
    p = {"a": 0.30, "b": 0.15, "c": 0.148}
    values = {k: (rng.random((3, n)) < v).astype(float) for k, v in p.items()}
    return pairwise(values, metric)


def test_difference_cell_and_the_ladder_follow_the_pairwise_result():
    result = _result()
    mark, text = difference_cell(result, "a", "b")
    assert mark == "▲" and text.startswith("+")
    mark_back, text_back = difference_cell(result, "b", "a")
    assert mark_back == "▼" and text_back.startswith("-")
    mark_bc, _ = difference_cell(result, "b", "c")
    assert mark_bc == "" and not result.is_separated("b", "c")
    table = ladder_table(result, ["a", "b", "c"], ["b", "c"])
    assert table.loc["a", "b"].startswith("▲ +") and table.loc["b", "b"] == "–"
    assert not table.loc["c", "b"].startswith(("▲", "▼"))
    lines = ladder_lines(result, ["a", "b", "c"], ["b"])
    assert lines == [f"- **b** ({result.means['b']:.4f}): above it: a; "
                     "not separated from it: c"]


def test_difference_cell_turns_the_sign_of_mean_rank():
    rng = np.random.default_rng(1)
    ranks = {"good": rng.integers(1, 100, (2, 3000)).astype(float),
             "bad": rng.integers(200, 400, (2, 3000)).astype(float)}
    result = pairwise({k: per_example(v, "mean_rank") for k, v in ranks.items()},
                      "mean_rank")
    mark, text = difference_cell(result, "good", "bad")
    assert mark == "▲" and text.startswith("+")  # fewer places is better: +


def test_letters_table_puts_the_metrics_side_by_side():
    hits, mrr = _result("hr@10"), _result("mrr")
    table = letters_table([hits, mrr])
    assert list(table.index) == hits.order
    assert list(table.columns) == ["HR@10", "MRR"]
    assert table.loc["a", "HR@10"] == f"{hits.means['a']:.4f} ({hits.letters['a']})"
    other = pairwise({"a": np.ones((1, 10)), "z": np.zeros((1, 10))}, "hr@10")
    with pytest.raises(ValueError, match="different models"):
        letters_table([hits, other])


# -- the peer twins -----------------------------------------------------------------------------
class FakeComparison:
    """The part of :class:`featint.compare.Comparison` the peers' pairing reads."""

    def __init__(self, ranks: dict[str, np.ndarray], examples: np.ndarray):
        self._ranks, self._examples = ranks, examples
        self.aggregates = {n: {"seeds": list(range(len(r)))} for n, r in ranks.items()}

    def ranks(self, model, seed):
        return self._ranks[model][seed], self._examples

    def per_example(self, model, metric):
        return per_example(self._ranks[model], metric)


def _write_peers(folder, twins: dict[str, np.ndarray], examples, quick=False):
    rows = []
    for twin, ranks in twins.items():
        features = "featint"
        for seed, r in enumerate(ranks):
            save_ranks(folder / features / "ranks" / f"{twin}_seed{seed}.npz", r, examples)
        (folder / features / f"{twin}.json").write_text(json.dumps(
            {"format": PEERS_FORMAT, "features_note": "featint's field vectors exactly"}))
        rows.append({"twin": twin, "features": features, "library": "lib 1.0",
                     "featint_model": "fm", "chosen": "defaults",
                     "seeds": list(range(len(ranks))), "quick": quick,
                     "test": {m: float(np.mean([metrics(r)[m] for r in ranks]))
                              for m in METRICS},
                     "test_intervals": {m: [0.0, 1.0] for m in METRICS}})
    (folder / "summary.json").write_text(json.dumps({"format": PEERS_FORMAT, "twins": rows}))


def test_peers_are_paired_with_their_featint_model(tmp_path):
    rng = np.random.default_rng(2)
    n = 3000
    examples = np.arange(n) * 3
    ours = rng.integers(1, 60, (3, n)).astype(float)
    twins = {"same": ours + rng.integers(-1, 2, (3, n)).clip(min=0),   # within the noise
             "worse": ours * 3.0,                                      # clearly worse
             "better": np.maximum(1.0, np.floor(ours / 4))}            # clearly better
    _write_peers(tmp_path, twins, examples)
    peers = load_peers(tmp_path)
    assert {p["twin"] for p in peers} == set(twins)
    assert all(p["features_note"] == "featint's field vectors exactly" for p in peers)
    found = peer_pairs(FakeComparison({"fm": ours}, examples), peers).set_index("twin")
    for m in ("hr@10", "mrr", "mean_rank"):
        assert found.loc["same", f"{m} verdict"] == "not separated"
        assert found.loc["worse", f"{m} verdict"] == "featint better"
        assert found.loc["better", f"{m} verdict"] == "twin better"
    # the difference is featint minus the twin, the paired test's
    test = paired_t(per_example(ours, "mrr"), per_example(twins["worse"], "mrr"))
    assert found.loc["worse", "mrr difference"] == pytest.approx(test.difference)
    assert found.loc["worse", "mrr lo"] <= test.difference <= found.loc["worse", "mrr hi"]


def test_peers_refuse_what_cannot_be_compared(tmp_path):
    with pytest.raises(RecordError, match="make peers"):
        load_peers(tmp_path)
    examples = np.arange(50)
    ranks = np.ones((1, 50))
    _write_peers(tmp_path, {"t": ranks}, examples, quick=True)
    with pytest.raises(RecordError, match="quick-mode"):
        load_peers(tmp_path)
    _write_peers(tmp_path, {"t": ranks}, examples)
    other = FakeComparison({"fm": ranks}, examples + 1)
    with pytest.raises(RecordError, match="other test examples"):
        peer_pairs(other, load_peers(tmp_path))
    with pytest.raises(RecordError, match="holds no fm"):
        peer_pairs(FakeComparison({"nfm": ranks}, examples), load_peers(tmp_path))


# -- the ablation -------------------------------------------------------------------------------
def _effect(mean: float, lo: float | None, hi: float | None) -> dict:
    return {"per_seed": [mean], "mean": mean, "lo": lo, "hi": hi,
            "paired": {"mean": mean, "lo": mean - 0.001, "hi": mean + 0.001}}


def _ablation(quick: bool = False) -> dict:
    base = "baseline (the comparison's setting)"
    effect = {"seeds": [0, 1, 2]}
    for split in ("valid", "test"):
        for m, v in (("mrr", -0.01), ("hr@10", -0.02), ("mean_rank", 10.0)):
            effect[f"{split}_{m}"] = _effect(v, v - 0.005, v + 0.005)
    runs = [{"model": "deepfm", "change": base, "seed": s,
             "valid": {"mrr": 0.07, "hr@10": 0.16, "mean_rank": 140.0},
             "test": {"mrr": 0.072, "hr@10": 0.15, "mean_rank": 150.0}} for s in range(3)]
    return {"format": ABLATION_FORMAT, "quick": quick,
            "changes": {base: "featint", "learning rate 1e-3": "lr"},
            "models": {"deepfm": {"baseline": {}, "not_applicable": {
                "no FM pre-training": "deepfm is not pre-trained"}}},
            "runs": runs, "effects": {"deepfm": {"learning rate 1e-3": effect}}}


def test_ablation_table_and_effects(tmp_path):
    (tmp_path / "ablation.json").write_text(json.dumps(_ablation()))
    record = load_ablation(tmp_path)
    table = ablation_table(record)
    assert list(table.columns) == ["valid MRR", "valid HR@10", "test MRR", "test HR@10"]
    rows = list(table.index)
    assert rows[0] == ("deepfm", "baseline (the comparison's setting): its own values")
    assert table.loc[rows[0], "test HR@10"] == "0.1500"
    assert table.loc[("deepfm", "learning rate 1e-3"), "test HR@10"] == (
        "-0.0200 [-0.0250, -0.0150]")
    assert table.loc[("deepfm", "no FM pre-training"), "valid MRR"].startswith("n/a: ")
    effects = ablation_effects(record)
    assert len(effects) == 6 and set(effects["split"]) == {"valid", "test"}
    row = effects[(effects["split"] == "test") & (effects["metric"] == "hr@10")].iloc[0]
    assert (row["mean"], row["lo"], row["hi"]) == pytest.approx((-0.02, -0.025, -0.015))


def test_ablation_refuses_a_missing_or_quick_record(tmp_path):
    with pytest.raises(RecordError, match="make ablation"):
        load_ablation(tmp_path)
    (tmp_path / "ablation.json").write_text(json.dumps(_ablation(quick=True)))
    with pytest.raises(RecordError, match="quick-mode"):
        load_ablation(tmp_path)
    (tmp_path / "ablation.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(RecordError, match="not a featint-ablation"):
        load_ablation(tmp_path)


# -- protocol v2 against v3 ---------------------------------------------------------------------
def test_protocol_change_is_after_minus_before():
    def agg(hr, rank, std):
        return {"mean": {"hr@10": hr, "mean_rank": rank},
                "std": {"hr@10": std, "mean_rank": None}}

    before = {"fm": agg(0.14, 165.0, 0.001), "afm": agg(0.13, 180.0, 0.002),
              "gone": agg(0.1, 200.0, 0.0)}
    after = {"afm": agg(0.15, 150.0, 0.003), "fm": agg(0.152, 152.0, 0.002)}
    found = protocol_change(before, after)
    assert list(found.index) == ["fm", "afm"]  # leaderboard order, models in both only
    assert found.loc["fm", "hr@10 change"] == pytest.approx(0.012)
    assert found.loc["afm", "mean_rank change"] == pytest.approx(-30.0)
    assert found.loc["afm", "hr@10 before std"] == 0.002
    assert isinstance(found, pd.DataFrame)


def test_the_v2_record_is_shipped():
    record = protocol_record()
    assert record["settings"]["protocol"] == "next-movie v2"
    assert {"fm", "deepfm", "markov"} <= set(record["aggregate"])
