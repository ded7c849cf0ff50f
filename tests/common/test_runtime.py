"""The shared runtime: run directory, fit with checkpoint/resume/time budget, strategies."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import runtime
from common.cli import TrainArgs
from common.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def _data(n=128, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _model(seed=0, ema=None):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=runtime.optimizer(0.05, clipnorm=1.0, ema=ema),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class _StopAt(keras.callbacks.Callback):
    """Simulates a crash at the start of an epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated interruption")


def test_setup_seeds_and_strategy(capsys):
    strategy = runtime.setup(TrainArgs(seed=7))
    a = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    runtime.setup(TrainArgs(seed=7))
    b = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert strategy.num_replicas_in_sync == 1
    assert "Devices: " in capsys.readouterr().out


def test_mixed_precision_policy_is_set_and_reset():
    runtime.setup(TrainArgs(mixed_precision=True))
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # CPU
    runtime.setup(TrainArgs())
    assert keras.mixed_precision.global_policy().name == "float32"


def test_multi_worker_without_tf_config_is_a_user_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="TF_CONFIG"):
        runtime.setup(TrainArgs(strategy="multi-worker"))


def test_fit_writes_the_run_directory(tmp_path):
    run_dir = runtime.RunDir.create(tmp_path / "run", TrainArgs(output_dir=tmp_path), argv=["x"])
    ds = _data()
    best = runtime.fit(_model(), ds, ds, run_dir=run_dir, epochs=3, verbose=0)
    for name in ("config.json", "argv.txt", "history.csv", "model.keras", "training.png"):
        assert (tmp_path / "run" / name).is_file(), name
    assert (tmp_path / "run" / "logs").is_dir()
    assert not (tmp_path / "run" / "backup").exists()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]
    history = runtime.read_history(tmp_path / "run" / "history.csv")
    assert history["epoch"] == [0.0, 1.0, 2.0]
    # The returned model is the best epoch's, by validation loss.
    val_loss = best.evaluate(ds, verbose=0)[0]
    assert val_loss == pytest.approx(min(history["val_loss"]), rel=1e-4)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["output_dir"] == str(tmp_path)


def test_training_output_is_one_line_per_epoch_when_not_a_terminal(tmp_path, capfd):
    # pytest captures standard output (not a terminal): a log file, CI or nohup gets no bars.
    run_dir = runtime.RunDir.create(tmp_path / "run", TrainArgs(output_dir=tmp_path), argv=["x"])
    runtime.fit(_model(), _data(), _data(), run_dir=run_dir, epochs=2)
    out = capfd.readouterr().out
    assert "\r" not in out and "\u2501" not in out  # no redrawn progress bar
    assert [line for line in out.splitlines() if "val_loss" in line][0].count("loss") == 2
    assert len([line for line in out.splitlines() if "val_loss" in line]) == 2


def test_fit_resumes_after_an_interruption(tmp_path, capsys):
    run_dir = runtime.RunDir.create(tmp_path, {"a": 1})
    ds = _data()
    with pytest.raises(SystemExit) as exit_info:  # what Ctrl-C does
        runtime.fit(_model(), ds, ds, run_dir=run_dir, epochs=4, verbose=0, callbacks=[_StopAt(2)])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip() == (
        "Interrupted during epoch 3 of 4; epoch 2 is the last finished one and is kept. "
        "Run the same command to resume."
    )
    assert runtime.read_history(tmp_path / "history.csv")["epoch"] == [0.0, 1.0]
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["epoch-0000", "epoch-0001"]
    fresh = _model(seed=123)  # different initial weights: restored from the backup
    runtime.fit(fresh, ds, ds, run_dir=run_dir, epochs=4, verbose=0)
    assert "Resuming the unfinished run in" in capsys.readouterr().out
    assert runtime.read_history(tmp_path / "history.csv")["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert not (tmp_path / "backup").exists()


class _SwallowsCtrlC(keras.callbacks.Callback):
    """Library code that catches the KeyboardInterrupt of a real SIGINT and goes on."""

    def __init__(self):
        super().__init__()
        self.swallowed = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.swallowed == 0 and batch == 3:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # the handler runs at the next bytecode
            except KeyboardInterrupt:
                self.swallowed += 1


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals need the main thread"
)
def test_a_ctrl_c_swallowed_on_its_way_still_stops_training(tmp_path, capsys, request):
    # Python started from a shell's background job (`make test &`) has SIGINT ignored, and
    # fit leaves an ignored SIGINT alone: give this test the handler a terminal gives.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    run_dir = runtime.RunDir.create(tmp_path, {"a": 1})
    swallower = _SwallowsCtrlC()
    with pytest.raises(SystemExit) as exit_info:
        runtime.fit(
            _model(), _data(), _data(), run_dir=run_dir, epochs=50, verbose=0, callbacks=[swallower]
        )
    assert exit_info.value.code == 130 and swallower.swallowed == 1
    assert capsys.readouterr().err.strip().startswith("Interrupted during epoch 1 of 50;")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("ema", [None, 0.9])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, ema):
    """The backup holds the weights and the optimizer state (with `ema`, Keras's moving
    average of the weights too, stored swapped): resuming changes nothing."""
    ds = _data()
    whole = runtime.fit(
        _model(ema=ema), ds, ds, run_dir=runtime.RunDir(tmp_path / "a"), epochs=4, verbose=0
    )
    run_dir = runtime.RunDir(tmp_path / "b")
    with pytest.raises(SystemExit):
        runtime.fit(
            _model(ema=ema), ds, ds, run_dir=run_dir, epochs=4, verbose=0, callbacks=[_StopAt(2)]
        )
    resumed = runtime.fit(_model(seed=5, ema=ema), ds, ds, run_dir=run_dir, epochs=4, verbose=0)
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert (tmp_path / "a" / "history.csv").read_text() == (
        tmp_path / "b" / "history.csv"
    ).read_text()


