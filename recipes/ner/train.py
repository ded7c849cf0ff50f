"""`train`: load and check the data, build the vocabularies and the tagger, fit, evaluate, demo.

Three sets of sentences:

- validation, which picks the best epoch (highest entity F1) and stops
  training early: `--validation-data SRC` if given; else a TFDS source's
  `validation` or `dev` split (tfds:conll2003 has `dev`); else a seeded part
  of the training data;
- test, which gives the reported numbers and was never used to choose
  anything: a TFDS source's `test` split; else, when the validation sentences
  were split off the training data, another seeded part of it; with
  `--validation-data` there is none and the report is on the validation data
  (run `evaluate --data TEST` for a clean number);
- train: the rest.

The seeded parts are `validation_fraction` and `test_fraction` of the sentences
(15 % each in the presets), chosen with `common.data.split_holdout(n, fraction,
--seed)`, so the same command always holds out the same sentences; `data.json`
records how to rebuild them (`evaluate` without `--data` does).

Run directory (DESIGN.md section 6): config.json, argv.txt, data.json,
words.json, chars.json, tags.json, history.csv, model.keras, metrics.json,
training.png, logs/.
"""

from __future__ import annotations

import dataclasses
import sys

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
    test: data.Corpus | None
    description: dict  # data.json: how to rebuild the held-out sentences


def _tfds_split(source, candidates) -> str | None:
    splits = common_data.tfds_info(source).splits if source.kind == "tfds" else {}
    return next((s for s in candidates if s in splits), None)


def _first(corpus: data.Corpus, max_sentences: int | None) -> data.Corpus:
    if not max_sentences or len(corpus) <= max_sentences:
        return corpus
    return corpus.subset(range(max_sentences), f"{corpus.origin}, first {max_sentences} sentences")


def _three_way(corpus: data.Corpus, fractions: list, seed: int):
    """Seeded (train, validation, test) parts of one corpus."""
    val_fraction, test_fraction = fractions
    train_idx, rest = common_data.split_holdout(len(corpus), val_fraction + test_fraction, seed)
    val_pos, test_pos = common_data.split_holdout(
        len(rest), test_fraction / (val_fraction + test_fraction), seed
    )
    held = f"{corpus.origin}, seed {seed}"
    return (
        corpus.subset(train_idx),
        corpus.subset(rest[val_pos], f"{held}: validation {val_fraction:.0%}"),
        corpus.subset(rest[test_pos], f"{held}: test {test_fraction:.0%}"),
    )


def _load_splits(run, cfg) -> Splits:
    """Resolve and parse everything up front: bad input fails before the run dir exists."""
    source = common_data.resolve(run.data, what="--data")
    val_source = None
    if run.validation_data:
        val_source = common_data.resolve(run.validation_data, what="--validation-data")
    for s in (source, val_source):
        if s is not None and s.kind == "tfds":
            data.check_tfds(s)
    corpus = _first(data.load(source, split="train"), cfg.max_sentences)
    description = {
        "data": run.data,
        "validation_data": run.validation_data,
        "seed": run.seed,
        "max_sentences": cfg.max_sentences,
    }
    test = None
    if val_source is not None:
        train, validation = corpus, data.load(val_source, split=_val_split(val_source))
        description["held_out"] = "validation_data"
    elif source.kind == "tfds" and not source.split and _tfds_split(source, TFDS_VALIDATION_SPLITS):
        train = corpus
        validation = data.load(source, split=_tfds_split(source, TFDS_VALIDATION_SPLITS))
        if _tfds_split(source, ("test",)):
            test = data.load(source, split="test")
        description["held_out"] = "tfds_splits"
    else:
        fractions = [cfg.validation_fraction, cfg.test_fraction]
        train, validation, test = _three_way(corpus, fractions, run.seed)
        description.update(held_out="seeded", fractions=fractions)
    description.update(
        origin=corpus.origin,
        scheme=corpus.scheme,
        sentences={
            "train": len(train),
            "validation": len(validation),
            "test": len(test) if test else 0,
        },
    )
    return Splits(train, validation, test, description)


def _val_split(source) -> str:
    return _tfds_split(source, TFDS_VALIDATION_SPLITS) or "test"


