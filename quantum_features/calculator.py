"""Conformer energies for users: ranking, an ASE calculator, geometry optimisation.

All three run the cheap calculation (HF/STO-3G with density fitting, analytic gradient) on
each structure and the conformer-trained network on its orbital features; energies are the
reference level's (B3LYP-D3(BJ)/def2-SVP, see the weights' model card). Models trained with
``dispersion`` set (the shipped config) add the reference's D3(BJ) dispersion energy exactly.
Forces are ``−∇E_cheap − ∇E_disp − ∂E_net/∂R``: analytic cheap-level gradient, analytic
dispersion gradient, and autograd of the network with the orbital features held fixed (the
network's derivative through the SCF is not included; see `quantum_features.conformer_training`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Hartree
from rdkit import Chem

from quantum_features.conformer_training import HARTREE_TO_KCAL, energy_and_forces
from quantum_features.errors import QuantumError
from quantum_features.features import OrbitalFeatures, featurize
from quantum_features.model import OrbitalPropertyNet

__all__ = ["OrbNetCalculator", "default_conformer_model_paths", "ensemble_energy_and_forces", "load_conformer_models",
           "optimize_geometry", "rank_conformers"]

WEIGHTS_DIR = Path(__file__).with_name("weights")


def default_conformer_model_paths() -> list[Path]:
    """The shipped conformer-energy ensemble (``quantum_features/weights/conformer_*.pt``)."""
    paths = sorted(WEIGHTS_DIR.glob("conformer_*.pt"))
    if not paths:
        raise QuantumError(
            f"no conformer-energy model ships in {WEIGHTS_DIR} yet: label conformers with "
            "`python -m quantum_features.conformer_set`, train with `python -m quantum_features.conformer_training "
            "CONFIG` and export, or pass models=PATH"
        )
    return paths


def load_conformer_models(models: Any = None) -> list[OrbitalPropertyNet]:
    """None (the shipped ensemble), a path, a model, or a list of them; in eval mode."""
    from quantum_features.predict import load_ensemble

    return load_ensemble(default_conformer_model_paths() if models is None else models)


def ensemble_energy_and_forces(
    models: list[OrbitalPropertyNet], structure: Atoms | OrbitalFeatures, forces: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """(member energies [M] Hartree, ensemble-mean forces [N, 3] Hartree/Å or None).

    `structure` is featurised here unless it is already `OrbitalFeatures` (forces need them
    computed with ``gradient=True``). Energy only (`forces` False) skips the cheap level's
    gradient: that is all ranking needs.
    """
    from quantum_features.predict import check_trained_elements

    numbers = structure.numbers if isinstance(structure, OrbitalFeatures) else structure.get_atomic_numbers()
    label = structure.get_chemical_formula() if isinstance(structure, Atoms) else "structure"
    check_trained_elements(models, numbers, label)  # before the cheap calculation, which it would waste
    features = structure if isinstance(structure, OrbitalFeatures) else featurize(structure, gradient=forces)
    data = features.to_data()
    energies, member_forces = [], []
    for model in models:
        with torch.set_grad_enabled(forces):
            e, f = energy_and_forces(model, data.clone(), forces=forces)
        energies.append(float(e.detach()[0]))
        if forces:
            member_forces.append(f.detach().double().numpy())
    return np.array(energies), (np.mean(member_forces, axis=0) if forces else None)


class OrbNetCalculator(Calculator):
    """ASE calculator: energy (eV) and forces (eV/Å) from the conformer-trained network.

    ``atoms.info["charge"]`` and ``["multiplicity"]`` set the electronic state (default
    neutral, lowest spin). ``results["energy_std"]`` is the ensemble spread (eV; sample standard
    deviation, NaN for a single model).
    """

    implemented_properties = ["energy", "forces", "free_energy"]

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """ASE's changes plus the electronic state in ``atoms.info``, which ASE does not compare."""
        changes = super().check_state(atoms, tol)
        if self.atoms is not None and any(atoms.info.get(k) != self.atoms.info.get(k) for k in ("charge", "multiplicity")):
            changes.append("initial_charges")  # recompute: same geometry, other charge or spin
        return changes

    def __init__(self, models: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.models = load_conformer_models(models)

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        structure = self.atoms.copy()
        structure.info.update({k: v for k, v in self.atoms.info.items() if k in ("charge", "multiplicity", "smiles")})
        energies, forces = ensemble_energy_and_forces(self.models, structure, forces=True)
        self.results["energy"] = self.results["free_energy"] = float(energies.mean()) * Hartree
        # Sample spread (ddof=1), as the *_std columns of predict_properties.
        self.results["energy_std"] = float(energies.std(ddof=1)) * Hartree if len(energies) > 1 else float("nan")
        self.results["forces"] = forces * Hartree  # Hartree/Å -> eV/Å


def optimize_geometry(
    molecule: str | Chem.Mol | Atoms,
    *,
    models: Any = None,
    fmax: float = 0.05,
    steps: int = 200,
    optimizer: str = "BFGS",
    seed: int = 42,
) -> tuple[Atoms, pd.DataFrame]:
    """Relax a structure with `OrbNetCalculator` and an ASE optimiser.

    Args:
        molecule: SMILES / Mol (an MMFF94 conformer is the start) or ase.Atoms.
        fmax: convergence on the largest force (eV/Å).
        optimizer: "BFGS", "FIRE" or "LBFGS".

    Returns:
        (optimised Atoms, trajectory table: step, energy_ev, fmax_ev_per_angstrom).

    Raises:
        QuantumError: unknown optimiser or no convergence within `steps`.
    """
    from ase import optimize as ase_optimize

    from quantum_features.calc import prepare_atoms

    if optimizer not in ("BFGS", "FIRE", "LBFGS"):
        raise QuantumError(f"unknown optimiser {optimizer!r}; choose BFGS, FIRE or LBFGS")
    if not fmax > 0 or steps < 1:  # NaN fmax would run every step and then report failure
        raise QuantumError(f"fmax ({fmax} eV/Å) must be positive and steps ({steps}) at least 1")
    atoms = prepare_atoms(molecule, seed=seed)
    atoms.calc = OrbNetCalculator(models)
    history = []

    def record() -> None:
        forces = atoms.get_forces()
        history.append({"step": len(history), "energy_ev": float(atoms.get_potential_energy()),
                        "fmax_ev_per_angstrom": float(np.sqrt((forces**2).sum(axis=1)).max())})

    opt = getattr(ase_optimize, optimizer)(atoms, logfile=None)
    opt.attach(record, interval=1)
    converged = opt.run(fmax=fmax, steps=steps)
    trajectory = pd.DataFrame(history)
    if not converged:
        raise QuantumError(f"{atoms.get_chemical_formula()}: {optimizer} did not reach fmax {fmax} eV/Å in {steps} steps "
                           f"(last {trajectory['fmax_ev_per_angstrom'].iloc[-1]:.3f})")
    result = atoms.copy()
    result.info.update(atoms.info)
    return result, trajectory


def rank_conformers(
    molecule: str | Chem.Mol,
    n_conformers: int = 10,
    *,
    models: Any = None,
    seed: int = 42,
    **conformer_options: Any,
) -> pd.DataFrame:
    """Generate MMFF94 conformers and rank them by the network's reference-level energy.

    `conformer_options` go to `molops.conformers.ConformerOptions` (e.g. ``prune_rms_angstrom``,
    ``energy_window_kcal_mol``: the window applies to force-field energies, before ranking).

    Returns:
        One row per conformer, lowest first: ``conformer_id`` (in ``frame.attrs["mol"]``),
        ``rank``, ``energy_hartree``, ``relative_energy_kcal_mol``, ``uncertainty_kcal_mol``
        (ensemble spread, the sample standard deviation of the members' relative energies, every
        member measured from the conformer ranked lowest; 0 for that conformer, NaN for a single
        model), ``mmff_relative_kcal_mol``.
        ``frame.attrs["mol"]`` holds the conformers (RDKit, with hydrogens).

    Raises:
        ParseError / UnsupportedElementError / ConformerError / QuantumError.
    """
    from molops.conformers import generate_conformers

    ensemble = load_conformer_models(models)
    conformers = generate_conformers(molecule, n_conformers=n_conformers, seed=seed, **conformer_options)
    member_energies = []
    for j in range(len(conformers)):
        energies, _ = ensemble_energy_and_forces(ensemble, conformers.to_atoms(j), forces=False)
        member_energies.append(energies)
    member_energies = np.array(member_energies)  # [conformers, members]
    mean_energy = member_energies.mean(axis=1)
    # Each member's energies relative to the conformer the ensemble ranks lowest: the spread of the
    # reported relative energy (0 for that conformer), also when the members disagree on their minima.
    relative = (member_energies - member_energies[mean_energy.argmin()]) * HARTREE_TO_KCAL
    frame = pd.DataFrame({
        "conformer_id": np.arange(len(conformers)),
        "energy_hartree": mean_energy,
        "relative_energy_kcal_mol": (mean_energy - mean_energy.min()) * HARTREE_TO_KCAL,
        "uncertainty_kcal_mol": relative.std(axis=1, ddof=1) if relative.shape[1] > 1 else np.nan,
        "mmff_relative_kcal_mol": conformers.energies_kcal_mol - conformers.energies_kcal_mol.min(),
    })
    frame = frame.sort_values("energy_hartree", kind="stable").reset_index(drop=True)
    frame.insert(1, "rank", np.arange(1, len(frame) + 1))
    frame.attrs["mol"] = conformers.mol
    return frame
