"""Tests of common/cells.py: textbook NumPy references, Keras built-ins with copied weights,
Bidirectional and stacked use, masks, `.keras` round trips, finite-difference gradients, mixed
precision and the JAX backend.

The module-level NumPy references are imported by the JAX subprocess too, so this module must not
import TensorFlow at import time (helpers that need it import it inside).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import pytest

from common.cells import GRUCell, LSTMCell, MinimalGRUCell, SimpleRNNCell
from tests.common.jax_backend import run_on_jax

BATCH, TIME, FEATURES, UNITS = 3, 5, 3, 4
LENGTHS = (5, 3, 1)  # right-padded: sample i has LENGTHS[i] valid steps
ATOL = 1e-5


# --------------------------------------------------------------------------------------------
# NumPy references: the textbook equations, one time step each. `w` maps weight names to arrays.
# --------------------------------------------------------------------------------------------
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def simple_step(activation):
    g = np.tanh if activation == "tanh" else (lambda z: np.maximum(z, 0.0))

    def step(w, x, states):
        (a,) = states
        a = g(x @ w["kernel"] + a @ w["recurrent_kernel"] + w["bias"])
        return a, (a,)

    return step


def minimal_gru_step(w, x, states):
    """c~ = tanh(W_c [c_{t-1}, x_t] + b_c), u = sigmoid(W_u [c_{t-1}, x_t] + b_u)."""
    (c,) = states
    u_ = c.shape[-1]
    # W_g [c; x] with W_g stacked from the recurrent and input blocks of gate g.
    W_u = np.concatenate([w["recurrent_kernel"][:, :u_], w["kernel"][:, :u_]], axis=0)
    W_c = np.concatenate([w["recurrent_kernel"][:, u_:], w["kernel"][:, u_:]], axis=0)
    b_u, b_c = w["bias"][:u_], w["bias"][u_:]
    cx = np.concatenate([c, x], axis=-1)
    candidate = np.tanh(cx @ W_c + b_c)
    u = sigmoid(cx @ W_u + b_u)
    c = u * candidate + (1 - u) * c
    return c, (c,)


def gru_step(reset_after):
    def step(w, x, states):
        (h,) = states
        n = h.shape[-1]
        W_z, W_r, W_h = (w["kernel"][:, k * n : (k + 1) * n] for k in range(3))
        U_z, U_r, U_h = (w["recurrent_kernel"][:, k * n : (k + 1) * n] for k in range(3))
        if reset_after:
            b, b_rec = w["bias"][0], w["bias"][1]
            b_z, b_r, b_h = (b[k * n : (k + 1) * n] for k in range(3))
            c_z, c_r, c_h = (b_rec[k * n : (k + 1) * n] for k in range(3))
            z = sigmoid(x @ W_z + b_z + h @ U_z + c_z)
            r = sigmoid(x @ W_r + b_r + h @ U_r + c_r)
            candidate = np.tanh(x @ W_h + b_h + r * (h @ U_h + c_h))
        else:  # Cho et al. 2014: reset the state before the recurrent matmul
            b_z, b_r, b_h = (w["bias"][k * n : (k + 1) * n] for k in range(3))
            z = sigmoid(x @ W_z + h @ U_z + b_z)
            r = sigmoid(x @ W_r + h @ U_r + b_r)
            candidate = np.tanh(x @ W_h + (r * h) @ U_h + b_h)
        h = z * h + (1 - z) * candidate
        return h, (h,)

    return step


def lstm_step(peephole):
    def step(w, x, states):
        h, c = states
        n = h.shape[-1]
        gates = x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
        z_i, z_f, z_c, z_o = (gates[:, k * n : (k + 1) * n] for k in range(4))
        w_ci, w_cf, w_co = w["peephole_kernel"] if peephole else np.zeros((3, n))
        i = sigmoid(z_i + w_ci * c)  # Gers & Schmidhuber: input and forget gates see c_{t-1}
        f = sigmoid(z_f + w_cf * c)
        c = f * c + i * np.tanh(z_c)
        o = sigmoid(z_o + w_co * c)  # ... the output gate sees c_t
        h = o * np.tanh(c)
        return h, (h, c)

    return step


def numpy_run(step, w, x, mask, n_states):
    """Runs `step` over time like keras.layers.RNN: a masked step keeps the state and re-emits
    the previous output. Returns (outputs[b, t, u], final states)."""
    batch, time = x.shape[:2]
    units = w["recurrent_kernel"].shape[0]
    states = tuple(np.zeros((batch, units)) for _ in range(n_states))
    out = np.zeros((batch, units))
    outputs = []
    for t in range(time):
        new_out, new_states = step(w, x[:, t], states)
        keep = mask[:, t : t + 1]
        out = np.where(keep, new_out, out)
        states = tuple(np.where(keep, n, s) for n, s in zip(new_states, states, strict=True))
        outputs.append(out)
    return np.stack(outputs, axis=1), states


@dataclass(frozen=True)
class Case:
    make: Callable[..., keras.layers.Layer]  # our cell, **kwargs passed to the constructor
    step: Callable
    n_states: int
    keras_cell: Callable[[], keras.layers.Layer] | None = None  # built-in with the same layout


CASES = {
    "simple-tanh": Case(
        lambda **kw: SimpleRNNCell(UNITS, **kw),
        simple_step("tanh"),
        1,
        lambda: keras.layers.SimpleRNNCell(UNITS),
    ),
    "simple-relu": Case(
        lambda **kw: SimpleRNNCell(UNITS, activation="relu", **kw),
        simple_step("relu"),
        1,
        lambda: keras.layers.SimpleRNNCell(UNITS, activation="relu"),
    ),
    "minimal-gru": Case(lambda **kw: MinimalGRUCell(UNITS, **kw), minimal_gru_step, 1),
    "gru": Case(
        lambda **kw: GRUCell(UNITS, **kw), gru_step(True), 1, lambda: keras.layers.GRUCell(UNITS)
    ),
    "gru-classic": Case(
        lambda **kw: GRUCell(UNITS, reset_after=False, **kw),
        gru_step(False),
        1,
        lambda: keras.layers.GRUCell(UNITS, reset_after=False),
    ),
    "lstm": Case(
        lambda **kw: LSTMCell(UNITS, **kw),
        lstm_step(False),
        2,
        lambda: keras.layers.LSTMCell(UNITS),
    ),
    "lstm-peephole": Case(lambda **kw: LSTMCell(UNITS, peephole=True, **kw), lstm_step(True), 2),
}
KERAS_CASES = [name for name, case in CASES.items() if case.keras_cell is not None]


def make_batch(seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, TIME, FEATURES)).astype(dtype)
    mask = np.arange(TIME)[None, :] < np.array(LENGTHS)[:, None]
    x[~mask] = 0.0  # padding looks like padding
    return x, mask


def randomize(layer, seed=1, scale=0.5):
    """Random weights everywhere (biases and peepholes too, so every term matters)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=scale, size=w.shape) for w in layer.get_weights()])


