"""Protein recipe: readers, the 8-to-3 reduction, masking, bad input, and the CLI end to
end on a generated set with a learnable rule (tiny preset). No network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from recipes.protein import data as protein_data
from recipes.protein.main import cli
from tests.cli_errors import one_line_error
from tests.exported import printed_strings, run_outside, saved_model_cli_run

HELIX, STRAND = set("AELMKQ"), set("VIYFWT")


def rule(sequence: str) -> str:
    """The learnable rule: a residue's state is its own class (helix- or strand-formers)."""
    return "".join("H" if a in HELIX else "E" if a in STRAND else "C" for a in sequence)


def chains(n=120, seed=0):
    rng = np.random.default_rng(seed)
    letters = list(protein_data.AMINO_ACIDS)
    out = []
    for i in range(n):
        seq = "".join(rng.choice(letters, size=int(rng.integers(41, 49))))
        out.append((f"c{i}", seq, rule(seq)))
    return out


def write_pairs(path, rows):
    path.write_text("".join(f">{i}\n{s}\n>{i}_ss\n{t}\n" for i, s, t in rows))
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


# --------------------------------------------------------------------------- readers


def test_fasta_pairs_and_tables_read_the_same_chains(tmp_path):
    rows = chains(5)
    pairs = protein_data.load(str(write_pairs(tmp_path / "a.fa", rows)), 3).chains
    assert [(c.id, c.sequence, c.states) for c in pairs] == rows
    # cu-ssp's CB513 layout: id,len,input,expected with L for coil.
    csv = tmp_path / "cb513.csv"
    csv.write_text(
        "id,len,input,expected\n"
        + "".join(f"{i},{len(s)},{s},{t.replace('C', 'L')}\n" for i, s, t in rows)
    )
    table = protein_data.load(str(csv), 3).chains
    assert [(c.id, c.sequence, c.states) for c in table] == rows
    tsv = tmp_path / "m.tsv"
    tsv.write_text("sequence\tss\tmask\nACDE\tHHEC\t0110\n")
    (chain,) = protein_data.load(str(tsv), 3).chains
    assert chain.mask == "0110" and chain.states == "HHEC"


def test_eight_states_reduce_to_three_the_standard_way():
    assert protein_data.convert_states("x", "HGIEBTSC L-", 3) == "HHHEECCCCCC"
    assert protein_data.convert_states("x", "HGIEBTSL", 8) == "HGIEBTSC"


def test_default_set_has_its_parts_and_masks():
    data = protein_data.read_default(3)
    assert {k: len(v) for k, v in data.parts.items()} == {
        "train": 9712,
        "validation": 1080,
        "test": 364,
    }
    assert all(len(c.mask) == len(c.sequence) == len(c.states) for c in data.parts["test"])


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize("decoder", ["softmax", "crf"])
def test_padding_and_unresolved_residues_change_neither_loss_nor_predictions(decoder):
    import dataclasses

    import keras
    import tensorflow as tf

    from recipes.protein import config, model
    from recipes.protein.train import dataset

    keras.utils.set_random_seed(0)
    cfg = dataclasses.replace(config.PRESETS["tiny"], decoder=decoder)
    net = model.build_model(cfg)
    short, long = "ACDEFGHIK", "LMNPQRSTVWYACDEFGHIKLMN"

    def probs(batch):
        return model.probabilities(net, net(tf.constant(batch)), [len(s) for s in batch]).numpy()

    alone = probs([short])[0]
    padded = probs([short, long])[0, : len(short)]
    np.testing.assert_allclose(alone, padded, atol=1e-6)
    np.testing.assert_allclose(alone.sum(axis=1), 1.0, atol=1e-5)

    model.compile_model(net, "adam")
    base = protein_data.Chain("a", short, "HHHEEECCC", "111111110")
    other = protein_data.Chain("a", short, "HHHEEECCH", "111111110")  # differs where unresolved
    losses = [
        net.evaluate(dataset([c], cfg, training=False, seed=0), verbose=0) for c in (base, other)
    ]
    np.testing.assert_allclose(losses[0], losses[1], atol=1e-6)


def test_validation_accuracy_is_the_share_of_right_residues_over_every_batch():
    """`val_accuracy` (what picks the epoch) equals evaluate's Q3 over chains batched at
    different padded lengths, where Keras's weighted "accuracy" weights batches by
    1 / padded length."""
    import dataclasses

    import keras

    from recipes.protein import config, model
    from recipes.protein import predict as predict_lib
    from recipes.protein.train import dataset

    keras.utils.set_random_seed(1)
    cfg = dataclasses.replace(config.PRESETS["tiny"], batch_size=2)
    net = model.build_model(cfg)
    held = [protein_data.Chain(i, s, t, "1" * len(s)) for i, s, t in chains(7, seed=3)]
    held += [protein_data.Chain("long", "ACDEFGHIKLMNPQRSTVWY" * 6, "HEC" * 40, "1" * 120)]
    model.compile_model(net, "adam")
    scores = net.evaluate(dataset(held, cfg, training=False, seed=0), verbose=0, return_dict=True)
    q3 = predict_lib.report(held, predict_lib.chain_probabilities(net, held), "HEC")["q3"]
    assert scores["accuracy"] == pytest.approx(q3, abs=1e-6)


