"""Tag schemes, constrained decoding and entity-level metrics (no TensorFlow here).

Internal scheme: IOB2 (also called BIO). Every entity starts with `B-TYPE`, its
other tokens are `I-TYPE`, everything else is `O`:

    token:  Yesterday  ,  Harry     Potter    met  Hermione  Granger   .
    IOB2:   O          O  B-person  I-person  O    B-person  I-person  O
    IOB1:   O          O  I-person  I-person  O    I-person  I-person  O

IOB1 (the original CoNLL-2003 files) writes `B-` only where an entity directly
follows another of the same type; elsewhere an entity starts with `I-`. Both
read the same under the conlleval chunk rules (an `I-X` after `O` or after
another type starts a new entity), so converting IOB1 to IOB2 means writing
`B-` at every such start. Applied to IOB2 tags the conversion changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from seqeval.metrics import accuracy_score, classification_report
from seqeval.metrics.sequence_labeling import get_entities

OUTSIDE = "O"


def split_tag(tag: str) -> tuple[str, str]:
    """`"B-PER"` -> `("B", "PER")`, `"O"` -> `("O", "")`. Other forms raise ValueError."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, kind = tag.partition("-")
    if sep and prefix in ("B", "I") and kind:
        return prefix, kind
    raise ValueError(f"tag {tag!r} is not O, B-TYPE or I-TYPE (IOB1/IOB2)")


def starts_entity(tag: str, previous: str) -> bool:
    """Whether `tag` begins an entity under the conlleval rules, given the tag before it."""
    prefix, kind = split_tag(tag)
    if prefix == "B":
        return True
    if prefix == "I":
        before, before_kind = split_tag(previous)
        return before == OUTSIDE or before_kind != kind
    return False


def detect_scheme(tag_sequences: Sequence[Sequence[str]]) -> str:
    """`"IOB1"` when some entity starts with `I-` (never valid IOB2), else `"IOB2"`."""
    for tags in tag_sequences:
        previous = OUTSIDE
        for tag in tags:
            if tag.startswith("I-") and starts_entity(tag, previous):
                return "IOB1"
            previous = tag
    return "IOB2"


def to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 tags (or IOB2 tags with an `I-` after `O`) as valid IOB2."""
    out, previous = [], OUTSIDE
    for tag in tags:
        if tag.startswith("I-") and starts_entity(tag, previous):
            out.append("B-" + tag[2:])
        else:
            out.append(tag)
        previous = tag
    return out


def to_iob1(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB2 tags as IOB1: `B-X` only where an entity directly follows one of type X.

    The inverse of `to_iob2` on valid IOB2 tags: `to_iob2(to_iob1(tags)) == tags`.
    """
    out, previous = [], OUTSIDE
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "B" and split_tag(previous)[1] != kind:
            out.append("I-" + kind)
        else:
            out.append(tag)
        previous = tag
    return out


def transition_rules(tag_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Allowed IOB2 transitions for constrained decoding.

    Returns `allowed: bool[K, K]` (`allowed[i, j]`: tag j may follow tag i) and
    `start: bool[K]` (tag may open a sentence). `I-X` may only follow `B-X` or `I-X`.
    """
    parts = [split_tag(t) for t in tag_names]
    k = len(tag_names)
    allowed = np.ones((k, k), dtype=bool)
    start = np.ones(k, dtype=bool)
    for j, (prefix, kind) in enumerate(parts):
        if prefix == "I":
            start[j] = False
            for i, (before, before_kind) in enumerate(parts):
                allowed[i, j] = before != OUTSIDE and before_kind == kind
    return allowed, start


def constrained_decode(probs: np.ndarray, allowed: np.ndarray, start: np.ndarray) -> list[int]:
    """Most probable valid IOB2 path (Viterbi over per-token probabilities).

    probs: float[time, num_tags], the softmax of one sentence without padding.
    The path maximises sum(log p) subject to the transition rules, so an `I-X`
    never follows `O` (plain argmax can produce that; here the decoder picks
    `B-X` or `O` instead, whichever the whole sentence supports better).
    """
    log_p = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    return viterbi(log_p, *rule_scores(allowed, start))


def rule_scores(allowed: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, ...]:
    """The IOB2 rules of `transition_rules` as Viterbi scores: (transitions float[K, K],
    start float[K], end float[K]), 0 where allowed and -inf where not, no end scores."""
    forbid = np.where(allowed, 0.0, -np.inf)
    return forbid, np.where(start, 0.0, -np.inf), np.zeros(len(start))


def viterbi(
    emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray, end: np.ndarray
) -> list[int]:
    """The path of tag ids maximising start[y_0] + sum_t emissions[t, y_t] +
    sum_t transitions[y_{t-1}, y_t] + end[y_last], for one sentence without padding
    (emissions float[time, num_tags]; a CRF's scores, or log-probabilities with 0/-inf
    transitions for `constrained_decode`)."""
    emissions = np.asarray(emissions, dtype=np.float64)
    if emissions.shape[0] == 0:
        return []
    transitions = np.asarray(transitions, dtype=np.float64)
    score = np.asarray(start, dtype=np.float64) + emissions[0]
    back = np.zeros(emissions.shape, dtype=np.int64)
    for t in range(1, emissions.shape[0]):
        candidates = score[:, None] + transitions  # [from, to]
        back[t] = np.argmax(candidates, axis=0)
        score = candidates[back[t], np.arange(emissions.shape[1])] + emissions[t]
    path = [int(np.argmax(score + np.asarray(end, dtype=np.float64)))]
    for t in range(emissions.shape[0] - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def entity_spans(tokens: Sequence[str], tags: Sequence[str]) -> list[dict]:
    """Entities as `{"type", "start", "end", "text"}`; token indices, `end` exclusive."""
    return [
        {"type": kind, "start": begin, "end": last + 1, "text": " ".join(tokens[begin : last + 1])}
        for kind, begin, last in get_entities(list(tags))
    ]


def entity_metrics(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> dict:
    """Entity-level precision, recall, F1 (conlleval semantics, seqeval), overall and per type.

    An entity counts as correct only if its type and both boundaries match.
    Overall numbers are micro averages over all entities. Also reports token
    accuracy (all tokens, `O` included) and the counts behind the numbers.
    """
    y_true = [list(t) for t in y_true]
    y_pred = [list(t) for t in y_pred]
    if [len(t) for t in y_true] != [len(p) for p in y_pred]:
        raise ValueError("y_true and y_pred must have the same sentence lengths")
    report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    overall = report.pop("micro avg")
    for key in ("macro avg", "weighted avg"):
        report.pop(key, None)
    per_type = {
        kind: {
            "precision": float(r["precision"]),
            "recall": float(r["recall"]),
            "f1": float(r["f1-score"]),
            "support": int(r["support"]),
        }
        for kind, r in sorted(report.items())
    }
    return {
        "precision": float(overall["precision"]),
        "recall": float(overall["recall"]),
        "f1": float(overall["f1-score"]),
        "token_accuracy": float(accuracy_score(y_true, y_pred)),
        "entities_true": sum(len(get_entities(t)) for t in y_true),
        "entities_pred": sum(len(get_entities(p)) for p in y_pred),
        "sentences": len(y_true),
        "tokens": sum(len(t) for t in y_true),
        "per_type": per_type,
    }
