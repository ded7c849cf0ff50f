"""`export`: the activity recogniser as a SavedModel (whole recordings in, activities out)
or its window model as a LiteRT file.

SavedModel endpoint, everything of `predict` inside the graph:

    serve(recording: float32[batch, time, channels])
        -> {label: string[batch], probabilities: float32[batch, classes]}

The recordings of one call share their length `time` (call once per recording otherwise).
Each is cut into the model's windows (`window` samples every `stride`, the tail shorter
than a stride dropped, as in `predict`), every window is classified (the normalisation
fitted on the training recordings is the model's first layer), and the label is the
majority vote of the windows (ties to the higher mean probability); `probabilities` are
the mean window probabilities. A recording with fewer samples than one window is one
window, padded with NaN and masked, as in `predict`.

LiteRT (`--format litert`): the window model, `window float32[1, window, channels]` ->
`probabilities float32[1, classes]`; cutting windows and voting stay with the caller.
"""

from __future__ import annotations

from pathlib import Path

from recipes.activity.predict import ModelInfo


def _load(model_dir: Path):
    from common import runtime

    return runtime.load_model(model_dir), ModelInfo.read(model_dir)


def archive(model_dir: Path):
    """A `keras.export.ExportArchive` with the `serve` endpoint."""
    import keras
    import tensorflow as tf

    from common.export import generic_loops, labelled

    model, info = _load(model_dir)
    generic_loops(model)
    classes = len(info.class_names)

    def serve(recording):
        # A recording shorter than one window is one window padded with NaN (masked).
        short = tf.maximum(info.window - tf.shape(recording)[1], 0)
        recording = tf.pad(recording, [[0, 0], [0, short], [0, 0]], constant_values=float("nan"))
        windows = tf.signal.frame(recording, info.window, info.stride, axis=1)
        batch, count = tf.shape(windows)[0], tf.shape(windows)[1]
        flat = tf.reshape(windows, [-1, info.window, info.channels])
        probs = tf.reshape(model(flat, training=False), [batch, count, classes])
        votes = tf.reduce_sum(tf.one_hot(tf.argmax(probs, axis=-1), classes, dtype=tf.float64), 1)
        mean = tf.reduce_mean(tf.cast(probs, tf.float64), axis=1)
        # Mean probabilities are < 1, so they only break ties between equal vote counts.
        out = labelled(votes + 1e-3 * mean, info.class_names)
        return {"label": out["label"], "probabilities": tf.cast(mean, tf.float32)}

    export = keras.export.ExportArchive()
    export.track(model)
    export.add_endpoint(
        "serve",
        serve,
        input_signature=[tf.TensorSpec([None, None, info.channels], tf.float32, name="recording")],
    )
    return export


def window_model(model, info: ModelInfo):
    """The window classifier at batch 1, recurrent layers on the generic loop."""
    import keras

    from common.export import generic_loops

    generic_loops(model)
    window = keras.Input(batch_shape=(1, info.window, info.channels), name="window")
    return keras.Model(window, model(window), name="activity_window")


def litert(model_dir: Path) -> bytes:
    from common.export import litert_bytes

    model, info = _load(model_dir)
    return litert_bytes(window_model(model, info))
