"""Map a function over many items with Dask: resumable, failure-tolerant, with progress.

`map_items` is the single entry point for embarrassingly parallel work (featurising, DFT
labelling, docking, screening). It runs on a Dask ``LocalCluster`` by default, or on any
existing cluster (dask-jobqueue/SLURM, Kubernetes, ``dask scheduler`` + ``dask worker``)
when given its address or a ``distributed.Client``.

Guarantees:
- an item whose call raises is recorded with ``error="ExcType: message"`` (plus where it was
  raised when the exception is not one of the toolkit's own); the others go on;
  a worker that dies takes only its own chunk down, recorded the same way;
- with ``journal=path.jsonl`` each finished chunk is appended to the journal as JSON lines
  and flushed at once, so an interrupted run restarted with the same journal skips every
  item already there (failed ones too, unless ``retry_failed=True``);
- at most ``max_in_flight`` chunks are submitted at a time, so memory stays flat however
  long the input is.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import traceback
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client, LocalCluster, as_completed
from tqdm.auto import tqdm

from molops.errors import ChemToolkitError
from molops.table import object_column

__all__ = ["dask_client", "drop_partial_line", "finished_rows", "latest_rows", "map_items", "read_journal"]

log = logging.getLogger(__name__)

Scheduler = str | Client | None


@contextmanager
def dask_client(
    scheduler: Scheduler = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    processes: bool = True,
) -> Iterator[Client]:
    """Yield a Dask client; close what this call created, nothing else.

    Args:
        scheduler: an existing ``Client`` (used as is), a scheduler address such as
            ``"tcp://10.0.0.5:8786"`` (connect to that cluster), or None to start a
            ``LocalCluster`` of `n_workers` (default: one per CPU core).
        processes: LocalCluster workers as processes (default) or threads of this process.
    """
    if isinstance(scheduler, Client):
        yield scheduler
        return
    if n_workers is not None and n_workers < 1:  # LocalCluster would wait for them forever
        raise ChemToolkitError(f"number of workers {n_workers} must be at least 1")
    if isinstance(scheduler, str):
        with Client(scheduler) as client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=n_workers or os.cpu_count() or 1,
        threads_per_worker=threads_per_worker,
        processes=processes,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path,)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def describe_failure(exc: BaseException) -> str:
    """``"ExcType: message"``; for an unexpected exception (not one of the toolkit's own, which
    name their input and reason) also where it was raised, so that a per-row error such as
    ``IndexError: tuple index out of range`` can be traced without a debugger."""
    from molops.errors import ChemToolkitError

    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, ChemToolkitError) or not frames:
        return text
    last = frames[-1]
    where = last.filename.split("site-packages/")[-1]
    return f"{text} (raised in {last.name}, {where}:{last.lineno})"


def _run_chunk(func: Callable[[Any], Any], chunk: list[tuple[Hashable, Any]]) -> list[dict[str, Any]]:
    """Executed on a worker: call `func` on every item, capturing failures per item."""
    rows = []
    for key, item in chunk:
        start = time.perf_counter()
        try:
            result = func(item)
            error = None
        except Exception as exc:  # noqa: BLE001 - per-item capture is this function's job
            result = None
            error = describe_failure(exc)
            log.debug("item %r failed:\n%s", key, traceback.format_exc())
        row: dict[str, Any] = {"key": key}
        if isinstance(result, Mapping):
            row.update(result)
        elif result is not None:
            row["result"] = result
        row["error"] = error
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
    return rows


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a journal written by `map_items`; a truncated last line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s line %d is incomplete (interrupted write); ignoring it", path, line_no)
    return rows


def finished_rows(journal: str | Path, *, retry_failed: bool = False) -> dict[Hashable, dict[str, Any]]:
    """Journal rows that count as finished, by key: the latest row of a key decides.

    A failed row (``error`` set) is finished too, unless `retry_failed`, in which case its
    key is left out so that the item is computed again.
    """
    return latest_rows(read_journal(journal), retry_failed=retry_failed)


def latest_rows(rows: list[dict[str, Any]], *, retry_failed: bool = False) -> dict[Hashable, dict[str, Any]]:
    """`finished_rows` of journal rows already read (`read_journal`), for callers that also
    need the raw rows and should not read the file twice."""
    done: dict[Hashable, dict[str, Any]] = {}
    for row in rows:
        if row.get("error") is None or not retry_failed:
            done[row["key"]] = row
        else:
            done.pop(row["key"], None)
    return done


def drop_partial_line(path: Path) -> None:
    """Cut a last line left without its newline by a crash, so appends start clean."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)
            log.warning("%s: dropped an incomplete last line (interrupted write)", path)


def _keyed(items: Iterable[Any] | Mapping[Hashable, Any], keys: Iterable[Hashable] | None) -> Iterator[tuple[Hashable, Any]]:
    if isinstance(items, Mapping):
        return iter(items.items())
    if keys is not None:
        return zip(keys, items, strict=True)
    return enumerate(items)


def _chunks(pairs: Iterator[tuple[Hashable, Any]], size: int) -> Iterator[list[tuple[Hashable, Any]]]:
    while chunk := list(islice(pairs, size)):
        yield chunk


