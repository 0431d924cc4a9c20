"""Optimise a list of leads: one RetMol loop per lead on a Dask cluster, resumable.

A lead series is the usual input of a medicinal chemist. `optimize_leads` runs
`generation.optimize.optimize` for every lead on the workers of a Dask cluster (a LocalCluster
by default, any scheduler when given), each worker loading the generator and the exemplar
database once. Every lead starts from the database as it was loaded, so that molecules generated
for one lead never steer another: a lead's result does not depend on which worker ran it or in
which order, and equals a single `optimize` call with the same seed.

Results are streamed to a journal (``<out>.journal.jsonl``) as leads finish; running the same
call again skips the leads already done and refuses to resume under other settings. A lead that
cannot be read or optimised becomes a failed row with the reason; the others carry on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rdkit import Chem

from generation.errors import GenerationError, check_count
from generation.optimize import OptimizeSettings, default_generator_path, load_generator, optimize
from generation.retrieval import ExemplarDatabase
from molops.distributed import Scheduler, map_items, read_journal
from molops.io import existing_file, mol_to_smiles, output_format, write_molecules
from molops.objectives import Objective, by_name
from molops.runfiles import check_run_settings

__all__ = ["optimize_leads", "MOLECULE_COLUMNS"]

#: Columns of every generated molecule's row, after the lead's columns (the objective's own
#: column comes second, as in `optimize`).
MOLECULE_COLUMNS = ["smiles", "similarity", "qed", "sa_score", "logp", "penalized_logp", "iteration"]


@dataclass(frozen=True)
class _Job:
    """What each worker needs; small and picklable (models and data load on the worker)."""

    objective: Objective | str
    settings: OptimizeSettings
    generator_path: str
    library: str
    keep: int
    files_sha256: str  # of the generator and library files: a long-lived worker reloads changed ones


@lru_cache(maxsize=2)
def _worker_generator(path: str, files_sha256: str):  # noqa: ARG001 - part of the cache key
    return load_generator(path)


@lru_cache(maxsize=2)
def _worker_database(library: str, files_sha256: str) -> ExemplarDatabase:  # noqa: ARG001 - cache key
    return ExemplarDatabase.moses() if library == "moses" else ExemplarDatabase.from_file(library)


def _optimize_lead(job: _Job, item: dict[str, Any]) -> dict[str, Any]:
    """One lead's loop on a worker: its best `job.keep` molecules as JSON-ready rows."""
    if item["error"] is not None:
        raise GenerationError(item["error"])
    objective = by_name(job.objective) if isinstance(job.objective, str) else job.objective
    database = _worker_database(job.library, job.files_sha256).pristine_copy() if job.settings.use_retrieval else None
    frame = optimize(item["smiles"], objective, generator=_worker_generator(job.generator_path, job.files_sha256),
                     database=database, settings=job.settings, progress=False)
    lead = frame.attrs["lead"]
    return {
        "name": item["name"],
        "lead_smiles": lead["smiles"],
        "lead_value": float(lead[objective.name]),
        "objective": objective.name,
        "n_found": len(frame),
        # to_json turns numpy scalars and NaN into plain JSON; the journal must hold JSON.
        "molecules": json.loads(frame.head(job.keep).to_json(orient="records")),
    }


def _items(leads: Iterable[str | Chem.Mol] | pd.DataFrame) -> list[dict[str, Any]]:
    """Name, SMILES and any parse error of every lead, in input order."""
    items = []
    if isinstance(leads, pd.DataFrame):
        for position, row in enumerate(leads.to_dict("records")):
            mol, error = row.get("mol"), row.get("error") if isinstance(row.get("error"), str) else None
            smiles = row.get("smiles") if isinstance(row.get("smiles"), str) else (
                mol_to_smiles(mol) if mol is not None else None)
            name = row.get("name") if isinstance(row.get("name"), str) and row.get("name") else (
                smiles or f"record {row.get('record', position + 1)}")
            if error is None and smiles is None:
                error = f"{name}: no molecule"
            items.append({"name": str(name), "smiles": smiles, "error": error})
        return items
    for value in leads:
        if isinstance(value, Chem.Mol):
            smiles = mol_to_smiles(value)
            name = value.GetProp("_Name") if value.HasProp("_Name") and value.GetProp("_Name") else smiles
            items.append({"name": name, "smiles": smiles, "error": None})
        else:
            items.append({"name": str(value), "smiles": str(value), "error": None})
    return items


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None  # map_items fills absent values with NaN


def _table(rows: list[dict[str, Any]], objective_name: str) -> pd.DataFrame:
    """One row per kept molecule (ranked within its lead); one row for a lead with none."""
    lead_column = f"lead_{objective_name}"
    columns = ["lead_record", "lead_name", "lead_smiles", lead_column, "rank", "smiles", objective_name,
               *[c for c in MOLECULE_COLUMNS if c not in ("smiles", objective_name)], "status", "error", "seconds"]
    table = []
    for row in rows:
        lead = {"lead_record": int(row["key"]) + 1, "lead_name": row.get("name"),
                "lead_smiles": _text(row.get("lead_smiles")), lead_column: row.get("lead_value", np.nan),
                "seconds": row.get("seconds")}
        molecules = row.get("molecules")
        molecules = molecules if isinstance(molecules, list) else []  # NaN in a failed lead's row
        if _text(row.get("error")) is not None:
            table.append({**lead, "status": "failed", "error": row["error"]})
        elif not molecules:
            table.append({**lead, "status": "none found",
                          "error": "no valid molecule met the similarity floor and constraints"})
        for rank, molecule in enumerate(molecules, start=1):
            table.append({**lead, "rank": rank, **molecule, "status": "ok", "error": None})
    frame = pd.DataFrame(table, columns=columns)
    frame["rank"] = frame["rank"].astype("Int64")
    frame["iteration"] = frame["iteration"].astype("Int64")
    return frame


