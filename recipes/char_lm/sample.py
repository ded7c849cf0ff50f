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
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from common.errors import UserError
from common.sampling import Generator
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

    def __init__(self, cfg, tok, trained, jit_compile: bool = True):
        self.cfg, self.tok = cfg, tok
        self.step = model_lib.build_step_model(cfg, trained)
        banned = [PAD, BOS, UNK] + ([EOS] if cfg.level == "char" else [])
        self.banned = np.array([tok.token_to_id(t) for t in banned])
        self.eos = tok.token_to_id(EOS) if cfg.level == "word" else None
        n_states = model_lib.states_per_layer(cfg.cell)
        embedding = self.step.get_layer("embedding")
        cells = [self.step.get_layer(model_lib.rnn_name(i)).cell for i in range(cfg.layers)]
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

        self.generator = Generator(
            read_prime=read_prime,
            step=step,
            initial_states=initial_states,
            vocab_size=tok.vocab_size,
            banned=self.banned.tolist(),
            eos=self.eos,
            pad=tok.token_to_id(PAD),
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
        """`num_samples` continuations of `prime_ids`.

        Returns (one list of ids per sample, seconds of the whole call: the prime, the
        generation and, for a new length or number of samples, compiling the loop).
        """
        if length < 1:
            raise ValueError(f"length must be at least 1. Received: length={length}")
        bos = self.tok.token_to_id(BOS)
        prime = np.tile(np.array([[bos, *prime_ids]], dtype=np.int32), (num_samples, 1))
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
