"""Presets for the NER recipe: frozen dataclasses, never mutated after parsing.

`main.py` picks a preset by name and applies the command-line overrides with
`common.cli.apply_overrides`, which returns a new instance.
"""

from __future__ import annotations

import dataclasses

HELDOUT_FILE = "heldout.conll"  # in the run directory: the sentences `train` reported on
DECODERS = ("softmax", "crf")
CHAR_ENCODERS = ("cnn", "lstm")


@dataclasses.dataclass(frozen=True)
class Config:
    # Training loop
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 5e-3
    lr_decay: bool = False  # cosine decay to 5% over `epochs` (common.runtime.optimizer)
    clipnorm: float = 5.0
    patience: int | None = 10  # early stopping on validation entity F1; None = off
    time_budget: float | None = 4.0  # minutes of training at most; --time-budget overrides it
    validation_fraction: float = 0.15  # split off --data for choosing the best epoch ...
    test_fraction: float = 0.15  # ... and for the reported numbers (see train.py)
    max_examples: int | None = None  # use only the first N sentences of --data (tests)
    # Vocabularies
    word_min_freq: int = 2  # rarer words map to <unk>; the character CNN still sees them
    max_word_chars: int = 20  # longer words are cut for the character CNN only
    length_multiple: int = 16  # batches padded to a multiple of this many tokens (few XLA shapes)
    # Model
    cell: str = "lstm"
    word_embedding_dim: int = 100
    char_encoder: str = "cnn"  # "cnn" (char_filters, char_kernel_size) or "lstm" (char_units)
    char_embedding_dim: int = 30
    char_filters: int = 50
    char_kernel_size: int = 3
    char_units: int = 25  # per direction
    units: int = 100
    layers: int = 1
    dropout: float = 0.5
    word_dropout: float = 0.05  # training only: words replaced by <unk> with this probability
    # Output layer: "crf" (common.CRF: learned tag transitions, trained on whole tag
    # sequences; ahead on validation F1 by 2.6 and 8.7 points over two seeds, README) or
    # "softmax" (per token, decoded with the IOB2 rules).
    decoder: str = "crf"


# Presets read as tables, a few fields a line, so the formatter leaves them alone.
# fmt: off
PRESETS: dict[str, Config] = {
    # For the tests: a few seconds end to end.
    "tiny": Config(
        epochs=2, time_budget=None, max_examples=200,
        length_multiple=48,  # one shape: fewer XLA compilations in the tests
        batch_size=16, patience=None, word_embedding_dim=16, char_embedding_dim=8, char_filters=8,
        units=16, dropout=0.1,
    ),
    # `make recipe-ner`: the best result found within about 5 minutes on 2 CPU cores.
    "default": Config(),
    # CoNLL-2003-sized news (14k sentences): more capacity, a character BiLSTM, the
    # learning rate decaying over the 25 epochs that fit 30 minutes of two CPU cores, and
    # more word dropout. Chosen on eng.testa (README): 0.910 entity F1; 0.909 with word
    # dropout 0.2, 0.902 with 0.05, 0.892 with the character CNN (100 filters).
    "conll": Config(
        epochs=25, time_budget=30.0, lr_decay=True, patience=None, word_embedding_dim=200,
        char_encoder="lstm", char_filters=100, units=200, layers=2, word_dropout=0.35,
    ),
}
# fmt: on
