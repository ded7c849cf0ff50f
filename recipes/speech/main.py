"""Command line of the speech recipe: train, evaluate, transcribe, export, demo.

python -m recipes.speech train [--data SRC] [--lm-dir LM_RUN] ...
python -m recipes.speech evaluate --model-dir DIR [--data SRC] [--decoder D] [--json]
python -m recipes.speech transcribe --model-dir DIR FILE...
python -m recipes.speech transcripts [--data SRC] --output FILE
python -m recipes.speech export --model-dir DIR --output PATH [--format saved_model|litert]
python -m recipes.speech demo --model-dir DIR [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from common import cli as common_cli
from common.errors import UserError
from recipes.speech import config
from recipes.speech.config import DECODERS, HELDOUT_FILE

OUTPUT_DIR = "runs/speech"
_DEFAULT = config.PRESETS["default"]


def _lm_dir(ctx, param, value):
    if value is not None and not (Path(value) / "model.keras").is_file():
        raise UserError(f"--lm-dir: {value} is not a finished char_lm run (no model.keras)")
    return value


lm_dir_option = click.option(
    "--lm-dir",
    type=click.Path(path_type=Path),
    default=None,
    callback=_lm_dir,
    help="A character-level char_lm run (e.g. trained on RUN/transcripts.txt) to fuse into "
    "the beam search; its weight is chosen on the validation utterances.",
)


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """Speech recognition: recorded audio to text with a recurrent CTC model (log-mel
    features, convolutions, bidirectional GRU/LSTM, character CTC)."""


@cli.command()
@common_cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
@common_cli.layers_option
@common_cli.units_option
@common_cli.dropout_option
@lm_dir_option
@click.option(
    "--train-lm",
    is_flag=True,
    help="First train a character language model on the training transcripts (char_lm, "
    "half a minute, into RUN/lm) and fuse it into the beam search, as with --lm-dir.",
)
def train(run, layers, units, dropout, lm_dir, train_lm):
    """Train on recordings with transcripts; report held-out CER and WER per decoder.

    --data: omit for the Dutch Fish Fillets NG dubbing (Debian fillets-ng-data-nl; `make
    recipe-speech` installs it), or a LibriSpeech, LJSpeech or Common Voice directory, a
    manifest (.csv/.tsv with path,transcript[,speaker], paths relative to it), or
    tfds:NAME. Without --validation-data, whole speakers (chapters, levels) are held out
    for validation and for the held-out report.
    """
    from recipes.speech import train as train_lib

    if lm_dir is not None and train_lm:
        raise UserError("--lm-dir and --train-lm: give one language model, not both")
    cfg = common_cli.apply_overrides(
        config.PRESETS[run.preset], run, layers=layers, units=units, dropout=dropout
    )
    train_lib.train(cfg, run, lm_dir=lm_dir, train_lm=train_lm)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option(
    "Recordings with transcripts (a directory, manifest or tfds:NAME, as for train)", HELDOUT_FILE
)
@click.option(
    "--decoder",
    type=click.Choice(DECODERS),
    default=None,
    help="greedy, beam (CTC beam search) or lm (beam search with the language model) "
    "[default: the one with the lowest held-out CER in training].",
)
@lm_dir_option
@click.option("--compare", is_flag=True, help="Score every decoder side by side.")
@common_cli.json_option
def evaluate(model_dir, data_spec, decoder, lm_dir, compare, as_json):
    """Character and word error rates (jiwer), with the worst utterances.

    With --lm-dir, the language model's weight is the run's when it was trained with that
    model, else it is chosen on the run's validation utterances (MODEL_DIR/validation.tsv).
    """
    from recipes.speech import transcribe as transcribe_lib

    if lm_dir is not None and decoder is None:
        decoder = "lm"
    result = transcribe_lib.evaluate(model_dir, data_spec, decoder, lm_dir, compare)
    if as_json:
        click.echo(json.dumps(result))
        return
    if "lm_weight" in result:
        click.echo(
            f"Language model {result['lm_dir']}: weight {result['lm_weight']:g}, bonus {result['lm_bonus']:g}"
        )
    if compare:
        click.echo(
            f"{model_dir} on {result['data']} ({result['utterances']} utterances), error rates as fractions:"
        )
        common_cli.print_table(result["decoders"])
    click.echo(
        f"{model_dir} on {result['data']} ({result['utterances']} utterances, decoder {result['decoder']}):"
    )
    common_cli.print_table([{"metric": k, "value": result[k]} for k in ("cer", "wer")])
    click.echo("\nWorst utterances by CER:")
    for row in result["worst"]:
        click.echo(
            f"  {row['path']} (CER {row['cer']:.3f})\n    reference:  {row['reference']}\n    recognised: {row['hypothesis']}"
        )


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--decoder", type=click.Choice(DECODERS), default=None, help="[default: the run's]")
@common_cli.json_option
def transcribe(model_dir, files, decoder, as_json):
    """Transcribe audio files (WAV, FLAC, OGG, MP3, any sample rate). A recording longer
    than the training utterances is cut into overlapping windows and the text joined."""
    from recipes.speech import data as speech_data
    from recipes.speech import transcribe as transcribe_lib

    recognizer = transcribe_lib.Recognizer(model_dir, decoder)
    waves = [speech_data.load_waveform(f, recognizer.info.sample_rate) for f in files]
    results = []
    for path, wave in zip(files, waves, strict=True):
        text = recognizer.transcribe(wave)
        seconds = len(wave) / recognizer.info.sample_rate
        results.append({"file": str(path), "seconds": round(seconds, 2), "transcript": text})
        if not as_json:
            click.echo(f"{path}\t{text}")
    if as_json:
        click.echo(json.dumps({"decoder": recognizer.decoder, "results": results}))


@cli.command()
@click.option("--data", "data_spec", default=None, metavar="SRC", help="As for train.")
@click.option("--validation-data", default=None, metavar="SRC", help="As for train.")
@click.option("--seed", type=int, default=42, show_default=True, help="As for train.")
@click.option(
    "--output", type=click.Path(path_type=Path), required=True, help="The text file to write."
)
def transcripts(data_spec, validation_data, seed, output):
    """Write the normalised transcripts of the training split that `train` makes with the
    same --data, --validation-data and --seed, one per line: the text `train --train-lm`
    trains its language model on, for a char_lm of your own (`train --lm-dir`). Nothing
    held out is in it."""
    from common.cli import TrainArgs
    from common.runtime import atomic_write
    from recipes.speech import train as train_lib

    run = TrainArgs(data=data_spec, validation_data=validation_data, seed=seed)
    splits = train_lib.load_splits(config.PRESETS["default"], run)
    text = "".join(f"{u.text}\n" for u in splits.train)
    atomic_write(output, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))
    click.echo(f"Wrote {len(splits.train)} training transcripts to {output} ({splits.description})")


@cli.command("install-data")
def install_data():
    """Install the default recordings (Debian fillets-ng-data-nl and fillets-ng-data) when
    they are missing: with apt-get as root, else print the command to run."""
    from recipes.speech import data as speech_data

    speech_data.install_default_data()
    click.echo(f"The default speech data is in {speech_data.FILLETS_ROOT}.")


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.speech.export",
    """Write the trained recogniser for use without this project.

    saved_model: a SavedModel with the endpoint serve(waveform: float32[batch, samples],
    sample_rate: int32) -> {transcript: string[batch]}: resampling, log-mel features, the
    network and CTC beam search inside the graph (the language model stays out). litert:
    the acoustic model, waveform float32[1, samples] at the model's rate -> log_probs.
    """,
)

common_cli.demo_command(cli, OUTPUT_DIR, "speech")


def main() -> None:
    common_cli.main(cli, prog_name="python -m recipes.speech")
