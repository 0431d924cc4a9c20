"""Reading and writing molecules with errors that name the input and the reason.

One entry point turns user input into an RDKit molecule: `to_mol` (SMILES, InChI or a Mol).
File readers return a DataFrame with one row per record: the parsed `mol` (or None), an
`error` column (None when the record parsed) and a `record` column holding the record's
position (1-based line number for line-based formats, record number for SDF/MOL2/XYZ).
With ``errors="raise"`` the first bad record raises `ParseError` instead.

Supported formats (by extension, optionally gzip-compressed with a trailing ``.gz``):
SMILES (.smi/.smiles/.txt), tables with a SMILES column (.csv/.tsv), SDF/MOL (.sdf/.mol),
MOL2 (.mol2), PDB ligands (.pdb, bond orders from a template SMILES or perceived from
hydrogens) and XYZ (.xyz, bonds perceived with RDKit's xyz2mol port, charge given or read
from ``charge=`` in the comment line). Writers handle .sdf, .csv, .parquet and .smi.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd
from rdkit import Chem, rdBase
from rdkit.Chem import AllChem, rdDetermineBonds

from molops.errors import InputFileError, ParseError, UnsupportedElementError, describe_input
from molops.table import object_column

__all__ = [
    "ORGANIC_ELEMENTS",
    "to_mol",
    "check_elements",
    "read_molecules",
    "output_format",
    "read_molecule",
    "write_molecules",
    "mol_to_smiles",
    "molecule_items",
    "rdkit_errors",
]

#: Elements the toolkit's physics (MMFF94, minimal-basis quantum features) is built for.
ORGANIC_ELEMENTS: frozenset[str] = frozenset(
    {"H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Br", "I"}
)

ErrorMode = Literal["record", "raise"]
SMILES_COLUMN_CANDIDATES = ("smiles", "canonical_smiles", "smi", "smiles_string")
_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")


# --------------------------------------------------------------------------------------------
# RDKit log capture: RDKit reports *why* parsing failed only through its log.
# --------------------------------------------------------------------------------------------
_RDKIT_LOG_LOCK = threading.RLock()


class _Capture:
    """Collected RDKit error-log lines, cleaned of timestamps and echo/caret lines."""

    def __init__(self) -> None:
        self.raw = ""

    def reason(self, default: str = "unknown RDKit error") -> str:
        lines: list[str] = []
        skip_echo = False
        for raw in self.raw.splitlines():
            line = _TIMESTAMP.sub("", raw).strip()
            if skip_echo:  # RDKit echoes the input on the line after "check for mistakes"
                skip_echo = False
                continue
            if not line or set(line) <= {"~", "^", " "} or "Failed parsing SMILES" in line:
                continue
            skip_echo = "check for mistakes" in line
            lines.append(line.removeprefix("SMILES Parse Error: ").rstrip(":"))
        return "; ".join(dict.fromkeys(lines)) or default


@contextmanager
def rdkit_errors() -> Iterator[_Capture]:
    """Capture RDKit's error log (instead of printing it) for use in exception messages."""
    capture = _Capture()
    # RDKit's log redirection is process-global: two threads (Dask workers with
    # processes=False) entering and leaving captures out of order would leave the logger
    # writing to a freed stream, which crashed the interpreter at exit. One capture at a time.
    with _RDKIT_LOG_LOCK, _capture_into(capture):
        yield capture


@contextmanager
def _capture_into(capture: _Capture) -> Iterator[None]:
    # BlockLogs (outer) mutes warnings that would flood batch jobs; the inner capture still
    # receives the error channel. The order matters: the other way round nothing is captured.
    with rdBase.BlockLogs(), rdBase.CaptureErrorLog() as log:
        try:
            yield
        finally:
            capture.raw = log.messages


def _sanitize(mol: Chem.Mol, label: str) -> Chem.Mol:
    try:
        with rdkit_errors():
            Chem.SanitizeMol(mol)
    except Chem.rdchem.MolSanitizeException as exc:
        raise ParseError(f"{label}: sanitisation failed: {exc}") from None
    return mol


