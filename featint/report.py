"""The report of a comparison: the order models are listed in, the leaderboard table and its
text, and the charts. :mod:`featint.compare` runs the comparison and writes these; the CLI, the
README and chapter 08 read them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from featint.evaluate import HIGHER_IS_BETTER, LABELS, METRICS, per_example
from featint.files import atomic_open
from featint.stats import Pairwise, _holm_levels, holm, paired_t
from featint.tuning import PAPER, SPACES, RecordError, chosen_trial, load_trials

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


def capped_runs(runs: list[dict[str, Any]], cap: int, patience: int) -> list[dict[str, Any]]:
    """The trained runs that the epoch ``cap`` ended rather than early stopping: they reached
    the cap fewer than ``patience`` epochs after their best epoch, so they might still have
    improved."""
    return [r for r in runs if r.get("history")
            and r["epochs"] >= cap and r["epochs"] - r["best_epoch"] < patience]


def convergence_text(runs: list[dict[str, Any]], cap: int, patience: int) -> str:
    """One sentence on how the trained runs stopped. Early stopping ends a run ``patience``
    epochs after its best; a run that reached the epoch ``cap`` sooner after its best was
    cut off by the cap while it might still improve, so its model has not been compared at
    its best; the sentence names every such run."""
    trained = [r for r in runs if r.get("history")]
    if not trained:
        return "no trained runs"
    capped = [f"{r['model']} seed {r['seed']}" for r in capped_runs(trained, cap, patience)]
    best = [r["best_epoch"] for r in trained]
    if capped:
        return (f"NOT CONVERGED: {len(capped)} of {len(trained)} trained runs were stopped "
                f"by the {cap}-epoch cap, not by early stopping ({', '.join(capped)}); "
                f"rerun with a higher --epochs")
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
    setting ringed, a line over the range, the legend beside the axes. A long line is a
    model whose result depends on its setting."""
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
    ax.set_ylabel("model")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside, not over


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


# -- colours and labels -------------------------------------------------------------------------
#: The rungs of the ladder in greys, light to dark, so that the baselines read as one family
#: and still differ from each other. Matplotlib's C7 is a grey too: no model gets it.
LADDER_GREYS = {"random": "0.85", "popular": "0.72", "markov": "0.55", "itemknn": "0.4",
                "mf": "0.25"}
#: Every model's colour, the same in every chart: matplotlib's tab10 without C7 (its grey),
#: then navy, teal and dark goldenrod; it repeats past twelve models.
PALETTE = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9", "navy", "teal",
           "darkgoldenrod")


def colours(names: Sequence[str]) -> dict[str, str]:
    """Name -> colour: the rungs of :data:`LADDER` in :data:`LADDER_GREYS`, every other model
    the colour of its place in :data:`CANONICAL_ORDER` (then the rest, in order) from
    :data:`PALETTE`, so that a model keeps its colour whichever models a chart shows."""
    models = [n for n in CANONICAL_ORDER if n not in LADDER]
    models += sorted(n for n in names if n not in LADDER and n not in models)
    return {n: LADDER_GREYS[n] if n in LADDER else PALETTE[models.index(n) % len(PALETTE)]
            for n in names}


