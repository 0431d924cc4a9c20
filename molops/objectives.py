"""Scoring functions that generators optimise: each maps molecules to numbers, failures marked.

An `Objective` has a name, a unit and a direction ("minimize" or "maximize") and evaluates a
list of molecules to a DataFrame with one row per input: the value (NaN when it cannot be
computed, never a made-up 0) and the reason in ``error``. `Objective.better(a, b)` compares
two values in the objective's own direction, so optimisers need not know the sign convention.

Available: `qed`, `penalized_logp`, `logp` (Crippen), `sa_score` (lower is better), `tpsa`,
`similarity` (Tanimoto to a reference), `docking` (Vina score, kcal/mol, lower is better),
`predicted_property` (the orbital-feature network's HOMO/LUMO/gap/dipole), `weighted_sum` of
several, and `by_name` to build any of them from a CLI word ("qed", "plogp", ...).
Property objectives name the exemplar-database column they correspond to (`column`), so that
the generators can retrieve molecules that already do better without recomputing.
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

__all__ = [
    "Objective", "by_name", "descriptor", "docking", "logp", "penalized_logp", "predicted_property", "qed", "sa_score",
    "similarity", "tpsa", "weighted_sum",
]

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
        cheap: about a millisecond per molecule or less (descriptors), so optimisers may score
            hundreds of database neighbours on the fly; False for docking and quantum predictions.
    """

    name: str
    direction: Literal["minimize", "maximize"]
    compute: Callable[[list[str]], tuple[list[float], list[str | None]]]
    description: str = ""
    column: str | None = None  # matching column of generation.retrieval's property table
    cheap: bool = True
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
        """One row per molecule: ``smiles``, the value column `name` (NaN on failure), ``error``.

        A single SMILES or Mol is one molecule (one row), never a sequence of characters.
        """
        if isinstance(molecules, (str, Chem.Mol)):
            molecules = [molecules]
        elif molecules is None:
            raise ChemToolkitError(f"{self.name}: got None instead of molecules")
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

    def utility(self, values: np.ndarray) -> np.ndarray:
        """Values turned so that larger is better (NaN stays NaN): for ranking mixed objectives."""
        values = np.asarray(values, dtype=float)
        return values if self.direction == "maximize" else -values


def _per_molecule(function: Callable[[Chem.Mol], float]) -> Callable[[list[str]], tuple[list[float], list[str | None]]]:
    """Wrap a Mol -> float function into a batch compute function with per-row errors."""

    def compute(smiles: list[str]) -> tuple[list[float], list[str | None]]:
        values, errors = [], []
        for s in smiles:
            try:
                value = float(function(to_mol(s)))
                if not math.isfinite(value):
                    raise ValueError(f"non-finite value {value}")
                values.append(value)
                errors.append(None)
            except (ChemToolkitError, ValueError, RuntimeError) as exc:
                values.append(math.nan)
                errors.append(f"{type(exc).__name__}: {exc}")
        return values, errors

    return compute


def descriptor(
    name: str, function: Callable[[Chem.Mol], float], direction: Literal["minimize", "maximize"] = "maximize",
    description: str = "",
) -> Objective:
    """An objective from any Mol -> float function (e.g. an RDKit descriptor); molecules it
    fails on get NaN and the exception in ``error``."""
    return Objective(name, direction, _per_molecule(function), description or name)


def qed() -> Objective:
    """Quantitative estimate of drug-likeness (Bickerton 2012), 0-1, higher is better."""
    from rdkit.Chem import QED

    return Objective("qed", "maximize", _per_molecule(QED.qed), "QED (0-1)", column="qed")


def penalized_logp() -> Objective:
    """Penalised logP (JT-VAE definition: logP - SA - large rings, standardised), higher is better."""
    from molops.descriptors import penalized_logp as function

    return Objective("penalized_logp", "maximize", _per_molecule(function), "penalised logP", column="penalized_logp")


def logp(direction: Literal["minimize", "maximize"] = "maximize") -> Objective:
    """Crippen logP (octanol/water); "minimize" for more soluble molecules."""
    from rdkit.Chem import Crippen

    return Objective("logp", direction, _per_molecule(Crippen.MolLogP), f"Crippen logP ({direction})", column="logp")


def sa_score() -> Objective:
    """Synthetic accessibility, 1 (easy) to 10 (hard): lower is better."""
    from molops.descriptors import sa_score as function

    return Objective("sa_score", "minimize", _per_molecule(function), "SA score (1-10, lower is easier)", column="sa_score")


def tpsa(direction: Literal["minimize", "maximize"] = "maximize") -> Objective:
    """Topological polar surface area (Å²)."""
    from rdkit.Chem import rdMolDescriptors

    return Objective("tpsa_a2", direction, _per_molecule(rdMolDescriptors.CalcTPSA), f"TPSA in Å² ({direction})")


def similarity(reference: str | Chem.Mol, radius: int = 2, n_bits: int = 2048) -> Objective:
    """Tanimoto similarity (Morgan fingerprints) to `reference`, higher is better."""
    from molops.similarity import tanimoto

    ref = to_mol(reference)
    return Objective(
        "similarity", "maximize", _per_molecule(lambda mol: tanimoto(mol, ref, radius, n_bits)),
        f"Tanimoto similarity to {mol_to_smiles(ref)}",
    )


