"""Translation recipe: data, model invariants, decoding, metrics, input errors, CLI end to end,
export, and the demo page against the CLI."""

import dataclasses
import datetime
import json
import math

import keras
import numpy as np
import pytest
import sacrebleu
from click.testing import CliRunner

from common import data as common_data
from common.errors import UserError
from recipes.translation import config, data, model, search, translate
from recipes.translation import train as train_lib
from recipes.translation.main import cli

TINY = config.PRESETS["tiny"]

# ----------------------------------------------------------------------------- data


def test_date_pairs_are_deterministic_unique_and_unambiguous():
    locales = ("en_US", "es_ES", "de_DE")
    pairs, dropped = data.date_pairs(600, locales, seed=3)
    assert pairs == data.date_pairs(600, locales, seed=3)[0]
    assert len(pairs) == 600 and len({s for s, _ in pairs}) == 600
    assert dropped > 0  # en_US "5/9/17" (May 9) and es_ES "5/9/17" (5 September) clash
    patterns = data.date_patterns(locales)
    for source, iso in pairs:
        date = datetime.date.fromisoformat(iso)
        assert data.FIRST_DATE <= date <= data.LAST_DATE
        if date.day <= 12 and date.day != date.month:  # nothing writes the swap the same way
            swapped = date.replace(month=date.day, day=date.month)
            assert all(data._format(swapped, *p) != source for p in patterns), source
    assert "May 9, 2017" in {data._format(datetime.date(2017, 5, 9), *p) for p in patterns}


def test_tsv_reading_ignores_extra_columns_and_blank_lines(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text(
        "\ufeffGo.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org\n\nHi.\tSalut !\r\n",
        encoding="utf-8",
    )
    assert data.read_tsv(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("Go.\tVa !\nHi.\n", "pairs.tsv:2: expected source<TAB>target, got 1 column"),
        ("Go.\tVa !\n\t Salut\n", "pairs.tsv:2: empty source"),
        ("Go.\t \n", "pairs.tsv:1: empty target"),
    ],
)
def test_bad_tsv_lines_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "pairs.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        data.read_tsv(path)


def test_validation_split_is_seeded_and_disjoint(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"s{i}\tt{i}\n" for i in range(50)), encoding="utf-8")
    cfg = dataclasses.replace(TINY, validation_fraction=0.2)
    corpus, langs = data.load_corpus(cfg, data=str(path), validation_data=None, seed=1)
    again, _ = data.load_corpus(cfg, data=str(path), validation_data=None, seed=1)
    assert langs == (None, None) and corpus == again
    assert len(corpus.validation) == 10 and not set(corpus.train) & set(corpus.validation)


def test_tfds_translation_set_gives_string_pairs():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=5):
        corpus, langs = data.load_corpus(
            TINY, data="tfds:ted_hrlr_translate/pt_to_en", validation_data=None, seed=0
        )
    assert langs == ("pt", "en")  # the data set's supervised keys
    assert len(corpus.train) + len(corpus.validation) == 5
    assert all(isinstance(s, str) and s and isinstance(t, str) and t for s, t in corpus.train)
    with pytest.raises(
        UserError, match="--target-lang: tfds:ted_hrlr_translate/pt_to_en has no feature 'de'"
    ):
        data.tfds_languages(common_data.resolve("tfds:ted_hrlr_translate/pt_to_en"), "pt", "de")


def test_batches_are_padded_bucketed_and_full():
    sources = [[5, 6, 7], [5], [8, 9, 10, 11, 12]]
    targets = [[4, 4], [4, 4, 4], [4]]
    common = dict(bos=2, eos=3, seed=0, source_bucket=4)
    (src, t_in), t_out = next(
        iter(data.make_dataset(sources, targets, batch_size=2, training=False, **common))
    )
    assert src.numpy().tolist() == [[5, 6, 7, 0], [5, 0, 0, 0]]
    assert t_in.numpy().tolist() == [[2, 4, 4, 0], [2, 4, 4, 4]]
    assert t_out.numpy().tolist() == [[4, 4, 3, 0], [4, 4, 4, 3]]
    val = list(data.make_dataset(sources, targets, batch_size=2, training=False, **common))
    assert [b[1].shape[0] for b in val] == [2, 2]  # the last batch is filled with empty rows
    assert val[1][0][0].numpy().tolist() == [[8, 9, 10, 11, 12, 0, 0, 0], [0] * 8]
    assert val[1][1].numpy().tolist()[1] == [0, 0, 0, 0]  # ignored by the masked loss
    train = list(data.make_dataset(sources, targets, batch_size=2, training=True, **common))
    assert len(train) == 1  # the remainder is dropped in training


