"""What every model chapter does around its lesson, written once: test the trained models beside
the baseline ladder, set a chapter's seed-0 run beside the seeds of the comparison, and plot
training curves.

The chapters train their models with :func:`featint.training.trained`, the comparison's budget
and settings, so their seed-0 numbers are the comparison's seed-0 numbers (the comparison's
record, written by ``make run`` and shipped with featint: :func:`load_comparison`);
:func:`seed_spread` shows the other seeds beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from featint.baselines import RandomScores, choose
from featint.cards import NAMES, Card
from featint.cards import value_text as setting_text
from featint.compare import Comparison
from featint.config import RECORDS, Config, current
from featint.data import DEFAULT_RELEASE
from featint.evaluate import HIGHER_IS_BETTER, LABELS, Evaluation, evaluate, per_example
from featint.report import BASELINES, LADDER, evaluation_table
from featint.stats import Pairwise, pairwise
from featint.task import PROTOCOL, WINDOWS, NextMovieTask
from featint.train import History
from featint.tuning import RecordError

#: The comparison's record shipped with featint (``make run`` writes it).
COMPARISON = RECORDS / "comparison"


def baselines(task: NextMovieTask, config: Config | None = None) -> dict[str, nn.Module]:
    """The untrained rungs of the ladder (:data:`featint.report.BASELINES`), built as the
    comparison builds them: their settings chosen on validation (quick mode: on the quick
    number of validation examples)."""
    config = config or current()
    limit = config.sizes.valid_examples if config.quick else None
    found: dict[str, nn.Module] = {"random": RandomScores(seed=0)}
    for name in BASELINES[1:]:
        found[name] = choose(name, task, valid_limit=limit).model
    return found


def evaluate_all(task: NextMovieTask, models: dict[str, nn.Module],
                 with_baselines: bool = True) -> dict[str, Evaluation]:
    """Each model (and, with ``with_baselines``, each untrained rung of the ladder) ranked on
    the whole test set (quick mode: the quick test size) with its 95% bootstrap intervals."""
    everything = {**(baselines(task) if with_baselines else {}), **models}
    return {name: evaluate(model, task, progress=False) for name, model in everything.items()}


def results_table(results: dict[str, Evaluation]) -> pd.DataFrame:
    """The leaderboard of :func:`evaluate_all`: every metric as ``value [lo, hi]``, in
    leaderboard order (:func:`featint.report.evaluation_table`)."""
    return evaluation_table(results)


def results_folder(config: Config | None = None) -> Path:
    """The comparison the chapters read: ``FEATINT_RESULTS`` where it is set, else the record
    shipped with featint (:data:`COMPARISON`)."""
    config = config or current()
    return config.results if config.results is not None else COMPARISON


def load_comparison(folder: str | Path | None = None,
                    dataset: str = DEFAULT_RELEASE) -> tuple[Comparison, str]:
    """The finished comparison of ``folder`` (default :func:`results_folder`) and a sentence
    that says where it comes from. It must be of ``dataset`` (the chapters' MovieLens 100K
    unless told otherwise), follow featint's protocol and history window and be a real run:
    a missing, unfinished, quick-mode, other-release or other-protocol record is a
    :class:`featint.tuning.RecordError` that says how to make the right one (results of
    another release or protocol are never mixed with this one's)."""
    folder = Path(folder) if folder is not None else results_folder()
    fix = (f"run `make run` (or `featint compare --out {folder}`), or point FEATINT_RESULTS "
           f"at a finished comparison")
    try:
        found = Comparison.load(folder)
    except (OSError, ValueError) as err:
        raise RecordError(f"no comparison record in {folder} ({err}). Fix: {fix}") from None
    if not found.results["complete"]:
        raise RecordError(f"the comparison in {folder} did not finish. Fix: {fix} "
                          f"(--resume continues it)")
    if found.dataset != dataset:
        raise RecordError(
            f"{folder} holds results of {found.dataset}, not of {dataset}: results of "
            f"different releases are never compared. Fix: {fix}")
    if found.protocol != PROTOCOL or found.window != WINDOWS[PROTOCOL]:
        raise RecordError(
            f"{folder} holds results of protocol v{found.protocol} (history window "
            f"{found.window}), featint follows v{PROTOCOL} (window {WINDOWS[PROTOCOL]}): "
            f"they are not comparable. Fix: {fix}")
    if found.results["settings"]["quick"]:
        raise RecordError(f"{folder} holds a quick-mode smoke test, not results. Fix: {fix}")
    where = "featint's record" if folder == COMPARISON else str(folder)
    return found, f"From {where} (`make run`): every seed of the comparison."


def seed_spread(results: dict[str, Evaluation], names: list[str] | tuple[str, ...],
                metric: str = "hr@10", folder: str | Path | None = None,
                dataset: str = DEFAULT_RELEASE) -> pd.DataFrame:
    """This chapter's test ``metric`` (seed 0) for each of ``names`` beside the comparison's
    (of ``dataset``): its seed-0 value, mean and standard deviation over seeds, and each
    seed. Prints where the comparison's numbers come from."""
    comparison, note = load_comparison(folder, dataset)
    print(note)
    rows = {}
    for name in names:
        row: dict[str, Any] = {"this chapter (seed 0)": results[name].metrics[metric]}
        agg = comparison.aggregates.get(name)
        if agg is not None:
            per_seed = {r["seed"]: r["metrics"][metric] for r in comparison.runs
                        if r["model"] == name}
            row["comparison seed 0"] = per_seed.get(0, np.nan)
            row["mean over seeds"] = agg["mean"][metric]
            row["std over seeds"] = agg["std"][metric]
            row.update({f"seed {s}": v for s, v in sorted(per_seed.items())})
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns.name = metric
    return table


def plot_histories(histories: dict[str, History], axes: Any = None) -> Any:
    """Training loss and validation MRR per epoch of each model, the kept epoch starred; one
    legend, right of the panels (a figure of its own is made wide enough for it)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11.5, 3.5), layout="constrained")
    for name, history in histories.items():
        epochs = pd.DataFrame(history.epochs).set_index("epoch")
        axes[0].plot(epochs.index, epochs["loss"], "o-", label=name)
        line, = axes[1].plot(epochs.index, epochs["valid_mrr"], "o-", label=name)
        axes[1].plot(history.best_epoch, history.best["valid_mrr"], "*", ms=12,
                     color=line.get_color())
    axes[0].set(xlabel="epoch", ylabel="BCE (dropout on, where a model has it)",
                title="Training loss")
    axes[1].set(xlabel="epoch", ylabel="MRR",
                title="Validation MRR (★ the epoch kept)")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    # one legend for both panels, outside them: inside, it would cover curves
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return axes


def plot_results(results: dict[str, Evaluation], names: list[str] | tuple[str, ...] | None = None,
                 metrics: tuple[str, ...] = ("hr@10", "mean_rank"), axes: Any = None) -> Any:
    """Bars of each metric with their 95% bootstrap intervals over test examples, baselines
    of :data:`LADDER` grey, models in colour."""
    import matplotlib.pyplot as plt

    names = list(names or results)
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 0.35 * len(names)
                                                           + 1.4), layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics, strict=True):
        value = np.array([results[n].metrics[metric] for n in names])
        lo, hi = np.array([results[n].intervals[metric] for n in names]).T
        palette = iter(f"C{j}" for j in range(20) if j % 10 != 7)  # C7 is grey: baselines'
        colors = ["0.7" if n in LADDER else next(palette) for n in names]
        ax.barh(names, value, xerr=[value - lo, hi - value], color=colors, capsize=3)
        ax.invert_yaxis()
        better = "higher" if HIGHER_IS_BETTER[metric] else "lower"
        ax.set(xlabel=f"{LABELS[metric]} ({better} is better)",
               title=f"Test {LABELS[metric]}, 95% interval")
    return axes


# -- sentences a chapter writes about its numbers, written once -------------------------------
def value_text(evaluation: Evaluation, metric: str) -> str:
    """A metric of one evaluation with its 95% interval, with the digits the leaderboard
    uses: ``0.1425 [0.1381, 0.1467]`` (ranks to one decimal)."""
    digits = 1 if "rank" in metric else 4
    lo, hi = evaluation.intervals[metric]
    return (f"{evaluation.metrics[metric]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]")


def pairwise_of(results: dict[str, Evaluation], names: Sequence[str] | None = None,
                metric: str = "hr@10", where: np.ndarray | None = None,
                alpha: float = 0.05) -> Pairwise:
    """Every pair of ``names`` (default: all) of a chapter's own evaluations compared on
    ``metric`` by the comparison's test (:func:`featint.stats.pairwise`: paired over test
    examples, Holm over every pair), for the statements a chapter makes about models or
    variants the comparison does not hold (a synthetic task, an ablation, a component ranked
    alone). One run per model, so the test holds the test-set noise only (no seed term); a
    claim about the comparison's models reads the comparison's family (:func:`verdict`).
    ``where``, a boolean mask over the evaluated examples, restricts it to a subgroup. Every
    evaluation must hold the same examples in the same order."""
    names = list(names or results)
    first = results[names[0]].examples
    for name in names[1:]:
        if not np.array_equal(results[name].examples, first):
            raise ValueError(f"{name!r} was evaluated on other examples than {names[0]!r}: "
                             f"evaluate every model on the same examples to pair them")
    keep = np.ones(len(first), bool) if where is None else np.asarray(where, bool)
    if keep.shape != first.shape:
        raise ValueError(f"where must be a mask over the {len(first)} evaluated examples, "
                         f"got shape {keep.shape}")
    values = {n: per_example(results[n].ranks[keep], metric)[None] for n in names}
    return pairwise(values, metric, alpha)


def _family(source: Comparison | Pairwise, metric: str | None) -> Pairwise:
    """The pairwise family a verdict reads: the comparison's for ``metric`` (default HR@10),
    or a :class:`Pairwise` already computed (its own metric)."""
    if isinstance(source, Pairwise):
        if metric is not None and metric != source.metric:
            raise ValueError(f"the pairwise result is of {source.metric!r}, not {metric!r}")
        return source
    return source.pairwise(metric or "hr@10")


def verdict(comparison: Comparison | Pairwise, a: str, b: str, metric: str | None = None) -> str:
    """Model ``a`` against model ``b`` on test ``metric`` (default HR@10) as the comparison's
    pairwise test says it (every seed, paired over test examples, Holm over every pair of the
    comparison): ``"better than"``, ``"worse than"`` or ``"not separated from"``. The
    direction of the metric is the metric's own (a lower mean rank is better). A
    :class:`featint.stats.Pairwise` (:func:`pairwise_of`) in place of the comparison is read
    the same way."""
    row = _family(comparison, metric).pair(a, b)
    if not row["separated"]:
        return "not separated from"
    return "better than" if row["a"] == a else "worse than"


def verdict_text(comparison: Comparison | Pairwise, a: str, b: str,
                 metric: str | None = None, label: str | None = None) -> str:
    """:func:`verdict` with its numbers: ``"better than markov (+0.0381 [0.0312, 0.0450]
    HR@10)"``: the difference a minus b in the metric's direction (positive: a better) and
    its interval at the level the pair was tested at. ``label`` names ``b`` in the text
    (default: its name in the comparison)."""
    result = _family(comparison, metric)
    row = result.pair(a, b)
    sign = 1.0 if row["a"] == a else -1.0
    d, lo, hi = sign * row["difference"], sign * row["lo"], sign * row["hi"]
    lo, hi = min(lo, hi), max(lo, hi)
    digits = 1 if "rank" in result.metric else 4
    return (f"{verdict(result, a, b)} {label or b} ({d:+.{digits}f} [{lo:+.{digits}f}, "
            f"{hi:+.{digits}f}] {LABELS[result.metric]})")


def paper_settings(card: Card) -> tuple[str, str]:
    """The two cells of the settings row of a chapter's "paper vs. here" table, generated
    from the model's card (:func:`featint.cards.card`): what the paper states and where
    (or that it gives no setting to follow), and what the comparison trains: the values its
    trials chose on validation, what the trials varied, whether the paper's setting was
    among them and what of the paper is not followed. A model whose tuning is not complete
    (``card.pending``) is trained at the paper's setting, and the cell says so and why."""
    paper = (card.paper_source if card.paper is None
             else f"`{card.paper}` ({card.paper_source})")
    chosen = [f"{NAMES.get(k, k)} {setting_text(v)}" for k, v in card.values.items()
              if card.origin[k] == "tuned"]
    if card.pending:
        here = (f"the paper's setting, as no setting is chosen yet ({card.pending}); "
                f"{card.trials} trials are planned")
    elif card.trials:
        varied = ", ".join(NAMES.get(k, k) for k in card.tuned) or "nothing"
        here = (f"{', '.join(chosen) or 'its defaults'}, chosen on validation among "
                f"{card.trials} trials that varied {varied}")
    else:
        here = "nothing to choose"
    if card.paper is None:
        here += "; no paper's setting to try"
    elif not card.pending:
        here += ("; the paper's setting was one of the trials" if card.paper_tried
                 else "; the paper's setting was not among the trials")
    if card.paper_differs:
        here += f"; not followed: {card.paper_differs}"
    return paper, here


def solution(text: str) -> str:
    """``text`` (Markdown a cell generated: an exercise's answer, read off its executed
    solution) inside the book's solution toggle, a MyST ``dropdown`` admonition, for
    ``display(Markdown(solution(text)))``. The book renders a cell's Markdown output as MyST
    (``nb_render_markdown_format``), so the answer is folded like a hand-written one."""
    if ":::" in text:
        raise ValueError("the solution's text holds ':::', which would close its admonition "
                         "early: write the answer without ':::'")
    return f":::{{admonition}} Solution\n:class: dropdown\n\n{text.strip()}\n:::"
