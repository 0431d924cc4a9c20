"""quantum_features.fast_scf: the in-memory J/K and eig agree with PySCF's own code."""

from __future__ import annotations

import numpy as np
import pytest
from pyscf import df, lib, scf

from conftest import METHYL_RADICAL
from quantum_features.calc import CheapCalculation
from quantum_features.fast_scf import InMemoryDensityFitting, use_fast_scf


def _density_fitted(smiles: str):
    mol = CheapCalculation(smiles).build_mole()
    cls = scf.RHF if mol.spin == 0 else scf.UHF
    return cls(mol).density_fit(auxbasis=df.aug_etb(mol, beta=2.0))


@pytest.mark.parametrize("smiles", ["CC(=O)Nc1ccc(O)cc1", METHYL_RADICAL])
def test_jk_match_pyscf_for_scf_and_general_densities(smiles):
    reference = _density_fitted(smiles)
    reference.kernel()
    builder = InMemoryDensityFitting(reference.with_df)
    tagged = reference.make_rdm1()  # carries mo_coeff/mo_occ: the occupied-orbital route
    vj, vk = reference.get_jk(reference.mol, tagged)
    # A first, "moving" SCF density uses float32 exchange: close, not exact.
    _, rough_k = builder.get_jk(tagged)
    np.testing.assert_allclose(rough_k, vk, atol=1e-4)
    # The same density again (a converged SCF), and a density without orbitals: float64.
    for dm in (tagged, np.asarray(tagged)):
        fast_j, fast_k = builder.get_jk(dm)
        np.testing.assert_allclose(fast_j, vj, atol=1e-10)
        np.testing.assert_allclose(fast_k, vk, atol=1e-10)


def test_tensor_that_pyscf_kept_on_disk_is_read_back():
    # PySCF writes the fitted tensor to an HDF5 file when it judges memory short (it counts the
    # process's current use: a long-lived Dask worker got there, and the in-memory builder
    # once failed with "IndexError: tuple index out of range").
    in_memory = _density_fitted("CCO").with_df
    in_memory.build()
    on_disk = _density_fitted("CCO").with_df
    on_disk.max_memory = 0.01  # MB
    on_disk.build()
    assert not isinstance(on_disk._cderi, np.ndarray)
    np.testing.assert_allclose(InMemoryDensityFitting(on_disk).bt, InMemoryDensityFitting(in_memory).bt, atol=1e-12)


def test_fast_scf_converges_to_pyscf_energy():
    reference = _density_fitted("CC(=O)Nc1ccc(O)cc1")
    reference.conv_tol = 1e-10
    e_ref = reference.kernel()
    fast = _density_fitted("CC(=O)Nc1ccc(O)cc1")
    fast.conv_tol = 1e-10
    use_fast_scf(fast)
    fast.kernel()
    assert fast.energy_tot(dm=fast.make_rdm1()) == pytest.approx(e_ref, abs=1e-8)
    np.testing.assert_allclose(np.asarray(fast.make_rdm1()), np.asarray(reference.make_rdm1()), atol=1e-5)


def test_orthogonalised_eig_solves_the_generalised_problem():
    mf = _density_fitted("CCO")
    use_fast_scf(mf)
    overlap = mf.get_ovlp()
    fock = mf.get_hcore()
    energies, vectors = mf.eig(fock, overlap)
    np.testing.assert_allclose(fock @ vectors, overlap @ vectors * energies, atol=1e-9)
    np.testing.assert_allclose(vectors.T @ overlap @ vectors, np.eye(len(energies)), atol=1e-9)
    assert lib.num_threads() >= 1


def test_a_finished_calculation_is_freed_without_the_cyclic_collector():
    # A worker featurising a library must not keep each molecule's tensors until Python's
    # cyclic collector happens to run (it grew by hundreds of MB per drug-sized molecule).
    import gc
    import weakref

    calc = CheapCalculation("CC(=O)Nc1ccc(O)cc1").run()
    calc.matrices()
    scf_object = weakref.ref(calc.mf)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del calc
        assert scf_object() is None
    finally:
        if enabled:
            gc.enable()
