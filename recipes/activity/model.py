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
class ConvFeatures(keras.layers.Layer):
    """`layers` x Conv1D(filters, kernel, same, relu) over time, then max-pooling by `pool`.

    (x float[batch, time, channels], mask bool[batch, time]) ->
    (float[batch, ceil(time / pool), filters], mask bool[batch, ceil(time / pool)]).
    Every convolution's output is set to 0 at the padded steps, so the next one sees
    there what it sees past the end of a window: padded steps change nothing. (Outputs
    are ReLUs, >= 0, so a pooled pair of a real and a padded step keeps the real value.)
    """

    def __init__(self, filters=64, kernel=5, layers=2, pool=2, **kwargs):
        super().__init__(**kwargs)
        if min(filters, kernel, layers, pool) < 1:
            raise ValueError(
                f"filters, kernel, layers and pool must be positive. Received: {filters=}, "
                f"{kernel=}, {layers=}, {pool=}"
            )
        self.filters, self.kernel, self.depth, self.pool = filters, kernel, layers, pool
        self.convs = [
            keras.layers.Conv1D(
                filters, kernel, padding="same", activation="relu", name=f"conv_{i}"
            )
            for i in range(layers)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape[0])
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)

    def call(self, inputs):
        x, mask = inputs
        keep = keras.ops.expand_dims(keras.ops.cast(mask, x.dtype), -1)
        for conv in self.convs:
            x = conv(x) * keep
        if self.pool > 1:
            x = keras.ops.max_pool(x, self.pool, self.pool, padding="same")
            mask = mask[:, :: self.pool]
        return x, mask

    def compute_output_shape(self, input_shape):
        batch, time, _ = input_shape[0]
        steps = None if time is None else -(-time // self.pool)
        return (batch, steps, self.filters), (batch, steps)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel": self.kernel,
            "layers": self.depth,
            "pool": self.pool,
        }


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
