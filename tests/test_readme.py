"""The README's leaderboard is the committed results, as `featint leaderboard --markdown`
prints them: a rerun that changes results/ without the README (or the reverse) fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from featint.compare import RESULTS_FILE, Comparison
from featint.report import (
    convergence_text,
    format_leaderboard,
    format_tuning,
    trials_table,
    tuning_summary,
)

ROOT = Path(__file__).resolve().parents[1]


def test_readme_leaderboard_is_the_committed_results():
    if not (ROOT / "results" / RESULTS_FILE).is_file():
        pytest.skip("no results/ committed")
    found = Comparison.load(ROOT / "results")
    assert found.results["complete"] and not found.results["settings"]["quick"]
    table = format_leaderboard(found.leaderboard(), markdown=True)
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")


def test_committed_results_follow_the_protocol_of_the_package():
    """results/ must be of the protocol featint builds now: never a table of another one."""
    from featint.task import PROTOCOL

    if not (ROOT / "results" / RESULTS_FILE).is_file():
        pytest.skip("no results/ committed")
    found = Comparison.load(ROOT / "results")
    assert found.protocol == PROTOCOL and found.protocol_warning() is None
    assert f"protocol v{PROTOCOL}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_committed_results_converged_and_the_readme_says_so():
    """No committed run may have its best epoch at the epoch cap: such a model was cut off
    while improving, not compared."""
    if not (ROOT / "results" / RESULTS_FILE).is_file():
        pytest.skip("no results/ committed")
    found = Comparison.load(ROOT / "results")
    cap = found.results["settings"]["budget"]["epochs"]
    capped = [(r["model"], r["seed"]) for r in found.runs
              if r.get("history") and r["best_epoch"] >= cap]
    assert not capped, f"runs stopped by the {cap}-epoch cap: {capped}"
    assert convergence_text(found.runs, cap) in (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_tuning_table_is_the_committed_trials():
    """The README's tuning table is `featint tuning --markdown` over results/tuning."""
    table = trials_table(ROOT / "results" / "tuning")
    assert not table.empty, "no tuning trials committed"
    text = format_tuning(tuning_summary(table), markdown=True)
    assert text in (ROOT / "README.md").read_text(encoding="utf-8")