def test_loss_is_the_mean_cross_entropy_of_the_resolved_residues():
    """Neither padding (the time axis is padded to a multiple of 32) nor unresolved
    residues dilute the loss: Keras's default reduction divides by every residue,
    unresolved ones included (0.997 here instead of 1.178)."""
    import keras

    from recipes.protein import config, model
    from recipes.protein.train import dataset

    keras.utils.set_random_seed(2)
    cfg = config.PRESETS["tiny"]
    net = model.compile_model(model.build_model(cfg), "adam")
    chain = protein_data.Chain("a", "ACDEFGHIKLMNP", "HHHEEECCCHHEE", "1111111111100")
    loss = net.evaluate(dataset([chain], cfg, training=False, seed=0), verbose=0)[0]
    probs = model.probabilities(net, net([np.array([chain.sequence])]), [13]).numpy()[0]
    truth = protein_data.encode_states([chain], 3)[0]
    expected = -np.log(probs[np.arange(11), truth[:11]]).mean()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_training_batches_group_lengths_and_match_the_models_padded_time_axis():
    import dataclasses

    import keras
    import tensorflow as tf

    from recipes.protein import config, model
    from recipes.protein.train import dataset, steps_per_epoch

    rng = np.random.default_rng(0)
    chains = [
        protein_data.Chain(f"c{i}", "A" * n, "H" * n, "1" * n)
        for i, n in enumerate(rng.integers(5, 200, size=40))
    ]
    cfg = dataclasses.replace(config.PRESETS["tiny"], crop=150)
    net = model.build_model(cfg)
    keras.utils.set_random_seed(0)
    batches = list(dataset(chains, cfg, training=True, seed=0).take(steps_per_epoch(chains, cfg)))
    for x, y, w in batches:
        real = tf.strings.length(x).numpy()
        assert y.shape[1] % model.TIME_MULTIPLE == 0 and y.shape[1] >= real.max()
        assert net(x).shape[1] == y.shape[1]
        assert real.max() // 64 == real.min() // 64  # one length band (train.BUCKETS)
        np.testing.assert_array_equal(w.numpy().sum(axis=1), real)  # padding weighs nothing


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text, needles",
    [
        (">a\nACJD\n>a_ss\nHHHH\n", ["record 1 (a), position 3", "'J'"]),
        (">a\nACDE\n>a_ss\nHHH\n", ["record 1 (a)", "3 states for 4 residues"]),
        (">a\nACDE\n>a_ss\nHHQH\n", ["record 1 (a), position 3", "'Q' is not a state"]),
        (">a\n\n>a_ss\nHH\n", ["record 1 (a)", "empty sequence"]),
        (">a\nACDE\n", ["without its structure"]),
    ],
)
def test_bad_chains_are_one_line_errors_and_write_nothing(tmp_path, text, needles):
    path = tmp_path / "bad.fa"
    path.write_text(text)
    out = tmp_path / "run"
    one_line_error(
        invoke("train", "--preset", "tiny", "--data", path, "--output-dir", out), *needles
    )
    assert not out.exists()


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("protein")
    rows = chains()
    data = write_pairs(root / "chains.fa", rows)
    out = root / "run"
    ok(invoke("train", "--preset", "tiny", "--epochs", "12", "--data", data, "--output-dir", out))
    return out, rows


def test_train_learns_the_rule_and_evaluate_agrees(trained):
    out, _ = trained
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["q3"] > 0.9, summary
    result = json.loads(ok(invoke("evaluate", "--model-dir", out, "--json")).output)
    assert result["q3"] == pytest.approx(summary["q3"])
    assert set(result["per_state"]) == {"H", "E", "C"}
    assert (out / "example_chain.png").stat().st_size > 0


