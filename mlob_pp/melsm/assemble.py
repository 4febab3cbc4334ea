"""From nutpie's draws to the SS-MELSM result tree: PIPs, Bayes factors, log-likelihood, plots."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.models.melsm import posterior_inclusion

__all__ = ["bf10", "plot_quantities", "assemble_tree", "pip_frames"]


def bf10(pip: np.ndarray, prior_inclusion: float) -> np.ndarray:
    """Return the Bayes factor ``[PIP/(1-PIP)] / [pi/(1-pi)]`` (inf where PIP = 1)."""
    with np.errstate(divide="ignore"):
        return (pip / (1.0 - pip)) / (prior_inclusion / (1.0 - prior_inclusion))


def plot_quantities(mdata: Any, post: Any, prob: np.ndarray) -> dict[str, Any]:
    """Cluster means and plug-in within-group SDs used by the funnel and outcome plots.

    ``cluster_mean`` = group average of the posterior mean of mu_i; ``scale_re`` = posterior
    mean of delta_pj * b_pj (the deleted scale effect, E[delta b | theta] = prob * b);
    ``within_sd`` = exp(posterior mean of the first zeta + scale_re), ivd's plug-in at
    covariates 0.
    """
    Kr = mdata.Z.shape[1]
    beta = post["beta"].values.mean(axis=(0, 1))
    u = post["u"].values
    a = u[..., :Kr].mean(axis=(0, 1))
    b = u[..., Kr:].reshape(-1, mdata.n_groups, mdata.V.shape[1])
    scale_re = (b * prob).mean(axis=0)  # (J, Sr)
    g = mdata.group_idx
    mu = mdata.X @ beta + np.einsum("nk,nk->n", mdata.Z, a[g])
    sums = np.bincount(g, weights=mu, minlength=mdata.n_groups)
    counts = np.bincount(g, minlength=mdata.n_groups)
    zeta0 = float(post["zeta"].values[..., 0].mean())
    return {
        "cluster_mean": ("group", sums / counts),
        "n_obs": ("group", counts),
        "scale_re": (("group", "scale_effect"), scale_re),
        "within_sd": (("group", "scale_effect"), np.exp(zeta0 + scale_re)),
    }


def _observation_groups(idata: Any, mdata: Any, order: np.ndarray, codes: np.ndarray,
                        obs: np.ndarray, ll: np.ndarray | None, response: str) -> None:
    import xarray as xr

    post = idata["posterior"]
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    if ll is not None:  # columns already in the user's row order
        idata["log_likelihood"] = xr.DataTree(
            xr.Dataset(
                {"y": (("chain", "draw", "obs"), ll.reshape(n_chain, n_draw, -1))},
                coords={"chain": post["chain"].values, "draw": post["draw"].values, "obs": obs},
            )
        )
    idata["observed_data"] = xr.DataTree(
        xr.Dataset({"y": ("obs", mdata.y[inv])}, coords={"obs": obs},
                   attrs={"response": response})
    )
    idata["constant_data"] = xr.DataTree(
        xr.Dataset(
            {"group_of_obs": ("obs", np.asarray(mdata.group_labels, dtype=object)[codes])},
            coords={"obs": obs},
        )
    )


def assemble_tree(idata: Any, mdata: Any, *, prior_inclusion: float, rng: Any,
                  indicator_draws: bool, log_likelihood: bool, order: np.ndarray,
                  codes: np.ndarray, obs: np.ndarray, response: str) -> np.ndarray:
    """Add inclusion probabilities, indicators, log-likelihood and the ``inclusion`` group.

    Modifies `idata` in place and returns the PIPs (J, Sr).
    """
    import xarray as xr

    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]

    def flat(v: str) -> np.ndarray:
        return post[v].values.reshape(n_chain * n_draw, *post[v].shape[2:])

    prob, delta, ll = posterior_inclusion(
        mdata, flat("beta"), flat("zeta"), flat("u"), prior_inclusion,
        rng=rng if (indicator_draws or log_likelihood) else None, order=order,
    )
    J, Sr = mdata.n_groups, mdata.V.shape[1]
    dims4 = ("chain", "draw", "group", "scale_effect")
    new_post = {"inclusion_prob": (dims4, prob.reshape(n_chain, n_draw, J, Sr))}
    if indicator_draws:
        new_post["delta"] = (dims4, delta.reshape(n_chain, n_draw, J, Sr))
    idata["posterior"] = xr.DataTree(post.assign(new_post))
    _observation_groups(idata, mdata, order, codes, obs, ll if log_likelihood else None,
                        response)
    pip = prob.mean(axis=0)  # (J, Sr)
    idata["inclusion"] = xr.DataTree(
        xr.Dataset(
            {
                "pip": (("group", "scale_effect"), pip),
                "bf10": (("group", "scale_effect"), bf10(pip, prior_inclusion)),
                **plot_quantities(mdata, post, prob),
            },
            coords={"group": list(mdata.group_labels), "scale_effect": list(mdata.v_names)},
            attrs={
                "prior_inclusion": prior_inclusion,
                "method": "Rao-Blackwellized: posterior mean of the per-draw conditional "
                "inclusion probability (indicators summed out)",
                "bf10": "[PIP/(1-PIP)] / [pi/(1-pi)]",
            },
        )
    )
    return pip


def pip_frames(pip: np.ndarray, mdata: Any, group: str, prior_inclusion: float):
    """PIP and BF10 as a Series (one scale effect) or DataFrame (several), indexed by group."""
    index = pd.Index(list(mdata.group_labels), name=group)
    bf = bf10(pip, prior_inclusion)
    if pip.shape[1] == 1:
        return (pd.Series(pip[:, 0], index=index, name="pip"),
                pd.Series(bf[:, 0], index=index, name="bf10"))
    cols = pd.Index(list(mdata.v_names), name="scale_effect")
    return pd.DataFrame(pip, index=index, columns=cols), pd.DataFrame(bf, index=index,
                                                                       columns=cols)
