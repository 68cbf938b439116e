"""featint.explain: every registered model's score as parts that add up to it, grouped so that
the context-only parts are the same for every candidate, and pointing at a planted pair (a
sequence model: at a planted position of the history)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import perturbed

from featint.explain import (
    CANDIDATE,
    CONTEXT,
    CROSS,
    context_of,
    example_of,
    explain,
    explain_by_gradients,
    pair_ranking,
    positions,
    summarise,
    top_movies,
)
from featint.explorer import position_parts
from featint.models import MODELS, Model, build_model
from featint.models.fm import FM
from featint.synthetic import synthetic_movielens
from featint.task import build_task
from featint.train import fit

NAMES = sorted(MODELS)
#: The tolerance of the integrated gradients' sum (256 midpoint steps, parameters of the
#: size of trained ones); the exact models must sum to the score within EXACT.
EXACT, INTEGRATED = 1e-9, 1e-3
#: Sequence models (they read the ordered prefix; one part per position of it, no field pairs)
#: and how they train on the synthetic task (as tests/test_contract.py's LEARN_MORE says why).
SEQUENCE = {"sasrec": dict(epochs=12, patience=12)}
#: Models that cannot hold the planted (hour, genre) pair: no pair at all, or only user x movie,
#: or no fields (a sequence model: test_a_sequence_model_points_at_the_planted_position).
PAIRLESS = {"linear": "no pairs", "mf": "the user x movie pair only",
            **{name: "no fields: its parts are the positions of the history" for name in SEQUENCE}}


@pytest.fixture(scope="module")
def example(synthetic_task):
    task = synthetic_task
    rng = np.random.default_rng(0)
    e = int(task.examples("test")[7])
    items = np.concatenate([[task.target[e]], task.sample_negatives(np.array([e]), 5, rng)[0]])
    return e, items


@pytest.mark.parametrize("name", NAMES)
def test_parts_add_up_to_the_score(name, synthetic_task, example):
    e, items = example
    model = perturbed(synthetic_task, name, scale=0.1)
    assert (getattr(model, "sequence_length", None) is not None) == (name in SEQUENCE)
    ex = explain(model, synthetic_task, e, items)
    context, candidates = context_of(synthetic_task, e, model), torch.from_numpy(items)[None]
    with torch.no_grad():
        own = model(context, candidates)[0]
        exact = name not in SEQUENCE and model.terms(model.sample(context, candidates)).deep is None
    torch.testing.assert_close(ex.score, own, rtol=0, atol=1e-12)
    assert ex.error <= (EXACT if exact else INTEGRATED), (ex.method, ex.error)
    assert ex.score.std() > 1e-3            # candidates differ, so the check means something
    table = ex.table()
    sums = table.groupby("candidate")["value"].sum().to_numpy()
    np.testing.assert_allclose(sums, ex.total.numpy(), atol=1e-9)
    np.testing.assert_allclose(ex.groups().sum(axis=1).to_numpy(), ex.total.numpy(), atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_context_only_parts_are_the_same_for_every_candidate(name, synthetic_task, example):
    e, items = example
    ex = explain(perturbed(synthetic_task, name, scale=0.1), synthetic_task, e, items)
    table = ex.table()
    context = table[table.group == CONTEXT].pivot_table(index="part", columns="candidate",
                                                         values="value")
    assert len(context) > 0
    spread = (context.max(axis=1) - context.min(axis=1)).abs().max()
    assert spread < 1e-12, context[(context.max(axis=1) - context.min(axis=1)).abs() >= 1e-12]
    assert ex.groups()[CONTEXT].std() < 1e-12
    if name in SEQUENCE:
        # r = <F_t, M_m>: no bias, no term without the candidate, so nothing is context only
        # (the group holds the bias row, 0); what it is for a sequence model instead:
        # test_a_sequence_models_candidate_only_part_is_the_same_for_every_history
        assert (context.to_numpy() == 0).all() and (ex.groups()[CONTEXT] == 0).all()
        assert (table.group == CROSS).any()
    c = ex.num_context_fields
    kinds = {CONTEXT, CANDIDATE, CROSS}
    assert set(table.group) <= kinds
    cross = table[table.group == CROSS]
    assert ((cross.f < c) & (cross.g >= c)).all()


def test_afm_reports_attention_and_weighted_term(synthetic_task, example):
    e, items = example
    for attend in ("all", "ranking"):
        model = perturbed(synthetic_task, "afm", scale=0.5, attend=attend)
        ex = explain(model, synthetic_task, e, items)
        a, y = ex.extra["attention"], ex.extra["term"]
        torch.testing.assert_close(a.sum((-2, -1)), torch.ones(len(items), dtype=a.dtype))
        pairs = ex.table().query("kind == 'pair'")
        assert {"attention", "term"} <= set(pairs.columns)
        if attend == "ranking":  # no context pair attended: each part is a_fg * term
            torch.testing.assert_close(ex.pairs, a * y)
            assert (a[:, :len(synthetic_task.schema.context_fields),
                      :len(synthetic_task.schema.context_fields)] == 0).all()


def test_wide_deep_lists_its_active_crosses(synthetic_task, example):
    e, items = example
    model = perturbed(synthetic_task, "wide_deep", scale=0.1)
    ex = explain(model, synthetic_task, e, items)
    crosses = ex.extra["crosses"]
    assert set(crosses.cross) == {"occupation x genre", "gender x genre", "age x year",
                                  "last_movie x movie"}
    names = ex.fields
    for cross, rows in crosses.groupby("cross"):
        a, b = (names.index(n) for n in cross.split(" x "))
        per_candidate = rows.groupby("candidate")["part"].sum()
        np.testing.assert_allclose(per_candidate.to_numpy(),
                                   ex.pairs[per_candidate.index, a, b].numpy(), atol=1e-12)


def test_a_model_without_terms_is_explained_by_gradients(synthetic_task, example):
    """The fallback for models that write out no field terms (e.g. a sequence model):
    integrated gradients over the context's values, one part per slot."""

    class Opaque(FM):
        terms = Model.terms  # not written out

    torch.manual_seed(0)
    model = Opaque(synthetic_task.schema, synthetic_task.item_features())
    model.load_state_dict(perturbed(synthetic_task, "fm", scale=0.1).float().state_dict())
    e, items = example
    ex = explain(model, synthetic_task, e, items)
    assert "integrated gradients" in ex.method and ex.extra["slots"].shape[0] == len(items)
    assert ex.error < INTEGRATED
    direct = explain_by_gradients(model, synthetic_task, e, items)
    torch.testing.assert_close(direct.total, ex.total)


