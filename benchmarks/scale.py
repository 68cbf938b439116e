"""What the models cost past MovieLens 100K (``make scale``): measured, then extrapolated.

Two sizes of :func:`featint.synthetic.scaled_movielens` (MovieLens-shaped tables with a long
tail of heavy raters and Zipf-like popularity, no planted signal):

- **ML-1M size**: 6,040 users, 3,706 movies, 1,000,209 ratings, built and measured whole;
- **ML-20M size**: 138,493 users, 26,744 movies, 20,000,263 ratings. Its task does not fit
  a small machine (the position table alone is 14 GB), so a subsample of its users is built
  (``--users-20m``, all of its movies, each user's count of ratings drawn from the whole
  population) and the figures are extrapolated to the whole.

For each model (in a subprocess of its own, on the task the parent built and pickled):

- **epoch**: a fixed number of training steps (batches of 1024 fit examples with 4 sampled
  negatives, after two warm-up steps) is timed, and one epoch is extrapolated as the steps an
  epoch of the full-size fit set takes, plus ranking the budget's 2000 validation examples;
- **full ranking**: a subsample of test contexts (evenly spread) is ranked against every
  movie, and the whole test set is extrapolated by its count;
- **memory**: the peak resident set size of the subprocess while it trains and ranks (ML-1M
  size, measured; the resident size with the task loaded, before the model, is recorded
  too); at ML-20M size, the task's estimate (:func:`featint.cost.task_bytes`) at full size
  plus 16 bytes per parameter of the full-size model (weights, gradients, Adam's two
  moments) plus what training and ranking added over the subsample's parameters (an
  estimate, said so).

Then how the cost grows: the time of a training step and of ranking one context at three
numbers of users, of movies and of ratings per user (history length), each with the others
fixed; the growth exponent is the slope of a log-log fit. Every model is trained with its
setting chosen on validation (the tuning record). All on the CPU, one torch thread per
process by default (``--threads``): the wall-clock time and the CPU time of the process are
both recorded, and the tables report CPU time, the work itself, which other processes on a
shared machine change far less than the wall-clock. The machine, its load average and the
date are recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from featint.config import BUDGET
from featint.cost import task_bytes
from featint.evaluate import rank_examples, subsample
from featint.features import Schema
from featint.models import MODELS, build_model, count_parameters
from featint.report import ordered
from featint.synthetic import LATER_GENRES, SIZES, scaled_movielens
from featint.task import NextMovieTask, build_task
from featint.train import adam, length_bucketed_batches
from featint.training import fit_args, model_hparams

OUT = Path(__file__).resolve().parents[1] / "results" / "scale" / "scale.json"
WARMUP = 2
#: Per size: timed training steps and ranked test contexts per model.
EFFORT = {"ml-1m": (8, 256), "ml-20m": (6, 96), "growth": (4, 64)}
#: The growth sweeps: (users, movies, ratings per user) at each point.
SWEEPS = {
    "users": [(1000, 4000, 50), (4000, 4000, 50), (16000, 4000, 50)],
    "movies": [(2000, 1000, 50), (2000, 3000, 50), (2000, 9000, 50)],
    "history": [(1000, 8000, 25), (1000, 8000, 100), (1000, 8000, 400)],
}


def _status(key: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (None where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak() -> None:
    """Start the peak resident set size afresh (Linux >= 4.0: ``clear_refs``), so that a
    transient peak while loading the task is not counted as the model's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def rss_bytes() -> int:
    """Resident set size now."""
    return _status("VmRSS") or peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since :func:`reset_peak` (``VmHWM``; elsewhere
    ``ru_maxrss``, the peak of the whole run)."""
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def time_steps(model: torch.nn.Module, task: NextMovieTask, name: str,
               steps: int) -> tuple[float, float]:
    """Seconds per training step (the comparison's batch and negatives), after a warm-up:
    wall-clock and CPU time of the process (all its threads)."""
    args = fit_args(name)
    optimizer = adam(model, args["lr"], args["weight_decay"])
    rng = np.random.default_rng(0)
    batches = length_bucketed_batches(rng.permutation(task.examples("fit")), task.t,
                                      args["batch_size"], rng)[:WARMUP + steps]
    labels = torch.zeros(1 + args["num_negatives"])
    labels[0] = 1.0
    model.train()
    for step, ex in enumerate(batches):
        if step == WARMUP:
            start, cpu = time.perf_counter(), time.process_time()
        negatives = task.sample_negatives(ex, args["num_negatives"], rng)
        candidates = torch.from_numpy(np.column_stack([task.target[ex], negatives]))
        logits = model(task.context(ex), candidates)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, labels.expand_as(logits))
        penalty = getattr(model, "penalty", None)
        if penalty is not None:
            loss = loss + penalty()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    timed = max(len(batches) - WARMUP, 1)
    return (time.perf_counter() - start) / timed, (time.process_time() - cpu) / timed


def time_ranking(model: torch.nn.Module, task: NextMovieTask,
                 contexts: int) -> tuple[float, float]:
    """Seconds per test context ranked against every movie (an evenly spread subsample):
    wall-clock and CPU time."""
    examples = subsample(task.examples("test"), contexts)
    start, cpu = time.perf_counter(), time.process_time()
    rank_examples(model, task, examples)
    return ((time.perf_counter() - start) / len(examples),
            (time.process_time() - cpu) / len(examples))


def measure(task: NextMovieTask, name: str, steps: int, contexts: int) -> dict[str, float]:
    """One model on one task: step and ranking times, parameters, and memory: resident
    before the model (``base_rss``: Python, torch, the task) and at the peak of training
    and ranking it (``peak_rss``)."""
    reset_peak()
    base = rss_bytes()
    torch.manual_seed(0)
    model = build_model(name, task, seed=0, **model_hparams(name))
    step, step_cpu = time_steps(model, task, name, steps)
    per_context, per_context_cpu = time_ranking(model, task, contexts)
    return {"model": name, "params": count_parameters(model), "step_s": step,
            "step_cpu_s": step_cpu, "rank_context_s": per_context,
            "rank_context_cpu_s": per_context_cpu, "base_rss": base,
            "peak_rss": peak_rss_bytes()}


def params_with_users(task: NextMovieTask, name: str, num_users: int) -> int:
    """Parameters of model ``name`` on ``task``'s schema with the user field widened to
    ``num_users`` (the later fields and the movies' features shifted accordingly): the size
    of the full-size model, counted without building its task."""
    user = task.schema.field("user")
    grow = num_users - user.size
    fields = tuple(f if f.offset < user.offset else
                   type(f)(f.name, f.side, f.kind, f.offset + (grow if f.offset > user.offset
                                                                else 0),
                           num_users if f is user else f.size)
                   for f in task.schema.fields)
    schema = Schema(fields, task.schema.num_features + grow)
    items = task.item_features()
    items.idx = torch.where(items.idx > user.offset, items.idx + grow, items.idx)
    model = MODELS[name](schema, items, **model_hparams(name))
    return count_parameters(model)


def one(name: str, task_file: Path, steps: int, contexts: int,
        full_users: int | None = None) -> dict[str, float]:
    """The subprocess: load the pickled task, measure ``name`` (and, for a subsample of
    users, count the parameters of the model with ``full_users`` users)."""
    with open(task_file, "rb") as f:
        task = pickle.load(f)
    row = measure(task, name, steps, contexts)
    if full_users:
        row["params_full"] = params_with_users(task, name, full_users)
    return row


def run_one(name: str, task_file: Path, steps: int, contexts: int,
            full_users: int | None = None) -> dict[str, float]:
    """:func:`one` in a fresh Python process (its peak memory is this model's alone), with
    the parent's thread count."""
    cmd = [sys.executable, __file__, "--one", name, "--task", str(task_file),
           "--steps", str(steps), "--contexts", str(contexts),
           "--threads", str(torch.get_num_threads())]
    if full_users:
        cmd += ["--full-users", str(full_users)]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"model": name, "error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def counts(task: NextMovieTask) -> dict[str, int]:
    return {k: int(v) for k, v in task.counts().items()}


def size_table(label: str, only_users: int | None, names: list[str]) -> dict:
    """Build the task of size ``label`` (a subsample of its users where ``only_users``),
    measure every model in its own subprocess, extrapolate to the full size."""
    users, movies, ratings = SIZES[label]
    steps, contexts = EFFORT[label]
    start = time.perf_counter()
    later = label != "ml-1m"  # like the real releases: no demographics, half stars after 1M
    ml = scaled_movielens(users, movies, ratings, only_users=only_users, seed=0,
                          demographics=not later, half_stars=later,
                          release=f"synthetic {label} size")
    num_genres = len(ml.genres)
    task = build_task(ml)
    built = time.perf_counter() - start
    got = counts(task)
    share = len(ml.ratings) / ratings  # the subsample's share of the full set's ratings
    full = {"users": users, "movies": movies, "ratings": ratings}
    full_fit = got["fit"] / share if only_users else got["fit"]
    full_test = got["test"] / share if only_users else got["test"]
    print(f"\n{label} size: {full['users']:,} users, {movies:,} movies, {ratings:,} ratings"
          + (f"; measured on {got['users']:,} of its users ({len(ml.ratings):,} ratings, "
             f"{share:.2%}), extrapolated" if only_users else "")
          + f" (task built in {built:.0f} s)", flush=True)
    print(f"{'model':<16}{'params':>12}{'step ms':>9}{'epoch':>10}{'rank ms/ctx':>12}"
          f"{'full rank':>11}{'peak mem':>10}   (CPU time)", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        task_file = Path(tmp) / "task.pkl"
        with open(task_file, "wb") as f:
            pickle.dump(task, f, protocol=pickle.HIGHEST_PROTOCOL)
        del task, ml
        for name in names:
            row = run_one(name, task_file, steps, contexts, users if only_users else None)
            rows.append(row)
            if "error" in row:
                print(f"{name:<16}failed: {row['error']}", flush=True)
                continue
            valid = min(BUDGET.valid_limit or got["valid"], got["valid"])
            for clock in ("", "_cpu"):  # wall-clock, and the process's CPU time
                row[f"epoch{clock}_s"] = (
                    math.ceil(full_fit / BUDGET.batch_size) * row[f"step{clock}_s"]
                    + valid * row[f"rank_context{clock}_s"])
                row[f"full_rank{clock}_s"] = full_test * row[f"rank_context{clock}_s"]
            if only_users:
                worked = row["peak_rss"] - row["base_rss"] - 16 * row["params"]
                row["memory_bytes"] = (task_bytes(ratings, users, movies, num_genres)
                                       + 16 * row["params_full"] + max(worked, 0))
                row["memory_estimated"] = True
            else:
                row["memory_bytes"] = row["peak_rss"]
                row["memory_estimated"] = False
            print(f"{name:<16}{row.get('params_full', row['params']):>12,}"
                  f"{row['step_cpu_s'] * 1e3:>9.0f}{hours(row['epoch_cpu_s']):>10}"
                  f"{row['rank_context_cpu_s'] * 1e3:>12.2f}"
                  f"{hours(row['full_rank_cpu_s']):>11}{gb(row['memory_bytes']):>10}",
                  flush=True)
    return {"size": full, "measured": got, "measured_ratings": int(share * ratings),
            "subsample": bool(only_users), "full_fit": full_fit, "full_test": full_test,
            "steps": steps, "contexts": contexts, "build_seconds": built, "models": rows}


def growth(names: list[str]) -> dict:
    """Step and ranking time at three sizes along each axis; log-log slopes."""
    steps, contexts = EFFORT["growth"]
    out: dict = {}
    for axis, points in SWEEPS.items():
        print(f"\ngrowth with {axis}: (users, movies, ratings per user) = {points}", flush=True)
        rows = []
        for users, movies, per_user in points:
            ml = scaled_movielens(users, movies, users * per_user, seed=1)
            task = build_task(ml)
            for name in names:
                try:
                    row = measure(task, name, steps, contexts)
                except ValueError as err:  # a model that cannot be built at this size
                    row = {"model": name, "error": str(err)}
                row.update(users=users, movies=movies, per_user=per_user)
                rows.append(row)
        x = {"users": 0, "movies": 1, "history": 2}[axis]
        slopes = {}
        for name in names:
            mine = [r for r in rows if r["model"] == name]
            if any("error" in r for r in mine):
                print(f"{name:<16}failed: {next(r['error'] for r in mine if 'error' in r)}")
                continue
            size = np.log([(r["users"], r["movies"], r["per_user"])[x] for r in mine])
            step = [r["step_cpu_s"] for r in mine]
            rank = [r["rank_context_cpu_s"] for r in mine]
            slopes[name] = {"step": float(np.polyfit(size, np.log(step), 1)[0]),
                            "rank": float(np.polyfit(size, np.log(rank), 1)[0])}
            print(f"{name:<16}step x{step[-1] / step[0]:>6.1f} (exponent "
                  f"{slopes[name]['step']:.2f})   ranking per context x{rank[-1] / rank[0]:>6.1f}"
                  f" (exponent {slopes[name]['rank']:.2f})", flush=True)
        out[axis] = {"points": points, "rows": rows, "exponents": slopes}
    return out


def hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 3 * 3600 else f"{seconds / 3600:.1f} h"


def gb(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.1f} GB"


def markdown(figures: dict) -> str:
    """The README's table: per model, at ML-1M and ML-20M size, epoch, full ranking, peak
    memory; and the growth exponents."""
    one, twenty = figures["ml-1m"], figures["ml-20m"]
    lines = ["| model | ML-1M epoch | ML-1M full ranking | ML-1M peak memory | ML-20M epoch "
             "| ML-20M full ranking | ML-20M memory (est.) |", "|---|---|---|---|---|---|---|"]
    by_name = {r["model"]: r for r in twenty["models"] if "error" not in r}
    for row in one["models"]:
        if "error" in row:
            continue
        big = by_name.get(row["model"])
        if big is None:
            failed = next(r for r in twenty["models"] if r["model"] == row["model"])
            reason = failed["error"].split(": ", 1)[-1]
            lines.append(f"| {row['model']} | {hours(row['epoch_cpu_s'])} | "
                         f"{hours(row['full_rank_cpu_s'])} | {gb(row['memory_bytes'])} | "
                         f"not built, already on the subsample of users: {reason} | | |")
            continue
        lines.append(
            f"| {row['model']} | {hours(row['epoch_cpu_s'])} | {hours(row['full_rank_cpu_s'])} "
            f"| {gb(row['memory_bytes'])} | {hours(big['epoch_cpu_s'])} | "
            f"{hours(big['full_rank_cpu_s'])} | {gb(big['memory_bytes'])} |")
    lines += ["", "| model | step vs users | step vs movies | step vs history | ranking vs "
              "movies | ranking vs history |", "|---|---|---|---|---|---|"]
    ex = {axis: figures["growth"][axis]["exponents"] for axis in SWEEPS}
    for name in [r["model"] for r in one["models"]]:
        cells = [f"{ex[axis][name][kind]:.2f}" if name in ex[axis] else "failed"
                 for axis, kind in (("users", "step"), ("movies", "step"),
                                    ("history", "step"), ("movies", "rank"),
                                    ("history", "rank"))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    machine = figures["machine"]
    users, movies, ratings = SIZES["ml-20m"]
    task_full = task_bytes(ratings, users, movies, len(LATER_GENRES))
    base = np.median([r["base_rss"] for r in one["models"] if "error" not in r])
    lines += ["", (
        f"Measured {machine['date']} on a {machine['cores']}-core {machine['cpu']}, torch "
        f"{machine['torch']}, {machine['torch_threads']} thread per process, load average "
        f"{machine['load_average'][0]:.1f} (a machine shared with other work): CPU time of "
        f"the process, extrapolated from {one['steps']} training steps and {one['contexts']} "
        f"ranked test contexts per model at ML-1M size, {twenty['steps']} and "
        f"{twenty['contexts']} at ML-20M size. ML-1M size is built whole; a process holds "
        f"{gb(base)} with the task loaded, before the model, and the peak memory is that "
        f"process's while it trains and ranks. ML-20M size is measured on "
        f"{twenty['measured']['users']:,} of its users ({twenty['measured_ratings'] / ratings:.1%}"
        f" of its ratings) and extrapolated by the number of examples; its memory is an "
        f"estimate: the task at full size, {gb(task_full)} (the position table of "
        f"{users:,} users by {movies:,} movies alone {gb(4 * users * movies)}), plus the "
        f"full-size model and what training added. Growth: the slope of log time against log "
        f"size over three sizes (users {SWEEPS['users'][0][0]:,} to "
        f"{SWEEPS['users'][-1][0]:,}; movies {SWEEPS['movies'][0][1]:,} to "
        f"{SWEEPS['movies'][-1][1]:,}; ratings per user {SWEEPS['history'][0][2]} to "
        f"{SWEEPS['history'][-1][2]}), the others fixed; 1 is linear.")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated (default: all)")
    parser.add_argument("--users-20m", type=int, default=3000,
                        help="users of the ML-20M-sized population actually built (default "
                             "3000, about 2%% of its ratings)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the JSON (default {OUT})")
    parser.add_argument("--sections", default="ml-1m,ml-20m,growth",
                        help="what to measure (default ml-1m,ml-20m,growth); the others are "
                             "kept from --out")
    parser.add_argument("--markdown", action="store_true",
                        help="print the README's tables from --out and stop")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--task", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--contexts", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--full-users", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (default 1: on a shared machine, a "
                             "second thread waits for a busy core and the figures lose "
                             "meaning; CPU time is what the tables report)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(one(args.one, args.task, args.steps, args.contexts,
                             args.full_users)))
        return 0
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return 0
    names = ordered(args.models.split(",") if args.models else list(MODELS))
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; registered: {', '.join(ordered(MODELS))}")
    from featint.compare import cpu_model

    start = time.perf_counter()
    figures = json.loads(args.out.read_text()) if args.out.is_file() else {}
    figures["machine"] = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d")}
    for section in args.sections.split(","):  # each written as soon as it is measured
        began = time.perf_counter()
        if section == "growth":
            figures["growth"] = growth(names)
        else:
            figures[section] = size_table(section, args.users_20m if section == "ml-20m"
                                          else None, names)
        figures[section]["seconds"] = time.perf_counter() - began
        figures["machine"]["load_average_end"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"\nwrote {args.out} ({(time.perf_counter() - start) / 60:.0f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