def weight_dict(cell):
    return {v.path.split("/")[-1]: np.asarray(v.numpy(), dtype=np.float64) for v in cell.weights}


def as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def loss_and_grads(layer, x, mask):
    """Loss = sum of all outputs weighted by fixed random tensors; gradients w.r.t. the inputs
    and every weight (TensorFlow GradientTape)."""
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = as_list(layer(x, mask=tf.constant(mask)))
        rng = np.random.default_rng(7)
        loss = tf.add_n(
            [
                tf.reduce_sum(o * rng.normal(size=o.shape).astype(o.dtype.as_numpy_dtype))
                for o in outputs
            ]
        )
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return [o.numpy() for o in outputs], [g.numpy() for g in grads]


def max_abs_diff(a_list, b_list):
    assert len(a_list) == len(b_list)
    diffs = []
    for a, b in zip(a_list, b_list, strict=True):
        assert np.shape(a) == np.shape(b)
        diffs.append(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))))
    return max(diffs)


# --------------------------------------------------------------------------------------------
# Construction, configuration and weight layout
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_config_round_trip_and_initial_state(name):
    cell = CASES[name].make(kernel_regularizer="l2", bias_initializer="ones")
    clone = type(cell).from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()
    assert cell.get_config()["kernel_regularizer"] is not None
    states = cell.get_initial_state(batch_size=2)
    assert [tuple(s.shape) for s in states] == [(2, UNITS)] * CASES[name].n_states
    assert cell.output_size == UNITS


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SimpleRNNCell(0), "units=0"),
        (lambda: GRUCell(-3), "units=-3"),
        (lambda: LSTMCell(2.5), "units=2.5"),
        (lambda: SimpleRNNCell(4, activation="sigmoid"), "activation='sigmoid'"),
        (lambda: GRUCell(4, reset_after="yes"), "reset_after='yes'"),
        (lambda: LSTMCell(4, peephole=1), "peephole=1"),
    ],
)
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("name", KERAS_CASES + ["lstm-peephole"])
def test_weight_names_and_shapes_match_keras(name):
    case = CASES[name]
    ours = keras.layers.RNN(case.make())
    theirs = keras.layers.RNN((case.keras_cell or CASES["lstm"].keras_cell)())
    x, _ = make_batch()
    ours(x), theirs(x)
    expected = [(v.path.split("/")[-1], tuple(v.shape)) for v in theirs.cell.weights]
    got = [(v.path.split("/")[-1], tuple(v.shape)) for v in ours.cell.weights]
    assert got[:3] == expected
    if name == "lstm-peephole":
        assert got[3] == ("peephole_kernel", (3, UNITS))
        np.testing.assert_array_equal(ours.cell.peephole_kernel.numpy(), 0.0)


