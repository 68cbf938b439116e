"""The counting baselines (``featint.baselines``), their periods (``featint.task``) and MF.

Each count and score is recomputed here the slow way, a plain loop over each user's sequence
(``seq_items[seq_start[u]:seq_start[u] + seq_len[u]]``), on the synthetic task.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import context64, perturbed

from featint.baselines import (
    ItemKNN,
    Markov,
    NextId,
    Popularity,
    choose,
)
from featint.evaluate import metrics, rank_examples
from featint.models import build_model
from featint.models.fm import FM
from featint.synthetic import synthetic_movielens
from featint.task import TEST, VALID, Features, build_task
from featint.tuning import SPACES, TRIALS

PERIODS = ("fit", "train")


def sequence(task, u: int) -> list[int]:
    start = task.seq_start[u]
    return task.seq_items[start:start + task.seq_len[u]].tolist()


def first_t(task, u: int, code: int) -> int:
    """Position of user ``u``'s first example with split ``code``."""
    return int(task.t[(task.user == u) & (task.split == code)].min())


def period_ends(task, period: str) -> list[int]:
    """Per user: the first validation position ("fit") or the first test position ("train")."""
    code = VALID if period == "fit" else TEST
    return [first_t(task, u, code) for u in range(task.num_users)]


def counts_by_loop(task, period: str):
    """Popularity, transitions and watched of ``period`` from one loop over the sequences."""
    pop = np.zeros(task.num_items, dtype=np.int64)
    trans = np.zeros((task.num_items, task.num_items), dtype=np.int64)
    watched = np.zeros((task.num_users, task.num_items), dtype=bool)
    for u, end in enumerate(period_ends(task, period)):
        known = sequence(task, u)[:end]
        for m in known:
            pop[m] += 1
            watched[u, m] = True
        for a, b in zip(known, known[1:], strict=False):
            trans[a, b] += 1
    return pop, trans, watched


def some_examples(task) -> np.ndarray:
    """Examples of every split, short and long histories."""
    rng = np.random.default_rng(0)
    ex = [rng.choice(task.examples(s), 4, replace=False) for s in ("fit", "valid", "test")]
    return np.concatenate([*ex, np.flatnonzero(task.t == 1)[:2], [int(np.argmax(task.t))]])


def last_movie(task, e: int) -> int:
    return int(task.seq_items[task.seq_start[task.user[e]] + task.t[e] - 1])


# -- periods ---------------------------------------------------------------------------------


def test_period_end_is_the_first_validation_or_test_position(synthetic_task):
    task = synthetic_task
    for period in PERIODS:
        end = task.period_end(period)
        assert end.shape == (task.num_users,)
        assert end.tolist() == period_ends(task, period), period
    assert (task.period_end("fit") < task.period_end("train")).all()


def test_period_mask_is_the_leading_positions(synthetic_task):
    task = synthetic_task
    for period in PERIODS:
        mask, end = task.period_mask(period), task.period_end(period)
        assert mask.shape == task.seq_items.shape
        assert mask[task.seq_start].all(), "position 0 is in every period"
        for u in range(task.num_users):
            got = mask[task.seq_start[u]:task.seq_start[u] + task.seq_len[u]]
            assert got.tolist() == [p < end[u] for p in range(task.seq_len[u])]


def test_unknown_period_is_refused(synthetic_task):
    for call in (synthetic_task.period_end, synthetic_task.popularity,
                 synthetic_task.transitions, synthetic_task.watched):
        with pytest.raises(ValueError, match="unknown period 'test'"):
            call("test")


@pytest.mark.parametrize("period", PERIODS)
def test_counts_equal_a_loop_over_the_sequences(synthetic_task, period):
    task = synthetic_task
    pop, trans, watched = counts_by_loop(task, period)
    assert np.array_equal(task.popularity(period), pop)
    assert np.array_equal(task.transitions(period), trans)
    assert np.array_equal(task.watched(period), watched)
    assert trans.sum() == pop.sum() - task.num_users  # one transition fewer than ratings


def test_default_period_is_train(synthetic_task):
    task = synthetic_task
    assert np.array_equal(task.popularity(), task.popularity("train"))
    assert not np.array_equal(task.popularity("fit"), task.popularity("train"))


