"""Docking targets: a receptor in PDBQT plus a search box.

Two sources:
- the 58 prepared receptors and boxes shipped by the ``dockstring`` package, by name
  (`load_target("DRD2")`; `list_targets()` names them all);
- a user's PDB file (`prepare_receptor`): waters, ligands, ions and alternate locations are
  removed with gemmi, hydrogens and Gasteiger charges are added by Meeko's residue templates,
  and the box comes from a reference ligand (`box_from_ligand`) or explicit centre/size.

The receptor text travels inside `Target`, so that workers of any Dask cluster can dock
against it without sharing a file system.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import logging
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from rdkit import Chem

from molops.errors import DockingError, ReceptorError
from molops.io import existing_file, read_molecules

__all__ = [
    "Box",
    "COFACTOR_SMILES",
    "Target",
    "box_from_ligand",
    "list_targets",
    "load_target",
    "prepare_receptor",
    "pdbqt_coordinates",
]

log = logging.getLogger(__name__)

#: Meeko stops at the first residue it cannot build; at most this many are dropped and retried.
MAX_DROPPED_RESIDUES = 20

#: Cofactors that can be kept by residue name alone (`prepare_receptor(cofactors=["NDP"])`):
#: SMILES of the state at pH 7 (phosphates deprotonated). Checked against PDB 1IA1.
COFACTOR_SMILES: dict[str, str] = {
    "NDP": (  # NADPH
        "NC(=O)C1=CN(C=CC1)[C@@H]2O[C@H](COP([O-])(=O)OP([O-])(=O)OC[C@H]3O[C@H]"
        "([C@H](OP([O-])([O-])=O)[C@@H]3O)n4cnc5c(N)ncnc45)[C@@H](O)[C@H]2O"
    ),
}


@dataclass(frozen=True)
class Box:
    """A docking search box: centre and edge lengths (Å)."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]

    def __post_init__(self) -> None:
        center = tuple(float(v) for v in self.center)
        size = tuple(float(v) for v in self.size)
        if len(center) != 3 or len(size) != 3:
            raise DockingError(f"a box needs 3 centre and 3 size values, got {center} and {size}")
        if not all(np.isfinite(center + size)):
            raise DockingError(f"box centre {center} / size {size} holds a NaN or infinity")
        if min(size) <= 0:
            raise DockingError(f"box size {size} Å must be positive along x, y and z")
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "size", size)

    def contains(self, xyz: np.ndarray) -> np.ndarray:
        """Mask of the points (N, 3 in Å) inside the box."""
        half = np.asarray(self.size) / 2
        return np.all(np.abs(np.asarray(xyz) - np.asarray(self.center)) <= half, axis=1)

    def __str__(self) -> str:
        c = ", ".join(f"{v:.2f}" for v in self.center)
        s = " x ".join(f"{v:.1f}" for v in self.size)
        return f"centre ({c}) Å, size {s} Å"


