"""The same tuning budget for every model: a search space per model, its trials, the choice.

Every model with something to set gets :data:`TRIALS` settings, written out in
:data:`SPACES`; each is trained (or, for a counting baseline, built from the fit period) with
seed 0 under the comparison's budget and scored on the *whole* validation set, and the one with
the best validation MRR is the model's setting in the comparison. The test set is never looked
at.

Every trained model's space comes from one rule (:func:`space`): its *anchor*, the setting it
had before (the one chosen under protocol v2; for SASRec, new here, its paper's), at its
learning rate and at half of it, and a third trial: the setting its paper recommends where the
paper gives one we can follow (:data:`PAPERS` says where the paper states it and what of it
is not followed), else the anchor at twice its learning rate. So the learning rate is varied
for every trained model, and the paper's setting is tried wherever there is one. The counting
baselines have no learning rate: Markov three values of its back-off, ItemKNN its similarity
over every movie watched so far and over the protocol's history window.

A setting is one flat dict: ``lr``, ``weight_decay``, ``loss``, ``num_negatives``,
``reduction`` and ``embedding_l2`` go to training (:func:`featint.train.fit`), every other key
to the model's constructor (``init_std`` to :func:`featint.models.build_model`, the same for
every model). ``make tune`` (``benchmarks/tune.py``) runs the trials and writes one file per
model into the tuning record shipped with featint (``featint/records/tuning/<model>.json``);
:func:`featint.training.setting_of` reads the choice back. Random scores and most popular
have nothing to set, so they have no trials.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featint.config import RECORDS
from featint.task import PROTOCOL, WINDOWS

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


@dataclass(frozen=True)
class Paper:
    """What a model's paper says about its setting: ``setting``, the label of the trial that
    is the paper's (None: the paper gives no setting to follow); ``source``, where the paper
    states it (section, table) or why there is nothing to follow; ``differs``, what of the
    paper's setting is not followed here, and why."""

    setting: str | None
    source: str
    differs: str = ""


def rate_text(lr: float) -> str:
    """A learning rate as a trial's label writes it: ``lr 0.005``."""
    return f"lr {lr:g}"


def space(anchor: tuple[str, dict[str, Any], float],
          third: tuple[str, dict[str, Any], float] | None = None
          ) -> dict[str, dict[str, Any]]:
    """A trained model's three trials (label -> setting): its ``anchor`` (label, setting
    without the learning rate, learning rate) at that rate and at half of it, then ``third``
    (label, setting, rate), the paper's, or, without one, the anchor at twice its rate."""
    label, setting, lr = anchor
    name, other, rate = third if third is not None else (label, setting, 2 * lr)
    trials = ((label, setting, lr), (label, setting, lr / 2), (name, other, rate))
    return {f"{t}, {rate_text(r)}": {**s, "lr": r} for t, s, r in trials}


AFM_RANKING = {"pretrain": "fm", "attention_l2": 1e-3, "attend": "ranking", "p_init": "pairs"}
DLRM_PAPER = {"bottom": [512, 256, 64], "top": [512, 256]}
SASREC_PAPER = {"loss": "bce", "num_negatives": 1, "num_blocks": 2, "num_heads": 1,
                "dropout": 0.2, "max_len": 200}

