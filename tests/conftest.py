"""Shared molecules and helpers for the test suite (tiny, real molecules only)."""

from __future__ import annotations

import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
GLYCINE_ZWITTERION = "[NH3+]CC(=O)[O-]"
METHYL_RADICAL = "[CH3]"
CISPLATIN = "Cl[Pt](Cl)(N)N"
ACETATE = "CC(=O)[O-]"


def embedded(smiles: str, seed: int = 7) -> Chem.Mol:
    """A molecule with explicit hydrogens and one MMFF-minimised 3D conformer."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


@pytest.fixture
def aspirin_3d() -> Chem.Mol:
    return embedded(ASPIRIN)