def check_elements(
    mol: Chem.Mol, allowed: Iterable[str] = ORGANIC_ELEMENTS, label: str | None = None
) -> Chem.Mol:
    """Raise `UnsupportedElementError` if `mol` holds an element outside `allowed`.

    Returns the molecule unchanged so the call can be chained.
    """
    allowed = frozenset(allowed)
    bad = {}
    for atom in mol.GetAtoms():
        symbol = atom.GetSymbol()
        if symbol not in allowed:
            bad.setdefault(symbol, atom.GetIdx())
    if bad:
        label = label or describe_input(mol_to_smiles(mol))
        found = ", ".join(f"{el} (atom {idx})" for el, idx in bad.items())
        raise UnsupportedElementError(
            f"{label}: unsupported element(s) {found}; supported: {', '.join(sorted(allowed))}. "
            "Metal complexes are outside this toolkit's scope; salts with metal counter-ions "
            "can be reduced to their organic part with molops.standardize."
        )
    return mol


def to_mol(
    value: str | Chem.Mol,
    *,
    name: str | None = None,
    allowed_elements: Iterable[str] | None = None,
) -> Chem.Mol:
    """Turn a SMILES string, an InChI string or an RDKit Mol into a sanitised RDKit Mol.

    Args:
        value: SMILES, ``InChI=...`` string, or an RDKit ``Mol`` (returned as is).
        name: optional name stored as the ``_Name`` property.
        allowed_elements: if given, elements outside this set raise `UnsupportedElementError`.

    Raises:
        ParseError: the input is empty, not parsable, or fails sanitisation; the message
            quotes the input and RDKit's reason.
    """
    if isinstance(value, Chem.Mol):
        mol = value
    elif isinstance(value, str):
        text = value.strip()
        label = f"SMILES {describe_input(value)}"
        if not text:
            raise ParseError(f"{label}: empty string")
        with rdkit_errors() as log:
            if text.startswith("InChI="):
                label = f"InChI {describe_input(value)}"
                mol = Chem.MolFromInchi(text, sanitize=True)
            else:
                mol = Chem.MolFromSmiles(text, sanitize=False)
        if mol is None:
            raise ParseError(f"{label}: cannot parse: {log.reason()}")
        mol = _sanitize(mol, label)
    else:
        raise ParseError(
            f"cannot make a molecule from {describe_input(value)} of type {type(value).__name__}; "
            "expected a SMILES/InChI string or an RDKit Mol"
        )
    if mol is None:
        raise ParseError("got None instead of a molecule (an earlier RDKit call failed)")
    if mol.GetNumAtoms() == 0:  # e.g. Chem.MolFromSmiles("") gives an empty Mol, not None
        raise ParseError("an RDKit Mol with no atoms")
    if name is not None:
        mol.SetProp("_Name", str(name))
    if allowed_elements is not None:
        check_elements(mol, allowed_elements)
    return mol


def mol_to_smiles(mol: Chem.Mol | None) -> str | None:
    """Canonical isomeric SMILES, or None for a missing molecule."""
    if mol is None:
        return None
    return Chem.MolToSmiles(mol)


# --------------------------------------------------------------------------------------------
# Readers: each yields _Record objects; read_molecules turns them into a DataFrame.
# --------------------------------------------------------------------------------------------
@dataclass
class _Record:
    record: int
    mol: Chem.Mol | None
    error: str | None
    props: dict[str, Any] = field(default_factory=dict)


