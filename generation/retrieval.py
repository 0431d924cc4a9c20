"""Exemplar database and retriever of RetMol: similar molecules that already do better.

`ExemplarDatabase` holds molecules, their Morgan fingerprints (r = 2, 2048 bits, via
`molops.similarity.SimilarityIndex`) and a table of their properties. `retrieve(query, k,
allowed)` returns the `k` molecules most similar (Tanimoto) to the query among the rows that
`allowed` marks, e.g. those whose QED beats the query's; `add` puts generated molecules in,
so that later iterations can retrieve them (RetMol's database update).

The default database is the MOSES training set with precomputed QED, SA score, Crippen logP
and penalised logP (`moses_properties`), shipped in ``generation/data/`` as float16 arrays in
MOSES order (12.7 MB; rebuilt by ``python -m generation.retrieval --build``, ~30 min on 2
cores); its fingerprint index is molops' MOSES index, built once (~90 s) and cached.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem

from generation.errors import GenerationError
from molops.data import moses_smiles
from molops.errors import ChemToolkitError
from molops.runfiles import atomic_write
from molops.similarity import SimilarityIndex

__all__ = ["PROPERTY_COLUMNS", "ExemplarDatabase", "molecule_properties", "moses_properties"]

log = logging.getLogger(__name__)

#: Precomputed columns (QED and SA unitless, logP and penalised logP in log units).
PROPERTY_COLUMNS = ("qed", "sa_score", "logp", "penalized_logp")


def molecule_properties(smiles: Sequence[str]) -> pd.DataFrame:
    """QED, SA score, Crippen logP and penalised logP of each SMILES (NaN where unparsable)."""
    from rdkit.Chem import QED, Crippen

    from molops.descriptors import penalized_logp, sa_score

    rows = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s) if isinstance(s, str) else None
        if mol is None:
            rows.append((np.nan,) * len(PROPERTY_COLUMNS))
            continue
        try:
            rows.append((QED.qed(mol), sa_score(mol), Crippen.MolLogP(mol), penalized_logp(mol)))
        except (ChemToolkitError, ValueError, RuntimeError) as exc:
            log.debug("%s: properties failed: %s", s, exc)
            rows.append((np.nan,) * len(PROPERTY_COLUMNS))
    return pd.DataFrame(rows, columns=list(PROPERTY_COLUMNS))


def _properties_chunk(smiles: list[str]) -> dict[str, list[float]]:
    return molecule_properties(smiles).to_dict("list")


def moses_properties_path() -> Path:
    """The shipped property table of the MOSES training set."""
    return Path(__file__).with_name("data") / "moses_train_properties.npz"


def build_moses_properties(
    path: Path | None = None, *, scheduler: object = None, n_workers: int | None = None, progress: bool = True
) -> Path:
    """Compute `PROPERTY_COLUMNS` for the MOSES training set on Dask (resumable journal)."""
    from molops.distributed import map_items

    path = path or moses_properties_path()
    smiles = moses_smiles("train").tolist()
    chunk = 20_000
    chunks = {start: smiles[start : start + chunk] for start in range(0, len(smiles), chunk)}
    journal = path.with_name(path.stem + ".journal.jsonl")  # beside the output: survives a lost cache
    done = map_items(_properties_chunk, chunks, scheduler=scheduler, n_workers=n_workers, journal=journal,
                     retry_failed=True,  # e.g. a killed worker: a rerun tries the chunk again
                     progress=progress, description="MOSES properties", max_in_flight=4)
    failed = done[done["error"].notna()]
    if len(failed):
        raise GenerationError(f"MOSES properties: chunk {failed['key'].iloc[0]} failed: {failed['error'].iloc[0]}")
    done = done.sort_values("key")
    # float16 keeps QED to ~5e-4 and SA/logP to ~8e-3 (plenty for retrieval), at 12.7 MB.
    arrays = {c: np.concatenate([np.asarray(v, dtype=np.float16) for v in done[c]]) for c in PROPERTY_COLUMNS}
    with atomic_write(path) as handle:  # a kill mid-write leaves no torn table
        np.savez_compressed(handle, n=len(smiles), **arrays)
    journal.unlink(missing_ok=True)
    return path


def moses_properties() -> pd.DataFrame:
    """Properties of the MOSES training molecules, in MOSES order (cached file).

    Raises:
        GenerationError: the cache is missing; the message gives the command that builds it.
    """
    path = moses_properties_path()
    if not path.exists():
        raise GenerationError(
            f"the MOSES property table {path} is missing (it ships with the package); rebuild it with "
            "`python -m generation.retrieval --build` (about 30 min on 2 cores)"
        )
    with np.load(path) as data:
        frame = pd.DataFrame({c: data[c].astype(np.float64) for c in PROPERTY_COLUMNS})
        if int(data["n"]) != len(frame):
            raise GenerationError(f"{path} is inconsistent: {int(data['n'])} molecules announced, {len(frame)} stored")
    return frame


#: SMILES queries whose similarities an `ExemplarDatabase` keeps (about 6 MB each for MOSES).
SIMILARITY_CACHE_QUERIES = 16


class ExemplarDatabase:
    """Molecules, fingerprints and properties; retrieval of similar, better molecules."""

    def __init__(self, index: SimilarityIndex, properties: pd.DataFrame) -> None:
        if len(index) == 0:
            raise GenerationError("the exemplar database is empty: give it at least one readable molecule")
        if len(index) != len(properties):
            raise GenerationError(f"{len(index)} indexed molecules but {len(properties)} property rows")
        self._indexes = [index]
        self._properties = [properties.reset_index(drop=True)]
        self._known = None  # canonical SMILES set, built on first `add`
        self._joined: tuple[np.ndarray, pd.DataFrame] | None = None  # rebuilt after `add`
        # Per-index similarities of recent SMILES queries (the lead and the carried molecules
        # are queried every iteration): indexes are only ever appended, so a cached part stays
        # valid and only indexes added since are scanned.
        self._similarity_cache: dict[str, list[np.ndarray]] = {}

    @classmethod
    def from_smiles(cls, smiles: Sequence[str], properties: pd.DataFrame | None = None) -> ExemplarDatabase:
        """A database of the given molecules (properties computed when not given)."""
        index = SimilarityIndex.from_smiles(list(smiles), parallel=False)
        if index.failures:
            position, reason = index.failures[0]
            raise GenerationError(f"exemplar {smiles[position]!r} cannot be read: {reason}")
        return cls(index, properties if properties is not None else molecule_properties(list(smiles)))

    @classmethod
    def from_file(
        cls, path: str | Path, *, smiles_column: str | None = None, log: Callable[[str], object] = lambda message: None
    ) -> ExemplarDatabase:
        """A database of a molecule file's molecules that the generator can read.

        Rows that do not parse, or hold a token the generator never learnt (e.g. [Xe], [Si]),
        are skipped; `log` gets how many and the first reason.

        Raises:
            InputFileError: the file is missing or unreadable.
            GenerationError: no row of the file can serve as an exemplar.
        """
        from generation.tokenizer import SmilesTokenizer
        from molops.io import read_molecules

        frame = read_molecules(path, smiles_column=smiles_column)
        tokenizer = SmilesTokenizer()
        usable, reasons = [], []
        for record, mol, error in zip(frame["record"], frame["mol"], frame["error"]):
            if error is not None:
                reasons.append(error)
                continue
            smiles = Chem.MolToSmiles(mol, isomericSmiles=False)  # the generator's own notation
            try:
                tokenizer.encode(smiles)
            except GenerationError as exc:
                reasons.append(f"{path}, record {record}: {exc}")
                continue
            usable.append(smiles)
        if reasons:
            log(f"{path}: {len(reasons)} of {len(frame)} rows skipped as exemplars; first: {reasons[0]}")
        if not usable:
            raise GenerationError(f"{path}: no row can serve as an exemplar"
                                  + (f" (first problem: {reasons[0]})" if reasons else " (no molecules)"))
        return cls.from_smiles(usable)

    @classmethod
    def moses(cls) -> ExemplarDatabase:
        """The MOSES training set (1.58M) with its cached index and properties."""
        from molops.library import load_library_index

        return cls(load_library_index("moses"), moses_properties())

    def pristine_copy(self) -> ExemplarDatabase:
        """A database of the molecules this one was built with (later `add`s left out).

        It shares their arrays (nothing is copied) and grows on its own: one per lead, so that
        molecules generated for one lead never steer another.
        """
        return ExemplarDatabase(self._indexes[0], self._properties[0])

    def __len__(self) -> int:
        return sum(len(i) for i in self._indexes)

    def _join(self) -> tuple[np.ndarray, pd.DataFrame]:
        if self._joined is None:
            smiles = np.concatenate([i.smiles for i in self._indexes])
            properties = self._properties[0] if len(self._properties) == 1 else pd.concat(self._properties, ignore_index=True)
            self._joined = (smiles, properties)
        return self._joined

    @property
    def smiles(self) -> np.ndarray:
        """SMILES of every molecule, in database order."""
        return self._join()[0]

    @property
    def properties(self) -> pd.DataFrame:
        """`PROPERTY_COLUMNS` (and any caller-given columns) of every molecule, in order."""
        return self._join()[1]

    def add(self, smiles: Sequence[str], properties: pd.DataFrame | None = None) -> int:
        """Add molecules not yet in the database; returns how many were new."""
        if self._known is None:
            self._known = set(self.smiles.tolist())
        fresh = [i for i, s in enumerate(smiles) if s not in self._known]
        fresh = list(dict((smiles[i], i) for i in fresh).values())  # first of duplicates
        if not fresh:
            return 0
        new = [smiles[i] for i in fresh]
        rows = properties.iloc[fresh] if properties is not None else molecule_properties(new)
        index = SimilarityIndex.from_smiles(new, parallel=False)
        keep = np.ones(len(new), dtype=bool)
        for position, _ in index.failures:
            keep[position] = False
        self._indexes.append(index)
        self._properties.append(rows.reset_index(drop=True)[keep].reset_index(drop=True))
        self._known.update(np.asarray(new)[keep].tolist())
        self._joined = None
        return int(keep.sum())

    def similarities(self, query: str | Chem.Mol) -> np.ndarray:
        """Tanimoto similarity of `query` to every molecule, in database order."""
        if not isinstance(query, str):
            return np.concatenate([i.similarities(query) for i in self._indexes])
        parts = self._similarity_cache.pop(query, [])
        parts += [index.similarities(query) for index in self._indexes[len(parts):]]
        self._similarity_cache[query] = parts  # most recent last
        while len(self._similarity_cache) > SIMILARITY_CACHE_QUERIES:
            del self._similarity_cache[next(iter(self._similarity_cache))]
        return np.concatenate(parts)

    def retrieve(
        self, query: str | Chem.Mol, k: int = 10, allowed: np.ndarray | None = None, *, exclude_identical: bool = True
    ) -> pd.DataFrame:
        """The `k` molecules most similar to `query` among the `allowed` rows.

        Args:
            allowed: boolean mask over the database rows (e.g. ``db.properties["qed"] > 0.8``);
                None allows every row.
            exclude_identical: skip molecules identical to the query (similarity 1).

        Returns:
            DataFrame of ``smiles``, ``similarity`` and the property columns, most similar
            first; fewer than `k` rows (possibly none) when fewer molecules are allowed.
        """
        sims = self.similarities(query)
        mask = np.ones(len(sims), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
        if mask.shape != sims.shape:
            raise GenerationError(f"allowed mask has {mask.shape[0]} rows, the database {len(sims)}")
        if exclude_identical:
            mask = mask & (sims < 1.0)
        candidates = np.flatnonzero(mask)
        k = min(k, len(candidates))
        if k == 0:
            return pd.DataFrame(columns=["smiles", "similarity", *PROPERTY_COLUMNS])
        top = candidates[np.argpartition(-sims[candidates], k - 1)[:k]]
        top = top[np.lexsort((top, -sims[top]))]
        frame = self.properties.iloc[top].reset_index(drop=True)
        frame.insert(0, "similarity", sims[top].astype(float))
        frame.insert(0, "smiles", self.smiles[top])
        return frame


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the MOSES property table of the exemplar database.")
    parser.add_argument("--build", action="store_true")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes")
    args = parser.parse_args()
    if args.build:
        print(f"wrote {build_moses_properties(scheduler=args.scheduler, n_workers=args.workers)}")


if __name__ == "__main__":
    main()
