"""Run an exported artifact the way a user without this project would: a fresh Python
(`-I`: no PYTHONPATH, no current directory on sys.path), started in an empty directory,
that must fail to import `common` or `recipes` and loads PATH with plain TensorFlow."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

PRELUDE = """
import importlib.util, json, sys
assert importlib.util.find_spec("common") is None and importlib.util.find_spec("recipes") is None
import numpy as np
import tensorflow as tf
"""


def run_outside(script: str, tmp_path, **values):
    """Run `script` (after PRELUDE, with `values` passed as JSON in the variable `values`) in a fresh
    process outside the project; it must print one JSON document, which is returned."""
    if "path" in values and (Path(values["path"]) / "saved_model.pb").is_file():
        assert xla_functions(values["path"]) == 0, "XLA-compiled functions in the SavedModel"
    work = tmp_path / "outside"
    work.mkdir(exist_ok=True)
    (work / "values.json").write_text(json.dumps(values))
    code = PRELUDE + 'values = json.load(open("values.json"))\n' + textwrap.dedent(script)
    stdout = _outside([sys.executable, "-I", "-c", code], work)
    return json.loads(stdout.strip().splitlines()[-1])


def _outside(command: list[str], work: Path) -> str:
    """Run `command` in `work` without the project on the path; its standard output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def tflite_outputs(path, inputs):
    """Run a .tflite file on each row of `inputs` (batch 1 each) in this process."""
    import warnings

    import numpy as np
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for row in inputs:
        interpreter.set_tensor(source["index"], np.asarray(row[None], source["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0])
    return np.array(outputs)


def xla_functions(path) -> int:
    """How many functions of a SavedModel must be compiled by XLA (TensorFlow Serving runs
    those only with --xla_cpu_compilation_enabled; the exports keep it at 0)."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    library = model.meta_graphs[0].graph_def.library
    flagged = [f for f in library.function if f.attr["_XlaMustCompile"].b]
    calls = [n for f in library.function for n in f.node_def if n.attr["_XlaMustCompile"].b]
    return len(flagged) + len(calls)


# `saved_model_cli run` once per (signature, --input_exprs), all in one process (TensorFlow is
# imported once): the tool's own parser and `run` command, as its `main` calls them.
_SAVED_MODEL_CLI = """
import json, sys
from tensorflow.python.tools import saved_model_cli
for argv in json.loads(sys.argv[1]):
    print("=== saved_model_cli", *argv[:1], flush=True)
    saved_model_cli.create_parser().parse_args(argv).func()
    sys.stdout.flush()
"""


def saved_model_cli_runs(path, runs: dict[str, str], tmp_path) -> dict[str, dict[str, str]]:
    """`saved_model_cli run` (the loader TensorFlow Serving uses) on signatures of the
    SavedModel at `path`, outside the project: {signature: --input_exprs} ->
    {signature: {output key: the printed value}}.

    A signature whose outputs are not all dense, named tensors fails here, as it would in
    TensorFlow Serving."""
    work = tmp_path / "outside-cli"
    work.mkdir(exist_ok=True)
    argvs = [
        ["run", "--dir", str(path), "--tag_set", "serve"]
        + ["--signature_def", signature, "--input_exprs", exprs]
        for signature, exprs in runs.items()
    ]
    stdout = _outside([sys.executable, "-I", "-c", _SAVED_MODEL_CLI, json.dumps(argvs)], work)
    results, outputs, key = [], None, None
    for line in stdout.splitlines():
        if line.startswith("=== saved_model_cli"):
            outputs, key = {}, None
            results.append(outputs)
        elif line.startswith("Result for output key ") and line.endswith(":"):
            key = line[len("Result for output key ") : -1]
            outputs[key] = ""
        elif key is not None:
            outputs[key] += line + "\n"
    assert len(results) == len(runs), stdout[-3000:]
    return dict(zip(runs, results, strict=True))


def saved_model_cli_run(path, signature: str, input_exprs: str, tmp_path) -> dict[str, str]:
    """`saved_model_cli_runs` on one signature: {output key: the printed value}."""
    return saved_model_cli_runs(path, {signature: input_exprs}, tmp_path)[signature]


def printed_strings(text: str) -> list[str]:
    """The byte strings of a printed NumPy array (b'...' items), in order."""
    import ast
    import re

    return [ast.literal_eval(m).decode() for m in re.findall(r"b'(?:[^'\\]|\\.)*'", text)]


def signature_names(path) -> list[str]:
    """The signatures of the SavedModel at `path`, sorted (not `__saved_model_init_op`)."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    return sorted(k for k in model.meta_graphs[0].signature_def if not k.startswith("__"))


def printed_numbers(text: str) -> list[float]:
    """The numbers of a printed NumPy array, in order."""
    return [float(x) for x in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text)]
