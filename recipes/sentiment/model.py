"""The classifier: raw strings in, class probabilities out.

    text: string[batch]
      -> word ids int[batch, time]        tokenizer layer (right-padded with 0)
      -> Embedding(mask_zero=True)        float[batch, time, embedding_dim] + mask
      -> Dropout
      -> Bidirectional(recurrent) x N     forward and backward outputs concatenated,
                                          float[batch, time, 2*units] (or [batch, 2*units]
                                          for the last layer with pooling="last")
      -> pooling                          "mean" / "max": average / maximum over the
                                          unmasked steps; "mean-max": both, concatenated;
                                          "last": the final states of both directions
      -> Dropout -> Dense(softmax)        float32[batch, classes]

Every recurrent layer comes from `common.layers.recurrent_layer`, so `--cell`
chooses lstm / gru / minimal-gru / simple. Padding is on the right, as cuDNN needs.
"""

from __future__ import annotations

import keras

from common.layers import recurrent_layer

EMBEDDING_LAYER = "embedding"


@keras.saving.register_keras_serializable(package="recipes.sentiment.model")
class MaskedMaxPooling(keras.layers.Layer):
    """The maximum over the real time steps: float[batch, time, features] + mask
    bool[batch, time] -> float[batch, features]. Keras's `GlobalMaxPooling1D` ignores the
    mask, and a padded step of the backward direction holds zeros, which would win over
    negative maxima. A sequence with no real step gives zeros."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return keras.ops.max(inputs, axis=1)
        real = keras.ops.expand_dims(keras.ops.cast(mask, "bool"), -1)  # [batch, time, 1]
        lowest = keras.ops.full_like(inputs, float("-inf"))
        pooled = keras.ops.max(keras.ops.where(real, inputs, lowest), axis=1)
        return keras.ops.where(keras.ops.any(real, axis=1), pooled, keras.ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def build_model(cfg, *, tokenizer, num_classes: int) -> keras.Model:
    """A compiled-ready `keras.Model` taking `string[batch]`."""
    text = keras.Input(shape=(), dtype="string", name="text")
    ids = tokenizer.keras_layer(sequence_length=cfg.max_length)(text)
    x = keras.layers.Embedding(
        tokenizer.vocab_size, cfg.embedding_dim, mask_zero=True, name=EMBEDDING_LAYER
    )(ids)
    x = keras.layers.Dropout(cfg.dropout, name="embedding_dropout")(x)
    for n in range(cfg.layers):
        last = n == cfg.layers - 1
        layer = recurrent_layer(
            cfg.cell,
            cfg.units,
            return_sequences=not (last and cfg.pooling == "last"),
            name=f"{cfg.cell.replace('-', '_')}_{n}",
        )
        x = keras.layers.Bidirectional(layer, merge_mode="concat", name=f"bidirectional_{n}")(x)
    if cfg.pooling != "last":
        pooled = []
        if cfg.pooling in ("mean", "mean-max"):  # honours the mask
            pooled.append(keras.layers.GlobalAveragePooling1D(name="mean_over_time")(x))
        if cfg.pooling in ("max", "mean-max"):
            pooled.append(MaskedMaxPooling(name="max_over_time")(x))
        x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="pooled")(pooled)
    x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    probs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(text, probs, name="sentiment_classifier")