#: Per model, label -> setting (the learning rate included).
SPACES: dict[str, dict[str, dict[str, Any]]] = {
    # alpha below 1 / max p(m) (146 on the fit period) is a pure back-off: one trial there
    "markov": {"alpha 1": {"alpha": 1.0}, "alpha 300": {"alpha": 300.0},
               "alpha 1000": {"alpha": 1000.0}},
    # the similarity chosen under v2, over every movie watched so far (the protocol's rung)
    # and over the protocol's history window, then the other similarity over the window
    "itemknn": {"jaccard, every movie": {"similarity": "jaccard", "shrink": 0.0},
                f"jaccard, last {WINDOWS[PROTOCOL]}": {"similarity": "jaccard", "shrink": 0.0,
                                                       "window": WINDOWS[PROTOCOL]},
                f"cosine, last {WINDOWS[PROTOCOL]}": {"similarity": "cosine", "shrink": 0.0,
                                                      "window": WINDOWS[PROTOCOL]}},
    "mf": space(("plain", {}, 1e-2)),
    "linear": space(("plain", {}, 2e-2)),
    "fm": space(("plain", {}, 1e-2)),
    "ffm": space(("k 16", {}, 5e-3),
                 ("k 4, L2 2e-5", {"embed_dim": 4, "weight_decay": 2e-5}, 5e-3)),
    "afm": space(("ranking pairs, p = pairs", AFM_RANKING, 1e-2),
                 ("FM-pretrained, attention L2", {"pretrain": "fm", "attention_l2": 1e-3},
                  1e-2)),
    # the anchor is the paper's setting already: the third trial drops its L1
    "wide_deep": space(("wide L1 1e-6", {"wide_l1": 1e-6}, 5e-3), ("no L1", {}, 5e-3)),
    "deepfm": space(("64-64-64", {}, 1e-2),
                    ("400-400-400, dropout 0.5", {"hidden": [400, 400, 400], "dropout": 0.5},
                     1e-2)),
    "nfm": space(("bi-dropout 0.2, FM-pretrained", {"bi_dropout": 0.2, "pretrain": "fm"},
                  5e-3), ("bi-dropout 0.5", {"bi_dropout": 0.5}, 5e-3)),
    "dlrm_simplified": space(("64-32 / 64-32", {}, 2e-2),
                             ("512-256-64 / 512-256", DLRM_PAPER, 2e-2)),
    "dlrm": space(("L2 1e-5", {"weight_decay": 1e-5}, 1e-2),
                  ("512-256-64 / 512-256", DLRM_PAPER, 1e-2)),
    # new here: the anchor is the paper's setting; the third trial is the other loss its
    # literature compares, cross-entropy over every movie (Klenitskiy & Vasilev 2023)
    "sasrec": space(("BCE, 1 negative (paper)", SASREC_PAPER, 1e-3),
                    ("cross-entropy over all movies", {**SASREC_PAPER, "loss": "ce"}, 1e-3)),
}
#: The trials of each model with something to set: the same number for every model.
TRIALS = 3
#: Per model, what its paper says about its setting.
PAPERS: dict[str, Paper] = {
    "markov": Paper(None, "a counting baseline of the protocol, not a paper's model"),
    "itemknn": Paper(None, "a counting baseline of the protocol, not a paper's model"),
    "mf": Paper(None, "a rung of the protocol's ladder (FM on the user and movie fields), "
                      "not a paper's model"),
    "linear": Paper(None, "a rung of the protocol's ladder (FM without its pairs)"),
    "fm": Paper(None, "Rendle (2010) leaves k, the regularisation and the learning rate "
                      "open: §III-A.2 only advises a small k on sparse data, §III-C learns by "
                      "SGD with an L2 penalty of unstated strength"),
    "ffm": Paper("k 4, L2 2e-5, lr 0.005",
                 "Juan et al. (2016), §4.5 and its Table 3, the parameters chosen on "
                 "validation; k = 4 and λ = 2e-5 are also the defaults of the authors' LIBFFM",
                 "AdaGrad with η = 0.2 and instance normalisation are LIBFFM's: here Adam at "
                 "the anchor's learning rate, λ as Adam's weight decay"),
    "afm": Paper("FM-pretrained, attention L2, lr 0.01",
                 "Xiao et al. (2017): §3.2.1 (dropout on the pair-wise interaction layer, L2 "
                 "on the attention network's W), §5.1 (embeddings of a trained FM, "
                 "mini-batch Adagrad), §5.2 (dropout 0.5 on MovieLens)",
                 "the paper gives no λ in its text (its Fig. 3 plots a range): 1e-3 here; "
                 "embedding size and attention factor 256 in the paper, the budget's 16 here; "
                 "Adam instead of Adagrad"),
    "wide_deep": Paper("wide L1 1e-6, lr 0.005",
                       "Cheng et al. (2016), §3.3: FTRL with L1 on the wide part, AdaGrad on "
                       "the deep part; §4.2: 32-dimensional embeddings",
                       "no L1 strength is given: 1e-6 here, with Adam for both parts; the "
                       "1024-512-256 layers of its Fig. 4 (for a 1,200-wide input) are not "
                       "tried, the 128-64 MLP is kept"),
    "deepfm": Paper("400-400-400, dropout 0.5, lr 0.01",
                    "Guo et al. (2017), §3.1, 'Parameter Settings' (Criteo, the settings of "
                    "Qu et al. 2016 for every deep model): dropout 0.5, network 400-400-400, "
                    "Adam, ReLU",
                    "the paper states no embedding size, learning rate or batch size for "
                    "DeepFM: the budget's"),
    "nfm": Paper("bi-dropout 0.5, lr 0.005",
                 "He & Chua (2017): §4.4 (one hidden layer with ReLU, dropout 0.5 on the "
                 "Bi-Interaction layer), §3.2.2 (batch normalisation); §4.3.1: pre-training "
                 "with FM only speeds up convergence, so it is not part of the setting",
                 "embedding size 64 and mini-batch Adagrad in the paper (§4.1.4): the "
                 "budget's 16 and Adam here"),
    "dlrm_simplified": Paper("512-256-64 / 512-256, lr 0.02",
                             "Naumov et al. (2019), §5.1 (Criteo Kaggle): bottom MLP "
                             "512-256-64, top MLP 512-256, embedding dimension 16, 'No "
                             "regularization is used'",
                             "SGD and Adagrad in the paper, Adam here"),
    "dlrm": Paper("512-256-64 / 512-256, lr 0.01",
                  "Naumov et al. (2019), §5.1 (Criteo Kaggle): bottom MLP 512-256-64, top MLP "
                  "512-256, embedding dimension 16, 'No regularization is used'",
                  "SGD and Adagrad in the paper, Adam here"),
    "sasrec": Paper("BCE, 1 negative (paper), lr 0.001",
                    "Kang & McAuley (2018): §III-E (binary cross-entropy, one sampled "
                    "negative per position), §IV-C (two self-attention blocks, dropout 0.2 and "
                    "n = 200 on MovieLens-1M, Adam with learning rate 0.001); one head (§IV-F)",
                    "d = 50 and batches of 128 in the paper: the budget's 16 and 1,024 here"),
}
#: The label of each model's paper's trial (None: the paper gives none to follow).
PAPER: dict[str, str | None] = {name: paper.setting for name, paper in PAPERS.items()}


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


