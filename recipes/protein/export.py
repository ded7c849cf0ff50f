"""`export`: the predictor as a SavedModel, chains in, states out.

    serve(sequence: string[batch]) -> {states: string[batch], probabilities:
        float32[batch, max_length, states], lengths: int32[batch]}
    serve(sequence, features: float32[batch, max_length, k]) -> the same, for a model
        trained with --features (each chain's rows, zeros after its end)

`states` holds one state letter per residue of each chain (the most probable one; with
`--decoder crf` the probabilities are the CRF's marginals); `probabilities` is padded
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
    from recipes.protein.model import probabilities
    from recipes.protein.predict import feature_width

    model, info = runtime.load_model(model_dir), ModelInfo.read(model_dir)
    width = feature_width(model)
    generic_loops(model)
    letters = tf.constant(list(info.states))

    def serve(sequence, features=None):
        lengths = tf.strings.length(sequence, unit="UTF8_CHAR")
        outputs = model([sequence, features] if width else sequence, training=False)
        probs = probabilities(model, outputs, lengths)
        mask = tf.sequence_mask(lengths, tf.shape(probs)[1])
        chars = tf.gather(letters, tf.argmax(probs, axis=-1))
        chars = tf.where(mask, chars, "")
        return {
            "states": tf.strings.reduce_join(chars, axis=1),
            "probabilities": probs,
            "lengths": tf.cast(lengths, tf.int32),
        }

    export = keras.export.ExportArchive()
    export.track(model)
    signature = [tf.TensorSpec([None], tf.string, name="sequence")]
    if width:
        signature.append(tf.TensorSpec([None, None, width], tf.float32, name="features"))
    export.add_endpoint("serve", serve, input_signature=signature)
    return export
