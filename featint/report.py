"""The report of a comparison: the order models are listed in, the leaderboard table and its
text, and the charts. :mod:`featint.compare` runs the comparison and writes these; the CLI, the
README and chapter 08 read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from featint.evaluate import HIGHER_IS_BETTER, LABELS, METRICS
from featint.files import atomic_open
from featint.tuning import PAPER, SPACES, chosen_trial, load_trials

#: The order of the leaderboard and the charts: roughly the order of the notebooks, from no
#: interactions to learned ones, then the sequence model on top. Registered models not listed
#: here follow, alphabetically.
CANONICAL_ORDER = ("mf", "linear", "fm", "ffm", "afm", "wide_deep", "deepfm", "nfm",
                   "dlrm_simplified", "dlrm", "sasrec")
#: The untrained rungs of the baseline ladder, listed before the models: random, most popular,
#: Markov and ItemKNN (:mod:`featint.baselines`).
BASELINES = ("random", "popular", "markov", "itemknn")
#: The whole ladder: the untrained baselines and MF, a trained model on user and movie alone.
LADDER = BASELINES + ("mf",)
CHARTS = {"mean_rank": "mean_rank", "hr@10": "hr10"}  # metric -> file stem
#: The costs of a run kept beside its metrics: means over seeds in the leaderboard.
COST_FIELDS = ("train_seconds", "epochs", "best_epoch", "seconds_per_epoch", "rank_seconds")


def ordered(names: Sequence[str]) -> list[str]:
    """``names`` in leaderboard order: baselines, then :data:`CANONICAL_ORDER`, then the rest
    alphabetically."""
    rank = {name: i for i, name in enumerate(BASELINES + CANONICAL_ORDER)}
    return sorted(dict.fromkeys(names), key=lambda n: (rank.get(n, len(rank)), n))


def leaderboard(aggregates: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per model in leaderboard order: for every metric its mean over seeds, std
    over seeds and pooled 95% interval (``hr@10``, ``hr@10_std``, ``hr@10_lo``,
    ``hr@10_hi``), then parameters and costs (means over seeds)."""
    rows = {}
    for name in ordered(list(aggregates)):
        a = aggregates[name]
        row: dict[str, Any] = {"kind": a["kind"], "seeds": len(a["seeds"])}
        for m in METRICS:
            row[m] = a["mean"][m]
            row[f"{m}_std"] = a["std"][m]
            row[f"{m}_lo"], row[f"{m}_hi"] = a["interval"][m]
        row["params"] = a["params"]
        for c in COST_FIELDS:
            row[c] = a["mean"][c]
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def hparams_text(hparams: dict[str, dict[str, Any]]) -> str:
    """Per-model constructor arguments in one line: ``nfm bi_dropout=0.2; ...``."""
    return "; ".join(f"{name} " + ", ".join(f"{k}={v}" for k, v in args.items())
                     for name, args in hparams.items())


def convergence_text(runs: list[dict[str, Any]], cap: int) -> str:
    """One sentence on how the trained runs stopped: a run whose best epoch is the epoch
    ``cap`` was still improving when the cap cut it off, so its model has not been compared
    at its best; the sentence names every such run."""
    trained = [r for r in runs if r.get("history")]
    if not trained:
        return "no trained runs"
    capped = [f"{r['model']} seed {r['seed']}" for r in trained if r["best_epoch"] >= cap]
    best = [r["best_epoch"] for r in trained]
    if capped:
        return (f"NOT CONVERGED: {len(capped)} of {len(trained)} trained runs had their best "
                f"epoch at the {cap}-epoch cap ({', '.join(capped)}); rerun with a higher "
                f"--epochs")
    return (f"every one of the {len(trained)} trained runs was ended by early stopping, none "
            f"by the {cap}-epoch cap (best epochs {min(best)} to {max(best)})")


