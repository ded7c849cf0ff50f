"""Reusable parts of the recipes: recurrent cells and layers, tokenization,
data sources, the shared training runtime and CLI options.

    from common import SimpleRNNCell, MinimalGRUCell, GRUCell, LSTMCell, GRU, LSTM, CRF

Importing the bare package is light: it imports neither Keras nor TensorFlow,
so the recipes' command lines (`common.cli`) start instantly. The public names
above are loaded on first use (PEP 562), and the first of them imports
`common.cells`, `common.layers`, `common.crf` and, on the TensorFlow backend,
`common.tokenization` together, which registers every serializable layer of the
package (cells, sequence layers, the CRF, the in-model tokenizers) under
`package="common"`. So `keras.saving.load_model(path)` needs no `custom_objects`
after any `from common import ...` of those names, after `register_layers()`, or
when loading through `common.runtime.load_model`, which does this itself.
`import common.layers` alone registers the cells and sequence layers; the
tokenizer layers are registered by `import common.tokenization`.

The cells, sequence layers and CRF need Keras only: they run on the JAX and
PyTorch backends without TensorFlow installed. The text layers of
`common.tokenization` run TensorFlow string ops and stay TensorFlow-only.
"""

from __future__ import annotations

import importlib

# The modules that register layers under package "common" for `.keras` saving.
LAYER_MODULES = ("common.cells", "common.layers", "common.crf", "common.tokenization")
# Of those, the ones that need TensorFlow (imported on the TensorFlow backend only).
TENSORFLOW_MODULES = ("common.tokenization",)

_EXPORTS = {
    "CRF": "common.crf",
    "GRU": "common.layers",
    "LSTM": "common.layers",
    "GRUCell": "common.cells",
    "LSTMCell": "common.cells",
    "MinimalGRUCell": "common.cells",
    "SimpleRNNCell": "common.cells",
}

__all__ = ["CRF", "GRU", "LSTM", "GRUCell", "LSTMCell", "MinimalGRUCell", "SimpleRNNCell"]


def register_layers() -> None:
    """Import every module of `LAYER_MODULES` (Keras with them), so that every layer
    registered under package "common" is known to `keras.saving`. On another backend than
    TensorFlow the TensorFlow-only ones (`TENSORFLOW_MODULES`) are left out, so this works
    where TensorFlow is not installed."""
    import keras

    on_tensorflow = keras.backend.backend() == "tensorflow"
    for name in LAYER_MODULES:
        if on_tensorflow or name not in TENSORFLOW_MODULES:
            importlib.import_module(name)


def __getattr__(name: str):
    if name in _EXPORTS:
        register_layers()
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
