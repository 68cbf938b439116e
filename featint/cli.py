"""The ``featint`` command (also ``python -m featint``).

``featint compare``  train every model under one budget, print the leaderboard, write results
``featint leaderboard``  print the leaderboard of a finished comparison
``featint tuning``   print each model's tuning trials on record and the setting chosen
``featint explain``  a user's top 10 from one model, and the parts that put the first there
``featint data``     find (or download) and verify a MovieLens release, print the task's counts
``featint cache``    list the trained models kept in the model cache, or prune the stale ones

Argument mistakes end with a one-line message that names the problem and the fix, and exit
status 2 (the argparse convention), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from featint.config import BUDGET, QuickSizes
from featint.data import DEFAULT_RELEASE, ENV_VAR, RELEASES, ROOT_VAR, DataError
from featint.models import MODELS
from featint.report import BASELINES, ordered

#: The counts the protocol (v1, v2 and v3 alike) gives on the official MovieLens 100K.
PROTOCOL_COUNTS = {"users": 943, "movies": 1682, "examples": 99057, "fit": 70581,
                   "valid": 8289, "test": 20187}


def _int_at_least(minimum: int):
    """argparse type: a whole number no smaller than ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _seed_list(text: str) -> list[int]:
    fix = "give distinct non-negative integers separated by commas, e.g. --seeds 0,1,2"
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of seeds; {fix}") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} has a negative or repeated seed; {fix}")
    return seeds


