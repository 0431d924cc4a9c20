"""Files of long-running jobs: atomic checkpoints, append-only metrics tables, YAML options."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["append_csv", "atomic_write", "check_run_settings", "file_sha256", "interrupt_on_terminate", "load_torch_file",
           "read_yaml_options", "save_atomic"]


@contextlib.contextmanager
def interrupt_on_terminate() -> Iterator[None]:
    """Inside the block, SIGTERM (a batch system's or `kill`'s stop) raises KeyboardInterrupt,
    so that a training loop's ``finally`` writes its checkpoint before the process ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes (about 1 s per GB), read in chunks: what a cache
    or a resumable run was built from."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file handle whose contents replace `path` only when the block ends cleanly.

    The data go to a uniquely named temporary file beside `path` and are renamed over it:
    a kill mid-write never leaves a torn file, two processes writing the same cache never
    mix their bytes (the last rename wins), and an exception leaves `path` as it was and
    no temporary file behind. The parent folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())  # the data are on disk before the name points at them
        # Temporary files are private (0600); the result gets the permissions a plain write
        # would give (a shared cache stays readable by the group).
        os.chmod(handle.name, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def save_atomic(state: Any, path: str | Path) -> None:
    """`torch.save` through `atomic_write`: a kill mid-write never leaves a truncated checkpoint."""
    import torch

    with atomic_write(path) as handle:
        torch.save(state, handle)


def load_torch_file(path: str | Path, what: str, keys: Iterable[str] = ()) -> dict[str, Any]:
    """The dict a `save_atomic`/`torch.save` file holds, with `keys` present.

    Raises:
        InputFileError: no such file, or not a readable `what` file (truncated, another
            format, or missing one of `keys`); the message names the file.
    """
    import torch

    from molops.errors import InputFileError

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such {what} file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # unpickling a foreign or torn file can raise almost anything
        raise InputFileError(f"{path}: not a readable {what} file ({type(exc).__name__}: {exc})") from None
    missing = [k for k in keys if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise InputFileError(f"{path}: not a {what} file (no {', '.join(missing)})")
    return payload


def check_run_settings(journal: str | Path, current: dict[str, Any], error: type[Exception] | None = None) -> None:
    """Refuse to resume `journal` under other settings than it was written with; record `current`.

    The settings live beside the journal (``<journal stem>.settings.json``). A journal without
    that record (an older run) is accepted and the record written.

    Raises:
        `error` (default `ChemToolkitError`): the settings differ; the message lists each change.
    """
    import json

    from molops.errors import ChemToolkitError

    journal = Path(journal)
    record = journal.with_name(journal.name.removesuffix(".jsonl") + ".settings.json")
    current = json.loads(json.dumps(current, default=str))  # as it is stored: tuples become lists

    def shown(value: Any) -> str:
        return value if isinstance(value, str) else repr(value)

    if journal.exists() and record.exists():
        before = json.loads(record.read_text())
        changed = [f"{key}: {shown(before.get(key))} then, {shown(value)} now"
                   for key, value in current.items() if before.get(key) != value]
        if changed:
            raise (error or ChemToolkitError)(
                f"{journal} was written with other settings ({'; '.join(changed)}); resuming would mix "
                "results: use the same settings, or remove it or choose another output to start afresh"
            )
    with atomic_write(record) as handle:  # a torn record would block every later resume
        handle.write((json.dumps(current, indent=1) + "\n").encode())


def append_csv(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row to a CSV file, writing the header when the file is new."""
    path = Path(path)
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def keep_epochs_before(path: str | Path, epoch: int) -> None:
    """Drop the rows of a metrics CSV from `epoch` on: a run resumed at `epoch` writes them again
    (a kill between the row and the checkpoint would otherwise leave that epoch twice)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    kept = [row for row in rows if int(row["epoch"]) < epoch]
    if len(kept) == len(rows) or fields is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    tmp.replace(path)


def read_yaml_options(path: str | Path, fields: Iterable[str], what: str = "config") -> dict[str, Any]:
    """The mapping of a YAML options file, checked against the accepted `fields`.

    Raises:
        ChemToolkitError: missing file, not a mapping, or unknown keys (all named).
    """
    import yaml

    from molops.errors import ChemToolkitError

    path = Path(path)
    if not path.is_file():
        raise ChemToolkitError(f"{what} {path} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ChemToolkitError(f"{path}: expected a mapping of options, got {type(values).__name__}")
    unknown = set(values) - set(fields)
    if unknown:
        raise ChemToolkitError(f"{path}: unknown option(s) {sorted(unknown)}; valid: {sorted(fields)}")
    return values
