"""Every notebook is a jupytext pair: ``NN_name.ipynb`` (with outputs) and ``NN_name.py``
(percent format, the file to review). The two must hold the same cells."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def cells(path: Path) -> list[tuple[str, str]]:
    """(type, source) of every cell, as jupytext reads the file."""
    return [(cell.cell_type, cell.source) for cell in jupytext.read(path).cells]


def pair_differences(ipynb: Path, py: Path) -> list[str]:
    """Human-readable differences between the cells of a pair (empty when in sync)."""
    a, b = cells(ipynb), cells(py)
    out = []
    for n, ((type_a, source_a), (type_b, source_b)) in enumerate(zip(a, b, strict=False)):
        if type_a != type_b:
            out.append(f"cell {n}: a {type_a} cell in {ipynb.name}, {type_b} in {py.name}")
        elif source_a != source_b:
            lines_a, lines_b = source_a.splitlines() + [""], source_b.splitlines() + [""]
            k = next((k for k, (x, y) in enumerate(zip(lines_a, lines_b, strict=False))
                      if x != y), None)
            if k is None:
                out.append(f"cell {n}: the sources differ in line endings only")
            else:
                out.append(f"cell {n}, line {k + 1}: {ipynb.name} has {lines_a[k][:80]!r}, "
                           f"{py.name} has {lines_b[k][:80]!r}")
    if len(a) != len(b):
        out.append(f"{ipynb.name} has {len(a)} cells, {py.name} has {len(b)}")
    return out


def test_every_notebook_has_its_pair():
    ipynb = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    py = {p.stem for p in NOTEBOOKS.glob("*.py")}
    assert not ipynb - py, f"notebooks without a .py: {sorted(ipynb - py)}"
    assert not py - ipynb, f".py files without a notebook: {sorted(py - ipynb)}"


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
def test_pair_holds_the_same_cells(name):
    ipynb, py = NOTEBOOKS / f"{name}.ipynb", NOTEBOOKS / f"{name}.py"
    assert py.exists(), f"{py} is missing"
    differences = pair_differences(ipynb, py)
    assert not differences, (
        f"{name}: the pair is out of sync, run `jupytext --sync {ipynb}`:\n"
        + "\n".join(differences[:5]))


def test_the_check_catches_a_difference(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 99 · Title\n\nSome prose."),
        nbformat.v4.new_code_cell("x = 1\nprint(x)"),
    ])
    ipynb, py = tmp_path / "99_x.ipynb", tmp_path / "99_x.py"
    jupytext.write(nb, ipynb)
    jupytext.write(nb, py, fmt="py:percent")
    assert pair_differences(ipynb, py) == []
    py.write_text(py.read_text().replace("x = 1", "x = 2"))
    assert len(pair_differences(ipynb, py)) == 1
    jupytext.write(nb, py, fmt="py:percent")
    with open(py, "a") as f:
        f.write("\n# %%\ny = 3\n")
    assert pair_differences(ipynb, py) == ["99_x.ipynb has 2 cells, 99_x.py has 3"]
    jupytext.write(nb, py, fmt="py:percent")
    py.write_text(py.read_text().replace("# %% [markdown]", "# %%"))
    assert pair_differences(ipynb, py)[0].startswith("cell 0: a markdown cell")


#: The widest code line the book shows whole, without a scroll bar.
BOOK_WIDTH = 88


def long_code_lines(path: Path) -> list[str]:
    """``cell N: line`` for every code-cell line wider than :data:`BOOK_WIDTH`."""
    return [f"cell {n}: {line[:60]}…" for n, cell in enumerate(jupytext.read(path).cells)
            if cell.cell_type == "code" for line in cell.source.splitlines()
            if len(line) > BOOK_WIDTH]


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.py")))
def test_code_lines_fit_the_book(name):
    long = long_code_lines(NOTEBOOKS / f"{name}.py")
    assert not long, f"{name}: code lines over {BOOK_WIDTH} characters:\n" + "\n".join(long)


def test_the_width_check_catches_a_long_line(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("x" * 120),  # prose wraps in the book: allowed
        nbformat.v4.new_code_cell("y = 1\n" + "z = '" + "a" * 90 + "'"),
    ])
    path = tmp_path / "99_x.py"
    jupytext.write(nb, path, fmt="py:percent")
    assert len(long_code_lines(path)) == 1
