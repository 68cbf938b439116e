"""The same tuning budget for every model: a search space per model, its trials, the choice.

Every model with something to set gets :data:`TRIALS` settings, written out in
:data:`SPACES`; each is trained (or, for a counting baseline, built from the fit period) with
seed 0 under the comparison's budget and scored on the *whole* validation set, and the one with
the best validation MRR is the model's setting in the comparison. The test set is never looked
at. Where a model's paper recommends a setting, it is one of the trials (:data:`PAPER` names
it); the first setting of every space is the one the comparison used before tuning was
equalised, so the record shows what tuning changed.

A setting is one flat dict: ``lr``, ``weight_decay``, ``loss``, ``num_negatives``,
``reduction`` and ``embedding_l2`` go to training (:func:`featint.train.fit`), every other key
to the model's constructor (``init_std`` to :func:`featint.models.build_model`, the same for
every model). ``make tune``
(``benchmarks/tune.py``) runs the trials and writes one file per model,
``results/tuning/<model>.json``; :func:`chosen` reads them back, and
:func:`featint.training.setting_of` reads the choice from there. Random scores and most
popular have nothing to set, so they have no trials.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from featint.config import RECORDS

#: Trials per model: the same for every model (the tuning budget).
TRIALS = 3
#: The settings read by training (:func:`featint.train.fit`); every other key of a setting is a
#: constructor argument (``init_std`` among them: :func:`featint.models.build_model` takes it).
#: The loss and the negatives are the budget's for every model but the one whose literature
#: compares losses (SASRec).
FIT_KEYS = ("lr", "weight_decay", "loss", "num_negatives", "reduction", "embedding_l2")
#: Where ``make tune`` writes its trials: package data, shipped with featint, so that an
#: installed featint trains what the README reports.
TUNING_DIR = RECORDS / "tuning"
FORMAT = "featint-tuning/1"


class RecordError(RuntimeError):
    """A record featint needs (a tuning record, the comparison) is missing or out of date;
    the message names the record and the command that makes it."""

#: Per model, label -> setting. The first is the setting used before tuning was equalised.
SPACES: dict[str, dict[str, dict[str, Any]]] = {
    # alpha below 1 / max p(m) (146 on the fit period) is a pure back-off: one trial there
    "markov": {"alpha 1": {"alpha": 1.0}, "alpha 300": {"alpha": 300.0},
               "alpha 1000": {"alpha": 1000.0}},
    "itemknn": {"jaccard": {"similarity": "jaccard", "shrink": 0.0},
                "cosine": {"similarity": "cosine", "shrink": 0.0},
                "conditional": {"similarity": "conditional", "shrink": 0.0}},
    "mf": {"lr 1e-2": {"lr": 1e-2}, "lr 5e-3": {"lr": 5e-3}, "lr 2e-2": {"lr": 2e-2}},
    "linear": {"lr 2e-2": {"lr": 2e-2}, "lr 5e-3": {"lr": 5e-3}, "lr 1e-2": {"lr": 1e-2}},
    "fm": {"lr 5e-3": {"lr": 5e-3}, "lr 1e-2": {"lr": 1e-2},
           "L2 1e-5": {"lr": 5e-3, "weight_decay": 1e-5}},
    # Juan et al. (2016) and LIBFFM's defaults: k = 4 with an L2 penalty of 2e-5
    "ffm": {"k 16": {"lr": 5e-3}, "k 16, L2 2e-5": {"lr": 5e-3, "weight_decay": 2e-5},
            "k 4, L2 2e-5": {"lr": 5e-3, "embed_dim": 4, "weight_decay": 2e-5}},
    # Xiao et al. (2017): embeddings of a trained FM and an L2 penalty on the attention
    # network's W. The third also attends over the ranking pairs only, with p starting at the
    # number of pairs (uniform attention then starts at FM's sum of those pairs).
    "afm": {"as before": {"lr": 1e-2},
            "FM-pretrained, attention L2": {"lr": 1e-2, "pretrain": "fm",
                                            "attention_l2": 1e-3},
            "+ ranking pairs, p = pairs": {"lr": 1e-2, "pretrain": "fm", "attention_l2": 1e-3,
                                           "attend": "ranking", "p_init": "pairs"}},
    # Cheng et al. (2016) train the wide part with FTRL and L1 regularisation
    "wide_deep": {"as before": {"lr": 5e-3}, "wide L1 1e-6": {"lr": 5e-3, "wide_l1": 1e-6},
                  "wide L2 1e-5": {"lr": 5e-3, "wide_l2": 1e-5}},
    # Guo et al. (2017): 200-200-200, dropout 0.5
    "deepfm": {"64-64-64": {"lr": 5e-3}, "200-200-200": {"lr": 5e-3, "hidden": [200, 200, 200]},
               "64-64-64, lr 1e-2": {"lr": 1e-2}},
    # He & Chua (2017): dropout 0.5 on the Bi-Interaction vector, embeddings of a trained FM
    "nfm": {"bi-dropout 0.2": {"lr": 5e-3, "bi_dropout": 0.2},
            "bi-dropout 0.5, FM-pretrained": {"lr": 5e-3, "bi_dropout": 0.5, "pretrain": "fm"},
            "bi-dropout 0.2, FM-pretrained": {"lr": 5e-3, "bi_dropout": 0.2, "pretrain": "fm"}},
    # Naumov et al. (2019) use no regularisation
    "dlrm_simplified": {"none": {"lr": 2e-2}, "L2 1e-5": {"lr": 2e-2, "weight_decay": 1e-5},
                        "top dropout 0.2": {"lr": 2e-2, "dropout": 0.2}},
    "dlrm": {"none": {"lr": 1e-2}, "L2 1e-5": {"lr": 1e-2, "weight_decay": 1e-5},
             "top dropout 0.2": {"lr": 1e-2, "dropout": 0.2}},
    # Kang & McAuley (2018), Section IV, "Implementation Details", for MovieLens-1M: b = 2
    # blocks, dropout 0.2, n = 200, Adam with lr 1e-3; one head (their ablation study in
    # Section IV: two heads did slightly worse); binary cross-entropy with one sampled
    # negative per target (Section III, "Network Training"). Not kept: d = 50 (here the
    # budget's embedding size) and batches of 128 (here the budget's). The other two
    # trials change only the negatives: the budget's four, as every other model trains,
    # and all of them, cross-entropy over every unseen movie (Klenitskiy & Vasilev, 2023).
    "sasrec": {
        "paper: BCE, 1 negative": {"lr": 1e-3, "loss": "bce", "num_negatives": 1,
                                   "num_blocks": 2, "num_heads": 1, "dropout": 0.2,
                                   "max_len": 200},
        "BCE, 4 negatives": {"lr": 1e-3, "loss": "bce", "num_negatives": 4,
                             "num_blocks": 2, "num_heads": 1, "dropout": 0.2,
                             "max_len": 200},
        "cross-entropy, all movies": {"lr": 1e-3, "loss": "ce", "num_blocks": 2,
                                      "num_heads": 1, "dropout": 0.2, "max_len": 200},
    },
}
#: The label of the setting its paper recommends (None: the paper gives none to follow).
PAPER: dict[str, str | None] = {
    "markov": None, "itemknn": None, "mf": None, "linear": None, "fm": None,
    "ffm": "k 4, L2 2e-5", "afm": "FM-pretrained, attention L2",
    "wide_deep": "wide L1 1e-6", "deepfm": "200-200-200",
    "nfm": "bi-dropout 0.5, FM-pretrained", "dlrm_simplified": "none", "dlrm": "none",
    "sasrec": "paper: BCE, 1 negative",
}


def split(setting: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A setting as (optimiser arguments, constructor arguments)."""
    fit = {k: v for k, v in setting.items() if k in FIT_KEYS}
    return fit, {k: v for k, v in setting.items() if k not in FIT_KEYS}


