"""ABC tunes as tokens, and back: the representation of folk-rnn (Sturm et al. 2016).

A tune becomes a header of three tokens and its body:

    M:6/8  K:Dmix  L:1/8  |:  A  d2  e  f>e  d  |  ...  :|

- `M:` the meter ("C" is written 4/4 and "C|" 2/2; "M:none" for free meter);
- `K:` the key: tonic and mode, "" for major, "m" minor, else dor, mix, lyd, phr, loc;
- `L:1/8` always: every duration is rewritten in eighth notes, so the same token means the
  same length in every collection (Essen writes in quarters, O'Neill's in sixteenths);
- one token per note: accidental, letter, octave marks and duration (`^c'3/2`), the octave
  written canonically (`C,` never `c,,`); rests `z2`; bar lines `|` `||` `|]` `|:` `:|`
  `::`; endings `[1` `[2`; ties `-`; tuplets `(3`; broken rhythm `>` `<` `>>` `<<`.

Dropped as not part of the melody: chord symbols and other quoted text, grace notes `{..}`,
slurs, decorations (`~`, `.`, `H`, `T`, `!trill!` ...), spacers, comments and line breaks.
A tune with chords, several voices or a change of key or meter inside the body is refused
(`ParseError`), so the caller skips and counts it.

`render` writes tokens back as ABC text; `tokens(parse(render(t))) == t` for every
tokenised tune. `transpose` moves a tune to another key keeping every interval;
`analyse` gives its bars' durations and its pitches for the musical checks.
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction

UNIT = Fraction(1, 8)  # the unit length every tune is rewritten in
LETTERS = "CDEFGAB"
STEPS = (0, 2, 4, 5, 7, 9, 11)  # semitones of C D E F G A B above C
MODES = {"": 0, "m": -3, "dor": -2, "mix": -1, "lyd": 1, "phr": -4, "loc": -5}
_MODE_NAMES = {
    "": "",
    "maj": "",
    "major": "",
    "ion": "",
    "m": "m",
    "min": "m",
    "minor": "m",
    "aeo": "m",
    "dor": "dor",
    "mix": "mix",
    "lyd": "lyd",
    "phr": "phr",
    "loc": "loc",
}
SHARP_ORDER = "FCGDAEB"
BAR_LINES = ("|", "||", "|]", "|:", ":|", "::")
ACCIDENTALS = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}
_ACCIDENTAL_TEXT = {v: k for k, v in ACCIDENTALS.items()}

# One body element at a time; the order of the alternatives matters (longest first).
_BODY = re.compile(
    r"""
    (?P<skip>"[^"]*"|\{[^}]*\}|![^!]*!|\+[^+\s]*\+|%.*$|\\|\s+)
  | (?P<field>\[[A-Za-z]:[^\]]*\])
  | (?P<bar>:\|:|:\|\]?|\|\]|\|\||\|:|\[\||::|\|)(?P<ending>\s*\[?[12](?![0-9/]))?
  | (?P<ending2>\[[12](?![0-9/]))
  | (?P<tuplet>\((?P<p>[2-9])(?::[0-9]*(?::[0-9]*)?)?)
  | (?P<slur>[()])
  | (?P<chord>\[)
  | (?P<note>(?P<acc>\^\^|\^|__|_|=)?(?P<letter>[A-Ga-g])(?P<octave>[,']*)
       (?P<dur>[0-9]*(?:/[0-9]*)*))
  | (?P<rest>[zx](?P<rdur>[0-9]*(?:/[0-9]*)*))
  | (?P<broken>>{1,3}|<{1,3})
  | (?P<tie>-)
  | (?P<deco>[.~H-Wh-wyY]|[*#&$@`])
    """,
    re.VERBOSE | re.MULTILINE,
)


class ParseError(ValueError):
    """A tune this representation does not cover (chords, voices, key changes ...)."""


@dataclasses.dataclass(frozen=True)
class Key:
    tonic: str  # "C" .. "B"
    accidental: int  # -1, 0, 1 (Bb, B, F#)
    mode: str  # a key of MODES

    @classmethod
    def parse(cls, text: str) -> Key:
        m = re.fullmatch(r"\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)\s*", text)
        if not m:
            raise ParseError(f"unknown key {text.strip()!r}")
        mode = m.group(3).lower()
        mode = _MODE_NAMES.get(mode[:3] if len(mode) > 1 else mode)
        if mode is None:
            raise ParseError(f"unknown mode in key {text.strip()!r}")
        key = cls(m.group(1).upper(), {"#": 1, "b": -1, "": 0}[m.group(2)], mode)
        if abs(key.fifths) > 7:
            raise ParseError(f"key {text.strip()!r} needs more than 7 sharps or flats")
        return key

    @property
    def fifths(self) -> int:
        """Sharps (> 0) or flats (< 0) of the key signature."""
        major = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F": -1}[self.tonic]
        return major + 7 * self.accidental + MODES[self.mode]

    @property
    def pitch_class(self) -> int:
        return (STEPS[LETTERS.index(self.tonic)] + self.accidental) % 12

    def signature(self) -> dict[str, int]:
        """The alteration of each letter (upper case) under the key signature."""
        n = self.fifths
        order = SHARP_ORDER if n > 0 else SHARP_ORDER[::-1]
        return {
            letter: (1 if n > 0 else -1) if letter in order[: abs(n)] else 0 for letter in LETTERS
        }

    def __str__(self) -> str:
        return self.tonic + {1: "#", -1: "b", 0: ""}[self.accidental] + self.mode


def _duration(text: str) -> Fraction:
    """ABC length multiplier: "" 1, "3" 3, "/" 1/2, "//" 1/4, "3/2", "/4"."""
    if not text:
        return Fraction(1)
    if "/" not in text:
        return Fraction(int(text))
    num, _, rest = text.partition("/")
    if re.fullmatch(r"/*", rest):  # "/", "//": halve once per slash
        return Fraction(int(num or 1), 2 ** (1 + len(rest)))
    if "/" in rest:
        raise ParseError(f"unreadable length {text!r}")
    return Fraction(int(num or 1), int(rest or 2))


def duration_text(value: Fraction) -> str:
    """The canonical multiplier: "" for 1, "3", "/2", "3/2"."""
    if value == 1:
        return ""
    if value.denominator == 1:
        return str(value.numerator)
    return ("" if value.numerator == 1 else str(value.numerator)) + f"/{value.denominator}"


def parse_meter(text: str) -> str:
    """An M: value, normalised ("C" -> 4/4, "C|" -> 2/2, "none"); `ParseError` if unknown."""
    text = text.strip().replace(" ", "")
    if text == "C":
        return "4/4"
    if text == "C|":
        return "2/2"
    if text.lower() == "none":
        return "none"
    if not re.fullmatch(r"[1-9][0-9]?/(1|2|4|8|16)", text):
        raise ParseError(f"unknown meter {text!r}")
    return text


def _default_unit(meter: str) -> Fraction:
    """ABC's default unit length when a tune has no L: field."""
    if meter == "none":
        return UNIT
    num, den = map(int, meter.split("/"))
    return Fraction(1, 16) if Fraction(num, den) < Fraction(3, 4) else UNIT


@dataclasses.dataclass(frozen=True)
class Note:
    """A parsed note token: accidental (None = none written), diatonic index (C4 = 28, one
    per letter, 7 per octave), duration in units of `UNIT`."""

    accidental: int | None
    step: int
    duration: Fraction

    @classmethod
    def parse(cls, token: str) -> Note | None:
        m = _NOTE_TOKEN.fullmatch(token)
        if not m:
            return None
        return cls(
            None if m.group(1) is None else ACCIDENTALS[m.group(1)],
            _step(m.group(2), m.group(3)),
            _duration(m.group(4)),
        )

    @property
    def letter(self) -> str:
        return LETTERS[self.step % 7]

    @property
    def octave(self) -> int:
        return self.step // 7

    def text(self) -> str:
        octave = self.octave
        letter = self.letter if octave <= 4 else self.letter.lower()
        marks = "," * (4 - octave) if octave <= 4 else "'" * (octave - 5)
        acc = "" if self.accidental is None else _ACCIDENTAL_TEXT[self.accidental]
        return acc + letter + marks + duration_text(self.duration)


_NOTE_TOKEN = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)([0-9]*(?:/[0-9]*)?)")


def _step(letter: str, marks: str) -> int:
    octave = 4 if letter.isupper() else 5
    octave += marks.count("'") - marks.count(",")
    return octave * 7 + LETTERS.index(letter.upper())


def _fields(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """(header fields by letter, body lines) of one X: record; the K: line ends the header."""
    header: dict[str, list[str]] = {}
    body: list[str] = []
    for line in text.splitlines():
        field = re.match(r"([A-Za-z]):(.*)", line)
        if "K" not in header:
            if field:
                header.setdefault(field.group(1), []).append(field.group(2).strip())
        elif field and field.group(1) in "KLMPV":
            raise ParseError(f"{field.group(1)}: field inside the tune body")
        elif not field:  # W: lyrics, N: notes ... inside the body are left out
            body.append(line)
    return header, body


def tokenize(text: str) -> list[str]:
    """One ABC tune (an `X:` record, header and body) -> tokens; `ParseError` if it is not
    a single-voice melody this representation covers."""
    header, body = _fields(text)
    if "K" not in header:
        raise ParseError("no K: field")
    for letter in "MKL":
        if len(header.get(letter, [])) > 1:
            raise ParseError(f"more than one {letter}: field")
    if "V" in header:
        raise ParseError("several voices")
    meter = parse_meter(header.get("M", ["none"])[0])
    key = Key.parse(header["K"][0])
    if "L" in header:
        m = re.fullmatch(r"1/([0-9]+)", header["L"][0].replace(" ", ""))
        if not m or int(m.group(1)) not in (1, 2, 4, 8, 16, 32, 64):
            raise ParseError(f"unknown unit length {header['L'][0]!r}")
        unit = Fraction(1, int(m.group(1)))
    else:
        unit = _default_unit(meter)
    tokens = [f"M:{meter}", f"K:{key}", "L:1/8", *tokenize_body("\n".join(body), unit / UNIT)]
    if not any(Note.parse(t) for t in tokens[3:]):
        raise ParseError("no notes")
    return tokens


def tokenize_body(text: str, scale: Fraction = Fraction(1)) -> list[str]:
    """Tokens of ABC music without a header (the body of a tune, or `compose --prime`);
    `scale` converts the text's unit length to eighths (2 for L:1/4)."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _BODY.match(text, pos)
        if m is None:
            raise ParseError(f"unreadable {text[pos : pos + 10]!r}")
        pos = m.end()
        if m.group("skip") or m.group("slur") or m.group("deco"):
            continue
        if m.group("field"):
            raise ParseError(f"inline field {m.group('field')}")
        if m.group("chord"):
            raise ParseError("chords")
        if m.group("bar"):
            bar = {":|:": "::", "[|": "||", ":|]": ":|"}.get(m.group("bar"), m.group("bar"))
            if tokens and tokens[-1] in BAR_LINES:  # "|\n|": one bar line, the stronger
                if tokens[-1] == "|":
                    tokens[-1] = bar
            else:
                tokens.append(bar)
            if m.group("ending"):
                tokens.append("[" + m.group("ending").strip().lstrip("[")[-1])
        elif m.group("ending2"):
            tokens.append(m.group("ending2"))
        elif m.group("tuplet"):
            tokens.append(f"({m.group('p')}")
        elif m.group("note") or m.group("rest"):
            text_length = m.group("dur") if m.group("note") else m.group("rdur")
            try:
                length = _duration(text_length) * scale
            except (ValueError, ZeroDivisionError) as err:
                raise ParseError(f"unreadable length {text_length!r}") from err
            if m.group("rest"):
                tokens.append("z" + duration_text(length))
                continue
            acc = m.group("acc")
            step = _step(m.group("letter"), m.group("octave"))
            tokens.append(Note(None if acc is None else ACCIDENTALS[acc], step, length).text())
        elif m.group("broken"):
            tokens.append(m.group("broken")[:2])
        elif m.group("tie"):
            tokens.append("-")
    return tokens


def split_tunes(text: str) -> list[str]:
    """The `X:` records of an ABC file, each from its X: line to the next."""
    starts = [m.start() for m in re.finditer(r"^X:", text, re.M)]
    ends = [*starts[1:], len(text)] if starts else []
    return [text[a:b].strip() for a, b in zip(starts, ends, strict=True)]


def render(tokens: list[str], number: int = 1) -> str:
    """Tokens -> ABC text (an `X:` record); bar lines stand between spaces."""
    n = 0  # the leading header tokens; any later one is written as an inline field
    while n < min(3, len(tokens)) and tokens[n][:2] in ("M:", "K:", "L:"):
        n += 1
    header = {t[:2]: t[2:] for t in tokens[:n]}
    body = tokens[n:]
    lines = [f"X:{number}", f"M:{header.get('M:', 'none')}", f"L:{header.get('L:', '1/8')}"]
    lines.append(f"K:{header.get('K:', 'C')}")
    out, bars = [], 0
    for token in body:
        if token[:2] in ("M:", "K:", "L:"):  # generated inside the body: an inline field
            out.append(f"[{token}]")
        elif token in BAR_LINES:
            bars += 1
            out.append(f" {token}\n" if bars % 4 == 0 else f" {token} ")
        else:
            out.append(token)
    lines += [line.strip() for line in "".join(out).split("\n") if line.strip()]
    return "\n".join(lines) + "\n"


def key_of(tokens: list[str]) -> Key | None:
    key = next((t[2:] for t in tokens[:3] if t.startswith("K:")), None)
    try:
        return None if key is None else Key.parse(key)
    except ParseError:
        return None


def meter_of(tokens: list[str]) -> str | None:
    return next((t[2:] for t in tokens[:3] if t.startswith("M:")), None)


def transpose(tokens: list[str], semitones: int) -> list[str] | None:
    """The tune moved by `semitones` (-11 .. 11), spelled in the new key with at most six
    sharps or flats; every interval is kept. None if no such spelling exists or a note
    would need a triple accidental."""
    key = key_of(tokens)
    if key is None:
        return None
    target = (key.pitch_class + semitones) % 12
    spellings = []
    for letter in LETTERS:
        for acc in (-1, 0, 1):
            if (STEPS[LETTERS.index(letter)] + acc) % 12 == target:
                candidate = Key(letter, acc, key.mode)
                if abs(candidate.fifths) <= 6:
                    spellings.append(candidate)
    if not spellings:
        return None
    new = min(spellings, key=lambda k: (abs(k.fifths), k.accidental))
    # Diatonic shift d with the tonic moving by exactly `semitones`.
    old_index, new_index = LETTERS.index(key.tonic), LETTERS.index(new.tonic)
    shift = None
    for d in range(-7, 8):
        if (old_index + d) % 7 != new_index:
            continue
        octave, letter = divmod(old_index + d, 7)
        moved = 12 * octave + STEPS[letter] + new.accidental - STEPS[old_index] - key.accidental
        if moved == semitones:
            shift = d
    if shift is None:
        return None
    old_sig, new_sig = key.signature(), new.signature()
    out = [t if not t.startswith("K:") else f"K:{new}" for t in tokens[:3]]
    for token in tokens[3:]:
        note = Note.parse(token)
        if note is None:
            out.append(token)
            continue
        step = note.step + shift
        acc = note.accidental
        if acc is not None:
            acc = new_sig[LETTERS[step % 7]] + acc - old_sig[note.letter]
            if abs(acc) > 2:
                return None
        out.append(Note(acc, step, note.duration).text())
    return out


_TUPLET_TIME = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}


@dataclasses.dataclass
class Analysis:
    """What the musical checks need of a tune."""

    bars: list[tuple[str, Fraction, str]]  # (bar line before, duration in UNIT, bar line after)
    pitches: list[int]  # MIDI numbers of the notes, in order (tied notes once)
    onsets: list[tuple[Fraction, Fraction, int]]  # (start, duration, MIDI) in UNIT, for plots

    def complete_bars(self) -> list[Fraction]:
        """Durations of the bars with a plain `|` on both sides: not the pick-up, not the
        last bar, not the short bars around repeats and endings."""
        return [d for before, d, after in self.bars if before == "|" and after == "|"]


def analyse(tokens: list[str]) -> Analysis:
    """Durations and pitches, with ABC's rules: accidentals last to the end of the bar (for
    the same letter and octave), tuplets and broken rhythm scale durations, ties join."""
    key = key_of(tokens)
    meter = meter_of(tokens) or "none"
    signature = key.signature() if key else dict.fromkeys(LETTERS, 0)
    beats = 0 if meter == "none" else int(meter.split("/")[0])
    compound = beats > 3 and beats % 3 == 0  # 6/8, 9/8, 12/8; 3/4 and 3/8 are simple
    carried: dict[int, int] = {}
    bars, pitches, onsets = [], [], []
    time, bar_start, before = Fraction(0), Fraction(0), "start"
    tuplet_left, tuplet_scale = 0, Fraction(1)
    broken_next, tie = Fraction(1), False
    last_index = None
    for token in tokens[3:]:
        note = Note.parse(token)
        if token in BAR_LINES:
            bars.append((before, time - bar_start, token))
            bar_start, before = time, token
            carried = {}
        elif token.startswith("(") and token[1:].isdigit():
            p = int(token[1:])
            tuplet_left = p
            tuplet_scale = Fraction(_TUPLET_TIME.get(p, 3 if compound else 2), p)
        elif token in (">", ">>", "<", "<<"):
            if last_index is None:
                continue
            short = Fraction(1, 2 ** len(token))  # ">": 3/2 then 1/2; ">>": 7/4 then 1/4
            kept, given = (2 - short, short) if token[0] == ">" else (short, 2 - short)
            start, length, pitch = onsets[last_index]
            onsets[last_index] = (start, length * kept, pitch)
            time += length * (kept - 1)
            broken_next = given
        elif token == "-":
            tie = True
        elif note is not None or token.startswith("z"):
            length = note.duration if note is not None else _duration(token[1:])
            length *= broken_next
            if tuplet_left:
                length *= tuplet_scale
                tuplet_left -= 1
            broken_next = Fraction(1)
            if note is not None:
                if note.accidental is not None:
                    carried[note.step] = note.accidental
                alter = carried.get(note.step, signature[note.letter])
                pitch = 12 * (note.octave + 1) + STEPS[note.step % 7] + alter
                if tie and onsets and onsets[-1][2] == pitch:
                    start, old, _ = onsets[-1]
                    onsets[-1] = (start, old + length, pitch)
                else:
                    pitches.append(pitch)
                    onsets.append((time, length, pitch))
                last_index = len(onsets) - 1
            else:
                last_index = None
            tie = False
            time += length
    if time > bar_start:
        bars.append((before, time - bar_start, "end"))
    return Analysis(bars, pitches, onsets)


def bar_duration(meter: str) -> Fraction | None:
    """A full bar in UNIT, or None for free meter."""
    if meter == "none":
        return None
    num, den = map(int, meter.split("/"))
    return Fraction(num, den) / UNIT
