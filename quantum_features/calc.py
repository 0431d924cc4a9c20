"""The cheap mean-field calculation behind the orbital features (PySCF).

`CheapCalculation` follows PySCF's habit: options are attributes, ``run()`` computes and
returns the object, results are attributes (``e_tot`` in Hartree, ``converged``,
``strategy``, ``gradient`` in Hartree/Å, ``timings`` in seconds).

Closed shells run RHF (RKS for functionals), open shells UHF (default) or ROHF. When the
SCF does not converge with DIIS, it is restarted from the last density with a level shift
and damping, then with second-order (Newton) SCF; if that fails too, `SCFConvergenceError`
is raised. A result is never returned unconverged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from pyscf import df, dft, gto, scf
from pyscf.data.nist import AU2DEBYE, BOHR
from rdkit import Chem

from molops.atoms import mol_to_atoms
from molops.conformers import generate_conformers
from molops.errors import UnsupportedElementError
from molops.io import ORGANIC_ELEMENTS, to_mol
from quantum_features.errors import ElectronCountError, GeometryError, QuantumError, SCFConvergenceError
from quantum_features.fast_scf import use_fast_scf
from quantum_features.levels import DEFAULT_LEVEL, Level, get_level, gpu_available

__all__ = ["CheapCalculation", "OperatorMatrices", "prepare_atoms", "describe_atoms", "STRATEGIES"]

#: SCF strategies tried in order; each restarts from the previous attempt's density.
STRATEGIES = ("diis", "level_shift", "newton")


def describe_atoms(atoms: Atoms) -> str:
    """Name a structure in messages: SMILES if known, else formula; with charge and spin."""
    name = atoms.info.get("smiles") or atoms.get_chemical_formula()
    return (
        f"{name} (charge {atoms.info.get('charge', 0)}, "
        f"multiplicity {atoms.info.get('multiplicity', 1)})"
    )


#: Closest approach of two atoms (Å) accepted as a geometry; the shortest real bond, H–H, is 0.74 Å.
MIN_INTERATOMIC_DISTANCE = 0.5


def check_geometry(atoms: Atoms, min_distance: float = MIN_INTERATOMIC_DISTANCE) -> None:
    """Raise `GeometryError` for a structure no calculation should start from.

    Catches what otherwise surfaces deep inside PySCF as a singular overlap matrix or a
    NaN: no atoms, non-finite coordinates, and atoms closer than `min_distance` Å (two
    copies of a molecule on top of each other, coordinates in the wrong unit, a broken
    optimisation step).
    """
    if len(atoms) == 0:
        raise GeometryError("a structure with no atoms: nothing to compute")
    positions = atoms.get_positions()
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if len(bad):
        raise GeometryError(f"{describe_atoms(atoms)}: atom {bad[0]} ({atoms[bad[0]].symbol}) has non-finite "
                            f"coordinates {positions[bad[0]].tolist()}" + (f" ({len(bad)} atoms in all)" if len(bad) > 1 else ""))
    if len(atoms) > 1:
        distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
        distances[np.diag_indices(len(atoms))] = np.inf
        i, j = np.unravel_index(np.argmin(distances), distances.shape)
        if distances[i, j] < min_distance:
            raise GeometryError(
                f"{describe_atoms(atoms)}: atoms {min(i, j)} ({atoms[min(i, j)].symbol}) and {max(i, j)} "
                f"({atoms[max(i, j)].symbol}) are {distances[i, j]:.2f} Å apart (< {min_distance} Å); check the "
                "geometry and that coordinates are in Å")


def _whole(value: Any, what: str, atoms: Atoms) -> int:
    """`value` as an int if it is a whole number (2 or 2.0), else `ElectronCountError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise ElectronCountError(f"{describe_atoms(atoms)}: {what} {value!r} is not a whole number")
    return int(number)


def prepare_atoms(
    molecule: str | Chem.Mol | Atoms,
    charge: int | None = None,
    multiplicity: int | None = None,
    seed: int = 42,
) -> Atoms:
    """A 3D structure with ``info['charge']`` and ``info['multiplicity']`` set and checked.

    SMILES and Mols without a conformer get the lowest MMFF94 conformer (ETKDGv3, `seed`);
    Mols with a 3D conformer are used as they are (hydrogens added with coordinates).
    Charge and multiplicity default to those stored on the input (formal charges and
    radicals for RDKit input), else neutral and lowest spin; a `charge` given without a
    `multiplicity` gets the lowest spin of the new electron count.

    Raises:
        UnsupportedElementError: an element outside H, B, C, N, O, F, Si, P, S, Cl, Br, I.
        ElectronCountError: charge and multiplicity do not fit the number of electrons.
        GeometryError: no atoms, non-finite coordinates or overlapping atoms (`check_geometry`).
    """
    if isinstance(molecule, Atoms):
        atoms = molecule.copy()
    else:
        mol = to_mol(molecule)
        if mol.GetNumConformers() and mol.GetConformer().Is3D():
            atoms = mol_to_atoms(Chem.AddHs(mol, addCoords=True))
        else:
            atoms = generate_conformers(mol, n_conformers=1, seed=seed).to_atoms(0)
    bad = sorted(set(atoms.get_chemical_symbols()) - ORGANIC_ELEMENTS)
    if bad:
        raise UnsupportedElementError(
            f"{describe_atoms(atoms)}: unsupported element(s) {', '.join(bad)}; the cheap "
            f"calculation supports {', '.join(sorted(ORGANIC_ELEMENTS))}"
        )
    check_geometry(atoms)
    if charge is not None:
        atoms.info["charge"] = _whole(charge, "charge", atoms)
        if multiplicity is None:  # the input's spin was for its own charge
            atoms.info.pop("multiplicity", None)
    atoms.info["charge"] = _whole(atoms.info.get("charge", 0), "charge", atoms)  # also a given Atoms' own
    if atoms.info.get("multiplicity") is not None:
        atoms.info["multiplicity"] = _whole(atoms.info["multiplicity"], "multiplicity", atoms)
    electrons = int(atoms.numbers.sum()) - int(atoms.info["charge"])
    if electrons <= 0:
        raise ElectronCountError(f"{describe_atoms(atoms)}: charge {atoms.info['charge']} leaves {electrons} electrons")
    if multiplicity is not None:
        atoms.info["multiplicity"] = _whole(multiplicity, "multiplicity", atoms)
    atoms.info.setdefault("multiplicity", 1 + electrons % 2)
    unpaired = int(atoms.info["multiplicity"]) - 1
    if electrons < 0 or unpaired < 0 or unpaired > electrons or (electrons - unpaired) % 2:
        raise ElectronCountError(
            f"{describe_atoms(atoms)}: {electrons} electrons cannot have multiplicity "
            f"{unpaired + 1}; check the charge and spin"
        )
    return atoms


@dataclass(frozen=True)
class OperatorMatrices:
    """AO matrices of a converged calculation (PySCF AO order, nao x nao).

    Attributes:
        overlap: S.
        core_hamiltonian: H = T + V_nuc (Hartree).
        fock: F (Hartree); the spin average (F_α + F_β)/2 for open shells.
        density: P = P_α + P_β (electrons).
        spin_density: P_α − P_β (zero for closed shells).
        coulomb: J[P] (Hartree).
        exchange: K[P_α] + K[P_β] (Hartree), so that F_HF = H + J − K/2 for closed shells.
    """

    overlap: np.ndarray
    core_hamiltonian: np.ndarray
    fock: np.ndarray
    density: np.ndarray
    spin_density: np.ndarray
    coulomb: np.ndarray
    exchange: np.ndarray


class CheapCalculation:
    """A mean-field single point (and optionally its analytic gradient) with PySCF.

    Attributes (options; set before ``run()``):
        atoms: the structure (Å), with ``info['charge']`` and ``info['multiplicity']``.
        level: a name from `quantum_features.levels.LEVELS` or a `Level`.
        open_shell: "uhf" or "rohf" for multiplicity > 1.
        conv_tol: SCF energy convergence (Hartree); the density converges to ~sqrt of it.
        max_cycle: SCF iterations per strategy.
        strategies: strategies tried in order (subset of `STRATEGIES`).
        gradient: also compute the analytic nuclear gradient.
        max_memory_mb: largest density-fitting tensor kept unpacked in memory for fast J/K
            builds (`quantum_features.fast_scf`); bigger molecules use PySCF's blocked code.
        device: "cpu", "gpu" (gpu4pyscf; SCF and gradient on a CUDA GPU) or "auto" (the GPU
            when `levels.gpu_available()`).

    Results (after ``run()``): ``e_tot`` (Hartree), ``converged`` (always True: failures
    raise), ``strategy`` (the one that converged), ``gradient`` ([n_atoms, 3] Hartree/Å or
    None), ``mf`` (the PySCF object), ``mol`` (the PySCF Mole), ``timings`` (seconds).
    """

    def __init__(
        self,
        molecule: str | Chem.Mol | Atoms,
        *,
        charge: int | None = None,
        multiplicity: int | None = None,
        level: str | Level = DEFAULT_LEVEL,
        open_shell: str = "uhf",
        conv_tol: float = 1e-8,
        max_cycle: int = 60,
        strategies: Sequence[str] = STRATEGIES,
        gradient: bool = False,
        seed: int = 42,
        max_memory_mb: float = 2000.0,
        device: str = "cpu",
    ) -> None:
        self.atoms = prepare_atoms(molecule, charge, multiplicity, seed)
        self.level = get_level(level)
        if open_shell not in ("uhf", "rohf"):
            raise ValueError(f"open_shell must be 'uhf' or 'rohf', got {open_shell!r}")
        unknown = set(strategies) - set(STRATEGIES)
        if unknown or not strategies:
            raise ValueError(f"strategies must be a non-empty subset of {STRATEGIES}, got {strategies}")
        self.open_shell = open_shell
        self.conv_tol = conv_tol
        self.max_cycle = max_cycle
        self.strategies = tuple(strategies)
        self.want_gradient = gradient
        self.max_memory_mb = max_memory_mb
        if device not in ("cpu", "gpu", "auto"):
            raise ValueError(f"device must be 'cpu', 'gpu' or 'auto', got {device!r}")
        if device == "auto":
            device = "gpu" if gpu_available() else "cpu"
        elif device == "gpu" and not gpu_available():
            raise QuantumError("device='gpu' asked for, but gpu4pyscf or a CUDA device is missing")
        self.device = device
        self.e_tot: float | None = None
        self.converged = False
        self.strategy: str | None = None
        self.gradient: np.ndarray | None = None
        self.mf = None
        self.mol: gto.Mole | None = None
        self.timings: dict[str, float] = {}

    # ----------------------------------------------------------------------------- set-up
    @property
    def label(self) -> str:
        return f"{describe_atoms(self.atoms)} at {self.level.name}"

    def build_mole(self) -> gto.Mole:
        multiplicity = int(self.atoms.info["multiplicity"])
        try:
            return gto.M(
                atom=[(s, tuple(p)) for s, p in zip(self.atoms.get_chemical_symbols(), self.atoms.positions)],
                unit="Angstrom",
                basis=self.level.basis,
                charge=int(self.atoms.info["charge"]),
                spin=multiplicity - 1,
                verbose=0,
            )
        except (RuntimeError, KeyError) as exc:
            raise QuantumError(f"{self.label}: PySCF cannot build the molecule: {exc}") from None

    def _scf_object(self, mol: gto.Mole):
        closed = mol.spin == 0
        if self.level.method == "hf":
            cls = scf.RHF if closed else {"uhf": scf.UHF, "rohf": scf.ROHF}[self.open_shell]
            mf = cls(mol)
        else:
            cls = dft.RKS if closed else {"uhf": dft.UKS, "rohf": dft.ROKS}[self.open_shell]
            mf = cls(mol, xc=self.level.method)
        if self.level.density_fit:
            auxbasis = df.aug_etb(mol, beta=self.level.etb_beta) if self.level.etb_beta else None
            mf = mf.density_fit(auxbasis=auxbasis)
            tensor_mb = mf.with_df.get_naoaux() * mol.nao**2 * 8 / 1e6
            if tensor_mb <= self.max_memory_mb and self.device == "cpu":
                use_fast_scf(mf)  # ~3x faster SCF cycles; PySCF's blocked code otherwise
        if self.device == "gpu":
            mf = mf.to_gpu()
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        return mf

    def _configured(self, mol: gto.Mole, strategy: str):
        mf = self._scf_object(mol)
        if strategy == "level_shift":
            mf.level_shift = 0.5  # Hartree: separates occupied and virtual levels
            mf.damp = 0.5
            mf.diis_start_cycle = 4
        elif strategy == "newton":
            mf = mf.newton()
        return mf

    # ----------------------------------------------------------------------------- run
    def run(self) -> CheapCalculation:
        """Converge the SCF (trying the strategies in turn), then the gradient if asked.

        Raises:
            SCFConvergenceError: no strategy converged.
        """
        start = time.perf_counter()
        self.mol = self.build_mole()
        density = None
        history = []
        for strategy in self.strategies:
            mf = self._configured(self.mol, strategy)
            mf.kernel(dm0=density)
            history.append(f"{strategy}: {'converged' if mf.converged else 'not converged'} at E = {mf.e_tot:.8f} Ha")
            if mf.converged:
                break
            density = mf.make_rdm1()
        else:
            raise SCFConvergenceError(
                f"{self.label}: SCF did not converge within {self.max_cycle} cycles per strategy "
                f"({'; '.join(history)})"
            )
        self.mf, self.strategy, self.converged = mf, strategy, True
        # Re-evaluated on the converged density: J/K of an unchanged density are float64.
        self.e_tot = float(mf.energy_tot(dm=mf.make_rdm1()))
        self.timings["scf_s"] = time.perf_counter() - start
        if self.want_gradient:
            start = time.perf_counter()
            grad_mf = mf.undo_newton() if hasattr(mf, "undo_newton") else mf
            gradient = grad_mf.nuc_grad_method().kernel()
            gradient = gradient.get() if hasattr(gradient, "get") else gradient  # cupy -> numpy
            self.gradient = np.asarray(gradient) / BOHR  # Ha/Bohr -> Ha/Å
            self.timings["gradient_s"] = time.perf_counter() - start
        return self

    def _require_run(self) -> None:
        if self.mf is None:
            raise QuantumError(f"{self.label}: call run() first")

    # ----------------------------------------------------------------------------- results
    def matrices(self) -> OperatorMatrices:
        """The AO operator matrices of the converged calculation."""
        self._require_run()
        mf, mol = self.mf, self.mol
        dm = np.asarray(mf.make_rdm1())
        spin_resolved = dm.ndim == 3
        density = dm[0] + dm[1] if spin_resolved else dm
        spin_density = dm[0] - dm[1] if spin_resolved else np.zeros_like(dm)
        vj, vk = mf.get_jk(mol, mf.make_rdm1())
        coulomb = np.asarray(vj[0] + vj[1] if spin_resolved else vj)
        exchange = np.asarray(vk[0] + vk[1] if spin_resolved else vk)
        hcore = np.asarray(mf.get_hcore())
        if self.level.method == "hf":
            # (F_α + F_β)/2 = H + J − (K_α + K_β)/2, also for ROHF: no second J/K build.
            fock = hcore + coulomb - exchange / 2
        else:
            fock = mf.get_fock(dm=mf.make_rdm1())
            if hasattr(fock, "focka"):  # ROKS keeps the spin Fock matrices as attributes
                fock = (np.asarray(fock.focka) + np.asarray(fock.fockb)) / 2
            fock = np.asarray(fock)
            if fock.ndim == 3:
                fock = fock.mean(axis=0)
        return OperatorMatrices(
            overlap=mol.intor_symmetric("int1e_ovlp"),
            core_hamiltonian=hcore,
            fock=fock,
            density=density,
            spin_density=spin_density,
            coulomb=np.asarray(coulomb),
            exchange=np.asarray(exchange),
        )

    def frontier_orbitals(self) -> tuple[float, float]:
        """(HOMO, LUMO) orbital energies in Hartree (over both spins for open shells)."""
        self._require_run()
        energies = np.concatenate([np.ravel(e) for e in np.atleast_2d(self.mf.mo_energy)])
        occupations = np.concatenate([np.ravel(o) for o in np.atleast_2d(self.mf.mo_occ)])
        occupied = energies[occupations > 0]
        virtual = energies[occupations == 0]
        homo = float(occupied.max())
        lumo = float(virtual.min()) if virtual.size else float("nan")
        return homo, lumo

    def dipole_debye(self, density: np.ndarray | None = None) -> np.ndarray:
        """Dipole moment (Debye) about the centre of nuclear charge (origin-independent)."""
        self._require_run()
        mol = self.mol
        density = self.matrices().density if density is None else density
        charges = mol.atom_charges()
        coords = mol.atom_coords()  # Bohr
        centre = charges @ coords / charges.sum()
        with mol.with_common_orig(centre):
            ao_dipole = mol.intor_symmetric("int1e_r")
        electronic = np.einsum("xij,ji->x", ao_dipole, density)
        nuclear = charges @ (coords - centre)
        return (nuclear - electronic) * AU2DEBYE
