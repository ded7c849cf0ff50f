"""Character- and word-level tokenizers, JSON vocabularies, and the same tokenizer as a Keras layer.

    tok = Tokenizer.build(texts, level="word", max_size=20_000, min_freq=2, lowercase=True)
    ids = tok.encode("Don't panic!", add_eos=True)       # [.., .., 3]
    tok.decode(ids)                                       # "don't panic!"
    batch = tok.encode_batch(texts, max_length=64)        # int32[n, 64], right-padded with 0
    tok.save(path); tok = Tokenizer.load(path)            # JSON, never pickle

    strings = keras.Input(shape=(), dtype="string")
    ids = tok.keras_layer()(strings)                      # int32[batch, time], same ids as encode
    model = keras.Model(strings, keras.layers.Embedding(tok.vocab_size, 64, mask_zero=True)(ids))

Vocabulary (`tok.vocab`): the four special tokens first, with fixed ids

    id 0 <pad>   right padding (Embedding(mask_zero=True) masks it)
    id 1 <unk>   any token not in the vocabulary
    id 2 <bos>   begin of sequence (only when asked for: add_bos=True)
    id 3 <eos>   end of sequence   (only when asked for: add_eos=True)

then the tokens seen in the training texts, most frequent first, ties broken
by the token itself (code-point order), so the same texts always build the
same vocabulary. `max_size` counts the four specials; `min_freq` drops rarer
tokens.

Normalisation: every text is put in Unicode NFC form (a precomposed "é", not
"e" + combining accent), then lowercased with `str.lower()` if `lowercase`.

Split rule (`tok.tokens(text)`):

- level "char": one token per Unicode code point, whitespace and newlines
  included; `decode` joins them back with nothing in between, so
  `decode(encode(text)) == NFC(text)` when every character is known.
- level "word": the regex `WORD_RULE`

      W+(?:['’]W+)?  |  [^W\\s]

  where W is a word character (Unicode categories L letters, M combining
  marks, N numbers, Pc connectors such as "_") and \\s is whitespace as
  `str.isspace()` sees it. So a token is a run of word characters with at
  most one inner apostrophe ("don't", "l’homme"), or one single other
  character (punctuation, symbols, emoji); whitespace separates and is
  dropped. `decode` joins tokens with one space, except no space before a
  closing mark `. , ; : ! ? ) ] } % … » ” ’` and none after an opening mark
  `( [ { ¿ ¡ « “ ‘`. Splitting the decoded text again gives the same tokens
  (when none is <unk>, which decodes as the literal "<unk>").

The Keras layer (`tok.keras_layer()`, a `TokenizerLayer`) does the same
steps with `tf.strings` ops and a `keras.layers.StringLookup` over the same
vocabulary. The word rule is written once, as code-point sets taken from
`unicodedata`, and spelled both for Python's `re` and for TensorFlow's RE2, so
the two cannot drift (a test compares them on every assigned code point).
What differs:

- the layer does not NFC-normalise (TensorFlow has no op for it). Nearly all
  text is NFC already; decomposed text ("e" + U+0301) gets other ids in the
  layer than in `encode`, so normalise such text before it reaches the model;
- with `lowercase`, the layer lowercases with ICU (`tf.strings.lower`), which
  matches `str.lower()` except on the few letters added in Unicode 14 and on
  text containing a NUL character, which ICU cuts there.

The layer is registered for `.keras` saving: a model that contains it loads
with `keras.saving.load_model(path)` and no `custom_objects` once
`common.tokenization` has been imported (every recipe imports it). It needs
the TensorFlow backend. Feed it `tf.constant(texts)`, a `tf.data` dataset of
strings, or `np.array(texts, dtype=object)`; Keras rejects NumPy `str_` arrays.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import numpy as np

try:
    import tensorflow as tf
except ModuleNotFoundError:  # the cells, layers and CRF of `common` do not need it
    raise ImportError(
        "common.tokenization needs TensorFlow (pip install tensorflow): its text layers run "
        "TensorFlow string ops"
    ) from None

from common.errors import UserError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
LEVELS = ("char", "word")

FILE_FORMAT = "common.tokenization.Tokenizer"
FILE_VERSION = 1

# ---------------------------------------------------------------------------
# The split rule, for Python (`re`) and for TensorFlow (RE2), side by side.
# ---------------------------------------------------------------------------

WORD_RULE = "W+(?:['’]W+)?|[^W\\s]"
APOSTROPHES = "'\u2019"  # the inner apostrophe of "don't" and "l’homme"
# W: letters, combining marks, numbers, connector punctuation ("_").
_WORD_CATEGORIES = ("L", "M", "N", "Pc")

# decode(): no space before these tokens, none after those.
NO_SPACE_BEFORE = frozenset(".,;:!?)]}%…»”’")
NO_SPACE_AFTER = frozenset("([{¿¡«“‘")


def _ranges(code_points: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Sorted code points -> inclusive (first, last) runs."""
    runs: list[list[int]] = []
    for cp in code_points:
        if runs and runs[-1][1] == cp - 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    return tuple((a, b) for a, b in runs)


