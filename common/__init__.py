"""Reusable parts of the recipes: recurrent cells and layers, tokenization,
data sources, the shared training runtime and CLI options.

    from common import SimpleRNNCell, MinimalGRUCell, GRUCell, LSTMCell, GRU, LSTM

The cell and layer names are resolved on first use, so `import common.errors`
or `common.cli` does not pay for importing TensorFlow.
"""

import importlib

_EXPORTS = {
    "SimpleRNNCell": "common.cells",
    "MinimalGRUCell": "common.cells",
    "GRUCell": "common.cells",
    "LSTMCell": "common.cells",
    "GRU": "common.layers",
    "LSTM": "common.layers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'common' has no attribute {name!r}")
