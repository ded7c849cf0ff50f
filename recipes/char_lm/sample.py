"""Generation with a trained language model: the compiled loop of `common.sampling`.

    states = 0;  (logits, states) = step_model([<bos>, prime...], states)   # prime read once
    repeat length times, inside one tf.while_loop:
        t ~ softmax(top_k(logits) / temperature)      # never <pad>, <bos>, <unk>
        (logits, states) = cells(embedding(t), states) -> logits

The prime is read by the Keras step model in one call; afterwards each step feeds only the
new token through the same layers' cells and carries the state, so the cost per token is
constant and no step leaves the graph.

Sampling rules (see `common.sampling.choose`): temperature 0 is greedy, `top_k` > 0 keeps the
k most likely tokens, `<pad>`, `<bos>` and `<unk>` are never emitted (probability set to zero,
the rest renormalised). At character level `<eos>` is never emitted either; at word level a
sample stops at `<eos>` (which is not printed). The draws are a hash of (seed, step, row)
(`common.sampling.uniform`), so the same model, prime, options and seed give the same text,
under XLA or not.
"""

from __future__ import annotations

from common import lm
from common.errors import UserError
from common.tokenization import BOS, EOS, PAD, UNK


def encode_prime(tok, prime: str, level: str) -> list[int]:
    """Prime text -> ids; a token the model never saw is a `UserError`."""
    unk = tok.token_to_id(UNK)
    ids = tok.encode(prime)
    if unk in ids:
        tokens = tok.tokens(prime)
        bad = next(t for t, i in zip(tokens, ids, strict=True) if i == unk)
        what = "character" if level == "char" else "word"
        raise UserError(
            f"--prime: the {what} {bad!r} (position {tokens.index(bad) + 1}) is not in the "
            f"model's vocabulary of {tok.vocab_size} tokens; use {what}s from its training text"
        )
    return ids


class Sampler(lm.Sampler):
    """`common.lm.Sampler` with char_lm's rules: <pad>, <bos>, <unk> (and at character level
    <eos>) never emitted; at word level a sample stops at <eos>."""

    def __init__(self, cfg, tok, trained, jit_compile: bool = True):
        self.tok = tok
        banned = [PAD, BOS, UNK] + ([EOS] if cfg.level == "char" else [])
        super().__init__(
            cfg,
            trained,
            banned=[tok.token_to_id(t) for t in banned],
            eos=tok.token_to_id(EOS) if cfg.level == "word" else None,
            pad=tok.token_to_id(PAD),
            jit_compile=jit_compile,
        )

    def generate(self, prime_ids: list[int], **options):
        """`num_samples` continuations of <bos> + `prime_ids`; see `common.lm.Sampler`."""
        return super().generate([self.tok.token_to_id(BOS), *prime_ids], **options)
