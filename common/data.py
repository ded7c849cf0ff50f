"""Where a recipe's data comes from, decided up front.

`--data` takes one of three forms, resolved before anything is trained or
written:

    (omitted)                   the recipe's embedded default: a real data set
                                shipped inside a package from requirements.txt
    path/to/file-or-dir         the user's own files, in the recipe's format
    tfds:NAME[/CONFIG][:SPLIT]  a TensorFlow Datasets data set, e.g.
                                tfds:imdb_reviews, tfds:ted_hrlr_translate/pt_to_en:train

A TFDS source downloads only because the user named it; nothing here tries a
download and falls back to something else on failure (an offline TFDS download
retries for minutes before it fails). TFDS data live in the project's own cache,
`.cache/tensorflow_datasets` (or `$TFDS_DATA_DIR`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import re
import sys
from pathlib import Path
from typing import Literal

import numpy as np

from common.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_TFDS_SPEC = re.compile(
    r"^tfds:(?P<name>[A-Za-z0-9_]+(?:/[A-Za-z0-9_.\-]+)?)(?::(?P<split>[^:]+))?$"
)


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A resolved `--data` value."""

    kind: Literal["default", "path", "tfds"]
    path: Path | None = None
    name: str | None = None
    split: str | None = None

    def __str__(self) -> str:
        if self.kind == "default":
            return "the embedded default data set"
        if self.kind == "path":
            return str(self.path)
        return f"tfds:{self.name}" + (f":{self.split}" if self.split else "")


def tfds_data_dir() -> Path:
    """The TFDS data directory: `$TFDS_DATA_DIR`, else `.cache/tensorflow_datasets` in the project."""
    return Path(os.environ.get("TFDS_DATA_DIR") or PROJECT_ROOT / ".cache" / "tensorflow_datasets")


def resolve(spec: str | os.PathLike | None, *, what: str = "--data") -> DataSource:
    """Resolve a `--data` value to a `DataSource`, checking it exists.

    Unknown TFDS names and missing paths raise `UserError`; the TFDS check reads
    only the registry, never the network.
    """
    if spec is None or str(spec).strip() == "":
        return DataSource("default")
    text = str(spec).strip()
    if text.startswith("tfds:"):
        match = _TFDS_SPEC.match(text)
        if not match:
            raise UserError(f"{what}: expected tfds:NAME[/CONFIG][:SPLIT]. Received: {text!r}")
        source = DataSource("tfds", name=match["name"], split=match["split"])
        tfds_info(source, what=what)  # raises UserError for unknown names or configs
        return source
    path = Path(text).expanduser()
    if not path.exists():
        raise UserError(f"{what}: no such file or directory: {path}")
    return DataSource("path", path=path)


def _tfds_builder(source: DataSource, what: str = "--data"):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(source.name, data_dir=str(tfds_data_dir()))
    except Exception as err:  # DatasetNotFoundError, unknown config (ValueError), ...
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{what}: unknown TFDS data set tfds:{source.name} ({first_line})"
        ) from None


def tfds_info(source: DataSource, *, what: str = "--data"):
    """The `tfds.core.DatasetInfo` of a TFDS source (metadata only, works offline)."""
    return _tfds_builder(source, what).info


def tfds_load(source: DataSource, *, split: str, as_supervised: bool = False):
    """Load a TFDS source: `(tf.data.Dataset, DatasetInfo)`.

    `source.split`, when given on the command line, wins over `split`. The data set
    is downloaded and prepared into `tfds_data_dir()` if it is not there yet.
    """
    builder = _tfds_builder(source)
    chosen = source.split or split
    if not builder.is_prepared():
        print(
            f"Preparing tfds:{source.name} in {tfds_data_dir()} (downloads it once) ...",
            file=sys.stderr,
            flush=True,
        )
        try:
            builder.download_and_prepare()
        except Exception as err:
            raise UserError(
                f"could not download tfds:{source.name}: {type(err).__name__}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else ''} "
                "(is the network reachable? the recipes' default data sets work offline)"
            ) from None
    try:
        dataset = builder.as_dataset(split=chosen, as_supervised=as_supervised)
    except (ValueError, KeyError) as err:
        known = ", ".join(sorted(builder.info.splits.keys()))
        raise UserError(
            f"tfds:{source.name} has no split {chosen!r} (splits: {known}); {err}"
        ) from None
    return dataset, builder.info


def package_file(dist: str, relpath: str) -> Path:
    """A data file shipped inside an installed distribution, found without importing it."""
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(relpath))
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            f"the package {dist!r} that ships the default data set is not installed; run `make venv`"
        ) from None
    if not path.exists():
        raise UserError(f"{dist} does not contain {relpath}; reinstall it with `make venv`")
    return path


