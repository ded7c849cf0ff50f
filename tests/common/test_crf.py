"""common.CRF: the likelihood and Viterbi against brute-force enumeration, gradients against
finite differences, training with model.fit, save/load, and the JAX backend."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from common.crf import CRF, FORBIDDEN, UNKNOWN, bind
from tests.common.jax_backend import run_on_jax


def make_case(seed, tags=3, steps=4, batch=6, constrained=True, dtype="float32"):
    """A CRF with random weights (and random forbidden transitions), random scores, gold
    tags (-1 at padding) and a right-padded mask with lengths 1..steps."""
    rng = np.random.default_rng(seed)
    options = {}
    if constrained:
        allowed = rng.random((tags, tags)) > 0.3
        allowed[:, 0] = True  # every sequence of tag 0 stays possible
        options = dict(
            allowed=allowed,
            allowed_start=np.arange(tags) != tags - 1,
            allowed_end=np.arange(tags) != 1,
        )
    crf = CRF(tags, dtype=dtype, **options)
    crf.build((None, None, tags))
    for weight in (crf.transitions, crf.start, crf.end):
        weight.assign(rng.normal(size=weight.shape))
    scores = rng.normal(size=(batch, steps, tags)).astype(dtype)
    lengths = np.concatenate([[1, steps], rng.integers(1, steps + 1, size=batch - 2)])
    mask = np.arange(steps)[None, :] < lengths[:, None]
    gold = rng.integers(0, tags, size=(batch, steps))
    gold[:, :] = np.where(rng.random((batch, 1)) < 0.5, 0, gold)  # some always allowed
    gold[~mask] = -1
    return crf, scores, gold, mask


def brute_force(crf, scores, mask):
    """(log Z, {sequence: score}) of each sequence by enumerating every tag sequence."""
    transitions, start, end = (keras.ops.convert_to_numpy(w) for w in crf.transition_scores())
    results = []
    for s, m in zip(scores.astype(np.float64), mask, strict=True):
        n = int(m.sum())
        table = {}
        for y in itertools.product(range(crf.num_tags), repeat=n):
            value = start[y[0]] + s[0, y[0]] + end[y[-1]]
            value += sum(transitions[y[t - 1], y[t]] + s[t, y[t]] for t in range(1, n))
            table[y] = value
        results.append((np.logaddexp.reduce(list(table.values())), table))
    return results


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_likelihood_and_viterbi_equal_brute_force(constrained, seed):
    crf, scores, gold, mask = make_case(seed, constrained=constrained)
    log_likelihood = keras.ops.convert_to_numpy(crf.log_likelihood(scores, gold, mask))
    loss = keras.ops.convert_to_numpy(crf.negative_log_likelihood(gold, scores))
    mean = float(keras.ops.convert_to_numpy(crf.loss(gold, scores)))  # the Keras loss: a mean
    np.testing.assert_allclose(mean, loss.mean(), rtol=1e-5)
    # Padding given as per-token weights of 0 instead of -1 labels: the same loss.
    zeros = np.where(mask, gold, 0)
    weighted = crf.loss(zeros, scores, sample_weight=mask.astype("float32"))
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(weighted)), mean, rtol=1e-6)
    decoded = keras.ops.convert_to_numpy(crf.decode(scores, mask))
    for i, (log_z, table) in enumerate(brute_force(crf, scores, mask)):
        n = int(mask[i].sum())
        expected = table[tuple(gold[i, :n])] - log_z
        np.testing.assert_allclose(log_likelihood[i], expected, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(loss[i], -expected, rtol=1e-5, atol=1e-4)
        best = max(table, key=table.get)
        assert tuple(decoded[i, :n]) == best
        assert (decoded[i, n:] == -1).all()  # padded steps
        if constrained:  # the best sequence never takes a forbidden step
            assert crf.allowed_start[best[0]] and crf.allowed_end[best[-1]]
            assert all(crf.allowed[a, b] for a, b in itertools.pairwise(best))


@pytest.mark.parametrize("seed", [0, 1])
def test_marginals_and_partly_known_tags_equal_brute_force(seed):
    crf, scores, gold, mask = make_case(seed, constrained=True)
    rng = np.random.default_rng(seed + 10)
    partial = np.where(mask & (rng.random(mask.shape) < 0.4), UNKNOWN, gold)
    marginals = keras.ops.convert_to_numpy(crf.marginals(scores, mask))
    log_likelihood = keras.ops.convert_to_numpy(crf.log_likelihood(scores, partial, mask))
    loss = keras.ops.convert_to_numpy(crf.negative_log_likelihood(partial, scores))
    for i, (log_z, table) in enumerate(brute_force(crf, scores, mask)):
        n = int(mask[i].sum())
        expected = np.zeros((n, crf.num_tags))
        for y, value in table.items():
            expected[np.arange(n), y] += np.exp(value - log_z)
        np.testing.assert_allclose(marginals[i, :n], expected, atol=1e-5)
        assert (marginals[i, n:] == 0).all()
        known = [
            value
            for y, value in table.items()
            if all(p < 0 or p == t for p, t in zip(partial[i][: len(y)], y, strict=True))
        ]
        expected = np.logaddexp.reduce(known) - log_z
        if expected < FORBIDDEN / 10:  # only forbidden paths fit the known tags
            assert log_likelihood[i] < FORBIDDEN / 10
            continue
        np.testing.assert_allclose(log_likelihood[i], expected, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(loss[i], -log_likelihood[i], rtol=1e-6)


def test_padded_steps_change_nothing():
    crf, scores, gold, mask = make_case(2, constrained=True)
    noisy = np.where(mask[..., None], scores, 1e3 * np.ones_like(scores))
    for a, b in ((scores, noisy),):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(crf.log_likelihood(a, gold, mask)),
            keras.ops.convert_to_numpy(crf.log_likelihood(b, gold, mask)),
            rtol=1e-6,
        )
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(crf.decode(a, mask)),
            keras.ops.convert_to_numpy(crf.decode(b, mask)),
        )


def test_gradients_match_finite_differences_in_float64():
    import tensorflow as tf

    crf, scores, gold, mask = make_case(3, tags=3, steps=3, batch=3, dtype="float64")
    scores = tf.Variable(scores)
    # The TensorFlow variables under the layer's weights, and the scores.
    variables = [scores, crf.transitions.value, crf.start.value, crf.end.value]

    def total():
        return tf.reduce_sum(crf.log_likelihood(tf.identity(scores), gold, mask))

    with tf.GradientTape() as tape:
        value = total()
    grads = tape.gradient(value, variables)
    eps = 1e-6
    for variable, grad in zip(variables, grads, strict=True):
        assert variable.dtype == tf.float64
        flat = variable.numpy().ravel()
        numeric = np.zeros_like(flat)
        for k in range(flat.size):
            for sign in (1, -1):
                shifted = flat.copy()
                shifted[k] += sign * eps
                variable.assign(shifted.reshape(variable.shape))
                numeric[k] += sign * float(total()) / (2 * eps)
            variable.assign(flat.reshape(variable.shape))
        np.testing.assert_allclose(np.ravel(grad), numeric, rtol=1e-6, atol=1e-7)


def test_fit_learns_the_transitions_and_the_model_reloads(tmp_path):
    """Tags that follow a fixed cycle 0 -> 1 -> 2 -> 0 from the first token on: only the
    first token's features say where the cycle starts, so the CRF has to learn the
    transitions to tag the rest."""
    rng = np.random.default_rng(0)
    tags, steps, n = 3, 6, 256
    first = rng.integers(0, tags, size=n)
    y = (first[:, None] + np.arange(steps)[None, :]) % tags
    x = rng.normal(size=(n, steps, 4)).astype("float32") * 0.1
    x[:, 0, :tags] += np.eye(tags)[first] * 3.0
    lengths = rng.integers(2, steps + 1, size=n)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    y = np.where(mask, y, -1)
    x[~mask] = 0.0  # padding, masked by the Masking layer (the CRF takes the lengths from y)

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 4))
    crf = CRF(tags, name="crf")
    scores = keras.layers.Dense(tags)(keras.layers.Masking(0.0)(inputs))
    model = keras.Model(inputs, crf(scores))
    model.compile(keras.optimizers.Adam(0.05), loss=crf.loss)
    history = model.fit(x, y, batch_size=32, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.1 * history.history["loss"][0]
    decoded = keras.ops.convert_to_numpy(crf.decode(model.predict(x, verbose=0), mask))
    assert (decoded[mask] == y[mask]).mean() > 0.99

    path = tmp_path / "tagger.keras"
    model.save(path)
    # No custom_objects: the layer and its loss are registered under package "common".
    reloaded = keras.saving.load_model(path)
    again = reloaded.get_layer("crf").decode(reloaded.predict(x, verbose=0), mask)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again), decoded)
    assert reloaded.get_layer("crf").get_config() == crf.get_config()
    # The loaded loss knows its layer only by name until bound; then training goes on.
    with pytest.raises(ValueError, match="call common.crf.bind"):
        reloaded.evaluate(x, y, verbose=0)
    bind(reloaded)
    expected = model.evaluate(x, y, verbose=0)
    assert reloaded.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-4)
    # The project's loader binds it itself.
    model.save(tmp_path / "model.keras")
    from common import runtime

    assert runtime.load_model(tmp_path).evaluate(x, y, verbose=0) == pytest.approx(
        expected, rel=1e-4
    )


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="allowed must be a bool array of shape"):
        CRF(3, allowed=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="num_tags must be positive"):
        CRF(0)
    with pytest.raises(ValueError, match="with 3 tags in the last axis"):
        CRF(3).build((None, None, 4))


def case_numbers() -> dict:
    """The likelihoods and Viterbi paths of two fixed cases, on whatever backend runs."""
    out = {}
    for seed in (0, 1):
        crf, scores, gold, mask = make_case(seed, constrained=True)
        out[seed] = {
            "log_likelihood": keras.ops.convert_to_numpy(
                crf.log_likelihood(scores, gold, mask)
            ).tolist(),
            "decoded": keras.ops.convert_to_numpy(crf.decode(scores, mask)).tolist(),
            "marginals": keras.ops.convert_to_numpy(crf.marginals(scores, mask)).tolist(),
            "partial": keras.ops.convert_to_numpy(
                crf.log_likelihood(scores, np.where(gold == 0, UNKNOWN, gold), mask)
            ).tolist(),
        }
    return out


def test_same_numbers_on_the_jax_backend():
    jax_numbers = run_on_jax(
        """
        from tests.common.test_crf import case_numbers
        result = case_numbers()
        """
    )
    here = case_numbers()
    for seed, numbers in here.items():
        theirs = jax_numbers[str(seed)]
        np.testing.assert_allclose(theirs["log_likelihood"], numbers["log_likelihood"], rtol=1e-5)
        assert theirs["decoded"] == numbers["decoded"]
        np.testing.assert_allclose(theirs["marginals"], numbers["marginals"], atol=1e-6)
        np.testing.assert_allclose(theirs["partial"], numbers["partial"], rtol=1e-5)


def test_float32_inside_under_mixed_precision():
    crf, scores, gold, mask = make_case(4, constrained=True)
    mixed = CRF.from_config({**crf.get_config(), "dtype": "mixed_float16"})
    mixed.build((None, None, crf.num_tags))
    mixed.set_weights(crf.get_weights())
    assert mixed.transitions.dtype == "float32"
    out = mixed(scores.astype("float16"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(mixed.log_likelihood(out, gold, mask)),
        keras.ops.convert_to_numpy(crf.log_likelihood(scores.astype("float16"), gold, mask)),
        rtol=1e-6,
    )
