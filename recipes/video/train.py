"""`train`: load and split the clips, fit, evaluate the best model, show predictions.

    clips --split (by digit image for the default, else by clip)--> train / validation
        both: tf.data -> common.runtime.fit
    best model -> clip-level accuracy / macro-F1, confusion matrix
    validation clips -> heldout/<class>/<n>.npy in the run directory (what
        `evaluate` reads without --data)

Everything the command line names is read and checked before the run
directory is created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import time

import click

from common import data as common_data
from common import metrics, runtime
from common.cli import TrainArgs, print_table
from common.errors import UserError
from recipes.video import data as video_data
from recipes.video import model as model_lib
from recipes.video import predict as predict_lib
from recipes.video.config import Config


@dataclasses.dataclass(frozen=True)
class Splits:
    """Training and validation clips and a description of each."""

    train: video_data.VideoData
    val: video_data.VideoData
    train_description: str
    val_description: str


def _describe(source) -> str:
    return video_data.DEFAULT_DESCRIPTION if source.kind == "default" else str(source)


def load_splits(cfg: Config, run: TrainArgs) -> Splits:
    source = common_data.resolve(run.data)
    val_source = (
        common_data.resolve(run.validation_data, what="--validation-data")
        if run.validation_data
        else None
    )
    description = _describe(source)
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
        train_idx, val_idx = common_data.stratified_holdout(
            data.labels, cfg.validation_fraction, run.seed, what="clips"
        )
        return Splits(
            data.subset(train_idx),
            data.subset(val_idx),
            description,
            f"{description}, {cfg.validation_fraction:g} of each class's clips held out "
            f"(seed {run.seed})",
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
    return Splits(data, val, description, _describe(val_source))


def train(cfg: Config, run: TrainArgs) -> dict:
    """Train, evaluate the best model on the validation clips, write the run directory."""
    started = time.monotonic()
    splits = load_splits(cfg, run)
    train_data, val_data = splits.train, splits.val
    classes = len(train_data.class_names)

    strategy = runtime.setup(run)
    x_train, y_train = train_data.clips, train_data.labels
    x_val, y_val = val_data.clips, val_data.labels
    click.echo(
        f"Data: {splits.train_description}\n  train: {len(x_train)} clips of "
        f"{cfg.frames} frames {cfg.frame_size}x{cfg.frame_size}x{train_data.channels}\n"
        f"  validation: {len(x_val)} clips ({splits.val_description})"
    )

    with strategy.scope():
        model = model_lib.build_model(cfg, channels=train_data.channels, classes=classes)
        steps = max(len(x_train) // cfg.batch_size, 1) * cfg.epochs  # cosine decay over them
        model.compile(
            optimizer=runtime.optimizer(cfg.learning_rate, cfg.clipnorm, decay_steps=steps),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    model.summary(print_fn=lambda line, **_: click.echo(line), line_length=96)

    info = predict_lib.ModelInfo(
        class_names=tuple(train_data.class_names),
        channels=train_data.channels,
        frames=cfg.frames,
        frame_size=cfg.frame_size,
    )
    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    run_dir.write_json(predict_lib.LABELS_FILE, info)
    heldout = video_data.write_heldout(run_dir, val_data)

    best = runtime.fit(
        model,
        common_data.array_dataset(x_train, y_train, cfg.batch_size, shuffle=True, seed=run.seed),
        common_data.array_dataset(x_val, y_val, cfg.batch_size, shuffle=False, seed=run.seed),
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=cfg.time_budget,
        monitor="val_accuracy",  # the best model is the one with the best clip accuracy
        patience=cfg.patience,
        class_weight=common_data.balanced_class_weight(y_train),
    )

    result = predict_lib.evaluate_clips(best, val_data)
    summary = predict_lib.headline(result)
    metrics.plot_confusion_matrix(
        result["clip"]["confusion_matrix"],
        train_data.class_names,
        run_dir.file("confusion_matrix.png"),
        title="validation, clip level",
    )
    history = runtime.read_history(run_dir.file("history.csv"))
    summary.update(
        data=splits.val_description,
        epochs_run=len(history.get("epoch", [])),
        wall_seconds=round(time.monotonic() - started, 1),
        reports={"clip": result["clip"]},
    )
    run_dir.write_json("metrics.json", summary)

    click.echo(f"\nValidation ({splits.val_description}):")
    print_table(
        [
            {
                "level": "clip",
                "examples": summary["clip"]["count"],
                "accuracy": summary["clip"]["accuracy"],
                "macro_f1": summary["clip"]["macro_f1"],
            }
        ]
    )
    _demo(info, val_data, result, run_dir)
    click.echo(
        f"\nRun directory: {run_dir.path} (model.keras, labels.json, metrics.json, "
        f"{heldout.name}/, confusion_matrix.png, training.png) in "
        f"{summary['wall_seconds']:.0f} s"
    )
    return summary


def _demo(info, val_data, result, run_dir, shown: int = 6) -> None:
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
    path = video_data.write_gif(val_data.clips[0], run_dir.file("example_clip.gif"), scale=4)
    click.echo(
        f"Wrote {path} (true class {names[int(val_data.labels[0])]}). Try: python -m "
        f"recipes.video predict --model-dir {run_dir.path} --input {path}"
    )
