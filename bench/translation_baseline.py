"""The step-by-step Python decoding loops that `recipes.translation.search` replaced.

Kept only as the baseline of `bench/inference_bench.py` and as the reference the tests
compare the compiled loops with: the rules are the same, to the letter (see the docstring of
`recipes/translation/translate.py`). Each step calls the model's `decode_step` eagerly on the
whole batch and does the bookkeeping in NumPy and Python.

    PythonLoopDecoding(translator).greedy(sources, length_penalty=0.0)
    PythonLoopDecoding(translator).beam_search(sources, beam_size=4, length_penalty=0.6)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.data import fill_last_batch
from common.tokenization import BOS_ID, EOS_ID, PAD_ID
from recipes.translation.search import BANNED
from recipes.translation.translate import Hypothesis, _hypothesis


class PythonLoopDecoding:
    """Greedy and beam decoding of a `Translator`'s model, one Python round trip per step."""

    def __init__(self, translator):
        self.model = translator.model
        self.batch_size = translator.batch_size
        self.source_bucket = translator.source_bucket
        self.max_steps = translator.max_steps
        self._encode = lambda s: self.model.encode(s, training=False)
        self._step = self.model.decode_step

    def _start(self, sources: Sequence[Sequence[int]], lanes: int):
        """Encode a batch; every array repeated `lanes` times per sentence (as numpy)."""
        n = len(sources)
        width = -(-max(len(s) for s in sources) // self.source_bucket) * self.source_bucket
        # One encoder shape: the batch filled with copies of its rows, dropped below.
        index, _ = fill_last_batch(n, self.batch_size)
        batch = np.zeros((len(index), width), np.int32)
        for row, i in enumerate(index):
            batch[row, : len(sources[i])] = sources[i]
        encoded = self._encode(batch)
        rep = lambda x: np.repeat(np.asarray(x)[:n], lanes, axis=0)  # noqa: E731
        return (
            rep(encoded["memory"]),
            rep(encoded["keys"]),
            rep(encoded["mask"]),
            [rep(c) for c in encoded["carry"]],
        )

    def _advance(self, tokens, carry, memory, keys, mask):
        log_probs, carry = self._step(tokens, tuple(carry), memory, keys, mask)
        log_probs = np.array(log_probs, dtype=np.float64)
        log_probs[:, BANNED] = -np.inf
        return log_probs, [np.asarray(c) for c in carry]

    def greedy(
        self, sources: Sequence[Sequence[int]], *, length_penalty: float = 0.0
    ) -> list[Hypothesis]:
        """Greedy decoding of non-empty source id lists (batched)."""
        results = []
        for start in range(0, len(sources), self.batch_size):
            results.extend(self._greedy(sources[start : start + self.batch_size], length_penalty))
        return results

    def _greedy(self, sources, alpha):
        n = len(sources)
        memory, keys, mask, carry = self._start(sources, 1)
        lengths = [len(s) for s in sources]
        tokens = np.full(n, BOS_ID, np.int32)
        scores = np.zeros(n)
        history = [[] for _ in range(n)]
        attention = [[] for _ in range(n)]
        done = np.zeros(n, bool)
        for _ in range(self.max_steps):
            log_probs, carry = self._advance(tokens, carry, memory, keys, mask)
            choice = log_probs.argmax(axis=-1)
            for i in np.flatnonzero(~done):
                scores[i] += log_probs[i, choice[i]]
                attention[i].append(carry[-1][i, : lengths[i]])
                if choice[i] == EOS_ID:
                    done[i] = True
                else:
                    history[i].append(int(choice[i]))
            if done.all():
                break
            tokens = choice.astype(np.int32)
        return [
            _hypothesis(history[i], scores[i], attention[i], bool(done[i]), alpha, lengths[i])
            for i in range(n)
        ]

    def beam_search(
        self,
        sources: Sequence[Sequence[int]],
        *,
        beam_size: int,
        length_penalty: float = 0.6,
        keep_greedy: bool = True,
    ) -> list[Hypothesis]:
        """Beam search over non-empty source id lists; see the module docstring."""
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1. Received: beam_size={beam_size}")
        results = []
        for start in range(0, len(sources), self.batch_size):
            results.extend(
                self._beam(
                    sources[start : start + self.batch_size], beam_size, length_penalty, keep_greedy
                )
            )
        return results

    def _beam(self, sources, k, alpha, keep_greedy):
        n = len(sources)
        lanes = k + (1 if keep_greedy else 0)
        rows = n * lanes
        memory, keys, mask, carry = self._start(sources, lanes)
        lengths = [len(s) for s in sources]
        tokens = np.full(rows, BOS_ID, np.int32)
        scores = np.zeros(rows)
        for i in range(n):  # at the first step only the first beam of each sentence is live
            scores[i * lanes + 1 : i * lanes + k] = -np.inf
        history = [[] for _ in range(rows)]
        attention = [[] for _ in range(rows)]
        finished = [[] for _ in range(n)]
        beams_done = np.zeros(n, bool)
        greedy_result = [None] * n

        def add(i, row, extra_token, score, att_row, is_finished):
            hyp = _hypothesis(
                history[row] + ([] if extra_token is None else [extra_token]),
                score,
                attention[row] + [att_row],
                is_finished,
                alpha,
                lengths[i],
            )
            return hyp

        for _ in range(self.max_steps):
            log_probs, carry = self._advance(tokens, carry, memory, keys, mask)
            weights = carry[-1]
            vocab = log_probs.shape[1]
            source_row = np.arange(rows)
            new_tokens = np.full(rows, PAD_ID, np.int32)
            new_scores = np.full(rows, -np.inf)
            new_history = [[] for _ in range(rows)]
            new_attention = [[] for _ in range(rows)]
            for i in range(n):
                base = i * lanes
                if not beams_done[i]:
                    candidates = (
                        scores[base : base + k, None] + log_probs[base : base + k]
                    ).ravel()
                    order = np.argsort(-candidates, kind="stable")[: 2 * k]
                    kept = 0
                    for index in order:
                        score = candidates[index]
                        if not np.isfinite(score):
                            break
                        beam, token = divmod(int(index), vocab)
                        row = base + beam
                        att = weights[row, : lengths[i]]
                        if token == EOS_ID:
                            finished[i].append(add(i, row, None, score, att, True))
                            continue
                        target = base + kept
                        source_row[target] = row
                        new_tokens[target] = token
                        new_scores[target] = score
                        new_history[target] = history[row] + [token]
                        new_attention[target] = attention[row] + [att]
                        kept += 1
                        if kept == k:
                            break
                    if len(finished[i]) >= k or kept == 0:
                        beams_done[i] = True
                if keep_greedy and greedy_result[i] is None:
                    row = base + k
                    token = int(log_probs[row].argmax())
                    score = scores[row] + log_probs[row, token]
                    att = weights[row, : lengths[i]]
                    if token == EOS_ID:
                        greedy_result[i] = add(i, row, None, score, att, True)
                    else:
                        new_tokens[row] = token
                        new_scores[row] = score
                        new_history[row] = history[row] + [token]
                        new_attention[row] = attention[row] + [att]
            greedy_done = [not keep_greedy or g is not None for g in greedy_result]
            if beams_done.all() and all(greedy_done):
                break
            carry = [c[source_row] for c in carry]
            tokens, scores, history, attention = new_tokens, new_scores, new_history, new_attention

        results = []
        for i in range(n):
            base = i * lanes
            candidates = list(finished[i])
            if not beams_done[i]:  # length limit: live beams compete unfinished
                candidates += [
                    _hypothesis(history[r], scores[r], attention[r], False, alpha, lengths[i])
                    for r in range(base, base + k)
                    if np.isfinite(scores[r])
                ]
            if keep_greedy:
                if greedy_result[i] is None:
                    r = base + k
                    greedy_result[i] = _hypothesis(
                        history[r], scores[r], attention[r], False, alpha, lengths[i]
                    )
                candidates.append(greedy_result[i])
            results.append(max(candidates, key=lambda h: h.normalized))
        return results
