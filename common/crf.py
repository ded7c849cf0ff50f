"""A linear-chain conditional random field (CRF) output layer, written with `keras.ops`.

Nothing but `keras.ops`, so it runs on the Keras backends (tested: TensorFlow and JAX).
Put it on top of any tagger that gives one score per tag and token::

    scores = keras.layers.Dense(num_tags)(features)      # float[b, T, num_tags], unnormalised
    crf = common.CRF(num_tags, allowed=allowed)          # allowed: bool[num_tags, num_tags]
    model = keras.Model(inputs, crf(scores))
    model.compile("adam", loss=crf.loss)                 # -log p(gold tags | sentence)
    model.fit(x, y)                                      # y: int[b, T], padding = -1
    tags = crf.decode(model.predict(x), mask)            # Viterbi, int32[b, T]

The model's output is the emission scores (the layer passes them through, float32); the
layer holds the transition scores (`transitions[i, j]`: from tag i to tag j) and the start
and end scores. The probability of a tag sequence y of length n is

    p(y | x) = exp(score(y)) / Z,   score(y) = start[y_1] + sum_t emission[t, y_t]
                                               + sum_t transitions[y_{t-1}, y_t] + end[y_n]

and Z sums exp(score) over every sequence of length n (the forward algorithm, in log space,
in float32 also under mixed precision; float64 when the layer's dtype is float64).
`allowed` (and `allowed_start`, `allowed_end`) forbid transitions outright: a forbidden score is -1e4, so such sequences get probability
zero in training and are never decoded (the IOB2 rule that `I-PER` follows only `B-PER` or
`I-PER` is one such matrix).

Padding: batches are right-padded. `loss` reads the lengths from the gold tags (the
padding tag is -1); `decode` and `log_likelihood` take a `mask` (bool[b, T], true for real
tokens). Padded steps change nothing, and decoded tags there are -1.

Partly labelled sequences: a gold tag of -2 (`UNKNOWN`) at a real step says that step's
tag is not known (an unresolved residue of a protein chain); the likelihood then sums over
every tag there, p(known tags | x), the constrained forward algorithm's share of Z.

`marginals(scores, mask)` gives p(y_t = k | x) for every step and tag (forward-backward):
their argmax per step maximises the expected number of right tags, where `decode` finds
the single most probable sequence.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

__all__ = ["CRF", "CRFLoss", "bind", "crf_layer"]

# The score of a forbidden transition: far below any real score, yet finite, so that
# log-sum-exp stays finite (and so do the gradients) in float32.
FORBIDDEN = -1e4
PAD = -1
UNKNOWN = -2  # a real step whose gold tag is not known (summed over)


def _bool_matrix(value, shape, name):
    if value is None:
        return None
    array = np.asarray(value)
    if array.shape != shape or array.dtype != bool:
        raise ValueError(
            f"{name} must be a bool array of shape {shape}. Received: dtype={array.dtype}, "
            f"shape={array.shape}"
        )
    return array


def _time_major_steps(scores, mask):
    """Steps 1.. as one tensor [T-1, b, tags + 1]: the scores, then the mask as 0/1. (One
    tensor: the TensorFlow backend's scan fails over several of unknown length.)"""
    both = ops.concatenate([scores, ops.expand_dims(ops.cast(mask, scores.dtype), -1)], -1)
    return ops.moveaxis(both[:, 1:], 1, 0)


@keras.saving.register_keras_serializable(package="common")
class CRF(keras.layers.Layer):
    """Linear-chain CRF over `num_tags` tags (see the module docstring).

    Args:
        num_tags: the number of tags.
        allowed: optional bool[num_tags, num_tags]; `allowed[i, j]` false forbids tag j
            right after tag i.
        allowed_start, allowed_end: optional bool[num_tags]; false forbids a sequence to
            start (end) with that tag.

    Call: emission scores float[b, T, num_tags] -> the same, as float32. The Keras mask is
    not passed on (`loss` takes the lengths from the gold tags).
    """

    def __init__(self, num_tags, allowed=None, allowed_start=None, allowed_end=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_tags) < 1:
            raise ValueError(f"num_tags must be positive. Received: num_tags={num_tags}")
        self.num_tags = int(num_tags)
        n = self.num_tags
        self.allowed = _bool_matrix(allowed, (n, n), "allowed")
        self.allowed_start = _bool_matrix(allowed_start, (n,), "allowed_start")
        self.allowed_end = _bool_matrix(allowed_end, (n,), "allowed_end")
        self.supports_masking = True
        # The negative log-likelihood per sequence as a Keras loss:
        # `model.compile(loss=crf.loss)`; `y_true` int[b, T] is padded with -1.
        self.loss = CRFLoss(self)

    def build(self, input_shape):
        if input_shape[-1] != self.num_tags:
            raise ValueError(
                f"expected emission scores with {self.num_tags} tags in the last axis. "
                f"Received: input_shape={input_shape}"
            )
        n, dtype = self.num_tags, self._float
        init = keras.initializers.Zeros()
        self.transitions = self.add_weight((n, n), init, name="transitions", dtype=dtype)
        self.start = self.add_weight((n,), init, name="start", dtype=dtype)
        self.end = self.add_weight((n,), init, name="end", dtype=dtype)

    @property
    def _float(self):
        """The dtype of the weights and sums: float32, or float64 for a float64 layer."""
        return "float64" if self.compute_dtype == "float64" else "float32"

    def call(self, scores):
        # A new tensor (cast returns its input when the dtype already matches): the Keras
        # mask of the input stays behind, or Keras would weight the per-sequence loss with it.
        return ops.copy(ops.cast(scores, self._float))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, scores):
        return keras.KerasTensor(scores.shape, self._float)

    def get_config(self):
        def as_list(a):
            return None if a is None else a.tolist()

        return {
            **super().get_config(),
            "num_tags": self.num_tags,
            "allowed": as_list(self.allowed),
            "allowed_start": as_list(self.allowed_start),
            "allowed_end": as_list(self.allowed_end),
        }

    # -- the scores with the forbidden transitions applied -------------------------------

    def transition_scores(self):
        """(transitions [tags, tags], start [tags], end [tags]) with the forbidden ones at
        -1e4: the scores the likelihood and `decode` use (e.g. for decoding elsewhere)."""

        def constrain(weights, allowed):
            weights = ops.convert_to_tensor(weights)
            if allowed is None:
                return weights
            forbidden = ops.cast(FORBIDDEN, weights.dtype)
            return ops.where(ops.convert_to_tensor(allowed), weights, forbidden)

        return (
            constrain(self.transitions, self.allowed),
            constrain(self.start, self.allowed_start),
            constrain(self.end, self.allowed_end),
        )

    # -- training -------------------------------------------------------------------------

    def log_likelihood(self, scores, tags, mask):
        """log p(tags | scores) per sequence: float32[b].

        scores float[b, T, num_tags], tags int[b, T] (any value at padded steps; a negative
        one at a real step is unknown, see `UNKNOWN`), mask bool[b, T] right-padded; every
        sequence needs at least one real step.
        """
        scores = ops.cast(scores, self._float)
        mask = ops.cast(mask, "bool")
        tags = ops.cast(tags, "int32")
        unknown = ops.logical_and(mask, ops.less(tags, 0))
        tags = ops.where(ops.logical_and(mask, ops.logical_not(unknown)), tags, 0)
        weights = self.transition_scores()

        def known_score():  # every real tag known: the score of the one path
            return self._gold_score(scores, tags, mask, *weights)

        def partial_score():  # log-sum-exp over the paths through the known tags
            gold = ops.one_hot(tags, self.num_tags, dtype="bool")
            keep = ops.logical_or(gold, ops.expand_dims(unknown, -1))
            constrained = ops.where(keep, scores, ops.cast(FORBIDDEN, scores.dtype))
            return self._log_partition(constrained, mask, *weights)

        score = ops.cond(ops.any(unknown), partial_score, known_score)
        return score - self._log_partition(scores, mask, *weights)

    def negative_log_likelihood(self, y_true, y_pred):
        """-log p(y_true | y_pred) per sequence, float[b]; `y_true` int[b, T] padded with -1."""
        y_true = ops.cast(y_true, "int32")
        if len(y_true.shape) == 3:  # [b, T, 1], as Keras may pass sparse labels
            y_true = ops.squeeze(y_true, -1)
        return -self.log_likelihood(y_pred, y_true, ops.not_equal(y_true, PAD))

    def _gold_score(self, scores, tags, mask, transitions, start, end):
        real = ops.cast(mask, scores.dtype)
        emitted = ops.take_along_axis(scores, ops.expand_dims(tags, -1), axis=-1)[..., 0]
        total = ops.sum(emitted * real, axis=1) + ops.take(start, tags[:, 0])
        # Transitions into every real step after the first.
        pair = ops.take(ops.reshape(transitions, (-1,)), tags[:, :-1] * self.num_tags + tags[:, 1:])
        total += ops.sum(pair * real[:, 1:], axis=1)
        last = ops.cast(ops.sum(real, axis=1), "int32") - 1
        last_tags = ops.take_along_axis(tags, ops.expand_dims(last, -1), axis=1)[:, 0]
        return total + ops.take(end, last_tags)

    def _log_partition(self, scores, mask, transitions, start, end):
        alpha = start + scores[:, 0]  # [b, tags]
        steps = _time_major_steps(scores, mask)

        def step(alpha, inputs):
            emission, real = inputs[..., :-1], inputs[..., -1] > 0
            # [b, from, 1] + [from, to] -> log-sum-exp over `from`
            new = ops.logsumexp(ops.expand_dims(alpha, -1) + transitions, axis=1) + emission
            alpha = ops.where(ops.expand_dims(real, -1), new, alpha)
            # An output as well: the TensorFlow backend's scan fails in a graph without one.
            return alpha, alpha

        if scores.shape[1] is None or scores.shape[1] > 1:
            alpha, _ = ops.scan(step, alpha, steps)
        return ops.logsumexp(alpha + end, axis=-1)

    # -- prediction -----------------------------------------------------------------------

    def marginals(self, scores, mask=None):
        """p(y_t = k | x) per step and tag (forward-backward): float[b, T, num_tags], rows
        summing to 1 at real steps and 0 at padded ones. `scores`, `mask` as in `decode`."""
        scores = ops.cast(ops.convert_to_tensor(scores), self._float)
        if mask is None:
            mask = ops.ones(ops.shape(scores)[:2], "bool")
        mask = ops.cast(ops.convert_to_tensor(mask), "bool")
        # One padded step more, cut off at the end: the scans below then never run over
        # zero steps (one-step batches of unknown length would stack an empty list).
        scores = ops.pad(scores, [[0, 0], [0, 1], [0, 0]])
        mask = ops.pad(mask, [[0, 0], [0, 1]], constant_values=False)
        transitions, start, end = self.transition_scores()
        steps = _time_major_steps(scores, mask)  # steps 1..T
        alpha0 = start + scores[:, 0]

        def forward(alpha, inputs):
            emission, real = inputs[..., :-1], inputs[..., -1] > 0
            new = ops.logsumexp(ops.expand_dims(alpha, -1) + transitions, axis=1) + emission
            alpha = ops.where(ops.expand_dims(real, -1), new, alpha)
            return alpha, alpha

        def backward(beta, inputs):
            # beta of step t (the scores of every way to finish after it) -> of step t-1
            emission, real = inputs[..., :-1], inputs[..., -1] > 0
            ahead = ops.expand_dims(emission + beta, 1) + transitions  # [b, from, to]
            previous = ops.where(
                ops.expand_dims(real, -1), ops.logsumexp(ahead, axis=2), ops.zeros_like(beta) + end
            )
            return previous, previous

        beta_last = ops.zeros_like(alpha0) + end
        _, later = ops.scan(forward, alpha0, steps)  # alphas of steps 1..T
        _, earlier = ops.scan(backward, beta_last, steps, reverse=True)  # betas 0..T-1
        alphas = ops.concatenate([ops.expand_dims(alpha0, 1), ops.moveaxis(later, 0, 1)], 1)
        betas = ops.concatenate([ops.moveaxis(earlier, 0, 1), ops.expand_dims(beta_last, 1)], 1)
        log_z = ops.logsumexp(alphas + betas, axis=-1, keepdims=True)
        probs = ops.exp(alphas + betas - log_z)
        return ops.where(ops.expand_dims(mask, -1), probs, ops.zeros_like(probs))[:, :-1]

    def decode(self, scores, mask=None):
        """The most probable tag sequences (Viterbi): int32[b, T], -1 at padded steps.

        `scores` float[b, T, num_tags] (the model's output; NumPy or tensors), `mask`
        bool[b, T] right-padded (None: every step is real).
        """
        scores = ops.cast(ops.convert_to_tensor(scores), self._float)
        if mask is None:
            mask = ops.ones(ops.shape(scores)[:2], "bool")
        mask = ops.cast(ops.convert_to_tensor(mask), "bool")
        transitions, start, end = self.transition_scores()

        def forward(delta, inputs):
            emission, real = inputs[..., :-1], inputs[..., -1] > 0
            candidates = ops.expand_dims(delta, -1) + transitions  # [b, from, to]
            best_from = ops.cast(ops.argmax(candidates, axis=1), "int32")  # [b, to]
            new = ops.max(candidates, axis=1) + emission
            real = ops.expand_dims(real, -1)
            # A padded step keeps the scores and points every tag back to itself.
            keep = ops.broadcast_to(ops.arange(self.num_tags, dtype="int32"), ops.shape(best_from))
            # The TensorFlow backend's scan needs outputs of the carry's dtype and shape.
            back = ops.cast(ops.where(real, best_from, keep), delta.dtype)
            return ops.where(real, new, delta), back

        delta = start + scores[:, 0]
        steps = _time_major_steps(scores, mask)
        delta, back = ops.scan(forward, delta, steps)  # back: [T-1, b, tags]
        back = ops.cast(back, "int32")
        last = ops.cast(ops.argmax(delta + end, axis=-1), "int32")  # [b]

        def backward(tag, pointers):
            previous = ops.take_along_axis(pointers, ops.expand_dims(tag, -1), axis=1)[:, 0]
            return previous, tag

        first, later = ops.scan(backward, last, back, reverse=True)  # later: [T-1, b]
        tags = ops.concatenate([ops.expand_dims(first, 1), ops.moveaxis(later, 0, 1)], axis=1)
        return ops.where(mask, tags, PAD)


