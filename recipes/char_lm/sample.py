"""Generation with a trained language model: the compiled loop of `common.sampling`.

    states = 0;  (logits, states) = step_model([<bos>, prime...], states)   # prime read once
    repeat length times, inside one tf.while_loop:
        t ~ softmax(top_k(logits) / temperature)      # never <pad>, <bos>, <unk>
        (logits, states) = cells(embedding(t), states) -> logits

The prime is read by the Keras step model in one call; afterwards each step feeds only the
new token through the same layers' cells and carries the state, so the cost per token is
constant and no step leaves the graph.

Sampling rules (see `common.sampling.choose`): temperature 0 is greedy, `top_k` > 0 keeps the
k most likely tokens, `<pad>`, `<bos>` and `<unk>` are never emitted (probability set to zero,
the rest renormalised). At character level `<eos>` is never emitted either; at word level a
sample stops at `<eos>` (which is not printed). The draws are a hash of (seed, step, row)
(`common.sampling.uniform`), so the same model, prime, options and seed give the same text,
under XLA or not.

`Sampler.stream` gives the same tokens as they come, for the `sample` verb and the demo,
which show the text as it grows (`stream_texts`): the same prime read, then the same cell step
and `choose` in a compiled loop of `STREAM_CHUNK` steps, called again from where it stopped
(the state and the step number carried), with the text so far after each call. So the same
text as the loop (a test compares them), at about three quarters of its speed at batch 1 (a
Python round trip per chunk), and one compilation per batch size, not per length. The loop
itself stays for batch work: `train`'s sample, the export, `make bench-inference`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from common import lm
from common.errors import UserError
from common.sampling import choose
from common.tokenization import BOS, EOS, PAD, UNK

STREAM_CHUNK = 64  # steps `Sampler.stream` runs in one call, between two yields


def encode_prime(tok, prime: str, level: str) -> list[int]:
    """Prime text -> ids; a token the model never saw is a `UserError`."""
    unk = tok.token_to_id(UNK)
    ids = tok.encode(prime)
    if unk in ids:
        tokens = tok.tokens(prime)
        bad = next(t for t, i in zip(tokens, ids, strict=True) if i == unk)
        what = "character" if level == "char" else "word"
        raise UserError(
            f"--prime: the {what} {bad!r} (position {tokens.index(bad) + 1}) is not in the "
            f"model's vocabulary of {tok.vocab_size} tokens; use {what}s from its training text"
        )
    return ids


class Sampler(lm.Sampler):
    """`common.lm.Sampler` with char_lm's rules: <pad>, <bos>, <unk> (and at character level
    <eos>) never emitted; at word level a sample stops at <eos>."""

    def __init__(self, cfg, tok, trained, jit_compile: bool = True):
        self.tok = tok
        banned = [PAD, BOS, UNK] + ([EOS] if cfg.level == "char" else [])
        super().__init__(
            cfg,
            trained,
            banned=[tok.token_to_id(t) for t in banned],
            eos=tok.token_to_id(EOS) if cfg.level == "word" else None,
            pad=tok.token_to_id(PAD),
            jit_compile=jit_compile,
        )
        # The loop's own functions (`common.lm.Sampler` hands them to the `Generator`): the
        # prime read in one call, one token through the cells, the zero states.
        loop = self.generator

        def read_prime(prime):
            """The logits after the prime, read in one call, and the states."""
            return loop._read_prime(prime, loop._initial_states(tf.shape(prime)[0]))

        def advance(logits, states, start, temperature, top_k, seed):
            """Steps start .. start + STREAM_CHUNK - 1 in one loop: their tokens
            int32[STREAM_CHUNK, batch], then the logits and states after the last of them."""

            def body(i, logits, states, tokens):
                chosen = choose(logits, loop.banned_mask, temperature, top_k, seed, start + i)
                logits, states = loop._step(chosen, states)
                return i + 1, logits, states, tokens.write(i, chosen)

            tokens = tf.TensorArray(tf.int32, size=STREAM_CHUNK)
            _, logits, states, tokens = tf.while_loop(
                lambda i, *_: i < STREAM_CHUNK, body, (tf.constant(0), logits, states, tokens)
            )
            return tokens.stack(), logits, states

        self._read_prime = tf.function(read_prime, reduce_retracing=True)
        # Compiled as the loop is, once per batch size (every chunk has the same length).
        self._advance = tf.function(advance, jit_compile=jit_compile, reduce_retracing=True)

    def generate(self, prime_ids: list[int], **options):
        """`num_samples` continuations of <bos> + `prime_ids`; see `common.lm.Sampler`."""
        return super().generate([self.tok.token_to_id(BOS), *prime_ids], **options)

    def stream(
        self,
        prime_ids: list[int],
        *,
        length: int,
        temperature: float = 1.0,
        top_k: int = 0,
        num_samples: int = 1,
        seed: int = 0,
    ) -> Iterator[list[list[int]]]:
        """What `generate` returns, as it grows: one list of ids per sample (without <eos>)
        after every `STREAM_CHUNK` steps (the last chunk may be shorter). Stops after `length`
        steps or once every sample has ended."""
        if length < 1:
            raise ValueError(f"length must be at least 1. Received: length={length}")
        prime = np.tile([[self.tok.token_to_id(BOS), *prime_ids]], (num_samples, 1))
        options = (
            tf.constant(temperature, tf.float32),
            tf.constant(top_k, tf.int32),
            tf.constant(seed, tf.int32),
        )
        logits, states = self._read_prime(tf.constant(prime, tf.int32))
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


def stream_texts(sampler: Sampler, prime: str, **options) -> Iterator[list[str]]:
    """The texts `sample` prints for `prime` and `options`, as they grow (see
    `Sampler.stream`): one text per sample, the prime then its continuation so far."""
    tok = sampler.tok
    prime_ids = encode_prime(tok, prime, sampler.cfg.level)
    separator = "" if sampler.cfg.level == "char" or not prime else " "
    texts, lengths = [], []
    for outputs in sampler.stream(prime_ids, **options):
        if not texts:
            texts, lengths = [prime + separator] * len(outputs), [0] * len(outputs)
        for row, ids in enumerate(outputs):
            # `decode` spaces two tokens by looking at those two only: the new tokens, decoded
            # after the last one already shown, extend the text.
            before = ids[max(lengths[row] - 1, 0) : lengths[row]]
            texts[row] += tok.decode(before + ids[lengths[row] :])[len(tok.decode(before)) :]
            lengths[row] = len(ids)
        yield list(texts)
