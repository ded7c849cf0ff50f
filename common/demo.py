"""Live demos of trained runs in the browser, with Gradio.

Each recipe has a module `recipes.<name>.demo` with

    TITLE = "Sentiment"                # the tab's name
    def build(model_dir, prefix=""):   # components and events, inside the current gr.Blocks

`build` must be quick: it reads the run's small files and wraps everything slow (loading the
model, reading held-out data) in `cached(...)`, which the page warms in a background thread
once it is up; a request that comes first waits for it. Event handlers go through `guarded`
so that bad input shows the CLI's one-line message in the page, never a traceback. Each
endpoint gets `api_name=prefix + "verb"`; `make demo` puts every recipe on one page and passes
`prefix="<recipe>_"` so the names stay unique.

Nothing leaves the machine: analytics and Hugging Face telemetry are switched off before
Gradio is imported, the theme's fonts are served by Gradio itself, and the page is only
served on the host you name (127.0.0.1 by default). `python -m common.demo` (`make demo`)
serves one page with a tab per recipe: the finished run under `runs/<recipe>` where there is
one, else a note saying which command trains it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import inspect
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click

from common.cli import host_option, port_option
from common.errors import UserError

RECIPES = (
    "char_lm",
    "sentiment",
    "ner",
    "translation",
    "activity",
    "video",
    "music",
    "speech",
    "dna",
    "protein",
)
DEFAULT_HOST = "127.0.0.1"

_CACHES: list[Cached] = []


def gradio():
    """`import gradio`, with analytics, telemetry and proxies for localhost switched off."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Gradio asks its own URL at launch; an HTTP(S)_PROXY in the environment must not see it.
    local = ["localhost", "127.0.0.1", "::1"]
    for name in ("NO_PROXY", "no_proxy"):
        have = [h for h in os.environ.get(name, "").split(",") if h]
        os.environ[name] = ",".join(have + [h for h in local if h not in have])
    import gradio as gr

    return gr


class Cached:
    """A value made once, on first use, by `make()`: thread-safe; `warm()` makes it early."""

    def __init__(self, make: Callable[[], object]):
        self._make = make
        self._lock = threading.Lock()
        self._done = False
        self._value = None

    def __call__(self):
        if not self._done:
            with self._lock:
                if not self._done:
                    self._value = self._make()
                    self._done = True
        return self._value

    def warm(self) -> None:
        try:
            self()
        except Exception:  # noqa: BLE001 - reported to the request that needs it
            pass


def cached(make: Callable[[], object]) -> Cached:
    """`make` run once, when first needed or when the page warms its caches after launch."""
    value = Cached(make)
    _CACHES.append(value)
    return value


def cached_run(model_dir: os.PathLike, predict_module: str) -> Cached:
    """`cached` (model, info): the run's `model.keras` and `predict_module`'s
    `ModelInfo.read(model_dir)`, as the recipes' `predict` verbs load them."""

    def load():
        from common import runtime

        info = importlib.import_module(predict_module).ModelInfo.read(model_dir)
        return runtime.load_model(model_dir), info

    return cached(load)


def run_json(model_dir: os.PathLike, name: str, recipe: str) -> dict:
    """The run's JSON file `name` (read while the page is built), or a one-line error saying
    the directory is not a finished `recipe` run."""
    path = Path(model_dir) / name
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise UserError(f"{path}: missing or not a {recipe} run (train one first)")
    return value


