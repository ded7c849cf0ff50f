"""The language model and its one-step twin for generation and scoring.

Training model (many-to-many), token ids in, next-token logits out:

    ids int32[batch, time]
      -> Embedding(vocab, embedding_dim)
      -> [recurrent_layer(cell, units, return_sequences=True) -> Dropout] x layers
      -> Dense(vocab)                      logits float32[batch, time, vocab]

Dropout drops the same features at every time step (`noise_shape=(batch, 1,
features)`) and sits between layers, never inside a cell.

Step model: the same layers with `return_state=True`, taking the recurrent
states as inputs and returning the new ones, so generation feeds one token at
a time and carries the state instead of re-running the prefix:

    (ids[batch, t], *states) -> (logits[batch, t, vocab], *new_states)

lstm layers carry (h, c), the other cells h, each float32[batch, units].
The step model is built from the config and takes its weights from the saved
model layer by layer (by name), so it needs only what `train` saved.
"""

from __future__ import annotations

import keras
from keras import layers

from common.layers import recurrent_layer


def rnn_name(i: int) -> str:
    return f"rnn_{i + 1}"


def states_per_layer(cell: str) -> int:
    return 2 if cell == "lstm" else 1


def build_model(cfg, vocab_size: int) -> keras.Model:
    """The training model: int ids [batch, time] -> logits [batch, time, vocab]."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding")(ids)
    for i in range(cfg.layers):
        x = recurrent_layer(cfg.cell, cfg.units, return_sequences=True, name=rnn_name(i))(x)
        if cfg.dropout:
            x = layers.Dropout(
                cfg.dropout, noise_shape=(None, 1, cfg.units), name=f"dropout_{i + 1}"
            )(x)
    logits = layers.Dense(vocab_size, name="logits", dtype="float32")(x)
    return keras.Model(ids, logits, name=f"{cfg.level}_lm")


def build_step_model(cfg, trained: keras.Model) -> keras.Model:
    """The stateful twin of `trained`: (ids, *states) -> (logits, *new_states).

    Weights are copied from `trained` by layer name; dropout is left out
    (inference only).
    """
    vocab_size = trained.get_layer("embedding").input_dim
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    n_states = states_per_layer(cfg.cell)
    state_inputs = [
        keras.Input(shape=(cfg.units,), name=f"state_{i + 1}_{j}")
        for i in range(cfg.layers)
        for j in range(n_states)
    ]
    embedding = layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding")
    x = embedding(ids)
    new_states = []
    copies = [embedding]
    for i in range(cfg.layers):
        rnn = recurrent_layer(
            cfg.cell, cfg.units, return_sequences=True, return_state=True, name=rnn_name(i)
        )
        outputs = rnn(x, initial_state=state_inputs[i * n_states : (i + 1) * n_states])
        x, states = outputs[0], list(outputs[1:])
        new_states.extend(states)
        copies.append(rnn)
    head = layers.Dense(vocab_size, name="logits", dtype="float32")
    logits = head(x)
    copies.append(head)
    step = keras.Model([ids, *state_inputs], [logits, *new_states], name="step_model")
    for layer in copies:
        layer.set_weights(trained.get_layer(layer.name).get_weights())
    return step


def zero_states(cfg, batch_size: int):
    """Initial states for `build_step_model`: zeros, as in every training window."""
    import numpy as np

    n = cfg.layers * states_per_layer(cfg.cell)
    return [np.zeros((batch_size, cfg.units), dtype="float32") for _ in range(n)]
