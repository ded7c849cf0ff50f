"""Video clips: the offline default, GIF folders, TFDS, and writing GIF clips.

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

Local format (`--data DIR`): one sub-directory per class, one `.gif` clip per
file. TFDS (`--data tfds:ucf101`): any data set with a `video` feature and a
`label` ClassLabel; it downloads only because it was asked for.

`train` writes the validation clips it reports on into the run directory in
the local format (`heldout/<class>/<n>.gif`, at their prepared size), with a
GIF writer that keeps every frame and every grey level (`encode_gif`), so
`evaluate` without --data reads back exactly the clips `train` scored.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from common import data as common_data
from common.errors import UserError

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
CLIP_SUFFIXES = (".gif",)
# The validation clips of a run, a class-per-directory tree inside the run directory.
HELDOUT_FILE = "heldout"


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


def load_clip(path: Path, frames: int, size: int, channels: int) -> np.ndarray:
    """One GIF clip file, prepared for a model: uint8[frames, size, size, channels]."""
    if path.suffix.lower() not in CLIP_SUFFIXES:
        raise UserError(f"{path}: expected a {', '.join(CLIP_SUFFIXES)} clip for a video model")
    return prepare_clip(read_gif(path), frames, size, channels).numpy()


def load_directory(
    root: Path,
    frames: int,
    size: int,
    *,
    channels: int = 3,
    class_names: tuple[str, ...] | None = None,
    what: str = "--data",
) -> VideoData:
    """One sub-directory per class of `.gif` clips (with `class_names`, a model's
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
    """Clips for a resolved non-default `DataSource` (a GIF directory or TFDS)."""
    if source.kind == "tfds":
        return load_tfds(
            source, frames, size, split=split, channels=channels, class_names=class_names, what=what
        )
    return load_directory(
        source.path, frames, size, channels=channels or 3, class_names=class_names, what=what
    )


def _frame_palette(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8[h, w, 1 or 3] -> (colour indices uint8[h, w], palette uint8[256, 3]).

    Exact for grey frames and for colour frames of at most 256 colours; a frame
    with more colours is quantised to 256 (Pillow's median cut), as any GIF is.
    """
    if frame.shape[-1] == 1:
        return frame[..., 0], np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    colours, inverse = np.unique(frame.reshape(-1, 3), axis=0, return_inverse=True)
    if len(colours) > 256:
        from PIL import Image

        image = Image.fromarray(np.ascontiguousarray(frame)).quantize(256)
        index = np.asarray(image, dtype=np.uint8)
        colours = np.asarray(image.getpalette()[:768], dtype=np.uint8).reshape(-1, 3)
    else:
        index = inverse.reshape(frame.shape[:2]).astype(np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colours)] = colours
    return index, palette


def _lzw(index: np.ndarray) -> bytes:
    """GIF image data (LZW, minimum code size 8) for uint8 colour indices, in sub-blocks.

    Every pixel is sent as its own 9-bit code and the code table is cleared every
    250 codes, before it would need 10-bit codes: valid LZW that any decoder reads,
    simple rather than small.
    """
    clear, end = 256, 257
    pixels = index.ravel().astype(np.uint16)
    chunks = [np.concatenate([[clear], pixels[i : i + 250]]) for i in range(0, len(pixels), 250)]
    codes = np.concatenate([*chunks, [end]]).astype(np.uint16)
    bits = (codes[:, None] >> np.arange(9, dtype=np.uint16)) & 1
    data = np.packbits(bits.astype(np.uint8).ravel(), bitorder="little").tobytes()
    blocks = b"".join(
        bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)
    )
    return bytes([8]) + blocks + b"\x00"


def encode_gif(clip: np.ndarray, *, frame_ms: int = 120) -> bytes:
    """uint8[frames, h, w, 1 or 3] as an animated GIF that keeps every frame.

    Each frame is stored whole with its own 256-colour table, and a repeated
    frame stays a frame of its own (Pillow merges repeats, which would change the
    clip), so grey clips, and colour frames of at most 256 colours, decode to
    exactly the same pixels.
    """
    clip = np.asarray(clip, dtype=np.uint8)
    _, height, width, _ = clip.shape
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", width, height, 0x70, 0, 0)  # no global colour table
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for frame in clip:
        index, palette = _frame_palette(frame)
        # Graphic control: disposal 1 (keep), the frame's duration in 1/100 s.
        out += b"\x21\xf9\x04" + struct.pack("<BHBB", 0x04, round(frame_ms / 10), 0, 0)
        # Image descriptor: the whole frame, a local colour table of 256 entries.
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0x87)
        out += palette.tobytes() + _lzw(index)
    out += b"\x3b"
    return bytes(out)


def write_gif(clip: np.ndarray, path: Path, *, frame_ms: int = 120, scale: int = 1) -> Path:
    """Save uint8[frames, h, w, c] as an animated GIF (enlarged `scale` times), atomically.

    At scale 1 reading it back with `load_clip` at the clip's own size gives the same
    array (grey clips always, colour clips when no frame has more than 256 colours).
    """
    from common.runtime import atomic_write

    clip = np.repeat(np.repeat(np.asarray(clip, np.uint8), scale, axis=1), scale, axis=2)
    data = encode_gif(clip, frame_ms=frame_ms)
    return atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def write_heldout(run_dir, data: VideoData) -> Path:
    """Write `data` into the run directory as `HELDOUT_FILE/<class>/<n>.gif` (scale 1).

    The tree is written beside the run directory's old one and swapped in, so
    `evaluate` never sees a mixture of two runs' clips.
    """
    target = run_dir.file(HELDOUT_FILE)
    staging = Path(tempfile.mkdtemp(prefix=f".{HELDOUT_FILE}.", dir=run_dir.path))
    try:
        width = len(str(max(len(data.labels) - 1, 0)))
        for n, (clip, label) in enumerate(zip(data.clips, data.labels, strict=True)):
            write_gif(clip, staging / data.class_names[int(label)] / f"{n:0{width}d}.gif")
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{HELDOUT_FILE}.old.", dir=run_dir.path))
            os.replace(target, old / HELDOUT_FILE)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
