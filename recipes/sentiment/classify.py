"""The task verbs on a trained run directory: predict labels, evaluate on labelled data.

A run directory holds `model.keras` (raw strings in, probabilities out) and
`labels.json` (the class names in output order), so nothing else is needed to
classify text; the tokenizer lives inside the model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from common import metrics, runtime
from common.data import fill_last_batch
from common.errors import UserError

LABELS_FILE = "labels.json"
CONFUSION_PNG = "confusion_matrix.png"
PREDICT_BATCH = 64


@dataclasses.dataclass(frozen=True)
class Labels:
    """`labels.json`: the class names in the model's output order."""

    class_names: tuple[str, ...]

    def __post_init__(self):
        names = self.class_names
        if not (
            isinstance(names, tuple) and len(names) >= 2 and all(isinstance(c, str) for c in names)
        ):
            raise ValueError('expected {"class_names": [two or more names]}')


def load_run(model_dir: Path):
    """`(model, class_names)` from a run directory, checked against each other."""
    run_dir = runtime.RunDir(model_dir)
    class_names = list(run_dir.read_dataclass(LABELS_FILE, Labels).class_names)
    model = runtime.load_model(model_dir)
    outputs = model.output_shape[-1]
    if outputs != len(class_names):
        raise UserError(
            f"{model_dir}: model.keras has {outputs} outputs but {LABELS_FILE} names "
            f"{len(class_names)} classes; the directory mixes two runs"
        )
    return model, class_names


def predict_proba(model, texts, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """float32[len(texts), classes] for a list of raw strings.

    The last batch is filled to `batch_size` (`common.data.fill_last_batch`; the
    filler rows dropped from the result), so every call runs one batch shape and
    the recurrent layers' XLA kernels compile once per process.
    """
    import tensorflow as tf

    texts = list(texts)
    index, _ = fill_last_batch(len(texts), batch_size)
    padded = [texts[i] for i in index]
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(padded, tf.string)).batch(batch_size)
    return np.asarray(model.predict(dataset, verbose=0), dtype=np.float32)[: len(texts)]


def predictions(model, class_names, texts) -> list[dict]:
    """One dict per text: the text, the predicted label and every class's probability."""
    probs = predict_proba(model, texts)
    return [
        {
            "text": text,
            "label": class_names[int(np.argmax(p))],
            "probabilities": {
                name: round(float(v), 6) for name, v in zip(class_names, p, strict=True)
            },
        }
        for text, p in zip(texts, probs, strict=True)
    ]


def evaluate(
    model, class_names, texts, y_true, *, png: Path | None = None, title: str = ""
) -> dict:
    """accuracy, macro_f1, per-class precision/recall/F1, confusion matrix (+ PNG)."""
    y_pred = np.argmax(predict_proba(model, texts), axis=-1)
    report = metrics.classification_report(y_true, y_pred, class_names)
    report = {"examples": int(len(y_true)), **report}
    if png is not None:
        metrics.plot_confusion_matrix(report["confusion_matrix"], class_names, png, title=title)
    return report


def per_class_rows(report: dict) -> list[dict]:
    return [{"class": name, **values} for name, values in report["per_class"].items()]
