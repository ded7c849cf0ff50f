"""The model: a many-to-one recurrent classifier over sensor windows (`build_sensor_model`).

float32[batch, window, channels]   raw samples, any units
  -> Normalization                 per-channel mean/variance of the training recordings
                                   (stored in the layer, so saved with the model)
  -> GaussianNoise (training only, when cfg.input_noise > 0)
  -> [Bidirectional(recurrent)] x layers   common.layers.recurrent_layer(cfg.cell, ...)
  -> Dense(classes, softmax)       float32[batch, classes]
"""

from __future__ import annotations

import keras
import numpy as np

from common.layers import recurrent_layer
from recipes.activity.config import Config


def recurrent_stack(x, cfg):
    """`cfg.layers` recurrent layers (bidirectional if asked); the last returns one vector.

    `cfg` is any config with `cell`, `units`, `layers`, `bidirectional` and `dropout`
    (the video recipe's CNN + RNN builds its stack here too).
    """
    for i in range(cfg.layers):
        last = i == cfg.layers - 1
        layer = recurrent_layer(
            cfg.cell, cfg.units, return_sequences=not last, name=f"{cfg.cell.replace('-', '_')}_{i}"
        )
        if cfg.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")
        x = layer(x)
        if cfg.dropout:
            noise = None if last else (None, 1, x.shape[-1])  # same units dropped at every step
            x = keras.layers.Dropout(cfg.dropout, noise_shape=noise, name=f"dropout_{i}")(x)
    return x


def classifier(x, classes: int):
    """The softmax output layer, float32 also under mixed precision."""
    return keras.layers.Dense(classes, activation="softmax", dtype="float32", name="activity")(x)


def build_sensor_model(
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
    outputs = classifier(recurrent_stack(x, cfg), classes)
    return keras.Model(inputs, outputs, name="activity_sensor")
