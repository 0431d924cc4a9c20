"""Docking one ligand with the Vina Python API, grid maps computed once per target.

Vina spends a fixed set-up on every receptor and box: reading the receptor and computing
affinity grid maps (about 1-2.5 s for dockstring's 30 Å DRD2 box). `VinaDocker` does that once
and docks any number of ligands against the same maps; `docker_for` keeps one docker per
(target, settings) in each process, so every Dask worker pays the set-up once.

Maps are computed before any ligand is set, which makes Vina build them for every atom type:
a later ligand with a type the first one lacked then needs no new map (Vina would otherwise
abort the whole process).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem

from molops.docking.ligand import PreparedLigand, prepare_ligand
from molops.docking.receptor import Target, load_target
from molops.errors import DockingError

__all__ = ["DockingSettings", "DockingResult", "VinaDocker", "docker_for", "dock"]

log = logging.getLogger(__name__)

SCORING_FUNCTIONS = ("vina", "vinardo")


@dataclass(frozen=True)
class DockingSettings:
    """How Vina searches and scores.

    Attributes:
        scoring: "vina" or "vinardo".
        exhaustiveness: Monte-Carlo runs per ligand (Vina's default 8; 1 for quick checks).
        n_poses: poses kept per ligand.
        energy_range: poses more than this above the best are dropped (kcal/mol).
        seed: Vina's random seed; each ligand is docked with it, so results do not depend on
            the order ligands arrive in.
        cpu: threads Vina uses per ligand (0: all cores). Batch jobs use 1 thread per worker
            and parallelise over ligands instead.
        spacing: grid-map spacing (Å).
        ph: ligands are protonated at this pH (None: neutral parent).
    """

    scoring: str = "vina"
    exhaustiveness: int = 8
    n_poses: int = 9
    energy_range: float = 3.0
    seed: int = 0
    cpu: int = 1
    spacing: float = 0.375
    ph: float | None = 7.4

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise DockingError(f"seed {self.seed} must be ≥ 0")
        if self.scoring not in SCORING_FUNCTIONS:
            raise DockingError(f"unknown scoring function {self.scoring!r}; choose {' or '.join(SCORING_FUNCTIONS)}")
        if self.exhaustiveness < 1 or self.n_poses < 1:
            raise DockingError(
                f"exhaustiveness ({self.exhaustiveness}) and n_poses ({self.n_poses}) must be at least 1"
            )
        if not 0 < self.spacing <= 1.0:
            raise DockingError(f"grid spacing {self.spacing} Å is outside (0, 1]")
        if self.ph is not None and not 0.0 <= self.ph <= 14.0:  # also refuses NaN
            raise DockingError(f"pH {self.ph} is outside [0, 14]")


@dataclass
class DockingResult:
    """The outcome of docking one ligand.

    Attributes:
        ligand: the prepared ligand (parent SMILES, docked protonation state, PDBQT).
        scores_kcal_mol: Vina score of every pose, best first (kcal/mol, lower is better).
        poses: the docked state with hydrogens, one conformer per pose (receptor frame, Å).
        prepare_seconds / dock_seconds: wall time of ligand preparation and of the search.
    """

    ligand: PreparedLigand
    scores_kcal_mol: list[float]
    poses: Chem.Mol
    target: str
    prepare_seconds: float = 0.0
    dock_seconds: float = 0.0
    settings: DockingSettings = field(default_factory=DockingSettings)

    @property
    def score_kcal_mol(self) -> float:
        """Score of the best pose (kcal/mol)."""
        return self.scores_kcal_mol[0]

    def pose(self, index: int = 0) -> Chem.Mol:
        """A copy of the docked molecule holding only pose `index` (0 = best)."""
        mol = Chem.Mol(self.poses, confId=self.poses.GetConformers()[index].GetId())
        mol.SetProp("_Name", self.ligand.name)
        mol.SetProp("target", self.target)
        mol.SetIntProp("pose", index + 1)
        mol.SetDoubleProp("vina_score_kcal_mol", self.scores_kcal_mol[index])
        mol.SetProp("smiles", self.ligand.smiles)
        mol.SetProp("docked_smiles", self.ligand.docked_smiles)
        return mol

    def sdf(self) -> str:
        """Every pose as SDF records, the score in the ``vina_score_kcal_mol`` property."""
        blocks = []
        for index in range(len(self.scores_kcal_mol)):
            mol = self.pose(index)
            props = "".join(
                f"> <{name}>\n{mol.GetProp(name)}\n\n"
                for name in ("target", "pose", "vina_score_kcal_mol", "smiles", "docked_smiles")
            )
            blocks.append(Chem.MolToMolBlock(mol) + props + "$$$$\n")
        return "".join(blocks)


@contextlib.contextmanager
def _vina_chatter_to_log():
    """Route what Vina's C++ code prints on stderr to this module's debug log.

    Vina warns on stderr about things that are expected here ("Search space volume is greater
    than 27000 Angstrom^3" for dockstring's large boxes, "At low exhaustiveness, it may be
    impossible to utilize all CPUs"); a batch job would repeat them for every worker and ligand.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to capture
        yield
        return
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().splitlines():
                if line.strip():
                    log.debug("vina: %s", line.strip())


class VinaDocker:
    """Vina with a receptor and grid maps loaded: `dock` many ligands against one target."""

    def __init__(self, target: Target | str, settings: DockingSettings = DockingSettings()) -> None:
        from vina import Vina

        self.target = load_target(target) if isinstance(target, str) else target
        self.settings = settings
        self._lock = threading.Lock()  # one Vina object is not safe to share between threads
        start = time.perf_counter()
        cpu = settings.cpu if settings.cpu > 0 else (os.cpu_count() or 1)
        # Vina draws a random seed when given 0, so seed s is passed as s + 1: every molops
        # seed, 0 included, then gives the same result in every process.
        self._vina = Vina(sf_name=settings.scoring, cpu=cpu, seed=settings.seed + 1, verbosity=0)
        with tempfile.TemporaryDirectory() as tmp:
            receptor = self.target.write_receptor(Path(tmp) / "receptor.pdbqt")
            try:
                self._vina.set_receptor(str(receptor))
            except (TypeError, RuntimeError) as exc:
                raise DockingError(f"target {self.target.name!r}: Vina cannot read the receptor: {exc}") from None
        with _vina_chatter_to_log():
            self._vina.compute_vina_maps(
                center=list(self.target.box.center), box_size=list(self.target.box.size),
                spacing=settings.spacing,
            )
        self.setup_seconds = time.perf_counter() - start
        log.debug("maps for %s in %.1f s", self.target.name, self.setup_seconds)

    def dock(self, ligand: PreparedLigand) -> DockingResult:
        """Dock a prepared ligand; raises `DockingError` if Vina rejects it or finds no pose."""
        from meeko import PDBQTMolecule, RDKitMolCreate

        s = self.settings
        with self._lock:
            start = time.perf_counter()
            try:
                self._vina.set_ligand_from_string(ligand.pdbqt)
            except (TypeError, RuntimeError) as exc:
                raise DockingError(f"ligand {ligand.name}: Vina rejects its PDBQT: {exc}") from None
            with _vina_chatter_to_log():
                self._vina.dock(exhaustiveness=s.exhaustiveness, n_poses=s.n_poses)
            energies = np.asarray(self._vina.energies(n_poses=s.n_poses, energy_range=s.energy_range))
            poses_pdbqt = self._vina.poses(n_poses=s.n_poses, energy_range=s.energy_range)
            seconds = time.perf_counter() - start
        if energies.size == 0 or not poses_pdbqt.strip():
            raise DockingError(f"ligand {ligand.name}: Vina found no pose in {self.target.name}'s box")
        pdbqt_mol = PDBQTMolecule(poses_pdbqt, skip_typing=True)
        poses = RDKitMolCreate.from_pdbqt_mol(pdbqt_mol)[0]
        if poses is None:
            raise DockingError(f"ligand {ligand.name}: the docked poses cannot be turned back into a molecule")
        return DockingResult(
            ligand=ligand,
            scores_kcal_mol=[float(e) for e in energies[:, 0]],
            poses=poses,
            target=self.target.name,
            dock_seconds=seconds,
            settings=s,
        )

    def dock_molecule(self, molecule: str | Chem.Mol, *, name: str | None = None) -> DockingResult:
        """Prepare (protonate, embed, type) and dock a SMILES or Mol."""
        start = time.perf_counter()
        ligand = prepare_ligand(molecule, ph=self.settings.ph, seed=self.settings.seed, name=name)
        prepared = time.perf_counter() - start
        result = self.dock(ligand)
        result.prepare_seconds = prepared
        return result


_DOCKERS: dict[tuple[str, DockingSettings], VinaDocker] = {}
_DOCKERS_LOCK = threading.Lock()


def docker_for(target: Target | str, settings: DockingSettings = DockingSettings()) -> VinaDocker:
    """This process's `VinaDocker` for (target, settings), created on first use.

    Only the most recent target is kept: grid maps take tens of MB per target.
    """
    target = load_target(target) if isinstance(target, str) else target
    key = (target.key, settings)
    with _DOCKERS_LOCK:
        docker = _DOCKERS.get(key)
        if docker is None:
            _DOCKERS.clear()
            docker = _DOCKERS[key] = VinaDocker(target, settings)
    return docker


def dock(
    molecule: str | Chem.Mol,
    target: Target | str,
    settings: DockingSettings | None = None,
    *,
    name: str | None = None,
    **overrides: object,
) -> DockingResult:
    """Dock one molecule (SMILES or Mol) into a target (dockstring name or `Target`).

    Keyword overrides replace `DockingSettings` fields, e.g.
    ``dock("CCO", "DRD2", exhaustiveness=1)``. A single call uses all cores (``cpu=0``) unless
    told otherwise; the grid maps are kept for later calls with the same target and settings.
    """
    base = settings or DockingSettings(cpu=0)
    if overrides:
        unknown = set(overrides) - set(DockingSettings.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown docking setting(s) {sorted(unknown)}; valid: {sorted(DockingSettings.__dataclass_fields__)}")
        base = DockingSettings(**{**base.__dict__, **overrides})
    return docker_for(target, base).dock_molecule(molecule, name=name)
