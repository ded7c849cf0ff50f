"""Inference and scores: per-residue probabilities, Q3/Q8, `evaluate` and `predict`.

Q3 (or Q8) is the share of scored residues whose predicted state is right: residues
unresolved in the structure (mask 0) are not scored. Per state: precision, recall, F1
(scikit-learn) and the confusion matrix. Chains are predicted whole, in batches of
similar length.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.runtime import RunDir
from recipes.protein import data as protein_data
from recipes.protein.config import HELDOUT_FEATURES_FILE, HELDOUT_FILE, LABELS_FILE

PREDICT_BATCH = 64


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What `train` saves beside the model (labels.json)."""

    states: str  # the state letters, in the model's output order

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        return RunDir(model_dir).read_dataclass(LABELS_FILE, cls)


def feature_width(model) -> int:
    """k of the model's `features` input (0: it reads the sequence alone)."""
    return int(model.inputs[1].shape[-1]) if len(model.inputs) > 1 else 0


def probabilities(model, sequences, features=None, batch: int = PREDICT_BATCH) -> list[np.ndarray]:
    """float32[length, states] per chain, in the order given (batched by length).
    `features`: float32[length, k] per chain, for a model trained with --features."""
    import tensorflow as tf

    width = feature_width(model)
    if width and features is None:
        raise UserError(
            f"this model reads {width} features per residue besides the sequence: give them "
            "with --features FILE.npz"
        )
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out = [None] * len(sequences)
    step = _predict_step(model, width)
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        x = [tf.constant([sequences[i] for i in chunk])]
        if width:
            padded = np.zeros(
                [len(chunk), max(len(sequences[i]) for i in chunk), width], np.float32
            )
            for row, i in enumerate(chunk):
                padded[row, : len(features[i])] = features[i]
            x.append(tf.constant(padded))
        probs = step(*x).numpy()
        for row, i in enumerate(chunk):
            out[i] = probs[row, : len(sequences[i])]
    return out


def chain_probabilities(model, chains) -> list[np.ndarray]:
    """`probabilities` of `Chain`s (with their features when they have them)."""
    features = [c.features for c in chains] if chains and chains[0].features is not None else None
    return probabilities(model, [c.sequence for c in chains], features)


def _predict_step(model, width: int):
    import tensorflow as tf

    cached = getattr(model, "_protein_predict_step", None)
    if cached is None:
        signature = [tf.TensorSpec([None], tf.string)]
        if width:
            signature.append(tf.TensorSpec([None, None, width], tf.float32))
        from recipes.protein.model import probabilities as as_probabilities

        def step(*x):
            outputs = model(list(x) if width else x[0], training=False)
            return as_probabilities(model, outputs, tf.strings.length(x[0], unit="UTF8_CHAR"))

        cached = tf.function(step, input_signature=signature)
        model._protein_predict_step = cached
    return cached


def report(chains, probs, states: str) -> dict:
    """q (Q3 or Q8), per-state precision/recall/F1/support, the confusion matrix."""
    from sklearn import metrics as skm

    index = {s: i for i, s in enumerate(states)}
    truth, pred = [], []
    for chain, p in zip(chains, probs, strict=True):
        keep = np.frombuffer(chain.mask.encode(), np.uint8) == ord("1")
        truth.append(np.array([index[s] for s in chain.states])[keep])
        pred.append(p.argmax(axis=1)[keep])
    y, yhat = np.concatenate(truth), np.concatenate(pred)
    labels = list(range(len(states)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, yhat, labels=labels, zero_division=0
    )
    name = f"q{len(states)}"
    return {
        name: float((y == yhat).mean()),
        "residues": int(len(y)),
        "chains": len(chains),
        "per_state": {
            s: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for s, p, r, f, n in zip(states, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": skm.confusion_matrix(y, yhat, labels=labels).tolist(),
    }


def features_file(model_dir: Path, model, spec, features: Path | None) -> Path | None:
    """The features archive to read with `spec` (--data; None: the held-out chains): the
    one given, or the run's own held-out features; None for a sequence-only model."""
    if not feature_width(model):
        if features is not None:
            raise UserError(f"--features: the model in {model_dir} reads sequences only")
        return None
    if features is None and not (spec and spec.strip()):
        return Path(model_dir) / HELDOUT_FEATURES_FILE
    return features


def evaluate(model_dir: Path, spec, columns=None, features: Path | None = None) -> dict:
    from common import runtime

    info = ModelInfo.read(model_dir)
    source = RunDir(model_dir).evaluation_data(spec, HELDOUT_FILE)
    model = runtime.load_model(model_dir)
    features = features_file(model_dir, model, spec, features)
    chain_set = protein_data.load(source, len(info.states), columns=columns, features=features)
    probs = chain_probabilities(model, chain_set.chains)
    result = report(chain_set.chains, probs, info.states)
    result.update(data=chain_set.description, states=info.states)
    return result


def predicted_states(p: np.ndarray, states: str) -> str:
    return "".join(states[k] for k in p.argmax(axis=1))


def draw_chain(chain_id: str, sequence: str, p: np.ndarray, states: str, png: Path) -> None:
    """The chain's predicted state per residue as coloured bars, the probability of the
    predicted state (confidence) as a line, residues along x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.runtime import atomic_write

    colours = {"H": "#d62728", "G": "#ff9896", "I": "#e377c2", "E": "#1f77b4", "B": "#aec7e8"}
    n = len(sequence)
    best = p.argmax(axis=1)
    fig, ax = plt.subplots(figsize=(min(max(6.0, n / 12), 40.0), 2.4))
    for k, s in enumerate(states):
        on = best == k
        ax.bar(np.flatnonzero(on) + 1, 1.0, width=1.0, color=colours.get(s, "#dddddd"), label=s)
    ax.plot(np.arange(1, n + 1), p.max(axis=1), color="black", linewidth=0.8, label="confidence")
    ax.set_xlim(0.5, n + 0.5)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("residue")
    ax.set_title(f"{chain_id}: predicted states ({', '.join(states)}) and confidence", fontsize=9)
    ax.legend(loc="upper right", fontsize=7, ncol=len(states) + 1, framealpha=0.8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
