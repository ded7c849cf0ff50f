"""Presets for the activity recipe: one frozen dataclass, named presets.

`tiny` is for the tests (seconds), `default` is what `make recipe-activity`
runs (under five minutes on a 2-core CPU; a 4-minute training budget is
the safety net), `large` trains longer and wider.

Windows are set in seconds (`window_seconds`, `stride_seconds`) and become
samples once the sample rate is known (`--sample-rate`, or the default data
set's 50 Hz): a 2-second window is 100 samples at 50 Hz and 64 at 32 Hz, the
same span of movement on any data set (`window_samples`). Without a rate they
are `window` / `stride` samples, as given.
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

    `window_seconds`/`stride_seconds` (or `window`/`stride` samples when the
    rate is unknown or `window_seconds` is None) cut the recordings into
    windows, `input_noise` is the std of the Gaussian noise added to normalised
    samples in training, `model` picks the network: "rnn" (the recurrent stack
    on the samples) or "conv-rnn" (`conv_layers` 1-D convolutions of
    `conv_filters` x `conv_kernel` samples, max-pooled by `conv_pool` over time,
    then the recurrent stack), then the recurrent stack (`cell`, `units`,
    `layers`, `bidirectional`) and `dropout`.
    """

    # Sensor windows in seconds, used when the sample rate is known.
    window_seconds: float | None = 2.0
    stride_seconds: float = 0.5
    # Samples per second (Hz): --sample-rate; None = the data's own (50 for the default
    # smartwatch set, unknown for a directory), in which case window/stride are samples.
    sample_rate: float | None = None
    # Sensor windows in samples when no rate is known (2 s and 0.5 s at 50 Hz). A run
    # directory's config.json holds the samples the run actually used.
    window: int = 100
    stride: int = 25
    # The network: "conv-rnn" or "rnn" (README: level on average over three data sets,
    # conv-rnn ahead on splits by recording, the split of the data sets users bring).
    model: str = "conv-rnn"
    conv_filters: int = 64
    conv_layers: int = 2
    conv_kernel: int = 5
    conv_pool: int = 2
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
        window_seconds=0.64, stride_seconds=1.28, window=32, stride=64, units=8, layers=1,
        dropout=0.0, conv_filters=8, conv_layers=1, batch_size=32, epochs=2, patience=None,
    ),
    "default": Config(),
    "large": Config(units=128, layers=2, epochs=60, patience=15, time_budget=None),
}
# fmt: on


MODELS = ("rnn", "conv-rnn")


def window_samples(cfg: Config, rate: float | None) -> tuple[int, int]:
    """(window, stride) in samples: the seconds at `rate` Hz (at least one sample each),
    or `cfg.window` / `cfg.stride` when the rate is unknown or `window_seconds` is None."""
    if rate is None or cfg.window_seconds is None:
        return cfg.window, cfg.stride
    return max(round(cfg.window_seconds * rate), 1), max(round(cfg.stride_seconds * rate), 1)
