"""fit_ml with few, unbalanced groups at the boundary: equivariant, or 'no maximum' (NaN).

The unrestricted two-level likelihood (between covariance not constrained to be positive
semi-definite, as lavaan) grows without bound as the covariance V_c = S_W + n_c S_B of the group
means of a size class becomes singular along a direction in which those means do not scatter.
With a single largest group this is always possible, so the ML estimate is the interior local
maximum when one exists. When none exists the optimiser used to stop somewhere on the way to the
singularity, at a point that depended on the units of the data (beta_b 0.4711, 0.4764, 0.4599 for
the data below at scales 1, 1e-3, 1e3); fit_ml now reports that no estimate exists.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mlob_pp.ml.fit import fit_ml
from mlob_pp.ml.likelihood import Moments, loglik, suff_stats
from mlob_pp.warnings import InadmissibleWarning

# J = 3 groups of 7, 7 and 10 (found by the property tests of issue 12)
_Y = [0.824852, 0.283670, -1.222617, -0.343985, 0.581948, 0.297086, -0.540826, -1.171295,
      -0.253040, -0.395473, 0.487700, 0.371703, -1.511634, 0.023267, 0.448396, -0.458036,
      -0.904852, 0.818997, 0.184032, -0.164607, -0.820757, -1.349358, -0.636632, -0.288503]
_X = [0.508960, -0.449469, 0.640292, 0.429229, 0.360573, 0.101591, 0.606758, -1.009201,
      -0.450180, -0.761307, 0.292288, -0.252678, -0.576446, -1.053505, -0.048236, 0.210380,
      -0.066181, 1.463741, 1.183677, -2.440071, -1.638739, 0.032097, -0.209057, 0.410677]
_C = [0.399174, 1.726267, -0.744702, -0.168153, 1.982724, 0.622669, 0.839460, -0.866286,
      -1.663340, -0.153804, 0.215028, -1.205688, -0.845483, -0.486241, -0.869571, -0.004291,
      0.059462, 0.617524, 0.017808, -0.441655, 0.146555, 0.301602, -0.820030, 0.822758]
NO_MAX = pd.DataFrame({"y": _Y, "x": _X, "c": _C, "g": [0] * 7 + [1] * 7 + [2] * 10})


def test_the_likelihood_of_the_reported_data_has_no_maximum():
    """An explicit path along which the log-likelihood grows like -log(eps)/2 without bound."""
    raw = NO_MAX[["y", "x", "c"]].to_numpy()
    stats = suff_stats(raw, NO_MAX["g"].to_numpy(), 3)
    a = np.array([[1.0, 0.0, -0.3], [0.0, 1.0, 0.0]])  # any gamma, mean and S will do
    mu, s = np.zeros(2), np.eye(2)
    i10 = int(np.flatnonzero(stats.sizes == 10)[0])
    d = a @ stats.mean_sum[i10] - mu  # deviation of the single group of size 10
    u = np.array([-d[1], d[0]]) / np.linalg.norm(d)
    values = []
    for eps in (1e-4, 1e-8, 1e-12):
        v10 = np.outer(d, d) / (d @ d) + eps * np.outer(u, u)
        sb = (v10 - s) / 10.0  # then V_7 = 0.3 S + 0.7 V_10 stays positive definite
        assert np.linalg.eigvalsh(s + 7 * sb)[0] > 0.2
        values.append(loglik(stats, Moments(a, mu, s, sb)))
    # + log(1e4) / 2 per step, up to the O(eps) change of the other terms
    np.testing.assert_allclose(np.diff(values), 2 * np.log(10.0), rtol=1e-3)


@pytest.mark.parametrize("a", [1.0, 1e-3, 1e3])
def test_no_maximum_is_reported_not_a_scale_dependent_number(a):
    data = NO_MAX.assign(x=NO_MAX["x"] * a, y=NO_MAX["y"] * a)
    with pytest.warns(InadmissibleWarning, match=r"no maximum likelihood estimate exists.*"
                      r"1 group\(s\) of size 10 becomes singular"):
        res = fit_ml("y ~ x + c", data, "g")
    assert res.no_maximum and not res.converged
    assert res.params.isna().all() and res.bse.isna().all() and np.isnan(res.loglik)
    assert res.boundary == ()
    assert "no maximum" in res.summary().as_text()
    tree = res.to_datatree()
    attrs = {**tree.attrs, **tree["estimate"].attrs}
    assert bool(attrs["no_maximum"])


# J = 3 to 5 unbalanced groups (sizes 4 to 11), ICC_X = 0.05: boundary solutions that are
# genuine interior local maxima
def _few_groups(seed: int, j: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 12, size=j)
    g = np.repeat(np.arange(j), sizes)
    mu = rng.normal(0, np.sqrt(0.05), j)
    x = mu[g] + rng.normal(0, 1, g.size)
    c = 0.4 * x + rng.normal(0, 0.9, g.size)
    y = (0.5 * mu[g] + 0.2 * (x - mu[g]) + 0.3 * c + rng.normal(0, 0.3, j)[g]
         + rng.normal(0, 0.8, g.size))
    return pd.DataFrame({"y": y, "x": x, "c": c, "g": g})


@pytest.mark.parametrize(("seed", "j"), [(0, 3), (4, 4), (7, 4), (37, 4)])
@pytest.mark.parametrize(("a", "shift"), [(1e-3, 0.0), (1e3, 0.0), (1e3, 1e4)])
def test_few_unbalanced_groups_at_the_boundary_are_equivariant(seed, j, a, shift):
    df = _few_groups(seed, j)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InadmissibleWarning)
        base = fit_ml("y ~ x + c", df, "g")
        res = fit_ml("y ~ x + c", df.assign(x=a * df["x"] + shift, y=a * df["y"] + shift), "g")
    assert len(set(df.groupby("g").size())) > 1  # unbalanced
    assert base.converged and res.converged and not base.no_maximum
    assert base.boundary  # the input class: a Heywood case
    units = {"beta_b": 1.0, "beta_w": 1.0, "beta_c": 1.0, "gamma_c": a, "mu_x": a,
             "tau2_x": a * a, "sigma2_x": a * a, "icc_x": 1.0, "tau2": a * a, "sigma2": a * a}
    for lab, unit in units.items():
        expected = unit * base.params[lab] + (shift if lab == "mu_x" else 0.0)
        assert res.params[lab] == pytest.approx(expected, rel=1e-6), lab
        assert res.bse[lab] == pytest.approx(unit * base.bse[lab], rel=1e-6), lab
    alpha = a * base.params["alpha"] + shift * (1 - res.params["beta_b"])
    assert res.params["alpha"] == pytest.approx(alpha, rel=1e-6, abs=1e-9 * a)
    if shift == 0.0:  # (the intercept's SE depends on the origin of x)
        assert res.bse["alpha"] == pytest.approx(a * base.bse["alpha"], rel=1e-6)
    assert res.loglik == pytest.approx(base.loglik - res.n_obs * 2 * np.log(a), rel=1e-9)


def test_ml_batch_reports_no_maximum_instead_of_crashing():
    """Balanced J = 3 with one covariate: Newton on gamma ran into a singular V (LinAlgError)."""
    y = [0.555106, 0.276432, -0.391045, -0.746251, -0.435611, -0.346611, -0.896997, 0.113979,
         0.045044]
    x = [0.130358, -0.493992, 0.380553, 1.241442, 0.893561, -0.715456, -1.090177, -0.464290,
         0.183482]
    c = [-2.040384, -0.394509, -0.969098, -0.162464, -0.132409, -0.570852, -0.065603, 0.752546,
         -0.042288]
    import mlob_pp

    shape = (1, 3, 3)
    arrays = (np.reshape(y, shape), np.reshape(x, shape), np.reshape(c, (*shape, 1)))
    # with J = 3 <= k + 2 groups some gamma makes the three group means collinear, so the
    # likelihood is unbounded for EVERY such data set: a second one is flagged as well, even
    # where Newton finds a stationary point
    rng = np.random.default_rng(3)
    good = [rng.normal(size=shape) for _ in range(2)] + [rng.normal(size=(*shape, 1))]
    both = [np.concatenate([a, g]) for a, g in zip(arrays, good, strict=True)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = mlob_pp.ml_batch(*both)
    assert any("2 of 2 data sets have no maximum" in str(w.message) for w in caught)
    assert all(issubclass(w.category, InadmissibleWarning) for w in caught)
    assert res.no_maximum.tolist() == [True, True]
    assert np.isnan(res.beta_b).all() and np.isnan(res.loglik).all()
    # one group more and the same kind of data have an estimate
    four = [rng.normal(size=(1, 4, 3)) for _ in range(2)] + [rng.normal(size=(1, 4, 3, 1))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InadmissibleWarning)
        res4 = mlob_pp.ml_batch(*four)
    assert not res4.no_maximum[0] and np.isfinite(res4.beta_b[0])
    df = pd.DataFrame({"y": y, "x": x, "c": c, "g": np.repeat([0, 1, 2], 3)})
    with pytest.warns(InadmissibleWarning, match="no maximum likelihood estimate exists"):
        assert fit_ml("y ~ x + c", df, "g").no_maximum
