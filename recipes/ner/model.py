"""The tagger: word embedding + character CNN -> bidirectional recurrent stack -> softmax per token.

    words int32[b, T]        chars int32[b, T, C]
          |                        |
    Embedding(mask_zero)     Embedding -> Conv2D (1 x k, over each word's characters)
          |                        -> max over the word's real characters
    float[b, T, E]           float[b, T, F]
           \\__ concat (WordAndChars) __/
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

import weakref

import keras
import numpy as np
from keras import layers, ops

from common.crf import crf_layer
from common.layers import recurrent_layer
from common.metrics import TokenAccuracy


@keras.saving.register_keras_serializable(package="recipes.ner.model")
class WordAndChars(layers.Layer):
    """Pool each word's character features and append them to its word vector.

    inputs: `[word_vectors float[b, T, E], char_features float[b, T, C, F], char_ids int[b, T, C]]`
    -> float[b, T, E + F]: the max over the word's real characters (char id 0 is
    padding and never wins; a padded token gets zeros).

    The output keeps the word mask (`Embedding(mask_zero=True)`), so the
    recurrent layers skip padded tokens. `keras.layers.Concatenate` cannot be
    used here: in Keras 3.15 it combines a masked and an unmasked input with
    `any`, which makes every position valid.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        word_vectors, char_features, char_ids = inputs
        if len(char_features.shape) == 3:  # one vector per word already (CharRNN)
            return ops.concatenate([word_vectors, ops.cast(char_features, word_vectors.dtype)], -1)
        real = ops.expand_dims(ops.not_equal(char_ids, 0), -1)
        lowest = ops.cast(-1e4, char_features.dtype)
        pooled = ops.max(ops.where(real, char_features, lowest), axis=2)
        pooled = ops.where(ops.any(real, axis=2), pooled, ops.zeros_like(pooled))
        return ops.concatenate([word_vectors, ops.cast(pooled, word_vectors.dtype)], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def compute_output_shape(self, input_shapes):
        word_shape, char_shape = input_shapes[0], input_shapes[1]
        width = (
            None
            if word_shape[-1] is None or char_shape[-1] is None
            else (word_shape[-1] + char_shape[-1])
        )
        return (*word_shape[:2], width)


@keras.saving.register_keras_serializable(package="recipes.ner.model")
class CharRNN(layers.Layer):
    """Each word's characters through a bidirectional recurrent layer (Lample et al. 2016).

    inputs: `[char_vectors float[b, T, C, E], char_ids int[b, T, C]]` -> float[b, T, 2 *
    units]: the forward layer's state after the word's last real character and the backward
    layer's after its first (char id 0 is padding, masked); a padded token gets zeros.
    """

    def __init__(self, cell: str, units: int, **kwargs):
        super().__init__(**kwargs)
        self.cell, self.units = cell, units
        self.rnn = layers.Bidirectional(recurrent_layer(cell, units), name="char_rnn")

    def build(self, input_shapes):
        self.rnn.build((None, input_shapes[0][2], input_shapes[0][3]))

    def call(self, inputs):
        vectors, ids = inputs
        batch, words, chars = ops.shape(ids)[0], ops.shape(ids)[1], ops.shape(ids)[2]
        real = ops.reshape(ops.not_equal(ids, 0), (-1, chars))
        out = self.rnn(ops.reshape(vectors, (-1, chars, vectors.shape[-1])), mask=real)
        out = ops.where(ops.any(real, axis=-1, keepdims=True), out, ops.zeros_like(out))
        return ops.reshape(out, (batch, words, 2 * self.units))

    def compute_output_shape(self, input_shapes):
        return (*input_shapes[1][:2], 2 * self.units)

    def get_config(self):
        return {**super().get_config(), "cell": self.cell, "units": self.units}


def build_model(cfg, *, num_words: int, num_chars: int, tags) -> keras.Model:
    """The uncompiled tagger for `cfg` (a `Config`), the vocabulary sizes and the tag names
    (the CRF's forbidden transitions come from them)."""
    num_tags = len(tags)
    words = keras.Input(shape=(None,), dtype="int32", name="words")
    chars = keras.Input(shape=(None, None), dtype="int32", name="chars")

    word_vectors = layers.Embedding(
        num_words, cfg.word_embedding_dim, mask_zero=True, name="word_embedding"
    )(words)
    char_vectors = layers.Embedding(num_chars, cfg.char_embedding_dim, name="char_embedding")(chars)
    char_vectors = layers.Dropout(cfg.dropout, name="char_dropout")(char_vectors)
    if cfg.char_encoder == "lstm":
        char_features = CharRNN(cfg.cell, cfg.char_units, name="char_rnn")([char_vectors, chars])
    else:
        char_features = layers.Conv2D(
            cfg.char_filters,
            (1, cfg.char_kernel_size),
            padding="same",
            activation="tanh",
            name="char_cnn",
        )(char_vectors)
    x = WordAndChars(name="word_and_chars")([word_vectors, char_features, chars])
    x = layers.Dropout(cfg.dropout, name="input_dropout")(x)
    for i in range(cfg.layers):
        rnn = recurrent_layer(
            cfg.cell, cfg.units, return_sequences=True, name=f"{cfg.cell}_{i + 1}"
        )
        x = layers.Bidirectional(rnn, name=f"bidirectional_{i + 1}")(x)
        x = layers.Dropout(cfg.dropout, name=f"dropout_{i + 1}")(x)
    inputs = {"words": words, "chars": chars}
    if cfg.decoder == "crf":
        from common.crf import CRF
        from recipes.ner import bio

        allowed, start = bio.transition_rules(tags)
        scores = layers.Dense(num_tags, dtype="float32", name="tags")(x)
        crf = CRF(num_tags, allowed=allowed, allowed_start=start, name="crf")
        return keras.Model(inputs, crf(scores), name="ner_tagger")
    # float32 softmax even under a mixed-precision policy.
    probs = layers.Dense(num_tags, activation="softmax", dtype="float32", name="tags")(x)
    return keras.Model(inputs, probs, name="ner_tagger")


def compile_model(model: keras.Model, tags, optimizer) -> keras.Model:
    """Token cross-entropy averaged over real tokens only (or, with a CRF, the negative
    log-likelihood of each sentence's tags), token accuracy (of the per-token argmax) and
    entity F1 (of the argmax, or of the CRF's Viterbi path).

    The datasets carry a per-token weight (1 for tokens, 0 for padding);
    `mean_with_sample_weight` divides by the number of real tokens, so neither
    the loss nor the metrics depend on how much padding a batch has (and none
    relies on Keras propagating the embedding mask to the output).
    """
    crf = crf_layer(model)
    model.compile(
        optimizer=optimizer,
        # The CRF's loss is per sentence; the token weights (0 at padding) give the lengths.
        loss=crf.loss
        if crf is not None
        else keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
        weighted_metrics=[
            TokenAccuracy(),
            EntityF1(tags, crf=crf),
        ],
    )
    return model


def decoding_scores(model: keras.Model, tags) -> tuple[np.ndarray, ...]:
    """(transitions, start, end) float64 for Viterbi over the model's outputs (`bio.viterbi`):
    the CRF's learned scores (its forbidden transitions at -1e4), or for a softmax model the
    IOB2 rules (`bio.rule_scores`), to be used on its log-probabilities."""
    from recipes.ner import bio

    crf = crf_layer(model)
    if crf is None:
        return bio.rule_scores(*bio.transition_rules(tags))
    return tuple(np.asarray(ops.convert_to_numpy(w), np.float64) for w in crf.transition_scores())


@keras.saving.register_keras_serializable(package="recipes.ner.model")
class EntityF1(keras.metrics.Metric):
    """Entity-level F1 of the per-token argmax (with `crf`, of its Viterbi path), in the graph,
    so `fit` can monitor `val_entity_f1`.

    The chunk rules are conlleval's (the same as `bio.entity_metrics`, which the
    final reports use): an entity starts at `B-X`, or at `I-X` after `O` or after
    another type, and runs over the following `I-X` of its type. A true entity is
    found when the prediction agrees with it on every one of its tokens about the
    type and about where entities start and end; F1 = 2 * found / (true + predicted).
    Tokens with sample weight 0 (padding) count as `O` on both sides.
    """

    def __init__(self, tags, name="entity_f1", crf=None, **kwargs):
        super().__init__(name=name, **kwargs)
        # With a CRF the emission scores' argmax says little (the transitions carry much of
        # the decision): the prediction is the CRF's Viterbi path. A weak reference, as
        # saving walks every attribute; a metric loaded from a file falls back to argmax.
        self._crf = None if crf is None else weakref.ref(crf)
        self.tags = list(tags)
        kinds = sorted({t[2:] for t in self.tags if t != "O"})
        self._type = [0 if t == "O" else kinds.index(t[2:]) + 1 for t in self.tags]
        self._inside = [t.startswith("I-") for t in self.tags]
        self.found = self.add_variable(shape=(), initializer="zeros", name="found")
        self.true = self.add_variable(shape=(), initializer="zeros", name="true")
        self.predicted = self.add_variable(shape=(), initializer="zeros", name="predicted")

    def _chunks(self, tag_ids, valid):
        """(type, starts, ends) of int[b, T] tag ids; type 0 = outside or padding."""
        kind = ops.where(valid, ops.take(ops.array(self._type, "int32"), tag_ids), 0)
        inside = ops.take(ops.array(self._inside), tag_ids)
        previous = ops.pad(kind[:, :-1], [[0, 0], [1, 0]])
        continues = inside & (kind == previous) & (kind > 0)
        following = ops.pad(continues[:, 1:], [[0, 0], [0, 1]])
        return kind, (kind > 0) & ~continues, (kind > 0) & ~following

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        valid = ops.ones_like(y_true, "bool") if sample_weight is None else sample_weight > 0
        crf = None if self._crf is None else self._crf()
        if crf is None:
            y_pred = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        else:  # -1 at padding, which `valid` leaves out anyway
            y_pred = ops.maximum(crf.decode(y_pred, valid), 0)
        kind_t, start_t, end_t = self._chunks(y_true, valid)
        kind_p, start_p, end_p = self._chunks(y_pred, valid)
        disagree = (kind_t > 0) & ((kind_t != kind_p) | (start_t != start_p) | (end_t != end_p))
        # One segment per true entity (row, entity number); count its disagreeing tokens.
        number = ops.cumsum(ops.cast(start_t, "int32"), axis=1)
        width = ops.shape(number)[1] + 1
        rows = ops.expand_dims(ops.arange(ops.shape(number)[0], dtype="int32"), 1)
        segment = ops.reshape(rows * width + number, [-1])
        bad = ops.segment_sum(
            ops.reshape(ops.cast(disagree, "float32"), [-1]),
            segment,
            num_segments=ops.shape(number)[0] * width,
        )
        n_true = ops.sum(ops.cast(start_t, "float32"))
        self.true.assign_add(n_true)
        self.predicted.assign_add(ops.sum(ops.cast(start_p, "float32")))
        self.found.assign_add(n_true - ops.sum(ops.cast(bad > 0, "float32")))

    def result(self):
        return ops.divide_no_nan(2.0 * self.found, self.true + self.predicted)

    def reset_state(self):
        for variable in (self.found, self.true, self.predicted):
            variable.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "tags": self.tags}
