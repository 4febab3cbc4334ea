"""SS-MELSM model layer: lme4-style formulas, the marginalized likelihood and the
Rao-Blackwellized inclusion probabilities against brute-force enumeration (no sampling)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from mlob_pp.formula.melsm import design_matrices, required_columns, split_mixed_formula


def _quiet_pymc():
    with warnings.catch_warnings():  # third-party import-time notices
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        import nutpie  # noqa: F401
        import pymc  # noqa: F401


# ------------------------------------------------------------------------------- formulas
@pytest.mark.parametrize(
    ("formula", "one_sided", "expected"),
    [
        ("y ~ x1 * x2 + (1 + x1 | school)", False, ("y", "x1 * x2", "1 + x1", "school")),
        ("y ~ (1 | g)", False, ("y", "1", "1", "g")),
        ("y ~ (x | g) + x", False, ("y", "x", "x", "g")),
        ("y ~ x", False, ("y", "x", None, None)),
        ("~ x + (0 + x | g)", True, (None, "x", "0 + x", "g")),
        ("sigma ~ log(z) + (1 | g)", True, (None, "log(z)", "1", "g")),
        ("y~x+(1|`my group`)", False, ("y", "x", "1", "my group")),
    ],
)
def test_split_mixed_formula(formula, one_sided, expected):
    f = split_mixed_formula(formula, "location", one_sided=one_sided)
    assert (f.response, f.fixed, f.random, f.group) == expected


@pytest.mark.parametrize(
    ("formula", "one_sided", "match"),
    [
        ("y x + (1 | g)", False, r"`location` must be a formula with one '~'"),
        ("~ x + (1 | g)", False, r"must name the outcome on the left of '~'"),
        ("log(y) ~ x + (1 | g)", False, r"the outcome must be a column name"),
        ("y ~ x + (1 | g) + (0 + x | g)", False, r"only one random term"),
        ("y ~ x + (1 + x || g)", False, r"'\|\|' are not supported"),
        ("y ~ x + (1 | g | h)", False, r"one grouping column"),
        ("y ~ x + ( | g)", False, r"one grouping column"),
        ("y ~ x + + (1 | g)", False, r"has an empty term"),
    ],
)
def test_split_mixed_formula_errors(formula, one_sided, match):
    with pytest.raises(ValueError, match=match):
        split_mixed_formula(formula, "location", one_sided=one_sided)


def test_split_mixed_formula_type_error():
    with pytest.raises(TypeError, match=r"`scale` must be a formula string; got int"):
        split_mixed_formula(3, "scale")


def test_design_matrices_lme4_semantics():
    df = pd.DataFrame(
        {"y": [1.0, 2, 3, 4], "a": [0.1, 0.5, 0.2, 0.9], "b": [1.0, 0, 1, 0], "g": [1, 1, 2, 2]}
    )
    f = split_mixed_formula("y ~ a * b + (a | g)", "location")
    X, xn, Z, zn = design_matrices(f, df, "location")
    assert xn == ["Intercept", "a", "b", "a:b"]
    np.testing.assert_allclose(X[:, 3], df["a"] * df["b"])
    assert zn == ["Intercept", "a"]
    f0 = split_mixed_formula("~ 0 + a + (0 + a | g)", "scale", one_sided=True)
    _, xn0, Z0, zn0 = design_matrices(f0, df, "scale")
    assert xn0 == ["a"] and zn0 == ["a"]
    assert required_columns(f, "location") == ["a", "b", "g", "y"]


def test_absorbed_columns_hierarchical_centring():
    from mlob_pp.models.melsm import absorbed_columns

    g = np.repeat([0, 1, 2], 3)
    x = np.arange(9.0)
    w = np.array([0.5, -1.0, 2.0])[g]  # group-level
    X = np.c_[np.ones(9), x, w, x * w, x * x]
    Z = np.c_[np.ones(9), x]
    H, absorbed = absorbed_columns(X, Z, g, 3)
    assert absorbed.tolist() == [True, True, True, True, False]
    np.testing.assert_allclose(H[:, 0, 2], [0.5, -1.0, 2.0])  # w -> random intercept
    np.testing.assert_allclose(H[:, 1, 3], [0.5, -1.0, 2.0])  # x:w -> random slope of x
    np.testing.assert_allclose(H[:, 1, 1], 1.0)


# --------------------------------------------------------------- the marginal likelihood
def _brute_force(d, beta, zeta, u, pi):
    """log p(y | theta) with the indicators summed out by enumeration, with scipy."""
    Kr, Sr = d.Z.shape[1], d.V.shape[1]
    total = 0.0
    for j in range(d.n_groups):
        rows = d.group_idx == j
        a, b = u[j, :Kr], u[j, Kr:]
        mu = d.X[rows] @ beta + d.Z[rows] @ a
        terms = []
        for m in itertools.product((0, 1), repeat=Sr):
            m = np.array(m)
            sd = np.exp(d.W[rows] @ zeta + d.V[rows] @ (m * b))
            prior = np.sum(m * np.log(pi) + (1 - m) * np.log1p(-pi))
            terms.append(prior + norm.logpdf(d.y[rows], mu, sd).sum())
        total += logsumexp(terms)
    return total


@pytest.fixture(scope="module")
def tiny_data():
    from mlob_pp.models.melsm import MELSMData

    rng = np.random.default_rng(0)
    N, J = 40, 6
    g = np.sort(np.r_[np.arange(J), rng.integers(0, J, N - J)])
    x = rng.normal(size=N)
    X = np.c_[np.ones(N), x]
    names = ["Intercept", "x"]
    return MELSMData(
        rng.normal(size=N),
        X,
        X.copy(),
        X.copy(),
        X.copy(),
        g,
        list("abcdef"),
        names,
        names,
        names,
        names,
        np.arange(N),
    )


@pytest.mark.filterwarnings("ignore:.*could not link to a BLAS:UserWarning")  # C backend notice
@pytest.mark.parametrize("parametrization", ["auto", "centered", "noncentered"])
def test_marginal_likelihood_matches_enumeration(tiny_data, parametrization):
    _quiet_pymc()
    from mlob_pp.models.melsm import build_melsm

    pi = 0.3
    model = build_melsm(tiny_data, prior_inclusion=pi, location_parametrization=parametrization)
    fn = model.compile_fn(
        [model.potentials[0], model["u"], model["beta"], model["zeta"]],
        inputs=model.value_vars,
        on_unused_input="ignore",
        point_fn=True,
        mode="FAST_COMPILE",
    )
    rng = np.random.default_rng(1)
    point = {
        k: v + rng.normal(scale=0.3, size=np.shape(v)) for k, v in model.initial_point().items()
    }
    value, u, beta, zeta = fn(point)
    expected = _brute_force(tiny_data, beta, zeta, u, pi)
    assert value == pytest.approx(expected, rel=1e-10)


def test_posterior_inclusion_matches_enumeration(tiny_data):
    from mlob_pp.models.melsm import posterior_inclusion

    rng = np.random.default_rng(2)
    D, J = 3, tiny_data.n_groups
    beta, zeta = rng.normal(size=(D, 2)), rng.normal(scale=0.2, size=(D, 2))
    u = rng.normal(scale=0.4, size=(D, J, 4))
    prob, delta, ll = posterior_inclusion(tiny_data, beta, zeta, u, 0.4, rng=rng, chunk=2)
    assert prob.shape == delta.shape == (D, J, 2) and ll.shape == (D, 40)
    d = tiny_data
    for s in range(D):
        for j in range(J):
            rows = d.group_idx == j
            mu = d.X[rows] @ beta[s] + d.Z[rows] @ u[s, j, :2]
            logp = {}
            for m in itertools.product((0, 1), repeat=2):
                sd = np.exp(d.W[rows] @ zeta[s] + d.V[rows] @ (np.array(m) * u[s, j, 2:]))
                logp[m] = (
                    sum(np.log(0.4) if k else np.log(0.6) for k in m)
                    + norm.logpdf(d.y[rows], mu, sd).sum()
                )
            z = logsumexp(list(logp.values()))
            p1 = sum(np.exp(v - z) for m, v in logp.items() if m[0] == 1)
            p2 = sum(np.exp(v - z) for m, v in logp.items() if m[1] == 1)
            np.testing.assert_allclose(prob[s, j], [p1, p2], rtol=1e-10)
            # the stored log-likelihood is that of the drawn indicator pattern
            m = tuple(delta[s, j])
            sd = np.exp(d.W[rows] @ zeta[s] + d.V[rows] @ (np.array(m) * u[s, j, 2:]))
            np.testing.assert_allclose(ll[s, rows], norm.logpdf(d.y[rows], mu, sd))




@pytest.fixture(scope="module")
def intercept_scale_data():
    """Scale random intercept only (the sufficient-statistics path), a singleton group."""
    from mlob_pp.models.melsm import MELSMData

    rng = np.random.default_rng(3)
    N, J = 50, 7
    g = np.sort(np.r_[np.arange(J), rng.integers(0, J - 1, N - J)])  # group 6 has one row
    x, w = rng.normal(size=N), rng.normal(size=(7,))[g]
    X = np.c_[np.ones(N), x, w, x * w]
    one = np.ones((N, 1))
    names = ["Intercept", "x", "w", "x:w"]
    return MELSMData(rng.normal(size=N) * 2 + 1, X, one, X.copy(), one, g, list(range(J)),
                     names, ["Intercept"], names, ["Intercept"], np.arange(N))


@pytest.mark.filterwarnings("ignore:.*could not link to a BLAS:UserWarning")
@pytest.mark.parametrize("parametrization", ["auto"])
def test_sufficient_statistics_path_matches_enumeration(intercept_scale_data, parametrization):
    _quiet_pymc()
    from mlob_pp.models.melsm import build_melsm, random_scale_intercept_only

    d = intercept_scale_data
    assert random_scale_intercept_only(d.V) and np.bincount(d.group_idx)[-1] == 1
    rng = np.random.default_rng(4)
    point, logps, grads = None, [], []
    for fast in (True, False):
        model = build_melsm(d, prior_inclusion=0.35, location_parametrization=parametrization,
                            sufficient_statistics=fast)
        # the potential, evaluated at draws of the model's variables, against enumeration
        fn = model.compile_fn(
            [model.potentials[0], model["u"], model["beta"], model["zeta"]],
            inputs=model.value_vars, on_unused_input="ignore", point_fn=True,
            mode="FAST_COMPILE",
        )
        value, u, beta, zeta = fn(model.initial_point())
        assert value == pytest.approx(_brute_force(d, beta, zeta, u, 0.35), rel=1e-10)
        # the joint log density and its gradient at one point: the same in both graphs
        if point is None:
            point = {k: v + rng.normal(scale=0.3, size=np.shape(v))
                     for k, v in model.initial_point().items()}
        logps.append(model.compile_logp(mode="FAST_COMPILE")(point))
        grads.append(model.compile_dlogp(mode="FAST_COMPILE")(point))
    assert logps[0] == pytest.approx(logps[1], rel=1e-11)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-9, atol=1e-9)


def test_posterior_inclusion_writes_loglik_in_user_order(tiny_data):
    from mlob_pp.models.melsm import posterior_inclusion

    rng = np.random.default_rng(5)
    D, J = 4, tiny_data.n_groups
    beta, zeta = rng.normal(size=(D, 2)), rng.normal(scale=0.2, size=(D, 2))
    u = rng.normal(scale=0.4, size=(D, J, 4))
    order = rng.permutation(len(tiny_data.y))
    p1, _, ll_sorted = posterior_inclusion(tiny_data, beta, zeta, u, 0.4,
                                           rng=np.random.default_rng(1), chunk=3)
    p2, _, ll_user = posterior_inclusion(tiny_data, beta, zeta, u, 0.4,
                                         rng=np.random.default_rng(1), chunk=3, order=order)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(ll_user[:, order], ll_sorted)