@keras.saving.register_keras_serializable(package="common")
class CRFLoss(keras.losses.Loss):
    """`CRF.loss`: the mean negative log-likelihood of the gold tag sequences.

    Padding is a gold tag of -1, or a per-token sample weight of 0 (`fit(x, y, w)` with
    w float[b, T]); per-sequence weights (float[b]) weight the sequences.

    It needs the layer's transition scores, so it holds the layer; its saved config holds
    the layer's name. A model loaded from a `.keras` file therefore comes back compiled
    with an unbound loss: `bind(model)` finds the layer again (`common.runtime.load_model`
    does it), and training without it is a ValueError saying so.
    """

    def __init__(self, crf: CRF | None = None, layer_name=None, name="crf_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self._crf = None
        if crf is not None:
            self._bind(crf)
        self.layer_name = crf.name if crf is not None else layer_name

    def _bind(self, crf: CRF) -> None:
        # A weak reference: the layer holds this loss, and Keras's saving walks every
        # attribute that holds a layer or a loss, so a plain one would be a cycle.
        self._crf = weakref.ref(crf)

    def layer(self) -> CRF | None:
        """The CRF layer this loss is bound to (a method, so that saving does not walk it)."""
        return None if self._crf is None else self._crf()

    def bind(self, model) -> CRFLoss:
        self._bind(model.get_layer(self.layer_name))
        return self

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None and len(sample_weight.shape) == 2:
            # Per-token weights, as tagging pipelines give them (0 at padding), say which
            # tokens are real: the loss of a sequence is not a sum over its tokens.
            y_true = ops.cast(y_true, "int32")
            if len(y_true.shape) == 3:
                y_true = ops.squeeze(y_true, -1)
            y_true = ops.where(ops.cast(sample_weight, "float32") > 0, y_true, PAD)
            sample_weight = None
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        crf = self.layer()
        if crf is None:
            raise ValueError(
                f"this CRF loss was loaded from a file and is not bound to its layer "
                f"{self.layer_name!r}: call common.crf.bind(model) after loading, or "
                "compile again with loss=crf.loss"
            )
        return crf.negative_log_likelihood(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "layer_name": self.layer_name}


def bind(model) -> None:
    """Bind every `CRFLoss` a loaded, compiled `model` uses to its CRF layer (see CRFLoss)."""
    losses = getattr(model, "loss", None)
    for loss in keras.tree.flatten(losses) if losses is not None else ():
        if isinstance(loss, CRFLoss):
            loss.bind(model)


def crf_layer(model):
    """The model's `CRF` layer (a tagger with a CRF output), or None."""
    return next((layer for layer in model.layers if isinstance(layer, CRF)), None)
