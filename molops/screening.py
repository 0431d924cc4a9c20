"""Virtual screening funnel: stream a library through standardisation, filters, descriptors,
optional quantum-property prediction and docking of the best candidates.

`screen` reads the library record by record (`molops.io.iter_molecules`: .smi/.csv/.sdf/...,
gzip too) in chunks of ``chunk_size`` molecules, so memory stays flat however large the file.
Each chunk is one task of `molops.distributed.map_items` (a Dask LocalCluster by default, any
Dask cluster when given its address):

1. standardise (parent fragment, neutralised; `molops.standardize`);
2. descriptors (QED, SA, cLogP, TPSA, HBA/HBD, Lipinski, PAINS/Brenk alerts);
3. filters (``lipinski``, ``pains``, ``brenk``): a molecule failing one is kept in the table
   with ``passes_filters`` False and the reason in ``filter_failures``;
4. optional property prediction (the orbital-feature network: ~4 s per drug-sized MOSES
   molecule on one core, benchmarks/screen_scaling.py) for the molecules passing the filters;
   molecules with elements outside its training data (S, Cl, Br for the QM9 ensemble) are
   recorded with that reason in ``prediction_error``; extrapolations and predictions the
   ensemble members disagree on are kept with the reason in ``prediction_warning``.

Every finished chunk is written as ``<out>.parts/chunk-<n>.parquet`` and journaled, so a killed
screen resumes with the chunks it has. Then the best ``dock_top`` molecules that pass the
filters (by ``preselect``, QED by default) are docked against the target (`dock_library`,
itself resumable), and everything is assembled:

- ``out`` (Parquet): one row per input record: ``record``, ``name``, ``input_smiles``,
  ``smiles`` (standardised), descriptors, ``passes_filters``, predictions, docking score and
  ``rank`` (docked molecules by Vina score, best = 1), ``error`` (why a row failed);
- ``<out stem>_top_poses.sdf``: best pose of each docked molecule, score in the properties;
- ``<out stem>_report.html`` and ``_report.png``: score distributions and the top hits.

`ScreenSummary` counts what happened at each stage, per-molecule failures included.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from functools import partial
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rdkit import Chem

from molops.distributed import Scheduler, dask_client, finished_rows, map_items
from molops.errors import ChemToolkitError, InputFileError
from molops.io import existing_file, iter_molecules

__all__ = ["FILTERS", "ScreenSettings", "ScreenSummary", "screen", "PREDICTABLE"]

log = logging.getLogger(__name__)

FILTERS = ("lipinski", "pains", "brenk")
PREDICTABLE = ("homo", "lumo", "gap", "dipole", "energy")


@dataclass(frozen=True)
class ScreenSettings:
    """What the funnel does.

    Attributes:
        target: dockstring target name for docking (None: no docking).
        filters: subset of `FILTERS` a molecule must pass to be predicted and docked.
        predict: properties of the orbital network to predict (subset of `PREDICTABLE`).
        dock_top: dock this many of the best filtered molecules.
        preselect: column ranking molecules for docking ("qed", or a predicted column such
            as "gap_ev"), with ``preselect_direction``.
        exhaustiveness: Vina search effort of the docking stage.
        chunk_size: molecules per task (and per part file).
        seed: Vina seed (docking results are reproducible).
    """

    target: str | None = None
    filters: tuple[str, ...] = ("lipinski", "pains")
    predict: tuple[str, ...] = ()
    dock_top: int = 500
    preselect: str = "qed"
    preselect_direction: str = "maximize"
    exhaustiveness: int = 8
    chunk_size: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.filters) - set(FILTERS)
        if unknown:
            raise ValueError(f"unknown filter(s) {sorted(unknown)}; choose from {', '.join(FILTERS)}")
        unknown = set(self.predict) - set(PREDICTABLE)
        if unknown:
            raise ValueError(f"unknown property(ies) {sorted(unknown)}; choose from {', '.join(PREDICTABLE)}")
        if self.preselect_direction not in ("maximize", "minimize"):
            raise ValueError("preselect_direction must be 'maximize' or 'minimize'")
        from molops.descriptors import DESCRIPTOR_COLUMNS

        # Checked here, not after the whole library has been described.
        rankable = [*DESCRIPTOR_COLUMNS, *(_PREDICTION_COLUMNS[p] for p in self.predict)]
        if self.preselect not in rankable:
            raise ValueError(f"preselect column {self.preselect!r} is not in the screen table; choose from "
                             f"{', '.join(rankable)} (predicted columns need --predict)")
        if self.chunk_size < 1 or self.dock_top < 0:
            raise ValueError("chunk_size must be ≥ 1 and dock_top ≥ 0")


@dataclass
class ScreenSummary:
    """Counts per stage (molecules), failures included, and where the outputs are."""

    records: int = 0
    unreadable: int = 0
    standardisation_failed: int = 0
    passed_filters: int = 0
    predicted: int = 0
    prediction_failed: int = 0
    docked: int = 0
    docking_failed: int = 0
    failed_chunks: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # funnel, docking, assembly
    outputs: dict[str, str] = field(default_factory=dict)

    def as_text(self) -> str:
        return (f"{self.records} records: {self.unreadable} unreadable, {self.standardisation_failed} failed "
                f"standardisation, {self.passed_filters} passed the filters, {self.predicted} predicted "
                f"({self.prediction_failed} failed), {self.docked} docked ({self.docking_failed} failed); "
                f"{self.seconds:.0f} s" + (f"; {self.failed_chunks} chunks failed (rerun to retry)" if self.failed_chunks else ""))


# ------------------------------------------------------------------------------------------
# Worker side: one chunk
# ------------------------------------------------------------------------------------------
_PREDICTION_COLUMNS = {"homo": "homo_ev", "lumo": "lumo_ev", "gap": "gap_ev", "dipole": "dipole_debye",
                       "energy": "energy_hartree"}


def _filter_failures(descriptors: dict[str, Any], filters: tuple[str, ...]) -> list[str]:
    failures = []
    if "lipinski" in filters and not descriptors["passes_lipinski"]:
        failures.append(f"lipinski ({descriptors['lipinski_violations']} violations)")
    if "pains" in filters and descriptors["n_pains_alerts"]:
        failures.append(f"pains ({descriptors['pains_alerts']})")
    if "brenk" in filters and descriptors["n_brenk_alerts"]:
        failures.append(f"brenk ({descriptors['brenk_alerts']})")
    return failures


def _fixed_columns(frame: pd.DataFrame, settings: ScreenSettings) -> pd.DataFrame:
    """Same columns and dtypes in every part (a chunk of failures has no descriptor values)."""
    from molops.descriptors import DESCRIPTOR_COLUMNS

    text = {"name", "input_smiles", "smiles", "filter_failures", "error", "pains_alerts", "brenk_alerts",
            "prediction_error", "prediction_warning"}
    flags = {"passes_filters", "passes_lipinski"}
    columns = ["record", "name", "input_smiles", "smiles", *DESCRIPTOR_COLUMNS, "passes_filters", "filter_failures"]
    if settings.predict:
        columns += [_PREDICTION_COLUMNS[p] for p in settings.predict] + ["prediction_warning", "prediction_error"]
    columns.append("error")
    frame = frame.reindex(columns=columns)
    for column in columns:
        if column == "record":
            frame[column] = frame[column].astype("int64")
        elif column in text:
            frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
        elif column in flags:
            frame[column] = frame[column].astype("boolean")
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _screen_chunk(settings: ScreenSettings, part_dir: str, chunk: dict[str, Any]) -> dict[str, Any]:
    """Standardise, describe, filter and predict one chunk; write its part file."""
    from molops.descriptors import compute_descriptors
    from molops.standardize import StandardizeOptions, standardize

    rows = []
    for record in chunk["records"]:
        row: dict[str, Any] = {"record": record["record"], "name": record["name"],
                               "input_smiles": record["given"] or record["smiles"],
                               "smiles": None, "passes_filters": False, "filter_failures": None,
                               "error": record["error"]}
        if row["error"] is None:
            try:
                mol = standardize(record["smiles"], StandardizeOptions(canonical_tautomer=False))
                row["smiles"] = Chem.MolToSmiles(mol)
                descriptors = asdict(compute_descriptors(row["smiles"]))
                row.update(descriptors)
                failures = _filter_failures(descriptors, settings.filters)
                row["passes_filters"] = not failures
                row["filter_failures"] = "; ".join(failures) or None
            except ChemToolkitError as exc:
                row["error"] = f"standardise: {exc}"
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["passes_filters"] = frame["passes_filters"].astype(bool)
    if settings.predict:
        columns = [_PREDICTION_COLUMNS[p] for p in settings.predict]
        for column in columns:
            frame[column] = np.nan
        frame["prediction_error"] = frame["prediction_warning"] = None
        chosen = frame.index[frame["passes_filters"]]
        if len(chosen):
            from quantum_features.predict import predict_properties  # loads the shipped ensemble on the worker

            predicted = predict_properties(frame.loc[chosen, "smiles"].tolist())
            for column in columns:
                frame.loc[chosen, column] = predicted[column].to_numpy()
            frame.loc[chosen, "prediction_error"] = predicted["error"].to_numpy()
            frame.loc[chosen, "prediction_warning"] = predicted["warning"].to_numpy()
    frame = _fixed_columns(frame, settings)
    path = Path(part_dir) / f"chunk-{chunk['number']:06d}.parquet"
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)  # a kill never leaves half a part
    return {"part": path.name, "records": len(frame),
            "unreadable": int(frame["error"].notna().sum() - frame["error"].str.startswith("standardise", na=False).sum()),
            "standardisation_failed": int(frame["error"].str.startswith("standardise", na=False).sum()),
            "passed_filters": int(frame["passes_filters"].sum()),
            "predicted": int((frame["passes_filters"] & frame["prediction_error"].isna()).sum()) if settings.predict else 0,
            "prediction_failed": int(frame["prediction_error"].notna().sum()) if settings.predict else 0}


# ------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------
def _chunks(library: Path, chunk_size: int, smiles_column: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(chunk number, {"number", "records"}) read lazily; records carry SMILES, not Mols."""
    records, number, position = [], 0, 0
    for record in iter_molecules(library, smiles_column=smiles_column):
        mol = record.mol
        name = (record.props.get("name") or record.props.get("_Name") or
                (mol.GetProp("_Name") if mol is not None and mol.HasProp("_Name") else "")) or f"record {position}"
        given = record.props.get("smiles")
        records.append({"record": position, "name": str(name), "given": given,
                        "smiles": Chem.MolToSmiles(mol) if mol is not None else None, "error": record.error})
        position += 1
        if len(records) == chunk_size:
            yield number, {"number": number, "records": records}
            records, number = [], number + 1
    if records:
        yield number, {"number": number, "records": records}


