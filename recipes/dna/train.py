"""`train`: read and split the sequences, fit the network and its baselines, report.

    --data --split--> train / validation (choosing the epoch) / held-out (the report)
        stratified by class: test_fraction held out, validation_fraction of the rest
        --validation-data: train on all of --data, validate and report on it
        --data oct4-mafk: the set's own test split is the held-out one
        --negatives shuffle: the positives are split, then each part gets its shuffles;
        training draws new shuffles of its positives every epoch
    network (danq) -> common.runtime.fit -> best epoch by validation loss
    baselines (unless --no-baselines): the DeepBind-like CNN (the same network without
        the recurrent layer) and the k-mer logistic regression, on the same split
    held-out -> metrics.json, heldout.fa (what `evaluate` reads), confusion_matrix.png

Everything the command line names is read and checked before the run directory is
created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import time

import click
import numpy as np

from common import data as common_data
from common import metrics, runtime
from common.cli import TrainArgs, print_table
from recipes.dna import baselines as baselines_lib
from recipes.dna import data as dna_data
from recipes.dna import model as model_lib
from recipes.dna import predict as predict_lib
from recipes.dna.config import BASELINE_CNN_DIR, BASELINE_KMER_FILE, HELDOUT_FILE, Config


@dataclasses.dataclass(frozen=True)
class Splits:
    train: dna_data.DnaData
    val: dna_data.DnaData
    test: dna_data.DnaData
    description: str
    test_description: str
    # --negatives shuffle: training draws new shuffles of its positives every epoch
    fresh_negatives: bool = False


def _split(data: dna_data.DnaData, fraction: float, seed: int):
    if data.multi_label or len(data.class_names) < 2:
        return common_data.split_holdout(len(data), fraction, seed)
    return common_data.stratified_holdout(data.labels, fraction, seed, what="sequences")


def load_splits(cfg: Config, run: TrainArgs, options: dna_data.ReadOptions) -> Splits:
    data, description = dna_data.load(run.data, options)
    shuffle = options.negatives == "shuffle"
    if run.validation_data:  # train on all of --data; validate and report on this
        val, test_description = dna_data.load(
            run.validation_data,
            options,
            class_names=None if shuffle else data.class_names,
            what="--validation-data",
        )
        train, test = data, val
    else:
        if dna_data.has_test_split(run.data):
            test, test_description = dna_data.load(
                run.data, options, class_names=data.class_names, part="test"
            )
            train = data
        else:
            rest, held = _split(data, cfg.test_fraction, run.seed)
            train, test = data.subset(rest), data.subset(held)
            test_description = (
                f"{description}, {cfg.test_fraction:g} held out"
                + ("" if shuffle or data.multi_label else " per class")
                + f" (seed {run.seed})"
            )
        fit, chosen = _split(train, cfg.validation_fraction, run.seed + 1)
        train, val = train.subset(fit), train.subset(chosen)
    if shuffle:  # each part's negatives are shuffles of its own positives
        train, val, test = (
            dna_data.with_shuffles(part, run.seed + i) for i, part in enumerate((train, val, test))
        )
        test_description += ", with one dinucleotide shuffle of each as class 0"
    return Splits(train, val, test, description, test_description, fresh_negatives=shuffle)


def dataset(
    data: dna_data.DnaData,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    fresh_negatives: bool = False,
):
    """(sequence strings, labels) batches; training batches reshuffled every epoch.

    `fresh_negatives`, for positives and their shuffles (`with_shuffles`): every pass over
    the data draws new dinucleotide shuffles of the positives as class 0, so the network
    cannot learn one set of negatives by heart. On Oct4 peaks against their shuffles this
    lowered the validation loss at all three seeds (recipes/dna/README.md, "Positives only").
    """
    import tensorflow as tf

    if fresh_negatives:
        positives = data.subset(np.flatnonzero(data.labels == 1))
        rng = np.random.default_rng(seed)

        def one_pass():  # called again by every pass; the generator keeps drawing
            both = dna_data.with_shuffles(positives, rng)
            yield np.array(both.sequences, dtype=object), both.labels

        ds = tf.data.Dataset.from_generator(
            one_pass,
            output_signature=(
                tf.TensorSpec((None,), tf.string),
                tf.TensorSpec((None,), tf.int64),
            ),
        ).unbatch()
    else:
        ds = tf.data.Dataset.from_tensor_slices(
            (np.array(data.sequences, dtype=object), data.labels)
        )
    if shuffle:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _fit(cfg: Config, run: TrainArgs, splits: Splits, run_dir, length: int, budget):
    strategy = runtime.setup(run)
    train_data = splits.train
    with strategy.scope():
        model = model_lib.build_model(
            cfg,
            classes=len(train_data.class_names),
            length=length,
            multi_label=train_data.multi_label,
            seed=run.seed,
        )
        epoch = max(len(train_data) // cfg.batch_size, 1)
        # The first epoch warms the learning rate up: without it, 3 of 12 runs on 200-bp
        # peaks (Oct4 vs MafK; Oct4 against shuffles) killed every ReLU of the hidden layer,
        # which reads 4,352 to 8,576 flattened features, in their first steps and stayed
        # at the constant prediction (recipes/dna/README.md, "The model").
        optimizer = runtime.optimizer(
            cfg.learning_rate, cfg.clipnorm, decay_steps=epoch * cfg.epochs, warmup_steps=epoch
        )
        model.compile(
            optimizer=optimizer,
            loss=model_lib.loss(cfg, train_data.multi_label),
            metrics=["binary_accuracy" if train_data.multi_label else "accuracy"],
        )
    return runtime.fit(
        model,
        dataset(
            train_data,
            cfg.batch_size,
            shuffle=True,
            seed=run.seed,
            fresh_negatives=splits.fresh_negatives,
        ),
        dataset(splits.val, cfg.batch_size, shuffle=False, seed=run.seed),
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=budget,
        monitor="val_loss",
        patience=cfg.patience,
    )


def train(cfg: Config, run: TrainArgs, options: dna_data.ReadOptions, baselines: bool) -> dict:
    """Train, evaluate on the held-out split, write the run directory."""
    started = time.monotonic()
    splits = load_splits(cfg, run, options)
    train_data = splits.train
    length = max(len(s) for part in (train_data, splits.val, splits.test) for s in part.sequences)
    click.echo(
        f"Data: {splits.description}\n  classes: {', '.join(train_data.class_names)}"
        f"{' (multi-label)' if train_data.multi_label else ''}\n  train: {len(train_data)}, "
        f"validation: {len(splits.val)}, held out: {len(splits.test)} ({splits.test_description})"
        f"\n  longest sequence: {length} letters"
    )
    info = predict_lib.ModelInfo(
        class_names=train_data.class_names,
        multi_label=train_data.multi_label,
        length=length,
        negatives=options.negatives,
    )
    run_dir = runtime.RunDir.create(run.output_dir, cfg)
    run_dir.write_json(predict_lib.LABELS_FILE, info)
    run_dir.write_text(HELDOUT_FILE, dna_data.fasta_text(splits.test))

    best = _fit(cfg, run, splits, run_dir, length, cfg.time_budget)
    best.summary(print_fn=lambda line, **_: click.echo(line), line_length=96)
    result = predict_lib.report(
        splits.test.labels,
        predict_lib.probabilities(best, splits.test.sequences),
        train_data.class_names,
        train_data.multi_label,
    )
    rows = {f"network ({cfg.model})": result}
    if baselines:
        rows.update(_baselines(cfg, run, splits, run_dir, length))
    history = runtime.read_history(run_dir.file("history.csv"))
    summary = {
        **{k: result[k] for k in ("accuracy", "macro_f1", "roc_auc", "pr_auc", "count")},
        "data": splits.test_description,
        "epochs_run": len(history.get("epoch", [])),
        "wall_seconds": round(time.monotonic() - started, 1),
        "per_class": result["per_class"],
        "baselines": {k: predict_lib.headline(v) for k, v in rows.items()},
    }
    if "confusion_matrix" in result:
        summary["confusion_matrix"] = result["confusion_matrix"]
        metrics.plot_confusion_matrix(
            result["confusion_matrix"],
            train_data.class_names,
            run_dir.file("confusion_matrix.png"),
            title="held-out sequences",
        )
    run_dir.write_json("metrics.json", summary)

    click.echo(f"\nHeld out ({splits.test_description}):")
    print_table([{"model": k, **predict_lib.headline(v)} for k, v in rows.items()])
    click.echo(
        f"\nRun directory: {run_dir.path} (model.keras, labels.json, metrics.json, "
        f"{HELDOUT_FILE}{', baselines' if baselines else ''}) in {summary['wall_seconds']:.0f} s"
    )
    click.echo(
        f"Try: python -m recipes.dna motifs --model-dir {run_dir.path}\n"
        f"     python -m recipes.dna explain --model-dir {run_dir.path} "
        f"--sequence {splits.test.sequences[0]}"
    )
    return summary


def _baselines(cfg: Config, run: TrainArgs, splits: Splits, run_dir, length: int) -> dict:
    test = splits.test
    click.echo("\nBaseline: the same network without the recurrent layer (DeepBind-like CNN)")
    cnn_cfg = dataclasses.replace(cfg, model="cnn")
    cnn_dir = runtime.RunDir.create(run_dir.file(BASELINE_CNN_DIR), cnn_cfg)
    budget = cfg.time_budget / 3 if cfg.time_budget else None
    cnn = _fit(cnn_cfg, run, splits, cnn_dir, length, budget)
    click.echo(f"\nBaseline: k-mer (k = 1..{cfg.kmer_max}) logistic regression")
    kmer = baselines_lib.fit_kmer(splits.train, splits.val, cfg.kmer_max)
    run_dir.write_json(BASELINE_KMER_FILE, kmer.to_json())
    click.echo(f"  {len(kmer.kmers)} k-mers, C = {kmer.C:g} (best on validation)")
    names, multi = splits.train.class_names, splits.train.multi_label
    return {
        "cnn (no recurrent layer)": predict_lib.report(
            test.labels, predict_lib.probabilities(cnn, test.sequences), names, multi
        ),
        f"k-mer logistic regression (k <= {cfg.kmer_max})": predict_lib.report(
            test.labels, kmer.probabilities(test.sequences), names, multi
        ),
    }
