"""The shared training runtime: devices and seeds, distribution, the run directory, fit.

Every recipe trains through this module rather than its own loop:

    strategy = runtime.setup(run)
    with strategy.scope():
        model = build_model(cfg, vocab_size)
        model.compile(optimizer=runtime.optimizer(cfg.learning_rate, cfg.clipnorm), loss=...)
    run_dir = runtime.RunDir.create(run.output_dir, cfg, strategy=strategy)
    run_dir.write_text(data.HELDOUT_FILE, ...)   # the held-out examples, in the input format
    best = runtime.fit(model, train_ds, val_ds, run_dir=run_dir, epochs=cfg.epochs,
                       time_budget=cfg.time_budget)

The run-directory contract, the same in every recipe:

    config.json      the recipe's `Config`, read back strictly by `RunDir.read_config(Config)`
    argv.txt         the command line, as a user would retype it
    heldout.<ext>    the exact held-out examples `train` reports on, in the recipe's own
                     input format; `evaluate` without --data reads this and nothing else
    model.keras      the best model by validation; `load_model(run_dir)` loads it
    history.csv   metrics.json   training.png   logs/ (TensorBoard)
    backup/          the resume state, only while a run is unfinished (see `Backup`)

Every file this module writes (configs, models, JSON, held-out files, plots) is
written atomically (a temporary name, fsync, then `os.replace`), so an interrupted
run never leaves a half-written model, JSON or backup behind; `history.csv` grows by
one row per finished epoch (Keras's CSVLogger) and `logs/` is TensorBoard's. Re-running
the same command into the same directory resumes from the last finished epoch, however
the process died (a kill, out of memory, Ctrl-C); a damaged backup is reported in one
line and the one before it is used.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import common
from common.errors import UserError

# ----------------------------------------------------------------------------- devices


def _choose_strategy(name: str) -> tf.distribute.Strategy:
    # MultiWorkerMirroredStrategy must be created before anything initialises TensorFlow's
    # runtime (listing devices does), so decide on it first.
    if name == "auto" and os.environ.get("TF_CONFIG"):
        name = "multi-worker"
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError(
                "--strategy multi-worker needs the TF_CONFIG environment variable "
                "describing the cluster and this worker's task"
            )
        return _reduce_structures_one_by_one(tf.distribute.MultiWorkerMirroredStrategy())
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # All GPUs; without GPUs, every logical CPU device (tests split the CPU in two).
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"Unknown strategy. Received: strategy={name!r}")


def _reduce_structures_one_by_one(strategy: tf.distribute.Strategy) -> tf.distribute.Strategy:
    """Work around keras-team/keras#20585 (Keras 3 `fit` under `MultiWorkerMirroredStrategy`).

    Keras reduces a whole (x, y) batch with one `strategy.reduce` call, which this strategy
    cannot do for nested values, and reduces scalar metrics with `axis=0`, which fails on
    a scalar. Reducing leaf by leaf, over replicas only for scalars, is what Keras means.
    """
    reduce = strategy.reduce

    def reduce_leaf(reduce_op, leaf, axis):
        if axis is not None and strategy.experimental_local_results(leaf)[0].shape.rank == 0:
            axis = None
        return reduce(reduce_op, leaf, axis=axis)

    def reduce_leaves(reduce_op, value, axis=None):
        return tf.nest.map_structure(lambda leaf: reduce_leaf(reduce_op, leaf, axis), value)

    strategy.reduce = reduce_leaves
    return strategy


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def setup(run) -> tf.distribute.Strategy:
    """Seed everything, set precision and determinism, log devices, return the strategy.

    `run` is a `common.cli.TrainArgs` (fields seed, mixed_precision, deterministic, strategy).
    """
    strategy = _choose_strategy(run.strategy)
    keras.utils.set_random_seed(run.seed)  # Python, NumPy and the backend
    if run.deterministic:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_logical_devices("GPU")
    if run.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "mixed_bfloat16")
    else:
        keras.mixed_precision.set_global_policy("float32")
    devices = ", ".join(d.name for d in (gpus or tf.config.list_logical_devices("CPU")))
    print(
        f"Devices: {devices} | strategy: {type(strategy).__name__} "
        f"({strategy.num_replicas_in_sync} replica(s)) | precision: "
        f"{keras.mixed_precision.global_policy().name} | seed: {run.seed}"
        + (" | deterministic ops" if run.deterministic else ""),
        flush=True,
    )
    return strategy


def optimizer(
    learning_rate: float,
    clipnorm: float | None = None,
    decay_steps: int | None = None,
    ema: float | None = None,
    warmup_steps: int = 0,
) -> keras.optimizers.Optimizer:
    """Adam with optional gradient clipping by norm (for backpropagation through time).

    With `decay_steps` (the planned training steps), the learning rate follows a cosine
    decay down to 5% of `learning_rate`: late epochs take small steps, so the validation
    metric settles instead of jumping between epochs. With `warmup_steps` as well, it
    first rises linearly from 0 to `learning_rate` over that many of them. Adam's first
    steps move every weight by the full rate whatever its gradient, so a layer with
    thousands of inputs can be pushed at once to where all its ReLUs are 0 for every
    input, and stay there (dna). With `ema` (a momentum such as 0.999), the optimizer
    also keeps an exponential moving average of the weights, which `fit` validates,
    checkpoints and returns (Keras's `use_ema`).
    """
    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_steps else learning_rate,
            max(decay_steps - warmup_steps, 1),
            alpha=0.05,
            warmup_target=learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    averaging = {"use_ema": True, "ema_momentum": ema} if ema else {}
    return keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm, **averaging)


# ----------------------------------------------------------------------------- run directory

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: os.PathLike, write, suffix: str = ".tmp") -> Path:
    """Call `write(tmp_path)` on a temporary name beside `path`, then rename it to `path`.

    The file is flushed to disk (fsync) before the rename and the directory after it,
    so at every instant `path` is either the old complete file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every platform opens directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _command_line() -> str:
    """This process's command line as a user would retype it (`python -m recipes.x ...`)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = (
        f"python -m {spec.name.removesuffix('.__main__')}" if spec and spec.name else sys.argv[0]
    )
    return " ".join([program, *map(shlex.quote, sys.argv[1:])])


class RunDir:
    """A run directory whose files are written atomically."""

    def __init__(self, path: os.PathLike):
        self.path = Path(path)

    @classmethod
    def create(
        cls,
        path: os.PathLike,
        config,
        argv: Sequence[str] | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ) -> RunDir:
        """Make the directory and record `config.json` and `argv.txt`.

        Non-chief workers of a multi-worker run write into a temporary directory.
        """
        if not is_chief(strategy):
            path = tempfile.mkdtemp(prefix="worker-run-")
        run_dir = cls(path)
        run_dir.path.mkdir(parents=True, exist_ok=True)
        run_dir.write_json("config.json", config)
        run_dir.write_text(
            "argv.txt", (" ".join(argv) if argv is not None else _command_line()) + "\n"
        )
        return run_dir

    def file(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        def write(tmp):  # newline="": the bytes are exactly `text`, on every platform
            Path(tmp).write_text(text, encoding="utf-8", newline="")

        return atomic_write(self.file(name), write)

    def write_tree(self, name: str, files: Mapping[str, bytes]) -> Path:
        """Write the directory `name` holding `files` ({relative path: bytes}) as a whole.

        The files go into a new directory beside it and are flushed to disk; it then
        takes the place of the old `name`. A reader sees the old tree or the new one,
        never a mixture (after a crash between the two renames: neither, and `train`
        writes it again).
        """
        target = self.file(name)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.path))
        try:
            os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp makes 0700 directories
            for relative, content in files.items():
                parts = Path(relative).parts
                if Path(relative).is_absolute() or not parts or any(p[:1] == "." for p in parts):
                    raise UserError(f"{self.file(name)}: cannot write {relative!r} into it")
                path = staging / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(content)
                    os.fsync(fh.fileno())
            for directory in {staging / Path(r).parent for r in files} | {staging}:
                _fsync_directory(directory)
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=self.path))
                os.replace(target, old / name)
                os.replace(staging, target)
                shutil.rmtree(old)
            else:
                os.replace(staging, target)
            _fsync_directory(self.path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def write_json(self, name: str, obj) -> Path:
        return self.write_text(
            name, json.dumps(_jsonable(obj), indent=2, ensure_ascii=False) + "\n"
        )

    def read_json(self, name: str):
        path = self.file(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: missing (is {self.path} a run directory?)") from None
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None

    def read_dataclass(self, name: str, cls):
        """The frozen dataclass `cls` from the JSON object in `name`, strictly.

        An unknown or missing field is a one-line `UserError` naming the file and the
        field (a run from another recipe or an older version of it: retrain). JSON
        lists become tuples, since configs are frozen.
        """
        path = self.file(name)
        values = self.read_json(name)
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a JSON object, got {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise UserError(
                f"{path}: unknown field {unknown[0]!r} for {cls.__module__}.{cls.__name__} "
                "(written by another recipe or an older version: retrain)"
            )
        missing = sorted(set(fields) - set(values))
        if missing:
            raise UserError(
                f"{path}: missing field {missing[0]!r} of {cls.__module__}.{cls.__name__} "
                "(written by an older version: retrain)"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise UserError(f"{path}: {err}") from None

    def read_config(self, cls):
        """The run's `config.json` as the recipe's `Config` (see `read_dataclass`)."""
        return self.read_dataclass("config.json", cls)

    def heldout(self, name: str) -> Path:
        """The held-out examples `train` wrote (`name`, e.g. heldout.txt); missing: UserError."""
        path = self.file(name)
        if not path.exists():
            raise UserError(
                f"{path}: missing; this run predates held-out files in run directories "
                "(retrain it, or pass --data)"
            )
        return path

    def evaluation_data(self, spec: str | None, heldout: str) -> str:
        """What `evaluate` reads: its --data `spec` when given, else the run's held-out
        examples (`heldout`), which go through the same reader as any --data."""
        return spec if spec and spec.strip() else str(self.heldout(heldout))

    def save_model(self, model: keras.Model, name: str = "model.keras") -> Path:
        return atomic_write(self.file(name), model.save, suffix=".keras")  # Keras wants it


def _register_layers_of(path: Path) -> None:
    """Import the module of every registered layer `path` names (`package>Name`), so that
    loading never depends on what the caller happened to import. The convention: a layer
    is registered under the package of the module that defines it (`common` for the
    library, e.g. `recipes.ner.model` for a recipe's own layers); for `common` that is
    every module of `common.LAYER_MODULES` (the bare package is lazy). Other names are
    never imported, whatever the file says."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return  # keras.saving.load_model reports what is wrong with the file

    packages = set()

    def walk(node):
        if isinstance(node, dict):
            name = node.get("registered_name")
            if isinstance(name, str) and ">" in name:
                packages.add(name.split(">", 1)[0])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    for package in sorted(packages):
        if package == "common":  # importing the bare package registers nothing
            common.register_layers()
        elif package.startswith("recipes."):  # the project's own only
            try:
                importlib.import_module(package)
            except ImportError:
                pass  # keras names the unknown layer


def load_model(model_dir: os.PathLike, name: str = "model.keras") -> keras.Model:
    """Load a saved model from a run directory; failures become one-line `UserError`s.

    Every layer the model names is registered first (see `_register_layers_of`), and a
    compiled `common.CRF` loss is bound to its layer again (`common.crf.bind`).
    """
    path = Path(model_dir) / name
    if not path.is_file():
        raise UserError(f"{path}: missing (train a model into {model_dir} first)")
    _register_layers_of(path)
    try:
        model = keras.saving.load_model(path)
    except Exception as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{path}: cannot load this model ({message[:300]}); if it was trained by an "
            "older version, retrain it"
        ) from None
    from common import crf

    crf.bind(model)  # a CRF loss comes back knowing its layer only by name
    return model


# ----------------------------------------------------------------------------- callbacks


class TimeBudget(keras.callbacks.Callback):
    """Stop training cleanly at the end of a batch once `minutes` of wall time have passed."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = minutes * 60.0
        self.start = None
        self.stopped = False

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if not self.stopped and time.monotonic() - self.start >= self.seconds:
            self.stopped = True
            self.model.stop_training = True
            print(
                f"\nTime budget of {self.seconds / 60:g} min reached: stopping after this "
                "batch; the best model so far is kept.",
                flush=True,
            )


class BudgetCosineDecay(keras.callbacks.Callback):
    """The cosine decay of `optimizer(decay_steps=...)` (down to `alpha` times
    `learning_rate`), over whichever ends first: `decay_steps` optimizer steps or `minutes`
    of wall time (counted as `TimeBudget` counts them). Use it with an optimizer built
    without `decay_steps`; it sets the learning rate before every batch.

    A run that a time budget stops after a few of its planned epochs would otherwise end
    at nearly the full learning rate, never taking the small late steps that settle the
    validation metric. A resumed run counts its steps on from the backup's and its time
    afresh, as `TimeBudget` does.
    """

    def __init__(self, learning_rate: float, decay_steps: int, minutes: float | None, alpha=0.05):
        super().__init__()
        self.initial, self.alpha = float(learning_rate), float(alpha)
        self.decay_steps = max(int(decay_steps), 1)
        self.seconds = minutes * 60.0 if minutes else None
        self.start, self.steps = None, 0

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()
        self.steps = int(self.model.optimizer.iterations.numpy())  # read once: no sync per batch

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def progress(self) -> float:
        done = self.steps / self.decay_steps
        if self.seconds:
            done = max(done, (time.monotonic() - self.start) / self.seconds)
        return min(done, 1.0)

    def on_train_batch_begin(self, batch, logs=None):
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.progress()))
        rate = self.initial * (self.alpha + (1.0 - self.alpha) * cosine)
        self.model.optimizer.learning_rate.assign(rate)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the model atomically whenever the monitored value improves.

    `best` is the best value so far; a resumed run starts from the backup's.
    """

    def __init__(self, run_dir: RunDir, monitor: str, mode: str, best: float | None = None):
        super().__init__()
        self.run_dir, self.monitor, self.best = run_dir, monitor, best
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "f1", "auc", "bleu")) else "min"
        self.better = np.greater if mode == "max" else np.less

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value):
            return
        if self.best is None or self.better(value, self.best):
            self.best = float(value)
            self.run_dir.save_model(self.model)


