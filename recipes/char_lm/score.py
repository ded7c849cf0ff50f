"""Log-probabilities of text under a trained model: `score` and `evaluate`.

P(text) is the product of next-token probabilities, starting from `<bos>`
and a zero state:

    log P(t_1 .. t_n) = sum_i log P(t_i | <bos>, t_1 .. t_{i-1})

`score` reads the whole text as one sequence, carrying the recurrent state
from chunk to chunk through the step model (any length, nothing re-run).
`evaluate` (and the metrics of `train`) score held-out text the way the model
was trained (`validation_log_prob`): a model trained with `state="reset"` on
windows of `seq_len` tokens that each start from `<bos>` and a zero state, so
its `loss` is comparable with `val_loss` in history.csv; a model trained with
`state="carry"` on the whole text as one sequence, like `score` (its `val_loss`
carries the state along `batch_size` parallel streams, so it is a little higher).

Tokens missing from the vocabulary are scored as `<unk>` and counted
(`unk_tokens`); a model rarely predicts `<unk>`, so they cost many bits.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from common import data as common_data
from common.errors import UserError
from common.tokenization import BOS_ID, PAD_ID, UNK_ID
from recipes.char_lm import data
from recipes.char_lm import model as model_lib

CHUNK = 512  # tokens per step-model call while scoring one long sequence
EMPTY_TEXT = "--text is empty"  # `score --text ""`, and the demo's empty text box


def summarize(total_log_prob: float, tokens: int, unk_tokens: int, level: str) -> dict:
    """Metrics from a total log-probability in nats, under the project's metric names.

    `loss` is nats per token, `perplexity` = exp(loss); at character level
    `bits_per_char` = loss / ln 2, at word level the same number is
    `bits_per_word`.
    """
    loss = -total_log_prob / max(tokens, 1)
    bits_key = "bits_per_char" if level == "char" else "bits_per_word"
    return {
        "loss": loss,
        bits_key: loss / math.log(2.0),
        "perplexity": math.exp(min(loss, 700.0)),
        "total_log_prob": total_log_prob,
        "total_bits": -total_log_prob / math.log(2.0),
        "tokens": int(tokens),
        "unk_tokens": int(unk_tokens),
    }


def _picked_log_probs(logits, targets):
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    return tf.gather(log_probs, targets, batch_dims=2)


class Scorer:
    """Per-token log-probabilities through a step model with state carried over."""

    def __init__(self, cfg, trained):
        self.cfg = cfg
        self.step = model_lib.build_step_model(cfg, trained)

        @tf.function(reduce_retracing=True)
        def run(inputs, targets, states):
            logits, *new_states = self.step([inputs, *states], training=False)
            return _picked_log_probs(logits, targets), new_states

        self._run = run

    def token_log_probs(self, ids: np.ndarray, bos_id: int) -> np.ndarray:
        """log P(ids[i] | <bos>, ids[:i]) for every i, as float64[len(ids)]."""
        ids = np.asarray(ids, dtype=np.int32)
        inputs = np.concatenate([[bos_id], ids[:-1]]).astype(np.int32)
        n = len(ids)
        padded = -(-n // CHUNK) * CHUNK  # every call has the same shape: one compilation
        inputs = np.pad(inputs, (0, padded - n))
        targets = np.pad(ids, (0, padded - n))
        states = model_lib.zero_states(self.cfg, 1)
        out = []
        for start in range(0, padded, CHUNK):
            piece = slice(start, start + CHUNK)
            picked, states = self._run(inputs[None, piece], targets[None, piece], states)
            out.append(picked.numpy()[0])
        # Padding sits after the last real token, so it cannot change its probabilities.
        return np.concatenate(out)[:n].astype(np.float64) if out else np.zeros(0)


def score_text(scorer: Scorer, tok, text: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """What `score` reports for `text` (`summarize`'s metrics), with the token ids scored
    and each one's log-probability in nats."""
    ids = data.encode(tok, text)
    if len(ids) == 0:
        raise UserError("the text has no tokens to score")
    log_probs = scorer.token_log_probs(ids, BOS_ID)
    unknown = int((ids == UNK_ID).sum())
    return summarize(float(log_probs.sum()), len(ids), unknown, scorer.cfg.level), ids, log_probs


def validation_log_prob(cfg, trained, ids: np.ndarray) -> float:
    """Total log-probability of held-out `ids` as the model was trained to read text."""
    if cfg.state == "carry":
        return float(Scorer(cfg, trained).token_log_probs(ids, BOS_ID).sum())
    return windowed_log_prob(
        trained, ids, seq_len=cfg.seq_len, bos_id=BOS_ID, pad_id=PAD_ID, batch_size=cfg.batch_size
    )


def windowed_log_prob(
    trained, ids: np.ndarray, *, seq_len: int, bos_id: int, pad_id: int, batch_size: int = 64
) -> float:
    """Total log-probability of `ids` cut into windows that each start from `<bos>`."""
    inputs, targets, weights = data.window_arrays(np.asarray(ids), seq_len, bos_id, pad_id)

    @tf.function(reduce_retracing=True)
    def run(x, y):
        return _picked_log_probs(trained(x, training=False), y)

    # Whole batches only (one compilation): the rows filling the last batch weigh 0.
    index, keep = common_data.fill_last_batch(len(inputs), batch_size)
    inputs, targets, weights = inputs[index], targets[index], weights[index] * keep[:, None]
    total = 0.0
    for start in range(0, len(index), batch_size):
        piece = slice(start, start + batch_size)
        picked = run(inputs[piece], targets[piece]).numpy()
        total += float(np.sum(picked.astype(np.float64) * weights[piece]))
    return total
