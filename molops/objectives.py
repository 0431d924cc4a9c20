"""Scoring functions that generators optimise: each maps molecules to numbers, failures marked.

An `Objective` has a name, a unit and a direction ("minimize" or "maximize") and evaluates a
list of molecules to a DataFrame with one row per input: the value (NaN when it cannot be
computed, never a made-up 0) and the reason in ``error``. `Objective.better(a, b)` compares
two values in the objective's own direction, so optimisers need not know the sign convention.

Available here: `docking` (Vina score against a target, kcal/mol, lower is better).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
from rdkit import Chem

from molops.distributed import Scheduler, map_items
from molops.errors import ChemToolkitError
from molops.io import mol_to_smiles, to_mol

__all__ = ["Objective", "docking"]

log = logging.getLogger(__name__)

Molecules = Sequence[str | Chem.Mol]


@dataclass
class Objective:
    """A named scoring function over molecules.

    Attributes:
        name: column name of the values, with its unit (e.g. "vina_score_kcal_mol").
        direction: "minimize" or "maximize".
        compute: maps a list of canonical SMILES to (values, errors) of the same length.
        cache: values already computed, by canonical SMILES (optimisers revisit molecules).
    """

    name: str
    direction: Literal["minimize", "maximize"]
    compute: Callable[[list[str]], tuple[list[float], list[str | None]]]
    description: str = ""
    cache: dict[str, tuple[float, str | None]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(f"objective {self.name}: direction must be 'minimize' or 'maximize', not {self.direction!r}")

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` is strictly better than `b` (NaN is never better)."""
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a < b if self.direction == "minimize" else a > b

    def evaluate(self, molecules: Molecules) -> pd.DataFrame:
        """One row per molecule: ``smiles``, the value column `name` (NaN on failure), ``error``."""
        keys: list[str | None] = []
        errors: dict[int, str] = {}
        for index, molecule in enumerate(molecules):
            try:
                keys.append(mol_to_smiles(to_mol(molecule)))
            except ChemToolkitError as exc:
                keys.append(None)
                errors[index] = str(exc)
        todo = sorted({k for k in keys if k is not None and k not in self.cache})
        if todo:
            values, failures = self.compute(todo)
            for smiles, value, error in zip(todo, values, failures, strict=True):
                self.cache[smiles] = (float(value) if error is None else math.nan, error)
        rows = []
        for index, key in enumerate(keys):
            if key is None:
                rows.append((None, math.nan, errors[index]))
            else:
                value, error = self.cache[key]
                rows.append((key, value, error))
        return pd.DataFrame(rows, columns=["smiles", self.name, "error"])

    def __call__(self, molecules: Molecules) -> np.ndarray:
        """Values only (NaN where the objective failed)."""
        return self.evaluate(molecules)[self.name].to_numpy(dtype=float)


def _dock_scores(target, settings, scheduler, n_workers, smiles: list[str]) -> tuple[list[float], list[str | None]]:
    from molops.docking.engine import docker_for

    if scheduler is None and (n_workers or 1) == 1:
        docker = docker_for(target, settings)
        values, errors = [], []
        for s in smiles:
            try:
                values.append(docker.dock_molecule(s).score_kcal_mol)
                errors.append(None)
            except (ChemToolkitError, ValueError, RuntimeError) as exc:
                values.append(math.nan)
                errors.append(f"{type(exc).__name__}: {exc}")
        return values, errors
    frame = map_items(
        partial(_best_score, target, settings), smiles, scheduler=scheduler, n_workers=n_workers,
        description="docking",
    )
    values = [math.nan if e else float(v) for v, e in zip(frame["result"], frame["error"])]
    return values, [e if isinstance(e, str) else None for e in frame["error"]]


def _best_score(target, settings, smiles: str) -> float:
    from molops.docking.engine import docker_for

    return docker_for(target, settings).dock_molecule(smiles).score_kcal_mol


def docking(
    target: str | object,
    *,
    exhaustiveness: int = 8,
    seed: int = 0,
    scoring: str = "vina",
    ph: float | None = 7.4,
    scheduler: Scheduler = None,
    n_workers: int | None = None,
) -> Objective:
    """Vina docking score (kcal/mol, lower is better) of the best pose against `target`.

    Args:
        target: a dockstring name ("DRD2") or a `molops.docking.Target`.
        scheduler / n_workers: None and 1 dock in this process with all cores per ligand;
            otherwise ligands are spread over a Dask cluster (grid maps once per worker).

    Failed dockings (unparsable SMILES, elements Vina cannot type, no pose) give NaN and the
    reason in ``error``; they are never scored as 0.
    """
    from molops.docking.engine import DockingSettings
    from molops.docking.receptor import load_target

    target = load_target(target) if isinstance(target, str) else target
    parallel = scheduler is not None or (n_workers or 1) > 1
    settings = DockingSettings(
        scoring=scoring, exhaustiveness=exhaustiveness, n_poses=1, seed=seed, ph=ph,
        cpu=1 if parallel else 0,
    )
    return Objective(
        name="vina_score_kcal_mol",
        direction="minimize",
        compute=partial(_dock_scores, target, settings, scheduler, n_workers),
        description=f"Vina ({scoring}) score against {target.name}, exhaustiveness {exhaustiveness}",
    )
