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
from featint.stats import Pairwise
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
    """The one leaderboard: one row per model in leaderboard order; for every metric its mean
    over seeds, std over seeds and pooled 95% interval over test examples (``hr@10``,
    ``hr@10_std``, ``hr@10_lo``, ``hr@10_hi``), the 95% interval that also holds the training
    noise (``hr@10_lo_seeds``, ``hr@10_hi_seeds``: NaN for the median rank, which is not a
    mean over examples, and where the aggregate has none), then parameters and costs (means
    over seeds) where the aggregate has them. ``aggregates``: the comparison's
    (:func:`featint.compare.aggregate`), or single runs (:func:`evaluation_table`)."""
    rows = {}
    for name in ordered(list(aggregates)):
        a = aggregates[name]
        row: dict[str, Any] = {"kind": a["kind"], "seeds": len(a["seeds"])}
        for m in METRICS:
            row[m] = a["mean"][m]
            row[f"{m}_std"] = a["std"].get(m)
            row[f"{m}_lo"], row[f"{m}_hi"] = a["interval"][m]
            seeds = a.get("interval_seeds", {}).get(m, (np.nan, np.nan))
            row[f"{m}_lo_seeds"], row[f"{m}_hi_seeds"] = seeds
        if "params" in a:
            row["params"] = a["params"]
        for c in COST_FIELDS:
            if c in a["mean"]:
                row[c] = a["mean"][c]
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def evaluation_table(results: dict[str, Any]) -> pd.DataFrame:
    """The leaderboard cells (:func:`leaderboard_cells`) of single evaluations, name ->
    :class:`featint.evaluate.Evaluation` (one seed each, as a chapter evaluates them)."""
    aggregates = {
        name: {"kind": "baseline" if name in LADDER else "model", "seeds": [0],
               "mean": dict(ev.metrics), "std": {}, "interval": dict(ev.intervals)}
        for name, ev in results.items()}
    return leaderboard_cells(leaderboard(aggregates))


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


#: The intervals :func:`leaderboard_cells` can show: over test examples only (``test``,
#: the pooled bootstrap), with the training noise too (``seeds``), or both side by side.
INTERVALS = ("test", "seeds", "both")


def leaderboard_cells(table: pd.DataFrame, intervals: str = "test") -> pd.DataFrame:
    """:func:`leaderboard` as strings: each metric as ``mean [lo, hi]``, then where the table
    has them parameters, training seconds, epochs run and the seconds to rank the test set.

    ``intervals``: ``test`` shows the 95% interval over test examples (``_lo``/``_hi``);
    ``seeds`` the 95% interval that also holds the spread over seeds (``_lo_seeds``/
    ``_hi_seeds``, see :func:`featint.stats.mean_interval`); ``both`` puts the second in a
    column ``<metric> with seeds`` beside each metric but the median rank, which has no
    interval with seeds (``-`` in ``seeds``)."""
    if intervals not in INTERVALS:
        raise ValueError(f"intervals must be one of {INTERVALS}, got {intervals!r}")
    if intervals != "test" and table[[f"{m}_lo_seeds" for m in METRICS if m != "median_rank"]
                                     ].isna().all().all():
        raise ValueError("these results have no interval with seeds (written before it "
                         "existed): recompute the aggregates with featint.compare.aggregate, "
                         "or use intervals='test'")

    def interval(lo: float, hi: float, digits: int) -> str:
        return "-" if pd.isna(lo) else f"[{lo:.{digits}f}, {hi:.{digits}f}]"

    cells = {}
    for name, row in table.iterrows():
        line = {}
        for m in METRICS:
            digits = 1 if "rank" in m else 4
            suffix = "_seeds" if intervals == "seeds" else ""
            line[LABELS[m]] = (f"{row[m]:.{digits}f} "
                               + interval(row[f"{m}_lo{suffix}"], row[f"{m}_hi{suffix}"],
                                          digits))
            if intervals == "both" and m != "median_rank":
                line[f"{LABELS[m]} with seeds"] = interval(row[f"{m}_lo_seeds"],
                                                           row[f"{m}_hi_seeds"], digits)
        for column, label, fmt in (("params", "params", "{:,.0f}"),
                                   ("train_seconds", "train s", "{:.0f}"),
                                   ("epochs", "epochs", "{:.1f}"),
                                   ("rank_seconds", "rank s", "{:.1f}")):
            if column in table.columns:
                line[label] = fmt.format(row[column])
        cells[name] = line
    frame = pd.DataFrame.from_dict(cells, orient="index")
    frame.columns.name = None
    return frame


