"""Inference speed side by side in one run (``make bench``): generation, decoding, CLI start-up.

Cases (random weights: the speed of a step does not depend on what the weights learned):

- char_lm ``sample``: the default preset's model (2 x LSTM(256), the vocabulary of the
  default text), 2,000 characters at batch 1 and at batch 32 (``--num-samples 32``), the
  compiled loop of ``common.sampling``.
- The anchor: the TensorFlow text-generation tutorial's generator (``OneStep``: a per-step
  ``tf.function`` that maps strings to ids, runs the model on one character with the state
  fed back, draws with ``tf.random.categorical`` and maps the id back to a string, driven
  from a Python loop), against ``common.sampling`` on the same one-layer GRU(1024) character
  model of the same vocabulary, batch 1.
- translation: greedy and beam-4 decoding of 1,000 random sentences with the ``words``
  preset's model (vocabularies of 6,000, 30-token limits), the compiled loops of
  ``recipes/translation/search.py`` against the step-by-step Python loops they replaced
  (``bench/translation_baseline.py``).
- speech ``transcribe``: the default preset's acoustic model on a 10-second recording at
  batch 1 (features, network, then greedy or beam-16 decoding, as `transcribe` runs them),
  as a multiple of real time (audio seconds per wall-clock second).
- dna ``predict``: the default preset's DanQ model (random weights) on 10,000 random
  sequences of 200 bp, strings in (the one-hot encoding is in the model), in the batches
  `predict` runs (2,048 of 200 bp); with --strands off and average (both strands: twice
  the work).
- protein ``predict``: the default preset's model (random weights) on 1,000 random chains
  of 100 to 400 residues (mean 250, about NEW364's median), batched by length as `predict`
  runs them, in chains per second.
- ``python -m recipes.<name> --help`` wall time, median of 5 runs, in fresh processes.

Each pair is timed in alternating rounds after a warm-up call (which compiles; its time is
reported apart), and the ratio is the median over rounds of the per-round ratios, so a slow
round (another process on the machine) affects both sides of its ratio. Results are printed
and written to ``bench/results/inference-<date>-<host>.md`` (and ``.json``).

    python -m bench.inference_bench                 # everything, 3 rounds
    python -m bench.inference_bench --rounds 1 --cases sample,help
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.rnn_bench import RESULTS_DIR, machine_info  # noqa: E402
from common.runtime import atomic_write  # noqa: E402

CASES = ("sample", "anchor", "translation", "speech", "dna", "protein", "help")
RECIPES = (
    "char_lm", "sentiment", "ner", "translation", "activity", "video", "music", "speech", "dna",
    "protein",
)  # fmt: skip
ROOT = Path(__file__).resolve().parent.parent


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def side_by_side(new, old, rounds, log, what):
    """Warm both, then `rounds` alternating timings; per-round ratios old/new."""
    warm_new, _ = timed(new)
    warm_old, _ = timed(old)
    times = {"new": [], "old": []}
    for r in range(rounds):
        order = (("new", new), ("old", old)) if r % 2 == 0 else (("old", old), ("new", new))
        for key, fn in order:
            times[key].append(timed(fn)[0])
        log(
            f"  {what} round {r + 1}: compiled {times['new'][-1]:.3f} s, "
            f"baseline {times['old'][-1]:.3f} s"
        )
    ratios = [o / n for n, o in zip(times["new"], times["old"], strict=True)]
    return {
        "new_s": statistics.median(times["new"]),
        "old_s": statistics.median(times["old"]),
        "new_first_call_s": warm_new,
        "old_first_call_s": warm_old,
        "speedup": statistics.median(ratios),
    }


# ----------------------------------------------------------------------------- char_lm


def char_lm_sampler(cfg):
    """A char_lm Sampler over a randomly initialised model of `cfg`, default-text vocabulary."""
    from recipes.char_lm import data
    from recipes.char_lm import model as model_lib
    from recipes.char_lm.sample import Sampler

    text = data.shakespeare()[: cfg.max_examples]
    tok = data.build_tokenizer(cfg, text)
    keras.utils.set_random_seed(0)
    model = model_lib.build_model(cfg, tok.vocab_size)
    return Sampler(cfg, tok, model), tok


def bench_sample(rounds, log, length=2000):
    from recipes.char_lm import config

    cfg = config.PRESETS["default"]
    sampler, tok = char_lm_sampler(cfg)
    out = {"model": f"{cfg.layers} x {cfg.cell.upper()}({cfg.units}), vocab {tok.vocab_size}"}
    for batch in (1, 32):
        run = lambda b=batch: sampler.generate([], length=length, num_samples=b, seed=1)  # noqa: E731
        first, _ = timed(run)
        seconds = statistics.median(timed(run)[0] for _ in range(rounds))
        out[f"batch_{batch}"] = {
            "chars_per_s": batch * length / seconds,
            "seconds": seconds,
            "first_call_s": first,
        }
        log(
            f"  sample batch {batch}: {batch * length / seconds:,.0f} chars/s "
            f"({seconds:.3f} s for {length} steps; first call {first:.2f} s)"
        )
    return out


class TutorialModel(keras.Model):
    """The tutorial's model: Embedding(256) -> GRU(1024) -> Dense(vocab), state in and out."""

    def __init__(self, vocab_size, embedding_dim=256, rnn_units=1024):
        super().__init__()
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim)
        self.gru = keras.layers.GRU(rnn_units, return_sequences=True, return_state=True)
        self.dense = keras.layers.Dense(vocab_size)

    def call(self, inputs, states=None, return_state=False, training=False):
        x = self.embedding(inputs, training=training)
        if states is None:
            states = self.gru.get_initial_state(tf.shape(x)[0])
        x, states = self.gru(x, initial_state=states, training=training)
        x = self.dense(x, training=training)
        return (x, states) if return_state else x


