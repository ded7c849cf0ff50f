"""Command line of the activity recipe: train, evaluate, predict, export, demo.

python -m recipes.activity train [--data DIR] [--sample-rate HZ] [--model rnn|conv-rnn] ...
python -m recipes.activity evaluate --model-dir DIR [--data SRC] [--json]
python -m recipes.activity predict --model-dir DIR --input FILE [--json]
python -m recipes.activity export --model-dir DIR --output PATH [--format saved_model|litert]
python -m recipes.activity demo --model-dir DIR [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from common import cli as common_cli
from recipes.activity import config
from recipes.activity.config import HELDOUT_FILE

OUTPUT_DIR = "runs/activity"
_DEFAULT = config.PRESETS["default"]


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """Activity recognition from inertial-sensor recordings (sliding windows,
    recurrent classifier, majority vote per recording)."""


@cli.command()
@common_cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
@click.option(
    "--sample-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="HZ",
    help="Samples per second of the --data recordings, so that windows are cut in seconds "
    "[default: 50 for the default data set; a directory's rate is unknown, and windows "
    "are then --window/--stride samples].",
)
@click.option(
    "--window-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Seconds per window, with a known sample rate [default: the preset's; "
    f"{_DEFAULT.window_seconds:g} in default].",
)
@click.option(
    "--stride-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Seconds between window starts, with a known sample rate [default: the preset's; "
    f"{_DEFAULT.stride_seconds:g} in default].",
)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=None,
    help=f"Samples per window; overrides --window-seconds [default: the preset's seconds when "
    f"the rate is known, else {_DEFAULT.window} in default].",
)
@click.option(
    "--stride",
    type=click.IntRange(min=1),
    default=None,
    help=f"Samples between window starts, with --window [default: the preset's; "
    f"{_DEFAULT.stride} in default].",
)
@click.option(
    "--model",
    "model_kind",
    type=click.Choice(config.MODELS),
    default=None,
    help=f"rnn: recurrent layers on the samples; conv-rnn: 1-D convolutions over time, then "
    f"the recurrent layers (DeepConvLSTM-style) [default: the preset's; {_DEFAULT.model} in "
    f"default].",
)
def train(run, sample_rate, window_seconds, stride_seconds, window, stride, model_kind):
    """Train on sensor windows, evaluate the best model, show predictions.

    Windows are cut in seconds when the sample rate is known (--sample-rate, or the default
    data set's 50 Hz), in samples otherwise; a recording shorter than one window becomes one
    window, padded and masked.
    """
    from recipes.activity import train as train_lib

    if stride is not None and window is None:
        raise click.UsageError("--stride (samples) goes with --window; else use --stride-seconds")
    if window is not None and (window_seconds or stride_seconds):
        raise click.UsageError("give the window in samples (--window) or in seconds, not both")
    cfg = common_cli.apply_overrides(
        config.PRESETS[run.preset],
        run,
        sample_rate=sample_rate,
        window_seconds=window_seconds,
        stride_seconds=stride_seconds,
        window=window,
        stride=stride,
        model=model_kind,
    )
    if window is not None:  # samples given: the seconds no longer apply
        cfg = dataclasses.replace(cfg, window_seconds=None)
    train_lib.train(cfg, run)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option("A class-per-directory tree of recordings", HELDOUT_FILE)
@common_cli.json_option
def evaluate(model_dir, data_spec, as_json):
    """Accuracy and macro-F1 at window and recording level, and the recordings' confusion
    matrix."""
    from recipes.activity import predict as predict_lib

    result = predict_lib.evaluate(model_dir, data_spec)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{model_dir} on {result['data']}:")
    levels = ("window", "recording")
    common_cli.print_table(
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
    from common.metrics import confusion_rows

    click.echo("\nRecordings, confusion matrix (rows: true, columns: predicted):")
    common_cli.print_table(confusion_rows(result, result["class_names"]))


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="A recording file (one sample per line).",
)
@common_cli.json_option
def predict(model_dir, input_path, as_json):
    """The activity of one recording, with a per-window timeline."""
    from common.runtime import load_model
    from recipes.activity import predict as predict_lib

    info = predict_lib.ModelInfo.read(model_dir)
    model = load_model(model_dir)
    result = predict_lib.predict_file(model, info, input_path)
    if as_json:
        click.echo(json.dumps(result))
        return
    total = sum(result["votes"].values())
    click.echo(
        f"{result['input']}: {result['activity']} ({result['votes'][result['activity']]} "
        f"of {total} windows; {result['samples']} samples)"
    )
    common_cli.print_table(
        sorted(
            ({"activity": k, "probability": v} for k, v in result["probabilities"].items()),
            key=lambda row: -row["probability"],
        )
    )
    if len(result["windows"]) > 1:
        click.echo(
            "\nTimeline (runs of windows with the same prediction; --json lists every window):"
        )
        rows, more = predict_lib.timeline_rows(result, limit=40)
        common_cli.print_table(rows)
        if more:
            click.echo(f"... and {more} more segments")


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.activity.export",
    """Write the trained recogniser for use without this project.

    saved_model: a SavedModel with the endpoint serve(recording: float32[batch, time,
    channels]) -> {label: string[batch], probabilities: float32[batch, classes]}: windows,
    normalisation and the vote inside. litert: the window model, window float32[1, window,
    channels] -> probabilities float32[1, classes], as a .tflite file.
    """,
)

common_cli.demo_command(cli, OUTPUT_DIR, "activity")


def main() -> None:
    common_cli.main(cli, prog_name="python -m recipes.activity")
