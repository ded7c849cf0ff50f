"""An instant command line: `--help` and option errors never import TensorFlow.

Each recipe runs in a fresh process in which `tensorflow`, `keras` and `numpy`
cannot be imported (`sys.modules[name] = None` makes any import of them raise
ImportError): the group's `--help`, every verb's `--help` (the verbs are read
from the click group itself, so a new verb is covered without editing this
file) and a few rejected options must all still answer. No timing is asserted;
what is checked is that nothing heavy is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(
    p.name for p in (ROOT / "recipes").iterdir() if p.is_dir() and (p / "__main__.py").is_file()
)
BLOCKED = ("tensorflow", "keras", "numpy", "gradio")

# Run `python -m recipes.<name> ARGS` for each ARGS as `runpy` does, with the
# heavy modules blocked; print one JSON object {ARGS joined: [exit code, stdout, stderr]}.
_CHILD = """
import contextlib, importlib, io, json, runpy, sys

for blocked in {blocked!r}:
    sys.modules[blocked] = None  # any import of it raises ImportError
name = {name!r}
verbs = sorted(importlib.import_module(f"recipes.{{name}}.main").cli.commands)
cases = [["--help"], ["-h"]] + [[verb, "--help"] for verb in verbs] + [
    ["train", "--epochs", "-1"],
    ["train", "--no-such-option"],
    ["train", "--preset", "no-such-preset"],
    ["no-such-verb"],
]
results = {{}}
for args in cases:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [f"python -m recipes.{{name}}", *args]
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module(f"recipes.{{name}}", run_name="__main__")
        except SystemExit as exit:
            code = exit.code
    results[" ".join(args)] = [code, out.getvalue(), err.getvalue()]
results["verbs"] = verbs
results["imported"] = sorted(m for m in {blocked!r} if sys.modules.get(m) is not None)
print(json.dumps(results))
"""


def _run_child(name: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(name=name, blocked=BLOCKED)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=RECIPES)
def recipe(request):
    return request.param, _run_child(request.param)


def test_help_of_the_group_and_of_every_verb_imports_nothing_heavy(recipe):
    name, results = recipe
    prog = f"python -m recipes.{name}"
    assert {"train", "evaluate"} <= set(results["verbs"])
    assert results["imported"] == []
    for args in ["--help", "-h"]:
        code, stdout, stderr = results[args]
        assert code == 0, (args, stderr)
        assert stdout.startswith(f"Usage: {prog} [OPTIONS] COMMAND [ARGS]..."), (args, stdout)
        for verb in results["verbs"]:
            assert verb in stdout
    for verb in results["verbs"]:
        code, stdout, stderr = results[f"{verb} --help"]
        assert code == 0, (verb, stderr)
        assert stdout.startswith(f"Usage: {prog} {verb} [OPTIONS]"), (verb, stdout)
        assert "--help" in stdout
    assert "--epochs" in results["train --help"][1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("train --epochs -1", "Invalid value for '--epochs': must be positive. Received: -1"),
        ("train --no-such-option", "No such option"),
        ("train --preset no-such-preset", "Invalid value for '--preset'"),
        ("no-such-verb", "No such command 'no-such-verb'"),
    ],
)
def test_option_errors_are_reported_without_tensorflow(recipe, args, message):
    name, results = recipe
    code, stdout, stderr = results[args]
    assert code == 2, (args, stdout, stderr)
    assert message in stderr, stderr
    assert f"Usage: python -m recipes.{name}" in stderr
    assert "Traceback" not in stderr


# A recipe-like command that starts TensorFlow, then writes a real warning both from native
# code's point of view (file descriptor 2) and from Python's.
_NOISY = """
import os, sys
import click
from common import cli

@click.group()
def group():
    'A recipe-like group.'

@group.command()
def run():
    import tensorflow as tf

    tf.config.list_logical_devices("GPU")
    os.write(2, b"W0000 real native warning\\n")
    print("a Python warning", file=sys.stderr)
    print("output")

sys.argv = ["noisy", "run"]
cli.main(group, "noisy")
"""


def test_tensorflow_start_up_notices_are_left_out_and_real_warnings_kept():
    proc = subprocess.run(
        [sys.executable, "-c", _NOISY],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "output\n"
    assert proc.stderr.splitlines() == ["W0000 real native warning", "a Python warning"]
