"""`export`: the DNA classifier as a SavedModel, strings in, labels out.

    serve(sequence: string[batch]) -> {label: string[batch], probabilities: float32[batch, classes]}

Everything of `predict` is inside the graph: the one-hot encoding (A, C, G, T, U as T,
IUPAC codes as their bases' shares, either case), padding to the model's length (a
longer sequence is cut there; `predict` refuses it), both strands with --strands average.
`label` is the most probable class; for a multi-label run, the marks with probability
>= 0.5 joined by commas ("-" for none). The recurrent layers run on Keras's generic loop,
so no XLA kernels go into the artifact (TensorFlow Serving runs it as it is).
"""

from __future__ import annotations

from pathlib import Path

from recipes.dna.predict import ModelInfo

LITERT_UNAVAILABLE = (
    "the dna model reads its input as text (the one-hot encoding is inside it), which "
    "TFLite's builtin ops cannot; export a saved_model"
)


def archive(model_dir: Path):
    """A `keras.export.ExportArchive` with the `serve` endpoint."""
    import keras
    import tensorflow as tf

    from common import runtime
    from common.export import generic_loops, labelled
    from recipes.dna.data import NO_LABELS

    model, info = runtime.load_model(model_dir), ModelInfo.read(model_dir)
    generic_loops(model)
    names = tf.constant(list(info.class_names))

    def serve(sequence):
        probs = model(sequence, training=False)
        if not info.multi_label:
            return labelled(probs, info.class_names)
        on = probs >= 0.5
        marks = tf.ragged.boolean_mask(tf.broadcast_to(names, tf.shape(probs)), on)
        label = tf.strings.reduce_join(marks, axis=1, separator=",")
        label = tf.where(tf.strings.length(label) > 0, label, NO_LABELS)
        return {"label": label, "probabilities": probs}

    export = keras.export.ExportArchive()
    export.track(model)
    export.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None], tf.string, name="sequence")]
    )
    return export
