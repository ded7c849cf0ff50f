"""Click options shared by every recipe, so a recipe's `main.py` declares only its own.

    @click.group(context_settings=cli.CONTEXT_SETTINGS)
    def group(): ...

    @group.command()
    @cli.train_options(presets=config.PRESETS, default_output_dir=OUTPUT_DIR)
    @click.option("--seq-len", type=int, default=None, help="...")
    def train(run: TrainArgs, seq_len):
        cfg = cli.apply_overrides(config.PRESETS[run.preset], run, seq_len=seq_len)
        train_lib.train(cfg, run)

Every recipe's `__main__.py` is `from recipes.<name>.main import main; main()`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from common.errors import UserError

# The one list of --cell choices; common.layers (make_cell, recurrent_layer) re-exports it.
CELL_NAMES = ("lstm", "gru", "minimal-gru", "simple")
# Every recipe's click group: defaults shown in --help, and -h as well as --help.
CONTEXT_SETTINGS = {"show_default": True, "help_option_names": ["-h", "--help"]}
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
EXPORT_FORMATS = ("saved_model", "litert")  # common.export.FORMATS


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """The shared `train` options, as given on the command line (None = the preset's value)."""

    data: str | None = None
    validation_data: str | None = None
    preset: str = "default"
    epochs: int | None = None
    batch_size: int | None = None
    time_budget: float | None = None
    cell: str | None = None
    output_dir: Path = Path("runs")
    seed: int = 42
    mixed_precision: bool = False
    strategy: str = "auto"
    deterministic: bool = False


_TRAIN_FIELDS = [f.name for f in dataclasses.fields(TrainArgs)]


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive. Received: {value}")
    return value


def train_options(presets: Mapping[str, object], default_output_dir: str):
    """Add the shared `train` options; the command receives them as one `run: TrainArgs`."""

    def decorator(func):
        @functools.wraps(func)
        def wrapper(**kwargs):
            shared = {name: kwargs.pop(name) for name in _TRAIN_FIELDS}
            return func(TrainArgs(**shared), **kwargs)

        wrapper.__click_params__ = list(getattr(func, "__click_params__", []))
        options = [
            click.option(
                "--data",
                default=None,
                metavar="SRC",
                help="Training data: omit for the embedded default, a local path, "
                "or tfds:NAME[/CONFIG][:SPLIT].",
            ),
            click.option(
                "--validation-data",
                default=None,
                metavar="SRC",
                help="Validation data (same forms as --data); omitted = a seeded "
                "split of the training data.",
            ),
            click.option(
                "--preset",
                type=click.Choice(list(presets)),
                default="default",
                show_default=True,
                help="Named configuration (tiny is for tests).",
            ),
            click.option(
                "--epochs",
                type=int,
                default=None,
                callback=_positive,
                help="Epochs [default: the preset's].",
            ),
            click.option(
                "--batch-size",
                type=int,
                default=None,
                callback=_positive,
                help="Global batch size [default: the preset's].",
            ),
            click.option(
                "--time-budget",
                type=float,
                default=None,
                callback=_positive,
                metavar="MINUTES",
                help="Stop training cleanly after this many minutes; the best model "
                "is still saved and evaluated.",
            ),
            click.option(
                "--cell",
                type=click.Choice(CELL_NAMES),
                default=None,
                help="Recurrent cell [default: the preset's].",
            ),
            click.option(
                "--output-dir",
                type=click.Path(file_okay=False, path_type=Path),
                default=default_output_dir,
                show_default=True,
                help="Run directory; re-running into it resumes an interrupted run.",
            ),
            click.option(
                "--seed",
                type=int,
                default=42,
                show_default=True,
                help="Seed for Python, NumPy, Keras and data splits.",
            ),
            click.option(
                "--mixed-precision",
                is_flag=True,
                help="Compute in float16 (GPU) or bfloat16 (CPU), keep float32 weights.",
            ),
            click.option(
                "--strategy",
                type=click.Choice(STRATEGIES),
                default="auto",
                show_default=True,
                help="tf.distribute strategy; auto = multi-worker if TF_CONFIG is set, "
                "mirrored over several GPUs, else default.",
            ),
            click.option(
                "--deterministic", is_flag=True, help="Use deterministic TensorFlow ops (slower)."
            ),
        ]
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorator


def _check_model_dir(ctx, param, value: Path) -> Path:
    if not value.is_dir():
        raise UserError(f"--model-dir: no such directory: {value} (train a model first)")
    if not (value / "model.keras").is_file():
        raise UserError(f"--model-dir: {value} holds no model.keras (is it a finished run?)")
    return value


def model_dir_option(default_output_dir: str):
    """`--model-dir DIR`: a finished run directory holding `model.keras`."""
    return click.option(
        "--model-dir",
        type=click.Path(path_type=Path),
        default=default_output_dir,
        show_default=True,
        callback=_check_model_dir,
        help="Run directory written by `train`.",
    )


def evaluate_data_option(what: str, heldout: str):
    """`evaluate --data SRC` (parameter `data_spec`): `what` the recipe reads, e.g. "A TSV
    file of pairs, or tfds:NAME[/CONFIG][:SPLIT]"; `heldout` names the run's held-out file,
    which `RunDir.evaluation_data` reads when --data is omitted."""
    return click.option(
        "--data",
        "data_spec",
        default=None,
        metavar="SRC",
        help=f"{what}. Omitted: the held-out examples the run reported on, MODEL_DIR/{heldout}.",
    )


def export_command(group: click.Group, default_output_dir: str, module: str, help_text: str):
    """Add the `export` verb to a recipe's group. `module` (imported only when the verb runs)
    has `archive(model_dir)` -> `keras.export.ExportArchive`, and `litert(model_dir)` -> bytes
    or `LITERT_UNAVAILABLE`, the reason it has none; see `common.export`."""

    @group.command("export", help=help_text)
    @model_dir_option(default_output_dir)
    @click.option(
        "--output",
        type=click.Path(path_type=Path),
        required=True,
        help="Where to write the artifact: a SavedModel directory, or a .tflite "
        "file for --format litert.",
    )
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(EXPORT_FORMATS),
        default="saved_model",
        show_default=True,
        help="saved_model: raw inputs in, final answers out, for TensorFlow and "
        "TensorFlow Serving; litert: the core model as a .tflite file.",
    )
    @click.option("--overwrite", is_flag=True, help="Replace --output if it already exists.")
    def export(model_dir, output, fmt, overwrite):
        import importlib

        from common import export as export_lib

        recipe = importlib.import_module(module)
        litert = getattr(recipe, "litert", None)
        export_lib.write(
            output,
            fmt,
            overwrite=overwrite,
            saved_model=lambda: recipe.archive(model_dir),
            litert=None if litert is None else lambda: litert(model_dir),
            litert_unavailable=getattr(recipe, "LITERT_UNAVAILABLE", ""),
        )
        click.echo(f"Wrote {output} ({fmt}).")

    return export


