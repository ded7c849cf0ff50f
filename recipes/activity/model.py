"""Models: a many-to-one recurrent classifier over sensor windows or video clips.

Sensor (`build_sensor_model`):

    float32[batch, window, channels]   raw samples, any units
      -> Normalization                 per-channel mean/variance of the training recordings
                                       (stored in the layer, so saved with the model)
      -> GaussianNoise (training only, when cfg.input_noise > 0)
      -> [Bidirectional(recurrent)] x layers   common.layers.recurrent_layer(cfg.cell, ...)
      -> Dense(classes, softmax)       float32[batch, classes]

Video (`build_video_model`), clips uint8-valued float32[batch, frames, h, w, c]:

    cnn-rnn:  Rescaling(1/255) -> TimeDistributed(Conv-Pool-Conv-Pool-Flatten-Dense)
              -> recurrent stack as above -> Dense(softmax)
    convlstm: Rescaling(1/255) -> ConvLSTM2D (sequences) -> ConvLSTM2D (last state)
              -> MaxPool -> Flatten -> Dense(softmax)

The per-frame CNN keeps positions (Flatten, not global pooling), because the
classes are motions: where the object is in each frame is the signal.
"""

from __future__ import annotations

import keras
import numpy as np

from common.layers import recurrent_layer
from recipes.activity.config import Config


def _recurrent_stack(x, cfg: Config):
    """`cfg.layers` recurrent layers (bidirectional if asked); the last returns one vector."""
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


def _classifier(x, classes: int):
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
    outputs = _classifier(_recurrent_stack(x, cfg), classes)
    return keras.Model(inputs, outputs, name="activity_sensor")


def build_video_model(cfg: Config, *, channels: int, classes: int) -> keras.Model:
    """Clip classifier: per-frame CNN + recurrent stack, or a convolutional LSTM."""
    size, f = cfg.frame_size, cfg.conv_filters
    inputs = keras.Input((cfg.frames, size, size, channels), name="clip")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    if cfg.video_model == "cnn-rnn":
        per_frame = [
            keras.layers.Conv2D(f, 3, padding="same", activation="relu", name="conv_0"),
            keras.layers.MaxPooling2D(2, name="pool_0"),
            keras.layers.Conv2D(2 * f, 3, padding="same", activation="relu", name="conv_1"),
            keras.layers.MaxPooling2D(2, name="pool_1"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(cfg.units, activation="relu", name="frame_features"),
        ]
        for layer in per_frame:
            x = keras.layers.TimeDistributed(layer, name=f"per_frame_{layer.name}")(x)
        x = _recurrent_stack(x, cfg)
    elif cfg.video_model == "convlstm":
        x = keras.layers.ConvLSTM2D(f, 3, padding="same", return_sequences=True, name="convlstm_0")(
            x
        )
        x = keras.layers.ConvLSTM2D(2 * f, 3, padding="same", name="convlstm_1")(x)
        x = keras.layers.MaxPooling2D(2, name="pool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    else:
        raise ValueError(f"Unknown video model. Received: video_model={cfg.video_model!r}")
    return keras.Model(inputs, _classifier(x, classes), name=f"activity_{cfg.video_model}")
