"""Inference: window and recording predictions, evaluation reports, `evaluate` and `predict`.

A recording's activity is the majority vote of its windows' predicted
classes; a tie goes to the class with the higher mean window probability.
The reported recording probabilities are the mean window probabilities.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from common import metrics
from common.errors import UserError
from common.runtime import RunDir
from recipes.activity import data as sensor_data

LABELS_FILE = "labels.json"
PREDICT_BATCH = 256


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What `train` saves beside the model (labels.json): what inference needs."""

    class_names: tuple[str, ...]
    channels: int
    window: int
    stride: int
    # Samples per second the model's windows were cut at (None: unknown, windows in samples).
    sample_rate: float | None

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        return RunDir(model_dir).read_dataclass(LABELS_FILE, cls)


def vote(window_probs: np.ndarray, owners: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of window predictions per recording.

    window_probs float[windows, classes], owners int[windows] in [0, n).
    Returns (labels int64[n], mean probabilities float32[n, classes]).
    """
    classes = window_probs.shape[1]
    votes = np.zeros((n, classes))
    np.add.at(votes, (owners, window_probs.argmax(axis=1)), 1.0)
    sums = np.zeros((n, classes))
    np.add.at(sums, owners, window_probs)
    mean = sums / np.maximum(np.bincount(owners, minlength=n), 1)[:, None]
    # Mean probabilities are < 1, so they only break ties between equal vote counts.
    return (votes + 1e-3 * mean).argmax(axis=1).astype(np.int64), mean.astype(np.float32)


def _summary(report: dict, count: int) -> dict:
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "count": count}


def evaluate_sensor(model, data: sensor_data.SensorData, window: int, stride: int) -> dict:
    """Window- and recording-level reports for these recordings.

    Returns {"window": report, "recording": report, "recording_pred", "recording_probs"}
    where each report is `common.metrics.classification_report`'s dict.
    """
    x, y, owners = sensor_data.make_windows(data, window, stride)
    probs = model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
    rec_pred, rec_probs = vote(probs, owners, len(data.recordings))
    return {
        "window": metrics.classification_report(y, probs.argmax(axis=1), data.class_names),
        "recording": metrics.classification_report(data.labels, rec_pred, data.class_names),
        "windows": len(x),
        "recording_pred": rec_pred,
        "recording_probs": rec_probs,
    }


def headline(result: dict) -> dict:
    """The evaluate --json / metrics.json headline: `accuracy` and `macro_f1` at the
    recording level, plus the window- and recording-level summaries."""
    rec, win = result["recording"], result["window"]
    return {
        "accuracy": rec["accuracy"],
        "macro_f1": rec["macro_f1"],
        "window": _summary(win, result["windows"]),
        "recording": _summary(rec, int(np.sum(rec["confusion_matrix"]))),
    }


def segments(
    starts: np.ndarray, window: int, labels: np.ndarray, confidence: np.ndarray, length: int
):
    """Runs of consecutive windows with the same predicted class (for printing a timeline);
    `end` never goes past the recording's `length` samples."""
    runs = []
    begin = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[begin]:
            runs.append(
                {
                    "start": int(starts[begin]),
                    "end": int(min(starts[i - 1] + window, length)),
                    "label": int(labels[begin]),
                    "windows": i - begin,
                    "probability": float(confidence[begin:i].mean()),
                }
            )
            begin = i
    return runs


def timeline_rows(result: dict, limit: int = 15) -> tuple[list[dict], int]:
    """The first `limit` segments of a `predict_recording` result as table rows, and how many
    segments were left out."""
    keys = ("start", "end", "activity", "windows", "probability")
    rows = [{k: s[k] for k in keys} for s in result["segments"][:limit]]
    return rows, max(len(result["segments"]) - limit, 0)


def predict_recording(
    model, info: ModelInfo, values: np.ndarray, source: str, last_line: int | None = None
) -> dict:
    """Activity of one sensor recording, with probabilities and a per-window timeline."""
    where = f"{source}:{last_line}" if last_line else source
    if values.shape[1] != info.channels:
        raise UserError(f"{where}: {values.shape[1]} channels, the model expects {info.channels}")
    starts = sensor_data.window_starts(len(values), info.window, info.stride)
    windows = sensor_data.recording_windows(values, info.window, info.stride)
    probs = model.predict(windows, batch_size=PREDICT_BATCH, verbose=0)
    label, mean = vote(probs, np.zeros(len(probs), dtype=np.int64), 1)
    names = info.class_names
    window_labels = probs.argmax(axis=1)
    votes = np.bincount(window_labels, minlength=len(names))
    return {
        "input": source,
        "samples": int(len(values)),
        "activity": names[int(label[0])],
        "probabilities": {n: float(p) for n, p in zip(names, mean[0], strict=True)},
        "votes": {n: int(v) for n, v in zip(names, votes, strict=True)},
        "windows": [
            {
                "start": int(s),
                "end": int(min(s + info.window, len(values))),
                "activity": names[int(k)],
                "probability": float(p[k]),
            }
            for s, k, p in zip(starts, window_labels, probs, strict=True)
        ],
        "segments": [
            dict(run, activity=names[run.pop("label")])
            for run in segments(
                starts,
                info.window,
                window_labels,
                probs[np.arange(len(probs)), window_labels],
                len(values),
            )
        ],
    }


def predict_file(model, info: ModelInfo, path: Path) -> dict:
    """`predict --input PATH`: one recording file."""
    if not path.is_file():
        raise UserError(f"--input: no such file: {path}")
    values, last_line, _ = sensor_data.read_recording(path)
    return predict_recording(model, info, values, str(path), last_line)


def evaluate(model_dir: Path, spec: str | None) -> dict:
    """`evaluate`: the headline metrics of a trained model on a data source.

    Without --data (or with an empty one): the validation recordings `train` wrote into the run
    directory (`heldout/`), read like any other --data directory.
    """
    from common import data as common_data
    from common import runtime

    info = ModelInfo.read(model_dir)
    source = common_data.resolve(RunDir(model_dir).evaluation_data(spec, sensor_data.HELDOUT_FILE))
    data = sensor_data.load(source, class_names=info.class_names)
    sensor_data.check_channels(data, info.channels)
    model = runtime.load_model(model_dir)
    result = evaluate_sensor(model, data, info.window, info.stride)
    return dict(
        headline(result),
        data=str(source),
        class_names=list(info.class_names),
        # Recording level; rows are the true classes, columns the predicted ones.
        confusion_matrix=result["recording"]["confusion_matrix"],
    )