# ----------------------------------------------------------------------------- resume

# Tests only: "EPOCH:SECONDS" sleeps inside the backup write of every epoch from EPOCH
# (0-based) on, before the rename, so that a test can kill the process there.
_BACKUP_DELAY_ENV = "RECIPES_TEST_BACKUP_DELAY"


class Backup(keras.callbacks.Callback):
    """After every finished epoch, the resume state as one complete backup in `directory`.

    A backup is a directory `epoch-NNNN` holding `state.weights.h5` (model and optimizer
    variables) and `state.json` (the epoch and the best monitored value). It is written
    under a temporary name, flushed to disk and renamed into place, and only then is the
    backup before the previous one removed: at every instant the newest complete backup
    and the one before it are on disk, and a half-written one never has the final name.

        backup/
          epoch-0003/   state.weights.h5  state.json     the previous backup
          epoch-0004/   state.weights.h5  state.json     the newest
          .epoch-0005.tmp-x1y2/                          being written (ignored on resume)
    """

    def __init__(self, directory: Path, checkpoint: BestModelCheckpoint):
        super().__init__()
        self.directory, self.checkpoint = Path(directory), checkpoint

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch:04d}"
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=self.directory))
        try:
            self.model.save_weights(str(staging / "state.weights.h5"))
            state = {"epoch": epoch, "monitor": self.checkpoint.monitor}
            state["best"] = self.checkpoint.best
            (staging / "state.json").write_text(json.dumps(state) + "\n")
            for file in staging.iterdir():
                with open(file, "rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_directory(staging)
            if os.environ.get(_BACKUP_DELAY_ENV):
                first, seconds = os.environ[_BACKUP_DELAY_ENV].split(":")
                if epoch >= int(first):
                    time.sleep(float(seconds))
            final = self.directory / name
            shutil.rmtree(final, ignore_errors=True)  # a stale one from an earlier attempt
            os.replace(staging, final)
            _fsync_directory(self.directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for old in _backups(self.directory)[2:]:
            shutil.rmtree(old, ignore_errors=True)


def _backups(directory: Path) -> list[Path]:
    """The complete backups in `directory`, newest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and re.fullmatch(r"epoch-\d{4,}", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True)


def _restore(model: keras.Model, directory: Path) -> dict | None:
    """Load the newest backup that loads; its state dict, or None to start over.

    A damaged backup (a truncated or unreadable file) is reported in one line and the
    previous one is tried; when none is left, training starts over. A backup that is whole
    but does not fit this model (another config or recipe) stops the run with the
    command that starts it fresh.
    """
    backups = _backups(directory)
    if not backups:
        return None
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # so its variables can be loaded
    variables = list(model.variables) + list(getattr(model.optimizer, "variables", []))
    initial = [v.numpy() for v in variables]

    def reset():  # a failed load may have assigned some variables already
        for variable, value in zip(variables, initial, strict=True):
            variable.assign(value)

    for n, backup in enumerate(backups):
        weights = backup / "state.weights.h5"
        try:
            state = json.loads((backup / "state.json").read_text(encoding="utf-8"))
            epoch, best = int(state["epoch"]), state.get("best")
            best = None if best is None else float(best)
            if not weights.is_file():
                raise OSError(f"{weights.name} is missing")
        except (OSError, ValueError, KeyError, TypeError) as err:
            reason = _first_line(err)
        else:
            try:
                model.load_weights(str(weights))
            except ValueError as err:  # a whole file, made for another model
                reset()
                raise UserError(
                    f"{backup}: this backup does not fit the model being trained "
                    f"({_first_line(err)}); to start the run over, delete it: rm -r {directory}"
                ) from None
            except Exception as err:  # h5py: OSError for a truncated or damaged file
                reason = f"{weights.name}: {_first_line(err)}"
            else:
                # With a weight average, `fit`'s `SwapEMAWeights` had swapped it into the
                # model at the epoch's end: the backup holds the average as the weights and
                # the raw weights as the optimizer's "average". Swap them back.
                if _uses_ema(model):
                    _swap_ema(model)
                return {"epoch": epoch, "best": best, "backup": backup}
        reset()
        what_next = (
            f"resuming from the previous backup, {backups[n + 1].name}"
            if n + 1 < len(backups)
            else "no complete backup is left: training starts over"
        )
        print(f"{backup} cannot be loaded ({reason}); {what_next}.", file=sys.stderr, flush=True)
    return None


def _uses_ema(model: keras.Model) -> bool:
    """Whether the model's optimizer keeps a moving average of the weights (Keras's
    `use_ema=True`, e.g. `keras.optimizers.Adam(use_ema=True, ema_momentum=0.999)`)."""
    return bool(getattr(model.optimizer, "use_ema", False))


def _swap_ema(model: keras.Model) -> None:
    """Exchange the model's weights with its optimizer's moving averages of them."""
    swap = keras.callbacks.SwapEMAWeights()  # its public hooks do the exchange
    swap.set_model(model)
    swap.on_test_begin()  # a fresh instance believes the raw weights are in: it swaps


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _keep_history_through(path: Path, last_epoch: int) -> None:
    """Drop the rows of epochs after `last_epoch` from a CSVLogger file (a run killed
    after logging an epoch but before backing it up runs that epoch again)."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return

    def finished(row):
        try:
            return int(float(row[0])) <= last_epoch and len(row) == len(rows[0])
        except (IndexError, ValueError):  # a row cut short by the kill
            return False

    kept = [rows[0]] + [r for r in rows[1:] if finished(r)]
    if len(kept) == len(rows):
        return
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(kept)  # the excel dialect, as Keras's CSVLogger writes
    atomic_write(path, lambda tmp: Path(tmp).write_text(buffer.getvalue(), newline=""))


class _EpochCounter(keras.callbacks.Callback):
    """The current epoch, and a Ctrl-C that cannot get lost on its way to `fit`.

    While training, SIGINT is recorded before the usual KeyboardInterrupt is raised. Code
    between the signal and `fit` (a C extension's callback or destructor, a handler that
    catches BaseException) can swallow that exception, and the run would then go on as if
    no key had been pressed; a recorded interrupt is raised again at the next batch end.
    """

    def __init__(self):
        super().__init__()
        self.epoch = None
        self.interrupted = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self._raise_if_interrupted()

    def _raise_if_interrupted(self, *args, **kwargs):
        if self.interrupted:
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _raise_if_interrupted

    @contextlib.contextmanager
    def catching_sigint(self):
        main = threading.current_thread() is threading.main_thread()
        if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield  # not ours to change: another thread, or an ignored or custom SIGINT
            return

        def record(signum, frame):
            self.interrupted = True
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, record)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)


