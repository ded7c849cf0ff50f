"""music: the ABC tokens (round trip on real corpus tunes, durations and accidentals by the
ABC rules, transposition keeping intervals), reading corpora (skipped tunes counted,
duplicates removed, one-line errors), and the CLI end to end on the tiny preset: train,
compose (ABC that music21 reads, MIDI and PNG written, the same seed giving the same
tunes), evaluate --json, the exported generate endpoint, and one-line errors."""

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

from common.data import DataSource
from common.errors import UserError
from recipes.music import abc, checks, data
from recipes.music.main import cli
from tests.cli_errors import one_line_error
from tests.exported import printed_strings, run_outside, saved_model_cli_runs

# ----------------------------------------------------------------------------- tokens


@pytest.fixture(scope="module")
def corpus():
    """The first 120 readable tunes of each default collection, tokenised by `data.load`."""
    files, _ = data._files(DataSource("default"))
    tunes = []
    for collection in ("essenFolksong", "oneills1850"):
        paths = [f for f in files if f.parent.name == collection][:3]
        read = [data.load(DataSource("path", path=p), max_tokens=512).tunes for p in paths]
        tunes += [t for file_tunes in read for t in file_tunes][:120]
    assert len(tunes) == 240
    return tunes


def test_tokens_to_abc_to_tokens_is_the_identity_on_corpus_tunes(corpus):
    for tokens in corpus:
        assert abc.tokenize(abc.render(tokens)) == tokens


def test_a_tune_becomes_header_and_one_token_per_note():
    tune = "X:1\nT:t\nM:C\nL:1/16\nK:Ador\n|: A2 (3Bcd e>f ^g'4 z2 | [1 a8- a4 :|[2 A,,8 |]\n"
    assert abc.tokenize(tune) == [
        "M:4/4", "K:Ador", "L:1/8",  # fmt: skip
        "|:", "A", "(3", "B/2", "c/2", "d/2", "e/2", ">", "f/2", "^g'2", "z", "|",
        "[1", "a4", "-", "a2", ":|", "[2", "A,,4", "|]",
    ]  # fmt: skip


def test_durations_follow_tuplets_broken_rhythm_and_ties():
    tokens = abc.tokenize("X:1\nM:3/4\nL:1/8\nK:C\nA>B (3cde f2 | g2-g4 |\n")
    analysis = abc.analyse(tokens)
    lengths = [length for _, length, _ in analysis.onsets]
    assert lengths == [Fraction(3, 2), Fraction(1, 2), *[Fraction(2, 3)] * 3, 2, 6]
    assert [d for _, d, _ in analysis.bars] == [6, 6]


def test_accidentals_hold_to_the_end_of_the_bar_over_the_key_signature():
    # K:D sharpens F and C; =F holds for the next F of the bar, not after the bar line.
    tokens = abc.tokenize("X:1\nM:4/4\nL:1/8\nK:D\n=F F c f | F c _B B |\n")
    assert abc.analyse(tokens).pitches == [65, 65, 73, 78, 66, 73, 70, 70]


def test_transposition_keeps_every_interval(corpus):
    for tokens in corpus[::10]:
        pitches = abc.analyse(tokens).pitches
        for shift in (-5, -1, 2, 6):
            moved = abc.transpose(tokens, shift)
            if moved is None:  # no spelling with at most six sharps or flats
                continue
            assert [p + shift for p in pitches] == abc.analyse(moved).pitches
            assert abs(abc.key_of(moved).fifths) <= 6
            assert abc.tokenize(abc.render(moved)) == moved


def test_unsupported_tunes_are_refused_with_the_reason():
    with pytest.raises(abc.ParseError, match="chords"):
        abc.tokenize("X:1\nM:4/4\nK:G\n[GB]2 d2 |\n")
    with pytest.raises(abc.ParseError, match="K: field inside"):
        abc.tokenize("X:1\nM:4/4\nK:G\nG2 d2 |\nK:D\nd4 |\n")
    with pytest.raises(abc.ParseError, match="unknown key"):
        abc.tokenize("X:1\nM:4/4\nK:H\nG2 d2 |\n")


