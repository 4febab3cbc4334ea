r"""National-scale Saeb-like data drawn from the SS-MELSM fitted to Saeb, with planted truth.

:func:`simulate_saeb` builds any number of schools (160 to 10,000 and beyond) that look like
the bundled Saeb data (``mlob_pp.datasets.load("saeb")``): every simulated school copies a
randomly chosen Saeb school's size, ``public`` and ``location`` and resamples that school's
``student_ses`` values (with replacement), so school sizes (1 to 493 students, mean 71), the
between/within split of SES and the school types follow Saeb's. The outcome
``math_proficiency`` is then drawn from the SS-MELSM with the posterior means of the ivd fit to
Saeb (getting-started run, 6 x 3000 draws; ``docs``: spec ss-melsm §8.1), with ivd's documented
preparation (``student_ses`` centred within school, ``school_ses`` the centred school mean):

.. math::

    y_i &\sim N(\mu_i, \sigma_i), \quad
    \mu_i = \beta_0 + \beta_1 w_i + \beta_2 s_j + \beta_3 w_i s_j + a_j, \\
    \log\sigma_i &= \zeta_0 + \zeta_1 w_i + \zeta_2 s_j + \zeta_3 w_i s_j + \delta_j b_j,

with :math:`a_j \sim N(0, 0.269^2)` (``sd_Intercept``) and :math:`\delta_j \sim
\mathrm{Bernoulli}(\text{unusual\_fraction})`. For a school with :math:`\delta_j = 1` (an
*unusual* school) the within-school SD is multiplied by ``exp(+unusual_log_sd)`` (inflated) or
``exp(-unusual_log_sd)`` (deflated); the sign is that of a draw from the fitted slab given
:math:`a_j` (correlation -0.70), so, as in Saeb, low-achieving schools are more often the
inconsistent ones. Every other school has :math:`b_j = 0` exactly (the spike): the planted
truth is known without ambiguity, which is what the recovery of the PIP > 0.75 rule needs.

Why not the fitted slab magnitudes themselves (SD 0.08 on the log-SD scale)? A school whose SD
departs by 8 % from its prediction cannot be told apart from an ordinary one with Saeb's school
sizes (the standard error of a log SD from 70 students is about 0.085), so "truth" would be
mostly undetectable by construction. The default ``unusual_log_sd = 0.3`` (SD x 1.35 or x 0.74)
is about the size of the departures of the schools ivd flags in Saeb (funnel plot: 0.64-0.86
around 0.79).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.datasets import load
from mlob_pp.seeds import as_generator, check_random_seed, seed_attr
from mlob_pp.validate import check_int, check_positive, check_probability

__all__ = ["simulate_saeb", "SAEB_FIT"]

#: posterior means of ivd's SS-MELSM fit to Saeb (spec ss-melsm §8.1, getting-started run)
SAEB_FIT: dict[str, float] = {
    "beta_Intercept": 0.129,
    "beta_student_ses": 0.082,
    "beta_school_ses": 0.675,
    "beta_student_ses:school_ses": -0.023,
    "zeta_Intercept": -0.234,
    "zeta_student_ses": 0.031,
    "zeta_school_ses": 0.120,
    "zeta_student_ses:school_ses": 0.075,
    "sd_Intercept": 0.269,
    "sd_scl_Intercept": 0.080,
    "corr[scl_Intercept, Intercept]": -0.700,
}


def _schools(n_schools: int, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """Pick template Saeb schools and resample their students' SES."""
    saeb = load("saeb").sort_values("school_id", kind="stable")
    codes, _ = pd.factorize(saeb["school_id"], sort=True)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    sizes = np.diff(np.r_[starts, len(codes)])
    ses = saeb["student_ses"].to_numpy(float)
    public = saeb["public"].to_numpy()[starts]
    location = saeb["location"].to_numpy()[starts]
    template = rng.integers(0, len(starts), n_schools)
    n = sizes[template]
    school = np.repeat(np.arange(n_schools), n)
    # student k of school j copies a random student of the template school
    pick = starts[template][school] + np.floor(rng.random(n.sum()) * n[school]).astype(np.int64)
    frame = pd.DataFrame(
        {
            "school_id": school + 1,
            "public": public[template][school],
            "student_ses": ses[pick],
            "location": location[template][school],
        }
    )
    return school, frame


