"""char_lm: data cleaning and splits, the CLI end to end on the tiny preset (the
run directory's heldout.txt read back by `evaluate` into exactly the numbers of
metrics.json, even once the --data file is gone), and the sampling and scoring
rules the issue asks for (seeded sampling, greedy = step-by-step argmax, banned
tokens never emitted, incremental = full prefix, score = sum of step log-probabilities, no <unk> at word level, one-line
errors for bad input and old run directories), the streamed sampling of `sample` and the demo
against the compiled loop, the export (outside the project and through `saved_model_cli`) and
the demo page against the CLI."""

import json
import math
import shutil

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from common.data import resolve
from common.tokenization import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from recipes.char_lm import config, data
from recipes.char_lm import model as model_lib
from recipes.char_lm.main import _load_run, cli
from recipes.char_lm.sample import Sampler, stream_texts
from tests.cli_errors import one_line_error
from tests.exported import printed_numbers, run_outside, saved_model_cli_runs, signature_names

# ----------------------------------------------------------------------------- data


def test_clean_play_turns_markdown_into_speeches():
    markdown = (
        "# Macbeth\n\n## ACT I\n\n_Thunder and lightning. Enter three Witches,\nand others_\n\n"
        "**First Witch**  \nWhen shall we three meet again  \n__\\[Aside]_  \n"
        "In thunder, lightning, or in rain? _\\[Aside to ALL]_  \n\n"
        "_Exeunt_\n\n**ALL**  \nFair is foul\\--and foul is fair.\n"
    )
    assert data.clean_play(markdown) == (
        "First Witch:\nWhen shall we three meet again\nIn thunder, lightning, or in rain?\n\n"
        "ALL:\nFair is foul--and foul is fair.\n"
    )


def test_default_corpus_is_all_the_plays_without_markup():
    text = data.shakespeare()
    assert len(text) > 4_500_000
    assert "HAMLET:\n" in text and "To be, or not to be" in text
    assert not set("*_#\\[]") & set(text)


def test_split_is_seeded_keeps_every_block_and_cuts_at_paragraphs():
    text = "".join(f"SPEAKER {i}:\nline {i} of the play\n\n" for i in range(400))
    blocks = data.paragraph_blocks(text, 300)
    assert "".join(blocks) == text
    assert all(b.endswith("\n\n") for b in blocks)
    train, val = data.split_text(text, fraction=0.1, block_chars=300, seed=1)
    assert (train, val) == data.split_text(text, fraction=0.1, block_chars=300, seed=1)
    assert (train, val) != data.split_text(text, fraction=0.1, block_chars=300, seed=2)
    assert len(train) + len(val) == len(text) and 0.05 < len(val) / len(text) < 0.15


def test_windows_cover_every_token_once_after_bos():
    inputs, targets, weights = data.window_arrays(np.arange(10, 17), 3, BOS_ID, 0)
    assert targets.tolist() == [[10, 11, 12], [13, 14, 15], [16, 0, 0]]
    assert inputs.tolist() == [[BOS_ID, 10, 11], [BOS_ID, 13, 14], [BOS_ID, 16, 0]]
    assert weights.sum() == 7


def test_tail_holdout_is_the_end_of_the_text_cut_at_a_line_break():
    text = "".join(f"line {i}\n" for i in range(100))
    train, val = data.split_tail(text, 0.1)
    assert train + val == text and val.startswith("line ") and train.endswith("\n")
    assert 0.08 < len(val) / len(text) < 0.12