def test_musical_checks_of_real_tunes():
    tune = abc.tokenize("X:1\nM:2/4\nL:1/8\nK:G\nD | G2 AB | cB AG | A2 FA | G3 ||\n")
    assert checks.bars_ok(tune) is True and checks.ends_on_tonic(tune)
    short = abc.tokenize("X:1\nM:2/4\nL:1/8\nK:G\nD | G2 AB | cB A | A2 FA | G3 ||\n")
    assert checks.bars_ok(short) is False
    report = checks.report([tune], [tune])
    assert report["parses"] == 1.0 and report["pitch_class_js"] == 0.0


# ----------------------------------------------------------------------------- corpora


def test_default_corpus_reads_both_collections_without_duplicates():
    tunes = data.load(DataSource("default"), max_tokens=512)
    assert tunes.records > 10_000 and len(tunes.tunes) > 9_500
    assert len({tuple(t) for t in tunes.tunes}) == len(tunes.tunes)
    assert sum(tunes.skipped.values()) < 200 and tunes.duplicates > 0


def test_own_file_skips_and_counts_what_it_cannot_read(tmp_path):
    path = tmp_path / "mine.abc"
    good = "X:{}\nM:6/8\nL:1/8\nK:D\nA | d2e fed | e3 A3 |]\n"
    path.write_text(good.format(1) + "\n" + good.format(2) + "\nX:3\nK:G\n[GB]2 |\n")
    tunes = data.load(DataSource("path", path=path), max_tokens=512)
    assert (tunes.records, len(tunes.tunes), tunes.duplicates) == (3, 1, 1)
    assert tunes.skipped == {"chords": 1}
    with pytest.raises(UserError, match="no ABC tunes"):
        (tmp_path / "none.abc").write_text("T: no tunes here\n")
        data.load(DataSource("path", path=tmp_path / "none.abc"), max_tokens=512)


# ----------------------------------------------------------------------------- CLI


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def music_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("music") / "run"
    result = invoke("train", "--preset", "tiny", "--output-dir", out)
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_the_run_and_learns(music_run):
    for name in ("model.keras", "tokenizer.json", "metrics.json", data.HELDOUT_FILE, "train.abc"):
        assert (music_run / name).is_file(), name
    metrics = json.loads((music_run / "metrics.json").read_text())
    assert metrics["loss"] < 0.9 * math.log(metrics["vocab_size"])
    assert len(list((music_run / "tunes").glob("*.abc"))) == 3


def test_compose_writes_abc_midi_and_png_and_is_seeded(music_run, tmp_path):
    args = ["compose", "--model-dir", music_run, "--meter", "4/4", "--key", "G"]
    first = invoke(*args, "--prime", "G2 AB|", "--num-tunes", 2, "--output-dir", tmp_path / "a")
    assert first.exit_code == 0, first.output
    invoke(*args, "--prime", "G2 AB|", "--num-tunes", 2, "--output-dir", tmp_path / "b")
    invoke(*args, "--seed", 7, "--output-dir", tmp_path / "c")
    texts = [(tmp_path / d / "tune_001.abc").read_text() for d in "abc"]
    assert texts[0] == texts[1] != texts[2]
    assert "M:4/4\nL:1/8\nK:G\nG2AB |" in texts[0]
    for suffix in (".abc", ".mid", ".png"):
        assert (tmp_path / "a" / f"tune_002{suffix}").stat().st_size > 0
    assert checks.music21_parses(texts[0])
    # Composing again into "a" with fewer tunes leaves no file of the earlier set behind.
    (tmp_path / "a" / "notes.txt").write_text("mine")
    again = invoke(*args, "--seed", 7, "--output-dir", tmp_path / "a")
    assert again.exit_code == 0, again.output
    kept = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert kept == sorted(["notes.txt", *(p.name for p in (tmp_path / "c").iterdir())])
    assert (tmp_path / "a" / "tune_001.abc").read_text() == texts[2]


