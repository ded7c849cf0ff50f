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
    backup/          only while a run is unfinished

Every file this module writes (configs, models, JSON, held-out files, plots) is
written atomically (a temporary name, fsync, then `os.replace`), so an interrupted
run never leaves a half-written model or JSON behind; `history.csv` grows by one row
per finished epoch (Keras's CSVLogger), `logs/` and `backup/` are Keras's own.
Re-running the same command into the same directory resumes from the last finished
epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

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


def optimizer(learning_rate: float, clipnorm: float | None = None) -> keras.optimizers.Optimizer:
    """Adam with optional gradient clipping by norm (for backpropagation through time)."""
    return keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm)


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
    library, e.g. `recipes.ner.model` for a recipe's own layers). Other names are never
    imported, whatever the file says."""
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
        if package == "common" or package.startswith("recipes."):  # the project's own only
            try:
                importlib.import_module(package)
            except ImportError:
                pass  # keras names the unknown layer


def load_model(model_dir: os.PathLike, name: str = "model.keras") -> keras.Model:
    """Load a saved model from a run directory; failures become one-line `UserError`s.

    Every layer the model names is registered first (see `_register_layers_of`).
    """
    path = Path(model_dir) / name
    if not path.is_file():
        raise UserError(f"{path}: missing (train a model into {model_dir} first)")
    _register_layers_of(path)
    try:
        return keras.saving.load_model(path)
    except Exception as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{path}: cannot load this model ({message[:300]}); if it was trained by an "
            "older version, retrain it"
        ) from None


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


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the model atomically whenever the monitored value improves.

    The best value so far is kept in `state_file`, so a resumed run compares against it.
    """

    def __init__(self, run_dir: RunDir, monitor: str, mode: str, state_file: Path):
        super().__init__()
        self.run_dir, self.monitor, self.state_file = run_dir, monitor, state_file
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "f1", "auc", "bleu")) else "min"
        self.better = np.greater if mode == "max" else np.less
        self.best = None
        if state_file.is_file():
            try:
                self.best = float(json.loads(state_file.read_text())["best"])
            except (ValueError, KeyError, TypeError):
                self.best = None  # unreadable: the next epoch's value becomes the best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value):
            return
        if self.best is None or self.better(value, self.best):
            self.best = float(value)
            self.run_dir.save_model(self.model)
            state = json.dumps({"monitor": self.monitor, "best": self.best})
            atomic_write(self.state_file, lambda tmp: Path(tmp).write_text(state))


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

    Callbacks added: best-model checkpoint (`model.keras`), `BackupAndRestore`
    (`backup/`, resume), optional `EarlyStopping(patience)`, `CSVLogger`
    (`history.csv`), `TensorBoard` (`logs/`), `TerminateOnNaN` and the wall-clock
    `time_budget` in minutes. Afterwards `training.png` is drawn from the whole
    history (resumed runs included) and the best model is reloaded.
    """
    if val_ds is None and monitor.startswith("val_"):
        monitor = monitor[len("val_") :]
    backup = run_dir.file("backup")
    resuming = backup.is_dir() and any(backup.iterdir())
    if resuming:
        print(f"Resuming the unfinished run in {run_dir.path} from its last finished epoch.")
    else:
        for stale in ("history.csv", "model.keras"):
            run_dir.file(stale).unlink(missing_ok=True)
        shutil.rmtree(run_dir.file("logs"), ignore_errors=True)
    # The caller's callbacks run first, so metrics they add to the logs can be monitored;
    # the backup runs last, so an epoch counts as done only once its model and logs are written.
    all_callbacks = [
        *callbacks,
        BestModelCheckpoint(run_dir, monitor, mode, backup / "best.json"),
        keras.callbacks.CSVLogger(str(run_dir.file("history.csv")), append=resuming),
        keras.callbacks.TensorBoard(log_dir=str(run_dir.file("logs"))),
        keras.callbacks.TerminateOnNaN(),
    ]
    if patience:
        all_callbacks.append(
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience)
        )
    if time_budget:
        all_callbacks.append(TimeBudget(time_budget))
    all_callbacks.append(
        keras.callbacks.BackupAndRestore(str(backup / "state"), delete_checkpoint=True)
    )

    start = time.monotonic()
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        callbacks=all_callbacks,
        class_weight=class_weight,
        verbose=verbose,
        steps_per_epoch=steps_per_epoch,
        shuffle=False,
    )  # tf.data pipelines shuffle themselves
    print(f"Training took {time.monotonic() - start:.1f} s.", flush=True)

    if not run_dir.file("model.keras").is_file():  # no finite monitored value ever came
        run_dir.save_model(model)
    shutil.rmtree(backup, ignore_errors=True)
    plot_history(run_dir.file("history.csv"), run_dir.file("training.png"))
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
