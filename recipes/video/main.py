"""Command line of the video recipe: train, evaluate, predict, export, demo.

python -m recipes.video train [--video-model cnn-rnn|convlstm] [--data SRC] ...
python -m recipes.video evaluate --model-dir DIR [--data SRC] [--json]
python -m recipes.video predict --model-dir DIR --input CLIP.gif|CLIP.npy [--json]
python -m recipes.video export --model-dir DIR --output PATH [--format saved_model|litert]
python -m recipes.video demo --model-dir DIR [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from common import cli as common_cli
from recipes.video import config
from recipes.video.config import HELDOUT_FILE

OUTPUT_DIR = "runs/video"
_DEFAULT = config.PRESETS["default"]


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """Action recognition from video clips: a per-frame CNN under a recurrent stack,
    or a convolutional LSTM."""


@cli.command()
@common_cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
@click.option(
    "--video-model",
    type=click.Choice(config.VIDEO_MODELS),
    default=None,
    help="cnn-rnn: per-frame CNN then a recurrent stack; convlstm: ConvLSTM2D "
    f"[default: the preset's; {_DEFAULT.video_model} in default].",
)
def train(run, video_model):
    """Train on video clips, evaluate the best model, show predictions."""
    from recipes.video import train as train_lib

    cfg = common_cli.apply_overrides(config.PRESETS[run.preset], run, video_model=video_model)
    train_lib.train(cfg, run)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option(
    "A class-per-directory tree of .gif or .npy clips, or tfds:NAME[/CONFIG][:SPLIT] (its test split)",
    HELDOUT_FILE,
)
@common_cli.json_option
def evaluate(model_dir, data_spec, as_json):
    """Accuracy and macro-F1 at clip level."""
    from recipes.video import predict as predict_lib

    result = predict_lib.evaluate(model_dir, data_spec)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{model_dir} on {result['data']}:")
    common_cli.print_table(
        [
            {
                "level": "clip",
                "examples": result["clip"]["count"],
                "accuracy": result["clip"]["accuracy"],
                "macro_f1": result["clip"]["macro_f1"],
            }
        ]
    )


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="A .gif or .npy clip (any size and length; brought to the model's frames and size).",
)
@common_cli.json_option
def predict(model_dir, input_path, as_json):
    """The activity of one clip, with the class probabilities."""
    from common.runtime import load_model
    from recipes.video import predict as predict_lib

    info = predict_lib.ModelInfo.read(model_dir)
    model = load_model(model_dir)
    result = predict_lib.predict_file(model, info, input_path)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['input']}: {result['activity']}")
    common_cli.print_table(
        sorted(
            ({"activity": k, "probability": v} for k, v in result["probabilities"].items()),
            key=lambda row: -row["probability"],
        )
    )


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.video.export",
    """Write the trained classifier for use without this project.

    saved_model: a SavedModel with the endpoint serve(clip: uint8[batch, frames, size, size,
    channels]) -> {label: string[batch], probabilities: float32[batch, classes]}.
    litert: the same model at batch 1 (float32 pixels 0..255) as a .tflite file.
    """,
)

common_cli.demo_command(cli, OUTPUT_DIR, "video")


def main() -> None:
    common_cli.main(cli, prog_name="python -m recipes.video")
