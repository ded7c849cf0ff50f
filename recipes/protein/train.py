"""`train`: read and split the chains, fit, score the held-out chains.

    shipped set: its own train / validation / test (NEW364) parts
    --data FILE: chains split at random: test_fraction held out, validation_fraction of
        the rest validating (choosing the epoch by per-residue accuracy)
    --validation-data: train on all of --data, validate and report on it
    training chains longer than `crop` residues: a random window of them each epoch
    best epoch -> Q3/Q8 on the held-out chains -> metrics.json, heldout.tsv,
        confusion_matrix.png

Everything is read and checked before the run directory is created.
"""

from __future__ import annotations

import dataclasses
import time

import click
import numpy as np

from common import data as common_data
from common import metrics, runtime
from common.cli import TrainArgs, print_table
from recipes.protein import data as protein_data
from recipes.protein import model as model_lib
from recipes.protein import predict as predict_lib
from recipes.protein.config import HELDOUT_FEATURES_FILE, HELDOUT_FILE, STATES, Config


@dataclasses.dataclass(frozen=True)
class Splits:
    train: tuple
    val: tuple
    test: tuple
    description: str
    test_description: str


def load_splits(cfg: Config, run: TrainArgs, columns, features=None) -> Splits:
    data = protein_data.load(run.data, cfg.states, columns=columns, features=features)
    if run.validation_data:
        val = protein_data.load(
            run.validation_data,
            cfg.states,
            columns=columns,
            what="--validation-data",
            features=features,
        )
        return Splits(data.chains, val.chains, val.chains, data.description, val.description)
    if data.parts:
        parts = data.parts
        return Splits(
            parts["train"],
            parts["validation"],
            parts["test"],
            data.description,
            f"{data.description}, its test chains (NEW364)",
        )
    rest, held = common_data.split_holdout(len(data.chains), cfg.test_fraction, run.seed)
    fit, chosen = common_data.split_holdout(len(rest), cfg.validation_fraction, run.seed + 1)
    chains = data.chains
    return Splits(
        tuple(chains[rest[i]] for i in fit),
        tuple(chains[rest[i]] for i in chosen),
        tuple(chains[i] for i in held),
        data.description,
        f"{data.description}, {cfg.test_fraction:g} of the chains held out (seed {run.seed})",
    )


# Training chains (cropped to at most `crop` residues) are batched with chains of their own
# length band: < 64, 64-127, ... residues.
BUCKETS = list(range(64, 1025, 64))


