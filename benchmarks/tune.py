"""Learning rate per model, chosen on validation only (``make tune``).

For every model and every candidate rate, train with the comparison's budget
(:class:`featint.budget.Budget`: its epoch cap, early stopping on the validation subsample,
batch size, negatives) and seed 0, then rank the *whole* validation set with the restored
weights. The rate with the best whole-validation MRR is the model's rate;
:data:`featint.budget.TUNED_LR` records the ones that differ from the shared ``Budget.lr``.
The test set is never looked at.

Each line printed is one (model, rate) run: the whole-validation MRR and HR@10, the epoch
early stopping kept, the epochs run, the seconds, and the validation-subsample MRR after each
epoch (so that a smaller epoch cap can be judged from the same runs). ``--json`` keeps them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import featint
from featint.budget import Budget, model_hparams
from featint.evaluate import metrics, rank_examples
from featint.models import MODELS, build_model
from featint.report import ordered
from featint.task import NextMovieTask
from featint.train import fit

LEARNING_RATES = (5e-3, 1e-2, 2e-2)


def tune_one(task: NextMovieTask, name: str, lr: float, budget: Budget,
             device: str, seed: int = 0, hparams: dict | None = None) -> dict:
    """Train ``name`` at rate ``lr`` under ``budget`` (constructor overrides ``hparams``);
    its whole-validation figures."""
    model = build_model(name, task, seed=seed, **model_hparams(name, budget, hparams))
    history = fit(model, task, **{**budget.fit_args(name), "lr": lr}, seed=seed,
                  device=device, progress=False, verbose=False)
    valid = metrics(rank_examples(model, task, task.examples("valid"), device=device))
    return {"model": name, "lr": lr, "hparams": hparams or {}, "valid_mrr": valid["mrr"],
            "valid_hr@10": valid["hr@10"],
            "valid_mean_rank": valid["mean_rank"], "best_epoch": history.best_epoch,
            "epochs": len(history.epochs), "seconds": history.seconds,
            "subsample_mrr": [row[f"valid_{budget.monitor}"] for row in history.epochs]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated (default: all)")
    parser.add_argument("--lrs", default=",".join(f"{r:g}" for r in LEARNING_RATES),
                        help="comma-separated learning rates (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=Budget().epochs,
                        help="epoch cap (default: the budget's, %(default)s)")
    parser.add_argument("--hparams", default=None, metavar="JSON",
                        help='constructor overrides for every model run, e.g. '
                             '\'{"bi_dropout": 0.2}\' with --models nfm')
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--data-dir", default=None, help="the ml-100k folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the runs here")
    args = parser.parse_args(argv)
    names = ordered(args.models.split(",") if args.models else list(MODELS))
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; registered: {', '.join(ordered(MODELS))}")
    try:
        rates = [float(r) for r in args.lrs.split(",")]
    except ValueError:
        parser.error(f"--lrs must be comma-separated numbers, got {args.lrs!r}")
    try:
        hparams = json.loads(args.hparams) if args.hparams else None
    except json.JSONDecodeError as err:
        parser.error(f"--hparams is not JSON ({err}): {args.hparams!r}")
    if hparams is not None and not isinstance(hparams, dict):
        parser.error(f"--hparams must be a JSON object, got {args.hparams!r}")
    if args.epochs < 1 or any(r <= 0 for r in rates):
        parser.error("--epochs and every rate must be positive")
    budget = Budget(epochs=args.epochs)
    task = featint.build_task(featint.load_movielens(args.data_dir))
    runs = []
    if hparams:
        print(f"constructor overrides: {hparams}")
    print(f"{'model':<16}{'lr':>8}{'valid MRR':>11}{'HR@10':>8}{'best':>6}{'run':>5}{'s':>7}"
          "  subsample MRR per epoch", flush=True)
    for name in names:
        for lr in rates:
            start = time.perf_counter()
            try:
                run = tune_one(task, name, lr, budget, args.device, hparams=hparams)
            except Exception as err:  # noqa: BLE001 - report it and go on with the others
                print(f"{name:<16}{lr:>8g}  failed: {type(err).__name__}: {err}", flush=True)
                continue
            run["wall_seconds"] = time.perf_counter() - start
            runs.append(run)
            curve = " ".join(f"{v:.4f}" for v in run["subsample_mrr"])
            print(f"{name:<16}{lr:>8g}{run['valid_mrr']:>11.4f}{run['valid_hr@10']:>8.4f}"
                  f"{run['best_epoch']:>6}{run['epochs']:>5}{run['seconds']:>7.0f}  {curve}",
                  flush=True)
            if args.json:
                args.json.write_text(json.dumps({"budget": budget.describe(), "runs": runs},
                                                indent=1))
    print("\nbest rate per model (whole-validation MRR):")
    for name in sorted({r["model"] for r in runs}, key=names.index):
        best = max((r for r in runs if r["model"] == name), key=lambda r: r["valid_mrr"])
        print(f"  {name:<16}{best['lr']:g}  (MRR {best['valid_mrr']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
