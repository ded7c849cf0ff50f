"""Presets for the sentiment recipe: frozen, never mutated (derived values are arguments).

`tiny` is for the tests (a seeded 1,500-example subset, two small epochs);
`default` is what `make recipe-sentiment` trains on the embedded tweets (under a
minute on a quiet 2-core CPU); `imdb` is sized for movie reviews (longer texts,
larger vocabulary), e.g. `--data tfds:imdb_reviews --preset imdb`.
"""

from __future__ import annotations

import dataclasses

# The default --text-column / --label-column, and the header of HELDOUT_FILE.
TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
# The test examples `train` reports on, written into the run directory as a CSV
# that --data reads with the default columns (see `write_table`).
HELDOUT_FILE = "heldout.csv"


POOLINGS = ("mean", "max", "mean-max", "last")


@dataclasses.dataclass(frozen=True)
class Config:
    # Data
    max_examples: int | None = None  # seeded subset of the training data (None = all of it)
    test_fraction: float = 0.1  # held out for the final evaluation when the data has no test part
    validation_fraction: float = 0.1  # of the rest, when --validation-data is omitted
    # Tokenization (word level, inside the saved model)
    max_vocab: int = 20_000  # counts the 4 special tokens
    min_freq: int = 2
    lowercase: bool = True
    # Every text is cut or padded to this many tokens (fixed shapes: one XLA compile).
    max_length: int = 48
    # Model
    cell: str = "gru"
    embedding_dim: int = 128
    units: int = 64  # per direction
    layers: int = 1  # stacked bidirectional layers
    # "mean" or "max" over the real (unmasked) time steps, "mean-max" both side by side,
    # or "last" (the final states of both directions)
    pooling: str = "mean"
    dropout: float = 0.3
    # Training
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 2e-3
    clipnorm: float | None = 1.0
    patience: int | None = 1  # early stopping on validation loss (the tweets overfit after epoch 2)
    class_weights: bool = True  # "balanced" class weights for imbalanced data
    time_budget: float | None = None  # minutes; --time-budget overrides it

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"pooling must be one of {POOLINGS}. Received: pooling={self.pooling!r}"
            )
        if self.layers < 1:
            raise ValueError(f"layers must be at least 1. Received: layers={self.layers}")


# Presets read as tables, a few fields a line, so the formatter leaves them alone.
# fmt: off
PRESETS = {
    "tiny": Config(
        max_examples=1500, max_vocab=2000, max_length=32, embedding_dim=16, units=8, epochs=2,
        batch_size=64, learning_rate=5e-3, patience=None,
    ),
    "default": Config(),
    "imdb": Config(
        test_fraction=0.5, max_vocab=30_000, max_length=800, embedding_dim=128, units=64,
        layers=1, pooling="mean-max", dropout=0.4, epochs=6, batch_size=64, learning_rate=2e-3,
        patience=2, time_budget=30.0,
    ),
}
# fmt: on
