"""Speech recipe: transcripts, audio, features, CTC, decoding, readers, bad input, and
the CLI end to end.

Audio is synthesised in the tests (tones: one pitch per character, silence for a space)
and written with soundfile; no recording is committed. The end-to-end tests run the real
CLI on the tiny preset. No network.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from common import data as common_data
from common.errors import UserError
from recipes.speech import config as config_lib
from recipes.speech import data as speech_data
from recipes.speech import decode as decode_lib
from recipes.speech import model as model_lib
from recipes.speech.main import cli
from tests.cli_errors import one_line_error
from tests.exported import printed_strings, run_outside, saved_model_cli_run, tflite_outputs

PITCH = {"a": 440.0, "b": 660.0, "c": 880.0, "d": 1100.0}
WORDS = ("ab", "ba", "cd", "dc", "abc", "dab")


def tones(text: str, rate: int = 16_000, seconds_per_char: float = 0.12) -> np.ndarray:
    """A character per tone, a space as silence, a little noise."""
    rng = np.random.default_rng(len(text) * 7 + rate)
    pieces = []
    for ch in text:
        t = np.arange(int(seconds_per_char * rate)) / rate
        pieces.append(0.0 * t if ch == " " else 0.5 * np.sin(2 * np.pi * PITCH[ch] * t))
    wave = np.concatenate([np.zeros(int(0.05 * rate)), *pieces, np.zeros(int(0.05 * rate))])
    return (wave + 0.01 * rng.normal(size=wave.shape)).astype(np.float32)


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 4))) for _ in range(n)]


def make_manifest(
    root: Path, n: int = 24, speakers: int = 4, seed: int = 0, rates=(16_000, 8_000, 22_050)
) -> Path:
    """A manifest.tsv (path, transcript, speaker) of synthetic recordings: WAV at 16 kHz,
    FLAC at 8 kHz and stereo OGG at 22.05 kHz (or `rates`), upper case and punctuation in
    the text."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["path\ttranscript\tspeaker"]
    for i, text in enumerate(sentences(n, seed)):
        kind = i % 3
        rate = rates[kind]
        wave = tones(text, rate)
        name = f"audio/utt{i:03d}." + ("wav", "flac", "ogg")[kind]
        (root / name).parent.mkdir(exist_ok=True)
        soundfile.write(root / name, np.stack([wave, wave], 1) if kind == 2 else wave, rate)
        lines.append(f"{name}\t{text.upper()}!\tspk{i % speakers}")
    path = root / "manifest.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


# --------------------------------------------------------------------------- transcripts


def test_normalize_lowercases_drops_punctuation_and_keeps_digits_and_apostrophes():
    assert speech_data.normalize("Wat is dit? LC-10!") == "wat is dit lc 10"
    assert speech_data.normalize("  Don't   STOP…\n'quoted' Ça") == "don't stop quoted ça"
    assert speech_data.normalize("?!") == ""


def test_alphabet_and_ids_leave_zero_for_the_blank():
    alphabet = speech_data.alphabet_of(["ab c", "ca"])
    assert alphabet == [" ", "a", "b", "c"]
    ids = speech_data.encode("cab", alphabet)
    assert ids.tolist() == [4, 2, 3]
    assert speech_data.decode([0, 4, 2, -1, 3], alphabet) == "cab"


# --------------------------------------------------------------------------- audio


def test_resampling_keeps_pitch_and_level(tmp_path):
    rate, target = 8_000, 16_000
    t = np.arange(rate) / rate
    wave = np.sin(2 * np.pi * 500 * t).astype(np.float32)
    up = np.asarray(speech_data.resample(wave, rate, target))
    assert up.shape == (target,)
    spectrum = np.abs(np.fft.rfft(up))
    assert abs(np.argmax(spectrum) * target / len(up) - 500) < 1.5
    assert abs(np.sqrt(np.mean(up**2)) - np.sqrt(0.5)) < 1e-3
    down = np.asarray(speech_data.resample(up, target, rate))
    np.testing.assert_allclose(down, wave, atol=1e-4)
    # A stereo 22.05 kHz file is read as one channel at the model's rate.
    soundfile.write(tmp_path / "s.ogg", np.stack([wave, wave], 1), 22_050)
    assert speech_data.load_waveform(tmp_path / "s.ogg", 16_000).ndim == 1


