"""Presets for the video recipe: one frozen dataclass, named presets.

`tiny` is for the tests (seconds), `default` is what `make recipe-video`
runs (a 4-minute training budget is the safety net), `large` makes twice the
clips and trains longer and wider.
The command line overrides a few fields with `common.cli.apply_overrides`;
a config is never mutated after that.
"""

from __future__ import annotations

import dataclasses

# The validation clips of a run, a class-per-directory tree inside the run directory.
HELDOUT_FILE = "heldout"

VIDEO_MODELS = ("cnn-rnn", "convlstm")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one training run needs besides the data and the run options.

    `frames` per clip, `frame_size` (square frames, pixels), `video_model`
    (`cnn-rnn`: per-frame CNN under `TimeDistributed`, then a recurrent stack
    of `cell`, `units`, `layers`, `bidirectional`; `convlstm`:
    `keras.layers.ConvLSTM2D`), `conv_filters`, `dropout`, and `video_clips`
    (how many moving-digit clips the offline default makes).
    """

    video_model: str = "cnn-rnn"
    frames: int = 10
    frame_size: int = 24
    conv_filters: int = 16
    video_clips: int = 1797
    # Recurrent stack (`video_model="cnn-rnn"`).
    cell: str = "lstm"
    units: int = 64
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    # Optimisation.
    learning_rate: float = 2e-3
    clipnorm: float | None = 1.0
    batch_size: int = 64
    epochs: int = 24
    patience: int | None = 8
    # Held-out share (of the digit images, or of each class's clips) when
    # --validation-data is omitted.
    validation_fraction: float = 0.2
    # Safety net in minutes when --time-budget is not given (None = no limit).
    time_budget: float | None = 4.0


# Presets read as tables, a few fields a line, so the formatter leaves them alone.
# fmt: off
PRESETS: dict[str, Config] = {
    "tiny": Config(
        units=8, layers=1, dropout=0.0, frames=4, frame_size=12, conv_filters=4, video_clips=48,
        batch_size=32, epochs=2, patience=None,
    ),
    "default": Config(),
    "large": Config(
        units=128, layers=2, epochs=60, patience=15, video_clips=3594, time_budget=None
    ),
}
# fmt: on
