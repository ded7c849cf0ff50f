"""The tagger: word embedding + character CNN -> bidirectional recurrent stack -> softmax per token.

    words int32[b, T]        chars int32[b, T, C]
          |                        |
    Embedding(mask_zero)     Embedding -> Conv2D (1 x k, over each word's characters)
          |                        -> max over the word's real characters
    float[b, T, E]           float[b, T, F]
           \\______ concat ______/
                    |  (mask: words != 0, so padding is skipped by the RNN)
                 Dropout
        Bidirectional(recurrent_layer(cell))  x layers, each followed by Dropout
                    |
           Dense(num_tags, softmax)  -> float32[b, T, num_tags]

The character features give every word, seen or not, a representation built
from its spelling (capitals, suffixes, "@" and "#"), which is what lets the
model tag names it never met in training (Ma & Hovy 2016, Chiu & Nichols 2016).
"""

from __future__ import annotations

import keras
from common.layers import recurrent_layer
from keras import layers, ops


@keras.saving.register_keras_serializable(package="recipes.ner")
class MaskedCharMax(layers.Layer):
    """Max over each word's characters, ignoring character padding.

    inputs: `[features float[b, T, C, F], char_ids int[b, T, C]]` -> float[b, T, F].
    Positions with char id 0 (padding) never win the max; a word with no
    characters at all (a padded token) gets zeros.
    """

    def call(self, inputs):
        features, char_ids = inputs
        real = ops.expand_dims(ops.not_equal(char_ids, 0), -1)
        lowest = ops.cast(-1e4, features.dtype)
        pooled = ops.max(ops.where(real, features, lowest), axis=2)
        has_chars = ops.any(real, axis=2)
        return ops.where(has_chars, pooled, ops.zeros_like(pooled))

    def compute_output_shape(self, input_shapes):
        features_shape = input_shapes[0]
        return (*features_shape[:2], features_shape[3])


def build_model(cfg, *, num_words: int, num_chars: int, num_tags: int) -> keras.Model:
    """The uncompiled tagger for `cfg` (a `NerConfig`) and the vocabulary sizes."""
    words = keras.Input(shape=(None,), dtype="int32", name="words")
    chars = keras.Input(shape=(None, None), dtype="int32", name="chars")

    word_vectors = layers.Embedding(
        num_words, cfg.word_embedding_dim, mask_zero=True, name="word_embedding"
    )(words)
    char_vectors = layers.Embedding(num_chars, cfg.char_embedding_dim, name="char_embedding")(chars)
    char_vectors = layers.Dropout(cfg.dropout, name="char_dropout")(char_vectors)
    char_features = layers.Conv2D(
        cfg.char_filters,
        (1, cfg.char_kernel_size),
        padding="same",
        activation="tanh",
        name="char_cnn",
    )(char_vectors)
    char_features = MaskedCharMax(name="char_max")([char_features, chars])

    x = layers.Concatenate(name="word_and_chars")([word_vectors, char_features])
    x = layers.Dropout(cfg.dropout, name="input_dropout")(x)
    for i in range(cfg.layers):
        rnn = recurrent_layer(
            cfg.cell, cfg.units, return_sequences=True, name=f"{cfg.cell}_{i + 1}"
        )
        x = layers.Bidirectional(rnn, name=f"bidirectional_{i + 1}")(x)
        x = layers.Dropout(cfg.dropout, name=f"dropout_{i + 1}")(x)
    # float32 softmax even under a mixed-precision policy.
    probs = layers.Dense(num_tags, activation="softmax", dtype="float32", name="tags")(x)
    return keras.Model({"words": words, "chars": chars}, probs, name="ner_tagger")


def compile_model(model: keras.Model, cfg, optimizer) -> keras.Model:
    """Token cross-entropy averaged over real tokens only.

    The datasets carry a per-token weight (1 for tokens, 0 for padding);
    `mean_with_sample_weight` divides by the number of real tokens, so neither
    the loss nor the token accuracy depends on how much padding a batch has
    (and neither relies on Keras propagating the embedding mask to the output).
    """
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
    )
    return model