def _open_text(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":  # as the format check reads it: x.SMI.GZ is gzip too
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _parse_record(label: str, parse: Callable[[], Chem.Mol | None]) -> tuple[Chem.Mol | None, str | None]:
    """Run one record's parser; returns (mol, None) or (None, reason)."""
    try:
        with rdkit_errors() as log:
            mol = parse()
        if mol is None or mol.GetNumAtoms() == 0:
            return None, f"{label}: cannot parse: {log.reason('no atoms read')}"
        return _sanitize(mol, label), None
    except ParseError as exc:
        return None, str(exc)
    except (ValueError, RuntimeError) as exc:  # RDKit raises these from bond perception etc.
        return None, f"{label}: {exc}"


def _smiles_record(path: Path, line_no: int, smiles: str, props: dict[str, Any]) -> _Record:
    try:
        mol = to_mol(smiles)
        return _Record(line_no, mol, None, props)
    except ParseError as exc:
        return _Record(line_no, None, f"{path.name} line {line_no}: {exc}", props)


def _read_smi(path: Path, **_: Any) -> Iterator[_Record]:
    with _open_text(path) as handle:
        first = True
        for line_no, line in enumerate(handle, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            smiles, *rest = stripped.split(None, 1)
            name = rest[0] if rest else ""
            if first and smiles.lower() in SMILES_COLUMN_CANDIDATES:
                first = False
                continue  # header line (after any comments)
            first = False
            yield _smiles_record(path, line_no, smiles, {"smiles": smiles, "name": name.strip() or None})


def _find_smiles_column(columns: Iterable[str], requested: str | None, path: Path) -> str:
    columns = list(columns)
    if requested is not None:
        if requested not in columns:
            raise InputFileError(
                f"{path}: no column {requested!r}; columns are {', '.join(map(str, columns))}"
            )
        return requested
    lowered = {str(c).lower(): c for c in columns}
    for candidate in SMILES_COLUMN_CANDIDATES:
        if candidate in lowered:
            return lowered[candidate]
    raise InputFileError(
        f"{path}: cannot find a SMILES column among {', '.join(map(str, columns))}; "
        "name it with smiles_column= (CLI: --smiles-column)"
    )


def _read_table(path: Path, smiles_column: str | None = None, **_: Any) -> Iterator[_Record]:
    sep = "\t" if path.name.removesuffix(".gz").endswith(".tsv") else ","
    try:
        # Blank lines kept as empty rows (skipped below), so that row numbers stay file line numbers.
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise InputFileError(f"{path}: empty file (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: not a readable table: {exc}") from None
    column = _find_smiles_column(frame.columns, smiles_column, path)
    for row_no, row in enumerate(frame.to_dict("records")):
        line_no = row_no + 2  # header is line 1
        if not any(str(value).strip() for value in row.values()):
            continue  # a blank line
        yield _smiles_record(path, line_no, row[column], row)


def _mol_block_with_data(block: str) -> Chem.Mol | None:
    """One SDF record, data items (``> <name>``) included, unsanitised."""
    supplier = Chem.SDMolSupplier()
    supplier.SetData(block + "$$$$\n", sanitize=False, removeHs=False)
    return supplier[0] if len(supplier) else None


def _read_sdf(path: Path, remove_hs: bool = False, **_: Any) -> Iterator[_Record]:
    with _open_text(path) as handle:
        text = handle.read()
    # Split on the $$$$ delimiter ourselves so one corrupt record cannot shift the others.
    blocks = re.split(r"^\$\$\$\$[^\n]*\n?", text, flags=re.MULTILINE)
    if blocks and not blocks[-1].strip():
        blocks.pop()
    for number, block in enumerate(blocks, start=1):
        label = f"{path.name} record {number}"
        mol, error = _parse_record(label, lambda b=block: _mol_block_with_data(b))
        props: dict[str, Any] = {}
        if mol is not None:
            props = {"name": mol.GetProp("_Name") if mol.HasProp("_Name") else None}
            props.update(mol.GetPropsAsDict(includePrivate=False, includeComputed=False))
            if remove_hs:
                mol = Chem.RemoveHs(mol)
        yield _Record(number, mol, error, props)


def _read_mol2(path: Path, remove_hs: bool = False, **_: Any) -> Iterator[_Record]:
    with _open_text(path) as handle:
        text = handle.read()
    blocks = [b for b in re.split(r"(?=^@<TRIPOS>MOLECULE)", text, flags=re.MULTILINE) if b.strip()]
    blocks = [b for b in blocks if b.lstrip().startswith("@<TRIPOS>MOLECULE")]
    if not blocks:
        raise InputFileError(f"{path}: no @<TRIPOS>MOLECULE record found; not a MOL2 file")
    for number, block in enumerate(blocks, start=1):
        label = f"{path.name} record {number}"
        mol, error = _parse_record(
            label, lambda b=block: Chem.MolFromMol2Block(b, sanitize=False, removeHs=remove_hs)
        )
        name = mol.GetProp("_Name") if mol is not None and mol.HasProp("_Name") else None
        yield _Record(number, mol, error, {"name": name})


def _pdb_ligand(block: str, label: str, template_smiles: str | None, charge: int) -> Chem.Mol:
    mol = Chem.MolFromPDBBlock(block, sanitize=False, removeHs=False, proximityBonding=True)
    if mol is None or mol.GetNumAtoms() == 0:
        raise ParseError(f"{label}: no atoms could be read (malformed ATOM/HETATM records?)")
    if template_smiles is not None:
        template = to_mol(template_smiles)
        try:
            mol = AllChem.AssignBondOrdersFromTemplate(template, Chem.RemoveHs(mol, sanitize=False))
        except ValueError as exc:
            raise ParseError(
                f"{label}: template SMILES {template_smiles!r} does not match the PDB atoms: {exc}"
            ) from None
        return mol
    if not any(atom.GetAtomicNum() == 1 for atom in mol.GetAtoms()):
        raise ParseError(
            f"{label}: PDB records carry no bond orders and this ligand has no hydrogens to "
            "perceive them from; pass template_smiles= (CLI: --template-smiles)"
        )
    # PDB connectivity from CONECT/proximity is reliable; only the bond orders are perceived.
    for bond in mol.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
    rdDetermineBonds.DetermineBondOrders(mol, charge=charge)
    return mol


def _read_pdb(
    path: Path, template_smiles: str | None = None, charge: int = 0, **_: Any
) -> Iterator[_Record]:
    with _open_text(path) as handle:
        text = handle.read()
    if not re.search(r"^(ATOM  |HETATM)", text, flags=re.MULTILINE):
        raise InputFileError(f"{path}: no ATOM/HETATM records; not a PDB file")
    label = f"{path.name} record 1"
    mol, error = _parse_record(label, lambda: _pdb_ligand(text, label, template_smiles, charge))
    yield _Record(1, mol, error, {"name": path.stem})


_XYZ_CHARGE = re.compile(r"\bcharge\s*=\s*(-?\d+)", re.IGNORECASE)


def _xyz_frames(text: str, path: Path) -> Iterator[tuple[int, str]]:
    lines = text.splitlines()
    position, number = 0, 0
    while position < len(lines):
        if not lines[position].strip():
            position += 1
            continue
        number += 1
        try:
            n_atoms = int(lines[position].split()[0])
            if n_atoms < 1:
                raise ValueError
        except (ValueError, IndexError):
            raise InputFileError(
                f"{path} record {number} (line {position + 1}): expected an atom count, "
                f"got {lines[position]!r}"
            ) from None
        block = lines[position : position + n_atoms + 2]
        if len(block) < n_atoms + 2:
            raise InputFileError(
                f"{path} record {number}: file ends after {len(block) - 2} of {n_atoms} atoms"
            )
        yield number, "\n".join(block) + "\n"
        position += n_atoms + 2


def _xyz_molecule(block: str, label: str, charge: int | None) -> Chem.Mol:
    comment = block.splitlines()[1]
    if charge is None:
        match = _XYZ_CHARGE.search(comment)
        charge = int(match.group(1)) if match else 0
    mol = Chem.MolFromXYZBlock(block)
    if mol is None:
        raise ParseError(f"{label}: cannot read XYZ block (unknown element symbol or bad coordinates)")
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=charge)
    except ValueError as exc:
        raise ParseError(
            f"{label}: cannot perceive bonds with total charge {charge}: {exc}"
        ) from None
    return mol


def _read_xyz(path: Path, charge: int | None = None, **_: Any) -> Iterator[_Record]:
    with _open_text(path) as handle:
        text = handle.read()
    for number, block in _xyz_frames(text, path):
        label = f"{path.name} record {number}"
        mol, error = _parse_record(label, lambda b=block: _xyz_molecule(b, label, charge))
        yield _Record(number, mol, error, {"name": block.splitlines()[1].strip() or None})


#: Reader per file format (extension without a trailing .gz).
READERS: dict[str, Callable[..., Iterator[_Record]]] = {
    ".smi": _read_smi,
    ".smiles": _read_smi,
    ".txt": _read_smi,
    ".csv": _read_table,
    ".tsv": _read_table,
    ".sdf": _read_sdf,
    ".mol": _read_sdf,
    ".mol2": _read_mol2,
    ".pdb": _read_pdb,
    ".xyz": _read_xyz,
}


def _format_of(path: Path, table: dict[str, Any]) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in table:
        raise InputFileError(
            f"{path}: unknown format {suffix or '(no extension)'!r}; "
            f"supported: {', '.join(sorted(table))}"
        )
    return suffix


def existing_file(path: str | Path) -> Path:
    """Return `path` as a Path, raising `InputFileError` if it is not an existing file."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if not path.is_file():
        raise InputFileError(f"{path}: not a file")
    return path


def iter_molecules(path: str | Path, **options: Any) -> Iterator[_Record]:
    """Yield records lazily (for files larger than memory). Options as in `read_molecules`."""
    path = existing_file(path)
    reader = READERS[_format_of(path, READERS)]
    try:
        yield from reader(path, **options)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # e.g. plain text named .gz, a cut download
        raise InputFileError(f"{path}: not a readable gzip file ({exc})") from None


def output_format(path: str | Path) -> str:
    """The `write_molecules` format of `path` (".csv", ".sdf", ...).

    Raises:
        InputFileError: the extension names no format `write_molecules` can write.
    """
    return _format_of(Path(path), WRITERS)


def read_molecules(
    path: str | Path,
    *,
    errors: ErrorMode = "record",
    smiles_column: str | None = None,
    remove_hs: bool = False,
    template_smiles: str | None = None,
    charge: int | None = None,
) -> pd.DataFrame:
    """Read every molecule of a file into a DataFrame.

    Args:
        path: a .smi/.csv/.tsv/.sdf/.mol/.mol2/.pdb/.xyz file (optionally .gz).
        errors: "record" puts failures in the ``error`` column and carries on; "raise" raises
            `ParseError` on the first bad record.
        smiles_column: SMILES column of a .csv/.tsv table (default: auto-detected).
        remove_hs: drop explicit hydrogens from SDF/MOL2 records.
        template_smiles: PDB ligands only; SMILES whose bond orders are assigned to the atoms.
        charge: total charge for XYZ bond perception and PDB ligands (default: 0, or the
            ``charge=`` key of an XYZ comment line).

    Returns:
        DataFrame with the file's own columns/properties, ``record`` (1-based line or record
        number), ``mol`` (RDKit Mol or None) and ``error`` (None or the reason).

    Raises:
        InputFileError: missing file, unknown format, or a file-level problem.
        ParseError: with ``errors="raise"``, the first record that cannot be read.
    """
    if errors not in ("record", "raise"):
        raise ValueError(f"errors={errors!r}: choose 'record' or 'raise'")
    options: dict[str, Any] = {"smiles_column": smiles_column, "remove_hs": remove_hs,
                               "template_smiles": template_smiles}
    if charge is not None or Path(path).suffix.lower() == ".pdb":
        options["charge"] = charge or 0
    rows = []
    for rec in iter_molecules(path, **options):
        if rec.error is not None and errors == "raise":
            raise ParseError(rec.error)
        rows.append({**rec.props, "record": rec.record, "mol": rec.mol, "error": rec.error})
    frame = pd.DataFrame(rows, columns=None if rows else ["record", "mol", "error"])
    frame["error"] = object_column(frame["error"])
    return frame


def read_molecule(path: str | Path, **options: Any) -> Chem.Mol:
    """Read a file that holds exactly one molecule; any problem raises.

    Raises:
        InputFileError: missing file, unknown format, or not exactly one record.
        ParseError: the record cannot be read.
    """
    frame = read_molecules(path, errors="raise", **options)
    if len(frame) != 1:
        raise InputFileError(
            f"{path}: expected one molecule, found {len(frame)}; use read_molecules() for several"
        )
    return frame["mol"].iloc[0]


def _given_name(value: Any) -> str | None:
    """A row's name as text (a compound ID may be a number), None when missing or blank."""
    if value is None or isinstance(value, Chem.Mol) or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():  # an integer ID column that pandas made float (missing IDs)
        value = int(value)
    text = str(value).strip()
    return text or None


