"""Stored notebook outputs are part of the book: they must show today's code and nothing of
the machine they ran on."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from test_notebook_pairs import BOOK_WIDTH

from featint.show import HEADER, blocks, resolve, source_text, where

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
#: Absolute paths of a machine: a home or system folder, a Windows drive.
MACHINE_PATH = re.compile(r"(/(home|root|Users|work|tmp|opt|usr|var)/[\w.-]+)|([A-Z]:\\\\)")


def outputs(path: Path, plain: bool = False) -> list[tuple[int, str]]:
    """``(cell number, text)`` of every stored text output of a notebook (``plain``: only
    streams and ``text/plain``, where displayed code stands as it is, not highlighted)."""
    found = []
    for number, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            texts = [out.get("text", "")] + ([data.get("text/plain", "")] if plain
                                             else list(data.values()))
            for text in texts:
                if isinstance(text, list):
                    text = "".join(text)
                if isinstance(text, str):
                    found.append((number, text))
    return found


def test_source_round_trip():
    from featint.models.fm import FM

    text = source_text(FM, FM.forward)
    assert text.count(HEADER) == 2 and where(FM.forward) == "featint/models/fm.py · FM.forward"
    for location, code in blocks(text):
        assert code == inspect.getsource(resolve(location))
    with pytest.raises(ValueError, match="not defined in featint"):
        where(json.dumps)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_displayed_source_is_the_package_source(path):
    stale = []
    for number, text in outputs(path, plain=True):
        for location, code in blocks(text):
            if code != inspect.getsource(resolve(location)):
                stale.append(f"cell {number}: {location}")
    assert not stale, (f"{path.name} shows package code that has changed since it ran "
                       f"({', '.join(stale)}): re-execute it (make outputs)")


def wide_lines(code: str) -> list[str]:
    """The lines of ``code`` wider than the book (:data:`BOOK_WIDTH`), which it cuts."""
    return [line for line in code.splitlines() if len(line) > BOOK_WIDTH]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_displayed_source_fits_the_book(path):
    """Checked on the current source of each displayed object, not on the stored text: a
    stored block that differs from it already fails the test above until the chapter is
    re-executed, and once it is re-executed the two are the same."""
    wide = [f"cell {number}: {location}: {line[:60]}…"
            for number, text in outputs(path, plain=True)
            for location, _ in blocks(text)
            for line in wide_lines(inspect.getsource(resolve(location)))]
    assert not wide, (f"{path.name} shows package code with lines over {BOOK_WIDTH} "
                      f"characters, which the book cuts: {wide[:3]}")


def test_the_width_check_catches_a_wide_line():
    code = "def f():\n    return '" + "a" * (BOOK_WIDTH - 13) + "'\n"
    assert wide_lines(code) == []
    assert wide_lines(code.replace("'a", "'aa")) == [code.splitlines()[1].replace("'a", "'aa")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_is_shown_through_featint_show(path):
    """``inspect.getsource`` straight in a chapter would escape the check above."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    direct = [n for n, c in enumerate(cells)
              if c["cell_type"] == "code" and "getsource(" in "".join(c["source"])]
    assert not direct, f"{path.name} cells {direct}: show code with featint.show.source"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_show_no_path_of_the_machine(path):
    leaks = [f"cell {n}: {m.group(0)}" for n, text in outputs(path)
             for m in [MACHINE_PATH.search(text)] if m]
    assert not leaks, f"{path.name} stores paths of the machine it ran on: {leaks[:3]}"