# ----------------------------------------------------------------------------- fit


def fit(
    model: keras.Model,
    train_ds,
    val_ds=None,
    *,
    run_dir: RunDir,
    epochs: int,
    time_budget: float | None = None,
    monitor: str = "val_loss",
    mode: str = "auto",
    patience: int | None = None,
    class_weight=None,
    callbacks: Sequence = (),
    verbose="auto",
    steps_per_epoch: int | None = None,
) -> keras.Model:
    """Train a compiled model with the project's callbacks; return the best model.

    Callbacks added: best-model checkpoint (`model.keras`), a crash-safe `Backup` after
    every epoch (`backup/`; re-running the same command resumes from the newest one that
    loads), optional `EarlyStopping(patience)`, `CSVLogger` (`history.csv`), `TensorBoard`
    (`logs/`), `TerminateOnNaN`, the wall-clock `time_budget` in minutes and, when the
    optimizer averages the weights (`use_ema=True`), `SwapEMAWeights`: validation,
    the checkpoint and the returned model then use the average. Afterwards `training.png`
    is drawn from the whole history (resumed runs included) and the best model is reloaded.

    `verbose="auto"`: Keras's progress bar when standard output is a terminal, else one
    line per epoch (`verbose=2`), so a log file, CI or `nohup` gets no redrawn bars.

    Ctrl-C (KeyboardInterrupt) prints one line saying what was kept and how to resume,
    then exits with status 130 (`SystemExit`).
    """
    if val_ds is None and monitor.startswith("val_"):
        monitor = monitor[len("val_") :]
    backup = run_dir.file("backup")
    restored = _restore(model, backup)
    history_csv = run_dir.file("history.csv")
    if restored:
        first_epoch = restored["epoch"] + 1
        print(
            f"Resuming the unfinished run in {run_dir.path} after epoch {first_epoch} "
            f"({restored['backup'].name}).",
            flush=True,
        )
        _keep_history_through(history_csv, restored["epoch"])
    else:
        first_epoch = 0
        shutil.rmtree(backup, ignore_errors=True)
        for stale in (history_csv, run_dir.file("model.keras")):
            stale.unlink(missing_ok=True)
        shutil.rmtree(run_dir.file("logs"), ignore_errors=True)
    checkpoint = BestModelCheckpoint(run_dir, monitor, mode, restored and restored["best"])
    counter = _EpochCounter()
    # The caller's callbacks run first, so metrics they add to the logs can be monitored;
    # the backup runs last, so an epoch counts as done only once its model and logs are written.
    # With a weight average (`use_ema=True`), it is in the model from the end of each
    # epoch (validation included) to the start of the next: the caller's callbacks, the
    # checkpoint and the backup all see it, and training steps see the raw weights.
    averaging = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if _uses_ema(model) else []
    all_callbacks = [
        counter,
        *averaging,
        *callbacks,
        checkpoint,
        keras.callbacks.CSVLogger(str(history_csv), append=bool(restored)),
        keras.callbacks.TensorBoard(log_dir=str(run_dir.file("logs"))),
        keras.callbacks.TerminateOnNaN(),
    ]
    if patience:
        all_callbacks.append(
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience)
        )
    if time_budget:
        all_callbacks.append(TimeBudget(time_budget))
    all_callbacks.append(Backup(backup, checkpoint))

    if verbose == "auto":
        verbose = "auto" if sys.stdout.isatty() else 2
    start = time.monotonic()
    try:
        with counter.catching_sigint():
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=epochs,
                initial_epoch=first_epoch,
                callbacks=all_callbacks,
                class_weight=class_weight,
                verbose=verbose,
                steps_per_epoch=steps_per_epoch,
                shuffle=False,  # tf.data pipelines shuffle themselves
            )
    except KeyboardInterrupt:
        done = _backups(backup)
        kept = (
            f"epoch {int(done[0].name.split('-')[1]) + 1} is the last finished one and is kept"
            if done
            else "no epoch had finished, so nothing is kept"
        )
        during = (
            f"during epoch {counter.epoch + 1} of {epochs}" if counter.epoch is not None else ""
        )
        print(
            f"\nInterrupted {during}; {kept}. Run the same command to resume.",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(130) from None
    print(f"Training took {time.monotonic() - start:.1f} s.", flush=True)

    if not run_dir.file("model.keras").is_file():  # no finite monitored value ever came
        run_dir.save_model(model)
    shutil.rmtree(backup, ignore_errors=True)
    plot_history(history_csv, run_dir.file("training.png"))
    best = run_dir.file("model.keras")
    _register_layers_of(best)
    return keras.saving.load_model(best)  # saved by this process: a failure is a bug


def read_history(path: os.PathLike) -> dict[str, list[float]]:
    """The columns of a `CSVLogger` file as float lists (empty dict when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def plot_history(history_csv: os.PathLike, png: os.PathLike) -> Path | None:
    """Draw each metric's train and validation curve per epoch into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_history(history_csv)
    if not history.get("epoch"):
        return None
    epochs = [e + 1 for e in history["epoch"]]
    names = [
        k for k in history if k != "epoch" and not k.startswith("val_") and k != "learning_rate"
    ]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.plot(epochs, history[name], marker="o", label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    png = Path(png)
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return png