class OneStep(tf.Module):
    """The tutorial's generator: one `tf.function` call per character, driven from Python."""

    def __init__(self, model, chars, temperature=1.0):
        super().__init__()
        self.model, self.temperature = model, temperature
        self.ids_from_chars = keras.layers.StringLookup(vocabulary=chars, mask_token=None)
        self.chars_from_ids = keras.layers.StringLookup(
            vocabulary=chars, invert=True, mask_token=None
        )
        # Never emit the out-of-vocabulary id ("[UNK]", id 0).
        self.prediction_mask = tf.sparse.to_dense(
            tf.SparseTensor(indices=[[0]], values=[-float("inf")], dense_shape=[len(chars) + 1])
        )

    @tf.function
    def generate_one_step(self, inputs, states=None):
        input_chars = tf.strings.unicode_split(inputs, "UTF-8")
        input_ids = self.ids_from_chars(input_chars).to_tensor()
        logits, states = self.model(inputs=input_ids, states=states, return_state=True)
        logits = logits[:, -1, :] / self.temperature + self.prediction_mask
        ids = tf.squeeze(tf.random.categorical(logits, num_samples=1), axis=-1)
        return self.chars_from_ids(ids), states


def bench_anchor(rounds, log, length=2000):
    from recipes.char_lm import config

    cfg = dataclasses.replace(
        config.PRESETS["default"], cell="gru", layers=1, units=1024, embedding_dim=256
    )
    sampler, tok = char_lm_sampler(cfg)
    chars = sorted({tok.id_to_token(i) for i in range(4, tok.vocab_size)})
    tutorial = TutorialModel(len(chars) + 1)
    tutorial(tf.zeros([1, 1], tf.int64))
    one_step = OneStep(tutorial, chars)

    def tutorial_run():
        states, char = None, tf.constant(["R"])
        for _ in range(length):
            char, states = one_step.generate_one_step(char, states=states)
        return char

    def ours():
        return sampler.generate([], length=length, num_samples=1, seed=1)

    result = side_by_side(ours, tutorial_run, rounds, log, "GRU(1024) anchor")
    floor = matmul_floor(cfg.embedding_dim, cfg.units, tok.vocab_size, length, rounds)
    result.update(
        model=f"1 x GRU(1024), embedding 256, vocab {tok.vocab_size}",
        ours_chars_per_s=length / result["new_s"],
        tutorial_chars_per_s=length / result["old_s"],
        matmul_floor_steps_per_s=floor,
    )
    log(
        f"  anchor: ours {result['ours_chars_per_s']:,.0f} chars/s, tutorial OneStep "
        f"{result['tutorial_chars_per_s']:,.0f} chars/s, x{result['speedup']:.1f}; the "
        f"step's matmuls alone: {floor:,.0f} steps/s"
    )
    return result


