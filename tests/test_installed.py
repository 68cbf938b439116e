"""Outside the repository, an installed featint trains what the README reports.

The path a reader takes in Colab or with pip: build the wheel, install it into a fresh
virtual environment outside the clone, offline (torch and every other dependency from the
wheels ``make setup`` keeps in ``.venv/wheelhouse``), and run a chapter there in quick mode.
Its settings and its reference table (the comparison's record) must be the repository's: the
tuning record and the comparison ship with the package, and a missing one is an error, never
a silent fallback to other settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
CHAPTER = ROOT / "notebooks" / "01_fm.ipynb"
#: What the installed package reports: every model's setting and the reference leaderboard.
REPORT = """
import json
from featint.chapter import load_comparison
from featint.report import format_leaderboard
from featint.training import setting_of
from featint.tuning import SPACES, pending
comparison, note = load_comparison()
print(json.dumps({"settings": {n: setting_of(n) for n in SPACES if n not in pending([n])},
                  "pending": pending(list(SPACES)), "note": note,
                  "leaderboard": format_leaderboard(comparison.leaderboard())}))
"""

pytestmark = pytest.mark.slow


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment outside the clone with the built featint wheel, installed
    with no network; returns its python."""
    if not WHEELHOUSE.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"no {WHEELHOUSE}: `make setup` downloads the dependencies there")
        pytest.skip(f"no {WHEELHOUSE} (run `make setup`)")
    base = tmp_path_factory.mktemp("outside")
    dist = base / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(dist), str(ROOT)])
    (wheel,) = dist.glob("featint-*.whl")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull,
               "PIP_FIND_LINKS": str(WHEELHOUSE)}
    run([str(python), "-m", "pip", "install", "--quiet", "--no-index",
         "--find-links", str(WHEELHOUSE), f"{wheel}[kernel]"], env=offline, cwd=base)
    return python


def test_the_wheel_carries_the_records_and_a_chapter_runs_outside(installed, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FEATINT_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(FEATINT_QUICK="1", FEATINT_MODEL_CACHE=str(tmp_path / "models"),
               FEATINT_DATA_DIR=os.environ.get("FEATINT_DATA_DIR", ""), OMP_NUM_THREADS="1",
               TQDM_DISABLE="1", MPLBACKEND="Agg")
    if not env["FEATINT_DATA_DIR"]:
        pytest.skip("FEATINT_DATA_DIR is not set: the chapter needs MovieLens 100K")
    where = run([str(installed), "-c", "import featint; print(featint.__file__)"],
                cwd=tmp_path, env=env).stdout.strip()
    assert not Path(where).is_relative_to(ROOT), where  # the installed copy, not the clone

    outside = json.loads(run([str(installed), "-c", REPORT], cwd=tmp_path, env=env).stdout)
    inside = json.loads(run([sys.executable, "-c", REPORT], cwd=ROOT,
                            env={**env, "PYTHONPATH": str(ROOT)}).stdout)
    assert outside["settings"] == inside["settings"]
    assert outside["leaderboard"] == inside["leaderboard"]
    assert "featint's record" in outside["note"]

    chapter = tmp_path / CHAPTER.name
    shutil.copy(CHAPTER, chapter)
    run([str(installed), "-m", "nbconvert", "--to", "notebook", "--execute", "--inplace",
         "--ExecutePreprocessor.timeout=1200", str(chapter)], cwd=tmp_path, env=env)
    text = chapter.read_text()
    errors = [o for c in json.loads(text)["cells"] for o in c.get("outputs", [])
              if o["output_type"] == "error"]
    assert "featint's record" in text and not errors, errors