class _WeightAverage(keras.callbacks.Callback):
    """The exponential moving average of the trainable weights after every step, computed
    here in float64 as Keras defines it (the first step's weights, then `m * avg + (1 - m)
    * w`); at every epoch's end, checks that the model holds it and keeps a copy."""

    def __init__(self, momentum):
        super().__init__()
        self.momentum, self.average, self.per_epoch = momentum, None, []

    def on_train_batch_end(self, batch, logs=None):
        w = [np.asarray(v, np.float64) for v in self.model.get_weights()]
        if self.average is None:
            self.average = w
        else:
            m = self.momentum
            self.average = [m * a + (1 - m) * x for a, x in zip(self.average, w, strict=True)]

    def on_epoch_end(self, epoch, logs=None):
        for held, expected in zip(self.model.get_weights(), self.average, strict=True):
            np.testing.assert_allclose(held, expected, rtol=1e-5, atol=1e-6)
        self.per_epoch.append(self.average)


def test_a_weight_average_is_validated_checkpointed_and_returned(tmp_path):
    ds, average = _data(), _WeightAverage(0.9)
    best = runtime.fit(
        _model(ema=0.9),
        ds,
        ds,
        run_dir=runtime.RunDir(tmp_path),
        epochs=3,
        verbose=0,
        callbacks=[average],
    )
    history = runtime.read_history(tmp_path / "history.csv")
    best_epoch = int(np.argmin(history["val_loss"]))
    for held, expected in zip(best.get_weights(), average.per_epoch[best_epoch], strict=True):
        np.testing.assert_allclose(held, expected, rtol=1e-5, atol=1e-6)
    # The validation loss of each epoch was the average's.
    assert best.evaluate(ds, verbose=0)[0] == pytest.approx(history["val_loss"][best_epoch], 1e-4)


def _interrupted_run(tmp_path, stop_at=3):
    run_dir = runtime.RunDir(tmp_path)
    with pytest.raises(SystemExit):
        runtime.fit(
            _model(),
            _data(),
            _data(),
            run_dir=run_dir,
            epochs=5,
            verbose=0,
            callbacks=[_StopAt(stop_at)],
        )
    return run_dir


