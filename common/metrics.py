"""Classification metrics and the confusion-matrix plot shared by the classifiers
(sentiment, activity; scikit-learn computes, this module only names and draws), and the
per-token accuracy the sequence taggers and the translator show while training
(`TokenAccuracy`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from keras import ops
from sklearn import metrics as skm


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]
) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    `y_true` and `y_pred` are class indices into `class_names`; classes absent from
    both still get a row (with zeros), so reports of different splits line up.
    """
    labels = list(range(len(class_names)))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def confusion_rows(report: dict, class_names: Sequence[str]) -> list[dict]:
    """A `classification_report`'s confusion matrix as table rows (true class down,
    predicted class across), for `common.cli.print_table`."""
    return [
        {"true \\ predicted": name, **dict(zip(class_names, row, strict=True))}
        for name, row in zip(class_names, report["confusion_matrix"], strict=True)
    ]


def plot_confusion_matrix(
    matrix, class_names: Sequence[str], path: os.PathLike, title: str = ""
) -> Path:
    """Write the confusion matrix (rows: true class, columns: predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.runtime import atomic_write

    matrix = np.asarray(matrix)
    size = max(4.0, 0.6 * len(class_names) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    skm.ConfusionMatrixDisplay(matrix, display_labels=list(class_names)).plot(
        ax=ax, colorbar=False, xticks_rotation=45, values_format="d"
    )
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path


@keras.saving.register_keras_serializable(package="common.metrics")
class TokenAccuracy(keras.metrics.Metric):
    """The share of right tokens (the argmax of `y_pred` equal to `y_true`) over every
    token of the epoch, each counted with its sample weight (0 at padding), and not at
    all where the label is `ignore_class`.

    Keras's own weighted accuracy on [batch, time] outputs takes each batch's mean over
    its padded length and then weights the batches by 1 / that length, so that batches
    of short sequences count more than their tokens (on one protein model's validation
    chains it said 0.7401 where the share of right residues was 0.7305). This one keeps
    two sums, right tokens and tokens, for the whole epoch.
    """

    def __init__(self, name="token_accuracy", ignore_class=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self.right = self.add_variable(shape=(), initializer="zeros", name="right")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        weight = ops.cast(
            ops.ones_like(y_true) if sample_weight is None else sample_weight, "float32"
        )
        if self.ignore_class is not None:
            weight = weight * ops.cast(ops.not_equal(y_true, self.ignore_class), "float32")
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        right = ops.cast(ops.equal(predicted, y_true), "float32")
        self.right.assign_add(ops.sum(right * weight))
        self.total.assign_add(ops.sum(weight))

    def result(self):
        return ops.divide_no_nan(self.right, self.total)

    def reset_state(self):
        self.right.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}
