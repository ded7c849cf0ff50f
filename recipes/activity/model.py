"""The model: a many-to-one recurrent classifier over sensor windows (`build_model`).

float32[batch, window, channels]   raw samples, any units
  -> Normalization                 per-channel mean/variance of the training recordings
                                   (stored in the layer, so saved with the model)
  -> GaussianNoise (training only, when cfg.input_noise > 0)
  -> [Bidirectional(recurrent)] x layers   common.layers.recurrent_stack
  -> Dense(classes, softmax)       float32[batch, classes]
"""

from __future__ import annotations

import keras
import numpy as np

from common.layers import recurrent_stack
from recipes.activity.config import Config


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
    x = recurrent_stack(
        x, cfg.cell, cfg.units, cfg.layers, bidirectional=cfg.bidirectional, dropout=cfg.dropout
    )
    # The softmax output, float32 also under mixed precision.
    outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="activity")(x)
    return keras.Model(inputs, outputs, name="activity_sensor")
