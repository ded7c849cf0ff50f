"""Protein chains with per-residue secondary structure: the shipped set and your files.

    --data omitted   the NetSurfP-2.0 chains of FLIP's secondary-structure split, shipped
                     in this repository (default_data/, AFL-3.0): 9,712 train, 1,080
                     validation, 364 test chains (NEW364), 3 states, a mask of resolved
                     residues
    FILE.fa          FASTA pairs: each sequence record followed by its structure record
                     (the same name, or `name` then `name_ss`/`name:secstr`)
    FILE.csv|.tsv    a sequence column (sequence, seq, input) and a structure column
                     (structure, ss, dssp, expected, label); optional mask column (mask,
                     resolved; 1 = resolved). The CB513 / CullPDB CSVs of cu-ssp read as
                     they are (id, len, input, expected)

Per-residue features (optional, `--features FILE.npz`): one float array [length, k] per
chain, keyed by the chain's id (a PSSM or HMM profile: 20 or 21 columns, any k), in an
archive written by `numpy.savez`; read without unpickling anything.

Residues: the 20 amino acids, and X (unknown), B (D or N), Z (E or Q), U (selenocysteine,
read as C), O (pyrrolysine, read as K), either case; anything else is a one-line error
naming the record and position. States: with `--states 3`, eight-state DSSP labels are
reduced the standard way (H, G, I -> H; E, B -> E; T, S, C and coil written as L, - or a
space -> C); with `--states 8`, the letters H G I E B T S C (coil as C, L or -).
A residue whose mask is 0 (unresolved in the structure) counts in no loss and no score.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from common import data as common_data
from common import sequences
from common.errors import UserError
from recipes.protein.config import HELDOUT_FILE, STATES

__all__ = ["HELDOUT_FILE"]

DEFAULT_FILE = Path(__file__).resolve().parent / "default_data" / "flip_secondary_structure.zip"
DEFAULT_DESCRIPTION = "NetSurfP-2.0 chains, FLIP secondary-structure split (AFL-3.0)"
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# The ambiguity codes as shares of the 20 (X: all alike).
_AMBIGUOUS = {"B": "DN", "Z": "EQ", "U": "C", "O": "K", "X": AMINO_ACIDS}
LETTERS = frozenset(AMINO_ACIDS + "".join(_AMBIGUOUS)) | frozenset(
    (AMINO_ACIDS + "".join(_AMBIGUOUS)).lower()
)
NOT_A_RESIDUE = "an amino acid (the 20, or X, B, Z, U, O)"
# Eight DSSP states -> three, and the spellings of coil.
TO_3 = {"H": "H", "G": "H", "I": "H", "E": "E", "B": "E", "T": "C", "S": "C", "C": "C"}
COIL = {"L": "C", "-": "C", " ": "C", "P": "C"}
SEQUENCE_COLUMNS = ("sequence", "seq", "input", "primary")
STRUCTURE_COLUMNS = ("structure", "ss", "dssp", "expected", "label", "secondary_structure")
MASK_COLUMNS = ("mask", "resolved")


def one_hot_table() -> dict[str, list[float]]:
    """Each residue letter's vector over the 20 amino acids (ambiguity codes as shares)."""
    table = {a: [float(a == b) for b in AMINO_ACIDS] for a in AMINO_ACIDS}
    for code, options in _AMBIGUOUS.items():
        table[code] = [1.0 / len(options) if b in options else 0.0 for b in AMINO_ACIDS]
    return table


@dataclasses.dataclass(frozen=True)
class Chain:
    id: str
    sequence: str
    states: str  # one state letter per residue, of the run's state set ("" unknown)
    mask: str  # "1" resolved, "0" unresolved, per residue
    # float32[length, k] per-residue features (`--features`), or None
    features: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class ChainSet:
    chains: tuple[Chain, ...]
    description: str
    # The shipped set's own parts: {"train": ..., "validation": ..., "test": ...}.
    parts: dict | None = None