def _numpy_log_mel(wave, cfg):
    """The reference: centred Hann frames (reflect padding), |rfft|^2, HTK mel triangles
    between 20 Hz and Nyquist made in mel space (TensorFlow's definition), log(x + 1e-6),
    per-bin standardisation over the frames."""
    n_fft, hop, win = (
        config_lib.fft_length(cfg),
        config_lib.hop_length(cfg),
        config_lib.frame_length(cfg),
    )
    padded = np.pad(wave, n_fft // 2, mode="reflect")
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = np.stack([padded[i : i + n_fft] for i in range(0, len(padded) - n_fft + 1, hop)])
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2

    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f) / 700.0)

    bins = n_fft // 2 + 1
    freqs = mel(np.linspace(0, cfg.sample_rate / 2, bins))[1:]
    edges = np.linspace(mel(20.0), mel(cfg.sample_rate / 2), cfg.mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - lower) / (center - lower)
    falling = (upper - freqs[:, None]) / (upper - center)
    weights = np.vstack([np.zeros(cfg.mel_bins), np.maximum(0, np.minimum(rising, falling))])
    features = np.log(power @ weights + 1e-6)
    return (features - features.mean(0)) / np.sqrt(features.var(0) + 1e-5)


@pytest.mark.parametrize("rate", [16_000, 8_000])
def test_log_mel_layer_equals_a_numpy_computation(rate):
    cfg = dataclasses.replace(config_lib.PRESETS["default"], sample_rate=rate)
    wave = tones("abc dab", cfg.sample_rate)
    layer = model_lib.LogMel(
        cfg.sample_rate,
        cfg.mel_bins,
        config_lib.frame_length(cfg),
        config_lib.hop_length(cfg),
        config_lib.fft_length(cfg),
    )
    features, mask = layer((wave[None], np.array([len(wave)])))
    expected = _numpy_log_mel(wave.astype(np.float64), cfg)
    assert features.shape[1] == len(expected) == 1 + len(wave) // config_lib.hop_length(cfg)
    assert np.asarray(mask).all()
    np.testing.assert_allclose(np.asarray(features)[0], expected, atol=1e-4)
    # Every mel filter catches FFT bins (the noise in `tones` reaches all of them): none is
    # an empty constant, at the narrowband rate either.
    assert (expected.std(0) > 0.5).all()

    # How far a batch pads a recording changes nothing: its frames are those it has with
    # just enough silence after it for its last window, and the padded frames are 0.
    def padded_by(samples):
        padded = np.concatenate([wave, np.zeros(samples, np.float32)])
        return layer((padded[None], np.array([len(wave)])))

    features_2, mask_2 = padded_by(5_000)
    features_3, _ = padded_by(config_lib.fft_length(cfg))
    real = len(expected)
    assert np.asarray(mask_2)[0, :real].all() and not np.asarray(mask_2)[0, real:].any()
    np.testing.assert_allclose(
        np.asarray(features_2)[0, :real], np.asarray(features_3)[0, :real], atol=1e-5
    )
    assert not np.asarray(features_2)[0, real:].any()


def test_spec_augment_masks_only_while_training():
    layer = model_lib.SpecAugment(2, 3, 2, 5, seed=1)
    x = np.ones((4, 40, 16), np.float32)
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    masked = np.asarray(layer(x, training=True))
    assert 0 < (masked == 0).mean() < 0.6
    zero_bins = (masked == 0).all(axis=1)  # whole frequency bands
    zero_frames = (masked == 0).all(axis=2)  # whole time spans
    assert ((masked == 0) == (zero_bins[:, None, :] | zero_frames[:, :, None])).all()


# --------------------------------------------------------------------------- CTC


def _collapse(path):
    return [c for c, _ in itertools.groupby(path) if c != model_lib.BLANK]