@pytest.mark.parametrize("name", sorted(SEQUENCE))
def test_a_sequence_models_candidate_only_part_is_the_same_for_every_history(
        name, synthetic_task):
    """A sequence model's parts: one per movie of the prefix (context x candidate, zero on
    padding) and the score at the baseline, every movie replaced by padding (candidate only):
    for a candidate, the same for every history of the same length, whichever movies it
    holds (the mirror of "context only"); the position parts tell the histories apart."""
    task = synthetic_task
    model = perturbed(task, name, scale=0.1)
    t = 12
    first, second = (int(e) for e in np.flatnonzero(task.t == t)[:2])
    assert task.user[first] != task.user[second]
    items = np.arange(0, task.num_items, 15)
    a, b = (explain(model, task, e, items) for e in (first, second))
    movie = a.num_context_fields                        # the one candidate field, last
    torch.testing.assert_close(a.deep_first[:, movie], b.deep_first[:, movie], rtol=0,
                               atol=1e-12)
    assert a.deep_first[:, movie].std() > 1e-3          # it depends on the candidate
    positions_a, positions_b = a.deep_pairs[:, :movie, movie], b.deep_pairs[:, :movie, movie]
    assert (positions_a - positions_b).abs().max() > 1e-3
    for ex in (a, b):  # a part for each of the t movies before t, none for padding
        assert (ex.deep_pairs[:, :movie - t] == 0).all()
        assert (ex.deep_pairs[:, movie - t:movie, movie] != 0).all()
        assert (ex.extra["history"][-t:] >= 0).all() and (ex.extra["history"][:-t] == -1).all()
        assert ex.fields[movie - 1].startswith("t-1 ") and ex.fields[-1] == "movie"
        assert ex.error < INTEGRATED
    # the chapter's view: one bar per movie of the history, the most recent first
    parts = position_parts(a, 2)
    assert parts.back.tolist() == list(range(1, t + 1))
    seq = task.sequence(np.array([first]), t)[0] - 1
    assert parts.movie.tolist() == seq[::-1].tolist()
    assert parts.title.tolist() == [task.titles[m] for m in seq[::-1]]
    assert parts.value.sum() == pytest.approx(a.groups()[CROSS].iloc[2], abs=1e-12)


def test_examples_and_positions(synthetic_task):
    task = synthetic_task
    user = int(task.user_ids[3])
    first, last = positions(task, user)
    assert first == 1 and last == task.seq_len[3] - 1
    e = example_of(task, user)
    assert task.user[e] == 3 and task.t[e] == last
    assert task.t[example_of(task, user, 2)] == 2
    with pytest.raises(ValueError, match=f"positions 1..{last}"):
        example_of(task, user, last + 1)
    with pytest.raises(ValueError, match="no user"):
        positions(task, 10**6)
    model = build_model("fm", task).eval()
    top, scores = top_movies(model, task, e, 5)
    assert len(top) == 5 and np.all(np.diff(scores) <= 0)
    assert not task.seen_before(np.array([e]))[0, torch.from_numpy(top)].any()