def tuning_folder(folder: str | Path | None = None) -> Path:
    """``folder``, else the record shipped with featint (:data:`TUNING_DIR`)."""
    return Path(folder) if folder is not None else TUNING_DIR


def tuning_file(name: str, folder: str | Path | None = None) -> Path:
    """The file of model ``name``'s trials."""
    return tuning_folder(folder) / f"{name}.json"


def load_trials(name: str, folder: str | Path | None = None) -> list[dict[str, Any]]:
    """The recorded trials of ``name`` whose setting is still in its space (empty if none)."""
    path = tuning_file(name, folder)
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    if record.get("format") != FORMAT:
        raise RecordError(f"{path} is not a {FORMAT} file; delete it and run `make tune`")
    space = SPACES.get(name, {})
    return [t for t in record["trials"] if space.get(t["label"]) == t["setting"]]


def best(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The trial with the highest whole-validation MRR."""
    return max(trials, key=lambda t: t["valid_mrr"])


def chosen_trial(name: str, folder: str | Path | None = None) -> dict[str, Any] | None:
    """Model ``name``'s best trial when all of its space's trials are on record, else None
    (not tuned yet)."""
    trials = load_trials(name, folder)
    complete = {t["label"] for t in trials} == set(SPACES.get(name, {}))
    return best(trials) if trials and complete else None


def chosen(folder: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Model -> its chosen setting (:func:`chosen_trial`), for every model whose trials are
    all on record (the others are left out: :func:`featint.training.setting_of` says what to
    run for them)."""
    out = {}
    for name in SPACES:
        top = chosen_trial(name, folder)
        if top is not None:
            out[name] = dict(top["setting"])
    return out
