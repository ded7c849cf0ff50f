"""Tagging with a trained model: tokenising raw text, decoding, entity spans, evaluation.

Tokenisation rule for `tag --text` / `--file` (`tokenize`): whitespace
separates; URLs (`http://...`, `https://...`, `www....`, less any trailing
punctuation), @mentions and #hashtags stay whole (the default corpus is
Twitter, where they are single tokens); everything else is split by the word
rule of `common.tokenization` (a run of letters/digits with at most one inner
apostrophe, or one punctuation mark or symbol):

    "Yesterday, Harry Potter met Hermione Granger."
    -> Yesterday | , | Harry | Potter | met | Hermione | Granger | .

Already tokenised input (CoNLL files) is never re-split.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from common.tokenization import SPECIALS, Tokenizer
from recipes.ner import bio
from recipes.ner.data import Corpus, Vocab, make_dataset

# A URL runs to the next whitespace, without trailing punctuation ("see http://t.co/x." -> ".").
_WHOLE = re.compile(r"(?:https?://|www\.)\S*[^\s.,;:!?)\]}\"'’]|[@#]\w+")
_WORDS = Tokenizer(SPECIALS, level="word")  # its split rule only; no vocabulary needed


def tokenize(text: str) -> list[str]:
    """Split raw text into tokens by the rule in the module docstring."""
    tokens: list[str] = []
    position = 0
    for match in _WHOLE.finditer(text):
        tokens += _WORDS.tokens(text[position : match.start()])
        tokens.append(match.group())
        position = match.end()
    return tokens + _WORDS.tokens(text[position:])


class Tagger:
    """A trained model plus its vocabularies: token lists in, IOB2 tag lists out."""

    def __init__(self, model, vocab: Vocab, batch_size: int, length_multiple: int):
        self.model, self.vocab = model, vocab
        self.batch_size, self.length_multiple = batch_size, length_multiple
        from recipes.ner.model import crf_layer, decoding_scores

        # --decoder crf: Viterbi over the emission scores with the CRF's learned transitions;
        # softmax: over the log-probabilities with the IOB2 rules (bio.constrained_decode).
        self.crf = crf_layer(model) is not None
        self.decoding = decoding_scores(model, vocab.tags)

    def best_path(self, outputs: np.ndarray) -> list[int]:
        """The best valid tag ids of one sentence from the model's outputs."""
        if not self.crf:
            outputs = np.log(np.clip(np.asarray(outputs, dtype=np.float64), 1e-12, 1.0))
        return bio.viterbi(outputs, *self.decoding)

    def probabilities(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """float[len(sentence), num_tags] per sentence (padding removed), in input order: the
        softmax probabilities, or with --decoder crf the CRF's emission scores."""
        out = [np.zeros((len(s), len(self.vocab.tags)), np.float32) for s in sentences]
        words, chars = self.vocab.encode(sentences)
        keep = [i for i, s in enumerate(sentences) if len(s)]
        if keep:
            batches = make_dataset(
                [words[i] for i in keep],
                [chars[i] for i in keep],
                batch_size=self.batch_size,
                chars_per_word=self.vocab.max_word_chars,
                length_multiple=self.length_multiple,
            )
            for x, index in batches:
                probs = np.asarray(self.model.predict_on_batch(x))
                for row, i in zip(probs, index.numpy(), strict=True):
                    if i >= 0:  # -1: a copy that fills the last batch
                        out[keep[i]] = row[: len(sentences[keep[i]])]
        return out

    def tag(self, sentences: Sequence[Sequence[str]], *, repair: bool = True) -> list[list[str]]:
        """IOB2 tags per sentence. `repair=True`: the best valid path (`bio.constrained_decode`);
        `repair=False`: plain per-token argmax, which may put `I-X` after `O`."""
        result = []
        for p in self.probabilities(sentences):
            ids = self.best_path(p) if repair else [int(i) for i in np.argmax(p, axis=-1)]
            result.append([self.vocab.tags[i] for i in ids])
        return result

    def evaluate(self, corpus: Corpus) -> dict:
        """Entity-level metrics (`bio.entity_metrics`) of the decoded tags on `corpus`, plus
        `f1_argmax`: the F1 of each token's most likely tag, undecoded (softmax: without the
        IOB2 repair; CRF: the emission scores without the transitions)."""
        self.vocab.encode_tags(corpus)  # unknown tags -> UserError before predicting
        probs = self.probabilities(corpus.tokens)
        repaired = [[self.vocab.tags[i] for i in self.best_path(p)] for p in probs]
        argmax = [[self.vocab.tags[i] for i in np.argmax(p, axis=-1)] for p in probs]
        metrics = bio.entity_metrics(corpus.tags, repaired)
        metrics["f1_argmax"] = bio.entity_metrics(corpus.tags, argmax)["f1"]
        return metrics


def tagged_sentence(tokens: Sequence[str], tags: Sequence[str]) -> dict:
    """The JSON form of one tagged sentence."""
    return {
        "tokens": list(tokens),
        "tags": list(tags),
        "entities": bio.entity_spans(tokens, tags),
    }


def format_sentence(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """Human-readable: `token/TAG` pairs on one line, then one line per entity."""
    lines = [" ".join(f"{w}/{t}" for w, t in zip(tokens, tags, strict=True))]
    spans = bio.entity_spans(tokens, tags)
    for span in spans:
        lines.append(
            f"  {span['type']:<12} {span['text']}  (tokens {span['start']}-{span['end'] - 1})"
        )
    if not spans:
        lines.append("  (no entities)")
    return "\n".join(lines)