host_option = click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to serve the demo on; 0.0.0.0 lets other machines in.",
)
port_option = click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=7860,
    show_default=True,
    help="Port to serve the demo on.",
)


def demo_command(group: click.Group, default_output_dir: str, recipe: str):
    """Add the `demo` verb to a recipe's group: a live page for one run, built by
    `recipes.<recipe>.demo` (see `common.demo`; Gradio is imported only when the verb runs)."""

    @group.command("demo")
    @model_dir_option(default_output_dir)
    @host_option
    @port_option
    def demo(model_dir, host, port):
        """Try the trained model in the browser: a local page (Gradio), nothing leaves the
        machine. Ctrl-C stops it."""
        from common import demo as demo_lib

        demo_lib.serve(demo_lib.recipe_page(recipe, model_dir), host, port)

    return demo


# Size options (char_lm, music, sentiment, translation); None = the preset's value.
layers_option = click.option(
    "--layers",
    type=click.IntRange(min=1),
    default=None,
    help="Stacked recurrent layers [default: the preset's].",
)
units_option = click.option(
    "--units",
    type=click.IntRange(min=1),
    default=None,
    help="Units per recurrent layer [default: the preset's].",
)
max_vocab_option = click.option(
    "--max-vocab",
    type=click.IntRange(min=5),
    default=None,
    help="Largest vocabulary, the 4 special tokens included (translation: per language, "
    "and at subword level the pieces learned) [default: the preset's].",
)
dropout_option = click.option(
    "--dropout",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=None,
    help="Dropout rate, applied outside the recurrent cells (where: the recipe's "
    "README) [default: the preset's].",
)

# The seed of a generation verb's random draws (char_lm sample, music compose/evaluate).
sampling_seed_option = click.option(
    "--seed",
    type=click.IntRange(0, 2**31 - 1),
    default=42,
    show_default=True,
    help="Seed of the random draws: the same seed and options give the same output.",
)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout."
)


