"""Files of long-running jobs: atomic checkpoints and append-only metrics tables."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

__all__ = ["append_csv", "save_atomic"]


def save_atomic(state: Any, path: str | Path) -> None:
    """`torch.save` to a temporary file, then rename: a kill mid-write never leaves a
    truncated checkpoint behind."""
    import torch

    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def append_csv(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row to a CSV file, writing the header when the file is new."""
    path = Path(path)
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