def is_number(text: str) -> bool:
    """Whether `float(text)` accepts `text` (for naming the bad field of a line of numbers)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_text(path: os.PathLike, *, encoding: str = "utf-8") -> str:
    """Read a whole text file strictly; bad bytes and empty files raise `UserError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror}") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise UserError(
            f"{path}:{line}: not valid {encoding} (byte 0x{raw[err.start]:02x} at offset {err.start})"
        ) from None
    if not text.strip():
        raise UserError(f"{path}: file is empty")
    return text


def text_files(path: os.PathLike, suffix: str = ".txt") -> list[Path]:
    """`path` itself if it is a file, else the sorted `*suffix` files below it."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
    if not files:
        raise UserError(f"{path}: no {suffix} files in this directory")
    return files


def split_holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of `range(n)` into (train, held-out) index arrays.

    `fraction` of the items (rounded, at least one, and leaving at least one for
    training) are held out. The same (n, fraction, seed) always gives the same split.
    """
    if n < 2:
        raise UserError(f"need at least 2 examples to hold some out for validation, got {n}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1). Received: fraction={fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * fraction)), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def class_directories(
    root: os.PathLike,
    suffixes: tuple[str, ...],
    *,
    skip: tuple[str, ...] = (),
    min_classes: int = 2,
    allow_empty: bool = False,
    what: str = "--data",
) -> dict[str, list[Path]]:
    """A class-per-directory tree: {class name: its files} in sorted order.

    A class is a visible sub-directory of `root` (not named in `skip`) with its
    visible files with one of `suffixes` (lower-cased) anywhere below it. A
    sub-directory without such files is a `UserError` naming it (it would drop a
    class silently), or is passed over with `allow_empty`. Fewer than
    `min_classes` classes raise `UserError`.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{what} {root}: expected a directory with one sub-directory per class")
    classes = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        if directory.name.startswith(".") or directory.name in skip:
            continue
        files = sorted(
            p
            for p in directory.rglob("*")
            if p.is_file()
            and p.suffix.lower() in suffixes
            and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        )
        if files:
            classes[directory.name] = files
        elif not allow_empty:
            raise UserError(f"{directory}: no {'/'.join(suffixes)} files in this class directory")
    if len(classes) < min_classes:
        raise UserError(
            f"{what} {root}: expected one sub-directory of {'/'.join(suffixes)} files per class "
            f"(at least {min_classes}), found {len(classes)}"
        )
    return classes


def balanced_class_weight(labels: np.ndarray) -> dict[int, float]:
    """Keras `class_weight` that makes every class present in `labels` weigh the same.

    scikit-learn's "balanced" weights, n / (classes present * count), for int labels.
    """
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels)
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(k): float(w) for k, w in zip(present, weights, strict=True)}


def fill_last_batch(n: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices and weights that make `n` rows whole batches of `batch_size`.

    Returns (index int64[m], weight float32[m]), m = n rounded up to a multiple of
    `batch_size`: rows 0..n-1 with weight 1, then copies of rows 0, 1, ... with
    weight 0. Gathering every array of a data set with `index` gives batches of
    one shape, so a compiled step (XLA, the fast path) compiles once; pass `weight`
    as the sample weight (or drop the rows after `n`) so the copies count nowhere.
    """
    if n < 0 or batch_size < 1:
        raise ValueError(f"need n >= 0 and batch_size >= 1. Received: n={n}, {batch_size=}")
    m = -(-n // batch_size) * batch_size
    index = np.arange(m, dtype=np.int64) % max(n, 1)
    weight = (np.arange(m) < n).astype(np.float32)
    return index, weight


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int, what: str = "examples"
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) indices with `fraction` of each class's items held out.

    Each class is split with `split_holdout` (seed + class index),
    so every class with two or more items has at least one on each side; a
    class with a single item stays in training.
    """
    labels = np.asarray(labels)
    train_idx, val_idx = [], []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        if len(members) < 2:
            train_idx.extend(members)
            continue
        train, val = split_holdout(len(members), fraction, seed + int(k))
        train_idx.extend(members[train])
        val_idx.extend(members[val])
    if not val_idx:
        raise UserError(
            f"--data: no class has two {what} to hold one out for validation "
            "(add data or pass --validation-data)"
        )
    return np.sort(np.asarray(train_idx)), np.sort(np.asarray(val_idx))


def array_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int):
    """A `tf.data` pipeline of (x as float32, y) batches.

    Training batches (`shuffle`) are reshuffled every epoch and all of one size
    (the remainder differs every epoch), so the step compiles once; validation
    batches keep every example, in order.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=shuffle and len(x) >= 2 * batch_size)
    if x.dtype != np.float32:
        dataset = dataset.map(lambda a, b: (tf.cast(a, tf.float32), b))
    return dataset.prefetch(tf.data.AUTOTUNE)
