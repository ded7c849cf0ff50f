"""`train`: load and split the data, fit, evaluate the best model, show predictions.

    recordings --split by recording--> train / validation recordings
        train: per-channel mean/variance -> the model's Normalization layer
        both:  sliding windows (window, stride) -> tf.data -> common.runtime.fit
    best model -> window- and recording-level accuracy / macro-F1, confusion matrices

Video clips follow the same path without windows (one clip = one example).
Everything the command line names is read and checked before the run
directory is created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import time

import click
import keras
import numpy as np
import tensorflow as tf

from common import data as common_data
from common import metrics, runtime
from common.cli import TrainArgs, print_table
from common.errors import UserError
from recipes.activity import data as sensor_data
from recipes.activity import model as model_lib
from recipes.activity import predict as predict_lib
from recipes.activity import video as video_data
from recipes.activity.config import Config


@dataclasses.dataclass(frozen=True)
class Splits:
    """Training and validation data (SensorData or VideoData) and a description of each."""

    train: object
    val: object
    train_description: str
    val_description: str


def _describe(source, default: str) -> str:
    return default if source.kind == "default" else str(source)


def load_sensor_splits(cfg: Config, run: TrainArgs) -> Splits:
    source = common_data.resolve(run.data)
    data = sensor_data.load(source)
    sensor_data.check_lengths(data, cfg.window)
    description = _describe(source, sensor_data.DEFAULT_DESCRIPTION)
    if run.validation_data:
        val_source = common_data.resolve(run.validation_data, what="--validation-data")
        val = sensor_data.load(val_source, class_names=data.class_names, what="--validation-data")
        sensor_data.check_channels(val, data.channels, "--validation-data")
        sensor_data.check_lengths(val, cfg.window)
        return Splits(
            data, val, description, _describe(val_source, sensor_data.DEFAULT_DESCRIPTION)
        )
    train, val = sensor_data.split(data, cfg.validation_fraction, run.seed)
    held_out = f"{description}, {cfg.validation_fraction:g} of each class's recordings held out (seed {run.seed})"
    return Splits(train, val, description, held_out)


def load_video_splits(cfg: Config, run: TrainArgs) -> Splits:
    source = common_data.resolve(run.data)
    val_source = (
        common_data.resolve(run.validation_data, what="--validation-data")
        if run.validation_data
        else None
    )
    description = _describe(source, video_data.DEFAULT_DESCRIPTION)
    size, frames = cfg.frame_size, cfg.frames
    if source.kind == "default" and val_source is None:
        train, val = video_data.default_split(
            cfg.video_clips, frames, size, cfg.validation_fraction, run.seed
        )
        return Splits(
            train,
            val,
            description,
            f"{description}, clips of {cfg.validation_fraction:g} of the digit images "
            f"held out (seed {run.seed})",
        )
    if source.kind == "default":
        data = video_data.default_data(cfg.video_clips, frames, size, run.seed)
    else:
        data = video_data.load(source, frames, size, split="train")
    if val_source is None:
        train_idx, val_idx = sensor_data.stratified_holdout(
            data.labels, cfg.validation_fraction, run.seed, what="clips"
        )
        return Splits(
            data.subset(train_idx),
            data.subset(val_idx),
            description,
            f"{description}, {cfg.validation_fraction:g} of each class's clips held out (seed {run.seed})",
        )
    if val_source.kind == "default":
        val = video_data.default_data(
            max(len(video_data.MOTIONS), cfg.video_clips // 5), frames, size, run.seed + 1
        )
        if val.class_names != data.class_names:
            raise UserError("--validation-data: the moving-digit classes differ from --data's")
    else:
        val = video_data.load(
            val_source,
            frames,
            size,
            channels=data.channels,
            class_names=data.class_names,
            split="test",
            what="--validation-data",
        )
    return Splits(data, val, description, _describe(val_source, video_data.DEFAULT_DESCRIPTION))


def _dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int):
    """Batches of (x as float32, y). Training batches are reshuffled every epoch and all
    of one size (the remainder differs every epoch), so the step compiles once."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=shuffle and len(x) >= 2 * batch_size)
    if x.dtype != np.float32:
        dataset = dataset.map(lambda a, b: (tf.cast(a, tf.float32), b))
    return dataset.prefetch(tf.data.AUTOTUNE)


