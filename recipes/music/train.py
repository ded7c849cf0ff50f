"""`train`: read and tokenise the tunes, fit through `common.runtime`, score the held-out
tunes, and compose three tunes.

Run directory (the contract of `common.runtime`): config.json, argv.txt, heldout.abc
(`data.HELDOUT_FILE`: the held-out tunes as ABC, which `evaluate` reads back),
train.abc (the training tunes before transposition, for the baselines), tokenizer.json,
history.csv, model.keras (best by val_loss), metrics.json, training.png, logs/, and the
demonstration tunes in tunes/.
"""

from __future__ import annotations

import math
import time

import click
import keras
import numpy as np

from common import data as common_data
from common import runtime
from common.cli import print_table
from common.errors import UserError
from recipes.music import abc, checks, data
from recipes.music import compose as compose_lib
from recipes.music import model as model_lib

TRAIN_FILE = "train.abc"


def score(model, sequences: list, cfg) -> np.ndarray:
    """Total log-probability (nats) of each encoded tune, every token after <bos> scored."""
    import tensorflow as tf

    totals = np.zeros(len(sequences))
    order = np.argsort([len(s) for s in sequences])
    for start in range(0, len(order), cfg.batch_size):
        rows = order[start : start + cfg.batch_size]
        longest = max(len(sequences[i]) for i in rows) - 1
        width = 1 + max(64, 2 ** math.ceil(math.log2(longest)))  # four shapes up to 512
        ids = np.zeros((len(rows), width), np.int32)
        for r, i in enumerate(rows):
            ids[r, : len(sequences[i])] = sequences[i]
        log_probs = tf.nn.log_softmax(model(ids[:, :-1], training=False), axis=-1)
        picked = tf.gather(log_probs, ids[:, 1:], batch_dims=2).numpy()
        totals[rows] = np.where(ids[:, 1:] > 0, picked, 0.0).sum(axis=1)
    return totals


def summarize(totals: np.ndarray, sequences: list) -> dict:
    """Loss in nats per token, bits per token and bits per tune."""
    tokens = sum(len(s) - 1 for s in sequences)
    nats = -float(totals.sum())
    return {
        "loss": nats / tokens,
        "bits_per_token": nats / tokens / math.log(2),
        "bits_per_tune": nats / len(sequences) / math.log(2),
        "tunes": len(sequences),
        "tokens": tokens,
    }


def model_report(cfg, tok, model, held_out: list, *, num_tunes, temperature, seed) -> dict:
    """Loss on `held_out` tunes (`summarize`) and the musical checks of `num_tunes` tunes
    composed from nothing (`checks.report`, keys prefixed "generated_")."""
    sequences = [data.encode(tok, t) for t in held_out]
    result = summarize(score(model, sequences, cfg), sequences)
    tunes = compose_lib.compose(
        model_lib.sampler(cfg, tok, model),
        tok,
        num_tunes=num_tunes,
        max_tokens=cfg.max_tokens,
        temperature=temperature,
        seed=seed,
    )
    generated = checks.report([t for t, _ in tunes], held_out, finished=[f for _, f in tunes])
    result.update({f"generated_{k}": v for k, v in generated.items()})
    return result


def prepare(cfg, run):
    """Everything read and checked before anything is written."""
    source = common_data.resolve(run.data)
    tunes = data.load(source, max_tokens=cfg.max_tokens, max_examples=cfg.max_examples)
    if run.validation_data:
        val_source = common_data.resolve(run.validation_data, what="--validation-data")
        held_out = data.load(val_source, max_tokens=cfg.max_tokens).tunes
        train_tunes = tunes.tunes
    else:
        train_tunes, held_out = data.split(tunes.tunes, cfg.validation_fraction, run.seed)
    return tunes, train_tunes, held_out


def train(cfg, run) -> dict:
    """Train `cfg` (a `Config`) with the shared options `run` (common.cli.TrainArgs)."""
    tunes, train_tunes, held_out = prepare(cfg, run)
    augmented = data.augment(train_tunes, cfg.transpose, run.seed)
    tok = data.build_tokenizer(augmented)
    train_ids = [data.encode(tok, t) for t in augmented]
    val_ids = [data.encode(tok, t) for t in held_out]
    click.echo(f"Data: {tunes.describe()}")
    click.echo(
        f"      {len(train_tunes)} training tunes"
        + (f" ({len(augmented)} with transposed copies)" if cfg.transpose else "")
        + f", {len(held_out)} held out; {sum(map(len, train_ids)):,} training tokens, "
        f"vocabulary {tok.vocab_size} (4 specials included)"
    )

    strategy = runtime.setup(run)
    with strategy.scope():
        model = model_lib.build_model(cfg, tok.vocab_size)
        model.compile(
            optimizer=runtime.optimizer(cfg.learning_rate, clipnorm=cfg.clipnorm),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"
            ),
        )
    train_ds = data.dataset(
        train_ids,
        batch_size=cfg.batch_size,
        length_multiple=cfg.length_multiple,
        shuffle=True,
        seed=run.seed,
    )
    val_ds = data.dataset(
        val_ids,
        batch_size=cfg.batch_size,
        length_multiple=cfg.length_multiple,
        shuffle=False,
        seed=0,
    )

    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    tok.save(run_dir.file("tokenizer.json"))
    run_dir.write_text(data.HELDOUT_FILE, data.format_abc(held_out))
    run_dir.write_text(TRAIN_FILE, data.format_abc(train_tunes))

    start = time.monotonic()
    best = runtime.fit(
        model,
        train_ds,
        val_ds,
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=cfg.time_budget,
        patience=cfg.patience,
    )
    train_seconds = time.monotonic() - start

    metrics = summarize(score(best, val_ids, cfg), val_ids)
    if not math.isfinite(metrics["loss"]):
        raise UserError("training diverged (non-finite validation loss); lower the learning rate")
    history = runtime.read_history(run_dir.file("history.csv"))
    metrics.update(
        epochs=len(history.get("epoch", [])),
        train_seconds=round(train_seconds, 1),
        train_tunes=len(train_tunes),
        vocab_size=tok.vocab_size,
        parameters=best.count_params(),
    )
    run_dir.write_json("metrics.json", metrics)
    click.echo("\nBest model on the held-out tunes:")
    print_table([{"metric": k, "value": v} for k, v in metrics.items()])

    sampler = model_lib.sampler(cfg, tok, best)
    demo = compose_lib.compose(
        sampler,
        tok,
        num_tunes=3,
        max_tokens=cfg.max_tokens,
        temperature=cfg.temperature,
        seed=run.seed,
    )
    compose_lib.write(demo, run_dir.file("tunes"))
    tokens, _ = demo[0]
    click.echo("\nA composed tune (all three: " + str(run_dir.file("tunes")) + "):\n")
    click.echo(abc.render(tokens))
    click.echo(
        f"Saved to {run_dir.path}. Next: python -m recipes.music compose --model-dir "
        f"{run_dir.path} --meter 6/8 --key D --num-tunes 4"
    )
    return metrics
