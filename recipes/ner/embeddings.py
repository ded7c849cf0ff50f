"""`train --embeddings FILE`: pretrained word vectors for the word embedding.

The file is in the GloVe / word2vec text format: one word per line followed by its vector,
values separated by spaces; a first line of two integers (word2vec's "count dim" header) is
skipped. Only the vocabulary's words are kept, so a 400,000-word file costs one pass over
the text and a few megabytes.

Each vocabulary word (the vocabulary is lower-cased) takes the vector of the same word in the
file; failing that, of the first line whose word lower-cases to it (word2vec files keep the
case: "Paris" then serves "paris"). Other words keep their random initialisation. The run
directory records the file's name, SHA-256, dimension and coverage (`embeddings.json`), not
the vectors: the trained model holds them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from common.data import is_number
from common.errors import UserError

RECORD_FILE = "embeddings.json"


@dataclasses.dataclass(frozen=True)
class Vectors:
    """The vectors found for a vocabulary: `rows[i]` is the vector of word id `ids[i]`."""

    path: str
    sha256: str
    dim: int
    ids: np.ndarray  # int64[found]
    rows: np.ndarray  # float32[found, dim]
    exact: int  # found under the word itself (the rest under a cased form)
    vocabulary: int  # words that could have a vector (the specials <pad>, <unk> excluded)

    def record(self) -> dict:
        return {
            "file": Path(self.path).name,
            "sha256": self.sha256,
            "dim": self.dim,
            "found": len(self.ids),
            "found_exact": self.exact,
            "vocabulary": self.vocabulary,
            "coverage": round(len(self.ids) / max(self.vocabulary, 1), 4),
        }

    def describe(self) -> str:
        found = len(self.ids)
        return (
            f"Embeddings: {found} of {self.vocabulary} words "
            f"({found / max(self.vocabulary, 1):.1%}) found in {Path(self.path).name} "
            f"({self.exact} as written, {found - self.exact} lower-cased), dimension {self.dim}"
        )


def read(path: Path, words: dict[str, int]) -> Vectors:
    """The vectors of `words` (word -> id, the special tokens left out) in `path`.

    Raises UserError naming the file and line for a line with a different number of
    values than the first vector, a value that is not a finite number, or a file with no
    vector at all (or none for this vocabulary: then the option does nothing).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--embeddings: no such file: {path}")
    wanted = dict(words)
    digest = hashlib.sha256()
    exact: dict[int, np.ndarray] = {}
    cased: dict[int, np.ndarray] = {}
    dim = 0
    with path.open("rb") as stream:
        for lineno, raw in enumerate(stream, start=1):
            digest.update(raw)
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise UserError(f"{path}:{lineno}: not valid UTF-8") from None
            if not line.strip():
                continue
            word, _, rest = line.partition(" ")
            if lineno == 1 and word.isdigit() and rest.strip().isdigit():
                continue  # word2vec header: count dim
            values = rest.split()
            if not dim:
                dim = len(values)
                if not dim:
                    raise UserError(f"{path}:{lineno}: a word without a vector: {word!r}")
            elif len(values) != dim:
                raise UserError(
                    f"{path}:{lineno}: {len(values)} values, the first vector has {dim}"
                )
            target = wanted.get(word)
            lower = None if target is not None else wanted.get(word.lower())
            if target is None and (lower is None or lower in cased):
                continue
            try:
                vector = np.array([float(v) for v in values], dtype=np.float32)
            except ValueError:
                bad = next(v for v in values if not is_number(v))
                raise UserError(f"{path}:{lineno}: not a number: {bad!r}") from None
            if not np.isfinite(vector).all():
                raise UserError(f"{path}:{lineno}: not a finite number in the vector of {word!r}")
            if target is not None:
                exact[target] = vector
            else:
                cased[lower] = vector
    if not dim:
        raise UserError(f"{path}: no word vectors (expected lines of a word and its values)")
    found = {**cased, **exact}  # the word as written wins over a cased form
    ids = np.array(sorted(found), dtype=np.int64)
    rows = np.stack([found[i] for i in ids]) if len(ids) else np.zeros((0, dim), np.float32)
    return Vectors(str(path), digest.hexdigest(), dim, ids, rows, len(exact), len(wanted))


def initialise(model, vectors: Vectors) -> None:
    """Write the found vectors into the model's word embedding (the other rows keep their
    initialisation)."""
    layer = model.get_layer("word_embedding")
    matrix = np.array(layer.embeddings.numpy())
    matrix[vectors.ids] = vectors.rows
    layer.embeddings.assign(matrix)
