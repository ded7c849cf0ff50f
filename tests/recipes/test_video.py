"""Video recipe: moving digits, GIF and .npy clips, TFDS, and the CLI end to end.

The end-to-end tests run the real CLI on the tiny preset: moving digits
(real handwritten digits shipped with scikit-learn) and a small directory of
GIF clips. No network.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from common.errors import UserError
from recipes.video import data as video_data
from recipes.video.main import cli
from tests.cli_errors import one_line_error
from tests.exported import (
    printed_numbers,
    printed_strings,
    run_outside,
    saved_model_cli_runs,
    signature_names,
    tflite_outputs,
)


def run_cli(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def write_clip_dir(root: Path, clips: video_data.VideoData, scale: int = 1) -> Path:
    for i, (clip, label) in enumerate(zip(clips.clips, clips.labels, strict=True)):
        video_data.write_gif(clip, root / clips.class_names[int(label)] / f"{i}.gif", scale=scale)
    return root


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize("scale", [1, 4])
def test_gif_clip_directory(tmp_path, scale):
    images, _ = video_data.digit_images()
    clips = video_data.moving_digits(images[:8], count=8, frames=5, size=16, seed=0)
    write_clip_dir(tmp_path / "clips", clips.subset(range(4)), scale=scale)
    loaded = video_data.load_directory(
        tmp_path / "clips", frames=5, size=16, channels=1, class_names=clips.class_names
    )
    assert loaded.clips.shape == (4, 5, 16, 16, 1)
    # At scale 4 area resizing brings back the original pixels; at scale 1 nothing changes.
    for j, source in enumerate(loaded.sources):
        i = int(Path(source).stem)
        assert loaded.labels[j] == clips.labels[i]
        np.testing.assert_array_equal(loaded.clips[j], clips.clips[i])


def test_npy_clips_are_lossless_and_checked(tmp_path):
    rng = np.random.default_rng(0)
    grey = np.zeros((5, 12, 12, 1), np.uint8)  # three identical frames, then two more
    grey[3, 2, 2], grey[4] = 7, np.arange(144, dtype=np.uint8).reshape(12, 12, 1)
    colour = rng.integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)  # > 256 colours a frame
    for name, clip in (("grey", grey), ("colour", colour), ("flat", grey[..., 0])):
        path = tmp_path / f"{name}.npy"
        path.write_bytes(video_data.npy_bytes(clip))
        expected = clip if clip.ndim == 4 else clip[..., None]
        np.testing.assert_array_equal(
            video_data.load_clip(path, len(clip), clip.shape[1], expected.shape[-1]), expected
        )
    bad = {
        "float.npy": lambda p: np.save(p, np.zeros((2, 4, 4), np.float32)),
        "image.npy": lambda p: np.save(p, np.zeros((4, 4), np.uint8)),
        "pickled.npy": lambda p: np.save(p, np.array([{"a": 1}], dtype=object)),
        "text.npy": lambda p: p.write_text("not numpy"),
    }
    for name, write in bad.items():
        write(tmp_path / name)
        with pytest.raises(UserError, match=name.replace(".", r"\.")):
            video_data.load_clip(tmp_path / name, 2, 4, 1)


def test_moving_digits_classes_are_motions():
    images, _ = video_data.digit_images()
    clips = video_data.moving_digits(images[:16], count=16, frames=6, size=20, seed=3)
    for clip, label in zip(clips.clips, clips.labels, strict=True):
        mass = clip[..., 0].astype(np.float64)
        rows = np.arange(20)[None, :, None]
        cols = np.arange(20)[None, None, :]
        total = mass.sum(axis=(1, 2))
        centre_row = (mass * rows).sum(axis=(1, 2)) / total
        centre_col = (mass * cols).sum(axis=(1, 2)) / total
        d_row, d_col = video_data.MOTIONS[int(label)][1]
        for delta, direction in (
            (centre_row[-1] - centre_row[0], d_row),
            (centre_col[-1] - centre_col[0], d_col),
        ):
            if direction:
                assert np.sign(delta) == direction
            else:
                assert abs(delta) < 1e-6


def test_tfds_video_source_with_mock_data():
    import tensorflow_datasets as tfds

    from common import data as common_data

    source = common_data.resolve("tfds:ucf101")
    with tfds.testing.mock_data(num_examples=3):
        clips = video_data.load_tfds(source, frames=4, size=12)
    assert clips.clips.shape == (3, 4, 12, 12, 3)
    assert len(clips.class_names) == 101
    assert clips.labels.min() >= 0 and clips.labels.max() < 101


# --------------------------------------------------------------------------- CLI


def test_help_shows_defaults():
    for command in ("train", "evaluate", "predict", "export"):
        assert "--help" in ok(run_cli(command, "--help")).output
    assert "[default: runs/video]" in " ".join(run_cli("evaluate", "--help").output.split())


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "run"
    result = ok(run_cli("train", "--preset", "tiny", "--cell", "minimal-gru", "--output-dir", out))
    return out, result.output


def test_tiny_video_end_to_end(video_run):
    out, output = video_run
    assert "Example predictions (validation clips)" in output
    for name in (
        "model.keras",
        "labels.json",
        "metrics.json",
        "confusion_matrix.png",
        "example_clip.gif",
        "history.csv",
    ):
        assert (out / name).is_file(), name
    assert len(list((out / "heldout").rglob("*.npy"))) == 10
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["clip"]["count"] == 10
    evaluated = json.loads(ok(run_cli("evaluate", "--model-dir", out, "--json")).stdout)
    assert evaluated["data"] == str(out / "heldout")
    for key in ("accuracy", "macro_f1", "clip"):
        assert evaluated[key] == metrics[key]
    result = ok(
        run_cli("predict", "--model-dir", out, "--input", out / "example_clip.gif", "--json")
    )
    predicted = json.loads(result.stdout)
    assert predicted["activity"] in [name for name, _ in video_data.MOTIONS]
    assert sum(predicted["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_exports_answer_as_predict(video_run, tmp_path):
    """Export both formats; the SavedModel outside the project and through
    `saved_model_cli` gives `predict`'s answers, the LiteRT file Keras's probabilities."""
    from common import runtime
    from recipes.video.predict import ModelInfo

    out, _ = video_run
    saved = tmp_path / "saved"
    ok(run_cli("export", "--model-dir", out, "--output", saved))
    ok(
        run_cli(
            "export", "--model-dir", out, "--output", tmp_path / "clip.tflite", "--format", "litert"
        )
    )
    info = ModelInfo.read(out)
    files = sorted((out / "heldout").rglob("*.npy"))[:4]
    clips = np.stack(
        [video_data.load_clip(f, info.frames, info.frame_size, info.channels) for f in files]
    )
    exported = run_outside(
        """
        model = tf.saved_model.load(values["path"])
        out = model.serve(tf.constant(values["clips"], tf.uint8))
        print(json.dumps({
            "label": [x.decode() for x in out["label"].numpy()],
            "probabilities": out["probabilities"].numpy().tolist(),
        }))
        """,
        tmp_path,
        path=str(saved),
        clips=clips.tolist(),
    )
    for i, file in enumerate(files):
        predicted = json.loads(
            ok(run_cli("predict", "--model-dir", out, "--input", file, "--json")).stdout
        )
        assert exported["label"][i] == predicted["activity"]
        expected = [predicted["probabilities"][n] for n in info.class_names]
        np.testing.assert_allclose(exported["probabilities"][i], expected, atol=1e-5)
    # The loader TensorFlow Serving uses, on every signature: dense, named outputs, the
    # same answers (two clips on one signature, one on the other).
    assert signature_names(saved) == ["serve", "serving_default"]
    counts = dict(zip(signature_names(saved), (2, 1), strict=True))
    runs = {name: f"clip={clips[:count].tolist()!r}" for name, count in counts.items()}
    for name, served in saved_model_cli_runs(saved, runs, tmp_path).items():
        count = counts[name]
        assert sorted(served) == ["label", "probabilities"]
        assert printed_strings(served["label"]) == exported["label"][:count]
        np.testing.assert_allclose(
            np.reshape(printed_numbers(served["probabilities"]), (count, -1)),
            exported["probabilities"][:count],
            atol=1e-6,
        )
    keras_probs = runtime.load_model(out).predict(clips.astype(np.float32), verbose=0)
    np.testing.assert_allclose(
        tflite_outputs(tmp_path / "clip.tflite", clips), keras_probs, atol=1e-4
    )


def test_evaluate_reads_the_heldout_clips_after_the_data_is_gone(tmp_path):
    images, _ = video_data.digit_images()
    clips = video_data.moving_digits(images[:24], count=24, frames=4, size=12, seed=5)
    data = write_clip_dir(tmp_path / "clips", clips)  # grey clips, read as RGB
    out = tmp_path / "run"
    ok(run_cli("train", "--preset", "tiny", "--data", data, "--output-dir", out, "--epochs", "1"))
    assert json.loads((out / "labels.json").read_text())["channels"] == 3
    shutil.rmtree(data)
    metrics = json.loads((out / "metrics.json").read_text())
    evaluated = json.loads(ok(run_cli("evaluate", "--model-dir", out, "--json")).stdout)
    assert metrics["clip"]["count"] == 8  # one of each class's three clips
    for key in ("accuracy", "macro_f1", "clip"):
        assert evaluated[key] == metrics[key]


# --------------------------------------------------------------------------- demo


def test_demo_page_answers_as_the_cli_does(video_run, tmp_path):
    """The video tab (`recipes/video/demo.py`) gives `predict --json`'s activity and
    probabilities, and shows the clip as the model sees it, for an uploaded clip and a
    held-out one."""
    from gradio_client import handle_file
    from PIL import Image

    from recipes.video import demo
    from recipes.video.predict import ModelInfo
    from tests.demo_client import endpoints, page_error, served

    out, _ = video_run
    info = ModelInfo.read(out)
    uploaded = out / "example_clip.gif"
    heldout = sorted((out / "heldout").rglob("*.npy"))[-1]
    bad = tmp_path / "clip.png"
    bad.write_bytes(b"not a clip")
    cli_error = one_line_error(run_cli("predict", "--model-dir", out, "--input", bad))
    with served("video", out) as client:
        assert endpoints(client) == {"/predict", "/predict_heldout"}
        name = heldout.relative_to(out / "heldout").as_posix()
        for file, args, api_name in (
            (uploaded, [handle_file(str(uploaded))], "/predict"),
            (heldout, [name], "/predict_heldout"),
        ):
            shown, label = client.predict(*args, api_name=api_name)
            cli = json.loads(
                ok(run_cli("predict", "--model-dir", out, "--input", file, "--json")).stdout
            )
            assert label["label"] == cli["activity"]
            confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
            assert confidences == pytest.approx(cli["probabilities"], abs=1e-6)
            with Image.open(shown) as gif:  # the model's frames, enlarged
                assert gif.format == "GIF" and 1 < gif.n_frames <= info.frames
                assert gif.size[0] == gif.size[1] >= info.frame_size
        # Bad input: the CLI's one line, naming the file as uploaded.
        shown = page_error(client, handle_file(str(bad)), api_name="/predict")
        assert shown == "clip.png: expected a .gif or .npy clip for a video model"
        assert cli_error == f"Error: {bad.parent}/{shown}"
        assert page_error(client, None, api_name="/predict") == demo.NO_INPUT
