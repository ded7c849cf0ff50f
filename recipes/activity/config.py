"""Presets for the activity recipe: one frozen dataclass, named presets.

`tiny` is for the tests (seconds), `default` is what `make recipe-activity`
runs (under five minutes on a 2-core CPU; a 4-minute training budget is
the safety net), `large` trains longer and wider.
The command line overrides a few fields with `common.cli.apply_overrides`;
a config is never mutated after that.
"""

from __future__ import annotations

import dataclasses

MODALITIES = ("sensor", "video")
VIDEO_MODELS = ("cnn-rnn", "convlstm")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one training run needs besides the data and the run options.

    Sensor fields: `window`, `stride` (samples), `input_noise` (std of the
    Gaussian noise added to normalised samples in training), the recurrent
    stack (`cell`, `units`, `layers`, `bidirectional`) and `dropout`.
    Video fields: `frames` per clip, `frame_size` (square frames, pixels),
    `video_model` (`cnn-rnn`: per-frame CNN under `TimeDistributed`, then a
    recurrent layer; `convlstm`: `keras.layers.ConvLSTM2D`), `conv_filters`,
    and `video_clips` (how many moving-digit clips the offline default makes).
    """

    modality: str = "sensor"
    # Sensor windows (samples). The smartwatch set is sampled at 50 Hz.
    window: int = 100
    stride: int = 25
    # Recurrent stack, shared by both modalities (`video_model="cnn-rnn"`).
    cell: str = "lstm"
    units: int = 64
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    # Gaussian noise added to the normalised sensor samples while training (augmentation).
    input_noise: float = 0.1
    # Video clips.
    video_model: str = "cnn-rnn"
    frames: int = 10
    frame_size: int = 24
    conv_filters: int = 16
    video_clips: int = 1797
    # Optimisation.
    learning_rate: float = 2e-3
    clipnorm: float | None = 1.0
    batch_size: int = 64
    epochs: int = 24
    patience: int | None = 8
    # Held-out share of recordings (or clips) when --validation-data is omitted.
    validation_fraction: float = 0.2
    # Safety net in minutes when --time-budget is not given (None = no limit).
    time_budget: float | None = 4.0


PRESETS: dict[str, Config] = {
    "tiny": Config(
        window=32,
        stride=64,
        units=8,
        layers=1,
        dropout=0.0,
        frames=4,
        frame_size=12,
        conv_filters=4,
        video_clips=48,
        batch_size=32,
        epochs=2,
        patience=None,
    ),
    "default": Config(),
    "large": Config(
        units=128, layers=2, epochs=60, patience=15, video_clips=3594, time_budget=None
    ),
}
