"""`export`: the melody model as a SavedModel that composes.

Endpoint (the sampling loop inside the graph, the vocabulary lookups too):

    generate(prime: string, length: int32, temperature: float32, seed: int32) -> string
        The prime's tokens (space-separated, e.g. "M:6/8 K:D L:1/8 A d2"; empty = from
        nothing) continued by at most `length` tokens, up to <eos>: the whole token
        sequence, space-separated, without <bos>/<eos>. The same compiled loop and seeded
        draws as `compose` (one tune per call; `compose --num-tunes 1` with the same prime
        and seed gives the same tokens). A token outside the vocabulary is an error.

`recipes.music.abc.render(tokens.split())` turns the result into ABC text.
"""

from __future__ import annotations

from pathlib import Path

LITERT_UNAVAILABLE = (
    "not available for music: the model's value is the generation loop, which is a "
    "SavedModel endpoint (generate); use --format saved_model"
)


def archive(model_dir: Path):
    """A `keras.export.ExportArchive` with the `generate` endpoint."""
    import keras
    import tensorflow as tf

    from common.export import generate_signature, generic_loops
    from common.tokenization import BOS_ID
    from recipes.music import model as model_lib
    from recipes.music.main import load_run

    cfg, tok, model = load_run(model_dir)
    sampler = model_lib.sampler(cfg, tok, model, jit_compile=False)
    generic_loops(model, sampler.step)
    to_ids = keras.layers.StringLookup(vocabulary=tok.vocab, num_oov_indices=0, mask_token=None)
    to_tokens = keras.layers.StringLookup(
        vocabulary=tok.vocab, num_oov_indices=0, mask_token=None, invert=True
    )
    to_ids(tf.constant(["|"]))  # built, as tracking requires
    to_tokens(tf.constant([0]))

    def generate(prime, length, temperature, seed):
        tokens = tf.strings.split(tf.strings.strip(prime))
        ids = tf.cast(to_ids(tokens), tf.int32)
        tf.debugging.assert_equal(
            tf.reduce_any(ids < 0), False, message="prime: a token is not in the vocabulary"
        )
        ids = tf.concat([[BOS_ID], ids], axis=0)[None]
        generated, lengths = sampler.generator.generate(ids, length, temperature, 0, seed)
        new = to_tokens(generated[0, : lengths[0]])
        return tf.strings.reduce_join(tf.concat([tokens, new], axis=0), separator=" ")

    export = keras.export.ExportArchive()
    export.track(model)
    export.track(sampler.step)
    export.track(to_ids)
    export.track(to_tokens)
    export.add_endpoint(
        "generate",
        generate,
        input_signature=generate_signature(),
    )
    return export