@pytest.mark.parametrize("label", [[1, 2], [1, 1], [2]])
def test_ctc_loss_equals_the_sum_over_all_alignments(label):
    rng = np.random.default_rng(3)
    frames, classes = 4, 3
    log_probs = np.log(rng.dirichlet(np.ones(classes), size=frames)).astype(np.float32)
    total = sum(
        np.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
        for path in itertools.product(range(classes), repeat=frames)
        if _collapse(path) == label
    )
    labels = np.zeros((1, 3), np.int32)
    labels[0, : len(label)] = label
    loss = np.asarray(model_lib.ctc_loss(labels, log_probs[None]))
    np.testing.assert_allclose(loss[0], -np.log(total), rtol=1e-5)


def test_ctc_loss_and_its_gradient_equal_keras_dense_ctc_loss():
    # model.ctc_loss hands TensorFlow's kernel sparse labels (the blank rotated last);
    # keras.ops.ctc_loss runs TensorFlow's dense implementation: the same function.
    import tensorflow as tf

    rng = np.random.default_rng(5)
    logits = tf.Variable(rng.normal(size=(4, 30, 6)).astype(np.float32))
    labels = np.zeros((4, 10), np.int32)
    for row, n in enumerate([10, 4, 1, 6]):
        labels[row, :n] = rng.integers(1, 6, size=n)
    labels[3, 1] = labels[3, 0]  # a repeated character needs a blank between

    def loss_and_gradient(loss):
        with tf.GradientTape() as tape:
            values = loss(tf.nn.log_softmax(logits))
            total = tf.reduce_sum(values)
        return values.numpy(), tape.gradient(total, logits).numpy()

    ours = loss_and_gradient(lambda lp: model_lib.ctc_loss(labels, lp))
    dense = loss_and_gradient(
        lambda lp: keras.ops.ctc_loss(
            labels, lp, (labels > 0).sum(1).astype(np.int32), np.full(4, 30, np.int32)
        )
    )
    np.testing.assert_allclose(ours[0], dense[0], rtol=1e-5)
    np.testing.assert_allclose(ours[1], dense[1], atol=1e-5)


def test_a_transcript_longer_than_its_frames_costs_nothing_instead_of_failing():
    labels = np.array([[1, 2, 3, 1, 2, 3]], np.int32)
    log_probs = np.log(np.full((1, 4, 4), 0.25, np.float32))
    assert np.asarray(model_lib.ctc_loss(labels, log_probs)).tolist() == [0.0]


def test_padded_frames_are_certain_blanks_so_the_loss_ignores_them():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(1, 7, 4)).astype(np.float32)
    mask = np.array([[True] * 5 + [False] * 2])
    padded = np.asarray(model_lib.CTCLogProbs()((logits, mask)))
    trimmed = np.asarray(model_lib.CTCLogProbs()((logits[:, :5], mask[:, :5])))
    labels = np.array([[1, 3, 3, 0]], np.int32)
    np.testing.assert_allclose(
        np.asarray(model_lib.ctc_loss(labels, padded)),
        np.asarray(model_lib.ctc_loss(labels, trimmed)),
        rtol=1e-5,
    )


def test_greedy_decoding_collapses_repeats_and_drops_blanks():
    best = [0, 1, 1, 0, 1, 2, 2, 0, 0, 3]
    log_probs = np.log(np.full((len(best), 4), 0.01))
    log_probs[np.arange(len(best)), best] = np.log(0.97)
    assert decode_lib.greedy(log_probs) == [1, 1, 2, 3]
    assert decode_lib.beam(log_probs[None].astype(np.float32), 4) == [[1, 1, 2, 3]]


class _TableLM:
    """A language model given as a table: log P(next | last character), for the search."""

    def __init__(self, table, end):
        self.table, self.end = table, end

    def prepare(self, prefixes):
        """A table needs no state per prefix: nothing to compute ahead."""

    def next_scores(self, prefix):
        last = prefix[-1] if prefix else 0
        return np.concatenate([self.table[last], [self.end]])