@functools.cache
def _char_classes() -> dict[str, tuple[tuple[int, int], ...]]:
    """Code-point ranges, from this Python's `unicodedata` (about 0.3 s, once per process).

    "word": W. "space": `str.isspace()`. "word_beyond_re": the part of W that
    Python's `re` `\\w` (letters, numbers, "_") lacks: combining marks and
    other connectors. The tests check `\\w` + that part == W and `\\s` ==
    "space" over every code point.
    """
    word, space, beyond = [], [], []
    for cp, category in enumerate(map(unicodedata.category, map(chr, range(0x110000)))):
        if category.startswith(_WORD_CATEGORIES):
            word.append(cp)
            if not (chr(cp).isalnum() or cp == 0x5F):
                beyond.append(cp)
        elif chr(cp).isspace():
            space.append(cp)
    return {"word": _ranges(word), "space": _ranges(space), "word_beyond_re": _ranges(beyond)}


def _class_body(ranges: Iterable[tuple[int, int]], engine: str) -> str:
    """The inside of a character class, escaped for `engine` ("re" or "re2")."""

    def esc(cp: int) -> str:
        if engine == "re2":
            return f"\\x{{{cp:X}}}"
        return f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"

    return "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges)


@functools.cache
def _word_patterns(engine: str) -> tuple[str, str]:
    """(token pattern, whitespace class) of WORD_RULE for `engine`: "re", "re-bmp" or "re2".

    All spell the same code-point sets. Python's `re` uses its fast built-in
    `\\w` and `\\s` plus the ranges `\\w` lacks; "re-bmp" leaves out those
    above U+FFFF, which would cost `re` three times the time on every
    character, for texts that have none. RE2 gets explicit ranges: its `\\w`
    and `\\s` are ASCII-only and its Unicode tables may be of another
    version than this Python's.
    """
    classes = _char_classes()
    if engine == "re2":
        w = _class_body(classes["word"], "re2")
        s = _class_body(classes["space"], "re2")
    else:
        beyond = classes["word_beyond_re"]
        if engine == "re-bmp":
            beyond = tuple(r for r in beyond if r[1] <= 0xFFFF)
        w = "\\w" + _class_body(beyond, "re")
        s = "\\s"
    apostrophe = _class_body(
        ((ord(c), ord(c)) for c in APOSTROPHES), "re2" if engine == "re2" else "re"
    )
    token = f"[{w}]+(?:[{apostrophe}][{w}]+)?|[^{w}{s}]"
    return token, f"[{s}]"


def re2_word_patterns() -> tuple[str, str]:
    """(token pattern, whitespace class) of the word rule for RE2 (`tf.strings.regex_replace`),
    spelling the same code points as Python's `re` sees them; see `_word_patterns`."""
    return _word_patterns("re2")


@functools.cache
def _python_word_regex(bmp_only: bool = False) -> re.Pattern:
    return re.compile(_word_patterns("re-bmp" if bmp_only else "re")[0])


def _python_tokens(text: str, level: str, lowercase: bool) -> list[str]:
    text = unicodedata.normalize("NFC", text)
    if lowercase:
        text = text.lower()
    if level == "char":
        return list(text)
    bmp_only = not text or text.isascii() or max(text) <= "\uffff"
    return _python_word_regex(bmp_only).findall(text)


