"""Run a piece of test code under the JAX backend, in a subprocess (Keras fixes its backend
when it is first imported, and the test process runs TensorFlow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

_PROLOGUE = """
import json, sys
try:
    import jax  # noqa: F401
except Exception as error:
    print(f"import jax failed: {error!r}")
    sys.exit(3)
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
"""


# Makes `import tensorflow` (and click, which a plain Keras program need not have) fail as
# it does where the package is not installed.
_WITHOUT_TENSORFLOW = """
import importlib.abc, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_text", "tf_keras", "click"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def run_on_jax(body: str, *, without_tensorflow: bool = False) -> dict:
    """Run `body` (code that fills a JSON-serialisable dict named `result`) on the JAX
    backend, on CPU, and return `result`. Skips the test when JAX cannot be imported.
    `without_tensorflow`: TensorFlow (and click) cannot be imported, as in a Keras
    program on JAX that never installed them."""
    prologue = (_WITHOUT_TENSORFLOW if without_tensorflow else "") + _PROLOGUE
    script = prologue + textwrap.dedent(body) + '\nprint("RESULT " + json.dumps(result))\n'
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode == 3:
        pytest.skip(f"JAX backend unavailable: {proc.stdout.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])
