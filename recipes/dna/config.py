"""Presets for the dna recipe: one frozen dataclass, named presets.

`tiny` is for the tests (seconds), `default` is what `make recipe-dna` runs (the
network, then its two baselines, within about five minutes on a 2-core CPU), `large`
is DanQ's proportions for long sequences (1,000 bp).
The command line overrides a few fields with `common.cli.apply_overrides`.
"""

from __future__ import annotations

import dataclasses

# What `train` writes into the run directory: the held-out sequences it reports on
# (labelled FASTA, read back by `evaluate` like any --data) and the baselines.
HELDOUT_FILE = "heldout.fa"
LABELS_FILE = "labels.json"  # recipes.dna.predict.ModelInfo
BASELINE_CNN_DIR = "baseline_cnn"
BASELINE_KMER_FILE = "baseline_kmer.json"

MODELS = ("danq", "cnn")
# off: the sequences as given; augment: each training sequence is read from either strand
# at random; average: augment, and predictions average both strands.
STRANDS = ("off", "augment", "average")
NEGATIVES = ("none", "shuffle")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one training run needs besides the data and the run options.

    `model` "danq": Conv1D motif scanners (`conv_filters` x `conv_kernel`, ReLU),
    max-pooled by `conv_pool` (more for long sequences: `recurrent_steps`), then the
    recurrent stack (`cell`, `units`, `layers`, bidirectional) and `dense` hidden units;
    "cnn" (the DeepBind-like baseline): the same scanners, the maximum over the
    whole sequence, then the same dense layers.
    `dropout` follows the pooling and the recurrent stack (DanQ: 0.2 and 0.5 of it).
    """

    model: str = "danq"
    conv_filters: int = 128
    conv_kernel: int = 11
    conv_pool: int = 3
    # Longer sequences are pooled more, so that the recurrent layer reads at most this many
    # steps (`model.scanner_pool`; None: `conv_pool` at every length). 34 keeps pool 3 up to
    # 102 bp (splice sites, DeepBind's 101-bp peaks) and pools 200-bp peaks by 6: on Oct4 vs
    # MafK and Oct4 against its shuffles as good on validation as pool 3, and twice as fast
    # to predict (recipes/dna/README.md, "Prediction speed").
    recurrent_steps: int | None = 34
    # GRU: on the splice validation splits of seeds 0-2, accuracy 0.978 and loss 0.087
    # against LSTM's 0.972 and 0.100 (recipes/dna/README.md).
    cell: str = "gru"
    units: int = 64
    layers: int = 1
    dense: int = 64
    dropout: float = 0.5
    strands: str = "off"
    # Training targets smoothed towards the uniform distribution (0.95 and 0.05 for two
    # classes; model.SmoothedSparseCrossentropy). On the splice validation splits of seeds
    # 0-2: accuracy 0.972, 0.976, 0.984 against 0.957, 0.972, 0.984 without, side by side;
    # the epoch of lowest validation loss comes later (23-24 against 2-9) instead of where
    # the network first grows overconfident (recipes/dna/README.md, "The model").
    label_smoothing: float = 0.1
    learning_rate: float = 2e-3
    clipnorm: float | None = 1.0
    batch_size: int = 64
    epochs: int = 60
    patience: int | None = 10
    # Held out for the report (stratified) when --validation-data is not given, and the
    # share of the rest used for validation (choosing the epoch).
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    # k-mer logistic regression baseline: k = 1..kmer_max.
    kmer_max: int = 6
    # Safety net in minutes for the network (the CNN baseline gets a third of it).
    time_budget: float | None = 3.0


# fmt: off
PRESETS: dict[str, Config] = {
    "tiny": Config(
        conv_filters=8, conv_kernel=5, conv_pool=2, units=8, dense=8, dropout=0.0,
        batch_size=16, epochs=3, patience=None, kmer_max=3, time_budget=None,
    ),
    "default": Config(),
    "large": Config(
        conv_filters=320, conv_kernel=26, conv_pool=13, recurrent_steps=None, units=320,
        dense=925, epochs=100, patience=15, time_budget=None,
    ),
}
# fmt: on