def matmul_floor(embedding_dim, units, vocab, length, rounds):
    """Steps per second of an XLA loop that does only one GRU step's matmuls (input and
    recurrent kernels, the output layer) at batch 1: the arithmetic a generator cannot avoid."""
    kernel = tf.random.normal([embedding_dim + units, 3 * units]) * 0.01
    head = tf.random.normal([units, vocab]) * 0.01

    @tf.function(jit_compile=True)
    def loop(h):
        def body(i, h):
            z = tf.matmul(tf.concat([h[:, :embedding_dim], h], axis=1), kernel)
            h = tf.tanh(z[:, :units])
            return i + 1, h + 0.0 * tf.reduce_sum(tf.matmul(h, head))

        return tf.while_loop(lambda i, h: i < length, body, (0, h))[1]

    h = tf.zeros([1, units])
    loop(h)
    return length / statistics.median(timed(lambda: loop(h))[0] for _ in range(rounds))


# ----------------------------------------------------------------------------- translation


def bench_translation(rounds, log, sentences=1000):
    from bench.translation_baseline import PythonLoopDecoding
    from common.tokenization import SPECIALS, Tokenizer
    from recipes.translation import config, model, translate

    cfg = config.PRESETS["words"]
    keras.utils.set_random_seed(0)
    vocab = cfg.max_source_vocab
    seq2seq = model.build_model(cfg, vocab, cfg.max_target_vocab)
    tok = Tokenizer([*SPECIALS, *(f"w{i}" for i in range(len(SPECIALS), vocab))], level="word")
    translator = translate.Translator(
        seq2seq,
        tok,
        tok,
        max_source_length=cfg.max_source_length,
        max_target_length=cfg.max_target_length,
        source_bucket=cfg.source_bucket,
    )
    rng = np.random.default_rng(0)
    sources = [
        rng.integers(4, vocab, size=rng.integers(5, cfg.max_source_length + 1)).tolist()
        for _ in range(sentences)
    ]
    baseline = PythonLoopDecoding(translator)
    out = {
        "model": f"{cfg.attention} attention, {cfg.cell} {cfg.encoder_units}x2 encoder, "
        f"{cfg.decoder_units} decoder, vocabularies {vocab}/{cfg.max_target_vocab}",
        "sentences": sentences,
    }
    for name, new, old in (
        ("greedy", lambda: translator.greedy(sources), lambda: baseline.greedy(sources)),
        (
            "beam_4",
            lambda: translator.beam_search(sources, beam_size=4),
            lambda: baseline.beam_search(sources, beam_size=4),
        ),
    ):
        result = side_by_side(new, old, rounds, log, f"translation {name}")
        result["compiled_sentences_per_s"] = sentences / result["new_s"]
        result["python_sentences_per_s"] = sentences / result["old_s"]
        out[name] = result
        log(
            f"  translation {name}: compiled {result['compiled_sentences_per_s']:,.0f} "
            f"sentences/s, Python loop {result['python_sentences_per_s']:,.0f}, "
            f"x{result['speedup']:.1f}"
        )
    return out


# ----------------------------------------------------------------------------- CLI


def bench_speech(rounds, log, seconds=10.0):
    from recipes.speech import config
    from recipes.speech import decode as decode_lib
    from recipes.speech import model as model_lib
    from recipes.speech import transcribe as transcribe_lib

    cfg = config.PRESETS["default"]
    alphabet = list(" '0123456789abcdefghijklmnopqrstuvwxyz")
    keras.utils.set_random_seed(0)
    model = model_lib.build_model(cfg, len(alphabet))
    info = transcribe_lib.info_for(cfg, alphabet, window_seconds=15.0)
    wave = (0.1 * np.random.default_rng(0).normal(size=int(seconds * cfg.sample_rate))).astype(
        np.float32
    )
    out = {
        "model": f"{cfg.layers} x Bidirectional({cfg.cell.upper()}({cfg.units})), "
        f"{cfg.mel_bins} mel bins, {len(alphabet)} characters",
        "audio_seconds": seconds,
    }
    for decoder in ("greedy", "beam"):

        def run(decoder=decoder):
            log_probs = transcribe_lib.long_log_probs(model, wave, info)
            return decode_lib.decode_batch(log_probs[None], decoder, cfg.beam_width)

        first, _ = timed(run)
        wall = statistics.median(timed(run)[0] for _ in range(rounds))
        out[decoder] = {"x_real_time": seconds / wall, "seconds": wall, "first_call_s": first}
        log(
            f"  speech {decoder}: {seconds / wall:.0f}x real time ({wall:.3f} s; first {first:.2f} s)"
        )
    return out