def test_lm_beam_search_finds_the_best_labelling_and_the_lm_can_change_it():
    rng = np.random.default_rng(5)
    frames, classes = 5, 3
    log_probs = np.log(rng.dirichlet(np.ones(classes) * 0.7, size=frames))
    # Without the LM (weight 0) a wide prefix beam search finds the most probable labelling.
    scores = {}
    for path in itertools.product(range(classes), repeat=frames):
        key = tuple(_collapse(path))
        scores[key] = np.logaddexp(
            scores.get(key, -np.inf), log_probs[np.arange(frames), path].sum()
        )
    flat = _TableLM(np.zeros((classes, classes)), 0.0)
    found = decode_lib.lm_beam(log_probs, flat, decode_lib.Fusion(0.0, 0.0), beam_width=64)
    assert tuple(found) == max(scores, key=scores.get)
    # An LM that forbids character 1 changes the answer when it weighs enough.
    table = np.zeros((classes, classes))
    table[:, 1] = -50.0
    fused = decode_lib.lm_beam(log_probs, _TableLM(table, 0.0), decode_lib.Fusion(1.0, 0.0), 64)
    assert tuple(fused) == max((k for k in scores if 1 not in k), key=scores.get)


# --------------------------------------------------------------------------- readers


def _wav(path: Path, text: str, rate=16_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(
        path, tones(text, rate), rate, format="FLAC" if path.suffix == ".flac" else None
    )
    return path


def _read(path) -> list[speech_data.Utterance]:
    return speech_data.read_source(common_data.resolve(path))


def test_librispeech_ljspeech_common_voice_and_manifest_layouts(tmp_path):
    libri = tmp_path / "libri"
    for speaker in ("19", "26"):
        chapter = libri / speaker / "198"
        _wav(chapter / f"{speaker}-198-0000.flac", "ab")
        _wav(chapter / f"{speaker}-198-0001.flac", "cd")
        (chapter / f"{speaker}-198.trans.txt").write_text(
            f"{speaker}-198-0000 AB\n{speaker}-198-0001 CD\n"
        )
    found = _read(libri)
    assert [(u.text, u.group) for u in found] == [
        ("ab", "19"),
        ("cd", "19"),
        ("ab", "26"),
        ("cd", "26"),
    ]

    lj = tmp_path / "lj"
    _wav(lj / "wavs" / "LJ001-0001.wav", "ab", 22_050)
    _wav(lj / "wavs" / "LJ002-0001.wav", "dc", 22_050)
    (lj / "metadata.csv").write_text("LJ001-0001|Ab, 1|ab one\nLJ002-0001|Dc.|\n")
    assert [(u.text, u.group) for u in _read(lj)] == [("ab one", "LJ001"), ("dc", "LJ002")]

    cv = tmp_path / "cv"
    _wav(cv / "clips" / "x.mp3.wav", "ab")
    _wav(cv / "clips" / "y.mp3.wav", "cd")
    # A sentence may open a quotation it does not close: a .tsv is read without quoting.
    (cv / "train.tsv").write_text(
        'client_id\tpath\tsentence\nc1\tx.mp3.wav\t"Ab!\nc2\ty.mp3.wav\tCd.\n'
    )
    (cv / "test.tsv").write_text("client_id\tpath\tsentence\nc2\ty.mp3.wav\tCd.\n")
    assert [(u.text, u.group) for u in _read(cv)] == [("ab", "c1"), ("cd", "c2")]
    test_split = speech_data.read_source(common_data.resolve(cv), split="test")
    assert [u.text for u in test_split] == ["cd"]  # evaluate reads the test file

    manifest = make_manifest(tmp_path / "m", n=6)
    found = _read(manifest)
    assert len(found) == 6 and found[0].text == sentences(6)[0] and found[1].group == "spk1"
    assert [u.text for u in _read(manifest.parent)] == [u.text for u in found]


def test_a_tfds_speech_set_is_read_with_its_rate_and_speakers():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        found = _read("tfds:librispeech:dev_clean")
    assert len(found) == 4 and all(u.rate == 16_000 and u.audio.ndim == 1 for u in found)
    assert all(u.text == speech_data.normalize(u.text) and u.group for u in found)
    assert abs(found[0].audio).max() <= 1.0  # int16 samples scaled to [-1, 1]


def test_the_default_set_reader_pairs_each_recording_with_its_dialogue_line(tmp_path):
    root = tmp_path / "fillets"
    _wav(root / "sound" / "level1" / "nl" / "l1-m-a.ogg", "ab")
    _wav(root / "sound" / "level1" / "nl" / "l1-v-b.ogg", "cd")
    _wav(root / "sound" / "level1" / "nl" / "l1-v-untranslated.ogg", "cd")
    (root / "script" / "level1").mkdir(parents=True)
    (root / "script" / "level1" / "dialogs_nl.lua").write_text(
        'dialogId("l1-m-a", "font_small", "What?")\ndialogStr("Wat is \\"dit\\"?")\n\n'
        'dialogId("l1-v-b", "font_big", "Eye.")\ndialogStr("Het oog, LC-10.")\n'
    )
    found = speech_data.fillets("nl", root)
    assert [(Path(u.path).stem, u.text, u.group) for u in found] == [
        ("l1-m-a", "wat is dit", "level1"),
        ("l1-v-b", "het oog lc 10", "level1"),
    ]


def test_splits_keep_speakers_together(tmp_path):
    found = _read(make_manifest(tmp_path / "m", n=40, speakers=10))
    train, val, test = speech_data.split(found, (0.2, 0.2), seed=1)
    groups = [{u.group for u in part} for part in (train, val, test)]
    assert len(train) + len(val) + len(test) == 40 and len(groups[1]) == len(groups[2]) == 2
    assert (
        not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    )
    assert speech_data.split(found, (0.2, 0.2), seed=1) == [train, val, test]
    # With few speakers, every one of them stays in training: utterances are split.
    few = _read(make_manifest(tmp_path / "few", n=20, speakers=4))
    train, val, test = speech_data.split(few, (0.1, 0.1), seed=1)
    assert (len(train), len(val), len(test)) == (16, 2, 2)
    assert {u.group for u in train} == {u.group for u in few}


# --------------------------------------------------------------------------- bad input


def _bad_manifest(root: Path, rows: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.tsv"
    path.write_text("path\ttranscript\n" + rows, encoding="utf-8")
    return path


def test_bad_input_is_one_line_naming_the_file_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    root = tmp_path / "bad"
    _wav(root / "good.wav", "ab")
    (root / "text.wav").write_text("not audio")
    soundfile.write(root / "empty.wav", np.zeros(0, np.float32), 16_000)
    zero_rate = bytearray((root / "good.wav").read_bytes())
    zero_rate[24:28] = (0).to_bytes(4, "little")  # the WAV header's sample rate
    (root / "zero.wav").write_bytes(bytes(zero_rate))
    cases = {
        "text.wav\tab\n": "text.wav: not a readable audio file",
        "empty.wav\tab\n": "empty.wav: empty recording",
        "zero.wav\tab\n": "zero.wav: the WAV header gives a sample rate of 0 Hz",
        "missing.wav\tab\n": "manifest.tsv:8: missing audio file",
        "good.wav\t?!\n": "manifest.tsv:8: the transcript '?!' has no characters left",
    }
    for rows, needle in cases.items():
        manifest = _bad_manifest(root, "good.wav\tab\n" * 6 + rows)
        result = run_cli("train", "--preset", "tiny", "--data", manifest, "--output-dir", out)
        one_line_error(result, needle)
        assert not out.exists()
    (tmp_path / "nothing").mkdir()
    one_line_error(
        run_cli("train", "--preset", "tiny", "--data", tmp_path / "nothing", "--output-dir", out),
        "nothing: no recordings found",
    )
    one_line_error(run_cli("transcribe", "--model-dir", tmp_path, root / "x.wav"), "model.keras")
    with pytest.raises(UserError, match="text.wav: not a readable audio file"):
        speech_data.read_audio(root / "text.wav")


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    manifest = make_manifest(root / "data", n=24, speakers=4)
    run = root / "run"
    result = ok(run_cli("train", "--preset", "tiny", "--data", manifest, "--output-dir", run))
    return run, manifest, result.output


def test_train_writes_the_run_directory_and_reports_every_decoder(trained):
    run, _, output = trained
    for name in (
        "model.keras",
        "speech.json",
        "metrics.json",
        "heldout.tsv",
        "validation.tsv",
        "transcripts.txt",
        "config.json",
        "history.csv",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["decoder"] for r in metrics["decoders"]][1:] == ["greedy", "beam"]
    assert metrics["decoders"][0]["decoder"].startswith("baseline: always")
    assert "val_cer" in (run / "history.csv").read_text().splitlines()[0]
    heldout = (run / "heldout.tsv").read_text().splitlines()
    assert heldout[0] == "path\ttranscript\tspeaker" and len(heldout) > 1
    speakers = {line.split("\t")[2] for line in heldout[1:]}
    trained_on = (run / "transcripts.txt").read_text().splitlines()
    assert speakers and len(trained_on) + len(heldout) - 1 <= 24
    assert "Held-out utterances" in output


def test_narrowband_recordings_train_a_model_at_their_own_rate(tmp_path):
    """Where every training recording is at 8 kHz, the model works at 8 kHz (mel bins up
    to 4 kHz, none over an empty band) and still transcribes recordings at other rates."""
    from recipes.speech import transcribe as transcribe_lib

    manifest = make_manifest(tmp_path / "data", n=12, rates=(8_000,) * 3)
    run = tmp_path / "run"
    output = ok(run_cli("train", "--preset", "tiny", "--data", manifest, "--output-dir", run))
    assert "the model works at 8,000 Hz" in output.output
    assert transcribe_lib.ModelInfo.read(run).sample_rate == 8_000
    assert json.loads((run / "config.json").read_text())["sample_rate"] == 8_000
    wide = _wav(tmp_path / "wide.wav", "ab cd", rate=16_000)
    out = json.loads(ok(run_cli("transcribe", "--model-dir", run, wide, "--json")).output)
    assert isinstance(out["results"][0]["transcript"], str)


def test_transcripts_are_the_training_split_that_train_makes(trained, tmp_path):
    """`transcripts` (what `train --train-lm` trains its language model on) writes the
    training utterances' text of the split `train` made from the same --data: none of the
    held-out or validation utterances."""
    run, manifest, _ = trained
    out = tmp_path / "lm" / "transcripts.txt"
    ok(run_cli("transcripts", "--data", manifest, "--output", out))
    written = out.read_text().splitlines()
    assert written == (run / "transcripts.txt").read_text().splitlines()
    held = [line.split("\t")[1] for f in ("heldout.tsv", "validation.tsv")
            for line in (run / f).read_text().splitlines()[1:]]  # fmt: skip
    assert len(written) + len(held) == 24


def test_evaluate_json_and_transcribe_agree(trained):
    run, _, _ = trained
    result = json.loads(ok(run_cli("evaluate", "--model-dir", run, "--json")).output)
    assert 0.0 <= result["cer"] and 0.0 <= result["wer"] and result["utterances"] >= 1
    assert result["worst"] and {"path", "cer", "reference", "hypothesis"} <= set(result["worst"][0])
    greedy = json.loads(
        ok(run_cli("evaluate", "--model-dir", run, "--decoder", "greedy", "--json")).output
    )
    assert greedy["decoder"] == "greedy"
    path = (run / "heldout.tsv").read_text().splitlines()[1].split("\t")[0]
    out = json.loads(ok(run_cli("transcribe", "--model-dir", run, path, "--json")).output)
    assert out["results"][0]["file"] == path and isinstance(out["results"][0]["transcript"], str)


def test_a_long_recording_is_transcribed_in_windows(trained, tmp_path):
    from recipes.speech import transcribe as transcribe_lib

    run, _, _ = trained
    info = transcribe_lib.ModelInfo.read(run)
    model = model_lib.keras.saving.load_model(run / "model.keras")
    wave = np.concatenate([tones("ab cd dab", info.sample_rate)] * 12)
    assert len(wave) / info.sample_rate > info.window_seconds
    whole = transcribe_lib.log_probs(model, [wave], info)[0]
    windowed = transcribe_lib.long_log_probs(model, wave, info)
    assert windowed.shape == whole.shape


def test_exported_model_transcribes_like_the_cli_without_the_project(trained, tmp_path):
    run, manifest, _ = trained
    out = tmp_path / "exported"
    ok(run_cli("export", "--model-dir", run, "--output", out))
    files = [
        str(manifest.parent / "audio" / f"utt{i:03d}.{ext}") for i, ext in ((0, "wav"), (1, "flac"))
    ]
    # The export decodes as the run does, but with beam search where the run fuses an LM.
    run_decoder = json.loads((run / "speech.json").read_text())["decoder"]
    decoder = "greedy" if run_decoder == "greedy" else "beam"
    transcribed = run_cli("transcribe", "--model-dir", run, "--decoder", decoder, *files, "--json")
    cli_texts = [r["transcript"] for r in json.loads(ok(transcribed).output)["results"]]
    recordings = [soundfile.read(f, dtype="float32") for f in files]
    tone = [np.round(0.5 * np.sin(np.arange(4000) * 0.17), 4).tolist()]  # a Python literal
    exported = run_outside(
        """
        model = tf.saved_model.load(values["path"])
        texts = []
        for samples, rate in values["recordings"] + [[values["tone"][0], 16000]]:
            out = model.serve(tf.constant([samples], tf.float32), tf.constant(rate, tf.int32))
            texts.append(out["transcript"].numpy()[0].decode())
        print(json.dumps({"texts": texts}))
        """,
        tmp_path,
        path=str(out),
        recordings=[[w.tolist(), r] for w, r in recordings],
        tone=tone,
    )
    assert exported["texts"][:-1] == cli_texts
    # The loader TensorFlow Serving uses: one dense, named output, the same text.
    served = saved_model_cli_run(out, "serve", f"waveform={tone!r};sample_rate=16000", tmp_path)
    assert sorted(served) == ["transcript"]
    assert printed_strings(served["transcript"]) == exported["texts"][-1:]


def test_language_model_fusion_from_a_char_lm_run(trained, tmp_path):
    from recipes.char_lm.main import cli as lm_cli

    run, _, _ = trained
    lm = tmp_path / "lm"
    text = tmp_path / "text.txt"  # the tiny transcripts, repeated into a text to split
    text.write_text((run / "transcripts.txt").read_text() * 40)
    result = CliRunner().invoke(
        lm_cli, ["train", "--preset", "tiny", "--data", str(text), "--output-dir", str(lm)]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(
        ok(run_cli("evaluate", "--model-dir", run, "--lm-dir", lm, "--compare", "--json")).output
    )
    from recipes.speech import train as train_lib

    assert out["decoder"] == "lm" and out["lm_weight"] in train_lib.LM_WEIGHTS
    assert out["lm_bonus"] in train_lib.LM_BONUSES
    # Side by side, as `make recipe-speech` prints them: the baseline and every decoder.
    rows = out["decoders"]
    assert rows[0]["decoder"].startswith("baseline: always ")
    assert [r["decoder"] for r in rows[1:]] == ["greedy", "beam", "lm"]
    assert rows[-1]["cer"] == out["cer"]  # the LM's transcripts, scored once
    one_line_error(run_cli("evaluate", "--model-dir", run, "--lm-dir", tmp_path), "--lm-dir")


def test_train_lm_trains_a_language_model_on_the_training_transcripts_and_decodes_with_it(
    tmp_path,
):
    """`train --train-lm` (the README's command for your own data): a char_lm run on the
    training transcripts, inside the run directory, fused into the beam search with its
    weight chosen on validation, and the decoder `transcribe` uses when it scored best."""
    from recipes.speech import train as train_lib

    manifest = make_manifest(tmp_path / "data", n=60, speakers=4)
    run = tmp_path / "run"
    output = ok(
        run_cli("train", "--preset", "tiny", "--data", manifest, "--output-dir", run, "--train-lm")
    ).output
    assert "Language model: char_lm --preset tiny on the training transcripts" in output
    lm = run / train_lib.LM_DIR
    assert (lm / "model.keras").is_file()
    # The language model saw the training transcripts only: its validation text is theirs.
    trained_on = set((run / "transcripts.txt").read_text().splitlines())
    lm_validation = (lm / "heldout.txt").read_text().splitlines()
    assert lm_validation and set(lm_validation) <= trained_on
    info = json.loads((run / "speech.json").read_text())
    assert info["lm_dir"] == train_lib.LM_DIR and info["lm_weight"] in train_lib.LM_WEIGHTS
    decoders = json.loads((run / "metrics.json").read_text())["decoders"]
    assert [r["decoder"] for r in decoders[1:]] == ["greedy", "beam", "beam + LM"]
    # The language model is found relative to the run, so the run can be moved whole.
    moved = tmp_path / "moved"
    run.rename(moved)
    result = json.loads(
        ok(run_cli("evaluate", "--model-dir", moved, "--decoder", "lm", "--json")).output
    )
    assert Path(result["lm_dir"]).resolve() == (moved / train_lib.LM_DIR).resolve()
    assert result["lm_weight"] == info["lm_weight"]  # the run's own, not chosen again


def test_train_lm_errors_write_nothing(tmp_path):
    manifest = make_manifest(tmp_path / "data", n=12, speakers=4)
    run = tmp_path / "run"
    too_little = run_cli(
        "train", "--preset", "tiny", "--data", manifest, "--output-dir", run, "--train-lm"
    )
    one_line_error(too_little, "--train-lm: ", "too little text")
    lm = tmp_path / "lm"
    (lm).mkdir()
    (lm / "model.keras").write_bytes(b"")
    both = run_cli(
        "train", "--preset", "tiny", "--data", manifest, "--output-dir", run, "--train-lm",
        "--lm-dir", lm,
    )  # fmt: skip
    one_line_error(both, "--lm-dir and --train-lm")
    assert not run.exists()


def test_keras_model_round_trip(trained):
    run, _, _ = trained
    model = keras.saving.load_model(run / "model.keras")
    assert (
        model.get_layer("log_mel")
        and model.output.shape[-1]
        == len(json.loads((run / "speech.json").read_text())["alphabet"]) + 1
    )


def test_litert_acoustic_model_agrees_with_keras(trained, tmp_path):
    from recipes.speech import transcribe as transcribe_lib

    run, _, _ = trained
    out = tmp_path / "speech.tflite"
    ok(run_cli("export", "--model-dir", run, "--output", out, "--format", "litert"))
    info = transcribe_lib.ModelInfo.read(run)
    samples = int(info.window_seconds * info.sample_rate)
    wave = np.zeros(samples, np.float32)
    speech = tones("ab cd", info.sample_rate)
    wave[: len(speech)] = speech
    model = keras.saving.load_model(run / "model.keras")
    expected = np.asarray(
        model({"waveform": wave[None], "length": np.array([samples], np.int32)}, training=False)
    )
    np.testing.assert_allclose(tflite_outputs(out, wave[None]), expected, atol=1e-4)


# --------------------------------------------------------------------------- demo


def test_demo_page_answers_as_the_cli_does(trained, tmp_path):
    """The speech tab (`recipes/speech/demo.py`) gives `transcribe --json`'s transcripts with
    each decoder, for an uploaded file and a held-out utterance; bad files fail as in the CLI."""
    from gradio_client import handle_file

    from recipes.speech import demo
    from tests.demo_client import endpoints, page_error, served

    run, manifest, _ = trained
    uploaded = manifest.parent / "audio" / "utt001.flac"
    heldout, reference = (run / "heldout.tsv").read_text().splitlines()[1].split("\t")[:2]
    not_audio = tmp_path / "voice.wav"
    not_audio.write_text("not audio")
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16_000)
    with served("speech", run) as client:
        assert endpoints(client) == {"/transcribe", "/transcribe_heldout"}
        for decoder in ("greedy", "beam"):
            args = ["transcribe", "--model-dir", run, "--decoder", decoder, uploaded, heldout]
            cli = json.loads(ok(run_cli(*args, "--json")).output)["results"]
            page = client.predict(handle_file(str(uploaded)), decoder, api_name="/transcribe")
            assert page == (cli[0]["transcript"], "")
            page = client.predict(heldout, decoder, api_name="/transcribe_heldout")
            assert page == (cli[1]["transcript"], reference)
        # Bad input: the CLI's one line, naming the file as uploaded.
        for bad, needle in ((not_audio, "not a readable audio file"), (empty, "empty recording")):
            shown = page_error(client, handle_file(str(bad)), "beam", api_name="/transcribe")
            assert shown.startswith(f"{bad.name}: {needle}"), shown
            cli_line = one_line_error(run_cli("transcribe", "--model-dir", run, bad))
            assert cli_line == "Error: " + shown.replace(bad.name, str(bad))
        assert page_error(client, None, "beam", api_name="/transcribe") == demo.NO_INPUT
