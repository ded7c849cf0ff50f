"""Inference: clip predictions, evaluation reports, `evaluate` and `predict`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from common import metrics
from common.errors import UserError
from common.runtime import RunDir
from recipes.video import data as video_data

LABELS_FILE = "labels.json"
PREDICT_BATCH = 64


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What `train` saves beside the model (labels.json): what inference needs."""

    class_names: tuple[str, ...]
    channels: int
    frames: int
    frame_size: int

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        return RunDir(model_dir).read_dataclass(LABELS_FILE, cls)


def evaluate_clips(model, data: video_data.VideoData) -> dict:
    """The clip-level report for these clips (`common.metrics.classification_report`'s
    dict under "clip"), with the predictions and probabilities."""
    probs = model.predict(data.clips.astype(np.float32), batch_size=PREDICT_BATCH, verbose=0)
    pred = probs.argmax(axis=1)
    return {
        "clip": metrics.classification_report(data.labels, pred, data.class_names),
        "clip_pred": pred,
        "clip_probs": probs,
    }


def headline(result: dict) -> dict:
    """The evaluate --json / metrics.json headline: clip-level `accuracy` and `macro_f1`."""
    clip = result["clip"]
    return {
        "accuracy": clip["accuracy"],
        "macro_f1": clip["macro_f1"],
        "clip": {
            "accuracy": clip["accuracy"],
            "macro_f1": clip["macro_f1"],
            "count": int(np.sum(clip["confusion_matrix"])),
        },
    }


def predict_clip(model, info: ModelInfo, clip: np.ndarray, source: str) -> dict:
    probs = model.predict(clip[None].astype(np.float32), verbose=0)[0]
    names = info.class_names
    return {
        "input": source,
        "activity": names[int(probs.argmax())],
        "probabilities": {n: float(p) for n, p in zip(names, probs, strict=True)},
    }


def predict_file(model, info: ModelInfo, path: Path) -> dict:
    """`predict --input PATH`: one .gif or .npy clip."""
    if not path.is_file():
        raise UserError(f"--input: no such file: {path}")
    clip = video_data.load_clip(path, info.frames, info.frame_size, info.channels)
    return predict_clip(model, info, clip, str(path))


def evaluate(model_dir: Path, spec: str | None) -> dict:
    """`evaluate`: the headline metrics of a trained model on a data source.

    Without --data (or with an empty one): the validation clips `train` wrote into the run directory
    (`heldout/`), read like any other --data directory.
    """
    from common import data as common_data
    from common import runtime

    info = ModelInfo.read(model_dir)
    source = common_data.resolve(RunDir(model_dir).evaluation_data(spec, video_data.HELDOUT_FILE))
    data = video_data.load(
        source,
        info.frames,
        info.frame_size,
        channels=info.channels,
        class_names=info.class_names,
        split="test",
    )
    model = runtime.load_model(model_dir)
    return dict(headline(evaluate_clips(model, data)), data=str(source))
