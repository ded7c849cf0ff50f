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

from common.runtime import RunDir
from recipes.protein import data as protein_data
from recipes.protein.config import HELDOUT_FILE, LABELS_FILE

PREDICT_BATCH = 64


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What `train` saves beside the model (labels.json)."""

    states: str  # the state letters, in the model's output order

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        return RunDir(model_dir).read_dataclass(LABELS_FILE, cls)


def probabilities(model, sequences, batch: int = PREDICT_BATCH) -> list[np.ndarray]:
    """float32[length, states] per chain, in the order given (batched by length)."""
    import tensorflow as tf

    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out = [None] * len(sequences)
    step = _predict_step(model)
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        probs = step(tf.constant([sequences[i] for i in chunk])).numpy()
        for row, i in enumerate(chunk):
            out[i] = probs[row, : len(sequences[i])]
    return out


def _predict_step(model):
    import tensorflow as tf

    cached = getattr(model, "_protein_predict_step", None)
    if cached is None:
        cached = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
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


def evaluate(model_dir: Path, spec, columns=None) -> dict:
    from common import runtime

    info = ModelInfo.read(model_dir)
    source = RunDir(model_dir).evaluation_data(spec, HELDOUT_FILE)
    chain_set = protein_data.load(source, len(info.states), columns=columns)
    model = runtime.load_model(model_dir)
    probs = probabilities(model, [c.sequence for c in chain_set.chains])
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
