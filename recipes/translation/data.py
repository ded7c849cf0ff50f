"""Sentence pairs for the translation recipe: the default date data set, TSV files, TFDS.

Every source gives a list of `(source, target)` string pairs:

- default: human-readable dates written by the CLDR patterns of several locales
  (babel's locale data: "mardi 9 mai 2017", "09.05.17", "May 9, 2017") paired with
  the ISO date ("2017-05-09"). See `date_pairs`.
- a TSV file: `source<TAB>target[<TAB>anything]` per line, the Anki/Tatoeba export
  format (the attribution column is ignored); blank lines are skipped.
- `tfds:NAME[/CONFIG][:SPLIT]`: a TFDS translation set; `source_lang`/`target_lang`
  name its features (default: the data set's supervised keys).

`make_dataset` turns tokenized pairs into padded batches for teacher forcing:

    source   [b, Tx]  ids, right-padded with 0   "9 mai 2017<pad><pad>"
    target_in  [b, Ty]  <bos> y_1 ... y_n <pad>    the decoder's inputs
    target_out [b, Ty]  y_1 ... y_n <eos> <pad>    what it must predict (0 = ignored)
"""

from __future__ import annotations

import dataclasses
import datetime
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common import data as common_data
from common.errors import UserError
from recipes.translation.config import HELDOUT_FILE  # noqa: F401  (re-exported; defined in config)

Pair = tuple[str, str]

