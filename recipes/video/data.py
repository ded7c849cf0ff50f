"""Video clips: the offline default, folders of .gif or .npy clips, TFDS, writing clips.

Every source ends up as the same thing: uint8[clips, frames, size, size,
channels] with one label per clip. A clip of any length and size is brought
to `frames` evenly spaced frames resized to `size` x `size` (`prepare_clip`),
so the clips fit in memory even for UCF101 at the preset sizes.

Offline default, "moving digits": real handwritten digits (scikit-learn's
bundled `digits.csv.gz`, 1,797 8x8 images) moved across a blank frame by
TFDS's `image_as_moving_sequence` helper. The class is the motion pattern,
one of eight compass directions; the digit itself is irrelevant, so a single
frame cannot tell the class, only the change between frames can. Start and
speed are drawn so the digit never bounces off an edge within a clip. The
train/validation split is made over digit images, so validation clips show
digits the model never saw.

Local format (`--data DIR`): one sub-directory per class, one clip per file:
an animated `.gif`, or a NumPy `.npy` array uint8[frames, h, w] or
uint8[frames, h, w, 1 or 3] (read with `allow_pickle=False`). TFDS (`--data
tfds:ucf101`): any data set with a `video` feature and a `label` ClassLabel; it
downloads only because it was asked for.

`train` writes the validation clips it reports on into the run directory in
the local format, as `.npy` at their prepared size (`heldout/<class>/<n>.npy`):
lossless, where a GIF has at most 256 colours a frame and GIF writers merge
repeated frames. So `evaluate` without --data reads back exactly the clips
`train` scored.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
from pathlib import Path

import numpy as np

from common import data as common_data
from common.errors import UserError
from recipes.video.config import HELDOUT_FILE

DEFAULT_DESCRIPTION = "moving digits (scikit-learn digits moved by tfds image_as_moving_sequence)"
_DIGITS_FILE = ("scikit-learn", "sklearn/datasets/data/digits.csv.gz")
# (name, (d_row, d_col)): rows grow downwards, columns to the right.
MOTIONS = (
    ("right", (0, 1)),
    ("left", (0, -1)),
    ("down", (1, 0)),
    ("up", (-1, 0)),
    ("down-right", (1, 1)),
    ("down-left", (1, -1)),
    ("up-right", (-1, 1)),
    ("up-left", (-1, -1)),
)
CLIP_SUFFIXES = (".gif", ".npy")


@dataclasses.dataclass(frozen=True)
class VideoData:
    """clips uint8[n, frames, size, size, channels], labels int64[n], one source name per clip."""

    clips: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def channels(self) -> int:
        return int(self.clips.shape[-1])

    def subset(self, indices) -> VideoData:
        indices = np.asarray(indices, dtype=np.int64)
        return VideoData(
            self.clips[indices],
            self.labels[indices],
            self.class_names,
            tuple(self.sources[i] for i in indices),
        )


def prepare_clip(video, frames: int, size: int, channels: int):
    """uint8[n, h, w, c] (any n >= 1, h, w, c in {1, 3}) -> uint8[frames, size, size, channels].

    Picks `frames` evenly spaced frames (repeating frames of a short clip),
    resizes them by area averaging (exact for whole-number shrink factors) and
    converts grey <-> RGB as needed.
    """
    import tensorflow as tf

    video = tf.convert_to_tensor(video)
    n = tf.shape(video)[0]
    index = tf.cast(tf.round(tf.linspace(0.0, tf.cast(n - 1, tf.float32), frames)), tf.int32)
    clip = tf.image.resize(tf.gather(video, index), (size, size), method="area")
    if clip.shape[-1] == 3 and channels == 1:
        clip = tf.image.rgb_to_grayscale(clip)
    elif clip.shape[-1] == 1 and channels == 3:
        clip = tf.image.grayscale_to_rgb(clip)
    return tf.cast(tf.clip_by_value(tf.round(clip), 0.0, 255.0), tf.uint8)


# --------------------------------------------------------------------------- default


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as uint8[1797, 8, 8, 1] (0..255) and their digit labels."""
    path = common_data.package_file(*_DIGITS_FILE)
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",")
    images = np.round(table[:, :64] * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 8, 8, 1)
    return images, table[:, 64].astype(np.int64)