def test_predict_and_export_agree_outside_the_project(trained, tmp_path):
    out, rows = trained
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s, _ in rows[:5]))
    lines = ok(invoke("predict", "--model-dir", out, "--input", fasta)).output.splitlines()
    states = lines[3::4]
    assert [len(s) for s in states] == [len(r[1]) for r in rows[:5]]
    csv = tmp_path / "p.csv"
    ok(
        invoke(
            "predict",
            "--model-dir",
            out,
            "--input",
            fasta,
            "--output",
            csv,
            "--plot-dir",
            tmp_path / "png",
        )
    )
    table = csv.read_text().splitlines()
    assert table[0] == "id,position,residue,state,H,E,C"
    assert len(table) == 1 + sum(len(r[1]) for r in rows[:5])
    assert len(list((tmp_path / "png").glob("*.png"))) == 5
    path = tmp_path / "saved"
    ok(invoke("export", "--model-dir", out, "--output", path))
    exported = run_outside(
        """
        loaded = tf.saved_model.load(values["path"])
        out = loaded.serve(tf.constant(values["seqs"]))
        print(json.dumps({"states": [s.decode() for s in out["states"].numpy()],
                          "lengths": out["lengths"].numpy().tolist()}))
        """,
        tmp_path,
        path=str(path),
        seqs=[r[1] for r in rows[:5]],
    )
    assert exported["states"] == states
    assert exported["lengths"] == [len(r[1]) for r in rows[:5]]
    served = saved_model_cli_run(path, "serve", f"sequence={[r[1] for r in rows[:2]]!r}", tmp_path)
    assert sorted(served) == ["lengths", "probabilities", "states"]
    assert printed_strings(served["states"]) == states[:2]


# ----------------------------------------------------------------------------- demo


def test_demo_page_answers_as_the_cli_does(trained, tmp_path):
    from tests.demo_client import endpoints, page_error, served

    out, rows = trained
    seq = rows[0][1]
    fasta = ok(invoke("predict", "--model-dir", out, "--sequence", seq)).output.splitlines()
    assert fasta[:2] == [">sequence", seq] and fasta[2] == ">sequence_ss"
    csv = tmp_path / "p.csv"
    ok(invoke("predict", "--model-dir", out, "--sequence", seq, "--output", csv))
    cli_rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    with served("protein", out) as client:
        assert endpoints(client) == {"/predict"}
        # One FASTA record (wrapped), as a user pastes it from UniProt.
        pasted = f">{rows[0][0]}\n{seq[:10]}\n{seq[10:]}\n"
        shown, picture, table = client.predict(pasted, api_name="/predict")
        assert "".join(s["token"] for s in shown) == seq
        states = "".join(s["class_or_confidence"][0] * len(s["token"]) for s in shown)
        assert states == fasta[3]
        with open(picture, "rb") as image:
            assert image.read(8) == b"\x89PNG\r\n\x1a\n"
        assert table["headers"] == ["position", "residue", "state", "confidence", "H", "E", "C"]
        assert [r[:3] for r in table["data"]] == [[int(r[1]), r[2], r[3]] for r in cli_rows]
        page_probs = [r[4:] for r in table["data"]]
        cli_probs = [[float(x) for x in r[4:]] for r in cli_rows]
        assert np.allclose(page_probs, cli_probs, atol=1e-4)
        assert [r[3] for r in table["data"]] == pytest.approx([max(p) for p in cli_probs], abs=1e-4)
        # Bare letters with a line break give the same states.
        again = client.predict(f"{seq[:7]}\n{seq[7:]}", api_name="/predict")[0]
        assert again == shown
        # Bad input: the CLI's one line, in the page.
        for bad in ("ACJD", "  "):
            cli_error = invoke("predict", "--model-dir", out, "--sequence", bad)
            shown = page_error(client, bad, api_name="/predict")
            assert one_line_error(cli_error) == f"Error: {shown}"


# ------------------------------------------------------------------- per-residue features


