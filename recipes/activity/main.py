"""Command line of the activity recipe: train, evaluate, predict.

python -m recipes.activity train [--modality sensor|video] [--window N] [--stride N] ...
python -m recipes.activity evaluate --model-dir DIR [--data SRC] [--json]
python -m recipes.activity predict --model-dir DIR --input FILE [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from common.cli import apply_overrides, json_option, model_dir_option, print_table, train_options
from recipes.activity import config

DEFAULT_OUTPUT_DIR = "runs/activity"
_DEFAULT = config.PRESETS["default"]
VIDEO_OUTPUT_DIR = "runs/activity-video"


@click.group(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
def cli():
    """Activity recognition from inertial-sensor recordings (sliding windows,
    recurrent classifier, majority vote per recording) and from video clips."""


@cli.command()
@train_options(presets=config.PRESETS, default_output_dir=DEFAULT_OUTPUT_DIR)
@click.option(
    "--modality",
    type=click.Choice(config.MODALITIES),
    default="sensor",
    show_default=True,
    help=f"sensor recordings, or video clips (default output dir {VIDEO_OUTPUT_DIR}).",
)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=None,
    help=f"Samples per window [default: the preset's; {_DEFAULT.window} in default].",
)
@click.option(
    "--stride",
    type=click.IntRange(min=1),
    default=None,
    help=f"Samples between window starts [default: the preset's; {_DEFAULT.stride} in default].",
)
@click.option(
    "--video-model",
    type=click.Choice(config.VIDEO_MODELS),
    default=None,
    help="cnn-rnn: per-frame CNN then a recurrent layer; convlstm: ConvLSTM2D "
    f"[default: the preset's; {_DEFAULT.video_model} in default].",
)
def train(run, modality, window, stride, video_model):
    """Train on sensor windows (or video clips), evaluate the best model, show predictions."""
    import dataclasses

    from recipes.activity import train as train_lib

    ctx = click.get_current_context()
    if (
        modality == "video"
        and ctx.get_parameter_source("output_dir") == click.core.ParameterSource.DEFAULT
    ):
        run = dataclasses.replace(run, output_dir=Path(VIDEO_OUTPUT_DIR))
    cfg = apply_overrides(
        config.PRESETS[run.preset],
        modality=modality,
        window=window,
        stride=stride,
        video_model=video_model,
        cell=run.cell,
        epochs=run.epochs,
        batch_size=run.batch_size,
    )
    train_lib.train(cfg, run)


@cli.command()
@model_dir_option(DEFAULT_OUTPUT_DIR)
@click.option(
    "--data",
    "data_spec",
    default=None,
    metavar="SRC",
    help="Data to evaluate on: omit for the default set's held-out part, a "
    "class-per-directory path, or tfds:NAME[/CONFIG][:SPLIT].",
)
@json_option
def evaluate(model_dir, data_spec, as_json):
    """Accuracy and macro-F1 at window and recording level (clip level for video)."""
    from recipes.activity import predict as predict_lib

    result = predict_lib.evaluate(model_dir, data_spec)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{model_dir} on {result['data']}:")
    levels = [k for k in ("window", "recording", "clip") if k in result]
    print_table(
        [
            {
                "level": k,
                "examples": result[k]["count"],
                "accuracy": result[k]["accuracy"],
                "macro_f1": result[k]["macro_f1"],
            }
            for k in levels
        ]
    )


@cli.command()
@model_dir_option(DEFAULT_OUTPUT_DIR)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="A recording file (one sample per line) or, for a video model, a GIF clip.",
)
@json_option
def predict(model_dir, input_path, as_json):
    """The activity of one recording (with a per-window timeline) or one clip."""
    from common.runtime import load_model
    from recipes.activity import predict as predict_lib

    info = predict_lib.ModelInfo.read(model_dir)
    model = load_model(model_dir)
    result = predict_lib.predict_file(model, info, input_path)
    if as_json:
        click.echo(json.dumps(result))
        return
    line = f"{result['input']}: {result['activity']}"
    if "votes" in result:
        total = sum(result["votes"].values())
        line += (
            f" ({result['votes'][result['activity']]} of {total} windows; "
            f"{result['samples']} samples)"
        )
    click.echo(line)
    print_table(
        sorted(
            ({"activity": k, "probability": v} for k, v in result["probabilities"].items()),
            key=lambda row: -row["probability"],
        )
    )
    if len(result.get("windows", ())) > 1:
        click.echo(
            "\nTimeline (runs of windows with the same prediction; --json lists every window):"
        )
        rows, more = predict_lib.timeline_rows(result, limit=40)
        print_table(rows)
        if more:
            click.echo(f"... and {more} more segments")