def _trajectories(labels: np.ndarray, frames: int, rng: np.random.Generator):
    """Start positions and velocities (normalised, see `image_as_moving_sequence`)
    that keep the whole trajectory inside [0, 1], so the digit never bounces."""
    directions = np.array([d for _, d in MOTIONS], dtype=np.float32)[labels]
    steps = max(frames - 1, 1)
    speed = rng.uniform(0.6, 1.0, size=(len(labels), 1)).astype(np.float32) / steps
    travel = speed * steps
    low = np.where(directions < 0, travel, 0.0)
    high = np.where(directions > 0, 1.0 - travel, 1.0)
    start = low + rng.uniform(size=directions.shape).astype(np.float32) * (high - low)
    return start.astype(np.float32), (directions * speed).astype(np.float32)


def moving_digits(
    images: np.ndarray, count: int, frames: int, size: int, seed: int, source: str = "digits"
) -> VideoData:
    """`count` clips, classes balanced, made from `images` (used in turn)."""
    import tensorflow as tf
    from tensorflow_datasets.video import moving_sequence

    if size <= images.shape[1]:
        raise UserError(f"frame_size {size} must exceed the digit size {images.shape[1]}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(MOTIONS)).astype(np.int64)
    picks = rng.permutation(np.arange(count) % len(images))
    start, velocity = _trajectories(labels, frames, rng)

    def make(image, start_position, speed):
        return moving_sequence.image_as_moving_sequence(
            image,
            sequence_length=frames,
            output_size=(size, size),
            velocity=speed,
            start_position=start_position,
        ).image_sequence

    dataset = tf.data.Dataset.from_tensor_slices((images[picks], start, velocity))
    dataset = dataset.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    clips = np.concatenate([batch.numpy() for batch in dataset.batch(512)])
    sources = tuple(f"{source}#{int(i)}" for i in picks)
    return VideoData(clips, labels, tuple(name for name, _ in MOTIONS), sources)


def default_split(
    count: int, frames: int, size: int, fraction: float, seed: int
) -> tuple[VideoData, VideoData]:
    """Moving-digit clips split by digit image: validation clips use unseen digits."""
    images, _ = digit_images()
    train_idx, val_idx = common_data.split_holdout(len(images), fraction, seed)
    n_val = max(len(MOTIONS), round(count * fraction))
    train = moving_digits(images[train_idx], count - n_val, frames, size, seed)
    val = moving_digits(images[val_idx], n_val, frames, size, seed + 1)
    return train, val


def default_data(count: int, frames: int, size: int, seed: int) -> VideoData:
    """Moving-digit clips from all digit images (when --data or --validation-data is
    the default and the other is given)."""
    images, _ = digit_images()
    return moving_digits(images, count, frames, size, seed)


# --------------------------------------------------------------------------- files and TFDS


def read_gif(path: Path):
    """Decode a GIF file to uint8[frames, h, w, 3]; unreadable -> UserError naming the file."""
    import tensorflow as tf

    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror}") from None
    if not raw:
        raise UserError(f"{path}: file is empty")
    try:
        video = tf.io.decode_gif(raw)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
        message = str(err.message if hasattr(err, "message") else err).strip().splitlines()[0]
        raise UserError(f"{path}: not a readable GIF clip ({message[:200]})") from None
    if int(video.shape[0]) == 0:
        raise UserError(f"{path}: the GIF has no frames")
    return video


def read_npy(path: Path) -> np.ndarray:
    """A `.npy` clip as uint8[frames, h, w, 1 or 3]; anything else -> UserError naming the file."""
    try:
        clip = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"{path}: not a readable .npy array ({str(err)[:200]})") from None
    if clip.ndim == 3:
        clip = clip[..., None]
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] not in (1, 3):
        raise UserError(
            f"{path}: expected a uint8 array [frames, height, width(, 1 or 3)]. "
            f"Received: {clip.dtype}{list(clip.shape)}"
        )
    if clip.shape[0] == 0:
        raise UserError(f"{path}: the clip has no frames")
    return clip


def load_clip(path: Path, frames: int, size: int, channels: int) -> np.ndarray:
    """One clip file (.gif or .npy), prepared for a model: uint8[frames, size, size, channels]."""
    suffix = path.suffix.lower()
    if suffix not in CLIP_SUFFIXES:
        raise UserError(f"{path}: expected a {' or '.join(CLIP_SUFFIXES)} clip for a video model")
    video = read_npy(path) if suffix == ".npy" else read_gif(path)
    return prepare_clip(video, frames, size, channels).numpy()


