"""Presets for the activity recipe: one frozen dataclass, named presets.

`tiny` is for the tests (seconds), `default` is what `make recipe-activity`
runs (under five minutes on a 2-core CPU; a 4-minute training budget is
the safety net), `large` trains longer and wider.
The command line overrides a few fields with `common.cli.apply_overrides`;
a config is never mutated after that.
"""

from __future__ import annotations

import dataclasses

# The validation recordings of a run, a class-per-directory tree inside the run directory.
HELDOUT_FILE = "heldout"


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one training run needs besides the data and the run options.

    `window` and `stride` (samples) cut the recordings into windows,
    `input_noise` is the std of the Gaussian noise added to normalised samples
    in training, then the recurrent stack (`cell`, `units`, `layers`,
    `bidirectional`) and `dropout`.
    """

    # Sensor windows (samples). The smartwatch set is sampled at 50 Hz.
    window: int = 100
    stride: int = 25
    # Recurrent stack.
    cell: str = "lstm"
    units: int = 64
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    # Gaussian noise added to the normalised sensor samples while training (augmentation).
    input_noise: float = 0.1
    # Optimisation.
    learning_rate: float = 2e-3
    clipnorm: float | None = 1.0
    batch_size: int = 64
    epochs: int = 24
    patience: int | None = 8
    # Held-out share of each class's recordings when --validation-data is omitted.
    validation_fraction: float = 0.2
    # Safety net in minutes when --time-budget is not given (None = no limit).
    time_budget: float | None = 4.0


# Presets read as tables, a few fields a line, so the formatter leaves them alone.
# fmt: off
PRESETS: dict[str, Config] = {
    "tiny": Config(
        window=32, stride=64, units=8, layers=1, dropout=0.0, batch_size=32, epochs=2,
        patience=None,
    ),
    "default": Config(),
    "large": Config(units=128, layers=2, epochs=60, patience=15, time_budget=None),
}
# fmt: on
