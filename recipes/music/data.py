"""Tunes in, token ids out: the corpora, the split, the vocabulary and the batches.

Default data: the ABC folk-tune collections inside the installed `music21` package,
`music21/corpus/essenFolksong/*.abc` (Essen folk song collection, about 8,500 tunes) and
`music21/corpus/oneills1850/*.abc` (O'Neill's Music of Ireland, about 2,000 tunes), read
as text files, never imported. `--data` takes an `.abc` file or a folder of them instead.

Every `X:` record is tokenised (`abc.tokenize`); a tune it does not cover is skipped and
counted, never fatal. Duplicates (the same tokens, e.g. a tune in two collections) are
removed before a seeded split by tune holds `validation_fraction` of them out.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from common import data as common_data
from common.errors import UserError
from common.tokenization import BOS, EOS, SPECIALS, Tokenizer
from recipes.music import abc
from recipes.music.config import HELDOUT_FILE

__all__ = ["HELDOUT_FILE", "Tunes", "load", "split", "build_tokenizer", "encode", "dataset"]

DEFAULT_COLLECTIONS = ("music21/corpus/essenFolksong", "music21/corpus/oneills1850")


@dataclasses.dataclass(frozen=True)
class Tunes:
    tunes: list[list[str]]  # tokens of each distinct tune, in file order
    origin: str
    records: int  # X: records read
    skipped: Counter  # reason -> tunes left out
    duplicates: int

    def describe(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in self.skipped.most_common(3))
        left_out = sum(self.skipped.values())
        return (
            f"{self.origin}: {self.records} tunes read, {len(self.tunes)} used; "
            f"{self.duplicates} duplicates removed"
            + (
                f"; {left_out} skipped ({reasons}{', ...' if len(self.skipped) > 3 else ''})"
                if left_out
                else ""
            )
        )


def _files(source) -> tuple[list[Path], str]:
    if source.kind == "default":
        roots = [common_data.package_file("music21", rel) for rel in DEFAULT_COLLECTIONS]
        files = [f for root in roots for f in sorted(root.glob("*.abc"))]
        return files, "music21 corpus: essenFolksong + oneills1850"
    if source.kind != "path":
        raise UserError(f"--data: music reads ABC files (.abc, X: records). Received: {source}")
    return common_data.text_files(source.path, suffix=".abc"), str(source.path)


def load(source, *, max_tokens: int, max_examples: int | None = None) -> Tunes:
    """Read, tokenise and de-duplicate every tune of `source` (a `common.data.DataSource`)."""
    files, origin = _files(source)
    tunes, seen, skipped, records, duplicates = [], set(), Counter(), 0, 0
    for path in files:
        for record in abc.split_tunes(common_data.read_text(path)):
            records += 1
            try:
                tokens = abc.tokenize(record)
            except abc.ParseError as err:
                skipped[str(err).split(" '")[0]] += 1
                continue
            if len(tokens) + 1 > max_tokens:
                skipped[f"longer than {max_tokens} tokens"] += 1
                continue
            if tuple(tokens) in seen:
                duplicates += 1
                continue
            seen.add(tuple(tokens))
            tunes.append(tokens)
            if max_examples and len(tunes) >= max_examples:
                break
        if max_examples and len(tunes) >= max_examples:
            break
    if records == 0:
        raise UserError(f"{origin}: no ABC tunes (no line starts with X:)")
    if not tunes:
        raise UserError(
            f"{origin}: none of the {records} tunes could be read "
            f"({', '.join(f'{n} {why}' for why, n in skipped.most_common(3))})"
        )
    return Tunes(tunes, origin, records, skipped, duplicates)


def split(tunes: list, fraction: float, seed: int) -> tuple[list, list]:
    """Seeded (train, held-out) tunes."""
    train_idx, held_idx = common_data.split_holdout(len(tunes), fraction, seed)
    return [tunes[i] for i in train_idx], [tunes[i] for i in held_idx]


def format_abc(tunes: list) -> str:
    """Tunes as one ABC file, numbered from 1 (`load` reads it back to the same tokens)."""
    return "\n".join(abc.render(t, number=i + 1) for i, t in enumerate(tunes))


def augment(tunes: list, copies: int, seed: int) -> list:
    """`tunes` plus each in `copies` other keys (distinct seeded shifts of -5 .. +6
    semitones; a shift the key cannot be spelled in is left out)."""
    if copies <= 0:
        return list(tunes)
    rng = np.random.default_rng(seed)
    shifts = np.array([s for s in range(-5, 7) if s != 0])
    out = list(tunes)
    for tune in tunes:
        for shift in rng.choice(shifts, size=min(copies, len(shifts)), replace=False):
            moved = abc.transpose(tune, int(shift))
            if moved is not None:
                out.append(moved)
    return out


def build_tokenizer(tunes: list) -> Tokenizer:
    """The four specials, then every token of the training tunes, most frequent first."""
    counts = Counter(t for tune in tunes for t in tune)
    return Tokenizer([*SPECIALS, *sorted(counts, key=lambda t: (-counts[t], t))], level="word")


def encode(tok: Tokenizer, tokens: list[str]) -> list[int]:
    """<bos> tokens <eos> as ids; unknown tokens become <unk>."""
    return [tok.token_to_id(BOS), *map(tok.token_to_id, tokens), tok.token_to_id(EOS)]


def dataset(sequences: list, *, batch_size: int, length_multiple: int, shuffle: bool, seed: int):
    """Batches `(ids[:, :-1], ids[:, 1:], weights)` of similar-length tunes.

    Tunes are grouped by length and each batch is padded with <pad> (id 0, weight 0) to the
    next multiple of `length_multiple` tokens, so the compiled recurrent kernels see a few
    shapes and little padding. Training (`shuffle`) reshuffles every epoch and drops each
    bucket's incomplete last batch (those tunes come back in other epochs); otherwise every
    tune is in exactly one batch, so the weighted mean loss is the loss per token.
    """
    import tensorflow as tf

    lengths = [len(s) for s in sequences]
    padded = np.zeros((len(sequences), max(lengths)), np.int32)
    for row, ids in zip(padded, sequences, strict=True):
        row[: len(ids)] = ids
    ds = tf.data.Dataset.from_tensor_slices((padded, np.array(lengths, np.int32)))
    if shuffle:
        ds = ds.shuffle(len(sequences), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda ids, n: ids[:n], num_parallel_calls=tf.data.AUTOTUNE)
    longest = max(lengths)
    boundaries = list(range(length_multiple + 2, longest + length_multiple + 1, length_multiple))
    boundaries = boundaries or [longest + 1]
    ds = ds.bucket_by_sequence_length(
        lambda ids: tf.shape(ids)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=True,  # length boundary - 1 = a multiple of length_multiple, + 1
        drop_remainder=shuffle,
    )

    def to_example(ids):
        inputs, targets = ids[:, :-1], ids[:, 1:]
        return inputs, targets, tf.cast(targets > 0, tf.float32)

    per_bucket = Counter(bisect.bisect_right(boundaries, n) for n in lengths)
    batches = sum(n // batch_size if shuffle else -(-n // batch_size) for n in per_bucket.values())
    if batches == 0:
        raise UserError(
            f"{len(sequences)} tunes make no whole batch of {batch_size} in any length group; "
            "use a smaller --batch-size"
        )
    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)
