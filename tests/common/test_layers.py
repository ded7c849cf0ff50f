"""Tests of common/layers.py: LSTM and GRU as users use them, against keras.layers.LSTM/GRU.

Copied weights give the same outputs and gradients (max abs difference <= 1e-5, float32) in
models with Embedding(mask_zero=True) right-padded batches, Bidirectional, stacking,
go_backwards, return_state and initial_state; `.keras` save/load without custom_objects;
complete configs; stateful carry-over; time-constant input dropout; recurrent_layer for every
cell name; the generic path on the JAX backend.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from common.cells import MinimalGRUCell, SimpleRNNCell
from common.layers import CELL_NAMES, GRU, LSTM, CellRNN, recurrent_layer
from tests.common.jax_backend import run_on_jax

ATOL = 1e-5
VOCAB, BATCH, TIME, UNITS = 12, 4, 6, 5
LENGTHS = (6, 4, 2, 1)


def token_batch(seed=0):
    """int ids [batch, time], right-padded with 0 (what Embedding(mask_zero=True) masks)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (BATCH, TIME))
    ids[np.arange(TIME)[None, :] >= np.asarray(LENGTHS)[:, None]] = 0
    return ids


def randomize(model, seed=1):
    rng = np.random.default_rng(seed)
    model.set_weights(
        [0.4 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()]
    )


def max_diff(a, b):
    assert len(a) == len(b)
    return max(
        float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(a, b, strict=True)
    )


def as_json(config):
    return json.dumps(config, sort_keys=True)


def tagger(rnn):
    """Embedding(mask_zero) -> Bidirectional(rnn, sequences) -> rnn (last) -> Dense."""
    ids = keras.Input((TIME,), dtype="int32")
    h = keras.layers.Embedding(VOCAB, 3, mask_zero=True)(ids)
    h = keras.layers.Bidirectional(rnn(return_sequences=True))(h)
    h = rnn()(h)
    return keras.Model(ids, keras.layers.Dense(2)(h))


def outputs_and_weight_grads(model, ids):
    with tf.GradientTape() as tape:
        out = model(ids, training=True)
        loss = tf.reduce_sum(out * tf.constant([[1.0, -2.0]]))
    grads = tape.gradient(loss, model.trainable_weights)
    return out.numpy(), [tf.convert_to_tensor(g).numpy() for g in grads]


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_masked_bidirectional_stacked_model_matches_keras(name):
    ours_class, builtin_class = (
        (LSTM, keras.layers.LSTM) if name == "lstm" else (GRU, keras.layers.GRU)
    )
    ours = tagger(lambda **kw: ours_class(UNITS, **kw))
    builtin = tagger(lambda **kw: builtin_class(UNITS, **kw))
    randomize(builtin)
    ours.set_weights(builtin.get_weights())
    ids = token_batch()
    out, grads = outputs_and_weight_grads(ours, ids)
    out_ref, grads_ref = outputs_and_weight_grads(builtin, ids)
    assert max_diff([out], [out_ref]) <= ATOL
    assert max_diff(grads, grads_ref) <= ATOL
    # the mask matters: without it the results differ
    ids_unmasked = np.where(ids == 0, 1, ids)
    assert max_diff([ours.predict(ids_unmasked, verbose=0)], [out_ref]) > 1e-3


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_return_state_initial_state_go_backwards_match_keras(name):
    ours_class, builtin_class = (
        (LSTM, keras.layers.LSTM) if name == "lstm" else (GRU, keras.layers.GRU)
    )
    options = dict(return_sequences=True, return_state=True, go_backwards=True)
    ours, builtin = ours_class(UNITS, **options), builtin_class(UNITS, **options)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((BATCH, TIME, 3)).astype("float32")
    n_states = 2 if name == "lstm" else 1
    states = [rng.standard_normal((BATCH, UNITS)).astype("float32") for _ in range(n_states)]
    builtin(x)
    randomize(builtin)
    ours(x)
    ours.set_weights(builtin.get_weights())
    got = ours(x, initial_state=states)
    expected = builtin(x, initial_state=states)
    assert len(got) == 1 + n_states
    assert max_diff(got, expected) <= ATOL
    assert max_diff(got[1:], [s for s in states]) > 1e-2  # the states moved


