"""Time common.LSTM/GRU against keras.layers.LSTM/GRU side by side (``make bench``).

For every (shape, cell) pair two models are built the way a user would build them -- an
``Input``, the recurrent layer and nothing else, ``model.compile(optimizer="adam", loss="mse")``
with every other argument at its default -- and given the same weights. Then, in each round, in a
random order: a few training steps (``train_on_batch``) and a few inference steps
(``predict_on_batch``) of each model, and a float32 2048x2048 matmul that measures the machine's
peak in that same round. Reported per pair:

- speed-up = median over rounds of (built-in time / common time), so a slow round (another
  process on the machine) affects both sides of its ratio;
- each side's median step time and its fraction of the matmul peak of the same round (matmul
  FLOPs only: forward = T * 2 * B * (D + U) * gates * U, training = 3 x forward);
- the max abs difference of the outputs (same weights), as a sanity check.

Results are printed and written to ``bench/results/rnn-<date>-<host>.md`` (and ``.json``) with the
machine, the versions and the load average.

    python -m bench.rnn_bench                      # all shapes, LSTM and GRU, 7 rounds
    python -m bench.rnn_bench --rounds 3 --shapes a --cells lstm
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import resource
import socket
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import common.layers  # noqa: E402
from common.runtime import atomic_write  # noqa: E402

SHAPES = {
    "a": dict(B=64, T=100, D=64, U=256, return_sequences=True, note="char-LM-like"),
    "b": dict(B=32, T=200, D=128, U=128, return_sequences=False, note="classifier-like"),
    "c": dict(B=128, T=50, D=32, U=512, return_sequences=True, note="wide, short"),
}
GATES = {"lstm": 4, "gru": 3}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def matmul_flops(shape, cell):
    """Forward matmul FLOPs of one pass: T * 2 * B * (D + U) * gates * U."""
    s = shape
    return s["T"] * 2 * s["B"] * (s["D"] + s["U"]) * GATES[cell] * s["U"]


def build_model(kind, cell, shape, seed):
    """Input -> recurrent layer, compiled with defaults except optimizer and loss."""
    keras.utils.set_random_seed(seed)
    if kind == "builtin":
        layer_class = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    else:
        layer_class = common.layers.LSTM if cell == "lstm" else common.layers.GRU
    inputs = keras.Input((shape["T"], shape["D"]), batch_size=shape["B"])
    outputs = layer_class(shape["U"], return_sequences=shape["return_sequences"])(inputs)
    model = keras.Model(inputs, outputs, name=f"{kind}_{cell}")
    model.compile(optimizer="adam", loss="mse")
    return model


class PeakMeter:
    """float32 n x n matmul, timed as often as asked: the machine's matmul peak right now."""

    def __init__(self, n=2048):
        self.flops = 2.0 * n**3
        self.a = tf.random.normal((n, n))
        self.b = tf.random.normal((n, n))
        self.fn = tf.function(lambda a, b: tf.linalg.matmul(a, b))
        self.fn(self.a, self.b).numpy()

    def gflops(self):
        t0 = time.perf_counter()
        self.fn(self.a, self.b).numpy()
        return self.flops / (time.perf_counter() - t0) / 1e9


def cpu_seconds():
    """CPU time of this process, all threads (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, steps):
    """(wall, CPU) seconds per step over ``steps`` calls (the result is fetched)."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    for _ in range(steps):
        out = fn()
    np.asarray(out)
    return (time.perf_counter() - t0) / steps, (cpu_seconds() - c0) / steps


def run_pair(shape_key, cell, rounds, steps, peak, log):
    shape = SHAPES[shape_key]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shape["B"], shape["T"], shape["D"])).astype("float32")
    out_shape = (
        (shape["B"], shape["T"], shape["U"])
        if shape["return_sequences"]
        else (shape["B"], shape["U"])
    )
    y = (0.1 * rng.standard_normal(out_shape)).astype("float32")
    models = {kind: build_model(kind, cell, shape, seed=1) for kind in ("builtin", "common")}
    models["common"].set_weights(models["builtin"].get_weights())
    diff = float(
        np.max(np.abs(models["common"].predict_on_batch(x) - models["builtin"].predict_on_batch(x)))
    )
    t0 = time.perf_counter()
    for model in models.values():  # warm-up: tracing and XLA compilation
        for _ in range(2):
            model.train_on_batch(x, y)
            model.predict_on_batch(x)
    log(f"  warm-up (trace + compile, both models) {time.perf_counter() - t0:.1f}s")

    times = {(kind, mode): [] for kind in models for mode in ("train", "infer")}
    cpu_times = {key: [] for key in times}
    peaks = []
    order_rng = random.Random(1234)
    for _ in range(rounds):
        round_peaks = [peak.gflops()]
        jobs = [(kind, mode) for kind in models for mode in ("train", "infer")]
        order_rng.shuffle(jobs)
        for kind, mode in jobs:
            model = models[kind]
            if mode == "train":
                fn = lambda m=model: m.train_on_batch(x, y)  # noqa: E731
            else:
                fn = lambda m=model: m.predict_on_batch(x)  # noqa: E731
            wall, cpu = timed(fn, steps)
            times[(kind, mode)].append(wall)
            cpu_times[(kind, mode)].append(cpu)
        round_peaks.append(peak.gflops())
        peaks.append(max(round_peaks))

    fwd = matmul_flops(shape, cell)
    result = {
        "shape": shape_key,
        "cell": cell,
        **shape,
        "max_abs_diff_outputs": diff,
        "peak_gflops_median": statistics.median(peaks),
        "modes": {},
    }
    for mode in ("train", "infer"):
        flops = 3 * fwd if mode == "train" else fwd
        entry = {}
        for kind in models:
            ts = times[(kind, mode)]
            entry[kind] = {
                "median_ms": 1e3 * statistics.median(ts),
                "frac_peak": statistics.median(
                    [flops / t / (p * 1e9) for t, p in zip(ts, peaks, strict=True)]
                ),
                "raw_ms": [round(1e3 * t, 2) for t in ts],
            }
        ratios = [
            b / c for b, c in zip(times[("builtin", mode)], times[("common", mode)], strict=True)
        ]
        entry["speedup"] = statistics.median(ratios)
        entry["speedup_rounds"] = [round(r, 3) for r in ratios]
        cpu_ratios = [
            b / c
            for b, c in zip(cpu_times[("builtin", mode)], cpu_times[("common", mode)], strict=True)
        ]
        entry["cpu_speedup"] = statistics.median(cpu_ratios)
        for kind in models:
            entry[kind]["cpu_median_ms"] = 1e3 * statistics.median(cpu_times[(kind, mode)])
        result["modes"][mode] = entry
    return result


