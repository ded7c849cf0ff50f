"""`baselines`: the recurrent model against two others on the same held-out tunes.

- A token n-gram model with Witten-Bell interpolation (each order's estimate backs off to
  the next lower one in proportion to how many different tokens followed the context; the
  lowest is uniform over the vocabulary). n is chosen on a dev tenth of the training
  tunes, then the model is counted again on all of them.
- The project's `char_lm` trained on the same training tunes as ABC text (the run's
  `train.abc`), when `--char-lm-dir` names such a run: each held-out tune is scored as the
  characters of its ABC text after "X:1\\n", through the blank line that ends it; its tunes
  are sampled from "X:1\\n" and cut at the first blank line.

Every model is compared in bits per tune (comparable across token and character models:
the same tunes, each from its start to its end) and on the musical checks of 100 tunes it
generates (`checks.report`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from common.tokenization import BOS_ID, EOS_ID, SPECIALS
from recipes.music import abc, checks

DEV_FRACTION = 0.1
MAX_ORDER = 8


class NGram:
    """Interpolated Witten-Bell n-gram model over token ids (0 .. vocab_size-1)."""

    def __init__(self, sequences: list, vocab_size: int, order: int):
        self.vocab_size, self.order = vocab_size, order
        # context tuple (up to order-1 ids) -> Counter of next ids
        counts: dict[tuple, Counter] = defaultdict(Counter)
        for ids in sequences:
            for i in range(1, len(ids)):
                for k in range(order):
                    if i - k < 0:
                        break
                    counts[tuple(ids[i - k : i])][ids[i]] += 1
        self.counts = dict(counts)
        # context -> (total count, distinct next ids): the Witten-Bell weights
        self.totals = {c: (sum(n.values()), len(n)) for c, n in self.counts.items()}

    def _contexts(self, history: list[int], order: int | None):
        """The counted contexts of `history`, shortest first (empty, last id, last two ...)."""
        for k in range(min(order or self.order, len(history) + 1)):
            context = tuple(history[len(history) - k :]) if k else ()
            if context not in self.counts:
                break
            yield context

    def distribution(self, history: list[int], order: int | None = None) -> np.ndarray:
        """P(next | history) over the vocabulary, float[vocab] (for sampling)."""
        p = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for context in self._contexts(history, order):
            counter, (total, types) = self.counts[context], self.totals[context]
            counts = np.zeros(self.vocab_size)
            counts[list(counter)] = list(counter.values())
            p = (counts + types * p) / (total + types)
        return p

    def probability(self, history: list[int], token: int, order: int | None = None) -> float:
        """P(token | history), as `distribution(history)[token]` without the other tokens."""
        p = 1.0 / self.vocab_size
        for context in self._contexts(history, order):
            total, types = self.totals[context]
            p = (self.counts[context][token] + types * p) / (total + types)
        return p

    def log_prob(self, ids: list[int], order: int | None = None) -> float:
        """Natural log-probability of ids[1:] given ids[0] (<bos>) and what precedes."""
        return sum(math.log(self.probability(ids[:i], ids[i], order)) for i in range(1, len(ids)))

    def sample(self, num: int, max_tokens: int, banned, seed: int) -> list[tuple[list, bool]]:
        """`num` id sequences from <bos> to <eos> (excluded) or `max_tokens`; finished flags."""
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(num):
            ids = [BOS_ID]
            while len(ids) < max_tokens:
                p = self.distribution(ids[-(self.order - 1) :] if self.order > 1 else [])
                p[list(banned)] = 0.0
                token = int(rng.choice(self.vocab_size, p=p / p.sum()))
                if token == EOS_ID:
                    break
                ids.append(token)
            out.append((ids[1:], len(ids) < max_tokens))
        return out


def choose_order(train: list, dev: list, vocab_size: int) -> tuple[int, dict[int, float]]:
    """The n (1 .. MAX_ORDER) with the lowest dev loss, and the loss (nats/token) of each."""
    model = NGram(train, vocab_size, MAX_ORDER)
    tokens = sum(len(s) - 1 for s in dev)
    losses = {
        n: -sum(model.log_prob(s, order=n) for s in dev) / tokens for n in range(1, MAX_ORDER + 1)
    }
    return min(losses, key=losses.get), losses


def ngram_baseline(train_ids, held_ids, tok, held_tunes, *, num_tunes, max_tokens, seed) -> dict:
    from common import data as common_data

    fit_idx, dev_idx = common_data.split_holdout(len(train_ids), DEV_FRACTION, seed)
    order, dev_losses = choose_order(
        [train_ids[i] for i in fit_idx], [train_ids[i] for i in dev_idx], tok.vocab_size
    )
    model = NGram(train_ids, tok.vocab_size, order)
    totals = np.array([model.log_prob(s) for s in held_ids])
    banned = [tok.token_to_id(t) for t in SPECIALS if t != "<eos>"]
    generated = model.sample(num_tunes, max_tokens, banned, seed)
    tunes = [[tok.id_to_token(i) for i in ids] for ids, _ in generated]
    return {
        "order": order,
        "dev_loss_by_order": {str(n): round(v, 4) for n, v in dev_losses.items()},
        "totals": totals,
        "checks": checks.report(tunes, held_tunes, finished=[f for _, f in generated]),
    }


def char_lm_baseline(char_dir, held_tunes, *, num_tunes, max_chars, seed) -> dict:
    """Bits per held-out tune and the musical checks of sampled tunes for a char_lm run."""
    from recipes.char_lm import data as char_data
    from recipes.char_lm.main import _load_run
    from recipes.char_lm.sample import Sampler
    from recipes.char_lm.score import Scorer

    cfg, tok, model = _load_run(char_dir)
    if cfg.level != "char":
        raise ValueError(f"{char_dir} is a {cfg.level}-level run; the baseline needs char")
    scorer = Scorer(cfg, model)
    prefix = "X:1\n"
    prefix_lp = float(scorer.token_log_probs(char_data.encode(tok, prefix), BOS_ID).sum())
    totals = []
    for tokens in held_tunes:
        text = abc.render(tokens) + "\n"  # the blank line that ends a tune in train.abc
        totals.append(
            float(scorer.token_log_probs(char_data.encode(tok, text), BOS_ID).sum()) - prefix_lp
        )
    sampler = Sampler(cfg, tok, model)
    prime = char_data.encode(tok, prefix).tolist()
    outputs, _ = sampler.generate(
        prime, length=max_chars, temperature=1.0, num_samples=num_tunes, seed=seed
    )
    tunes, finished, texts = [], [], []
    for ids in outputs:
        text = tok.decode(ids)
        body, blank, _ = text.partition("\n\n")
        finished.append(bool(blank))
        texts.append(prefix + body + "\n")
        try:
            tunes.append(abc.tokenize(prefix + body))
        except abc.ParseError:
            tunes.append(None)
    readable = [t for t in tunes if t is not None]
    report = checks.report(readable, held_tunes) if readable else {"ends_on_tonic": 0.0}
    report.update(  # shares of all the tunes: one the tokenizer cannot read counts as failing
        ends_on_tonic=report["ends_on_tonic"] * len(readable) / num_tunes,
        tunes=num_tunes,
        parses=sum(map(checks.music21_parses, texts)) / num_tunes,
        tokenizable=len(readable) / num_tunes,
        finished=sum(finished) / num_tunes,
    )
    return {"totals": np.array(totals), "checks": report}
