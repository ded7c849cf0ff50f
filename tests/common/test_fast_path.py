"""Tests of the TensorFlow fast path (common/fast_tf.py) behind common.LSTM/GRU.

Every covered option is checked three ways with the same weights: fast path == generic cell loop
== Keras built-in (where one exists), outputs and gradients (inputs, initial states, weights),
max abs difference <= 1e-5 in float32, for the training kernel (hand-written backward pass) and
for the inference kernel (its gradient recomputes the forward pass). Plus: which implementation
runs, the cuDNN delegation plumbing, Keras training with compile defaults, unknown time length,
mixed precision.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import fast_tf
from common import layers as layers_lib
from common.layers import GRU, LSTM

BATCH, TIME, FEATURES, UNITS = 3, 5, 4, 6
LENGTHS = (5, 3, 1)  # right-padded batch
ATOL = 1e-5


def make_batch(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, TIME, FEATURES)).astype("float32")
    mask = np.arange(TIME)[None, :] < np.asarray(LENGTHS)[:, None]
    return x, mask


def randomize(layer, seed=1):
    """Random weights of a useful scale (zero peepholes or biases would test nothing)."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [0.4 * rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
    )


def initial_states(kind, seed=2):
    rng = np.random.default_rng(seed)
    n = 2 if kind == "lstm" else 1
    return [0.5 * rng.standard_normal((BATCH, UNITS)).astype("float32") for _ in range(n)]


def outputs_and_grads(layer, x, mask=None, states=None, training=True):
    """Outputs and d(loss)/d(x, initial states, trainable weights) for a fixed random loss."""
    x = tf.constant(x)
    states = None if states is None else [tf.constant(s) for s in states]
    with tf.GradientTape() as tape:
        tape.watch(x)
        if states is not None:
            tape.watch(states)
        kwargs = {"mask": None if mask is None else tf.constant(mask), "training": training}
        if states is not None:
            kwargs["initial_state"] = states
        out = layer(x, **kwargs)
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        weights = [
            tf.constant(np.random.default_rng(i).standard_normal(o.shape), o.dtype)
            for i, o in enumerate(out)
        ]
        loss = sum(tf.reduce_sum(o * w) for o, w in zip(out, weights, strict=True))
    sources = [x, *(states or []), *layer.trainable_weights]
    grads = tape.gradient(loss, sources)
    return [o.numpy() for o in out], [g.numpy() for g in grads]


def max_diff(a, b):
    assert len(a) == len(b)
    return max(
        float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(a, b, strict=True)
    )


# (id, kind, layer options, masked, with initial state, Keras built-in exists)
CASES = [
    ("lstm-sequences", "lstm", dict(return_sequences=True, return_state=True), False, False),
    ("lstm-last-masked", "lstm", dict(), True, False),
    (
        "lstm-backwards-masked-zero-output",
        "lstm",
        dict(
            return_sequences=True, return_state=True, go_backwards=True, zero_output_for_mask=True
        ),
        True,
        False,
    ),
    (
        "lstm-initial-state-masked",
        "lstm",
        dict(return_sequences=True, return_state=True),
        True,
        True,
    ),
    (
        "lstm-peephole-masked",
        "lstm",
        dict(return_sequences=True, return_state=True, peephole=True),
        True,
        True,
    ),
    ("lstm-peephole-backwards", "lstm", dict(go_backwards=True, peephole=True), False, False),
    (
        "gru-after-masked-initial-state",
        "gru",
        dict(return_sequences=True, return_state=True),
        True,
        True,
    ),
    ("gru-after-backwards", "gru", dict(go_backwards=True, return_state=True), False, False),
    (
        "gru-before-masked",
        "gru",
        dict(reset_after=False, return_sequences=True, return_state=True),
        True,
        False,
    ),
    (
        "gru-before-backwards-initial-state",
        "gru",
        dict(
            reset_after=False, go_backwards=True, return_sequences=True, zero_output_for_mask=True
        ),
        True,
        True,
    ),
]


def build(kind, implementation, options, seed=1):
    layer_class = LSTM if kind == "lstm" else GRU
    layer = layer_class(UNITS, implementation=implementation, **options)
    layer.build((BATCH, TIME, FEATURES))
    randomize(layer, seed)
    return layer


def builtin_twin(kind, options, weights):
    options = dict(options)
    if options.pop("peephole", False):
        return None
    layer_class = keras.layers.LSTM if kind == "lstm" else keras.layers.GRU
    layer = layer_class(UNITS, **options)
    layer.build((BATCH, TIME, FEATURES))
    layer.set_weights(weights)
    return layer


