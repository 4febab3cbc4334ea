"""mlob_pp.optional: a missing optional dependency gives one message naming the extra."""

import subprocess
import sys

import pytest

from mlob_pp.optional import (
    EXTRAS,
    MissingOptionalDependencyError,
    available,
    require,
    require_all,
)


def test_require_returns_installed_module():
    import numpy

    assert require("numpy", "mcmc", "fit_mcmc") is numpy
    assert require("numpy.linalg", "mcmc", "fit_mcmc").__name__ == "numpy.linalg"


def test_require_missing_module_names_feature_and_extra(monkeypatch):
    # sys.modules[name] = None makes `import name` raise ModuleNotFoundError, as when absent
    monkeypatch.setitem(sys.modules, "pymc", None)
    with pytest.raises(
        MissingOptionalDependencyError,
        match=r"^fit_mcmc needs the optional dependencies of mlob_pp\[mcmc\]: "
        r"pip install 'mlob_pp\[mcmc\]' \(missing module: 'pymc'\)$",
    ) as info:
        require("pymc", "mcmc", "fit_mcmc")
    err = info.value
    assert isinstance(err, ModuleNotFoundError) and isinstance(err, ImportError)
    assert (err.name, err.extra, err.feature) == ("pymc", "mcmc", "fit_mcmc")
    assert isinstance(err.__cause__, ModuleNotFoundError)


def test_require_reports_the_module_actually_missing(monkeypatch):
    # the requested package is present but one of its own imports is not: name that one
    monkeypatch.delitem(sys.modules, "json", raising=False)
    monkeypatch.setitem(sys.modules, "json.decoder", None)
    with pytest.raises(MissingOptionalDependencyError, match=r"missing module: 'json.decoder'"):
        require("json", "dask", "run_study(scheduler=...)")


def test_require_never_hides_other_import_errors(monkeypatch, tmp_path):
    # an installed but broken package: installing the extra would not help, so no translation
    (tmp_path / "broken_pkg_for_mlob_pp.py").write_text("raise ImportError('binary is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="binary is broken") as info:
        require("broken_pkg_for_mlob_pp", "mcmc", "fit_mcmc")
    assert not isinstance(info.value, MissingOptionalDependencyError)


def test_require_all_stops_at_first_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "nutpie", None)
    with pytest.raises(MissingOptionalDependencyError, match=r"missing module: 'nutpie'"):
        require_all(["numpy", "nutpie", "scipy"], "mcmc", "fit_melsm")
    mods = require_all(("numpy", "scipy"), "mcmc", "fit_melsm")
    assert [m.__name__ for m in mods] == ["numpy", "scipy"]


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match=r"package must be a str, got int: 3"):
        require(3, "mcmc", "fit_mcmc")
    with pytest.raises(ValueError, match=r"extra must be a non-empty string, got ''"):
        require("numpy", "", "fit_mcmc")
    with pytest.raises(TypeError, match=r"packages must be an iterable of module names"):
        require_all("pymc", "mcmc", "fit_mcmc")


def test_available(monkeypatch):
    assert available("numpy")
    assert not available("no_such_module_for_mlob_pp")
    assert not available("no_such_parent_for_mlob_pp.child")
    monkeypatch.setitem(sys.modules, "pymc", None)
    assert not available("pymc")


def test_extras_match_pyproject():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(EXTRAS) <= set(extras)
    # every import name listed for an extra is installed by that extra's distributions
    dists = {e: " ".join(extras[e]).lower() for e in EXTRAS}
    for extra, modules in EXTRAS.items():
        for module in modules:
            assert module.split(".")[0] in dists[extra], (extra, module)


def test_import_mlob_pp_needs_no_optional_dependency():
    # a fresh interpreter in which every optional module is missing: the base API still imports
    blocked = sorted({m for mods in EXTRAS.values() for m in mods} | {"dask", "jaxlib"})
    code = (
        "import sys\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        "import mlob_pp\n"
        "from mlob_pp import mlob, fit_ml, null_model, comparisons\n"
        "import mlob_pp.cli\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
