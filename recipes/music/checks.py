"""Musical checks of tunes (generated or real), MIDI files and piano rolls.

For a set of tunes (token lists):

- `parses`: the share that music21 reads as ABC without an error and with at least one note;
- `bars_ok`: among the tunes with a meter and at least one complete bar (a plain `|` on
  both sides, so not the pick-up, the last bar or the short bars around repeats), the share
  whose complete bars all last exactly the meter's duration;
- `ends_on_tonic`: the share whose last note has the pitch class of the key's tonic;
- `finished`: the share that ended with <eos> (given by the caller for generated tunes);
- `pitch_class_js`, `interval_js`: the Jensen-Shannon distance (base 2: 0 = the same
  histogram, 1 = disjoint) between the histograms of these tunes and of reference tunes,
  over scale degrees (pitch class above the tonic, 12 bins) and over melodic intervals
  (semitones between successive notes, clipped to -12 .. 12).

The pitches and durations come from `abc.analyse`, which follows the ABC standard
(accidentals hold to the end of the bar); music21 is used to read the text, as the check
that a standard reader accepts it, and to write MIDI.
"""

from __future__ import annotations

import io
import warnings
from contextlib import redirect_stderr, redirect_stdout

import numpy as np

from recipes.music import abc


def music21_parses(text: str) -> bool:
    """Whether music21 reads the ABC text and finds at least one note."""
    import music21

    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            score = music21.converter.parse(text, format="abc")
        except Exception:  # music21 raises many kinds of errors on bad input
            return False
        return len(score.recurse().notes) > 0


def bars_ok(tokens: list[str], analysis: abc.Analysis | None = None) -> bool | None:
    """Whether every complete bar lasts the meter's duration; None if not applicable.
    (`analysis`: the tune's `abc.analyse`, when the caller has it.)"""
    meter = abc.meter_of(tokens)
    if meter is None or meter == "none":
        return None
    full = abc.bar_duration(meter)
    complete = (analysis or abc.analyse(tokens)).complete_bars()
    if not complete:
        return None
    return all(d == full for d in complete)


def ends_on_tonic(tokens: list[str], analysis: abc.Analysis | None = None) -> bool:
    key = abc.key_of(tokens)
    pitches = (analysis or abc.analyse(tokens)).pitches
    return bool(key is not None and pitches and pitches[-1] % 12 == key.pitch_class)


def histograms(tunes: list, analyses: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scale degrees float[12], intervals float[25]) counts over `tunes`."""
    degrees, intervals = np.zeros(12), np.zeros(25)
    for tokens, analysis in zip(tunes, analyses or map(abc.analyse, tunes), strict=True):
        key = abc.key_of(tokens)
        pitches = np.array(analysis.pitches, dtype=int)
        if key is None or len(pitches) == 0:
            continue
        np.add.at(degrees, (pitches - key.pitch_class) % 12, 1)
        np.add.at(intervals, np.clip(np.diff(pitches), -12, 12) + 12, 1)
    return degrees, intervals


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (scipy's), of two count histograms; 1 if one is empty."""
    from scipy.spatial.distance import jensenshannon

    if p.sum() == 0 or q.sum() == 0:
        return 1.0
    return float(jensenshannon(p, q, base=2))


def report(tunes: list, reference: list, finished: list[bool] | None = None) -> dict:
    """The checks of `tunes` against `reference` tunes (see the module docstring)."""
    n = len(tunes)
    analyses = [abc.analyse(t) for t in tunes]  # once per tune, for every check
    bars = [bars_ok(t, a) for t, a in zip(tunes, analyses, strict=True)]
    applicable = [b for b in bars if b is not None]
    degrees, intervals = histograms(tunes, analyses)
    ref_degrees, ref_intervals = histograms(reference)
    out = {
        "tunes": n,
        "parses": sum(music21_parses(abc.render(t)) for t in tunes) / n,
        "bars_ok": sum(applicable) / len(applicable) if applicable else 0.0,
        "bars_checked": len(applicable),
        "ends_on_tonic": sum(map(ends_on_tonic, tunes, analyses)) / n,
        "pitch_class_js": js_distance(degrees, ref_degrees),
        "interval_js": js_distance(intervals, ref_intervals),
    }
    if finished is not None:
        out["finished"] = sum(finished) / n
    return out


def write_midi(tokens: list[str], path, tempo: int = 120) -> None:
    """A MIDI file of the tune's notes (`abc.analyse`: ties joined, ABC accidental rules)."""
    import music21

    part = music21.stream.Part()
    part.insert(0, music21.tempo.MetronomeMark(number=tempo))
    for start, length, pitch in abc.analyse(tokens).onsets:
        note = music21.note.Note(pitch, quarterLength=float(length * abc.UNIT * 4))
        part.insert(float(start * abc.UNIT * 4), note)
    music21.stream.Score([part]).write("midi", fp=str(path))


def plot_piano_roll(tokens: list[str], path, title: str = "") -> None:
    """A piano roll PNG (`path`: a file name or a binary file object): one bar per note,
    time in quarter notes, pitch as MIDI number. Without pyplot, so threads may call it."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    analysis = abc.analyse(tokens)
    fig = Figure(figsize=(10, 3))
    ax = fig.subplots()
    for start, length, pitch in analysis.onsets:  # in eighths: /2 gives quarter notes
        ax.broken_barh([(float(start) / 2, float(length) / 2)], (pitch - 0.4, 0.8), color="C0")
    for x in np.cumsum([float(d) / 2 for _, d, _ in analysis.bars[:-1]]):
        ax.axvline(x, color="0.8", linewidth=0.8, zorder=0)  # bar lines
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80, format="png")