def machine_info():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }


def format_table(results):
    head = (
        "| shape (B, T, D, U) | cell | mode | keras ms | common ms | speed-up "
        "| keras %peak | common %peak | CPU-time speed-up |"
    )
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        dims = f"{r['shape']} ({r['B']}, {r['T']}, {r['D']}, {r['U']})"
        for mode in ("train", "infer"):
            e = r["modes"][mode]
            lines.append(
                f"| {dims} | {r['cell']} | {mode} | {e['builtin']['median_ms']:.1f} | "
                f"{e['common']['median_ms']:.1f} | x{e['speedup']:.2f} | "
                f"{100 * e['builtin']['frac_peak']:.0f}% | {100 * e['common']['frac_peak']:.0f}% | "
                f"x{e['cpu_speedup']:.2f} |"
            )
    return "\n".join(lines)


def write_results(results, info, args, elapsed, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = info["date"].replace(":", "").replace("-", "")[:15]
    base = out_dir / f"rnn-{stamp}-{info['host']}"
    peaks = [r["peak_gflops_median"] for r in results]
    md = [
        f"# RNN benchmark {info['date']} on {info['host']}",
        "",
        f"`python -m bench.rnn_bench {' '.join(args)}`".replace(" `", "`"),
        "",
        f"Machine: {info['cpu']}, {info['cpu_count']} cores, {info['platform']}; "
        f"TensorFlow {info['tensorflow']}, Keras {info['keras']}, GPUs: {info['gpus'] or 'none'}.",
        f"Load average at start {info['loadavg_start']}, at end {info['loadavg_end']}; "
        f"float32 2048^3 matmul peak measured in the run: "
        f"{min(peaks):.0f}-{max(peaks):.0f} GFLOP/s (median per pair); {elapsed:.0f} s.",
        "",
        "speed-up = median over rounds of keras/common step time (>1: common is faster); "
        "%peak = matmul FLOPs / time / peak of the same round (training = 3 x forward); "
        "CPU-time speed-up = the same ratio of process CPU time (less sensitive to other "
        "processes on a busy machine, blind to idle waiting).",
        "",
        format_table(results),
        "",
    ]
    for path, text in (
        (base.with_suffix(".md"), "\n".join(md)),
        (base.with_suffix(".json"), json.dumps({"info": info, "results": results}, indent=1)),
    ):
        atomic_write(path, lambda tmp, t=text: Path(tmp).write_text(t))
    return base.with_suffix(".md")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per timing (per round)")
    parser.add_argument("--shapes", default="a,b,c", help=f"subset of {','.join(SHAPES)}")
    parser.add_argument("--cells", default="lstm,gru", help="subset of lstm,gru")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    args = parser.parse_args(argv)
    shapes = [s for s in args.shapes.split(",") if s]
    cells = [c for c in args.cells.split(",") if c]
    for s in shapes:
        if s not in SHAPES:
            parser.error(f"unknown shape {s!r}; choose from {','.join(SHAPES)}")
    for c in cells:
        if c not in GATES:
            parser.error(f"unknown cell {c!r}; choose from lstm,gru")

    start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - start:6.1f}s] {msg}", flush=True)

    info = machine_info()
    info["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    info["loadavg_start"] = [round(v, 2) for v in os.getloadavg()]
    log(
        f"{info['cpu']} x{info['cpu_count']}, TF {info['tensorflow']}, Keras {info['keras']}, "
        f"load {info['loadavg_start']}"
    )
    peak = PeakMeter()
    results = []
    for shape_key in shapes:
        for cell in cells:
            log(f"{shape_key}:{cell} {SHAPES[shape_key]}")
            r = run_pair(shape_key, cell, args.rounds, args.steps, peak, log)
            results.append(r)
            for mode in ("train", "infer"):
                e = r["modes"][mode]
                log(
                    f"  {mode}: keras {e['builtin']['median_ms']:.1f} ms "
                    f"({100 * e['builtin']['frac_peak']:.0f}% peak), common "
                    f"{e['common']['median_ms']:.1f} ms ({100 * e['common']['frac_peak']:.0f}% "
                    f"peak), speed-up x{e['speedup']:.2f} (CPU time x{e['cpu_speedup']:.2f})  "
                    f"rounds {e['speedup_rounds']}"
                )
    info["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    elapsed = time.perf_counter() - start
    print()
    print(format_table(results))
    path = write_results(results, info, sys.argv[1:] if argv is None else argv, elapsed, args.out)
    print(f"\nload average start {info['loadavg_start']} end {info['loadavg_end']}; wrote {path}")


if __name__ == "__main__":
    main()
