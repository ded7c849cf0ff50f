"""Run an exported artifact the way a user without this project would: a Python outside
the project (`-I`: no PYTHONPATH, no current directory on sys.path), in an empty
directory, that must fail to import `common` or `recipes` and loads PATH with plain
TensorFlow.

Each script runs in its own process, forked from a server process (one per test worker)
that has imported only TensorFlow and NumPy and run nothing: a fresh process would spend
about 8 s importing TensorFlow, a fork starts in milliseconds. Nothing a script loads or
registers (a SavedModel, tensorflow-text's ops) outlives its process.
"""

import atexit
import json
import os
import re
import subprocess
import sys
import tempfile
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
    stdout = _outside(code, [], work)
    return json.loads(stdout.strip().splitlines()[-1])


# The fork server: reads one request per line ({code, argv, cwd}), forks, and the child
# runs `code` as `python -I -c code *argv` would, in `cwd`, with its standard output and
# error in files there; the server answers with the child's exit code (a child still
# running after TIMEOUT seconds is ended by SIGALRM).
TIMEOUT = 300
_SERVER = r"""
import json, os, signal, sys, traceback
import numpy
import tensorflow

timeout = int(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        signal.alarm(timeout)  # SIGALRM ends a child that runs too long
        os.chdir(request["cwd"])
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the requests stay the server's
        for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
            os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.argv = ["-c", *request["argv"]]
        code = 0
        try:
            exec(compile(request["code"], "<string>", "exec"), {"__name__": "__main__"})
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""
_server: subprocess.Popen | None = None


def _outside(code: str, argv: list[str], work: Path) -> str:
    """Run `python -I -c code *argv` in `work` (forked from the server); its standard
    output. A non-zero exit fails the test with the end of its standard error."""
    global _server
    if _server is None or _server.poll() is not None:
        home = tempfile.mkdtemp(prefix="outside-")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        _server = subprocess.Popen(
            [sys.executable, "-I", "-c", _SERVER, str(TIMEOUT)],
            cwd=home,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(Path(home) / "server-stderr.txt", "w"),
            text=True,
        )
        atexit.register(_server.kill)
        assert _server.stdout.readline() == "ready\n", (
            Path(home) / "server-stderr.txt"
        ).read_text()
    _server.stdin.write(json.dumps({"code": code, "argv": argv, "cwd": str(work)}) + "\n")
    _server.stdin.flush()
    answer = _server.stdout.readline()
    assert answer, "the fork server of tests/exported.py stopped"
    assert int(answer) == 0, (work / "stderr.txt").read_text()[-3000:]
    return (work / "stdout.txt").read_text()


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
    stdout = _outside(_SAVED_MODEL_CLI, [json.dumps(argvs)], work)
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
