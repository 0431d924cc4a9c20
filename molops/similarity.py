"""Morgan fingerprints, Tanimoto similarity and fast nearest-neighbour search.

`SimilarityIndex` stores a library's Morgan fingerprints as packed bits (one row of
``n_bits / 64`` uint64 words per molecule) with their bit counts, so one query against the
1.58M-molecule MOSES training set is a vectorised AND + popcount over ~400 MB, done in
cache-sized chunks spread over a thread pool (one thread per core). Tanimoto(a, b) = |a & b| / (|a| + |b| - |a & b|); two empty
fingerprints have similarity 0.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from molops.errors import InputFileError, MoleculeError
from molops.io import existing_file, to_mol
from molops.runfiles import atomic_write

__all__ = ["morgan_fingerprint", "tanimoto", "SimilarityIndex", "packed_fingerprints"]

_CHUNK_ROWS = 1 << 14  # 16k rows x 256 B = 4 MB of fingerprints per step: stays in cache


@lru_cache(maxsize=1)
def _thread_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="molops-similarity")


def _generator(radius: int, n_bits: int) -> rdFingerprintGenerator.FingerprintGenerator64:
    if not isinstance(radius, (int, np.integer)) or not isinstance(n_bits, (int, np.integer)) \
            or radius < 0 or n_bits < 64 or n_bits % 64:
        raise ValueError(f"radius ({radius!r}) must be a whole number ≥ 0 and n_bits ({n_bits!r}) a positive "
                         "multiple of 64")
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)


def morgan_fingerprint(
    molecule: str | Chem.Mol, radius: int = 2, n_bits: int = 2048
) -> DataStructs.ExplicitBitVect:
    """Morgan (ECFP-like) bit fingerprint of `molecule`."""
    return _generator(radius, n_bits).GetFingerprint(to_mol(molecule))


def tanimoto(a: str | Chem.Mol, b: str | Chem.Mol, radius: int = 2, n_bits: int = 2048) -> float:
    """Tanimoto similarity of the Morgan fingerprints of two molecules."""
    return DataStructs.TanimotoSimilarity(
        morgan_fingerprint(a, radius, n_bits), morgan_fingerprint(b, radius, n_bits)
    )


def packed_fingerprints(
    smiles: Sequence[str], radius: int = 2, n_bits: int = 2048
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Packed fingerprints of `smiles` and the (position, reason) of those that failed.

    Returns:
        (array [n_ok, n_bits // 64] uint64 in input order without the failures, failures)
    """
    generator = _generator(radius, n_bits)
    rows, failures = [], []
    for position, text in enumerate(smiles):
        try:
            bits = generator.GetFingerprintAsNumPy(to_mol(text))
        except MoleculeError as exc:
            failures.append((position, str(exc)))
            continue
        rows.append(np.packbits(bits))
    packed = np.vstack(rows) if rows else np.zeros((0, n_bits // 8), dtype=np.uint8)
    # packbits gives bytes; viewing 8 of them as one uint64 keeps popcounts unchanged.
    return np.ascontiguousarray(packed).view(np.uint64), failures


def _fingerprint_chunk(args: tuple[list[str], int, int]) -> dict[str, object]:
    smiles, radius, n_bits = args
    packed, failures = packed_fingerprints(smiles, radius, n_bits)
    return {"packed": packed, "failures": failures}


def _plain_array(values: np.ndarray) -> np.ndarray:
    """Ids as a numeric or string array, storable without pickle."""
    array = np.asarray(values.tolist())
    return array if array.dtype.kind in "iufU" else array.astype(str)


@dataclass
class SimilarityIndex:
    """Packed Morgan fingerprints of a library, searchable by Tanimoto similarity.

    Attributes:
        fingerprints: [n, n_bits // 64] uint64 packed bits.
        bit_counts: [n] number of set bits of each fingerprint.
        smiles: [n] the library's SMILES, in index order.
        ids: [n] the library's identifiers (default: positions in the input).
        failures: (input position, reason) of library entries that could not be indexed.
        source: what the index was built from (e.g. a library file's SHA-256), so a cached
            index is never used for another library; "" when unknown.
    """

    fingerprints: np.ndarray
    bit_counts: np.ndarray
    smiles: np.ndarray
    ids: np.ndarray
    radius: int = 2
    n_bits: int = 2048
    failures: tuple[tuple[int, str], ...] = ()
    source: str = ""

    def __len__(self) -> int:
        return len(self.smiles)

    @classmethod
    def from_smiles(
        cls,
        smiles: Sequence[str],
        ids: Sequence[object] | None = None,
        *,
        radius: int = 2,
        n_bits: int = 2048,
        scheduler: object = None,
        parallel: bool | None = None,
        chunk_size: int = 50_000,
        progress: bool = False,
    ) -> SimilarityIndex:
        """Build an index; unparsable SMILES are skipped and listed in `failures`.

        Args:
            parallel: fingerprint chunks on a Dask cluster (`molops.distributed`); the
                default is parallel for libraries above 100,000 molecules.
            scheduler: Dask scheduler address or client (default: a LocalCluster).
        """
        if isinstance(smiles, str):  # list("CCO") would index C, C and O
            raise ValueError(f"from_smiles takes a sequence of SMILES, got the single string {smiles[:80]!r}; "
                             "wrap it in a list")
        _generator(radius, n_bits)  # checks both before any work
        smiles = list(smiles)
        ids_array = np.asarray(ids if ids is not None else np.arange(len(smiles)), dtype=object)
        if len(ids_array) != len(smiles):
            raise ValueError(f"{len(ids_array)} ids for {len(smiles)} SMILES")
        if parallel is None:
            parallel = len(smiles) > 100_000
        starts = range(0, len(smiles), chunk_size)
        chunks = [(smiles[s : s + chunk_size], radius, n_bits) for s in starts]
        if parallel:
            from molops.distributed import map_items

            done = map_items(_fingerprint_chunk, chunks, scheduler=scheduler, progress=progress,
                             description="fingerprints", max_in_flight=4)
            failed = done[done["error"].notna()]
            if len(failed):
                raise MoleculeError(f"fingerprinting failed: {failed['error'].iloc[0]}")
            results = done.to_dict("records")
        else:
            results = [_fingerprint_chunk(chunk) for chunk in chunks]
        blocks, keep, failures = [], np.ones(len(smiles), dtype=bool), []
        for start, result in zip(starts, results):
            blocks.append(result["packed"])
            for position, reason in result["failures"]:
                keep[start + position] = False
                failures.append((start + position, reason))
        words = n_bits // 64
        fingerprints = np.vstack(blocks) if blocks else np.zeros((0, words), dtype=np.uint64)
        return cls(
            fingerprints=fingerprints,
            bit_counts=np.bitwise_count(fingerprints).sum(axis=1, dtype=np.int32),
            smiles=np.asarray(smiles, dtype=object)[keep],
            ids=ids_array[keep],
            radius=radius,
            n_bits=n_bits,
            failures=tuple(failures),
        )

    def _query_bits(self, query: str | Chem.Mol) -> np.ndarray:
        bits = _generator(self.radius, self.n_bits).GetFingerprintAsNumPy(to_mol(query))
        return np.packbits(bits).view(np.uint64)

    def similarities(self, query: str | Chem.Mol) -> np.ndarray:
        """Tanimoto similarity of `query` to every library molecule, [n] float32."""
        q = self._query_bits(query)
        q_count = int(np.bitwise_count(q).sum())
        out = np.empty(len(self), dtype=np.float32)

        def chunk(start: int) -> None:
            block = self.fingerprints[start : start + _CHUNK_ROWS]
            common = np.bitwise_count(block & q).sum(axis=1, dtype=np.int32)
            union = self.bit_counts[start : start + _CHUNK_ROWS] + q_count - common
            target = out[start : start + len(block)]
            with np.errstate(invalid="ignore", divide="ignore"):  # empty fingerprints: set to 0 below
                np.divide(common, union, out=target, where=union > 0)
            target[union == 0] = 0.0

        starts = range(0, len(self), _CHUNK_ROWS)
        if len(starts) > 1:
            list(_thread_pool().map(chunk, starts))  # numpy releases the GIL in these loops
        else:
            for start in starts:
                chunk(start)
        return out

    def search(
        self, query: str | Chem.Mol, k: int = 10, min_similarity: float = 0.0
    ) -> pd.DataFrame:
        """The `k` most similar library molecules to `query` (ties broken by index order).

        Returns:
            DataFrame with ``rank`` (1 = most similar), ``id``, ``smiles``, ``similarity``.
        """
        sims = self.similarities(query)
        if not isinstance(k, (int, np.integer)) or k < 1 or not 0.0 <= min_similarity <= 1.0:  # NaN too
            raise ValueError(f"k ({k}) must be ≥ 1 and min_similarity ({min_similarity}) in [0, 1]")
        k = min(k, len(sims))
        if k <= 0:
            return pd.DataFrame(columns=["rank", "id", "smiles", "similarity"])
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.lexsort((top, -sims[top]))]
        top = top[sims[top] >= min_similarity]
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(top) + 1),
                "id": self.ids[top],
                "smiles": self.smiles[top],
                "similarity": sims[top].astype(float),
            }
        )

    def save(self, path: str | Path) -> Path:
        """Write the index to an uncompressed .npz file (fast to load)."""
        # Written through a rename: a kill mid-write (the MOSES index is ~800 MB) or two
        # processes building the same cache never leave a torn file behind.
        with atomic_write(path) as handle:  # a file handle: numpy must not append '.npz'
            np.savez(
                handle,
                fingerprints=self.fingerprints,
                bit_counts=self.bit_counts,
                smiles=self.smiles.astype(str),
                ids=_plain_array(self.ids),
                radius=self.radius,
                n_bits=self.n_bits,
                source=self.source,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SimilarityIndex:
        """Read an index written by `save`.

        Raises:
            InputFileError: missing file or not an index file.
        """
        path = existing_file(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    fingerprints=data["fingerprints"],
                    bit_counts=data["bit_counts"],
                    smiles=data["smiles"].astype(object),
                    ids=data["ids"],
                    radius=int(data["radius"]),
                    n_bits=int(data["n_bits"]),
                    source=str(data["source"]) if "source" in data.files else "",
                )
        except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # e.g. a truncated file
            raise InputFileError(f"{path}: not a molops similarity index: {exc}") from None
