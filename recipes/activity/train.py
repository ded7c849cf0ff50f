"""`train`: load and split the data, fit, evaluate the best model, show predictions.

    recordings --split by recording--> train / validation recordings
        train: per-channel mean/variance -> the model's Normalization layer
        both:  sliding windows (seconds x sample rate, or samples) -> tf.data
               -> common.runtime.fit
    best model -> window- and recording-level accuracy / macro-F1, confusion matrices
    validation recordings -> heldout/<class>/*.txt in the run directory (what
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
from recipes.activity import config
from recipes.activity import data as sensor_data
from recipes.activity import model as model_lib
from recipes.activity import predict as predict_lib
from recipes.activity.config import Config


@dataclasses.dataclass(frozen=True)
class Splits:
    """Training and validation recordings and a description of each."""

    train: sensor_data.SensorData
    val: sensor_data.SensorData
    train_description: str
    val_description: str


def _describe(source) -> str:
    return sensor_data.DEFAULT_DESCRIPTION if source.kind == "default" else str(source)


def load_splits(cfg: Config, run: TrainArgs) -> tuple[Config, Splits]:
    """The training and validation recordings, and `cfg` with the window and stride in
    samples for their sample rate (and the rate itself) filled in."""
    source = common_data.resolve(run.data)
    data = sensor_data.load(source)
    rate = sensor_data.resolve_rate(data, cfg.sample_rate)
    window, stride = config.window_samples(cfg, rate)
    cfg = dataclasses.replace(cfg, sample_rate=rate, window=window, stride=stride)
    description = _describe(source)
    if run.validation_data:
        val_source = common_data.resolve(run.validation_data, what="--validation-data")
        val = sensor_data.load(val_source, class_names=data.class_names, what="--validation-data")
        sensor_data.check_channels(val, data.channels, "the training data")
        return cfg, Splits(data, val, description, _describe(val_source))
    train, val = sensor_data.split(data, cfg.validation_fraction, run.seed)
    held_out = (
        f"{description}, {cfg.validation_fraction:g} of each class's recordings held out "
        f"(seed {run.seed})"
    )
    return cfg, Splits(train, val, description, held_out)


def describe_windows(cfg: Config) -> str:
    """ "2 s = 100 samples at 50 Hz, stride 0.5 s = 25" or "100 samples, stride 25"."""
    if cfg.sample_rate is None:
        return f"{cfg.window} samples, stride {cfg.stride}"
    rate = cfg.sample_rate
    return (
        f"{cfg.window / rate:g} s = {cfg.window} samples at {rate:g} Hz, "
        f"stride {cfg.stride / rate:g} s = {cfg.stride}"
    )


def train(cfg: Config, run: TrainArgs) -> dict:
    """Train, evaluate the best model on the validation data, write the run directory."""
    started = time.monotonic()
    cfg, splits = load_splits(cfg, run)
    train_data, val_data = splits.train, splits.val
    classes = len(train_data.class_names)

    strategy = runtime.setup(run)
    x_train, y_train, _ = sensor_data.make_windows(train_data, cfg.window, cfg.stride)
    x_val, y_val, _ = sensor_data.make_windows(val_data, cfg.window, cfg.stride)
    mean, variance = sensor_data.normalization_stats(train_data)
    click.echo(
        f"Data: {splits.train_description}\n  windows: {describe_windows(cfg)}, "
        f"{train_data.channels} channels\n  train: {len(train_data.recordings)} recordings -> "
        f"{len(x_train)} windows{_padded(train_data, cfg.window)}\n  validation: "
        f"{len(val_data.recordings)} recordings -> {len(x_val)} windows"
        f"{_padded(val_data, cfg.window)} ({splits.val_description})"
    )

    with strategy.scope():
        model = model_lib.build_model(
            cfg, channels=train_data.channels, classes=classes, mean=mean, variance=variance
        )
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
        window=cfg.window,
        stride=cfg.stride,
        sample_rate=cfg.sample_rate,
    )
    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    run_dir.write_json(predict_lib.LABELS_FILE, info)
    heldout = sensor_data.write_heldout(run_dir, val_data)

    best = runtime.fit(
        model,
        common_data.array_dataset(x_train, y_train, cfg.batch_size, shuffle=True, seed=run.seed),
        common_data.array_dataset(x_val, y_val, cfg.batch_size, shuffle=False, seed=run.seed),
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=cfg.time_budget,
        monitor="val_accuracy",  # the best model is the one with the best window accuracy
        patience=cfg.patience,
        class_weight=common_data.balanced_class_weight(y_train),
    )

    result = predict_lib.evaluate_sensor(best, val_data, cfg.window, cfg.stride)
    reports = {"window": result["window"], "recording": result["recording"]}
    summary = predict_lib.headline(result)
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
    _demo(best, info, val_data, result, run_dir)
    click.echo(
        f"\nRun directory: {run_dir.path} (model.keras, labels.json, metrics.json, "
        f"{heldout.name}/, confusion_matrix.png, training.png) in "
        f"{summary['wall_seconds']:.0f} s"
    )
    return summary


def _padded(data: sensor_data.SensorData, window: int) -> str:
    short = sensor_data.short_recordings(data, window)
    return f" ({short} shorter than one window, padded and masked)" if short else ""


def _demo(model, info, val_data, result, run_dir, shown: int = 6) -> None:
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
    text = sensor_data.format_recording(example.values, val_data.channel_names)
    path = run_dir.write_text(
        "example_recording.txt",
        f"# one {names[example.label]} recording from {example.source}\n" + text,
    )
    timeline = predict_lib.predict_recording(model, info, example.values, str(path))
    click.echo(f"\nTimeline of {path} (true class {names[example.label]}):")
    rows, more = predict_lib.timeline_rows(timeline)
    print_table(rows)
    if more:
        click.echo(f"... and {more} more segments")
    click.echo(f"Try: python -m recipes.activity predict --model-dir {run_dir.path} --input {path}")
