"""Reusable parts of the recipes: recurrent cells and layers, tokenization,
data sources, the shared training runtime and CLI options.

    from common import SimpleRNNCell, MinimalGRUCell, GRUCell, LSTMCell, GRU, LSTM
"""

from common.cells import GRUCell, LSTMCell, MinimalGRUCell, SimpleRNNCell
from common.layers import GRU, LSTM

__all__ = ["GRU", "LSTM", "GRUCell", "LSTMCell", "MinimalGRUCell", "SimpleRNNCell"]
