"""3D conformer ensembles: ETKDGv3 embedding, force-field minimisation, pruning.

Recipe (RDKit): embed ``oversample * n_conformers`` ETKDGv3 conformers from a fixed seed,
minimise each with MMFF94 (UFF where MMFF94 lacks parameters, e.g. boron), sort by energy,
drop those above the energy window, then greedily keep conformers whose heavy-atom,
symmetry-aware RMSD to every kept one (and, for achiral molecules, to its mirror image)
exceeds the pruning threshold, up to ``n_conformers``.
Energies are the force field's, in kcal/mol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rdkit import Chem
from rdkit.Chem import AllChem, rdDistGeom, rdMolAlign
from rdkit.Geometry import Point3D

from molops.errors import ConformerError, describe_input
from molops.io import ORGANIC_ELEMENTS, check_elements, mol_to_smiles, rdkit_errors, to_mol

__all__ = ["ConformerOptions", "ConformerEnsemble", "generate_conformers"]


def _mmff(variant: str) -> Callable[[Chem.Mol, int, int], list[tuple[int, float]]]:
    def optimise(mol: Chem.Mol, max_iterations: int, n_threads: int) -> list[tuple[int, float]]:
        return AllChem.MMFFOptimizeMoleculeConfs(
            mol, numThreads=n_threads, maxIters=max_iterations, mmffVariant=variant
        )

    return optimise


def _uff(mol: Chem.Mol, max_iterations: int, n_threads: int) -> list[tuple[int, float]]:
    return AllChem.UFFOptimizeMoleculeConfs(mol, numThreads=n_threads, maxIters=max_iterations)


#: Force field name -> (has-parameters check, optimiser returning (not_converged, kcal/mol)).
FORCE_FIELDS: dict[str, tuple[Callable[[Chem.Mol], bool], Callable[..., list[tuple[int, float]]]]] = {
    "MMFF94": (AllChem.MMFFHasAllMoleculeParams, _mmff("MMFF94")),
    "MMFF94s": (AllChem.MMFFHasAllMoleculeParams, _mmff("MMFF94s")),
    "UFF": (AllChem.UFFHasAllMoleculeParams, _uff),
}


@dataclass(frozen=True)
class ConformerOptions:
    """Settings of `generate_conformers`.

    Attributes:
        n_conformers: at most this many conformers are returned.
        seed: random seed of the embedding; equal seeds give identical ensembles (negative: a
            different ensemble on every call).
        prune_rms_angstrom: minimum heavy-atom RMSD (Å, symmetry-aware) between kept conformers.
        energy_window_kcal_mol: drop conformers this far above the minimum (None keeps all).
        force_field: "MMFF94", "MMFF94s" or "UFF"; falls back to UFF if parameters are missing.
        max_iterations: force-field minimisation steps per conformer.
        oversample: embed this many times `n_conformers` before pruning.
        n_threads: RDKit threads for embedding and minimisation (0 = all cores).
        prune_mirror_images: for achiral molecules, treat a conformer and its mirror image
            as one (they have identical energies and properties).
    """

    n_conformers: int = 10
    seed: int = 42
    prune_rms_angstrom: float = 0.5
    energy_window_kcal_mol: float | None = 10.0
    force_field: str = "MMFF94"
    max_iterations: int = 2000
    oversample: int = 2
    n_threads: int = 1
    prune_mirror_images: bool = True

    def __post_init__(self) -> None:
        if self.force_field not in FORCE_FIELDS:
            raise ValueError(
                f"unknown force field {self.force_field!r}; choose from {', '.join(FORCE_FIELDS)}"
            )
        for name in ("n_conformers", "seed", "max_iterations", "oversample", "n_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):  # RDKit would fail obscurely
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if self.n_conformers < 1:
            raise ValueError(f"n_conformers must be at least 1, got {self.n_conformers}")
        if self.oversample < 1 or self.max_iterations < 1 or self.n_threads < 0:
            raise ValueError(f"oversample ({self.oversample}) and max_iterations ({self.max_iterations}) must be ≥ 1, "
                             f"n_threads ({self.n_threads}) ≥ 0")
        if not self.prune_rms_angstrom >= 0:  # also refuses NaN
            raise ValueError(f"prune_rms_angstrom must be ≥ 0 Å, got {self.prune_rms_angstrom}")
        if self.energy_window_kcal_mol is not None and not self.energy_window_kcal_mol >= 0:
            raise ValueError(f"energy_window_kcal_mol must be ≥ 0 kcal/mol (or None), got {self.energy_window_kcal_mol}")


@dataclass(frozen=True)
class ConformerEnsemble:
    """Conformers of one molecule, sorted by force-field energy.

    Attributes:
        mol: molecule with explicit hydrogens; conformer ids 0..n-1 in energy order.
        energies_kcal_mol: force-field energy of each conformer (kcal/mol).
        converged: whether each minimisation converged within `max_iterations`.
        force_field: the force field actually used.
    """

    mol: Chem.Mol
    energies_kcal_mol: np.ndarray
    converged: np.ndarray
    force_field: str
    options: ConformerOptions = field(default_factory=ConformerOptions)

    def __len__(self) -> int:
        return self.mol.GetNumConformers()

    @property
    def relative_energies_kcal_mol(self) -> np.ndarray:
        """Energies relative to the lowest conformer (kcal/mol)."""
        return self.energies_kcal_mol - self.energies_kcal_mol.min()

    def conformer(self, index: int) -> Chem.Mol:
        """A copy of the molecule holding only conformer `index`."""
        single = Chem.Mol(self.mol, confId=index)
        single.GetConformer().SetId(0)
        return single

    def to_frame(self) -> pd.DataFrame:
        """One row per conformer: ``mol`` (single conformer), energies and convergence."""
        return pd.DataFrame(
            {
                "conformer_id": np.arange(len(self)),
                "mol": [self.conformer(i) for i in range(len(self))],
                "energy_kcal_mol": self.energies_kcal_mol,
                "relative_energy_kcal_mol": self.relative_energies_kcal_mol,
                "converged": self.converged,
                "force_field": self.force_field,
            }
        )

    def to_atoms(self, index: int = 0):  # -> ase.Atoms (imported lazily)
        """Conformer `index` as an `ase.Atoms` carrying charge and spin multiplicity."""
        from molops.atoms import mol_to_atoms

        if not 0 <= index < len(self):
            raise IndexError(f"conformer {index} of an ensemble of {len(self)} (ids 0..{len(self) - 1})")
        return mol_to_atoms(self.mol, conf_id=index)


def _embed(mol: Chem.Mol, count: int, options: ConformerOptions, label: str) -> list[int]:
    params = rdDistGeom.ETKDGv3()
    # RDKit's seed 0 makes every conformer of EmbedMultipleConfs the same (rdkit#1738, still so in
    # 2026.09): our seeds 0, 1, 2, ... are RDKit's 1, 2, 3, ...; a negative seed is RDKit's -1 (random).
    params.randomSeed = options.seed + 1 if options.seed >= 0 else -1
    params.numThreads = options.n_threads
    params.pruneRmsThresh = -1.0  # prune after minimisation, where it matters
    with rdkit_errors() as log:
        ids = list(rdDistGeom.EmbedMultipleConfs(mol, numConfs=count, params=params))
        if not ids:
            # Strained or large ring systems embed more reliably from random coordinates.
            params.useRandomCoords = True
            ids = list(rdDistGeom.EmbedMultipleConfs(mol, numConfs=count, params=params))
    if not ids:
        raise ConformerError(f"{label}: ETKDGv3 embedding failed: {log.reason('no conformer found')}")
    return ids


def _choose_force_field(mol: Chem.Mol, requested: str, label: str) -> str:
    for name in (requested, "UFF"):
        has_params, _ = FORCE_FIELDS[name]
        if has_params(mol):
            return name
    raise ConformerError(f"{label}: neither {requested} nor UFF has parameters for this molecule")


def _mirrored(mol: Chem.Mol) -> Chem.Mol:
    """A copy of `mol` with every conformer reflected through the yz plane."""
    mirror = Chem.Mol(mol)
    for conformer in mirror.GetConformers():
        positions = conformer.GetPositions()
        positions[:, 0] *= -1.0
        for index, (x, y, z) in enumerate(positions):
            conformer.SetAtomPosition(index, Point3D(x, y, z))
    return mirror


def _prune(
    mol: Chem.Mol, order: list[int], threshold: float, limit: int, mirror_images: bool
) -> list[int]:
    heavy = Chem.RemoveHs(mol)
    # Mirror-image conformers of an achiral molecule are the same conformer (same energy,
    # same properties); of a chiral molecule they would be the other enantiomer, which
    # ETKDG never makes, so the reflection test only applies to achiral molecules.
    achiral = not Chem.FindMolChiralCenters(heavy, includeUnassigned=True, useLegacyImplementation=False)
    mirror = _mirrored(heavy) if mirror_images and achiral else None

    def distance(probe: int, ref: int) -> float:
        # GetBestRMS aligns the probe in place: it only ever sees these hydrogen-free copies.
        rms = rdMolAlign.GetBestRMS(heavy, heavy, prbId=probe, refId=ref, maxMatches=10000)
        if mirror is not None:
            rms = min(rms, rdMolAlign.GetBestRMS(mirror, heavy, prbId=probe, refId=ref, maxMatches=10000))
        return rms

    kept: list[int] = []
    for conf_id in order:
        if len(kept) == limit:
            break
        if all(distance(conf_id, ref) > threshold for ref in kept):
            kept.append(conf_id)
    return kept


def generate_conformers(
    molecule: str | Chem.Mol, options: ConformerOptions | None = None, **overrides: object
) -> ConformerEnsemble:
    """Generate a minimised, pruned conformer ensemble.

    Args:
        molecule: SMILES or RDKit Mol (hydrogens are added).
        options: a `ConformerOptions`; keyword `overrides` replace its fields, e.g.
            ``generate_conformers("CCO", n_conformers=5, seed=7)``.

    Raises:
        ParseError / UnsupportedElementError: bad input or elements outside the organic set.
        ConformerError: embedding or force-field set-up failed.
    """
    options = options or ConformerOptions()
    if overrides:
        unknown = set(overrides) - set(ConformerOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(
                f"unknown conformer option(s) {sorted(unknown)}; "
                f"valid: {sorted(ConformerOptions.__dataclass_fields__)}"
            )
        options = ConformerOptions(**{**options.__dict__, **overrides})
    mol = to_mol(molecule)
    label = describe_input(molecule if isinstance(molecule, str) else mol_to_smiles(mol))
    check_elements(mol, ORGANIC_ELEMENTS, label)
    mol = Chem.AddHs(mol)
    mol.RemoveAllConformers()
    _embed(mol, options.oversample * options.n_conformers, options, label)
    force_field = _choose_force_field(mol, options.force_field, label)
    results = FORCE_FIELDS[force_field][1](mol, options.max_iterations, options.n_threads)
    conf_ids = [c.GetId() for c in mol.GetConformers()]
    energies = {cid: energy for cid, (_, energy) in zip(conf_ids, results)}
    converged = {cid: not_conv == 0 for cid, (not_conv, _) in zip(conf_ids, results)}
    order = sorted(conf_ids, key=energies.__getitem__)
    if options.energy_window_kcal_mol is not None:
        lowest = energies[order[0]]
        order = [c for c in order if energies[c] - lowest <= options.energy_window_kcal_mol]
    kept = _prune(mol, order, options.prune_rms_angstrom, options.n_conformers, options.prune_mirror_images)

    ensemble = Chem.Mol(mol)
    ensemble.RemoveAllConformers()
    for new_id, conf_id in enumerate(kept):
        conformer = Chem.Conformer(mol.GetConformer(conf_id))
        conformer.SetId(new_id)
        ensemble.AddConformer(conformer, assignId=False)
    return ConformerEnsemble(
        mol=ensemble,
        energies_kcal_mol=np.array([energies[c] for c in kept]),
        converged=np.array([converged[c] for c in kept]),
        force_field=force_field,
        options=options,
    )
