"""Choose protocol v3's history window W on validation only (``make window``).

The history field of protocol v2 was every movie watched before ``t``; protocol v3 keeps the
last ``W``. The candidates are ``W`` in 5, 10, 20, 50, 100 and all (``None``). Following the
protocol, FM and MF are trained for every candidate with seeds 0, 1 and 2, each with its tuned
setting under the comparison's budget (early stopping on the validation subsample), and
scored on the *whole* validation set (8,289 examples). The test set is never looked at.

The rule, fixed before the run: for each ``W`` the score is the validation MRR averaged over
the two models and the three seeds; the best ``W`` is the one with the highest score, and the
window chosen is the *smallest* ``W`` whose score is within one standard error of the best
(the standard error over seeds of the best's FM+MF mean): among windows the seeds cannot tell
apart, the shortest, which is cheaper and keeps only the recent past. MF reads only the user
and movie fields, so its runs are the same for every ``W`` (the record shows it; the choice
rests on FM).

Then, with the chosen ``W``, the same runs with a second bag of every movie watched so far
(``history_all``): it stays in the protocol only if it raises the same score by more than one
standard error.

Writes ``featint/records/protocol/window.json`` (every run, the curve and the choice) after
each run, so an interrupted run continues (``--resume`` is the default: runs on record are
kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import featint
from featint.config import BUDGET
from featint.evaluate import metrics, rank_examples
from featint.files import write_json
from featint.task import build_task
from featint.training import trained

CANDIDATES: tuple[int | None, ...] = (5, 10, 20, 50, 100, None)
MODELS = ("fm", "mf")
SEEDS = (0, 1, 2)
RECORD = Path(featint.__file__).resolve().parent / "records" / "protocol" / "window.json"
FORMAT = "featint-window/1"


def label(window: int | None, history_all: bool = False) -> str:
    return ("all" if window is None else str(window)) + (" + all-history bag" if history_all
                                                        else "")


def one_run(ml: Any, window: int | None, history_all: bool, name: str, seed: int,
            progress: bool) -> dict[str, Any]:
    """Train ``name`` with ``seed`` on protocol v3 with this history; its validation record."""
    task = build_task(ml, protocol=3, window=window, history_all=history_all)
    start = time.perf_counter()
    model, history = trained(name, task, seed, progress=progress)
    valid = metrics(rank_examples(model, task, task.examples("valid")))
    return {"window": window, "history_all": history_all, "model": name, "seed": seed,
            **{f"valid_{k}": v for k, v in valid.items()},
            "best_epoch": history.best_epoch, "epochs": len(history.epochs),
            "seconds": time.perf_counter() - start}


def score(runs: list[dict], window: int | None, history_all: bool) -> tuple[float, float]:
    """Mean validation MRR over models and seeds, and the standard error over seeds of the
    per-seed FM+MF mean."""
    per_seed = []
    for seed in SEEDS:
        mine = [r["valid_mrr"] for r in runs if r["window"] == window and r["seed"] == seed
                and r["history_all"] == history_all]
        if len(mine) == len(MODELS):
            per_seed.append(np.mean(mine))
    if len(per_seed) < len(SEEDS):
        return float("nan"), float("nan")
    return float(np.mean(per_seed)), float(np.std(per_seed, ddof=1) / np.sqrt(len(per_seed)))


def choose(runs: list[dict]) -> dict[str, Any]:
    """The rule of the module docstring, applied to the runs on record."""
    curve = {label(w): score(runs, w, False) for w in CANDIDATES}
    best = max(CANDIDATES, key=lambda w: curve[label(w)][0])
    best_mean, best_se = curve[label(best)]
    within = [w for w in CANDIDATES if curve[label(w)][0] >= best_mean - best_se]
    chosen = min(within, key=lambda w: np.inf if w is None else w)
    out: dict[str, Any] = {"curve": {k: {"mrr": m, "se": s} for k, (m, s) in curve.items()},
                           "best": best, "chosen": chosen}
    with_all = score(runs, chosen, True)
    if np.isfinite(with_all[0]):
        own = curve[label(chosen)]
        out["history_all"] = {"mrr": with_all[0], "se": with_all[1],
                              "keep": bool(with_all[0] > own[0] + own[1])}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="the ml-100k folder")
    parser.add_argument("--out", type=Path, default=RECORD, help=f"default {RECORD}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    ml = featint.load_movielens(args.data_dir)
    record = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = record.get("runs", []) if record.get("format") == FORMAT else []
    done = {(r["window"], r["history_all"], r["model"], r["seed"]) for r in runs}
    jobs = [(w, False, m, s) for s in SEEDS for w in CANDIDATES for m in MODELS]
    for phase in ("curve", "history_all"):
        if phase == "history_all":
            jobs = [(choose(runs)["chosen"], True, m, s) for s in SEEDS for m in MODELS]
        for job in jobs:
            if job in done:
                continue
            runs.append(one_run(ml, *job, progress=not args.quiet))
            done.add(job)
            r = runs[-1]
            print(f"W {label(r['window'], r['history_all']):<22} {r['model']:<4} seed "
                  f"{r['seed']}  valid MRR {r['valid_mrr']:.4f}  HR@10 {r['valid_hr@10']:.4f}"
                  f"  mean rank {r['valid_mean_rank']:.1f}  ({r['seconds']:.0f} s)",
                  flush=True)
            write_json(args.out, {"format": FORMAT, "candidates": list(CANDIDATES),
                                  "models": list(MODELS), "seeds": list(SEEDS),
                                  "budget": str(BUDGET), "runs": runs})
    result = choose(runs)
    write_json(args.out, {"format": FORMAT, "candidates": list(CANDIDATES),
                          "models": list(MODELS), "seeds": list(SEEDS),
                          "budget": str(BUDGET), "runs": runs, **result})
    print(json.dumps({k: v for k, v in result.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