# The `train` options that override the config field of the same name.
_CONFIG_OVERRIDES = ("epochs", "batch_size", "time_budget", "cell")


def apply_overrides(config, run: TrainArgs | None = None, **values):
    """A copy of the frozen dataclass `config` with the non-None `values` replaced.

    With `run`, the shared `train` options epochs, batch size, time budget and cell
    are applied as well: every recipe's `Config` has those fields.
    """
    values = {k: v for k, v in values.items() if v is not None}
    if run is not None:
        shared = {name: getattr(run, name) for name in _CONFIG_OVERRIDES}
        values = {**{k: v for k, v in shared.items() if v is not None}, **values}
    return dataclasses.replace(config, **values)


def _width(text: str) -> int:
    """Terminal columns of `text`: wide (CJK) characters take two, combining marks none."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def print_table(rows: Sequence, headers: Sequence[str] | None = None) -> None:
    """Print rows (dicts or sequences) as an aligned plain-text table."""
    rows = list(rows)
    if rows and isinstance(rows[0], Mapping):
        headers = list(headers or rows[0].keys())
        rows = [[row.get(h, "") for h in headers] for row in rows]

    def fmt(value):
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    table = [list(map(fmt, r)) for r in rows]
    if headers:
        table.insert(0, [str(h) for h in headers])
    if not table:
        return
    widths = [max(_width(r[i]) for r in table if i < len(r)) for i in range(max(map(len, table)))]

    def pad(cell, width, left):
        fill = " " * (width - _width(cell))
        return cell + fill if left else fill + cell

    for n, row in enumerate(table):
        click.echo(
            "  ".join(
                pad(cell, w, j == 0) for j, (cell, w) in enumerate(zip(row, widths, strict=False))
            ).rstrip()
        )
        if n == 0 and headers:
            click.echo("  ".join("-" * w for w in widths))


# What TensorFlow's native code prints on every start (before its logging is set up, so
# TF_CPP_MIN_LOG_LEVEL cannot hide it) and that says nothing is wrong. On a machine without an
# NVIDIA driver, the failed cuInit is expected too; with a driver it is a real error.
_STARTUP_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "] oneDNN custom operations are on.",
    "] Could not find cuda drivers on your machine, GPU will not be used.",
    "] This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    # Not at start-up but just as empty: a boolean op runs on Eigen instead of oneDNN.
    "] oneDNN supports DT_BOOL only on platforms with AVX-512.",
)
_NO_DRIVER_NOISE = ("] failed call to cuInit:",)


def _startup_noise(line: str, no_driver: bool) -> bool:
    if any(pattern in line for pattern in _STARTUP_NOISE):
        return True
    return no_driver and any(pattern in line for pattern in _NO_DRIVER_NOISE)


@contextlib.contextmanager
def quiet_native_startup():
    """Drop TensorFlow's start-up notices (`_STARTUP_NOISE`) from standard error; every other
    line, real warnings and errors included, passes through as it is written.

    The native code writes to file descriptor 2 directly, so the descriptor is pointed at a
    pipe that a thread copies, line by line, to the real standard error.
    """
    try:
        original = os.dup(2)
    except OSError:  # no standard error at all
        yield
        return
    read_end, write_end = os.pipe()
    copy_to = os.dup(original)  # the thread's own: `original` is closed when the block ends
    no_driver = not Path("/dev/nvidiactl").exists()  # looked up once, not per line

    def copy():
        with os.fdopen(read_end, "rb") as pipe, os.fdopen(copy_to, "wb", 0) as out:
            for line in pipe:
                if not _startup_noise(line.decode("utf-8", "replace"), no_driver):
                    out.write(line)

    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=copy, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the thread sees the end
        os.close(original)
        thread.join(timeout=5)


def main(group: click.Group, prog_name: str) -> None:
    """Run a recipe's click group as `python -m recipes.<name>`.

    As click's own `main`, except that Ctrl-C outside training (which reports for
    itself, see `common.runtime.fit`) says so in one line and exits with status 130,
    instead of click's bare `Aborted!` and status 1; and TensorFlow's start-up notices
    are left out of standard error (see `quiet_native_startup`).
    """
    with quiet_native_startup():
        _main(group, prog_name)


def _main(group: click.Group, prog_name: str) -> None:
    try:
        code = group.main(prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(
            "\nInterrupted; every file written so far is complete. Run the same command to "
            "start again.",
            err=True,
        )
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    sys.exit(code if isinstance(code, int) else 0)  # an int is click's Exit code (--help: 0)