def steps_per_epoch(chains, cfg: Config) -> int:
    """Training batches an epoch: about one pass over the chains (the bucketed batches of
    an endless stream)."""
    return max(-(-len(chains) // cfg.batch_size), 1)


def dataset(chains, cfg: Config, *, training: bool, seed: int):
    """(sequence, states int32[length], weight float32[length]) padded batches, the
    sequence as (sequence, features float32[length, k]) when the chains have features; the
    weight is 0 at unresolved residues. With --decoder crf: (sequence, states) only, the
    states -2 at unresolved residues (common.crf.UNKNOWN) and -1 at padding. Labels are
    padded to the model's padded time axis. Training: shuffled, chains cropped to a random
    window, batched with chains of similar length. Validation: sorted by length."""
    import tensorflow as tf

    width = protein_data.feature_width(chains)
    states = protein_data.encode_states(chains, cfg.states)
    lengths = np.array([len(c.sequence) for c in chains], np.int64)
    weights = [np.frombuffer(c.mask.encode(), np.uint8) == ord("1") for c in chains]
    if not training:  # similar lengths together: less padding
        order = np.argsort(lengths, kind="stable")
        chains = [chains[i] for i in order]
        states = [states[i] for i in order]
        weights = [weights[i] for i in order]
        lengths = lengths[order]

    def ragged(rows, dtype):
        return tf.RaggedTensor.from_row_lengths(np.concatenate(rows).astype(dtype), lengths)

    y, w = ragged(states, np.int32), ragged(weights, np.float32)
    x = np.array([c.sequence for c in chains], dtype=object)
    if width:
        x = (x, ragged([c.features for c in chains], np.float32))
    ds = tf.data.Dataset.from_tensor_slices((x, y, w))
    if training:  # endless: `fit` counts epochs of steps_per_epoch(...) batches
        ds = ds.shuffle(len(chains), seed=seed, reshuffle_each_iteration=True).repeat()
        crop = cfg.crop

        def window(x, y, w):
            n = tf.shape(y)[0]
            start = tf.random.uniform([], 0, tf.maximum(n - crop, 0) + 1, dtype=tf.int32)
            if width:
                x = (tf.strings.substr(x[0], start, crop), x[1][start : start + crop])
            else:
                x = tf.strings.substr(x, start, crop)
            return x, y[start : start + crop], w[start : start + crop]

        ds = ds.map(window, num_parallel_calls=tf.data.AUTOTUNE)
    # rows of a ragged tensor come as ragged specs; padded_batch takes dense ones
    ds = ds.map(
        lambda x, y, w: (
            (x[0], tf.reshape(x[1], [-1, width])) if width else x,
            tf.reshape(y, [-1]),
            tf.reshape(w, [-1]),
        )
    )
    shapes = (([], [None, width]) if width else [], [None], [None])
    values = (("", 0.0) if width else "", 0, 0.0)
    if cfg.decoder == "crf":
        from common.crf import PAD, UNKNOWN

        ds = ds.map(lambda x, y, w: (x, tf.where(w > 0, y, UNKNOWN)))
        shapes, values = shapes[:2], (values[0], PAD)
    if training:  # chains of similar length batched together: less padding to compute
        ds = ds.bucket_by_sequence_length(
            lambda x, y, *_: tf.shape(y)[0],
            BUCKETS,
            [cfg.batch_size] * (len(BUCKETS) + 1),
            padded_shapes=shapes,
            padding_values=values,
        )
    else:
        ds = ds.padded_batch(cfg.batch_size, padded_shapes=shapes, padding_values=values)

    def pad_time(x, y, *w):  # the labels as long as the model's output (model.PadTime)
        extra = model_lib.padded_length(tf.shape(y)[1]) - tf.shape(y)[1]
        pad = [[0, 0], [0, extra]]
        return (x, tf.pad(y, pad, constant_values=values[1]), *(tf.pad(v, pad) for v in w))

    return ds.map(pad_time).prefetch(tf.data.AUTOTUNE)


def train(cfg: Config, run: TrainArgs, columns=None, features=None) -> dict:
    """`features`: an .npz archive of per-residue features for every chain (see
    recipes.protein.data.read_features), or None."""
    started = time.monotonic()
    splits = load_splits(cfg, run, columns, features)
    for name, part in (("training", splits.train), ("validation", splits.val)):
        if not part:
            raise click.UsageError(f"no {name} chains")
    residues = sum(len(c.sequence) for c in splits.train)
    click.echo(
        f"Data: {splits.description}\n  states: {' '.join(STATES[cfg.states])}\n  train: "
        f"{len(splits.train)} chains ({residues:,} residues), validation: {len(splits.val)}, "
        f"held out: {len(splits.test)} ({splits.test_description})"
    )
    strategy = runtime.setup(run)
    with strategy.scope():
        model = model_lib.build_model(cfg, protein_data.feature_width(splits.train))
        epoch_steps = steps_per_epoch(splits.train, cfg)
        steps = epoch_steps * cfg.epochs
        model_lib.compile_model(model, runtime.optimizer(cfg.learning_rate, cfg.clipnorm))
    info = predict_lib.ModelInfo(states=STATES[cfg.states])
    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    run_dir.write_json(predict_lib.LABELS_FILE, info)
    run_dir.write_text(HELDOUT_FILE, protein_data.heldout_table(splits.test))
    if features is not None:  # what `evaluate` reads with the held-out chains
        protein_data.write_features(run_dir.file(HELDOUT_FEATURES_FILE), splits.test)
    best = runtime.fit(
        model,
        dataset(splits.train, cfg, training=True, seed=run.seed),
        dataset(splits.val, cfg, training=False, seed=run.seed),
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=cfg.time_budget,
        monitor="val_accuracy",  # per-residue accuracy of the resolved residues
        mode="max",  # Keras cannot tell for MarginalAccuracy (--decoder crf)
        patience=cfg.patience,
        steps_per_epoch=epoch_steps,
        # the budget, not the 30 or 100 planned epochs, is what usually ends a run
        callbacks=[runtime.BudgetCosineDecay(cfg.learning_rate, steps, cfg.time_budget)],
    )
    probs = predict_lib.chain_probabilities(best, splits.test)
    result = predict_lib.report(splits.test, probs, info.states)
    q = f"q{cfg.states}"
    history = runtime.read_history(run_dir.file("history.csv"))
    summary = {
        q: result[q],
        "residues": result["residues"],
        "chains": result["chains"],
        "data": splits.test_description,
        "epochs_run": len(history.get("epoch", [])),
        "wall_seconds": round(time.monotonic() - started, 1),
        "per_state": result["per_state"],
        "confusion_matrix": result["confusion_matrix"],
    }
    run_dir.write_json("metrics.json", summary)
    metrics.plot_confusion_matrix(
        result["confusion_matrix"],
        list(info.states),
        run_dir.file("confusion_matrix.png"),
        title="held-out residues",
    )
    example = splits.test[0]
    png = run_dir.file("example_chain.png")
    predict_lib.draw_chain(example.id, example.sequence, probs[0], info.states, png)
    click.echo(
        f"\nHeld out ({splits.test_description}): {q.upper()} {result[q]:.4f} over "
        f"{result['residues']:,} residues of {result['chains']} chains"
    )
    print_table([{"state": s, **v} for s, v in result["per_state"].items()])
    shown = min(len(example.sequence), 60)
    click.echo(
        f"\n{example.id} (first {shown} residues; {png.name} draws the chain):\n"
        f"  sequence   {example.sequence[:shown]}\n"
        f"  true       {example.states[:shown]}\n"
        f"  predicted  {predict_lib.predicted_states(probs[0], info.states)[:shown]}"
    )
    click.echo(
        f"\nRun directory: {run_dir.path} (model.keras, labels.json, metrics.json, "
        f"{HELDOUT_FILE}, confusion_matrix.png, example_chain.png) in "
        f"{summary['wall_seconds']:.0f} s"
    )
    return summary
