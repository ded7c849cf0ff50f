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
    pooling: str = "mean"  # "mean" over the masked time steps, or "last" (final states)
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
        if self.pooling not in ("mean", "last"):
            raise ValueError(
                f"pooling must be 'mean' or 'last'. Received: pooling={self.pooling!r}"
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
        test_fraction=0.5, max_vocab=20_000, max_length=256, embedding_dim=128, units=64,
        layers=1, epochs=4, batch_size=64, learning_rate=1e-3,
    ),
}
# fmt: on
