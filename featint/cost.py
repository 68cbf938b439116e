"""What a long step will cost, said before it starts.

The releases after MovieLens 100K are up to 320 times larger, and a step that takes a second
on 100K can take hours there, or need more memory than the machine has. Each such step
estimates its cost first: :func:`check_memory` stops with a :class:`MemoryEstimateError` (a
clear message, never an out-of-memory kill) when the estimate exceeds the memory available,
and :func:`announce` prints an estimate of time or memory before a step that is long.
The estimates are stated as such: the memory of a task is calibrated on measured peaks
(:func:`task_bytes`), the time of a ranking is extrapolated from its first batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Print an estimate before a step expected to take at least this many seconds ...
ANNOUNCE_SECONDS = 30.0
#: ... or to need at least this many bytes.
ANNOUNCE_BYTES = 2 * 2**30
#: The share of the available memory an estimate may use before it is refused.
MEMORY_SHARE = 0.9


class MemoryEstimateError(MemoryError):
    """A step would need more memory than is available; the message gives the estimate,
    what is available and what to do instead."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``); None where it
    cannot be read (then nothing is refused)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def size(num_bytes: float) -> str:
    """``3.2 GB``, ``850 MB``."""
    return f"{num_bytes / 2**30:.1f} GB" if num_bytes >= 2**30 else f"{num_bytes / 2**20:.0f} MB"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.4 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def announce(text: str) -> None:
    """Say what a step is about to cost (standard error, so results on standard output stay
    clean)."""
    print(text, file=sys.stderr, flush=True)


def check_memory(need: float, what: str, fix: str, available: int | None = None) -> None:
    """Refuse a step estimated to need ``need`` bytes when that is more than
    :data:`MEMORY_SHARE` of the ``available`` memory (default: :func:`available_memory`);
    announce it when it is large (:data:`ANNOUNCE_BYTES`)."""
    available = available_memory() if available is None else available
    if available is not None and need > MEMORY_SHARE * available:
        raise MemoryEstimateError(
            f"{what} needs about {size(need)} of memory (an estimate), and {size(available)} "
            f"is available: it would be killed for lack of memory. Fix: {fix}")
    if need >= ANNOUNCE_BYTES:
        free = f" of the {size(available)} available" if available is not None else ""
        announce(f"{what}: about {size(need)} of memory{free} (an estimate)")


def task_bytes(num_ratings: int, num_users: int, num_items: int, num_genres: int) -> int:
    """Peak memory of :func:`featint.task.build_task` in bytes, an estimate: about
    ``150 + 48 G + 28 (11 + 2 G)`` bytes per rating for ``G`` genres (the sorted ratings,
    the running genre sums, the context slots while they are joined), plus the
    ``(users, movies)`` position table of 4-byte integers. Measured peaks: 221 MB for
    MovieLens 100K (this gives 249 MB), 2.0 GB for a synthetic set of 1M's size (2.5 GB)."""
    per_rating = 150 + 48 * num_genres + 28 * (11 + 2 * num_genres)
    return int(per_rating * num_ratings + 4 * num_users * num_items)