def _tf_tokens(text: tf.Tensor, level: str, lowercase: bool) -> tf.RaggedTensor:
    """string[batch] -> ragged string[batch, (tokens)], the rule of `_python_tokens` in TensorFlow."""
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    if level == "char":
        return tf.strings.unicode_split(text, "UTF-8")
    token, space = _word_patterns("re2")
    # Every character is either whitespace or inside a token: turn whitespace
    # into plain spaces, put a space around each token, split on spaces.
    # (`\0`, the whole match, keeps RE2 on its fast DFA; a group is ten times slower.)
    text = tf.strings.regex_replace(text, space + "+", " ")
    text = tf.strings.regex_replace(text, token, r" \0 ")
    return tf.strings.split(text)


def _join_words(tokens: Sequence[str]) -> str:
    parts: list[str] = []
    for i, token in enumerate(tokens):
        if i and token not in NO_SPACE_BEFORE and tokens[i - 1] not in NO_SPACE_AFTER:
            parts.append(" ")
        parts.append(token)
    return "".join(parts)


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------


class Tokenizer:
    """A fixed vocabulary plus a split rule ("char" or "word"); see the module docstring.

    Build one with `Tokenizer.build(texts, ...)` or `Tokenizer.load(path)`.
    The constructor takes a complete vocabulary (the four specials first).
    """

    def __init__(self, vocab: Sequence[str], *, level: str = "char", lowercase: bool = False):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}. Received: level={level!r}")
        vocab = list(vocab)
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(
                f"vocab must start with the special tokens {list(SPECIALS)}. "
                f"Received: vocab[:4]={vocab[:4]!r}"
            )
        for token in vocab:
            if not isinstance(token, str) or not token:
                raise ValueError(f"vocab tokens must be non-empty strings. Received: {token!r}")
        if len(set(vocab)) != len(vocab):
            duplicates = sorted(t for t, n in collections.Counter(vocab).items() if n > 1)
            raise ValueError(f"vocab has duplicate tokens. Received: {duplicates[:5]!r}")
        self._vocab = vocab
        self._ids = {token: i for i, token in enumerate(vocab)}
        self.level = level
        self.lowercase = bool(lowercase)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        level: str = "char",
        max_size: int | None = None,
        min_freq: int = 1,
        lowercase: bool = False,
    ) -> Tokenizer:
        """Count the tokens of `texts` and keep the most frequent.

        Args:
            texts: an iterable of strings (read once, so a generator works).
            level: "char" (code points) or "word" (the word rule).
            max_size: largest vocabulary size, the four specials included;
                None for no cap.
            min_freq: drop tokens seen fewer times than this.
            lowercase: lowercase the text before splitting (here and in encode).
        """
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}. Received: level={level!r}")
        if max_size is not None and max_size <= len(SPECIALS):
            raise ValueError(
                f"max_size must be larger than the {len(SPECIALS)} special tokens. "
                f"Received: max_size={max_size}"
            )
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1. Received: min_freq={min_freq}")
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be an iterable of strings, not a single string")
        counts: collections.Counter[str] = collections.Counter()
        for text in texts:
            counts.update(_python_tokens(text, level, lowercase))
        ranked = sorted(
            (t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *ranked], level=level, lowercase=lowercase)

    # -- vocabulary ---------------------------------------------------------

    @property
    def vocab(self) -> list[str]:
        """All tokens, index = id (a copy)."""
        return list(self._vocab)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def __len__(self) -> int:
        return len(self._vocab)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tokenizer):
            return NotImplemented
        return (self.level, self.lowercase, self._vocab) == (
            other.level,
            other.lowercase,
            other._vocab,
        )

    __hash__ = None  # mutable-looking object compared by value

    def __repr__(self) -> str:
        return f"Tokenizer(level={self.level!r}, lowercase={self.lowercase}, vocab_size={self.vocab_size})"

    def token_to_id(self, token: str) -> int:
        """The id of `token`; UNK_ID (1) when it is not in the vocabulary, as in `encode`."""
        return self._ids.get(token, UNK_ID)

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < len(self._vocab):
            raise ValueError(f"id must be in [0, {len(self._vocab)}). Received: id={i}")
        return self._vocab[i]

    # -- encode / decode ----------------------------------------------------

    def tokens(self, text: str) -> list[str]:
        """The tokens of `text` after NFC (and lowercasing), before the vocabulary lookup."""
        return _python_tokens(text, self.level, self.lowercase)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """text -> ids; unknown tokens become UNK_ID (1)."""
        ids = [self._ids.get(t, UNK_ID) for t in self.tokens(text)]
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def encode_batch(
        self,
        texts: Iterable[str],
        add_bos: bool = False,
        add_eos: bool = False,
        max_length: int | None = None,
    ) -> np.ndarray:
        """texts -> int32[len(texts), time], right-padded with PAD_ID (0).

        time = max_length when given (longer sequences keep their first
        max_length ids, so a truncated sequence loses its EOS), else the
        longest sequence.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be an iterable of strings, not a single string")
        if max_length is not None and max_length < 0:
            raise ValueError(f"max_length must be >= 0. Received: max_length={max_length}")
        rows = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
        width = max_length if max_length is not None else max((len(r) for r in rows), default=0)
        out = np.zeros((len(rows), width), dtype=np.int32)
        for i, row in enumerate(rows):
            row = row[:width]
            out[i, : len(row)] = row
        return out

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """ids -> text: char level joins with "", word level with the spacing rule.

        skip_special drops <pad>, <bos> and <eos>; <unk> is always written as "<unk>".
        """
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(
                f"decode takes one sequence of ids (use decode_batch). Received shape {ids.shape}"
            )
        tokens = [self.id_to_token(int(i)) for i in ids]
        if skip_special:
            tokens = [t for t in tokens if t not in (PAD, BOS, EOS)]
        if self.level == "char":
            return "".join(tokens)
        return _join_words(tokens)

    def tf_decode(self, ids):
        """`decode_batch` in TensorFlow ops, for graphs: int32[batch, time] -> string[batch].

        Skips <pad>, <bos> and <eos>; word level joins with the same spacing rule as `decode`.
        """
        vocab = tf.constant(self._vocab)
        keep = (ids != PAD_ID) & (ids != BOS_ID) & (ids != EOS_ID)
        tokens = tf.ragged.boolean_mask(tf.gather(vocab, ids), keep)
        if self.level == "char":
            return tf.strings.reduce_join(tokens, axis=-1)
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        before = "".join(re.escape(c) for c in sorted(NO_SPACE_BEFORE))
        after = "".join(re.escape(c) for c in sorted(NO_SPACE_AFTER))
        text = tf.strings.regex_replace(text, f" ([{before}])", r"\1")
        return tf.strings.regex_replace(text, f"([{after}]) ", r"\1")

    def decode_batch(self, ids: Iterable[Iterable[int]], skip_special: bool = True) -> list[str]:
        """Rows of ids (e.g. int[batch, time] padded with 0) -> one string per row."""
        return [self.decode(row, skip_special=skip_special) for row in ids]

    def tf_resources(self) -> list:
        """What an exported graph using this tokenizer must track: nothing (constants only)."""
        return []

    # -- JSON ---------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "level": self.level,
            "lowercase": self.lowercase,
            "vocab": list(self._vocab),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON, atomically (`common.runtime.atomic_write`)."""
        from common.runtime import atomic_write

        text = json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a file written by `save`; anything else raises UserError naming the file."""
        path = Path(path)
        return cls._from_file_json(path, _read_tokenizer_file(path, (FILE_FORMAT,)))

    @classmethod
    def _from_file_json(cls, path: Path, obj: dict) -> Tokenizer:
        vocab, lowercase = obj.get("vocab"), obj.get("lowercase")
        if not isinstance(vocab, list) or not isinstance(lowercase, bool):
            raise UserError(
                f'{path}: corrupt tokenizer file ("vocab" must be a list, "lowercase" a boolean)'
            )
        try:
            return cls(vocab, level=obj.get("level"), lowercase=lowercase)
        except ValueError as e:
            raise UserError(f"{path}: corrupt tokenizer file ({e})") from None

    # -- Keras --------------------------------------------------------------

    def keras_layer(
        self,
        sequence_length: int | None = None,
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        name: str | None = None,
    ) -> TokenizerLayer:
        """This tokenizer as a Keras layer: string[batch] -> int32[batch, time], same ids as `encode`.

        sequence_length: None pads to the longest text of the batch; an int
        pads or truncates every row to exactly that length (as
        `encode_batch(max_length=...)`).
        """
        return TokenizerLayer(
            vocabulary=self._vocab,
            level=self.level,
            lowercase=self.lowercase,
            sequence_length=sequence_length,
            add_bos=add_bos,
            add_eos=add_eos,
            name=name,
        )


@keras.saving.register_keras_serializable(package="common")
class TokenizerLayer(keras.layers.Layer):
    """A `Tokenizer` inside a model: raw strings in, token ids out.

        string[batch] or string[batch, 1]
          -> split (tf.strings: unicode_split, or the word rule's regex)
          -> StringLookup(vocabulary[2:], mask_token="<pad>", oov_token="<unk>")
                 so <pad> = 0, <unk> = 1, <bos> = 2, <eos> = 3, then the tokens
          -> optional <bos> / <eos>
          -> int32[batch, time], right-padded with 0

    Build it with `tok.keras_layer(...)`. Needs the TensorFlow backend. Has no
    weights; the vocabulary travels in `get_config()`.
    """

    def __init__(
        self,
        vocabulary: Sequence[str],
        level: str = "char",
        lowercase: bool = False,
        sequence_length: int | None = None,
        add_bos: bool = False,
        add_eos: bool = False,
        **kwargs,
    ):
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "TokenizerLayer needs the TensorFlow backend (KERAS_BACKEND=tensorflow). "
                f"Received: backend={keras.backend.backend()!r}; use Tokenizer.encode_batch instead"
            )
        super().__init__(**kwargs)
        # Validates level and the specials.
        Tokenizer(vocabulary, level=level, lowercase=lowercase)
        if sequence_length is not None and sequence_length < 0:
            raise ValueError(
                f"sequence_length must be >= 0. Received: sequence_length={sequence_length}"
            )
        self.vocabulary = list(vocabulary)
        self.level = level
        self.lowercase = bool(lowercase)
        self.sequence_length = sequence_length
        self.add_bos = bool(add_bos)
        self.add_eos = bool(add_eos)
        self.lookup = keras.layers.StringLookup(
            vocabulary=self.vocabulary[2:],  # <bos>, <eos>, then the tokens
            mask_token=PAD,
            oov_token=UNK,
            num_oov_indices=1,
            output_mode="int",
            name="lookup",
        )
        self.built = True

    def call(self, inputs):
        text = tf.convert_to_tensor(inputs, dtype=tf.string)
        if text.shape.rank == 0:
            text = text[None]
        elif text.shape.rank == 2 and text.shape[1] in (1, None):
            text = tf.squeeze(text, axis=-1)
        elif text.shape.rank != 1:
            raise ValueError(
                f"{self.name} takes string[batch] or string[batch, 1]. Received shape {text.shape}"
            )
        tokens = _tf_tokens(text, self.level, self.lowercase)
        ids = tokens.with_flat_values(tf.cast(self.lookup(tokens.flat_values), tf.int32))
        batch = tf.shape(text)[:1]
        if self.add_bos:
            bos = tf.RaggedTensor.from_tensor(tf.fill(tf.concat([batch, [1]], 0), BOS_ID))
            ids = tf.concat([bos, ids], axis=1)
        if self.add_eos:
            eos = tf.RaggedTensor.from_tensor(tf.fill(tf.concat([batch, [1]], 0), EOS_ID))
            ids = tf.concat([ids, eos], axis=1)
        shape = None if self.sequence_length is None else [None, self.sequence_length]
        return ids.to_tensor(default_value=PAD_ID, shape=shape)

    def compute_output_spec(self, inputs):
        batch = inputs.shape[0] if len(inputs.shape) else 1
        return keras.KerasTensor((batch, self.sequence_length), dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary=list(self.vocabulary),
            level=self.level,
            lowercase=self.lowercase,
            sequence_length=self.sequence_length,
            add_bos=self.add_bos,
            add_eos=self.add_eos,
        )
        return config


# ---------------------------------------------------------------------------
# Subwords: a SentencePiece model with the same interface and special ids.
# ---------------------------------------------------------------------------

SUBWORD_FORMAT = "common.tokenization.SubwordTokenizer"


class SubwordTokenizer:
    """Subword units learned from the training text by SentencePiece (Kudo & Richardson 2018).

        tok = SubwordTokenizer.build(texts, max_size=8000)     # unigram model, ~1 s per 30k lines
        tok.tokens("Zwei junge Männer")   # ['▁Zwei', '▁junge', '▁Männer']
        tok.decode(tok.encode(text))      # the text (after NMT-NFKC normalisation)
        tok.save(path); load_tokenizer(path)   # JSON with the model inside, never pickle

    The same interface as `Tokenizer` (encode, decode, tokens, id_to_token, vocab_size,
    tf_decode, keras_layer, save) and the same special ids (<pad> 0, <unk> 1, <bos> 2,
    <eos> 3), so a model does not care which of the two made its ids. What differs:

    - the pieces are learned: frequent words are one piece, rare ones are spelled from
      smaller pieces, and `byte_fallback` spells any character the training text lacks as
      its UTF-8 bytes, so no input is ever <unk> and the vocabulary stays small;
    - case is kept unless `lowercase`; whitespace is part of the pieces ("▁"), so `decode`
      restores the spacing of the text exactly (SentencePiece's "nmt_nfkc" normalisation
      first: NFKC, and runs of spaces become one);
    - `keras_layer` and `tf_decode` run the same model in the graph through
      tensorflow-text's `SentencepieceTokenizer` (TensorFlow backend only).
    """

    level = "subword"

    def __init__(self, model_proto: bytes, *, lowercase: bool = False):
        import sentencepiece

        self._proto = bytes(model_proto)
        try:
            self._sp = sentencepiece.SentencePieceProcessor(model_proto=self._proto)
        except RuntimeError as e:
            raise ValueError(f"not a SentencePiece model ({e})") from None
        pieces = [self._sp.id_to_piece(i) for i in range(len(SPECIALS))]
        if tuple(pieces) != SPECIALS:
            raise ValueError(f"the model's first pieces must be {list(SPECIALS)}, not {pieces}")
        self.lowercase = bool(lowercase)

    @classmethod
    def build(
        cls, texts: Iterable[str], *, max_size: int = 8000, lowercase: bool = False
    ) -> SubwordTokenizer:
        """Train a unigram SentencePiece model of at most `max_size` pieces (specials included).

        A small corpus may give fewer pieces than `max_size` (the cap is soft). Training is
        deterministic: the same texts give the same model.
        """
        import io

        import sentencepiece

        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be an iterable of strings, not a single string")
        lines = [t.lower() if lowercase else t for t in texts if t.strip()]
        if not lines:
            raise ValueError("no text to learn subwords from")
        required = len(SPECIALS) + 256 + len(set("".join(lines)))  # specials, bytes, characters
        if max_size < required:
            raise ValueError(
                f"max_size must be at least {required} for this text (the 4 specials, 256 byte "
                f"pieces and its {required - 260} distinct characters). Received: {max_size}"
            )
        model = io.BytesIO()
        train = sentencepiece.SentencePieceTrainer.train
        train(
            sentence_iterator=iter(lines),
            model_writer=model,
            model_type="unigram",
            vocab_size=max_size,
            hard_vocab_limit=False,
            character_coverage=1.0,
            byte_fallback=True,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            pad_piece=PAD,
            unk_piece=UNK,
            bos_piece=BOS,
            eos_piece=EOS,
            num_threads=1,  # one thread: the same model on every run
            minloglevel=2,
        )
        return cls(model.getvalue(), lowercase=lowercase)

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def __len__(self) -> int:
        return self.vocab_size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SubwordTokenizer):
            return NotImplemented
        return (self._proto, self.lowercase) == (other._proto, other.lowercase)

    __hash__ = None

    def __repr__(self) -> str:
        return f"SubwordTokenizer(lowercase={self.lowercase}, vocab_size={self.vocab_size})"

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"id must be in [0, {self.vocab_size}). Received: id={i}")
        return self._sp.id_to_piece(int(i))

    def _prepare(self, text: str) -> str:
        return text.lower() if self.lowercase else text

    def tokens(self, text: str) -> list[str]:
        """The pieces of `text` ("▁" marks a preceding space)."""
        return self._sp.encode(self._prepare(text), out_type=str)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self._sp.encode(self._prepare(text), add_bos=add_bos, add_eos=add_eos)

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """ids -> text. `skip_special` drops <pad>, <bos> and <eos> (<unk> reads " ⁇ ");
        without it every piece is written out: `decode([2, 7], False)` == "<bos>..."."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        if skip_special:
            return self._sp.decode([i for i in ids if i not in (PAD_ID, BOS_ID, EOS_ID)])
        return "".join(self.id_to_token(i) for i in ids).replace("\u2581", " ").strip()

    def decode_batch(self, ids: Iterable[Iterable[int]], skip_special: bool = True) -> list[str]:
        return [self.decode(row, skip_special=skip_special) for row in ids]

    def tf_decode(self, ids):
        """`decode_batch` in TensorFlow ops: int32[batch, time] -> string[batch]."""
        keep = (ids != PAD_ID) & (ids != BOS_ID) & (ids != EOS_ID)
        return _sentencepiece_op(self._proto).detokenize(tf.ragged.boolean_mask(ids, keep))

    def tf_resources(self) -> list:
        """What an exported graph that calls `tf_decode` or `keras_layer` must track
        (`keras.export.ExportArchive.track`): the SentencePiece model resource."""
        return [_sentencepiece_op(self._proto)]

    def to_json(self) -> dict:
        import base64

        return {
            "format": SUBWORD_FORMAT,
            "version": FILE_VERSION,
            "lowercase": self.lowercase,
            "sentencepiece_model": base64.b64encode(self._proto).decode("ascii"),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON (the SentencePiece model in base64), atomically."""
        from common.runtime import atomic_write

        text = json.dumps(self.to_json(), indent=1) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))

    def keras_layer(self, *, name: str | None = None) -> SubwordLayer:
        """string[batch] -> int32[batch, time] (right-padded with 0): the ids of `encode`."""
        import base64

        return SubwordLayer(
            base64.b64encode(self._proto).decode("ascii"), lowercase=self.lowercase, name=name
        )


@functools.cache
def _sentencepiece_op(proto: bytes):
    import tensorflow_text

    return tensorflow_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)


@keras.saving.register_keras_serializable(package="common")
class SubwordLayer(keras.layers.Layer):
    """A `SubwordTokenizer` inside a model: string[batch] -> int32[batch, time], padded with 0.

    The SentencePiece model travels in `get_config()` (base64). TensorFlow backend only.
    """

    def __init__(self, model_base64: str, lowercase: bool = False, **kwargs):
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "SubwordLayer needs the TensorFlow backend (KERAS_BACKEND=tensorflow). "
                f"Received: backend={keras.backend.backend()!r}"
            )
        super().__init__(**kwargs)
        import base64

        self.model_base64 = model_base64
        self.lowercase = bool(lowercase)
        self._op = _sentencepiece_op(base64.b64decode(model_base64))
        self.built = True

    def call(self, inputs):
        text = tf.convert_to_tensor(inputs, dtype=tf.string)
        if text.shape.rank == 2:
            text = tf.squeeze(text, axis=-1)
        if self.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        return self._op.tokenize(text).to_tensor(default_value=PAD_ID)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0], None), dtype="int32")

    def get_config(self):
        return {
            **super().get_config(),
            "model_base64": self.model_base64,
            "lowercase": self.lowercase,
        }


# ---------------------------------------------------------------------------
# Biological sequences: one vector per letter (DNA, RNA, protein).
# ---------------------------------------------------------------------------

# Letters are looked up by code point below this; every other code point is `unknown`.
_ONE_HOT_CODES = 128


@keras.saving.register_keras_serializable(package="common")
class OneHotAlphabet(keras.layers.Layer):
    """Sequences as strings in, one vector per letter and the mask out.

        string[batch] or string[batch, 1]
          -> float32[batch, time, depth]   the vector of each letter (zeros past the end)
             bool[batch, time]             true for a real letter (right-padded)

    `letters` maps each ASCII letter to its vector of `depth` floats: a one-hot row, or a
    distribution for an ambiguity code (DNA's "N" = [0.25] * 4). With `case_insensitive`
    a lower-case letter reads as its upper case (soft-masked genomes). Any other character
    gets `unknown` (default: zeros); check the letters before they reach the model where a
    wrong one should be an error (`common.sequences.check_letters`). TensorFlow backend
    only; no weights, the table travels in `get_config()`.
    """

    def __init__(
        self,
        letters: dict[str, Sequence[float]],
        unknown: Sequence[float] | None = None,
        case_insensitive: bool = True,
        **kwargs,
    ):
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "OneHotAlphabet needs the TensorFlow backend (KERAS_BACKEND=tensorflow). "
                f"Received: backend={keras.backend.backend()!r}"
            )
        super().__init__(**kwargs)
        if not letters:
            raise ValueError("letters must map at least one letter to its vector")
        depths = {len(v) for v in letters.values()}
        if len(depths) != 1 or unknown is not None and len(unknown) not in depths:
            raise ValueError(f"every vector must have the same length. Received: {letters}")
        bad = [k for k in letters if len(k) != 1 or ord(k) >= _ONE_HOT_CODES]
        if bad:
            raise ValueError(f"letters must be single ASCII characters. Received: {bad}")
        self.letters = {k: [float(x) for x in v] for k, v in letters.items()}
        self.depth = depths.pop()
        self.unknown = [0.0] * self.depth if unknown is None else [float(x) for x in unknown]
        self.case_insensitive = bool(case_insensitive)
        table = np.array([self.unknown] * (_ONE_HOT_CODES + 1), np.float32)
        for letter, vector in self.letters.items():
            table[ord(letter)] = vector
            if self.case_insensitive:
                table[ord(letter.lower())] = vector
                table[ord(letter.upper())] = vector
        self._table = table
        self.built = True

    def call(self, inputs):
        text = tf.convert_to_tensor(inputs, dtype=tf.string)
        if text.shape.rank == 2:
            text = tf.squeeze(text, axis=-1)
        codes = tf.strings.unicode_decode(text, "UTF-8", errors="replace")
        lengths = codes.row_lengths()
        dense = codes.to_tensor(default_value=0)
        known = tf.logical_and(dense >= 0, dense < _ONE_HOT_CODES)
        x = tf.gather(tf.constant(self._table), tf.where(known, dense, _ONE_HOT_CODES))
        mask = tf.sequence_mask(lengths, maxlen=tf.shape(dense)[1])
        return x * tf.cast(mask, x.dtype)[..., None], mask

    def compute_output_spec(self, inputs):
        batch = inputs.shape[0] if len(inputs.shape) else 1
        return (
            keras.KerasTensor((batch, None, self.depth), dtype="float32"),
            keras.KerasTensor((batch, None), dtype="bool"),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "letters": self.letters,
            "unknown": self.unknown,
            "case_insensitive": self.case_insensitive,
        }


def _read_tokenizer_file(path: Path, formats: tuple[str, ...]) -> dict:
    """The JSON object of a tokenizer file whose "format" is one of `formats` (the first
    named in the error) and whose version this code reads; else UserError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: tokenizer file not found") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not a tokenizer file (not UTF-8: {e.reason})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read tokenizer file ({e.strerror})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(
            f"{path}:{e.lineno}: not a tokenizer file (invalid JSON: {e.msg})"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") not in formats:
        raise UserError(f'{path}: not a tokenizer file (expected "format": "{formats[0]}")')
    if obj.get("version") != FILE_VERSION:
        raise UserError(
            f"{path}: tokenizer file version {obj.get('version')!r} is not supported "
            f"(this code reads version {FILE_VERSION})"
        )
    return obj


def load_tokenizer(path: str | os.PathLike) -> Tokenizer | SubwordTokenizer:
    """Read a tokenizer file written by `Tokenizer.save` or `SubwordTokenizer.save`."""
    import base64
    import binascii

    path = Path(path)
    obj = _read_tokenizer_file(path, (FILE_FORMAT, SUBWORD_FORMAT))
    if obj["format"] == FILE_FORMAT:
        return Tokenizer._from_file_json(path, obj)
    try:
        proto = base64.b64decode(obj["sentencepiece_model"], validate=True)
        return SubwordTokenizer(proto, lowercase=bool(obj.get("lowercase")))
    except (KeyError, TypeError, binascii.Error, ValueError) as e:
        raise UserError(f"{path}: corrupt tokenizer file ({e})") from None