def convert_states(where: str, structure: str, states: int) -> str:
    """`structure` in the letters of `states` (3: reduced from DSSP's eight)."""
    out = []
    for i, letter in enumerate(structure.upper()):
        letter = COIL.get(letter, letter)
        if states == 3:
            letter = TO_3.get(letter, letter)
        if letter not in STATES[states]:
            raise UserError(
                f"{where}, position {i + 1}: {structure[i]!r} is not a state of "
                f"--states {states} ({' '.join(STATES[states])}"
                + (", or DSSP's G I B T S" if states == 3 else "")
                + ")"
            )
        out.append(letter)
    return "".join(out)


def _chain(where, name, sequence, structure, mask, states) -> Chain:
    if not sequence:
        raise UserError(f"{where}: empty chain")
    sequences.check_letters(where, sequence, LETTERS, NOT_A_RESIDUE)
    if structure is not None:
        if len(structure) != len(sequence):
            raise UserError(
                f"{where}: the structure has {len(structure)} states for {len(sequence)} residues"
            )
        structure = convert_states(where, structure, states)
    if mask is None:
        mask = "1" * len(sequence)
    elif len(mask) != len(sequence) or set(mask) - {"0", "1"}:
        raise UserError(f"{where}: the mask must be one 0 or 1 per residue")
    return Chain(name, sequence, structure or "", mask)


def given_chain(sequence: str, states: int, what: str = "--sequence") -> Chain:
    """One chain typed in (`predict --sequence`, the demo), id `sequence`: its letters
    with the ends stripped, or a one-line `UserError`."""
    return _chain(what, "sequence", sequence.strip(), None, None, states)


def read_default(states: int) -> ChainSet:
    if states != 3:
        raise UserError("the shipped NetSurfP-2.0 set has 3 states only; use --states 3")
    with zipfile.ZipFile(DEFAULT_FILE) as archive:

        def fasta(name):
            text = archive.read(f"splits/{name}").decode("ascii")
            path = DEFAULT_FILE / name
            return sequences.parse_fasta(text, path)

        seqs = {r.id: r.sequence for r in fasta("sequences.fasta")}
        masks = {r.id: r.sequence for r in fasta("mask.fasta")}
        labels = fasta("sampled.fasta")
    parts = {"train": [], "validation": [], "test": []}
    for r in labels:
        fields = dict(f.split("=", 1) for f in r.description.split())
        part = (
            "test"
            if fields["SET"] == "test"
            else ("validation" if fields["VALIDATION"] == "True" else "train")
        )
        parts[part].append(_chain(r.where, r.id, seqs[r.id], r.sequence, masks[r.id], states))
    parts = {k: tuple(v) for k, v in parts.items()}
    return ChainSet(
        parts["train"] + parts["validation"] + parts["test"], DEFAULT_DESCRIPTION, parts
    )


def _read_fasta_pairs(path: Path, states: int, labels: bool) -> list[Chain]:
    records = sequences.read_fasta(path)
    if not labels:
        return [_chain(r.where, r.id, r.sequence, None, None, states) for r in records]
    if len(records) % 2:
        raise UserError(
            f"{records[-1].where}: a sequence without its structure record (FASTA pairs: "
            "each sequence record is followed by its structure)"
        )
    return [
        _chain(seq.where, seq.id, seq.sequence, ss.sequence, None, states)
        for seq, ss in zip(records[::2], records[1::2], strict=True)
    ]


def _read_table(path: Path, states: int, labels: bool, columns: dict) -> list[Chain]:
    table = sequences.read_table(path)
    seq_col = table.column("--sequence-column", SEQUENCE_COLUMNS, columns.get("sequence"))
    ss_col = None
    if labels:
        ss_col = table.column("--structure-column", STRUCTURE_COLUMNS, columns.get("structure"))
    mask_col = table.find(MASK_COLUMNS)
    id_col = table.find(["id"])
    chains = []
    for i, row in enumerate(table.rows):
        name = row[id_col] if id_col is not None else f"{path.name}:{table.lines[i]}"
        chains.append(
            _chain(
                table.where(i),
                name,
                row[seq_col],
                row[ss_col] if ss_col is not None else None,
                row[mask_col] if mask_col is not None else None,
                states,
            )
        )
    return chains