def test_streams_are_read_in_order_from_bos_starting_at_a_new_offset_each_pass():
    length, seq_len = 23, 5
    ids = np.arange(10, 10 + 2 * length, dtype=np.int32)  # two streams of 23 ids
    ds, windows = data.stream_dataset(ids, seq_len=seq_len, batch_size=2, seed=3)
    assert windows == (length - seq_len) // seq_len == 3
    batches = list(ds.take(6 * windows).as_numpy_iterator())
    offsets = set()
    for p in range(6):  # one pass = `windows` consecutive batches
        inputs = np.concatenate([x for x, _ in batches[p * windows : (p + 1) * windows]], axis=1)
        targets = np.concatenate([y for _, y in batches[p * windows : (p + 1) * windows]], axis=1)
        for row in range(2):
            stream = ids[row * length : (row + 1) * length]
            offset = int(targets[row, 0] - stream[0])
            assert 0 <= offset < seq_len
            assert targets[row].tolist() == stream[offset : offset + 15].tolist()
            assert inputs[row].tolist() == [BOS_ID, *stream[offset : offset + 14]]
            offsets.add(offset)
    assert len(offsets) > 1
    val, val_windows = data.stream_dataset(ids, seq_len=seq_len, batch_size=2, seed=None)
    assert val_windows == 3 and val.cardinality() == 3  # one pass from offset 0
    assert next(val.as_numpy_iterator())[1][:, 0].tolist() == [10, 10 + length]


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_stateful_model_on_consecutive_windows_equals_the_whole_sequence(cell):
    from common import lm

    cfg = config.Config(cell=cell, layers=2, units=8, embedding_dim=4, dropout=0.0)
    stateless = model_lib.build_model(cfg, 20)
    stateful = model_lib.build_model(cfg, 20, stateful_batch=3)
    stateful.set_weights(stateless.get_weights())
    ids = np.random.default_rng(0).integers(0, 20, size=(3, 12)).astype("int32")
    whole = stateless(ids).numpy()
    pieces = np.concatenate([stateful(ids[:, i : i + 4]).numpy() for i in range(0, 12, 4)], 1)
    np.testing.assert_allclose(pieces, whole, atol=1e-5)
    lm.reset_states(stateful)  # a new pass starts from zero again
    np.testing.assert_allclose(stateful(ids[:, :4]).numpy(), whole[:, :4], atol=1e-5)


def test_word_level_ends_every_line_with_eos():
    cfg = config.Config(level="word", max_vocab=6)
    tok = data.build_tokenizer(cfg, "a b a\n\nb a c\n")
    assert tok.vocab[4:] == ["a", "b"]  # cap of 6 with the 4 specials: c is <unk>
    assert data.encode(tok, "a b a\n\nb a c\n").tolist() == [4, 5, 4, EOS_ID, 5, 4, UNK_ID, EOS_ID]


def test_tfds_source_reads_the_text_feature():
    import tensorflow_datasets as tfds

    # mock_data: random 10-19 letter texts, no split metadata, so the text is held out in blocks.
    with tfds.testing.mock_data(num_examples=200):
        source = resolve("tfds:tiny_shakespeare")
        corpus = data.load_corpus(config.PRESETS["tiny"], source, None, seed=0)
    assert set(corpus.train + corpus.validation) <= set(" abcdefghij\n")
    assert len(corpus.train) > len(corpus.validation) > 0
    assert "tfds:tiny_shakespeare" in corpus.description


# ----------------------------------------------------------------------------- CLI end to end


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("char") / "run"
    result = invoke("train", "--preset", "tiny", "--output-dir", out)
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("words") / "plays.txt"
    corpus.write_text(data.shakespeare()[:60_000], encoding="utf-8")
    out = corpus.parent / "run"
    result = invoke(
        "train", "--preset", "tiny", "--level", "word", "--data", corpus, "--output-dir", out
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_the_run_and_learns(char_run):
    out, output = char_run
    for name in (
        "config.json",
        "argv.txt",
        data.HELDOUT_FILE,
        "history.csv",
        "model.keras",
        "tokenizer.json",
        "metrics.json",
        "training.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "logs").is_dir() and not (out / "backup").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["bits_per_char"] == pytest.approx(metrics["loss"] / math.log(2))
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]))
    # Loose bound: clearly better than guessing uniformly among the vocabulary.
    assert metrics["loss"] < math.log(metrics["vocab_size"]) - 0.5
    assert "bits_per_char" in output and metrics["sample"] in output


def test_sample_score_and_evaluate_from_the_saved_directory(char_run):
    out, _ = char_run
    sampled = invoke(
        "sample", "--model-dir", out, "--prime", "KING:", "--length", 40, "--num-samples", 2
    )
    assert sampled.exit_code == 0, sampled.output
    assert sampled.stdout.count("KING:") == 2

    scored = invoke("score", "--model-dir", out, "--text", "To be, or not to be", "--json")
    assert scored.exit_code == 0, scored.output
    result = json.loads(scored.stdout)
    assert result["tokens"] == 19 and result["unk_tokens"] == 0
    assert result["bits_per_char"] == pytest.approx(-result["total_log_prob"] / 19 / math.log(2))

    evaluated = invoke("evaluate", "--model-dir", out, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)  # exactly one JSON object on stdout
    saved = json.loads((out / "metrics.json").read_text())
    assert {"loss", "bits_per_char", "perplexity"} <= set(metrics)
    assert metrics == {k: saved[k] for k in metrics}  # the same held-out text, the same numbers


