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

`Sampler.stream` gives the same tokens as they come, for the `sample` verb and the demo,
which show the text as it grows (`stream_texts`): the same prime read, then the same cell step
and `choose` in a compiled loop of `common.lm.STREAM_CHUNK` steps, called again from where it stopped
(the state and the step number carried), with the text so far after each call. So the same
text as the loop (a test compares them), at about three quarters of its speed at batch 1 (a
Python round trip per chunk), and one compilation per batch size, not per length. The loop
itself stays for batch work: `train`'s sample, the export, `make bench-inference`.
"""

from __future__ import annotations

from collections.abc import Iterator

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

    def stream(self, prime_ids: list[int], **options) -> Iterator[list[list[int]]]:
        """`generate`'s ids as they grow; see `common.lm.Sampler.stream`."""
        return super().stream([self.tok.token_to_id(BOS), *prime_ids], **options)


def stream_texts(sampler: Sampler, prime: str, **options) -> Iterator[list[str]]:
    """The texts `sample` prints for `prime` and `options`, as they grow (see
    `Sampler.stream`): one text per sample, the prime then its continuation so far."""
    tok = sampler.tok
    prime_ids = encode_prime(tok, prime, sampler.cfg.level)
    separator = "" if sampler.cfg.level == "char" or not prime else " "
    texts, lengths = [], []
    for outputs in sampler.stream(prime_ids, **options):
        if not texts:
            texts, lengths = [prime + separator] * len(outputs), [0] * len(outputs)
        for row, ids in enumerate(outputs):
            # `decode` spaces two tokens by looking at those two only: the new tokens, decoded
            # after the last one already shown, extend the text.
            before = ids[max(lengths[row] - 1, 0) : lengths[row]]
            texts[row] += tok.decode(before + ids[lengths[row] :])[len(tok.decode(before)) :]
            lengths[row] = len(ids)
        yield list(texts)
