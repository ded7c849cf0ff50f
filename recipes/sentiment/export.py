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

    model, class_names = classify.load_run(model_dir)
    names = tf.constant(class_names)
    export = keras.export.ExportArchive()
    export.track(model)

    def serve(text):
        probabilities = model(text, training=False)
        label = tf.gather(names, tf.argmax(probabilities, axis=-1))
        return {"label": label, "probabilities": probabilities}

    export.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None], tf.string, name="text")]
    )
    return export


def core_model(model):
    """The layers after the tokenizer as a model of their own, batch 1: ids -> probabilities,
    the recurrent layers on Keras's generic loop (a TFLite WHILE), not the XLA fast path."""
    import keras

    from common.layers import CellRNN

    tokenizer = model.layers[1]
    ids = keras.Input(batch_shape=(1, tokenizer.sequence_length), dtype="int32", name="ids")
    x = ids
    for layer in model.layers[2:]:
        for inner in (
            layer,
            getattr(layer, "forward_layer", None),
            getattr(layer, "backward_layer", None),
        ):
            if isinstance(inner, CellRNN) and hasattr(inner, "implementation"):
                inner.implementation = "generic"
        x = layer(x)
    return keras.Model(ids, x, name="sentiment_core")


def litert(model_dir: Path) -> bytes:
    from common.export import litert_bytes

    model, _ = classify.load_run(model_dir)
    return litert_bytes(core_model(model))