def _read_parts(part_dir: Path, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    for path in sorted(part_dir.glob("chunk-*.parquet")):
        yield pd.read_parquet(path, columns=columns)


def screen(
    library: str | Path,
    out: str | Path,
    settings: ScreenSettings = ScreenSettings(),
    *,
    scheduler: Scheduler = None,
    n_workers: int | None = None,
    smiles_column: str | None = None,
    progress: bool = True,
) -> ScreenSummary:
    """Run the funnel on `library` and write `out` (.parquet) with its poses and report.

    Rerunning the same call resumes: finished chunks (journal ``<out>.journal.jsonl`` and
    part files) and docked ligands are not computed again, and the final table is identical
    to an uninterrupted run's.

    Raises:
        InputFileError: the library is missing or unreadable as a whole.
        ValueError: bad settings; DockingError: unknown target.
    """
    start = time.perf_counter()
    library = existing_file(library)
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise ValueError(f"--out {out}: the screen writes Parquet (.parquet)")
    part_dir = out.with_name(out.name + ".parts")
    part_dir.mkdir(parents=True, exist_ok=True)
    settings_file = part_dir / "settings.json"
    # The library's size too: records are numbered by position, so an edited file must not resume.
    described = json.dumps({**asdict(settings), "library": str(library.resolve()), "smiles_column": smiles_column,
                            "library_bytes": library.stat().st_size}, sort_keys=True, default=list)
    if settings_file.exists() and settings_file.read_text() != described:
        raise ValueError(f"{part_dir} holds a screen with other settings, another SMILES column or another (or "
                         "edited) library; choose another --out")
    settings_file.write_text(described)
    if settings.target is not None:
        from molops.docking.receptor import load_target

        load_target(settings.target)  # an unknown target fails before hours of work

    journal = out.with_name(out.name + ".journal.jsonl")
    summary = ScreenSummary()
    first_failure = None
    with dask_client(scheduler, n_workers=n_workers) as client:  # one cluster for both stages
        tick = time.perf_counter()
        chunks = (chunk for _, chunk in _chunks(library, settings.chunk_size, smiles_column))  # lazy: flat memory
        map_items(partial(_screen_chunk, settings, str(part_dir)), chunks, scheduler=client, journal=journal,
                  retry_failed=True, progress=progress, description="screen chunks")
        for row in finished_rows(journal).values():  # a chunk retried after a failure counts once
            if row.get("error") is not None:  # e.g. a worker killed: retried on the next run
                summary.failed_chunks += 1
                first_failure = first_failure or row["error"]
                log.warning("screening chunk %s failed (%s); rerun the screen to retry it", row["key"], row["error"])
                continue
            for name in ("records", "unreadable", "standardisation_failed", "passed_filters", "predicted",
                         "prediction_failed"):
                setattr(summary, name, getattr(summary, name) + int(row.get(name) or 0))
        summary.stage_seconds["funnel"] = time.perf_counter() - tick
        tick = time.perf_counter()
        if summary.failed_chunks and settings.target is not None:
            # The best candidates are chosen from every record: docking a partial list would
            # dock others than the finished screen's (and its journal could not be resumed).
            log.warning("docking skipped until every chunk is screened: rerun the screen to retry the %d failed "
                        "chunk(s)", summary.failed_chunks)
            docking = None
        else:
            docking = _dock_best(out, part_dir, settings, client, None, progress, summary)
        summary.stage_seconds["docking"] = time.perf_counter() - tick
    tick = time.perf_counter()
    if not any(part_dir.glob("chunk-*.parquet")) and summary.failed_chunks:
        raise InputFileError(f"{library}: every chunk of the screen failed, e.g. {first_failure}; rerun to retry them")
    _assemble(out, part_dir, docking)
    summary.outputs["table"] = str(out)
    from molops.screen_report import write_report

    summary.outputs.update(write_report(out, settings, summary))
    summary.stage_seconds["assembly"] = time.perf_counter() - tick
    summary.seconds = time.perf_counter() - start
    return summary


def _dock_best(out: Path, part_dir: Path, settings: ScreenSettings, scheduler, n_workers, progress,
               summary: ScreenSummary) -> pd.DataFrame | None:
    """Dock the `dock_top` best filtered molecules; returns record -> docking columns."""
    if settings.target is None or settings.dock_top == 0:
        return None
    from molops.docking import DockingSettings, dock_library

    column = settings.preselect
    best = pd.DataFrame(columns=["record", "smiles", column])
    for part in _read_parts(part_dir):
        if column not in part.columns:
            raise ValueError(f"preselect column {column!r} is not in the screen table (predict it, or use 'qed')")
        part = part[part["passes_filters"] & part[column].notna()][["record", "smiles", column]]
        ascending = settings.preselect_direction == "minimize"
        best = pd.concat([best, part]).sort_values([column, "record"], ascending=[ascending, True]).head(settings.dock_top)
    best = best.sort_values("record").reset_index(drop=True)  # fixed ligand order: resumable docking
    if best.empty:
        return None
    frame = dock_library(
        pd.DataFrame({"smiles": best["smiles"], "name": best["record"].astype(str), "mol": [None] * len(best),
                      "error": [None] * len(best)}),
        settings.target, out=out.with_name(out.stem + "_docking.parquet"),
        poses=out.with_name(out.stem + "_all_poses.sdf"),
        settings=DockingSettings(exhaustiveness=settings.exhaustiveness, seed=settings.seed, n_poses=1),
        scheduler=scheduler, n_workers=n_workers, progress=progress,
    )
    frame["record"] = best["record"].to_numpy()
    summary.docked = int((frame["status"] == "ok").sum())
    summary.docking_failed = int((frame["status"] != "ok").sum())
    docked = frame[["record", "vina_score_kcal_mol", "status"]].rename(columns={"status": "docking_status"})
    docked["docking_error"] = frame["error"].to_numpy()
    scores = docked["vina_score_kcal_mol"]
    docked["rank"] = scores.rank(method="first").where(scores.notna())
    _top_poses(out, frame, best)
    return docked


def _top_poses(out: Path, frame: pd.DataFrame, best: pd.DataFrame) -> None:
    """Best pose per docked molecule, ranked, into ``<stem>_top_poses.sdf``."""
    all_poses = out.with_name(out.stem + "_all_poses.sdf")
    if not all_poses.exists():
        return
    best_by_name: dict[str, Chem.Mol] = {}
    for mol in Chem.SDMolSupplier(str(all_poses), removeHs=False):
        if mol is None:
            continue
        name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
        score = float(mol.GetProp("vina_score_kcal_mol")) if mol.HasProp("vina_score_kcal_mol") else math.inf
        kept = best_by_name.get(name)
        if kept is None or score < float(kept.GetProp("vina_score_kcal_mol")):
            best_by_name[name] = mol
    # Ties broken by record, as the table's rank is (poses arrive in completion order).
    ranked = sorted(best_by_name.items(), key=lambda item: (float(item[1].GetProp("vina_score_kcal_mol")),
                                                            int(item[0]) if item[0].isdigit() else math.inf))
    with Chem.SDWriter(str(out.with_name(out.stem + "_top_poses.sdf"))) as writer:
        for rank, (name, mol) in enumerate(ranked, start=1):
            mol.SetProp("rank", str(rank))
            mol.SetProp("record", name)
            writer.write(mol)


def _assemble(out: Path, part_dir: Path, docking: pd.DataFrame | None) -> None:
    """Concatenate the parts (streamed) with the docking columns into `out`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    schema = None
    tmp = out.with_name(out.name + ".tmp")
    try:
        for part in _read_parts(part_dir):
            if docking is not None:
                part = part.merge(docking, on="record", how="left")
            else:
                part = part.assign(vina_score_kcal_mol=np.nan, docking_status=None, docking_error=None, rank=np.nan)
            part["rank"] = part["rank"].astype("float64")
            for column in ("docking_status", "docking_error", "filter_failures", "error", "prediction_error",
                           "prediction_warning"):
                if column in part.columns:
                    part[column] = part[column].astype("object").where(part[column].notna(), None)
            if writer is None:
                # Text columns that happen to be all empty in the first part must still be strings.
                schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f
                                    for f in pa.Schema.from_pandas(part, preserve_index=False)])
                writer = pq.ParquetWriter(tmp, schema)
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise InputFileError("the library holds no records")
    tmp.replace(out)
