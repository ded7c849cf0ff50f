"""A tune as sound, with NumPy alone (no sound font, no MIDI synthesiser): each note of
`abc.analyse` (ties joined, ABC's accidental rules) is four harmonic sine partials under a
plucked envelope (5 ms attack, exponential decay, 50 ms release after the note's end), at
the MIDI file's tempo: 120 quarter notes a minute (`checks.write_midi`)."""

from __future__ import annotations

import numpy as np

from recipes.music import abc

SAMPLE_RATE = 22_050
TEMPO = 120  # quarter notes per minute
PARTIALS = (1.0, 0.5, 0.25, 0.125)  # amplitude of the fundamental and its overtones
ATTACK, DECAY, RELEASE = 0.005, 0.8, 0.05  # seconds


def seconds(tokens: list[str], tempo: int = TEMPO) -> float:
    """When the tune's last note ends (a trailing rest is silent and left out)."""
    onsets = abc.analyse(tokens).onsets
    end = max((start + length for start, length, _ in onsets), default=0)
    return float(end * abc.UNIT * 4) * 60 / tempo


def synthesize(tokens: list[str], tempo: int = TEMPO, rate: int = SAMPLE_RATE) -> np.ndarray:
    """int16[samples] mono at `rate`: the notes, then the last note's release; the peak at
    90 % of full scale. No notes: no samples."""
    onsets = abc.analyse(tokens).onsets
    if not onsets:
        return np.zeros(0, np.int16)
    per_unit = float(abc.UNIT * 4) * 60 / tempo  # seconds per eighth note
    out = np.zeros(int(np.ceil((seconds(tokens, tempo) + RELEASE) * rate)) + 1)
    for start, length, pitch in onsets:
        duration = float(length) * per_unit
        t = np.arange(int((duration + RELEASE) * rate)) / rate
        envelope = np.minimum(t / ATTACK, 1.0) * np.exp(-t / DECAY)
        envelope *= np.clip((duration + RELEASE - t) / RELEASE, 0.0, 1.0)
        frequency = 440.0 * 2.0 ** ((pitch - 69) / 12)
        tone = sum(
            a * np.sin(2 * np.pi * k * frequency * t)
            for k, a in enumerate(PARTIALS, start=1)
            if k * frequency < rate / 2
        )
        first = int(round(float(start) * per_unit * rate))
        out[first : first + len(t)] += envelope * tone
    peak = np.abs(out).max()
    return np.round(out / peak * 0.9 * 32767).astype(np.int16) if peak else out.astype(np.int16)
