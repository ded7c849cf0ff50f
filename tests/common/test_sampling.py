"""common.sampling: the compiled generation loop and its sampling rules, on toy models whose
next-token distribution is known exactly."""

import numpy as np
import pytest
import tensorflow as tf

from common.sampling import Generator, uniform

VOCAB = 6
PAD, EOS = 0, 3


def toy_generator(probs, *, banned=(), eos=None, jit_compile=True):
    """A 'model' whose next-token distribution is probs[last token] (a [VOCAB, VOCAB] table).
    (That the recurrent state is carried is checked on real models in the recipes' tests.)"""
    table = tf.math.log(tf.constant(probs, tf.float32))

    def read_prime(ids, states):
        return tf.gather(table, ids[:, -1]), [states[0] + tf.cast(tf.shape(ids)[1], tf.float32)]

    def step(tokens, states):
        return tf.gather(table, tokens), [states[0] + 1.0]

    return Generator(
        read_prime=read_prime,
        step=step,
        initial_states=lambda batch: [tf.zeros([batch, 1])],
        vocab_size=VOCAB,
        banned=banned,
        eos=eos,
        pad=PAD,
        jit_compile=jit_compile,
    )


def run(generator, prime, length, temperature=1.0, top_k=0, seed=0):
    ids, lengths = generator.generate(
        tf.constant(prime, tf.int32),
        tf.constant(length),
        tf.constant(temperature, tf.float32),
        tf.constant(top_k),
        tf.constant(seed),
    )
    return ids.numpy(), lengths.numpy()


UNIFORM_ISH = np.tile([0.05, 0.1, 0.15, 0.05, 0.25, 0.4], (VOCAB, 1))


@pytest.mark.parametrize("jit_compile", [True, False])
def test_draws_follow_the_distribution_without_the_banned_tokens(jit_compile):
    generator = toy_generator(UNIFORM_ISH, banned=[1, 5], jit_compile=jit_compile)
    ids, lengths = run(generator, [[2]] * 4000, 3, seed=11)
    assert lengths.tolist() == [3] * 4000
    counts = np.bincount(ids.ravel(), minlength=VOCAB) / ids.size
    allowed = np.array([0.05, 0, 0.15, 0.05, 0.25, 0]) / 0.5  # renormalised
    np.testing.assert_allclose(counts, allowed, atol=0.015)
    assert counts[1] == counts[5] == 0


def test_top_k_and_temperature():
    generator = toy_generator(UNIFORM_ISH)
    ids, _ = run(generator, [[2]] * 2000, 2, top_k=2, seed=1)
    counts = np.bincount(ids.ravel(), minlength=VOCAB) / ids.size
    np.testing.assert_allclose(counts[[4, 5]], [0.25 / 0.65, 0.4 / 0.65], atol=0.03)
    assert counts[[0, 1, 2, 3]].sum() == 0
    greedy, _ = run(generator, [[2]] * 3, 4, temperature=0.0)
    assert (greedy == 5).all()
    hot, _ = run(generator, [[2]] * 4000, 1, temperature=100.0, seed=2)
    flat = np.bincount(hot.ravel(), minlength=VOCAB) / hot.size
    np.testing.assert_allclose(flat, 1 / VOCAB, atol=0.03)


def test_same_seed_same_tokens_other_seed_other_tokens():
    generator = toy_generator(UNIFORM_ISH)
    first = run(generator, [[2]] * 5, 50, seed=7)[0]
    assert (first == run(generator, [[2]] * 5, 50, seed=7)[0]).all()
    assert (first != run(generator, [[2]] * 5, 50, seed=8)[0]).any()


def test_rows_stop_at_eos_and_are_filled_with_pad():
    # After token 4 comes <eos> for sure; after anything else, 4 for sure: 4, <eos>.
    probs = np.full((VOCAB, VOCAB), 1e-9)
    probs[:, 4] = 1.0
    probs[4, :] = 1e-9
    probs[4, EOS] = 1.0
    generator = toy_generator(probs, eos=EOS)
    ids, lengths = run(generator, [[2], [4]], 5)
    assert lengths.tolist() == [1, 0]
    assert ids.tolist() == [[4, PAD, PAD, PAD, PAD], [PAD] * 5]
    # Without an <eos> id nothing stops: <eos> is an ordinary token then.
    ids, lengths = run(toy_generator(probs), [[2]], 4, temperature=0.0)
    assert lengths.tolist() == [4] and ids.tolist() == [[4, EOS, 4, EOS]]


def test_the_draws_are_the_same_with_and_without_xla():
    # sample runs the loop under XLA, the exported SavedModel as a plain graph: same tokens.
    compiled = run(toy_generator(UNIFORM_ISH, jit_compile=True), [[2]] * 6, 60, seed=5, top_k=4)
    plain = run(toy_generator(UNIFORM_ISH, jit_compile=False), [[2]] * 6, 60, seed=5, top_k=4)
    assert (compiled[0] == plain[0]).all()
    u = uniform(tf.constant(5), tf.constant(1), 10000).numpy()
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