# Dates from 1950-01-01 to 2049-12-31: a two-digit year ("17") then names one year only.
FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)
# CLDR standard formats and skeletons; identical patterns within a locale count once.
DATE_FORMATS = ("full", "long", "medium", "short")
DATE_SKELETONS = ("yMMMEd", "yMMMMd", "yMMMd", "yMd", "yMMMMEEEEd", "yMMdd")
_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " ", "\u2009": " "})


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Training and validation pairs and a line saying where they came from."""

    train: list[Pair]
    validation: list[Pair]
    description: str


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """Where a run's pairs came from: the run directory's `data.json`."""

    data: str | None
    validation_data: str | None
    seed: int
    description: str
    source_lang: str | None  # the TFDS features read (None for the dates and TSV files)
    target_lang: str | None
    train_pairs: int
    validation_pairs: int


# ----------------------------------------------------------------------------- dates


def date_patterns(locales: Sequence[str]) -> list[tuple[str, str]]:
    """The distinct `(locale, CLDR pattern)` pairs for the given locales, in a fixed order."""
    from babel import Locale, UnknownLocaleError
    from babel.dates import get_date_format, match_skeleton

    patterns = []
    for code in locales:
        try:
            locale = Locale.parse(code)
        except (UnknownLocaleError, ValueError):
            raise UserError(f"unknown CLDR locale {code!r} in date_locales") from None
        found = [get_date_format(name, locale=locale).pattern for name in DATE_FORMATS]
        for skeleton in DATE_SKELETONS:
            key = match_skeleton(skeleton, locale.datetime_skeletons)
            if key:
                found.append(locale.datetime_skeletons[key].pattern)
        patterns.extend((code, p) for p in dict.fromkeys(found))
    return patterns


def _format(date: datetime.date, locale: str, pattern: str) -> str:
    from babel.dates import format_date

    return format_date(date, format=pattern, locale=locale).translate(_SPACES)


def date_pairs(n: int, locales: Sequence[str], seed: int) -> tuple[list[Pair], int]:
    """`n` distinct (date in words or digits, ISO date) pairs; also how many were dropped.

    Each pair draws a day uniformly from 1950-2049 and a `(locale, pattern)` uniformly
    from `date_patterns(locales)`. Sources that occur twice are kept once, and a
    source that another pattern writes for a different date (en_US "5/9/17" is
    May 9, es_ES "5/9/17" is 5 September) is dropped, so every source has exactly
    one correct ISO target and exact match can reach 100%.
    """
    patterns = date_patterns(locales)
    probe_a, probe_b = datetime.date(2017, 5, 9), datetime.date(2017, 9, 5)
    # Patterns that write some date the way another pattern writes the day/month swap.
    clashes = {
        p: [q for q in patterns if q != p and _format(probe_a, *p) == _format(probe_b, *q)]
        for p in patterns
    }
    rng = random.Random(seed)
    span = (LAST_DATE - FIRST_DATE).days + 1
    seen: set[str] = set()
    pairs: list[Pair] = []
    dropped = 0
    for _ in range(20 * n):
        if len(pairs) == n:
            break
        date = FIRST_DATE + datetime.timedelta(days=rng.randrange(span))
        pattern = patterns[rng.randrange(len(patterns))]
        source = _format(date, *pattern)
        if source in seen:
            continue
        seen.add(source)
        if clashes[pattern] and date.day <= 12 and date.day != date.month:
            swapped = date.replace(month=date.day, day=date.month)
            if any(_format(swapped, *q) == source for q in clashes[pattern]):
                dropped += 1
                continue
        pairs.append((source, date.isoformat()))
    return pairs, dropped


# ----------------------------------------------------------------------------- files


def read_tsv(path: Path) -> list[Pair]:
    """`source<TAB>target[<TAB>...]` lines; blank lines skipped, bad lines raise UserError."""
    text = common_data.read_text(path)
    pairs = []
    for lineno, line in enumerate(text.lstrip("\ufeff").split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            raise UserError(
                f"{path}:{lineno}: expected source<TAB>target, got 1 column: {_clip(line)!r}"
            )
        source, target = columns[0].strip(), columns[1].strip()
        if not source or not target:
            side = "source" if not source else "target"
            raise UserError(f"{path}:{lineno}: empty {side} in {_clip(line)!r}")
        pairs.append((source, target))
    return pairs


def tsv_text(pairs: Sequence[Pair]) -> str:
    """The TSV text of `pairs`, one `source<TAB>target` line each (what `read_tsv` reads)."""
    return "".join(f"{s}\t{t}\n" for s, t in pairs)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------------------- TFDS


def tfds_languages(
    source: common_data.DataSource,
    source_lang: str | None,
    target_lang: str | None,
    *,
    what: str = "--data",
) -> tuple[str, str]:
    """The feature names to read from a TFDS translation set, checked against its metadata."""
    info = common_data.tfds_info(source, what=what)
    keys = info.supervised_keys
    features = sorted(info.features.keys()) if hasattr(info.features, "keys") else []
    if (source_lang is None or target_lang is None) and not (keys and len(keys) == 2):
        raise UserError(
            f"{what}: tfds:{source.name} has no supervised keys; "
            f"give --source-lang and --target-lang (features: {', '.join(features)})"
        )
    src = source_lang or keys[0]
    tgt = target_lang or keys[1]
    for option, lang in (("--source-lang", src), ("--target-lang", tgt)):
        if lang not in features:
            raise UserError(
                f"{option}: tfds:{source.name} has no feature {lang!r} "
                f"(features: {', '.join(features)})"
            )
    if src == tgt:
        raise UserError(f"--source-lang and --target-lang are both {src!r}")
    return src, tgt


def tfds_pairs(
    source: common_data.DataSource, *, split: str, source_lang: str, target_lang: str
) -> list[Pair]:
    """All `(source, target)` strings of one split of a TFDS translation set."""
    import tensorflow_datasets as tfds

    dataset, _ = common_data.tfds_load(source, split=split)
    pairs = []
    for example in tfds.as_numpy(dataset):
        src = _one_line(example[source_lang].decode("utf-8"))
        tgt = _one_line(example[target_lang].decode("utf-8"))
        if src and tgt:
            pairs.append((src, tgt))
    if not pairs:
        raise UserError(
            f"tfds:{source.name}: no non-empty pairs in split {source.split or split!r}"
        )
    return pairs


# ----------------------------------------------------------------------------- corpus


def load_pairs(
    source: common_data.DataSource,
    cfg,
    *,
    seed: int,
    split: str = "train",
    languages: tuple[str, str] | None = None,
) -> list[Pair]:
    """The pairs of one resolved source (default, TSV path or TFDS)."""
    if source.kind == "default":
        return date_pairs(cfg.max_examples, cfg.date_locales, seed)[0]
    if source.kind == "path":
        if source.path.is_dir():
            raise UserError(
                f"{source.path}: is a directory; expected a TSV file of source<TAB>target lines"
            )
        return read_tsv(source.path)
    return tfds_pairs(source, split=split, source_lang=languages[0], target_lang=languages[1])


def load_corpus(
    cfg,
    *,
    data: str | None,
    validation_data: str | None,
    seed: int,
    languages: tuple[str | None, str | None] = (None, None),
) -> tuple[Corpus, tuple]:
    """Resolve and read `--data`/`--validation-data`; returns the corpus and the TFDS languages.

    Without `--validation-data`, `cfg.validation_fraction` of the training pairs are
    held out by a permutation seeded with `seed` (`common.data.split_holdout`).
    Raises UserError for any bad input, before anything is written.
    """
    train_source = common_data.resolve(data, what="--data")
    val_source = common_data.resolve(validation_data, what="--validation-data")
    langs = (None, None)
    if train_source.kind == "tfds" or val_source.kind == "tfds":
        tfds_source = train_source if train_source.kind == "tfds" else val_source
        what = "--data" if train_source.kind == "tfds" else "--validation-data"
        langs = tfds_languages(tfds_source, *languages, what=what)
    elif any(languages):
        raise UserError(
            "--source-lang/--target-lang name the features of a tfds: data set; "
            "a TSV file's columns are source then target"
        )
    if train_source.kind == "default" and val_source.kind == "default":
        pairs, dropped = date_pairs(cfg.max_examples, cfg.date_locales, seed)
        description = (
            f"{len(pairs)} dates written in {len(date_patterns(cfg.date_locales))} "
            f"CLDR patterns of {len(cfg.date_locales)} locales "
            f"({dropped} day/month-ambiguous drawn and dropped)"
        )
    else:
        pairs = load_pairs(train_source, cfg, seed=seed, split="train", languages=langs)
        description = f"{len(pairs)} pairs from {train_source}"
    if val_source.kind == "default":
        train_idx, val_idx = common_data.split_holdout(len(pairs), cfg.validation_fraction, seed)
        train = [pairs[i] for i in train_idx]
        validation = [pairs[i] for i in val_idx]
        description += f"; {len(validation)} held out for validation (seed {seed})"
    else:
        train = pairs
        validation = load_pairs(val_source, cfg, seed=seed, split="validation", languages=langs)
        description += f"; validation: {len(validation)} pairs from {val_source}"
    return Corpus(train, validation, description), langs


# ----------------------------------------------------------------------------- tensors


def encode_pairs(
    pairs: Sequence[Pair], source_tok, target_tok, *, max_source_length: int, max_target_length: int
) -> tuple[list[list[int]], list[list[int]], int]:
    """Token ids of the pairs that fit the length limits; also how many were dropped."""
    sources, targets, dropped = [], [], 0
    for source, target in pairs:
        src = source_tok.encode(source)
        tgt = target_tok.encode(target)
        if not src or not tgt or len(src) > max_source_length or len(tgt) > max_target_length:
            dropped += 1
            continue
        sources.append(src)
        targets.append(tgt)
    return sources, targets, dropped


def _ragged(rows: Sequence[Sequence[int]]):
    import tensorflow as tf

    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(lengths.sum()))
    return tf.RaggedTensor.from_row_lengths(flat, lengths)


def bucket_width(length, bucket: int):
    """`length` rounded up to a multiple of `bucket` (tensor or int)."""
    return (length + bucket - 1) // bucket * bucket


def make_dataset(
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    *,
    batch_size: int,
    training: bool,
    seed: int,
    bos: int,
    eos: int,
    source_bucket: int,
):
    """Batches `((source, target_in), target_out)`, right-padded with 0.

    Both sides are padded to a multiple of `source_bucket` (the target side at most to its
    longest row in the data), so the recurrent layers see a few shapes only (the fast
    LSTM/GRU path compiles once per shape). Training batches are shuffled each epoch and
    all full (the remainder is dropped, a different subset each epoch), and each is drawn
    from pairs of similar target length
    (`bucket_by_sequence_length` with boundaries every `source_bucket` tokens), so little
    of a step is spent on padding; validation batches keep every pair, in order, and are
    filled up to `batch_size` with empty rows, which the masked loss and accuracy ignore.
    """
    import tensorflow as tf

    sources, target_in = list(sources), [[bos, *t] for t in targets]
    target_out = [[*t, eos] for t in targets]
    batch_size = min(batch_size, len(sources))
    if not training:  # whole batches; the filling (weight 0) rows are empty: ignored
        index, weight = common_data.fill_last_batch(len(sources), batch_size)
        sources, target_in, target_out = (
            [rows[i] if w else [0] for i, w in zip(index, weight, strict=True)]
            for rows in (sources, target_in, target_out)
        )
    longest_target = max(len(t) for t in target_in)
    dataset = tf.data.Dataset.from_tensor_slices(
        (_ragged(sources), _ragged(target_in), _ragged(target_out))
    ).map(lambda *rows: tuple(tf.identity(r) for r in rows))  # plain tensors, for padded_batch
    if training:
        dataset = dataset.shuffle(len(sources), seed=seed, reshuffle_each_iteration=True)
        boundaries = list(range(source_bucket + 1, longest_target + 1, source_bucket))
        dataset = dataset.bucket_by_sequence_length(
            lambda source, t_in, t_out: tf.shape(t_in)[0],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            drop_remainder=True,
        )
        # Which bucket a pair falls in depends on its length only, so the number of full
        # batches per epoch is known (Keras then shows progress and does not warn).
        buckets = np.searchsorted(boundaries, [len(t) for t in target_in], side="right")
        full = int(sum(n // batch_size for n in np.bincount(buckets)))
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(full))
    else:
        dataset = dataset.padded_batch(batch_size)

    @tf.autograph.experimental.do_not_convert
    def pad(source, t_in, t_out):
        source = _pad_to(source, bucket_width(tf.shape(source)[1], source_bucket))
        # Never wider than the longest target: data whose targets all have one length
        # (the dates) keep that length.
        width = tf.minimum(bucket_width(tf.shape(t_in)[1], source_bucket), longest_target)
        return (source, _pad_to(t_in, width)), _pad_to(t_out, width)

    return dataset.map(pad, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _pad_to(rows, width):
    """int[b, w] right-padded with 0 to int[b, width] (width >= w)."""
    import tensorflow as tf

    return tf.pad(rows, [[0, 0], [0, width - tf.shape(rows)[1]]])
