"""Optimise or edit a list of molecules: one generator run per molecule on Dask, resumable.

A lead series is the usual input of a medicinal chemist. `optimize_leads` runs
`generation.optimize.optimize` for every lead, and `edit_molecules` runs
`generation.editor.edit` with one prompt for every molecule, on the workers of a Dask cluster
(a LocalCluster by default, any scheduler when given), each worker loading the generator and
the exemplar database once. Every molecule starts from the database as it was loaded, so that
molecules generated for one never steer another: a result does not depend on which worker ran
it or in which order, and equals a single call with the same seed.

Results are streamed to a journal (``<out>.journal.jsonl``) as molecules finish; running the
same call again skips the molecules already done and refuses to resume under other settings.
A molecule that cannot be read or processed becomes a failed row with the reason; the others
carry on.
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

from generation.editor import EditSettings, edit, intent_objective
from generation.errors import GenerationError, check_count
from generation.optimize import OptimizeSettings, default_generator_path, load_generator, optimize
from generation.prompts import Interpretation, interpret
from generation.retrieval import ExemplarDatabase
from molops.distributed import Scheduler, map_items
from molops.io import existing_file, molecule_items, output_format, write_molecules
from molops.library import load_library_index, moses_index_path
from molops.objectives import Objective, by_name
from molops.runfiles import check_run_settings, file_sha256

__all__ = ["edit_molecules", "optimize_leads"]

@dataclass(frozen=True)
class _Job:
    """What each worker needs; small and picklable (models and data load on the worker)."""

    task: Any  # Objective or its name (optimize), Interpretation (edit)
    settings: Any  # OptimizeSettings or EditSettings
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


def _worker_inputs(job: _Job, use_retrieval: bool):
    database = _worker_database(job.library, job.files_sha256).pristine_copy() if use_retrieval else None
    return _worker_generator(job.generator_path, job.files_sha256), database


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # to_json turns numpy scalars and NaN into plain JSON; the journal must hold JSON.
    return json.loads(frame.to_json(orient="records", double_precision=15))


def _optimize_lead(job: _Job, item: dict[str, Any]) -> dict[str, Any]:
    """One lead's loop on a worker: its best `job.keep` molecules as JSON-ready rows."""
    if item["error"] is not None:
        raise GenerationError(item["error"])
    objective = by_name(job.task) if isinstance(job.task, str) else job.task
    generator, database = _worker_inputs(job, job.settings.use_retrieval)
    frame = optimize(item["smiles"], objective, generator=generator, database=database, settings=job.settings,
                     progress=False)
    return {"name": item["name"], "input": frame.attrs["lead"], "n_found": len(frame),
            "molecules": _records(frame.head(job.keep))}


def _edit_molecule(job: _Job, item: dict[str, Any]) -> dict[str, Any]:
    """One molecule's edits on a worker, best first, as JSON-ready rows."""
    if item["error"] is not None:
        raise GenerationError(item["error"])
    generator, database = _worker_inputs(job, job.settings.use_retrieval)
    frame = edit(item["smiles"], job.task, n=job.keep, generator=generator, database=database,
                 settings=job.settings, progress=False)
    return {"name": item["name"], "input": frame.attrs["input"], "n_found": int(frame.attrs["candidates"]),
            "notes": "; ".join(frame.attrs["notes"]) or None, "molecules": _records(frame)}