def test_training_batches_group_similar_target_lengths():
    rng = np.random.default_rng(0)
    sources = [[5] * int(n) for n in rng.integers(1, 30, 400)]
    targets = [[4] * int(n) for n in rng.integers(1, 30, 400)]
    dataset = data.make_dataset(
        sources, targets, batch_size=16, training=True, bos=2, eos=3, seed=0, source_bucket=8
    )
    batches = list(dataset)
    assert len(batches) == int(dataset.cardinality()) > 20
    for (src, t_in), t_out in batches:
        assert src.shape[1] % 8 == 0 and t_in.shape == t_out.shape
        assert t_in.shape[1] % 8 == 0 or t_in.shape[1] == 30  # at most the longest target
        lengths = (t_out.numpy() != 0).sum(axis=1)  # target + <eos>: one bucket of 8 a batch
        assert (lengths - 1).max() // 8 == (lengths - 1).min() // 8


# ----------------------------------------------------------------------------- model


def _model(attention, cell="lstm", **overrides):
    cfg = dataclasses.replace(TINY, attention=attention, cell=cell, **overrides)
    return model.build_model(cfg, source_vocab_size=20, target_vocab_size=12)


SOURCE = np.array([[5, 6, 7, 8, 9, 0, 0, 0], [5, 6, 0, 0, 0, 0, 0, 0]], np.int32)
TARGET_IN = np.array([[2, 4, 5, 6], [2, 7, 0, 0]], np.int32)


@pytest.mark.parametrize("attention", ["bahdanau", "luong", "luong-parallel"])
def test_attention_weights_sum_to_one_over_unpadded_source(attention):
    m = _model(attention)
    encoded = m.encode(SOURCE)
    carry = encoded["carry"]
    lengths = (SOURCE != 0).sum(axis=1)
    for t in range(TARGET_IN.shape[1]):
        _, carry = m.decode_step(
            TARGET_IN[:, t], carry, encoded["memory"], encoded["keys"], encoded["mask"]
        )
        weights = np.asarray(carry[-1])
        for row, n in enumerate(lengths):
            assert weights[row, :n].sum() == pytest.approx(1.0, abs=1e-5)
            assert np.all(weights[row, n:] == 0.0)
            assert np.all(weights[row, :n] > 0.0)


@pytest.mark.parametrize(
    "attention, cell, decoder_layers",
    [
        ("bahdanau", "gru", 1),
        ("luong", "lstm", 1),
        ("none", "minimal-gru", 1),
        ("luong-parallel", "lstm", 1),
        ("luong-parallel", "gru", 2),
    ],
)
def test_incremental_decoding_equals_the_teacher_forced_pass(attention, cell, decoder_layers):
    # luong-parallel: the recurrent layers' fast path over the whole target (training) against
    # their cells stepped one token at a time with the attention per step (decoding).
    m = _model(attention, cell, decoder_layers=decoder_layers)
    full = keras.ops.convert_to_numpy(keras.ops.log_softmax(m((SOURCE, TARGET_IN)), axis=-1))
    encoded = m.encode(SOURCE)
    carry, steps = encoded["carry"], []
    for t in range(TARGET_IN.shape[1]):
        log_probs, carry = m.decode_step(
            TARGET_IN[:, t], carry, encoded["memory"], encoded["keys"], encoded["mask"]
        )
        steps.append(np.asarray(log_probs))
    np.testing.assert_allclose(np.stack(steps, axis=1), full, atol=1e-5)


