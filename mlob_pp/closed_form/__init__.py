"""mlob_pp/closed_form."""