def heldout_corpus(description: dict) -> data.Corpus:
    """The sentences a finished run reported on (test, else validation), from its data.json."""
    kind = description.get("held_out")
    if kind == "validation_data":
        source = common_data.resolve(description["validation_data"], what="validation data")
        return data.load(source, split=_val_split(source))
    source = common_data.resolve(description.get("data"), what="training data of the run")
    if kind == "tfds_splits":
        split = "test" if _tfds_split(source, ("test",)) else _val_split(source)
        return data.load(source, split=split)
    if kind == "seeded":
        corpus = _first(data.load(source, split="train"), description.get("max_sentences"))
        return _three_way(corpus, description["fractions"], description["seed"])[2]
    raise UserError(f"data.json: unknown held-out kind {kind!r}; pass --data")


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
        f"token accuracy {metrics['token_accuracy']:.4f} | F1 without the transition repair "
        f"{metrics['f1_argmax']:.4f} | {metrics['sentences']} sentences, {metrics['tokens']} tokens"
    )


def train(cfg, run) -> dict:
    """Train `cfg` (a NerConfig) with the shared options `run` (common.cli.TrainArgs)."""
    splits = _load_splits(run, cfg)
    vocab = data.Vocab.build(
        splits.train, word_min_freq=cfg.word_min_freq, max_word_chars=cfg.max_word_chars
    )
    for part in (splits.validation, splits.test):
        if part is not None:
            vocab.encode_tags(part)  # an entity type unseen in training -> UserError, now

    strategy = runtime.setup(run)
    held_out = f"validation {len(splits.validation)}" + (
        f", test {len(splits.test)}" if splits.test else ""
    )
    print(
        f"Data: {splits.description['origin']} ({splits.train.scheme} tags"
        f"{', converted to IOB2' if splits.train.scheme != 'IOB2' else ''}) | "
        f"sentences: train {len(splits.train)} ({splits.train.num_tokens} tokens), {held_out}"
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
        compile_model(model, vocab.tags, runtime.optimizer(cfg.learning_rate, cfg.clipnorm))

    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    vocab.save(run_dir)
    run_dir.write_json("data.json", splits.description)

    def dataset(corpus, training=False):
        words, chars = vocab.encode(corpus.tokens)
        return data.make_dataset(
            words,
            chars,
            vocab.encode_tags(corpus),
            batch_size=cfg.batch_size,
            chars_per_word=cfg.max_word_chars,
            length_multiple=cfg.length_multiple,
            shuffle=training,
            seed=run.seed,
            word_dropout=cfg.word_dropout if training else 0.0,
        )

    best = runtime.fit(
        model,
        dataset(splits.train, training=True),
        dataset(splits.validation),
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=run.time_budget or cfg.time_budget,
        monitor="val_entity_f1",
        mode="max",
        patience=cfg.patience,
        verbose="auto" if sys.stdout.isatty() else 2,  # one line per epoch in logs
    )

    tagger = tag.Tagger(best, vocab, cfg.batch_size, cfg.length_multiple)
    validation = tagger.evaluate(splits.validation)
    reported, name = (
        (tagger.evaluate(splits.test), "test") if splits.test else (validation, "validation")
    )
    corpus = splits.test or splits.validation
    run_dir.write_json(
        "metrics.json",
        {
            **reported,
            "split": name,
            "data": corpus.origin,
            "validation": {k: validation[k] for k in ("precision", "recall", "f1")},
        },
    )
    print(
        f"\nBest epoch's model (by validation entity F1) on the {name} sentences "
        f"({corpus.origin}); entity level, conlleval semantics:"
    )
    print_report(reported)
    if splits.test:
        print(
            f"(validation: precision {validation['precision']:.4f} recall "
            f"{validation['recall']:.4f} F1 {validation['f1']:.4f})"
        )

    tokens = tag.tokenize(DEMO_TEXT)
    print(f"\nTagging {DEMO_TEXT!r}:")
    print(tag.format_sentence(tokens, tagger.tag([tokens])[0]))
    print(f"\nSaved to {run_dir.path}/ (model.keras, metrics.json, training.png, ...)")
    return reported