def _model_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no model named; give e.g. --models fm,ffm")
    known = ordered(list(MODELS))
    for name in names:
        if name not in MODELS:
            raise argparse.ArgumentTypeError(
                f"unknown model {name!r}; registered models are {', '.join(known)} "
                f"(the baselines {', '.join(BASELINES)} always run)"
            )
    return names


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``featint`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="featint",
        description="Feature-interaction models on MovieLens next-movie prediction (100K, "
                    "the book's; 1M to 32M with --dataset).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cmp = commands.add_parser(
        "compare", help="train and compare the models, write results/",
        description="Train every model under the same budget over several seeds, rank the "
                    "test set (protocol v3), print the leaderboard and write results JSON, CSV, "
                    "charts and per-example ranks.",
    )
    cmp.add_argument("--models", type=_model_list, default=None, metavar="NAMES",
                     help="comma-separated models (default: all registered: "
                          f"{', '.join(ordered(list(MODELS)))})")
    seeds = cmp.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=_seed_list, default=None, metavar="LIST",
                       help="training seeds, e.g. 0,1,2 (default)")
    seeds.add_argument("--num-seeds", type=_positive_int, default=None, metavar="N",
                       help="use seeds 0..N-1")
    cmp.add_argument("--epochs", type=_positive_int, default=BUDGET.epochs,
                     help=f"epoch cap per model (default {BUDGET.epochs}; early stopping may "
                          "end sooner)")
    cmp.add_argument("--embed-dim", type=_positive_int, default=BUDGET.embed_dim,
                     help=f"embedding size of every model (default {BUDGET.embed_dim})")
    cmp.add_argument("--patience", type=_positive_int, default=BUDGET.patience,
                     help="epochs without a better validation MRR before stopping "
                          f"(default {BUDGET.patience})")
    cmp.add_argument("--valid-limit", type=_non_negative_int, default=BUDGET.valid_limit,
                     metavar="N",
                     help=f"validation examples ranked after every epoch for early stopping "
                          f"(default {BUDGET.valid_limit}; 0: all)")
    cmp.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                     help="where to train (default: FEATINT_DEVICE, else auto: CUDA if "
                          "available)")
    cmp.add_argument("--quick", action="store_true",
                     help=f"smoke test: {QuickSizes().describe()} (also set by "
                          "FEATINT_QUICK=1)")
    cmp.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                     help="output folder (default results)")
    cmp.add_argument("--dataset", choices=list(RELEASES), default=DEFAULT_RELEASE,
                     help="the MovieLens release (default ml-100k, the book's; the results "
                          "name it and are never mixed with another release's)")
    cmp.add_argument("--data-dir", type=Path, default=None, metavar="PATH",
                     help=f"the ml-100k folder, or another release's archive or a folder "
                          f"holding it (default: ${ENV_VAR} for ml-100k, ${ROOT_VAR}, the "
                          "cache, then a download)")
    cmp.add_argument("--resume", action="store_true",
                     help="reuse the finished runs of an interrupted comparison in --out")
    cmp.add_argument("--no-baselines", action="store_true",
                     help="skip the untrained baselines (random, most popular, Markov, ItemKNN)")
    cmp.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    cmp.set_defaults(handler=run_compare, parser=cmp)

    board = commands.add_parser(
        "leaderboard", help="print the leaderboard of a finished comparison",
        description="Print the leaderboard stored in a results folder written by `featint "
                    "compare`, as text or as a Markdown table (the one in the README).",
    )
    board.add_argument("--results", type=Path, default=Path("results"), metavar="DIR",
                       help="the results folder (default results)")
    board.add_argument("--markdown", action="store_true", help="a Markdown table")
    board.set_defaults(handler=run_leaderboard, parser=board)

    tune = commands.add_parser(
        "tuning", help="print the tuning trials on record: each model's chosen setting",
        description="Print, per model, the trials of `make tune` on record (the tuning record "
                    "shipped with featint, featint/records/tuning): "
                    "how many, the setting chosen on validation and its MRR, the paper's "
                    "setting and its MRR, and the spread; as text or as a Markdown table "
                    "(the one in the README).",
    )
    tune.add_argument("--tuning", type=Path, default=None, metavar="DIR",
                      help="the folder of trial files (default: featint's record)")
    tune.add_argument("--markdown", action="store_true", help="a Markdown table")
    tune.set_defaults(handler=run_tuning, parser=tune)

    why = commands.add_parser(
        "explain", help="a user's top movies from one model, and why the first is there",
        description="Rank every movie for one user at one moment (a position in their "
                    "ratings) with one model, print the top movies (the true next movie "
                    "marked) and the score of the first taken apart into the model's parts: "
                    "bias, fields and field pairs (featint.explain; chapter 09). The model is "
                    "trained as the comparison trains it, or read from the model cache.",
    )
    why.add_argument("--model", required=True, choices=ordered(list(MODELS)),
                     metavar="NAME", help="the model: " + ", ".join(ordered(list(MODELS))))
    why.add_argument("--user", required=True, type=int, help="the MovieLens user id")
    moment = why.add_mutually_exclusive_group()
    moment.add_argument("--position", type=_positive_int, default=None, metavar="T",
                        help="the position t in the user's ratings: the context is what was "
                             "known before rating t, the true next movie rating t's")
    moment.add_argument("--last", action="store_true",
                        help="the user's last position (the default)")
    why.add_argument("--top", type=_positive_int, default=10, metavar="K",
                     help="how many movies to list (default 10)")
    why.add_argument("--parts", type=_positive_int, default=12, metavar="N",
                     help="how many of the first movie's largest parts to print (default 12)")
    why.add_argument("--json", action="store_true", help="print JSON instead of text")
    why.add_argument("--quick", action="store_true",
                     help="a quickly trained model (quick mode; also set by FEATINT_QUICK=1)")
    why.add_argument("--synthetic", action="store_true",
                     help="the small synthetic data set featint generates, not MovieLens")
    why.add_argument("--data-dir", type=Path, default=None, metavar="PATH",
                     help=f"the ml-100k folder (default: ${ENV_VAR}, then the cache, "
                          "then a download)")
    why.set_defaults(handler=run_explain, parser=why)

    data = commands.add_parser(
        "data", help="find, download if needed and verify a MovieLens release",
        description="Locate a MovieLens release (--data-dir; for ml-100k $FEATINT_DATA_DIR; "
                    "$FEATINT_DATA_ROOT; the cache; a download), verify it (100K: every "
                    "file by sha256; the others: the archive by its published md5) and print "
                    "the counts of the next-movie task.",
    )
    data.add_argument("--dataset", choices=list(RELEASES), default=DEFAULT_RELEASE,
                      help="the release (default ml-100k)")
    data.add_argument("--data-dir", type=Path, default=None, metavar="PATH",
                      help="the ml-100k folder to check, or another release's archive or a "
                           "folder holding it")
    data.add_argument("--no-download", action="store_true",
                      help="fail instead of downloading when no local copy exists")
    data.set_defaults(handler=run_data, parser=data)

    cache = commands.add_parser(
        "cache", help="list the trained models in the model cache, or prune stale ones",
        description="The model cache keeps every trained model with its key (featint/"
                    "training.py). --list shows each entry and whether the current code and "
                    "versions can read it back; --prune removes the ones they cannot.",
    )
    action = cache.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list the entries (the default)")
    action.add_argument("--prune", action="store_true",
                        help="remove entries of other code, torch or numpy versions")
    cache.add_argument("--folder", type=Path, default=None, metavar="DIR",
                       help="the cache folder (default: $FEATINT_MODEL_CACHE, else models/ "
                            "in the user cache)")
    cache.set_defaults(handler=run_cache, parser=cache)
    return parser