def test_weight_layout_is_interchangeable_with_keras():
    for ours, builtin in [
        (LSTM(UNITS), keras.layers.LSTM(UNITS)),
        (GRU(UNITS), keras.layers.GRU(UNITS)),
        (GRU(UNITS, reset_after=False), keras.layers.GRU(UNITS, reset_after=False)),
    ]:
        ours.build((None, None, 3))
        builtin.build((None, None, 3))
        assert [w.shape for w in ours.weights] == [w.shape for w in builtin.weights]
        assert [w.path.split("/")[-2:] for w in ours.weights] == [
            w.path.split("/")[-2:] for w in builtin.weights
        ]


def test_keras_save_load_round_trip_without_custom_objects(tmp_path):
    ids = keras.Input((TIME,), dtype="int32")
    h = keras.layers.Embedding(VOCAB, 3, mask_zero=True)(ids)
    h = keras.layers.Bidirectional(LSTM(UNITS, return_sequences=True, peephole=True, dropout=0.1))(
        h
    )
    h = keras.layers.Bidirectional(GRU(UNITS, return_sequences=True, reset_after=False))(h)
    h = recurrent_layer("minimal-gru", UNITS, return_sequences=True, dropout=0.2)(h)
    h = GRU(UNITS, implementation="generic")(h)
    model = keras.Model(ids, keras.layers.Dense(2)(h))
    randomize(model)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    batch = token_batch(5)
    assert max_diff([loaded.predict(batch, verbose=0)], [model.predict(batch, verbose=0)]) <= ATOL
    for a, b in zip(model.layers, loaded.layers, strict=True):
        assert as_json(a.get_config()) == as_json(b.get_config())
    assert loaded.layers[2].forward_layer.peephole
    assert loaded.layers[3].forward_layer.cell.reset_after is False
    assert loaded.layers[5].implementation == "generic"


@pytest.mark.parametrize(
    "make",
    [
        lambda: LSTM(
            3,
            return_sequences=True,
            return_state=True,
            go_backwards=True,
            stateful=False,
            dropout=0.25,
            peephole=True,
            implementation="generic",
            unit_forget_bias=False,
            kernel_regularizer="l2",
            recurrent_initializer="glorot_uniform",
            seed=7,
            name="my_lstm",
        ),
        lambda: GRU(
            3,
            reset_after=False,
            use_bias=False,
            implementation="fast",
            zero_output_for_mask=True,
            bias_constraint="non_neg",
            dtype="float64",
        ),
        lambda: CellRNN(SimpleRNNCell(3, activation="relu"), dropout=0.5, return_sequences=True),
    ],
)
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert as_json(clone.get_config()) == as_json(config)
    json.dumps(keras.saving.serialize_keras_object(layer))  # JSON-serializable as in .keras


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_stateful_carry_over_equals_one_long_call(name):
    layer_class = LSTM if name == "lstm" else GRU
    x = np.random.default_rng(6).standard_normal((2, 8, 3)).astype("float32")
    stateful = layer_class(UNITS, stateful=True, return_sequences=True)
    whole = layer_class(UNITS, return_sequences=True)
    stateful.build((2, 4, 3))
    whole.build((2, 8, 3))
    randomize(stateful)
    whole.set_weights(stateful.get_weights())
    expected = whole(x).numpy()
    first = stateful(x[:, :4]).numpy()
    second = stateful(x[:, 4:]).numpy()
    assert max_diff([np.concatenate([first, second], axis=1)], [expected]) <= ATOL
    stateful.reset_state()
    assert max_diff([stateful(x[:, :4]).numpy()], [first]) <= ATOL
    assert max_diff([stateful(x[:, :4]).numpy()], [first]) > 1e-3  # carried over again


