"""`export`: the video classifier as a SavedModel (uint8 clips in, activities out) or a LiteRT
file.

SavedModel endpoint:

    serve(clip: uint8[batch, frames, height, width, channels])
        -> {label: string[batch], probabilities: float32[batch, classes]}

The clips must already have the model's shape (`frames`, `frame_size` x `frame_size`,
`channels` in the run's labels.json), as `predict` makes them from a .gif or .npy file;
the scaling to 0..1 is the model's first layer.

LiteRT (`--format litert`): the same model at batch 1, the clip as float32 0..255.
"""

from __future__ import annotations

from pathlib import Path

from recipes.video.predict import ModelInfo


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
    shape = [None, info.frames, info.frame_size, info.frame_size, info.channels]
    export = keras.export.ExportArchive()
    export.track(model)
    export.add_endpoint(
        "serve",
        lambda clip: labelled(model(tf.cast(clip, tf.float32), training=False), info.class_names),
        input_signature=[tf.TensorSpec(shape, tf.uint8, name="clip")],
    )
    return export


def clip_model(model, info: ModelInfo):
    """The classifier at batch 1, recurrent layers on the generic loop."""
    import keras

    from common.export import graph_copy

    size = info.frame_size
    clip = keras.Input(batch_shape=(1, info.frames, size, size, info.channels), name="clip")
    return graph_copy(model, model.input, clip, "video_clip")


def litert(model_dir: Path) -> bytes:
    from common.export import litert_bytes

    model, info = _load(model_dir)
    return litert_bytes(clip_model(model, info))
