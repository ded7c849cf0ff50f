"""Recurrent language models: the training model, its one-step twin, and generation.

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

`Sampler` generates with the compiled loop of `common.sampling`, or (`stream`) with the same
step in compiled chunks of `STREAM_CHUNK` steps, yielding the ids so far. The config is any object
with the fields cell, layers, units, embedding_dim and dropout (char_lm's and music's).
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from common.layers import recurrent_layer
from common.sampling import Generator, choose

STREAM_CHUNK = 64  # steps `Sampler.stream` runs in one compiled call, between two yields


def load_run(model_dir, config_cls):
    """(config, tokenizer, model) of a finished language-model run directory: config.json
    read strictly as `config_cls`, tokenizer.json and model.keras, checked to match."""
    from common import runtime
    from common.errors import UserError
    from common.tokenization import Tokenizer

    run_dir = runtime.RunDir(model_dir)
    cfg = run_dir.read_config(config_cls)
    tok = Tokenizer.load(run_dir.file("tokenizer.json"))
    model = runtime.load_model(model_dir)
    if model.get_layer("embedding").input_dim != tok.vocab_size:
        raise UserError(f"{model_dir}: model.keras and tokenizer.json do not match")
    return cfg, tok, model


def rnn_name(i: int) -> str:
    return f"rnn_{i + 1}"


def states_per_layer(cell: str) -> int:
    return 2 if cell == "lstm" else 1


def build_model(
    cfg, vocab_size: int, name: str = "lm", stateful_batch: int | None = None
) -> keras.Model:
    """The training model: int ids [batch, time] -> logits [batch, time, vocab].

    With `stateful_batch` the batch size is fixed and the recurrent layers are `stateful`:
    each call starts from the states the previous call ended with (truncated BPTT over
    consecutive windows; `reset_states` zeroes them). The weights are the same either way.
    """
    ids = keras.Input(batch_shape=(stateful_batch, None), dtype="int32", name="ids")
    x = layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding")(ids)
    for i in range(cfg.layers):
        x = recurrent_layer(
            cfg.cell,
            cfg.units,
            return_sequences=True,
            stateful=stateful_batch is not None,
            name=rnn_name(i),
        )(x)
        if cfg.dropout:
            x = layers.Dropout(
                cfg.dropout, noise_shape=(None, 1, cfg.units), name=f"dropout_{i + 1}"
            )(x)
    logits = layers.Dense(vocab_size, name="logits", dtype="float32")(x)
    return keras.Model(ids, logits, name=name)


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


def reset_states(model: keras.Model) -> None:
    """Zero the states of every stateful recurrent layer of `model`."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


class ResetStates(keras.callbacks.Callback):
    """Zeroes a stateful model's states when an epoch (one pass over the streams) and
    when validation begin, so neither carries the other's state."""

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)

    def on_test_begin(self, logs=None):
        reset_states(self.model)


def zero_states(cfg, batch_size: int):
    """Initial states for `build_step_model`: zeros, as at the start of every training
    sequence."""
    n = cfg.layers * states_per_layer(cfg.cell)
    return [np.zeros((batch_size, cfg.units), dtype="float32") for _ in range(n)]


