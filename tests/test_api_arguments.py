"""Arguments no computation can honour are refused at once, with a message naming them."""

from __future__ import annotations

import pandas as pd
import pytest

from molops.conformers import ConformerOptions, generate_conformers
from molops.descriptors import describe
from molops.errors import ChemToolkitError, DockingError, MoleculeError
from molops.io import read_molecules
from molops.objectives import by_name, docking, qed, weighted_sum
from quantum_features.errors import QuantumError, UnknownLevelError
from quantum_features.features import featurize
from quantum_features.levels import get_level


@pytest.mark.parametrize("options, message", [
    ({"n_conformers": 2.5}, "n_conformers must be a whole number, got 2.5"),
    ({"seed": "7"}, "seed must be a whole number"),
    ({"oversample": 0}, "oversample \\(0\\) and max_iterations"),
])
def test_conformer_options_must_be_whole_and_in_range(options, message):
    with pytest.raises(ValueError, match=message):
        ConformerOptions(**options)


def test_a_conformer_index_outside_the_ensemble_is_named():
    ensemble = generate_conformers("CCO", n_conformers=2, seed=1)
    with pytest.raises(IndexError, match=f"conformer 99 of an ensemble of {len(ensemble)}"):
        ensemble.to_atoms(99)


def test_batch_functions_refuse_none_and_frames_without_molecules():
    with pytest.raises(ChemToolkitError, match="got None instead of molecules"):
        describe(None)
    with pytest.raises(MoleculeError, match="neither a 'mol' nor a 'smiles' column \\(columns: name\\)"):
        describe(pd.DataFrame({"name": ["x"]}))
    with pytest.raises(ValueError, match="errors='ignore': choose 'record' or 'raise'"):
        read_molecules("anything.smi", errors="ignore")


def test_objective_arguments():
    with pytest.raises(ValueError, match="weight of 'qed' is nan, not a finite number"):
        weighted_sum([(qed(), float("nan"))])
    with pytest.raises(ValueError, match="objective name None is not a string"):
        by_name(None)
    with pytest.raises(DockingError, match="docking target None"):
        docking(None)


def test_a_minimised_objective_says_so_once():
    assert by_name("logp:min").description == "Crippen logP (minimize)"
    assert by_name("logp").description == "Crippen logP (maximize)"


def test_quantum_arguments():
    with pytest.raises(UnknownLevelError, match="unknown level of theory None") as caught:
        get_level(None)
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ChemToolkitError)
    with pytest.raises(QuantumError, match="edge cutoff nan Å must be positive"):
        featurize("O", cutoff=float("nan"))
    from quantum_features.calculator import optimize_geometry

    with pytest.raises(QuantumError, match="fmax \\(nan eV/Å\\) must be positive"):
        optimize_geometry("O", fmax=float("nan"))


def test_fingerprint_and_search_arguments():
    from molops.similarity import SimilarityIndex, tanimoto

    for radius, n_bits in [(2, 0), (2, -64), (-1, 2048), (2.5, 2048)]:
        with pytest.raises(ValueError, match="must be a whole number ≥ 0 and n_bits"):
            tanimoto("C", "O", radius=radius, n_bits=n_bits)
    index = SimilarityIndex.from_smiles(["CCO", "CCN"])
    with pytest.raises(ValueError, match="k \\(2.5\\) must be ≥ 1"):
        index.search("CCO", k=2.5)
