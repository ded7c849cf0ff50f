"""`export`: the translator as a SavedModel, raw sentences in, translations out.

Endpoints (tokenisation, the encoder, the decoding loop and detokenisation in the graph):

    serve(text: string[batch]) -> {translation: string[batch], score: float32[batch]}
        Greedy decoding: what `translate` prints for the same lines.
    serve_beam(text: string[batch]) -> {translation: string[batch], score: float32[batch]}
        Beam search with `BEAM_SIZE` beams and length penalty `LENGTH_PENALTY`: what
        `translate --beam-size 4 --length-penalty 0.6` prints.

As in `translate`: an empty (or all-whitespace) line gives "" (score 0); a line longer than
the model's max_source_length keeps its first tokens; unknown tokens are read as <unk>;
<pad>, <bos> and <unk> are never emitted. `score` is the model's log-probability of the
translation (with <eos> when it ended). The in-graph tokenizer does not NFC-normalise
(TensorFlow has no op for it): give it composed text, as nearly all text is.

A run with subword vocabularies (`--level subword`) has its SentencePiece models in the graph
as tensorflow-text ops: `import tensorflow_text` before `tf.saved_model.load` registers them.
"""

from __future__ import annotations

from pathlib import Path

BEAM_SIZE = 4
LENGTH_PENALTY = 0.6
LITERT_UNAVAILABLE = (
    "not available for translation: the encoder and the decoding loop are one SavedModel "
    "endpoint (serve); use --format saved_model"
)


def archive(model_dir: Path):
    """A `keras.export.ExportArchive` with the `serve` and `serve_beam` endpoints."""
    import keras
    import tensorflow as tf

    from common.export import generic_loops
    from recipes.translation import train as train_lib
    from recipes.translation.search import Decoder

    loaded = train_lib.load_run(model_dir)
    translator = loaded.translator
    source = translator.source_tokenizer.keras_layer(name="source_tokens")
    generic_loops(translator.model)
    decoder = Decoder(translator.model, translator.max_steps, jit_greedy=False)

    def translate(text, beam_size):
        ids = source(text)[:, : translator.max_source_length]
        # A batch with nothing to translate still needs one column for the encoder.
        ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])
        if beam_size == 1:
            result = decoder.greedy(ids, LENGTH_PENALTY)
        else:
            result = decoder.beam(ids, beam_size, LENGTH_PENALTY)
        empty = tf.reduce_all(ids == 0, axis=1)
        words = translator.target_tokenizer.tf_decode(result["tokens"])
        return {
            "translation": tf.where(empty, "", words),
            "score": tf.where(empty, 0.0, tf.cast(result["scores"], tf.float32)),
        }

    export = keras.export.ExportArchive()
    export.track(translator.model)
    export.track(source)
    for tokenizer in (translator.source_tokenizer, translator.target_tokenizer):
        for resource in tokenizer.tf_resources():  # subwords: the SentencePiece models
            export.track(resource)
    signature = [tf.TensorSpec([None], tf.string, name="text")]
    export.add_endpoint("serve", lambda text: translate(text, 1), input_signature=signature)
    export.add_endpoint(
        "serve_beam", lambda text: translate(text, BEAM_SIZE), input_signature=signature
    )
    return export
