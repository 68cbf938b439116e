"""The repository's address, kept in one place: ``[project.urls] Repository`` of pyproject.toml.

Two places need the address where featint cannot be imported to ask for it: the first cell of
every chapter, which installs featint from the repository when a notebook runs outside it
(Colab, Binder), and the book's repository, issue and launch buttons (``book/_config.yml``).
This script writes pyproject's address into both::

    python book/repository.py                  # propagate pyproject.toml's address
    python book/repository.py https://github.com/me/featint   # set it, then propagate

The GitHub Pages workflow runs the second form with the repository it builds from;
``tests/test_packaging.py`` checks that every copy equals pyproject's.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
BOOK_CONFIG = ROOT / "book" / "_config.yml"
#: The install cell's requirement: ``featint @ git+<address>``.
INSTALL = re.compile(r"featint @ git\+(https?://[^\"'\s\\]+)")
#: The book configuration's ``repository: url:`` line.
BOOK_URL = re.compile(r"(?m)^(repository:\n  url: )(\S+)$")
PYPROJECT_URL = re.compile(r'(?m)^(Repository = ")([^"]+)(")$')


def address() -> str:
    """``[project.urls] Repository`` of pyproject.toml (its one ``Repository = "..."`` line;
    read as text, so that the script runs on any Python featint supports)."""
    found = PYPROJECT_URL.findall(PYPROJECT.read_text())
    if len(found) != 1:
        raise SystemExit(f"pyproject.toml must hold one `Repository = \"...\"` line under "
                         f"[project.urls], found {len(found)}")
    return found[0][1]


def notebook_files() -> list[Path]:
    """Every chapter, both halves of each jupytext pair."""
    folder = ROOT / "notebooks"
    return sorted([*folder.glob("*.py"), *folder.glob("*.ipynb")])


def copies() -> dict[Path, list[str]]:
    """Every place that holds a copy of the address, and the addresses found there."""
    found = {path: INSTALL.findall(path.read_text(encoding="utf-8"))
             for path in notebook_files()}
    found[BOOK_CONFIG] = [m.group(2) for m in BOOK_URL.finditer(BOOK_CONFIG.read_text())]
    return found


def propagate(url: str) -> list[Path]:
    """Write ``url`` into every copy; returns the files that changed."""
    changed = []
    for path in notebook_files():
        text = path.read_text(encoding="utf-8")
        new = INSTALL.sub(f"featint @ git+{url}", text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    text = BOOK_CONFIG.read_text()
    new = BOOK_URL.sub(lambda m: m.group(1) + url, text)
    if new != text:
        BOOK_CONFIG.write_text(new)
        changed.append(BOOK_CONFIG)
    return changed


def main(argv: list[str]) -> int:
    if argv:
        url = argv[0].rstrip("/")
        if not re.fullmatch(r"https?://\S+", url):
            print(f"{url!r} is not an http(s) address; give e.g. "
                  f"https://github.com/OWNER/featint", file=sys.stderr)
            return 2
        text = PYPROJECT.read_text()
        PYPROJECT.write_text(PYPROJECT_URL.sub(lambda m: m.group(1) + url + m.group(3), text))
    url = address()
    for path in propagate(url):
        print(f"{path.relative_to(ROOT)}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