def balanced_class_weight(y: np.ndarray, classes: int) -> dict[int, float]:
    """n / (classes * count) per class present, so each class weighs the same in the loss."""
    counts = np.bincount(y, minlength=classes)
    return {k: float(len(y) / (classes * c)) for k, c in enumerate(counts) if c}


def train(cfg: Config, run: TrainArgs) -> dict:
    """Train, evaluate the best model on the validation data, write the run directory."""
    started = time.monotonic()
    sensor = cfg.modality == "sensor"
    splits = load_sensor_splits(cfg, run) if sensor else load_video_splits(cfg, run)
    train_data, val_data = splits.train, splits.val
    classes = len(train_data.class_names)

    strategy = runtime.setup(run)
    if sensor:
        x_train, y_train, _ = sensor_data.make_windows(train_data, cfg.window, cfg.stride)
        x_val, y_val, _ = sensor_data.make_windows(val_data, cfg.window, cfg.stride)
        mean, variance = sensor_data.normalization_stats(train_data)
        print(
            f"Data: {splits.train_description}\n  train: {len(train_data.recordings)} "
            f"recordings -> {len(x_train)} windows of {cfg.window} x {train_data.channels} "
            f"(stride {cfg.stride})\n  validation: {len(val_data.recordings)} recordings -> "
            f"{len(x_val)} windows ({splits.val_description})",
            flush=True,
        )
    else:
        x_train, y_train = train_data.clips, train_data.labels
        x_val, y_val = val_data.clips, val_data.labels
        print(
            f"Data: {splits.train_description}\n  train: {len(x_train)} clips of "
            f"{cfg.frames} frames {cfg.frame_size}x{cfg.frame_size}x{train_data.channels}\n"
            f"  validation: {len(x_val)} clips ({splits.val_description})",
            flush=True,
        )

    with strategy.scope():
        if sensor:
            model = model_lib.build_sensor_model(
                cfg, channels=train_data.channels, classes=classes, mean=mean, variance=variance
            )
        else:
            model = model_lib.build_video_model(cfg, channels=train_data.channels, classes=classes)
        # Cosine decay over the planned epochs: late epochs take small steps, so the
        # validation accuracy settles instead of jumping between epochs.
        steps = max(len(x_train) // cfg.batch_size, 1) * cfg.epochs
        schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps, alpha=0.05)
        model.compile(
            optimizer=runtime.optimizer(schedule, cfg.clipnorm),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    model.summary(print_fn=lambda line, **_: click.echo(line), line_length=96)

    info = predict_lib.ModelInfo(
        modality=cfg.modality,
        class_names=tuple(train_data.class_names),
        channels=train_data.channels,
        window=cfg.window if sensor else 0,
        stride=cfg.stride if sensor else 0,
        frames=0 if sensor else cfg.frames,
        frame_size=0 if sensor else cfg.frame_size,
        channel_names=getattr(train_data, "channel_names", None),
        train_data=str(run.data or "default"),
        seed=run.seed,
        validation_fraction=cfg.validation_fraction,
        video_clips=cfg.video_clips,
    )
    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    run_dir.write_json(predict_lib.LABELS_FILE, info)

    best = runtime.fit(
        model,
        _dataset(x_train, y_train, cfg.batch_size, shuffle=True, seed=run.seed),
        _dataset(x_val, y_val, cfg.batch_size, shuffle=False, seed=run.seed),
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=run.time_budget or cfg.time_budget,
        monitor="val_accuracy",  # the best model is the one with the best window/clip accuracy
        patience=cfg.patience,
        class_weight=balanced_class_weight(y_train, classes),
    )

    if sensor:
        result = predict_lib.evaluate_sensor(best, val_data, cfg.window, cfg.stride)
        reports = {"window": result["window"], "recording": result["recording"]}
    else:
        result = predict_lib.evaluate_video(best, val_data)
        reports = {"clip": result["clip"]}
    summary = predict_lib.headline(result, cfg.modality)
    for level, report in reports.items():
        name = "confusion_matrix.png" if level != "window" else "confusion_matrix_windows.png"
        metrics.plot_confusion_matrix(
            report["confusion_matrix"],
            train_data.class_names,
            run_dir.file(name),
            title=f"validation, {level} level",
        )
    history = runtime.read_history(run_dir.file("history.csv"))
    summary.update(
        data=splits.val_description,
        epochs_run=len(history.get("epoch", [])),
        wall_seconds=round(time.monotonic() - started, 1),
        reports=reports,
    )
    run_dir.write_json("metrics.json", summary)

    click.echo(f"\nValidation ({splits.val_description}):")
    print_table(
        [
            {
                "level": level,
                "examples": summary[level]["count"],
                "accuracy": summary[level]["accuracy"],
                "macro_f1": summary[level]["macro_f1"],
            }
            for level in reports
        ]
    )
    if sensor:
        _demo_sensor(best, info, val_data, result, run_dir)
    else:
        _demo_video(best, info, val_data, result, run_dir)
    click.echo(
        f"\nRun directory: {run_dir.path} (model.keras, labels.json, metrics.json, "
        f"confusion_matrix.png, training.png) in {summary['wall_seconds']:.0f} s"
    )
    return summary


def _demo_sensor(model, info, val_data, result, run_dir, shown: int = 6) -> None:
    names = info.class_names
    rows = []
    for i, recording in enumerate(val_data.recordings[:shown]):
        probs = result["recording_probs"][i]
        predicted = int(result["recording_pred"][i])
        rows.append(
            {
                "recording": recording.source,
                "samples": len(recording.values),
                "true": names[recording.label],
                "predicted": names[predicted],
                "probability": float(probs[predicted]),
            }
        )
    click.echo("\nExample predictions (validation recordings, majority vote over windows):")
    print_table(rows)

    example = val_data.recordings[0]
    header = " ".join(info.channel_names) if info.channel_names else None
    lines = [f"# one {names[example.label]} recording from {example.source}"]
    lines += [header] if header else []
    lines += [" ".join(f"{v:.6g}" for v in row) for row in example.values]
    path = run_dir.write_text("example_recording.txt", "\n".join(lines) + "\n")
    timeline = predict_lib.predict_recording(model, info, example.values, str(path))
    click.echo(f"\nTimeline of {path} (true class {names[example.label]}):")
    rows, more = predict_lib.timeline_rows(timeline)
    print_table(rows)
    if more:
        click.echo(f"... and {more} more segments")
    click.echo(f"Try: python -m recipes.activity predict --model-dir {run_dir.path} --input {path}")


def _demo_video(model, info, val_data, result, run_dir, shown: int = 6) -> None:
    names = info.class_names
    rows = []
    for i in range(min(shown, len(val_data.labels))):
        probs = result["clip_probs"][i]
        rows.append(
            {
                "clip": val_data.sources[i],
                "true": names[int(val_data.labels[i])],
                "predicted": names[int(probs.argmax())],
                "probability": float(probs.max()),
            }
        )
    click.echo("\nExample predictions (validation clips):")
    print_table(rows)
    path = video_data.write_gif(val_data.clips[0], run_dir.file("example_clip.gif"))
    click.echo(
        f"Wrote {path} (true class {names[int(val_data.labels[0])]}). Try: python -m "
        f"recipes.activity predict --model-dir {run_dir.path} --input {path}"
    )
