"""A model's card: everything about how it is trained, read from the records training reads.

A chapter, the README and chapter 08 never state a model's setting in their own words: they
show its card. :func:`card` gathers, for one model, the setting the comparison trains (its
chosen tuning trial, :func:`featint.training.setting_of`), every value that setting leaves at
the model's default (read off the constructor), the budget every model shares, which values
the tuning varied, and its paper's own setting (:data:`featint.tuning.PAPERS`): where the
paper states it, whether it was among the trials, and what of it could not be followed. A
model whose tuning is not complete (:func:`featint.tuning.pending`) has no chosen setting
yet: its card shows its paper's trial, says so (``origin`` ``"paper"``) and says why.
``tests/test_claims.py`` checks the prose of every chapter against the cards.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from featint.config import BUDGET, Budget
from featint.evaluate import LABELS
from featint.models import MODELS
from featint.report import markdown_table, ordered
from featint.training import fit_args, model_hparams, setting_of
from featint.tuning import (
    PAPERS,
    SPACES,
    chosen_trial,
    load_trials,
    pending,
    shown_setting,
    split,
)

#: Constructor arguments that are plumbing (memory, speed), not part of the model.
PLUMBING = ("chunk", "chunk_elements", "crosses", "bits")
#: How each setting is written in a card, a table or a sentence.
NAMES = {
    "lr": "learning rate", "weight_decay": "weight decay (Adam, every parameter)",
    "reduction": "loss over a batch", "embedding_l2": "L2 on the embeddings a batch uses",
    "embed_dim": "embedding size k", "hidden": "hidden layers", "dropout": "dropout",
    "bi_dropout": "dropout on BI(x)", "batch_norm": "batch normalisation",
    "pretrain": "starts from a trained", "attention_dim": "attention size k_a",
    "attend": "attended pairs", "p_init": "p starts at", "attention_l2": "L2 on W (attention)",
    "wide_l1": "L1 on the wide weights", "wide_l2": "L2 on the wide weights",
    "bottom": "bottom MLP", "top": "top MLP", "interaction": "interaction",
    "init_std": "embeddings drawn from N(0, σ²), σ", "loss": "loss",
    "num_negatives": "sampled negatives", "blocks": "attention blocks", "heads": "heads",
    "num_blocks": "attention blocks", "num_heads": "heads",
    "max_len": "longest prefix", "alpha": "α", "similarity": "similarity", "shrink": "shrink",
    "epochs": "epochs (at most)", "batch_size": "batch size", "patience": "early stopping after",
    "monitor": "early stopping watches", "valid_limit": "validation examples per epoch",
}


def value_text(value: Any) -> str:
    """A setting's value as a card writes it: sizes as ``64-64-64``, None as ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return "-".join(str(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass
