"""CTC decoding: greedy, beam search, and beam search with a character language model.

    greedy        the most likely id per frame, repeats collapsed, blanks dropped
    beam          keras.ops.ctc_decode(strategy="beam_search") (TensorFlow's CTC beam search)
    beam + LM     prefix beam search (Hannun et al. 2014) with shallow fusion of a `char_lm`
                  run: a prefix y scores  log P_ctc(y | audio) + weight * log P_lm(y) +
                  bonus * |y|,  the end of the utterance included in P_lm (a line break)

Log-probabilities come from the model, float32[frames, alphabet + 1], blank id 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from common.errors import UserError
from recipes.speech.model import BLANK

# A frame whose blank probability is above this leaves every prefix as it is in the
# LM beam search (most frames of a well-trained CTC model), and characters whose
# log-probability is below CANDIDATE_LOG_PROB (e^-5, 0.7%) are not tried there.
BLANK_SKIP_LOG_PROB = float(np.log(0.999))
CANDIDATE_LOG_PROB = -5.0


def greedy(log_probs: np.ndarray) -> list[int]:
    """Best path: argmax per frame, repeats collapsed, blanks dropped."""
    best = np.argmax(log_probs, axis=-1)
    keep = np.ones_like(best, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(i) for i in best[keep] if i != BLANK]


def beam(batch_log_probs: np.ndarray, beam_width: int) -> list[list[int]]:
    """TensorFlow's CTC beam search (through keras.ops.ctc_decode) over a padded batch
    float32[batch, frames, classes]; padded frames are certain blanks, so every utterance
    uses the whole length."""
    import keras

    batch, frames = batch_log_probs.shape[:2]
    decoded, _ = keras.ops.ctc_decode(
        batch_log_probs,
        np.full((batch,), frames, np.int32),
        strategy="beam_search",
        beam_width=beam_width,
        top_paths=1,
        mask_index=BLANK,
    )
    return [[int(i) for i in row if i > 0] for row in np.asarray(decoded)[0]]


class CharLM:
    """A trained `char_lm` run as next-character log-probabilities over the speech alphabet.

    The LM reads a transcript as one line of text: it is primed with <bos> and a line break
    (when its vocabulary has one) and its line break after the last character is the end of
    the utterance. Characters of the alphabet missing from the LM's vocabulary get its
    <unk> log-probability (or -20 without one).
    """

    def __init__(self, model_dir, alphabet: Sequence[str]):
        import tensorflow as tf

        from common import lm
        from common.export import generic_loops
        from recipes.char_lm.config import Config as LMConfig

        cfg, tok, trained = lm.load_run(model_dir, LMConfig)
        if tok.level != "char":
            raise UserError(
                f"--lm-dir {model_dir}: a character-level char_lm run is needed, not {tok.level}"
            )
        self.model_dir = str(model_dir)
        step = lm.build_step_model(cfg, trained)
        self.zero = lm.zero_states(cfg, 1)
        # One step for a varying number of prefixes: the generic loop in one graph, traced
        # once for any batch (called with the batch padded to a power of two). Calling the
        # concrete function skips tf.function's dispatch, about 2 ms a call: the search
        # calls it once per frame.
        generic_loops(step)
        specs = [tf.TensorSpec([None, None], tf.int32)] + [
            tf.TensorSpec([None, *z.shape[1:]], z.dtype) for z in self.zero
        ]
        concrete = tf.function(
            lambda *inputs: step(list(inputs), training=False), autograph=False
        ).get_concrete_function(*specs)
        self.step = lambda inputs: concrete(*[tf.constant(x) for x in inputs])
        unk = tok.token_to_id("<unk>") if "<unk>" in tok else None
        self.ids = [tok.token_to_id(ch) if ch in tok else unk for ch in alphabet]
        self.end = tok.token_to_id("\n") if "\n" in tok else None
        self.prime = [tok.token_to_id("<bos>")] + ([self.end] if self.end is not None else [])
        self.cache: dict[tuple, tuple[np.ndarray, list[np.ndarray]]] = {}

    def _log_softmax(self, logits: np.ndarray) -> np.ndarray:
        logits = logits - logits.max(axis=-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))

    def _scores(self, lm_log_probs: np.ndarray) -> np.ndarray:
        """[alphabet + 1] over the speech ids (blank unused), then the end."""
        chars = np.array([lm_log_probs[i] if i is not None else -20.0 for i in self.ids])
        end = lm_log_probs[self.end] if self.end is not None else 0.0
        return np.concatenate([[0.0], chars, [end]]).astype(np.float64)

    def prepare(self, prefixes: Sequence[tuple]) -> None:
        """Compute the next-character scores of every prefix not seen yet (one batched
        step per call; a prefix's parent is always known by then)."""
        if () not in self.cache:
            outputs = self.step([np.array([self.prime], np.int32), *self.zero])
            states = [np.asarray(s) for s in outputs[1:]]
            first = self._scores(self._log_softmax(np.asarray(outputs[0])[0, -1]))
            self.cache[()] = (first, states)
        missing = [p for p in dict.fromkeys(prefixes) if p not in self.cache]
        if not missing:
            return
        size = 1 << (len(missing) - 1).bit_length()  # padded to a power of two
        ids = np.zeros((size, 1), np.int32)
        ids[: len(missing), 0] = [self.ids[p[-1] - 1] or 0 for p in missing]
        parents = [self.cache[p[:-1]][1] for p in missing]
        states = [
            np.concatenate([s[i] for s in parents] + [self.zero[i]] * (size - len(missing)))
            for i in range(len(self.zero))
        ]
        outputs = self.step([ids, *states])
        logits = self._log_softmax(np.asarray(outputs[0])[: len(missing), -1])
        new_states = [np.asarray(s) for s in outputs[1:]]
        for n, prefix in enumerate(missing):
            self.cache[prefix] = (self._scores(logits[n]), [s[n : n + 1] for s in new_states])

    def next_scores(self, prefix: tuple) -> np.ndarray:
        return self.cache[prefix][0]

    def clear(self) -> None:
        self.cache.clear()


@dataclasses.dataclass(frozen=True)
class Fusion:
    """The language model's weight and the per-character bonus of the fused search."""

    weight: float
    bonus: float


def lm_beam(log_probs: np.ndarray, lm: CharLM, fusion: Fusion, beam_width: int) -> list[int]:
    """Prefix beam search over one utterance's log-probabilities with shallow fusion.

    The beams are parallel arrays (prefix i: log P(prefix, ending in blank) b[i], ending in
    its last character nb[i], LM part lms[i]); a frame's extensions are scored as one
    [beams, candidates] array and only the survivors become prefixes."""
    prefixes: list[tuple] = [()]
    b, nb, lms = np.zeros(1), np.full(1, -np.inf), np.zeros(1)
    lm.prepare(prefixes)
    for frame in log_probs.astype(np.float64):
        last = np.array([p[-1] if p else BLANK for p in prefixes])
        # Staying on a prefix: a blank, or its last character repeated (collapses).
        stay_nb = np.where(last != BLANK, nb + frame[last], -np.inf)
        total = np.logaddexp(b, nb)
        if frame[BLANK] > BLANK_SKIP_LOG_PROB:
            b, nb = total + frame[BLANK], stay_nb
            continue
        stay_b = total + frame[BLANK]
        candidates = np.flatnonzero(frame > CANDIDATE_LOG_PROB)
        candidates = candidates[candidates != BLANK]
        lm.prepare(prefixes)
        scores = np.stack([lm.next_scores(p) for p in prefixes])[:, candidates]
        # The same character twice needs a blank between: from b only.
        ext_nb = np.where(candidates == last[:, None], b[:, None], total[:, None])
        ext_nb = ext_nb + frame[candidates]
        ext_lms = lms[:, None] + fusion.weight * scores + fusion.bonus
        # An extension that is already a beam adds to that beam's probability.
        where = {p: i for i, p in enumerate(prefixes)}
        column = {int(c): j for j, c in enumerate(candidates)}
        for k, p in enumerate(prefixes):
            if p and p[:-1] in where and p[-1] in column:
                i, j = where[p[:-1]], column[p[-1]]
                stay_nb[k] = np.logaddexp(stay_nb[k], ext_nb[i, j])
                ext_nb[i, j] = -np.inf
        # Row i: prefix i staying, then prefix i extended by each candidate.
        parts_b = np.concatenate([stay_b[:, None], np.full_like(ext_nb, -np.inf)], axis=1)
        parts_nb = np.concatenate([stay_nb[:, None], ext_nb], axis=1)
        parts_lm = np.concatenate([lms[:, None], ext_lms], axis=1)
        ranked = np.argsort(-(np.logaddexp(parts_b, parts_nb) + parts_lm), axis=None, kind="stable")
        keep = [
            k
            for k in ranked[:beam_width]
            if parts_nb.flat[k] > -np.inf or parts_b.flat[k] > -np.inf
        ]
        rows, cols = np.divmod(np.array(keep, dtype=np.int64), parts_nb.shape[1])
        prefixes = [
            prefixes[i] if j == 0 else prefixes[i] + (int(candidates[j - 1]),)
            for i, j in zip(rows, cols, strict=True)
        ]
        b, nb, lms = parts_b[rows, cols], parts_nb[rows, cols], parts_lm[rows, cols]
    lm.prepare(prefixes)
    ends = np.array([lm.next_scores(p)[-1] for p in prefixes])
    final = np.logaddexp(b, nb) + lms + fusion.weight * ends
    return list(prefixes[int(np.argmax(final))])


def decode_batch(
    batch_log_probs: np.ndarray,
    decoder: str,
    beam_width: int,
    lm: CharLM | None = None,
    fusion: Fusion | None = None,
) -> list[list[int]]:
    """Label ids of each utterance of a padded batch with `decoder` (one of config.DECODERS)."""
    if decoder == "greedy":
        return [greedy(lp) for lp in batch_log_probs]
    if decoder == "beam":
        return beam(batch_log_probs, beam_width)
    if lm is None or fusion is None:
        raise UserError("the lm decoder needs a language model (--lm-dir)")
    return [lm_beam(lp, lm, fusion, beam_width) for lp in batch_log_probs]
