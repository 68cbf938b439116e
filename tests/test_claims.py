"""Every sentence a chapter writes by hand about how a model is trained agrees with its card.

A chapter states a model's setting through its card (``featint.cards``, rendered from the
records training reads) or in generated text. Prose written by hand can still mention a
setting ("the wide part has no L1", "the learning rate is chosen on validation"); this test
reads every Markdown cell of every chapter, finds such sentences (:data:`CLAIMS`) and checks
each against the card of the models the sentence is about. A sentence about a *paper's*
setting ("the paper uses dropout 0.5") is about the paper, not the run, and is left to the
card's paper record.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from featint.cards import Card, card

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
#: The models a chapter is about, when a sentence names none.
CHAPTER_MODELS = {"01": ["fm"], "02": ["ffm"], "03": ["afm"], "04": ["wide_deep"],
                  "05": ["deepfm"], "06": ["nfm"], "07": ["dlrm"], "11": ["sasrec"]}
#: How prose names the models (longest first, so "DeepFM" is not read as "FM").
NAMES = {"Wide & Deep": "wide_deep", "Wide&Deep": "wide_deep", "DLRM simplified":
         "dlrm_simplified", "DeepFM": "deepfm", "SASRec": "sasrec", "DLRM": "dlrm",
         "NFM": "nfm", "AFM": "afm", "FFM": "ffm", "FM": "fm", "MF": "mf"}
#: Words that make a sentence about a paper, a trial not chosen, or a hypothetical.
ELSEWHERE = re.compile(r"\bpaper|\bauthors?\b|et al\.|\bFTRL\b|\bcould\b|\bwould\b|\bif\b|"
                       r"\btrial|\bexercise|\btr(y|ies)\b|\bspace\b|\boption\b|LIBFFM|\blibrar",
                       re.I)


@dataclass(frozen=True)
class Claim:
    """A kind of sentence about a setting: ``pattern`` finds it, ``holds(card, match)`` says
    whether the card agrees, ``about`` the models it can be about (None: any)."""

    label: str
    pattern: re.Pattern
    holds: Callable[[Card, re.Match], bool]
    about: tuple[str, ...] | None = None


def _value(c: Card, key: str, default: Any = None) -> Any:
    return c.values.get(key, default)


def _dropouts(c: Card) -> list[float]:
    return [float(v) for k, v in c.values.items()
            if "dropout" in k and isinstance(v, int | float)]


def _sizes(c: Card) -> list[tuple[int, ...]]:
    return [tuple(v) for k, v in c.values.items()
            if k in ("hidden", "bottom", "top") and isinstance(v, list | tuple)]


CLAIMS = (
    Claim("no L1 on the wide part", re.compile(r"\b(no|without) L1\b", re.I),
          lambda c, m: not _value(c, "wide_l1", 0.0), ("wide_deep",)),
    Claim("no weight decay", re.compile(r"\b(no|without) (weight decay|L2)\b", re.I),
          lambda c, m: not _value(c, "weight_decay", 0.0)),
    Claim("the learning rate is tuned",
          re.compile(r"learning rates? (is |are |was |were )?(chosen|tuned|picked)", re.I),
          lambda c, m: "lr" in c.tuned),
    Claim("the learning rate is fixed",
          re.compile(r"(same|one|fixed) learning rate|learning rate (is |was )?(fixed|not "
                     r"tuned)", re.I),
          lambda c, m: "lr" not in c.tuned),
    Claim("a dropout value", re.compile(r"\bdropout (of |is |at |rate )?(0\.\d+)", re.I),
          lambda c, m: float(m.group(2)) in _dropouts(c)),
    Claim("hidden sizes", re.compile(r"\b(\d{2,4}(?:-\d{2,4})+)\b(?= (MLP|layers|hidden))"),
          lambda c, m: tuple(int(x) for x in m.group(1).split("-")) in _sizes(c)),
    Claim("not pre-trained", re.compile(r"\b(not pre-?trained|without (FM )?pre-?training|"
                                        r"no (FM )?pre-?training)", re.I),
          lambda c, m: not _value(c, "pretrain")),
    Claim("pre-trained from FM",
          re.compile(r"(?<!not )\b(pre-?trained (from|on|with) (an |the |a trained )?FM|"
                     r"starts? from (the |a )?trained FM)", re.I),
          lambda c, m: _value(c, "pretrain") == "fm"),
    Claim("the embedding size", re.compile(r"\b(?:k|embedding size) ?(?:=|of|is) ?(\d+)\b"),
          lambda c, m: int(m.group(1)) == _value(c, "embed_dim")),
)


def markdown_sentences(path: Path) -> list[str]:
    """The sentences of the Markdown cells of a jupytext percent chapter (hand-written prose,
    not what code cells generate), code spans and math removed."""
    text, cells, inside = path.read_text(encoding="utf-8"), [], False
    for line in text.splitlines():
        if line.startswith("# %%"):
            inside = "[markdown]" in line
            cells.append([])
        elif inside and cells:
            cells[-1].append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    prose = " ".join(" ".join(c) for c in cells if c)
    prose = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", " ", prose)
    return [s.strip() for s in re.split(r"(?<=[.!?:;])\s+|\n|\|", prose) if s.strip()]


def models_of(sentence: str, chapter: str) -> list[str]:
    """The models a sentence names, else the chapter's own."""
    found, rest = [], sentence
    for display, name in NAMES.items():
        if re.search(rf"(?<![\w-]){re.escape(display)}(?![\w-])", rest):
            found.append(name)
            rest = rest.replace(display, " ")
    return found or CHAPTER_MODELS.get(chapter, [])


