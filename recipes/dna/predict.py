"""Inference and metrics: probabilities, the evaluation report, `evaluate` and `predict`.

A single-label model predicts the most probable class; a multi-label one every mark with
probability 0.5 or more. Metrics (scikit-learn): accuracy, macro-F1, and per class the
ROC-AUC and PR-AUC (average precision) of that class against the rest, macro-averaged
over the classes present in the data.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.runtime import RunDir
from recipes.dna import data as dna_data
from recipes.dna.config import BASELINE_CNN_DIR, BASELINE_KMER_FILE, HELDOUT_FILE, LABELS_FILE

# Letters per call of the network: 2,048 sequences of 200 bp. Larger batches make the
# recurrent layer's matrix products faster per sequence (200 bp, 2026-12-07, Zen 4: about
# 9,400 sequences/s in batches of 2,048 against 7,800 in batches of 512).
PREDICT_LETTERS = 409_600


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What `train` saves beside the model (labels.json)."""

    class_names: tuple[str, ...]
    multi_label: bool
    # The model reads this many letters (the longest training sequence); longer ones are
    # refused by the command line and cut by the exported graph.
    length: int
    # "none" or "shuffle": how the run's negatives were made (evaluate repeats it).
    negatives: str

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        return RunDir(model_dir).read_dataclass(LABELS_FILE, cls)


def predict_step(model):
    """The model's inference on string[batch], traced once and kept on the model (it reads
    the weights at every call, so `motifs.influence` can change them between calls). A direct
    call per batch costs less than `model.predict`'s loop (2026-12-07, 2-core Ice Lake,
    10,000 sequences of 200 bp: the CNN baseline 19,000 sequences/s against 7,500, the
    default DanQ 4,100 against 3,800)."""
    import tensorflow as tf

    cached = getattr(model, "_dna_predict_step", None)
    if cached is None:
        cached = tf.function(
            lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None], tf.string)]
        )
        model._dna_predict_step = cached
    return cached


def batch_size(length: int) -> int:
    """Sequences per call of a network that reads `length` letters."""
    return max(1, PREDICT_LETTERS // length)


def batches(model, sequences: list[str]) -> list:
    """`sequences` as string tensors of about PREDICT_LETTERS letters each, as read by the
    model (cut or padded to its length)."""
    import tensorflow as tf

    from recipes.dna import model as model_lib

    size = batch_size(model.get_layer(model_lib.FIXED_LENGTH_LAYER).length)
    return [tf.constant(sequences[i : i + size]) for i in range(0, len(sequences), size)]


def probabilities(model, sequences) -> np.ndarray:
    """float32[n, classes] for a list of sequence strings."""

    sequences = list(sequences)
    if not sequences:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    step = predict_step(model)
    return np.concatenate([step(x).numpy() for x in batches(model, sequences)]).astype(np.float32)


def check_lengths(data: dna_data.DnaData, length: int, where: str) -> None:
    longest = max(range(len(data)), key=lambda i: len(data.sequences[i]))
    if len(data.sequences[longest]) > length:
        raise UserError(
            f"{where}: sequence {data.ids[longest]} has {len(data.sequences[longest])} letters; "
            f"the model reads at most {length} (the longest it was trained on)"
        )


def predicted(probs: np.ndarray, multi_label: bool) -> np.ndarray:
    return (probs >= 0.5).astype(np.int64) if multi_label else probs.argmax(axis=1)


def report(labels: np.ndarray, probs: np.ndarray, class_names, multi_label: bool) -> dict:
    """accuracy, macro_f1, roc_auc, pr_auc (macro) and per_class; the confusion matrix
    (rows true, columns predicted) for single-label data. Multi-label accuracy is the share
    of (sequence, mark) decisions that are right."""
    from sklearn import metrics as skm

    names = list(class_names)
    classes = len(names)
    pred = predicted(probs, multi_label)
    truth = labels.astype(np.int64) if multi_label else np.eye(classes, dtype=np.int64)[labels]
    flags = pred if multi_label else np.eye(classes, dtype=np.int64)[pred]
    per_class, rocs, prs = {}, [], []
    for k, name in enumerate(names):
        y, score = truth[:, k], probs[:, k]
        both = 0 < y.sum() < len(y)
        roc = float(skm.roc_auc_score(y, score)) if both else None
        pr = float(skm.average_precision_score(y, score)) if y.sum() else None
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, flags[:, k], average="binary", zero_division=0
        )
        per_class[name] = {
            "roc_auc": roc,
            "pr_auc": pr,
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(y.sum()),
        }
        if roc is not None:
            rocs.append(roc)
        if pr is not None:
            prs.append(pr)
    result = {
        "accuracy": float((pred == labels).mean()),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "roc_auc": float(np.mean(rocs)) if rocs else None,
        "pr_auc": float(np.mean(prs)) if prs else None,
        "count": len(labels),
        "per_class": per_class,
    }
    if not multi_label:
        result["confusion_matrix"] = skm.confusion_matrix(
            labels, pred, labels=list(range(classes))
        ).tolist()
    return result


