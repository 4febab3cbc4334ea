"""Tests of the batched ML fit (mlob_pp.ml_batch): equal to fit_ml, boundary, scale, profile."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

import mlob_pp
from mlob_pp.ml.balanced import balanced_stats, loglik, transform
from mlob_pp.ml.fit import fit_ml
from mlob_pp.simulate import simulate_arrays
from mlob_pp.warnings import InadmissibleWarning

LABELS = ["beta_b", "beta_w", "beta_c", "alpha", "mu_x", "tau2_x", "sigma2_x", "icc_x", "tau2",
          "sigma2"]
Q95 = 1.959963984540054


def _batch(seed, b, j, n, k, tau2_x=0.1, tau2=0.1):
    rng = np.random.default_rng(seed)
    out = simulate_arrays((b,), j, n, rng, beta_b=0.5, beta_w=0.2, tau2_x=tau2_x, tau2=tau2,
                          gamma=[0.3, -0.2][:k])
    return out[0], out[1], (out[2] if k else None)


def _frame(y, x, c, i):
    j, n = y.shape[1:]
    df = pd.DataFrame({"y": y[i].ravel(), "x": x[i].ravel(), "g": np.repeat(np.arange(j), n)})
    for m in range(0 if c is None else c.shape[-1]):
        df[f"c{m + 1}"] = c[i, ..., m].ravel()
    return df


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InadmissibleWarning)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("k", [0, 2])
def test_batch_equals_fit_ml_including_boundary(k):
    y, x, c = _batch(3 + k, 12, 6, 5, k)
    res = _quiet(mlob_pp.ml_batch, y, x, c)
    assert res.boundary.sum() >= 3 and (~res.boundary).sum() >= 1  # both kinds are tested
    assert res.converged.all()
    formula = "y ~ x" + "".join(f" + c{m + 1}" for m in range(k))
    labels = LABELS + [f"gamma_c{m + 1}" for m in range(k)]
    for i in range(y.shape[0]):
        fit = _quiet(fit_ml, formula, _frame(y, x, c, i), "g")
        assert fit.converged
        assert bool(fit.boundary) == bool(res.boundary[i])
        for lab in labels:
            assert res.estimates[lab][i] == pytest.approx(fit.params[lab], rel=1e-6, abs=1e-12)
            assert res.std_errors[lab][i] == pytest.approx(fit.bse[lab], rel=1e-6)
        assert res.loglik[i] == pytest.approx(fit.loglik, rel=1e-10)


def test_result_arrays_and_wald_interval():
    y, x, c = _batch(1, 7, 20, 10, 1, tau2_x=1.0)
    res = mlob_pp.ml_batch(y, x, c, conf_level=0.9)
    for name in ("beta_b", "se_beta_b", "ci_lower", "ci_upper", "beta_w", "se_beta_w", "tau2",
                 "sigma2", "profile_lower", "profile_upper", "converged", "boundary"):
        assert getattr(res, name).shape == (7,)
    assert res.gamma.shape == (7, 1) and res.se_gamma.shape == (7, 1)
    q = 1.6448536269514722
    np.testing.assert_allclose(res.ci_upper - res.beta_b, q * res.se_beta_b, rtol=1e-12)
    np.testing.assert_allclose(res.beta_c, res.beta_b - res.beta_w, rtol=1e-12, atol=1e-14)
    frame = res.to_frame()
    assert len(frame) == 7 and {"beta_b", "se_beta_b", "profile_upper"} <= set(frame.columns)
    assert repr(res).startswith("<MLBatchResult ml: 7 data sets, J = 20, n = 10")


def test_equivariance_under_scale_and_shift():
    y, x, c = _batch(8, 6, 8, 5, 1, tau2_x=0.3)
    base = _quiet(mlob_pp.ml_batch, y, x, c)
    for ay, ax, ac, shift in [(1e12, 1.0, 1.0, 0.0), (1e-3, 1e-3, 1e3, 0.0),
                              (1.0, 1.0, 1.0, 1e6)]:
        res = _quiet(mlob_pp.ml_batch, ay * y + shift, ax * x + shift, ac * c + shift)
        for lab, unit in [("beta_b", ay / ax), ("beta_w", ay / ax), ("tau2", ay**2),
                          ("sigma2", ay**2), ("tau2_x", ax**2), ("gamma_c1", ay / ac)]:
            np.testing.assert_allclose(res.estimates[lab], unit * base.estimates[lab],
                                       rtol=1e-6)
            np.testing.assert_allclose(res.std_errors[lab], unit * base.std_errors[lab],
                                       rtol=1e-6)
        np.testing.assert_allclose(res.profile_upper, ay / ax * base.profile_upper, rtol=1e-6)
        np.testing.assert_array_equal(res.boundary, base.boundary)


def _constrained_max(y, x, c, i, b):
    """Brute-force profile log-likelihood at beta_b = b (Nelder-Mead + BFGS, raw units)."""
    raw = np.stack([y[i : i + 1], x[i : i + 1], *np.moveaxis(c[i : i + 1], 3, 0)])
    st = balanced_stats(raw)
    k = c.shape[-1]

    def neg(p):
        coef = np.array([[b, *p[:k]]])
        cc, s00, s11, v00, v11 = p[k:]
        _, wz, dz = transform(st, coef)
        val = loglik(st, wz, dz, np.array([[[s00, cc], [cc, s11]]]),
                     np.array([[[v00, cc], [cc, v11]]]))[0]
        return -val if np.isfinite(val) else 1e300

    sy, sx = y[i].var(), x[i].var()
    n = y.shape[2]
    x0 = np.r_[np.zeros(k), 0.0, sy + b * b * sx, sx, n * (sy + b * b * sx), n * sx]
    fit = minimize(neg, x0, method="Nelder-Mead",
                   options={"maxiter": 20000, "xatol": 1e-10, "fatol": 1e-12})
    return -minimize(neg, fit.x, method="BFGS").fun


def test_profile_interval_ends_have_the_cutoff_deviance():
    y, x, c = _batch(11, 40, 20, 5, 1, tau2_x=0.5)
    res = _quiet(mlob_pp.ml_batch, y, x, c)
    finite = np.flatnonzero(np.isfinite(res.profile_lower) & np.isfinite(res.profile_upper))
    assert finite.size >= 30
    assert np.all(res.profile_lower[finite] < res.beta_b[finite])
    assert np.all(res.profile_upper[finite] > res.beta_b[finite])
    for i in finite[:2]:
        for end in (res.profile_lower[i], res.profile_upper[i]):
            dev = 2 * (res.loglik[i] - _constrained_max(y, x, c, i, end))
            assert dev == pytest.approx(Q95**2, rel=1e-5)


def test_profile_interval_unbounded_without_between_variance_of_x():
    # X without a between-group part: the ratio's interval must be unbounded (Gleser-Hwang)
    y, x, c = _batch(5, 30, 5, 5, 0, tau2_x=0.0)
    res = _quiet(mlob_pp.ml_batch, y, x, c)
    unbounded = np.isinf(res.profile_lower) & np.isinf(res.profile_upper)
    assert unbounded.mean() > 0.8
    assert not np.isnan(res.profile_lower).any() and not np.isnan(res.profile_upper).any()


def test_boundary_warns_once_and_is_flagged():
    y, x, _ = _batch(3, 20, 5, 5, 0, tau2_x=0.05)
    with pytest.warns(InadmissibleWarning, match=r"data sets have a between variance"):
        res = mlob_pp.ml_batch(y, x)
    assert res.boundary.any()
    flagged = (res.tau2_x <= 0) | (res.tau2 <= 0)
    np.testing.assert_array_equal(res.boundary, flagged)
    np.testing.assert_array_equal(res.boundary_x, res.tau2_x <= 0)
    assert np.isfinite(res.se_beta_b).all()


def test_bad_input_errors():
    y, x, c = _batch(2, 4, 6, 5, 1)
    with pytest.raises(ValueError, match=r"`x` must have the shape of `y` \(4, 6, 5\)"):
        mlob_pp.ml_batch(y, x[:, :, :4])
    with pytest.raises(ValueError, match=r"`y` must have 3 dimensions"):
        mlob_pp.ml_batch(y[0], x[0])
    bad = y.copy()
    bad[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`y` must be finite; data set\(s\) \[2\]"):
        mlob_pp.ml_batch(bad, x)
    with pytest.raises(ValueError, match=r"at least 3 groups"):
        mlob_pp.ml_batch(y[:, :2], x[:, :2])
    flat = x.copy()
    flat[1] = flat[1].mean(axis=1, keepdims=True)
    with pytest.raises(ValueError, match=r"column 'x' does not vary within groups in data "
                                         r"set\(s\) \[1\]"):
        mlob_pp.ml_batch(y, flat)
    coll = np.concatenate([c, 2 * c + 1], axis=3)
    with pytest.raises(ValueError, match=r"collinear in data set\(s\) \[0, 1, 2, 3\]"):
        mlob_pp.ml_batch(y, x, coll)
    with pytest.raises(TypeError, match=r"`covariates` must be a numeric array"):
        mlob_pp.ml_batch(y, x, {"a": 1})
    with pytest.raises(ValueError, match=r"`conf_level` must be strictly between 0 and 1"):
        mlob_pp.ml_batch(y, x, conf_level=95)


def test_analytic_derivatives_match_finite_differences():
    from mlob_pp.ml.balanced import derivatives

    rng = np.random.default_rng(0)
    st = balanced_stats(rng.normal(size=(4, 2, 7, 5)))
    coef = np.array([[0.3, 0.2, -0.1], [0.1, 0.4, 0.2]])
    s = np.array([[[1.2, 0.3], [0.3, 0.9]]] * 2)
    v = np.array([[[2.2, 0.5], [0.5, 1.9]]] * 2)
    cols = np.array([0, 1, 2])

    def unpack(p):
        def sym(e):
            return np.stack([np.stack([e[:, 0], e[:, 1]], -1), np.stack([e[:, 1], e[:, 2]], -1)],
                            -2)
        return p[:, :3], sym(p[:, 3:6]), sym(p[:, 6:9])

    def value(p):
        c, ss, vv = unpack(p)
        _, wz, dz = transform(st, c)
        return loglik(st, wz, dz, ss, vv)

    p0 = np.concatenate([coef, s[:, [0, 0, 1], [0, 1, 1]], v[:, [0, 0, 1], [0, 1, 1]]], axis=1)
    grad, hess = derivatives(st, coef, cols, s, v)
    eye, h = np.eye(9), 1e-6
    num_g = np.stack([(value(p0 + h * eye[i]) - value(p0 - h * eye[i])) / (2 * h)
                      for i in range(9)], axis=1)
    num_h = np.stack([(derivatives(st, *unpack(p0 + h * eye[i])[:1], cols,
                                   *unpack(p0 + h * eye[i])[1:])[0]
                       - derivatives(st, *unpack(p0 - h * eye[i])[:1], cols,
                                     *unpack(p0 - h * eye[i])[1:])[0]) / (2 * h)
                      for i in range(9)], axis=2)
    np.testing.assert_allclose(grad, num_g, atol=1e-7 * np.abs(grad).max())
    np.testing.assert_allclose(hess, num_h, atol=1e-7 * np.abs(hess).max())