def _check_data_dir(parser: argparse.ArgumentParser, data_dir: Path | None,
                    dataset: str = DEFAULT_RELEASE) -> None:
    if data_dir is None or data_dir.is_dir():
        return
    if dataset == DEFAULT_RELEASE:
        parser.error(f"--data-dir {data_dir} does not exist or is not a folder; point it at "
                     f"the unzipped ml-100k folder (u.data, u.item, u.user, u.genre), or leave "
                     f"it out to use ${ENV_VAR}, the cache or a download")
    if not data_dir.is_file():
        parser.error(f"--data-dir {data_dir} does not exist; point it at "
                     f"{RELEASES[dataset].archive} or a folder holding it, or leave it out to "
                     f"use ${ROOT_VAR}, the cache or a download")


def run_compare(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``featint compare``: run, print the leaderboard and the files written."""
    from featint.compare import RESULTS_FILE, CompareError, compare
    from featint.report import convergence_text, format_leaderboard, hparams_text
    from featint.tuning import RecordError

    _check_data_dir(parser, args.data_dir, args.dataset)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file; give a folder for the results")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: CUDA is not available on this machine or torch "
                         "build; use --device cpu (or auto)")
    from featint.config import ConfigError, from_env

    try:
        config = from_env()
    except ConfigError as err:
        parser.error(str(err))
    seeds = (args.seeds if args.seeds is not None
             else list(range(args.num_seeds)) if args.num_seeds is not None else [0, 1, 2])
    quick = True if args.quick else None
    try:
        result = compare(
            args.models, seeds, epochs=args.epochs, embed_dim=args.embed_dim,
            device=args.device, out_dir=args.out, quick=quick, data_dir=args.data_dir,
            dataset=args.dataset, baselines=not args.no_baselines, patience=args.patience,
            valid_limit=args.valid_limit or None, resume=args.resume,
            progress=not args.quiet, config=config,
        )
    except (DataError, RecordError) as err:
        parser.error(str(err))
    except CompareError as err:  # settings compare() rejects, e.g. an incompatible --resume
        parser.error(str(err))
    except KeyboardInterrupt:
        print(f"\ninterrupted: the finished runs are in {args.out / RESULTS_FILE}; "
              f"run the same command with --resume to continue", file=sys.stderr)
        return 130
    settings = result.results["settings"]
    print()
    if settings["quick"]:
        print(f"QUICK MODE: a smoke test ({QuickSizes(**settings['config']['sizes']).describe()}"
              "), not results to report.")
    print(f"Leaderboard: next-movie test set of {RELEASES[settings['dataset']].title}, "
          f"{settings['protocol']} ({settings['num_test_examples']:,} examples), "
          f"mean over seeds {', '.join(map(str, settings['seeds']))}; "
          f"[95% bootstrap interval over test examples]")
    print(format_leaderboard(result.leaderboard()))
    stopped = convergence_text(result.runs, settings["budget"]["epochs"],
                               settings["budget"]["patience"])
    print(f"\nConvergence: {stopped}.")
    print(f"Budget: {settings['budget_text']}.")
    chosen = {n: s for n, s in settings["settings"].items() if s}
    if chosen:
        print("Per-model settings (chosen on validation): " + hparams_text(chosen))
    print(f"\nWrote to {args.out}/:")
    for path in result.files:
        if path.parent == args.out:
            print(f"  {path.name}")
    print(f"  {len(result.runs)} per-example rank files in {args.out}/ranks/")
    return 0


def run_leaderboard(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``featint leaderboard``: the table of a finished comparison, without rerunning it."""
    from featint.compare import RESULTS_FILE, Comparison
    from featint.report import convergence_text, format_leaderboard

    path = args.results / RESULTS_FILE
    if not path.is_file():
        parser.error(f"no {path}: run `featint compare --out {args.results}` (or `make run`) "
                     "first, or point --results at the folder it wrote")
    try:
        found = Comparison.load(args.results)
    except ValueError as err:  # not JSON, or not a featint comparison
        parser.error(f"{path} cannot be read as featint results: {err}")
    if not found.results.get("complete"):
        parser.error(f"{path} belongs to a comparison that did not finish; continue it with "
                     f"`featint compare --out {args.results} --resume` (same options)")
    warning = found.protocol_warning()
    if warning:
        print(f"note: {warning}", file=sys.stderr)
    print(format_leaderboard(found.leaderboard(), markdown=args.markdown))
    if not args.markdown:  # the Markdown table alone, as the README embeds it
        budget = found.results["settings"]["budget"]
        stopped = convergence_text(found.runs, budget["epochs"], budget["patience"])
        print(f"\nConvergence: {stopped}.")
    return 0


def run_tuning(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``featint tuning``: the trials of ``make tune`` on record, one line per model."""
    from featint.report import format_tuning, trials_table, tuning_summary
    from featint.tuning import TUNING_DIR

    folder = args.tuning or TUNING_DIR
    table = trials_table(folder)
    if table.empty:
        parser.error(f"no tuning trials in {folder}: run `make tune` first, or point "
                     "--tuning at the folder it wrote")
    print(format_tuning(tuning_summary(table), markdown=args.markdown))
    return 0


def run_explain(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``featint explain``: one model's top movies for a user at a moment, and the parts of
    the first one's score."""
    import json

    from featint.config import current, use
    from featint.data import load_movielens
    from featint.explain import example_of, explain, positions, rank_of, top_movies
    from featint.synthetic import synthetic_movielens
    from featint.task import build_task
    from featint.training import RecordError, trained

    if not args.synthetic:
        _check_data_dir(parser, args.data_dir)
    try:
        ml = synthetic_movielens() if args.synthetic else load_movielens(args.data_dir)
    except DataError as err:
        parser.error(str(err))
    task = build_task(ml)
    try:
        first, last = positions(task, args.user)
    except ValueError:
        parser.error(f"--user {args.user}: no such user; users are "
                     f"{task.user_ids[0]}..{task.user_ids[-1]}")
    if args.position is not None and not first <= args.position <= last:
        parser.error(f"--position {args.position}: user {args.user} has positions "
                     f"{first}..{last} (a position is a rating with one before it); "
                     "or use --last")
    example = example_of(task, args.user, args.position)
    quick = args.quick or current().quick
    with use(quick=quick):
        try:
            model, _ = trained(args.model, task, progress=False)
        except RecordError as err:  # not tuned yet: say how, never a fallback setting
            parser.error(str(err))
        top, scores = top_movies(model, task, example, args.top)
        target = int(task.target[example])
        why = explain(model, task, example, top[:1])
        rank = rank_of(model, task, example, target)
    parts = why.table().drop(columns=["candidate", "movie"])
    parts = parts.reindex(parts.value.abs().sort_values(ascending=False).index)
    groups = why.groups().iloc[0]
    t = int(task.t[example])
    report = {
        "model": args.model, "user": args.user, "position": t,
        "split": ["fit", "valid", "test"][int(task.split[example])],
        "true_next": {"movie": task.titles[target], "rank": rank},
        "top": [{"rank": i + 1, "movie": task.titles[m], "score": float(sc),
                 "true_next": bool(m == target)}
                for i, (m, sc) in enumerate(zip(top, scores, strict=True))],
        "first": {"movie": task.titles[top[0]], "score": float(why.score[0]),
                  "sum_of_parts": float(why.total[0]), "method": why.method,
                  "groups": {k: float(v) for k, v in groups.items()},
                  "parts": [{k: v for k, v in row.items() if k not in ("f", "g")}
                            for row in parts.to_dict("records")]},
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{args.model}, user {args.user} at position {t} of {last + 1} ratings "
          f"({report['split']} example); the true next movie: {task.titles[target]} "
          f"(rank {rank:g})")
    if quick or args.synthetic:
        print("(quick mode or synthetic data: a smoke test, not the comparison's model)")
    print(f"\nTop {len(top)} (movies rated before dropped):")
    for row in report["top"]:
        mark = "  <- the true next movie" if row["true_next"] else ""
        print(f"{row['rank']:>4}  {row['score']:8.3f}  {row['movie']}{mark}")
    print(f"\nWhy {task.titles[top[0]]}: score {why.score[0]:.3f} = "
          + " + ".join(f"{v:.3f} ({k})" for k, v in groups.items()))
    print(f"its {min(args.parts, len(parts))} largest parts ({why.method}):")
    for row in parts.head(args.parts).to_dict("records"):
        extra = (f"  attention {row['attention']:.3f} x term {row['term']:.3f}"
                 if row.get("attention") == row.get("attention") and "attention" in row
                 else "")
        print(f"{row['value']:+9.3f}  {row['part']:<34} {row['group']}{extra}")
    return 0


def run_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``featint data``: locate, verify and describe a release."""
    from featint.cost import MemoryEstimateError
    from featint.data import load_movielens
    from featint.task import build_task

    rel = RELEASES[args.dataset]
    _check_data_dir(parser, args.data_dir, rel.name)
    try:
        ml = load_movielens(args.data_dir, download_missing=not args.no_download,
                            release=rel.name)
    except DataError as err:
        parser.error(str(err))
    how = ("every file matches the official sha256" if rel.name == DEFAULT_RELEASE else
           "its archive matched the published md5 and every file its manifest")
    print(f"{rel.title} at {ml.source}: {how}.")
    print(f"{len(ml.ratings):,} ratings, {len(ml.users):,} users, {len(ml.items):,} movies "
          f"rated, {len(ml.genres)} genres; user fields: "
          f"{', '.join(ml.demographics) or 'none'}.")
    if len(ml.ratings) != rel.ratings:
        print(f"The release's README announces {rel.ratings:,} ratings: this copy differs.")
        return 1
    try:
        task = build_task(ml)
    except MemoryEstimateError as err:
        print(f"The tables load, but the next-movie task does not fit here: {err}")
        return 1
    counts = task.counts()
    print(f"Next-movie task (protocol v{task.protocol}, book/protocol.md): "
          + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if rel.name != DEFAULT_RELEASE:
        return 0
    if counts == PROTOCOL_COUNTS:
        print(f"The counts match protocol v{task.protocol}.")
    else:
        print(f"The counts differ from protocol v{task.protocol} ("
              + ", ".join(f"{k} {v:,}" for k, v in PROTOCOL_COUNTS.items()) + ").")
        return 1
    return 0


def run_cache(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``featint cache``: what the model cache holds, or prune what is stale."""
    from featint.config import current
    from featint.training import list_cache, prune_cache

    folder = args.folder or current().models_folder
    if not folder.is_dir():
        print(f"the model cache {folder} is empty (no folder yet)")
        return 0
    if args.prune:
        removed = prune_cache(folder)
        freed = sum(e.size for e in removed) / 1e6
        print(f"removed {len(removed)} stale entries ({freed:.1f} MB) from {folder}")
        return 0
    entries = list_cache(folder)
    print(f"{len(entries)} trained models in {folder} "
          f"({sum(e.size for e in entries) / 1e6:.1f} MB):")
    for e in entries:
        key = e.key or {}
        when = key.get("created", "?")
        task = key.get("task", {})
        print(f"  {'current' if e.current else 'stale  '}  {e.label:<40} {when}  "
              f"protocol v{task.get('protocol', '?')}  {e.size / 1e6:.1f} MB")
    stale = sum(not e.current for e in entries)
    if stale:
        print(f"{stale} stale: `featint cache --prune` removes them")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``featint``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.handler(args, args.parser)  # the subcommand's parser words its errors


if __name__ == "__main__":
    sys.exit(main())
