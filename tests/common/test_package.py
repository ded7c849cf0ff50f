"""The `common` package is lazy: importing it is instant, its public names register everything.

Checked in a fresh process, since the test session has long imported every module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGISTERED = (
    "common>SimpleRNNCell",
    "common>MinimalGRUCell",
    "common>GRUCell",
    "common>LSTMCell",
    "common>CellRNN",
    "common>LSTM",
    "common>GRU",
    "common>TokenizerLayer",
)

_CHILD = f"""
import sys

import common
from common import cli  # submodules still import as before

assert "keras" not in sys.modules and "tensorflow" not in sys.modules, "import common is heavy"
import keras

registered = {REGISTERED!r}
assert not any(keras.saving.get_registered_object(name) for name in registered)
from common import LSTM  # one public name registers every layer of the package

missing = [name for name in registered if keras.saving.get_registered_object(name) is None]
assert not missing, missing
assert keras.saving.get_registered_object("common>LSTM") is LSTM is common.LSTM
assert set(common.__all__) <= set(dir(common))
assert not hasattr(common, "no_such_name")  # unknown names raise AttributeError
print("ok")
"""


def test_import_common_is_light_and_public_names_register_every_layer():
    out = subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "ok"