def annotate_points(ax: Any, points: dict[str, tuple[float, float]], fontsize: float = 8,
                    gap: float = 2.0) -> list[Any]:
    """Write each name beside its point so that no two labels overlap and no label covers
    another point.

    ``points``: name -> ``(x, y)`` in data coordinates. A label goes to the right of its
    point where it has room. Labels that would overlap each other or another point form a
    group: they are written in a column just right of the group's rightmost point, in the
    order of their points' heights, each with a thin line to its point. Call it after the
    axes' limits and scales are set: the figure is drawn first, so that the labels are
    placed where it will show them, and they are kept out of the layout (they never move
    the axes). ``gap``: points of space between labels. Returns the annotations."""
    fig = ax.figure
    fig.canvas.draw()  # the final layout: limits, scales and the axes' place in the figure
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0  # display units per point
    names = list(points)
    at = {n: ax.transData.transform(points[n]) for n in names}  # display coordinates
    size = {}
    for name in names:  # measure each label
        probe = ax.annotate(name, points[name], fontsize=fontsize)
        box = probe.get_window_extent(renderer)
        size[name] = (box.width, box.height)
        probe.remove()

    def natural(name: str) -> tuple[float, float, float, float]:
        x, y = at[name]
        w, h = size[name]
        return x + 5 * px, y - h / 2, x + 5 * px + w, y + h / 2

    def overlap(a: tuple, b: tuple) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    def covers(box: tuple, name: str) -> bool:  # the label covers the marker of ``name``
        x, y = at[name]
        r = 4 * px
        return overlap(box, (x - r, y - r, x + r, y + r))

    group = {n: {n} for n in names}  # clashing labels, joined into groups
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if (overlap(natural(a), natural(b)) or covers(natural(a), b)
                    or covers(natural(b), a)) and group[a] is not group[b]:
                joined = group[a] | group[b]
                for n in joined:
                    group[n] = joined
    placed: dict[str, tuple[float, float]] = {}  # name -> label's left, centre (display)
    for members in {id(g): g for g in group.values()}.values():
        members = sorted(members, key=lambda n: -at[n][1])  # top to bottom
        if len(members) == 1:
            x, y = at[members[0]]
            placed[members[0]] = (x + 5 * px, y)
            continue
        left = max(at[n][0] for n in members) + 12 * px
        heights = [size[n][1] + gap * px for n in members]
        top = np.mean([at[n][1] for n in members]) + sum(heights) / 2
        for name, h in zip(members, heights, strict=True):
            placed[name] = (left, top - h / 2)
            top -= h
    boxes: list[tuple] = []  # the last resort: push a label up past one placed before it
    for name in sorted(names, key=lambda n: placed[n][1]):
        x, y = placed[name]
        w, h = size[name]
        box = (x, y - h / 2, x + w, y + h / 2)
        moved = True
        while moved:
            moved = False
            for other in boxes:
                if overlap(box, other):
                    dy = other[3] - box[1] + gap * px
                    box, moved = (box[0], box[1] + dy, box[2], box[3] + dy), True
        boxes.append(box)
        placed[name] = (x, (box[1] + box[3]) / 2)
    texts = []
    for name in names:
        x, y = at[name]
        dx, dy = (placed[name][0] - x) / px, (placed[name][1] - y) / px
        line = (None if abs(dx - 5) < 0.5 and abs(dy) < 0.5 else
                {"arrowstyle": "-", "color": "0.6", "lw": 0.5, "shrinkA": 0, "shrinkB": 3})
        texts.append(ax.annotate(name, points[name], xytext=(dx, dy), va="center",
                                 textcoords="offset points", fontsize=fontsize,
                                 arrowprops=line, annotation_clip=False))
        texts[-1].set_in_layout(False)
    return texts


# -- every pair, the letters and the ladder -------------------------------------------------------
def difference_cell(result: Pairwise, a: str, b: str) -> tuple[str, str]:
    """``a`` against ``b`` in ``result``: ``(mark, text)``, the mark ``▲`` (a better beyond
    the noise), ``▼`` (worse) or blank, the text ``+0.0123 [+0.0050, +0.0196]``: how much
    better a is than b, in the metric's units with the sign turned so that + is better for
    mean rank too, and its interval at the level Holm tested the pair at."""
    row = result.pair(a, b)
    sign = 1.0 if row["a"] == a else -1.0
    d, lo, hi = sign * row["difference"], sign * row["lo"], sign * row["hi"]
    lo, hi = min(lo, hi), max(lo, hi)
    mark = ("▲" if sign > 0 else "▼") if row["separated"] else ""
    text = (f"{_value_text(d, result.metric, True)} [{_value_text(lo, result.metric, True)}, "
            f"{_value_text(hi, result.metric, True)}]")
    return mark, text


