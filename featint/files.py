"""Writing results so that nobody ever reads half a file: atomic writes, strict JSON, ranks."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step.

    If the block raises (or the process dies), ``path`` keeps its previous content (or stays
    absent) and the temporary file is removed: readers never see half a file. ``mode`` is
    ``"w"`` or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None, so that a diverged run
    (NaN loss) is recorded as strict JSON ``null`` instead of stopping the comparison."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON (no NaN), atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")


def save_ranks(path: str | Path, ranks: np.ndarray, examples: np.ndarray) -> None:
    """Save the per-example ranks of one run as a compressed ``.npz``, atomically."""
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, ranks=ranks.astype(np.float32), examples=examples.astype(np.int32))


def load_ranks(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(ranks float64, examples int64)`` saved by :func:`save_ranks`."""
    with np.load(path) as data:
        return data["ranks"].astype(np.float64), data["examples"].astype(np.int64)