def predicted_property(name: str, direction: Literal["minimize", "maximize"] = "maximize", models: object = None) -> Objective:
    """A property predicted by the orbital-feature network: "homo_ev", "lumo_ev", "gap_ev",
    "dipole_debye" or "energy_hartree" (each molecule needs an HF/STO-3G calculation, ~1 s)."""
    columns = ("energy_hartree", "homo_ev", "lumo_ev", "gap_ev", "dipole_debye")
    if name not in columns:
        raise ValueError(f"unknown predicted property {name!r}; choose from {', '.join(columns)}")

    def compute(smiles: list[str]) -> tuple[list[float], list[str | None]]:
        from quantum_features.predict import predict_properties

        frame = predict_properties(smiles, models=models)
        errors = [e if isinstance(e, str) else None for e in frame["error"]]
        return [math.nan if e else float(v) for v, e in zip(frame[name], errors)], errors

    return Objective(name, direction, compute, f"predicted {name} ({direction})", cheap=False)


def weighted_sum(terms: Sequence[tuple[Objective, float]], name: str = "score") -> Objective:
    """Σ weight x utility of each term (utilities: maximised objectives as they are, minimised
    ones negated), maximised; NaN if any term fails, with that term's error."""
    if not terms:
        raise ValueError("weighted_sum needs at least one (objective, weight) term")
    for objective, weight in terms:
        if not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"weighted_sum: the weight of {getattr(objective, 'name', objective)!r} is {weight!r}, "
                             "not a finite number")

    def compute(smiles: list[str]) -> tuple[list[float], list[str | None]]:
        total = np.zeros(len(smiles))
        errors: list[str | None] = [None] * len(smiles)
        for objective, weight in terms:
            frame = objective.evaluate(smiles)
            total += weight * objective.utility(frame[objective.name].to_numpy(dtype=float))
            for i, error in enumerate(frame["error"]):
                if isinstance(error, str) and errors[i] is None:
                    errors[i] = f"{objective.name}: {error}"
        return [math.nan if e else float(v) for v, e in zip(total, errors)], errors

    description = " + ".join(f"{w:g} x {o.name} ({o.direction})" for o, w in terms)
    return Objective(name, "maximize", compute, description, cheap=all(o.cheap for o, _ in terms))


#: CLI words for the objectives that need no argument.
NAMED_OBJECTIVES: dict[str, Callable[[], Objective]] = {
    "qed": qed,
    "plogp": penalized_logp,
    "penalized_logp": penalized_logp,
    "logp": logp,
    "sa": sa_score,
    "tpsa": tpsa,
}


def by_name(name: str) -> Objective:
    """An objective from a CLI word: qed, plogp, logp, sa, tpsa, or a predicted property
    such as gap_ev (append ":min" to minimise, e.g. "logp:min")."""
    if not isinstance(name, str):
        raise ValueError(f"objective name {name!r} is not a string such as 'qed' or 'logp:min'")
    word, _, direction = name.partition(":")
    direction = {"": None, "min": "minimize", "max": "maximize"}.get(direction, "invalid")
    if direction == "invalid":
        raise ValueError(f"objective {name!r}: the suffix must be :min or :max")
    if word in NAMED_OBJECTIVES:
        objective = NAMED_OBJECTIVES[word]()
    elif word in ("homo_ev", "lumo_ev", "gap_ev", "dipole_debye", "energy_hartree"):
        objective = predicted_property(word)
    else:
        raise ValueError(
            f"unknown objective {name!r}; choose from {', '.join(NAMED_OBJECTIVES)}, homo_ev, lumo_ev, gap_ev, "
            "dipole_debye (or docking with --dock TARGET)"
        )
    if direction is not None and direction != objective.direction:
        stated = f"({objective.direction})"
        objective.description = (objective.description.replace(stated, f"({direction})") if stated in objective.description
                                 else f"{objective.description} ({direction})")
        objective.direction = direction
    return objective


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
    # No "result" column at all when every ligand failed.
    results = frame["result"] if "result" in frame else [math.nan] * len(frame)
    values = [math.nan if e else float(v) for v, e in zip(results, frame["error"])]
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
    cpu: int | None = None,
) -> Objective:
    """Vina docking score (kcal/mol, lower is better) of the best pose against `target`.

    Args:
        target: a dockstring name ("DRD2") or a `molops.docking.Target`.
        scheduler / n_workers: None and 1 dock in this process with all cores per ligand;
            otherwise ligands are spread over a Dask cluster (grid maps once per worker).
        cpu: Vina threads per ligand (default: all cores in this process, 1 on a cluster);
            1 where the caller already runs one job per core (`generation.batch`).

    Failed dockings (unparsable SMILES, elements Vina cannot type, no pose) give NaN and the
    reason in ``error``; they are never scored as 0.
    """
    from molops.docking.engine import DockingSettings
    from molops.docking.receptor import Target, load_target
    from molops.errors import DockingError

    target = load_target(target) if isinstance(target, str) else target
    if not isinstance(target, Target):
        raise DockingError(f"docking target {target!r}: give a dockstring name such as 'DRD2' or a molops.docking.Target")
    parallel = scheduler is not None or (n_workers or 1) > 1
    settings = DockingSettings(
        scoring=scoring, exhaustiveness=exhaustiveness, n_poses=1, seed=seed, ph=ph,
        cpu=cpu if cpu is not None else 1 if parallel else 0,
    )
    return Objective(
        name="vina_score_kcal_mol",
        direction="minimize",
        compute=partial(_dock_scores, target, settings, scheduler, n_workers),
        # Everything the score depends on (a resumed batch run compares it): receptor and box
        # by content hash, search settings, protonation pH.
        description=(f"Vina ({scoring}) score against {target.name} (receptor and box {target.key[:12]}), "
                     f"exhaustiveness {exhaustiveness}, seed {seed}, pH {ph}"),
        cheap=False,
    )
