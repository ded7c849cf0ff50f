"""The network: multiscale convolutions, then stacked bidirectional recurrent layers, a
state per residue (many-to-many, T_x = T_y).

    sequence: string[batch]                  one chain per string, any case
      -> OneHotAlphabet (common)             float[batch, length, 20] + mask (X, B, Z, U, O
                                             as shares of the 20)
      -> MultiScaleConv                      Conv1D(filters, k, relu) for each k of
                                             conv_kernels, concatenated with the one-hot;
                                             padded steps kept at 0
      -> Dropout
      -> [Bidirectional(recurrent), Dropout] x layers   every residue, masked
      -> Dense(states, softmax)              float32[batch, length, states]

The local window (a helix turn is 3.6 residues, a strand pairs with another far along the
chain) is the convolutions' part; the recurrent layers carry context from both ends of
the chain (Li & Yu 2016's multiscale CNN + BiGRU, DCRNN, without its profile input).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from common.layers import recurrent_layer
from common.tokenization import OneHotAlphabet
from recipes.protein import data as protein_data
from recipes.protein.config import Config


@keras.saving.register_keras_serializable(package="recipes.protein.model")
class MultiScaleConv(keras.layers.Layer):
    """(x float[batch, time, depth], mask bool[batch, time]) -> float[batch, time,
    depth + filters x len(kernels)]: x and a Conv1D(filters, k, same, relu) of it for each
    width k, every output 0 at the padded steps."""

    def __init__(self, filters: int = 64, kernels=(3, 7, 11), **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernels = int(filters), tuple(int(k) for k in kernels)
        self.convs = [
            keras.layers.Conv1D(filters, k, padding="same", activation="relu", name=f"conv_{k}")
            for k in self.kernels
        ]

    def build(self, input_shape):
        for conv in self.convs:
            conv.build(tuple(input_shape[0]))

    def call(self, inputs):
        x, mask = inputs
        keep = tf.cast(mask, x.dtype)[..., None]
        return tf.concat([x] + [conv(x) * keep for conv in self.convs], axis=-1)

    def compute_output_shape(self, input_shape):
        batch, time, depth = input_shape[0]
        return (batch, time, depth + self.filters * len(self.kernels))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernels": list(self.kernels)}


def build_model(cfg: Config) -> keras.Model:
    sequence = keras.Input(shape=(), dtype="string", name="sequence")
    x, mask = OneHotAlphabet(protein_data.one_hot_table(), name="one_hot")(sequence)
    x = MultiScaleConv(cfg.conv_filters, cfg.conv_kernels, name="multiscale_conv")((x, mask))
    x = keras.layers.Dropout(cfg.dropout, name="conv_dropout")(x)
    for i in range(cfg.layers):
        layer = recurrent_layer(cfg.cell, cfg.units, return_sequences=True, name=f"rnn_{i}")
        x = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")(x, mask=mask)
        x = keras.layers.Dropout(cfg.dropout, name=f"dropout_{i}")(x)
    probs = keras.layers.Dense(cfg.states, activation="softmax", dtype="float32", name="states")(x)
    return keras.Model(sequence, probs, name="protein_ss")
