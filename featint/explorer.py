"""Views of :mod:`featint.explain` for chapter 09: a waterfall of a score's parts, a model's top
movies, and the explorer of the published book, a page fragment that needs no kernel.

The explorer holds precomputed explanations for a fixed sample of users (their last position)
and every model as one JSON object inside a small self-contained HTML + JavaScript fragment: two
``<select>`` controls (user, model) redraw a table (the top movies, the true next movie
marked) and an SVG bar chart (the parts of the first movie's score). Nothing is loaded from
anywhere, so it works in the book offline.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
from torch import nn

from featint.explain import (
    CANDIDATE,
    CONTEXT,
    CROSS,
    Explanation,
    example_of,
    explain,
    rank_of,
    top_movies,
)
from featint.task import NextMovieTask

#: Colours of the three groups of parts (and of the bias, with the context-only parts).
COLOURS = {CONTEXT: "#9e9e9e", CANDIDATE: "#4c72b0", CROSS: "#dd8452"}


def merged_parts(ex: Explanation, candidate: int, top: int = 12) -> pd.DataFrame:
    """The parts of one candidate's score merged by field pair (exact and deep parts of the
    same pair added; the biases as one "bias" row), the ``top`` largest by size and the rest
    as "other (n parts)": columns ``part``, ``group``, ``value``, largest first."""
    merged = ex.by_pair()[candidate].numpy()
    m = len(ex.fields)
    rows = [dict(part="bias", group=CONTEXT,
                 value=float(ex.bias[candidate] + ex.deep_bias[candidate]))]
    for f, g in zip(*np.triu_indices(m), strict=True):
        if merged[f, g] != 0:
            rows.append(dict(part=ex.label(f, g), group=ex.group_of(f, g),
                             value=float(merged[f, g])))
    table = pd.DataFrame(rows)
    table = table.reindex(table.value.abs().sort_values(ascending=False).index)
    head, rest = table.head(top), table.iloc[top:]
    if len(rest):
        other = pd.DataFrame([dict(part=f"other ({len(rest)} parts)", group="other",
                                   value=float(rest.value.sum()))])
        head = pd.concat([head, other])
    return head.reset_index(drop=True)


def waterfall(ax, ex: Explanation, candidate: int, title: str, top: int = 12) -> None:
    """A waterfall of one candidate's score: each part a bar from the running sum before it
    to the one after, largest first, ending at the score (a black tick)."""
    parts = merged_parts(ex, candidate, top)
    start = np.concatenate([[0.0], np.cumsum(parts.value.to_numpy())[:-1]])
    colours = [COLOURS.get(g, "#cccccc") for g in parts.group]
    y = np.arange(len(parts))
    ax.barh(y, parts.value, left=start, color=colours)
    ax.set_yticks(y, parts.part)
    ax.invert_yaxis()
    score = float(ex.score[candidate])
    ax.axvline(score, color="black", lw=1)
    ax.axvline(0, color="#444444", lw=0.5, ls=":")
    ax.set_xlabel("score (logit): running sum of the parts")
    ax.set_title(f"{title}\nscore {score:.2f}", fontsize=10)


def position_parts(ex: Explanation, candidate: int) -> pd.DataFrame:
    """A sequence model's parts of one candidate's score by position of the history
    (:func:`featint.explain.explain_sequence`): one row per movie of the prefix, the most
    recent first, with ``back`` (1: the movie just before ``t``), ``movie`` (its index),
    ``title`` and ``value``. Their sum is the context x candidate group."""
    history = ex.extra["history"]
    L = ex.num_context_fields
    f = np.flatnonzero(history >= 0)[::-1].copy()
    return pd.DataFrame({"back": L - f, "movie": history[f], "title": [
        ex.fields[i].split(" ", 1)[1] for i in f],
        "value": ex.deep_pairs[candidate, f, L].numpy()})


def position_bars(ax, ex: Explanation, candidate: int, title: str, named: int = 3) -> None:
    """One candidate's parts by position of the history as bars, the most recent movie on
    the left (``t-1``), the ``named`` largest labelled with their titles."""
    parts = position_parts(ex, candidate)
    ax.bar(parts.back, parts.value, width=1.0, color=COLOURS[CROSS])
    ax.axhline(0, color="black", lw=0.5)
    for row in parts.reindex(parts.value.abs().sort_values(ascending=False).index).head(
            named).itertuples():
        ax.annotate(f"t-{row.back} {row.title}", (row.back, row.value), fontsize=7,
                    xytext=(4, 0), textcoords="offset points",
                    va="bottom" if row.value > 0 else "top")
    ax.set_xlim(0, parts.back.max() + 1)
    ax.set_xlabel("position in the history, k movies before t (t-k)")
    ax.set_ylabel("part (logit)")
    ax.set_title(f"{title}\nscore {float(ex.score[candidate]):.2f}", fontsize=10)


def legend_handles():
    """Patches for the colours of :data:`COLOURS`."""
    from matplotlib.patches import Patch

    return [Patch(color=c, label=g) for g, c in COLOURS.items()]


def top_table(models: dict[str, nn.Module], task: NextMovieTask, example: int,
              k: int = 10) -> pd.DataFrame:
    """Each model's top ``k`` movies for ``example`` side by side (one column per model), the
    true next movie marked with a star."""
    target = int(task.target[example])
    columns = {}
    for name, model in models.items():
        top, _ = top_movies(model, task, example, k)
        columns[name] = [("★ " if m == target else "") + str(task.titles[m]) for m in top]
    return pd.DataFrame(columns, index=pd.RangeIndex(1, k + 1, name="rank"))


def explorer_data(models: dict[str, nn.Module], task: NextMovieTask, users: list[int],
                  k: int = 10, parts: int = 10, steps: int = 64, start: str | None = None,
                  ) -> dict:
    """What the explorer shows, precomputed: for every user (their last position) and model,
    the top ``k`` movies and scores, the true next movie's rank, and the ``parts`` largest
    parts of the first movie's score (merged by field pair) with the rest summed. Titles and
    part names are stored once and referred to by number; values rounded to 3 decimals.
    ``start``: the model shown first (default: the first)."""
    titles: list[str] = []
    labels: list[str] = []

    def number(table: list[str], text: str) -> int:
        if text not in table:
            table.append(text)
        return table.index(text)

    views, people = {}, []
    for user in users:
        example = example_of(task, user)
        target = int(task.target[example])
        people.append(dict(id=int(user), t=int(task.t[example]),
                           true=number(titles, str(task.titles[target]))))
        for name, model in models.items():
            top, scores = top_movies(model, task, example, k)
            ex = explain(model, task, example, top[:1], steps)
            table = merged_parts(ex, 0, parts)
            views[f"{user}|{name}"] = dict(
                top=[number(titles, str(task.titles[m])) for m in top],
                score=[round(float(s), 3) for s in scores],
                rank=round(float(rank_of(model, task, example, target)), 1),
                parts=[[number(labels, p), round(v, 3), [*COLOURS, "other"].index(g)]
                       for p, v, g in zip(table.part, table.value, table.group,
                                          strict=True)],
                total=round(float(ex.score[0]), 3))
    return dict(models=list(models), start=start or next(iter(models)), users=people,
                titles=titles, labels=labels, groups=[*COLOURS, "other"],
                colours=[*COLOURS.values(), "#cccccc"], views=views)


_SCRIPT = """
(function () {
  const root = document.getElementById("%(id)s");
  const data = JSON.parse(root.querySelector("script[type='application/json']").textContent);
  const user = root.querySelector("select.user"), model = root.querySelector("select.model");
  const table = root.querySelector("tbody"), chart = root.querySelector("svg");
  const note = root.querySelector(".note");
  data.users.forEach((u, i) => user.add(new Option("user " + u.id + " at position " + u.t, i)));
  data.models.forEach(m => model.add(new Option(m, m)));
  model.value = data.start;
  function esc(s) { const d = document.createElement("span"); d.textContent = s;
                    return d.innerHTML; }
  function draw() {
    const u = data.users[+user.value], v = data.views[u.id + "|" + model.value];
    table.innerHTML = v.top.map((t, i) => "<tr" + (t === u.true ? " class='true'" : "") +
      "><td>" + (i + 1) + "</td><td>" + (t === u.true ? "★ " : "") + esc(data.titles[t]) +
      "</td><td>" + v.score[i].toFixed(3) + "</td></tr>").join("");
    note.textContent = "true next movie: " + data.titles[u.true] + " (rank " + v.rank +
      "); the parts of the first movie's score, " + v.total.toFixed(3) + ":";
    const w = 560, row = 18, left = 230, n = v.parts.length;
    let sum = 0, lo = 0, hi = 0;
    const bars = v.parts.map(p => { const a = sum; sum += p[1];
      lo = Math.min(lo, a, sum); hi = Math.max(hi, a, sum); return [a, sum, p]; });
    const x = s => left + (s - lo) / ((hi - lo) || 1) * (w - left - 10);
    chart.setAttribute("height", n * row + 24);
    chart.innerHTML = bars.map(([a, b, p], i) =>
      "<text x='" + (left - 4) + "' y='" + (i * row + 13) + "' text-anchor='end'>" +
      esc(data.labels[p[0]]) + "</text><rect x='" + Math.min(x(a), x(b)) + "' y='" +
      (i * row + 3) + "' width='" + Math.max(1, Math.abs(x(b) - x(a))) +
      "' height='" + (row - 6) + "' fill='" + data.colours[p[2]] + "'><title>" +
      p[1].toFixed(3) + "</title></rect>").join("") +
      "<line x1='" + x(0) + "' x2='" + x(0) + "' y1='0' y2='" + n * row +
      "' stroke='#444' stroke-dasharray='2'/><line x1='" + x(sum) + "' x2='" + x(sum) +
      "' y1='0' y2='" + n * row + "' stroke='black'/><text x='" + x(sum) + "' y='" +
      (n * row + 16) + "' text-anchor='middle'>score " + sum.toFixed(3) + "</text>";
  }
  user.addEventListener("change", draw);
  model.addEventListener("change", draw);
  draw();
})();
"""

_STYLE = """
#%(id)s { font-size: 0.9em; }
#%(id)s table { border-collapse: collapse; margin: 0.5em 0; }
#%(id)s td { padding: 1px 8px; border-bottom: 1px solid #ddd; }
#%(id)s tr.true { font-weight: bold; background: #fff3cd; }
#%(id)s svg text { font-size: 11px; }
"""


def explorer_html(data: dict, element_id: str = "featint-explorer") -> str:
    """The explorer as one self-contained HTML fragment (no external script, style or font)."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    legend = " ".join(f"<span style='color:{c}'>■</span> {html.escape(g)}"
                      for g, c in zip(data["groups"], data["colours"], strict=True))
    ids = {"id": element_id}
    return (f"<div id='{element_id}' class='featint-explorer'><style>{_STYLE % ids}</style>"
            "<label>User <select class='user'></select></label> "
            "<label>Model <select class='model'></select></label>"
            "<table><thead><tr><th>rank</th><th>movie</th><th>score</th></tr></thead>"
            "<tbody></tbody></table><p class='note'></p>"
            "<svg width='560' xmlns='http://www.w3.org/2000/svg'></svg>"
            f"<p>{legend}</p>"
            f"<script type='application/json'>{payload}</script>"
            f"<script>{_SCRIPT % ids}</script></div>")
