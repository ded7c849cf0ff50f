"""Presets for the translation recipe: frozen dataclasses, never mutated.

`tiny` is for the tests (seconds), `default` is what `make recipe-translation`
runs (dates in eight CLDR locales to ISO dates, character level, about five
minutes on a 2-core CPU), `words` is a starting point for a real language pair
at word level (a TSV of sentence pairs or a TFDS translation set).
Command-line options replace fields with `common.cli.apply_overrides`, which
returns a new config.
"""

from __future__ import annotations

import dataclasses

# The held-out pairs `train` reports on, written into the run directory as TSV (the
# format --data reads); `evaluate` without --data reads this file.
HELDOUT_FILE = "heldout.tsv"

LEVELS = ("char", "word", "subword")
ATTENTIONS = ("bahdanau", "luong", "luong-parallel", "none")
# Subword vocabulary size (counting the 4 specials) when max_*_vocab is not given.
SUBWORD_VOCAB = 8000

# CLDR locales of the default data set (see data.date_pairs): 24 languages in
# Latin, Cyrillic, Greek, Han, Kana and Hangul scripts.
DATE_LOCALES = (
    "en_US",
    "en_GB",
    "fr_FR",
    "de_DE",
    "es_ES",
    "it_IT",
    "pt_BR",
    "nl_NL",
    "sv_SE",
    "da_DK",
    "fi_FI",
    "pl_PL",
    "cs_CZ",
    "hu_HU",
    "ro_RO",
    "tr_TR",
    "id_ID",
    "vi_VN",
    "ru_RU",
    "uk_UA",
    "el_GR",
    "ja_JP",
    "zh_CN",
    "ko_KR",
)


def check_decoder_layers(decoder_layers: int, attention: str) -> None:
    """Only the luong-parallel decoder is a stack of layers; the stepped ones are one cell."""
    if decoder_layers < 1 or (decoder_layers > 1 and attention != "luong-parallel"):
        raise ValueError(
            "decoder_layers must be 1, or more with attention='luong-parallel'. "
            f"Received: decoder_layers={decoder_layers}, attention={attention!r}"
        )


@dataclasses.dataclass(frozen=True)
class Config:
    # Data. `max_examples` (dates drawn) and `date_locales` only shape the default data set.
    max_examples: int = 40_000
    date_locales: tuple[str, ...] = DATE_LOCALES
    validation_fraction: float = 0.05
    source_level: str = "char"
    target_level: str = "char"
    lowercase: bool = False
    # Vocabulary caps (counting the 4 specials) and minimum token frequency (char and word
    # levels; at subword level the cap is the number of SentencePiece pieces learned).
    max_source_vocab: int | None = None
    max_target_vocab: int | None = None
    min_freq: int = 1
    # Longest sequences in tokens: training pairs above them are dropped,
    # longer inputs to `translate` are truncated with a warning.
    max_source_length: int = 40
    max_target_length: int = 12
    # Source batches are padded to a multiple of this many tokens, so the encoder
    # compiles for a few shapes only (max_source_length or more: a single shape).
    source_bucket: int = 8
    # TFDS feature names (None: the data set's supervised keys).
    source_lang: str | None = None
    target_lang: str | None = None
    # Model.
    cell: str = "lstm"
    attention: str = "bahdanau"
    embedding_dim: int = 32
    encoder_units: int = 64
    layers: int = 1  # of the bidirectional encoder
    decoder_units: int = 128
    decoder_layers: int = 1  # stacked decoder RNNs (attention="luong-parallel" only)
    dropout: float = 0.0
    # Luong scores divided by sqrt(decoder_units), so the softmax does not saturate early
    # (see model.py); False only reproduces runs made before the option existed.
    scaled_scores: bool = True
    # Training.
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 3e-3
    lr_decay: bool = False  # cosine decay to 5% over `epochs` (common.runtime.optimizer)
    clipnorm: float = 1.0
    patience: int | None = 3
    # Minutes of training before stopping cleanly when --time-budget is not given
    # (None: no limit). A safety net for `make recipe-translation` on a busy machine.
    time_budget: float | None = 4.5
    # Decoding during evaluation (translate has its own options).
    beam_size: int = 1
    length_penalty: float = 0.6
    # Examples shown at the end of `train`.
    show_examples: int = 8

    def __post_init__(self):
        for field in ("source_level", "target_level"):
            if getattr(self, field) not in LEVELS:
                raise ValueError(
                    f"{field} must be one of {LEVELS}. Received: {getattr(self, field)!r}"
                )
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}. Received: {self.attention!r}")
        check_decoder_layers(self.decoder_layers, self.attention)
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1). Received: {self.validation_fraction}"
            )


# Presets read as tables, a few fields a line, so the formatter leaves them alone.
# fmt: off
PRESETS: dict[str, Config] = {
    "tiny": Config(
        max_examples=400, date_locales=("en_US", "fr_FR"), validation_fraction=0.1,
        max_source_length=32, source_bucket=32, embedding_dim=8, encoder_units=8,
        decoder_units=16, epochs=2, batch_size=32, learning_rate=1e-2, patience=None,
        time_budget=None, show_examples=3,
    ),
    "default": Config(),
    "words": Config(
        source_level="word", target_level="word", lowercase=True, max_source_vocab=6000,
        max_target_vocab=6000, min_freq=2, max_source_length=30, max_target_length=30,
        embedding_dim=128, encoder_units=128, decoder_units=256, dropout=0.2, epochs=15,
        batch_size=64, learning_rate=2e-3, patience=3, time_budget=None, beam_size=4,
    ),
    # Corpora of tens of thousands of sentence pairs (Multi30k: 29,000): subwords on both
    # sides, case kept, the decoder RNN on the fast path (luong-parallel), the learning
    # rate decaying over the epochs that fit the budget. Chosen on Multi30k's val split.
    "multi30k": Config(
        source_level="subword", target_level="subword", max_source_vocab=8000,
        max_target_vocab=8000, max_source_length=64, max_target_length=64,
        attention="luong-parallel", embedding_dim=256, encoder_units=256, decoder_units=512,
        dropout=0.3, epochs=20, batch_size=64, learning_rate=2e-3, lr_decay=True,
        patience=None, time_budget=60.0, beam_size=5, length_penalty=0.6,
    ),
}
# fmt: on