def read_features(path: Path, what: str = "--features") -> dict[str, np.ndarray]:
    """{chain id: float32[length, k]} from a `.npz` archive (numpy.savez), every array of
    the same width k; pickled objects are refused, not loaded. One-line `UserError`s."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what}: no such file: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("one array, not an archive of one per chain")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(
            f"{what} {path}: not a NumPy .npz archive of arrays (numpy.savez): {err}"
        ) from None
    if not arrays:
        raise UserError(f"{what} {path}: the archive holds no arrays")
    widths = set()
    for name, array in arrays.items():
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise UserError(
                f"{what} {path}: {name}: expected numbers [residues, features], got "
                f"{array.dtype} {list(array.shape)}"
            )
        if not np.isfinite(array).all():
            row = int(np.argwhere(~np.isfinite(array))[0][0]) + 1
            raise UserError(f"{what} {path}: {name}, residue {row}: not a finite number")
        widths.add(array.shape[1])
    if len(widths) != 1 or 0 in widths:
        raise UserError(
            f"{what} {path}: every chain needs the same number of features (got "
            f"{', '.join(map(str, sorted(widths)))})"
        )
    return {name: array.astype(np.float32) for name, array in arrays.items()}


def attach_features(chains, table: dict, path: Path, what="--features") -> tuple[Chain, ...]:
    """`chains` with their rows of the `--features` archive `table` (matched by id)."""
    out = []
    for chain in chains:
        rows = table.get(chain.id)
        if rows is None:
            raise UserError(f"{what} {path}: no array for chain {chain.id}")
        if len(rows) != len(chain.sequence):
            raise UserError(
                f"{what} {path}: {chain.id} has {len(rows)} rows of features for "
                f"{len(chain.sequence)} residues"
            )
        out.append(dataclasses.replace(chain, features=rows))
    return tuple(out)


def write_features(path: Path, chains) -> None:
    """The chains' features as an archive `read_features` reads (the held-out ones)."""
    from common.runtime import atomic_write

    def write(tmp):  # numpy.savez's layout (NAME.npy members), any chain id as a name
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for chain in chains:
                with archive.open(f"{chain.id}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, chain.features, allow_pickle=False)

    atomic_write(path, write, ".npz")


def feature_width(chains) -> int:
    """k of the chains' features (0: none); all or none of them must have them."""
    widths = {0 if c.features is None else c.features.shape[1] for c in chains}
    if len(widths) > 1:
        raise UserError(f"the chains' features differ in width: {sorted(widths)}")
    return widths.pop() if widths else 0


def load(
    spec,
    states: int,
    *,
    labels: bool = True,
    columns=None,
    what="--data",
    features: Path | None = None,
) -> ChainSet:
    """The chains of `--data spec` (labels: their structures are required), with their
    `features` (an .npz archive) when given."""
    chain_set = _load(spec, states, labels=labels, columns=columns, what=what)
    if features is None:
        return chain_set
    table = read_features(features)
    parts = chain_set.parts and {
        k: attach_features(v, table, features) for k, v in chain_set.parts.items()
    }
    chains = attach_features(chain_set.chains, table, features)
    return ChainSet(chains, chain_set.description, parts)


def _load(spec, states: int, *, labels: bool, columns, what) -> ChainSet:
    source = common_data.resolve(spec, what=what)
    if source.kind == "default":
        return read_default(states)
    if source.kind == "tfds":
        raise UserError(f"{what}: give a FASTA or CSV/TSV file; TFDS has no set this reads")
    path = source.path
    if path.is_dir():
        raise UserError(f"{what} {path}: expected a FASTA or CSV/TSV file, not a directory")
    if sequences.is_fasta(path):
        chains = _read_fasta_pairs(path, states, labels)
    elif sequences.is_table(path):
        chains = _read_table(path, states, labels, columns or {})
    else:
        raise UserError(f"{path}: not a FASTA (.fa, .fasta) or table (.csv, .tsv) file")
    return ChainSet(tuple(chains), str(path))


def heldout_table(chains) -> str:
    """Chains as a TSV table with their mask (id, sequence, structure, mask), the form
    `load` reads back."""
    rows = [f"{c.id}\t{c.sequence}\t{c.states}\t{c.mask}\n" for c in chains]
    return "id\tsequence\tstructure\tmask\n" + "".join(rows)


def encode_states(chains, states: int) -> list[np.ndarray]:
    index = {s: i for i, s in enumerate(STATES[states])}
    return [np.array([index[s] for s in c.states], np.int32) for c in chains]