def _keyed(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Items under content keys (name, SMILES, error; ``#n`` for the n-th repeat): a resumed run
    reuses exactly the rows of unchanged molecules, wherever they now stand in the file, and
    computes the ones added or corrected."""
    keyed, seen = {}, {}
    for position, item in enumerate(items):
        content = "\t".join(str(item[k]) for k in ("name", "smiles", "error"))
        digest = hashlib.sha256(content.encode()).hexdigest()[:16]
        seen[digest] = seen.get(digest, 0) + 1
        keyed[f"{digest}#{seen[digest]}"] = {**item, "position": position}
    return keyed


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None  # map_items fills absent values with NaN


def _table(rows: list[dict[str, Any]], prefix: str, value_columns: list[str]) -> pd.DataFrame:
    """One row per kept molecule (ranked within its input); one row for an input with none.

    Columns: ``<prefix>_record``, ``<prefix>_name``, ``<prefix>_smiles``, the input's
    ``<prefix>_<value>`` for each of `value_columns`, ``rank``, the molecule's columns,
    ``status``, ``error``, ``n_found`` (molecules the run found for this input, before the
    cut to the best few), ``notes`` (only when some input has one), ``seconds``.
    """
    table, molecule_columns = [], {}
    for row in rows:
        given = row.get("input") if isinstance(row.get("input"), dict) else {}
        head = {f"{prefix}_record": row["position"] + 1, f"{prefix}_name": row["name"],
                # as the generator read it; for a failed row, as it was given
                f"{prefix}_smiles": given.get("smiles", row["given_smiles"]),
                **{f"{prefix}_{c}": given.get(c, np.nan) for c in value_columns}}
        found = row.get("n_found")
        tail = {"n_found": int(found) if isinstance(found, (int, float)) and found == found else 0,
                "notes": _text(row.get("notes")), "seconds": row.get("seconds")}
        molecules = row.get("molecules")
        molecules = molecules if isinstance(molecules, list) else []  # NaN in a failed row
        if _text(row.get("error")) is not None:
            table.append({**head, "status": "failed", "error": row["error"], **tail})
        elif not molecules:
            table.append({**head, "status": "none found",
                          "error": "no valid molecule met the similarity floor and constraints", **tail})
        for rank, molecule in enumerate(molecules, start=1):
            molecule_columns.update(dict.fromkeys(molecule))
            table.append({**head, "rank": rank, **molecule, "status": "ok", "error": None, **tail})
    columns = [f"{prefix}_record", f"{prefix}_name", f"{prefix}_smiles", *[f"{prefix}_{c}" for c in value_columns],
               "rank", *(molecule_columns or ["smiles"]), "status", "error", "n_found", "notes", "seconds"]
    frame = pd.DataFrame(table, columns=columns)
    if frame["notes"].isna().all():  # the editor's notes on bounds (e.g. QED cannot gain 0.1)
        frame = frame.drop(columns="notes")
    for column in ("rank", "iteration"):
        if column in frame.columns:
            frame[column] = frame[column].astype("Int64")
    return frame


def _run_series(molecules, worker, task, settings, *, record: dict[str, Any], out: str | Path,
                generator_path: str | Path | None, library: str | Path, keep: int, what: str,
                scheduler: Scheduler, n_workers: int | None, processes: bool, progress: bool,
                retry_failed: bool) -> list[dict[str, Any]]:
    """Checks, journal and Dask map shared by both entry points; journal rows with input names."""
    out = Path(out)
    output_format(out)  # an unwritable format is refused before hours of work
    # Absolute paths: cluster workers may start in another folder.
    generator_file = existing_file(generator_path if generator_path is not None else default_generator_path()).resolve()
    library = str(library)
    uses_library = getattr(settings, "use_retrieval", True)
    if uses_library and library != "moses":
        library = str(existing_file(library).resolve())
    files = {"generator_sha256": file_sha256(generator_file)[:16],
             "library": "not used" if not uses_library else "moses" if library == "moses" else f"sha256 {file_sha256(library)[:16]}"}
    journal = out.with_name(out.name + ".journal.jsonl")
    check_run_settings(journal, {**record, "settings": asdict(settings), **files, "keep": keep}, GenerationError)
    if uses_library and library == "moses" and not moses_index_path().exists():
        # Built once here: workers (daemon processes) cannot start the cluster that builds it.
        load_library_index("moses", progress=progress)
    # Workers parse the SMILES themselves; the Mols need not travel.
    by_key = _keyed([{k: v for k, v in item.items() if k != "mol"} for item in molecule_items(molecules)])
    job = _Job(task=task, settings=settings, generator_path=str(generator_file), library=library, keep=keep,
               files_sha256=json.dumps(files))
    frame = map_items(partial(worker, job), by_key, scheduler=scheduler, journal=journal, retry_failed=retry_failed,
                      progress=progress, description=what, n_workers=n_workers, processes=processes)
    # Names and positions come from this run's input (a failed row holds neither).
    rows = [{**r, "name": by_key[r["key"]]["name"], "position": by_key[r["key"]]["position"],
             "given_smiles": by_key[r["key"]]["smiles"]} for r in frame.to_dict("records")]
    return sorted(rows, key=lambda r: r["position"])


def _write(table: pd.DataFrame, out: str | Path, prefix: str) -> None:
    """The table to `out`; SDF titles and SMILES-file names say which input a molecule came from."""
    written = table.copy()
    written["name"] = [f"{name} #{rank}" if pd.notna(rank) else name
                       for name, rank in zip(written[f"{prefix}_name"], written["rank"])]
    write_molecules(written, out)  # SDF/SMI: 2D molecules from the SMILES; rows without one are left out


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
            ``distributed.Client`` (e.g. a dask-jobqueue SLURM cluster's). Workers open the
            generator and library files by path: on a cluster they must see the same
            filesystem (the shipped generator comes with the package).
        retry_failed: on resume, optimise again the leads that failed before.

    Returns:
        DataFrame ranked within each lead, leads in input order: ``lead_record`` (1-based
        position), ``lead_name``, ``lead_smiles`` (as the generator reads it), ``lead_<objective>``,
        ``rank``, ``smiles``, the objective column, ``similarity`` (Tanimoto to the lead), ``qed``,
        ``sa_score``, ``logp``, ``penalized_logp``, ``iteration``, ``status`` ("ok", "none found"
        or "failed"), ``error`` (the reason), ``n_found`` (molecules found in all, before the cut
        to `keep`) and ``seconds`` (the lead's wall time).

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
    rows = _run_series(leads, _optimize_lead, name_given or objective, settings,
                       record={"objective": objective.description or objective.name, "objective_name": objective.name},
                       out=out, generator_path=generator_path, library=library, keep=keep,
                       what=f"optimising {objective.name}", scheduler=scheduler, n_workers=n_workers,
                       processes=processes, progress=progress, retry_failed=retry_failed)
    table = _table(rows, "lead", [objective.name])
    _write(table, out, "lead")
    return table


def edit_molecules(
    molecules: Iterable[str | Chem.Mol] | pd.DataFrame,
    prompt: str | Interpretation,
    *,
    out: str | Path,
    n: int = 5,
    min_similarity: float = 0.6,
    settings: EditSettings = EditSettings(),
    generator_path: str | Path | None = None,
    library: str | Path = "moses",
    scheduler: Scheduler = None,
    n_workers: int | None = None,
    processes: bool = True,
    progress: bool = True,
    retry_failed: bool = False,
) -> pd.DataFrame:
    """Edit every molecule as `prompt` asks; resumable, one row per edit.

    The prompt is read once, here (a prompt that cannot be grounded is refused before any
    work), and the same reading is applied to every molecule.

    Args:
        molecules: SMILES, RDKit Mols, or a `molops.io.read_molecules` frame.
        prompt: e.g. "make it more soluble in water", or an `Interpretation` already read.
        out: results file (.csv/.parquet/.sdf/.smi) with its resume journal beside it, as in
            `optimize_leads`.
        n: edits per molecule (`generation.editor.edit`).
        min_similarity: Tanimoto floor to each input (when `prompt` is text).
        settings: the editor's search effort.

    Returns:
        DataFrame, inputs in order and edits best first within each: ``input_record``,
        ``input_name``, ``input_smiles``, the input's value of each property the prompt
        names (``input_<property>``), ``rank``, the columns of `generation.editor.edit`
        (``smiles``, ``similarity``, property values, ``delta_<property>``, ``hit_loose``,
        ``hit_strict``, ``qed``, ``sa_score``), ``status``, ``error`` and ``seconds``.

    Raises:
        PromptError: the prompt cannot be grounded.
        GenerationError: bad `n` or floor, or a resume under other settings.
    """
    check_count("n (edits per molecule)", n)
    reading = prompt if isinstance(prompt, Interpretation) else interpret(prompt, min_similarity)
    properties = list(dict.fromkeys(intent_objective(i).name for i in reading.intents))
    rows = _run_series(molecules, _edit_molecule, reading, settings,
                       record={"reading": reading.describe(), "signature": repr(reading.signature())},
                       out=out, generator_path=generator_path, library=library, keep=n,
                       what="editing", scheduler=scheduler, n_workers=n_workers,
                       processes=processes, progress=progress, retry_failed=retry_failed)
    table = _table(rows, "input", properties)
    table.attrs["interpretation"] = reading.describe()
    _write(table, out, "input")
    return table