def load_directory(
    root: Path,
    frames: int,
    size: int,
    *,
    channels: int = 3,
    class_names: tuple[str, ...] | None = None,
    what: str = "--data",
) -> VideoData:
    """One sub-directory per class of `.gif` or `.npy` clips (with `class_names`, a model's
    classes, one class is enough: evaluating on a single class is fine)."""
    classes = common_data.class_directories(
        root, CLIP_SUFFIXES, what=what, min_classes=1 if class_names else 2
    )
    names = class_names or tuple(classes)
    clips, labels, sources = [], [], []
    for position, (name, files) in enumerate(classes.items()):
        if class_names is not None and name not in class_names:
            raise UserError(
                f"{Path(root) / name}: unknown class {name!r}; the model knows "
                f"{', '.join(class_names)}"
            )
        label = position if class_names is None else class_names.index(name)
        for path in files:
            clips.append(load_clip(path, frames, size, channels))
            labels.append(label)
            sources.append(str(path))
    return VideoData(
        np.stack(clips), np.array(labels, dtype=np.int64), tuple(names), tuple(sources)
    )


def load_tfds(
    source,
    frames: int,
    size: int,
    *,
    split: str = "train",
    channels: int | None = None,
    class_names: tuple[str, ...] | None = None,
    what: str = "--data",
) -> VideoData:
    """A TFDS video data set (e.g. `tfds:ucf101`): a `video` feature and a `label` ClassLabel."""
    import tensorflow as tf

    info = common_data.tfds_info(source, what=what)
    features = info.features
    if (
        "video" not in features
        or "label" not in features
        or not hasattr(features["label"], "names")
    ):
        raise UserError(
            f"{what} {source}: expected a `video` feature and a `label` "
            f"ClassLabel; it has {', '.join(features.keys())}"
        )
    names = tuple(features["label"].names)
    if class_names is not None and names != tuple(class_names):
        raise UserError(
            f"{what} {source}: its {len(names)} classes differ from the model's {len(class_names)}"
        )
    if channels is None:
        channels = int(features["video"].shape[-1] or 3)
    dataset, _ = common_data.tfds_load(source, split=split)
    dataset = dataset.map(
        lambda ex: (prepare_clip(ex["video"], frames, size, channels), ex["label"]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    clips, labels = [], []
    for clip, label in dataset.batch(256).prefetch(2):
        clips.append(clip.numpy())
        labels.append(label.numpy())
    if not clips:
        raise UserError(f"{what} {source}: no examples in split {source.split or split!r}")
    clips = np.concatenate(clips)
    sources = tuple(f"{source}#{i}" for i in range(len(clips)))
    return VideoData(clips, np.concatenate(labels).astype(np.int64), names, sources)


def load(
    source,
    frames: int,
    size: int,
    *,
    channels: int | None = None,
    class_names: tuple[str, ...] | None = None,
    split: str = "train",
    what: str = "--data",
) -> VideoData:
    """Clips for a resolved non-default `DataSource` (a clip directory or TFDS)."""
    if source.kind == "tfds":
        return load_tfds(
            source, frames, size, split=split, channels=channels, class_names=class_names, what=what
        )
    return load_directory(
        source.path, frames, size, channels=channels or 3, class_names=class_names, what=what
    )


def write_gif(clip: np.ndarray, path: Path, *, frame_ms: int = 120, scale: int = 4) -> Path:
    """Save uint8[frames, h, w, c] as an animated GIF (enlarged `scale` times), atomically,
    for looking at (Pillow merges repeated frames; `.npy` is the lossless clip format)."""
    from PIL import Image

    from common.runtime import atomic_write

    frames = clip[..., 0] if clip.shape[-1] == 1 else clip
    images = [
        Image.fromarray(np.ascontiguousarray(f)).resize(
            (f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST
        )
        for f in frames
    ]

    def write(tmp):
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=frame_ms,
            loop=0,
            optimize=False,
            disposal=1,
        )

    return atomic_write(Path(path), write)


def npy_bytes(clip: np.ndarray) -> bytes:
    """uint8[frames, h, w, c] as the bytes of a `.npy` file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(clip, np.uint8), allow_pickle=False)
    return buffer.getvalue()


def write_heldout(run_dir, data: VideoData) -> Path:
    """Write `data` into the run directory as `HELDOUT_FILE/<class>/<n>.npy`, as a whole
    (`RunDir.write_tree`)."""
    for name in data.class_names:
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise UserError(
                f"class {name!r} cannot be a directory name, which the held-out tree "
                f"({HELDOUT_FILE}/<class>/) needs; rename the class"
            )
    width = len(str(max(len(data.labels) - 1, 0)))
    files = {
        f"{data.class_names[int(label)]}/{n:0{width}d}.npy": npy_bytes(clip)
        for n, (clip, label) in enumerate(zip(data.clips, data.labels, strict=True))
    }
    return run_dir.write_tree(HELDOUT_FILE, files)