@dataclass(frozen=True)
class Target:
    """A receptor ready for Vina and its search box.

    Attributes:
        name: label used in results (a dockstring name or the PDB file's stem).
        receptor_pdbqt: the rigid receptor in PDBQT (text, AutoDock atom types).
        box: the search box (Å).
        source: where the receptor came from (package file or PDB path).
    """

    name: str
    receptor_pdbqt: str
    box: Box
    source: str = ""

    def __post_init__(self) -> None:
        check_box(self)

    @cached_property
    def key(self) -> str:
        """Content hash of receptor and box: workers cache grid maps under it."""
        digest = hashlib.sha1(self.receptor_pdbqt.encode())
        digest.update(repr((self.box.center, self.box.size)).encode())
        return digest.hexdigest()[:16]

    def write_receptor(self, path: str | Path) -> Path:
        """Write the receptor PDBQT to `path` (for Vina or for viewing)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.receptor_pdbqt)
        return path


def pdbqt_coordinates(pdbqt: str) -> np.ndarray:
    """Cartesian coordinates (Å, shape N x 3) of the ATOM/HETATM records of a PDBQT text."""
    rows = [
        (line[30:38], line[38:46], line[46:54])
        for line in pdbqt.splitlines()
        if line.startswith(("ATOM", "HETATM"))
    ]
    try:
        return np.array(rows, dtype=float).reshape(-1, 3)
    except ValueError as exc:
        raise ReceptorError(f"receptor PDBQT has unreadable coordinates: {exc}") from None


def check_box(target: Target) -> None:
    """Raise `DockingError` if the box holds no receptor atom (a box off the protein)."""
    xyz = pdbqt_coordinates(target.receptor_pdbqt)
    if len(xyz) == 0:
        raise ReceptorError(f"receptor {target.name!r} ({target.source}) has no atoms")
    inside = int(target.box.contains(xyz).sum())
    if inside == 0:
        centre = np.asarray(target.box.center)
        nearest = float(np.min(np.linalg.norm(xyz - centre, axis=1)))
        raise DockingError(
            f"target {target.name!r}: the box ({target.box}) contains no receptor atom; the "
            f"nearest one is {nearest:.1f} Å from its centre. Is the box in the receptor's frame?"
        )


# --------------------------------------------------------------------------------------------
# dockstring targets
# --------------------------------------------------------------------------------------------
def _dockstring_dir() -> Path:
    from dockstring.utils import get_targets_dir

    return Path(get_targets_dir())


def list_targets() -> list[str]:
    """Names of the receptors shipped by the dockstring package (e.g. "DRD2", "ESR1")."""
    return sorted(p.name.removesuffix("_target.pdbqt") for p in _dockstring_dir().glob("*_target.pdbqt"))


def _read_conf(path: Path) -> Box:
    values = dict(re.findall(r"^\s*(\w+)\s*=\s*(\S+)", path.read_text(), flags=re.M))
    try:
        return Box(
            center=tuple(float(values[f"center_{a}"]) for a in "xyz"),
            size=tuple(float(values[f"size_{a}"]) for a in "xyz"),
        )
    except KeyError as exc:
        raise ReceptorError(f"{path}: no {exc.args[0]} line") from None


def load_target(name: str) -> Target:
    """A dockstring receptor and its box by name (case-insensitive), e.g. ``load_target("DRD2")``.

    Raises:
        DockingError: unknown name; the message suggests the closest names.
    """
    names = {n.upper(): n for n in list_targets()}
    found = names.get(name.strip().upper())
    if found is None:
        close = difflib.get_close_matches(name.upper(), list(names), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(names[c] for c in close)}?" if close else ""
        raise DockingError(
            f"unknown docking target {name!r}{hint} Known targets ({len(names)}): "
            f"{', '.join(sorted(names.values()))}. For another protein give --receptor x.pdb."
        )
    directory = _dockstring_dir()
    pdbqt = directory / f"{found}_target.pdbqt"
    return Target(
        name=found,
        receptor_pdbqt=pdbqt.read_text(),
        box=_read_conf(directory / f"{found}_conf.txt"),
        source=f"dockstring {pdbqt.name}",
    )


# --------------------------------------------------------------------------------------------
# User receptors
# --------------------------------------------------------------------------------------------
def box_from_ligand(ligand: str | Path | Chem.Mol, padding: float = 5.0) -> Box:
    """The box around a reference ligand's heavy atoms, `padding` Å added on every side.

    Args:
        ligand: an SDF/MOL2/PDB file of the ligand in the receptor's frame, or an RDKit Mol
            with a conformer.
    """
    if isinstance(ligand, Chem.Mol):
        mol = ligand
    else:
        frame = read_molecules(ligand)
        good = frame[frame["error"].isna()]
        if good.empty:
            reason = frame["error"].iloc[0] if len(frame) else "no molecule in the file"
            raise DockingError(f"reference ligand {ligand}: {reason}")
        mol = good["mol"].iloc[0]
    if mol.GetNumConformers() == 0:
        raise DockingError("reference ligand has no 3D coordinates; a box needs a posed ligand")
    xyz = mol.GetConformer().GetPositions()
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    xyz = xyz[heavy] if heavy else xyz
    low, high = xyz.min(axis=0), xyz.max(axis=0)
    return Box(center=tuple((low + high) / 2), size=tuple(high - low + 2 * padding))


def _clean_structure(path: Path, keep_cofactors: set[str] = frozenset()):  # -> gemmi.Structure
    """Protein (and named cofactors): no waters, other ligands, ions, H or alternate locations."""
    import gemmi

    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as exc:
        raise ReceptorError(f"receptor {path}: not a readable PDB/mmCIF file: {exc}") from None
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise ReceptorError(f"receptor {path}: no atom records (is it a PDB file?)")
    structure.setup_entities()
    structure.remove_alternative_conformations()
    # Hydrogens are rebuilt by Meeko's templates, consistently for every residue.
    structure.remove_hydrogens()
    structure.remove_waters()
    for chain in structure[0]:
        for index in reversed(range(len(chain))):
            residue = chain[index]
            # Entity types (set up above) tell ligands from modified residues such as MSE.
            if residue.entity_type != gemmi.EntityType.Polymer and residue.name not in keep_cofactors:
                del chain[index]
    structure.remove_empty_chains()
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise ReceptorError(f"receptor {path}: no protein atoms left after removing waters and ligands")
    return structure


def _remove_residue(structure, key: str) -> bool:  # structure: gemmi.Structure
    """Delete residue "chain:number[icode]" from the first model; False if absent."""
    chain_name, _, number = key.partition(":")
    match = re.fullmatch(r"(-?\d+)([A-Za-z]?)", number)
    if match is None:
        return False
    seqnum, icode = int(match.group(1)), match.group(2) or " "
    for chain in structure[0]:
        if chain.name != chain_name:
            continue
        for index, residue in enumerate(chain):
            if residue.seqid.num == seqnum and residue.seqid.icode == icode:
                del chain[index]
                return True
    return False


def _polymer_pdbqt(structure, label: str) -> tuple[str, list[str]]:
    """Receptor PDBQT with Meeko; residues it cannot build are dropped (and returned)."""
    from meeko import MoleculePreparation, PDBQTWriterLegacy, Polymer, ResidueChemTemplates

    from molops.io import rdkit_errors

    templates = ResidueChemTemplates.create_from_defaults()
    dropped: list[str] = []
    while True:
        chatter = io.StringIO()  # Meeko prints template mismatches; they go to the debug log
        try:
            with rdkit_errors(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                polymer = Polymer.from_pdb_string(
                    structure.make_pdb_string(), templates, MoleculePreparation(), allow_bad_res=True
                )
                rigid, _flexible = PDBQTWriterLegacy.write_string_from_polymer(polymer)
            break
        except RuntimeError as exc:
            # A residue whose coordinates make no sensible molecule (e.g. a distorted side
            # chain): "unable to build rdkit mol for residue LYS corresponding to key A:93".
            match = re.search(r"corresponding to key (\S+)", str(exc))
            if match is None or not _remove_residue(structure, match.group(1)):
                raise ReceptorError(f"receptor {label}: Meeko cannot read it: {exc}") from None
            dropped.append(match.group(1))
            if len(dropped) > MAX_DROPPED_RESIDUES:
                raise ReceptorError(
                    f"receptor {label}: more than {MAX_DROPPED_RESIDUES} residues cannot be built "
                    f"({', '.join(dropped)}); is the structure complete and protonatable?"
                ) from None
        finally:
            if chatter.getvalue().strip():
                log.debug("Meeko on %s:\n%s", label, chatter.getvalue())
    # Residues that fail template matching are left out of the PDBQT by Meeko.
    unmatched = [key for key, res in polymer.monomers.items() if res.rdkit_mol is None]
    return rigid, dropped + unmatched


def _cofactor_blocks(structure, names: set[str]) -> dict[str, list[str]]:
    """PDB text of every copy of the named HETATM residues (first model), by residue name."""
    import gemmi

    blocks: dict[str, list[str]] = {name: [] for name in names}
    for chain in structure[0]:
        for residue in chain:
            if residue.name in names:
                single = gemmi.Structure()
                model = gemmi.Model("1")
                new_chain = gemmi.Chain(chain.name)
                new_chain.add_residue(residue)
                model.add_chain(new_chain)
                single.add_model(model)
                blocks[residue.name].append(single.make_pdb_string())
    return blocks


def _cofactor_pdbqt(block: str, template_smiles: str, label: str) -> str:
    """Rigid receptor PDBQT lines of one cofactor copy: template bond orders, Meeko types."""
    from meeko import MoleculePreparation, PDBQTWriterLegacy
    from rdkit.Chem import AllChem

    from molops.io import rdkit_errors, to_mol

    with rdkit_errors() as messages:
        pdb_mol = Chem.MolFromPDBBlock(block, sanitize=False, removeHs=True, proximityBonding=True)
    if pdb_mol is None:
        raise ReceptorError(f"cofactor {label}: RDKit cannot read its atoms: {messages.reason()}")
    try:
        with rdkit_errors():
            mol = AllChem.AssignBondOrdersFromTemplate(to_mol(template_smiles), pdb_mol)
            mol = Chem.AddHs(mol, addCoords=True)
            setup = MoleculePreparation(rigid_macrocycles=True).prepare(mol)[0]
            text, ok, message = PDBQTWriterLegacy.write_string(setup)
    except (ValueError, RuntimeError) as exc:
        raise ReceptorError(
            f"cofactor {label}: template SMILES {template_smiles!r} does not fit its "
            f"{pdb_mol.GetNumAtoms()} heavy atoms: {exc}"
        ) from None
    if not ok:
        raise ReceptorError(f"cofactor {label}: Meeko cannot type it: {message.strip()}")
    # A receptor PDBQT is a flat list of typed atoms: drop the ligand torsion tree.
    return "".join(
        "ATOM  " + line[6:] + "\n" for line in text.splitlines() if line.startswith(("ATOM", "HETATM"))
    )


def prepare_receptor(
    pdb: str | Path,
    *,
    box: Box | None = None,
    ligand: str | Path | Chem.Mol | None = None,
    padding: float = 5.0,
    name: str | None = None,
    cofactors: dict[str, str] | list[str] | None = None,
) -> Target:
    """A docking target from a PDB (or mmCIF) file.

    Args:
        pdb: receptor structure file.
        box: explicit search box; or
        ligand: a reference ligand in the receptor's frame (SDF/MOL2/PDB file or Mol): the box
            encloses it with `padding` Å on every side.
        name: target label (default: the file's stem).
        cofactors: HETATM residues to keep as part of the receptor, as residue name ->
            SMILES of the state to dock against (e.g. ``{"NDP": nadph_smiles}``): bond orders
            come from the SMILES, hydrogens are placed on the crystal atoms. A list of names
            uses `COFACTOR_SMILES`. Every other HETATM group (ligands, ions, waters) is removed.

    Raises:
        InputFileError: missing file. ReceptorError: unreadable or unpreparable structure.
        DockingError: no box given, or a box that contains no receptor atom.
    """
    path = existing_file(pdb)
    if (box is None) == (ligand is None):
        raise DockingError(f"receptor {path}: give either a box (centre and size) or a reference ligand, not {'both' if box else 'neither'}")
    if box is None:
        box = box_from_ligand(ligand, padding=padding)
    if cofactors is not None and not isinstance(cofactors, dict):
        unknown = [n for n in cofactors if n not in COFACTOR_SMILES]
        if unknown:
            raise ReceptorError(
                f"no SMILES known for cofactor(s) {unknown} (known: {', '.join(COFACTOR_SMILES)}); "
                "pass cofactors={name: smiles}"
            )
        cofactors = {name: COFACTOR_SMILES[name] for name in cofactors}
    structure = _clean_structure(path, keep_cofactors=set(cofactors or {}))
    cofactor_lines = []
    if cofactors:
        blocks = _cofactor_blocks(structure, set(cofactors))
        for residue_name, copies in blocks.items():
            if not copies:
                raise ReceptorError(f"receptor {path}: no HETATM residue named {residue_name!r} to keep as a cofactor")
            for number, block in enumerate(copies, start=1):
                cofactor_lines.append(_cofactor_pdbqt(block, cofactors[residue_name], f"{residue_name} #{number} in {path}"))
        for chain in structure[0]:  # the polymer is built without them
            for index in reversed(range(len(chain))):
                if chain[index].name in cofactors:
                    del chain[index]
    pdbqt, dropped = _polymer_pdbqt(structure, str(path))
    pdbqt += "".join(cofactor_lines)
    if dropped:
        log.warning(
            "receptor %s: %d residue(s) could not be built and are left out: %s",
            path, len(dropped), ", ".join(dropped),
        )
    if not pdbqt.strip():
        raise ReceptorError(f"receptor {path}: Meeko produced no atoms")
    return Target(name=name or path.stem, receptor_pdbqt=pdbqt, box=box, source=str(path))

