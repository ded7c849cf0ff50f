"""Command line of the NER recipe: `python -m recipes.ner train | evaluate | tag`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from common.cli import TrainArgs, apply_overrides, json_option, model_dir_option, train_options
from common.errors import UserError
from recipes.ner import config
from recipes.ner.train import DEFAULT_OUTPUT_DIR


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Named-entity tagging: word and character features, a bidirectional RNN, entity-level F1."""


@cli.command()
@train_options(presets=config.PRESETS, default_output_dir=DEFAULT_OUTPUT_DIR)
def train(run: TrainArgs):
    """Train a tagger; --data takes a CoNLL file (IOB1 or IOB2), tfds:conll2003, or nothing for
    the embedded Twitter NER corpus. Ends by evaluating on the held-out split and tagging a
    demo sentence."""
    from recipes.ner import train as train_lib

    cfg = apply_overrides(
        config.PRESETS[run.preset], epochs=run.epochs, batch_size=run.batch_size, cell=run.cell
    )
    train_lib.train(cfg, run)


def _load(model_dir: Path):
    from common import runtime
    from recipes.ner import model as _model  # noqa: F401  (registers the custom layer)
    from recipes.ner.data import Vocab

    vocab = Vocab.load(model_dir)
    return runtime.load_model(model_dir), vocab


@cli.command()
@model_dir_option(DEFAULT_OUTPUT_DIR)
@click.option(
    "--data",
    default=None,
    metavar="SRC",
    help="CoNLL file or tfds:NAME[:SPLIT] (default split: test) to evaluate on; "
    "omitted = the run's own held-out validation sentences.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Sentences per prediction batch.",
)
@json_option
def evaluate(model_dir: Path, data: str | None, batch_size: int, as_json: bool):
    """Entity-level precision, recall and F1 (conlleval semantics), overall and per type."""
    from common import data as common_data
    from common.runtime import RunDir
    from recipes.ner import data as ner_data
    from recipes.ner import tag
    from recipes.ner import train as train_lib

    if data:
        corpus = ner_data.load(common_data.resolve(data), split="test")
    else:
        corpus = train_lib.heldout_corpus(RunDir(model_dir).read_json("data.json"))
    model, vocab = _load(model_dir)
    metrics = tag.Tagger(model, vocab, batch_size).evaluate(corpus)
    if as_json:
        click.echo(json.dumps({**metrics, "data": corpus.origin, "scheme": corpus.scheme}))
        return
    click.echo(f"{corpus.origin}: {corpus.scheme} tags, entity level (conlleval/seqeval)")
    train_lib.print_report(metrics)


@cli.command("tag")
@model_dir_option(DEFAULT_OUTPUT_DIR)
@click.option(
    "--text",
    multiple=True,
    help="A sentence to tag (repeatable). Tokenised as described in `recipes/ner/tag.py`: "
    "URLs, @mentions and #hashtags whole, then words and punctuation apart.",
)
@click.option(
    "--file",
    "file_",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="UTF-8 text file, one sentence per line (blank lines skipped).",
)
@json_option
def tag_command(model_dir: Path, text: tuple[str, ...], file_: Path | None, as_json: bool):
    """Tag raw text: tokens with IOB2 tags and the entity spans."""
    from common.data import read_text
    from recipes.ner import tag

    if bool(text) == bool(file_):
        raise UserError("give --text or --file (one of them)")
    sentences = (
        list(text) if text else [line for line in read_text(file_).splitlines() if line.strip()]
    )
    tokenized = [tag.tokenize(s) for s in sentences]
    model, vocab = _load(model_dir)
    tags = tag.Tagger(model, vocab).tag(tokenized)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "sentences": [
                        {"text": s, **tag.tagged_sentence(tokens, t)}
                        for s, tokens, t in zip(sentences, tokenized, tags, strict=True)
                    ]
                },
                ensure_ascii=False,
            )
        )
        return
    for tokens, sentence_tags in zip(tokenized, tags, strict=True):
        click.echo(tag.format_sentence(tokens, sentence_tags))
