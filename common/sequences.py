"""Biological sequence files as the field writes them: FASTA and CSV/TSV tables.

    records = read_fasta("peaks.fa")               # [Record(id, sequence, header, where)]
    table = read_table("train.tsv")                # Table(path, header, rows, lines)
    table.column("sequence", ("sequence", "seq"))  # the column's index, or UserError
    first_bad(sequence, allowed)                   # index of the first letter not allowed

Files may be gzip-compressed (`.gz`, as DeepBind's and ENCODE's are). FASTA is parsed
with Biopython's `SimpleFastaParser` (the field's reader; it joins wrapped lines and keeps
the whole header line); every record keeps where it came from (`file:record n (id)`), so a
bad letter is reported as `peaks.fa: record 12 (chr1:100-300), position 57: 'J' is not ...`.
A table is read with the `csv` module: the delimiter is a tab for `.tsv`, `.tab`, `.seq` and
`.txt`, a comma otherwise; the first row is the header. A byte-order mark is ignored.

Nothing here imports Keras or TensorFlow; the in-model one-hot of an alphabet is
`common.tokenization.OneHotAlphabet`.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from common.errors import UserError

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".faa", ".ffn", ".seq.fa")
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".seq", ".txt")
_TAB_SUFFIXES = (".tsv", ".tab", ".seq", ".txt")


@dataclasses.dataclass(frozen=True)
class Record:
    """One sequence: its `id` (the header's first word), the `sequence` as written (case
    kept), the rest of the header line (`description`, "" when none) and `where` it was
    read (`file: record n (id)` or `file:line`), for error messages."""

    id: str
    sequence: str
    description: str
    where: str


def base_suffix(path: os.PathLike) -> str:
    """The suffix that says the format, `.gz` looked through: peaks.fa.gz -> .fa."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def is_fasta(path: os.PathLike) -> bool:
    return base_suffix(path) in FASTA_SUFFIXES


def is_table(path: os.PathLike) -> bool:
    return base_suffix(path) in TABLE_SUFFIXES


def read_text(path: os.PathLike) -> str:
    """A UTF-8 text file (gzip-compressed when its name ends in .gz); a byte-order mark is
    dropped. Unreadable, undecodable or empty files are a one-line `UserError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix.lower() == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise UserError(f"{path}: cannot read: {reason}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[err.start]:02x})") from None
    if not text.strip():
        raise UserError(f"{path}: file is empty")
    return text


def read_fasta(path: os.PathLike) -> list[Record]:
    """Every record of a FASTA file, in order. Text before the first `>` header, a header
    with no name and a record with no sequence are one-line `UserError`s."""
    return parse_fasta(read_text(path), Path(path))


def parse_fasta(text: str, path: Path) -> list[Record]:
    """The records of FASTA `text` read from `path` (named in errors), as `read_fasta`."""
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    first = text.lstrip()
    if not first.startswith(">"):
        raise UserError(f"{path}:1: not FASTA (a record starts with a '>' header line)")
    records = []
    for n, (title, sequence) in enumerate(SimpleFastaParser(io.StringIO(text)), start=1):
        name, _, description = title.strip().partition(" ")
        where = f"{path}: record {n}" + (f" ({name})" if name else "")
        if not name:
            raise UserError(f"{where}: the header line has no name after '>'")
        sequence = sequence.replace(" ", "").replace("\t", "").replace("\r", "")
        if not sequence:
            raise UserError(f"{where}: empty sequence")
        records.append(Record(name, sequence, description.strip(), where))
    return records


def pasted_sequence(text: str, where: str = "--sequence") -> str:
    """The one sequence a person pasted: a FASTA record, or bare letters (line breaks and
    spaces dropped); several records are refused."""
    text = text.strip()
    if not text.startswith(">"):
        return "".join(text.split())
    records = parse_fasta(text, Path(where))
    if len(records) != 1:
        raise UserError(f"{where}: {len(records)} FASTA records; paste one")
    return records[0].sequence


@dataclasses.dataclass(frozen=True)
class Table:
    """A CSV/TSV file: its `header` (stripped names), data `rows` (each as long as the
    header) and the file `lines` they start on."""

    path: Path
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    lines: tuple[int, ...]

    def find(self, candidates: Sequence[str]) -> int | None:
        """The index of the first of `candidates` in the header (case-insensitive), or None."""
        lowered = [h.lower() for h in self.header]
        return next((lowered.index(n.lower()) for n in candidates if n.lower() in lowered), None)

    def column(self, option: str, candidates: Sequence[str], given: str | None = None) -> int:
        """The index of column `given` (named by the user with `option`), or else of the
        first of `candidates` in the header (case-insensitive). Missing: UserError listing
        the header."""
        found = self.find([given] if given else candidates)
        if found is not None:
            return found
        what = f"no column {given!r}" if given else f"no column named {' or '.join(candidates)}"
        raise UserError(
            f"{self.path}:1: {what} (columns: {', '.join(self.header)}); name it with {option}"
        )

    def where(self, row: int) -> str:
        return f"{self.path}:{self.lines[row]}"


def read_table(path: os.PathLike) -> Table:
    """A CSV (comma) or TSV (tab: .tsv, .tab, .seq, .txt) file with a header row. Quoted
    fields are honoured in CSV only; blank lines are skipped; a row with another number of
    fields than the header is a one-line `UserError` naming its line."""
    path = Path(path)
    text = read_text(path)
    tab = base_suffix(path) in _TAB_SUFFIXES
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter="\t" if tab else ",",
        quoting=csv.QUOTE_NONE if tab else csv.QUOTE_MINIMAL,
    )
    header, rows, lines = None, [], []
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            fields = tuple(f.strip() for f in fields)
            if header is None:
                header = fields
                continue
            if len(fields) != len(header):
                raise UserError(
                    f"{path}:{line}: {len(fields)} fields, the header has {len(header)} "
                    f"({'tab' if tab else 'comma'}-separated)"
                )
            rows.append(fields)
            lines.append(line)
    except csv.Error as err:
        raise UserError(f"{path}:{reader.line_num}: {err}") from None
    if not rows:
        raise UserError(f"{path}: a header and no rows")
    return Table(path, header, tuple(rows), tuple(lines))


def first_bad(sequence: str, allowed: Iterable[str]) -> int | None:
    """The index of the first character of `sequence` not in `allowed`, or None."""
    allowed = frozenset(allowed)
    for i, ch in enumerate(sequence):
        if ch not in allowed:
            return i
    return None


def check_letters(where: str, sequence: str, allowed: Iterable[str], what: str) -> None:
    """A one-line `UserError` at the first letter of `sequence` not in `allowed`, e.g.
    `peaks.fa: record 3 (x), position 12: 'J' is not a nucleotide or IUPAC code`
    (positions count from 1, as the field does)."""
    bad = first_bad(sequence, allowed)
    if bad is not None:
        raise UserError(f"{where}, position {bad + 1}: {sequence[bad]!r} is not {what}")
