"""ArviZ ``DataTree`` of a :func:`mlob_pp.fit_mcmc` fit (real MCMC draws)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlob_pp.models import latent_covariate as lc

__all__ = ["group_coord", "posterior_tree"]


def group_coord(labels: np.ndarray) -> np.ndarray:
    """Group labels as a netCDF-safe coordinate (object arrays become strings)."""
    labels = np.asarray(labels)
    return labels.astype(str) if labels.dtype == object else labels


def posterior_tree(
    raw: Any, stats: Any, mf: Any, seed: int, form: str, with_loglik: bool,
    w_j: np.ndarray | None = None,
) -> Any:
    """Build the ArviZ tree of a fit: posterior on the data's scale, sample stats, data.

    ``posterior`` holds the structural parameters (dims ``chain, draw`` and ``term`` /
    ``l2_term``) and the group effects drawn from their exact conditional posterior
    (``mu_xj``, ``delta``; dim ``group``); ``sample_stats`` nutpie's; ``observed_data`` the
    model frame; ``log_likelihood`` (when `with_loglik`) the pointwise conditional
    log-likelihood of the outcome.
    """
    import nutpie
    import xarray as xr
    from arviz_base import make_attrs

    post_z = {k: np.asarray(v) for k, v in raw["posterior"].to_dataset().data_vars.items()}
    n_chain, n_draw = next(iter(post_z.values())).shape[:2]
    params = lc.to_original_scale(post_z, stats)
    rng = np.random.default_rng([seed, 20080901])
    effects = lc.draw_group_effects(post_z, stats, rng)

    def shaped(arr: np.ndarray) -> np.ndarray:
        return arr.reshape(n_chain, n_draw, *arr.shape[1:])

    terms = list(mf.covariate_names)
    groups = group_coord(mf.group_labels)
    coords = {
        "chain": np.arange(n_chain),
        "draw": np.arange(n_draw),
        "group": groups,
        "term": terms,
        "obs": np.arange(mf.n_obs),
        "l2_term": list(stats.l2_names),
    }
    sd = ("chain", "draw")
    post: dict[str, Any] = {}
    for name in ("beta_b", "beta_w", "beta_c"):
        post[name] = (sd, shaped(params[name]))
    for vec in ("gamma", "gamma_w", "gamma_b"):
        if vec in params and terms:
            post[vec] = ((*sd, "term"), shaped(params[vec]))
    if "gamma_l2" in params:
        post["gamma_l2"] = ((*sd, "l2_term"), shaped(params["gamma_l2"]))
    for name in ("alpha", "mu_x", "tau2_x", "sigma2_x", "icc_x", "tau2", "sigma2"):
        post[name] = (sd, shaped(params[name]))
    if form == "level_specific" and terms:
        for name in ("mu_c", "tau2_c", "sigma2_c"):
            post[name] = ((*sd, "term"), shaped(params[name]))
    post["mu_xj"] = ((*sd, "group"), shaped(effects["mu_xj"]))
    post["delta"] = ((*sd, "group"), shaped(effects["delta"]))
    if "mu_cj" in effects and terms:
        post["mu_cj"] = ((*sd, "group", "term"), shaped(effects["mu_cj"]))

    attrs = make_attrs(inference_library=nutpie)
    post_dims = ("chain", "draw", "group", "term", *(("l2_term",) if stats.n_l2 else ()))
    posterior = xr.Dataset(post, coords={k: coords[k] for k in post_dims}, attrs=attrs)
    sample_stats = raw["sample_stats"].to_dataset()
    observed = xr.Dataset(
        {
            "y": (("obs",), mf.y),
            "x": (("obs",), mf.x),
            "covariates": (("obs", "term"), mf.covariates),
        },
        coords={"obs": coords["obs"], "term": terms, "group": (("obs",), groups[mf.group_codes])},
        attrs={**attrs, "response": mf.response, "target": mf.target},
    )
    groups_out = {
        "posterior": posterior,
        "sample_stats": sample_stats,
        "observed_data": observed,
    }
    if not with_loglik:
        return xr.DataTree.from_dict(groups_out)
    loglik = lc.pointwise_log_likelihood(
        mf.y, mf.x, mf.covariates, mf.group_codes, params, effects, form, w_j
    )
    groups_out["log_likelihood"] = xr.Dataset(
        {"y": ((*sd, "obs"), shaped(loglik))},
        coords={k: coords[k] for k in ("chain", "draw", "obs")},
        attrs={
            **attrs,
            "conditioning": "pointwise log N(y_ij | ...) given the parameters and the drawn "
            "group effects (mu_xj, delta)",
        },
    )
    return xr.DataTree.from_dict(groups_out)
