"""DNA recipe: readers, IUPAC one-hot, shuffles, reverse complements, bad input, and the
CLI end to end on a generated set with a planted motif (tiny preset). No network."""

from __future__ import annotations

import collections
import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner

from recipes.dna import data as dna_data
from recipes.dna.main import cli
from tests.cli_errors import one_line_error
from tests.exported import printed_strings, run_outside, saved_model_cli_run

MOTIF = "CACGTG"  # the E-box; its own reverse complement


def planted_set(n: int = 160, seed: int = 0):
    """Random sequences of 30..40 letters; "bound" ones carry MOTIF near the middle.
    Returns [(id, sequence, label, motif start or None)]."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        length = int(rng.integers(30, 41))
        seq = "".join(rng.choice(list("ACGT"), size=length))
        start = None
        if i % 2 == 0:
            start = int(rng.integers(10, 18))  # near the middle, as at a ChIP-seq summit
            seq = seq[:start] + MOTIF + seq[start + len(MOTIF) :]
        rows.append((f"s{i}", seq, "bound" if start is not None else "unbound", start))
    return rows


def write_fasta(path, rows, labels=True):
    path.write_text(
        "".join(f">{r[0]}{' ' + r[2] if labels else ''}\n{r[1]}\n" for r in rows),
        encoding="utf-8",
    )
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def load(path, **options):
    return dna_data.load(str(path), dna_data.ReadOptions(**options))[0]


# --------------------------------------------------------------------------- readers


def test_fasta_directory_and_tables_read_the_same_sequences(tmp_path):
    rows = planted_set(12)
    fasta = load(write_fasta(tmp_path / "a.fa", rows))
    assert fasta.class_names == ("bound", "unbound")
    assert fasta.sequences == tuple(r[1] for r in rows)
    assert [fasta.class_names[k] for k in fasta.labels] == [r[2] for r in rows]

    (tmp_path / "dir").mkdir()
    for name in ("bound", "unbound"):
        write_fasta(tmp_path / "dir" / f"{name}.fasta", [r for r in rows if r[2] == name], False)
    by_file = load(tmp_path / "dir")
    assert sorted(zip(by_file.sequences, by_file.labels.tolist(), strict=True)) == sorted(
        zip(fasta.sequences, fasta.labels.tolist(), strict=True)
    )

    tsv = tmp_path / "t.tsv.gz"
    tsv.write_bytes(
        gzip.compress(
            ("id\tseq\tBound\n" + "".join(f"{r[0]}\t{r[1]}\t{r[2]}\n" for r in rows)).encode()
        )
    )
    csv = tmp_path / "t.csv"
    csv.write_text("\ufeffdna,kind\n" + "".join(f"{r[1]},{r[2]}\n" for r in rows))
    for table, extra in ((tsv, {}), (csv, {"sequence_column": "dna", "label_column": "kind"})):
        read = load(table, **extra)
        assert read.sequences == fasta.sequences
        assert (read.labels == fasta.labels).all()


def test_multi_label_fasta_has_a_mark_matrix(tmp_path):
    path = tmp_path / "m.fa"
    path.write_text(">a ctcf,dnase\nACGT\n>b -\nACGA\n>c dnase\nAAAA\n")
    data = load(path, multi_label=True)
    assert data.class_names == ("ctcf", "dnase")
    assert data.labels.tolist() == [[1, 1], [0, 0], [0, 1]]
    assert dna_data.fasta_text(data).splitlines()[2] == ">b -"


def test_iupac_codes_case_and_u_are_one_hot_distributions():
    import tensorflow as tf

    from common.tokenization import OneHotAlphabet

    layer = OneHotAlphabet(dna_data.one_hot_table())
    x, mask = layer(tf.constant(["ACGTU", "nrY", ""]))
    assert x.shape == (3, 5, 4) and mask.numpy().sum(axis=1).tolist() == [5, 3, 0]
    np.testing.assert_allclose(x[0].numpy(), np.eye(4)[[0, 1, 2, 3, 3]])
    np.testing.assert_allclose(x[1, 0].numpy(), [0.25] * 4)  # N, lower case
    np.testing.assert_allclose(x[1, 1].numpy(), [0.5, 0, 0.5, 0])  # R = A or G
    np.testing.assert_allclose(x[1, 2].numpy(), [0, 0.5, 0, 0.5])  # Y = C or T
    assert not x[2].numpy().any()
    np.testing.assert_allclose(x[1, :3].numpy(), dna_data.one_hot("nrY"))


def test_reverse_complement_of_the_one_hot_is_the_one_hot_of_the_reverse_complement():
    import tensorflow as tf

    from common.tokenization import OneHotAlphabet
    from recipes.dna.model import reverse_complement_one_hot

    seqs = ["ACGTTGCA", "AAcRN", "G"]
    layer = OneHotAlphabet(dna_data.one_hot_table())
    x, mask = layer(tf.constant(seqs))
    expected, _ = layer(tf.constant([dna_data.reverse_complement(s) for s in seqs]))
    np.testing.assert_allclose(reverse_complement_one_hot(x, mask).numpy(), expected.numpy())


def test_smoothed_loss_is_keras_categorical_crossentropy_on_smoothed_one_hot_labels():
    import keras

    from recipes.dna.model import SmoothedSparseCrossentropy

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=5).astype("float32")
    labels = np.array([0, 2, 1, 1, 0])
    one_hot = np.eye(3, dtype="float32")[labels]
    for smoothing in (0.0, 0.1):
        ours = SmoothedSparseCrossentropy(smoothing)(labels, probs)
        keras_loss = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
        np.testing.assert_allclose(float(ours), float(keras_loss(one_hot, probs)), rtol=1e-5)
    # smoothing only ever moves the target away from the true class
    assert float(SmoothedSparseCrossentropy(0.1)(labels, one_hot * 0.999 + 0.0005)) > float(
        SmoothedSparseCrossentropy(0.0)(labels, one_hot * 0.999 + 0.0005)
    )


def test_long_sequences_are_pooled_to_at_most_the_recurrent_steps_and_predicted_in_batches():
    from recipes.dna import config, model, predict

    cfg = config.PRESETS["default"]
    pools = {n: model.scanner_pool(cfg, n) for n in (60, 101, 102, 103, 200, 1000)}
    assert pools == {60: 3, 101: 3, 102: 3, 103: 4, 200: 6, 1000: 30}
    assert model.scanner_pool(config.PRESETS["large"], 1000) == 13  # DanQ's own pooling
    net = model.build_model(cfg, classes=2, length=200)
    assert net.get_layer("bidirectional_0").output.shape[1] == 34  # ceil(200 / 6)

    sequences = ["ACGT" * 50] * 5000
    batches = predict.batches(net, sequences)
    assert [int(b.shape[0]) for b in batches] == [2048, 2048, 904]
    probs = predict.probabilities(net, sequences[:3] + ["GGGG"])
    assert probs.shape == (4, 2) and np.allclose(probs[0], probs[2])


def test_shuffles_keep_dinucleotide_counts_exactly_and_are_seeded():
    rng = np.random.default_rng(3)
    for seq in ["ACGTTGCAAGCTTAGGCAT" * 3, "AAAAAAAC", "ACGTNNNACGT", "GATTACA"]:
        shuffled = dna_data.dinucleotide_shuffle(seq, rng)
        pairs = collections.Counter(zip(seq, seq[1:], strict=False))
        assert collections.Counter(zip(shuffled, shuffled[1:], strict=False)) == pairs
        assert shuffled[0] == seq[0] and shuffled[-1] == seq[-1]
    long = "ACGTTGCAAGCTTAGGCATTACG" * 4
    draws = {dna_data.dinucleotide_shuffle(long, np.random.default_rng(s)) for s in range(5)}
    assert len(draws) > 1  # shuffles differ between seeds ...
    again = dna_data.dinucleotide_shuffle(long, np.random.default_rng(0))
    assert again == dna_data.dinucleotide_shuffle(long, np.random.default_rng(0))  # ... not runs


def test_positives_become_class_1_with_their_shuffles_as_class_0(tmp_path):
    rows = planted_set(6)
    data = load(write_fasta(tmp_path / "peaks.fa", rows, labels=False), negatives="shuffle")
    both = dna_data.with_shuffles(data, seed=1)
    assert both.class_names == ("0", "1") and both.labels.tolist() == [1] * 6 + [0] * 6
    assert both.sequences[6].startswith(rows[0][1][0])


def test_training_draws_new_shuffles_of_the_positives_every_epoch(tmp_path):
    from recipes.dna import train as train_lib

    rows = planted_set(8)
    data = load(write_fasta(tmp_path / "peaks.fa", rows, labels=False), negatives="shuffle")
    both = dna_data.with_shuffles(data, seed=1)
    ds = train_lib.dataset(both, 4, shuffle=True, seed=1, fresh_negatives=True)
    passes = []
    for _ in range(2):
        pairs = [
            (s.decode(), int(label))
            for x, y in ds
            for s, label in zip(x.numpy(), y.numpy(), strict=True)
        ]
        passes.append(collections.Counter(pairs))
    for counted in passes:
        assert sorted(s for s, y in counted.elements() if y == 1) == sorted(data.sequences)
        negatives = [s for s, y in counted.elements() if y == 0]
        assert len(negatives) == len(data)
        assert collections.Counter(
            pair for s in negatives for pair in zip(s, s[1:], strict=False)
        ) == collections.Counter(
            pair for s in data.sequences for pair in zip(s, s[1:], strict=False)
        )
    new = [s for s, y in passes[1] if y == 0]
    assert set(new) != {s for s, y in passes[0] if y == 0}  # a new set every pass
    fixed = train_lib.dataset(both, 4, shuffle=False, seed=1)  # validation: as given
    assert [s.decode() for x, _ in fixed for s in x.numpy()] == list(both.sequences)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text, needles",
    [
        (">a x\nACGJT\n>b y\nAAAA\n", ["record 1 (a), position 4", "'J'"]),
        (">a x\n\n>b y\nAAAA\n", ["record 1 (a)", "empty sequence"]),
        (">a\nACGT\n>b y\nAAAA\n", ["record 1 (a)", "no label"]),
        (">a x\nACGT\n>b x\nAAAA\n", ["one class only"]),
        ("ACGT\n", ["not FASTA"]),
    ],
)
def test_bad_fasta_is_a_one_line_error_and_writes_nothing(tmp_path, text, needles):
    path = tmp_path / "bad.fa"
    path.write_text(text)
    out = tmp_path / "run"
    one_line_error(
        invoke("train", "--preset", "tiny", "--data", path, "--output-dir", out), *needles
    )
    assert not out.exists()


def test_shuffle_with_labelled_input_is_refused(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("sequence,label\nACGTAC,a\nACGTTT,b\n")
    out = tmp_path / "run"
    args = ("train", "--preset", "tiny", "--data", table, "--output-dir", out)
    one_line_error(invoke(*args, "--negatives", "shuffle"), "positives only", "'label'")
    builtin = ("train", "--preset", "tiny", "--data", "splice", "--output-dir", out)
    one_line_error(invoke(*builtin, "--negatives", "shuffle"), "labelled")
    assert not out.exists()


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dna")
    rows = planted_set(240)
    data = write_fasta(root / "planted.fa", rows)
    out = root / "run"
    result = ok(
        invoke("train", "--preset", "tiny", "--epochs", "25", "--data", data, "--output-dir", out)
    )
    return out, rows, result.output


def test_train_reports_network_and_baselines_and_writes_the_run(trained):
    out, _, output = trained
    assert "network (danq)" in output and "cnn (no recurrent layer)" in output
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["accuracy"] > 0.8, summary  # 48 held-out sequences; chance is 0.5
    assert set(summary["baselines"]) == {
        "network (danq)",
        "cnn (no recurrent layer)",
        "k-mer logistic regression (k <= 3)",
    }
    for name in ("model.keras", "heldout.fa", "baseline_kmer.json", "baseline_cnn/model.keras"):
        assert (out / name).is_file(), name


def test_evaluate_json_and_baselines(trained):
    out, _, _ = trained
    result = json.loads(ok(invoke("evaluate", "--model-dir", out, "--json")).output)
    summary = json.loads((out / "metrics.json").read_text())
    assert result["accuracy"] == pytest.approx(summary["accuracy"])
    assert set(result["per_class"]) == {"bound", "unbound"}
    for key in ("accuracy", "roc_auc", "pr_auc"):
        assert 0 <= result[key] <= 1
    with_baselines = json.loads(
        ok(invoke("evaluate", "--model-dir", out, "--baselines", "--json")).output
    )
    assert set(with_baselines["baselines"]) == {"network", "cnn", "kmer"}


def test_motifs_recover_the_planted_motif(trained, tmp_path):
    out, _, _ = trained
    ok(invoke("motifs", "--model-dir", out, "--output-dir", tmp_path, "--top", "4"))
    meme = (tmp_path / "motifs.meme").read_text()
    assert meme.startswith("MEME version 4") and "letter-probability matrix" in meme
    assert (tmp_path / "motifs.png").stat().st_size > 0
    rows = [line.split("\t") for line in (tmp_path / "motifs.tsv").read_text().splitlines()]
    assert rows[0] == ["motif", "consensus", "influence", "sites", "bits"]
    influence = [float(r[2]) for r in rows[1:]]
    assert influence == sorted(influence, reverse=True) and influence[0] > 0
    # A 5-wide scanner sees 5 letters of the 6: some filter says CACGT or ACGTG (each of
    # the 8 filters has about one chance in 500 of doing so by luck).
    found = [r for r in rows[1:] if r[1] in MOTIF]
    assert found, rows
    assert f"MOTIF {found[0][0]} {found[0][1]}" in meme


def test_explain_points_at_the_motif(trained, tmp_path):
    out, rows, _ = trained
    _, seq, _, start = rows[0]
    png = tmp_path / "x.png"
    result = json.loads(
        ok(
            invoke("explain", "--model-dir", out, "--sequence", seq, "--output", png, "--json")
        ).output
    )
    assert result["predicted"] == "bound" and png.stat().st_size > 0
    top = int(np.argmax(result["attribution"]))
    assert start <= top < start + len(MOTIF), (top, start)
    one_line_error(invoke("explain", "--model-dir", out, "--sequence", "ACGZ"), "position 4")


def test_predict_and_export_agree_outside_the_project(trained, tmp_path):
    out, rows, _ = trained
    fasta = write_fasta(tmp_path / "in.fa", rows[:6], labels=False)
    table = ok(invoke("predict", "--model-dir", out, "--input", fasta)).output.splitlines()
    assert table[0].split("\t") == ["id", "label", "bound", "unbound"]
    labels = [line.split("\t")[1] for line in table[1:]]
    probs = [float(line.split("\t")[2]) for line in table[1:]]
    path = tmp_path / "saved"
    ok(invoke("export", "--model-dir", out, "--output", path))
    exported = run_outside(
        """
        loaded = tf.saved_model.load(values["path"])
        out = loaded.serve(tf.constant(values["seqs"]))
        print(json.dumps({"label": [s.decode() for s in out["label"].numpy()],
                          "bound": out["probabilities"].numpy()[:, 0].tolist()}))
        """,
        tmp_path,
        path=str(path),
        seqs=[r[1] for r in rows[:6]],
    )
    assert exported["label"] == labels
    np.testing.assert_allclose(exported["bound"], probs, atol=1e-5)
    served = saved_model_cli_run(path, "serve", f"sequence={[r[1] for r in rows[:2]]!r}", tmp_path)
    assert sorted(served) == ["label", "probabilities"]
    assert printed_strings(served["label"]) == labels[:2]


# ----------------------------------------------------------------------------- demo


def test_demo_page_answers_as_the_cli_does(trained, tmp_path):
    from tests.demo_client import endpoints, page_error, served

    out, rows, _ = trained
    name, seq, label, _ = rows[0]
    png = tmp_path / "x.png"
    explain = ("explain", "--model-dir", out, "--sequence", seq, "--output", png, "--json")
    cli_answer = json.loads(ok(invoke(*explain)).output)
    with served("dna", out) as client:
        assert endpoints(client) == {"/explain"}
        # A FASTA record (as the held-out examples are shown), the predicted class explained.
        probs, picture, top = client.predict(f">{name} {label}\n{seq}\n", None, api_name="/explain")
        assert probs["label"] == cli_answer["predicted"] == "bound"
        shown = {c["label"]: c["confidence"] for c in probs["confidences"]}
        assert shown == pytest.approx(cli_answer["probabilities"], abs=1e-5)
        with open(picture, "rb") as image:
            assert image.read(8) == b"\x89PNG\r\n\x1a\n"
        expected = [[t["position"], t["base"], t["attribution"]] for t in cli_answer["top"]]
        assert [r[:2] for r in top["data"]] == [r[:2] for r in expected]
        assert [r[2] for r in top["data"]] == pytest.approx([r[2] for r in expected], abs=1e-4)
        # Bare letters, and the other class: the same positions, the opposite sign.
        other = client.predict(seq.lower(), "unbound", api_name="/explain")[2]["data"]
        assert other[0][:2] == [top["data"][0][0], top["data"][0][1].lower()]
        assert other[0][2] == pytest.approx(-top["data"][0][2], abs=1e-3)
        # Bad input: the CLI's one line, in the page.
        for bad in ("ACGZ", "  "):
            cli_error = invoke("explain", "--model-dir", out, "--sequence", bad)
            shown = page_error(client, bad, None, api_name="/explain")
            assert one_line_error(cli_error) == f"Error: {shown}"
        assert page_error(client, ">a\nAC\n>b\nGT\n", None, api_name="/explain") == (
            "--sequence: 2 FASTA records; paste one"
        )


# --------------------------------------------------------------------------- multi-label


def test_multi_label_run_learns_each_mark_and_predicts_independent_probabilities(tmp_path):
    """Two marks, each planted or not independently (DeepSEA's shape, small): train,
    evaluate --json per mark, predict a probability per mark (not summing to one)."""
    rng = np.random.default_rng(1)
    marks = {"ebox": "CACGTG", "gata": "GATAAG"}
    rows = []
    for i in range(240):
        seq = list("".join(rng.choice(list("ACGT"), size=36)))
        have = [name for j, name in enumerate(marks) if (i >> j) & 1]
        for name in have:
            start = 4 if name == "ebox" else 22
            seq[start : start + 6] = marks[name]
        rows.append((f"m{i}", "".join(seq), ",".join(have) or "-"))
    data = write_fasta(tmp_path / "marks.fa", rows)
    out = tmp_path / "run"
    ok(invoke("train", "--preset", "tiny", "--epochs", "25", "--multi-label", "--data", data,
              "--output-dir", out, "--no-baselines"))  # fmt: skip
    result = json.loads(ok(invoke("evaluate", "--model-dir", out, "--json")).output)
    assert set(result["per_class"]) == set(marks)
    assert result["roc_auc"] > 0.8, result  # each mark is learned (chance: 0.5)
    query = write_fasta(tmp_path / "q.fa", [("both", "AAAACACGTGAAAAAAAAAAAAGATAAGAAAAAAAA", "")])
    table = ok(invoke("predict", "--model-dir", out, "--input", query)).output.splitlines()
    header = table[0].split("\t")
    assert {"ebox", "gata"} <= set(header)
    values = dict(zip(header, table[1].split("\t"), strict=True))
    probabilities = [float(values[m]) for m in marks]
    assert all(p > 0.5 for p in probabilities), values  # both marks present