def letters_table(results: Sequence[Pairwise]) -> pd.DataFrame:
    """The compact letters of several metrics side by side: one row per model (in the first
    result's order), per metric its mean and its letters, ``0.1523 (ab)``. The results must
    hold the same models."""
    first = results[0]
    columns = {}
    for result in results:
        if set(result.order) != set(first.order):
            raise ValueError("the results hold different models: compare the same family")
        columns[LABELS[result.metric]] = [
            f"{_value_text(result.means[n], result.metric)} ({result.letters[n]})"
            for n in first.order]
    return pd.DataFrame(columns, index=pd.Index(first.order, name="model"))


def ladder_table(result: Pairwise, models: Sequence[str], rungs: Sequence[str]) -> pd.DataFrame:
    """What each of ``models`` adds over each rung of ``rungs``: a cell per (model, rung),
    ``▲ +0.0123 [+0.0050, +0.0196]`` (:func:`difference_cell`: the model minus the rung, +
    better), read off ``result``, so that the table claims exactly the separations of the
    family ``result`` tested."""
    return pd.DataFrame({rung: [" ".join(x for x in difference_cell(result, m, rung) if x)
                                if m != rung else "–" for m in models] for rung in rungs},
                        index=pd.Index(list(models), name=f"Δ {LABELS[result.metric]}"))


def ladder_lines(result: Pairwise, models: Sequence[str], rungs: Sequence[str]) -> list[str]:
    """One Markdown list item per rung: which of ``models`` are above it beyond the noise,
    which are not separated from it and which are below it, on ``result``'s test."""
    lines = []
    for rung in rungs:
        above, behind = result.separated_from(rung)  # rung ahead of / behind these
        others = [m for m in models if m != rung]
        parts = []
        for word, found in (("above it", [m for m in others if m in behind]),
                            ("not separated from it", [m for m in others if m not in behind
                                                       and m not in above]),
                            ("below it", [m for m in others if m in above])):
            if found:
                parts.append(f"{word}: {names_text(found)}")
        lines.append(f"- **{rung}** ({_value_text(result.means[rung], result.metric)}): "
                     + "; ".join(parts))
    return lines


# -- the peers, the ablation and protocol v2: records beside the comparison --------------
PEERS_FORMAT = "featint-peers/1"
ABLATION_FORMAT = "featint-ablation/1"
V2_FORMAT = "featint-protocol-v2-summary/1"


def _read_record(path: Path, fmt: str, fix: str) -> dict[str, Any]:
    """The JSON record at ``path`` of format ``fmt``, else a RecordError that says ``fix``."""
    if not path.exists():
        raise RecordError(f"no record {path}. Fix: {fix}")
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("format") != fmt:
        raise RecordError(f"{path} is not a {fmt} record. Fix: {fix}")
    return record


def load_peers(folder: str | Path) -> list[dict[str, Any]]:
    """The peer twins on record (``make peers``, ``benchmarks/peers.py``): the rows of its
    ``summary.json`` in ``folder`` (or of one per feature set, ``folder/<features>/
    summary.json``), one per (twin, feature set), each with ``folder`` added: where its
    ranks are (``<folder>/<features>/ranks/<twin>_seed<seed>.npz``), and ``features_note``:
    how the twin takes the features (from its record). A missing record, or
    a quick-mode smoke run, is a :class:`featint.tuning.RecordError`."""
    folder = Path(folder)
    fix = "run `make peers` (benchmarks/peers.py), which writes it"
    files = ([folder / "summary.json"] if (folder / "summary.json").exists()
             else sorted(folder.glob("*/summary.json")))
    if not files:
        raise RecordError(f"no peers' summary in {folder}. Fix: {fix}")
    rows = {}
    for path in files:
        for row in _read_record(path, PEERS_FORMAT, fix)["twins"]:
            if row["quick"]:
                raise RecordError(f"{path} holds a quick-mode smoke run of {row['twin']}, "
                                  f"not results. Fix: {fix}")
            twin = path.parent / row["features"] / f"{row['twin']}.json"
            note = (json.loads(twin.read_text(encoding="utf-8")).get("features_note", "")
                    if twin.exists() else "")
            rows[(row["twin"], row["features"])] = {**row, "folder": str(path.parent),
                                                    "features_note": note}
    return list(rows.values())


