"""Past MovieLens 100K: the scaled synthetic data (``featint.synthetic.scaled_movielens``) and
the scale benchmark (``benchmarks/scale.py``), whose tables the README shows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script

from featint.models import build_model, count_parameters
from featint.synthetic import SIZES, ratings_per_user, scaled_movielens
from featint.task import build_task

ROOT = Path(__file__).resolve().parents[1]
SCALE = ROOT / "benchmarks" / "scale.py"


@pytest.fixture(scope="module")
def scale():
    return load_script(SCALE)


def test_ratings_per_user_hit_the_total_exactly():
    counts = ratings_per_user(1000, 150_000, 3000, rng=np.random.default_rng(1))
    assert counts.sum() == 150_000 and counts.min() >= 20 and counts.max() <= 1500
    assert counts.max() > 5 * np.median(counts)  # a long tail of heavy raters
    with pytest.raises(ValueError, match="cannot be spread"):
        ratings_per_user(10, 100, 3000)


def test_scaled_movielens_has_the_shape_asked_for():
    ml = scaled_movielens(500, 800, 500 * 60, seed=2, chunk_ratings=5000)
    r = ml.ratings
    assert len(r) == 500 * 60 and r["user"].nunique() == 500
    assert not r.duplicated(["user", "item"]).any()  # a user rates a movie once
    assert r.groupby("user")["timestamp"].apply(lambda t: t.is_monotonic_increasing).all()
    tied = (r.groupby("user")["timestamp"].diff() == 0).mean()
    assert 0.4 < tied < 0.6  # half of consecutive ratings share a second, as in 100K
    assert set(r["rating"]) == {1, 2, 3, 4, 5}
    assert ml.demographics == ("age", "gender", "occupation", "zip")
    later = scaled_movielens(500, 800, 500 * 60, seed=2, demographics=False, half_stars=True)
    assert later.demographics == () and (later.ratings["rating"] % 1 == 0.5).any()


def test_a_subsample_of_users_keeps_the_population_counts():
    whole = scaled_movielens(400, 600, 400 * 50, seed=4)
    part = scaled_movielens(400, 600, 400 * 50, seed=4, only_users=100)
    assert part.ratings["user"].max() == 100 and len(part.users) == 100
    assert np.array_equal(part.ratings.groupby("user").size().to_numpy(),
                          whole.ratings.groupby("user").size().to_numpy()[:100])


def test_the_sizes_are_the_releases():
    assert SIZES["ml-1m"] == (6_040, 3_706, 1_000_209)
    assert SIZES["ml-20m"][2] == 20_000_263


def test_parameters_of_the_full_size_model_are_counted_without_its_task(scale):
    small = build_task(scaled_movielens(200, 300, 200 * 30, seed=0))
    bigger = build_task(scaled_movielens(260, 300, 260 * 30, seed=0))
    for name in ("fm", "ffm", "dlrm"):
        assert scale.params_with_users(small, name, 260) == count_parameters(
            build_model(name, bigger))


def test_measure_times_steps_and_ranking(scale, synthetic_task):
    row = scale.measure(synthetic_task, "fm", steps=1, contexts=8)
    assert row["step_cpu_s"] > 0 and row["rank_context_cpu_s"] > 0
    assert row["params"] == count_parameters(build_model("fm", synthetic_task))


def test_readme_shows_the_measured_scale_tables(scale):
    """The README's tables are `python benchmarks/scale.py --markdown` over the record."""
    figures = json.loads((ROOT / "results" / "scale" / "scale.json").read_text())
    assert figures["ml-20m"]["subsample"] and not figures["ml-1m"]["subsample"]
    assert scale.markdown(figures) in (ROOT / "README.md").read_text(encoding="utf-8")
