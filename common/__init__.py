"""Reusable parts of the recipes: recurrent cells and layers, tokenization,
data sources, the shared training runtime and CLI options.

    from common import SimpleRNNCell, MinimalGRUCell, GRUCell, LSTMCell, GRU, LSTM

Importing `common` registers every serializable layer of the package (cells,
sequence layers, the in-model tokenizer), so `keras.saving.load_model(path)`
needs no `custom_objects` once `common` is imported.
"""

from common import tokenization  # noqa: F401  (registers the in-model tokenizer layer)
from common.cells import GRUCell, LSTMCell, MinimalGRUCell, SimpleRNNCell
from common.layers import GRU, LSTM

__all__ = ["GRU", "LSTM", "GRUCell", "LSTMCell", "MinimalGRUCell", "SimpleRNNCell"]