class Sampler:
    """Generates with a step model built from a trained model.

        states = 0;  (logits, states) = step_model(prime, states)     # prime read once
        repeat up to length times, inside one tf.while_loop:
            t ~ softmax(top_k(logits) / temperature)  # never a `banned` id; stop at `eos`
            (logits, states) = cells(embedding(t), states) -> logits

    The prime is read by the Keras step model in one call; afterwards each step feeds only
    the new token through the same layers' cells and carries the state, so the cost per
    token is constant and no step leaves the graph. The rules are `common.sampling.choose`'s.
    """

    def __init__(
        self,
        cfg,
        trained: keras.Model,
        *,
        banned,
        eos: int | None,
        pad: int,
        jit_compile: bool = True,
    ):
        self.cfg = cfg
        self.step = build_step_model(cfg, trained)
        self.banned = np.asarray(banned)
        self.eos = eos
        n_states = states_per_layer(cfg.cell)
        embedding = self.step.get_layer("embedding")
        cells = [self.step.get_layer(rnn_name(i)).cell for i in range(cfg.layers)]
        head = self.step.get_layer("logits")

        def read_prime(ids, states):
            logits, *states = self.step([ids, *states], training=False)
            return logits[:, -1, :], states

        def step(tokens, states):
            x, new_states = embedding(tokens), []
            for i, cell in enumerate(cells):
                x, cell_states = cell(x, states[i * n_states : (i + 1) * n_states])
                new_states.extend(
                    cell_states if isinstance(cell_states, (list, tuple)) else [cell_states]
                )
            return head(x), new_states

        def initial_states(batch):
            return [tf.zeros([batch, cfg.units]) for _ in range(cfg.layers * n_states)]

        def advance(logits, states, start, temperature, top_k, seed):
            """Steps start .. start + STREAM_CHUNK - 1 in one loop: their tokens
            int32[STREAM_CHUNK, batch], then the logits and states after the last of them."""

            def body(i, logits, states, tokens):
                mask = self.generator.banned_mask
                chosen = choose(logits, mask, temperature, top_k, seed, start + i)
                logits, states = step(chosen, states)
                return i + 1, logits, states, tokens.write(i, chosen)

            tokens = tf.TensorArray(tf.int32, size=STREAM_CHUNK)
            _, logits, states, tokens = tf.while_loop(
                lambda i, *_: i < STREAM_CHUNK, body, (tf.constant(0), logits, states, tokens)
            )
            return tokens.stack(), logits, states

        self._read_prime = tf.function(
            lambda ids: read_prime(ids, initial_states(tf.shape(ids)[0])), reduce_retracing=True
        )
        # Compiled as the loop is, once per batch size (every chunk has the same length).
        self._advance = tf.function(advance, jit_compile=jit_compile, reduce_retracing=True)
        self.generator = Generator(
            read_prime=read_prime,
            step=step,
            initial_states=initial_states,
            vocab_size=embedding.input_dim,
            banned=self.banned.tolist(),
            eos=eos,
            pad=pad,
            jit_compile=jit_compile,
        )

    def generate(
        self,
        prime_ids: list[int],
        *,
        length: int,
        temperature: float = 1.0,
        top_k: int = 0,
        num_samples: int = 1,
        seed: int = 0,
    ):
        """`num_samples` continuations of `prime_ids` (at least one id: <bos> and the prime).

        Returns (one list of ids per sample, without `eos`; seconds of the whole call: the
        prime, the generation and, for a new length or number of samples, compiling the loop).
        """
        if length < 1:
            raise ValueError(f"length must be at least 1. Received: length={length}")
        prime = np.tile(np.array([prime_ids], dtype=np.int32), (num_samples, 1))
        start = time.perf_counter()
        ids, lengths = self.generator.generate(
            prime,
            tf.constant(length, tf.int32),
            tf.constant(temperature, tf.float32),
            tf.constant(top_k, tf.int32),
            tf.constant(seed, tf.int32),
        )
        seconds = time.perf_counter() - start
        ids, lengths = ids.numpy(), lengths.numpy()
        outputs = [row[:n].tolist() for row, n in zip(ids, lengths, strict=True)]
        return outputs, seconds

    def stream(
        self,
        prime_ids: list[int],
        *,
        length: int,
        temperature: float = 1.0,
        top_k: int = 0,
        num_samples: int = 1,
        seed: int = 0,
    ):
        """What `generate` returns, as it grows: one list of ids per sample (without `eos`)
        after every `STREAM_CHUNK` steps (the last chunk may be shorter). The same prime read,
        cell step and `choose` as the loop, with the state and the step number carried from
        one compiled chunk to the next, so the same tokens. Stops after `length` steps or once
        every sample has ended."""
        if length < 1:
            raise ValueError(f"length must be at least 1. Received: length={length}")
        prime = np.tile(np.array([prime_ids], dtype=np.int32), (num_samples, 1))
        options = (
            tf.constant(temperature, tf.float32),
            tf.constant(top_k, tf.int32),
            tf.constant(seed, tf.int32),
        )
        logits, states = self._read_prime(tf.constant(prime))
        outputs = [[] for _ in range(num_samples)]
        ended = [False] * num_samples
        for start in range(0, length, STREAM_CHUNK):
            tokens, logits, states = self._advance(logits, states, tf.constant(start), *options)
            for row, row_tokens in enumerate(tokens.numpy()[: length - start].T.tolist()):
                for token in row_tokens:
                    ended[row] = ended[row] or token == self.eos
                    if ended[row]:
                        break
                    outputs[row].append(token)
            yield [list(ids) for ids in outputs]
            if all(ended):
                return