@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_lstm_forget_bias_initialisation(unit_forget_bias):
    cell = LSTMCell(UNITS, unit_forget_bias=unit_forget_bias)
    cell.build((None, FEATURES))
    expected = np.zeros(4 * UNITS)
    expected[UNITS : 2 * UNITS] = 1.0 if unit_forget_bias else 0.0
    np.testing.assert_array_equal(cell.bias.numpy(), expected)


# --------------------------------------------------------------------------------------------
# Numbers: NumPy references and Keras built-ins
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_matches_numpy_reference_with_mask(name):
    case = CASES[name]
    layer = keras.layers.RNN(case.make(), return_sequences=True, return_state=True)
    x, mask = make_batch()
    layer(x)
    randomize(layer)
    outputs = as_list(layer(x, mask=mask))
    ref_seq, ref_states = numpy_run(case.step, weight_dict(layer.cell), x, mask, case.n_states)
    assert max_abs_diff(outputs, [ref_seq, *ref_states]) <= ATOL
    # The mask matters: sample 1 stops at step 3, so its last output is its step-3 output.
    np.testing.assert_array_equal(np.asarray(outputs[0])[1, -1], np.asarray(outputs[0])[1, 2])


def build_pair(name, structure):
    """(ours, keras built-in) for one structure, same weights copied from the built-in."""
    case = CASES[name]
    if structure == "single":
        ours = keras.layers.RNN(case.make(), return_sequences=True, return_state=True)
        theirs = keras.layers.RNN(case.keras_cell(), return_sequences=True, return_state=True)
    elif structure == "bidirectional":
        ours = keras.layers.Bidirectional(
            keras.layers.RNN(case.make(), return_sequences=True, return_state=True)
        )
        theirs = keras.layers.Bidirectional(
            keras.layers.RNN(case.keras_cell(), return_sequences=True, return_state=True)
        )
    else:  # stacked
        ours = keras.layers.RNN([case.make(), case.make()], return_sequences=True)
        theirs = keras.layers.RNN([case.keras_cell(), case.keras_cell()], return_sequences=True)
    x, _ = make_batch()
    ours(x), theirs(x)
    randomize(theirs)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("structure", ["single", "bidirectional", "stacked"])
