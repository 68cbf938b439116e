"""The README's leaderboard is the committed results, as `featint leaderboard --markdown`
prints them: a rerun that changes results/ without the README (or the reverse) fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from featint.compare import RESULTS_FILE, Comparison
from featint.report import format_leaderboard

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