def test_evaluate_reports_loss_and_musical_checks(music_run):
    result = invoke("evaluate", "--model-dir", music_run, "--num-tunes", 4, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    metrics = json.loads((music_run / "metrics.json").read_text())
    assert report["loss"] == pytest.approx(metrics["loss"], rel=1e-5)
    for key in ("parses", "bars_ok", "ends_on_tonic", "finished", "pitch_class_js", "interval_js"):
        assert 0.0 <= report[f"generated_{key}"] <= 1.0, key
    assert report["generated_tunes"] == 4 and report["heldout_parses"] == 1.0


def test_bad_input_fails_in_one_line(music_run, tmp_path):
    one_line_error(
        invoke("train", "--data", tmp_path / "missing.abc", "--output-dir", tmp_path / "r"),
        "missing.abc",
    )
    (tmp_path / "empty.abc").write_text("% nothing\nT: a title\n")
    one_line_error(
        invoke("train", "--data", tmp_path / "empty.abc", "--output-dir", tmp_path / "r"),
        "empty.abc",
        "no ABC tunes",
    )
    assert not (tmp_path / "r").exists()
    one_line_error(invoke("compose", "--model-dir", music_run, "--key", "Q"), "--key", "'Q'")
    one_line_error(invoke("compose", "--model-dir", music_run, "--meter", "13/7"), "--meter")
    one_line_error(invoke("compose", "--model-dir", music_run, "--prime", "G2"), "--prime")


@pytest.fixture(scope="module")
def exported(music_run, tmp_path_factory):
    """The tiny run's SavedModel."""
    path = tmp_path_factory.mktemp("music-export") / "music"
    assert invoke("export", "--model-dir", music_run, "--output", path).exit_code == 0
    return path


def test_exported_model_composes_like_the_cli(music_run, exported, tmp_path):
    path = exported
    exported = run_outside(
        """
        model = tf.saved_model.load(values["path"])
        text = model.generate(tf.constant("M:4/4 K:G L:1/8"), tf.constant(252),
                              tf.constant(1.0), tf.constant(5))
        print(json.dumps({"tokens": text.numpy().decode()}))
        """,
        tmp_path,
        path=str(path),
    )
    cli_run = invoke(
        "compose", "--model-dir", music_run, "--meter", "4/4", "--key", "G", "--seed", 5,
        "--output-dir", tmp_path / "cli",
    )  # fmt: skip
    assert cli_run.exit_code == 0, cli_run.output
    tokens = exported["tokens"].split()
    assert (tmp_path / "cli" / "tune_001.abc").read_text().startswith(abc.render(tokens)[:-1])


def test_every_exported_signature_runs_in_saved_model_cli(music_run, exported, tmp_path):
    """`saved_model_cli run` (TensorFlow Serving's loader) on each signature: a dense, named
    string output, the tokens `compose` gives for the same prime, temperature and seed."""
    prime = "M:4/4 K:G L:1/8 G2 A B |"  # compose --meter 4/4 --key G --prime "G2 AB|"
    length = 256 - 1 - len(prime.split())  # the tiny preset's max_tokens, less <bos> and prime
    inputs = f"prime={prime!r};length={length};temperature=0.8;seed=9"
    outputs = saved_model_cli_runs(
        exported, {name: inputs for name in ("generate", "serving_default")}, tmp_path
    )
    assert all(sorted(out) == ["output_0"] for out in outputs.values())
    tokens = {name: printed_strings(out["output_0"]) for name, out in outputs.items()}
    assert tokens["generate"] == tokens["serving_default"] and len(tokens["generate"]) == 1
    cli_run = invoke(
        "compose", "--model-dir", music_run, "--meter", "4/4", "--key", "G", "--prime", "G2 AB|",
        "--temperature", 0.8, "--seed", 9, "--output-dir", tmp_path / "cli",
    )  # fmt: skip
    assert cli_run.exit_code == 0, cli_run.output
    rendered = abc.render(tokens["generate"][0].split())
    assert (tmp_path / "cli" / "tune_001.abc").read_text().startswith(rendered[:-1])


def test_demo_page_answers_as_the_cli_does(music_run, tmp_path):
    """The music tab (`recipes/music/demo.py`) gives `compose`'s ABC for the same options and
    seed, its piano roll, and audio as long as the MIDI file `compose` writes."""
    import wave

    import music21
    from PIL import Image

    from recipes.music import audio
    from tests.demo_client import endpoints, page_error, served

    cases = [("", "G", "G2 AB|", 0.8, 5)]  # the meter drawn by the model: "" is no --meter
    expected = []
    for i, (meter, key, prime, temperature, seed) in enumerate(cases):
        args = ["compose", "--model-dir", music_run, "--output-dir", tmp_path / str(i)]
        args += [*(("--meter", meter) if meter else ()), *(("--key", key) if key else ())]
        args += [*(("--prime", prime) if prime else ()), "--temperature", temperature]
        result = invoke(*args, "--seed", seed)
        assert result.exit_code == 0, result.output
        expected.append(tmp_path / str(i) / "tune_001")
    with served("music", music_run) as client:
        assert endpoints(client) == {"/compose"}
        for case, stem in zip(cases, expected, strict=True):
            text, roll, sound = client.predict(*case, api_name="/compose")
            assert text == stem.with_suffix(".abc").read_text()
            with Image.open(roll) as page_png, Image.open(stem.with_suffix(".png")) as cli_png:
                assert page_png.size == cli_png.size
            with wave.open(sound) as wav:
                assert (wav.getframerate(), wav.getnchannels()) == (audio.SAMPLE_RATE, 1)
                samples = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
            score = music21.converter.parse(stem.with_suffix(".mid")).flatten()
            end = max(n.offset + n.quarterLength for n in score.notes)  # of the MIDI's notes
            notes = float(end) * 60 / audio.TEMPO
            assert len(samples) / audio.SAMPLE_RATE == pytest.approx(
                notes + audio.RELEASE, abs=0.01
            )
            loud = np.abs(samples.astype(float))
            assert loud.max() > 20_000 and np.sqrt(np.mean(loud**2)) > 1_000  # not silent
        # Bad input: the CLI's one line, in the page.
        for meter, key, prime in [("4/4", "Q", ""), ("4/4", "", "G2")]:
            args = ["compose", "--model-dir", music_run, "--meter", meter]
            args += [*(("--key", key) if key else ()), *(("--prime", prime) if prime else ())]
            cli_error = invoke(*args)
            shown = page_error(client, meter, key, prime, 1.0, 42, api_name="/compose")
            assert one_line_error(cli_error) == f"Error: {shown}"


def test_audio_is_the_notes_at_the_midi_tempo():
    from recipes.music import audio

    tune = abc.tokenize("X:1\nM:2/4\nL:1/8\nK:A\nA2 z2 | a4 |]\n")  # A4, a rest, A5
    samples = audio.synthesize(tune).astype(float)
    assert audio.seconds(tune) == 2.0  # 8 eighths at 120 quarter notes a minute
    assert len(samples) == pytest.approx((2.0 + audio.RELEASE) * audio.SAMPLE_RATE, abs=2)
    rate = audio.SAMPLE_RATE
    first, rest, second = samples[: rate // 2], samples[rate // 2 + 2000 : rate], samples[rate:]
    assert np.abs(rest).max() < 1 and np.abs(samples).max() == pytest.approx(0.9 * 32767, abs=1)
    # The strongest frequency of each note is its fundamental: 440 Hz, then 880 Hz.
    for part, hz in ((first, 440), (second, 880)):
        spectrum = np.abs(np.fft.rfft(part))
        assert np.fft.rfftfreq(len(part), 1 / rate)[spectrum.argmax()] == pytest.approx(hz, abs=3)
    assert audio.synthesize(["M:4/4", "K:C", "L:1/8", "z4", "|]"]).size == 0  # no notes
