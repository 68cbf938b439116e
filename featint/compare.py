"""The comparison: every model, the same budget, several seeds, the baseline ladder.

:func:`compare` trains each registered model with :func:`featint.train.fit` under one budget
(:class:`Budget`: the same embedding size, epoch cap, early stopping and batches for every
model) with the setting its tuning chose on validation (its learning rate among them), builds
the counting baselines of :mod:`featint.baselines` (their settings chosen on validation),
ranks the test set with the protocol's evaluation (``book/protocol.md``; the version is
recorded), and writes into ``out_dir``:

- ``results.json``: the settings and budget, the machine, one record per (model, seed) run and
  one aggregate per model (layout in :func:`compare`);
- ``leaderboard.csv``: one row per model, in :data:`CANONICAL_ORDER`, baselines first;
- ``mean_rank.png``/``.svg`` and ``hr10.png``/``.svg``: bars with 95% intervals;
- ``ranks/<model>_seed<seed>.npz``: the rank of every test example (``ranks``, float32, exact
  since ranks are multiples of 0.5) and its example index (``examples``), for paired tests.

Every file is written atomically (:func:`atomic_open`). ``results.json`` is written when the
comparison starts and again after each run, with ``"complete": false`` until the end, so an
interrupted comparison leaves whole files that describe what finished, and ``resume=True``
continues it. The CSV and the charts are written at the end; a new (not resumed) comparison
first removes those of an earlier one in the same folder, so they never contradict the JSON.

Uncertainty is reported two ways. The spread over seeds (``std``) is the training noise:
initialisation, negatives, batch order. The interval (``interval``) is the test-set noise: a
percentile bootstrap over test examples of the *seed-averaged* metric, where every bootstrap
replicate draws one set of examples and uses it for all seeds (they rank the same examples), so
the interval belongs to the number in the table, the mean over seeds. With one seed it is the
ordinary bootstrap interval of that run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

import featint
from featint.baselines import COUNTING, RandomScores
from featint.config import Budget, Config, current, environment_snapshot, resolve_device, use
from featint.data import DEFAULT_RELEASE, release_of
from featint.evaluate import (
    MEAN_METRICS,
    METRICS,
    Evaluation,
    bootstrap,
    metrics,
    rank_examples,
    subsample,
)
from featint.files import atomic_open, finite, load_ranks, save_ranks, write_json
from featint.models import MODELS, count_parameters
from featint.report import (
    BASELINES,
    CHARTS,
    COST_FIELDS,
    LADDER,
    leaderboard,
    ordered,
    save_charts,
)
from featint.stats import Pairwise, mean_interval, pairwise, per_example, pooled_interval
from featint.task import PROTOCOL, WINDOWS, NextMovieTask
from featint.training import describe, model_hparams, setting_of, trained
from featint.tuning import load_trials, pending

FORMAT = "featint-compare/1"
RESULTS_FILE = "results.json"
LEADERBOARD_FILE = "leaderboard.csv"
RANKS_DIR = "ranks"
INTERVAL_METHOD = (
    "95% percentile bootstrap over test examples (1000 replicates) of the metric averaged over "
    "seeds; each replicate resamples one set of examples and applies it to every seed"
)


class CompareError(ValueError):
    """The arguments of :func:`compare` cannot work (unknown model, bad seeds, a resume from
    a comparison with other settings); the message says which and what to do."""


# -- the machine and the settings ------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``, else what :mod:`platform` knows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Where the numbers come from: CPU, cores, threads, versions, device and date."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        **environment_snapshot(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "featint": featint.__version__,
        "device": str(device),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


# -- one run -------------------------------------------------------------------------------
def test_examples(task: NextMovieTask, config: Config | None = None) -> np.ndarray:
    """The test examples every run is ranked on (quick mode: the quick test size, evenly
    spread)."""
    config = config or current()
    return subsample(task.examples("test"), config.sizes.test_examples if config.quick
                     else None)


def _evaluate(
    model: nn.Module, task: NextMovieTask, examples: np.ndarray, device: torch.device,
    progress: bool, bootstrap_samples: int,
) -> tuple[Evaluation, float]:
    """Rank ``examples`` and summarise; returns the evaluation and the ranking seconds (the
    bootstrap is not part of the ranking time)."""
    start = time.perf_counter()
    ranks = rank_examples(model, task, examples, device=device, progress=progress)
    seconds = time.perf_counter() - start
    return Evaluation(ranks, examples, metrics(ranks), bootstrap(ranks, bootstrap_samples)), seconds


def run_one(
    task: NextMovieTask, name: str, seed: int, budget: Budget, device: torch.device,
    setting: dict[str, Any] | None = None, progress: bool = True, bootstrap_samples: int = 1000,
) -> tuple[dict[str, Any], Evaluation]:
    """Train (models, through :func:`featint.training.trained`) or build (baselines)
    ``name`` with ``seed`` and ``setting`` (default: its tuned setting), rank the test set,
    and return the run record (see :func:`compare`) and its :class:`Evaluation`. A counting
    baseline is built from the training period with its setting (chosen on validation by
    ``make tune``, whose trials the record carries)."""
    start = time.perf_counter()
    history, trials = None, load_trials(name)
    setting = setting_of(name) if setting is None else setting
    if name == "random":
        model: nn.Module = RandomScores(seed)
        hparams: dict[str, Any] = {}
    elif name in BASELINES:
        hparams = dict(setting)
        model = COUNTING[name](task, period="train", **hparams)
    else:
        hparams = model_hparams(name, budget, setting)
        model, history = trained(name, task, seed, budget, setting, device, progress)
    train_seconds = history.seconds if history else time.perf_counter() - start
    model.to(device)
    evaluation, rank_seconds = _evaluate(model, task, test_examples(task), device, progress,
                                         bootstrap_samples)
    epochs = len(history.epochs) if history else 0
    record = {
        "model": name,
        "seed": seed,
        "kind": "baseline" if name in LADDER else "model",
        "setting": setting,
        "hparams": hparams,
        "params": count_parameters(model),
        "train_seconds": train_seconds,
        "epochs": epochs,
        "best_epoch": history.best_epoch if history else 0,
        "seconds_per_epoch": history.seconds / epochs if history and epochs else 0.0,
        "rank_seconds": rank_seconds,
        "num_examples": int(len(evaluation.examples)),
        "metrics": evaluation.metrics,
        "intervals": {m: list(lohi) for m, lohi in evaluation.intervals.items()},
        "history": history.epochs if history else [],
        "trials": trials,
        "ranks_file": f"{RANKS_DIR}/{name}_seed{seed}.npz",
    }
    return record, evaluation


# -- aggregation ------------------------------------------------------------------------------
def _std(values: list[float]) -> float | None:
    """Sample standard deviation over seeds; None (JSON null) with a single seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def aggregate(
    runs: list[dict[str, Any]], ranks: dict[tuple[str, int], np.ndarray],
    bootstrap_samples: int = 1000,
) -> dict[str, dict[str, Any]]:
    """One summary per model: mean and std over seeds of every metric and cost, the pooled
    interval of the seed-averaged metrics over test examples (``interval``, a bootstrap) and
    the interval that also holds the training noise (``interval_seeds``, a t interval for
    the metrics that are means over examples: :func:`featint.stats.mean_interval`; the median
    rank has none). ``ranks[(model, seed)]``: per-example ranks of that run, on the same
    examples for every run."""
    out = {}
    for name in ordered([r["model"] for r in runs]):
        mine = sorted((r for r in runs if r["model"] == name), key=lambda r: r["seed"])
        table = {m: [r["metrics"][m] for r in mine] for m in METRICS}
        table.update({c: [r[c] for r in mine] for c in COST_FIELDS})
        stacked = np.stack([ranks[(name, r["seed"])] for r in mine])
        out[name] = {
            "kind": mine[0]["kind"],
            "seeds": [r["seed"] for r in mine],
            "params": mine[0]["params"],
            "mean": {key: float(np.mean(v)) for key, v in table.items()},
            "std": {key: _std(v) for key, v in table.items()},
            "interval": {m: list(lohi) for m, lohi in
                         pooled_interval(stacked, bootstrap_samples).items()},
            "interval_seeds": {m: list(mean_interval(per_example(stacked, m))[1:])
                               for m in MEAN_METRICS},
        }
    return out