def later_movies_changed(ml, ends: dict[int, int], seed: int = 0):
    """A copy of ``ml`` where each user's movies at positions >= ``ends[user id]`` are swapped
    for movies the user never rated (the synthetic timestamps are distinct, so the order and
    the split stay the same)."""
    rng = np.random.default_rng(seed)
    ratings = ml.ratings.sort_values(["user", "timestamp"], kind="stable").copy()
    items = ratings["item"].to_numpy().copy()
    users = ratings["user"].to_numpy()
    pos = ratings.groupby("user").cumcount().to_numpy()
    all_items = np.sort(ml.items.index.to_numpy())
    for u, end in ends.items():
        rows = np.flatnonzero((users == u) & (pos >= end))
        unused = np.setdiff1d(all_items, items[users == u])
        items[rows] = rng.choice(unused, len(rows), replace=False)
    ratings["item"] = items
    return replace(ml, ratings=ratings.reset_index(drop=True))


def test_fit_period_never_counts_a_validation_or_test_movie(synthetic_task):
    """New movies at every validation and test position change nothing learnt from "fit"
    (counts, Markov table, ItemKNN similarities), and do change the "train" counts."""
    before = synthetic_task
    ends = dict(zip(before.user_ids.tolist(), period_ends(before, "fit"), strict=True))
    after = build_task(later_movies_changed(synthetic_movielens(seed=0), ends))
    assert np.array_equal(before.split, after.split) and np.array_equal(before.t, after.t)
    assert not np.array_equal(before.target, after.target)
    for name in ("popularity", "transitions", "watched"):
        assert np.array_equal(getattr(before, name)("fit"), getattr(after, name)("fit")), name
        assert not np.array_equal(getattr(before, name)("train"),
                                  getattr(after, name)("train")), name
    assert torch.equal(Markov(before, "fit").table, Markov(after, "fit").table)
    assert torch.equal(ItemKNN(before, "fit").sim, ItemKNN(after, "fit").sim)


# -- Markov ----------------------------------------------------------------------------------


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("alpha", [0.5, 20.0])
def test_markov_by_hand(synthetic_task, period, alpha):
    """score(m) = (T[l, m] + alpha p(m)) / (n_l + alpha), l the context's last movie."""
    task = synthetic_task
    trans = task.transitions(period)
    pop = task.popularity(period)
    share = pop / pop.sum()
    ex = some_examples(task)
    scores = Markov(task, period, alpha)(task.context(ex), torch.arange(task.num_items))
    assert scores.shape == (len(ex), task.num_items) and scores.dtype == torch.float64
    for row, e in enumerate(ex):
        last = last_movie(task, e)
        n_l = int(trans[last].sum())
        want = [(trans[last, m] + alpha * share[m]) / (n_l + alpha)
                for m in range(task.num_items)]
        np.testing.assert_allclose(scores[row].numpy(), want, rtol=1e-12, atol=0)


def test_markov_needs_a_positive_alpha(synthetic_task):
    for alpha in (0.0, -1.0):
        with pytest.raises(ValueError, match="alpha must be positive"):
            Markov(synthetic_task, "fit", alpha)


# -- ItemKNN ---------------------------------------------------------------------------------


def similarity_by_loop(task, period: str, similarity: str, shrink: float) -> np.ndarray:
    """sim[h, m] from the sets of users who watched each movie in ``period``; 0 on the
    diagonal and where the denominator is 0."""
    watched = task.watched(period)
    users_of = [set(np.flatnonzero(watched[:, m]).tolist()) for m in range(task.num_items)]
    sim = np.zeros((task.num_items, task.num_items))
    for h, m in itertools.product(range(task.num_items), repeat=2):
        if h == m:
            continue
        c, n_h, n_m = len(users_of[h] & users_of[m]), len(users_of[h]), len(users_of[m])
        denominator = {
            "cosine": math.sqrt(n_h * n_m) + shrink,
            "jaccard": n_h + n_m - c + shrink,
            "conditional": n_h + shrink,  # P(m | h)
        }[similarity]
        sim[h, m] = c / denominator if denominator > 0 else 0.0
    return sim


