"""The README's leaderboard is the comparison's record shipped with featint, as `featint
leaderboard --markdown` prints it: a rerun that changes the record without the README (or the
reverse) fails here."""

from __future__ import annotations

from pathlib import Path

from featint.chapter import COMPARISON
from featint.compare import Comparison
from featint.report import convergence_text, format_leaderboard

ROOT = Path(__file__).resolve().parents[1]


def test_readme_leaderboard_is_the_committed_results():
    found = Comparison.load(COMPARISON)
    assert found.results["complete"] and not found.results["settings"]["quick"]
    table = format_leaderboard(found.leaderboard(), markdown=True)
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")


def test_committed_results_follow_the_protocol_of_the_package():
    """The record must be of the protocol featint builds now: never a table of another one."""
    from featint.task import PROTOCOL

    found = Comparison.load(COMPARISON)
    assert found.protocol == PROTOCOL and found.protocol_warning() is None
    assert f"protocol v{PROTOCOL}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_committed_results_converged_and_the_readme_says_so():
    """Every committed run was ended by early stopping (``patience`` epochs past its best),
    none by the epoch cap: a model the cap cut off may still have been improving, so it has
    not been compared."""
    found = Comparison.load(COMPARISON)
    budget = found.results["settings"]["budget"]
    cap, patience = budget["epochs"], budget["patience"]
    capped = [(r["model"], r["seed"], r["best_epoch"], r["epochs"]) for r in found.runs
              if r.get("history") and r["epochs"] - r["best_epoch"] < patience]
    assert not capped, f"runs not ended by early stopping (cap {cap}): {capped}"
    assert convergence_text(found.runs, cap, patience) in (ROOT / "README.md").read_text(
        encoding="utf-8")


def test_every_generated_block_of_the_readme_is_what_the_records_give():
    """Each block between ``<!-- featint:NAME -->`` markers is what ``book/readme.py``
    generates from the records now: a rerun that changes a record without the README (or an
    edit of a block by hand) fails here."""
    from helpers import load_script

    readme = load_script(ROOT / "book" / "readme.py")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    names = [m.group("name") for m in readme.MARKER.finditer(text)]
    assert set(names) == set(readme.BLOCKS), "README.md lacks a block, or has an unknown one"
    _, changed = readme.render(text)
    assert not changed, f"README.md is out of date in {changed}: run `python book/readme.py`"