def format_leaderboard(table: pd.DataFrame, markdown: bool = False,
                       intervals: str = "test") -> str:
    """The leaderboard as aligned text (or a Markdown table, the README's):
    :func:`leaderboard_cells`."""
    frame = leaderboard_cells(table, intervals)
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


# -- the pairwise tests ----------------------------------------------------------------------
def names_text(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _value_text(value: float, metric: str, sign: bool = False) -> str:
    """A metric value (or a difference, ``sign``) with the digits the leaderboard uses."""
    digits = 1 if "rank" in metric else 4
    return f"{value:{'+' if sign else ''}.{digits}f}"


def pairwise_method_text(result: Pairwise) -> str:
    """One paragraph on what :func:`featint.stats.pairwise` tested, from the result."""
    k, m = len(result.order), result.num_pairs
    seeds = sorted(set(result.seeds.values()))
    seeds_text = (f"{seeds[0]} seed{'s' if seeds[0] > 1 else ''} per model" if len(seeds) == 1
                  else f"{seeds[0]} to {seeds[-1]} seeds per model")
    one = [n for n in result.order if result.seeds[n] == 1]
    noise = ("the test-set noise only: with one seed per model the training noise is not "
             "measured" if len(one) == k else
             "the test-set noise and the spread of each model over its seeds (training "
             "noise)")
    pairs = f"{m} pair{'s' if m != 1 else ''}"
    family = f"all {pairs}" if m != 1 else "that one pair"
    text = (
        f"{LABELS[result.metric]}: every pair of the {k} models ({pairs}) compared on "
        f"the same {result.num_examples:,} test examples, each model averaged over its seeds "
        f"({seeds_text}). The uncertainty of a difference holds {noise}, with Student's t "
        f"(Welch-Satterthwaite degrees of freedom); Holm's correction over {family} keeps "
        f"the chance of even one false separation at or below {result.alpha:.0%}.")
    if one and len(one) < k:
        text += (f" {names_text(one)} {'has' if len(one) == 1 else 'have'} one seed: "
                 "its training noise is not measured, only the test-set noise.")
    return text


def best_group_text(result: Pairwise) -> str:
    """One sentence: the model with the best mean and the models the data do not separate
    from it (so that no single winner is claimed inside the noise)."""
    label = LABELS[result.metric]
    best, group = result.order[0], result.best_group()
    mean = _value_text(result.means[best], result.metric)
    if len(group) == 1:
        return (f"On {label}, {best} ({mean}) is separated from every other model: it is "
                "the best beyond the noise.")
    others = names_text(group[1:])
    return (f"On {label}, {best} has the best mean ({mean}), but the data do not separate "
            f"it from {others}: no single model is shown to be the best.")


def letters_lines(result: Pairwise) -> list[str]:
    """One Markdown list item per letter: the models that carry it, with their means."""
    lines = []
    for letter, models in result.groups().items():
        shown = ", ".join(f"{n} ({_value_text(result.means[n], result.metric)})"
                          for n in models)
        lines.append(f"- **{letter}**: {shown}")
    return lines


def separations_lines(result: Pairwise) -> list[str]:
    """One Markdown list item per model (best first): whom it is separated from, above and
    below, on the pairwise test."""
    lines = []
    for name in result.order:
        ahead, behind = result.separated_from(name)
        parts = []
        if ahead:
            parts.append(f"better than {names_text(ahead)}")
        if behind:
            parts.append(f"worse than {names_text(behind)}")
        text = "; ".join(parts) if parts else "separated from no other model"
        lines.append(f"- {name} ({result.letters[name]}): {text}")
    return lines


def pairwise_markdown(result: Pairwise, per_model: bool = True) -> str:
    """The full Markdown text of a pairwise result for one metric: what was tested, the
    models not separated from the best, the letters (models sharing a letter are not
    separated, models sharing none are) and, with ``per_model``, each model's separations.
    Every sentence is generated from ``result``."""
    label = LABELS[result.metric]
    parts = [pairwise_method_text(result), best_group_text(result),
             f"The letters on {label}: two models that share a letter are not separated, two "
             "that share none are (beyond the noise, in the direction of their means).",
             "\n".join(letters_lines(result))]
    if per_model:
        parts += [f"Each model on {label}, best mean first:", "\n".join(separations_lines(result))]
    return "\n\n".join(parts)


def _difference_text(value: float, metric: str) -> str:
    """A short signed difference for a matrix cell: ``+.009`` or ``+12``."""
    if "rank" in metric:
        return f"{value:+.0f}" if abs(value) >= 10 else f"{value:+.1f}"
    return f"{value:+.3f}".replace("0.", ".", 1)


def plot_pairwise(result: Pairwise, ax: Any) -> None:
    """The pairwise result as a matrix: rows and columns the models, best mean first, with
    their letters; each cell how much better the row is than the column (in the metric's
    units, the sign turned so that + is better for mean rank too). Separated pairs are
    coloured (blue: the row is better, red: worse; a square-root scale, so that small
    separated differences show) with the value in bold; pairs the data do not separate are
    grey."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import FuncNorm

    names, k = result.order, len(result.order)
    difference = result.matrix("difference").to_numpy()
    separated = result.matrix("separated").to_numpy()
    shown = np.abs(difference[separated]) if separated.any() else np.abs(difference[
        ~np.isnan(difference)])
    vmax = float(shown.max()) if shown.size and shown.max() > 0 else 1.0
    # a square-root scale: a small separated difference still gets a visible colour
    norm = FuncNorm((lambda x: np.sign(x) * np.sqrt(np.abs(x)),
                     lambda y: np.sign(y) * np.square(y)), vmin=-vmax, vmax=vmax)
    cmap = colormaps["RdBu"]
    rgba = cmap(norm(np.nan_to_num(difference)))
    rgba[~separated] = (0.9, 0.9, 0.9, 1.0)
    rgba[np.arange(k), np.arange(k)] = (1.0, 1.0, 1.0, 1.0)
    ax.imshow(rgba, aspect="equal")
    size = max(5.0, min(9.0, 110.0 / max(k, 1)))
    for i in range(k):
        for j in range(k):
            if i == j:
                continue
            strong = separated[i, j] and abs(norm(difference[i, j]) - 0.5) > 0.35
            ax.text(j, i, _difference_text(difference[i, j], result.metric), ha="center",
                    va="center", fontsize=size,
                    color=("white" if strong else "black") if separated[i, j] else "0.55",
                    fontweight="bold" if separated[i, j] else "normal")
    ticks = [f"{n} ({result.letters[n]})" for n in names]
    ax.set_xticks(range(k), ticks, rotation=45, ha="right", fontsize=size + 1)
    ax.set_yticks(range(k), ticks, fontsize=size + 1)
    ax.set_xlabel("column model (letters)")
    ax.set_ylabel("row model (letters)")
    label = LABELS[result.metric]
    ax.set_title(f"{label}: how much better the row is than the column\ncoloured: separated "
                 f"(Holm, all {result.num_pairs} pairs, family-wise {1 - result.alpha:.0%}); "
                 "grey: not separated", fontsize=size + 2)
    bar = ax.figure.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.7)
    bar.set_label(f"{label}: how much better the row is (+) or worse (-)")


# -- tuning ---------------------------------------------------------------------------------
def trials_table(folder: str | Path | None = None) -> pd.DataFrame:
    """Every tuning trial on record (the tuning record, see :mod:`featint.tuning`): one row
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


# -- the protocol's history window ---------------------------------------------------------------
def window_record(folder: str | Path | None = None) -> dict[str, Any]:
    """The record of ``make window`` (``featint/records/protocol/window.json``): every run,
    the validation curve and the choice of protocol v3's history window."""
    import json

    from featint.config import RECORDS

    path = Path(folder) if folder is not None else RECORDS / "protocol"
    return json.loads((path / "window.json").read_text(encoding="utf-8"))


def window_table(record: dict[str, Any] | None = None) -> str:
    """The validation curve of the history window as a Markdown table: per window, FM's and
    MF's validation MRR (mean over seeds), the score the rule reads (their mean) with its
    standard error over seeds, and FM's HR@10 and mean rank."""
    record = record or window_record()
    rows = ["| history window W | FM valid MRR | MF valid MRR | mean of both (± s.e.) | "
            "FM valid HR@10 | FM valid mean rank |", "|---|---|---|---|---|---|"]
    for key, point in record["curve"].items():
        window = None if key == "all" else int(key)
        runs = [r for r in record["runs"] if r["window"] == window and not r["history_all"]]
        fm = [r for r in runs if r["model"] == "fm"]
        mf = [r for r in runs if r["model"] == "mf"]
        label = "every movie so far (v2)" if key == "all" else f"last {key}"
        if window == record["chosen"]:
            label = f"**{label} (chosen)**"
        rows.append(
            f"| {label} | {np.mean([r['valid_mrr'] for r in fm]):.4f} | "
            f"{np.mean([r['valid_mrr'] for r in mf]):.4f} | {point['mrr']:.4f} ± "
            f"{point['se']:.4f} | {np.mean([r['valid_hr@10'] for r in fm]):.4f} | "
            f"{np.mean([r['valid_mean_rank'] for r in fm]):.1f} |")
    extra = record.get("history_all")
    if extra:
        fm = [r for r in record["runs"] if r["history_all"] and r["model"] == "fm"]
        mf = [r for r in record["runs"] if r["history_all"] and r["model"] == "mf"]
        rows.append(
            f"| last {record['chosen']} + a bag of every movie so far | "
            f"{np.mean([r['valid_mrr'] for r in fm]):.4f} | "
            f"{np.mean([r['valid_mrr'] for r in mf]):.4f} | {extra['mrr']:.4f} ± "
            f"{extra['se']:.4f} | {np.mean([r['valid_hr@10'] for r in fm]):.4f} | "
            f"{np.mean([r['valid_mean_rank'] for r in fm]):.1f} |")
    return "\n".join(rows)


def plot_window(ax: Any, record: dict[str, Any] | None = None) -> None:
    """FM's validation MRR against the history window, one dot per seed and the mean, the
    chosen window marked: the curve protocol v3 chose its window from."""
    record = record or window_record()
    keys = list(record["curve"])
    x = np.arange(len(keys))
    for i, key in enumerate(keys):
        window = None if key == "all" else int(key)
        values = [r["valid_mrr"] for r in record["runs"]
                  if r["model"] == "fm" and r["window"] == window and not r["history_all"]]
        ax.plot([i] * len(values), values, "o", color="C0", alpha=0.4, markersize=4)
        ax.plot(i, np.mean(values), "_", color="C0", markersize=18, mew=2)
    chosen = keys.index(str(record["chosen"]))
    ax.axvline(chosen, color="C3", lw=1, ls="--", label=f"chosen: W = {record['chosen']}")
    ax.set_xticks(x, [k if k != "all" else "all (v2)" for k in keys])
    ax.set_xlabel("history window W (the last W movies before t)")
    ax.set_ylabel("FM validation MRR (dots: seeds 0-2, bar: mean)")
    ax.legend(loc="lower left", fontsize=8)
