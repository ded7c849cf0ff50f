"""common.metrics.TokenAccuracy: the share of right tokens over an epoch of batches
padded to different lengths, where Keras's weighted accuracy weights the batches."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from common.metrics import TokenAccuracy


def _batches():
    """Two batches of [batch, time] labels, one-hot-ish predictions and 0/1 token weights:
    a long one (time 8) that is mostly wrong and a short one (time 2) that is all right."""
    rng = np.random.default_rng(0)
    long_true = rng.integers(0, 3, (2, 8))
    long_pred = np.eye(3)[(long_true + 1) % 3]  # every token wrong ...
    long_pred[0, :3] = np.eye(3)[long_true[0, :3]]  # ... but three
    long_weight = np.ones((2, 8))
    long_weight[1, 5:] = 0  # padding, whatever is predicted there
    short_true = rng.integers(0, 3, (2, 2))
    short_pred = np.eye(3)[short_true]
    short_weight = np.ones((2, 2))
    return [(long_true, long_pred, long_weight), (short_true, short_pred, short_weight)]


def test_counts_right_tokens_over_the_epoch():
    metric = TokenAccuracy()
    right = total = 0.0
    for y_true, y_pred, weight in _batches():
        metric.update_state(y_true, y_pred, sample_weight=weight)
        right += float(((y_pred.argmax(-1) == y_true) * weight).sum())
        total += float(weight.sum())
    assert right / total == pytest.approx(7 / 17)
    assert float(metric.result()) == pytest.approx(right / total, abs=1e-6)

    # Keras's weighted accuracy gives the short batch more weight than its 4 tokens.
    keras_metric = keras.metrics.SparseCategoricalAccuracy()
    for y_true, y_pred, weight in _batches():
        keras_metric.update_state(y_true, y_pred, sample_weight=weight)
    assert abs(float(keras_metric.result()) - 7 / 17) > 0.1

    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_ignore_class_leaves_those_labels_out():
    y_true = np.array([[1, 2, 0, 0]])
    y_pred = np.eye(3)[[[1, 1, 2, 2]]]  # right, wrong, then wrong on the ignored label
    metric = TokenAccuracy(ignore_class=0)
    metric.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(0.5)


def test_survives_a_config_round_trip():
    metric = TokenAccuracy(name="acc", ignore_class=0)
    again = TokenAccuracy.from_config(metric.get_config())
    assert (again.name, again.ignore_class) == ("acc", 0)