def evaluation_data(
    model_dir: Path, spec: str | None, info: ModelInfo, options: dna_data.ReadOptions, seed: int
):
    """The data `evaluate` scores, and its description: --data (positives only with
    --negatives shuffle: each gets a seeded shuffle as class 0), or else the run's held-out
    FASTA."""
    source = RunDir(model_dir).evaluation_data(spec, HELDOUT_FILE)
    given = bool(spec and spec.strip())
    read = dataclasses.replace(
        options if given else dna_data.ReadOptions(), multi_label=info.multi_label
    )
    shuffle = read.negatives == "shuffle"
    if shuffle and info.class_names != ("0", "1"):
        raise UserError(
            f"--negatives shuffle: {model_dir} was not trained on positives and shuffles "
            f"(its classes: {', '.join(info.class_names)})"
        )
    data, description = dna_data.load(
        source,
        read,
        class_names=None if shuffle else info.class_names,
        # A built-in set with a test split of its own (oct4-mafk) is scored on that split.
        part="test" if given and dna_data.has_test_split(spec) else "train",
    )
    if shuffle:
        data = dna_data.with_shuffles(data, seed)
        description += ", with one dinucleotide shuffle of each as class 0"
    check_lengths(data, info.length, description)
    return data, description


def evaluate(
    model_dir: Path,
    spec: str | None,
    options: dna_data.ReadOptions,
    *,
    baselines: bool = False,
    seed: int = 42,
) -> dict:
    """`evaluate`: the report of the run's model on the data (and of its baselines)."""
    from common import runtime
    from recipes.dna import baselines as baselines_lib

    info = ModelInfo.read(model_dir)
    data, description = evaluation_data(model_dir, spec, info, options, seed)
    model = runtime.load_model(model_dir)
    result = report(
        data.labels, probabilities(model, data.sequences), info.class_names, info.multi_label
    )
    result.update(data=description, class_names=list(info.class_names))
    if baselines:
        rows = {"network": result}
        cnn_dir = Path(model_dir) / BASELINE_CNN_DIR
        kmer_file = Path(model_dir) / BASELINE_KMER_FILE
        if not (cnn_dir / "model.keras").is_file() or not kmer_file.is_file():
            raise UserError(
                f"--baselines: {model_dir} has no baselines (trained with --no-baselines?)"
            )
        cnn = runtime.load_model(cnn_dir)
        rows["cnn"] = report(
            data.labels, probabilities(cnn, data.sequences), info.class_names, info.multi_label
        )
        kmer = baselines_lib.KmerModel.read(kmer_file)
        rows["kmer"] = report(
            data.labels, kmer.probabilities(data.sequences), info.class_names, info.multi_label
        )
        result["baselines"] = {k: headline(v) for k, v in rows.items()}
    return result


def headline(result: dict) -> dict:
    """The four numbers of a `report` that tables and `baselines` show (None where a metric
    is undefined, e.g. ROC-AUC with one class present)."""
    return {k: result[k] for k in ("accuracy", "macro_f1", "roc_auc", "pr_auc")}


def predict_rows(model, info: ModelInfo, data: dna_data.DnaData) -> list[dict]:
    """One row per sequence: id, predicted label(s) and every class's probability."""
    probs = probabilities(model, data.sequences)
    pred = predicted(probs, info.multi_label)
    rows = []
    for i in range(len(data)):
        if info.multi_label:
            label = ",".join(n for n, on in zip(info.class_names, pred[i], strict=True) if on)
        else:
            label = info.class_names[int(pred[i])]
        row = {"id": data.ids[i], "label": label or dna_data.NO_LABELS}
        row.update({n: float(p) for n, p in zip(info.class_names, probs[i], strict=True)})
        rows.append(row)
    return rows
