"""Translating with a trained model: greedy and beam search, BLEU/chrF, attention plots.

Decoding is incremental: the source is encoded once, then every step feeds one token
and the carried decoder state to `Seq2Seq.decode_step`, never re-running the prefix. The
steps of a whole batch of sentences (and beams) run as one compiled loop inside the graph
(`recipes/translation/search.py`).

- Greedy: the most probable token at each step, until <eos> or the length limit.
- Beam search (`beam_size` k): k hypotheses per sentence; each step keeps the best k
  continuations of the 2k best candidates that do not end, and moves those that end
  with <eos> to the finished list; a sentence is done once k hypotheses have finished
  (or at the length limit, where unfinished beams become candidates). Hypotheses are
  ranked by the length-normalised score of Wu et al. (2016),
      score / ((5 + length) / 6) ** length_penalty,    length counting <eos>,
  so `length_penalty=0` ranks by the plain sum of log-probabilities.
  Plain beam search can prune the greedy path and end below it; here one extra lane
  per sentence follows the greedy path, and its result is a candidate too, so beam
  search never returns a lower (normalised) model score than greedy (`keep_greedy`).

Decoding never emits <pad>, <bos> or <unk>: their log-probabilities are set to -inf
before choosing (scores stay those of the model's full distribution).

Inputs: an empty (or all-whitespace) line translates to the empty string without
running the model; a line longer than the training limit keeps its first
`max_source_length` tokens (with a note); unknown tokens map to <unk> (with a note).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.data import fill_last_batch
from common.tokenization import UNK_ID, Tokenizer
from recipes.translation.search import Decoder


@dataclasses.dataclass
class Candidate:
    """A hypothesis beam search weighed: generated ids (no <eos>) and its scores."""

    tokens: list[int]
    score: float
    normalized: float
    finished: bool


@dataclasses.dataclass
class Hypothesis:
    """One translation: generated ids (no <eos>), its scores and attention rows."""

    tokens: list[int]
    score: float  # sum of log-probabilities of the tokens (and of <eos> if finished)
    normalized: float  # score / length penalty: what beam search ranks by
    attention: np.ndarray  # float[steps, source_length], one row per generated token
    finished: bool  # ended with <eos> (False: stopped at the length limit)
    # With `candidates=True`: every distinct hypothesis the search weighed, best first (by
    # `normalized`, the earliest weighed on ties, so the first is this one).
    candidates: list[Candidate] = dataclasses.field(default_factory=list)


def length_penalty(length: int, alpha: float) -> float:
    """Wu et al. (2016): ((5 + length) / 6) ** alpha."""
    return ((5.0 + length) / 6.0) ** alpha


def _hypothesis(tokens, score, attention, finished, alpha, source_length):
    length = len(tokens) + (1 if finished else 0)
    rows = (
        np.asarray(attention, dtype=np.float32).reshape(-1, source_length)
        if attention
        else (np.zeros((0, source_length), np.float32))
    )
    return Hypothesis(
        list(tokens),
        float(score),
        float(score) / length_penalty(max(length, 1), alpha),
        rows,
        finished,
    )


@dataclasses.dataclass
class Prepared:
    """Source ids ready for the model, and notes on what was changed in them."""

    ids: list[list[int]]
    notes: list[str]


class Translator:
    """A trained `Seq2Seq` with its two tokenizers and length limits."""

    def __init__(
        self,
        model,
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        *,
        max_source_length: int,
        max_target_length: int,
        source_bucket: int = 1,
        batch_size: int = 128,
    ):
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_source_length = max_source_length
        # Sentences per encoder call, and source padding to a multiple of source_bucket:
        # the encoder always sees [batch_size, k * source_bucket] (few compiled shapes).
        self.batch_size = batch_size
        self.source_bucket = source_bucket
        # Room for one token more than the longest training target, plus <eos>.
        self.max_steps = max_target_length + 2
        self.decoder = Decoder(model, self.max_steps)

    # ------------------------------------------------------------------ inputs

    def prepare(self, texts: Sequence[str], names: Sequence[str] | None = None) -> Prepared:
        """Encode source texts; truncate over-long ones and report unknown tokens."""
        ids, notes = [], []
        for i, text in enumerate(texts):
            name = names[i] if names else f"input {i + 1}"
            if not text.strip():
                ids.append([])
                continue
            tokens = self.source_tokenizer.tokens(text)
            row = self.source_tokenizer.encode(text)
            unknown = [t for t, j in zip(tokens, row, strict=True) if j == UNK_ID]
            if unknown:
                shown = ", ".join(repr(t) for t in dict.fromkeys(unknown))
                notes.append(f"{name}: {len(unknown)} unknown token(s) read as <unk>: {shown}")
            if len(row) > self.max_source_length:
                notes.append(
                    f"{name}: {len(row)} tokens, truncated to the first "
                    f"{self.max_source_length} (the model's max_source_length)"
                )
                row = row[: self.max_source_length]
            ids.append(row)
        return Prepared(ids, notes)

    def source_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.source_tokenizer.id_to_token(i) for i in ids]

    def target_text(self, hypothesis: Hypothesis) -> str:
        return self.target_tokenizer.decode(hypothesis.tokens)

    # ------------------------------------------------------------------ decoding

    # ------------------------------------------------------------------ decoding

    def _batches(self, sources: Sequence[Sequence[int]]):
        """Batches of `batch_size` rows (the last filled with copies of its rows), the source
        padded to a multiple of `source_bucket`: few compiled shapes. Yields (ids, n real)."""
        for start in range(0, len(sources), self.batch_size):
            chunk = sources[start : start + self.batch_size]
            width = -(-max(len(s) for s in chunk) // self.source_bucket) * self.source_bucket
            index, _ = fill_last_batch(len(chunk), self.batch_size)
            batch = np.zeros((len(index), width), np.int32)
            for row, i in enumerate(index):
                batch[row, : len(chunk[i])] = chunk[i]
            yield batch, chunk

    def _hypotheses(self, result, chunk) -> list[Hypothesis]:
        result = {k: np.asarray(v) for k, v in result.items()}
        hyps = []
        for i, source in enumerate(chunk):
            n, finished = int(result["lengths"][i]), bool(result["finished"][i])
            hyps.append(
                Hypothesis(
                    result["tokens"][i, :n].tolist(),
                    float(result["scores"][i]),
                    float(result["normalized"][i]),
                    result["attention"][i, : n + finished, : len(source)],
                    finished,
                    _candidates(result, i) if "candidate_valid" in result else [],
                )
            )
        return hyps

    def greedy(
        self, sources: Sequence[Sequence[int]], *, length_penalty: float = 0.0
    ) -> list[Hypothesis]:
        """Greedy decoding of non-empty source id lists (batched, one compiled loop each)."""
        results = []
        for batch, chunk in self._batches(sources):
            results.extend(self._hypotheses(self.decoder.greedy(batch, length_penalty), chunk))
        return results

    def beam_search(
        self,
        sources: Sequence[Sequence[int]],
        *,
        beam_size: int,
        length_penalty: float = 0.6,
        keep_greedy: bool = True,
        candidates: bool = False,
    ) -> list[Hypothesis]:
        """Beam search over non-empty source id lists; see the module docstring. With
        `candidates`, each hypothesis lists the others the search weighed."""
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1. Received: beam_size={beam_size}")
        results = []
        for batch, chunk in self._batches(sources):
            result = self.decoder.beam(batch, beam_size, length_penalty, keep_greedy, candidates)
            results.extend(self._hypotheses(result, chunk))
        return results

    def translate(
        self,
        texts: Sequence[str],
        *,
        beam_size: int = 1,
        length_penalty: float = 0.6,
        names: Sequence[str] | None = None,
        candidates: bool = False,
    ) -> tuple[list[Hypothesis | None], list[str]]:
        """Hypotheses for raw texts (None for empty ones) and the notes from `prepare`. With
        `candidates`, each lists the hypotheses beam search weighed (greedy: itself)."""
        prepared = self.prepare(texts, names)
        todo = [i for i, row in enumerate(prepared.ids) if row]
        sources = [prepared.ids[i] for i in todo]
        if not sources:
            hyps = []
        elif beam_size == 1:
            hyps = self.greedy(sources, length_penalty=length_penalty)
            for hyp in hyps if candidates else ():
                hyp.candidates = [Candidate(hyp.tokens, hyp.score, hyp.normalized, hyp.finished)]
        else:
            hyps = self.beam_search(
                sources, beam_size=beam_size, length_penalty=length_penalty, candidates=candidates
            )
        results: list[Hypothesis | None] = [None] * len(texts)
        for i, hyp in zip(todo, hyps, strict=True):
            results[i] = hyp
        return results, prepared.notes


def _candidates(result, i: int) -> list[Candidate]:
    """Row i's `candidate_*` arrays of `Decoder.beam`: the distinct hypotheses, best first."""
    found = {}
    for c in np.flatnonzero(result["candidate_valid"][i]):
        tokens = result["candidate_tokens"][i, c, : result["candidate_lengths"][i, c]].tolist()
        finished = bool(result["candidate_finished"][i, c])
        found.setdefault(
            (tuple(tokens), finished),
            Candidate(
                tokens,
                float(result["candidate_scores"][i, c]),
                float(result["candidate_normalized"][i, c]),
                finished,
            ),
        )
    return sorted(found.values(), key=lambda c: -c.normalized)  # stable: the earliest first


