"""`export`: the tagger as a SavedModel, raw text in, tokens and tags out.

    serve(text: string[batch]) -> {tokens: string[batch, max_tokens],
                                   tags: string[batch, max_tokens],
                                   lengths: int32[batch]}

Dense and named, so that `saved_model_cli` and TensorFlow Serving (REST and gRPC) can
return them: row i holds text i's `lengths[i]` tokens and tags, then "" up to the longest.

The same steps as `tag --text`, in TensorFlow ops: the tokenisation rule of `tag.py`
(whitespace separates; URLs, @mentions and #hashtags stay whole; the word rule splits the
rest), the word ids (lower-cased, looked up whole) and character ids of each token, the
model, and the decoding: Viterbi over the log-probabilities with the IOB2 transitions only
(`I-X` never follows `O`), or with `--decoder crf` over the CRF's scores and its learned
transitions (the IOB2 rules inside). Tags are IOB2. The in-graph tokenizer does not NFC-normalise
(TensorFlow has no op for it), and RE2 reads `\\w` of @mentions and #hashtags as letters,
digits and "_" (Python's `\\w` also counts a few other numeric characters).
"""

from __future__ import annotations

from pathlib import Path

LITERT_UNAVAILABLE = (
    "not available for ner: tokenisation and the constrained decoding are part of the "
    "SavedModel endpoint (serve); use --format saved_model"
)


def whole_pattern_re2(space: str) -> str:
    """`tag._WHOLE` for RE2: URLs, @mentions and #hashtags, with explicit classes."""
    return (
        rf"(?:https?://|www\.)[^{space}]*[^{space}.,;:!?)\]}}\"'’]"
        r"|[@#][\p{L}\p{N}_]+"
    )


def tokenize(text):
    """string[batch] -> ragged string[batch, (tokens)] by `tag.tokenize`'s rule."""
    import tensorflow as tf

    from common.tokenization import re2_word_patterns

    token, space_class = re2_word_patterns()
    space = space_class[1:-1]
    # Cut the text at every URL / mention / hashtag: odd pieces are whole tokens.
    marked = tf.strings.regex_replace(text, whole_pattern_re2(space), "\x00\\0\x00")
    pieces = tf.strings.split(marked, sep="\x00")
    flat = pieces.flat_values
    whole = tf.math.floormod(tf.ragged.range(pieces.row_lengths()).flat_values, 2) == 1
    split = tf.strings.regex_replace(flat, space_class + "+", " ")
    split = tf.strings.regex_replace(split, token, r" \0 ")
    flat_tokens = tf.strings.split(tf.where(whole, flat, split))
    return pieces.with_flat_values(flat_tokens).merge_dims(1, 2)


def viterbi(emissions, lengths, transitions, start, end):
    """Batched `bio.viterbi`: emissions float64[b, T, K], lengths int32[b], transitions
    float64[K, K], start and end float64[K] -> tag ids int32[b, T] (the best path; positions
    past a length are 0)."""
    import tensorflow as tf

    transitions = tf.constant(transitions, tf.float64)
    score0 = tf.constant(start, tf.float64)[None, :] + emissions[:, 0]
    steps = tf.transpose(emissions, [1, 0, 2])[1:]  # [T-1, b, K]
    k = tf.shape(emissions)[2]
    live = tf.transpose(tf.sequence_mask(lengths, tf.shape(emissions)[1]))[1:]  # [T-1, b]

    def forward(carry, inputs):
        score, _ = carry
        emit, on = inputs
        candidates = score[:, :, None] + transitions[None]  # [b, from, to]
        back = tf.argmax(candidates, axis=1, output_type=tf.int32)
        best = tf.reduce_max(candidates, axis=1) + emit
        identity = tf.broadcast_to(tf.range(k)[None, :], tf.shape(back))
        return tf.where(on[:, None], best, score), tf.where(on[:, None], back, identity)

    scores, backs = tf.scan(
        forward,
        (steps, live),
        initializer=(score0, tf.zeros_like(score0, tf.int32)),
    )
    final = tf.concat([score0[None], scores], axis=0)[-1] + tf.constant(end, tf.float64)[None]
    last = tf.argmax(final, axis=-1, output_type=tf.int32)

    def backward(tag, back):
        return tf.gather(back, tag, batch_dims=1)

    earlier = tf.scan(backward, backs, initializer=last, reverse=True)  # [T-1, b]
    path = tf.concat([tf.transpose(earlier), last[:, None]], axis=1)
    return tf.where(tf.sequence_mask(lengths, tf.shape(emissions)[1]), path, 0)


def archive(model_dir: Path):
    """A `keras.export.ExportArchive` with the `serve` endpoint."""
    import keras
    import tensorflow as tf

    from common import runtime
    from common.export import generic_loops
    from common.tokenization import PAD, UNK
    from recipes.ner.data import Vocab
    from recipes.ner.model import crf_layer, decoding_scores

    vocab = Vocab.load(runtime.RunDir(model_dir))
    model = runtime.load_model(model_dir)
    generic_loops(model)
    crf = crf_layer(model)
    decoding = decoding_scores(model, vocab.tags)  # with a softmax, over log-probabilities
    lookup = {
        name: keras.layers.StringLookup(
            vocabulary=list(tok.vocab)[2:], mask_token=PAD, oov_token=UNK, name=f"{name}_ids"
        )
        for name, tok in (("words", vocab.words), ("chars", vocab.chars))
    }
    for layer in lookup.values():
        layer(tf.constant([""]))  # built, as ExportArchive.track requires
    tag_names = tf.constant(list(vocab.tags))

    def serve(text):
        tokens = tokenize(text)
        lengths = tf.cast(tokens.row_lengths(), tf.int32)
        words = tokens.with_flat_values(lookup["words"](tf.strings.lower(tokens.flat_values)))
        chars = tf.strings.unicode_split(tokens, "UTF-8")
        chars = chars.with_flat_values(lookup["chars"](chars.flat_values))
        # At least one column, so that a batch of empty texts still runs (and tags nothing).
        words = words.to_tensor()
        chars = chars.to_tensor(shape=[None, None, vocab.max_word_chars])
        extra = tf.maximum(1 - tf.shape(words)[1], 0)
        inputs = {
            "words": tf.cast(tf.pad(words, [[0, 0], [0, extra]]), tf.int32),
            "chars": tf.cast(tf.pad(chars, [[0, 0], [0, extra], [0, 0]]), tf.int32),
        }
        outputs = tf.cast(model(inputs, training=False), tf.float64)
        if crf is None:
            outputs = tf.math.log(tf.clip_by_value(outputs, 1e-12, 1.0))
        ids = viterbi(outputs, lengths, *decoding)
        tags = tf.RaggedTensor.from_tensor(tf.gather(tag_names, ids), lengths=lengths)
        return {  # dense, as wide as the longest text, "" after each row's tokens
            "tokens": tokens.to_tensor(default_value=""),
            "tags": tags.to_tensor(default_value=""),
            "lengths": lengths,
        }

    export = keras.export.ExportArchive()
    export.track(model)
    for layer in lookup.values():
        export.track(layer)
    export.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None], tf.string, name="text")]
    )
    return export
