"""The model: a many-to-one classifier over video clips (`build_model`).

    float32[batch, frames, h, w, c]   pixel values 0..255
      -> Rescaling(1/255)
    cnn-rnn:  -> TimeDistributed(Conv-Pool-Conv-Pool-Flatten-Dense)   per-frame features
              -> [Bidirectional(recurrent)] x layers   common.layers.recurrent_layer(cfg.cell)
              -> Dense(classes, softmax)
    convlstm: -> ConvLSTM2D (sequences) -> ConvLSTM2D (last state)
              -> MaxPool -> Flatten -> Dense(classes, softmax)

The per-frame CNN keeps positions (Flatten, not global pooling), because the
classes are motions: where the object is in each frame is the signal. The
recurrent stack is `common.layers.recurrent_stack`, as in the activity recipe.
"""

from __future__ import annotations

import keras

from common.layers import recurrent_stack
from recipes.video.config import Config


def build_model(cfg: Config, *, channels: int, classes: int) -> keras.Model:
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
        x = recurrent_stack(
            x, cfg.cell, cfg.units, cfg.layers, bidirectional=cfg.bidirectional, dropout=cfg.dropout
        )
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
    # The softmax output, float32 also under mixed precision.
    outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="activity")(x)
    return keras.Model(inputs, outputs, name=f"video_{cfg.video_model}")