@pytest.fixture(scope="module")
def hour_task():
    """Synthetic data whose one signal is the pair (hour, genre), with no proxy field."""
    return build_task(synthetic_movielens(seed=0, plant="hour"))


#: Training on the synthetic task; AFM in the comparison's setting (attention over the
#: ranking pairs, p at their number: AFM with every pair does not learn in this budget).
SETTINGS = {"afm": {"attend": "ranking", "p_init": "pairs"}}


@pytest.mark.parametrize("name", NAMES)
def test_the_planted_pair_moves_rankings_most(name, hour_task):
    if name in PAIRLESS:
        pytest.skip(f"{name}: {PAIRLESS[name]}")
    task = hour_task
    model = build_model(name, task, **SETTINGS.get(name, {}))
    fit(model, task, epochs=10, batch_size=256, lr=1e-2, seed=0, device="cpu", progress=False,
        verbose=False)
    summary = summarise(model, task, task.examples("test")[::6][:40], steps=32)
    names = [f.name for f in task.schema.fields]
    ranking = pair_ranking(summary, names, len(task.schema.context_fields), samples=200)
    assert ranking.pair[0] == "hour x genre", ranking.head()
    assert ranking.lo[0] > ranking.hi[1], ranking.head()     # ahead beyond the noise



@pytest.fixture(scope="module")
def last_task():
    """Synthetic data whose one signal is the order: the next movie is of the genre of the one
    just before it."""
    return build_task(synthetic_movielens(seed=0, plant="last"))


def position_shares(name: str, task) -> tuple[pd.DataFrame, np.ndarray]:
    """A sequence model trained on ``task``: its positions ranked by how much they move
    rankings (:func:`pair_ranking` over (position, movie)) and, per example, the share of
    that measure that falls on the last position, ``t-1``."""
    model = build_model(name, task)
    fit(model, task, **SEQUENCE[name], batch_size=256, lr=1e-2, seed=0, device="cpu",
        progress=False, verbose=False)
    summary = summarise(model, task, task.examples("test")[::6][:40], steps=32)
    L = model.sequence_length
    names = [f"t-{L - f}" for f in range(L)] + ["movie"]
    per = summary["pairs"][:, :L, L]                              # (examples, positions)
    return pair_ranking(summary, names, L, samples=200), per[:, -1] / per.sum(1)


@pytest.mark.parametrize("name", sorted(SEQUENCE))
def test_a_sequence_model_points_at_the_planted_position(name, last_task, synthetic_task):
    """Trained where the next movie follows the genre of the last one, the last position of
    the history moves rankings most, beyond the noise, and takes most of the measure.
    Trained where every past movie tells the user's taste alike (the gender plant), the same
    model gives the last position a much smaller share: the explanation follows the data,
    not the architecture's own leaning towards the last position."""
    ranking, share = position_shares(name, last_task)
    assert ranking.pair[0] == "t-1 x movie", ranking.head()
    assert ranking.lo[0] > ranking.hi[1], ranking.head()
    assert share.mean() > 0.4, share.mean()                     # about 0.57
    _, share_gender = position_shares(name, synthetic_task)
    assert share.mean() > 3 * share_gender.mean(), (share.mean(), share_gender.mean())


def test_explorer_is_self_contained(synthetic_task):
    """The book's explorer: every (user, model) view precomputed, embedded as JSON in one
    HTML fragment that loads nothing from elsewhere."""
    import json
    import re

    from featint.explorer import explorer_data, explorer_html

    task = synthetic_task
    models = {name: build_model(name, task, seed=0).eval() for name in ("fm", "deepfm")}
    users = [int(u) for u in task.user_ids[:3]]
    data = explorer_data(models, task, users, k=5, parts=4, steps=8)
    assert set(data["views"]) == {f"{u}|{m}" for u in users for m in models}
    for view in data["views"].values():
        assert len(view["top"]) == 5 and len(view["parts"]) <= 5      # 4 and "other"
        assert abs(sum(p[1] for p in view["parts"]) - view["total"]) < 0.01
    page = explorer_html(data)
    assert not re.search(r"(src|href)=", page), "the explorer loads something"
    payload = re.search(r"<script type='application/json'>(.*?)</script>", page, re.S)[1]
    assert json.loads(payload.replace("<\\/", "</")) == data
