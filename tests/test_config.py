"""One configuration (``featint.config``): built from the documented environment variables,
changed for a block, recorded as it ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from featint.config import (
    BUDGET,
    ENVIRONMENT,
    Config,
    ConfigError,
    QuickSizes,
    current,
    environment_table,
    from_env,
    use,
)

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_without_any_variable(tmp_path):
    config = from_env({"XDG_CACHE_HOME": str(tmp_path)})
    assert config == Config(cache_root=tmp_path / "featint")
    assert not config.quick and config.device == "auto" and config.threads is None
    assert config.models_folder == tmp_path / "featint" / "models"
    assert config.budget is BUDGET


def test_every_documented_variable_is_read(tmp_path):
    env = {"FEATINT_DATA_DIR": str(tmp_path / "d"), "FEATINT_QUICK": "yes",
           "FEATINT_DATA_ROOT": str(tmp_path / "releases"),
           "FEATINT_DEVICE": "CPU", "FEATINT_THREADS": "3",
           "FEATINT_MODEL_CACHE": str(tmp_path / "m"), "FEATINT_RESULTS": str(tmp_path / "r"),
           "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "XDG_CACHE_HOME": str(tmp_path / "x"),
           "LOCAL_RANK": "1"}
    assert set(env) == set(ENVIRONMENT)
    config = from_env(env)
    assert config.data_dir == tmp_path / "d" and config.quick and config.device == "cpu"
    assert config.data_root == tmp_path / "releases"
    assert config.threads == 3 and config.models_folder == tmp_path / "m"
    assert config.results == tmp_path / "r" and config.cache_root == tmp_path / "x" / "featint"
    assert config.cublas_workspace == ":4096:8" and config.local_rank == 1


@pytest.mark.parametrize(("name", "value", "words"), [
    ("FEATINT_QUICK", "maybe", "FEATINT_QUICK='maybe' is not a yes/no value"),
    ("FEATINT_DEVICE", "tpu", "FEATINT_DEVICE='tpu'"),
    ("FEATINT_THREADS", "0", "FEATINT_THREADS='0' must be a whole number"),
    ("FEATINT_THREADS", "two", "FEATINT_THREADS='two'"),
])
def test_bad_values_name_the_variable_and_the_fix(name, value, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        from_env({name: value})


def test_use_changes_the_configuration_for_a_block_only(monkeypatch):
    monkeypatch.setenv("FEATINT_QUICK", "1")
    assert current().quick
    with use(quick=False) as inner:
        assert current() is inner and not current().quick
        with use(sizes=QuickSizes(epochs=1)):
            assert current().sizes.epochs == 1 and not current().quick
        assert current() is inner
    assert current().quick  # back to what the environment says
    monkeypatch.setenv("FEATINT_QUICK", "0")
    assert not current().quick  # read again at every call: a changed variable counts


def test_record_leaves_out_machine_paths(tmp_path):
    record = from_env({"FEATINT_DATA_DIR": str(tmp_path)}).record()
    assert str(tmp_path) not in str(record)
    assert record["budget"]["epochs"] == BUDGET.epochs and "sizes" in record


def test_the_readme_and_contributing_list_every_variable():
    table = environment_table()
    for page in ("README.md", "CONTRIBUTING.md"):
        assert table in (ROOT / page).read_text(encoding="utf-8"), page
