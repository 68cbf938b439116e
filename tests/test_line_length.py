"""The chapters show the models' code (:func:`featint.show.source`) and the book cuts lines
wider than :data:`BOOK_WIDTH`: every line of ``featint/layers.py`` and ``featint/models/``
must fit it, although ruff allows 100 characters in the rest of the package."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_notebook_pairs import BOOK_WIDTH

PACKAGE = Path(__file__).resolve().parents[1] / "featint"
#: The package files whose code the chapters show.
SHOWN = [PACKAGE / "layers.py", *sorted((PACKAGE / "models").glob("*.py"))]


def long_lines(text: str) -> list[str]:
    """``line N: start…`` for every line of ``text`` wider than :data:`BOOK_WIDTH`."""
    return [f"line {n}: {line[:60]}…" for n, line in enumerate(text.splitlines(), 1)
            if len(line) > BOOK_WIDTH]


@pytest.mark.parametrize("path", SHOWN, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_shown_package_code_fits_the_book(path):
    long = long_lines(path.read_text(encoding="utf-8"))
    assert not long, (f"featint/{path.relative_to(PACKAGE).as_posix()}: lines over "
                      f"{BOOK_WIDTH} characters, which the book cuts:\n" + "\n".join(long))


def test_the_check_catches_a_long_line():
    assert SHOWN[0].name == "layers.py" and len(SHOWN) > 5
    fits = "x = 1\n" + "y = '" + "a" * (BOOK_WIDTH - 6) + "'\n"
    assert long_lines(fits) == []
    assert long_lines(fits + "z = '" + "a" * (BOOK_WIDTH - 5) + "'\n") == [
        "line 3: z = '" + "a" * 55 + "…"]
