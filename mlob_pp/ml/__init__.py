"""mlob_pp/ml."""
