"""Command line of the dna recipe: train, evaluate, predict, motifs, explain, export, demo.

python -m recipes.dna train [--data SRC] [--negatives shuffle] [--multi-label] ...
python -m recipes.dna evaluate --model-dir DIR [--data SRC] [--baselines] [--json]
python -m recipes.dna predict --model-dir DIR --input FILE [--output FILE.csv]
python -m recipes.dna motifs --model-dir DIR [--data SRC] [--output-dir DIR]
python -m recipes.dna explain --model-dir DIR --sequence ACGT... [--output FILE.png]
python -m recipes.dna export --model-dir DIR --output PATH
python -m recipes.dna demo --model-dir DIR [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click

from common import cli as common_cli
from recipes.dna import config
from recipes.dna.config import HELDOUT_FILE

OUTPUT_DIR = "runs/dna"
_DEFAULT = config.PRESETS["default"]


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """DNA sequence classification with DanQ (convolutional motif scanners, then a
    bidirectional recurrent layer), its baselines, and the motifs it learned."""


def _read_options(func):
    """--negatives, --sequence-column, --label-column (train, evaluate)."""
    options = [
        click.option(
            "--negatives",
            type=click.Choice(config.NEGATIVES),
            default="none",
            help="shuffle: --data holds positives only (e.g. ChIP-seq peaks); they become "
            "class 1 and one seeded dinucleotide-preserving shuffle of each becomes class 0, "
            "as DeepBind makes its negatives.",
        ),
        click.option(
            "--sequence-column",
            default=None,
            metavar="NAME",
            help="CSV/TSV: the column of sequences [default: sequence or seq].",
        ),
        click.option(
            "--label-column",
            default=None,
            metavar="NAME",
            help="CSV/TSV: the column of labels [default: label, class, bound, y or target].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command()
@common_cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
@_read_options
@click.option(
    "--multi-label",
    is_flag=True,
    help="Each sequence has any number of marks (`>id a,b`, `-` for none), one sigmoid per "
    "mark, as DeepSEA/DanQ predict chromatin features.",
)
@click.option(
    "--model",
    "model_kind",
    type=click.Choice(config.MODELS),
    default=None,
    help="danq: motif scanners then a bidirectional recurrent layer; cnn: the scanners' "
    "maximum over the sequence (DeepBind-like) [default: danq].",
)
@click.option(
    "--strands",
    type=click.Choice(config.STRANDS),
    default=None,
    help="Reverse complements: off; augment (training reads each sequence from a random "
    "strand); average (augment, and predictions average both strands). For sites that "
    "bind either way round (transcription factors), not for stranded signals (splice "
    "sites) [default: off].",
)
@click.option(
    "--baselines/--no-baselines",
    default=True,
    help="Also train the CNN and k-mer baselines on the same split and report them beside.",
)
def train(
    run, negatives, sequence_column, label_column, multi_label, model_kind, strands, baselines
):
    """Train on labelled sequences (or positives and their shuffles), report on held-out
    ones beside the baselines.

    --data: omitted = the UCI splice-junction set; oct4-mafk = Oct4 vs MafK ChIP-seq
    peaks (with their own test split); FASTA with `>id label` headers; a directory with
    one FASTA file per class; a CSV/TSV file with sequence and label columns.
    """
    from recipes.dna import data as dna_data
    from recipes.dna import train as train_lib

    if multi_label and negatives == "shuffle":
        raise click.UsageError("--negatives shuffle makes one class; it cannot be --multi-label")
    cfg = common_cli.apply_overrides(
        config.PRESETS[run.preset], run, model=model_kind, strands=strands
    )
    options = dna_data.ReadOptions(multi_label, negatives, sequence_column, label_column)
    train_lib.train(cfg, run, options, baselines)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option(
    "Labelled sequences (FASTA, a directory, CSV/TSV; positives only with --negatives shuffle)",
    HELDOUT_FILE,
)
@_read_options
@click.option("--baselines", is_flag=True, help="Score the run's CNN and k-mer baselines too.")
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Seed of --negatives shuffle."
)
@common_cli.json_option
def evaluate(
    model_dir, data_spec, negatives, sequence_column, label_column, baselines, seed, as_json
):
    """Accuracy, macro-F1, ROC-AUC and PR-AUC per class, and the confusion matrix."""
    from recipes.dna import data as dna_data
    from recipes.dna import predict as predict_lib

    options = dna_data.ReadOptions(False, negatives, sequence_column, label_column)
    result = predict_lib.evaluate(model_dir, data_spec, options, baselines=baselines, seed=seed)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{model_dir} on {result['data']} ({result['count']} sequences):")
    if baselines:
        common_cli.print_table([{"model": k, **v} for k, v in result["baselines"].items()])
    else:
        common_cli.print_table(
            [{k: result[k] for k in ("accuracy", "macro_f1", "roc_auc", "pr_auc")}]
        )
    click.echo("\nPer class:")
    common_cli.print_table([{"class": k, **v} for k, v in result["per_class"].items()])
    if "confusion_matrix" in result:
        from common.metrics import confusion_rows

        click.echo("\nConfusion matrix (rows: true, columns: predicted):")
        common_cli.print_table(confusion_rows(result, result["class_names"]))


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Sequences: FASTA, or CSV/TSV with a sequence column (labels are not needed).",
)
@click.option(
    "--sequence-column", default=None, metavar="NAME", help="CSV/TSV: the column of sequences."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the table here (.csv: commas, else tabs) instead of standard output.",
)
def predict(model_dir, input_path, sequence_column, output):
    """A table of every sequence's predicted class and class probabilities."""
    from common import runtime
    from common.errors import UserError
    from recipes.dna import data as dna_data
    from recipes.dna import predict as predict_lib

    if not input_path.exists():
        raise UserError(f"--input: no such file: {input_path}")
    info = predict_lib.ModelInfo.read(model_dir)
    options = dna_data.ReadOptions(sequence_column=sequence_column, labels=False)
    rows, _ = dna_data.read_rows(dna_data.resolve(str(input_path), "--input"), options)
    data = dna_data.DnaData(
        tuple(r[1] for r in rows), tuple(r[0] for r in rows), None, info.class_names
    )
    predict_lib.check_lengths(data, info.length, str(input_path))
    table = predict_lib.predict_rows(runtime.load_model(model_dir), info, data)
    buffer = io.StringIO()
    comma = output is not None and output.suffix.lower() == ".csv"
    writer = csv.DictWriter(
        buffer, fieldnames=list(table[0]), delimiter="," if comma else "\t", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(
        {k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()} for row in table
    )
    if output is None:
        click.echo(buffer.getvalue(), nl=False)
    else:
        runtime.atomic_write(output, lambda tmp: Path(tmp).write_text(buffer.getvalue()))
        click.echo(f"Wrote {output} ({len(table)} sequences).")


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--data",
    "data_spec",
    default=None,
    metavar="SRC",
    help=f"Sequences to scan for the sites that activate each filter [default: MODEL_DIR/"
    f"{HELDOUT_FILE}].",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write motifs.meme, motifs.tsv and motifs.png [default: MODEL_DIR/motifs].",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    help="Logos drawn (the most informative motifs).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="A site is a window whose activation reaches this share of the filter's maximum "
    "(DanQ, DeepBind).",
)
def motifs(model_dir, data_spec, output_dir, top, threshold):
    """The first layer's filters as position weight matrices (MEME format, for Tomtom
    against JASPAR) and sequence logos."""
    from recipes.dna import motifs as motifs_lib

    result = motifs_lib.run_motifs(model_dir, data_spec, output_dir, top, threshold)
    common_cli.print_table(result["table"][:top])
    click.echo(
        f"\nWrote {result['meme']}, {result['tsv']} and {result['png']} ({result['count']} "
        f"motifs with sites, from {result['sequences']} sequences)."
    )


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option("--sequence", required=True, help="The DNA sequence to explain.")
@click.option(
    "--class",
    "class_name",
    default=None,
    help="The class whose probability is explained [default: the predicted one].",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The picture [default: MODEL_DIR/explain.png].",
)
@common_cli.json_option
def explain(model_dir, sequence, class_name, output, as_json):
    """In-silico mutagenesis: every base changed to each other base, and the change of the
    class's probability, as a map and an attribution logo."""
    from recipes.dna import motifs as motifs_lib

    result = motifs_lib.run_explain(model_dir, sequence, class_name, output)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"Predicted {result['predicted']} ({result['probability']:.4f}); explaining "
        f"{result['class']} ({result['class_probability']:.4f}). Positions that matter most "
        "(attribution: mean drop of the probability when the base is changed):"
    )
    common_cli.print_table(result["top"])
    click.echo(f"\nWrote {result['png']}")


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.dna.export",
    """Write the trained classifier for use without this project.

    saved_model: a SavedModel with the endpoint serve(sequence: string[batch]) ->
    {label: string[batch], probabilities: float32[batch, classes]}: one-hot encoding
    (IUPAC codes, either case), both strands with --strands average, inside. A multi-label
    run's label joins its marks with commas. litert: not available (strings in).
    """,
)

common_cli.demo_command(cli, OUTPUT_DIR, "dna")


def main() -> None:
    common_cli.main(cli, prog_name="python -m recipes.dna")