# ----------------------------------------------------------------------------- metrics


def translation_metrics(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """sacrebleu corpus BLEU and chrF (0-100) and the exact-match rate (0-1).

    BLEU uses sacrebleu's defaults (13a tokenization, exp smoothing), so it is the
    number `sacrebleu` prints for the same lines. Exact match means the whole output
    equals the reference; it is the headline number where targets are canonical
    (the ISO dates of the default data set).
    """
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu_metric, chrf_metric = BLEU(), CHRF()
    bleu = bleu_metric.corpus_score(list(hypotheses), [list(references)])
    chrf = chrf_metric.corpus_score(list(hypotheses), [list(references)])
    exact = sum(h == r for h, r in zip(hypotheses, references, strict=True)) / max(
        len(references), 1
    )
    return {
        "bleu": round(bleu.score, 4),
        "chrf": round(chrf.score, 4),
        "exact_match": round(exact, 6),
        "examples": len(references),
        "bleu_signature": str(bleu_metric.get_signature()),
    }


def evaluate_pairs(
    translator: Translator,
    pairs: Sequence[tuple[str, str]],
    *,
    beam_size: int = 1,
    length_penalty: float = 0.6,
) -> tuple[dict, list[str]]:
    """Translate the sources of `pairs`, score them against the targets; also the outputs."""
    hyps, _ = translator.translate(
        [s for s, _ in pairs], beam_size=beam_size, length_penalty=length_penalty
    )
    outputs = ["" if h is None else translator.target_text(h) for h in hyps]
    metrics = translation_metrics(outputs, [t for _, t in pairs])
    metrics["beam_size"] = beam_size
    return metrics, outputs


# ----------------------------------------------------------------------------- plots


def plot_attention(
    panels: Sequence[tuple[list[str], list[str], np.ndarray]], path: Path, max_panels: int = 6
) -> Path:
    """Heatmaps of attention weights, one panel per (source tokens, output tokens, weights)
    or (source tokens, output tokens, weights, title).

    weights: float[output steps, source tokens] (the last output row is <eos>).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.runtime import atomic_write

    panels = list(panels)[:max_panels]
    if not panels:
        raise ValueError("plot_attention needs at least one translation with attention weights")
    cols = min(len(panels), 2)
    rows = math.ceil(len(panels) / cols)
    sizes = [
        (max(3.0, 0.28 * len(src) + 1.5), max(2.5, 0.28 * len(out) + 1.2))
        for src, out, *_ in panels
    ]
    width = max(w for w, _ in sizes) * cols
    height = max(h for _, h in sizes) * rows
    # Titles wrapped to the panel's width (about 11 characters an inch at 9 pt).
    titles = [wrap_title(p[3], int(11 * width / cols)) if len(p) > 3 else None for p in panels]
    lines = max((t.count("\n") + 1 for t in titles if t), default=0)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width, height + (0.3 + 0.17 * lines) * rows), squeeze=False
    )
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    with warnings.catch_warnings():
        # Scripts the default font lacks (Han, Hangul) are drawn as boxes, not warned about.
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        for ax, (src, out, weights, *_), title in zip(axes.ravel(), panels, titles, strict=False):
            if title:
                ax.set_title(title, fontsize=9)
            ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_xticks(range(len(src)), [_show(t) for t in src], rotation=90, fontsize=8)
            ax.set_yticks(range(len(out)), [_show(t) for t in out], fontsize=8)
            ax.set_xlabel("source")
            ax.set_ylabel("output")
        fig.tight_layout()
        atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return Path(path)


def wrap_title(title: str, width: int) -> str:
    """`title` on lines of at most `width` characters (long words are broken)."""
    import textwrap

    return "\n".join(textwrap.wrap(title, max(width, 10))) or title


def _show(token: str) -> str:
    return "\u2423" if token == " " else token


def attention_panel(translator: Translator, source_ids: Sequence[int], hyp: Hypothesis):
    """(source tokens, output tokens with <eos>, weights, title) for `plot_attention`."""
    out = [translator.target_tokenizer.id_to_token(t) for t in hyp.tokens]
    if hyp.finished:
        out.append("<eos>")
    source = translator.source_tokenizer.decode(source_ids, skip_special=False)
    title = f"{source} \u2192 {translator.target_text(hyp)}"
    return translator.source_tokens(source_ids), out, hyp.attention[: len(out)], title