def profile_rows(rows, seed=0, width=21):
    """Features that carry the states (one column per state, plus noise columns): with
    chains of one repeated letter, the sequence says nothing and the features everything."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, _, states in rows:
        f = rng.normal(0, 0.2, size=(len(states), width)).astype(np.float32)
        f[np.arange(len(states)), ["HEC".index(s) for s in states]] += 2.0
        out[i] = f
    return out


def test_features_are_read_by_chain_id_and_bad_archives_are_one_line_errors(tmp_path):
    rows = chains(4)
    data = write_pairs(tmp_path / "a.fa", rows)
    good = profile_rows(rows)
    np.savez(tmp_path / "f.npz", **good)
    loaded = protein_data.load(str(data), 3, features=tmp_path / "f.npz").chains
    assert [c.features.shape for c in loaded] == [(len(r[1]), 21) for r in rows]
    np.testing.assert_array_equal(loaded[2].features, good["c2"])

    def refused(arrays, *needles, name="bad.npz"):
        path = tmp_path / name
        if arrays is not None:
            np.savez(path, **arrays)
        result = invoke(
            "train",
            "--preset",
            "tiny",
            "--data",
            data,
            "--features",
            path,
            "--output-dir",
            tmp_path / "run",
        )
        one_line_error(result, str(path), *needles)
        assert not (tmp_path / "run").exists()

    refused({k: v for k, v in good.items() if k != "c3"}, "no array for chain c3")
    refused({**good, "c1": good["c1"][:-1]}, "c1 has", "rows of features for")
    refused({**good, "c0": good["c0"][:, :20]}, "same number of features")
    refused({**good, "c2": np.where(good["c2"] > 1, np.nan, good["c2"])}, "not a finite number")
    refused({**good, "c2": np.array([{"x": 1}], dtype=object)}, "not a NumPy .npz archive")
    np.save(tmp_path / "one.npy", good["c0"])
    refused(None, "one array", name="one.npy")


def test_a_model_trained_with_features_uses_them_everywhere(tmp_path):
    rows = [(i, "A" * len(s), t) for i, s, t in chains(100, seed=3)]
    data = write_pairs(tmp_path / "chains.fa", rows)
    features = tmp_path / "profiles.npz"
    np.savez(features, **profile_rows(rows))
    out = tmp_path / "run"
    ok(
        invoke(
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "10",
            "--data",
            data,
            "--features",
            features,
            "--output-dir",
            out,
        )
    )
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["q3"] > 0.9, summary  # the sequence alone is one letter: at most ~0.4
    result = json.loads(ok(invoke("evaluate", "--model-dir", out, "--json")).output)
    assert result["q3"] == pytest.approx(summary["q3"])  # heldout_features.npz, by default
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s, _ in rows[:3]))
    one_line_error(invoke("predict", "--model-dir", out, "--input", fasta), "--features")
    one_line_error(
        invoke("predict", "--model-dir", out, "--sequence", "AAA", "--features", features),
        "--sequence",
        "--input",
    )
    lines = ok(
        invoke("predict", "--model-dir", out, "--input", fasta, "--features", features)
    ).output.splitlines()
    states = lines[3::4]
    right = [
        a == b for s, r in zip(states, rows, strict=False) for a, b in zip(s, r[2], strict=True)
    ]
    assert np.mean(right) > 0.9
    path = tmp_path / "saved"
    ok(invoke("export", "--model-dir", out, "--output", path))
    profiles = profile_rows(rows)
    longest = max(len(r[1]) for r in rows[:3])
    padded = np.zeros([3, longest, 21], np.float32)
    for k, r in enumerate(rows[:3]):
        padded[k, : len(r[1])] = profiles[r[0]]
    exported = run_outside(
        """
        loaded = tf.saved_model.load(values["path"])
        out = loaded.serve(tf.constant(values["seqs"]), tf.constant(values["features"]))
        print(json.dumps([s.decode() for s in out["states"].numpy()]))
        """,
        tmp_path,
        path=str(path),
        seqs=[r[1] for r in rows[:3]],
        features=padded.tolist(),
    )
    assert exported == states


def test_crf_decoder_trains_and_its_export_agrees(tmp_path, monkeypatch):
    import dataclasses

    from recipes.protein import config

    # with early stopping on, as the default preset has it (it must know to maximise)
    monkeypatch.setitem(
        config.PRESETS, "tiny", dataclasses.replace(config.PRESETS["tiny"], patience=5)
    )
    rows = chains(100, seed=5)
    data = write_pairs(tmp_path / "chains.fa", rows)
    out = tmp_path / "run"
    ok(
        invoke(
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "10",
            "--decoder",
            "crf",
            "--data",
            data,
            "--output-dir",
            out,
        )
    )
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["q3"] > 0.9, summary
    result = json.loads(ok(invoke("evaluate", "--model-dir", out, "--json")).output)
    assert result["q3"] == pytest.approx(summary["q3"])
    csv = tmp_path / "p.csv"
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s, _ in rows[:3]))
    ok(invoke("predict", "--model-dir", out, "--input", fasta, "--output", csv))
    table = np.array([line.split(",")[4:] for line in csv.read_text().splitlines()[1:]], float)
    np.testing.assert_allclose(table.sum(axis=1), 1.0, atol=1e-5)  # marginals
    states = ok(invoke("predict", "--model-dir", out, "--input", fasta)).output.splitlines()[3::4]
    one = ok(invoke("predict", "--model-dir", out, "--sequence", "M")).output.splitlines()
    assert one[3] in ("H", "E", "C")  # a one-residue chain: no transitions to sum over
    path = tmp_path / "saved"
    ok(invoke("export", "--model-dir", out, "--output", path))
    exported = run_outside(
        """
        loaded = tf.saved_model.load(values["path"])
        out = loaded.serve(tf.constant(values["seqs"]))
        print(json.dumps([s.decode() for s in out["states"].numpy()]))
        """,
        tmp_path,
        path=str(path),
        seqs=[r[1] for r in rows[:3]],
    )
    assert exported == states