def molecule_items(molecules: Iterable[str | Chem.Mol] | pd.DataFrame) -> list[dict[str, Any]]:
    """The molecules of a batch job as ``name``, ``smiles``, ``mol`` and ``error``, in input order.

    `molecules` is a `read_molecules` frame, or SMILES strings and RDKit Mols. The structure
    that was read decides the SMILES; a ``smiles`` column or SD tag is only the fallback for a
    row without one. The name is the row's ``name`` (or an SD title; numeric IDs as text), else the SMILES, else
    ``record N``; a row with neither structure nor SMILES gets the error ``<name>: no molecule``.
    Strings are not parsed here: the job's worker parses them and records its own error.
    """
    items: list[dict[str, Any]] = []
    if isinstance(molecules, pd.DataFrame):
        for position, row in enumerate(molecules.to_dict("records")):
            mol = row.get("mol") if isinstance(row.get("mol"), Chem.Mol) else None
            error = row.get("error") if isinstance(row.get("error"), str) else None
            smiles = mol_to_smiles(mol) if mol is not None else (
                row.get("smiles") if isinstance(row.get("smiles"), str) and row.get("smiles") else None)
            name = next(filter(None, (_given_name(row.get(k)) for k in ("name", "_Name"))),
                        smiles or f"record {row.get('record', position + 1)}")
            if error is None and smiles is None:
                error = f"{name}: no molecule"
            items.append({"name": str(name), "smiles": smiles, "mol": mol, "error": error})
        return items
    for value in molecules:
        if isinstance(value, Chem.Mol):
            smiles = mol_to_smiles(value)
            name = value.GetProp("_Name") if value.HasProp("_Name") and value.GetProp("_Name") else smiles
            items.append({"name": name, "smiles": smiles, "mol": value, "error": None})
        else:
            items.append({"name": str(value), "smiles": str(value), "mol": None, "error": None})
    return items


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------
def _as_frame(data: pd.DataFrame | Iterable[Chem.Mol | None]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        if "mol" not in data.columns and "smiles" not in data.columns:
            raise ValueError("DataFrame needs a 'mol' or 'smiles' column to be written")
        return data
    return pd.DataFrame({"mol": list(data)})


def _sdf_value(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (list, tuple)):
        return ";".join(map(str, value))
    return str(value)


def _write_sdf(frame: pd.DataFrame, path: Path) -> None:
    opener = gzip.open(path, "wt") if path.suffix == ".gz" else open(path, "w")
    with opener as handle, Chem.SDWriter(handle) as writer:
        columns = [c for c in frame.columns if c not in ("mol",)]
        for row in frame.to_dict("records"):
            mol = row.get("mol")
            if mol is None and isinstance(row.get("smiles"), str) and row["smiles"]:  # NaN in failed rows
                mol = Chem.MolFromSmiles(row["smiles"])
            if mol is None:
                continue  # failed rows have no structure; they stay in CSV/Parquet outputs
            mol = Chem.Mol(mol)
            if row.get("name") and not (mol.HasProp("_Name") and mol.GetProp("_Name")):
                mol.SetProp("_Name", str(row["name"]))
            for column in columns:
                value = _sdf_value(row[column])
                if value is not None:
                    mol.SetProp(str(column), value)
            conf_ids = [c.GetId() for c in mol.GetConformers()] or [-1]
            for conf_id in conf_ids:
                if len(conf_ids) > 1:
                    mol.SetIntProp("conformer_id", conf_id)
                writer.write(mol, confId=conf_id)


def _tabular(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    if "mol" in frame.columns:
        if "smiles" not in frame.columns:
            frame.insert(0, "smiles", [mol_to_smiles(m) for m in frame["mol"]])
        frame = frame.drop(columns="mol")
    return frame


def _write_smi(frame: pd.DataFrame, path: Path) -> None:
    table = _tabular(frame)
    names = table["name"] if "name" in table.columns else [None] * len(table)
    with open(path, "w") as handle:
        for smiles, name in zip(table["smiles"], names):
            if isinstance(smiles, str) and smiles:
                handle.write(f"{smiles} {name}\n" if isinstance(name, str) and name else f"{smiles}\n")


WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    ".sdf": _write_sdf,
    ".csv": lambda frame, path: _tabular(frame).to_csv(path, index=False),
    ".parquet": lambda frame, path: _tabular(frame).to_parquet(path, index=False),
    ".smi": _write_smi,
}


def write_molecules(data: pd.DataFrame | Iterable[Chem.Mol | None], path: str | Path) -> Path:
    """Write molecules to .sdf (.sdf.gz), .csv, .parquet or .smi, chosen by extension.

    SDF records carry the other columns as properties (every conformer of a molecule is
    written as its own record with a ``conformer_id`` property). CSV and Parquet replace the
    ``mol`` column with canonical ``smiles``. Rows without a molecule are skipped in SDF/SMI.
    """
    path = Path(path)
    writer = WRITERS[_format_of(path, WRITERS)]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(_as_frame(data), path)
    return path
