"""One-step analogues: single-atom edits that sanitise into ordinary, neutral molecules."""

from __future__ import annotations

import pytest
from rdkit import Chem

from generation.analogues import one_step_analogues


def test_analogues_of_phenol_are_the_expected_single_atom_edits():
    analogues = set(one_step_analogues("Oc1ccccc1"))
    canonical = {Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in (
        "Nc1ccccc1",      # O -> N on the terminal atom
        "Fc1ccccc1",      # O -> F
        "c1ccccc1",       # O deleted
        "Oc1ccccn1",      # ring CH -> N (2-hydroxypyridine)
        "Oc1ccncc1",      # 4-hydroxypyridine
        "Cc1ccc(O)cc1",   # methyl attached
        "Oc1ccccc1O",     # hydroxy attached
        "COc1ccccc1",     # methyl on the oxygen
    )}
    assert canonical <= analogues
    assert "Oc1ccccc1" not in analogues  # never the input itself
    for smiles in analogues:
        molecule = Chem.MolFromSmiles(smiles)
        assert molecule is not None and Chem.MolToSmiles(molecule) == smiles
        assert all(atom.GetFormalCharge() == 0 for atom in molecule.GetAtoms()) and "." not in smiles


def test_edits_make_no_hypervalent_atoms_peroxides_or_heteroatom_halogen_bonds():
    analogues = one_step_analogues("CCSc1ccccc1OC")
    assert analogues
    unwanted = [Chem.MolFromSmarts(s) for s in ("[#8]-[#8]", "[#7,#8,#16]-[F,Cl,Br]", "[F,Cl,Br]-[#6]=[#7,#8,#16]")]
    for smiles in analogues + one_step_analogues("CC(=O)Nc1ccccc1"):
        molecule = Chem.MolFromSmiles(smiles)
        assert not any(molecule.HasSubstructMatch(pattern) for pattern in unwanted), smiles
        assert all(a.GetTotalValence() == 2 for a in molecule.GetAtoms() if a.GetAtomicNum() == 16), smiles


def test_stereo_of_untouched_atoms_is_kept_and_bad_input_is_named():
    analogues = one_step_analogues("C[C@H](N)C(=O)O")
    assert Chem.MolToSmiles(Chem.MolFromSmiles("C[C@H](N)C(=O)N")) in analogues  # acid OH -> NH2, stereo kept
    with pytest.raises(ValueError, match="cannot parse SMILES 'C1CC'"):
        one_step_analogues("C1CC")
    assert one_step_analogues("C" * 70) == []  # beyond max_heavy_atoms