def pending(names: Sequence[str], folder: str | Path | None = None) -> dict[str, str]:
    """Of ``names``, the models whose tuning is not complete, each with why: the trials of its
    space that are on record and the command that runs the rest. A model with nothing to tune
    is never pending. The comparison leaves a pending model out rather than train it with a
    setting that was not chosen (:func:`featint.compare.compare`)."""
    out = {}
    for name in names:
        space = SPACES.get(name)
        if not space or chosen_trial(name, folder) is not None:
            continue
        done = len({t["label"] for t in load_trials(name, folder)})
        out[name] = (f"its tuning record holds {done} of its {len(space)} trials; "
                     f"`python benchmarks/tune.py --models {name}` runs the rest")
    return out


def shown_setting(name: str, folder: str | Path | None = None) -> dict[str, Any] | None:
    """The setting a chapter or card shows model ``name`` at: None (its tuned setting,
    :func:`featint.training.setting_of`) once its tuning is complete; while it is
    :func:`pending`, its paper's trial, the one setting with a reason of its own. A pending
    model without a paper's trial is a :class:`RecordError` that says how to finish it."""
    why = pending([name], folder).get(name)
    if why is None:
        return None
    label = PAPERS[name].setting if name in PAPERS else None
    if label is None or label not in SPACES.get(name, {}):
        raise RecordError(f"{name}: {why}, and it has no paper's setting to show meanwhile")
    return dict(SPACES[name][label])
