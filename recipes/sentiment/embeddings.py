"""Word vectors from the trained embedding layer: nearest words and analogies.

The embedding is learned for the sentiment task only, so its neighbourhoods group
words by how they move the label (e.g. "love" near "great"), not by general
meaning as word2vec or GloVe would; analogies are correspondingly rough.

    similarity(u, v) = u . v / (|u| |v|)                     (cosine)
    analogy(a, b, c) = nearest words to  v_a - v_b + v_c     (a, b, c excluded)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import runtime
from common.errors import UserError
from common.tokenization import Tokenizer
from recipes.sentiment.model import EMBEDDING_LAYER

TOKENIZER_FILE = "tokenizer.json"
NUM_SPECIALS = 4  # <pad>, <unk>, <bos>, <eos>: never offered as neighbours


class WordVectors:
    """The rows of the trained embedding, unit-normalised, with the tokenizer's vocabulary."""

    def __init__(self, tokenizer: Tokenizer, matrix: np.ndarray, source: str = "the model"):
        if matrix.shape[0] != tokenizer.vocab_size:
            raise UserError(
                f"{source}: the embedding has {matrix.shape[0]} rows but the tokenizer "
                f"has {tokenizer.vocab_size} tokens; the directory mixes two runs"
            )
        self.tokenizer = tokenizer
        self.source = source
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.unit = matrix / np.maximum(norms, 1e-12)

    @classmethod
    def load(cls, model_dir: Path) -> WordVectors:
        tokenizer = Tokenizer.load(Path(model_dir) / TOKENIZER_FILE)
        model = runtime.load_model(model_dir)
        matrix = np.asarray(model.get_layer(EMBEDDING_LAYER).embeddings, dtype=np.float32)
        return cls(tokenizer, matrix, source=str(model_dir))

    def index(self, word: str) -> int:
        """The vocabulary id of one word; out-of-vocabulary words raise `UserError`."""
        tokens = self.tokenizer.tokens(word.strip())
        if len(tokens) != 1:
            raise UserError(
                f"{word!r} is not one word for this tokenizer (it splits into {tokens})"
            )
        token = tokens[0]
        ident = self.tokenizer.encode(token)[0]
        if ident < NUM_SPECIALS:
            raise UserError(
                f"{word!r} is not in the vocabulary of {self.source} "
                f"({self.tokenizer.vocab_size - NUM_SPECIALS} words, learned from the "
                "training data); try a more frequent word"
            )
        return ident

    def nearest(self, vector: np.ndarray, k: int, exclude=()) -> list[tuple[str, float]]:
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        scores = self.unit @ vector
        scores[:NUM_SPECIALS] = -np.inf
        scores[list(exclude)] = -np.inf
        k = min(k, len(scores) - NUM_SPECIALS - len(set(exclude)))
        best = np.argsort(-scores, kind="stable")[:k]
        return [(self.tokenizer.id_to_token(int(i)), float(scores[i])) for i in best]

    def similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        i = self.index(word)
        return self.nearest(self.unit[i], k, exclude=[i])

    def analogy(self, a: str, b: str, c: str, k: int = 10) -> list[tuple[str, float]]:
        """Words nearest to a - b + c (e.g. king - man + woman)."""
        ia, ib, ic = self.index(a), self.index(b), self.index(c)
        return self.nearest(self.unit[ia] - self.unit[ib] + self.unit[ic], k, exclude=[ia, ib, ic])
