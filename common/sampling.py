"""Token-by-token generation as one compiled TensorFlow loop, for any recurrent language model.

    logits, states = read_prime(prime_ids, zero states)           # the whole prime in one call
    for t in 0 .. length-1:                                       # tf.while_loop, in the graph
        token_t = choose(logits, temperature, top_k, seed=(seed, t))
        stop a row at <eos> (when the model has one)
        logits, states = step(token_t, states)                    # one token in, state carried

Nothing leaves the graph between steps, so a step costs what its arithmetic costs, not a
Python round trip. The recipes that generate (char_lm's `sample`, music's `compose`) and the
export endpoints use this one implementation.

Sampling rules (`choose`):
- `temperature` 0 picks the most likely token (greedy); smaller temperatures approach greedy,
  larger ones flatten the distribution.
- `top_k` > 0 samples only among the k most likely tokens (after banning); 0 = all.
- `banned` token ids are never emitted: their logits are set to -inf before choosing, so the
  others are renormalised -- exactly what resampling until another token comes up gives.
- Draws are a hash of (seed, step, row) (`uniform`), mapped through the inverse of the
  cumulative distribution: the same model, prime, options and seed give the same tokens, run
  after run, under XLA or not (row r draws the same number in a batch of any size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

# step(tokens int32[batch], states) -> (logits float32[batch, vocab], states)
StepFn = Callable[[tf.Tensor, list], tuple[tf.Tensor, list]]
# read_prime(ids int32[batch, time], states) -> (logits of the last step [batch, vocab], states)
PrimeFn = Callable[[tf.Tensor, list], tuple[tf.Tensor, list]]


_MASK32 = 0xFFFFFFFF


def _hash32(x):
    """A 32-bit integer hash (Wellons' lowbias32) on int64 tensors holding 32-bit values."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = (x * 0x7FEB352D) & _MASK32
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = (x * 0x846CA68B) & _MASK32
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def uniform(seed, step, rows):
    """float32[rows] in [0, 1), a function of (seed, step, row) only.

    Integer arithmetic, so the numbers are the same whether the loop runs under XLA or as a
    plain graph (TensorFlow's stateless random ops use another generator under XLA): the
    compiled `sample` and an exported SavedModel without XLA draw the same tokens.
    """
    row = tf.range(rows, dtype=tf.int64)
    x = tf.cast(seed, tf.int64) * 0x9E3779B1 + tf.cast(step, tf.int64) * 0x85EBCA77
    x = _hash32(tf.bitwise.bitwise_xor(_hash32((x + row * 0xC2B2AE3D) & _MASK32), 0x27D4EB2F))
    return tf.cast(tf.bitwise.right_shift(x, 8), tf.float32) / float(1 << 24)


def choose(logits, banned_mask, temperature, top_k, seed, step):
    """One token id per row of `logits` float[batch, vocab] under the sampling rules.

    banned_mask: bool[vocab]; temperature: float32 scalar (0 = greedy); top_k: int32 scalar
    (0 = all); seed, step: int32 scalars for the draw (`uniform`, then the inverse of the
    cumulative distribution).
    """
    logits = tf.cast(logits, tf.float32)
    logits = tf.where(banned_mask[None, :], tf.constant(-float("inf")), logits)
    vocab = tf.shape(logits)[-1]

    def keep_top_k():
        kth = tf.gather(tf.sort(logits, direction="DESCENDING"), [top_k - 1], axis=-1)
        return tf.where(logits < kth, tf.constant(-float("inf")), logits)

    def sample():
        kept = tf.cond((top_k > 0) & (top_k < vocab), keep_top_k, lambda: logits)
        probs = tf.nn.softmax(kept / temperature, axis=-1)
        cumulative = tf.cumsum(probs, axis=-1)
        draw = uniform(seed, step, tf.shape(logits)[0])[:, None] * cumulative[:, -1:]
        token = tf.reduce_sum(tf.cast(cumulative <= draw, tf.int32), axis=-1)
        # Rounding can leave the draw at the very top: take the last token that can come.
        possible = tf.cast(probs > 0, tf.int32) * tf.range(vocab)[None, :]
        return tf.minimum(token, tf.reduce_max(possible, axis=-1))

    def greedy():
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    return tf.cond(temperature > 0.0, sample, greedy)


class Generator:
    """The compiled generation loop over a model's `read_prime` and `step` functions.

    Args:
        read_prime: ids int32[batch, time] and the states -> the logits after the last id
            float[batch, vocab] and the new states (one call for the whole prime).
        step: tokens int32[batch] and the states -> logits float[batch, vocab] and the states.
        initial_states: batch size (int32 scalar tensor) -> the zero states.
        vocab_size: number of logits.
        banned: token ids never emitted.
        eos: a row stops after this id (which is not part of its output); None = never stops.
        pad: the id that fills a row after it stopped.
        jit_compile: compile the token loop with XLA.
    """

    def __init__(
        self,
        *,
        read_prime: PrimeFn,
        step: StepFn,
        initial_states: Callable[[tf.Tensor], list],
        vocab_size: int,
        banned: Sequence[int] = (),
        eos: int | None = None,
        pad: int = 0,
        jit_compile: bool = True,
    ):
        self._read_prime, self._initial_states = read_prime, initial_states
        self._step = step
        # XLA compiles the whole token loop into one program: at batch 1 about twice the
        # tokens per second of the same loop run op by op (bench/inference_bench.py), for a
        # compile of a second or two per new batch size and length.
        self._loop = tf.function(self._loop_body, jit_compile=jit_compile)
        banned_mask = [False] * vocab_size
        for token in banned:
            banned_mask[token] = True
        self.banned_mask = tf.constant(banned_mask)
        self.eos, self.pad = eos, pad
        self.generate = tf.function(
            self._generate,
            input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="prime_ids"),
                tf.TensorSpec([], tf.int32, name="length"),
                tf.TensorSpec([], tf.float32, name="temperature"),
                tf.TensorSpec([], tf.int32, name="top_k"),
                tf.TensorSpec([], tf.int32, name="seed"),
            ],
        )

    def _generate(self, prime_ids, length, temperature, top_k, seed):
        """prime_ids int32[batch, time] (time >= 1) -> (ids int32[batch, length], lengths
        int32[batch]): the generated ids of each row, filled with `pad` after it stopped."""
        batch = tf.shape(prime_ids)[0]
        logits, states = self._read_prime(prime_ids, self._initial_states(batch))
        return self._loop(logits, states, length, temperature, top_k, seed)

    def _loop_body(self, logits, states, length, temperature, top_k, seed):
        """The token loop after the prime: ids int32[batch, length] and lengths int32[batch]."""
        batch = tf.shape(logits)[0]
        rows = tf.range(batch)

        def draw(t, logits):
            return choose(logits, self.banned_mask, temperature, top_k, seed, t)

        def record(t, tokens, done, lengths, ids):
            if self.eos is not None:
                done = done | tf.equal(tokens, self.eos)
            ids = tf.tensor_scatter_nd_update(
                ids, tf.stack([rows, tf.fill([batch], t)], axis=1), tf.where(done, self.pad, tokens)
            )
            return done, lengths + tf.cast(~done, tf.int32), ids

        ids = tf.fill([batch, length], self.pad)
        tokens = draw(0, logits)
        done, lengths, ids = record(
            0, tokens, tf.zeros([batch], tf.bool), tf.zeros([batch], tf.int32), ids
        )

        def cond(t, tokens, states, done, lengths, ids):
            return (t < length) & ~tf.reduce_all(done)

        def body(t, tokens, states, done, lengths, ids):
            logits, states = self._step(tokens, states)
            tokens = draw(t, logits)
            done, lengths, ids = record(t, tokens, done, lengths, ids)
            return t + 1, tokens, states, done, lengths, ids

        _, _, _, _, lengths, ids = tf.while_loop(
            cond, body, (tf.constant(1), tokens, states, done, lengths, ids)
        )
        return ids, lengths
