"""mlob_pp/melsm."""
