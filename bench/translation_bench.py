"""Teacher-forced training steps of the translation decoders, side by side in one run.

    python -m bench.translation_bench               # 3 rounds of 20 steps per model
    python -m bench.translation_bench --rounds 1 --steps 10

Models (random weights and random batches of Multi30k's shape: 64 pairs, 24 source and 24
target tokens; the speed of a step does not depend on what the weights learned):

- `words`: the `words` preset as it is (Bahdanau attention: the decoder cell stepped by
  `keras.ops.scan`, the attention inside the loop);
- `words --attention luong-parallel`: the same sizes, the decoder RNN as one `common`
  recurrent-layer call over the whole target, the attention after it for all steps at once;
- `words --attention luong`: the same sizes and the same output layer as luong-parallel
  (Bahdanau's reads [s; c; y], a larger matrix), but input feeding, so the decoder cell
  and the attention step inside `keras.ops.scan`: what the fast path alone buys;
- `multi30k`: the multi30k preset's model (8,000 subwords a side, larger layers).

Each round times `steps` calls of `train_on_batch` per model, in rotating order, after a
warm-up call that compiles (reported apart). Steps per second are medians over rounds;
the speed-up of luong-parallel over Bahdanau is the median of the per-round ratios, so a
slow round affects both sides. Written to bench/results/translation-<date>-<host>.md/.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.rnn_bench import RESULTS_DIR, machine_info  # noqa: E402
from common.runtime import atomic_write, optimizer  # noqa: E402
from recipes.translation import config  # noqa: E402
from recipes.translation import model as model_lib  # noqa: E402

BATCH, SOURCE_LENGTH, TARGET_LENGTH = 64, 24, 24


def models():
    words = config.PRESETS["words"]
    return {
        "words (bahdanau)": words,
        "words --attention luong-parallel": dataclasses.replace(words, attention="luong-parallel"),
        "words --attention luong": dataclasses.replace(words, attention="luong"),
        "multi30k (luong-parallel)": config.PRESETS["multi30k"],
    }


def trainer(cfg, seed=0):
    """A compiled model of `cfg` and a function running one training step on a fixed batch."""
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    vocab_s, vocab_t = cfg.max_source_vocab, cfg.max_target_vocab
    model = model_lib.build_model(cfg, vocab_s, vocab_t)
    model_lib.compile_model(model, optimizer(cfg.learning_rate, cfg.clipnorm))
    source = rng.integers(4, vocab_s, (BATCH, SOURCE_LENGTH), dtype=np.int32)
    target_in = rng.integers(4, vocab_t, (BATCH, TARGET_LENGTH), dtype=np.int32)
    target_out = rng.integers(4, vocab_t, (BATCH, TARGET_LENGTH), dtype=np.int32)
    return model, lambda: model.train_on_batch((source, target_in), target_out)


def run(rounds: int, steps: int, log=print) -> dict:
    built = {name: trainer(cfg) for name, cfg in models().items()}
    results = {}
    for name, (model, step) in built.items():
        start = time.perf_counter()
        step()
        results[name] = {
            "parameters": model.count_params(),
            "first_call_s": time.perf_counter() - start,
            "seconds": [],
        }
    names = list(built)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            for _ in range(steps):
                built[name][1]()
            results[name]["seconds"].append((time.perf_counter() - start) / steps)
        log(
            f"round {r + 1}: "
            + ", ".join(f"{n} {results[n]['seconds'][-1] * 1000:.0f} ms/step" for n in names)
        )
    for entry in results.values():
        entry["steps_per_s"] = 1.0 / statistics.median(entry["seconds"])

    def speedup(slow, fast):
        pairs = zip(results[slow]["seconds"], results[fast]["seconds"], strict=True)
        return statistics.median(s / f for s, f in pairs)

    return {
        "models": results,
        "speedup_parallel_over_bahdanau": speedup(names[0], names[1]),
        "speedup_parallel_over_luong": speedup(names[2], names[1]),
    }


def report(results, info, argv) -> str:
    lines = [
        "# Translation training steps, side by side",
        "",
        f"`{argv}`, {datetime.datetime.now().isoformat(timespec='minutes')}",
        f"CPU: {info['cpu']} ({info['cpu_count']} cores), TF {info['tensorflow']}, "
        f"Keras {info['keras']}",
        f"Batch {BATCH} pairs, {SOURCE_LENGTH} source and {TARGET_LENGTH} target tokens.",
        "",
        "| model | parameters | steps/s | ms/step | first call s |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["models"].items():
        lines.append(
            f"| {name} | {r['parameters']:,} | {r['steps_per_s']:.2f} | "
            f"{1000 / r['steps_per_s']:.0f} | {r['first_call_s']:.1f} |"
        )
    lines += [
        "",
        "Steps per second of luong-parallel at the words preset's sizes (median of "
        f"per-round ratios): **{results['speedup_parallel_over_bahdanau']:.2f}x** those of "
        f"Bahdanau (the preset), **{results['speedup_parallel_over_luong']:.2f}x** those of "
        "Luong with input feeding (same output layer: the fast path alone).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    info = machine_info()
    results = run(args.rounds, args.steps)
    text = report(
        results,
        info,
        f"python -m bench.translation_bench --rounds {args.rounds} --steps {args.steps}",
    )
    print(text)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    base = RESULTS_DIR / f"translation-{stamp}-{info['host']}"
    atomic_write(base.with_suffix(".md"), lambda p: open(p, "w").write(text))
    payload = json.dumps({"machine": info, **results}, indent=1)
    atomic_write(base.with_suffix(".json"), lambda p: open(p, "w").write(payload))


if __name__ == "__main__":
    main()