@pytest.mark.parametrize("scaled", [True, False])
def test_luong_scores_are_divided_by_the_square_root_of_the_decoder_units(scaled):
    # Unscaled dot products of 512-d vectors saturated the softmax within two epochs on
    # Multi30k, and the alignment it froze at depended on float rounding (issue 32).
    m = _model("luong-parallel", scaled_scores=scaled, decoder_units=16)
    assert m.scaled_scores is scaled
    encoded = m.encode(SOURCE)
    _, carry = m.decode_step(
        TARGET_IN[:, 0], encoded["carry"], encoded["memory"], encoded["keys"], encoded["mask"]
    )
    # The decoder RNN's output at step 1, from the same cell the model stepped.
    y = m.target_embedding(TARGET_IN[:, 0])
    s, _ = m.decoder_rnns[0].cell(y, list(encoded["carry"][: m.num_states]))
    keys = np.asarray(encoded["memory"]) @ np.asarray(m.attention_keys.kernel)
    scores = np.einsum("bd,bsd->bs", np.asarray(s), keys) / (16**0.5 if scaled else 1.0)
    lengths = (SOURCE != 0).sum(axis=1)
    for row, n in enumerate(lengths):
        expected = np.exp(scores[row, :n] - scores[row, :n].max())
        expected /= expected.sum()
        np.testing.assert_allclose(np.asarray(carry[-1])[row, :n], expected, atol=1e-6)


def test_models_saved_before_scaled_scores_load_unscaled():
    m = _model("luong-parallel")
    assert m.scaled_scores and TINY.scaled_scores and config.PRESETS["multi30k"].scaled_scores
    old = m.get_config()
    del old["scaled_scores"]  # what a model.keras written before the option holds
    assert model.Seq2Seq.from_config(old).scaled_scores is False


def test_source_padding_does_not_change_the_output():
    m = _model("bahdanau")
    alone = np.asarray(m((SOURCE[1:, :2], TARGET_IN[1:, :2])))
    padded = np.asarray(m((SOURCE[1:], TARGET_IN[1:, :2])))
    np.testing.assert_allclose(alone, padded, atol=1e-5)


# ----------------------------------------------------------------------------- metrics