def problems(path: Path, cards: Callable[[str], Card] = card) -> list[str]:
    """Every hand-written sentence of the chapter at ``path`` that contradicts a card."""
    chapter = path.name[:2]
    out = []
    for sentence in markdown_sentences(path):
        if ELSEWHERE.search(sentence):
            continue
        for claim in CLAIMS:
            for match in claim.pattern.finditer(sentence):
                for name in models_of(sentence, chapter):
                    if claim.about is not None and name not in claim.about:
                        continue
                    if not claim.holds(cards(name), match):
                        out.append(f"{path.name}: {claim.label!r} is not {name}'s setting: "
                                   f"{sentence!r}")
    return out


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_chapter_s_prose_agrees_with_the_cards(path):
    assert not problems(path)


def fake_card(**values: Any) -> Card:
    tuned = values.pop("tuned", [])
    return Card("x", "a", values, {k: "tuned" for k in values}, tuned, 3, None, "", "", False)


@pytest.mark.parametrize(("sentence", "chapter", "values", "wrong"), [
    # the audit's sentences: 04 said "no L1" while the wide part had L1 1e-6; 07 said "no
    # weight decay" while DLRM trained with 1e-5; every chapter said the rate was tuned
    ("Adam for both, no L1.", "04", {"wide_l1": 1e-6}, True),
    ("Adam for both, no L1.", "04", {"wide_l1": 0.0}, False),
    ("DLRM trains with no weight decay.", "07", {"weight_decay": 1e-5}, True),
    ("The learning rate is chosen on validation.", "02", {"lr": 5e-3, "tuned": []}, True),
    ("The learning rate is chosen on validation.", "02", {"lr": 5e-3, "tuned": ["lr"]}, False),
    ("Here DeepFM keeps a dropout of 0.5 after each layer.", "05", {"dropout": 0.2}, True),
    ("The 200-200-200 layers of DeepFM.", "05", {"hidden": [64, 64, 64]}, True),
    ("The paper's DeepFM uses 400-400-400 layers.", "05", {"hidden": [64, 64, 64]}, False),
    ("NFM starts from a trained FM.", "06", {"pretrain": None}, True),
    ("NFM is not pre-trained.", "06", {"pretrain": "fm"}, True),
])
def test_the_check_finds_a_sentence_that_contradicts_a_card(tmp_path, sentence, chapter,
                                                            values, wrong):
    path = tmp_path / f"{chapter}_x.py"
    path.write_text(f"# %% [markdown]\n# Some words. {sentence}\n")
    found = problems(path, lambda name: fake_card(**dict(values)))
    assert bool(found) == wrong, found
