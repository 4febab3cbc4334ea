"""PyMC models of mlob_pp (installed as ``mlob_pp.models``).

PyMC is imported inside the functions that build or sample a model, so importing this
package stays cheap.
"""
