"""The k-mer baseline: logistic regression on the counts of every k-mer, k = 1..kmax.

Each sequence (upper case, U read as T) becomes the vector of its overlapping k-mer
counts, scaled to unit length (sequences of unequal length compare); scikit-learn's
`LogisticRegression` is fitted on the training split for each C of `C_GRID`, and the C
with the best validation accuracy is kept. The fitted model is stored as JSON (k-mers,
coefficients, intercepts), never pickled, and scored with NumPy.
The other baseline, the DeepBind-like CNN, is `model.build_model` with `model="cnn"`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from common.errors import UserError
from recipes.dna.data import DnaData

C_GRID = (0.1, 1.0, 10.0)


def _normalize(sequences) -> list[str]:
    return [s.upper().replace("U", "T") for s in sequences]


@dataclasses.dataclass(frozen=True)
class KmerModel:
    """A fitted k-mer model: `coef` float[classes, k-mers], `intercept` float[classes];
    probabilities are the softmax of the scores, or with `multi_label` their sigmoids."""

    kmax: int
    kmers: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    multi_label: bool
    C: float

    def features(self, sequences):
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(
            analyzer="char",
            ngram_range=(1, self.kmax),
            lowercase=False,
            use_idf=False,
            norm="l2",
            vocabulary={k: i for i, k in enumerate(self.kmers)},
        )
        return vectorizer.fit_transform(_normalize(sequences))

    def probabilities(self, sequences) -> np.ndarray:
        scores = np.asarray(self.features(sequences) @ self.coef.T) + self.intercept
        if self.multi_label:
            return (1 / (1 + np.exp(-scores))).astype(np.float32)
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def to_json(self) -> dict:
        return {
            "format": "recipes.dna.KmerModel",
            "kmax": self.kmax,
            "kmers": list(self.kmers),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "multi_label": self.multi_label,
            "C": self.C,
        }

    @classmethod
    def read(cls, path: Path) -> KmerModel:
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
            if obj.get("format") != "recipes.dna.KmerModel":
                raise ValueError("not a k-mer model file")
            return cls(
                kmax=int(obj["kmax"]),
                kmers=tuple(obj["kmers"]),
                coef=np.asarray(obj["coef"], np.float64),
                intercept=np.asarray(obj["intercept"], np.float64),
                multi_label=bool(obj["multi_label"]),
                C=float(obj["C"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"{path}: cannot read the k-mer baseline ({err})") from None


def _fit_one(x, y, C: float):
    """(coef float[classes, features], intercept float[classes]) of one logistic regression;
    a binary fit's single row becomes the rows [0, w] so that softmax gives its sigmoid."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=C, max_iter=2000).fit(x, y)
    coef, intercept = fitted.coef_, fitted.intercept_
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return coef, intercept


def fit_kmer(train: DnaData, val: DnaData, kmax: int) -> KmerModel:
    """The k-mer model with the C of `C_GRID` that is most accurate on `val`."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        analyzer="char", ngram_range=(1, kmax), lowercase=False, use_idf=False, norm="l2"
    )
    x = vectorizer.fit_transform(_normalize(train.sequences))
    kmers = tuple(vectorizer.get_feature_names_out())
    best = None
    for C in C_GRID:
        if train.multi_label:  # one regression per mark (a mark never seen: bias only)
            rows = []
            for k in range(train.labels.shape[1]):
                y = train.labels[:, k].astype(int)
                if 0 < y.sum() < len(y):
                    coef, intercept = _fit_one(x, y, C)
                    rows.append((coef[1], intercept[1]))
                else:
                    rows.append((np.zeros(x.shape[1]), 10.0 if y.sum() else -10.0))
            coef = np.vstack([r[0] for r in rows])
            intercept = np.array([r[1] for r in rows])
        else:
            coef, intercept = _fit_one(x, train.labels, C)
            coef, intercept = _all_classes(coef, intercept, train)
        model = KmerModel(kmax, kmers, coef, intercept, train.multi_label, C)
        probs = model.probabilities(val.sequences)
        if train.multi_label:
            accuracy = float(((probs >= 0.5) == (val.labels >= 0.5)).mean())
        else:
            accuracy = float((probs.argmax(axis=1) == val.labels).mean())
        if best is None or accuracy > best[0]:
            best = (accuracy, model)
    return best[1]


def _all_classes(coef, intercept, train: DnaData):
    """Rows for every class of `train.class_names`, a class absent from training scoring
    far below the rest."""
    present = np.unique(train.labels)
    classes = len(train.class_names)
    if len(present) == classes:
        return coef, intercept
    full = np.zeros((classes, coef.shape[1]))
    bias = np.full(classes, -1e3)
    full[present], bias[present] = coef, intercept
    return full, bias
