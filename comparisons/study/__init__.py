"""comparisons/study."""
