"""Greedy decoding and beam search as compiled loops over a whole batch of sentences.

The source batch is encoded once; then one `tf.while_loop` runs every decoder step of every sentence (and every beam) without leaving the graph:

    carry = encode(sources)                         # [n * lanes, ...], sentence-major rows
    for t in 0 .. max_steps-1 while a sentence is not done:
        log_probs, carry = model.decode_step(tokens, carry, memory, keys, mask)
        log_probs[<pad>, <bos>, <unk>] = -inf       # never emitted; scores are the model's
        choose the next tokens, reorder the carry, record tokens and attention rows

The rules are those of `translate.py`'s module docstring, to the letter (and
tests/recipes/test_translation.py checks them against the step-by-step Python loops of
`bench/translation_baseline.py`): greedy takes the argmax; beam search keeps, per sentence,
the best k continuations among the 2k best candidates that do not end, moves those that end
with <eos> to the finished set (the best by normalised score is kept, the earliest on ties,
as Python's `max` over the list in order), is done once k have finished or nothing is left,
and one extra lane follows the greedy path. Scores are float64 sums of log-probabilities,
as in the loop it replaces.

Every array has a fixed shape: `max_steps` columns of tokens and of attention rows per
hypothesis, filled as the steps go; `Translator` cuts them to the real lengths.
"""

from __future__ import annotations

import tensorflow as tf

from common.tokenization import BOS_ID, EOS_ID, PAD_ID, UNK_ID

BANNED = (PAD_ID, BOS_ID, UNK_ID)
NEG_INF = float("-inf")


def _neg_inf(dtype=tf.float64):
    return tf.constant(NEG_INF, dtype)


def length_penalty(length, alpha):
    """Wu et al. (2016): ((5 + length) / 6) ** alpha, length float64 (at least 1)."""
    length = tf.maximum(tf.cast(length, tf.float64), 1.0)
    return ((5.0 + length) / 6.0) ** alpha


def _put(array, t, values, where):
    """`array` with step `t` set to `values` in the rows where `where` is true.

    array [*rows, S, *extra], values [*rows, *extra], where bool[*rows]; t a scalar tensor.
    """
    steps = tf.shape(array)[where.shape.rank]
    column = tf.one_hot(t, steps, on_value=True, off_value=False, dtype=tf.bool)
    extra = array.shape.rank - where.shape.rank - 1  # trailing axes after the step axis
    select = tf.reshape(column, [1] * where.shape.rank + [-1] + [1] * extra)
    select = select & tf.reshape(where, tf.concat([tf.shape(where), [1] * (extra + 1)], 0))
    return tf.where(select, tf.expand_dims(values, where.shape.rank), array)