def test_heldout_file_is_the_validation_text_exactly(char_run):
    out, _ = char_run
    cfg, tok, _ = _load_run(out)
    corpus = data.load_corpus(cfg, resolve(None), None, seed=42)  # what `train` held out
    read_back = data.read_source(resolve(str(out / data.HELDOUT_FILE)))
    assert read_back == corpus.validation
    assert data.encode(tok, read_back).tolist() == data.encode(tok, corpus.validation).tolist()


def test_evaluate_needs_only_the_run_directory(word_run):
    """Trained on a --data file that is then deleted: evaluate reads heldout.txt alone."""
    out, _ = word_run
    (out.parent / "plays.txt").unlink()
    evaluated = invoke("evaluate", "--model-dir", out, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)
    saved = json.loads((out / "metrics.json").read_text())
    assert "bits_per_word" in metrics
    assert metrics == {k: saved[k] for k in metrics}


def test_carried_state_run_scores_the_heldout_text_as_one_sequence(tmp_path):
    out = tmp_path / "run"
    result = invoke("train", "--preset", "tiny", "--state", "carry", "--output-dir", out)
    assert result.exit_code == 0, result.output
    cfg, tok, model = _load_run(out)
    assert cfg.state == "carry"
    assert not any(getattr(layer, "stateful", False) for layer in model.layers)  # any batch
    # The whole held-out text in one call of the saved model, from <bos> and a zero state.
    ids = data.encode(tok, data.read_source(resolve(str(out / data.HELDOUT_FILE))))
    logits = model(np.concatenate([[BOS_ID], ids[:-1]])[None].astype("int32")).numpy()[0]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    loss = -log_probs[np.arange(len(ids)), ids].mean()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["epochs"] == 2
    assert saved["loss"] == pytest.approx(loss, rel=1e-4)
    assert saved["loss"] < math.log(saved["vocab_size"]) - 0.5
    evaluated = json.loads(invoke("evaluate", "--model-dir", out, "--json").stdout)
    assert evaluated["loss"] == pytest.approx(saved["loss"], rel=1e-9)


def test_carried_state_needs_text_for_one_window_per_stream(tmp_path):
    out = tmp_path / "run"
    one_line_error(
        invoke(
            "train",
            "--preset",
            "tiny",
            "--state",
            "carry",
            "--batch-size",
            1000,
            "--output-dir",
            out,
        ),
        "streams",
        "--batch-size",
    )
    assert not out.exists()


