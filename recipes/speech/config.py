"""Presets for the speech recipe: one frozen dataclass, named presets.

`tiny` is for the tests (seconds), `default` is what `make recipe-speech` runs
(under five minutes on a 2-core CPU, its 2.5-minute training budget and decoding with
beams of 8 included),
`large` trains longer and wider. The command line overrides a few fields with
`common.cli.apply_overrides`; a config is never mutated after that.
"""

from __future__ import annotations

import dataclasses

# The run's held-out utterances, a manifest (path<TAB>transcript) inside the run directory;
# `evaluate` without --data reads it like any --data manifest.
HELDOUT_FILE = "heldout.tsv"
# The validation utterances (early stopping, the language-model weight), same format.
VALIDATION_FILE = "validation.tsv"
# Where every training recording is below `sample_rate`, the model works at their highest
# rate instead, but not below this (train.narrowband).
MIN_SAMPLE_RATE = 8_000
# CTC decoders: best path, beam search, beam search with a character language model.
DECODERS = ("greedy", "beam", "lm")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one training run needs besides the data and the run options.

    Audio is resampled to `sample_rate` (lower where all the training recordings are:
    `train.narrowband`); the model computes `mel_bins` log-mel energies over `frame_ms`
    windows every `hop_ms`, normalises them per utterance,
    masks `freq_masks` bands of up to `freq_mask_bins` and `time_masks` spans of up
    to `time_mask_frames` while training (SpecAugment), runs two Conv2D layers of
    `conv_filters` (the first strides `time_stride` frames and halves frequency, the
    second halves frequency),
    then `layers` bidirectional `cell` layers of `units`, and a character softmax
    with the CTC blank.
    """

    sample_rate: int = 16_000
    mel_bins: int = 64
    frame_ms: float = 25.0
    hop_ms: float = 10.0
    conv_filters: int = 32
    # The first convolution's stride over time: output frames of time_stride * hop_ms
    # (20 ms: 50 frames a second for about 13 characters a second of read Dutch). On the
    # 30-minute Dutch run, 2 against 3: held-out CER 0.365 against 0.392 (beam + LM) in
    # 31 epochs against 49, validation CER 0.394 against 0.428 (recipes/speech/README.md).
    time_stride: int = 2
    cell: str = "gru"
    units: int = 192
    layers: int = 3
    dropout: float = 0.2
    # SpecAugment (Park et al. 2019), on the normalised log-mel features, training only.
    freq_masks: int = 2
    freq_mask_bins: int = 10
    time_masks: int = 2
    time_mask_frames: int = 25
    # Optimisation.
    learning_rate: float = 1e-3
    clipnorm: float | None = 5.0
    batch_size: int = 8
    epochs: int = 40
    patience: int | None = 10
    # Training utterances longer than this are left out (seconds); None keeps all.
    max_seconds: float | None = 20.0
    # Use only the first N utterances of the training data (None = all).
    max_examples: int | None = None
    # Shares of the speakers (or levels, chapters) held out when --validation-data is
    # omitted: `validation_fraction` for early stopping, `test_fraction` reported on.
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    # Decoding: CTC beam search width (plain and with a language model).
    beam_width: int = 16
    # Safety net in minutes when --time-budget is not given (None = no limit).
    time_budget: float | None = None


# Presets read as tables, a few fields a line, so the formatter leaves them alone.
# fmt: off
PRESETS: dict[str, Config] = {
    "tiny": Config(
        mel_bins=16, conv_filters=4, units=8, layers=1, dropout=0.0, batch_size=4, epochs=2,
        patience=None, time_mask_frames=4, freq_mask_bins=2, beam_width=4,
    ),
    # No early stopping: with a budget, the learning rate decays over it (or the 80
    # epochs), and the last, small steps are the steadiest. 80 epochs, not 40, so that a
    # budget, not the epoch count, ends a run on small data: on the digit proxy (20
    # minutes, Zen 4) 40 epochs ended after 8 minutes, 80 used the budget and were better
    # at both seeds measured (recipes/speech/README.md).
    "default": Config(time_budget=2.5, beam_width=8, patience=None, epochs=80),
    "large": Config(units=256, layers=4, epochs=80, patience=15),
}
# fmt: on


def output_frames(hop_length: int, time_stride: int, samples: int) -> int:
    """The model's output frames for a recording of `samples` samples: 1 + samples //
    hop_length centred windows, then every `time_stride`-th (see model.LogMel, ConvFrontEnd)."""
    return -(-(1 + samples // hop_length) // time_stride)


def frame_length(cfg: Config) -> int:
    """Samples per analysis window."""
    return round(cfg.sample_rate * cfg.frame_ms / 1000)


def hop_length(cfg: Config) -> int:
    """Samples between window starts."""
    return round(cfg.sample_rate * cfg.hop_ms / 1000)


def fft_length(cfg: Config) -> int:
    """The smallest power of two that holds one window."""
    return 1 << (frame_length(cfg) - 1).bit_length()