def test_input_dropout_is_constant_over_time_and_only_in_training():
    layer = LSTM(UNITS, dropout=0.5, return_sequences=True, seed=3)
    x = np.ones((BATCH, TIME, 8), "float32")
    layer.build(x.shape)
    dropped = layer.input_dropout(x, training=True).numpy()
    assert (dropped == 0).any() and (dropped != 0).any()
    assert (dropped == dropped[:, :1]).all()  # one mask per sequence, shared by all steps
    assert max_diff([layer(x, training=False)], [layer(x, training=False)]) == 0.0
    assert max_diff([layer(x, training=True)], [layer(x, training=False)]) > 1e-3
    assert len(layer.get_weights()) == 3  # the dropout seed is no weight (as in keras.layers.LSTM)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_recurrent_layer_for_every_cell_name(cell):
    layer = recurrent_layer(
        cell,
        UNITS,
        return_sequences=True,
        return_state=True,
        go_backwards=True,
        dropout=0.1,
        name=f"rnn_{cell.replace('-', '_')}",
    )
    expected_type = {"lstm": LSTM, "gru": GRU, "minimal-gru": CellRNN, "simple": CellRNN}[cell]
    assert type(layer) is expected_type and isinstance(layer, keras.layers.RNN)
    assert layer.go_backwards and layer.dropout == 0.1
    if cell in ("minimal-gru", "simple"):
        assert isinstance(layer.cell, MinimalGRUCell if cell == "minimal-gru" else SimpleRNNCell)
    out = layer(np.zeros((2, 3, 4), "float32"))
    assert len(out) == (3 if cell == "lstm" else 2)
    assert tuple(out[0].shape) == (2, 3, UNITS)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="cell must be one of"):
        recurrent_layer("transformer", 4)
    with pytest.raises(ValueError, match="dropout=1.0"):
        LSTM(4, dropout=1.0)
    with pytest.raises(ValueError, match="implementation='fastest'"):
        GRU(4, implementation="fastest")


def test_mixed_precision_model_trains_to_finite_loss():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tagger(lambda **kw: LSTM(UNITS, **kw))
        model.compile(optimizer="adam", loss="mse")
        history = model.fit(token_batch(), np.ones((BATCH, 2)), epochs=2, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history.history["loss"]).all()
    assert model.layers[2].forward_layer.compute_dtype == "bfloat16"


JAX_BODY = """
import numpy as np
from common.layers import GRU, LSTM, recurrent_layer
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 5, 4)).astype("float32")
mask = np.arange(5)[None, :] < np.array([[5], [3], [1]])
result = {}
for name, ours, builtin in [
    ("lstm", LSTM(6, return_sequences=True, return_state=True, go_backwards=True),
     keras.layers.LSTM(6, return_sequences=True, return_state=True, go_backwards=True)),
    ("gru", GRU(6, return_sequences=True, return_state=True),
     keras.layers.GRU(6, return_sequences=True, return_state=True)),
]:
    assert ours._select_loop() == "generic"
    builtin(x)
    builtin.set_weights([0.4 * rng.standard_normal(w.shape) for w in builtin.get_weights()])
    ours(x)
    ours.set_weights(builtin.get_weights())
    got, expected = ours(x, mask=mask), builtin(x, mask=mask)
    result[name] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                       for a, b in zip(got, expected))
layer = recurrent_layer("minimal-gru", 6, dropout=0.5)
result["minimal-gru-shape"] = list(layer(x, training=True).shape)
try:
    LSTM(4, implementation="fast")
except ValueError as error:
    result["fast-error"] = str(error)
"""


def test_generic_path_on_jax_backend():
    result = run_on_jax(JAX_BODY)
    assert result["lstm"] <= ATOL and result["gru"] <= ATOL, result
    assert result["minimal-gru-shape"] == [3, 6]
    assert "TensorFlow backend" in result["fast-error"]
