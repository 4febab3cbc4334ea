import numpy as np
import pytest

from mlob_pp.comparisons.study.design import (
    PARAMETERS,
    TALK_FACTORS,
    Design,
    as_design,
    cell_key,
    implied_icc_y,
    simulate_batch,
    simulate_dataset,
    simulate_replications,
    talk_design,
)

CELL = dict(icc_x=0.3, J=10, n=5, beta_b=0.6, beta_w=0.2, gamma=0.3, rho_c=0.4, tau2=0.1,
            sigma2=0.6)


def test_talk_design_is_the_540_cells_of_the_talk():
    d = talk_design()
    assert d.n_cells == 540
    assert d.shape == (4, 5, 3, 3, 3)
    assert dict(d.factors) == {
        "icc_x": (0.05, 0.1, 0.3, 0.5),
        "J": (5, 10, 20, 30, 40),
        "n": (5, 15, 30),
        "beta_b": (0.2, 0.5, 0.6),
        "beta_w": (0.2, 0.5, 0.7),
    }
    assert dict(d.fixed) == {"gamma": 0.3, "rho_c": 0.4, "tau2": 0.1, "sigma2": 0.6}
    cells = list(d.cells())
    assert len(cells) == 540
    assert list(cells[0]) == list(PARAMETERS)
    # C order: the last factor varies fastest
    assert [c["beta_w"] for c in cells[:3]] == [0.2, 0.5, 0.7]
    assert cells[-1]["icc_x"] == 0.5 and cells[-1]["J"] == 40


def test_talk_design_overrides_and_json_round_trip():
    d = talk_design(J=(5, 10), rho_c=0.0, n=5)
    assert d.factors["J"] == (5, 10)
    assert "n" not in d.factors and d.fixed["n"] == 5 and d.fixed["rho_c"] == 0.0
    assert d.n_cells == 4 * 2 * 3 * 3
    assert Design.from_json(d.to_json()) == d
    assert as_design("talk") == talk_design()
    assert as_design({"J": (5,)}).factors["J"] == (5,)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"factors": {"J": (5,), "kappa": (1,)}}, ValueError, "unknown design parameter 'kappa'"),
        ({"factors": {"J": (5,)}}, ValueError, "design parameters missing"),
        ({"factors": {"J": (5.5,)}}, TypeError, "`J` must be an integer; got 5.5"),
        ({"factors": {"J": (1,)}}, ValueError, "`J` must be an integer >= 2; got 1"),
        ({"factors": {"icc_x": (1.0,)}}, ValueError, "`icc_x` must be strictly between 0 and 1"),
        ({"factors": {"rho_c": (1.0,)}}, ValueError, "`rho_c` must be strictly between -1 and 1"),
        ({"factors": {"tau2": (-0.1,)}}, ValueError, "`tau2` must be >= 0; got -0.1"),
        ({"factors": {"J": (5, 5)}}, ValueError, "levels of factor `J` must be distinct"),
        ({"factors": {"J": ()}}, ValueError, "factor `J` needs at least one level"),
        ({"factors": {"J": 5}}, TypeError, "levels of factor `J` must be a sequence"),
        ({"factors": {"beta_b": ("a",)}}, TypeError, "`beta_b` must be a number; got 'a'"),
    ],
)
def test_design_errors(kwargs, exc, match):
    fixed = {k: v for k, v in CELL.items() if k not in kwargs["factors"]}
    if "missing" in match:
        fixed.pop("sigma2")
    with pytest.raises(exc, match=match):
        Design(kwargs["factors"], fixed)


def test_design_and_as_design_type_errors():
    with pytest.raises(ValueError, match="given both as factor and as fixed"):
        Design({"J": (5,)}, CELL)
    with pytest.raises(ValueError, match="`design` must be 'talk', a Design or a mapping; got 'x'"):
        as_design("x")
    with pytest.raises(TypeError, match="`design` must be 'talk', a Design or a mapping; got int"):
        as_design(3)
    with pytest.raises(ValueError, match="unknown design parameter 'jj'"):
        talk_design(jj=3)


def test_implied_icc_y_by_hand():
    # between (0.2 + 0.12)^2 0.05 + 0.1, within 0.32^2 0.95 + 0.09 * 0.84 + 0.6
    between = 0.32**2 * 0.05 + 0.1
    within = 0.32**2 * 0.95 + 0.09 * 0.84 + 0.6
    p = dict(CELL, icc_x=0.05, beta_b=0.2, beta_w=0.2)
    assert implied_icc_y(p) == pytest.approx(between / (between + within), rel=1e-14)


def test_replications_identical_whatever_the_range():
    full = simulate_replications(CELL, 0, 250, random_seed=7, seed_block=100)
    for start, stop in [(0, 1), (99, 101), (120, 130), (200, 250), (13, 247)]:
        part = simulate_replications(CELL, start, stop, random_seed=7, seed_block=100)
        for a, b in zip(full, part, strict=True):
            np.testing.assert_array_equal(a[start:stop], b)
    y, x, c = full
    assert y.shape == (250, 10, 5) and x.shape == (250, 10, 5) and c.shape == (250, 10, 5, 1)
    other = simulate_replications(CELL, 0, 10, random_seed=8)[0]
    assert not np.array_equal(other, y[:10])
    other_block = simulate_replications(CELL, 0, 10, random_seed=7, seed_block=50)[0]
    assert not np.array_equal(other_block, y[:10])
    with pytest.raises(ValueError, match="`stop` must be greater than `start`; got start=5"):
        simulate_replications(CELL, 5, 5, random_seed=1)


