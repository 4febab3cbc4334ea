"""mlob_pp/formula."""