def test_old_run_directories_are_refused_with_a_retrain_message(char_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(char_run[0], old)
    values = json.loads((old / "config.json").read_text())
    values["max_chars"] = values.pop("max_examples")
    (old / "config.json").write_text(json.dumps(values))
    one_line_error(invoke("sample", "--model-dir", old), "config.json", "'max_chars'", "retrain")
    (old / data.HELDOUT_FILE).unlink()
    one_line_error(invoke("evaluate", "--model-dir", old), data.HELDOUT_FILE, "retrain")


@pytest.fixture(scope="module")
def char_sampler(char_run):
    cfg, tok, model = _load_run(char_run[0])
    return Sampler(cfg, tok, model), model


def test_seeded_sampling_is_reproducible(char_sampler):
    sampler, _ = char_sampler
    first, _ = sampler.generate([], length=30, temperature=1.0, num_samples=3, seed=7)
    again, _ = sampler.generate([], length=30, temperature=1.0, num_samples=3, seed=7)
    other, _ = sampler.generate([], length=30, temperature=1.0, num_samples=3, seed=8)
    assert first == again and first != other


def test_temperature_zero_is_greedy_step_by_step(char_sampler):
    sampler, model = char_sampler
    prime = sampler.tok.encode("ROMEO")
    greedy, _ = sampler.generate(prime, length=25, temperature=0.0, num_samples=2)
    cold, _ = sampler.generate(prime, length=25, temperature=1e-6, num_samples=2, seed=3)
    top1, _ = sampler.generate(prime, length=25, temperature=1.0, top_k=1, seed=5)
    assert cold == greedy and top1 == greedy[:1] and greedy[0] == greedy[1]
    # The compiled loop equals argmax decoding driven from Python with the Keras step model,
    # one token in per call, the states fed back.
    states = [tf.constant(s) for s in model_lib.zero_states(sampler.cfg, 1)]
    inputs, expected = tf.constant([[BOS_ID, *prime]], dtype=tf.int32), []
    for _ in range(25):
        logits, *states = sampler.step([inputs, *states], training=False)
        logits = logits.numpy()[0, -1]
        logits[sampler.banned] = -np.inf
        expected.append(int(np.argmax(logits)))
        inputs = tf.constant([[expected[-1]]], dtype=tf.int32)
    assert greedy[0] == expected
    # ... and the argmax of the full model over each prefix (one causal pass gives them all).
    ids = [BOS_ID, *prime, *greedy[0]]
    logits = model(np.array([ids]), training=False).numpy()[0]
    logits[:, sampler.banned] = -np.inf
    assert np.argmax(logits, axis=-1)[len(prime) : -1].tolist() == greedy[0]


def test_sampling_never_emits_banned_tokens(char_run):
    cfg, tok, model = _load_run(char_run[0])
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    banned = [PAD_ID, BOS_ID, UNK_ID, EOS_ID]  # <eos> too, at character level
    bias[banned] += 30.0  # the banned tokens are now the likeliest by far
    head.set_weights([kernel, bias])
    sampler = Sampler(cfg, tok, model)
    for top_k in (0, 3):
        outputs, _ = sampler.generate([], length=40, top_k=top_k, num_samples=8, seed=1)
        assert all(len(ids) == 40 for ids in outputs)
        assert not set(banned) & {i for ids in outputs for i in ids}


def test_streamed_sampling_equals_the_compiled_loop(char_sampler, word_run):
    sampler, _ = char_sampler
    prime = sampler.tok.encode("KING")
    for options in (
        dict(temperature=0.8, num_samples=3, seed=7),
        dict(temperature=0.0),
        dict(temperature=1.0, top_k=3, seed=5),
    ):
        looped, _ = sampler.generate(prime, length=150, **options)
        chunks = list(sampler.stream(prime, length=150, **options))
        assert chunks[-1] == looped
        sizes = [{len(ids) for ids in chunk} for chunk in chunks]
        assert sizes == [{64}, {128}, {150}]  # STREAM_CHUNK steps at a time
        texts = list(stream_texts(sampler, "KING", length=150, **options))
        assert texts[-1] == ["KING" + sampler.tok.decode(ids) for ids in looped]
        assert texts[0] == ["KING" + sampler.tok.decode(ids) for ids in chunks[0]]
    # Word level: samples end at <eos>, the stream once every one has.
    cfg, tok, model = _load_run(word_run[0])
    words = Sampler(cfg, tok, model)
    options = dict(length=150, num_samples=6, seed=2)
    looped, _ = words.generate(tok.encode("I"), **options)
    chunks = list(words.stream(tok.encode("I"), **options))
    assert chunks[-1] == looped and len(chunks) == min(3, max(map(len, looped)) // 64 + 1)
    *_, texts = stream_texts(words, "I", **options)
    assert texts == ["I " + tok.decode(ids) for ids in looped]


def test_incremental_steps_give_the_full_prefix_probabilities(char_sampler):
    sampler, model = char_sampler
    ids = [BOS_ID, *sampler.tok.encode("Now is the winter")]
    full = model(np.array([ids]), training=False).numpy()[0]
    states = [tf.constant(s) for s in model_lib.zero_states(sampler.cfg, 1)]
    for t, token in enumerate(ids):
        logits, *states = sampler.step([tf.constant([[token]], dtype=tf.int32), *states])
        np.testing.assert_allclose(_softmax(logits.numpy()[0, -1]), _softmax(full[t]), atol=1e-5)


def test_score_is_the_sum_of_step_log_probabilities(char_run, char_sampler, monkeypatch):
    from recipes.char_lm import score

    monkeypatch.setattr(score, "CHUNK", 8)  # the state is carried across three chunks
    out, _ = char_run
    sampler, model = char_sampler
    text = "What's in a name?\nA rose"
    result = json.loads(invoke("score", "--model-dir", out, "--text", text, "--json").stdout)
    ids = sampler.tok.encode(text)
    # log P(ids[i] | <bos>, ids[:i]) from the full model run over the whole prefix.
    logits = model(np.array([[BOS_ID, *ids[:-1]]]), training=False).numpy()[0]
    total = sum(math.log(_softmax(logits[i])[token]) for i, token in enumerate(ids))
    assert result["tokens"] == len(ids) == 24
    assert result["total_log_prob"] == pytest.approx(total, abs=1e-3)


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_word_level_trains_samples_without_unk_and_stops_at_eos(word_run):
    out, output = word_run
    assert "bits_per_word" in output
    cfg, tok, model = _load_run(out)
    assert cfg.level == "word" and tok.level == "word"
    sampled = invoke("sample", "--model-dir", out, "--prime", "I", "--length", 20)
    assert sampled.exit_code == 0, sampled.output
    # Make <unk> the likeliest token by far: sampling must still never emit it.
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    bias[UNK_ID] += 20.0
    head.set_weights([kernel, bias])
    outputs, _ = Sampler(cfg, tok, model).generate([], length=30, num_samples=20, seed=0)
    assert sum(map(len, outputs)) > 0 and not any(UNK_ID in ids for ids in outputs)
    assert not any(EOS_ID in ids for ids in outputs)
    # Make <eos> certain: every sample stops at once.
    bias[EOS_ID] += 40.0
    head.set_weights([kernel, bias])
    outputs, _ = Sampler(cfg, tok, model).generate([], length=30, num_samples=5, seed=0)
    assert outputs == [[]] * 5


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "content, needles",
    [
        (None, ["no such file or directory", "missing.txt"]),
        (b"", ["empty.txt", "empty"]),
        (b"good line\n\xff\xfe bad bytes\n", ["bad.txt:2", "utf-8"]),
    ],
)
def test_bad_training_files_fail_in_one_line_and_write_nothing(tmp_path, content, needles):
    name = needles[0].split(":")[0] if content is not None else "missing.txt"
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "run"
    one_line_error(
        invoke("train", "--preset", "tiny", "--data", path, "--output-dir", out), *needles
    )
    assert not out.exists()


def test_unseen_prime_characters_and_zero_length_fail_in_one_line(char_run):
    out, _ = char_run
    one_line_error(invoke("sample", "--model-dir", out, "--prime", "naïve Ω"), "'ï'", "--prime")
    one_line_error(invoke("sample", "--model-dir", out, "--length", 0), "--length")
    one_line_error(invoke("score", "--model-dir", out), "--text")
    one_line_error(invoke("sample", "--model-dir", out.parent / "nothing"), "--model-dir")


# ----------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def char_export(char_run, tmp_path_factory):
    """The tiny character run's SavedModel."""
    path = tmp_path_factory.mktemp("char-export") / "lm"
    result = invoke("export", "--model-dir", char_run[0], "--output", path)
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("which", ["char", "word"])
def test_exported_model_generates_and_scores_like_the_cli(
    which, char_run, word_run, request, tmp_path
):
    out = (char_run if which == "char" else word_run)[0]
    if which == "char":
        path = request.getfixturevalue("char_export")
    else:
        path = tmp_path / "lm"
        result = invoke("export", "--model-dir", out, "--output", path)
        assert result.exit_code == 0, result.output
    prime = "ROMEO" if which == "char" else "I"
    texts = ["What's in a name?\nA rose\n\nby any other name", "To be, or not to be"]
    exported = run_outside(
        """
        model = tf.saved_model.load(values["path"])
        def generate(seed):
            text = model.generate(tf.constant(values["prime"]), tf.constant(40), tf.constant(0.9),
                                  tf.constant(seed))
            return text.numpy().decode()
        try:
            model.generate(tf.constant("\\u2603"), tf.constant(5), tf.constant(1.0), tf.constant(0))
            unknown = "no error"
        except tf.errors.InvalidArgumentError as e:
            unknown = e.message
        print(json.dumps({
            "texts": [generate(3), generate(3), generate(4)],
            "scores": model.score(tf.constant(values["texts"])).numpy().tolist(),
            "unknown": unknown,
        }))
        """,
        tmp_path,
        path=str(path),
        prime=prime,
        texts=texts,
    )
    first, again, other = exported["texts"]
    assert first == again != other
    sampled = invoke(
        "sample",
        "--model-dir",
        out,
        "--prime",
        prime,
        "--length",
        40,
        "--temperature",
        0.9,
        "--seed",
        3,
    )
    assert first + "\n" == sampled.stdout
    for text, total in zip(texts, exported["scores"], strict=True):
        scored = json.loads(invoke("score", "--model-dir", out, "--text", text, "--json").stdout)
        assert total == pytest.approx(scored["total_log_prob"], rel=1e-5, abs=1e-4)
    assert "prime: a token is not in the vocabulary of the model" in exported["unknown"]


def test_every_exported_signature_runs_in_saved_model_cli(char_run, char_export, tmp_path):
    """`saved_model_cli run` (TensorFlow Serving's loader) on each signature: one dense output,
    the text `sample` prints and the totals `score` gives."""
    import ast

    out, path = char_run[0], char_export
    assert signature_names(path) == ["generate", "score", "serving_default"]
    sampled = invoke(
        "sample", "--model-dir", out, "--prime", "ROMEO", "--length", 40,
        "--temperature", 0.9, "--seed", 3,
    )  # fmt: skip
    lines = ["To be, or not to be", "What's in a name?\nA rose"]
    generate = 'prime="ROMEO";length=40;temperature=0.9;seed=3'
    runs = {
        name: f"text={lines!r}" if name == "score" else generate for name in signature_names(path)
    }
    for name, served in saved_model_cli_runs(path, runs, tmp_path).items():
        assert sorted(served) == ["output_0"]
        if name == "score":
            for line, total in zip(lines, printed_numbers(served["output_0"]), strict=True):
                scored = json.loads(
                    invoke("score", "--model-dir", out, "--text", line, "--json").stdout
                )
                assert total == pytest.approx(scored["total_log_prob"], rel=1e-5, abs=1e-4)
        else:  # generate, and serving_default: the same
            # A scalar string, printed as Python's repr of its bytes.
            assert ast.literal_eval(served["output_0"].strip()).decode() + "\n" == sampled.stdout


# ----------------------------------------------------------------------------- demo


def test_demo_page_answers_as_the_cli_does(char_run):
    from recipes.char_lm import score as score_lib
    from tests.demo_client import endpoints, page_error, served

    out, _ = char_run
    sampled = invoke(
        "sample", "--model-dir", out, "--prime", "KING:", "--length", 200,
        "--temperature", 0.9, "--top-k", 10, "--seed", 3,
    )  # fmt: skip
    text = "To be, or not to be"
    scored = json.loads(invoke("score", "--model-dir", out, "--text", text, "--json").stdout)
    unknown = invoke("sample", "--model-dir", out, "--prime", "naïve Ω")
    with served("char_lm", out) as client:
        assert endpoints(client) == {"/sample", "/score"}
        # The text streams: several updates, the last one what `sample` prints.
        job = client.submit("KING:", 200, 0.9, 10, 3, api_name="/sample")
        final = job.result()
        updates = job.outputs()
        assert final + "\n" == sampled.stdout and updates[-1] == final
        assert len(updates) > 1 and all(final.startswith(u) for u in updates)
        coloured, totals, table = client.predict(text, api_name="/score")
        assert totals == pytest.approx(scored)
        assert "".join(piece["token"] for piece in coloured) == text
        bits = [b for _, b in table["data"]]
        assert len(bits) == 19 and sum(bits) == pytest.approx(scored["total_bits"], abs=1e-2)
        full = math.log2(len(json.loads((out / "tokenizer.json").read_text())["vocab"]))
        strength = [piece["class_or_confidence"] for piece in coloured]
        assert strength == pytest.approx([min(b / full, 1.0) for b in bits], abs=1e-3)
        # Bad input: the CLI's one line, in the page.
        shown = page_error(client, "naïve Ω", 10, 0.8, 0, 1, api_name="/sample")
        assert one_line_error(unknown, "--prime") == f"Error: {shown}"
        assert page_error(client, "", api_name="/score") == score_lib.EMPTY_TEXT
        empty = invoke("score", "--model-dir", out, "--text", "")
        assert one_line_error(empty) == f"Error: {score_lib.EMPTY_TEXT}"
