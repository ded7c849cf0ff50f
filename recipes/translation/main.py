"""Command line of the translation recipe: train, translate, evaluate, export, demo.

python -m recipes.translation train                       # dates -> ISO, ~5 min on 2 cores
python -m recipes.translation translate --text "mardi 9 mai 2017" --beam-size 4
python -m recipes.translation evaluate --json
python -m recipes.translation export --output PATH
python -m recipes.translation demo [--model-dir DIR] [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

from pathlib import Path

import click

from common import cli as common_cli
from common.errors import UserError
from recipes.translation import config

OUTPUT_DIR = "runs/translation"
NOTHING_TO_TRANSLATE = "nothing to translate: give --text TEXT (repeatable) or --file FILE"


def _level(ctx, param, value):
    """`char`, `word`, `subword`, or `SOURCE:TARGET` such as `word:char` -> (source, target)."""
    if value is None:
        return None
    parts = value.split(":")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or any(p not in config.LEVELS for p in parts):
        raise click.BadParameter(
            f"expected char, word, subword or SOURCE:TARGET (e.g. word:char). Received: {value!r}"
        )
    return tuple(parts)


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """Encoder-decoder translation with attention (bidirectional recurrent encoder,
    attentional recurrent decoder, greedy and beam search, sacrebleu BLEU).

    The default data set turns dates written in 24 locales ("mardi 9 mai 2017",
    "09.05.17", "May 9, 2017") into ISO dates; --data takes a TSV of source<TAB>target
    pairs or a TFDS translation set.
    """


@cli.command()
@common_cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
@click.option(
    "--level",
    callback=_level,
    default=None,
    metavar="LEVEL",
    help="Tokenization: char, word, subword (SentencePiece, learned from the training side), "
    "or SOURCE:TARGET such as word:char [default: the preset's].",
)
@click.option(
    "--attention",
    type=click.Choice(config.ATTENTIONS),
    default=None,
    help="Attention of the decoder: bahdanau or luong (input feeding) step through the "
    "target; luong-parallel runs the decoder RNN over the whole target in one fast call; "
    "none is the plain encoder-decoder [default: the preset's].",
)
@common_cli.max_vocab_option
@click.option(
    "--decoder-layers",
    type=click.IntRange(min=1),
    default=None,
    help="Stacked decoder RNNs (luong-parallel only) [default: the preset's].",
)
@common_cli.dropout_option
@click.option(
    "--source-lang",
    default=None,
    help="TFDS feature to translate from [default: the data set's supervised keys].",
)
@click.option("--target-lang", default=None, help="TFDS feature to translate into.")
def train(run, level, attention, max_vocab, decoder_layers, dropout, source_lang, target_lang):
    """Train on --data, evaluate on the held-out pairs, show translations."""
    from recipes.translation import train as train_lib

    levels = dict(zip(("source_level", "target_level"), level or (None, None), strict=True))
    try:
        cfg = common_cli.apply_overrides(
            config.PRESETS[run.preset],
            run,
            attention=attention,
            max_source_vocab=max_vocab,
            max_target_vocab=max_vocab,
            decoder_layers=decoder_layers,
            dropout=dropout,
            source_lang=source_lang,
            target_lang=target_lang,
            **levels,
        )
    except ValueError as e:  # a combination the config refuses (decoder_layers)
        raise UserError(str(e)) from None
    train_lib.train(cfg, run)


def _read_inputs(texts, file) -> tuple[list[str], list[str]]:
    """Inputs and their names: --text values, then the lines of --file."""
    inputs = list(texts)
    names = [f"--text {i + 1}" for i in range(len(texts))]
    if file is not None:
        if str(file) == "-":
            content = click.get_text_stream("stdin").read()
        else:
            from common.data import read_text

            content = read_text(file)
        lines = content.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        inputs += [line.rstrip("\r") for line in lines]
        names += [f"{file}:{n}" for n in range(1, len(lines) + 1)]
    if not inputs:
        raise UserError(NOTHING_TO_TRANSLATE)
    return inputs, names


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--text", "texts", multiple=True, metavar="TEXT", help="A sentence to translate (repeatable)."
)
@click.option(
    "--file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Translate every line of this UTF-8 file ('-' reads standard input); "
    "outputs stay aligned with input lines.",
)
@click.option(
    "--beam-size",
    type=click.IntRange(min=1),
    default=1,
    help="Beams per sentence; 1 is greedy decoding.",
)
@click.option(
    "--length-penalty",
    type=click.FloatRange(min=0.0),
    default=0.6,
    help="Length normalisation alpha for beam search: score / ((5+len)/6)^alpha.",
)
@click.option(
    "--plot-attention",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write the attention heatmaps of the inputs (up to 6) to this PNG.",
)
@click.option(
    "--scores",
    is_flag=True,
    help="Print the model's log-probability after each translation, tab-separated.",
)
def translate(model_dir, texts, file, beam_size, length_penalty, plot_attention, scores):
    """Translate --text/--file lines, one output line per input line."""
    inputs, names = _read_inputs(texts, file)
    from recipes.translation import train as train_lib
    from recipes.translation import translate as translate_lib

    loaded = train_lib.load_run(model_dir)
    if plot_attention is not None and loaded.cfg.attention == "none":
        raise UserError(
            f"--plot-attention: the model in {model_dir} was trained with "
            "--attention none and has no attention weights"
        )
    translator = loaded.translator
    hyps, notes = translator.translate(
        inputs, beam_size=beam_size, length_penalty=length_penalty, names=names
    )
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for name, hyp in zip(names, hyps, strict=True):
        if hyp is None:
            click.echo(f"note: {name}: empty input, empty output", err=True)
        text = "" if hyp is None else translator.target_text(hyp)
        click.echo(f"{text}\t{hyp.score:.4f}" if scores and hyp is not None else text)
    if plot_attention is not None:
        prepared = translator.prepare(inputs, names)
        panels = [
            translate_lib.attention_panel(translator, ids, hyp)
            for ids, hyp in zip(prepared.ids, hyps, strict=True)
            if hyp is not None
        ]
        if not panels:
            raise UserError("--plot-attention: every input was empty")
        translate_lib.plot_attention(panels, plot_attention)
        click.echo(f"note: attention heatmap written to {plot_attention}", err=True)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option(
    "Pairs to score: a TSV file or tfds:NAME[/CONFIG][:SPLIT]", config.HELDOUT_FILE
)
@click.option(
    "--beam-size",
    type=click.IntRange(min=1),
    default=None,
    help="Beams per sentence [default: the run's preset].",
)
@click.option(
    "--length-penalty",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Length normalisation alpha [default: the run's preset].",
)
@common_cli.json_option
def evaluate(model_dir, data_spec, beam_size, length_penalty, as_json):
    """BLEU and chrF (sacrebleu, corpus level) and exact match on held-out pairs."""
    from common import data as common_data
    from common.runtime import RunDir
    from recipes.translation import data as data_lib
    from recipes.translation import train as train_lib
    from recipes.translation import translate as translate_lib

    data = RunDir(model_dir).evaluation_data(data_spec, data_lib.HELDOUT_FILE)
    source = common_data.resolve(data, what="--data")
    loaded = train_lib.load_run(model_dir)
    languages = (None, None)
    if source.kind == "tfds":  # the run's languages, else the set's supervised keys
        languages = data_lib.tfds_languages(
            source, loaded.data.source_lang, loaded.data.target_lang
        )
    pairs = data_lib.load_pairs(source, loaded.cfg, seed=0, split="test", languages=languages)
    what = str(source)
    pairs = train_lib.references(pairs, loaded.translator.target_tokenizer)
    metrics, _ = translate_lib.evaluate_pairs(
        loaded.translator,
        pairs,
        beam_size=beam_size or loaded.cfg.beam_size,
        length_penalty=loaded.cfg.length_penalty if length_penalty is None else length_penalty,
    )
    metrics["data"] = what
    if as_json:
        click.echo(train_lib.dumps(metrics))
    else:
        common_cli.print_table(
            [{k: metrics[k] for k in ("bleu", "chrf", "exact_match", "examples", "beam_size")}]
        )
        click.echo(f"{metrics['bleu_signature']} on {what}")


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.translation.export",
    """Write the trained translator for use without this project.

    saved_model: a SavedModel with the endpoints serve(text: string[batch]) ->
    {translation: string[batch], score: float32[batch]} (greedy, as `translate`) and
    serve_beam(text) (beam 4, length penalty 0.6). litert is not offered: the decoding
    loop is the point.
    """,
)


common_cli.demo_command(cli, OUTPUT_DIR, "translation")


def main() -> None:
    common_cli.main(cli, prog_name="python -m recipes.translation")
