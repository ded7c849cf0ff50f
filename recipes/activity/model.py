"""The model: a many-to-one classifier over sensor windows (`build_model`).

float32[batch, window, channels]   raw samples, any units; NaN marks the padding of a
                                   recording shorter than one window
  -> Normalization                 per-channel mean/variance of the training recordings
                                   (stored in the layer, so saved with the model)
  -> GaussianNoise (training only, when cfg.input_noise > 0)
  -> PaddedSteps                   padded steps -> 0 (the training mean) and a step mask
  -> --model conv-rnn only:        ConvFeatures: [Conv1D(filters, kernel, same, relu)] x
                                   conv_layers, max-pooled by conv_pool over time (the
                                   mask likewise; padded steps kept at 0)
  -> [Bidirectional(recurrent)] x layers   common.layers.recurrent_stack, masked
  -> Dense(classes, softmax)       float32[batch, classes]

The convolutional-recurrent variant is the DeepConvLSTM pattern (Ordonez & Roggen
2016): convolutions learn short motion features over a few samples, the recurrent
layers their order over the window. Pooling halves the steps the recurrent layers
(the costly part on a CPU) run over.
"""

from __future__ import annotations

import keras
import numpy as np

from common import layers
from common.layers import recurrent_stack
from recipes.activity.config import Config


@keras.saving.register_keras_serializable(package="recipes.activity.model")
class PaddedSteps(keras.layers.Layer):
    """Masks the steps of right-padded windows whose padding is NaN.

    float[batch, time, channels] -> (the same with every padded step set to 0,
    mask bool[batch, time], true for a real step). A step is padded when any of its
    values is NaN.
    """

    def call(self, x):
        # x != x is true exactly for NaN (and lowers to NOT_EQUAL, a LiteRT builtin).
        padded = keras.ops.any(keras.ops.not_equal(x, x), axis=-1)
        x = keras.ops.where(keras.ops.expand_dims(padded, -1), keras.ops.zeros_like(x), x)
        return x, keras.ops.logical_not(padded)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape[:2])


@keras.saving.register_keras_serializable(package="recipes.activity.model")
class ConvFeatures(layers.ConvFeatures):
    """`common.layers.ConvFeatures`, saved under this recipe's name as runs before it moved
    to `common` were."""


def build_model(
    cfg: Config, *, channels: int, classes: int, mean: np.ndarray, variance: np.ndarray
) -> keras.Model:
    """Window classifier; `mean`/`variance` come from the training recordings only."""
    inputs = keras.Input((cfg.window, channels), name="window")
    x = keras.layers.Normalization(
        axis=-1,
        mean=np.asarray(mean, np.float32),
        variance=np.asarray(variance, np.float32),
        name="normalize",
    )(inputs)
    if cfg.input_noise:
        x = keras.layers.GaussianNoise(cfg.input_noise, name="input_noise")(x)
    x, mask = PaddedSteps(name="padded_steps")(x)
    if cfg.model == "conv-rnn":
        x, mask = ConvFeatures(
            cfg.conv_filters, cfg.conv_kernel, cfg.conv_layers, cfg.conv_pool, name="conv"
        )((x, mask))
    x = recurrent_stack(
        x,
        cfg.cell,
        cfg.units,
        cfg.layers,
        bidirectional=cfg.bidirectional,
        dropout=cfg.dropout,
        mask=mask,
    )
    # The softmax output, float32 also under mixed precision.
    outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="activity")(x)
    return keras.Model(inputs, outputs, name="activity_sensor")