def map_items(
    func: Callable[[Any], Any],
    items: Iterable[Any] | Mapping[Hashable, Any],
    *,
    keys: Iterable[Hashable] | None = None,
    scheduler: Scheduler = None,
    journal: str | Path | None = None,
    retry_failed: bool = False,
    chunk_size: int = 1,
    max_in_flight: int | None = None,
    progress: bool = False,
    description: str = "items",
    n_workers: int | None = None,
    processes: bool = True,
    on_result: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    deadline: float | None = None,
) -> pd.DataFrame:
    """Apply `func` to every item on a Dask cluster and collect one row per item.

    Args:
        func: called as ``func(item)`` on a worker; a dict result becomes columns of the
            item's row, any other result goes to a ``result`` column. Must be picklable
            (a module-level function, or a closure cloudpickle can ship).
        items: a sequence/iterable (keys default to positions 0, 1, ...) or a mapping of
            key -> item. Keys identify items across runs and must be JSON scalars when a
            journal is used.
        keys: explicit keys for an iterable of items.
        scheduler: None (LocalCluster), a scheduler address, or a ``distributed.Client``.
        journal: JSON-lines file; finished rows are appended as they arrive and rows already
            there are not computed again (results must then be JSON-serialisable).
        retry_failed: on resume, compute again the items whose journal row has an error.
        chunk_size: items per Dask task (larger chunks amortise scheduling overhead).
        max_in_flight: chunks submitted at once (default: 4 per worker thread).
        progress: show a tqdm progress bar.
        on_result: called in this process on every finished row, in completion order, before
            the row is journaled; returns the row to keep (e.g. after moving large arrays to
            a file, so that results are saved as they arrive).
        deadline: a ``time.monotonic()`` value after which no new chunk is submitted; the
            chunks in flight finish (then at most one per worker thread by default), and the
            items never started are absent from the result (a journal resumes them).

    Returns:
        DataFrame with ``key``, the result columns, ``error`` (None on success) and
        ``seconds`` (wall time of the call), in input order, journal rows included.
    """
    done = finished_rows(journal, retry_failed=retry_failed) if journal is not None else {}
    order: dict[Hashable, int] = {}

    def pending() -> Iterator[tuple[Hashable, Any]]:
        for key, item in _keyed(items, keys):
            if key in order:
                raise ValueError(f"duplicate key {key!r} in map_items input")
            order[key] = len(order)
            if key in done:
                bar.update(1)  # finished in an earlier run
            else:
                yield key, item

    total = len(items) if hasattr(items, "__len__") else None
    bar = tqdm(total=total, desc=description, unit="item", disable=not progress)
    rows: list[dict[str, Any]] = []
    if journal is not None:
        Path(journal).parent.mkdir(parents=True, exist_ok=True)
        drop_partial_line(Path(journal))
    handle = open(journal, "a") if journal is not None else None
    try:
        chunks = _chunks(pending(), max(1, chunk_size))
        first = next(chunks, None)
        if first is not None:
            with dask_client(scheduler, n_workers=n_workers, processes=processes) as client:
                rows = _run_on(client, func, first, chunks, max_in_flight, handle, bar, on_result, deadline)
            for _ in chunks:  # after a deadline: register the keys never started, so their journal rows are returned
                pass
    finally:
        bar.close()
        if handle is not None:
            handle.close()
    merged = {**done, **{row["key"]: row for row in rows}}
    ordered = sorted(
        (row for key, row in merged.items() if key in order), key=lambda r: order[r["key"]]
    )
    frame = pd.DataFrame(ordered)
    if frame.empty:
        frame = pd.DataFrame(columns=["key", "error", "seconds"])
    columns = [c for c in frame.columns if c not in ("error", "seconds")] + ["error", "seconds"]
    frame = frame[columns]
    frame["error"] = object_column(frame["error"])
    return frame


def _run_on(
    client: Client,
    func: Callable[[Any], Any],
    first: list[tuple[Hashable, Any]],
    chunks: Iterator[list[tuple[Hashable, Any]]],
    max_in_flight: int | None,
    handle: Any,
    bar: tqdm,
    on_result: Callable[[dict[str, Any]], dict[str, Any]] | None,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    if max_in_flight is None:
        threads = sum(client.nthreads().values()) or 1
        # With a deadline, queue no more than the workers run, so little is in flight when it passes.
        max_in_flight = threads if deadline is not None else 4 * threads
    submitted: dict[Any, list[tuple[Hashable, Any]]] = {}
    queue = as_completed()

    def submit(chunk: list[tuple[Hashable, Any]]) -> None:
        future = client.submit(_run_chunk, func, chunk, pure=False)
        submitted[future] = chunk
        queue.add(future)

    submit(first)
    for chunk in islice(chunks, max(0, max_in_flight - 1)):
        submit(chunk)
    rows: list[dict[str, Any]] = []
    for future in queue:
        chunk = submitted.pop(future)
        try:
            chunk_rows = future.result()
        except Exception as exc:  # noqa: BLE001 - a dead worker fails its chunk, not the run
            message = f"{type(exc).__name__}: task failed on the cluster: {exc}"
            chunk_rows = [{"key": key, "error": message, "seconds": math.nan} for key, _ in chunk]
        future.release()
        if on_result is not None:
            chunk_rows = [on_result(row) for row in chunk_rows]
        if handle is not None:
            handle.write("".join(json.dumps(r, default=_jsonable) + "\n" for r in chunk_rows))
            handle.flush()
        rows.extend(chunk_rows)
        bar.update(len(chunk_rows))
        if deadline is not None and time.monotonic() >= deadline:
            continue  # out of time: let the chunks in flight finish, start none
        following = next(chunks, None)
        if following is not None:
            submit(following)
    return rows