@pytest.mark.parametrize("training", [True, False], ids=["train-kernel", "infer-kernel"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fast_equals_generic_and_builtin(case, training):
    _, kind, options, masked, with_state = case
    x, mask = make_batch()
    mask = mask if masked else None
    states = initial_states(kind) if with_state else None
    fast = build(kind, "fast", options)
    generic = build(kind, "generic", options)
    assert fast._select_loop() == "fast" and generic._select_loop() == "generic"

    out_fast, grads_fast = outputs_and_grads(fast, x, mask, states, training)
    out_gen, grads_gen = outputs_and_grads(generic, x, mask, states, training)
    assert max_diff(out_fast, out_gen) <= ATOL
    assert max_diff(grads_fast, grads_gen) <= ATOL
    assert all(np.abs(g).max() > 0 for g in grads_fast[1:]), "a gradient is identically zero"

    builtin = builtin_twin(kind, options, fast.get_weights())
    if builtin is not None:
        out_ref, grads_ref = outputs_and_grads(builtin, x, mask, states, training)
        assert max_diff(out_fast, out_ref) <= ATOL
        assert max_diff(grads_fast, grads_ref) <= ATOL


@pytest.mark.parametrize("parts, expected", [(2, [2, 1]), (1, [3])], ids=["halves", "whole"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_batch_split_into_two_kernels_equals_generic(monkeypatch, case, parts, expected):
    """Every option with the batch (3) split 2 + 1, and unsplit (one core), training kernel."""
    monkeypatch.setattr(fast_tf, "_batch_parts", lambda: parts)  # whatever this machine has
    calls = []
    original = fast_tf._lstm if case[1] == "lstm" else fast_tf._gru

    def counting(x, *args, **kwargs):
        calls.append(x.shape[0])
        return original(x, *args, **kwargs)

    monkeypatch.setattr(fast_tf, "_lstm" if case[1] == "lstm" else "_gru", counting)
    _, kind, options, masked, with_state = case
    x, mask = make_batch()
    mask = mask if masked else None
    states = initial_states(kind) if with_state else None
    out_fast, grads_fast = outputs_and_grads(build(kind, "fast", options), x, mask, states)
    assert calls == expected
    out_gen, grads_gen = outputs_and_grads(build(kind, "generic", options), x, mask, states)
    assert max_diff(out_fast, out_gen) <= ATOL
    assert max_diff(grads_fast, grads_gen) <= ATOL


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_unknown_batch_size_is_split_at_run_time(monkeypatch, kind):
    """Keras traces fit() with batch=None; batches of 1 (an empty half) and 3 still work."""
    monkeypatch.setattr(fast_tf, "_batch_parts", lambda: 2)
    options = dict(return_sequences=True)
    fast, generic = build(kind, "fast", options), build(kind, "generic", options)

    def traced(layer):
        @tf.function(input_signature=[tf.TensorSpec([None, TIME, FEATURES])])
        def fn(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * tf.sin(y))
            return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]

        return fn

    fast_fn, generic_fn = traced(fast), traced(generic)
    for batch in (1, 3):
        x = make_batch()[0][:batch]
        assert max_diff(fast_fn(x), generic_fn(x)) <= ATOL


def test_fast_path_catches_a_wrong_weight():
    """The comparison above can fail: one changed weight is visible in outputs."""
    x, _ = make_batch()
    fast = build("lstm", "fast", dict(return_sequences=True))
    generic = build("lstm", "generic", dict(return_sequences=True))
    weights = generic.get_weights()
    weights[1][0, 0] += 0.1
    generic.set_weights(weights)
    out_fast, _ = outputs_and_grads(fast, x)
    out_gen, _ = outputs_and_grads(generic, x)
    assert max_diff(out_fast, out_gen) > 1e-3


def test_unknown_time_length_is_padded_to_buckets():
    """Traced with time=None the fast path pads to TIME_BUCKET steps; results are unchanged."""
    x, mask = make_batch()
    layer = build("gru", "fast", dict(return_sequences=True, go_backwards=True))
    eager, _ = outputs_and_grads(layer, x, mask)
    fn = tf.function(
        lambda x, m: layer(x, mask=m),
        input_signature=[
            tf.TensorSpec([None, None, FEATURES]),
            tf.TensorSpec([None, None], tf.bool),
        ],
    )
    traced = fn(x, mask).numpy()
    assert TIME % fast_tf.TIME_BUCKET != 0  # the padding really happens
    assert max_diff([traced], eager) <= ATOL


def test_implementation_choice():
    assert LSTM(4)._select_loop() == "fast"  # TensorFlow backend, no GPU in tests
    assert GRU(4, implementation="generic")._select_loop() == "generic"
    assert LSTM(4, unroll=True)._select_loop() == "generic"
    with pytest.raises(ValueError, match="unroll=True"):
        LSTM(4, unroll=True, implementation="fast")
    with pytest.raises(ValueError, match="implementation must be one of"):
        GRU(4, implementation="cudnn")


@pytest.mark.parametrize(
    "kind, options, expected",
    [
        ("lstm", dict(), "cudnn"),
        ("lstm", dict(peephole=True), "generic"),
        ("gru", dict(), "cudnn"),
        ("gru", dict(reset_after=False), "generic"),
        ("gru", dict(use_bias=False), "generic"),
    ],
)
def test_gpu_delegates_to_keras_cudnn_path(monkeypatch, kind, options, expected):
    """With a GPU, standard configurations run keras.layers.LSTM/GRU on this layer's variables.

    There is no GPU here, so Keras's own code falls back to its generic loop: what is tested is
    the plumbing (same variables, same results, gradients reach this layer's weights).
    """
    monkeypatch.setattr(layers_lib, "_gpu_available", lambda: True)
    options = dict(options, return_sequences=True, return_state=True, go_backwards=True)
    layer = build(kind, "auto", options)
    assert layer._select_loop() == expected
    assert layer.supports_jit == (expected != "cudnn")
    generic = build(kind, "generic", options)
    x, mask = make_batch()
    out, grads = outputs_and_grads(layer, x, mask)
    out_gen, grads_gen = outputs_and_grads(generic, x, mask)
    assert max_diff(out, out_gen) <= ATOL
    assert max_diff(grads, grads_gen) <= ATOL
    assert len(layer.weights) == len(generic.weights)  # the Keras twin adds no weights


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_keras_training_step_uses_fast_path_and_matches_generic(monkeypatch, kind):
    """model.compile() defaults (no XLA on CPU): the layer itself runs the fast path."""
    calls = []
    original = getattr(fast_tf, kind)

    def counting(*args, **kwargs):
        calls.append(kwargs["training"])
        return original(*args, **kwargs)

    monkeypatch.setattr(fast_tf, kind, counting)
    x, mask = make_batch()
    x[~mask] = 0.0
    y = np.random.default_rng(3).standard_normal((BATCH, UNITS)).astype("float32")
    models = {}
    for implementation in ("auto", "generic"):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((TIME, FEATURES))
        masked = keras.layers.Masking()(inputs)
        layer_class = LSTM if kind == "lstm" else GRU
        outputs = layer_class(UNITS, implementation=implementation)(masked)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
        models[implementation] = model
    models["generic"].set_weights(models["auto"].get_weights())
    before = models["auto"].get_weights()
    for model in models.values():
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert calls.count(True) >= 1  # the training kernel ran inside fit
    after = models["auto"].get_weights()
    assert max_diff(before, after) > 1e-3  # the step changed the weights
    assert max_diff(after, models["generic"].get_weights()) <= ATOL
    predictions = [m.predict(x, verbose=0) for m in models.values()]
    assert calls.count(False) >= 1  # and the inference kernel inside predict
    assert max_diff(predictions[:1], predictions[1:]) <= ATOL


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_mixed_precision_fast_path(kind):
    """mixed_bfloat16 (the CPU policy of common.runtime): float32 recurrences, finite results."""
    options = dict(return_sequences=True, return_state=True)
    layer_class = LSTM if kind == "lstm" else GRU
    layer = layer_class(UNITS, dtype="mixed_bfloat16", **options)
    layer.build((BATCH, TIME, FEATURES))
    randomize(layer)
    assert layer._select_loop() == "fast"
    reference = build(kind, "generic", options)
    x, mask = make_batch()
    out, grads = outputs_and_grads(layer, x, mask)
    assert all(o.dtype == tf.bfloat16.as_numpy_dtype for o in out)
    assert all(np.isfinite(np.asarray(v, np.float32)).all() for v in out + grads)
    out_ref, _ = outputs_and_grads(reference, x, mask)
    assert max_diff([np.asarray(o, np.float32) for o in out], out_ref) <= 6e-2
    assert all(w.dtype == "float32" for w in layer.trainable_weights)
