"""quantum_features.calc: the cheap PySCF calculation, its checks and its fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from conftest import ACETATE, CISPLATIN, METHYL_RADICAL
from molops.errors import UnsupportedElementError
from quantum_features.calc import CheapCalculation, prepare_atoms
from quantum_features.errors import ElectronCountError, GeometryError, SCFConvergenceError
from quantum_features.levels import get_level

WATER = Atoms("OH2", positions=[[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


def test_water_hf_sto3g_reference():
    # RHF/STO-3G of water at the experimental geometry (0.9572 Å, 104.5°): -74.963 Hartree.
    calc = CheapCalculation(WATER, level="hf/sto-3g", conv_tol=1e-10).run()
    assert calc.converged and calc.strategy == "diis"
    assert calc.e_tot == pytest.approx(-74.963, abs=5e-4)
    assert np.linalg.norm(calc.dipole_debye()) == pytest.approx(1.71, abs=0.02)  # known HF/STO-3G value
    homo, lumo = calc.frontier_orbitals()
    assert homo < 0 < lumo
    # Density fitting changes the energy by a few mHa only.
    fitted = CheapCalculation(WATER, conv_tol=1e-10).run()
    assert abs(fitted.e_tot - calc.e_tot) < 5e-3


def test_charged_molecule_acetate():
    calc = CheapCalculation(ACETATE).run()
    assert calc.atoms.info["charge"] == -1 and calc.mol.nelectron == 32
    matrices = calc.matrices()
    assert np.trace(matrices.density @ matrices.overlap) == pytest.approx(32, abs=1e-6)
    np.testing.assert_allclose(matrices.spin_density, 0.0)
    homo, _ = calc.frontier_orbitals()
    assert homo > -0.2  # an anion's HOMO lies high


def test_radical_methyl_uhf_and_rohf():
    uhf = CheapCalculation(METHYL_RADICAL, gradient=True).run()
    assert uhf.atoms.info["multiplicity"] == 2
    matrices = uhf.matrices()
    assert np.trace(matrices.spin_density @ matrices.overlap) == pytest.approx(1.0, abs=1e-6)
    assert uhf.gradient.shape == (4, 3)
    assert np.abs(uhf.gradient.sum(axis=0)).max() < 1e-6  # no net force on a free molecule
    rohf = CheapCalculation(METHYL_RADICAL, open_shell="rohf").run()
    assert rohf.e_tot > uhf.e_tot  # UHF is variationally lower than ROHF


def test_gradient_matches_finite_differences():
    atoms = prepare_atoms("C=O")
    calc = CheapCalculation(atoms, gradient=True, conv_tol=1e-11).run()
    step = 1e-3  # Å
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions[0, 2] += step
    minus.positions[0, 2] -= step
    e_plus = CheapCalculation(plus, conv_tol=1e-11).run().e_tot
    e_minus = CheapCalculation(minus, conv_tol=1e-11).run().e_tot
    assert calc.gradient[0, 2] == pytest.approx((e_plus - e_minus) / (2 * step), abs=2e-5)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(UnsupportedElementError, match="Pt"):
        CheapCalculation(CISPLATIN)
    with pytest.raises(UnsupportedElementError, match="Fe"):
        CheapCalculation(Atoms("Fe", positions=[[0, 0, 0]]))
    with pytest.raises(ElectronCountError, match="9 electrons cannot have multiplicity 1"):
        CheapCalculation(METHYL_RADICAL, multiplicity=1)
    with pytest.raises(ElectronCountError):
        CheapCalculation("C", charge=-1, multiplicity=3)
    with pytest.raises(ElectronCountError, match="charge 0.5 is not a whole number"):
        prepare_atoms("C", charge=0.5)
    with pytest.raises(ElectronCountError, match="multiplicity 'two' is not a whole number"):
        prepare_atoms("C", multiplicity="two")
    with pytest.raises(ElectronCountError, match="charge 1 leaves 0 electrons"):
        prepare_atoms("[H+]")
    # A charge given without a spin gets the lowest spin of the new electron count.
    cation = prepare_atoms("C", charge=1)
    assert cation.info["charge"] == 1 and cation.info["multiplicity"] == 2
    with pytest.raises(KeyError, match="unknown level of theory 'mp2/cc-pvdz'"):
        get_level("mp2/cc-pvdz")


def test_impossible_geometries_are_named_before_pyscf_sees_them():
    nan_water = WATER.copy()
    nan_water.positions[2, 0] = np.nan
    with pytest.raises(GeometryError, match=r"H2O .*atom 2 \(H\) has non-finite coordinates"):
        CheapCalculation(nan_water)
    stacked = WATER.copy()
    stacked.positions[1] = stacked.positions[0] + [0.0, 0.0, 0.1]
    with pytest.raises(GeometryError, match=r"atoms 0 \(O\) and 1 \(H\) are 0.10 Å apart .*coordinates are in Å"):
        CheapCalculation(stacked)
    with pytest.raises(GeometryError, match="no atoms"):
        CheapCalculation(Atoms())
    prepare_atoms(Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]]))  # the shortest real bond passes


def test_scf_failure_is_raised_never_returned():
    with pytest.raises(SCFConvergenceError, match="did not converge within 3 cycles"):
        CheapCalculation("CC(=O)Nc1ccc(O)cc1", strategies=("diis",), max_cycle=3).run()


def test_scf_fallback_rescues_a_stalled_run():
    calc = CheapCalculation("CC(=O)Nc1ccc(O)cc1", strategies=("diis", "newton"), max_cycle=3).run()
    assert calc.converged and calc.strategy == "newton"
    reference = CheapCalculation("CC(=O)Nc1ccc(O)cc1").run()
    assert calc.e_tot == pytest.approx(reference.e_tot, abs=1e-6)


def test_zero_scf_cycles_report_non_convergence_instead_of_an_internal_error():
    with pytest.raises(SCFConvergenceError, match="within 0 cycles"):
        CheapCalculation("O", max_cycle=0).run()