class Decoder:
    """Compiled greedy and beam decoding of a trained `Seq2Seq`.

    `greedy(sources, alpha)` and `beam(sources, k, alpha, keep_greedy)`: sources int32[n, Tx]
    (right-padded with 0) -> dict of
        tokens int32[n, S]  (<pad> after the end), lengths int32[n] (tokens, <eos> excluded),
        scores float64[n], normalized float64[n], finished bool[n],
        attention float32[n, S, Tx]  (one row per step that produced a token or <eos>).
    `beam(..., candidates=True)` adds every hypothesis the search weighed, in the order it
    weighed them (those that ended, step by step; at the length limit the live beams; then
    the greedy lane), under the same names with the prefix `candidate_` and one more axis,
    C = 4k + 1, after n, and `candidate_valid` bool[n, C] marking the slots in use.
    """

    def __init__(self, model, max_steps: int, jit_greedy: bool = True, jit_beam: bool = False):
        self.model, self.max_steps = model, int(max_steps)
        vocab = model.target_vocab_size
        self.banned = tf.constant([i in BANNED for i in range(vocab)])
        self._encode = tf.function(lambda s: model.encode(s, training=False), reduce_retracing=True)
        # XLA: greedy decoding of 256 sentences with the `words` preset's model (vocabulary
        # 6,000) took 0.46 s compiled by XLA and 0.58 s as a plain graph; beam 4 took 48 s
        # under XLA, whose CPU top_k sorts each row of k x 6,000 candidates, and 3.1 s as a
        # plain graph (2-core Xeon, 2026-11-29). So greedy is compiled, beam search is not.
        self._greedy = tf.function(self._greedy_loop, jit_compile=jit_greedy, reduce_retracing=True)
        self._beams = {}
        self._jit_beam = jit_beam

    # ------------------------------------------------------------------ shared

    def _log_probs(self, tokens, carry, encoded):
        log_probs, carry = self.model.decode_step(
            tokens, tuple(carry), encoded["memory"], encoded["keys"], encoded["mask"]
        )
        log_probs = tf.where(self.banned[None, :], _neg_inf(), tf.cast(log_probs, tf.float64))
        return log_probs, list(carry)

    def _start(self, sources, lanes):
        encoded = self._encode(sources)
        rep = lambda x: tf.repeat(x, lanes, axis=0)  # noqa: E731
        return (
            {k: rep(encoded[k]) for k in ("memory", "keys", "mask")},
            [rep(c) for c in encoded["carry"]],
        )

    # ------------------------------------------------------------------ greedy

    def greedy(self, sources, alpha):
        encoded, carry = self._start(sources, 1)
        return self._greedy(encoded, carry, tf.constant(alpha, tf.float64))

    def _greedy_loop(self, encoded, carry, alpha):
        n, width, steps = tf.shape(encoded["mask"])[0], tf.shape(encoded["mask"])[1], self.max_steps
        state = dict(
            tokens=tf.fill([n], BOS_ID),
            scores=tf.zeros([n], tf.float64),
            done=tf.zeros([n], tf.bool),
            lengths=tf.zeros([n], tf.int32),
            history=tf.fill([n, steps], PAD_ID),
            attention=tf.zeros([n, steps, width]),
        )

        def body(t, carry, s):
            log_probs, carry = self._log_probs(s["tokens"], carry, encoded)
            choice = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
            live = ~s["done"]
            ends = tf.equal(choice, EOS_ID)
            grows = live & ~ends
            picked = tf.gather(log_probs, choice, batch_dims=1)
            return (
                t + 1,
                carry,
                dict(
                    tokens=choice,
                    scores=s["scores"] + tf.where(live, picked, tf.zeros_like(picked)),
                    done=s["done"] | ends,
                    lengths=s["lengths"] + tf.cast(grows, tf.int32),
                    history=_put(s["history"], t, choice, grows),
                    attention=_put(s["attention"], t, carry[-1], live),
                ),
            )

        _, _, s = tf.while_loop(
            lambda t, carry, s: (t < steps) & ~tf.reduce_all(s["done"]),
            body,
            (tf.constant(0), carry, state),
        )
        finished = s["done"]
        total = s["lengths"] + tf.cast(finished, tf.int32)
        return dict(
            tokens=s["history"],
            lengths=s["lengths"],
            scores=s["scores"],
            normalized=s["scores"] / length_penalty(total, alpha),
            finished=finished,
            attention=s["attention"],
        )

    # ------------------------------------------------------------------ beam search

    def beam(
        self, sources, k: int, alpha: float, keep_greedy: bool = True, candidates: bool = False
    ):
        key = (int(k), bool(keep_greedy), bool(candidates))
        if key not in self._beams:
            self._beams[key] = tf.function(
                lambda e, c, a: self._beam_loop(e, c, a, *key),
                jit_compile=self._jit_beam,
                reduce_retracing=True,
            )
        encoded, carry = self._start(sources, k + int(keep_greedy))
        return self._beams[key](encoded, carry, tf.constant(alpha, tf.float64))

    def _beam_loop(self, encoded, carry, alpha, k, keep_greedy, weighed=False):
        lanes, steps = k + int(keep_greedy), self.max_steps
        n = tf.shape(encoded["mask"])[0] // lanes
        width = tf.shape(encoded["mask"])[1]
        vocab = self.model.target_vocab_size
        lane_ids = tf.range(lanes)
        # At the first step only the first beam of each sentence is live.
        first = tf.where(lane_ids[None, :] == 0, 0.0, NEG_INF)
        first = tf.where(lane_ids[None, :] >= k, 0.0, first)  # the greedy lane
        state = dict(
            tokens=tf.fill([n * lanes], BOS_ID),
            scores=tf.cast(tf.tile(first, [n, 1]), tf.float64),
            history=tf.fill([n, lanes, steps], PAD_ID),
            attention=tf.zeros([n, lanes, steps, width]),
            beams_done=tf.zeros([n], tf.bool),
            finished_count=tf.zeros([n], tf.int32),
            # The best finished hypothesis so far (by normalised score, earliest on ties).
            best_normalized=tf.fill([n], tf.constant(NEG_INF, tf.float64)),
            best_score=tf.fill([n], tf.constant(NEG_INF, tf.float64)),
            best_length=tf.zeros([n], tf.int32),
            best_history=tf.fill([n, steps], PAD_ID),
            best_attention=tf.zeros([n, steps, width]),
            # The greedy lane's result once it ended with <eos>.
            greedy_done=tf.fill([n], not keep_greedy),
            greedy_score=tf.zeros([n], tf.float64),
            greedy_length=tf.zeros([n], tf.int32),
            greedy_history=tf.fill([n, steps], PAD_ID),
            greedy_attention=tf.zeros([n, steps, width]),
        )
        # Every hypothesis that ended: at most k - 1 before the last step, 2k in it.
        ended_slots = 3 * k
        if weighed:
            state.update(
                ended_count=tf.zeros([n], tf.int32),
                ended_history=tf.fill([n, ended_slots, steps], PAD_ID),
                ended_length=tf.zeros([n, ended_slots], tf.int32),
                ended_score=tf.fill([n, ended_slots], tf.constant(NEG_INF, tf.float64)),
                ended_normalized=tf.fill([n, ended_slots], tf.constant(NEG_INF, tf.float64)),
            )

        def body(t, carry, s):
            log_probs, carry = self._log_probs(s["tokens"], carry, encoded)
            log_probs = tf.reshape(log_probs, [n, lanes, vocab])
            weights = tf.reshape(carry[-1], [n, lanes, width])
            history, attention = s["history"], s["attention"]
            # Each lane's history with this step's attention row: what a hypothesis that
            # ends or grows from that lane carries.
            attention_now = _put(attention, t, weights, tf.ones([n, lanes], tf.bool))
            out = dict(s)

            # The 2k best candidates of the k beams, in order (top_k: lower index first on
            # ties, as a stable sort).
            candidates = tf.reshape(s["scores"][:, :k, None] + log_probs[:, :k], [n, k * vocab])
            values, index = tf.math.top_k(candidates, k=2 * k)
            beam, token = index // vocab, index % vocab
            live = ~s["beams_done"][:, None]
            finite = tf.math.is_finite(values)
            grows = tf.not_equal(token, EOS_ID)
            before = tf.cumsum(tf.cast(grows & finite, tf.int32), axis=1, exclusive=True)
            taken = live & finite & (before < k)
            ends, keeps = taken & ~grows, taken & grows

            # Hypotheses that end here all have t tokens: the best is the highest score.
            ended = tf.where(ends, values / length_penalty(t + 1, alpha), _neg_inf())
            best_here = tf.reduce_max(ended, axis=1)
            slot = tf.reduce_min(
                tf.where(ends & (ended == best_here[:, None]), tf.range(2 * k), 2 * k), axis=1
            )
            slot = tf.minimum(slot, 2 * k - 1)
            from_lane = tf.gather(beam, slot, batch_dims=1)
            better = tf.reduce_any(ends, axis=1) & (best_here > s["best_normalized"])
            out["best_normalized"] = tf.where(better, best_here, s["best_normalized"])
            out["best_score"] = tf.where(
                better, tf.gather(values, slot, batch_dims=1), s["best_score"]
            )
            out["best_length"] = tf.where(better, t, s["best_length"])
            out["best_history"] = tf.where(
                better[:, None], tf.gather(history, from_lane, batch_dims=1), s["best_history"]
            )
            out["best_attention"] = tf.where(
                better[:, None, None],
                tf.gather(attention_now, from_lane, batch_dims=1),
                s["best_attention"],
            )
            if weighed:  # each one that ends here goes to the next free slot
                slot_of = s["ended_count"][:, None] + tf.cumsum(
                    tf.cast(ends, tf.int32), axis=1, exclusive=True
                )
                into = ends[:, :, None] & tf.equal(
                    slot_of[:, :, None], tf.range(ended_slots)[None, None, :]
                )  # [n, 2k, slots]
                filled = tf.reduce_any(into, axis=1)
                pick = tf.argmax(tf.cast(into, tf.int32), axis=1, output_type=tf.int32)
                lane = tf.gather(beam, pick, batch_dims=1)
                out["ended_history"] = tf.where(
                    filled[:, :, None], tf.gather(history, lane, batch_dims=1), s["ended_history"]
                )
                out["ended_length"] = tf.where(filled, t, s["ended_length"])
                out["ended_score"] = tf.where(
                    filled, tf.gather(values, pick, batch_dims=1), s["ended_score"]
                )
                out["ended_normalized"] = tf.where(
                    filled, tf.gather(ended, pick, batch_dims=1), s["ended_normalized"]
                )
                out["ended_count"] = s["ended_count"] + tf.reduce_sum(
                    tf.cast(ends, tf.int32), axis=1
                )
            finished_count = s["finished_count"] + tf.reduce_sum(tf.cast(ends, tf.int32), axis=1)
            kept = tf.reduce_sum(tf.cast(keeps, tf.int32), axis=1)
            out["finished_count"] = finished_count
            out["beams_done"] = s["beams_done"] | (finished_count >= k) | (kept == 0)

            # The kept continuations fill beam slots 0 .. kept-1 in candidate order.
            match = keeps[:, None, :] & tf.equal(before[:, None, :], tf.range(k)[None, :, None])
            filled = tf.reduce_any(match, axis=2)  # [n, k]
            pick = tf.argmax(tf.cast(match, tf.int32), axis=2, output_type=tf.int32)
            source = tf.where(filled, tf.gather(beam, pick, batch_dims=1), tf.range(k)[None, :])
            new_tokens = tf.where(filled, tf.gather(token, pick, batch_dims=1), PAD_ID)
            new_scores = tf.where(filled, tf.gather(values, pick, batch_dims=1), _neg_inf())

            if keep_greedy:
                lane_lp = log_probs[:, k]
                choice = tf.argmax(lane_lp, axis=-1, output_type=tf.int32)
                score = s["scores"][:, k] + tf.gather(lane_lp, choice, batch_dims=1)
                running = ~s["greedy_done"]
                stops = running & tf.equal(choice, EOS_ID)
                goes_on = running & ~stops
                out["greedy_done"] = s["greedy_done"] | stops
                out["greedy_score"] = tf.where(stops, score, s["greedy_score"])
                out["greedy_length"] = tf.where(stops, t, s["greedy_length"])
                out["greedy_history"] = tf.where(stops[:, None], history[:, k], s["greedy_history"])
                out["greedy_attention"] = tf.where(
                    stops[:, None, None], attention_now[:, k], s["greedy_attention"]
                )
                source = tf.concat([source, tf.fill([n, 1], k)], axis=1)
                new_tokens = tf.concat(
                    [new_tokens, tf.where(goes_on, choice, PAD_ID)[:, None]], axis=1
                )
                new_scores = tf.concat(
                    [new_scores, tf.where(goes_on, score, _neg_inf())[:, None]], axis=1
                )

            # Reorder the lanes: every lane continues from its source lane.
            rows = tf.reshape(source + tf.range(n)[:, None] * lanes, [-1])
            carry = [tf.gather(c, rows) for c in carry]
            grown = tf.gather(history, source, batch_dims=1)
            out["history"] = _put(grown, t, new_tokens, tf.ones([n, lanes], tf.bool))
            out["attention"] = tf.gather(attention_now, source, batch_dims=1)
            out["tokens"] = tf.reshape(new_tokens, [-1])
            out["scores"] = new_scores
            return t + 1, carry, out

        def cond(t, carry, s):
            return (t < steps) & ~(tf.reduce_all(s["beams_done"]) & tf.reduce_all(s["greedy_done"]))

        t, _, s = tf.while_loop(cond, body, (tf.constant(0), carry, state))

        # The result: the best of the finished hypotheses, then (at the length limit) the live
        # beams as unfinished candidates, then the greedy lane; the earliest wins ties.
        best = dict(
            normalized=s["best_normalized"],
            scores=s["best_score"],
            lengths=s["best_length"],
            tokens=s["best_history"],
            attention=s["best_attention"],
            finished=tf.ones([n], tf.bool),
        )

        def offer(best, normalized, scores, lengths, tokens, attention, finished, allowed):
            better = allowed & (normalized > best["normalized"])
            choose = lambda new, old: tf.where(  # noqa: E731
                tf.reshape(better, [-1] + [1] * (new.shape.rank - 1)), new, old
            )
            return dict(
                normalized=choose(normalized, best["normalized"]),
                scores=choose(scores, best["scores"]),
                lengths=choose(lengths, best["lengths"]),
                tokens=choose(tokens, best["tokens"]),
                attention=choose(attention, best["attention"]),
                finished=choose(finished, best["finished"]),
            )

        unfinished = tf.fill([n], t)
        pending = ~s["beams_done"]
        offered = []  # (normalized, scores, lengths, tokens, finished, allowed): the candidates
        for lane in range(k):
            scores = s["scores"][:, lane]
            allowed = pending & tf.math.is_finite(scores)
            normalized = scores / length_penalty(unfinished, alpha)
            tokens, never = s["history"][:, lane], tf.zeros([n], tf.bool)
            best = offer(
                best,
                normalized,
                scores,
                unfinished,
                tokens,
                s["attention"][:, lane],
                never,
                allowed,
            )
            offered.append((normalized, scores, unfinished, tokens, never, allowed))
        if keep_greedy:
            done = s["greedy_done"]
            scores = tf.where(done, s["greedy_score"], s["scores"][:, k])
            lengths = tf.where(done, s["greedy_length"], unfinished)
            total = lengths + tf.cast(done, tf.int32)
            normalized = scores / length_penalty(total, alpha)
            tokens = tf.where(done[:, None], s["greedy_history"], s["history"][:, k])
            always = tf.ones([n], tf.bool)
            best = offer(
                best,
                normalized,
                scores,
                lengths,
                tokens,
                tf.where(done[:, None, None], s["greedy_attention"], s["attention"][:, k]),
                done,
                always,
            )
            offered.append((normalized, scores, lengths, tokens, done, always))
        if weighed:
            best.update(self._candidates(s, offered, ended_slots, k))
        return best

    @staticmethod
    def _candidates(s, offered, ended_slots, k):
        """The `candidate_*` arrays of `beam`: the ended slots, then the offered lanes (empty
        ones when the greedy lane is not kept), padded to C = 4k + 1."""
        n = tf.shape(s["ended_count"])[0]
        lanes = [tf.stack([o[i] for o in offered], axis=1) for i in range(6)]
        normalized, scores, lengths, tokens, finished, allowed = lanes
        slots = 4 * k + 1
        pad = slots - ended_slots - len(offered)  # 1 without the greedy lane
        return dict(
            candidate_normalized=tf.pad(
                tf.concat([s["ended_normalized"], normalized], 1),
                [[0, 0], [0, pad]],
                constant_values=NEG_INF,
            ),
            candidate_scores=tf.pad(
                tf.concat([s["ended_score"], scores], 1),
                [[0, 0], [0, pad]],
                constant_values=NEG_INF,
            ),
            candidate_lengths=tf.pad(
                tf.concat([s["ended_length"], lengths], 1), [[0, 0], [0, pad]]
            ),
            candidate_tokens=tf.pad(
                tf.concat([s["ended_history"], tokens], 1),
                [[0, 0], [0, pad], [0, 0]],
                constant_values=PAD_ID,
            ),
            candidate_finished=tf.pad(
                tf.concat([tf.ones([n, ended_slots], tf.bool), finished], 1), [[0, 0], [0, pad]]
            ),
            candidate_valid=tf.pad(
                tf.concat([tf.range(ended_slots)[None, :] < s["ended_count"][:, None], allowed], 1),
                [[0, 0], [0, pad]],
            ),
        )
