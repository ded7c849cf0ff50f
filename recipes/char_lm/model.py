"""The language model: `common.lm`'s, named for its token level.

    ids int32[batch, time] -> Embedding -> [recurrent layer -> Dropout] x layers -> Dense
      -> logits float32[batch, time, vocab]

`common.lm` also builds the one-step twin that generation and scoring use (the state
carried from token to token) and holds the sampler; music generation shares them.
"""

from __future__ import annotations

import keras

from common import lm
from common.lm import build_step_model, rnn_name, states_per_layer, zero_states

__all__ = ["build_model", "build_step_model", "rnn_name", "states_per_layer", "zero_states"]


def build_model(cfg, vocab_size: int, stateful_batch: int | None = None) -> keras.Model:
    """The training model: int ids [batch, time] -> logits [batch, time, vocab]; stateful
    with a fixed batch for `state="carry"` (see `common.lm.build_model`)."""
    return lm.build_model(cfg, vocab_size, name=f"{cfg.level}_lm", stateful_batch=stateful_batch)
