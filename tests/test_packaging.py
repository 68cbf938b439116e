"""The two install routes agree: ``environment.yml`` (conda) and ``pyproject.toml`` (pip)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[1]
#: conda-forge names of packages whose pip name differs (pip name -> conda name)
CONDA_NAME = {"torch": "pytorch"}
#: conda-only entries that are tools of the environment, not dependencies of featint
CONDA_ONLY = {"python", "pip"}
#: Extras environment.yml cannot hold: the `scale` extra (TorchRec) needs torchrec installed
#: with pip's --no-deps, which a requirements list cannot say; `make setup-scale` installs it
#: (environment.yml says so, and the Makefile's pins are checked against the extra below).
OUTSIDE_ENVIRONMENT = {"scale"}


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def pip_requirements(pyproject: dict) -> dict[str, SpecifierSet]:
    """Every requirement of the package and its extras (conda name -> version range),
    the extras that only point back at featint itself left out."""
    project = pyproject["project"]
    lines = list(project["dependencies"])
    for name, extra in project.get("optional-dependencies", {}).items():
        if name not in OUTSIDE_ENVIRONMENT:
            lines += extra
    out: dict[str, SpecifierSet] = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == canonicalize_name(project["name"]):
            continue
        assert name not in out or out[name] == req.specifier, f"{name} pinned twice"
        out[CONDA_NAME.get(name, name)] = req.specifier
    return out


def conda_requirements(environment: dict) -> tuple[dict[str, SpecifierSet], list[str]]:
    """conda dependencies (name -> version range) and the raw ``pip:`` list."""
    conda, pip = {}, []
    for dep in environment["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, dep
            pip += dep["pip"]
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep.strip())
        assert match, dep
        name, spec = match.groups()
        conda[canonicalize_name(name)] = SpecifierSet(spec.replace(" ", ""))
    return conda, pip


def environment_requirements(environment: dict) -> dict[str, SpecifierSet]:
    """Everything environment.yml installs for featint: conda packages, and the PyPI-only
    ones under ``pip:`` (the ``-e .`` of featint itself left out)."""
    conda, pip = conda_requirements(environment)
    out = {name: spec for name, spec in conda.items() if name not in CONDA_ONLY}
    for line in pip:
        if line.startswith("-e"):
            continue
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in out, f"{name} both from conda and from pip"
        out[name] = req.specifier
    return out


def test_same_packages_and_versions(pyproject, environment):
    pip = pip_requirements(pyproject)
    env = environment_requirements(environment)
    assert set(env) == set(pip), (
        f"only in environment.yml: {sorted(set(env) - set(pip))}; "
        f"only in pyproject.toml: {sorted(set(pip) - set(env))}")
    for name, spec in pip.items():
        assert env[name] == spec, f"{name}: environment.yml {env[name]} vs pyproject {spec}"
    conda, _ = conda_requirements(environment)
    assert "pytorch" in conda and "torch" not in env  # conda-forge's name for torch
    assert "jupyter-book" in conda


def test_python_range_is_compatible(pyproject, environment):
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    conda, _ = conda_requirements(environment)
    assert "python" in conda
    candidates = [f"3.{minor}" for minor in range(6, 20)]
    allowed = [v for v in candidates if v in conda["python"]]
    assert allowed, "environment.yml allows no Python at all"
    assert all(v in requires for v in allowed), (
        f"environment.yml allows {allowed}, requires-python is {requires}")


def test_conda_forge_and_editable_install(environment):
    assert environment["channels"] == ["conda-forge"]
    assert environment["name"] == "featint"
    conda, pip = conda_requirements(environment)
    assert "pip" in conda
    assert pip[-1] == "-e ."  # featint itself, after whatever it needs from PyPI
    assert pip.count("-e .") == 1


def test_console_script(pyproject):
    assert pyproject["project"]["scripts"]["featint"] == "featint.cli:main"
    installed = [ep for ep in metadata.entry_points(group="console_scripts", name="featint")]
    assert len(installed) == 1 and installed[0].value == "featint.cli:main"
    assert callable(installed[0].load())


def test_package_data_ships_the_checksums(pyproject):
    assert "SHA256SUMS" in pyproject["tool"]["setuptools"]["package-data"]["featint"]
    sums = (ROOT / "featint" / "SHA256SUMS").read_text().split()
    assert {"u.data", "u.item", "u.user", "u.genre"} <= set(sums[1::2])


def test_the_repository_address_has_one_source():
    """pyproject.toml's project.urls is the address; the chapters' install cells and the book
    hold copies that `python book/repository.py` writes, and they agree with it."""
    from helpers import load_script

    repository = load_script(ROOT / "book" / "repository.py")
    url = repository.address()
    copies = repository.copies()
    chapters = [p for p in copies if p.parent.name == "notebooks"]
    assert len(chapters) == 2 * len(list((ROOT / "notebooks").glob("*.ipynb")))
    for path, found in copies.items():
        assert found == [url], (path, found)


def test_the_makefile_installs_the_scale_extra_as_pinned(pyproject, environment):
    """`make setup-scale` installs exactly the `scale` extra: everything but torchrec with its
    requirements, torchrec alone with --no-deps (its metadata asks for the CUDA fbgemm-gpu);
    environment.yml points at that target."""
    makefile = (ROOT / "Makefile").read_text()
    pins = {}
    for variable in ("SCALE_DEPS", "SCALE_NODEPS"):
        match = re.search(rf"^{variable} := (.+)$", makefile, re.MULTILINE)
        assert match, f"no {variable} in the Makefile"
        pins[variable] = match.group(1).split()
    extra = pyproject["project"]["optional-dependencies"]["scale"]
    assert sorted(pins["SCALE_DEPS"] + pins["SCALE_NODEPS"]) == sorted(extra)
    assert [Requirement(r).name for r in pins["SCALE_NODEPS"]] == ["torchrec"]
    assert "pip install --no-deps $(SCALE_NODEPS)" in makefile
    assert re.search(r"^test: .*setup-scale", makefile, re.MULTILINE)
    assert "torch==2.13.0" in makefile and "fbgemm-gpu-cpu==1.8.0" in extra  # they pair
    assert "make setup-scale" in (ROOT / "environment.yml").read_text()
