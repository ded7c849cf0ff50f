"""Incremental generation: one token per step, the recurrent state carried.

    state = 0;  (logits, state) = step([<bos>, prime...], state)      # prime read once
    repeat length times:
        t ~ softmax(top_k(logits) / temperature)                       # never <unk>
        (logits, state) = step([t], state)                             # one token in

The prime is read once; afterwards each step feeds only the new token, so the
cost per token is constant (the prefix is never re-run).

Sampling rules:
- `temperature` 0 picks the most likely token (greedy); smaller temperatures
  approach greedy, larger ones flatten the distribution.
- `top_k` > 0 keeps only the k most likely tokens.
- `<pad>`, `<bos>` and `<unk>` are never emitted: their probability is set to
  zero and the rest renormalised, which is exactly what resampling until a
  different token comes up would give. At character level `<eos>` is never
  emitted either; at word level a sample stops at `<eos>` (which is not printed).
- The random draws come from `numpy.random.default_rng(seed)` only, so the
  same model, prime and seed give the same text.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from common.errors import UserError
from common.tokenization import BOS, EOS, PAD, UNK
from recipes.char_lm import model as model_lib


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


class Sampler:
    """Generates with a step model built from a trained model."""

    def __init__(self, cfg, tok, trained):
        self.cfg, self.tok = cfg, tok
        self.step = model_lib.build_step_model(cfg, trained)
        banned = [PAD, BOS, UNK] + ([EOS] if cfg.level == "char" else [])
        self.banned = np.array([tok.token_to_id(t) for t in banned])
        self.eos = tok.token_to_id(EOS) if cfg.level == "word" else None

        @tf.function(reduce_retracing=True)
        def run(inputs, states):
            logits, *new_states = self.step([inputs, *states], training=False)
            return logits[:, -1, :], new_states

        self._run = run

    def choose(self, logits: np.ndarray, rng, temperature: float, top_k: int) -> np.ndarray:
        """One token id per row of `logits` [batch, vocab] under the sampling rules."""
        logits = logits.astype(np.float64)
        logits[:, self.banned] = -np.inf
        if temperature == 0:
            return np.argmax(logits, axis=-1)
        if top_k and top_k < logits.shape[-1]:
            kth = np.sort(logits, axis=-1)[:, -top_k][:, None]
            logits = np.where(logits < kth, -np.inf, logits)
        scaled = logits / temperature
        scaled -= scaled.max(axis=-1, keepdims=True)
        probs = np.exp(scaled)
        probs /= probs.sum(axis=-1, keepdims=True)
        cumulative = np.cumsum(probs, axis=-1)
        draws = rng.random((len(probs), 1)) * cumulative[:, -1:]
        return np.minimum((cumulative <= draws).sum(axis=-1), probs.shape[-1] - 1)

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
        """`num_samples` continuations of `prime_ids`.

        Returns (one list of ids per sample, tokens per second of the one-token
        steps after the first, which compiles; nan when there were too few).
        """
        if length < 1:
            raise ValueError(f"length must be at least 1. Received: length={length}")
        rng = np.random.default_rng(seed)
        bos = self.tok.token_to_id(BOS)
        inputs = np.tile(np.array([[bos, *prime_ids]], dtype=np.int32), (num_samples, 1))
        states = model_lib.zero_states(self.cfg, num_samples)
        outputs = [[] for _ in range(num_samples)]
        done = np.zeros(num_samples, dtype=bool)
        logits, states = self._run(inputs, states)  # reads the prime once
        steps, start, timed_steps = 0, None, 0
        while True:
            chosen = self.choose(logits.numpy(), rng, temperature, top_k)
            steps += 1
            for row, token in enumerate(chosen):
                if done[row]:
                    continue
                if token == self.eos:
                    done[row] = True
                else:
                    outputs[row].append(int(token))
            if done.all() or steps == length:
                break
            logits, states = self._run(chosen[:, None].astype(np.int32), states)
            if start is None:  # the first one-token step compiled the function: time the rest
                start = time.perf_counter()
            else:
                timed_steps += 1
        seconds = time.perf_counter() - start if start is not None else 0.0
        rate = timed_steps * num_samples / seconds if timed_steps else float("nan")
        return outputs, rate
