"""Smoke test of the BASE install (the wheel, no extras) in a fresh virtual environment.

Run by .ci/smoke_wheel.sh from a directory outside the repository, so that ``import mlob_pp``
finds the installed wheel, never the source tree. Usage: python smoke_test.py WHEEL
"""

import importlib.metadata as metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

OPTIONAL = ("pymc", "pytensor", "nutpie", "jax", "blackjax", "numpyro", "distributed")


def check(cond, what):
    """Print ok, or stop with the failed check."""
    if not cond:
        raise SystemExit(f"SMOKE TEST FAILED: {what}")
    print(f"ok  {what}")


def wheel_contents(wheel: Path) -> None:
    """License, classifiers, data files and subpackages inside the wheel."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(f"{info}/METADATA").decode()
    check(f"{info}/licenses/LICENSE" in names, "wheel carries .dist-info/licenses/LICENSE")
    check("License-Expression: GPL-3.0-or-later" in meta, "License-Expression GPL-3.0-or-later")
    check("Classifier: Programming Language :: Python :: 3.12" in meta, "classifiers present")
    for data in ("hsb.csv", "saeb.csv", "passnyc_2016_school_explorer.csv", "PROVENANCE.md"):
        check(f"mlob_pp/datasets/data/{data}" in names, f"wheel carries datasets/data/{data}")
    for sub in ("cli", "closed_form", "comparisons/study", "models", "ml", "mcmc", "melsm",
                "variability", "formula", "datasets"):
        check(f"mlob_pp/{sub}/__init__.py" in names, f"wheel carries mlob_pp/{sub}")


def installed_base_only() -> None:
    """Check that the installed wheel is imported and no optional dependency is present."""
    import mlob_pp

    here = Path(mlob_pp.__file__).resolve()
    check("site-packages" in here.parts, f"mlob_pp imported from the installed wheel ({here})")
    check(mlob_pp.__version__ == metadata.version("mlob_pp"),
          f"__version__ {mlob_pp.__version__} == metadata version")
    missing = [m for m in OPTIONAL if importlib.util.find_spec(m) is None]
    check(missing == list(OPTIONAL), f"no optional dependency installed (absent: {missing})")


def base_api() -> None:
    """Bundled data, mlob, fit_ml, null_model, the common format, fit_mcmc's message."""
    import numpy as np

    import mlob_pp

    hsb = mlob_pp.datasets.load("hsb")
    check(hsb.shape[0] == 7185 and hsb["school"].nunique() == 160, "bundled HSB: 7185 x 160")
    saeb = mlob_pp.datasets.load("saeb")
    check(len(saeb) > 0, f"bundled Saeb: {len(saeb)} rows")
    pny = mlob_pp.datasets.load("passnyc")
    check(len(pny) > 0, f"bundled PASSNYC: {len(pny)} rows")

    with warnings.catch_warnings():  # the expected notes about balancing the unbalanced data
        warnings.simplefilter("ignore", mlob_pp.warnings.BalancingWarning)
        res = mlob_pp.mlob("math ~ ENI + ELA", pny, group="District", balancing_limit=0.35,
                           random_seed=1)
    b = float(res.params["beta_b"])
    check(np.isfinite(b) and np.isfinite(float(res.bse["beta_b"])), f"mlob(): beta_b = {b:.4f}")

    ml = mlob_pp.fit_ml("mAch ~ ses", hsb, group="school")
    b_ml = float(ml.params["beta_b"])
    # HSB: the contextual effect of school SES is large and positive (manifest model: about 5.9)
    check(3 < b_ml < 9 and np.isfinite(float(ml.bse["beta_b"])), f"fit_ml(): beta_b = {b_ml:.3f}")

    m0 = mlob_pp.null_model("mAch ~ 1", hsb, group="school")
    icc = float(m0.icc)
    # HSB one-way ANOVA: ICC about 0.18 (Raudenbush & Bryk 2002)
    check(0.15 < icc < 0.21, f"null_model(): ICC = {icc:.3f}")

    from mlob_pp import comparisons

    tree = comparisons.from_mlob(res)
    check("estimate" in tree.children and "posterior" not in tree.children,
          "from_mlob(): an 'estimate' group, no 'posterior'")

    hsb_small = hsb[hsb["school"].isin(hsb["school"].unique()[:20])]
    try:
        mlob_pp.fit_mcmc("mAch ~ ses", hsb_small, group="school", draws=10, tune=10, chains=1)
    except ImportError as exc:
        check("mlob_pp[mcmc]" in str(exc), f"fit_mcmc() without [mcmc]: {exc}")
    else:
        check(False, "fit_mcmc() without [mcmc] raised no ImportError")


def cli() -> None:
    """`mlob-pp fit` on the bundled PASSNYC data."""
    exe = Path(sys.executable).with_name("mlob-pp")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([str(exe), "fit"], capture_output=True, text=True, cwd=tmp,
                             timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})
    check(out.returncode == 0, f"`mlob-pp fit` exits 0 (stderr: {out.stderr[-1500:]})")
    check("beta_b" in out.stdout, "`mlob-pp fit` prints the beta_b table")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    check(out.returncode == 0 and "fit" in out.stdout, "`mlob-pp --help` lists fit")


if __name__ == "__main__":
    wheel_contents(Path(sys.argv[1]))
    installed_base_only()
    base_api()
    cli()
    print("smoke test of the base install: all checks passed")