def test_cell_key_depends_on_every_parameter_only():
    k = cell_key(CELL)
    assert len(k) == 4 and all(0 <= w < 2**32 for w in k)
    assert cell_key(dict(reversed(list(CELL.items())))) == k
    for name in PARAMETERS:
        changed = dict(CELL)
        changed[name] = CELL[name] + (1 if name in ("J", "n") else 0.01)
        assert cell_key(changed) != k


def test_dgp_moments_match_the_model():
    # many large groups: group means are close to the latent means
    p = dict(CELL, J=400, n=400, icc_x=0.3, beta_b=0.6, beta_w=0.2)
    y, x, c = simulate_batch(p, 1, np.random.default_rng(3))
    y, x, c = y[0], x[0], c[0, ..., 0]
    assert x.var() == pytest.approx(1.0, abs=0.05)
    assert c.var() == pytest.approx(1.0, abs=0.05)
    assert np.corrcoef(x.ravel(), c.ravel())[0, 1] == pytest.approx(0.4, abs=0.02)
    icc = x.mean(axis=1).var(ddof=1) - x.var(axis=1, ddof=1).mean() / 400
    assert icc / x.var() == pytest.approx(0.3, abs=0.06)
    # within: OLS of centred Y on centred X and C gives beta_w, gamma
    yw, xw, cw = (a - a.mean(axis=1, keepdims=True) for a in (y, x, c))
    Z = np.column_stack([xw.ravel(), cw.ravel()])
    bw, g = np.linalg.lstsq(Z, yw.ravel(), rcond=None)[0]
    assert bw == pytest.approx(0.2, abs=0.01)
    assert g == pytest.approx(0.3, abs=0.01)
    # between: regression of Y's group means on X's and C's gives beta_b, gamma (n large)
    Zb = np.column_stack([np.ones(400), x.mean(axis=1), c.mean(axis=1)])
    bb = np.linalg.lstsq(Zb, y.mean(axis=1), rcond=None)[0][1]
    assert bb == pytest.approx(0.6, abs=0.12)
    # total variance and ICC of Y as implied
    assert y.var() == pytest.approx(
        (0.6 + 0.12) ** 2 * 0.3 + 0.1 + (0.2 + 0.12) ** 2 * 0.7 + 0.09 * 0.84 + 0.6, rel=0.08
    )


def test_simulate_dataset_frame():
    df = simulate_dataset(J=6, n=4, random_seed=1)
    assert list(df.columns) == ["Y", "X", "C", "group"]
    assert df.shape == (24, 4)
    assert df["group"].tolist() == sorted(df["group"].tolist())
    assert df.attrs["J"] == 6 and df.attrs["gamma"] == 0.3
    again = simulate_dataset({"J": 6, "n": 4}, random_seed=np.random.default_rng(1))
    assert df.equals(again)
    with pytest.warns(DeprecationWarning, match="`random_state` is deprecated .* `random_seed`"):
        old = simulate_dataset({"J": 6, "n": 4}, random_state=1)
    assert df.equals(old)
    with pytest.raises(TypeError, match="`random_seed` cannot be mlob_pp.RRandom here"):
        from mlob_pp import RRandom

        simulate_dataset(random_seed=RRandom(1))
    with pytest.raises(ValueError, match=r"unknown design parameter\(s\) \['foo'\]"):
        simulate_dataset(foo=1)


def test_talk_factor_constant_is_the_issue_design():
    assert np.prod([len(v) for v in TALK_FACTORS.values()]) == 540


def test_simulate_batch_is_the_shared_generator_with_its_stream():
    # the study draws through mlob_pp.simulate.simulate_arrays, in its documented order
    from mlob_pp.simulate import simulate_arrays

    y, x, c = simulate_batch(CELL, 3, np.random.default_rng(5))
    y2, x2, c2, _ = simulate_arrays(
        (3,), 10, 5, np.random.default_rng(5), beta_b=0.6, beta_w=0.2, tau2_x=0.3,
        sigma2_x=0.7, tau2=0.1, sigma2=0.6, gamma=[0.3], phi_w=[0.4], phi_b=[0.4],
        s_c=[np.sqrt(1 - 0.16)])
    for a, b in ((y, y2), (x, x2), (c, c2)):
        np.testing.assert_array_equal(a, b)
    # the stream of the study's stored results (before the move to simulate_arrays: the same
    # draws to 4e-16, checked against the former comparisons/simulate.py)
    assert y[0, 0, 0] == pytest.approx(0.3937634779570345, rel=1e-12)
    assert x[2, 9, 4] == pytest.approx(-0.2517898304365027, rel=1e-12)