def peer_pairs(comparison: Any, peers: list[dict[str, Any]],
               metrics: Sequence[str] = ("hr@10", "mrr", "mean_rank"),
               alpha: float = 0.05) -> pd.DataFrame:
    """Every twin of :func:`load_peers` against its featint model of ``comparison`` (a
    :class:`featint.compare.Comparison`), paired over the same test examples, each side
    averaged over its seeds (:func:`featint.stats.paired_t`: test-set and training noise).
    For each metric, Holm's correction over all the twins keeps the chance of a false
    separation at ``alpha``. One row per twin: ``twin``, ``library``, ``features``,
    ``featint_model``, ``chosen``, ``seeds``, and per metric ``m``: ``m twin``, ``m featint``
    (the means), ``m difference`` (featint minus the twin, in the metric's units), ``m lo``,
    ``m hi`` (its interval at the level Holm tested it at) and ``m verdict`` (``featint
    better``, ``twin better`` or ``not separated``). A twin ranked on other test examples is
    a :class:`featint.tuning.RecordError`."""
    from featint.files import load_ranks

    rows, tests = [], {m: [] for m in metrics}
    for peer in peers:
        model = peer["featint_model"]
        if model not in comparison.aggregates:
            raise RecordError(f"the comparison holds no {model}, the model of the twin "
                              f"{peer['twin']}. Fix: run `make run` with it")
        theirs = [load_ranks(Path(peer["folder"]) / peer["features"] / "ranks"
                             / f"{peer['twin']}_seed{s}.npz") for s in peer["seeds"]]
        ours = comparison.ranks(model, comparison.aggregates[model]["seeds"][0])[1]
        if any(not np.array_equal(examples, ours) for _, examples in theirs):
            raise RecordError(f"the twin {peer['twin']} ({peer['features']} features) was "
                              "ranked on other test examples than the comparison (another "
                              "protocol or quick mode). Fix: rerun `make peers`")
        row = {k: peer[k] for k in ("twin", "library", "features", "featint_model",
                                    "chosen", "seeds")}
        for m in metrics:
            a = comparison.per_example(model, m)
            b = np.stack([per_example(r, m) for r, _ in theirs])
            tests[m].append(paired_t(a, b))
            row[f"{m} twin"], row[f"{m} featint"] = float(b.mean()), float(a.mean())
        rows.append(row)
    for m in metrics:
        p = np.array([t.p for t in tests[m]])
        adjusted, rates = holm(p), _holm_levels(p, alpha)
        for row, test, p_adj, rate in zip(rows, tests[m], adjusted, rates, strict=True):
            lo, hi = test.interval(1 - rate)
            row.update({f"{m} difference": test.difference, f"{m} lo": lo, f"{m} hi": hi})
            featint_ahead = (test.difference > 0) == HIGHER_IS_BETTER[m]
            row[f"{m} verdict"] = ("not separated" if p_adj > alpha else
                                   "featint better" if featint_ahead else "twin better")
    return pd.DataFrame(rows)


def load_ablation(folder: str | Path) -> dict[str, Any]:
    """The ablation on record (``make ablation``, ``benchmarks/ablation.py``:
    ``folder/ablation.json``); a missing record or a quick-mode smoke run is a
    :class:`featint.tuning.RecordError`."""
    path = Path(folder) / "ablation.json"
    fix = "run `make ablation` (benchmarks/ablation.py), which writes it"
    record = _read_record(path, ABLATION_FORMAT, fix)
    if record["quick"]:
        raise RecordError(f"{path} holds a quick-mode smoke run, not results. Fix: {fix}")
    if not record.get("effects"):
        raise RecordError(f"{path} holds no effects yet (the ablation did not finish). "
                          f"Fix: {fix}")
    return record


