"""`compose`: whole tunes from a trained model, one token at a time, and their files.

    prime = <bos> [M:meter [K:key L:1/8 [first notes]]]
    the model continues the prime until <eos> or `max_tokens`   (common.lm.Sampler)

With --key but no --meter, the meter is drawn from the model first (the header's order is
M, K, L), then the key and the rest are appended and the tune continues from there.

Files per tune, in the output directory: `tune_001.abc` (the ABC text), `tune_001.mid`
(MIDI, music21) and `tune_001.png` (a piano roll, matplotlib).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from common.errors import UserError
from common.tokenization import BOS
from recipes.music import abc, checks


def _known(tok, prefix: str) -> list[str]:
    return sorted(t[len(prefix) :] for t in tok.vocab if t.startswith(prefix))


def _checked(tok, option: str, value: str, parse, prefix: str) -> str:
    """The vocabulary token for --meter/--key `value`, or a `UserError` listing the known."""
    try:
        token = f"{prefix}{parse(value)}"
    except abc.ParseError:
        token = None
    if token not in tok:
        known = ", ".join(_known(tok, prefix))
        raise UserError(f"--{option}: unknown {option} {value!r}; the model knows {known}")
    return token


def header_tokens(tok, meter: str | None, key: str | None) -> tuple[str | None, list[str]]:
    """(the meter token or None, [K:, L:1/8] or []) for --meter and --key, checked against
    the model's vocabulary."""
    meter_token = None if meter is None else _checked(tok, "meter", meter, abc.parse_meter, "M:")
    if key is None:
        return meter_token, []
    return meter_token, [_checked(tok, "key", key, abc.Key.parse, "K:"), "L:1/8"]


def prime_tokens(tok, prime: str) -> list[str]:
    """--prime (ABC notes in eighths, e.g. "A2 dc|") -> tokens the model knows."""
    try:
        tokens = abc.tokenize_body(prime)
    except abc.ParseError as err:
        raise UserError(f"--prime: {err}") from None
    unknown = [t for t in tokens if t not in tok]
    if unknown:
        raise UserError(f"--prime: the token {unknown[0]!r} is not in the model's vocabulary")
    return tokens


def compose(
    sampler,
    tok,
    *,
    meter: str | None = None,
    key: str | None = None,
    prime: str = "",
    num_tunes: int = 1,
    max_tokens: int,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[tuple[list[str], bool]]:
    """`num_tunes` tunes as (tokens, finished: ended with <eos> within `max_tokens`)."""
    meter_token, rest = header_tokens(tok, meter, key)
    body = prime_tokens(tok, prime) if prime else []
    if body and not rest:
        raise UserError("--prime needs --key (and the meter, given or drawn): notes come after K:")
    rows = np.full((num_tunes, 1), tok.token_to_id(BOS), np.int32)
    generate = sampler.generator.generate
    options = (tf.constant(temperature, tf.float32), tf.constant(0), tf.constant(seed))
    if meter_token is not None:
        rows = np.concatenate([rows, np.full((num_tunes, 1), tok.token_to_id(meter_token))], 1)
    elif rest:  # draw the meter first, then continue after the given key
        drawn, _ = generate(rows, tf.constant(1), *options)
        rows = np.concatenate([rows, drawn.numpy()], axis=1)
    fixed = [tok.token_to_id(t) for t in rest + body]
    rows = np.concatenate([rows, np.tile(np.array(fixed, np.int32), (num_tunes, 1))], 1)
    rows = rows.astype(np.int32)
    length = max(1, max_tokens - rows.shape[1])
    ids, lengths = generate(rows, tf.constant(length), *options)
    ids, lengths = ids.numpy(), lengths.numpy()
    tunes = []
    for prefix, row, n in zip(rows, ids, lengths, strict=True):
        tokens = [tok.id_to_token(int(i)) for i in [*prefix[1:], *row[:n]]]
        tunes.append((tokens, bool(n < length)))
    return tunes


def tune_text(tokens: list[str], finished: bool, number: int = 1) -> str:
    """A tune's .abc file: its ABC text, and a comment if the token limit cut it short."""
    text = abc.render(tokens, number=number)
    if not finished:
        text += "% unfinished: the token limit came before the end of the tune\n"
    return text


def write(tunes: list[tuple[list[str], bool]], output_dir: Path) -> list[Path]:
    """Write each tune as .abc, .mid and .png into `output_dir`; return the .abc paths.

    The tune files of an earlier compose into the same directory (`tune_NNN.abc/.mid/.png`)
    are removed first, so every file there belongs to this set of tunes (a tune with no
    notes has no .mid and .png). Other files are left alone.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.iterdir():
        if re.fullmatch(r"tune_\d{3,}\.(abc|mid|png)", stale.name) and stale.is_file():
            stale.unlink()
    paths = []
    for i, (tokens, finished) in enumerate(tunes, start=1):
        stem = output_dir / f"tune_{i:03d}"
        stem.with_suffix(".abc").write_text(tune_text(tokens, finished, number=i))
        if abc.analyse(tokens).onsets:
            checks.write_midi(tokens, stem.with_suffix(".mid"))
            checks.plot_piano_roll(tokens, stem.with_suffix(".png"), title=f"tune {i}")
        paths.append(stem.with_suffix(".abc"))
    return paths
