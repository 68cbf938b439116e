"""Showing package code in a chapter, in a form a test can keep honest.

A chapter that explains a model shows the lines of ``featint`` that compute it. Stored outputs
outlive the code they show, so :func:`source` puts a header above each object's source,
``# featint source: featint/models/ffm.py · FFM.block``, and ``tests/test_stored_outputs.py``
compares every such block in every stored notebook output with the package as it is now:
a chapter that shows old code fails the tests until it is re-executed (``make outputs``).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

HEADER = "# featint source: "


def where(obj: Any) -> str:
    """``featint/models/ffm.py · FFM.block``: the file (from the package root) and the
    qualified name of a class, function or method of featint."""
    module = inspect.getmodule(obj)
    if module is None or not module.__name__.startswith("featint"):
        raise ValueError(f"{obj!r} is not defined in featint; show only featint's own code")
    path = Path(*module.__name__.split(".")).with_suffix(".py").as_posix()
    return f"{path} · {obj.__qualname__}"


def resolve(location: str) -> Any:
    """The object named by :func:`where`'s text (the inverse of :func:`where`)."""
    path, qualname = location.split(" · ")
    obj: Any = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def source_text(*objects: Any) -> str:
    """The source of each object under its header, blocks separated by a blank line."""
    return "\n".join(f"{HEADER}{where(o)}\n{inspect.getsource(o)}" for o in objects)


def source(*objects: Any) -> Any:
    """Display the current source of featint objects (syntax-highlighted in JupyterLab and
    the book), each under the header that lets the tests check it against the package."""
    from IPython.display import Code

    return Code(source_text(*objects), language="python")


def blocks(text: str) -> list[tuple[str, str]]:
    """Split a displayed :func:`source_text` back into ``(location, source)`` pairs."""
    found = []
    for part in text.split(HEADER)[1:]:
        location, _, code = part.partition("\n")
        found.append((location, code.rstrip("\n") + "\n"))
    return found