class Card:
    """One model's card (see the module docstring)."""

    name: str
    chosen: str | None                    # the chosen trial's label (None: nothing tuned)
    values: dict[str, Any]                # every setting that decides the model, resolved
    origin: dict[str, str]                # "tuned", "paper", "budget" or "default"
    tuned: list[str]                      # the settings the trials varied
    trials: int
    paper: str | None                     # the label of the paper's setting among the trials
    paper_source: str
    paper_differs: str
    paper_tried: bool
    valid_mrr: dict[str, float] = field(default_factory=dict)  # trial label -> its MRR
    pending: str = ""                     # why nothing is chosen yet ("": tuned)

    def value(self, key: str) -> Any:
        """The setting ``key`` the model is trained with."""
        return self.values[key]

    def rows(self) -> list[tuple[str, str, str]]:
        """``(setting, value, where it comes from)`` for every setting of the card."""
        where = {"tuned": f"chosen on validation ({self.trials} trials)",
                 "paper": "the paper's setting (tuning not complete)",
                 "budget": "the budget (every model)", "default": "the model's default"}
        return [(NAMES.get(k, k), value_text(v), where[self.origin[k]])
                for k, v in self.values.items()]

    def markdown(self) -> str:
        """The card as Markdown: the table of settings, then what was tuned and the paper."""
        lines = [f"| {self.name} | value | from |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in self.rows()]
        return "\n".join(lines) + "\n\n" + self.summary()

    def summary(self) -> str:
        """What was tuned and the paper's setting, in two sentences."""
        if not self.trials:
            tuned = f"{self.name} has nothing to tune."
        elif self.pending:
            varied = ", ".join(NAMES.get(k, k) for k in self.tuned) or "nothing"
            tuned = (f"{self.trials} trials vary {varied}, but {self.pending}: no setting "
                     f"is chosen yet, and the card shows the paper's trial `{self.paper}`"
                     + (f" (validation MRR {self.valid_mrr[self.paper]:.4f})."
                        if self.paper in self.valid_mrr else "."))
        else:
            varied = ", ".join(NAMES.get(k, k) for k in self.tuned) or "nothing"
            tuned = (f"{self.trials} trials varied {varied}; the comparison trains the trial "
                     f"`{self.chosen}`"
                     + (f" (validation MRR {self.valid_mrr[self.chosen]:.4f})."
                        if self.chosen in self.valid_mrr else "."))
        if self.paper is None:
            paper = f"Its paper gives no setting to follow: {self.paper_source}."
        else:
            tried = ("was one of the trials" if self.paper_tried
                     else "was not among the trials")
            paper = (f"Its paper's setting, `{self.paper}` ({self.paper_source}), {tried}"
                     + (f"; {self.paper_differs}" if self.paper_differs else "") + ".")
        return f"{tuned} {paper}"


#: Defaults the constructor works out from other settings (``None`` in its signature): model
#: -> setting -> how to read the value off the card's other values.
RESOLVED: dict[str, dict[str, Callable[[dict[str, Any]], Any]]] = {
    "nfm": {"hidden": lambda values: [values["embed_dim"]]},  # None: one layer as wide as k
}


def _fixed_by(cls: type) -> dict[str, Any]:
    """The keyword arguments with constant values that ``cls.__init__`` passes to its base
    class's ``__init__`` (``super().__init__(..., interaction="cat")``): settings the subclass
    fixes."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    except (OSError, TypeError):
        return {}
    fixed = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "__init__"):
            for kw in node.keywords:
                if kw.arg is not None and isinstance(kw.value, ast.Constant):
                    fixed[kw.arg] = kw.value.value
    return fixed


def _defaults(name: str, cls: type | None = None) -> dict[str, Any]:
    """The model's constructor defaults (its own settings, plumbing left out). A constructor
    that hands ``**kwargs`` on to its base class (DLRM simplified) has the base class's
    defaults too, with what it fixes itself (``interaction="cat"``) in their place."""
    cls = cls or MODELS[name]
    params = inspect.signature(cls.__init__).parameters
    out = {k: p.default for k, p in params.items()
           if k not in ("self", "schema", "items", *PLUMBING)
           and p.default is not inspect.Parameter.empty
           and p.kind is not inspect.Parameter.VAR_KEYWORD}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        base = next((b for b in cls.__mro__[1:] if "__init__" in vars(b)), None)
        if base is not None and base.__module__.startswith("featint."):
            inherited = _defaults(name, base)
            inherited.update({k: v for k, v in _fixed_by(cls).items() if k in inherited})
            out = {**inherited, **out}
    return out


def _resolved(name: str, budget: Budget, setting: dict[str, Any]) -> dict[str, Any]:
    """Every value a setting gives model ``name``, the model's defaults filled in: what the
    trials really varied is read off these, not off the keys each trial happens to set."""
    if name not in MODELS:
        return dict(setting)
    return {**_defaults(name), **model_hparams(name, budget, setting),
            **fit_args(name, budget, setting)}


def card(name: str, budget: Budget = BUDGET) -> Card:
    """The card of model ``name`` (a trained model or a counting baseline). A model whose
    tuning is not complete is shown at its paper's trial, with ``pending`` saying why; one
    without a paper's trial to show is a :class:`featint.tuning.RecordError`
    (:func:`featint.training.setting_of`)."""
    space = SPACES.get(name, {})
    paper = PAPERS.get(name)
    label = paper.setting if paper else None
    why = pending([name]).get(name, "")
    setting = shown_setting(name) or setting_of(name)
    chosen_origin = "paper" if why else "tuned"
    trials = load_trials(name)
    top = chosen_trial(name) if space else None
    resolved = [_resolved(name, budget, s) for s in space.values()]
    varied = sorted({k for r in resolved for k in r
                     if len({repr(t.get(k)) for t in resolved}) > 1})
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if name in MODELS:
        for key, value in _defaults(name).items():
            values[key], origin[key] = value, "default"
        for key, value in model_hparams(name, budget, setting).items():
            values[key] = value
            origin[key] = chosen_origin if key in setting else "budget"
        for key, value in fit_args(name, budget, setting).items():
            values[key] = value
            origin[key] = chosen_origin if key in split(setting)[0] else "budget"
        for key, resolve in RESOLVED.get(name, {}).items():
            if values.get(key) is None:
                values[key] = resolve(values)
    else:  # a counting baseline: its constructor arguments are its setting
        for key, value in setting.items():
            values[key], origin[key] = value, "tuned"
    return Card(
        name=name, chosen=top["label"] if top else None, values=values, origin=origin,
        tuned=varied, trials=len(space), paper=label,
        paper_source=paper.source if paper else "", paper_differs=paper.differs if paper
        else "", paper_tried=label is not None and label in space,
        valid_mrr={t["label"]: t["valid_mrr"] for t in trials}, pending=why)


def budget_rows(budget: Budget = BUDGET) -> list[tuple[str, str]]:
    """The budget every model shares, as ``(what, value)`` rows."""
    valid = ("all" if budget.valid_limit is None else f"{budget.valid_limit} (fixed, evenly "
             f"spread)")
    return [("embedding size", str(budget.embed_dim)),
            ("epochs", f"at most {budget.epochs} (early stopping ends every run)"),
            ("early stopping", f"{budget.patience} epochs without a better validation "
                               f"{LABELS.get(budget.monitor, budget.monitor)}"),
            ("validation examples ranked each epoch", valid),
            ("optimiser", "Adam"), ("batch", f"{budget.batch_size} examples"),
            ("negatives", f"{budget.num_negatives} sampled unwatched movies per positive"),
            ("loss", "binary cross-entropy")]


def overview(names: list[str] | tuple[str, ...], budget: Budget = BUDGET) -> pd.DataFrame:
    """The tuning of each of ``names`` in one table, read off their cards: the number of
    trials, what the trials varied, the chosen trial and its validation MRR, the paper's
    setting, whether it was among the trials and whether it was chosen, and the seconds of
    training the trials took (the sum of their ``train_seconds`` on record; NaN for a
    counting baseline, which is built, not trained)."""
    rows = {}
    for name in names:
        c = card(name, budget)
        seconds = [t["train_seconds"] for t in load_trials(name) if "train_seconds" in t]
        done = len({t["label"] for t in load_trials(name)})
        rows[name] = {
            # a model whose tuning is not complete says how far it got, and chooses nothing
            "trials": f"{done} of {c.trials} (pending)" if c.pending else c.trials,
            "varied": ", ".join(NAMES.get(k, k) for k in c.tuned) or "–",
            "chosen": "– (tuning not complete)" if c.pending else c.chosen or "–",
            "valid MRR": (float("nan") if c.pending
                          else c.valid_mrr.get(c.chosen, float("nan"))),
            "paper's setting": c.paper or "none given",
            "paper tried": "yes" if c.paper_tried else ("–" if c.paper is None else "no"),
            "paper chosen": ("–" if c.paper is None or c.pending else
                             "yes" if c.paper == c.chosen else "no"),
            "tuning s": float(sum(seconds)) if seconds else float("nan"),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    return frame


def papers_table(names: list[str] | tuple[str, ...], budget: Budget = BUDGET) -> pd.DataFrame:
    """Paper vs here for each of ``names``, from their cards: the paper's setting (the label
    of its trial), where the paper states it, whether it was tried and chosen, and what of it
    is not followed here."""
    rows = {}
    for name in names:
        c = card(name, budget)
        rows[name] = {"paper's setting": c.paper or "none given",
                      "where the paper states it": c.paper_source,
                      "tried / chosen": ("–" if c.paper is None else
                                         f"{'yes' if c.paper_tried else 'no'} / "
                                         + ("– (tuning not complete)" if c.pending else
                                            "yes" if c.paper == c.chosen else "no")),
                      "not followed here": c.paper_differs or "–"}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    return frame


def cards_table(names: list[str] | None = None) -> str:
    """:func:`overview` of every model with something to set (default: every model of the
    tuning record, leaderboard order) as a Markdown table: the README's."""
    names = names if names is not None else ordered([n for n in SPACES if n in PAPERS])
    frame = overview(names)
    frame["valid MRR"] = frame["valid MRR"].map(lambda v: "–" if v != v else f"{v:.4f}")
    frame["tuning s"] = frame["tuning s"].map(lambda v: "–" if v != v else f"{v:,.0f}")
    return markdown_table(frame.astype(str))
