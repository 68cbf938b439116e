"""The README's tables and sentences about results, generated from the records.

Every block of the README that states a result sits between two markers,
``<!-- featint:NAME -->`` and ``<!-- /featint:NAME -->``, and is written by this script from
the records shipped with featint (the comparison, the tuning trials, the protocol's window,
protocol v2's summary, the ablation and the peers)::

    python book/readme.py          # rewrite every block from the records
    python book/readme.py --check  # exit 1 if a block differs from what the records give

``tests/test_readme.py`` runs the check, so a README that says something the records do not
fails the tests. The prose around the blocks states no number of its own.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(
    r"(<!-- featint:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /featint:(?P=name) -->)", re.S)


#: A block whose record this release of featint does not ship (a long run not made yet).
NOT_MEASURED = ("*Not measured yet:* this release of featint ships no record of {what}; "
                "`{command}` makes it, and this block then shows it.")


def _comparison():
    from featint.chapter import load_comparison

    return load_comparison()[0]


def leaderboard() -> str:
    """The leaderboard: every metric with its interval over test examples, as
    ``featint leaderboard --markdown`` prints it."""
    from featint.report import format_leaderboard

    return format_leaderboard(_comparison().leaderboard(), markdown=True)


def noise() -> str:
    """HR@10, MRR and mean rank with both intervals: over test examples only, and with the
    training noise (the spread over seeds) in it."""
    from featint.report import leaderboard_cells, markdown_table

    cells = leaderboard_cells(_comparison().leaderboard(), intervals="both")
    keep = [c for c in cells.columns if c.split(" with")[0] in ("HR@10", "MRR", "mean rank")]
    return markdown_table(cells[keep])


def letters() -> str:
    """The compact letters of HR@10, MRR and mean rank: models that share a letter are not
    separated by the pairwise test."""
    from featint.report import letters_table, markdown_table

    comparison = _comparison()
    table = letters_table([comparison.pairwise(m) for m in ("hr@10", "mrr", "mean_rank")])
    return markdown_table(table)


def pairwise() -> str:
    """What the pairwise test on HR@10 says, in sentences generated from it."""
    from featint.report import pairwise_markdown

    return pairwise_markdown(_comparison().pairwise("hr@10"), per_model=False)


def convergence() -> str:
    """How the trained runs stopped."""
    from featint.report import convergence_text

    comparison = _comparison()
    budget = comparison.results["settings"]["budget"]
    stopped = convergence_text(comparison.runs, budget["epochs"], budget["patience"])
    text = f"Convergence: {stopped}."
    if comparison.pending:  # registered models the comparison did not train, and why
        text += " Not in this comparison: " + "; ".join(
            f"{name}, because {why}" for name, why in comparison.pending.items()) + "."
    return text


def tuning() -> str:
    """Every model's tuning, from its card."""
    from featint.cards import cards_table

    return cards_table()


def window() -> str:
    """Protocol v3's window: the validation curve on record."""
    from featint.report import window_table

    return window_table()


def protocol() -> str:
    """Each model's test HR@10 and mean rank under protocol v2 and v3 (means over seeds)."""
    import pandas as pd

    from featint.report import markdown_table, protocol_change, protocol_record

    frame = protocol_change(protocol_record()["aggregate"], _comparison().aggregates)
    shown = pd.DataFrame({
        "HR@10 v2 → v3": [f"{a:.4f} → {b:.4f} ({b - a:+.4f})" for a, b in
                          zip(frame["hr@10 before"], frame["hr@10 after"], strict=True)],
        "mean rank v2 → v3": [f"{a:.1f} → {b:.1f} ({b - a:+.1f})" for a, b in
                              zip(frame["mean_rank before"], frame["mean_rank after"],
                                  strict=True)],
    }, index=frame.index)
    return markdown_table(shown)


def ablation() -> str:
    """The ablation's effects (each change minus the baseline, mean over seeds, 95% t
    interval over seeds)."""
    from featint.config import RECORDS
    from featint.report import ablation_table, load_ablation, markdown_table
    from featint.tuning import RecordError

    try:
        table = ablation_table(load_ablation(RECORDS / "ablation"))
    except RecordError:
        return NOT_MEASURED.format(what="the ablation", command="make ablation")
    table.index = [f"{model}: {change}" for model, change in table.index]
    table.index.name = "model: change"
    return markdown_table(table)


def peers() -> str:
    """Every peer twin beside its featint model, paired over test examples and seeds."""
    import pandas as pd

    from featint.config import RECORDS
    from featint.report import load_peers, markdown_table, peer_pairs
    from featint.tuning import RecordError

    try:
        pairs = peer_pairs(_comparison(), load_peers(RECORDS / "peers"))
    except RecordError:
        return NOT_MEASURED.format(what="the peer twins", command="make peers")
    rows = {}
    for _, row in pairs.iterrows():
        cells = {"library": row["library"], "features": row["features"],
                 "featint model": row["featint_model"]}
        for m, digits in (("hr@10", 4), ("mean_rank", 1)):
            cells[f"{m} twin → featint"] = (
                f"{row[f'{m} twin']:.{digits}f} → {row[f'{m} featint']:.{digits}f}")
            cells[f"{m}: featint minus twin"] = (
                f"{row[f'{m} difference']:+.{digits}f} [{row[f'{m} lo']:+.{digits}f}, "
                f"{row[f'{m} hi']:+.{digits}f}] ({row[f'{m} verdict']})")
        rows[row["twin"]] = cells
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "twin"
    return markdown_table(frame)


def environment() -> str:
    """The environment variables featint reads."""
    from featint.config import environment_table

    return environment_table()


BLOCKS: dict[str, Callable[[], str]] = {
    "leaderboard": leaderboard, "noise": noise, "letters": letters, "pairwise": pairwise,
    "convergence": convergence, "tuning": tuning, "window": window, "protocol": protocol,
    "ablation": ablation, "peers": peers, "environment": environment,
}


def render(text: str, only: set[str] | None = None) -> tuple[str, list[str]]:
    """``text`` with every block (or those in ``only``) regenerated, and the names of the
    blocks that changed."""
    changed = []

    def fill(match: re.Match) -> str:
        name = match.group("name")
        if name not in BLOCKS:
            raise SystemExit(f"README.md has a block {name!r} that book/readme.py does not "
                             f"know; blocks: {', '.join(BLOCKS)}")
        if only is not None and name not in only:
            return match.group(0)
        body = BLOCKS[name]().rstrip("\n") + "\n"
        if body != match.group("body"):
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return MARKER.sub(fill, text), changed


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new, changed = render(text)
    if "--check" in argv:
        if changed:
            print(f"README.md is out of date in: {', '.join(changed)}; run "
                  f"`python book/readme.py`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    print("rewrote: " + (", ".join(changed) or "nothing (already current)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
