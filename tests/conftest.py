"""Shared fixtures. Tests that need the real MovieLens files use ``ml``/``task``; they run
wherever the data is available without downloading (``FEATINT_DATA_DIR`` or the user cache),
are skipped elsewhere, and fail under CI, where the data must be there. ``browser`` is one
page of headless Chromium (tests/browser.py) for the tests that look at what a reader sees."""

from __future__ import annotations

import os

import pytest
from browser import chromium

from featint.data import DataError, load_movielens
from featint.synthetic import synthetic_movielens
from featint.task import build_task


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """Models trained by the tests go to a temporary cache, never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATINT_MODEL_CACHE", str(tmp_path_factory.mktemp("model-cache")))
        yield


@pytest.fixture(scope="session")
def ml():
    try:
        return load_movielens(download_missing=False)
    except DataError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"MovieLens 100K not available locally: {err}")


@pytest.fixture(scope="session")
def task(ml):
    return build_task(ml)


@pytest.fixture(scope="session")
def synthetic_ml():
    return synthetic_movielens(seed=0)


@pytest.fixture(scope="session")
def synthetic_task(synthetic_ml):
    return build_task(synthetic_ml)


@pytest.fixture(scope="session")
def _chromium():
    with chromium() as page:
        yield page


@pytest.fixture
def browser(_chromium):
    """One page of headless Chromium, driven over DevTools: ``call(method, **params)``,
    ``wait_for(event)`` and ``events`` (every event received so far; Network and Page are on).
    One Chromium serves the session; after each test the page goes back to about:blank with
    no events, so a live page (JupyterLab keeps polling) cannot leak into the next test.
    Skipped without Chromium, except under CI."""
    _chromium.events.clear()
    yield _chromium
    _chromium.events.clear()
    _chromium.call("Page.navigate", url="about:blank")
    _chromium.wait_for("Page.loadEventFired")
    _chromium.events.clear()
