"""DFT labels for conformers: energies and forces at a recorded reference level, resumable.

Pipeline (`label_molecules`):
1. for each molecule, `conformer_structures`: up to ``n_conformers`` MMFF94-minimised ETKDGv3
   conformers (molops.conformers) and ``n_distorted`` non-equilibrium copies of them (every
   Cartesian coordinate displaced by Gaussian noise of ``distortion_angstrom``, seeded per
   molecule), so that models also see forces away from minima;
2. a Kohn–Sham single point with analytic gradient for each structure at the reference level
   (default B3LYP-D3(BJ)/def2-SVP with density fitting, `levels.REFERENCE_LEVEL`), as a Dask
   map (`molops.distributed.map_items`) whose journal makes an interrupted run resume;
   `gpu4pyscf` is used automatically when a CUDA GPU is there;
3. the finished rows are assembled into a `LabelSet` and written as one compact ``.npz``
   (format `FORMAT_VERSION`): geometries (Å), atomic numbers, charges, multiplicities,
   energies (Hartree, float64), forces (Hartree/Å), level of theory, per-structure wall time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms
from rdkit import Chem

from molops.conformers import generate_conformers
from molops.distributed import describe_failure, map_items
from molops.errors import ChemToolkitError
from molops.io import mol_to_smiles, to_mol
from molops.runfiles import atomic_write
from quantum_features.errors import QuantumError
from quantum_features.levels import REFERENCE_LEVEL, get_level

__all__ = ["FORMAT_VERSION", "LabelOptions", "LabelSet", "conformer_structures", "label_molecules", "label_structure"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class LabelOptions:
    """What to label and how.

    Attributes:
        level: reference level name (`quantum_features.levels.LEVELS`).
        n_conformers: MMFF94 conformers per molecule (RMSD-pruned at 0.5 Å, 10 kcal/mol window).
        n_distorted: distorted copies per molecule, spread over its conformers.
        distortion_angstrom: standard deviation of the Gaussian displacement of every
            coordinate of a distorted copy (Å). 0.03 Å puts small molecules ~5-30 kcal/mol
            above their conformer at B3LYP-D3(BJ)/def2-SVP (0.1 Å gave 125-270 kcal/mol:
            far from any structure a ranking or an optimisation visits).
        seed: seeds embedding and distortions; equal seeds give equal structures.
        device: "auto" (GPU when gpu4pyscf and CUDA are there), "cpu" or "gpu".
        conv_tol: SCF convergence (Hartree).
    """

    level: str = REFERENCE_LEVEL
    n_conformers: int = 4
    n_distorted: int = 2
    distortion_angstrom: float = 0.03
    seed: int = 0
    device: str = "auto"
    conv_tol: float = 1e-9

    def __post_init__(self) -> None:
        get_level(self.level)  # unknown names fail here, before any work
        if self.device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"device {self.device!r}: choose auto, cpu or gpu")
        if self.n_conformers < 1 or self.n_distorted < 0 or not self.distortion_angstrom >= 0:  # NaN too
            raise ValueError(
                f"n_conformers ({self.n_conformers}) must be ≥ 1, n_distorted ({self.n_distorted}) and "
                f"distortion_angstrom ({self.distortion_angstrom}) ≥ 0"
            )


def conformer_structures(molecule: str | Chem.Mol, molecule_id: str, options: LabelOptions = LabelOptions()) -> dict[str, dict]:
    """The structures to label for one molecule, keyed ``"<molecule_id>/c<j>"`` (conformers)
    and ``"<molecule_id>/d<j>"`` (distorted copies).

    Raises:
        ChemToolkitError: unparsable molecule, unsupported element, embedding failure.
    """
    mol = to_mol(molecule)
    smiles = mol_to_smiles(mol)
    ensemble = generate_conformers(mol, n_conformers=options.n_conformers, seed=options.seed)
    structures = {}
    base = []
    for j in range(len(ensemble)):
        atoms = ensemble.to_atoms(j)
        base.append(atoms)
        structures[f"{molecule_id}/c{j}"] = _item(atoms, smiles, molecule_id, "conformer", j)
    # Seeded per molecule, so that a resumed or reordered run makes the same distortions.
    rng = np.random.default_rng([options.seed, *map(ord, molecule_id)])
    for j in range(options.n_distorted):
        atoms = base[j % len(base)].copy()
        atoms.positions = atoms.positions + rng.normal(0.0, options.distortion_angstrom, atoms.positions.shape)
        structures[f"{molecule_id}/d{j}"] = _item(atoms, smiles, molecule_id, "distorted", j % len(base))
    return structures


def _item(atoms: Atoms, smiles: str, molecule_id: str, kind: str, conformer: int) -> dict[str, Any]:
    return {
        "smiles": smiles, "molecule_id": molecule_id, "kind": kind, "conformer": conformer,
        "numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
        "charge": int(atoms.info.get("charge", 0)), "multiplicity": int(atoms.info.get("multiplicity", 1)),
    }


def label_structure(item: dict[str, Any], level: str = REFERENCE_LEVEL, device: str = "auto",
                    conv_tol: float = 1e-9) -> dict[str, Any]:
    """Energy (Hartree) and forces (Hartree/Å, = −gradient) of one structure at `level`.

    Returns the item's fields plus ``energy_hartree``, ``forces``, ``scf_strategy``,
    ``device`` and ``calc_seconds``; JSON-serialisable (it is journaled).
    """
    from quantum_features.calc import CheapCalculation

    atoms = Atoms(numbers=item["numbers"], positions=item["positions"])
    atoms.info.update(charge=item["charge"], multiplicity=item["multiplicity"], smiles=item["smiles"])
    start = time.perf_counter()
    calc = CheapCalculation(atoms, level=level, gradient=True, conv_tol=conv_tol, device=device, max_cycle=100).run()
    forces = -calc.gradient
    if not np.all(np.isfinite(forces)) or not np.isfinite(calc.e_tot):
        raise QuantumError(f"{calc.label}: non-finite energy or forces")
    return {
        **item, "energy_hartree": float(calc.e_tot), "forces": forces.tolist(), "scf_strategy": calc.strategy,
        "device": calc.device, "calc_seconds": time.perf_counter() - start,
    }


@dataclass
class LabelSet:
    """Labelled structures (one row per structure) and how they were made.

    Attributes (per structure): ``numbers`` and ``positions`` (Å) and ``forces`` (Hartree/Å)
    as lists of arrays; ``frame``: key ("<molecule_id>/c<j>" or "/d<j>"), smiles, molecule_id, kind ("conformer"/"distorted"),
    conformer, charge, multiplicity, energy_hartree, calc_seconds, device. ``meta``: level,
    format version, creation time, software versions, options.
    """

    numbers: list[np.ndarray]
    positions: list[np.ndarray]
    forces: list[np.ndarray]
    frame: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    COLUMNS = ("key", "smiles", "molecule_id", "kind", "conformer", "charge", "multiplicity", "energy_hartree",
               "calc_seconds", "device")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def level(self) -> str:
        return self.meta.get("level", "")

    def atoms(self, index: int) -> Atoms:
        """Structure `index` as ase.Atoms with charge, multiplicity and SMILES in ``info``."""
        row = self.frame.iloc[index]
        atoms = Atoms(numbers=self.numbers[index], positions=self.positions[index])
        atoms.info.update(charge=int(row["charge"]), multiplicity=int(row["multiplicity"]), smiles=row["smiles"],
                          molecule_id=row["molecule_id"])
        return atoms

    def subset(self, rows: Sequence[int] | np.ndarray) -> LabelSet:
        rows = [int(i) for i in np.asarray(rows).reshape(-1)]
        return LabelSet([self.numbers[i] for i in rows], [self.positions[i] for i in rows],
                        [self.forces[i] for i in rows], self.frame.iloc[rows].reset_index(drop=True), dict(self.meta))

    def split_by_molecule(self, validation_fraction: float = 0.2, seed: int = 0) -> tuple[LabelSet, LabelSet]:
        """(kept, held out): whole molecules held out.

        A molecule is held out when the SHA-256 of ``"<seed>:<molecule_id>"`` falls in the
        lowest ``validation_fraction`` of the hash range, so the split of a molecule never
        changes as the set grows (a model trained on an earlier set is still tested only on
        molecules it never saw). At least one molecule is held out.
        """
        ids = sorted(self.frame["molecule_id"].unique())
        position = {m: int(hashlib.sha256(f"{seed}:{m}".encode()).hexdigest()[:12], 16) / 16**12 for m in ids}
        held = {m for m in ids if position[m] < validation_fraction}
        if not held and ids and validation_fraction > 0:
            held = {min(ids, key=position.get)}
        mask = self.frame["molecule_id"].isin(held).to_numpy()
        return self.subset(np.flatnonzero(~mask)), self.subset(np.flatnonzero(mask))

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]], meta: dict[str, Any]) -> LabelSet:
        rows = list(rows)
        return cls(
            [np.asarray(r["numbers"], dtype=np.int16) for r in rows],
            [np.asarray(r["positions"], dtype=np.float64) for r in rows],
            [np.asarray(r["forces"], dtype=np.float64) for r in rows],
            pd.DataFrame([{c: r[c] for c in cls.COLUMNS} for r in rows], columns=list(cls.COLUMNS)),
            meta,
        )

    def save(self, path: str | Path) -> Path:
        """Write one compressed ``.npz`` (atomically: a kill never leaves half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        counts = np.array([len(n) for n in self.numbers], dtype=np.int32)
        arrays = {
            "format_version": np.array(FORMAT_VERSION),
            "meta": np.array(json.dumps(self.meta)),
            "n_atoms": counts,
            "numbers": np.concatenate(self.numbers).astype(np.int8) if len(self) else np.zeros(0, np.int8),
            # Geometries to 1e-6 Å and forces to 1e-7 Ha/Å (float32) are far below label noise;
            # energies stay float64 (conformer gaps are ~1e-3 Hartree on totals of ~1e3).
            "positions": np.concatenate(self.positions).astype(np.float32) if len(self) else np.zeros((0, 3), np.float32),
            "forces": np.concatenate(self.forces).astype(np.float32) if len(self) else np.zeros((0, 3), np.float32),
            **{c: self.frame[c].to_numpy(dtype=np.float64 if c in ("energy_hartree", "calc_seconds") else np.int32)
               for c in self.COLUMNS if c not in ("key", "smiles", "molecule_id", "kind", "device")},
            **{c: np.array(self.frame[c].astype(str).tolist(), dtype=str) for c in ("key", "smiles", "molecule_id", "kind", "device")},
        }
        with atomic_write(path) as handle:
            np.savez_compressed(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LabelSet:
        """Read a file written by `save`.

        Raises:
            QuantumError: missing file, or a format version this code does not read.
        """
        path = Path(path)
        if not path.exists():
            raise QuantumError(f"label file {path} does not exist")
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format_version"])
            if version != FORMAT_VERSION:
                raise QuantumError(f"{path}: label format version {version}, this code reads {FORMAT_VERSION}")
            bounds = np.concatenate([[0], np.cumsum(data["n_atoms"])])
            pieces = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
            numbers = [data["numbers"][s].astype(np.int16) for s in pieces]
            positions = [data["positions"][s].astype(np.float64) for s in pieces]
            forces = [data["forces"][s].astype(np.float64) for s in pieces]
            frame = pd.DataFrame({c: data[c] for c in cls.COLUMNS})
            meta = json.loads(str(data["meta"]))
        return cls(numbers, positions, forces, frame, meta)

    def summary(self) -> dict[str, Any]:
        """Size and cost: structures, molecules, elements, heavy atoms, CPU/GPU hours."""
        heavy = [int((n > 1).sum()) for n in self.numbers]
        elements = sorted({int(z) for n in self.numbers for z in n})
        return {
            "structures": len(self), "molecules": int(self.frame["molecule_id"].nunique()),
            "conformers": int((self.frame["kind"] == "conformer").sum()),
            "distorted": int((self.frame["kind"] == "distorted").sum()),
            "elements": [Chem.GetPeriodicTable().GetElementSymbol(z) for z in elements],
            "heavy_atoms_min": min(heavy, default=0), "heavy_atoms_max": max(heavy, default=0),
            "label_hours": float(self.frame["calc_seconds"].sum() / 3600),
            "level": self.level,
        }


def _software() -> dict[str, str]:
    import pyscf

    versions = {"pyscf": pyscf.__version__, "python": platform.python_version()}
    try:
        from importlib.metadata import version

        versions["pyscf-dispersion"] = version("pyscf-dispersion")
    except Exception:  # noqa: BLE001 - optional
        pass
    return versions


def label_molecules(
    molecules: Sequence[str | Chem.Mol] | dict[str, str | Chem.Mol],
    out: str | Path,
    *,
    options: LabelOptions = LabelOptions(),
    scheduler: Any = None,
    n_workers: int | None = None,
    journal: str | Path | None = None,
    molecules_per_save: int = 8,
    max_minutes: float | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> tuple[LabelSet, pd.DataFrame]:
    """Label conformers of `molecules` and write them to `out` (.npz), resumably.

    Args:
        molecules: SMILES/Mols (ids "m0", "m1", ...) or a mapping id -> molecule.
        out: the label file, rewritten after every `molecules_per_save` molecules, so a
            killed run loses at most the structures in flight. Structures already in `out`
            (same level) are not computed again, even without the journal.
        journal: record of finished structures (default: ``<out>.journal.jsonl``);
            rerunning with the same journal computes only what is missing.
        max_minutes: stop starting new structures after this long (the ones running finish;
            resume later).
        retry_failed: compute again the structures whose journal row is a failure (after a
            fix; by default a failed structure is not tried again).
        scheduler / n_workers: Dask cluster (None: a LocalCluster of `n_workers` processes).

    Returns:
        (the labels, a per-structure table with ``key``, ``error``, ``seconds``); molecules
        that fail before any calculation (parse, elements, embedding) have one row each.
    """
    from molops.distributed import dask_client
    from molops.runfiles import check_run_settings, interrupt_on_terminate

    start = time.perf_counter()
    out = Path(out)
    journal = Path(journal) if journal is not None else out.with_name(out.name + ".journal.jsonl")
    named = molecules if isinstance(molecules, dict) else {f"m{i}": m for i, m in enumerate(molecules)}
    level = get_level(options.level).name
    # Structure keys name molecule and conformer only: resuming a journal under other options
    # (level, conformer count, distortions, seed) would mix structures of two recipes.
    check_run_settings(journal, {**{k: v for k, v in asdict(options).items() if k != "device"}, "level": level},
                       QuantumError)
    previous = LabelSet.load(out) if out.exists() else None
    if previous is not None and previous.level != level:
        raise QuantumError(f"{out} holds labels at {previous.level}, not {level}: choose another --out")
    _seed_journal(journal, previous)
    meta = {
        "level": level, "format_version": FORMAT_VERSION, "software": _software(), "options": asdict(options),
        "forces": "-(analytic gradient), Hartree/Å", "energy_unit": "Hartree",
    }
    task = partial(label_structure, level=options.level, device=options.device, conv_tol=options.conv_tol)
    ids = list(named)
    wanted: dict[str, None] = {}  # every structure key of the molecules handled, in input order
    tables = []
    # The same budget on the clock map_items reads: it stops starting structures of a batch.
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes - (time.perf_counter() - start)
    with interrupt_on_terminate(), dask_client(scheduler, n_workers=n_workers) as client:
        try:
            for first in range(0, len(ids), molecules_per_save):
                if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
                    log.warning("labelling stopped after %.0f min (max_minutes); rerun to resume", max_minutes)
                    break
                items: dict[str, dict] = {}
                failures = []
                for molecule_id in ids[first:first + molecules_per_save]:
                    try:
                        items.update(conformer_structures(named[molecule_id], str(molecule_id), options))
                    except ChemToolkitError as exc:
                        failures.append({"key": f"{molecule_id}/*", "error": describe_failure(exc), "seconds": 0.0})
                wanted.update(dict.fromkeys(items))
                frame = map_items(task, items, scheduler=client, journal=journal, progress=progress, retry_failed=retry_failed,
                                  deadline=deadline,
                                  description=f"DFT labels, molecules {first + 1}-{first + len(ids[first:first + molecules_per_save])} of {len(ids)}")
                tables.append(pd.DataFrame(failures, columns=["key", "error", "seconds"]))
                tables.append(frame[["key", "error", "seconds"]])
                labels = _assemble(journal, wanted, previous, meta)
                labels.save(out)
        finally:
            # Also after Ctrl-C or SIGTERM: the structures of the batch in flight that finished
            # are in the journal, and go into the file now rather than at the next run.
            labels = _assemble(journal, wanted, previous, meta)
            labels.save(out)
    return labels, pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["key", "error", "seconds"])


def _assemble(journal: Path, wanted: dict[str, None], previous: LabelSet | None, meta: dict) -> LabelSet:
    """Structures finished so far: the existing file's, in its order, then this run's new ones in
    input order. A file only grows at its end, so its first N rows stay the set an earlier model
    was trained on (`ConformerTrainConfig.n_structures`), whatever finished in which run."""
    finished = _journal_rows(journal)

    def done(key: str) -> bool:
        return key in finished and finished[key].get("error") is None

    keys = [k for k in previous.frame["key"] if done(k)] if previous is not None else []
    kept = set(keys)
    keys += [k for k in wanted if k not in kept and done(k)]
    meta = {**meta, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return LabelSet.from_rows([finished[k] for k in keys], meta)


def _seed_journal(journal: Path, previous: LabelSet | None) -> None:
    """Put the structures of an existing label file into the journal (if it lacks them), so
    that a lost journal does not mean recomputing labels that were saved."""
    if previous is None or not len(previous):
        return
    known = _journal_rows(journal)
    missing = [i for i, k in enumerate(previous.frame["key"]) if k not in known]
    if not missing:
        return
    journal.parent.mkdir(parents=True, exist_ok=True)
    with journal.open("a") as handle:
        for i in missing:
            row = previous.frame.iloc[i].to_dict()
            row.update(numbers=previous.numbers[i].tolist(), positions=previous.positions[i].tolist(),
                       forces=previous.forces[i].tolist(), error=None, seconds=float(row["calc_seconds"]))
            handle.write(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}) + "\n")


def _journal_rows(journal: Path) -> dict[str, dict[str, Any]]:
    from molops.distributed import finished_rows

    return finished_rows(journal)  # a retried structure's last row wins