def bench_dna(rounds, log, count=10_000, length=200):
    import dataclasses

    from recipes.dna import config
    from recipes.dna import model as model_lib
    from recipes.dna import predict as predict_lib

    cfg = config.PRESETS["default"]
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), size=length)) for _ in range(count)]
    out = {
        "model": f"DanQ: Conv1D({cfg.conv_filters}, {cfg.conv_kernel}), "
        f"pool {model_lib.scanner_pool(cfg, length)}, "
        f"Bidirectional({cfg.cell.upper()}({cfg.units})), dense {cfg.dense}",
        "sequences": count,
        "length": length,
        "batch": predict_lib.batch_size(length),
    }
    for strands in ("off", "average"):
        keras.utils.set_random_seed(0)
        model = model_lib.build_model(
            dataclasses.replace(cfg, strands=strands), classes=2, length=length
        )

        def run(model=model):
            return predict_lib.probabilities(model, seqs)

        first, _ = timed(run)
        wall = statistics.median(timed(run)[0] for _ in range(rounds))
        out[strands] = {"per_s": count / wall, "seconds": wall, "first_call_s": first}
        log(f"  dna strands {strands}: {count / wall:,.0f} sequences/s ({wall:.3f} s)")
    return out


def bench_protein(rounds, log, count=1_000):
    from recipes.protein import config
    from recipes.protein import data as protein_data
    from recipes.protein import model as model_lib
    from recipes.protein import predict as predict_lib

    cfg = config.PRESETS["default"]
    rng = np.random.default_rng(0)
    letters = list(protein_data.AMINO_ACIDS)
    chains = ["".join(rng.choice(letters, size=int(n))) for n in rng.integers(100, 401, count)]
    keras.utils.set_random_seed(0)
    model = model_lib.build_model(cfg)

    def run():
        return predict_lib.probabilities(model, chains)

    first, _ = timed(run)
    wall = statistics.median(timed(run)[0] for _ in range(rounds))
    log(f"  protein: {count / wall:,.0f} chains/s ({wall:.3f} s)")
    return {
        "model": f"Conv1D({cfg.conv_filters} x {list(cfg.conv_kernels)}), {cfg.layers} x "
        f"Bidirectional({cfg.cell.upper()}({cfg.units}))",
        "chains": count,
        "residues": int(sum(len(c) for c in chains)),
        "per_s": count / wall,
        "seconds": wall,
        "first_call_s": first,
    }


def bench_help(rounds, log, repeats=5):
    out = {}
    for name in RECIPES:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", f"recipes.{name}", "--help"],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
        log(f"  {name} --help: {out[name]:.3f} s (median of {repeats})")
    return out


# ----------------------------------------------------------------------------- report