@pytest.mark.parametrize("name", KERAS_CASES)
def test_matches_keras_builtin_outputs_and_gradients(name, structure):
    ours, theirs = build_pair(name, structure)
    x, mask = make_batch()
    our_out, our_grads = loss_and_grads(ours, x, mask)
    their_out, their_grads = loss_and_grads(theirs, x, mask)
    assert len(our_grads) == len(their_grads) > 3
    assert max_abs_diff(our_out, their_out) <= ATOL
    assert max_abs_diff(our_grads, their_grads) <= ATOL
    # Padded steps get no gradient: the mask reached the loop.
    assert np.all(our_grads[0][~mask] == 0.0)


def reversed_valid(x, mask):
    """Each sample's valid steps in reverse order, padding kept at the end."""
    out = np.zeros_like(x)
    for i, n in enumerate(mask.sum(axis=1)):
        out[i, :n] = x[i, :n][::-1]
    return out


@pytest.mark.parametrize("name", CASES)
def test_bidirectional_and_stacked_match_numpy_reference(name):
    case = CASES[name]
    x, mask = make_batch()
    bidi = keras.layers.Bidirectional(keras.layers.RNN(case.make()))
    stacked = keras.layers.RNN([case.make(), case.make()])
    bidi(x), stacked(x)
    randomize(bidi, seed=2)
    randomize(stacked, seed=3)

    forward, backward = bidi.forward_layer.cell, bidi.backward_layer.cell
    _, fw_states = numpy_run(case.step, weight_dict(forward), x, mask, case.n_states)
    _, bw_states = numpy_run(
        case.step, weight_dict(backward), reversed_valid(x, mask), mask, case.n_states
    )
    expected = np.concatenate([fw_states[0], bw_states[0]], axis=-1)
    assert max_abs_diff([bidi(x, mask=mask)], [expected]) <= ATOL

    first, second = stacked.cell.cells
    seq, _ = numpy_run(case.step, weight_dict(first), x, mask, case.n_states)
    _, states = numpy_run(case.step, weight_dict(second), seq, mask, case.n_states)
    assert max_abs_diff([stacked(x, mask=mask)], [states[0]]) <= ATOL


@pytest.mark.parametrize("name", CASES)
def test_finite_difference_gradients_through_time(name):
    """float64: <autodiff gradient, v> == (L(p + eps v) - L(p - eps v)) / (2 eps) for a random
    direction v in each of the inputs and every weight, through a masked 5-step sequence."""
    layer = keras.layers.RNN(
        CASES[name].make(dtype="float64"), return_sequences=True, return_state=True, dtype="float64"
    )
    x, mask = make_batch(dtype="float64")
    layer(x)
    randomize(layer, seed=4)
    _, grads = loss_and_grads(layer, x, mask)
    params = [x, *[v.numpy() for v in layer.trainable_weights]]
    assert len(params) == len(grads)

    def loss_at(index, value):
        if index == 0:
            outputs, _ = loss_and_grads(layer, value, mask)
        else:
            saved = layer.trainable_weights[index - 1].numpy()
            layer.trainable_weights[index - 1].assign(value)
            outputs, _ = loss_and_grads(layer, x, mask)
            layer.trainable_weights[index - 1].assign(saved)
        rng = np.random.default_rng(7)  # the same output weights as in loss_and_grads
        return sum(float(np.sum(o * rng.normal(size=o.shape))) for o in outputs)

    rng = np.random.default_rng(5)
    eps = 1e-6
    for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
        v = rng.normal(size=param.shape)
        numeric = (loss_at(index, param + eps * v) - loss_at(index, param - eps * v)) / (2 * eps)
        analytic = float(np.sum(grad * v))
        assert abs(analytic) > 1e-3, f"parameter {index} has no gradient"
        assert numeric == pytest.approx(analytic, rel=1e-6, abs=1e-8), f"parameter {index}"


