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
--seed)`, so the same command always holds out the same sentences.

Run directory: the files of `common.runtime`'s contract, with the reported
sentences (test, else validation) in `heldout.conll` (CoNLL, the input's tag
scheme; `evaluate` without `--data` reads it), plus the vocabularies
`words.json`, `chars.json` and `tags.json`.
"""

from __future__ import annotations

import dataclasses

import click

from common import data as common_data
from common import runtime
from common.cli import print_table
from recipes.ner import data, embeddings, tag
from recipes.ner.model import build_model, compile_model

DEMO_TEXT = "Yesterday, Harry Potter met Hermione Granger."
TFDS_VALIDATION_SPLITS = ("validation", "dev")


@dataclasses.dataclass(frozen=True)
class Splits:
    train: data.Corpus
    validation: data.Corpus
    test: data.Corpus | None

    @property
    def reported(self) -> data.Corpus:
        """The sentences the run reports on: test, else validation."""
        return self.test or self.validation


def _tfds_split(source, candidates) -> str | None:
    splits = common_data.tfds_info(source).splits if source.kind == "tfds" else {}
    return next((s for s in candidates if s in splits), None)


def _first(corpus: data.Corpus, max_examples: int | None) -> data.Corpus:
    if not max_examples or len(corpus) <= max_examples:
        return corpus
    return corpus.subset(range(max_examples), f"{corpus.origin}, first {max_examples} sentences")


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
    corpus = _first(data.load(source, split="train"), cfg.max_examples)
    test = None
    if val_source is not None:
        train, validation = corpus, data.load(val_source, split=_val_split(val_source))
    elif source.kind == "tfds" and not source.split and _tfds_split(source, TFDS_VALIDATION_SPLITS):
        train = corpus
        validation = data.load(source, split=_tfds_split(source, TFDS_VALIDATION_SPLITS))
        if _tfds_split(source, ("test",)):
            test = data.load(source, split="test")
    else:
        fractions = [cfg.validation_fraction, cfg.test_fraction]
        train, validation, test = _three_way(corpus, fractions, run.seed)
    return Splits(train, validation, test)


def _val_split(source) -> str:
    return _tfds_split(source, TFDS_VALIDATION_SPLITS) or "test"


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
    click.echo(
        f"token accuracy {metrics['token_accuracy']:.4f} | F1 of the per-token argmax, undecoded "
        f"{metrics['f1_argmax']:.4f} | {metrics['sentences']} sentences, {metrics['tokens']} tokens"
    )


def train(cfg, run, embeddings_file=None) -> dict:
    """Train `cfg` (a `Config`) with the shared options `run` (common.cli.TrainArgs), the
    word embedding initialised from `embeddings_file` (pretrained vectors) if given."""
    splits = _load_splits(run, cfg)
    vocab = data.Vocab.build(
        splits.train, word_min_freq=cfg.word_min_freq, max_word_chars=cfg.max_word_chars
    )
    vectors = None
    if embeddings_file is not None:  # read (and checked) before the run directory exists
        ids = {w: i for i, w in enumerate(vocab.words.vocab) if w not in data.SPECIALS}
        vectors = embeddings.read(embeddings_file, ids)
        cfg = dataclasses.replace(cfg, word_embedding_dim=vectors.dim)
    for part in (splits.validation, splits.test):
        if part is not None:
            vocab.encode_tags(part)  # an entity type unseen in training -> UserError, now
    heldout_text = data.format_conll(splits.reported)  # unwritable tokens -> UserError, now

    strategy = runtime.setup(run)
    held_out = f"validation {len(splits.validation)}" + (
        f", test {len(splits.test)}" if splits.test else ""
    )
    click.echo(
        f"Data: {splits.train.origin} ({splits.train.scheme} tags"
        f"{', converted to IOB2' if splits.train.scheme != 'IOB2' else ''}) | "
        f"sentences: train {len(splits.train)} ({splits.train.num_tokens} tokens), {held_out}"
    )
    click.echo(
        f"Vocabulary: {vocab.words.vocab_size} words, {vocab.chars.vocab_size} characters, "
        f"{len(vocab.tags)} tags ({len(vocab.tags) // 2} entity types)"
    )

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

    train_ds = dataset(splits.train, training=True)
    # The cosine decay (lr_decay) ends after `epochs`: a preset plans them to fit its budget.
    decay_steps = int(train_ds.cardinality()) * cfg.epochs if cfg.lr_decay else None
    with strategy.scope():
        model = build_model(
            cfg,
            num_words=vocab.words.vocab_size,
            num_chars=vocab.chars.vocab_size,
            tags=vocab.tags,
        )
        if vectors is not None:
            embeddings.initialise(model, vectors)
        optimizer = runtime.optimizer(cfg.learning_rate, cfg.clipnorm, decay_steps=decay_steps)
        compile_model(model, vocab.tags, optimizer)
    if vectors is not None:
        click.echo(vectors.describe())

    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    vocab.save(run_dir)
    if vectors is not None:
        run_dir.write_json(embeddings.RECORD_FILE, vectors.record())
    run_dir.write_text(data.HELDOUT_FILE, heldout_text)

    best = runtime.fit(
        model,
        train_ds,
        dataset(splits.validation),
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=cfg.time_budget,
        monitor="val_entity_f1",
        mode="max",
        patience=cfg.patience,
    )

    tagger = tag.Tagger(best, vocab, cfg.batch_size, cfg.length_multiple)
    validation = tagger.evaluate(splits.validation)
    reported, name = (
        (tagger.evaluate(splits.test), "test") if splits.test else (validation, "validation")
    )
    corpus = splits.reported
    run_dir.write_json(
        "metrics.json",
        {
            **reported,
            "split": name,
            "data": corpus.origin,
            "validation": {k: validation[k] for k in ("precision", "recall", "f1")},
        },
    )
    click.echo(
        f"\nBest epoch's model (by validation entity F1) on the {name} sentences "
        f"({corpus.origin}); entity level, conlleval semantics:"
    )
    print_report(reported)
    if splits.test:
        click.echo(
            f"(validation: precision {validation['precision']:.4f} recall "
            f"{validation['recall']:.4f} F1 {validation['f1']:.4f})"
        )

    tokens = tag.tokenize(DEMO_TEXT)
    click.echo(f"\nTagging {DEMO_TEXT!r}:")
    click.echo(tag.format_sentence(tokens, tagger.tag([tokens])[0]))
    click.echo(f"\nSaved to {run_dir.path}/ (model.keras, metrics.json, {data.HELDOUT_FILE}, ...)")
    return reported
