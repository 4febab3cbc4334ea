"""Sphinx configuration of the mlob_pp documentation.

Build (warnings are errors in CI; notebooks are rendered from their saved outputs, never run):

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import importlib.metadata

project = "mlob_pp"
author = "mlob_pp developers"
copyright = "2026, mlob_pp developers (GPL-3.0-or-later)"
release = importlib.metadata.version("mlob_pp")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",  # Markdown pages (MyST) and notebooks
]

# notebooks/ is a symbolic link to the repository's notebooks (committed with their outputs)
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

exclude_patterns = ["_build", "**.ipynb_checkpoints", "api/generated/*.rst.tmp"]
templates_path = ["_templates"]

# API reference: autosummary writes one page per public name into api/generated/ (not in git)
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc renders the types written in the docstrings
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

# the docs are built offline (no intersphinx inventories); references to third-party objects
# that cannot be resolved are not errors
nitpicky = False
suppress_warnings = [
    # links from Markdown pages to files outside docs/ (tests/, benchmarks/ ...) are plain text
    "myst.xref_missing",
    # notebook outputs that HTML cannot show (progress-bar widgets) are skipped
    "mystnb.unknown_mime_type",
]

html_theme = "pydata_sphinx_theme"
html_title = f"mlob_pp {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []
