"""The import rule of docs/architecture.md, checked on the installed layout.

``models/`` and ``comparisons/`` are installed as ``mlob_pp.models`` and
``mlob_pp.comparisons``; import-linter reads a package from one directory, so the test assembles
that layout in a temporary directory and runs ``lint-imports`` on it.
"""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"mlob_pp": ROOT / "mlob_pp", "mlob_pp/models": ROOT / "models",
            "mlob_pp/comparisons": ROOT / "comparisons"}


def _assemble(tmp_path: Path) -> Path:
    dest = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.csv", "*.md")
    for rel, src in PACKAGES.items():
        shutil.copytree(src, dest / rel, ignore=ignore, dirs_exist_ok=True)
    return dest


def _sources():
    for rel, src in PACKAGES.items():
        for path in src.rglob("*.py"):
            mod = ".".join((rel.replace("/", "."), *path.relative_to(src).with_suffix("").parts))
            yield mod.removesuffix(".__init__"), path


def test_import_linter_layers_contract_is_kept(tmp_path):
    pytest.importorskip("importlinter")
    src = _assemble(tmp_path)
    exe = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for mod, path in _sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if not node.module.startswith("mlob_pp") or node.module == mod:
                    continue
                offenders += [f"{mod}: from {node.module} import {a.name}"
                              for a in node.names if a.name.startswith("_")
                              and not a.name.startswith("__")]
    assert offenders == []


def test_no_module_is_over_600_lines():
    long = {mod: n for mod, path in _sources()
            if (n := len(path.read_text().splitlines())) > 600}
    assert long == {}
