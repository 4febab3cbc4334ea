"""mlob_pp/mcmc."""
