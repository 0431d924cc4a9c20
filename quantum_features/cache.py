"""An HDF5 store of orbital features, keyed by what determines them.

The key is a SHA-256 over the atomic numbers, the positions rounded to 1e-5 Å, charge,
multiplicity, level of theory, open-shell treatment, edge cutoff and `FEATURE_VERSION`, so a
repeated request for the same structure is a cache hit and any change of method is a miss.
Layout: ``/features/<key>/`` holds the arrays of `OrbitalFeatures` (features in float32,
positions and energies in float64) with scalars and metadata as attributes.

HDF5 allows one writer: workers compute, the process that owns the cache writes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ase import Atoms

from molops.errors import InputFileError
from quantum_features.features import DEFAULT_CUTOFF, FEATURE_VERSION, OrbitalFeatures
from quantum_features.levels import DEFAULT_LEVEL, get_level

__all__ = ["FeatureCache", "cache_key"]

_ARRAYS = {
    "numbers": np.int16,
    "positions": np.float64,
    "node_features": np.float32,
    "edge_index": np.int32,
    "edge_features": np.float32,
    "dipole_debye": np.float64,
    "gradient_hartree_per_angstrom": np.float32,
}
_SCALARS = ("charge", "multiplicity", "energy_hartree", "homo_hartree", "lumo_hartree", "level", "cutoff")


def cache_key(
    atoms: Atoms,
    level: str = DEFAULT_LEVEL,
    cutoff: float = DEFAULT_CUTOFF,
    open_shell: str = "uhf",
) -> str:
    """Hex key of a structure's features (charge/multiplicity from ``atoms.info``)."""
    digest = hashlib.sha256()
    digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    digest.update(np.round(np.asarray(atoms.positions, dtype=float), 5).tobytes())
    spin = open_shell if int(atoms.info.get("multiplicity", 1)) > 1 else "closed"
    header = (int(atoms.info.get("charge", 0)), int(atoms.info.get("multiplicity", 1)),
              get_level(level).name, round(float(cutoff), 6), spin, FEATURE_VERSION)
    digest.update(json.dumps(header).encode())
    return digest.hexdigest()[:40]


class FeatureCache:
    """Orbital features in one HDF5 file; use as a context manager or call `close()`.

    Raises:
        InputFileError: the file exists but is not an HDF5 feature cache.
    """

    def __init__(self, path: str | Path, mode: str = "a") -> None:
        self.path = Path(path)
        if mode != "r":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = h5py.File(self.path, mode)
        except OSError as exc:
            if "unable to lock file" in str(exc):  # HDF5 locks a file open for writing
                raise InputFileError(
                    f"{self.path}: the feature cache is open in another process (HDF5 file lock); run one "
                    "job per cache at a time while it is being filled (jobs that find every structure "
                    "cached only read it and can share it)") from None
            raise InputFileError(f"{self.path}: cannot open as an HDF5 feature cache: {exc}") from None
        if mode != "r":
            self._file.require_group("features")
            self._file.attrs["feature_version"] = FEATURE_VERSION
        self.hits = 0
        self.misses = 0

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __contains__(self, key: str) -> bool:
        return f"features/{key}" in self._file

    def __len__(self) -> int:
        return len(self._file["features"]) if "features" in self._file else 0

    def keys(self) -> list[str]:
        return list(self._file["features"].keys()) if "features" in self._file else []

    def put(self, key: str, features: OrbitalFeatures, metadata: dict[str, Any] | None = None) -> None:
        """Store `features` under `key` (replacing an existing entry) and flush to disk."""
        path = f"features/{key}"
        if path in self._file:
            del self._file[path]
        group = self._file.create_group(path)
        for name, dtype in _ARRAYS.items():
            value = getattr(features, name)
            if value is not None:
                group.create_dataset(name, data=np.asarray(value, dtype=dtype))
        for name in _SCALARS:
            group.attrs[name] = getattr(features, name)
        for name, value in (metadata or {}).items():
            if value is not None:
                group.attrs[f"meta_{name}"] = value
        self._file.flush()

    def get(self, key: str) -> OrbitalFeatures:
        """Features stored under `key` (float64 arrays). Raises KeyError if absent."""
        group = self._file[f"features/{key}"]
        arrays = {name: (np.asarray(group[name]) if name in group else None) for name in _ARRAYS}
        for name in ("node_features", "edge_features", "positions", "dipole_debye", "gradient_hartree_per_angstrom"):
            if arrays[name] is not None:
                arrays[name] = arrays[name].astype(np.float64)
        scalars = {name: group.attrs[name] for name in _SCALARS}
        return OrbitalFeatures(
            **arrays,
            charge=int(scalars["charge"]),
            multiplicity=int(scalars["multiplicity"]),
            energy_hartree=float(scalars["energy_hartree"]),
            homo_hartree=float(scalars["homo_hartree"]),
            lumo_hartree=float(scalars["lumo_hartree"]),
            level=str(scalars["level"]),
            cutoff=float(scalars["cutoff"]),
        )

    def metadata(self, key: str) -> dict[str, Any]:
        """The metadata stored with `key` (e.g. name, SMILES)."""
        attrs = self._file[f"features/{key}"].attrs
        return {k.removeprefix("meta_"): attrs[k] for k in attrs if k.startswith("meta_")}
