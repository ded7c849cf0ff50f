"""Presets for the protein recipe: one frozen dataclass, named presets.

`tiny` is for the tests (seconds), `default` is what `make recipe-protein` runs (about
five minutes on a 2-core CPU, a 4-minute training budget; GRUs of 64), `large` has GRUs
of 128, the CRF decoder and no budget of its own, for longer training (`--time-budget
30`). The command line overrides a few fields.
"""

from __future__ import annotations

import dataclasses

# The held-out chains `train` reports on: id, sequence, structure and mask columns.
HELDOUT_FILE = "heldout.tsv"
# ... and their features, when the run was trained with --features.
HELDOUT_FEATURES_FILE = "heldout_features.npz"
LABELS_FILE = "labels.json"  # recipes.protein.predict.ModelInfo
STATES = {3: "HEC", 8: "HGIEBTSC"}
# softmax: each residue's state on its own; crf: common.CRF over the chain (learned state
# transitions, trained on whole chains or their `crop` windows), its per-residue marginals as the probabilities.
DECODERS = ("softmax", "crf")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one training run needs besides the data and the run options.

    Residues (one-hot, 21 values) go through `conv_filters` Conv1D filters at each of the
    `conv_kernels` widths (multiscale, concatenated, ReLU), then `layers` bidirectional
    recurrent layers of `units` (`cell`), `dropout` between them, and a per-residue
    softmax over the `states` (3 or 8), or with `decoder` "crf" a linear-chain CRF whose
    marginal probabilities per residue take the softmax's place. Training chains longer than `crop` residues are
    cut to a random window of that many each epoch (prediction reads whole chains).
    """

    states: int = 3
    conv_filters: int = 64
    conv_kernels: tuple[int, ...] = (3, 7, 11)
    cell: str = "gru"
    units: int = 64
    layers: int = 2
    dropout: float = 0.3
    decoder: str = "softmax"
    learning_rate: float = 2e-3
    clipnorm: float | None = 1.0
    batch_size: int = 32
    crop: int = 400
    epochs: int = 30
    patience: int | None = 4
    # Share of the chains held out (report) and of the rest validating, when the data
    # has no split of its own and --validation-data is not given.
    test_fraction: float = 0.1
    validation_fraction: float = 0.1
    time_budget: float | None = 4.0


# fmt: off
PRESETS: dict[str, Config] = {
    "tiny": Config(
        conv_filters=8, conv_kernels=(3, 5), units=8, layers=1, dropout=0.0, batch_size=8,
        crop=64, epochs=3, patience=None, time_budget=None,
    ),
    "default": Config(),
    # The CRF: on NEW364 after 30 minutes (3 seeds) and on CB513 (8 states) ahead of the
    # softmax (recipes/protein/README.md).
    "large": Config(units=128, decoder="crf", epochs=100, patience=6, time_budget=None),
}
# fmt: on
