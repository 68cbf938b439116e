"""One change at a time: featint's DeepFM and NFM moved from featint's setting towards
DeepCTR-Torch's, to find out which training detail (or feature) makes a library's twin
better or worse (``make ablation``).

The baseline of each model is its setting in the comparison (:func:`featint.tuning.chosen`,
under the comparison's :class:`featint.config.Budget`). Each change (:data:`CHANGES`) alters
one thing of that setting towards DeepCTR-Torch 0.3.0's defaults, everything else kept:

- the learning rate: 1e-3 (``compile("adam")``);
- the initialisation of the embeddings: N(0, 1e-4^2) (``init_std``; not for a model that
  starts from a trained FM, whose embeddings it copies);
- dropout: none (every ``*dropout`` argument of the model at 0);
- the MLP widths: 64-32 (the twins of the issue), and the library's defaults (DeepFM 256-128,
  NFM 128-128);
- the loss summed over the batch, with an L2 penalty of 1e-5 on the embedding rows the batch
  used (``reduction="sum"``, ``embedding_l2=1e-5``; the library's penalty covers whole
  tables, every step);
- no FM pre-training (the library's NFM starts from scratch; only where the setting has it);
- early stopping on HR@10 instead of MRR;
- all of these together (with the 64-32 MLP);
- with ``--history-windows``: the history field as the last W movies (a task option that
  protocol v3 adds, issue 22; the comparison itself stays on the protocol's features).

Every variant is trained with seeds 0, 1, 2 through the model cache (the baseline's runs are
the comparison's own), then ranks the whole validation and test sets. An effect is the
variant minus the baseline: per seed (the same seed's baseline), its mean with a 95%
t-interval over seeds, and a bootstrap over examples and seeds, paired by both
(:func:`paired_over_seeds`). Writes ``results/ablation/ablation.json`` (every
run, every effect), ``featint/records/ablation/ablation.md`` (the tables) and the ranks of each run
(``featint/records/ablation/ranks/<model>/<variant>_seed<seed>.npz``: ``valid``, ``test`` and their
example indices). Runs on record are not rerun. ``--quick``: featint's quick mode, one seed.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import featint
from featint.config import BUDGET, RECORDS, Budget, use
from featint.evaluate import metrics, rank_examples, subsample
from featint.files import atomic_open, write_json
from featint.models import MODELS
from featint.stats import per_example, t_quantile
from featint.synthetic import synthetic_movielens
from featint.task import NextMovieTask
from featint.training import describe, setting_of, trained

ROOT = Path(__file__).resolve().parent.parent
FORMAT = "featint-ablation/1"
#: DeepCTR-Torch 0.3.0's defaults the changes move towards (tests/test_peers.py checks them
#: against the library where it is installed).
DEEPCTR_LR = 1e-3
DEEPCTR_INIT_STD = 1e-4
DEEPCTR_L2 = 1e-5
DEEPCTR_HIDDEN = {"deepfm": (256, 128), "nfm": (128, 128)}
#: The MLP of the twins in the issue that started this.
ISSUE_HIDDEN = (64, 32)
#: The effects reported, per split.
EFFECT_METRICS = ("mrr", "hr@10", "mean_rank")
#: Quick mode: validation and test examples ranked.
QUICK_SCORED = 500

Setting = dict[str, Any]


def _params(name: str) -> set[str]:
    return set(inspect.signature(MODELS[name].__init__).parameters)


def lr(name: str, s: Setting) -> Setting | str:
    return {**s, "lr": DEEPCTR_LR}


def init(name: str, s: Setting) -> Setting | str:
    if s.get("pretrain"):
        return "starts from a trained FM, whose embeddings it copies"
    return {**s, "init_std": DEEPCTR_INIT_STD}


def no_dropout(name: str, s: Setting) -> Setting | str:
    keys = sorted(p for p in _params(name) if p.endswith("dropout"))
    return {**s, **{k: 0.0 for k in keys}} if keys else "has no dropout"


def hidden(widths: tuple[int, ...] | dict[str, tuple[int, ...]]) -> Callable:
    def change(name: str, s: Setting) -> Setting | str:
        if "hidden" not in _params(name):
            return "has no MLP widths"
        return {**s, "hidden": list(widths[name] if isinstance(widths, dict) else widths)}
    return change


def summed_l2(name: str, s: Setting) -> Setting | str:
    return {**s, "reduction": "sum", "embedding_l2": DEEPCTR_L2}


def no_pretrain(name: str, s: Setting) -> Setting | str:
    if not s.get("pretrain"):
        return "is not pre-trained"
    return {k: v for k, v in s.items() if k != "pretrain"}


def same(name: str, s: Setting) -> Setting | str:
    return dict(s)


def everything(name: str, s: Setting) -> Setting | str:
    """Every change of the setting at once (pre-training off first, so that the
    initialisation applies), with the 64-32 MLP."""
    for change in (no_pretrain, lr, init, no_dropout, hidden(ISSUE_HIDDEN), summed_l2):
        out = change(name, s)
        s = out if isinstance(out, dict) else s
    return s


@dataclass(frozen=True)
class Change:
    """One variant: ``setting(model, baseline setting)`` gives its setting, or a sentence
    saying why the change does not apply; ``monitor`` and ``history_window`` change the
    budget and the task instead (None: the baseline's)."""

    label: str
    library: str
    setting: Callable[[str, Setting], Setting | str]
    monitor: str | None = None
    history_window: int | str | None = None


BASELINE = Change("baseline (the comparison's setting)", "featint", same)
CHANGES = (
    Change("learning rate 1e-3", "Adam's default learning rate (compile('adam'))", lr),
    Change("embeddings N(0, 1e-4²)", "init_std=1e-4", init),
    Change("no dropout", "dnn_dropout=0 (NFM: bi_dropout=0)", no_dropout),
    Change("MLP 64-32", "the MLP of the twins in the issue", hidden(ISSUE_HIDDEN)),
    Change("MLP as DeepCTR-Torch", "dnn_hidden_units: DeepFM (256, 128), NFM (128, 128)",
           hidden(DEEPCTR_HIDDEN)),
    Change("summed loss + L2 1e-5 on the used embeddings",
           "a loss summed over the batch, plus l2_reg_embedding=1e-5 (on whole tables)",
           summed_l2),
    Change("no FM pre-training", "no pre-training", no_pretrain),
    Change("early stopping on HR@10", "the twins of the issue stopped on HR@10", same,
           monitor="hr@10"),
    Change("all of the above (MLP 64-32)", "the twins of the issue", everything,
           monitor="hr@10"),
)


def window_change(w: int | str) -> Change:
    """The history field as the last ``w`` movies instead of the protocol's (``"all"``: every
    movie so far, protocol v2's field)."""
    label = "history: every movie so far" if w == "all" else f"history: last {w} movies"
    return Change(label, "the twins of the issue used the last 20", same, history_window=w)


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


class AblationError(Exception):
    """A problem the user can fix; the message says how."""


def build(ml: Any, history_window: int | str | None) -> NextMovieTask:
    """The protocol's task (``None``), or the same with another history window (a number, or
    ``"all"`` for every movie so far): an experiment on the protocol's one feature."""
    if history_window is None:
        return featint.build_task(ml)
    return featint.build_task(ml, window=None if history_window == "all" else history_window)


# -- statistics ----------------------------------------------------------------------------------
def over_seeds(diffs: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean of the per-seed differences and its t-interval (None with one seed)."""
    d = np.asarray(diffs, dtype=np.float64)
    out: dict[str, Any] = {"per_seed": d.tolist(), "mean": float(d.mean()), "lo": None,
                           "hi": None}
    if len(d) > 1:
        half = (float(t_quantile((1 + level) / 2, len(d) - 1)) * d.std(ddof=1)
                / math.sqrt(len(d)))
        out.update(lo=float(d.mean() - half), hi=float(d.mean() + half))
    return out


def paired_over_seeds(a: np.ndarray, b: np.ndarray, num_samples: int = 2000,
                      level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` and its two-stage bootstrap interval, ``a`` and ``b`` ``(seeds,
    examples)`` with row ``s`` of both from the same seed and column ``j`` the same example:
    each replicate draws the examples and the seeds with replacement, the same draw for both
    (a variant and its baseline share a seed's initialisation and negatives, so they are
    paired by seed as well as by example, unlike two models of the comparison)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    num_seeds, n = d.shape
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, num_samples, 100):
        size = min(100, num_samples - start)
        idx = rng.integers(0, n, size=(size, n))
        counts = np.bincount((idx + n * np.arange(size)[:, None]).ravel(),
                             minlength=size * n).reshape(size, n).astype(np.float64)
        per_seed = counts @ d.T / n                                   # (size, seeds)
        pick = rng.integers(0, num_seeds, size=(size, num_seeds))
        means.append(per_seed[np.arange(size)[:, None], pick].mean(1))
    lo, hi = np.percentile(np.concatenate(means), [(1 - level) / 2 * 100,
                                                   (1 + level) / 2 * 100])
    return {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi)}


def effects(base: list[dict], variant: list[dict], ranks: dict[tuple, dict]) -> dict:
    """Per split and metric: the per-seed effect with its t-interval over seeds, and the
    bootstrap over examples and seeds paired by both (:func:`paired_over_seeds`), for the
    seeds both have."""
    seeds = sorted({r["seed"] for r in base} & {r["seed"] for r in variant})
    by_seed = {"base": {r["seed"]: r for r in base}, "variant": {r["seed"]: r for r in variant}}
    out: dict[str, Any] = {"seeds": seeds}
    for split in ("valid", "test"):
        for metric in EFFECT_METRICS:
            diffs = [by_seed["variant"][s][split][metric] - by_seed["base"][s][split][metric]
                     for s in seeds]
            a = np.stack([per_example(ranks[("variant", s)][split], metric) for s in seeds])
            b = np.stack([per_example(ranks[("base", s)][split], metric) for s in seeds])
            out[f"{split}_{metric}"] = {**over_seeds(diffs), "paired": paired_over_seeds(a, b)}
    return out


# -- runs ------------------------------------------------------------------------------------
def run_variant(task: NextMovieTask, name: str, change: Change, setting: Setting, seed: int,
                base_budget: Budget, out: Path, device: str, progress: bool,
                quick: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Train (or read from the model cache) one variant with one seed, rank validation and
    test, save the ranks; returns the run record and the ranks."""
    budget = replace(base_budget, monitor=change.monitor or base_budget.monitor)
    start = time.perf_counter()  # the task's window is in the cache key: one cache serves all
    model, history = trained(name, task, seed, budget, setting, device=device,
                             progress=progress)
    limit = QUICK_SCORED if quick else None
    ranks, examples = {}, {}
    for split in ("valid", "test"):
        examples[split] = subsample(task.examples(split), limit)
        ranks[split] = rank_examples(model, task, examples[split], device=device)
    rel = f"ranks/{name}/{slug(change.label)}_seed{seed}.npz"
    with atomic_open(out / rel, "wb") as f:
        np.savez_compressed(f, **{s: r.astype(np.float32) for s, r in ranks.items()},
                            **{f"{s}_examples": e.astype(np.int32) for s, e in examples.items()})
    record = {"model": name, "change": change.label, "seed": seed, "setting": setting,
              "monitor": budget.monitor, "history_window": change.history_window,
              "valid": metrics(ranks["valid"]), "test": metrics(ranks["test"]),
              "best_epoch": history.best_epoch, "epochs": len(history.epochs),
              "train_seconds": history.seconds, "wall_seconds": time.perf_counter() - start,
              "ranks_file": rel}
    return record, ranks


def load_run_ranks(out: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
    with np.load(out / record["ranks_file"]) as data:
        return {s: data[s].astype(np.float64) for s in ("valid", "test")}


def ablate(ml: Any, names: list[str], seeds: list[int], changes: list[Change], out: Path,
           device: str = "cpu", progress: bool = True, quick: bool = False) -> dict[str, Any]:
    """Every variant of every model with every seed (those on record in ``out`` are read
    back), then the effects; writes ``ablation.json`` and ``ablation.md``."""
    path = out / "ablation.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    keep = old.get("format") == FORMAT and old.get("quick") == quick
    runs = [r for r in old.get("runs", []) if keep and (out / r["ranks_file"]).exists()]
    base_budget = BUDGET
    tasks = {None: featint.build_task(ml)}
    for change in changes:
        if change.history_window not in tasks:
            tasks[change.history_window] = build(ml, change.history_window)
    record: dict[str, Any] = {"format": FORMAT, "quick": quick, "budget": describe(base_budget),
                              "changes": {c.label: c.library for c in [BASELINE, *changes]},
                              "models": {}, "runs": runs}
    plan = []
    for name in names:
        base = setting_of(name)  # the comparison's (the tuning record)
        record["models"][name] = {"baseline": base, "not_applicable": {}}
        for change in [BASELINE, *changes]:
            setting = change.setting(name, base)
            if isinstance(setting, str):
                record["models"][name]["not_applicable"][change.label] = f"{name} {setting}"
                continue
            plan += [(name, change, setting, seed) for seed in seeds]
    todo = [p for p in plan if not any(
        (r["model"], r["change"], r["seed"], r["setting"]) == (p[0], p[1].label, p[3], p[2])
        for r in runs)]
    with tqdm(total=len(todo), desc="ablation", disable=not progress) as bar:
        for name, change, setting, seed in todo:
            bar.set_postfix_str(f"{name}: {change.label}, seed {seed}")
            run, _ = run_variant(tasks[change.history_window], name, change, setting, seed,
                                 base_budget, out, device, progress, quick)
            runs.append(run)
            write_json(path, record)
            bar.update()
    record["effects"] = {}
    for name in names:
        base = [r for r in runs if r["model"] == name and r["change"] == BASELINE.label]
        for change in changes:
            variant = [r for r in runs if r["model"] == name and r["change"] == change.label]
            if not variant or not base:
                continue
            ranks = {("base", r["seed"]): load_run_ranks(out, r) for r in base}
            ranks.update({("variant", r["seed"]): load_run_ranks(out, r) for r in variant})
            record["effects"].setdefault(name, {})[change.label] = effects(base, variant, ranks)
    write_json(path, record)
    (out / "ablation.md").write_text(markdown(record), encoding="utf-8")
    return record


# -- the tables ---------------------------------------------------------------------------
def _cell(e: dict[str, Any], digits: int, paired: bool = False) -> str:
    d = e["paired"] if paired else e
    if d["lo"] is None:
        return f"{d['mean']:+.{digits}f}"
    return f"{d['mean']:+.{digits}f} [{d['lo']:+.{digits}f}, {d['hi']:+.{digits}f}]"


def markdown(record: dict[str, Any]) -> str:
    """The baseline's numbers, then each change's effect (change minus baseline; mean over
    seeds with its 95% t-interval over seeds), then the test effects' paired bootstrap."""
    columns = [("valid", "mrr", 4), ("valid", "hr@10", 4), ("test", "mrr", 4),
               ("test", "hr@10", 4), ("test", "mean_rank", 1)]
    head = ["model", "change", *(f"{s} {m.replace('_', ' ').replace('mrr', 'MRR')}"
                                 .replace("hr@10", "HR@10") for s, m, _ in columns)]
    lines = ["Effects: the change minus the baseline, mean over seeds [95% t-interval over "
             "seeds]; the baseline row holds its own mean values.", "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    paired = ["", "Test effects with the bootstrap over test examples and seeds, paired by "
              "both [95%]:", "", "| model | change | test MRR | test HR@10 | test mean rank |",
              "|---|---|---|---|---|"]
    for name, info in record["models"].items():
        base = [r for r in record["runs"] if r["model"] == name
                and r["change"] == BASELINE.label]
        if base:
            cells = [f"{np.mean([r[s][m] for r in base]):.{d}f}" for s, m, d in columns]
            lines.append(f"| {name} | {BASELINE.label} | " + " | ".join(cells) + " |")
        for label, e in record.get("effects", {}).get(name, {}).items():
            cells = [_cell(e[f"{s}_{m}"], d) for s, m, d in columns]
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
            paired.append(f"| {name} | {label} | " + " | ".join(
                _cell(e[f"test_{m}"], d, paired=True) for m, d in
                (("mrr", 4), ("hr@10", 4), ("mean_rank", 1))) + " |")
        for label, why in info["not_applicable"].items():
            lines.append(f"| {name} | {label} | n/a: {why} | "
                         + " | ".join(["–"] * (len(columns) - 1)) + " |")
    return "\n".join(lines + paired) + "\n"


# -- the command -----------------------------------------------------------------------------
def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=_list, default=["deepfm", "nfm"], metavar="NAMES",
                        help="comma-separated featint models (default deepfm,nfm)")
    parser.add_argument("--seeds", type=lambda t: [int(s) for s in _list(t)], default=None,
                        metavar="LIST", help="default 0,1,2 (quick: 0)")
    parser.add_argument("--changes", type=_list, default=None, metavar="NUMBERS",
                        help="which changes, by number from 1 (default all): " + "; ".join(
                            f"{i} {c.label}" for i, c in enumerate(CHANGES, 1)))
    parser.add_argument("--history-windows",
                        type=lambda t: [w if w == "all" else int(w) for w in _list(t)],
                        default=[], metavar="LIST",
                        help="also the history field as the last W movies instead of the "
                             "protocol's, e.g. 20,all")
    parser.add_argument("--quick", action="store_true", help="featint's quick mode, one seed")
    parser.add_argument("--synthetic", action="store_true",
                        help="featint's small synthetic data set instead of MovieLens")
    parser.add_argument("--data-dir", default=None, help="the ml-100k folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: featint/records/ablation, the record chapter 08 reads "
                             "(quick: a temporary folder)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    unknown = [n for n in args.models if n not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    picked = list(CHANGES)
    if args.changes is not None:
        try:
            picked = [CHANGES[int(i) - 1] for i in args.changes]
        except (ValueError, IndexError):
            parser.error(f"--changes takes numbers from 1 to {len(CHANGES)}")
    picked += [window_change(w) for w in args.history_windows]
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    out = args.out or (Path(tempfile.gettempdir()) / "featint-ablation-quick" if args.quick
                       else RECORDS / "ablation")
    try:
        with use(quick=args.quick):
            ml = (synthetic_movielens(seed=0) if args.synthetic
                  else featint.load_movielens(args.data_dir))
            record = ablate(ml, args.models, seeds, picked, out, args.device,
                            progress=not args.quiet, quick=args.quick)
    except AblationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