def test_a_damaged_backup_falls_back_to_the_previous_one(tmp_path, capsys):
    run_dir = _interrupted_run(tmp_path)  # epochs 0-2 done: backups epoch-0001, epoch-0002
    newest = tmp_path / "backup" / "epoch-0002" / "state.weights.h5"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    capsys.readouterr()
    runtime.fit(_model(seed=9), _data(), _data(), run_dir=run_dir, epochs=5, verbose=0)
    out = capsys.readouterr()
    message = [line for line in out.err.splitlines() if "cannot be loaded" in line]
    assert len(message) == 1 and "epoch-0002 cannot be loaded (state.weights.h5:" in message[0]
    assert message[0].endswith("resuming from the previous backup, epoch-0001.")
    assert "after epoch 2 (epoch-0001)" in out.out
    assert runtime.read_history(tmp_path / "history.csv")["epoch"] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_no_loadable_backup_starts_over_and_a_foreign_one_is_refused(tmp_path, capsys):
    run_dir = _interrupted_run(tmp_path)
    for backup in (tmp_path / "backup").iterdir():
        (backup / "state.json").write_text("{not json")
    capsys.readouterr()
    runtime.fit(_model(), _data(), _data(), run_dir=run_dir, epochs=2, verbose=0)
    err = capsys.readouterr().err
    assert "epoch-0001 cannot be loaded" in err and "training starts over" in err
    assert runtime.read_history(tmp_path / "history.csv")["epoch"] == [0.0, 1.0]

    run_dir = _interrupted_run(tmp_path / "other")
    wider = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16), keras.layers.Dense(2)])
    wider.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(UserError, match=r"does not fit the model being trained.*rm -r") as info:
        runtime.fit(wider, _data(), _data(), run_dir=run_dir, epochs=5, verbose=0)
    assert "\n" not in info.value.message


def test_time_budget_stops_cleanly_and_still_saves(tmp_path):
    run_dir = runtime.RunDir.create(tmp_path, {})
    ds = _data(n=512)
    best = runtime.fit(_model(), ds, ds, run_dir=run_dir, epochs=50, verbose=0, time_budget=1e-6)
    history = runtime.read_history(tmp_path / "history.csv")
    assert len(history["epoch"]) == 1  # stopped inside the first epoch
    assert (tmp_path / "model.keras").is_file()
    assert best.evaluate(ds, verbose=0)[0] > 0


class _Rates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate.numpy()))


@pytest.mark.parametrize("minutes", [None, 1e-9])
def test_budget_cosine_decay_follows_the_steps_or_the_clock(tmp_path, minutes):
    model, seen = _model(), _Rates()
    decay = runtime.BudgetCosineDecay(0.05, decay_steps=16, minutes=minutes)
    model.fit(_data(), epochs=2, verbose=0, callbacks=[decay, seen])  # 8 batches an epoch
    if minutes:  # the budget is spent at once: the floor, 5 % of the rate, from the start
        np.testing.assert_allclose(seen.rates, 0.05 * 0.05, rtol=1e-5)
    else:
        expected = [0.05 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * k / 16))) for k in range(16)]
        np.testing.assert_allclose(seen.rates, expected, rtol=1e-5)


def test_optimizer_warms_up_linearly_then_decays_along_the_cosine():
    model, seen = _model(), _Rates()
    model.compile(
        optimizer=runtime.optimizer(0.05, decay_steps=16, warmup_steps=4),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(_data(), epochs=2, verbose=0, callbacks=[seen])  # 8 batches an epoch
    np.testing.assert_allclose(seen.rates[:4], [0.0, 0.0125, 0.025, 0.0375], atol=1e-7)
    expected = [0.05 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * k / 12))) for k in range(12)]
    np.testing.assert_allclose(seen.rates[4:], expected, rtol=1e-5)


def test_run_dir_json_round_trip_and_errors(tmp_path):
    run_dir = runtime.RunDir(tmp_path)
    run_dir.write_json("m.json", {"x": np.float32(1.5), "p": Path("a/b"), "t": (1, 2)})
    assert run_dir.read_json("m.json") == {"x": 1.5, "p": "a/b", "t": [1, 2]}
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(UserError, match=r"bad\.json:1: not valid JSON"):
        run_dir.read_json("bad.json")
    with pytest.raises(UserError, match="missing"):
        run_dir.read_json("absent.json")


def test_read_config_is_strict(tmp_path):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Config:
        units: int = 8
        sizes: tuple[int, ...] = (1, 2)

    run_dir = runtime.RunDir(tmp_path)
    run_dir.write_json("config.json", Config(units=4))
    assert run_dir.read_config(Config) == Config(units=4)  # lists come back as tuples
    run_dir.write_json("config.json", {"units": 4, "sizes": [1], "batch": 3})
    with pytest.raises(UserError, match=r"config\.json: unknown field 'batch'") as info:
        run_dir.read_config(Config)
    assert "\n" not in info.value.message
    run_dir.write_json("config.json", {"units": 4})
    with pytest.raises(UserError, match=r"config\.json: missing field 'sizes'.*retrain"):
        run_dir.read_config(Config)
    run_dir.write_json("config.json", [1, 2])
    with pytest.raises(UserError, match="expected a JSON object"):
        run_dir.read_config(Config)


