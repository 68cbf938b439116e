"""The README's leaderboard is the comparison's record shipped with featint, as `featint
leaderboard --markdown` prints it: a rerun that changes the record without the README (or the
reverse) fails here."""

from __future__ import annotations

from pathlib import Path

from featint.chapter import COMPARISON
from featint.compare import Comparison
from featint.report import (
    convergence_text,
    format_leaderboard,
    format_tuning,
    trials_table,
    tuning_summary,
)

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
    """No committed run may have its best epoch at the epoch cap: such a model was cut off
    while improving, not compared."""
    found = Comparison.load(COMPARISON)
    cap = found.results["settings"]["budget"]["epochs"]
    capped = [(r["model"], r["seed"]) for r in found.runs
              if r.get("history") and r["best_epoch"] >= cap]
    assert not capped, f"runs stopped by the {cap}-epoch cap: {capped}"
    assert convergence_text(found.runs, cap) in (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_tuning_table_is_the_committed_trials():
    """The README's tuning table is `featint tuning --markdown` over the tuning record."""
    table = trials_table()
    assert not table.empty, "no tuning trials committed"
    text = format_tuning(tuning_summary(table), markdown=True)
    assert text in (ROOT / "README.md").read_text(encoding="utf-8")
