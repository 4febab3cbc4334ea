"""Common-format conversion, comparison tables, plots and simulation studies.

Installed as ``mlob_pp.comparisons``.
"""
