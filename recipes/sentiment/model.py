"""The classifier: raw strings in, class probabilities out.

    text: string[batch]
      -> word ids int[batch, time]        tokenizer layer (right-padded with 0)
      -> Embedding(mask_zero=True)        float[batch, time, embedding_dim] + mask
      -> Dropout
      -> Bidirectional(recurrent) x N     forward and backward outputs concatenated,
                                          float[batch, time, 2*units] (or [batch, 2*units]
                                          for the last layer with pooling="last")
      -> pooling                          "mean": average over the unmasked steps;
                                          "last": the final states of both directions
      -> Dropout -> Dense(softmax)        float32[batch, classes]

Every recurrent layer comes from `common.layers.recurrent_layer`, so `--cell`
chooses lstm / gru / minimal-gru / simple. Padding is on the right, as cuDNN needs.
"""

from __future__ import annotations

import keras

from common.layers import recurrent_layer

EMBEDDING_LAYER = "embedding"


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
    if cfg.pooling == "mean":
        x = keras.layers.GlobalAveragePooling1D(name="mean_over_time")(x)  # honours the mask
    x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    probs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(text, probs, name="sentiment_classifier")
