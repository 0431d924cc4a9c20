"""Conversion between RDKit conformers and `ase.Atoms`, carrying charge and spin.

`mol_to_atoms` stores in ``atoms.info``: ``charge`` (total formal charge, e),
``multiplicity`` (2S+1, high-spin from RDKit's radical electrons), ``smiles`` (canonical) and
``mapped_smiles`` (atom-mapped, so `atoms_to_mol` rebuilds the exact molecule with the same
atom order). Per-atom formal charges and radical electrons are also stored as ASE initial
charges and initial magnetic moments.

`atoms_to_mol` on foreign Atoms perceives bonds from coordinates (RDKit's xyz2mol port) for
the given total charge; open-shell molecules are supported where every unpaired electron sits
on an atom with single bonds only (e.g. methyl), and otherwise need ``mapped_smiles``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds
from rdkit.Geometry import Point3D

from molops.errors import ConformerError, MoleculeError, ParseError
from molops.io import mol_to_smiles, rdkit_errors

__all__ = ["mol_to_atoms", "atoms_to_mol", "total_charge", "spin_multiplicity"]


def total_charge(mol: Chem.Mol) -> int:
    """Total formal charge (e)."""
    return Chem.GetFormalCharge(mol)


def spin_multiplicity(mol: Chem.Mol) -> int:
    """High-spin multiplicity 2S+1 from RDKit's radical electron counts."""
    return sum(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()) + 1


def _mapped_smiles(mol: Chem.Mol) -> str:
    mapped = Chem.Mol(mol)
    for atom in mapped.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    return Chem.MolToSmiles(mapped, allHsExplicit=True)


def mol_to_atoms(mol: Chem.Mol, conf_id: int = -1) -> Atoms:
    """One conformer of `mol` (explicit hydrogens required) as `ase.Atoms` (positions in Å).

    Raises:
        ConformerError: the molecule has no 3D conformer or lacks explicit hydrogens.
    """
    if mol.GetNumConformers() == 0:
        raise ConformerError(
            f"{mol_to_smiles(mol)!r}: no 3D conformer; run molops.conformers.generate_conformers first"
        )
    if any(atom.GetTotalNumHs(includeNeighbors=False) for atom in mol.GetAtoms()):
        raise ConformerError(
            f"{mol_to_smiles(mol)!r}: hydrogens are implicit; use Chem.AddHs(mol, addCoords=True)"
        )
    conformer = mol.GetConformer(conf_id)
    if not conformer.Is3D():
        raise ConformerError(f"{mol_to_smiles(mol)!r}: conformer {conf_id} is 2D, not 3D")
    atoms = Atoms(
        numbers=[atom.GetAtomicNum() for atom in mol.GetAtoms()],
        positions=np.asarray(conformer.GetPositions(), dtype=float),
    )
    atoms.set_initial_charges([atom.GetFormalCharge() for atom in mol.GetAtoms()])
    atoms.set_initial_magnetic_moments([atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()])
    atoms.info.update(
        charge=total_charge(mol),
        multiplicity=spin_multiplicity(mol),
        smiles=Chem.MolToSmiles(Chem.RemoveHs(mol)),
        mapped_smiles=_mapped_smiles(mol),
    )
    return atoms


def _from_mapped_smiles(atoms: Atoms, mapped_smiles: str) -> Chem.Mol:
    params = Chem.SmilesParserParams()
    params.removeHs = False
    mol = Chem.MolFromSmiles(mapped_smiles, params)
    if mol is None or mol.GetNumAtoms() != len(atoms):
        raise ParseError(f"mapped_smiles {mapped_smiles!r} does not describe these {len(atoms)} atoms")
    order = sorted(range(mol.GetNumAtoms()), key=lambda i: mol.GetAtomWithIdx(i).GetAtomMapNum())
    mol = Chem.RenumberAtoms(mol, order)
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
    if [a.GetAtomicNum() for a in mol.GetAtoms()] != list(atoms.numbers):
        raise ParseError(f"mapped_smiles {mapped_smiles!r} lists other elements than the atoms")
    return mol


def _open_shell_from_connectivity(mol: Chem.Mol, multiplicity: int) -> Chem.Mol:
    """Single bonds from connectivity; RDKit assigns radicals to under-valent atoms."""
    rdDetermineBonds.DetermineConnectivity(mol)
    for atom in mol.GetAtoms():
        atom.SetNoImplicit(True)
    Chem.SanitizeMol(mol)
    if spin_multiplicity(mol) != multiplicity:
        raise MoleculeError(
            f"cannot perceive an open-shell structure with multiplicity {multiplicity} from "
            f"coordinates (single bonds give {spin_multiplicity(mol)}); "
            "set atoms.info['mapped_smiles'] to the atom-mapped SMILES"
        )
    return mol


def atoms_to_mol(atoms: Atoms, charge: int | None = None) -> Chem.Mol:
    """Rebuild an RDKit Mol (with one conformer) from `ase.Atoms`.

    The total charge comes from `charge`, else ``atoms.info['charge']``, else the sum of the
    initial charges; multiplicity from ``atoms.info['multiplicity']`` (default 1).

    Raises:
        MoleculeError: bonds cannot be perceived for this charge/multiplicity.
    """
    if charge is None:
        charge = int(atoms.info.get("charge", round(float(np.sum(atoms.get_initial_charges())))))
    multiplicity = int(atoms.info.get("multiplicity", 1))
    mapped = atoms.info.get("mapped_smiles")
    if mapped:
        mol = _from_mapped_smiles(atoms, mapped)
    else:
        xyz = f"{len(atoms)}\n\n" + "".join(
            f"{s} {x:.8f} {y:.8f} {z:.8f}\n"
            for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)
        )
        mol = Chem.MolFromXYZBlock(xyz)
        if mol is None:
            raise ParseError(f"cannot build a molecule from atoms {atoms.get_chemical_formula()}")
        try:
            with rdkit_errors():
                if multiplicity == 1:
                    rdDetermineBonds.DetermineBonds(mol, charge=charge)
                else:
                    mol = _open_shell_from_connectivity(mol, multiplicity)
        except ValueError as exc:
            raise MoleculeError(
                f"atoms {atoms.get_chemical_formula()} (charge {charge}, multiplicity "
                f"{multiplicity}): cannot perceive bonds: {exc}"
            ) from None
    conformer = Chem.Conformer(len(atoms))
    for index, (x, y, z) in enumerate(atoms.positions):
        conformer.SetAtomPosition(index, Point3D(float(x), float(y), float(z)))
    conformer.Set3D(True)
    mol.RemoveAllConformers()
    mol.AddConformer(conformer, assignId=True)
    if total_charge(mol) != charge:
        raise MoleculeError(
            f"atoms {atoms.get_chemical_formula()}: perceived charge {total_charge(mol)} "
            f"differs from the requested {charge}"
        )
    return mol
