"""`train`: read and check the data, build the tokenizer and the model, fit, evaluate, show.

Order matters for the CLI contract: every input is read and checked before the
run directory is created, so a bad file leaves nothing behind.
"""

from __future__ import annotations

import click

from common import data as common_data
from common import metrics, runtime
from common.cli import print_table
from common.tokenization import Tokenizer
from recipes.sentiment import classify, data
from recipes.sentiment.embeddings import TOKENIZER_FILE
from recipes.sentiment.model import build_model

METRICS_FILE = "metrics.json"

# Shown at the end of `train` (the task verb): tweets about brands, airlines, events and
# self-driving cars are what the default data holds.
EXAMPLES = (
    "I love my new phone, the battery lasts all day!",
    "Flight delayed three hours and they lost my bag. Worst airline ever.",
    "The keynote starts at 10am Pacific time.",
    "Not sure how I feel about self-driving cars yet.",
)


def prepare(cfg, run, *, text_column: str, label_column: str):
    """Resolve and read every source, split, encode labels: everything that can fail on input."""
    source = common_data.resolve(run.data, what="--data")
    val_source = (
        common_data.resolve(run.validation_data, what="--validation-data")
        if run.validation_data
        else None
    )
    corpus = data.load(source, text_column=text_column, label_column=label_column)
    val_corpus = (
        data.load(
            val_source,
            text_column=text_column,
            label_column=label_column,
            what="--validation-data",
            min_classes=1,
        )
        if val_source
        else None
    )
    splits = data.make_splits(
        corpus,
        val_corpus,
        test_fraction=cfg.test_fraction,
        validation_fraction=cfg.validation_fraction,
        max_examples=cfg.max_examples,
        seed=run.seed,
    )
    names = splits.class_names
    labels = {
        "train": data.label_ids(splits.train, names, what="--data"),
        "validation": data.label_ids(
            splits.validation, names, what="--validation-data" if val_source else "--data"
        ),
        "test": data.label_ids(splits.test, names, what="--data"),
    }
    return source, corpus, splits, labels


def train(cfg, run, *, text_column: str, label_column: str) -> dict:
    """Train `cfg` (a resolved `Config`) as `run` (a `common.cli.TrainArgs`) asks; return the test metrics."""
    source, corpus, splits, labels = prepare(
        cfg, run, text_column=text_column, label_column=label_column
    )
    names = list(splits.class_names)
    tokenizer = Tokenizer.build(
        splits.train.texts,
        level="word",
        max_size=cfg.max_vocab,
        min_freq=cfg.min_freq,
        lowercase=cfg.lowercase,
    )
    click.echo(f"Data: {corpus.description}")
    click.echo(
        f"Classes: {', '.join(names)} | train {len(splits.train)}, validation "
        f"{len(splits.validation)}, test {len(splits.test)} | vocabulary {tokenizer.vocab_size} "
        f"words | cell: {cfg.cell}"
    )

    strategy = runtime.setup(run)
    with strategy.scope():
        model = build_model(cfg, tokenizer=tokenizer, num_classes=len(names))
        model.compile(
            optimizer=runtime.optimizer(cfg.learning_rate, cfg.clipnorm),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    run_dir.write_json(classify.LABELS_FILE, classify.Labels(tuple(names)))
    tokenizer.save(run_dir.file(TOKENIZER_FILE))
    run_dir.write_text(data.HELDOUT_FILE, data.write_table(splits.test))
    model.summary(print_fn=lambda line, **_: click.echo(line), line_length=100)

    weights = common_data.balanced_class_weight(labels["train"]) if cfg.class_weights else None
    if weights:
        click.echo(
            "Class weights: "
            + ", ".join(f"{n} {weights.get(i, 1.0):.2f}" for i, n in enumerate(names))
        )
    train_ds = data.to_dataset(
        splits.train, labels["train"], batch_size=cfg.batch_size, shuffle=True, seed=run.seed
    )
    # Validation batches have the prediction batch size, so evaluation reuses their kernels.
    val_ds = data.to_dataset(
        splits.validation,
        labels["validation"],
        batch_size=classify.PREDICT_BATCH,
        shuffle=False,
        seed=run.seed,
    )
    best = runtime.fit(
        model,
        train_ds,
        val_ds,
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=cfg.time_budget,
        patience=cfg.patience,
        class_weight=weights,
    )

    report = classify.evaluate(
        best,
        names,
        splits.test.texts,
        labels["test"],
        png=run_dir.file(classify.CONFUSION_PNG),
        title=f"sentiment, test split ({len(splits.test)} texts)",
    )
    result = {"split": "test", "data": str(source), **report}
    run_dir.write_json(METRICS_FILE, result)

    click.echo(f"\nHeld-out test split ({len(splits.test)} texts), best model by validation loss:")
    print_table(
        [
            {"metric": "accuracy", "value": report["accuracy"]},
            {"metric": "macro_f1", "value": report["macro_f1"]},
        ]
    )
    click.echo()
    print_table(classify.per_class_rows(report))
    click.echo("\nConfusion matrix (rows: true, columns: predicted):")
    print_table(metrics.confusion_rows(report, names))
    click.echo("\nExample predictions:")
    rows = classify.predictions(best, names, list(EXAMPLES))
    print_table([{"text": r["text"], "label": r["label"], **r["probabilities"]} for r in rows])
    click.echo(
        f"\nWrote {run_dir.path}: model.keras, {classify.LABELS_FILE}, {TOKENIZER_FILE}, "
        f"{data.HELDOUT_FILE}, {METRICS_FILE}, {classify.CONFUSION_PNG}, training.png, "
        "history.csv"
    )
    return result
