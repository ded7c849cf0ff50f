"""`export`: the predictor as a SavedModel, chains in, states out.

    serve(sequence: string[batch]) -> {states: string[batch], probabilities:
        float32[batch, max_length, states], lengths: int32[batch]}

`states` holds one state letter per residue of each chain; `probabilities` is padded
after each chain's `lengths[i]` residues (zeros there): every output is a dense, named
tensor, as TensorFlow Serving's REST and gRPC APIs need. The one-hot encoding is inside;
the recurrent layers run on Keras's generic loop (no XLA kernels in the artifact).
"""

from __future__ import annotations

from pathlib import Path

from recipes.protein.predict import ModelInfo

LITERT_UNAVAILABLE = (
    "the protein model reads chains as text (the one-hot encoding is inside it), which "
    "TFLite's builtin ops cannot; export a saved_model"
)


def archive(model_dir: Path):
    import keras
    import tensorflow as tf

    from common import runtime
    from common.export import generic_loops

    model, info = runtime.load_model(model_dir), ModelInfo.read(model_dir)
    generic_loops(model)
    letters = tf.constant(list(info.states))

    def serve(sequence):
        lengths = tf.strings.length(sequence, unit="UTF8_CHAR")
        probs = model(sequence, training=False)
        mask = tf.sequence_mask(lengths, tf.shape(probs)[1])
        probs = probs * tf.cast(mask, probs.dtype)[..., None]
        chars = tf.gather(letters, tf.argmax(probs, axis=-1))
        chars = tf.where(mask, chars, "")
        return {
            "states": tf.strings.reduce_join(chars, axis=1),
            "probabilities": probs,
            "lengths": tf.cast(lengths, tf.int32),
        }

    export = keras.export.ExportArchive()
    export.track(model)
    export.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None], tf.string, name="sequence")]
    )
    return export
