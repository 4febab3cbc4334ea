"""Packaging metadata: every subpackage listed, one version, license and citation consistent."""

import tomllib
from pathlib import Path

import pytest

import mlob_pp

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _source_packages():
    """Every folder with an __init__.py, as the installed dotted name."""
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    found = set()
    for name, rel in dirs.items():
        base = ROOT / rel
        for init in base.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            if "__pycache__" in parts or any(p.startswith(".") for p in parts):
                continue
            found.add(".".join((name, *parts)))
    return found


def test_every_subpackage_is_in_the_package_list():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    missing = _source_packages() - listed
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    stale = listed - _source_packages()
    assert not stale, f"listed but no __init__.py: {sorted(stale)}"


def test_version_has_one_source():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "mlob_pp.__version__"}
    # the literal setuptools reads without importing the package
    line = [ln for ln in (ROOT / "mlob_pp/__init__.py").read_text().splitlines()
            if ln.startswith("__version__ = ")]
    assert line == [f'__version__ = "{mlob_pp.__version__}"']


def test_license_is_the_gpl3_text_and_matches_metadata():
    project = PYPROJECT["project"]
    assert project["license"] == "GPL-3.0-or-later"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE")
    assert "Version 3, 29 June 2007" in text and "END OF TERMS AND CONDITIONS" in text
    assert len(text.splitlines()) == 674  # the unmodified FSF text
    assert any(c.startswith("Programming Language :: Python :: 3.12")
               for c in project["classifiers"])


def test_citation_cff_is_valid_and_matches_the_package():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "version", "license", "references"):
        assert key in cff, key
    assert cff["version"] == mlob_pp.__version__
    assert cff["license"] == PYPROJECT["project"]["license"]
    dois = {r.get("doi") for r in cff["references"]}
    # MLOB (Dashuk et al. 2025), latent covariate model (Lüdtke et al. 2008), SS-MELSM
    assert {"10.1017/psy.2025.10045", "10.1037/a0012869", "10.3102/10769986261426004"} <= dois
    for ref in cff["references"]:
        assert ref["title"] and ref["authors"], ref


def test_extras_and_base_dependencies():
    project = PYPROJECT["project"]
    base = " ".join(project["dependencies"]).lower()
    for heavy in ("pymc", "pytensor", "nutpie", "jax", "blackjax", "numpyro", "distributed"):
        assert heavy not in base, f"{heavy} must be optional, not a base dependency"
    extras = project["optional-dependencies"]
    assert {"mcmc", "dask", "all", "dev", "docs"} <= set(extras)
    assert any(d.startswith("pymc") for d in extras["mcmc"])
    assert any(d.startswith("nutpie") for d in extras["mcmc"])
    assert extras["all"] == ["mlob_pp[mcmc,dask]"]
    # exact pins live in constraints.txt, never in the metadata
    assert not any("==" in d for deps in [project["dependencies"], *extras.values()] for d in deps)


def test_constraints_pin_every_direct_dependency():
    import re

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt must pin exactly: {line!r}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = PYPROJECT["project"]
    direct = [*project["dependencies"],
              *(d for k, v in project["optional-dependencies"].items() if k != "all" for d in v)]
    for dep in direct:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!\[; ]", dep)[0]).lower()
        assert name in pins, f"{name} has no exact pin in constraints.txt"
