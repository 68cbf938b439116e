"""The one-change-at-a-time ablation (``benchmarks/ablation.py``): each change moves the
comparison's setting one step towards DeepCTR-Torch's, the statistics are right, and a
quick run on the synthetic data records every run and effect and reruns nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script

from featint.synthetic import synthetic_movielens
from featint.training import setting_of

ROOT = Path(__file__).resolve().parents[1]
ablation = load_script(ROOT / "benchmarks" / "ablation.py")


def test_each_change_moves_one_thing():
    deepfm = {"lr": 1e-2}
    nfm = {"lr": 5e-3, "bi_dropout": 0.2, "pretrain": "fm"}
    by_label = {c.label: c for c in ablation.CHANGES}
    assert by_label["learning rate 1e-3"].setting("deepfm", deepfm) == {"lr": 1e-3}
    assert by_label["embeddings N(0, 1e-4²)"].setting("deepfm", deepfm) == {
        "lr": 1e-2, "init_std": 1e-4}
    assert "trained FM" in by_label["embeddings N(0, 1e-4²)"].setting("nfm", nfm)
    assert by_label["no dropout"].setting("nfm", nfm) == {**nfm, "bi_dropout": 0.0,
                                                          "dropout": 0.0}
    assert by_label["MLP as DeepCTR-Torch"].setting("nfm", nfm)["hidden"] == [128, 128]
    assert by_label["summed loss + L2 1e-5 on the used embeddings"].setting(
        "deepfm", deepfm) == {"lr": 1e-2, "reduction": "sum", "embedding_l2": 1e-5}
    assert by_label["no FM pre-training"].setting("nfm", nfm) == {"lr": 5e-3,
                                                                  "bi_dropout": 0.2}
    assert by_label["early stopping on HR@10"].monitor == "hr@10"
    everything = by_label["all of the above (MLP 64-32)"].setting("nfm", nfm)
    assert everything == {"lr": 1e-3, "bi_dropout": 0.0, "dropout": 0.0, "init_std": 1e-4,
                          "hidden": [64, 32], "reduction": "sum", "embedding_l2": 1e-5}
    assert deepfm == {"lr": 1e-2}  # the baseline is never changed in place


@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228)])
def test_t_quantile(df, expected):
    assert ablation.t_quantile(0.975, df) == pytest.approx(expected, abs=2e-3)


def test_seed_paired_bootstrap_sees_no_effect_in_identical_runs():
    rng = np.random.default_rng(0)
    a = rng.random((3, 500))
    same = ablation.paired_over_seeds(a, a)
    assert same == {"mean": 0.0, "lo": 0.0, "hi": 0.0}
    shifted = ablation.paired_over_seeds(a + 0.1, a)
    assert shifted["lo"] == pytest.approx(0.1) and shifted["hi"] == pytest.approx(0.1)
    noisy = ablation.paired_over_seeds(a + rng.normal(0.05, 0.2, a.shape), a)
    assert noisy["lo"] < 0.05 < noisy["hi"]


def test_history_windows_are_tasks_of_other_windows():
    ml = synthetic_movielens(seed=0)
    assert ablation.build(ml, None).window == 10  # the protocol's
    assert ablation.build(ml, 20).window == 20 and ablation.build(ml, "all").window is None


def test_a_quick_run_records_every_run_and_effect(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEATINT_MODEL_CACHE", str(tmp_path / "cache"))
    argv = ["--quick", "--synthetic", "--quiet", "--out", str(tmp_path / "ablation"),
            "--seeds", "0,1", "--changes", "1,2,7"]
    assert ablation.main(argv) == 0
    record = json.loads((tmp_path / "ablation" / "ablation.json").read_text())
    assert record["format"] == ablation.FORMAT and record["quick"] is True
    # the baselines are the tuned settings on record; a change that does not apply says why
    pretrained = {"nfm": setting_of("nfm").get("pretrain"),
                  "deepfm": setting_of("deepfm").get("pretrain")}
    variants = {}
    for model, source in pretrained.items():
        skipped = record["models"][model]["not_applicable"]
        if source:  # a pre-trained model keeps the FM's embeddings: no initialisation
            assert "embeddings N(0, 1e-4²)" in skipped
        else:
            assert skipped["no FM pre-training"] == f"{model} is not pre-trained"
        variants[model] = {"learning rate 1e-3", "embeddings N(0, 1e-4²)",
                           "no FM pre-training"} - set(skipped)
    runs = {(r["model"], r["change"], r["seed"]) for r in record["runs"]}
    assert len(runs) == len(record["runs"]) == 2 * sum(1 + len(v) for v in variants.values())
    for model in ("deepfm", "nfm"):
        assert set(record["effects"][model]) == variants[model]
        effect = record["effects"][model]["learning rate 1e-3"]  # applies to both
        assert effect["seeds"] == [0, 1]
        for key in ("valid_mrr", "valid_hr@10", "test_mrr", "test_hr@10", "test_mean_rank"):
            e = effect[key]
            assert len(e["per_seed"]) == 2 and e["lo"] <= e["mean"] <= e["hi"]
            assert e["paired"]["lo"] <= e["paired"]["mean"] <= e["paired"]["hi"]
        base = {r["seed"]: r for r in record["runs"]
                if r["model"] == model and r["change"] == ablation.BASELINE.label}
        lr = {r["seed"]: r for r in record["runs"]
              if r["model"] == model and r["change"] == "learning rate 1e-3"}
        assert effect["test_mrr"]["per_seed"] == pytest.approx(
            [lr[s]["test"]["mrr"] - base[s]["test"]["mrr"] for s in (0, 1)])
        assert lr[0]["setting"]["lr"] == 1e-3 and base[0]["setting"]["lr"] != 1e-3
        with np.load(tmp_path / "ablation" / lr[1]["ranks_file"]) as data:
            assert set(data.files) == {"valid", "test", "valid_examples", "test_examples"}
    table = (tmp_path / "ablation" / "ablation.md").read_text()
    assert "| nfm | embeddings N(0, 1e-4²) |" in table and "n/a: deepfm is not" in table
    assert "| deepfm | learning rate 1e-3 |" in capsys.readouterr().out

    monkeypatch.setattr(ablation, "trained", lambda *a, **k: pytest.fail("retrained"))
    assert ablation.main(argv) == 0