def test_bleu_equals_sacrebleu_on_a_fixed_case():
    hyps = ["the cat sat on the mat", "a quick brown fox jumps"]
    refs = ["the cat sat on a mat", "the quick brown fox jumps"]
    metrics = translate.translation_metrics(hyps, refs)
    assert metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-4)
    assert metrics["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-4)
    # By hand: matches/candidates for 1..4-grams are 9/11, 6/9, 4/7, 2/5; the hypotheses
    # and references have the same length (no brevity penalty).
    by_hand = 100 * math.exp(sum(math.log(p) for p in (9 / 11, 6 / 9, 4 / 7, 2 / 5)) / 4)
    assert metrics["bleu"] == pytest.approx(by_hand, abs=1e-4)
    assert metrics["exact_match"] == 0.0
    assert translate.translation_metrics(["2017-05-09"], ["2017-05-09"])["exact_match"] == 1.0


# ----------------------------------------------------------------------------- CLI end to end


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("translation") / "run"
    result = CliRunner().invoke(cli, ["train", "--preset", "tiny", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "Sample translations" in result.output and "bleu" in result.output
    return out


@pytest.fixture(scope="module")
def loaded(run_dir):
    return train_lib.load_run(run_dir)


def test_train_writes_the_run_directory(run_dir):
    for name in (
        "config.json",
        "argv.txt",
        "data.json",
        "history.csv",
        "model.keras",
        "source_tokenizer.json",
        "target_tokenizer.json",
        data.HELDOUT_FILE,
        "metrics.json",
        "training.png",
        "attention.png",
    ):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "backup").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"bleu", "chrf", "exact_match", "loss", "token_accuracy"} <= set(metrics)
    assert metrics["examples"] == 40
    # Two tiny epochs learn the frequent target characters ("19", "20", "-"): well above
    # the 1/15 of guessing, and the loss is below the log(15) = 2.7 of the untrained model.
    assert metrics["token_accuracy"] > 0.3 and metrics["loss"] < 2.3


def test_translate_and_evaluate_from_the_saved_run(run_dir, tmp_path):
    runner = CliRunner()
    png = tmp_path / "attention.png"
    result = runner.invoke(
        cli,
        [
            "translate",
            "--model-dir",
            str(run_dir),
            "--text",
            "mardi 9 mai 2017",
            "--text",
            "May 9, 2017",
            "--beam-size",
            "3",
            "--plot-attention",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2 and png.stat().st_size > 0

    result = runner.invoke(cli, ["evaluate", "--model-dir", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"bleu", "chrf", "exact_match", "examples"} <= set(metrics)
    # The BLEU printed is sacrebleu's corpus BLEU of the translations `translate` gives.
    pairs = data.read_tsv(run_dir / data.HELDOUT_FILE)
    sources = tmp_path / "sources.txt"
    sources.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    result = runner.invoke(cli, ["translate", "--model-dir", str(run_dir), "--file", str(sources)])
    outputs = result.stdout.split("\n")[: len(pairs)]
    expected = sacrebleu.corpus_bleu(outputs, [[t for _, t in pairs]]).score
    assert metrics["bleu"] == pytest.approx(expected, abs=1e-4)


def test_old_or_foreign_run_directories_are_refused_with_one_line(run_dir, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    config_json = json.loads((old / "config.json").read_text())
    config_json["num_examples"] = config_json.pop("max_examples")
    (old / "config.json").write_text(json.dumps(config_json))
    result = CliRunner().invoke(cli, ["evaluate", "--model-dir", str(old), "--json"])
    assert result.exit_code == 1 and "unknown field 'num_examples'" in result.output
    assert "retrain" in result.output and "Traceback" not in result.output
    shutil.copy(run_dir / "config.json", old / "config.json")
    (old / data.HELDOUT_FILE).unlink()
    result = CliRunner().invoke(cli, ["evaluate", "--model-dir", str(old), "--json"])
    assert result.exit_code == 1 and "heldout.tsv: missing" in result.output


def test_beam_size_one_equals_greedy(loaded):
    translator = loaded.translator
    sources = [
        ids
        for ids in translator.prepare(
            [s for s, _ in data.read_tsv(loaded.path / data.HELDOUT_FILE)]
        ).ids
    ]
    greedy = translator.greedy(sources, length_penalty=0.6)
    beam = translator.beam_search(sources, beam_size=1, length_penalty=0.6, keep_greedy=False)
    assert [h.tokens for h in beam] == [h.tokens for h in greedy]
    np.testing.assert_allclose([h.score for h in beam], [h.score for h in greedy], atol=1e-5)


@pytest.mark.parametrize(
    "beam_size, alpha, keep_greedy",
    [(1, 0.6, True), (2, 0.0, True), (4, 0.6, True), (3, 1.0, False)],
)
def test_compiled_decoding_equals_the_python_loops(loaded, beam_size, alpha, keep_greedy):
    from bench.translation_baseline import PythonLoopDecoding

    texts = [s for s, _ in data.read_tsv(loaded.path / data.HELDOUT_FILE)]
    normal = loaded.translator
    # A length limit of 6 steps: most hypotheses end there unfinished (the other branch).
    short = translate.Translator(
        normal.model,
        normal.source_tokenizer,
        normal.target_tokenizer,
        max_source_length=normal.max_source_length,
        max_target_length=4,
        source_bucket=normal.source_bucket,
        batch_size=16,  # several batches, the last one filled with copies
    )
    endings = set()
    for translator in (normal, short):
        sources = translator.prepare(texts).ids
        reference = PythonLoopDecoding(translator)
        if beam_size == 1:  # beam 1 in the CLI is greedy decoding
            compiled = translator.greedy(sources, length_penalty=alpha)
            expected = reference.greedy(sources, length_penalty=alpha)
        else:
            options = dict(beam_size=beam_size, length_penalty=alpha, keep_greedy=keep_greedy)
            compiled = translator.beam_search(sources, **options)
            expected = reference.beam_search(sources, **options)
        assert [h.tokens for h in compiled] == [h.tokens for h in expected]
        assert [h.finished for h in compiled] == [h.finished for h in expected]
        for name in ("score", "normalized"):
            np.testing.assert_allclose(
                [getattr(h, name) for h in compiled],
                [getattr(h, name) for h in expected],
                atol=1e-4,
            )
        for c, e in zip(compiled, expected, strict=True):
            np.testing.assert_allclose(c.attention, e.attention, atol=1e-5)
        endings |= {h.finished for h in expected}
    assert endings == {True, False}


@pytest.mark.parametrize("beam_size, alpha", [(2, 0.0), (4, 0.6), (5, 1.5)])
def test_beam_search_never_scores_below_greedy(loaded, beam_size, alpha):
    translator = loaded.translator
    sources = translator.prepare([s for s, _ in data.read_tsv(loaded.path / data.HELDOUT_FILE)]).ids
    greedy = translator.greedy(sources, length_penalty=alpha)
    beam = translator.beam_search(sources, beam_size=beam_size, length_penalty=alpha)
    for g, b in zip(greedy, beam, strict=True):
        assert b.normalized >= g.normalized - 1e-5
    # Every returned hypothesis scores what the model says: recompute it by teacher forcing.
    hyp, ids = beam[0], sources[0]
    tokens = hyp.tokens + ([3] if hyp.finished else [])
    logits = loaded.translator.model((np.array([ids]), np.array([[2] + tokens[:-1]])))
    log_probs = np.asarray(keras.ops.log_softmax(logits, axis=-1))[0]
    assert hyp.score == pytest.approx(
        sum(log_probs[t, tok] for t, tok in enumerate(tokens)), abs=1e-4
    )


def test_beam_candidates_are_the_hypotheses_the_search_weighed(loaded):
    normal = loaded.translator
    short = translate.Translator(  # a length limit of 6 steps: unfinished candidates too
        normal.model,
        normal.source_tokenizer,
        normal.target_tokenizer,
        max_source_length=normal.max_source_length,
        max_target_length=4,
        source_bucket=normal.source_bucket,
    )
    texts = [s for s, _ in data.read_tsv(loaded.path / data.HELDOUT_FILE)][:24]
    endings = set()
    for translator, options in (
        (normal, dict(beam_size=4, length_penalty=0.6)),
        (short, dict(beam_size=3, keep_greedy=False)),
    ):
        sources = translator.prepare(texts).ids
        plain = translator.beam_search(sources, **options)
        listed = translator.beam_search(sources, candidates=True, **options)
        for p, hyp in zip(plain, listed, strict=True):
            assert (hyp.tokens, hyp.score, hyp.finished) == (p.tokens, p.score, p.finished)
            first = hyp.candidates[0]
            assert (first.tokens, first.score, first.finished) == (p.tokens, p.score, p.finished)
            normalized = [c.normalized for c in hyp.candidates]
            assert normalized == sorted(normalized, reverse=True)
            assert len({(tuple(c.tokens), c.finished) for c in hyp.candidates}) == len(normalized)
            endings |= {c.finished for c in hyp.candidates}
        assert max(len(h.candidates) for h in listed) > 1
    assert endings == {True, False}
    # Each candidate scores what the model says: recompute them by teacher forcing.
    (hyp,), _ = normal.translate(texts[:1], beam_size=4, candidates=True)
    ids = normal.prepare(texts[:1]).ids[0]
    for candidate in hyp.candidates:
        tokens = candidate.tokens + ([3] if candidate.finished else [])
        logits = normal.model((np.array([ids]), np.array([[2] + tokens[:-1]])))
        log_probs = np.asarray(keras.ops.log_softmax(logits, axis=-1))[0]
        expected = sum(log_probs[t, tok] for t, tok in enumerate(tokens))
        assert candidate.score == pytest.approx(expected, abs=1e-4)


def test_empty_line_gives_empty_output_and_keeps_lines_aligned(run_dir, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("9 mai 2017\n\n   \nMay 9, 2017\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["translate", "--model-dir", str(run_dir), "--file", str(path)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")
    assert len(lines) == 5 and lines[1] == "" and lines[2] == "" and lines[0] and lines[3]
    assert f"{path}:2: empty input, empty output" in result.stderr


def test_over_long_input_is_truncated_with_a_note(run_dir, loaded):
    text = "Wednesday, September 20, 2017 " * 3
    result = CliRunner().invoke(cli, ["translate", "--model-dir", str(run_dir), "--text", text])
    assert result.exit_code == 0, result.output
    assert "--text 1: 90 tokens, truncated to the first 32" in result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert loaded.translator.prepare([text]).ids[0] == loaded.translator.prepare([text[:32]]).ids[0]


def test_unknown_tokens_become_unk_and_are_never_emitted(run_dir, loaded):
    result = CliRunner().invoke(
        cli, ["translate", "--model-dir", str(run_dir), "--text", "9 mai 2017 ☃☃"]
    )
    assert result.exit_code == 0, result.output
    assert "--text 1: 2 unknown token(s) read as <unk>: '☃'" in result.stderr
    prepared = loaded.translator.prepare(["☃ mai 2017"])
    assert prepared.ids[0][0] == 1
    hyps, _ = loaded.translator.translate(["☃ mai 2017", "9 mai 2017"], beam_size=3)
    for hyp in hyps:
        assert not set(hyp.tokens) & set(search.BANNED)


# ----------------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{tmp}/missing.tsv"], "no such file or directory"),
        (["--data", "{tmp}/bad.tsv"], "bad.tsv:2: expected source<TAB>target, got 1 column"),
        (["--data", "tfds:no_such_dataset_xyz"], "unknown TFDS data set"),
        (["--data", "{tmp}/bad.tsv", "--source-lang", "en"], "--source-lang/--target-lang name"),
        (["--level", "syllable"], "expected char, word, subword or SOURCE:TARGET"),
        (["--decoder-layers", "2"], "decoder_layers must be 1, or more with attention="),
    ],
)
def test_bad_train_input_exits_with_one_line_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "bad.tsv").write_text("Go.\tVa !\nHi.\n", encoding="utf-8")
    out = tmp_path / "run"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(cli, ["train", "--preset", "tiny", "--output-dir", str(out), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_translate_needs_input_and_a_run(tmp_path, run_dir):
    result = CliRunner().invoke(cli, ["translate", "--model-dir", str(run_dir)])
    assert result.exit_code == 1 and "nothing to translate" in result.output
    result = CliRunner().invoke(cli, ["translate", "--model-dir", str(tmp_path), "--text", "x"])
    assert result.exit_code != 0 and "holds no model.keras" in result.output


def test_level_option_sets_each_side_and_lowercasing_reaches_the_references():
    import click

    from recipes.translation.main import _level

    assert _level(None, None, "word") == ("word", "word")
    assert _level(None, None, "word:char") == ("word", "char")
    with pytest.raises(click.BadParameter):
        _level(None, None, "char:word:char")
    lower = train_lib.Tokenizer.build(["Va !"], level="word", lowercase=True)
    assert train_lib.references([("Go.", "Va !")], lower) == [("Go.", "va !")]


def test_every_command_has_help_with_defaults():
    runner = CliRunner()
    for command in ("train", "translate", "evaluate"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        assert "[default:" in result.output


# ----------------------------------------------------------------------------- export


def test_exported_translator_runs_without_the_project(run_dir, tmp_path):
    from tests.exported import printed_strings, run_outside, saved_model_cli_runs

    path = tmp_path / "translator"
    result = CliRunner().invoke(cli, ["export", "--model-dir", str(run_dir), "--output", str(path)])
    assert result.exit_code == 0, result.output
    sources = [s for s, _ in data.read_tsv(run_dir / data.HELDOUT_FILE)][:6]
    texts = [*sources, "", "9 mai 2017 " * 10]  # an empty line, an over-long one
    exported = run_outside(
        """
        model = tf.saved_model.load(values["path"])
        result = {}
        for name in ("serve", "serve_beam"):
            out = getattr(model, name)(tf.constant(values["texts"]))
            result[name] = [
                f"{t.decode()}\\t{s:.4f}" if t else ""
                for t, s in zip(out["translation"].numpy(), out["score"].numpy())
            ]
        print(json.dumps(result))
        """,
        tmp_path,
        path=str(path),
        texts=texts,
    )
    for name, beam in (("serve", "1"), ("serve_beam", "4")):
        args = ["translate", "--model-dir", str(run_dir), "--scores", "--beam-size", beam]
        printed = CliRunner().invoke(cli, [*args, *(f"--text={t}" for t in texts)])
        lines = printed.stdout.splitlines()
        assert len(lines) == len(texts)
        for got, expected in zip(exported[name], lines, strict=True):
            assert got.split("\t")[0] == expected.split("\t")[0]
            if expected:  # scores printed with 4 decimals
                assert float(got.split("\t")[1]) == pytest.approx(
                    float(expected.split("\t")[1]), abs=2e-4
                )
    # The loader TensorFlow Serving uses: dense, named outputs, the same translations.
    runs = {name: f"text={texts[:3]!r}" for name in ("serve", "serve_beam")}
    for name, served in saved_model_cli_runs(path, runs, tmp_path).items():
        assert sorted(served) == ["score", "translation"]
        translations = [row.split("\t")[0] for row in exported[name][:3]]
        assert printed_strings(served["translation"]) == translations


def test_subword_luong_parallel_run_evaluates_translates_and_exports_the_same(tmp_path):
    """The multi30k preset's kind of model, small, trained on a TSV file that is then deleted:
    SentencePiece on both sides (saved in the run directory), the decoder RNN on the fast
    path. `evaluate` without --data scores heldout.tsv and gives the numbers of metrics.json;
    the exported SavedModel (tokenizers in the graph, through tensorflow-text) gives the
    translations of `translate`."""
    from tests.exported import run_outside

    pairs_file = tmp_path / "pairs.tsv"
    pairs, _ = data.date_pairs(200, ("en_US", "fr_FR"), seed=5)
    pairs_file.write_text(data.tsv_text(pairs), encoding="utf-8")
    out = tmp_path / "run"
    args = ["--preset", "tiny", "--epochs", "1", "--data", str(pairs_file), "--level", "subword"]
    args += ["--attention", "luong-parallel", "--max-vocab", "400", "--decoder-layers", "2"]
    runner = CliRunner()
    result = runner.invoke(cli, ["train", *args, "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    pairs_file.unlink()
    result = runner.invoke(cli, ["evaluate", "--model-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    trained = json.loads((out / "metrics.json").read_text())
    assert evaluated["examples"] == trained["examples"] == 20
    for key in ("bleu", "chrf", "exact_match", "examples", "beam_size", "bleu_signature"):
        assert evaluated[key] == trained[key], key
    assert evaluated["data"] == str(out / data.HELDOUT_FILE)

    loaded = train_lib.load_run(out)
    assert loaded.translator.model.attention == "luong-parallel"
    assert loaded.translator.source_tokenizer.level == "subword"
    written = json.loads((out / "source_tokenizer.json").read_text())
    assert written["format"] == "common.tokenization.SubwordTokenizer"
    texts = [s for s, _ in data.read_tsv(out / data.HELDOUT_FILE)][:4] + ["", "9 ☃ 2017"]
    greedy, notes = loaded.translator.translate(texts)
    assert not notes  # byte fallback: no <unk> in the input
    for hyp in greedy[:4] + greedy[5:]:
        assert not set(hyp.tokens) & set(search.BANNED)
    path = tmp_path / "translator"
    result = runner.invoke(cli, ["export", "--model-dir", str(out), "--output", str(path)])
    assert result.exit_code == 0, result.output
    exported = run_outside(
        """
        import tensorflow_text  # registers the SentencePiece ops the graph uses
        model = tf.saved_model.load(values["path"])
        out = model.serve(tf.constant(values["texts"]))
        print(json.dumps([t.decode() for t in out["translation"].numpy()]))
        """,
        tmp_path,
        path=str(path),
        texts=texts,
    )
    assert exported == ["" if h is None else loaded.translator.target_text(h) for h in greedy]


def test_attention_plot_titles_wrap_to_the_panel():
    title = "Ein Mann in einem blauen Hemd steht auf einer Leiter und putzt Fenster. → " * 2
    wrapped = translate.wrap_title(title, 40)
    assert all(len(line) <= 40 for line in wrapped.splitlines())
    assert wrapped.replace("\n", " ") == title.strip()


# ----------------------------------------------------------------------------- demo


def test_demo_page_answers_as_the_cli_does(run_dir, tmp_path):
    from tests.cli_errors import one_line_error
    from tests.demo_client import endpoints, page_error, served

    text = "9 mai 2017 \u2603"  # an unknown character: a note
    answers = {}
    for beam in (1, 4):
        png = tmp_path / f"beam-{beam}.png"
        args = ["translate", "--model-dir", str(run_dir), "--text", text, "--scores"]
        printed = CliRunner().invoke(
            cli, [*args, "--beam-size", str(beam), "--plot-attention", str(png)]
        )
        assert printed.exit_code == 0, printed.output
        notes = [n for n in printed.stderr.splitlines() if "heatmap written" not in n]
        answers[beam] = printed.stdout.strip().split("\t"), notes, png.read_bytes()
    nothing = CliRunner().invoke(cli, ["translate", "--model-dir", str(run_dir)])
    with served("translation", run_dir) as client:
        assert endpoints(client) == {"/translate"}
        for beam, ((expected, score), notes, png) in answers.items():
            shown, note, table, picture = client.predict(text, beam, 0.6, api_name="/translate")
            assert shown == expected and note.splitlines() == notes
            rows = table["data"]
            assert rows[0][:2] == [expected, float(score)]
            assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
            assert len(rows) == 1 if beam == 1 else len(rows) > 1
            with open(picture, "rb") as drawn:
                assert drawn.read() == png  # the picture `--plot-attention` draws
        # Bad input: the CLI's one line, in the page.
        shown = page_error(client, "  ", 4, 0.6, api_name="/translate")
        assert one_line_error(nothing, "nothing to translate") == f"Error: {shown}"