def optimize_leads(
    leads: Iterable[str | Chem.Mol] | pd.DataFrame,
    objective: Objective | str,
    *,
    out: str | Path,
    settings: OptimizeSettings = OptimizeSettings(),
    generator_path: str | Path | None = None,
    library: str | Path = "moses",
    keep: int = 10,
    scheduler: Scheduler = None,
    n_workers: int | None = None,
    processes: bool = True,
    progress: bool = True,
    retry_failed: bool = False,
) -> pd.DataFrame:
    """Optimise every lead for `objective`; resumable, one row per molecule kept.

    Args:
        leads: SMILES, RDKit Mols, or a `molops.io.read_molecules` frame (rows that failed to
            parse become failed rows, with the parser's reason).
        objective: a `molops.objectives.Objective` or its name ("qed", "logp:min", ...).
        out: results file (.csv/.parquet/.sdf/.smi), written when every lead is done; its
            journal ``<out>.journal.jsonl`` keeps each finished lead, so running the same call
            again optimises only the leads without a row. Resuming under another objective,
            settings, generator file, library or `keep` is refused.
        settings: the loop's settings, the same for every lead (`OptimizeSettings`).
        generator_path: generator file (default: the shipped RetMol generator).
        library: exemplar database: "moses" (1.58M, precomputed properties) or a molecule file.
        keep: best molecules kept per lead.
        scheduler: None (a LocalCluster of `n_workers` processes), a scheduler address, or a
            ``distributed.Client`` (e.g. a dask-jobqueue SLURM cluster's).
        retry_failed: on resume, optimise again the leads that failed before.

    Returns:
        DataFrame ranked within each lead, leads in input order: ``lead_record`` (1-based
        position), ``lead_name``, ``lead_smiles`` (as the generator reads it), ``lead_<objective>``,
        ``rank``, ``smiles``, the objective column, ``similarity`` (Tanimoto to the lead), ``qed``,
        ``sa_score``, ``logp``, ``penalized_logp``, ``iteration``, ``status`` ("ok", "none found"
        or "failed"), ``error`` (the reason) and ``seconds`` (the lead's wall time).

    Raises:
        GenerationError: bad objective or `keep`, or a resume under other settings.
        InputFileError: `out` has an unsupported extension, or the generator or library file
            is missing.
    """
    check_count("keep", keep)
    # A name travels to the workers as it is and is rebuilt there (no cache or closure to ship).
    name_given = objective if isinstance(objective, str) else None
    try:
        objective = by_name(objective) if isinstance(objective, str) else objective
    except ValueError as exc:  # unknown names are refused before any work
        raise GenerationError(str(exc)) from None
    if not isinstance(objective, Objective):
        raise GenerationError(f"objective {objective!r}: expected a molops.objectives.Objective or its name")
    out = Path(out)
    output_format(out)  # an unwritable format is refused before hours of work
    generator_file = Path(generator_path) if generator_path is not None else default_generator_path()
    library = str(library)
    journal = out.with_name(out.name + ".journal.jsonl")
    files = {"generator_sha256": _file_digest(existing_file(generator_file)),
             "library": library if library == "moses" else f"{library} (sha256 {_file_digest(existing_file(library))})"}
    check_run_settings(journal, {"objective": objective.description or objective.name, "objective_name": objective.name,
                                 "settings": asdict(settings), **files, "keep": keep}, GenerationError)
    by_key = dict(enumerate(_items(leads)))
    for row in read_journal(journal):
        item = by_key.get(row["key"])
        if item is None or item["name"] != row.get("name", item["name"]):
            raise GenerationError(f"{journal} belongs to another list of leads (row {row['key']} is "
                                  f"{row.get('name')!r}, the input has {item['name'] if item else 'no such row'!r}); "
                                  "remove it or choose another output to start afresh")
    job = _Job(objective=name_given or objective, settings=settings, generator_path=str(generator_file),
               library=library, keep=keep, files_sha256=json.dumps(files))
    frame = map_items(partial(_optimize_lead, job), by_key, scheduler=scheduler, journal=journal,
                      retry_failed=retry_failed, progress=progress, description=f"optimising {objective.name}",
                      n_workers=n_workers, processes=processes)
    # A failed lead's row holds no name: it comes from the input.
    rows = [{**r, "name": by_key[r["key"]]["name"]} for r in frame.to_dict("records")]
    table = _table(rows, objective.name)
    write_molecules(table, out)  # SDF/SMI: 2D molecules from the SMILES; rows without one are left out
    return table
