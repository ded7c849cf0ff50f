"""`export`: the classifier as a SavedModel (raw strings in, labels out) or a LiteRT file.

SavedModel endpoint (the tokenizer is part of the model, so nothing happens outside it):

    serve(text: string[batch]) -> {label: string[batch], probabilities: float32[batch, classes]}

`probabilities` are in the order of `class_names` (also in `labels.json` of the run).

LiteRT (`--format litert`): the classifier core, token ids in: `ids int32[1, max_length]`
(the tokenizer's ids, right-padded with 0) -> `probabilities float32[1, classes]`. String
splitting and lookup do not convert to TFLite builtins, so they stay with the caller.
"""

from __future__ import annotations

from pathlib import Path

from recipes.sentiment import classify


def archive(model_dir: Path):
    """A `keras.export.ExportArchive` with the `serve` endpoint."""
    import keras
    import tensorflow as tf

    from common.export import generic_loops, labelled

    model, class_names = classify.load_run(model_dir)
    generic_loops(model)
    export = keras.export.ExportArchive()
    export.track(model)
    export.add_endpoint(
        "serve",
        lambda text: labelled(model(text, training=False), class_names),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
    )
    return export


def core_model(model):
    """The graph after the tokenizer as a model of its own, batch 1: ids -> probabilities
    (weights shared, recurrent layers on the generic loop: it becomes a TFLite WHILE)."""
    import keras

    from common.export import graph_copy

    tokenizer = model.layers[1]
    ids = keras.Input(batch_shape=(1, tokenizer.sequence_length), dtype="int32", name="ids")
    return graph_copy(model, tokenizer.output, ids, "sentiment_core")


def litert(model_dir: Path) -> bytes:
    from common.export import litert_bytes

    model, _ = classify.load_run(model_dir)
    return litert_bytes(core_model(model))
