"""Activity recipe: windows, splits, normalisation, input errors, and the CLI end to end.

The end-to-end tests run the real CLI on the tiny preset: the default
smartwatch recordings (real data shipped in an installed package) and small
synthetic recording directories. No network.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from common.errors import UserError
from recipes.activity import data as sensor_data
from recipes.activity import predict as predict_lib
from recipes.activity.main import cli
from tests.cli_errors import one_line_error
from tests.exported import (
    printed_numbers,
    printed_strings,
    run_outside,
    saved_model_cli_runs,
    signature_names,
    tflite_outputs,
)

CLASSES = ("slow", "fast")


def write_recording(path: Path, values: np.ndarray, sep: str = " ", header=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [sep.join(header)] if header else []
    lines += [sep.join(f"{v:.5f}" for v in row) for row in values]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def synthetic_recording(label: int, length: int, channels: int, rng, offset=0.0, scale=1.0):
    """A sine per channel whose frequency depends on the class, plus noise."""
    t = np.arange(length)[:, None]
    freq = 0.05 if label == 0 else 0.25
    phase = rng.uniform(0, 2 * np.pi, size=(1, channels))
    signal = np.sin(2 * np.pi * freq * t + phase) + 0.1 * rng.normal(size=(length, channels))
    return offset + scale * signal


def make_sensor_dir(
    root: Path, *, per_class=3, length=96, channels=3, offset=0.0, scale=1.0, seed=0
) -> Path:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            values = synthetic_recording(label, length, channels, rng, offset, scale)
            write_recording(root / name / f"rec{i}.txt", values, sep="," if i % 2 else " ")
    return root


def run_cli(*args: str):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


# --------------------------------------------------------------------------- units


def test_windows_never_cross_recordings():
    rng = np.random.default_rng(1)
    lengths = (50, 33, 71)
    recordings = tuple(
        sensor_data.Recording(
            # Every sample carries its recording index and time step, so a window
            # can be traced back to exactly one recording.
            np.stack(
                [
                    np.full(n, r, np.float32),
                    np.arange(n, dtype=np.float32),
                    rng.normal(size=n).astype(np.float32),
                ],
                axis=1,
            ),
            label=r % 2,
            source=f"r{r}",
        )
        for r, n in enumerate(lengths)
    )
    data = sensor_data.SensorData(recordings, CLASSES)
    x, y, owners = sensor_data.make_windows(data, window=16, stride=7)
    expected = sum(len(range(0, n - 16 + 1, 7)) for n in lengths)
    assert x.shape == (expected, 16, 3)
    for window, label, owner in zip(x, y, owners, strict=True):
        assert np.all(window[:, 0] == owner)  # one recording only
        assert np.all(np.diff(window[:, 1]) == 1)  # consecutive samples
        assert window[-1, 1] < lengths[owner]
        assert label == recordings[owner].label
        start = int(window[0, 1])
        np.testing.assert_array_equal(window, recordings[owner].values[start : start + 16])


def test_a_recording_shorter_than_a_window_is_one_padded_window():
    values = np.arange(30, dtype=np.float32).reshape(10, 3)
    windows = sensor_data.recording_windows(values, window=16, stride=4)
    assert windows.shape == (1, 16, 3)
    np.testing.assert_array_equal(windows[0, :10], values)
    assert np.isnan(windows[0, 10:]).all()
    np.testing.assert_array_equal(sensor_data.window_starts(10, 16, 4), [0])
    data = sensor_data.SensorData(
        (
            sensor_data.Recording(values, 0, "short"),
            sensor_data.Recording(np.zeros((40, 3), np.float32), 1, "long"),
        ),
        CLASSES,
    )
    assert sensor_data.short_recordings(data, 16) == 1
    x, _, owners = sensor_data.make_windows(data, 16, 4)
    np.testing.assert_array_equal(owners, [0] + [1] * 7)


@pytest.mark.parametrize("rate", [50.0, 32.0, 10.0])
def test_windows_in_seconds_span_the_same_time_at_any_rate(rate):
    from recipes.activity import config

    cfg = config.PRESETS["default"]
    window, stride = config.window_samples(cfg, rate)
    assert window / rate == pytest.approx(cfg.window_seconds, abs=0.5 / rate)
    assert stride / rate == pytest.approx(cfg.stride_seconds, abs=0.5 / rate)
    # A recording of 10 s gives the same number of windows at every rate.
    starts = sensor_data.window_starts(int(10 * rate), window, stride)
    assert len(starts) == 17  # (10 - 2) / 0.5 + 1
    assert config.window_samples(cfg, None) == (cfg.window, cfg.stride)  # samples, no rate
    assert config.window_samples(cfg, 50.0) == (cfg.window, cfg.stride)  # the same at 50 Hz


@pytest.mark.parametrize("kind", ["rnn", "conv-rnn"])
def test_padded_steps_change_nothing(kind):
    """A short window padded with NaN gives what the same weights give on the real steps."""
    from recipes.activity import config
    from recipes.activity import model as model_lib

    cfg = dataclasses.replace(config.PRESETS["tiny"], model=kind, conv_layers=2, conv_pool=2)
    rng = np.random.default_rng(0)
    stats = dict(channels=3, classes=4, mean=rng.normal(size=3), variance=rng.uniform(1, 2, 3))
    padded_model = model_lib.build_model(cfg, **stats)
    real = rng.normal(size=(2, 20, 3)).astype(np.float32)
    exact_model = model_lib.build_model(dataclasses.replace(cfg, window=20), **stats)
    exact_model.set_weights(padded_model.get_weights())
    padded = np.concatenate([real, np.full((2, cfg.window - 20, 3), np.nan, np.float32)], 1)
    got = padded_model.predict(padded, verbose=0)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, exact_model.predict(real, verbose=0), atol=1e-6)


def test_split_is_by_recording_and_seeded():
    data = sensor_data.load_default()
    train, val = sensor_data.split(data, 0.2, seed=7)
    train_sources = {r.source for r in train.recordings}
    val_sources = {r.source for r in val.recordings}
    assert not train_sources & val_sources
    assert len(train_sources | val_sources) == len(data.recordings) == 140
    assert len(val.recordings) == 28
    # Stratified: a fifth of each class's 20 recordings.
    np.testing.assert_array_equal(np.bincount(val.labels, minlength=7), [4] * 7)
    again = sensor_data.split(data, 0.2, seed=7)[1]
    assert [r.source for r in again.recordings] == [r.source for r in val.recordings]


def test_normalization_stats_are_per_channel():
    recordings = (
        sensor_data.Recording(np.array([[0.0, 10.0], [2.0, 10.0]], np.float32), 0, "a"),
        sensor_data.Recording(np.array([[4.0, 14.0]], np.float32), 1, "b"),
    )
    mean, var = sensor_data.normalization_stats(sensor_data.SensorData(recordings, CLASSES))
    np.testing.assert_allclose(mean, [2.0, 34.0 / 3.0], rtol=1e-6)
    np.testing.assert_allclose(var, [8.0 / 3.0, np.var([10.0, 10.0, 14.0])], rtol=1e-5)


def test_parse_recording_formats(tmp_path):
    text = "# a comment\nax, ay, az\n1, 2, 3\n\n4.5,5e-1,-6\n"
    values, last_line, header = sensor_data.parse_recording(text, "f.csv")
    assert header == ("ax", "ay", "az")
    assert last_line == 5
    np.testing.assert_allclose(values, [[1, 2, 3], [4.5, 0.5, -6]])
    values, _, header = sensor_data.parse_recording("1 2\t3\n4  5 6\n", "f.txt")
    assert header is None and values.shape == (2, 3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 2 3\n4 5\n", "f.txt:2: expected 3 channels (as on line 1), got 2"),
        ("1 2 3\n4 x 6\n", "f.txt:2: not a number: 'x'"),
        ("1,2,3\n4,,6\n", "f.txt:2: empty value"),
        ("1 2 3\n4 nan 6\n", "f.txt:2: not a finite number: 'nan'"),
        ("a b\n1 2 3\n", "f.txt:2: expected 2 channels as in the header, got 3"),
        ("# only a comment\n", "f.txt: no samples"),
    ],
)
def test_parse_recording_errors(text, message):
    with pytest.raises(UserError) as err:
        sensor_data.parse_recording(text, "f.txt")
    assert message in err.value.message
    assert "\n" not in err.value.message


def test_majority_vote_breaks_ties_by_mean_probability():
    probs = np.array([[0.6, 0.4], [0.45, 0.55], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    owners = np.array([0, 0, 1, 1, 1])
    labels, mean = predict_lib.vote(probs, owners, 2)
    # Recording 0: one vote each, class 0 has the higher mean probability (0.525).
    np.testing.assert_array_equal(labels, [0, 1])
    np.testing.assert_allclose(mean[1], [1.4 / 3, 1.6 / 3])


def test_recording_format_round_trips_bit_for_bit():
    rng = np.random.default_rng(0)
    values = (rng.normal(size=(300, 4)) * 10.0 ** rng.integers(-20, 20, size=(300, 4))).astype(
        np.float32
    )
    names = ("acc x", "b", "c", "gyro z")  # names with spaces, from a comma-separated header
    text = sensor_data.format_recording(values, names)
    parsed, last_line, header = sensor_data.parse_recording(text, "f.txt")
    assert header == names and last_line == 301
    np.testing.assert_array_equal(parsed.view(np.uint32), values.view(np.uint32))


# --------------------------------------------------------------------------- CLI


def test_help_shows_defaults():
    for command in ("train", "evaluate", "predict"):
        result = ok(run_cli(command, "--help"))
        assert "--help" in result.output
    assert "--modality" not in run_cli("train", "--help").output
    assert "--sample-rate HZ" in run_cli("train", "--help").output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stride", "10"], "--stride (samples) goes with --window"),
        (["--window", "50", "--window-seconds", "1"], "in samples (--window) or in seconds"),
        (["--model", "cnn"], "'cnn' is not one of 'rnn', 'conv-rnn'"),
        (["--sample-rate", "0"], "--sample-rate"),
    ],
)
def test_window_options_are_checked_before_anything_runs(tmp_path, args, message):
    result = run_cli("train", "--preset", "tiny", "--output-dir", tmp_path / "run", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("problem", ["ragged", "non-numeric", "channels", "rate"])
def test_bad_recordings_fail_with_one_line_and_write_nothing(tmp_path, problem):
    root = make_sensor_dir(tmp_path / "data")
    bad = root / "fast" / "rec1.txt"
    extra = []
    if problem == "rate":
        root, extra = "", ["--sample-rate", "32"]  # the default data is sampled at 50 Hz
        expected = "--sample-rate 32: this data set is sampled at 50 Hz"
    elif problem == "ragged":
        bad.write_text("1 2 3\n4 5 6\n7 8\n")
        expected = f"{bad}:3: expected 3 channels (as on line 1), got 2"
    elif problem == "non-numeric":
        bad.write_text("1 2 3\n4 five 6\n")
        expected = f"{bad}:2: not a number: 'five'"
    else:
        write_recording(bad, np.ones((40, 4)))
        expected = f"{bad}:40: 4 channels, but"
    out = tmp_path / "run"
    result = run_cli("train", "--preset", "tiny", "--data", root, "--output-dir", out, *extra)
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_directory_data_normalisation_from_training_recordings_only(tmp_path):
    train_dir = make_sensor_dir(tmp_path / "train", offset=0.0, scale=1.0, seed=1)
    # Validation recordings live on another scale: if their samples leaked into the
    # statistics, the stored mean would move towards 50.
    val_dir = make_sensor_dir(tmp_path / "val", offset=50.0, scale=10.0, seed=2)
    # A recording shorter than one window (0.64 s = 16 samples at 25 Hz) is padded, and counted.
    short = write_recording(train_dir / "fast" / "short.txt", np.ones((9, 3)))
    out = tmp_path / "run"
    result = ok(
        run_cli(
            "train",
            "--preset",
            "tiny",
            "--data",
            train_dir,
            "--validation-data",
            val_dir,
            "--output-dir",
            out,
            "--epochs",
            "1",
            "--cell",  # also checks that --cell reaches the model (and it compiles fastest)
            "simple",
            "--model",  # the default preset's is conv-rnn: the other one here
            "rnn",
            "--sample-rate",
            "25",
        )
    )
    assert "windows: 0.64 s = 16 samples at 25 Hz, stride 1.28 s = 32, 3 channels" in result.output
    assert "train: 7 recordings -> 19 windows (1 shorter than one window, padded" in result.output
    from common.runtime import load_model

    model = load_model(out)
    assert "conv" not in [layer.name for layer in model.layers]
    assert model.input_shape == (None, 16, 3)
    layer = model.get_layer("normalize")
    train_samples = np.concatenate(
        [sensor_data.read_recording(p)[0] for p in sorted(train_dir.rglob("*.txt"))]
    )
    np.testing.assert_allclose(np.ravel(layer.mean), train_samples.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(np.ravel(layer.variance), train_samples.var(axis=0), rtol=1e-3)
    labels = json.loads((out / "labels.json").read_text())
    assert labels["class_names"] == sorted(CLASSES) and labels["channels"] == 3
    assert (labels["window"], labels["stride"], labels["sample_rate"]) == (16, 32, 25.0)
    saved = json.loads((out / "config.json").read_text())
    assert (saved["cell"], saved["model"], saved["window"]) == ("simple", "rnn", 16)

    # The short recording on its own: one padded window, its timeline within its 9 samples.
    predicted = json.loads(
        ok(run_cli("predict", "--model-dir", out, "--input", short, "--json")).stdout
    )
    assert predicted["samples"] == 9 and len(predicted["windows"]) == 1
    assert predicted["windows"][0]["end"] == predicted["segments"][0]["end"] == 9
    assert sum(predicted["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)

    # A validation class the model does not know is a one-line error.
    (val_dir / "fast").rename(val_dir / "sprint")
    result = run_cli("evaluate", "--model-dir", out, "--data", val_dir)
    assert result.exit_code == 1 and "unknown class 'sprint'" in result.output


@pytest.fixture(scope="module")
def sensor_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("activity") / "sensor"
    result = ok(run_cli("train", "--preset", "tiny", "--output-dir", out))
    return out, result.output


def test_tiny_sensor_end_to_end(sensor_run):
    out, output = sensor_run
    for name in (
        "config.json",
        "argv.txt",
        "history.csv",
        "model.keras",
        "labels.json",
        "metrics.json",
        "training.png",
        "confusion_matrix.png",
        "confusion_matrix_windows.png",
        "example_recording.txt",
    ):
        assert (out / name).is_file(), name
    assert (out / "logs").is_dir()
    # The validation recordings, one directory per class, in the --data format.
    heldout = sorted((out / "heldout").rglob("*.txt"))
    assert len(heldout) == 28
    assert {p.parent.name for p in heldout} == set(
        json.loads((out / "labels.json").read_text())["class_names"]
    )
    assert "Example predictions" in output and "Timeline of" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["window"]["count"] > metrics["recording"]["count"] == 28
    # Seven balanced classes: chance is 1/7. Two tiny epochs already do far better.
    assert metrics["window"]["accuracy"] > 0.3
    assert metrics["accuracy"] == metrics["recording"]["accuracy"]

    result = ok(run_cli("evaluate", "--model-dir", out, "--json"))
    evaluated = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert evaluated["data"] == str(out / "heldout")
    for key in ("accuracy", "macro_f1", "window", "recording"):
        assert evaluated[key] == metrics[key]  # the same recordings, so the same numbers
    assert evaluated["confusion_matrix"] == metrics["reports"]["recording"]["confusion_matrix"]
    assert json.loads((out / "config.json").read_text())["model"] == "conv-rnn"  # the default
    text = ok(run_cli("evaluate", "--model-dir", out)).output
    assert "confusion matrix (rows: true, columns: predicted)" in text

    example = out / "example_recording.txt"
    result = ok(run_cli("predict", "--model-dir", out, "--input", example, "--json"))
    predicted = json.loads(result.stdout)
    labels = json.loads((out / "labels.json").read_text())
    assert predicted["activity"] in labels["class_names"]
    assert sum(predicted["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    n = predicted["samples"]
    assert len(predicted["windows"]) == len(range(0, n - labels["window"] + 1, labels["stride"]))
    assert sum(s["windows"] for s in predicted["segments"]) == len(predicted["windows"])
    text = ok(run_cli("predict", "--model-dir", out, "--input", example)).output
    assert "Timeline" in text and predicted["activity"] in text


def test_predict_rejects_foreign_recordings(sensor_run, tmp_path):
    out, _ = sensor_run
    narrow = write_recording(tmp_path / "narrow.txt", np.ones((50, 2)))
    result = run_cli("predict", "--model-dir", out, "--input", narrow)
    assert result.exit_code == 1 and "2 channels, the model expects 6" in result.output


def test_evaluate_reads_the_heldout_recordings_after_the_data_is_gone(tmp_path):
    data = make_sensor_dir(tmp_path / "data", per_class=4, length=120, seed=3)
    out = tmp_path / "run"
    ok(run_cli("train", "--preset", "tiny", "--data", data, "--output-dir", out, "--epochs", "1"))
    held_out = sorted(p.relative_to(out / "heldout") for p in (out / "heldout").rglob("*.txt"))
    assert [p.parent.name for p in held_out] == ["fast", "slow"]  # one of each class's four
    shutil.rmtree(data)
    metrics = json.loads((out / "metrics.json").read_text())
    evaluated = json.loads(ok(run_cli("evaluate", "--model-dir", out, "--json")).stdout)
    for key in ("accuracy", "macro_f1", "window", "recording"):
        assert evaluated[key] == metrics[key]

    # The run directory is read strictly: a labels.json from another version is refused.
    labels = json.loads((out / "labels.json").read_text())
    (out / "labels.json").write_text(json.dumps({**labels, "modality": "sensor"}))
    result = run_cli("evaluate", "--model-dir", out)
    assert result.exit_code == 1
    assert "unknown field 'modality'" in result.output and "retrain" in result.output
    (out / "labels.json").write_text(json.dumps(labels))
    shutil.rmtree(out / "heldout")
    result = run_cli("evaluate", "--model-dir", out)
    assert result.exit_code == 1 and "retrain it, or pass --data" in result.output


# --------------------------------------------------------------------------- export


def test_exported_saved_model_runs_without_the_project(sensor_run, tmp_path):
    out, _ = sensor_run
    info = predict_lib.ModelInfo.read(out)
    path = tmp_path / "recogniser"
    ok(run_cli("export", "--model-dir", out, "--output", path))
    files = sorted((out / "heldout").rglob("*.txt"))[::9]  # a few classes and lengths
    # and one recording shorter than a window (padded inside the endpoint too), and one of
    # exactly three windows
    first = sensor_data.read_recording(files[0])[0]
    for name, part in (("short", first[:20]), ("three", first[: info.window + 2 * info.stride])):
        files.append(tmp_path / f"{name}.txt")
        files[-1].write_text(sensor_data.format_recording(part))
    recordings = [sensor_data.read_recording(f)[0] for f in files]
    assert len({len(r) for r in recordings}) > 1
    exported = run_outside(
        """
        model = tf.saved_model.load(values["path"])
        results = []
        for recording in values["recordings"]:
            out = model.serve(tf.constant([recording], tf.float32))
            results.append({
                "label": out["label"].numpy()[0].decode(),
                "probabilities": out["probabilities"].numpy()[0].tolist(),
            })
        print(json.dumps({"results": results}))
        """,
        tmp_path,
        path=str(path),
        recordings=[r.tolist() for r in recordings],
    )
    for file, result in zip(files, exported["results"], strict=True):
        predicted = json.loads(
            ok(run_cli("predict", "--model-dir", out, "--input", file, "--json")).stdout
        )
        assert result["label"] == predicted["activity"]
        expected = [predicted["probabilities"][n] for n in info.class_names]
        np.testing.assert_allclose(result["probabilities"], expected, atol=1e-5)
    # The loader TensorFlow Serving uses, on every signature (the three windows on one, the
    # padded short recording on the other): dense, named outputs, the same answers.
    assert signature_names(path) == ["serve", "serving_default"]
    cases = dict(zip(signature_names(path), (-1, -2), strict=True))
    runs = {name: f"recording={[recordings[case].tolist()]!r}" for name, case in cases.items()}
    for name, served in saved_model_cli_runs(path, runs, tmp_path).items():
        case = cases[name]
        assert sorted(served) == ["label", "probabilities"]
        assert printed_strings(served["label"]) == [exported["results"][case]["label"]]
        np.testing.assert_allclose(
            printed_numbers(served["probabilities"]),
            exported["results"][case]["probabilities"],
            atol=1e-6,
        )


def test_litert_window_model_agrees_with_keras(sensor_run, tmp_path):
    from common import runtime

    out, _ = sensor_run
    path = tmp_path / "window.tflite"
    ok(run_cli("export", "--model-dir", out, "--output", path, "--format", "litert"))
    info = predict_lib.ModelInfo.read(out)
    values = sensor_data.read_recording(out / "example_recording.txt")[0]
    windows = sensor_data.recording_windows(values, info.window, info.stride)[:7]
    # and a padded window (NaN steps, masked: isnan and where are LiteRT builtins too)
    windows = np.concatenate([windows, sensor_data.recording_windows(values[:11], info.window, 1)])
    expected = runtime.load_model(out).predict(windows, verbose=0)
    np.testing.assert_allclose(tflite_outputs(path, windows), expected, atol=1e-4)


# --------------------------------------------------------------------------- demo


def test_demo_page_answers_as_the_cli_does(sensor_run, tmp_path):
    """The activity tab (`recipes/activity/demo.py`) gives `predict --json`'s activity,
    probabilities and segments, for an uploaded recording and a held-out one."""
    import base64

    from gradio_client import handle_file

    from recipes.activity import demo
    from tests.demo_client import endpoints, page_error, served

    out, _ = sensor_run
    uploaded = out / "example_recording.txt"
    heldout = sorted((out / "heldout").rglob("*.txt"))[-1]
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3 4 5 6\n4 five 6 7 8 9\n")
    cli_error = one_line_error(run_cli("predict", "--model-dir", out, "--input", bad))
    with served("activity", out) as client:
        assert endpoints(client) == {"/predict", "/predict_heldout"}
        name = heldout.relative_to(out / "heldout").as_posix()
        for file, args, api_name in (
            (uploaded, [handle_file(str(uploaded))], "/predict"),
            (heldout, [name], "/predict_heldout"),
        ):
            label, summary, plot, segments = client.predict(*args, api_name=api_name)
            cli = json.loads(
                ok(run_cli("predict", "--model-dir", out, "--input", file, "--json")).stdout
            )
            assert label["label"] == cli["activity"]  # the vote, not the top mean probability
            shown = {c["label"]: c["confidence"] for c in label["confidences"]}
            assert shown == pytest.approx(cli["probabilities"], abs=1e-6)
            votes = f"{cli['votes'][cli['activity']]} of {len(cli['windows'])} windows"
            assert summary == f"**{cli['activity']}** ({votes}; {cli['samples']} samples)"
            assert segments["headers"] == demo.SEGMENT_HEADERS
            rows = [[s[k] for k in demo.SEGMENT_HEADERS] for s in cli["segments"]]
            assert [r[:4] for r in segments["data"]] == [r[:4] for r in rows]
            assert [r[4] for r in segments["data"]] == pytest.approx([r[4] for r in rows], abs=1e-4)
            assert plot["type"] == "matplotlib"
            header, picture = plot["plot"].split(",", 1)
            assert header == "data:image/png;base64"
            assert base64.b64decode(picture).startswith(b"\x89PNG")
        # Bad input: the CLI's one line, naming the file as uploaded.
        shown = page_error(client, handle_file(str(bad)), api_name="/predict")
        assert shown == "bad.txt:2: not a number: 'five'"
        assert cli_error == f"Error: {bad}:2: not a number: 'five'"
        assert page_error(client, None, api_name="/predict") == demo.NO_INPUT
        assert page_error(client, None, api_name="/predict_heldout") == demo.NO_INPUT
