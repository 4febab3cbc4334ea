"""The API reference covers every public name (docs/api/*.rst)."""

import re
from pathlib import Path

import mlob_pp
import mlob_pp.comparisons

ROOT = Path(__file__).resolve().parents[2]
API = "\n".join(p.read_text() for p in (ROOT / "docs/api").glob("*.rst"))
LISTED = set(re.findall(r"^\s+([\w.]+)\s*$", API, flags=re.M))  # autosummary entries
MODULES = set(re.findall(r"automodule:: ([\w.]+)", API))


def test_every_public_name_of_mlob_pp_is_documented():
    submodules = {n for n in mlob_pp.__all__ if f"mlob_pp.{n}" in MODULES
                  or any(m.startswith(f"mlob_pp.{n}.") for m in MODULES)}
    names = set(mlob_pp.__all__) - {"__version__"} - submodules
    undocumented = sorted(n for n in names if n not in LISTED)
    assert not undocumented, f"add to docs/api/index.rst (autosummary): {undocumented}"


def test_every_public_name_of_comparisons_is_documented():
    undocumented = sorted(n for n in mlob_pp.comparisons.__all__ if n not in LISTED)
    assert not undocumented, f"add to docs/api/index.rst (mlob_pp.comparisons): {undocumented}"


def test_every_model_module_is_documented():
    modules = {f"mlob_pp.models.{p.stem}" for p in (ROOT / "models").glob("*.py")
               if not p.name.startswith("_")}
    assert modules <= MODULES, sorted(modules - MODULES)


def test_notebooks_are_rendered_not_executed():
    conf = (ROOT / "docs/conf.py").read_text()
    assert 'nb_execution_mode = "off"' in conf
    link = ROOT / "docs/notebooks"
    assert link.is_symlink() and link.resolve() == (ROOT / "notebooks").resolve()


def test_every_notebook_starts_with_a_title():
    # the docs' table of contents links a notebook by its first heading (no title: no link)
    import json

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        markdown = [c for c in cells if c["cell_type"] == "markdown"]
        first = "".join(markdown[0]["source"]).lstrip() if markdown else ""
        assert first.startswith("# "), f"{path.name}: first markdown cell must be '# Title'"