def simulate_saeb(
    n_schools: int = 1600,
    *,
    unusual_fraction: float = 0.05,
    unusual_log_sd: float = 0.3,
    random_seed: Any = None,
) -> pd.DataFrame:
    """Simulate Saeb-like schools from the SS-MELSM fitted to Saeb, with planted unusual schools.

    Parameters
    ----------
    n_schools : int, default 1600
        Number of schools (about 71 students each on average, so 1,600 schools give about
        114,000 students; 10 times the bundled Saeb data).
    unusual_fraction : float, default 0.05
        Probability that a school is planted as unusual (its within-school SD inflated or
        deflated), strictly between 0 and 1.
    unusual_log_sd : float, default 0.3
        Size of the planted departure on the log-SD scale (0.3: SD x 1.35 or x 0.74); > 0.
    random_seed : None, int, numpy Generator or SeedSequence
        Seed; the same seed gives the same frame.

    Returns
    -------
    pandas.DataFrame
        Columns of the bundled Saeb data, in its order: ``school_id`` (1..n_schools), ``public``,
        ``student_ses`` (raw, as in Saeb), ``math_proficiency``, ``location``; rows sorted by
        school. ``df.attrs`` holds ``unusual_schools`` (sorted school ids with a planted
        departure), ``inflated_schools`` and ``deflated_schools`` (its two parts),
        ``parameters`` (the generating values: :data:`SAEB_FIT` plus the two arguments above),
        ``random_seed`` and ``description``. Prepare it for the model exactly like Saeb, with
        :func:`mlob_pp.prepare_saeb`.

    Raises
    ------
    TypeError, ValueError
        For an `n_schools` that is not an integer >= 2, or invalid other arguments.

    Examples
    --------
    >>> from mlob_pp.datasets import simulate_saeb
    >>> df = simulate_saeb(200, random_seed=1)
    >>> list(df.columns)
    ['school_id', 'public', 'student_ses', 'math_proficiency', 'location']
    >>> df["school_id"].nunique(), len(df.attrs["unusual_schools"]) > 0
    (200, True)
    """
    n_schools = check_int(n_schools, "n_schools", minimum=2)
    unusual_fraction = check_probability(unusual_fraction, "unusual_fraction")
    unusual_log_sd = check_positive(unusual_log_sd, "unusual_log_sd")
    check_random_seed(random_seed, r_allowed=False)
    rng = as_generator(random_seed)
    p = SAEB_FIT
    school, frame = _schools(n_schools, rng)
    counts = np.bincount(school, minlength=n_schools)
    ses = frame["student_ses"].to_numpy()
    school_mean = np.bincount(school, weights=ses, minlength=n_schools) / counts
    within = ses - school_mean[school]
    between = (school_mean - school_mean[school].mean())[school]  # student-weighted centring

    # random effects: location intercept a_j, slab draw b_j given a_j, planted indicator
    s_a, s_b, rho = p["sd_Intercept"], p["sd_scl_Intercept"], p["corr[scl_Intercept, Intercept]"]
    e = rng.standard_normal((n_schools, 2))
    a = s_a * e[:, 0]
    slab = s_b * (rho * e[:, 0] + np.sqrt(1.0 - rho * rho) * e[:, 1])
    delta = rng.random(n_schools) < unusual_fraction
    b = np.where(delta, np.sign(slab) * unusual_log_sd, 0.0)

    mu = (
        p["beta_Intercept"]
        + p["beta_student_ses"] * within
        + p["beta_school_ses"] * between
        + p["beta_student_ses:school_ses"] * within * between
        + a[school]
    )
    log_sd = (
        p["zeta_Intercept"]
        + p["zeta_student_ses"] * within
        + p["zeta_school_ses"] * between
        + p["zeta_student_ses:school_ses"] * within * between
        + b[school]
    )
    y = mu + np.exp(log_sd) * rng.standard_normal(len(school))
    frame.insert(3, "math_proficiency", y)
    ids = np.arange(1, n_schools + 1)
    frame.attrs = {
        "unusual_schools": [int(v) for v in ids[delta]],
        "inflated_schools": [int(v) for v in ids[delta & (b > 0)]],
        "deflated_schools": [int(v) for v in ids[delta & (b < 0)]],
        "parameters": {
            **SAEB_FIT,
            "unusual_fraction": unusual_fraction,
            "unusual_log_sd": unusual_log_sd,
        },
        "random_seed": seed_attr(random_seed),
        "description": (
            f"simulate_saeb: {n_schools} Saeb-like schools drawn from the SS-MELSM fitted to Saeb "
            f"(ivd, spec ss-melsm 8.1); {int(delta.sum())} planted unusual schools with "
            f"within-school SD x exp(+-{unusual_log_sd:g})"
        ),
    }
    return frame