def ablation_effects(record: dict[str, Any]) -> pd.DataFrame:
    """Every effect of :func:`load_ablation`'s record as numbers: one row per (model, change,
    split, metric) with ``seeds``, ``mean`` (the change minus the baseline, mean over seeds),
    ``lo``/``hi`` (95% t-interval over seeds; NaN with one seed) and ``paired``, ``paired_lo``
    and ``paired_hi`` (the bootstrap over test examples and seeds, paired by both)."""
    rows = []
    for model, changes in record["effects"].items():
        for change, effect in changes.items():
            for key, e in effect.items():
                if key == "seeds":
                    continue
                split, metric = key.split("_", 1)
                rows.append({"model": model, "change": change, "split": split,
                             "metric": metric, "seeds": len(effect["seeds"]),
                             "mean": e["mean"],
                             "lo": np.nan if e["lo"] is None else e["lo"],
                             "hi": np.nan if e["hi"] is None else e["hi"],
                             "paired": e["paired"]["mean"], "paired_lo": e["paired"]["lo"],
                             "paired_hi": e["paired"]["hi"]})
    return pd.DataFrame(rows)


def ablation_table(record: dict[str, Any],
                   columns: Sequence[tuple[str, str]] = (("valid", "mrr"), ("valid", "hr@10"),
                                                         ("test", "mrr"), ("test", "hr@10")),
                   ) -> pd.DataFrame:
    """:func:`load_ablation`'s record as a table of strings: per model its baseline's own
    values, then each change's effect ``+0.0012 [-0.0010, +0.0034]`` (the change minus the
    baseline, mean over seeds, 95% t-interval over seeds), then the changes that do not
    apply to it, with the reason; one column per ``(split, metric)``."""
    effects = ablation_effects(record)
    heads = [f"{split} {LABELS[metric]}" for split, metric in columns]
    rows, index = [], []
    for model, info in record["models"].items():
        base = [r for r in record["runs"] if r["model"] == model
                and r["change"] == next(iter(record["changes"]))]
        if base:
            index.append((model, f"{next(iter(record['changes']))}: its own values"))
            rows.append([_value_text(float(np.mean([r[s][m] for r in base])), m)
                         for s, m in columns])
        mine = effects[effects["model"] == model]
        for change in dict.fromkeys(mine["change"]):
            cells = []
            for split, metric in columns:
                e = mine[(mine["change"] == change) & (mine["split"] == split)
                         & (mine["metric"] == metric)].iloc[0]
                cells.append(_value_text(e["mean"], metric, True) + (
                    "" if np.isnan(e["lo"]) else f" [{_value_text(e['lo'], metric, True)}, "
                                                 f"{_value_text(e['hi'], metric, True)}]"))
            index.append((model, change))
            rows.append(cells)
        for change, why in info["not_applicable"].items():
            index.append((model, change))
            rows.append([f"n/a: {why}"] + ["–"] * (len(columns) - 1))
    return pd.DataFrame(rows, columns=heads,
                        index=pd.MultiIndex.from_tuples(index, names=["model", "change"]))


def protocol_record(folder: str | Path | None = None) -> dict[str, Any]:
    """The comparison of protocol v2 (history: every movie so far), kept as a record for the
    look back that contrasts it with v3 (``featint/records/protocol/v2_comparison.json``):
    its settings, machine and per-model aggregates (no per-example ranks)."""
    from featint.config import RECORDS

    path = (Path(folder) if folder is not None else RECORDS / "protocol") / "v2_comparison.json"
    return _read_record(path, V2_FORMAT, "restore featint/records/protocol/ from git: it is "
                                         "written once, never regenerated")


def protocol_change(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                    metrics: Sequence[str] = ("hr@10", "mean_rank")) -> pd.DataFrame:
    """Each model in both ``before`` and ``after`` (the aggregates of two comparisons, e.g.
    protocol v2's and v3's), in leaderboard order: per metric ``m`` the means over seeds
    ``m before`` and ``m after``, their standard deviations over seeds (``m before std``,
    ``m after std``) and ``m change`` (after minus before, in the metric's units)."""
    rows = {}
    for name in ordered([n for n in after if n in before]):
        row = {}
        for m in metrics:
            row[f"{m} before"] = before[name]["mean"][m]
            row[f"{m} after"] = after[name]["mean"][m]
            row[f"{m} before std"] = before[name]["std"].get(m)
            row[f"{m} after std"] = after[name]["std"].get(m)
            row[f"{m} change"] = row[f"{m} after"] - row[f"{m} before"]
        rows[name] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    return frame
