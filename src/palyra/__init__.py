"""Palyra: a model-provider daemon and library.

The public surface is re-exported from the layer packages; see ``palyra.model`` for the
provider-neutral contract and ``palyra.providers`` for the adapters.
"""

__version__ = "0.1.0"