def format_leaderboard(table: pd.DataFrame, markdown: bool = False) -> str:
    """The leaderboard as aligned text (or a Markdown table): each metric as ``mean [lo,
    hi]``, parameters, training seconds, epochs run and the seconds to rank the test set."""
    cells = {}
    for name, row in table.iterrows():
        line = {}
        for m in METRICS:
            digits = 1 if "rank" in m else 4
            line[LABELS[m]] = (f"{row[m]:.{digits}f} [{row[m + '_lo']:.{digits}f}, "
                               f"{row[m + '_hi']:.{digits}f}]")
        line["params"] = f"{int(row['params']):,}"
        line["train s"] = f"{row['train_seconds']:.0f}"
        line["epochs"] = f"{row['epochs']:.1f}"
        line["rank s"] = f"{row['rank_seconds']:.1f}"
        cells[name] = line
    frame = pd.DataFrame.from_dict(cells, orient="index")
    return markdown_table(frame) if markdown else frame.to_string()


def markdown_table(frame: pd.DataFrame) -> str:
    """A frame of strings as a Markdown table, its index as the first column, ``model``."""
    lines = ["| model | " + " | ".join(frame.columns) + " |",
             "|---" * (len(frame.columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(row) + " |" for name, row in frame.iterrows()]
    return "\n".join(lines)


# -- charts --------------------------------------------------------------------------------
def plot_metric(
    aggregates: dict[str, dict[str, Any]], metric: str, ax: Any,
    runs: list[dict[str, Any]] | None = None, skip: Sequence[str] = ("random",),
) -> None:
    """Horizontal bars of ``metric`` (mean over seeds) with 95% interval error bars, one per
    model in leaderboard order (top to bottom), baselines grey; dots mark single seeds when
    ``runs`` is given. ``skip``: names left out (random's mean rank, about half the catalogue,
    would squash the scale; its value goes into a note under the axis)."""
    names = [n for n in ordered(list(aggregates)) if n not in skip]
    mean = np.array([aggregates[n]["mean"][metric] for n in names])
    lo = np.array([aggregates[n]["interval"][metric][0] for n in names])
    hi = np.array([aggregates[n]["interval"][metric][1] for n in names])
    y = np.arange(len(names))
    colors = ["0.7" if aggregates[n]["kind"] == "baseline" else "C0" for n in names]
    ax.barh(y, mean, xerr=[mean - lo, hi - mean], color=colors, capsize=3,
            error_kw={"elinewidth": 1})
    if runs is not None:
        for i, n in enumerate(names):
            values = [r["metrics"][metric] for r in runs if r["model"] == n]
            ax.plot(values, [i] * len(values), "k.", markersize=3)
    digits = 1 if "rank" in metric else 3
    for i, value in enumerate(mean):
        ax.annotate(f"{value:.{digits}f}", (hi[i], i), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    better = "higher" if HIGHER_IS_BETTER[metric] else "lower"
    ax.set_xlabel(f"{LABELS[metric]} ({better} is better)")
    ax.set_xlim(0, max(hi) * 1.15)
    skipped = [n for n in skip if n in aggregates]
    if skipped:
        note = ", ".join(f"{n}: {aggregates[n]['mean'][metric]:.{digits}f}" for n in skipped)
        ax.text(1.0, -0.12, f"not shown: {note}", transform=ax.transAxes, ha="right",
                va="top", fontsize=8, color="0.4")


def save_charts(
    out_dir: Path, aggregates: dict[str, dict[str, Any]], runs: list[dict[str, Any]],
    subtitle: str,
) -> list[Path]:
    """Write the mean-rank and HR@10 charts as PNG and SVG (atomically, without a date in
    the metadata so that unchanged results give unchanged files)."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    written = []
    with matplotlib.rc_context({"svg.hashsalt": "featint"}):
        for metric, stem in CHARTS.items():
            fig = Figure(figsize=(7, 0.45 * len(aggregates) + 1.6), layout="constrained")
            ax = fig.subplots()
            plot_metric(aggregates, metric, ax, runs)
            ax.set_title(f"{LABELS[metric]} on the next-movie test set\n{subtitle}", fontsize=10)
            for fmt, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
                path = out_dir / f"{stem}.{fmt}"
                with atomic_open(path, "wb") as f:
                    fig.savefig(f, format=fmt, dpi=120, metadata=metadata)
                written.append(path)
    return written


# -- tuning ---------------------------------------------------------------------------------
def trials_table(folder: str | Path | None = None) -> pd.DataFrame:
    """Every tuning trial on record (``results/tuning``, see :mod:`featint.tuning`): one row
    per (model, setting) in leaderboard order, with its validation metrics, whether it is the
    paper's setting and whether it was chosen, the epoch early stopping kept and the epochs
    run (0 for a counting baseline, which is not trained)."""
    rows = []
    for name in ordered(list(SPACES)):
        top = chosen_trial(name, folder)
        for t in load_trials(name, folder):
            rows.append({"model": name, "setting": t["label"],
                         "paper": t["label"] == PAPER.get(name),
                         "chosen": top is not None and t["label"] == top["label"],
                         **{m: t[f"valid_{m}"] for m in METRICS},
                         "best_epoch": t.get("best_epoch", 0), "epochs": t.get("epochs", 0),
                         "train_seconds": t.get("train_seconds", 0.0)})
    return pd.DataFrame(rows)


def plot_trials(table: pd.DataFrame, ax: Any, metric: str = "mrr") -> None:
    """The spread of each model's trials: one row per model (leaderboard order, top to
    bottom), a dot per trial at its validation ``metric``, the chosen one filled, the paper's
    setting ringed, a line over the range. A long line is a model whose result depends on
    its setting."""
    names = ordered(list(table["model"].unique()))
    for i, name in enumerate(names):
        rows = table[table["model"] == name]
        values = rows[metric].to_numpy()
        ax.plot([values.min(), values.max()], [i, i], color="0.75", lw=1, zorder=1)
        for _, row in rows.iterrows():
            ax.scatter(row[metric], i, s=30, zorder=3, color="C0" if row["chosen"] else "white",
                       edgecolors="C0")
            if row["paper"]:
                ax.scatter(row[metric], i, s=110, zorder=2, facecolors="none",
                           edgecolors="C3", linewidths=1.2)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    better = "higher" if HIGHER_IS_BETTER[metric] else "lower"
    ax.set_xlabel(f"validation {LABELS[metric]} of each trial ({better} is better)")
    ax.scatter([], [], s=30, color="C0", label="chosen")
    ax.scatter([], [], s=30, color="white", edgecolors="C0", label="other trials")
    ax.scatter([], [], s=110, facecolors="none", edgecolors="C3", label="the paper's setting")
    ax.legend(loc="lower left", fontsize=8)  # low MRR, bottom rows: an empty corner


def tuning_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model of :func:`trials_table`: its number of trials, the chosen setting
    and its validation MRR, the paper's setting and its MRR, and the spread (best minus worst
    validation MRR)."""
    rows = {}
    for name in ordered(list(table["model"].unique())):
        t = table[table["model"] == name]
        chosen, paper = t[t["chosen"]], t[t["paper"]]
        rows[name] = {
            "trials": len(t),
            "chosen": chosen["setting"].iloc[0] if len(chosen) else "(incomplete)",
            "valid MRR": chosen["mrr"].iloc[0] if len(chosen) else float("nan"),
            "paper's setting": paper["setting"].iloc[0] if len(paper) else "-",
            "its MRR": paper["mrr"].iloc[0] if len(paper) else float("nan"),
            "spread": t["mrr"].max() - t["mrr"].min(),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    return frame


def format_tuning(summary: pd.DataFrame, markdown: bool = False) -> str:
    """:func:`tuning_summary` as text, or as a Markdown table (the README's)."""
    shown = summary.copy()
    for column in ("valid MRR", "its MRR", "spread"):
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    shown = shown.astype(str)
    return markdown_table(shown) if markdown else shown.to_string()
