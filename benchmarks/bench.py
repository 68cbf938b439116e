"""Speed and memory of featint's models, against the project's targets (``make bench``).

For every registered model, in a fresh subprocess of its own (so that one model's memory does
not count against the next):

- training throughput: examples per second over a fixed number of training steps (batches of
  1024 fit examples, each with its target and 4 sampled negatives; the count includes the
  negatives, i.e. 5 scored (context, movie) pairs per example), after two warm-up steps;
- ranking time: the full filtered ranking of the test set, 20,187 contexts x 1682 movies, with
  :func:`featint.evaluate.rank_examples` (the call the evaluation makes; an untrained model
  does the same arithmetic as a trained one);
- peak memory: the peak resident set size of the subprocess (``resource.getrusage``
  ``ru_maxrss``), which covers torch's allocations that ``tracemalloc`` cannot see. It includes
  Python, torch and the task arrays, so the resident size right after building the task is
  printed too; the difference is what training and ranking the model added;
- parameter count;
- the speed-up against earlier code: the training throughput of the package as it was at
  ``--against`` (a git revision, default :data:`BEFORE`, the last commit before the training
  step was made faster), measured in the same run on the same machine, each model's old and
  new code one after the other so that both see the same load.

Then the cost of FM's pairwise term, naive O(k n^2) (all pairs through the Gram matrix of the
``x_i v_i``) against the sum-square trick O(k n) of :func:`featint.layers.fm_interaction`, as the
number of non-zero features n grows. Last, the main command (every model, one seed): by default
read from the results of the last ``make run`` (the comparison's record: the training and test
ranking seconds of each seed's runs, recorded as they ran; their mean over seeds), or, with
``--main run``, timed here end to end (``featint compare --seeds 0``: data loading and
bootstrap included; long).

Targets (2 CPU cores): full ranking <= 5 s for fm, ffm and nfm and <= 60 s for every model;
the main command, all models, one seed, <= 10 minutes. Timings depend on the machine and on
what else runs on it: run on an idle machine for numbers to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from featint.compare import RESULTS_FILE
from featint.evaluate import rank_examples
from featint.layers import fm_interaction
from featint.models import MODELS, build_model, count_parameters
from featint.report import ordered

RANK_TARGET_FAST = 5.0  # seconds, for the models below
FAST_MODELS = ("fm", "ffm", "nfm")
RANK_TARGET_ANY = 60.0
MAIN_TARGET = 600.0  # all models, one seed
REPO = Path(__file__).resolve().parents[1]
#: The comparison's record (no import of it: this script also runs over earlier revisions of
#: featint, where the module that names it did not exist).
COMPARISON = REPO / "featint" / "records" / "comparison"
#: The last commit before the speed work of the "equal footing" issue: the baseline that
#: ``make bench`` measures the training throughput against.
BEFORE = "dfa391c"


def current_rss_mb() -> float:
    """Resident set size now (Linux ``/proc/self/statm``; elsewhere the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def model_setup(name: str, setting: str = "before") -> tuple[float, int, int, dict]:
    """Learning rate, batch size, negatives and constructor arguments of model ``name`` in
    whichever ``featint`` is imported: this revision's ("before": its search space's first
    setting, the model earlier code trained, so that both measure the same; "chosen": the
    setting the comparison trains), or an earlier revision's (its own settings)."""
    try:
        from featint.training import fit_args, model_hparams, setting_of
        from featint.tuning import SPACES
    except ImportError:  # a revision before featint.training: featint.budget
        from featint.budget import Budget
        from featint.budget import model_hparams as old_hparams
        try:
            from featint.tuning import SPACES
            budget = Budget() if setting == "chosen" else Budget(
                settings={n: next(iter(sp.values())) for n, sp in SPACES.items()})
            hparams = old_hparams(name, budget)
        except ImportError:  # before featint.tuning
            from featint.budget import TUNED_HPARAMS
            budget = Budget()
            hparams = old_hparams(name, budget, TUNED_HPARAMS.get(name))
        return budget.lr_for(name), budget.batch_size, budget.num_negatives, hparams
    chosen = setting_of(name) if setting == "chosen" else next(
        iter(SPACES.get(name, {"": {}}).values()))
    args = fit_args(name, setting=chosen)
    return (args["lr"], args["batch_size"], args["num_negatives"],
            model_hparams(name, setting=chosen))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously: a timer must wait)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_model(name: str, batches: int, data_dir: str | None,
                  train_only: bool = False, setting: str = "before",
                  profile: bool = False, device: str = "cpu") -> dict[str, float]:
    """Throughput, ranking time, memory and size of model ``name`` (run in a subprocess,
    with whatever ``featint`` it imports: today's, or an earlier revision's), on ``device``
    (CUDA: timers wait for the device, and the peak of its memory is reported too)."""
    import featint
    import featint.train
    from featint.train import length_bucketed_batches

    task = featint.build_task(featint.load_movielens(data_dir))
    base_rss = current_rss_mb()
    device = torch.device(device)
    if device.type == "cuda":
        from featint.config import prepare

        prepare(device)
    lr, batch_size, num_negatives, hparams = model_setup(name, setting)
    model = build_model(name, task, seed=0, **hparams).to(device)
    if hasattr(featint.train, "adam"):  # the optimiser fit uses, where the package has one
        optimizer = featint.train.adam(model, lr)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    order = length_bucketed_batches(rng.permutation(task.examples("fit")), task.t,
                                    batch_size, rng)
    warmup = 2
    steps = order[: warmup + batches]
    labels = torch.zeros(1 + num_negatives, device=device)
    labels[0] = 1.0
    model.train()
    pairs = 0
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    for step, ex in enumerate(steps):
        if step == warmup:
            synchronize(device)
            start, cpu_start, pairs = time.perf_counter(), time.process_time(), 0
            if profile:
                profiler.__enter__()
        negatives = task.sample_negatives(ex, num_negatives, rng)
        candidates = torch.from_numpy(np.column_stack([task.target[ex], negatives]))
        # the ordered prefix too, for a sequence model (an earlier revision has none)
        context = (task.context_for(model, ex) if hasattr(task, "context_for")
                   else task.context(ex))
        logits = model(context.to(device), candidates.to(device))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, labels.expand_as(logits))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        pairs += logits.numel()
    synchronize(device)
    train_seconds = time.perf_counter() - start
    train_cpu = time.process_time() - cpu_start
    if profile:
        profiler.__exit__(None, None, None)
        table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12,
                                              max_name_column_width=40)
        return {"model": name, "profile": table,
                "train_examples_per_s": pairs / (1 + num_negatives) / train_seconds}
    examples = pairs / (1 + num_negatives)
    if train_only:
        return {"model": name, "train_examples_per_s": examples / train_seconds,
                "train_examples_per_cpu_s": examples / train_cpu}
    test = task.examples("test")
    start, cpu_start = time.perf_counter(), time.process_time()
    rank_examples(model, task, test, device=device)
    synchronize(device)
    rank_seconds = time.perf_counter() - start
    rank_cpu = time.process_time() - cpu_start
    gpu = ({"gpu_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20}
           if device.type == "cuda" else {})
    return {
        "model": name,
        "params": count_parameters(model),
        "train_pairs_per_s": pairs / train_seconds,
        "train_examples_per_s": pairs / (1 + num_negatives) / train_seconds,
        "rank_seconds": rank_seconds,
        "train_examples_per_cpu_s": examples / train_cpu,
        "rank_cpu_seconds": rank_cpu,
        "rank_examples": len(test),
        "fit_examples": len(task.examples("fit")),
        "valid_examples": len(task.examples("valid")),
        "base_rss_mb": base_rss,
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        **gpu,
    }


def run_isolated(name: str, batches: int, data_dir: str | None,
                 package: Path | None = None, setting: str = "before",
                 extra: tuple[str, ...] = (), ranking: bool = False,
                 device: str = "cpu") -> dict[str, float]:
    """:func:`measure_model` in a fresh Python process; returns its figures. With
    ``package`` (a folder holding an earlier ``featint/``), that code's training throughput
    alone, and its ranking time too with ``ranking``. ``extra``: more flags for the
    subprocess."""
    cmd = [sys.executable, __file__, "--one", name, "--batches", str(batches),
           "--setting", setting, *extra]
    if device != "cpu":  # an earlier revision's bench has no --device: CPU only
        cmd += ["--device", device]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    env = dict(os.environ)
    if package is not None:
        if not ranking:
            cmd.append("--train-only")
        env["PYTHONPATH"] = os.pathsep.join([str(package), env.get("PYTHONPATH", "")])
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"model": name, "error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def earlier_package(revision: str, into: Path) -> Path | None:
    """``featint/`` as it was at git ``revision``, extracted under ``into``; None (with the
    reason printed) where that is not possible (no git, not a clone, unknown revision)."""
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "featint"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        print(f"no comparison with {revision}: {detail.decode().strip() or err}")
        return None
    return into


def speedup_interval(ratios: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """The geometric mean of the speed-ups ``ratios`` (now / before, one per round) and its
    t interval, taken on their logarithms, since the noise of a ratio of two timings is a
    factor: ``(mean, lo, hi)``; with one round there is no interval (nan)."""
    from featint.stats import t_quantile

    logs = np.log(np.asarray(ratios, dtype=float))
    centre = float(logs.mean())
    if len(logs) < 2:
        return float(np.exp(centre)), float("nan"), float("nan")
    half = float(t_quantile((1 + level) / 2, len(logs) - 1)) * float(
        logs.std(ddof=1)) / np.sqrt(len(logs))
    return float(np.exp(centre)), float(np.exp(centre - half)), float(np.exp(centre + half))


def rounds_against(name: str, batches: int, data_dir: str | None, package: Path,
                   rounds: int) -> list[dict[str, float]]:
    """``rounds`` more timings of model ``name``'s training step, this code's and
    ``package``'s one after the other, the one that goes first swapped every round (so
    neither always meets the machine first): per round, the speed-up now / before in
    wall-clock and in CPU time of the process."""
    out = []
    for r in range(rounds):
        pair = {}
        for which in (("now", "before") if r % 2 else ("before", "now")):
            pair[which] = run_isolated(name, batches, data_dir,
                                       package if which == "before" else None,
                                       extra=("--train-only",) if which == "now" else ())
        if any("error" in row for row in pair.values()):
            continue
        now, before = pair["now"], pair["before"]
        out.append({"wall": now["train_examples_per_s"] / before["train_examples_per_s"],
                    "cpu": (now["train_examples_per_cpu_s"]
                            / before["train_examples_per_cpu_s"])})
    return out


def naive_pairwise(xv: torch.Tensor) -> torch.Tensor:
    """``sum_{s<t} <x_s v_s, x_t v_t>`` through all n^2 dot products: the Gram matrix of the
    slots, minus its diagonal, halved. ``(batch, n, k)`` -> ``(batch,)``; O(k n^2)."""
    gram = xv @ xv.transpose(-1, -2)
    return 0.5 * (gram.sum((-1, -2)) - gram.diagonal(dim1=-2, dim2=-1).sum(-1))


def best_time(fn, xv: torch.Tensor, repeat: int = 5) -> float:
    """Fastest of ``repeat`` timed calls (after one warm-up): the least disturbed one."""
    fn(xv)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(xv)
        times.append(time.perf_counter() - start)
    return min(times)


def fm_scaling(sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024, 2048),
               batch: int = 16, k: int = 16) -> list[dict[str, float]]:
    """Time the naive and the sum-square pairwise term for growing numbers of features."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        xv = torch.randn(batch, n, k, generator=gen, dtype=torch.float64)
        assert torch.allclose(naive_pairwise(xv), fm_interaction(xv), rtol=1e-9, atol=1e-6)
        xv = xv.float()
        rows.append({"n": n, "naive_ms": best_time(naive_pairwise, xv) * 1e3,
                     "sum_square_ms": best_time(fm_interaction, xv) * 1e3})
    return rows


def slope(rows: list[dict[str, float]], key: str) -> float:
    """Exponent of the growth with n on the larger half of the sizes (log-log fit)."""
    half = rows[len(rows) // 2:]
    n = np.log([r["n"] for r in half])
    t = np.log([r[key] for r in half])
    return float(np.polyfit(n, t, 1)[0])


def time_main(models: list[str], data_dir: str | None, keep: Path | None = None) -> float:
    """Seconds of ``featint compare --seeds 0`` on ``models``, end to end, into ``keep`` (or
    a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(keep) if keep is not None else tmp
        cmd = [sys.executable, "-m", "featint", "compare", "--seeds", "0", "--quiet",
               "--models", ",".join(models), "--out", out]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        env = {k: v for k, v in os.environ.items() if k != "FEATINT_QUICK"}
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main_from_results(path: Path) -> tuple[float, str, bool] | None:
    """Seconds one seed's runs took in a finished, full (not quick) comparison (training with
    its validation rankings, and test ranking, summed over the seed's runs; the mean over the
    seeds, each seed being one run of the main command's work), a description with every
    seed's figure, and whether it covers every registered model; None if there is no such
    file."""
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    if not results.get("complete") or results["settings"]["quick"]:
        return None
    seeds = sorted(results["settings"]["seeds"])
    per_seed = {s: sum(r["train_seconds"] + r["rank_seconds"]
                       for r in results["runs"] if r["seed"] == s) for s in seeds}
    machine = results["machine"]
    missing = sorted(set(MODELS) - {r["model"] for r in results["runs"]})
    about = (f"{path}, {len(results['runs'])} runs, {machine['date']}, {machine['cpu']}, "
             f"{machine['torch_threads']} torch threads; per seed: "
             + ", ".join(f"seed {s} {v:.0f} s" for s, v in per_seed.items())
             + (f"; models not in it: {', '.join(missing)}" if missing else ""))
    return float(np.mean(list(per_seed.values()))), about, not missing


def epochs_run(path: Path) -> dict[str, float]:
    """Mean number of epochs each trained model ran in a finished comparison (empty if
    there is none)."""
    if not path.is_file():
        return {}
    runs = [r for r in json.loads(path.read_text()).get("runs", []) if r.get("history")]
    names = {r["model"] for r in runs}
    return {n: float(np.mean([r["epochs"] for r in runs if r["model"] == n])) for n in names}


def verdict(measured: float, target: float) -> str:
    return "PASS" if measured <= target else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated (default: all)")
    parser.add_argument("--batches", type=int, default=40,
                        help="timed training steps per model (default 40)")
    parser.add_argument("--data-dir", default=None, help="the ml-100k folder")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the models train and rank (default cpu; cuda: "
                             "throughput and ranking time on a GPU, with its peak memory; "
                             "the comparison with earlier code is skipped)")
    parser.add_argument("--main", choices=("results", "run", "skip"), default="results",
                        help="main command time: from the results of `make run` (default), "
                             "timed here (long), or left out")
    parser.add_argument("--results", type=Path, default=COMPARISON / RESULTS_FILE,
                        help="results file for --main results (default: the comparison's "
                             "record)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="--main run: keep its results here instead of a temp folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--against", default=BEFORE,
                        help=f"git revision whose training throughput to compare with "
                             f"(default {BEFORE}, before the speed-up; 'none': skip)")
    parser.add_argument("--against-ranking", action="store_true",
                        help="also time the full test ranking of the --against revision's "
                             "code (AFM's takes about a minute)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of the comparison with --against, the old and the new "
                             "code one after the other each round (default 1); with more, "
                             "each model's speed-up gets an interval over the rounds")
    parser.add_argument("--profile", default=None, metavar="MODELS",
                        help="comma-separated: also print where each one's training step "
                             "spends its time (torch.profiler, top operators)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the subprocess
    parser.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setting", choices=("before", "chosen"), default="before",
                        help=argparse.SUPPRESS)
    parser.add_argument("--profile-one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error(f"--batches must be at least 1, got {args.batches}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.one:
        print(json.dumps(measure_model(args.one, args.batches, args.data_dir,
                                       args.train_only, args.setting, args.profile_one,
                                       args.device)))
        return 0

    names = ordered(args.models.split(",") if args.models else list(MODELS))
    profiled = ordered(args.profile.split(",")) if args.profile else []
    unknown = [n for n in names + profiled if n not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; registered: {', '.join(ordered(MODELS))}")
    from featint.compare import cpu_model
    from featint.data import DataError, find_data_dir

    try:  # once here, rather than one failure per model
        args.data_dir = str(find_data_dir(args.data_dir))
    except DataError as err:
        parser.error(str(err))
    if args.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: CUDA is not available on this machine or torch "
                         "build; run without --device on a CPU")
        args.against = "none"  # earlier code trains on the CPU only

    print(f"featint benchmarks: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__},"
          f" OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{time.strftime('%Y-%m-%d')}")
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), "
              f"CUBLAS_WORKSPACE_CONFIG={os.environ.get('CUBLAS_WORKSPACE_CONFIG', 'unset')}")
    print("(figures depend on the machine and its load; quote them from an idle machine)\n")

    figures: dict[str, object] = {"models": []}
    head = (f"{'model':<16}{'params':>10}{'train ex/s':>12}{'pairs/s':>10}{'epoch s':>9}"
            f"{'rank s':>9}{'target':>8}{'':>6}{'base MB':>9}{'peak MB':>9}"
            + (f"{'GPU MB':>9}" if args.device == "cuda" else ""))
    from featint.config import BUDGET

    limit = BUDGET.valid_limit
    print("Per model: training throughput (1 + 4 negatives per example), estimated epoch (one "
          "pass over the fit examples + ranking "
          + ("the validation set" if limit is None else f"{limit} validation examples")
          + ", as the comparison's budget does), full test ranking "
          "(20,187 x 1682), resident memory after loading the task and at its peak")
    print(head)
    misses = 0
    before_dir = tempfile.TemporaryDirectory()
    before = (None if args.against == "none"
              else earlier_package(args.against, Path(before_dir.name)))
    for name in names:
        row = run_isolated(name, args.batches, args.data_dir, device=args.device)
        if before is not None and "error" not in row:
            old = run_isolated(name, args.batches, args.data_dir, before,
                               ranking=args.against_ranking)
            for key in ("train_examples_per_s", "train_examples_per_cpu_s", "rank_seconds",
                        "rank_cpu_seconds"):
                if key in old:
                    row[f"before_{key}"] = old[key]
            row["before_examples_per_s"] = old.get("train_examples_per_s", float("nan"))
        figures["models"].append(row)
        if "error" in row:
            print(f"{name:<16}failed: {row['error']}")
            misses += 1
            continue
        valid = min(row["valid_examples"], limit or row["valid_examples"])
        row["epoch_seconds"] = (row["fit_examples"] / row["train_examples_per_s"]
                                + valid / row["rank_examples"] * row["rank_seconds"])
        target = RANK_TARGET_FAST if name in FAST_MODELS else RANK_TARGET_ANY
        mark = verdict(row["rank_seconds"], target)
        misses += mark == "MISS"
        print(f"{name:<16}{row['params']:>10,}{row['train_examples_per_s']:>12,.0f}"
              f"{row['train_pairs_per_s']:>10,.0f}{row['epoch_seconds']:>9.1f}"
              f"{row['rank_seconds']:>9.1f}"
              f"{'<= ' + format(target, 'g'):>8}{mark:>6}{row['base_rss_mb']:>9.0f}"
              f"{row['peak_rss_mb']:>9.0f}"
              + (f"{row['gpu_peak_mb']:>9.0f}" if "gpu_peak_mb" in row else ""))

    if before is not None:
        print(f"\nTraining throughput against the code of {args.against} (examples per "
              "second, the same steps, measured one after the other in this run)")
        print("(wall clock, and CPU time of this process: on a busy machine the CPU time of "
              "a one-thread run, OMP_NUM_THREADS=1, measures the code, the wall clock the "
              "load)")
        print(f"{'model':<16}{'before':>10}{'now':>10}{'speed-up':>10}{'per CPU s':>11}"
              + (f"{'rank s before':>15}{'now':>8}{'CPU s before':>14}{'now':>8}"
                 if args.against_ranking else ""))
        for row in figures["models"]:
            if "before_examples_per_s" in row:
                old, new = row["before_examples_per_s"], row["train_examples_per_s"]
                cpu = (row["train_examples_per_cpu_s"]
                       / row.get("before_train_examples_per_cpu_s", float("nan")))
                ranked = (f"{row['before_rank_seconds']:>15.1f}{row['rank_seconds']:>8.1f}"
                          f"{row['before_rank_cpu_seconds']:>14.1f}"
                          f"{row['rank_cpu_seconds']:>8.1f}"
                          if "before_rank_seconds" in row else "")
                print(f"{row['model']:<16}{old:>10,.0f}{new:>10,.0f}{new / old:>9.2f}x"
                      f"{cpu:>10.2f}x" + ranked)
        if args.repeat > 1:
            print(f"\nThe same over {args.repeat} rounds (the round above and "
                  f"{args.repeat - 1} more, which code goes first swapped every round): "
                  "geometric mean of the speed-ups with its 95% t interval")
            print(f"{'model':<16}{'wall clock':>28}{'per CPU s':>28}")
            for row in figures["models"]:
                if "before_examples_per_s" not in row:
                    continue
                more = rounds_against(row["model"], args.batches, args.data_dir, before,
                                      args.repeat - 1)
                walls = [row["train_examples_per_s"] / row["before_examples_per_s"]]
                cpus = [row["train_examples_per_cpu_s"]
                        / row["before_train_examples_per_cpu_s"]]
                walls += [m["wall"] for m in more]
                cpus += [m["cpu"] for m in more]
                row["speedup_rounds"] = {"wall": walls, "cpu": cpus}
                cells = "".join(
                    "{:>10.2f}x [{:.2f}, {:.2f}] n={}".format(*speedup_interval(v), len(v))
                    .rjust(28) for v in (walls, cpus))
                print(f"{row['model']:<16}{cells}")
    before_dir.cleanup()

    # the figures above train every model as it was set before tuning; where the comparison
    # now trains another model (another size, width, k), that one's throughput too
    from featint.tuning import chosen_trial, pending

    # a model whose tuning is not complete has no chosen setting yet: nothing to add for it
    unsettled = pending(names)
    changed = [n for n in names if n not in unsettled
               and model_setup(n, "chosen")[3] != model_setup(n)[3]]
    if changed:
        print("\nTraining throughput of the setting the comparison trains, where its model "
              "differs from the one above (the tuning record)")
        print(f"{'model':<16}{'setting':<40}{'ex/s':>10}")
        for name in changed:
            row = run_isolated(name, args.batches, args.data_dir, setting="chosen",
                               extra=("--train-only",), device=args.device)
            figures.setdefault("chosen", []).append(row)
            text = (f"{row['train_examples_per_s']:>10,.0f}" if "error" not in row
                    else f"  failed: {row['error']}")
            top = chosen_trial(name)
            label = top["label"] if top else "(not tuned)"
            print(f"{name:<16}{label:<40}{text}")

    for name in profiled:
        row = run_isolated(name, args.batches, args.data_dir, extra=("--profile-one",))
        print(f"\nWhere {name}'s training step spends its time ({args.batches} steps, "
              f"the setting before tuning, torch.profiler, by self CPU time):")
        print(row.get("profile", f"failed: {row.get('error')}"))

    print("\nFM pairwise term, batch 16, k 16: naive O(k n^2) vs sum-square O(k n)")
    rows = fm_scaling()
    figures["fm_scaling"] = rows
    print(f"{'n':>6}{'naive ms':>11}{'sum-square ms':>15}{'ratio':>8}")
    for r in rows:
        print(f"{r['n']:>6}{r['naive_ms']:>11.3f}{r['sum_square_ms']:>15.3f}"
              f"{r['naive_ms'] / r['sum_square_ms']:>8.1f}")
    naive, fast = slope(rows, "naive_ms"), slope(rows, "sum_square_ms")
    print(f"growth exponent in n (larger half of the sizes): naive {naive:.2f}, sum-square "
          f"{fast:.2f} (operation counts grow as n^2 and n)")
    if naive > 2.2:
        print("the naive form grows faster than n^2 here: its (batch, n, n) matrix of dot "
              "products outgrows the CPU caches, so memory traffic adds to the arithmetic")

    measured = [r for r in figures["models"] if "error" not in r]
    if measured:
        cap = BUDGET.epochs
        worst = sum(cap * r["epoch_seconds"] + r["rank_seconds"] for r in measured)
        print(f"\nEstimate of the main command, one seed, every model to the {cap}-epoch cap "
              f"(early stopping only shortens it): {worst:.0f} s "
              f"(target <= {MAIN_TARGET:.0f} s)")
        epochs = epochs_run(args.results)
        known = [r for r in measured if r["model"] in epochs]
        if known:
            parts = {r["model"]: epochs[r["model"]] * r["epoch_seconds"] + r["rank_seconds"]
                     for r in known}
            slowest = max(parts, key=parts.get)
            print(f"Estimate at the epochs the runs of {args.results.parent.name}/ took "
                  f"(mean over seeds, early stopping included), trained models only: "
                  f"{sum(parts.values()):.0f} s; the largest share is {slowest}'s "
                  f"{parts[slowest]:.0f} s")
    seconds, every_model = None, set(names) == set(MODELS)
    if args.main == "run":
        print(f"\nMain command: featint compare --seeds 0 on {', '.join(names)} ...",
              flush=True)
        seconds = time_main(names, args.data_dir, args.keep)
        print(f"main command, one seed, end to end: {seconds:.0f} s", end="")
    elif args.main == "results":
        found = main_from_results(args.results)
        if found is None:
            print(f"\nMain command: no finished full comparison at {args.results}; run `make "
                  "run` first, or `--main run` to time one seed here (long)")
        else:
            seconds, about, every_model = found
            print(f"\nMain command, from {about}:\none seed's training (with validation) and "
                  f"test ranking, mean over the seeds: {seconds:.0f} s", end="")
    if seconds is not None:
        figures["main_seconds"] = seconds
        mark = verdict(seconds, MAIN_TARGET) if every_model else "(not every model: no verdict)"
        misses += mark == "MISS"
        print(f" (target <= {MAIN_TARGET:.0f} s) {mark}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    print(f"\n{misses} target(s) missed" if misses else "\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
