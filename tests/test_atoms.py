"""molops.atoms: RDKit <-> ase.Atoms with charge and spin multiplicity."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from rdkit import Chem

from conftest import ACETATE, CAFFEINE, GLYCINE_ZWITTERION, METHYL_RADICAL, embedded
from molops.atoms import atoms_to_mol, mol_to_atoms
from molops.conformers import generate_conformers
from molops.errors import ConformerError, MoleculeError


@pytest.mark.parametrize(
    "smiles, charge, multiplicity",
    [(CAFFEINE, 0, 1), (ACETATE, -1, 1), (GLYCINE_ZWITTERION, 0, 1), (METHYL_RADICAL, 0, 2), ("[CH2]", 0, 3)],
)
def test_round_trip_keeps_charge_spin_and_geometry(smiles, charge, multiplicity):
    ensemble = generate_conformers(smiles, n_conformers=1, seed=3)
    atoms = ensemble.to_atoms(0)
    assert atoms.info["charge"] == charge and atoms.info["multiplicity"] == multiplicity
    assert atoms.get_initial_charges().sum() == charge
    np.testing.assert_allclose(atoms.positions, ensemble.mol.GetConformer(0).GetPositions())
    back = atoms_to_mol(atoms)
    assert Chem.MolToSmiles(Chem.RemoveHs(back)) == Chem.CanonSmiles(smiles)
    np.testing.assert_allclose(back.GetConformer().GetPositions(), atoms.positions)


@pytest.mark.parametrize("smiles, charge", [(CAFFEINE, 0), (ACETATE, -1), (GLYCINE_ZWITTERION, 0)])
def test_bonds_perceived_from_foreign_atoms(smiles, charge):
    mol = embedded(smiles)
    atoms = Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()], positions=mol.GetConformer().GetPositions())
    back = atoms_to_mol(atoms, charge=charge)
    assert Chem.MolToSmiles(Chem.RemoveHs(back)) == Chem.CanonSmiles(smiles)


def test_methyl_radical_from_plain_atoms():
    mol = embedded(METHYL_RADICAL)
    atoms = Atoms(numbers=[6, 1, 1, 1], positions=mol.GetConformer().GetPositions(), info={"multiplicity": 2})
    back = atoms_to_mol(atoms)
    assert back.GetAtomWithIdx(0).GetNumRadicalElectrons() == 1


def test_wrong_charge_and_missing_geometry_are_clear_errors():
    mol = embedded(ACETATE)
    atoms = Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()], positions=mol.GetConformer().GetPositions())
    with pytest.raises(MoleculeError, match="charge 0"):
        atoms_to_mol(atoms, charge=0)
    with pytest.raises(ConformerError, match="no 3D conformer"):
        mol_to_atoms(Chem.AddHs(Chem.MolFromSmiles("CCO")))
    with pytest.raises(ConformerError, match="hydrogens are implicit"):
        mol_to_atoms(Chem.RemoveHs(mol))
