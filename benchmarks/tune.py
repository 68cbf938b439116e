"""The same tuning budget for every model, scored on validation only (``make tune``).

For every model and every setting of its search space (:data:`featint.tuning.SPACES`: the
same number for every model, the paper's recommended setting among them), train with the
comparison's budget (:class:`featint.config.Budget`: epoch cap, early stopping on the
validation subsample, batches, negatives) and seed 0 through the model cache
(:func:`featint.training.trained`), then rank the *whole* validation set with the restored
weights; a counting baseline is built from the fit period instead. The test set is never
looked at. Each model's trials go to ``featint/records/tuning/<model>.json`` (package data:
an installed featint trains the same settings) as they finish;
:func:`featint.training.setting_of` picks the best validation MRR from there, and ``featint
compare`` trains with it (its seed-0 run is the chosen trial itself, read back from the model
cache).

A trial already on record with the same setting and the same training code is not run
again, so an interrupted ``make tune`` continues where it stopped, and several processes can
tune different models at once (``--models``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import featint
from featint.baselines import COUNTING, choose
from featint.config import BUDGET, current
from featint.evaluate import metrics, rank_examples
from featint.files import atomic_open
from featint.report import ordered
from featint.task import NextMovieTask
from featint.training import describe, source_digests, trained
from featint.tuning import FORMAT, SPACES, TRIALS, TUNING_DIR, load_trials, tuning_file


def model_trial(task: NextMovieTask, name: str, label: str, setting: dict[str, Any],
                folder: Path, device: str, seed: int = 0, progress: bool = True) -> dict:
    """Train ``name`` with ``setting`` under the comparison's budget; its validation record."""
    budget = BUDGET
    start = time.perf_counter()
    model, history = trained(name, task, seed, budget, setting, device=device,
                             progress=progress)
    valid = metrics(rank_examples(model, task, task.examples("valid"), device=device))
    return {"label": label, "setting": setting,
            **{f"valid_{k}": v for k, v in valid.items()},
            "best_epoch": history.best_epoch, "epochs": len(history.epochs),
            "epoch_cap": budget.epochs, "train_seconds": history.seconds,
            "wall_seconds": time.perf_counter() - start,
            "subsample_mrr": [row[f"valid_{budget.monitor}"] for row in history.epochs]}


def write(path: Path, name: str, trials: list[dict], digest: str) -> None:
    """One model's trials, atomically (so an interrupted run leaves a whole file)."""
    record = {"format": FORMAT, "model": name, "trials_per_model": TRIALS, "source": digest,
              "quick": current().quick, "budget": describe(BUDGET), "trials": trials}
    with atomic_open(path, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")


def _print(name: str, t: dict) -> None:
    """One trial as a line of the table ``main`` prints (no epochs for a counting baseline)."""
    epochs = (f"{t['best_epoch']:>5}{t['epochs']:>5}{t['train_seconds']:>7.0f}"
              if "epochs" in t else "")
    print(f"{name:<16}{t['label']:<42}{t['valid_mrr']:>8.4f}{t['valid_hr@10']:>8.4f}{epochs}",
          flush=True)


def digest_text(name: str) -> str:
    """One text for the code model ``name``'s trials were trained with (the digests of its
    model-cache key)."""
    return " ".join(f"{k}:{v}" for k, v in source_digests(name).items())


def tune(task: NextMovieTask, names: list[str], folder: Path = TUNING_DIR,
         device: str = "cpu", progress: bool = True) -> dict[str, list[dict]]:
    """Run every missing trial of ``names``; returns each model's trials."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        digest = digest_text(name)
        path = tuning_file(name, folder)
        old = json.loads(path.read_text()) if path.exists() else {}
        keep = old.get("source") == digest and old.get("quick") == current().quick
        trials = load_trials(name, folder) if keep else []  # those still in the space
        if name in COUNTING and len(trials) < len(SPACES[name]):
            trials = choose(name, task, device=device).trials
            write(path, name, trials, digest)
            for t in trials:
                _print(name, t)
        for label, setting in SPACES[name].items():
            if any(t["label"] == label for t in trials):
                continue
            trials.append(model_trial(task, name, label, setting, folder, device,
                                      progress=progress))
            write(path, name, trials, digest)
            _print(name, trials[-1])
        out[name] = trials
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help="comma-separated (default: every model with a search space)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--data-dir", default=None, help="the ml-100k folder")
    parser.add_argument("--out", type=Path, default=TUNING_DIR,
                        help="folder of the trial files (default: featint's record)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    names = ordered(args.models.split(",") if args.models else list(SPACES))
    unknown = [n for n in names if n not in SPACES]
    if unknown:
        parser.error(f"no search space for {unknown[0]!r}; tunable: "
                     f"{', '.join(ordered(SPACES))}")
    task = featint.build_task(featint.load_movielens(args.data_dir))
    print(f"{TRIALS} trials per model, seed 0, scored on all validation examples")
    print(f"{'model':<16}{'setting':<42}{'MRR':>8}{'HR@10':>8}{'best':>5}{'run':>5}{'s':>7}",
          flush=True)
    found = tune(task, names, args.out, args.device, progress=not args.quiet)
    print("\nchosen (best validation MRR):")
    for name, trials in found.items():
        top = max(trials, key=lambda t: t["valid_mrr"])
        print(f"  {name:<16}{top['label']:<42}MRR {top['valid_mrr']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
