"""`export`: the language model as a SavedModel that generates and scores raw text.

Endpoints (tokenisation, the sampling loop and detokenisation inside the graph):

    generate(prime: string, length: int32, temperature: float32, seed: int32) -> string
        The prime followed by `length` sampled tokens (word level: fewer when <eos> comes),
        exactly what `sample --prime P --length N --temperature T --seed S` prints: the same
        compiled loop (`common.sampling`), the same seeded draws, never <pad>/<bos>/<unk>
        (nor <eos> at character level). A prime with a token outside the vocabulary is an
        error, as in `sample`.
    score(text: string[batch]) -> float32[batch]
        The total log-probability in nats of each text from <bos> and a zero state, as the
        `total_log_prob` of `score` (word level: each non-blank line ends with <eos>; lines
        split at "\\n"). Unknown tokens are scored as <unk>.

The in-graph tokenizer does not NFC-normalise (TensorFlow has no op for it): give it
composed text, as nearly all text is.
"""

from __future__ import annotations

from pathlib import Path

LITERT_UNAVAILABLE = (
    "not available for char_lm: the model's value is the generation loop, which is a "
    "SavedModel endpoint (generate); use --format saved_model"
)


def archive(model_dir: Path):
    """A `keras.export.ExportArchive` with the `generate` and `score` endpoints."""
    import keras
    import tensorflow as tf

    from common.export import generate_signature, generic_loops
    from common.tokenization import BOS_ID, PAD_ID, UNK_ID
    from recipes.char_lm.main import _load_run
    from recipes.char_lm.sample import Sampler

    cfg, tok, model = _load_run(model_dir)
    sampler = Sampler(cfg, tok, model, jit_compile=False)
    generic_loops(model, sampler.step)
    prime_ids = tok.keras_layer(add_bos=True, name="prime_tokens")
    line_ids = tok.keras_layer(add_eos=cfg.level == "word", name="text_tokens")

    def generate(prime, length, temperature, seed):
        ids = prime_ids(prime[None])
        tf.debugging.assert_equal(
            tf.reduce_any(ids == UNK_ID),
            False,
            message="prime: a token is not in the vocabulary of the model",
        )
        generated, _ = sampler.generator.generate(ids, length, temperature, 0, seed)
        text = tok.tf_decode(generated)[0]
        space = " " if cfg.level == "word" else ""
        joined = tf.strings.join([prime, text], separator=space)
        return tf.where(tf.strings.length(prime) > 0, joined, text)

    def score(text):
        if cfg.level == "word":  # every non-blank line, then <eos>
            lines = tf.strings.split(text, sep="\n")
            lines = tf.ragged.boolean_mask(lines, tf.strings.strip(lines) != "")
            per_line = tf.RaggedTensor.from_tensor(line_ids(lines.flat_values), padding=PAD_ID)
            ids = lines.with_flat_values(per_line).merge_dims(1, 2)
        else:
            ids = tf.RaggedTensor.from_tensor(line_ids(text), padding=PAD_ID)
        bos = tf.fill([tf.shape(text)[0], 1], BOS_ID)
        ids = tf.concat([bos, ids.to_tensor(default_value=PAD_ID)], axis=1)
        log_probs = tf.nn.log_softmax(model(ids[:, :-1], training=False), axis=-1)
        targets = ids[:, 1:]
        picked = tf.gather(log_probs, targets, batch_dims=2)
        return tf.reduce_sum(tf.where(targets == PAD_ID, 0.0, picked), axis=-1)

    export = keras.export.ExportArchive()
    export.track(model)
    export.track(sampler.step)
    export.track(prime_ids)
    export.track(line_ids)
    export.add_endpoint(
        "generate",
        generate,
        input_signature=generate_signature(),
    )
    export.add_endpoint(
        "score", score, input_signature=[tf.TensorSpec([None], tf.string, name="text")]
    )
    return export
