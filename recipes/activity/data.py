"""Sensor recordings: the embedded default, the directory format, windows.

A recording is one file (or one series of the default set): a matrix
float32[time, channels]. Windows are cut from each recording on its own, so
no window ever spans two recordings, and the train/validation split is made
over recordings before any window is cut:

    recording 0  |------------------------------|      -> windows 0..k
                 [ w0 ][ w1 ]...                          (stride apart)
    recording 1  |-------------------|                -> windows k+1..m

Directory format (`--data DIR`): one sub-directory per class, one recording
per file (`.txt`, `.csv`, `.tsv` or `.dat`), one sample per line, channels
separated by whitespace or commas.
Blank lines and lines starting with `#` are skipped; a first line with no
number in it is a header (channel names). Every recording must have the same
number of channels. The directory says nothing about time: give its sample
rate with `--sample-rate HZ` so that windows are cut in seconds.

A recording shorter than one window becomes one window, padded at the end
with NaN: the model masks those steps (`model.PaddedSteps`), so they change
nothing. User files never hold NaN (`parse_recording` refuses non-finite
values), so NaN cannot be mistaken for a sample.

The default data set is seglearn's smartwatch exercise set
(`seglearn/data/watch_dataset.npy`: 140 recordings, 6 channels ax ay az wx wy
wz at 50 Hz, 7 shoulder exercises, 10 subjects). It is stored as a NumPy
pickle, so it is read with `allow_pickle=True`: trusted package data from the
pinned `seglearn==1.2.5` wheel, the only file this recipe ever unpickles.
User files are parsed as text.

`train` writes the validation recordings it reports on into the run directory
in this same format (`heldout/<class>/<n>-<name>.txt`, every value written so
that it reads back bit for bit); `evaluate` without --data reads them back
through `load`, like any other directory.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np

from common import data as common_data
from common.errors import UserError
from recipes.activity.config import HELDOUT_FILE

DEFAULT_DESCRIPTION = "seglearn watch_dataset (smartwatch shoulder exercises, 50 Hz)"
DEFAULT_RATE = 50.0
_WATCH_FILE = ("seglearn", "seglearn/data/watch_dataset.npy")
# The recording files of a class directory.
RECORDING_SUFFIXES = (".txt", ".csv", ".tsv", ".dat")


@dataclasses.dataclass(frozen=True)
class Recording:
    """One recording: `values` float32[time, channels] and its class index.

    `source` names where it came from (a file path, or `watch_dataset.npy#12`);
    `last_line` is the line of its last sample in that file (None for the
    default set), so errors can point at file and line.
    """

    values: np.ndarray
    label: int
    source: str
    last_line: int | None = None

    def where(self) -> str:
        return f"{self.source}:{self.last_line}" if self.last_line else self.source


@dataclasses.dataclass(frozen=True)
class SensorData:
    recordings: tuple[Recording, ...]
    class_names: tuple[str, ...]
    channel_names: tuple[str, ...] | None = None
    # Samples per second when the source says (the default set), else None.
    sample_rate: float | None = None

    @property
    def channels(self) -> int:
        return int(self.recordings[0].values.shape[1])

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.recordings], dtype=np.int64)

    def subset(self, indices) -> SensorData:
        return dataclasses.replace(self, recordings=tuple(self.recordings[int(i)] for i in indices))


# --------------------------------------------------------------------------- parsing


def _fields(line: str) -> list[str]:
    if "," in line:
        return [f.strip() for f in line.split(",")]
    return line.split()


def parse_recording(text: str, source: str) -> tuple[np.ndarray, int, tuple[str, ...] | None]:
    """Parse one recording file's text.

    Returns (values float32[time, channels], line of the last sample, header
    names or None). Raises UserError naming `source:line` for a non-numeric
    or non-finite value, an empty field, or a line whose channel count differs
    from the first sample line.
    """
    rows: list[list[float]] = []
    header: tuple[str, ...] | None = None
    width = first_line = last_line = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = _fields(line)
        if not rows and header is None and not any(common_data.is_number(f) for f in fields):
            header = tuple(fields)
            continue
        if not width:
            width, first_line = len(fields), lineno
            if header is not None and len(header) != width:
                raise UserError(
                    f"{source}:{lineno}: expected {len(header)} channels as in the header, "
                    f"got {width}"
                )
        elif len(fields) != width:
            raise UserError(
                f"{source}:{lineno}: expected {width} channels (as on line {first_line}), "
                f"got {len(fields)}"
            )
        row = []
        for field in fields:
            if not field:
                raise UserError(f"{source}:{lineno}: empty value in {line!r}")
            try:
                value = float(field)
            except ValueError:
                raise UserError(f"{source}:{lineno}: not a number: {field!r}") from None
            if not math.isfinite(value):
                raise UserError(f"{source}:{lineno}: not a finite number: {field!r}")
            row.append(value)
        rows.append(row)
        last_line = lineno
    if not rows:
        raise UserError(f"{source}: no samples (expected one line of numbers per sample)")
    return np.asarray(rows, dtype=np.float32), last_line, header


def read_recording(path: Path) -> tuple[np.ndarray, int, tuple[str, ...] | None]:
    """Read and parse one recording file (see `parse_recording`)."""
    return parse_recording(common_data.read_text(path), str(path))


def _class_index(name: str, class_names: tuple[str, ...] | None, where: Path) -> int | None:
    if class_names is None:
        return None
    if name not in class_names:
        raise UserError(
            f"{where}: unknown class {name!r}; the model knows {', '.join(class_names)}"
        )
    return class_names.index(name)


def load_directory(
    root: Path, *, class_names: tuple[str, ...] | None = None, what: str = "--data"
) -> SensorData:
    """Read a directory with one sub-directory per class of recording files.

    With `class_names` (a trained model's classes) every sub-directory must be
    one of them and the labels use the model's indices; otherwise the classes
    are the sorted sub-directory names.
    """
    classes = common_data.class_directories(
        root, RECORDING_SUFFIXES, what=what, min_classes=1 if class_names else 2
    )
    names = class_names or tuple(classes)
    recordings: list[Recording] = []
    channel_names = None
    first: Recording | None = None
    for position, (name, files) in enumerate(classes.items()):
        index = _class_index(name, class_names, Path(root) / name)
        label = position if index is None else index
        for path in files:
            values, last_line, header = read_recording(path)
            recording = Recording(values, label, str(path), last_line)
            if first is None:
                first, channel_names = recording, header
            elif values.shape[1] != first.values.shape[1]:
                raise UserError(
                    f"{recording.where()}: {values.shape[1]} channels, but "
                    f"{first.source} has {first.values.shape[1]}"
                )
            recordings.append(recording)
    return SensorData(tuple(recordings), tuple(names), channel_names)


def load_default() -> SensorData:
    """The seglearn smartwatch exercise recordings (trusted package pickle)."""
    path = common_data.package_file(*_WATCH_FILE)
    try:
        raw = np.load(path, allow_pickle=True).item()
        series, labels = raw["X"], raw["y"]
        class_names = tuple(str(n) for n in raw["y_labels"])
        channel_names = tuple(str(n) for n in raw["X_labels"])
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: unreadable ({err}); reinstall with make venv") from None
    recordings = tuple(
        Recording(np.asarray(x, dtype=np.float32), int(y), f"{path.name}#{i}")
        for i, (x, y) in enumerate(zip(series, labels, strict=True))
    )
    return SensorData(recordings, class_names, channel_names, DEFAULT_RATE)


def load(source, *, class_names: tuple[str, ...] | None = None, what: str = "--data") -> SensorData:
    """Sensor data for a resolved `common.data.DataSource`."""
    if source.kind == "default":
        data = load_default()
        if class_names is not None and tuple(class_names) != data.class_names:
            raise UserError(
                f"{what}: the default data set's classes {', '.join(data.class_names)} "
                f"differ from the model's {', '.join(class_names)}"
            )
        return data
    if source.kind == "tfds":
        raise UserError(
            f"{what} {source}: no TensorFlow Datasets source holds sensor recordings in this "
            "format; bring them as a directory (see recipes/activity/README.md)"
        )
    return load_directory(source.path, class_names=class_names, what=what)


def format_recording(values: np.ndarray, header: tuple[str, ...] | None = None) -> str:
    """One recording file's text: an optional header line, then one sample per line.

    Each float32 value is written as the shortest decimal that reads back as the
    same float32, so `parse_recording(format_recording(v))` gives `v` bit for bit.
    Fields are comma-separated, so header names with spaces round-trip too.
    """
    values = np.asarray(values, dtype=np.float32)
    lines = [",".join(header)] if header else []
    lines += [",".join(str(v) for v in row) for row in values]
    return "\n".join(lines) + "\n"


def write_heldout(run_dir, data: SensorData) -> Path:
    """Write `data` into the run directory as `HELDOUT_FILE/<class>/<n>-<name>.txt`,
    as a whole (`RunDir.write_tree`)."""
    files = {}
    for n, recording in enumerate(data.recordings):
        stem = Path(recording.source).name
        if Path(stem).suffix.lower() in RECORDING_SUFFIXES:
            stem = Path(stem).stem
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)
        name = f"{data.class_names[recording.label]}/{n:04d}-{stem}.txt"
        files[name] = format_recording(recording.values, data.channel_names).encode("utf-8")
    return run_dir.write_tree(HELDOUT_FILE, files)


# --------------------------------------------------------------------------- windows


def resolve_rate(
    data: SensorData, given: float | None, what: str = "--sample-rate"
) -> float | None:
    """The sample rate of `data`: `given` (--sample-rate) or the one the source knows.

    A given rate that contradicts the source's own is a one-line error.
    """
    if given is not None and data.sample_rate is not None and given != data.sample_rate:
        raise UserError(f"{what} {given:g}: this data set is sampled at {data.sample_rate:g} Hz")
    return given if given is not None else data.sample_rate


def short_recordings(data: SensorData, window: int) -> int:
    """How many recordings are shorter than one window (each becomes one padded window)."""
    return sum(len(r.values) < window for r in data.recordings)


def check_channels(data: SensorData, channels: int, expected_by: str = "the model") -> None:
    """Every recording must have `channels` channels (those `expected_by` has)."""
    for recording in data.recordings:
        if recording.values.shape[1] != channels:
            raise UserError(
                f"{recording.where()}: {recording.values.shape[1]} channels, "
                f"{expected_by} has {channels}"
            )


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start indices of the windows of one recording; the tail shorter than a stride is
    dropped. A recording shorter than one window has one window, at 0 (padded)."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be positive. Received: {window=}, {stride=}")
    return np.arange(0, max(length - window + 1, 1), stride, dtype=np.int64)


def recording_windows(values: np.ndarray, window: int, stride: int) -> np.ndarray:
    """float32[n_windows, window, channels] cut from one recording; a recording shorter
    than `window` gives one window padded at the end with NaN (masked by the model)."""
    values = np.asarray(values, dtype=np.float32)
    if len(values) < window:
        pad = np.full((window - len(values), values.shape[1]), np.nan, dtype=np.float32)
        values = np.concatenate([values, pad])
    starts = window_starts(len(values), window, stride)
    return values[starts[:, None] + np.arange(window)[None, :]]


def make_windows(
    data: SensorData, window: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of every recording.

    Returns (x float32[n, window, channels], y int64[n], recording int64[n]):
    `recording[i]` is the index in `data.recordings` window i was cut from.
    """
    xs, ys, owners = [], [], []
    for index, recording in enumerate(data.recordings):
        windows = recording_windows(recording.values, window, stride)
        xs.append(windows)
        ys.append(np.full(len(windows), recording.label, dtype=np.int64))
        owners.append(np.full(len(windows), index, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(owners)


def normalization_stats(data: SensorData) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance over every sample of these recordings.

    Called on the training recordings only; the result goes into the model's
    `Normalization` layer, so it is saved (and reloaded) with the model.
    """
    samples = np.concatenate([r.values for r in data.recordings]).astype(np.float64)
    mean, var = samples.mean(axis=0), samples.var(axis=0)
    return mean.astype(np.float32), np.maximum(var, 1e-12).astype(np.float32)


def split(data: SensorData, fraction: float, seed: int) -> tuple[SensorData, SensorData]:
    """Seeded split by recording, stratified by class (windows are cut afterwards)."""
    train_idx, val_idx = common_data.stratified_holdout(data.labels, fraction, seed, "recordings")
    return data.subset(train_idx), data.subset(val_idx)
