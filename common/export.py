"""`export`: a trained run leaves the project as a self-contained artifact.

    python -m recipes.<name> export --model-dir DIR --output PATH [--format saved_model|litert]

- `saved_model` (default): a TensorFlow SavedModel written by `keras.export.ExportArchive`.
  Its endpoints take raw inputs (strings, sensor arrays, video frames) and return final
  answers (labels, tags, translations, text); every step between -- tokenisation,
  normalisation, windows, decoding, sampling -- is inside the graph, so
  `tf.saved_model.load(PATH)` in any Python with TensorFlow (or TensorFlow Serving) runs it
  without this project. Each recipe's `export.py` builds its endpoints.
- `litert`: a `.tflite` flat buffer of the recipe's core model (where the recipe has one that
  converts), for `tf.lite.Interpreter` / LiteRT on devices.

Writes are atomic: the artifact is written under a hidden temporary name next to PATH and
renamed into place when complete, so an interrupted export leaves nothing at PATH. An
existing PATH is refused unless `overwrite`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from common.cli import EXPORT_FORMATS as FORMATS
from common.errors import UserError


def check_output(output: Path, overwrite: bool) -> None:
    """One-line errors for an output path that cannot be written."""
    if output.exists() and not overwrite:
        raise UserError(f"--output: {output} already exists (add --overwrite to replace it)")
    if not output.parent.is_dir():
        raise UserError(f"--output: the directory {output.parent} does not exist")


def write(
    output: Path,
    fmt: str,
    *,
    overwrite: bool,
    saved_model: Callable[[], object],
    litert: Callable[[], bytes] | None = None,
    litert_unavailable: str = "",
) -> Path:
    """Build and write the artifact of format `fmt` at `output`, atomically.

    saved_model() returns an object with `write_out(path)` (a `keras.export.ExportArchive`);
    litert() returns the `.tflite` bytes, or is None with `litert_unavailable` saying why.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}. Received: {fmt!r}")
    output = Path(output)
    check_output(output, overwrite)
    if fmt == "litert" and litert is None:
        raise UserError(f"--format litert: {litert_unavailable}")
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        if fmt == "saved_model":
            archive = saved_model()
            target = staging / "saved_model"
            archive.write_out(str(target), verbose=False)
        else:
            target = staging / "model.tflite"
            target.write_bytes(litert())
            with open(target, "rb") as fh:
                os.fsync(fh.fileno())
        _replace(target, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def _replace(source: Path, output: Path) -> None:
    """Move the finished `source` to `output`; an existing `output` is replaced."""
    if output.is_dir() and not output.is_symlink():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, old)
        os.replace(source, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, output)
    fd = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def litert_bytes(model) -> bytes:
    """Convert a Keras model with fixed input shapes (`keras.Input(batch_shape=...)`) to a
    `.tflite` flat buffer with its weights frozen in, TFLite builtin ops only (no Flex
    delegate needed). A model the converter cannot lower is a `UserError` quoting it."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the converter lists every capture
            return converter.convert()
    except Exception as e:  # the converter raises ConverterError and others
        lines = [line for line in str(e).splitlines() if "error:" in line] or [str(e)]
        raise UserError(
            f"--format litert: the TFLite converter failed: {lines[-1].strip()}"
        ) from None


def generate_signature() -> list:
    """The inputs of a language model's `generate` endpoint (char_lm, music), all scalars:
    prime string, length int32, temperature float32, seed int32."""
    import tensorflow as tf

    return [
        tf.TensorSpec([], tf.string, name="prime"),
        tf.TensorSpec([], tf.int32, name="length"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="seed"),
    ]


def generic_loops(*roots) -> None:
    """Switch every `common` LSTM/GRU inside `roots` (models and layers, searched through
    `.layers`, wrappers and `Bidirectional`) to Keras's generic loop.

    The XLA fast path would put XLA-compiled functions into the artifact, which TFLite cannot
    convert and TensorFlow Serving runs only with `--xla_cpu_compilation_enabled`; the
    generic loop is a plain `while` loop that runs everywhere, with the same outputs
    (within 1e-5, `tests/common/test_fast_path.py`).
    """
    from common.layers import GRU, LSTM

    stack, seen = list(roots), set()
    while stack:
        layer = stack.pop()
        if layer is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, (LSTM, GRU)):
            layer.implementation = "generic"
        stack.extend(getattr(layer, "layers", None) or [])
        for name in ("layer", "forward_layer", "backward_layer"):
            stack.append(getattr(layer, name, None))


def graph_copy(model, start, inputs, name: str):
    """A new Keras model applying `model`'s graph from its tensor `start` on (any shape of
    graph, weights shared) to `inputs`, e.g. a fixed-batch `keras.Input`, with the recurrent
    layers on the generic loop (it becomes a TFLite WHILE)."""
    import keras

    part = keras.Model(start, model.output)
    generic_loops(part)
    return keras.Model(inputs, part(inputs), name=name)


def labelled(probabilities, class_names):
    """{label: string[batch], probabilities}: the most probable class's name beside them."""
    import tensorflow as tf

    names = tf.constant(list(class_names))
    return {
        "label": tf.gather(names, tf.argmax(probabilities, axis=-1)),
        "probabilities": probabilities,
    }