# -- the comparison --------------------------------------------------------------------------
@dataclass
class Comparison:
    """The results of :func:`compare` (or of :meth:`load`): the content of ``results.json``
    and where it lives."""

    out_dir: Path
    results: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, out_dir: str | Path) -> Comparison:
        """Read ``out_dir/results.json`` written by :func:`compare`."""
        out_dir = Path(out_dir)
        results = json.loads((out_dir / RESULTS_FILE).read_text(encoding="utf-8"))
        if results.get("format") != FORMAT:
            raise ValueError(f"{out_dir / RESULTS_FILE} is not a {FORMAT} results file")
        return cls(out_dir, results)

    @property
    def protocol(self) -> int:
        """The protocol version the results follow (``"next-movie v2"`` -> 2)."""
        return int(self.results["settings"]["protocol"].rsplit("v", 1)[1])

    @property
    def dataset(self) -> str:
        """The MovieLens release the results were computed on (records written before
        featint knew other releases hold MovieLens 100K's)."""
        return self.results["settings"].get("dataset", DEFAULT_RELEASE)

    @property
    def pending(self) -> dict[str, str]:
        """The registered models the comparison left out because their tuning was not
        complete, each with why (:func:`featint.tuning.pending`)."""
        return dict(self.results["settings"].get("pending", {}))

    @property
    def window(self) -> int | None:
        """The history window of the task the results were computed on."""
        return self.results["data"].get("window")

    def protocol_warning(self) -> str | None:
        """A plain sentence when the results follow another protocol (or history window)
        than featint's own (:data:`featint.task.PROTOCOL`), None when they agree."""
        if self.protocol == PROTOCOL and self.window == WINDOWS[PROTOCOL]:
            return None
        return (f"{self.out_dir / RESULTS_FILE} holds protocol v{self.protocol} results "
                f"(history window {self.window}), but featint now follows protocol "
                f"v{PROTOCOL} (window {WINDOWS[PROTOCOL]}): they are not comparable with "
                f"anything computed now; rerun `featint compare --out {self.out_dir}`")

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.results["runs"]

    @property
    def aggregates(self) -> dict[str, dict[str, Any]]:
        return self.results["aggregate"]

    def leaderboard(self) -> pd.DataFrame:
        return leaderboard(self.aggregates)

    def per_example(self, model: str, metric: str) -> np.ndarray:
        """``(seeds, num_examples)``: each seed's per-example values of ``metric`` (see
        :func:`featint.stats.per_example`), the columns the same test examples for every
        model, ready for :func:`featint.stats.paired_difference` and
        :func:`featint.stats.pairwise`."""
        seeds = self.aggregates[model]["seeds"]
        return np.stack([per_example(self.ranks(model, s)[0], metric) for s in seeds])

    def pairwise(self, metric: str = "hr@10", models: Sequence[str] | None = None,
                 alpha: float = 0.05) -> Pairwise:
        """Every pair of ``models`` (default: every model but random, whose mean rank would
        only widen the family) compared on ``metric`` over the test examples and seeds,
        Holm-corrected over all of them (:func:`featint.stats.pairwise`). The README, chapter
        08 and every chapter's sentences on which models differ read this one family, so a
        statement in one place never rests on a smaller family than in another."""
        names = [n for n in (models or self.aggregates) if models or n != "random"]
        key = (metric, tuple(names), alpha)
        cache = self.__dict__.setdefault("_pairwise", {})
        if key not in cache:
            cache[key] = pairwise({n: self.per_example(n, metric) for n in names}, metric,
                                  alpha)
        return cache[key]

    def ranks(self, model: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-example ``(ranks, examples)`` of one run."""
        for run in self.runs:
            if run["model"] == model and run["seed"] == seed:
                return load_ranks(self.out_dir / run["ranks_file"])
        raise KeyError(f"no run of {model!r} with seed {seed} in {self.out_dir}")


def _check_arguments(models: Sequence[str], seeds: Sequence[int], budget: Budget) -> None:
    unknown = [m for m in models if m not in MODELS and m not in BASELINES]
    if unknown:
        raise CompareError(f"unknown model {unknown[0]!r}; registered models are "
                           f"{', '.join(ordered(list(MODELS)))}")
    if not models:
        raise CompareError("no model to compare: name at least one model or keep the baselines")
    if not seeds:
        raise CompareError("need at least one seed")
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise CompareError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
    for name in ("epochs", "embed_dim", "patience", "batch_size", "num_negatives"):
        if getattr(budget, name) < 1:
            raise CompareError(f"{name} must be at least 1, got {getattr(budget, name)}")


def _previous_runs(out_dir: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs of an earlier, compatible comparison in ``out_dir`` whose ranks file exists."""
    path = out_dir / RESULTS_FILE
    if not path.exists():
        return []
    old = json.loads(path.read_text(encoding="utf-8"))
    keys = ("dataset", "protocol", "budget", "config", "num_test_examples")
    old_settings = {"dataset": DEFAULT_RELEASE, **old.get("settings", {})}
    different = [k for k in keys if old_settings.get(k) != settings.get(k)]
    before = old_settings.get("settings", {})
    different += [f"the setting of {n}" for n, s in settings["settings"].items()
                  if n in before and before[n] != s]
    if old.get("format") != FORMAT or different:
        raise CompareError(
            f"cannot resume from {path}: it was written with different settings "
            f"({', '.join(different) or 'format'}); choose another output folder or start afresh"
        )
    return [r for r in old.get("runs", []) if (out_dir / r["ranks_file"]).exists()]


def compare(
    models: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int | None = None,
    embed_dim: int | None = None,
    device: str | torch.device | None = None,
    out_dir: str | Path = "results",
    quick: bool | None = None,
    *,
    data_dir: str | Path | None = None,
    dataset: str = DEFAULT_RELEASE,
    task: NextMovieTask | None = None,
    baselines: bool = True,
    settings: dict[str, dict[str, Any]] | None = None,
    patience: int | None = None,
    valid_limit: int | None | str = "budget",
    resume: bool = False,
    progress: bool = True,
    bootstrap_samples: int = 1000,
    config: Config | None = None,
) -> Comparison:
    """Train and evaluate ``models`` (default: every registered one whose tuning is complete;
    the others are recorded as ``pending``, with why, see :func:`featint.tuning.pending`) over
    ``seeds`` under one :class:`Budget`, with the untrained baselines of the ladder, and write
    the results.

    ``config`` (default :func:`featint.config.current`) gives quick mode, the device and the
    budget; ``quick``, ``device``, ``epochs``, ``embed_dim``, ``patience`` and ``valid_limit``
    (the validation examples early stopping ranks, None: all) change them for this run, and
    ``results.json`` records the configuration that ran. ``task`` replaces loading MovieLens
    from ``data_dir``; ``dataset`` names the MovieLens release to load (default 100K, the
    book's; results name their release and are never mixed with another's). ``settings``
    maps a model name to its setting (default: the tuned one,
    :func:`featint.training.setting_of`); they are recorded.
    ``resume`` reuses the finished runs of a compatible earlier comparison in ``out_dir``.

    ``results.json`` holds: ``format``; ``complete`` (false while running); ``settings``
    (models, seeds, budget, budget text, the configuration, quick, device, dataset (the
    MovieLens release), protocol, test
    example count, interval method, per-model settings); ``machine`` (:func:`machine_info`);
    ``data`` (source, counts, history window); ``runs``: one record per (model, seed) with
    ``model``, ``seed``, ``kind`` (``model``/``baseline``), ``setting``, ``hparams``,
    ``params``, ``train_seconds``, ``epochs``, ``best_epoch``, ``seconds_per_epoch``,
    ``rank_seconds``, ``num_examples``, ``metrics``, ``intervals`` (per-run 95% bootstrap),
    ``history`` (per epoch), ``trials`` and ``ranks_file``; ``aggregate``: per model ``kind``,
    ``seeds``, ``params``, ``mean`` and ``std`` over seeds of the metrics and costs,
    ``interval`` (pooled, see the module docstring).
    """
    config = config or current()
    names = ordered(list(models) if models is not None else list(MODELS))
    names = [n for n in names if n not in BASELINES]
    # by default a model whose trials are not all on record is left out, and said so: trained
    # with a setting nobody chose, it would not be compared on equal terms
    left_out = pending(names) if models is None and settings is None else {}
    names = [n for n in names if n not in left_out]
    for name, why in left_out.items():
        tqdm.write(f"{name} is left out of the comparison: {why}", file=sys.stderr)
    if baselines:
        names = list(BASELINES) + names
    seeds = [int(s) for s in seeds]
    changes = {k: v for k, v in dict(epochs=epochs, embed_dim=embed_dim,
                                     patience=patience).items() if v is not None}
    if valid_limit != "budget":
        changes["valid_limit"] = valid_limit
    budget = replace(config.budget, **changes)
    _check_arguments(names, seeds, budget)
    if settings is None:
        settings = {n: setting_of(n) for n in names}
    strays = sorted(set(settings) - set(names))
    if strays:
        raise CompareError(f"settings given for {', '.join(strays)}, which is not compared")
    settings = {n: dict(settings.get(n, {})) for n in names}
    try:
        resolved = resolve_device(device if device is not None else config.device)
    except ValueError as err:
        raise CompareError(str(err)) from None
    config = replace(config, budget=budget, device=str(resolved),
                     quick=config.quick if quick is None else bool(quick))
    device = resolved
    out_dir = Path(out_dir)

    with use(config):
        source = "a task given to compare()"
        if task is None:  # the folder is not recorded: results are committed, paths are local
            source = (f"{release_of(dataset).title}, "
                      + ("every file sha256-verified against the official release"
                         if dataset == DEFAULT_RELEASE else
                         "its archive md5-verified against the published one"))
            task = featint.build_task(featint.load_movielens(data_dir, release=dataset))
        examples = test_examples(task, config)
        record = {
            "models": names,
            "pending": left_out,
            "seeds": seeds,
            "budget": asdict(budget),
            "budget_text": describe(budget),
            "config": config.record(),
            "settings": settings,
            "quick": config.quick,
            "device": str(device),
            "dataset": task.dataset,
            "protocol": f"next-movie v{task.protocol}",
            "num_test_examples": int(len(examples)),
            "interval_method": INTERVAL_METHOD,
        }
        results: dict[str, Any] = {
            "format": FORMAT,
            "complete": False,
            "settings": record,
            "machine": machine_info(device),
            "data": {"source": source, "counts": task.counts(), "window": task.window,
                     "history_fields": list(task.history_fields)},
            "runs": [],
            "aggregate": {},
        }
        done = _previous_runs(out_dir, record) if resume else []
        if not resume:  # the summaries of an earlier comparison would contradict the new JSON
            for stale in [LEADERBOARD_FILE] + [f"{s}.{x}" for s in CHARTS.values()
                                               for x in ("png", "svg")]:
                (out_dir / stale).unlink(missing_ok=True)
        ranks: dict[tuple[str, int], np.ndarray] = {}
        for run in done:
            r, ex = load_ranks(out_dir / run["ranks_file"])
            if np.array_equal(ex, examples):
                ranks[(run["model"], run["seed"])] = r
        runs = [r for r in done if (r["model"], r["seed"]) in ranks
                and r["model"] in names and r["seed"] in seeds]
        results["runs"] = sorted(runs, key=lambda r: (r["seed"], names.index(r["model"])))
        write_json(out_dir / RESULTS_FILE, finite(results))
        jobs = [(s, n) for s in seeds for n in names if (n, s) not in
                {(r["model"], r["seed"]) for r in runs}]

        bar = tqdm(jobs, desc="compare", unit="run", disable=not progress)
        for seed, name in bar:
            bar.set_postfix_str(f"{name} seed {seed}")
            run, evaluation = run_one(task, name, seed, budget, device, settings[name],
                                      progress, bootstrap_samples)
            save_ranks(out_dir / run["ranks_file"], evaluation.ranks, evaluation.examples)
            ranks[(name, seed)] = evaluation.ranks
            runs.append(run)
            results["runs"] = sorted(runs, key=lambda r: (r["seed"], names.index(r["model"])))
            write_json(out_dir / RESULTS_FILE, finite(results))  # partial: not complete yet
            if progress:
                m = run["metrics"]
                tqdm.write(f"{name} seed {seed}: mean rank {m['mean_rank']:.1f}  "
                           f"HR@10 {m['hr@10']:.4f}  MRR {m['mrr']:.4f}  "
                           f"({run['train_seconds']:.0f}s training, "
                           f"{run['rank_seconds']:.1f}s ranking)")
        bar.close()

    results["runs"] = sorted(runs, key=lambda r: (r["seed"], names.index(r["model"])))
    results["aggregate"] = aggregate(results["runs"], ranks, bootstrap_samples)
    results["complete"] = True
    table = leaderboard(results["aggregate"])
    files = [out_dir / RESULTS_FILE, out_dir / LEADERBOARD_FILE]
    with atomic_open(out_dir / LEADERBOARD_FILE, "w", encoding="utf-8", newline="") as f:
        table.to_csv(f, float_format="%.6g")
    seeds_text = f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}"
    subtitle = (f"mean over {seeds_text}, bars: 95% bootstrap interval over test examples"
                + (" · QUICK MODE (smoke test, not results)" if config.quick else ""))
    files += save_charts(out_dir, results["aggregate"], results["runs"], subtitle)
    write_json(out_dir / RESULTS_FILE, finite(results))
    files += [out_dir / r["ranks_file"] for r in results["runs"]]
    return Comparison(out_dir, results, files)
