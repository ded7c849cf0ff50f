"""Train, evaluate and show: what `python -m recipes.translation train` runs.

1. Read and check all input (data, languages) before anything is written.
2. Build one tokenizer per side from the training pairs; drop pairs above the length
   limits (counted and reported).
3. Train with `common.runtime.fit` (teacher forcing, masked cross-entropy, best model by
   validation loss, resume, time budget); after each epoch, greedy-decode a few hundred
   held-out sources and print the exact-match rate and BLEU.
4. Evaluate the best model on the whole held-out set (sacrebleu BLEU and chrF, exact
   match), write `metrics.json`, print a summary table, sample translations and draw
   `attention.png`.

Run directory (the contract of `common.runtime`): config.json, argv.txt, data.json
(`data.DataInfo`), source_tokenizer.json, target_tokenizer.json, heldout.tsv (the
held-out pairs `metrics.json` reports on, as TSV: `evaluate` without --data reads it),
history.csv, model.keras, metrics.json, training.png, attention.png, logs/.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import click
import keras

from common import runtime
from common.cli import print_table
from common.errors import UserError
from common.tokenization import BOS_ID, EOS_ID, SubwordTokenizer, Tokenizer, load_tokenizer
from recipes.translation import data as data_lib
from recipes.translation import model as model_lib
from recipes.translation import translate as translate_lib
from recipes.translation.config import SUBWORD_VOCAB, Config

MONITOR_EXAMPLES = 256


class DecodeMonitor(keras.callbacks.Callback):
    """After each epoch: greedy exact match and BLEU on a fixed slice of held-out pairs."""

    def __init__(self, translator_factory, pairs, lowercase: bool):
        super().__init__()
        self.translator_factory = translator_factory
        self.pairs = [(s, t.lower() if lowercase else t) for s, t in pairs]
        self.translator = None

    def on_epoch_end(self, epoch, logs=None):
        if self.translator is None:
            self.translator = self.translator_factory(self.model)
        metrics, _ = translate_lib.evaluate_pairs(self.translator, self.pairs, beam_size=1)
        click.echo(
            f"epoch {epoch + 1}: greedy on {len(self.pairs)} held-out pairs: "
            f"exact match {metrics['exact_match']:.3f}, BLEU {metrics['bleu']:.2f}"
        )


def build_tokenizer(cfg: Config, texts, level: str, max_size: int | None):
    """A tokenizer learned from one side of the training pairs only."""
    if level == "subword":
        try:
            return SubwordTokenizer.build(
                texts, max_size=max_size or SUBWORD_VOCAB, lowercase=cfg.lowercase
            )
        except ValueError as e:
            raise UserError(f"subword vocabulary: {e}") from None
    return Tokenizer.build(
        texts, level=level, max_size=max_size, min_freq=cfg.min_freq, lowercase=cfg.lowercase
    )


def build_tokenizers(cfg: Config, pairs):
    """One tokenizer per side, built from the training pairs only."""
    source = build_tokenizer(cfg, [s for s, _ in pairs], cfg.source_level, cfg.max_source_vocab)
    target = build_tokenizer(cfg, [t for _, t in pairs], cfg.target_level, cfg.max_target_vocab)
    return source, target


def make_translator(model, source_tok, target_tok, cfg: Config) -> translate_lib.Translator:
    return translate_lib.Translator(
        model,
        source_tok,
        target_tok,
        max_source_length=cfg.max_source_length,
        max_target_length=cfg.max_target_length,
        source_bucket=cfg.source_bucket,
    )


def references(pairs, target_tok: Tokenizer) -> list[tuple[str, str]]:
    """Pairs with the target lowercased when the target tokenizer lowercases."""
    return [(s, t.lower() if target_tok.lowercase else t) for s, t in pairs]


def train(cfg: Config, run) -> dict:
    """Train on `run.data` with `cfg`; returns the held-out metrics."""
    corpus, languages = data_lib.load_corpus(
        cfg,
        data=run.data,
        validation_data=run.validation_data,
        seed=run.seed,
        languages=(cfg.source_lang, cfg.target_lang),
    )
    source_tok, target_tok = build_tokenizers(cfg, corpus.train)
    limits = dict(max_source_length=cfg.max_source_length, max_target_length=cfg.max_target_length)
    train_src, train_tgt, dropped = data_lib.encode_pairs(
        corpus.train, source_tok, target_tok, **limits
    )
    val_src, val_tgt, val_dropped = data_lib.encode_pairs(
        corpus.validation, source_tok, target_tok, **limits
    )
    if not train_src:
        raise UserError(
            f"no training pair fits max_source_length={cfg.max_source_length} and "
            f"max_target_length={cfg.max_target_length} tokens ({run.data or 'default'})"
        )
    if not val_src:
        raise UserError("no validation pair fits the length limits; pass --validation-data")
    click.echo(f"Data: {corpus.description}.")
    click.echo(
        f"Vocabularies: source {source_tok.vocab_size} {cfg.source_level}s, target "
        f"{target_tok.vocab_size} {cfg.target_level}s. Training on {len(train_src)} pairs "
        f"({dropped} longer than the limits dropped), validation loss on {len(val_src)}."
    )

    strategy = runtime.setup(run)
    with strategy.scope():
        model = model_lib.build_model(cfg, source_tok.vocab_size, target_tok.vocab_size)
        # The cosine decay (lr_decay) ends after `epochs`: a preset plans them to fit its budget.
        steps = len(train_src) // min(cfg.batch_size, len(train_src))
        decay_steps = steps * cfg.epochs if cfg.lr_decay else None
        optimizer = runtime.optimizer(cfg.learning_rate, cfg.clipnorm, decay_steps=decay_steps)
        model_lib.compile_model(model, optimizer)
    click.echo(
        f"Model: {cfg.cell} encoder-decoder, attention={cfg.attention}, "
        f"{model.count_params():,} parameters."
    )

    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    source_tok.save(run_dir.file("source_tokenizer.json"))
    target_tok.save(run_dir.file("target_tokenizer.json"))
    run_dir.write_text(data_lib.HELDOUT_FILE, data_lib.tsv_text(corpus.validation))
    run_dir.write_json(
        "data.json",
        data_lib.DataInfo(
            data=run.data,
            validation_data=run.validation_data,
            seed=run.seed,
            description=corpus.description,
            source_lang=languages[0],
            target_lang=languages[1],
            train_pairs=len(train_src),
            validation_pairs=len(corpus.validation),
        ),
    )

    make = dict(
        batch_size=cfg.batch_size,
        bos=BOS_ID,
        eos=EOS_ID,
        seed=run.seed,
        source_bucket=cfg.source_bucket,
    )
    train_ds = data_lib.make_dataset(train_src, train_tgt, training=True, **make)
    val_ds = data_lib.make_dataset(val_src, val_tgt, training=False, **make)
    monitor = DecodeMonitor(
        lambda m: make_translator(m, source_tok, target_tok, cfg),
        corpus.validation[:MONITOR_EXAMPLES],
        target_tok.lowercase,
    )
    best = runtime.fit(
        model,
        train_ds,
        val_ds,
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=cfg.time_budget,
        patience=cfg.patience,
        callbacks=[monitor],
    )

    start = time.monotonic()
    loss = best_epoch(run_dir.file("history.csv"))
    translator = make_translator(best, source_tok, target_tok, cfg)
    pairs = references(corpus.validation, target_tok)
    metrics, outputs = translate_lib.evaluate_pairs(
        translator, pairs, beam_size=cfg.beam_size, length_penalty=cfg.length_penalty
    )
    metrics = {
        **metrics,
        **loss,
        "lowercased": target_tok.lowercase,
        "split": "validation",
        "decode_seconds": round(time.monotonic() - start, 2),
    }
    run_dir.write_json("metrics.json", metrics)

    click.echo(
        f"\nHeld-out results ({metrics['examples']} pairs, "
        f"{'greedy' if cfg.beam_size == 1 else f'beam {cfg.beam_size}'}):"
    )
    print_table(
        [
            {
                k: metrics[k]
                for k in ("bleu", "chrf", "exact_match", "token_accuracy", "loss", "examples")
            }
        ]
    )
    show_examples(translator, pairs[: cfg.show_examples], outputs[: cfg.show_examples])
    if cfg.attention != "none":
        plot_examples(translator, [s for s, _ in pairs[:4]], run_dir.file("attention.png"))
    click.echo(f"\nRun directory: {run_dir.path}")
    return metrics


def best_epoch(history_csv: Path) -> dict:
    """Validation loss and token accuracy of the best epoch (the saved model's)."""
    history = runtime.read_history(history_csv)
    losses = history.get("val_loss") or [float("nan")]
    best = min(range(len(losses)), key=lambda i: losses[i])
    return {
        "loss": round(losses[best], 6),
        "token_accuracy": round((history.get("val_token_accuracy") or [float("nan")])[best], 6),
        "best_epoch": best + 1,
    }


def show_examples(translator, pairs, outputs) -> None:
    click.echo("\nSample translations (held-out):")
    if max((len(s) + len(o) for (s, _), o in zip(pairs, outputs, strict=True)), default=0) > 60:
        for (s, t), o in zip(pairs, outputs, strict=True):  # sentences: one block per pair
            click.echo(f"  source     {s}\n  output     {o}\n  reference  {t}\n")
        return
    rows = [
        (s, o, "ok" if o == t else f"expected {t}")
        for (s, t), o in zip(pairs, outputs, strict=True)
    ]
    print_table(rows, headers=["source", "output", ""])


def plot_examples(translator, texts, path: Path) -> None:
    prepared = translator.prepare(texts)
    rows = [r for r in prepared.ids if r]
    if not rows:
        return
    hyps = translator.greedy(rows)
    panels = [
        translate_lib.attention_panel(translator, r, h) for r, h in zip(rows, hyps, strict=True)
    ]
    translate_lib.plot_attention(panels, path)
    click.echo(f"Attention of {len(panels)} held-out translations: {path}")


# ----------------------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True)
class Run:
    """What `translate` and `evaluate` load from a run directory."""

    cfg: Config
    translator: translate_lib.Translator
    data: data_lib.DataInfo
    path: Path


def load_run(model_dir: Path) -> Run:
    """Config, tokenizers and best model of a finished run; problems raise UserError."""
    run_dir = runtime.RunDir(model_dir)
    cfg = run_dir.read_config(Config)
    source_tok = load_tokenizer(run_dir.file("source_tokenizer.json"))
    target_tok = load_tokenizer(run_dir.file("target_tokenizer.json"))
    model = runtime.load_model(model_dir)
    if not isinstance(model, model_lib.Seq2Seq):
        raise UserError(
            f"{run_dir.file('model.keras')}: not a translation model ({type(model).__name__})"
        )
    if (model.source_vocab_size, model.target_vocab_size) != (
        source_tok.vocab_size,
        target_tok.vocab_size,
    ):
        raise UserError(f"{model_dir}: the tokenizers do not match model.keras (vocabulary sizes)")
    data = run_dir.read_dataclass("data.json", data_lib.DataInfo)
    return Run(cfg, make_translator(model, source_tok, target_tok, cfg), data, Path(model_dir))


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)