# --------------------------------------------------------------------------------------------
# Serialization and masks from an Embedding
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_keras_save_load_round_trip(name, tmp_path):
    make = CASES[name].make
    ids_in = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(10, FEATURES, mask_zero=True)(ids_in)
    h = keras.layers.Bidirectional(keras.layers.RNN(make(), return_sequences=True))(h)
    h = keras.layers.RNN([make(), make()], return_sequences=True)(h)
    h = keras.layers.RNN(make())(h)
    model = keras.Model(ids_in, h)
    randomize(model, seed=6)
    ids = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 0, 0], [9, 0, 0, 0, 0]])
    expected = model(ids).numpy()

    # Right padding is masked: the padded row gives the same result as its unpadded prefix.
    np.testing.assert_allclose(model(ids[1:2, :3]).numpy(), expected[1:2], atol=ATOL)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects
    np.testing.assert_array_equal(loaded(ids).numpy(), expected)
    cells = [
        loaded.layers[2].forward_layer.cell,
        *loaded.layers[3].cell.cells,
        loaded.layers[4].cell,
    ]
    for cell in cells:
        assert type(cell) is type(make())
        assert cell.get_config()["units"] == UNITS
    if name == "lstm-peephole":
        assert all(cell.peephole for cell in cells)


# --------------------------------------------------------------------------------------------
# Mixed precision
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy, atol", [("mixed_float16", 1e-2), ("mixed_bfloat16", 6e-2)])
@pytest.mark.parametrize("name", CASES)
def test_mixed_precision(name, policy, atol):
    import tensorflow as tf

    compute = policy.split("_")[1]
    case = CASES[name]
    layer = keras.layers.RNN(
        case.make(dtype=policy), return_sequences=True, return_state=True, dtype=policy
    )
    reference = keras.layers.RNN(case.make(), return_sequences=True, return_state=True)
    x, mask = make_batch()
    layer(x), reference(x)
    randomize(reference, seed=8)
    layer.set_weights(reference.get_weights())

    assert [s.dtype for s in layer.cell.get_initial_state(2)] == [compute] * case.n_states
    assert all(v.dtype == "float32" for v in layer.cell.weights)
    outputs, grads = loss_and_grads(layer, x, mask)
    assert all(o.dtype == compute for o in outputs)
    assert all(np.isfinite(o.astype(np.float32)).all() for o in outputs)
    assert all(np.isfinite(np.asarray(g, np.float32)).all() for g in grads)
    expected = as_list(reference(x, mask=mask))
    assert max_abs_diff([o.astype(np.float32) for o in outputs], expected) <= atol
    assert tf.as_dtype(grads[1].dtype) == tf.float32  # variables keep float32 gradients


# --------------------------------------------------------------------------------------------
# JAX backend (a subprocess: the backend is fixed when keras is first imported)
# --------------------------------------------------------------------------------------------
JAX_BODY = """
from tests.common.test_cells import (
    CASES, as_list, make_batch, max_abs_diff, numpy_run, randomize, weight_dict,
)
result = {}
for name, case in CASES.items():
    # Cheap initializers (the weights are randomized anyway): JAX compiles each initializer.
    cell = case.make(kernel_initializer="zeros", recurrent_initializer="zeros")
    layer = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    x, mask = make_batch()
    layer.build(x.shape)
    randomize(layer)
    outputs = [keras.ops.convert_to_numpy(o) for o in as_list(layer(x, mask=mask))]
    ref_seq, ref_states = numpy_run(case.step, weight_dict(layer.cell), x, mask, case.n_states)
    result[name] = max_abs_diff(outputs, [ref_seq, *ref_states])
"""


def test_cells_on_jax_backend_match_numpy_reference():
    result = run_on_jax(JAX_BODY)
    assert sorted(result) == sorted(CASES)
    assert all(diff <= ATOL for diff in result.values()), result
