"""`train`: load and check the data, build the vocabularies and the tagger, fit, evaluate, demo.

Validation data, in order of preference:
1. `--validation-data SRC` (all of it);
2. for a TFDS source, its `validation` or `dev` split (tfds:conll2003 has `dev`);
3. otherwise a seeded split of the training data: `validation_fraction` of the
   sentences (20 % in every preset), chosen by `common.data.split_holdout(n,
   fraction, --seed)`, so the same command always holds out the same sentences.

The held-out sentences select the best epoch (lowest validation loss) and give
the reported entity-level precision, recall and F1. Run directory (DESIGN.md
section 6): config.json, argv.txt, data.json, words.json, chars.json, tags.json,
history.csv, model.keras, metrics.json, training.png, logs/.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import keras

from common import data as common_data
from common import runtime
from common.cli import print_table
from common.errors import UserError
from recipes.ner import data, tag
from recipes.ner.model import build_model, compile_model

DEMO_TEXT = "Yesterday, Harry Potter met Hermione Granger."
TFDS_VALIDATION_SPLITS = ("validation", "dev")


@dataclasses.dataclass(frozen=True)
class Splits:
    train: data.Corpus
    validation: data.Corpus
    description: dict  # recorded as data.json; `evaluate` re-creates the held-out split from it


def _load_splits(run, cfg) -> Splits:
    """Resolve and parse everything up front: bad input fails before the run dir exists."""
    source = common_data.resolve(run.data, what="--data")
    val_source = (
        common_data.resolve(run.validation_data, what="--validation-data")
        if run.validation_data
        else None
    )
    for s in (source, val_source):
        if s is not None and s.kind == "tfds":
            data.check_tfds(s)
    corpus = data.load(source, split="train")
    if cfg.max_sentences:
        corpus = corpus.subset(
            range(min(cfg.max_sentences, len(corpus))),
            origin=f"{corpus.origin}, first {cfg.max_sentences} sentences",
        )
    description = {"data": run.data, "validation_data": run.validation_data, "seed": run.seed}
    if val_source is not None:
        validation = data.load(val_source, split=_tfds_validation_split(val_source) or "test")
        train = corpus
        description["validation"] = "source"
    elif source.kind == "tfds" and not source.split and _tfds_validation_split(source):
        split = _tfds_validation_split(source)
        validation = data.load(source, split=split)
        train = corpus
        description.update(validation="tfds_split", split=split)
    else:
        train_idx, val_idx = common_data.split_holdout(
            len(corpus), cfg.validation_fraction, run.seed
        )
        train = corpus.subset(train_idx)
        validation = corpus.subset(
            val_idx,
            origin=f"{corpus.origin}, held-out {cfg.validation_fraction:.0%} (seed {run.seed})",
        )
        description.update(
            validation="holdout", fraction=cfg.validation_fraction, max_sentences=cfg.max_sentences
        )
    description.update(
        scheme=corpus.scheme,
        train_sentences=len(train),
        validation_sentences=len(validation),
        origin=corpus.origin,
    )
    return Splits(train, validation, description)


def _tfds_validation_split(source) -> str | None:
    splits = common_data.tfds_info(source).splits if source.kind == "tfds" else {}
    return next((s for s in TFDS_VALIDATION_SPLITS if s in splits), None)


def heldout_corpus(description: dict) -> data.Corpus:
    """The validation sentences of a finished run, re-created from its data.json."""
    kind = description.get("validation")
    if kind == "source":
        source = common_data.resolve(
            description["validation_data"], what="validation data of the run"
        )
        return data.load(source, split=_tfds_validation_split(source) or "test")
    source = common_data.resolve(description.get("data"), what="training data of the run")
    if kind == "tfds_split":
        return data.load(source, split=description["split"])
    if kind == "holdout":
        corpus = data.load(source, split="train")
        if description.get("max_sentences"):
            corpus = corpus.subset(
                range(min(description["max_sentences"], len(corpus))),
                origin=f"{corpus.origin}, first {description['max_sentences']} sentences",
            )
        _, val_idx = common_data.split_holdout(
            len(corpus), description["fraction"], description["seed"]
        )
        return corpus.subset(
            val_idx,
            origin=f"{corpus.origin}, held-out {description['fraction']:.0%} "
            f"(seed {description['seed']})",
        )
    raise UserError(f"data.json: unknown validation kind {kind!r}; pass --data")


class EntityF1Logger(keras.callbacks.Callback):
    """Print the validation entity F1 after each epoch (the number NER is judged by)."""

    def __init__(self, vocab: data.Vocab, validation: data.Corpus, cfg):
        super().__init__()
        self.vocab, self.validation, self.cfg = vocab, validation, cfg

    @property
    def tagger(self) -> tag.Tagger:
        return tag.Tagger(self.model, self.vocab, self.cfg.batch_size, self.cfg.length_multiple)

    def on_epoch_end(self, epoch, logs=None):
        scores = self.tagger.evaluate(self.validation)
        print(
            f"epoch {epoch + 1}: validation entity precision {scores['precision']:.3f} "
            f"recall {scores['recall']:.3f} F1 {scores['f1']:.3f}",
            flush=True,
        )


def print_report(metrics: dict) -> None:
    rows = [
        {
            "type": kind,
            "precision": m["precision"],
            "recall": m["recall"],
            "f1": m["f1"],
            "support": m["support"],
        }
        for kind, m in metrics["per_type"].items()
    ]
    rows.append(
        {
            "type": "overall (micro)",
            "precision": metrics["precision"],
            "recall": metrics["recall"],
            "f1": metrics["f1"],
            "support": metrics["entities_true"],
        }
    )
    print_table(rows)
    print(
        f"token accuracy {metrics['token_accuracy']:.4f} | F1 without transition repair "
        f"{metrics['f1_argmax']:.4f} | {metrics['sentences']} sentences, {metrics['tokens']} tokens"
    )


def train(cfg, run) -> dict:
    """Train `cfg` (a NerConfig) with the shared options `run` (common.cli.TrainArgs)."""
    splits = _load_splits(run, cfg)
    vocab = data.Vocab.build(
        splits.train, word_min_freq=cfg.word_min_freq, max_word_chars=cfg.max_word_chars
    )
    train_words, train_chars = vocab.encode(splits.train.tokens)
    val_words, val_chars = vocab.encode(splits.validation.tokens)
    train_tags = vocab.encode_tags(splits.train)
    val_tags = vocab.encode_tags(splits.validation)  # a type unseen in training -> UserError

    strategy = runtime.setup(run)
    print(
        f"Data: {splits.description['origin']} ({splits.train.scheme} tags, read as IOB2) | "
        f"train {len(splits.train)} sentences / {splits.train.num_tokens} tokens | "
        f"validation {len(splits.validation)} sentences ({splits.validation.origin})"
    )
    print(
        f"Vocabulary: {vocab.words.vocab_size} words, {vocab.chars.vocab_size} characters, "
        f"{len(vocab.tags)} tags ({len(vocab.tags) // 2} entity types)"
    )
    with strategy.scope():
        model = build_model(
            cfg,
            num_words=vocab.words.vocab_size,
            num_chars=vocab.chars.vocab_size,
            num_tags=len(vocab.tags),
        )
        compile_model(model, cfg, runtime.optimizer(cfg.learning_rate, cfg.clipnorm))

    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    vocab.save(run_dir)
    run_dir.write_json("data.json", splits.description)

    train_ds = data.make_dataset(
        train_words,
        train_chars,
        train_tags,
        batch_size=cfg.batch_size,
        chars_per_word=cfg.max_word_chars,
        length_multiple=cfg.length_multiple,
        shuffle=True,
        seed=run.seed,
        word_dropout=cfg.word_dropout,
    )
    val_ds = data.make_dataset(
        val_words,
        val_chars,
        val_tags,
        batch_size=cfg.batch_size,
        chars_per_word=cfg.max_word_chars,
        length_multiple=cfg.length_multiple,
    )
    start = time.monotonic()
    best = runtime.fit(
        model,
        train_ds,
        val_ds,
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=run.time_budget or cfg.time_budget,
        patience=cfg.patience,
        callbacks=[EntityF1Logger(vocab, splits.validation, cfg)],
        verbose="auto" if sys.stdout.isatty() else 2,  # one line per epoch in logs
    )
    train_seconds = time.monotonic() - start

    tagger = tag.Tagger(best, vocab, cfg.batch_size, cfg.length_multiple)
    metrics = tagger.evaluate(splits.validation)
    run_dir.write_json(
        "metrics.json",
        {
            **metrics,
            "split": "validation",
            "data": splits.validation.origin,
            "train_seconds": round(train_seconds, 1),
        },
    )
    print(
        f"\nBest model on the validation split ({splits.validation.origin}), "
        "entity level (conlleval/seqeval):"
    )
    print_report(metrics)

    tokens = tag.tokenize(DEMO_TEXT)
    print(f"\nTagging {DEMO_TEXT!r}:")
    print(tag.format_sentence(tokens, tagger.tag([tokens])[0]))
    print(f"\nSaved to {run_dir.path}/ (model.keras, metrics.json, training.png, ...)")
    return metrics