def report(results, info, argv, elapsed) -> str:
    lines = [
        f"# Inference benchmark {info['date']} on {info['host']}",
        "",
        f"`python -m bench.inference_bench {' '.join(argv)}`".replace(" `", "`"),
        "",
        f"Machine: {info['cpu']}, {info['cpu_count']} cores, {info['platform']}; "
        f"TensorFlow {info['tensorflow']}, Keras {info['keras']}, GPUs: {info['gpus'] or 'none'}.",
        f"Load average at start {info['loadavg_start']}, at end {info['loadavg_end']}; "
        f"{elapsed:.0f} s. Medians over rounds after a warm-up call (the first call compiles; "
        "its time is shown apart). Ratios: median of per-round ratios.",
        "",
    ]
    if "sample" in results:
        s = results["sample"]
        lines += [
            f"## char_lm sample ({s['model']}, random weights, 2,000 characters)",
            "",
            "| batch | characters/s | seconds | first call (compiles) s |",
            "|---:|---:|---:|---:|",
        ]
        for batch in (1, 32):
            e = s[f"batch_{batch}"]
            lines.append(
                f"| {batch} | {e['chars_per_s']:,.0f} | {e['seconds']:.3f} | "
                f"{e['first_call_s']:.2f} |"
            )
        lines.append("")
    if "anchor" in results:
        a = results["anchor"]
        lines += [
            f"## Anchor: TF tutorial `OneStep` vs `common.sampling` ({a['model']}, batch 1)",
            "",
            "| generator | characters/s | first call s |",
            "|---|---:|---:|",
            f"| tutorial OneStep (per-step tf.function, Python loop) | "
            f"{a['tutorial_chars_per_s']:,.0f} | {a['old_first_call_s']:.2f} |",
            f"| common.sampling (compiled loop) | {a['ours_chars_per_s']:,.0f} | "
            f"{a['new_first_call_s']:.2f} |",
            f"| **speed-up** | **x{a['speedup']:.1f}** | |",
            f"| the step's matmuls alone (XLA loop, no sampling) | "
            f"{a['matmul_floor_steps_per_s']:,.0f} | |",
            "",
        ]
    if "translation" in results:
        t = results["translation"]
        lines += [
            f"## translation decoding ({t['model']}, random weights, {t['sentences']} sentences)",
            "",
            "| decoding | compiled sentences/s | Python loop sentences/s | speed-up "
            "| compiled first call s |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in ("greedy", "beam_4"):
            e = t[name]
            lines.append(
                f"| {name.replace('_', ' ')} | {e['compiled_sentences_per_s']:,.0f} | "
                f"{e['python_sentences_per_s']:,.0f} | x{e['speedup']:.1f} | "
                f"{e['new_first_call_s']:.2f} |"
            )
        lines.append("")
    if "speech" in results:
        t = results["speech"]
        lines += [
            f"## speech transcribe ({t['model']}, random weights, a {t['audio_seconds']:g} s "
            "recording, batch 1)",
            "",
            "| decoding | times faster than real time | seconds | first call s |",
            "|---|---:|---:|---:|",
        ]
        for name in ("greedy", "beam"):
            e = t[name]
            lines.append(
                f"| {name} | {e['x_real_time']:.0f} | {e['seconds']:.3f} | {e['first_call_s']:.2f} |"
            )
        lines.append("")
    if "dna" in results:
        t = results["dna"]
        lines += [
            f"## dna predict ({t['model']}, random weights, {t['sequences']:,} sequences of "
            f"{t['length']} bp, batches of {t['batch']:,})",
            "",
            "| strands | sequences/s | seconds | first call s |",
            "|---|---:|---:|---:|",
        ]
        for name in ("off", "average"):
            e = t[name]
            lines.append(
                f"| {name} | {e['per_s']:,.0f} | {e['seconds']:.3f} | {e['first_call_s']:.2f} |"
            )
        lines.append("")
    if "protein" in results:
        t = results["protein"]
        lines += [
            f"## protein predict ({t['model']}, random weights, {t['chains']:,} chains, "
            f"{t['residues']:,} residues)",
            "",
            "| chains/s | seconds | first call s |",
            "|---:|---:|---:|",
            f"| {t['per_s']:,.0f} | {t['seconds']:.3f} | {t['first_call_s']:.2f} |",
            "",
        ]
    if "help" in results:
        lines += ["## `python -m recipes.<name> --help` (median of 5)", ""]
        lines += ["| recipe | seconds |", "|---|---:|"]
        lines += [f"| {name} | {seconds:.3f} |" for name, seconds in results["help"].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per case")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {CASES}"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from {CASES}")

    def log(msg):
        print(msg, flush=True)

    info = machine_info()
    info["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    info["loadavg_start"] = [round(v, 2) for v in os.getloadavg()]
    log(
        f"{info['cpu']} x{info['cpu_count']}, TF {info['tensorflow']}, load {info['loadavg_start']}"
    )
    start = time.perf_counter()
    runners = {
        "sample": bench_sample,
        "anchor": bench_anchor,
        "translation": bench_translation,
        "speech": bench_speech,
        "dna": bench_dna,
        "protein": bench_protein,
        "help": bench_help,
    }
    results = {}
    for case in cases:
        log(f"{case}:")
        results[case] = runners[case](args.rounds, log)
    info["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    text = report(results, info, argv, time.perf_counter() - start)
    stamp = info["date"].replace(":", "").replace("-", "")[:15]
    base = args.out / f"inference-{stamp}-{info['host']}"
    args.out.mkdir(parents=True, exist_ok=True)
    for path, body in (
        (base.with_suffix(".md"), text),
        (base.with_suffix(".json"), json.dumps({"info": info, "results": results}, indent=1)),
    ):
        atomic_write(path, lambda tmp, b=body: Path(tmp).write_text(b))
    log("\n" + text)
    log(f"written: {base.with_suffix('.md')}")


if __name__ == "__main__":
    main()