def test_heldout_names_the_missing_file(tmp_path):
    run_dir = runtime.RunDir(tmp_path)
    with pytest.raises(UserError, match=r"heldout\.txt: missing.*retrain"):
        run_dir.heldout("heldout.txt")
    run_dir.write_text("heldout.txt", "text")
    assert run_dir.heldout("heldout.txt").read_text() == "text"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = runtime.atomic_write(tmp_path / "a.txt", lambda tmp: Path(tmp).write_text("old"))

    def fail(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        runtime.atomic_write(path, fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_tree_replaces_the_whole_directory(tmp_path):
    run_dir = runtime.RunDir(tmp_path)
    run_dir.write_tree("heldout", {"a/1.txt": b"one", "b/2.txt": b"two"})
    run_dir.write_tree("heldout", {"a/3.txt": b"three"})
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["heldout/a/3.txt"]  # nothing of the first tree, no temporary names
    assert (tmp_path / "heldout" / "a" / "3.txt").read_bytes() == b"three"
    for bad in ("../x.txt", ".hidden/x.txt", "/abs.txt"):
        with pytest.raises(UserError, match="cannot write"):
            run_dir.write_tree("heldout", {bad: b"x"})
    assert (tmp_path / "heldout" / "a" / "3.txt").read_bytes() == b"three"


def test_load_model_registers_the_layers_it_names(tmp_path):
    from common.layers import LSTM

    model = keras.Sequential([keras.Input((3, 2)), LSTM(4)])
    runtime.RunDir(tmp_path).save_model(model)
    # A process that imports only common.runtime: load_model imports what the file names.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; import common.runtime as r; "
            "print(type(r.load_model(sys.argv[1]).layers[-1]).__name__)",
            str(tmp_path),
        ],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "LSTM"


def test_load_model_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="missing"):
        runtime.load_model(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot load") as info:
        runtime.load_model(tmp_path)
    assert "\n" not in str(info.value.message)


_MIRRORED = textwrap.dedent("""
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from common import runtime
    from common.cli import TrainArgs
    strategy = runtime.setup(TrainArgs(strategy="mirrored"))
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    x = np.random.rand(64, 3).astype("float32"); y = x.sum(1, keepdims=True)
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=runtime.optimizer(0.1), loss="mse")
    before = model.get_weights()[0].copy()
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, verbose=0)
    assert not np.allclose(before, model.get_weights()[0])
    print("REPLICAS", strategy.num_replicas_in_sync)
""")


def _env():
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CUDA_VISIBLE_DEVICES": "",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def test_mirrored_strategy_over_two_logical_cpus():
    out = subprocess.run(
        [sys.executable, "-c", _MIRRORED], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "REPLICAS 2" in out.stdout


_WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np, tensorflow as tf, keras
    from common import runtime
    from common.cli import TrainArgs
    strategy = runtime.setup(TrainArgs(strategy="auto"))  # TF_CONFIG set: multi-worker
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    x = np.random.default_rng(0).random((64, 3)).astype("float32"); y = x.sum(1, keepdims=True)
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=runtime.optimizer(0.1), loss="mse")
    run_dir = runtime.RunDir.create(sys.argv[1], {"worker": os.environ["TF_CONFIG"]},
                                    strategy=strategy)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    runtime.fit(model, ds, run_dir=run_dir, epochs=2, verbose=0)
    print("WEIGHTS", np.round(model.get_weights()[0].ravel(), 6).tolist())
    print("DONE", runtime.is_chief(strategy), run_dir.path)
""")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_multi_worker_processes_complete_a_fit(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    try:
        for index in range(2):
            env = {
                **_env(),
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                ),
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _WORKER, str(tmp_path / "run")],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        results = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert "DONE True" in results[0][0] and "DONE False" in results[1][0]
    # Synchronous data parallelism: both workers end with the same weights.
    weights = [
        [line for line in out.splitlines() if line.startswith("WEIGHTS")] for out, _ in results
    ]
    assert weights[0] and weights[0] == weights[1]
    # Only the chief wrote into the shared run directory.
    assert (tmp_path / "run" / "model.keras").is_file()
    assert len(runtime.read_history(tmp_path / "run" / "history.csv")["epoch"]) == 2
