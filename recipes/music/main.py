"""Command line of music generation: train, compose, evaluate, baselines, export, demo.

python -m recipes.music train [--preset tiny|default|large] [--data FILE_OR_DIR] ...
python -m recipes.music compose --model-dir runs/music --meter 6/8 --key D --num-tunes 4
python -m recipes.music evaluate --model-dir runs/music [--data FILE] [--json]
python -m recipes.music export --model-dir runs/music --output PATH
python -m recipes.music demo --model-dir runs/music [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from common import cli as common_cli
from recipes.music import config
from recipes.music.config import HELDOUT_FILE

OUTPUT_DIR = "runs/music"


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """Folk-tune generation: a recurrent language model over ABC notation.

    Trains on the Essen and O'Neill's collections shipped inside the music21
    package (or your own .abc files), then composes whole tunes one token at a
    time, from a meter, a key and a few notes, or from nothing.
    """


@cli.command()
@common_cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
@click.option(
    "--transpose",
    type=click.IntRange(0, 11),
    default=None,
    help="Also train on each tune in this many other keys (seeded shifts of -5..+6 "
    "semitones); 0 = off [default: the preset's].",
)
@common_cli.units_option
@common_cli.layers_option
@common_cli.dropout_option
def train(run, transpose, units, layers, dropout):
    """Train on --data (default: the music21 folk-tune corpus), keep the best model by
    validation loss, score the held-out tunes and compose three."""
    from recipes.music import train as train_lib

    cfg = common_cli.apply_overrides(
        config.PRESETS[run.preset],
        run,
        transpose=transpose,
        units=units,
        layers=layers,
        dropout=dropout,
    )
    train_lib.train(cfg, run)


def load_run(model_dir):
    """(config, tokenizer, model) of a finished run directory."""
    from common import lm

    return lm.load_run(model_dir, config.Config)


_temperature = click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Softmax temperature; 0 = greedy [default: the preset's, 1.0].",
)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option("--meter", default=None, help='Meter of the tunes, e.g. "6/8", "C" [default: drawn].')
@click.option("--key", default=None, help='Key, e.g. "D", "Em", "Ador" [default: drawn].')
@click.option(
    "--prime",
    default="",
    help='First notes, in ABC with eighth-note units, e.g. "A2 dc|" (needs --key).',
)
@click.option(
    "--num-tunes", type=click.IntRange(min=1), default=1, show_default=True, help="Tunes to write."
)
@_temperature
@common_cli.sampling_seed_option
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the tunes; the tune_NNN files of an earlier compose there are "
    "removed first [default: MODEL_DIR/tunes].",
)
def compose(model_dir, meter, key, prime, num_tunes, temperature, seed, output_dir):
    """Compose whole tunes: ABC text (printed and written), MIDI and a piano-roll PNG each."""
    from recipes.music import abc
    from recipes.music import compose as compose_lib
    from recipes.music import model as model_lib

    cfg, tok, model = load_run(model_dir)
    compose_lib.header_tokens(tok, meter, key)  # bad --meter/--key fail before any work
    tunes = compose_lib.compose(
        model_lib.sampler(cfg, tok, model),
        tok,
        meter=meter,
        key=key,
        prime=prime,
        num_tunes=num_tunes,
        max_tokens=cfg.max_tokens,
        temperature=cfg.temperature if temperature is None else temperature,
        seed=seed,
    )
    output_dir = output_dir or Path(model_dir) / "tunes"
    compose_lib.write(tunes, output_dir)
    for i, (tokens, finished) in enumerate(tunes, start=1):
        click.echo(abc.render(tokens, number=i))
        if not finished:
            click.echo(f"% tune {i} is unfinished: {cfg.max_tokens} tokens came first\n")
    click.echo(f"Wrote {num_tunes} tune(s) to {output_dir} (.abc, .mid, .png).", err=True)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option("An .abc file or a folder of them", HELDOUT_FILE)
@click.option(
    "--num-tunes",
    type=click.IntRange(min=1),
    default=None,
    help="Tunes to generate for the musical checks [default: the preset's, 100].",
)
@_temperature
@common_cli.sampling_seed_option
@common_cli.json_option
def evaluate(model_dir, data_spec, num_tunes, temperature, seed, as_json):
    """Loss on held-out tunes (nats and bits per token, bits per tune) and musical checks of
    generated tunes: share music21 parses, complete bars of the meter's length, ending on
    the tonic, finished, and the Jensen-Shannon distances of their scale-degree and interval
    histograms from the held-out tunes'."""
    from common import data as common_data
    from common import runtime
    from recipes.music import checks, data, train

    source = common_data.resolve(runtime.RunDir(model_dir).evaluation_data(data_spec, HELDOUT_FILE))
    cfg, tok, model = load_run(model_dir)
    held_out = data.load(source, max_tokens=cfg.max_tokens).tunes
    result = train.model_report(
        cfg,
        tok,
        model,
        held_out,
        num_tunes=num_tunes or cfg.eval_tunes,
        temperature=cfg.temperature if temperature is None else temperature,
        seed=seed,
    )
    reference = checks.report(held_out, held_out)
    result.update({f"heldout_{k}": reference[k] for k in ("parses", "bars_ok", "ends_on_tonic")})
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"Evaluated on {source}:")
    common_cli.print_table([{"metric": k, "value": v} for k, v in result.items()])


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--char-lm-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="A char_lm run trained on MODEL_DIR/train.abc, to compare as well.",
)
@click.option(
    "--num-tunes",
    type=click.IntRange(min=1),
    default=None,
    help="Tunes each model generates for the checks [default: the preset's, 100].",
)
@common_cli.sampling_seed_option
@common_cli.json_option
def baselines(model_dir, char_lm_dir, num_tunes, seed, as_json):
    """Compare the model with a token n-gram model (n chosen on a dev tenth of the training
    tunes) and, with --char-lm-dir, the project's char_lm, on the run's held-out tunes: bits
    per tune and the musical checks of generated tunes (temperature 1 for all)."""
    import numpy as np

    from common import data as common_data
    from recipes.music import baselines as baselines_lib
    from recipes.music import checks, data, train

    cfg, tok, model = load_run(model_dir)
    held_out = data.load(
        common_data.resolve(Path(model_dir) / HELDOUT_FILE), max_tokens=cfg.max_tokens
    ).tunes
    train_tunes = data.load(
        common_data.resolve(Path(model_dir) / train.TRAIN_FILE), max_tokens=cfg.max_tokens
    ).tunes
    num_tunes = num_tunes or cfg.eval_tunes
    ours = train.model_report(
        cfg, tok, model, held_out, num_tunes=num_tunes, temperature=1.0, seed=seed
    )
    rows = {
        f"{cfg.cell} {cfg.layers}x{cfg.units} (this run)": {
            "bits_per_tune": ours["bits_per_tune"],
            **{k[len("generated_") :]: v for k, v in ours.items() if k.startswith("generated_")},
        }
    }
    ngram = baselines_lib.ngram_baseline(
        [data.encode(tok, t) for t in train_tunes],
        [data.encode(tok, t) for t in held_out],
        tok,
        held_out,
        num_tunes=num_tunes,
        max_tokens=cfg.max_tokens,
        seed=seed,
    )
    bits = float(-ngram["totals"].mean() / np.log(2))
    rows[f"{ngram['order']}-gram (Witten-Bell)"] = {"bits_per_tune": bits, **ngram["checks"]}
    if char_lm_dir is not None:
        chars = baselines_lib.char_lm_baseline(
            char_lm_dir, held_out, num_tunes=num_tunes, max_chars=4 * cfg.max_tokens, seed=seed
        )
        bits = float(-chars["totals"].mean() / np.log(2))
        rows[f"char_lm ({char_lm_dir})"] = {"bits_per_tune": bits, **chars["checks"]}
    rows["held-out tunes themselves"] = {"bits_per_tune": None, **checks.report(held_out, held_out)}
    if as_json:
        click.echo(json.dumps({"ngram_dev_loss_by_order": ngram["dev_loss_by_order"], **rows}))
        return
    columns = ("bits_per_tune", "parses", "bars_ok", "ends_on_tonic", "finished")
    columns += ("pitch_class_js", "interval_js")
    table = [
        {"model": name, **{c: ("" if row.get(c) is None else row[c]) for c in columns}}
        for name, row in rows.items()
    ]
    click.echo(f"{len(held_out)} held-out tunes; {num_tunes} generated tunes per model:")
    common_cli.print_table(table)


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.music.export",
    """Write the trained melody model for use without this project.

    saved_model: a SavedModel with the endpoint generate(prime: string, length: int32,
    temperature: float32, seed: int32) -> string: the prime's tokens (space-separated,
    e.g. "M:6/8 K:D L:1/8") continued up to <eos>, as space-separated tokens. litert is
    not offered: the model's use is the generation loop.
    """,
)

common_cli.demo_command(cli, OUTPUT_DIR, "music")


def main():
    common_cli.main(cli, prog_name="python -m recipes.music")
