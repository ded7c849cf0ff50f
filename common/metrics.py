"""Classification metrics and the confusion-matrix plot shared by the classifiers
(sentiment, activity). scikit-learn computes; this module only names and draws.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
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
