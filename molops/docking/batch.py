"""Batch docking on Dask: maps once per worker, results streamed to disk, resumable.

`dock_library` maps ligands over the workers with `molops.distributed.map_items`. Each worker
builds one `VinaDocker` per target (grid maps computed once) and docks its ligands with one
Vina thread, so the cores work on different ligands instead of sharing one.

Files written while the batch runs:
- ``<out>.journal.jsonl``: one JSON line per finished ligand, flushed at once; restarting the
  same command skips every ligand already there (the truth on disk if a run is killed);
- ``<out>.journal.settings.json``: the target (content hash) and Vina settings the journal was
  written with; a resume under other settings is refused instead of mixing results;
- ``out`` (Parquet): rows written in row groups as they arrive and completed at the end;
- ``poses`` (SDF, optional): every pose of every docked ligand, appended as it arrives, with
  ``key``, ``name``, ``pose`` and ``vina_score_kcal_mol`` properties.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rdkit import Chem

from molops.distributed import Scheduler, latest_rows, map_items, read_journal
from molops.docking.engine import DockingSettings, docker_for
from molops.docking.receptor import Target, load_target
from molops.errors import DockingError, ParseError
from molops.io import molecule_items
from molops.runfiles import check_run_settings

__all__ = ["dock_library", "RESULT_SCHEMA"]

log = logging.getLogger(__name__)

#: Columns of the results table (scores in kcal/mol, lower is better; times in s).
RESULT_SCHEMA = pa.schema(
    [
        ("key", pa.int64()),
        ("name", pa.string()),
        ("smiles", pa.string()),
        ("docked_smiles", pa.string()),
        ("protonation", pa.string()),
        ("target", pa.string()),
        ("vina_score_kcal_mol", pa.float64()),
        ("pose_scores_kcal_mol", pa.list_(pa.float64())),
        ("status", pa.string()),
        ("error", pa.string()),
        ("prepare_seconds", pa.float64()),
        ("dock_seconds", pa.float64()),
        ("seconds", pa.float64()),
    ]
)


def _dock_item(target: Target, settings: DockingSettings, item: dict[str, Any]) -> dict[str, Any]:
    """Runs on a worker: prepare and dock one ligand; poses travel back as SDF text."""
    if item.get("error"):
        raise ParseError(item["error"])  # the input could not even be parsed
    molecule = item["mol"] if item.get("mol") is not None else item["smiles"]
    result = docker_for(target, settings).dock_molecule(molecule, name=item["name"])
    return {
        "smiles": result.ligand.smiles,
        "docked_smiles": result.ligand.docked_smiles,
        "protonation": result.ligand.protonation,
        "vina_score_kcal_mol": result.score_kcal_mol,
        "pose_scores_kcal_mol": result.scores_kcal_mol,
        "prepare_seconds": result.prepare_seconds,
        "dock_seconds": result.dock_seconds,
        "poses_sdf": result.sdf(),
    }


class _ParquetStream:
    """Append rows to a Parquet file in row groups; the file is complete once closed."""

    def __init__(self, path: Path, every_rows: int = 64, every_seconds: float = 30.0) -> None:
        self.path, self.every_rows, self.every_seconds = path, every_rows, every_seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, RESULT_SCHEMA)
        self._rows: list[dict[str, Any]] = []
        self._last = time.monotonic()

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.every_rows or time.monotonic() - self._last > self.every_seconds:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            table = pa.Table.from_pylist([_table_row(r) for r in self._rows], schema=RESULT_SCHEMA)
            self._writer.write_table(table)
            self._rows.clear()
        self._last = time.monotonic()

    def close(self) -> None:
        self.flush()
        self._writer.close()


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row.get(name) for name in RESULT_SCHEMA.names}


def _with_status(row: dict[str, Any], item_names: dict[int, dict[str, Any]], target: str) -> dict[str, Any]:
    item = item_names.get(row["key"], {})
    row.setdefault("name", item.get("name"))
    if row.get("smiles") is None:
        row["smiles"] = item.get("smiles")
    row["target"] = target
    row["status"] = "failed" if row.get("error") else "ok"
    return row


def _keep_finished_poses(poses: Path, finished: set[int]) -> None:
    """On resume: drop SDF records of ligands that have no journal row (cut off by a kill)."""
    if not poses.exists():
        return
    kept = []
    for block in poses.read_text().split("$$$$\n"):
        if not block.strip():
            continue
        marker = block.find("> <key>\n")
        if marker >= 0:
            key_text = block[marker + len("> <key>\n"):].split("\n", 1)[0].strip()
            if key_text.lstrip("-").isdigit() and int(key_text) in finished:
                kept.append(block + "$$$$\n")
    poses.write_text("".join(kept))


def dock_library(
    ligands: Iterable[str | Chem.Mol] | pd.DataFrame,
    target: Target | str,
    *,
    out: str | Path,
    poses: str | Path | None = None,
    settings: DockingSettings | None = None,
    scheduler: Scheduler = None,
    n_workers: int | None = None,
    processes: bool = True,
    progress: bool = True,
    retry_failed: bool = False,
) -> pd.DataFrame:
    """Dock many ligands against one target; resumable, one row per ligand.

    Args:
        ligands: SMILES strings, RDKit Mols, or a `molops.io.read_molecules` frame (rows that
            failed to parse are reported as failed rows, not dropped).
        target: a dockstring name ("DRD2") or a `Target` (e.g. from `prepare_receptor`).
        out: results Parquet file; its journal ``<out>.journal.jsonl`` makes the job resumable:
            running the same call again docks only ligands without a row (refused, with a
            `DockingError`, when the target or settings differ from the journal's).
        poses: optional SDF of all poses with the score in ``vina_score_kcal_mol``.
        settings: Vina settings (default: exhaustiveness 8, 9 poses, 1 thread per worker).
        scheduler: None (a LocalCluster of `n_workers` processes), a scheduler address, or a
            ``distributed.Client`` (e.g. a dask-jobqueue SLURM cluster's).
        retry_failed: on resume, dock again the ligands that failed before.

    Returns:
        DataFrame with the columns of `RESULT_SCHEMA`: ``vina_score_kcal_mol`` (best pose,
        kcal/mol; NaN when docking failed, never 0), every pose's score, ``status``
        ("ok"/"failed"), ``error`` (the reason), and timings.
    """
    target = load_target(target) if isinstance(target, str) else target
    settings = settings or DockingSettings()
    out = Path(out)
    journal = out.with_name(out.name + ".journal.jsonl")
    items = molecule_items(ligands)
    by_key = dict(enumerate(items))

    # Threads per ligand change speed, not results: a resume may use another count.
    check_run_settings(journal, {"target": f"{target.name} ({target.key})",
                                 **{k: v for k, v in asdict(settings).items() if k != "cpu"}}, DockingError)
    previous = read_journal(journal)
    for row in previous:
        item = by_key.get(row["key"])
        if item is None or item["name"] != row.get("name"):
            raise DockingError(
                f"{journal} belongs to another ligand list (row {row['key']} is "
                f"{row.get('name')!r}, the input has {item['name'] if item else 'no such row'!r}); "
                "remove it or choose another --out to start afresh"
            )
    latest = latest_rows(previous, retry_failed=retry_failed)  # a retried ligand's older rows drop out
    finished = set(latest)
    poses_path = Path(poses) if poses is not None else None
    if poses_path is not None:
        poses_path.parent.mkdir(parents=True, exist_ok=True)
        docked_before = sum(row.get("error") is None for row in latest.values())
        if docked_before and not poses_path.exists():
            log.warning("%s: %d ligands docked in an earlier run without --poses have no poses in it; remove %s "
                        "to dock everything again with poses", poses_path, docked_before, journal)
        _keep_finished_poses(poses_path, finished)
    stream = _ParquetStream(out)
    for row in latest.values():
        stream.add(row)
    pose_handle = open(poses_path, "a") if poses_path is not None else None

    def on_result(row: dict[str, Any]) -> dict[str, Any]:
        row = _with_status(row, by_key, target.name)
        sdf = row.pop("poses_sdf", None)
        if pose_handle is not None and sdf:
            tagged = sdf.replace("$$$$\n", f"> <key>\n{row['key']}\n\n> <name>\n{row['name']}\n\n$$$$\n")
            pose_handle.write(tagged)
            pose_handle.flush()
        row.pop("result", None)
        stream.add(row)
        return row

    try:
        frame = map_items(
            partial(_dock_item, target, settings),
            by_key,
            scheduler=scheduler,
            journal=journal,
            retry_failed=retry_failed,
            progress=progress,
            description=f"docking into {target.name}",
            n_workers=n_workers,
            processes=processes,
            on_result=on_result,
        )
    finally:
        stream.close()
        if pose_handle is not None:
            pose_handle.close()
    frame = frame.drop(columns=[c for c in ("poses_sdf", "result") if c in frame.columns])
    frame = pd.DataFrame([_with_status(r, by_key, target.name) for r in frame.to_dict("records")])
    return frame.reindex(columns=RESULT_SCHEMA.names)

