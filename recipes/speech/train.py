"""`train`: read and split the recordings, fit with the CTC loss, decode the held-out set.

    utterances --split by speaker / chapter / level--> train / validation / held-out
        train transcripts -> the alphabet (id 0 is the CTC blank)
        audio -> mono, resampled to cfg.sample_rate -> batches of similar length
        -> common.runtime.fit, best model by the validation CER (greedy decoding)
    held-out -> CER / WER with greedy, beam and (with --lm-dir) beam + LM decoding, beside
        the trivial baseline (the most frequent training transcript)

The run directory gets, besides the runtime's files: speech.json (alphabet and decoder),
heldout.tsv and validation.tsv (manifests of the held-out and validation utterances) and
transcripts.txt (the training transcripts, one a line: the text to train a language
model on with `python -m recipes.char_lm train --data RUN/transcripts.txt`).

Everything the command line names is read and checked before the run directory is
created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from pathlib import Path

import click
import keras
import numpy as np

from common import data as common_data
from common import runtime
from common.cli import TrainArgs, print_table
from recipes.speech import config as config_lib
from recipes.speech import data as speech_data
from recipes.speech import decode as decode_lib
from recipes.speech import model as model_lib
from recipes.speech import transcribe as transcribe_lib
from recipes.speech.config import HELDOUT_FILE, MIN_SAMPLE_RATE, VALIDATION_FILE, Config

# The language model's weight and bonus are chosen from these on the validation split.
LM_WEIGHTS = (0.25, 0.5, 0.75)
LM_BONUSES = (1.0, 2.0, 3.0)
LM_TUNING_UTTERANCES = 40
# --train-lm: a char_lm run on the training transcripts, inside the run directory, trained
# for at most LM_MINUTES (char_lm's `transcripts` preset; `tiny` with the tiny preset).
LM_DIR = "lm"
LM_MINUTES = 0.5


@dataclasses.dataclass
class Splits:
    train: list
    val: list
    test: list
    description: str


def load_splits(cfg: Config, run: TrainArgs) -> Splits:
    source = common_data.resolve(run.data)
    utterances = speech_data.read_source(source, split="train")
    described = speech_data.DEFAULT_DESCRIPTION if source.kind == "default" else str(source)
    if run.validation_data:
        val_source = common_data.resolve(run.validation_data, what="--validation-data")
        val = speech_data.read_source(val_source, split="validation")
        return Splits(utterances, val, val, f"{described}; validation and held out: {val_source}")
    train, val, test = speech_data.split(
        utterances, (cfg.validation_fraction, cfg.test_fraction), run.seed
    )
    groups = len({u.group for u in utterances})
    how = "groups" if groups >= speech_data.MIN_GROUPS else f"utterances ({groups} groups)"
    return Splits(
        train,
        val,
        test,
        f"{described}; {cfg.validation_fraction:g} and {cfg.test_fraction:g} of the {how} "
        f"held out for validation and testing (seed {run.seed})",
    )


def batches(waves, labels, batch_size: int, bucket: int, *, shuffle: bool, seed: int):
    """tf.data batches of similar-length utterances: ({waveform, length}, labels padded
    with 0), waveforms padded to a multiple of `bucket` samples; with `shuffle`, the order
    of the batches is drawn afresh every epoch."""
    import tensorflow as tf

    order = np.argsort([len(w) for w in waves], kind="stable")
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    # One label width per waveform length: the training step is compiled (XLA) once per
    # shape, so each length bucket pads its labels to the longest transcript of its own or
    # a shorter bucket (about half the compilations of padding to each batch's longest).
    buckets = [-(-len(w) // bucket) for w in waves]
    widths: dict[int, int] = {}
    for k, label in zip(buckets, labels, strict=True):
        widths[k] = max(widths.get(k, 0), len(label))
    for shorter, k in itertools.pairwise(sorted(widths)):
        widths[k] = max(widths[k], widths[shorter])
    epoch = [0]

    def generate():
        rng = np.random.default_rng([seed, epoch[0]])
        epoch[0] += 1
        for k in rng.permutation(len(groups)) if shuffle else range(len(groups)):
            chosen = groups[k]
            inputs = transcribe_lib.batch_inputs([waves[i] for i in chosen], bucket)
            longest = -(-widths[max(buckets[i] for i in chosen)] // 16) * 16
            target = np.zeros((len(chosen), longest), np.int32)
            for row, i in enumerate(chosen):
                target[row, : len(labels[i])] = labels[i]
            yield inputs, target

    signature = (
        {
            "waveform": tf.TensorSpec([None, None], tf.float32),
            "length": tf.TensorSpec([None], tf.int32),
        },
        tf.TensorSpec([None, None], tf.int32),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(groups))).prefetch(2)


def ctc_frames_needed(text: str) -> int:
    """The fewest frames a CTC alignment of `text` takes: a frame per character and a
    blank between two equal neighbours."""
    return len(text) + sum(a == b for a, b in zip(text, text[1:], strict=False))


class ValidationCER(keras.callbacks.Callback):
    """Adds `val_cer` and `val_wer` (greedy decoding of the validation utterances) to the
    logs after every epoch, so the best model is the one that transcribes best."""

    def __init__(self, waves, texts, info):
        super().__init__()
        self.waves, self.texts, self.info = waves, texts, info

    def on_epoch_end(self, epoch, logs=None):
        all_log_probs = transcribe_lib.log_probs(self.model, self.waves, self.info)
        hypotheses = [
            speech_data.decode(decode_lib.greedy(lp), self.info.alphabet) for lp in all_log_probs
        ]
        rates = transcribe_lib.error_rates(self.texts, hypotheses)
        if logs is not None:
            logs["val_cer"], logs["val_wer"] = rates["cer"], rates["wer"]


def choose_fusion(recognizer_lm, all_log_probs, texts, alphabet, beam_width):
    """The (weight, bonus) of LM_WEIGHTS x LM_BONUSES with the lowest validation CER. Each
    utterance is decoded with every pair while the LM's prefix cache holds its prefixes,
    then the cache is emptied."""
    grid = [decode_lib.Fusion(w, b) for w in LM_WEIGHTS for b in LM_BONUSES]
    hypotheses: list[list[str]] = [[] for _ in grid]
    for lp in all_log_probs:
        for k, fusion in enumerate(grid):
            ids = decode_lib.lm_beam(lp, recognizer_lm, fusion, beam_width)
            hypotheses[k].append(speech_data.decode(ids, alphabet))
        recognizer_lm.clear()
    rates = [transcribe_lib.error_rates(texts, h)["cer"] for h in hypotheses]
    best = int(np.argmin(rates))
    return grid[best], rates[best]


def decoder_table(info, waves, texts, val_waves, val_texts, model, lm=None):
    """Held-out CER/WER per decoder; with `lm` (a decode.CharLM), the fusion weight is chosen on the
    validation utterances first. Returns (rows, info with the best decoder, hypotheses)."""
    all_log_probs = transcribe_lib.log_probs(model, waves, info)
    rows, hypotheses = [], {}
    greedy = [speech_data.decode(decode_lib.greedy(lp), info.alphabet) for lp in all_log_probs]
    beam = [
        speech_data.decode(decode_lib.beam(lp[None], info.beam_width)[0], info.alphabet)
        for lp in all_log_probs
    ]
    for name, texts_out in (("greedy", greedy), ("beam", beam)):
        hypotheses[name] = texts_out
        rows.append({"decoder": name, **transcribe_lib.error_rates(texts, texts_out)})
    if lm is not None:
        val_log_probs = transcribe_lib.log_probs(model, val_waves[:LM_TUNING_UTTERANCES], info)
        started = time.monotonic()
        fusion, val_cer = choose_fusion(
            lm, val_log_probs, val_texts[:LM_TUNING_UTTERANCES], info.alphabet, info.beam_width
        )
        click.echo(
            f"Language model {lm.model_dir}: weight {fusion.weight:g}, bonus {fusion.bonus:g} chosen on "
            f"{len(val_log_probs)} validation utterances (CER {val_cer:.4f}) in "
            f"{time.monotonic() - started:.0f} s"
        )
        fused = [
            speech_data.decode(decode_lib.lm_beam(lp, lm, fusion, info.beam_width), info.alphabet)
            for lp in all_log_probs
        ]
        hypotheses["lm"] = fused
        rows.append({"decoder": "beam + LM", **transcribe_lib.error_rates(texts, fused)})
        info = dataclasses.replace(
            info,
            lm_dir=str(Path(lm.model_dir).resolve()),
            lm_weight=fusion.weight,
            lm_bonus=fusion.bonus,
        )
    best = min(rows, key=lambda row: row["cer"])["decoder"]
    info = dataclasses.replace(info, decoder={"beam + LM": "lm"}.get(best, best))
    return rows, info, hypotheses


def train_language_model(run: TrainArgs, texts) -> Path:
    """A character language model of `texts` (the training transcripts), trained with the
    char_lm recipe into RUN/lm before the acoustic model; returns its directory. Text too
    short to train on is a one-line error before anything is written."""
    import tempfile

    from common.errors import UserError
    from recipes.char_lm import config as lm_config
    from recipes.char_lm import train as lm_train

    preset = "tiny" if run.preset == "tiny" else "transcripts"
    # Validation blocks of 256 characters, so that a few hundred transcripts make a split.
    cfg = dataclasses.replace(lm_config.PRESETS[preset], time_budget=LM_MINUTES, block_chars=256)
    lm_dir = Path(run.output_dir) / LM_DIR
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "transcripts.txt"
        text.write_text("".join(f"{t}\n" for t in texts), encoding="utf-8")
        lm_run = dataclasses.replace(
            run, data=str(text), validation_data=None, preset=preset, output_dir=lm_dir
        )
        try:
            prepared = lm_train.prepare(cfg, lm_run.data, None, lm_run.seed)  # writes nothing
        except UserError:
            raise UserError(
                f"--train-lm: {len(texts)} training transcripts of "
                f"{sum(len(t) + 1 for t in texts):,} characters are too little text to train "
                "a language model on; train one on more text of the language (char_lm) and "
                "pass it with --lm-dir"
            ) from None
        click.echo(f"Language model: char_lm --preset {preset} on the training transcripts")
        lm_train.train(cfg, lm_run, prepared)
    return lm_dir


def narrowband(cfg: Config, utterances) -> Config:
    """`cfg` at the highest rate the training recordings have, where all of them are
    below `cfg.sample_rate` (but at least MIN_SAMPLE_RATE): 8 kHz telephone speech then
    gets its mel bins up to 4 kHz, instead of a quarter of them over the empty band above
    it, which the per-utterance normalisation would blow up to unit-variance noise."""
    highest = 0
    for utterance in utterances:
        highest = max(highest, speech_data.recorded_rate(utterance))
        if highest >= cfg.sample_rate:
            return cfg
    rate = max(highest, MIN_SAMPLE_RATE)
    if not highest or rate >= cfg.sample_rate:  # nothing readable: reported when read
        return cfg
    click.echo(
        f"The training recordings are at most {highest:,} Hz: the model works at {rate:,} Hz "
        f"(mel bins up to {rate // 2:,} Hz; other recordings are resampled to it)."
    )
    return dataclasses.replace(cfg, sample_rate=rate)


def train(cfg: Config, run: TrainArgs, lm_dir=None, train_lm: bool = False) -> dict:
    """Train, evaluate the best model on the held-out utterances, write the run directory.

    `train_lm`: first train a character language model on the training transcripts
    (`train_language_model`) and decode with it as with `lm_dir`."""
    started = time.monotonic()
    splits = load_splits(cfg, run)
    train_utts = splits.train[: cfg.max_examples] if cfg.max_examples else splits.train
    cfg = narrowband(cfg, train_utts)
    train_waves = speech_data.load_audio(train_utts, cfg.sample_rate, "training")
    limit = cfg.max_seconds * cfg.sample_rate if cfg.max_seconds else float("inf")
    frames = functools.partial(
        config_lib.output_frames, config_lib.hop_length(cfg), cfg.time_stride
    )
    keep = [
        i
        for i, (u, w) in enumerate(zip(train_utts, train_waves, strict=True))
        if len(w) <= limit and ctc_frames_needed(u.text) <= frames(len(w))
    ]
    if len(keep) < len(train_utts):
        click.echo(
            f"Left out {len(train_utts) - len(keep)} training utterances longer than "
            f"{cfg.max_seconds} s or with more characters than CTC can align to their frames."
        )
    train_utts = [train_utts[i] for i in keep]
    train_waves = [train_waves[i] for i in keep]
    if not train_utts:
        raise click.ClickException("no training utterance is left to train on")
    val_waves = speech_data.load_audio(splits.val, cfg.sample_rate, "validation")
    test_waves = (
        val_waves
        if splits.test is splits.val
        else speech_data.load_audio(splits.test, cfg.sample_rate, "held-out")
    )
    train_texts = [u.text for u in train_utts]
    alphabet = speech_data.alphabet_of(train_texts)
    if train_lm:
        lm_dir = train_language_model(run, train_texts)
    strategy = runtime.setup(run)
    # A bad --lm-dir fails here, before anything is written.
    lm = decode_lib.CharLM(lm_dir, alphabet) if lm_dir is not None else None
    labels = [speech_data.encode(t, alphabet) for t in train_texts]
    hours = sum(len(w) for w in train_waves) / cfg.sample_rate / 3600
    longest = max(len(w) for w in train_waves) / cfg.sample_rate
    info = transcribe_lib.info_for(cfg, alphabet, window_seconds=max(longest, 4.0))
    click.echo(
        f"Data: {splits.description}\n  train: {len(train_utts)} utterances, {hours:.2f} h, "
        f"{len({u.group for u in train_utts})} groups, longest {longest:.1f} s\n"
        f"  validation: {len(splits.val)} utterances; held out: {len(splits.test)}\n"
        f"  alphabet ({len(alphabet)}): {''.join(alphabet)!r}"
    )

    with strategy.scope():
        model = model_lib.build_model(cfg, len(alphabet), seed=run.seed)
        steps = -(-len(train_utts) // cfg.batch_size) * cfg.epochs
        model.compile(
            optimizer=runtime.optimizer(cfg.learning_rate, cfg.clipnorm),
            loss=model_lib.ctc_loss,
        )
    model.summary(print_fn=lambda line, **_: click.echo(line), line_length=96)

    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    run_dir.write_json(transcribe_lib.INFO_FILE, info)
    speech_data.write_manifest(run_dir, HELDOUT_FILE, splits.test, test_waves, cfg.sample_rate)
    speech_data.write_manifest(run_dir, VALIDATION_FILE, splits.val, val_waves, cfg.sample_rate)
    run_dir.write_text("transcripts.txt", "\n".join(train_texts) + "\n")

    val_texts = [u.text for u in splits.val]
    best = runtime.fit(
        model,
        batches(train_waves, labels, cfg.batch_size, cfg.sample_rate, shuffle=True, seed=run.seed),
        batches(
            val_waves,
            [speech_data.encode(t, alphabet) for t in val_texts],
            cfg.batch_size,
            cfg.sample_rate,
            shuffle=False,
            seed=run.seed,
        ),
        run_dir=run_dir,
        epochs=cfg.epochs,
        time_budget=cfg.time_budget,
        monitor="val_cer",
        mode="min",
        patience=cfg.patience,
        callbacks=[
            ValidationCER(val_waves, val_texts, info),
            # the budget, not the 40 planned epochs, is what ends the presets' runs
            runtime.BudgetCosineDecay(cfg.learning_rate, steps, cfg.time_budget),
        ],
    )

    texts = [u.text for u in splits.test]
    rows, info, hypotheses = decoder_table(info, test_waves, texts, val_waves, val_texts, best, lm)
    info = info.relative_to(run_dir.path)
    run_dir.write_json(transcribe_lib.INFO_FILE, info)
    rows.insert(0, transcribe_lib.baseline_row(train_texts, texts))
    history = runtime.read_history(run_dir.file("history.csv"))
    summary = {
        "data": splits.description,
        "utterances": len(texts),
        "decoders": rows,
        "decoder": info.decoder,
        "cer": min(r["cer"] for r in rows[1:]),
        "wer": min(r["wer"] for r in rows[1:] if r["cer"] == min(x["cer"] for x in rows[1:])),
        "epochs_run": len(history.get("epoch", [])),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    run_dir.write_json("metrics.json", summary)

    click.echo(f"\nHeld-out utterances ({len(texts)}), error rates as fractions:")
    print_table(rows)
    chosen = hypotheses["lm" if info.decoder == "lm" else info.decoder]
    click.echo(f"\nExamples (decoder: {info.decoder}):")
    for u, hypothesis in list(zip(splits.test, chosen, strict=True))[:5]:
        click.echo(f"  {u.path}\n    reference:  {u.text}\n    recognised: {hypothesis}")
    click.echo(
        f"\nRun directory: {run_dir.path} (model.keras, {transcribe_lib.INFO_FILE}, "
        f"metrics.json, {HELDOUT_FILE}, transcripts.txt, training.png) in "
        f"{summary['wall_seconds']:.0f} s\nTry: python -m recipes.speech transcribe --model-dir "
        f"{run_dir.path} {splits.test[0].path}"
    )
    return summary