@pytest.mark.parametrize("similarity", ["cosine", "jaccard", "conditional"])
@pytest.mark.parametrize("period, shrink", [("fit", 0.0), ("train", 10.0)])
def test_itemknn_by_hand(synthetic_task, similarity, period, shrink):
    """score(m) = sum over the movies h watched before t of sim(h, m)."""
    task = synthetic_task
    sim = similarity_by_loop(task, period, similarity, shrink)
    model = ItemKNN(task, period, similarity, shrink)
    np.testing.assert_allclose(model.sim.numpy(), sim, rtol=1e-12, atol=0)
    ex = some_examples(task)
    scores = model(task.context_for(model, ex), torch.arange(task.num_items)).numpy()
    for row, e in enumerate(ex):
        history = sequence(task, task.user[e])[:task.t[e]]
        want = [sum(sim[h, m] for h in history) for m in range(task.num_items)]
        np.testing.assert_allclose(scores[row], want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("window", [1, 3])
def test_itemknn_with_a_window_counts_the_last_movies_only(synthetic_task, window):
    """score(m) = sum over the last ``window`` movies watched before t of sim(h, m)."""
    task = synthetic_task
    model = ItemKNN(task, "fit", "jaccard", window=window)
    ex = some_examples(task)
    scores = model(task.context_for(model, ex), torch.arange(task.num_items)).numpy()
    sim = model.sim.numpy()
    for row, e in enumerate(ex):
        last = sequence(task, task.user[e])[:task.t[e]][-window:]
        np.testing.assert_allclose(scores[row], sim[last].sum(0), rtol=1e-12, atol=1e-15)


def test_itemknn_similarity_is_not_symmetric_when_conditional(synthetic_task):
    sim = ItemKNN(synthetic_task, "train", "conditional").sim
    assert not torch.allclose(sim, sim.T)
    cosine = ItemKNN(synthetic_task, "train", "cosine").sim
    assert torch.allclose(cosine, cosine.T) and (cosine.diagonal() == 0).all()


def test_itemknn_refuses_bad_settings(synthetic_task):
    with pytest.raises(ValueError, match="unknown similarity 'pearson'"):
        ItemKNN(synthetic_task, "fit", "pearson")
    with pytest.raises(ValueError, match="shrink"):
        ItemKNN(synthetic_task, "fit", "cosine", shrink=-1.0)
    with pytest.raises(ValueError, match="window must be at least 1"):
        ItemKNN(synthetic_task, "fit", "cosine", window=0)


# -- every baseline --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["popular", "nextid", "markov", "itemknn"])
def test_candidates_are_columns_of_the_all_movies_scores(synthetic_task, name):
    task = synthetic_task
    model = {"popular": lambda: Popularity(task, "fit"), "nextid": lambda: NextId(task),
             "markov": lambda: Markov(task, "fit", 1.0),
             "itemknn": lambda: ItemKNN(task, "fit", "jaccard", 10.0)}[name]()
    ex = some_examples(task)
    rng = np.random.default_rng(0)
    items = torch.from_numpy(np.column_stack([task.target[ex],
                                              task.sample_negatives(ex, 4, rng)]))
    context = task.context_for(model, ex)  # ItemKNN reads the ordered history
    every = model(context, torch.arange(task.num_items))
    picked = model(context, items)
    assert every.shape == (len(ex), task.num_items) and picked.shape == items.shape
    assert torch.equal(picked, every.gather(1, items))
    assert len(torch.unique(every)) > 1


def test_next_id_ranks_the_following_ids_first(synthetic_task):
    task = synthetic_task
    n = task.num_items
    near_end = [e for e in range(len(task.t)) if last_movie(task, e) in (n - 2, n - 1)][:4]
    assert {last_movie(task, e) for e in near_end} == {n - 2, n - 1}  # the wrap is exercised
    ex = np.concatenate([some_examples(task), near_end])
    scores = NextId(task)(task.context(ex), torch.arange(n))
    for row, e in enumerate(ex):
        last = last_movie(task, e)
        order = torch.argsort(scores[row], descending=True).tolist()
        assert order == [(last + k) % n for k in range(1, n + 1)]


# -- choosing a setting on validation ----------------------------------------------------------


def test_choose_markov_tries_the_grid_on_validation(synthetic_task):
    task = synthetic_task
    choice = choose("markov", task)
    assert [trial["setting"] for trial in choice.trials] == list(SPACES["markov"].values())
    assert [trial["label"] for trial in choice.trials] == list(SPACES["markov"])
    valid = task.examples("valid")
    for trial in choice.trials:
        found = metrics(rank_examples(Markov(task, "fit", **trial["setting"]), task, valid))
        assert trial["valid_mrr"] == pytest.approx(found["mrr"], rel=1e-12)
        assert trial["valid_hr@10"] == pytest.approx(found["hr@10"], rel=1e-12)
    mrr = [trial["valid_mrr"] for trial in choice.trials]
    assert len(set(mrr)) > 1
    assert choice.setting == choice.trials[int(np.argmax(mrr))]["setting"]
    # the chosen setting, rebuilt from the training period (fit + validation)
    assert torch.equal(choice.model.table, Markov(task, "train", **choice.setting).table)
    assert not torch.equal(choice.model.table, Markov(task, "fit", **choice.setting).table)


def test_choose_itemknn_tries_its_space(synthetic_task):
    task = synthetic_task
    choice = choose("itemknn", task, valid_limit=60)
    assert len(choice.trials) == TRIALS
    assert [t["setting"] for t in choice.trials] == list(SPACES["itemknn"].values())
    best = max(choice.trials, key=lambda t: t["valid_mrr"])
    assert choice.setting == best["setting"]
    assert torch.equal(choice.model.sim, ItemKNN(task, "train", **choice.setting).sim)


def test_choose_popular_and_unknown_names(synthetic_task):
    task = synthetic_task
    choice = choose("popular", task)
    assert choice.trials == [] and choice.setting == {}
    assert torch.equal(choice.model.counts, torch.from_numpy(task.popularity("train")).double())
    for name in ("nextid", "random", "mf"):
        with pytest.raises(ValueError, match="unknown counting baseline"):
            choose(name, task)


# -- MF: FM restricted to the user and the movie ------------------------------------------------


@pytest.mark.slow
def test_mf_is_fm_on_the_user_and_movie_slots(synthetic_task):
    task = synthetic_task
    schema = task.schema
    user, movie = schema.field("user"), schema.field("movie")
    fm = perturbed(task, "fm", embed_dim=4)
    mf = build_model("mf", task, embed_dim=4).double().eval()
    users = slice(user.offset, user.offset + user.size)
    movies = slice(movie.offset, movie.offset + movie.size)
    with torch.no_grad():
        mf.w0.copy_(fm.w0)
        mf.user_linear.weight.weight[1:] = fm.linear.weight.weight[users]
        mf.movie_linear.weight.weight[1:] = fm.linear.weight.weight[movies]
        mf.user_embedding.embedding.weight[1:] = fm.embedding.embedding.weight[users]
        mf.movie_embedding.embedding.weight[1:] = fm.embedding.embedding.weight[movies]
    # FM seeing one user slot and one movie slot
    items = task.item_features()
    movie_slots = items.field == schema.item_fields.index(movie)
    restricted = FM(schema, Features(items.idx[:, movie_slots], items.val[:, movie_slots],
                                     items.field[movie_slots]), embed_dim=4).double().eval()
    restricted.load_state_dict(fm.state_dict())
    ex = some_examples(task)
    context = context64(task, ex)
    user_slots = context.field == schema.context_fields.index(user)
    user_only = Features(context.idx[:, user_slots], context.val[:, user_slots],
                         context.field[user_slots])
    rng = np.random.default_rng(0)
    candidates = torch.from_numpy(np.column_stack([task.target[ex],
                                                   task.sample_negatives(ex, 4, rng)]))
    for which in (candidates, torch.arange(task.num_items)):
        got, want = mf(context, which), restricted(user_only, which)
        assert got.dtype == torch.float64 and got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        assert not torch.allclose(got, fm(context, which))  # the other fields do matter to FM
