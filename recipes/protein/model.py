"""The network: multiscale convolutions, then stacked bidirectional recurrent layers, a
state per residue (many-to-many, T_x = T_y).

    sequence: string[batch]                  one chain per string, any case
      -> OneHotAlphabet (common)             float[batch, length, 20] + mask (X, B, Z, U, O
                                             as shares of the 20)
      (+ features: float[batch, length, k]   --features: a profile per residue, appended)
      -> PadTime                             time padded to a multiple of 32 (few shapes)
      -> MultiScaleConv                      Conv1D(filters, k, relu) for each k of
                                             conv_kernels, concatenated with the one-hot;
                                             padded steps kept at 0
      -> Dropout
      -> [Bidirectional(recurrent), Dropout] x layers   every residue, masked
      -> Dense(states, softmax)              float32[batch, length, states]
         --decoder crf: Dense(states) -> common.CRF: emission scores; the probabilities
                                             are the CRF's marginals (`probabilities`)

The local window (a helix turn is 3.6 residues, a strand pairs with another far along the
chain) is the convolutions' part; the recurrent layers carry context from both ends of
the chain (Li & Yu 2016's multiscale CNN + BiGRU, DCRNN, without its profile input).
"""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf

from common.crf import crf_layer
from common.layers import recurrent_layer
from common.metrics import TokenAccuracy
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


FEATURES_INPUT = "features"
# The time axis is padded to a multiple of this many residues, so that batches of chains
# of many lengths make few shapes (the recurrent layers' XLA kernels compile per shape).
TIME_MULTIPLE = 32


def padded_length(length, multiple: int = TIME_MULTIPLE):
    """`length` rounded up to a multiple of `multiple` (a tensor or an int)."""
    return (length + multiple - 1) // multiple * multiple


@keras.saving.register_keras_serializable(package="recipes.protein.model")
class PadTime(keras.layers.Layer):
    """(x float[batch, time, depth], mask bool[batch, time]) -> the same with the time
    axis right-padded to a multiple of `multiple` steps: zeros, mask false."""

    def __init__(self, multiple: int = TIME_MULTIPLE, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x, mask):
        time = tf.shape(x)[1]
        extra = padded_length(time, self.multiple) - time
        x = tf.pad(x, [[0, 0], [0, extra], [0, 0]])
        return x, tf.pad(mask, [[0, 0], [0, extra]])

    def compute_output_spec(self, x, mask):
        return keras.KerasTensor(x.shape, x.dtype), keras.KerasTensor(mask.shape, "bool")

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


def build_model(cfg: Config, features: int = 0) -> keras.Model:
    """Inputs: `sequence` string[batch]; with `features` > 0 also `features`
    float32[batch, length, features] (zeros past each chain's end), in that order."""
    sequence = keras.Input(shape=(), dtype="string", name="sequence")
    inputs = [sequence]
    x, mask = OneHotAlphabet(protein_data.one_hot_table(), name="one_hot")(sequence)
    if features:
        extra = keras.Input(shape=(None, features), dtype="float32", name=FEATURES_INPUT)
        inputs.append(extra)
        x = keras.layers.Concatenate(name="with_features")([x, extra])
    x, mask = PadTime(name="pad_time")(x, mask)
    x = MultiScaleConv(cfg.conv_filters, cfg.conv_kernels, name="multiscale_conv")((x, mask))
    x = keras.layers.Dropout(cfg.dropout, name="conv_dropout")(x)
    for i in range(cfg.layers):
        layer = recurrent_layer(cfg.cell, cfg.units, return_sequences=True, name=f"rnn_{i}")
        x = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")(x, mask=mask)
        x = keras.layers.Dropout(cfg.dropout, name=f"dropout_{i}")(x)
    if cfg.decoder == "crf":
        from common.crf import CRF

        scores = keras.layers.Dense(cfg.states, dtype="float32", name="scores")(x)
        out = CRF(cfg.states, name="crf")(scores)
    else:
        out = keras.layers.Dense(cfg.states, activation="softmax", dtype="float32", name="states")(
            x
        )
    return keras.Model(inputs, out, name="protein_ss")


def compile_model(model: keras.Model, optimizer) -> keras.Model:
    """The loss and the metric `train` fits with. Softmax: the mean cross-entropy over
    resolved residues (weight 1; padding and unresolved residues weigh 0). Keras's default
    reduction leaves padding out (the output's mask) but divides by every residue of the
    chains, unresolved ones included, so chains with unresolved stretches weighed less.
    CRF: the negative log-likelihood of each chain's known states. Both monitor
    `accuracy`, the share of right residues (`ResidueAccuracy`)."""
    crf = crf_layer(model)
    if crf is None:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
            weighted_metrics=[ResidueAccuracy()],
        )
    else:
        model.compile(optimizer=optimizer, loss=crf.loss, metrics=[MarginalAccuracy(crf)])
    return model


def probabilities(model: keras.Model, outputs, lengths):
    """The model's `outputs` for chains of `lengths` as probabilities per residue: the
    softmax's as they are, a CRF's emission scores turned into its marginals (zeros past
    each chain's end in both cases), cut to the longest chain (the model pads time to a
    multiple of TIME_MULTIPLE)."""
    outputs = outputs[:, : tf.reduce_max(lengths)]
    mask = tf.sequence_mask(lengths, tf.shape(outputs)[1])
    crf = crf_layer(model)
    if crf is not None:
        return crf.marginals(outputs, mask)
    return outputs * tf.cast(mask, outputs.dtype)[..., None]


@keras.saving.register_keras_serializable(package="recipes.protein.model")
class ResidueAccuracy(TokenAccuracy):
    """`common.metrics.TokenAccuracy` named `accuracy`: the share of resolved residues
    (sample weight 1) whose most probable state is right, counted over every residue of
    the epoch: what `evaluate` reports as Q3/Q8."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)


@keras.saving.register_keras_serializable(package="recipes.protein.model")
class MarginalAccuracy(ResidueAccuracy):
    """With --decoder crf: the share of labelled residues whose most probable state (of
    the CRF's marginals) is right, so `fit` can monitor `val_accuracy` as with the softmax.
    Labels: -1 at padding, -2 (common.crf.UNKNOWN) at unresolved residues (not scored)."""

    def __init__(self, crf=None, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        # A weak reference, as saving walks every attribute (see recipes.ner.model.EntityF1).
        self._crf = None if crf is None else weakref.ref(crf)

    def update_state(self, y_true, y_pred, sample_weight=None):
        from common.crf import PAD

        y_true = tf.cast(y_true, tf.int32)
        crf = None if self._crf is None else self._crf()
        if crf is None:  # loaded from a file: compile again with MarginalAccuracy(crf)
            raise ValueError("MarginalAccuracy needs its CRF layer: MarginalAccuracy(crf)")
        probs = crf.marginals(y_pred, tf.not_equal(y_true, PAD))
        # the residues with a known state (>= 0) weigh 1, padding and unresolved ones 0
        super().update_state(y_true, probs, tf.cast(y_true >= 0, tf.float32))