def heldout_files(root: os.PathLike, suffixes) -> list[str]:
    """The run's held-out files under `root` (a class-per-directory tree) whose suffix is one
    of `suffixes`, as sorted `<class>/<file>` names; none if `root` is missing."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.glob("*/*")
        if p.is_file() and p.suffix.lower() in suffixes
    )


@functools.cache
def scratch_dir(recipe: str) -> Path:
    """A directory for the files a tab hands to the page (Gradio copies them into its own
    cache), one per recipe and process, removed when the process ends."""
    path = tempfile.mkdtemp(prefix=f"{recipe}-demo-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return Path(path)


def error_text(exc: BaseException) -> str:
    """The one line the CLI prints for `exc` (without its `Error: `)."""
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


# One request computes at a time, in the whole process: Gradio runs handlers in worker
# threads, and the models, matplotlib's pyplot and the recipes' samplers are not meant to be
# used by two threads at once. A streamed answer takes it for each piece, not for the stream.
_COMPUTING = threading.RLock()


def guarded(fn: Callable) -> Callable:
    """`fn` as an event handler: one request at a time (see `_COMPUTING`), and a user mistake
    (`UserError`, or any click error) becomes `gr.Error` with the CLI's one-line message.
    Generators (streamed outputs) too."""
    gr = gradio()

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            pieces = fn(*args, **kwargs)
            while True:
                try:
                    with _COMPUTING:
                        piece = next(pieces)
                except StopIteration:
                    return
                except click.ClickException as exc:
                    raise gr.Error(error_text(exc), print_exception=False) from None
                yield piece

        return streaming

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            with _COMPUTING:
                return fn(*args, **kwargs)
        except click.ClickException as exc:
            raise gr.Error(error_text(exc), print_exception=False) from None

    return handler


@contextlib.contextmanager
def named_as_uploaded(path: os.PathLike):
    """A `UserError` about Gradio's copy of an uploaded file names the file as the user
    knows it (its name), not the temporary path Gradio stored it under."""
    try:
        yield
    except UserError as err:
        raise UserError(err.message.replace(str(path), Path(path).name)) from None


def file_handlers(answer: Callable[[Path], object], heldout_dir: Path, missing: str):
    """The two event handlers of a tab that takes a file: an uploaded one (errors name it as
    the user knows it) or one of the run's held-out files, chosen by its name under
    `heldout_dir`; both give `answer(path)`. `missing`: the error when neither is given."""

    @guarded
    def uploaded(path: str | None):
        if not path:
            raise UserError(missing)
        with named_as_uploaded(Path(path)):
            return answer(Path(path))

    @guarded
    def heldout(name: str | None):
        if not name:
            raise UserError(missing)
        return answer(Path(heldout_dir) / name)

    return uploaded, heldout


def recipe_module(name: str):
    return importlib.import_module(f"recipes.{name}.demo")


def finished(run_dir: Path) -> bool:
    """A run `train` has finished: its best model and its metrics are written."""
    return (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()


def page(tabs: dict[str, Callable[[], None]], title: str = "Recurrent recipes"):
    """A `gr.Blocks` with one tab per entry; each callable builds its tab's contents. The
    caches the tabs make belong to the page (`start` warms them)."""
    gr = gradio()
    before = len(_CACHES)
    # Uploads and generated files in Gradio's cache are deleted after an hour.
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        if len(tabs) == 1:
            ((name, build),) = tabs.items()
            gr.Markdown(f"## {name}")
            build()
        else:
            with gr.Tabs():
                for name, build in tabs.items():
                    with gr.Tab(name):
                        build()
    blocks.demo_caches = _CACHES[before:]
    del _CACHES[before:]
    return blocks


def recipe_page(name: str, model_dir: Path):
    """The page of one recipe's run (`python -m recipes.<name> demo`)."""
    module = recipe_module(name)
    return page({module.TITLE: lambda: module.build(Path(model_dir))}, title=module.TITLE)


def all_recipes_page(runs: Path):
    """`make demo`: a tab per recipe, the finished run `runs/<recipe>` or how to make one."""
    gr = gradio()
    tabs = {}
    for name in RECIPES:
        module = recipe_module(name)
        run_dir = Path(runs) / name
        if finished(run_dir):
            tabs[module.TITLE] = functools.partial(module.build, run_dir, prefix=f"{name}_")
        else:
            target = name.replace("_", "-")
            tabs[module.TITLE] = functools.partial(
                gr.Markdown,
                f"No finished run in `{run_dir}` yet. `make recipe-{target}` trains one "
                f"(`python -m recipes.{name} train --output-dir {run_dir}`); then run "
                "`make demo` again.",
            )
    return page(tabs)


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start(blocks, host: str = DEFAULT_HOST, port: int | None = None) -> str:
    """Serve `blocks` in this process's background threads and return its URL; its caches
    are warmed in another thread. `stop(blocks)` ends it."""
    if port is None:
        port = free_port(host)
    try:
        blocks.queue(max_size=64).launch(
            server_name=host,
            max_file_size="100mb",
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            footer_links=["api"],
            mcp_server=False,
            enable_monitoring=False,
        )
    except OSError as exc:
        raise UserError(f"--port {port}: cannot serve on {host}:{port} ({exc})") from None
    pending = getattr(blocks, "demo_caches", [])
    threading.Thread(target=lambda: [c.warm() for c in pending], daemon=True).start()
    return blocks.local_url


def stop(blocks) -> None:
    blocks.close()


def serve(blocks, host: str, port: int | None) -> None:
    """Serve until Ctrl-C, telling the user where."""
    url = start(blocks, host, port)
    click.echo(f"Demo on {url} (Ctrl-C stops it)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("Stopped.", err=True)
    finally:
        stop(blocks)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--runs",
    type=click.Path(path_type=Path, file_okay=False),
    default="runs",
    show_default=True,
    help="Where the recipes' runs are: a tab for each finished RUNS/<recipe>.",
)
@host_option
@port_option
def main(runs, host, port):
    """One page with a live demo of every recipe's finished run (make demo)."""
    serve(all_recipes_page(runs), host, port)


if __name__ == "__main__":
    from common import cli as common_cli

    common_cli.main(main, prog_name="python -m common.demo")
    sys.exit(0)
