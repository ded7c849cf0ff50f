"""Command line of the protein recipe: train, evaluate, predict, export, demo.

python -m recipes.protein train [--data SRC] [--states 3|8] ...
python -m recipes.protein evaluate --model-dir DIR [--data SRC] [--json]
python -m recipes.protein predict --model-dir DIR --input FILE [--output OUT.fa|OUT.csv] [--plot-dir DIR]
python -m recipes.protein predict --model-dir DIR --sequence LETTERS [--output ...]
python -m recipes.protein export --model-dir DIR --output PATH
python -m recipes.protein demo --model-dir DIR [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from common import cli as common_cli
from recipes.protein import config
from recipes.protein.config import HELDOUT_FILE

OUTPUT_DIR = "runs/protein"


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """Protein secondary structure per residue (helix, strand, coil; or DSSP's eight
    states) with multiscale convolutions and bidirectional recurrent layers."""


def _columns(func):
    func = click.option(
        "--structure-column",
        default=None,
        metavar="NAME",
        help="CSV/TSV: the column of states [default: structure, ss, dssp, expected or label].",
    )(func)
    return click.option(
        "--sequence-column",
        default=None,
        metavar="NAME",
        help="CSV/TSV: the column of residues [default: sequence, seq or input].",
    )(func)


def _features(help_text):
    return click.option(
        "--features",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="FILE.npz",
        help=help_text,
    )


@cli.command()
@common_cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
@click.option(
    "--states",
    type=click.Choice(["3", "8"]),
    default=None,
    help="3: helix, strand, coil (eight-state labels reduced: H G I -> H, E B -> E, the rest "
    "-> C); 8: DSSP's H G I E B T S C [default: 3].",
)
@click.option(
    "--decoder",
    type=click.Choice(config.DECODERS),
    default=None,
    help="softmax: each residue's state on its own; crf: a conditional random field "
    "(common.CRF) over the chain that learns which states follow which, trained on whole "
    "chains (a window of 400 residues of longer ones), its per-residue marginal "
    "probabilities reported. Ahead of the softmax with --preset large (3 states after 30 "
    "minutes, 8 states on CB513), behind it at the default preset's 4 minutes "
    "(recipes/protein/README.md) [default: the preset's: crf for large, else softmax].",
)
@_columns
@_features(
    "Per-residue features besides the sequence (a PSSM or HMM profile): a NumPy .npz "
    "archive (numpy.savez) with one float array [residues, k] per chain, named by the "
    "chain's id, for every chain of --data and --validation-data. The model then reads "
    "them too, and evaluate/predict need them [default: the sequence alone]."
)
def train(run, states, decoder, sequence_column, structure_column, features):
    """Train on chains with per-residue states; report Q3 (or Q8) on held-out chains.

    --data: omitted = the shipped NetSurfP-2.0 set (FLIP split; its own test chains are the
    held-out ones); FASTA pairs (a sequence record, then its structure record); a CSV/TSV
    table with sequence and structure columns (and optionally a 0/1 mask column).
    """
    from recipes.protein import train as train_lib

    cfg = common_cli.apply_overrides(
        config.PRESETS[run.preset], run, states=int(states) if states else None, decoder=decoder
    )
    columns = {"sequence": sequence_column, "structure": structure_column}
    train_lib.train(cfg, run, columns, features)


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option("Chains with states (FASTA pairs, CSV/TSV)", HELDOUT_FILE)
@_columns
@_features(
    "For a model trained with --features: the features of the --data chains [default, "
    "without --data: the run's held-out ones, heldout_features.npz]."
)
@common_cli.json_option
def evaluate(model_dir, data_spec, sequence_column, structure_column, features, as_json):
    """Q3 (or Q8) over the resolved residues, per-state precision and recall, and the
    confusion matrix."""
    from recipes.protein import predict as predict_lib

    columns = {"sequence": sequence_column, "structure": structure_column}
    result = predict_lib.evaluate(model_dir, data_spec, columns, features)
    if as_json:
        click.echo(json.dumps(result))
        return
    q = f"q{len(result['states'])}"
    click.echo(
        f"{model_dir} on {result['data']}: {q.upper()} {result[q]:.4f} "
        f"({result['residues']:,} residues, {result['chains']} chains)"
    )
    common_cli.print_table([{"state": s, **v} for s, v in result["per_state"].items()])
    click.echo("\nConfusion matrix (rows: true, columns: predicted):")
    common_cli.print_table(
        [
            {"true \\ predicted": s, **dict(zip(result["states"], row, strict=True))}
            for s, row in zip(result["states"], result["confusion_matrix"], strict=True)
        ]
    )


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Chains: FASTA (one record per chain), or CSV/TSV with a sequence column.",
)
@click.option(
    "--sequence",
    default=None,
    metavar="LETTERS",
    help="One chain given here instead of --input (its id: sequence).",
)
@click.option("--sequence-column", default=None, metavar="NAME", help="CSV/TSV: the residues.")
@_features("For a model trained with --features: the features of the --input chains.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="FILE.fa: FASTA pairs (each chain, then its states as `>ID_ss`); FILE.csv or .tsv: "
    "one row per residue with every state's probability [default: FASTA on standard output].",
)
@click.option(
    "--plot-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also draw each chain's states and confidence, DIR/<id>.png.",
)
def predict(model_dir, input_path, sequence, sequence_column, features, output, plot_dir):
    """The secondary structure of every chain, with per-residue probabilities."""
    from common import runtime
    from common.errors import UserError
    from recipes.protein import data as protein_data
    from recipes.protein import predict as predict_lib

    if (input_path is None) == (sequence is None):
        raise click.UsageError("give --input FILE or --sequence LETTERS (one of them)")
    if input_path is not None and not input_path.exists():
        raise UserError(f"--input: no such file: {input_path}")
    info = predict_lib.ModelInfo.read(model_dir)
    model = runtime.load_model(model_dir)
    if features is not None and not predict_lib.feature_width(model):
        raise UserError(f"--features: the model in {model_dir} reads sequences only")
    if sequence is not None:
        if predict_lib.feature_width(model):
            raise UserError(
                f"--sequence: the model in {model_dir} reads per-residue features too: give "
                "the chains with --input FILE and their features with --features FILE.npz"
            )
        chains = [protein_data.given_chain(sequence, len(info.states))]
    else:
        chains = protein_data.load(
            str(input_path),
            len(info.states),
            labels=False,
            columns={"sequence": sequence_column},
            what="--input",
            features=features,
        ).chains
    probs = predict_lib.chain_probabilities(model, chains)
    if output is not None and output.suffix.lower() in (".csv", ".tsv"):
        sep = "," if output.suffix.lower() == ".csv" else "\t"
        lines = [sep.join(["id", "position", "residue", "state", *info.states])]
        for c, p in zip(chains, probs, strict=True):
            predicted = predict_lib.predicted_states(p, info.states)
            for i, residue in enumerate(c.sequence):
                values = [f"{x:.6f}" for x in p[i]]
                lines.append(sep.join([c.id, str(i + 1), residue, predicted[i], *values]))
        text = "\n".join(lines) + "\n"
    else:
        text = "".join(
            f">{c.id}\n{c.sequence}\n>{c.id}_ss\n{predict_lib.predicted_states(p, info.states)}\n"
            for c, p in zip(chains, probs, strict=True)
        )
    if output is None:
        click.echo(text, nl=False)
    else:
        runtime.atomic_write(output, lambda tmp: Path(tmp).write_text(text))
        click.echo(f"Wrote {output} ({len(chains)} chains).")
    if plot_dir is not None:
        for c, p in zip(chains, probs, strict=True):
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in c.id)
            predict_lib.draw_chain(c.id, c.sequence, p, info.states, plot_dir / f"{safe}.png")
        click.echo(f"Drew {len(chains)} chains in {plot_dir}/.", err=output is None)


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.protein.export",
    """Write the trained predictor for use without this project.

    saved_model: a SavedModel with the endpoint serve(sequence: string[batch]) ->
    {states: string[batch] (one letter per residue), probabilities: float32[batch,
    max_length, states], lengths: int32[batch]}: dense, named outputs that TensorFlow Serving
    can return; a model trained with --features takes them as a second input, features:
    float32[batch, max_length, k]. litert: not available (strings in).
    """,
)

common_cli.demo_command(cli, OUTPUT_DIR, "protein")


def main() -> None:
    common_cli.main(cli, prog_name="python -m recipes.protein")
