"""The melody model: `common.lm`'s recurrent language model over ABC tokens.

    ids int32[batch, time]  (<bos> M:6/8 K:D L:1/8 note note | ... <eos>)
      -> Embedding(vocab, embedding_dim)
      -> [recurrent_layer(cell, units) -> Dropout] x layers
      -> Dense(vocab)                      logits float32[batch, time, vocab]

Trained many-to-many (next token everywhere); used one-to-many: from the header tokens (or
from <bos> alone) the step model generates a whole tune, one token at a time with the
recurrent state carried, until <eos> (`compose.py`).
"""

from __future__ import annotations

import keras

from common import lm
from common.tokenization import BOS, EOS, PAD, UNK


def build_model(cfg, vocab_size: int) -> keras.Model:
    """The training model: int ids [batch, time] -> logits [batch, time, vocab]."""
    return lm.build_model(cfg, vocab_size, name="music_lm")


def sampler(cfg, tok, model: keras.Model, jit_compile: bool = True) -> lm.Sampler:
    """Generation that never emits <pad>, <bos> or <unk> and ends a tune at <eos>."""
    return lm.Sampler(
        cfg,
        model,
        banned=[tok.token_to_id(t) for t in (PAD, BOS, UNK)],
        eos=tok.token_to_id(EOS),
        pad=tok.token_to_id(PAD),
        jit_compile=jit_compile,
    )
