"""common.export.write: atomic, refuses to overwrite unless asked, one-line errors."""

import pytest

from common import export
from common.errors import UserError


class FakeArchive:
    """Writes a SavedModel-like directory, optionally failing half-way."""

    def __init__(self, fail=False, marker="new"):
        self.fail, self.marker = fail, marker

    def write_out(self, path, verbose=True):
        import pathlib

        path = pathlib.Path(path)
        path.mkdir()
        (path / "saved_model.pb").write_text(self.marker)
        if self.fail:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C in the middle


def test_write_is_atomic_and_refuses_an_existing_path(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        export.write(out, "saved_model", overwrite=False, saved_model=lambda: FakeArchive(True))
    assert list(tmp_path.iterdir()) == []  # nothing at PATH, no staging left behind
    export.write(out, "saved_model", overwrite=False, saved_model=lambda: FakeArchive())
    assert (out / "saved_model.pb").read_text() == "new"
    with pytest.raises(UserError, match="already exists \\(add --overwrite"):
        export.write(out, "saved_model", overwrite=False, saved_model=lambda: FakeArchive())
    # --overwrite replaces it whole; a failed replacement keeps the old one.
    with pytest.raises(KeyboardInterrupt):
        export.write(out, "saved_model", overwrite=True, saved_model=lambda: FakeArchive(True, "x"))
    assert (out / "saved_model.pb").read_text() == "new"
    export.write(out, "saved_model", overwrite=True, saved_model=lambda: FakeArchive(False, "2"))
    assert (out / "saved_model.pb").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_litert_file_and_errors(tmp_path):
    out = tmp_path / "core.tflite"
    export.write(out, "litert", overwrite=False, saved_model=None, litert=lambda: b"TFL3")
    assert out.read_bytes() == b"TFL3"
    with pytest.raises(UserError, match="--format litert: not available for this one"):
        export.write(
            tmp_path / "x.tflite",
            "litert",
            overwrite=False,
            saved_model=None,
            litert_unavailable="not available for this one",
        )
    with pytest.raises(UserError, match="--format must be one of saved_model, litert"):
        export.write(tmp_path / "y", "onnx", overwrite=False, saved_model=None)
    with pytest.raises(UserError, match="the directory .*nowhere does not exist"):
        export.write(tmp_path / "nowhere" / "m", "saved_model", overwrite=False, saved_model=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["core.tflite"]
