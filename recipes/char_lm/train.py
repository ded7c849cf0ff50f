"""`train`: read and check the data, fit through `common.runtime`, evaluate the
best model on the held-out text, and show a sample.

Run directory (the contract of `common.runtime`): config.json, argv.txt,
heldout.txt (`data.HELDOUT_FILE`: the validation text exactly as scored, which
`evaluate` reads back), tokenizer.json, history.csv, model.keras (best by
val_loss), metrics.json, training.png, logs/.
"""

from __future__ import annotations

import math
import time

import click
import keras

from common import data as common_data
from common import lm, runtime
from common.cli import print_table
from common.errors import UserError
from common.tokenization import UNK_ID
from recipes.char_lm import data
from recipes.char_lm import model as model_lib
from recipes.char_lm import sample as sample_lib
from recipes.char_lm import score as score_lib


def prepare(cfg, data_spec, validation_spec, seed):
    """Everything read and checked before anything is written: (corpus, tokenizer, ids)."""
    source = common_data.resolve(data_spec)
    validation_source = (
        common_data.resolve(validation_spec, what="--validation-data") if validation_spec else None
    )
    corpus = data.load_corpus(cfg, source, validation_source, seed=seed)
    tok = data.build_tokenizer(cfg, corpus.train)
    train_ids = data.encode(tok, corpus.train)
    val_ids = data.encode(tok, corpus.validation)
    unit = "characters" if cfg.level == "char" else "tokens"
    if cfg.state == "carry":  # both texts must make streams of at least one window
        for ids, what in ((train_ids, str(source)), (val_ids, "validation text")):
            data.stream_layout(ids, seq_len=cfg.seq_len, batch_size=cfg.batch_size, what=what)
    if len(train_ids) < cfg.seq_len + cfg.batch_size:
        raise UserError(
            f"{source}: {len(train_ids)} training {unit}, too few for windows of "
            f"--seq-len {cfg.seq_len} (need at least {cfg.seq_len + cfg.batch_size})"
        )
    if len(val_ids) < cfg.seq_len:
        raise UserError(
            f"validation text has {len(val_ids)} {unit}, fewer than --seq-len "
            f"{cfg.seq_len}; pass a longer --validation-data or a smaller --seq-len"
        )
    return corpus, tok, train_ids, val_ids


def train(cfg, run, prepared=None) -> dict:
    """Train `cfg` with the shared options `run` (a common.cli.TrainArgs); return the metrics.
    `prepared`: what `prepare` returned for the same arguments, when the caller checked first."""
    corpus, tok, train_ids, val_ids = prepared or prepare(
        cfg, run.data, run.validation_data, run.seed
    )
    click.echo(f"Data: {corpus.description}")
    click.echo(
        f"      {len(train_ids):,} training and {len(val_ids):,} validation {cfg.level} tokens, "
        f"vocabulary {tok.vocab_size} (4 specials included)",
    )

    carry = cfg.state == "carry"
    if carry:
        train_ds, steps = data.stream_dataset(
            train_ids, seq_len=cfg.seq_len, batch_size=cfg.batch_size, seed=run.seed
        )
        val_ds, _ = data.stream_dataset(
            val_ids, seq_len=cfg.seq_len, batch_size=cfg.batch_size, seed=None
        )
    else:
        steps = cfg.steps_per_epoch or max(1, len(train_ids) // (cfg.seq_len * cfg.batch_size))
        train_ds = data.train_dataset(
            train_ids, seq_len=cfg.seq_len, batch_size=cfg.batch_size, seed=run.seed
        )
        val_ds = data.validation_dataset(val_ids, seq_len=cfg.seq_len, batch_size=cfg.batch_size)

    strategy = runtime.setup(run)
    if carry and strategy.num_replicas_in_sync > 1:
        raise UserError(
            f"--state carry keeps one state per batch row and runs on one device; "
            f"--strategy {run.strategy} has {strategy.num_replicas_in_sync} replicas"
        )
    with strategy.scope():
        model = model_lib.build_model(
            cfg, tok.vocab_size, stateful_batch=cfg.batch_size if carry else None
        )
        model.compile(
            optimizer=runtime.optimizer(
                cfg.learning_rate,
                clipnorm=cfg.clipnorm,
                decay_steps=steps * cfg.epochs if cfg.lr_decay else None,
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    model.summary(print_fn=lambda line, **_: click.echo(line))

    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    tok.save(run_dir.file("tokenizer.json"))
    run_dir.write_text(data.HELDOUT_FILE, corpus.validation)

    start = time.monotonic()
    best = runtime.fit(
        model,
        train_ds,
        val_ds,
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=cfg.time_budget,
        steps_per_epoch=steps,
        callbacks=[lm.ResetStates()] if carry else (),
    )
    train_seconds = time.monotonic() - start
    if carry:  # keep the model that takes any batch: same weights, no stored state
        stateless = model_lib.build_model(cfg, tok.vocab_size)
        stateless.set_weights(best.get_weights())
        run_dir.save_model(stateless)
        best = stateless

    total = score_lib.validation_log_prob(cfg, best, val_ids)
    metrics = score_lib.summarize(total, len(val_ids), int((val_ids == UNK_ID).sum()), cfg.level)
    history = runtime.read_history(run_dir.file("history.csv"))
    metrics.update(
        epochs=len(history.get("epoch", [])),
        train_seconds=round(train_seconds, 1),
        train_tokens=len(train_ids),
        vocab_size=tok.vocab_size,
        parameters=best.count_params(),
    )

    sampler = sample_lib.Sampler(cfg, tok, best)
    outputs, seconds = sampler.generate(  # word level: one line per sample, so show five
        [],
        length=cfg.sample_length,
        temperature=cfg.sample_temperature,
        num_samples=1 if cfg.level == "char" else 5,
        seed=run.seed,
    )
    text = "\n".join(tok.decode(ids) for ids in outputs)
    metrics["sample"] = text
    run_dir.write_json("metrics.json", metrics)

    bits_key = "bits_per_char" if cfg.level == "char" else "bits_per_word"
    click.echo("\nBest model on the validation text (every token scored once):")
    print_table(
        [
            {"metric": "loss (nats/token)", "value": metrics["loss"]},
            {"metric": bits_key, "value": metrics[bits_key]},
            {"metric": "perplexity", "value": metrics["perplexity"]},
            {"metric": "validation tokens", "value": metrics["tokens"]},
            {"metric": "epochs", "value": metrics["epochs"]},
            {"metric": "training time (s)", "value": metrics["train_seconds"]},
            {"metric": "parameters", "value": metrics["parameters"]},
        ]
    )
    speed = f", {seconds:.1f} s including compiling the loop"
    what = f"{len(outputs)} samples of up to" if len(outputs) > 1 else "sample of"
    click.echo(
        f"\nA {what} {cfg.sample_length} tokens (temperature {cfg.sample_temperature}{speed}):\n"
        + "-" * 40
        + f"\n{text}\n"
        + "-" * 40
    )
    click.echo(
        f"Saved to {run_dir.path}. Next: python -m recipes.char_lm sample --model-dir "
        f'{run_dir.path} --prime "..."'
    )
    if not math.isfinite(metrics["loss"]):
        raise UserError("training diverged (non-finite validation loss); lower the learning rate")
    return metrics
