"""Featurising many molecules (Dask, cached, resumable) and the QM9 dataset.

`featurize_cached` answers a repeated request from the HDF5 cache. `featurize_many` maps the
cheap calculation over a collection with `molops.distributed.map_items`: workers compute,
this process writes each result to the cache as it arrives and journals the row, so a killed
run restarted with the same output file redoes nothing that finished; failures are rows with
an ``error``.

QM9 comes from the `qm9pack` package's CSV files (B3LYP/6-31G(2df,p) geometries and
properties, Ramakrishnan et al. 2014), read directly because the package's own import fails
on current setuptools. Targets are converted to this toolkit's units: energies in Hartree,
orbital energies and gap in eV, dipole in Debye, polarisability in Bohr³.

The split is fixed and independent of any random-number library: molecules are ordered by
SHA-256 of ``"qm9-<index>"`` (index = QM9's own 1-based id); the first 110,000 are
``train``, the next 10,000 ``val``, the remaining 10,831 ``test``. Learning-curve subsets
take the first N of ``train`` in that order.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from ase import Atoms
from pyscf.data.nist import HARTREE2EV
from rdkit import Chem

from molops.data import package_dir
from molops.distributed import Scheduler, finished_rows, map_items, read_journal
from molops.errors import InputFileError
from molops.runfiles import check_run_settings
from quantum_features.cache import FeatureCache, cache_key
from quantum_features.calc import prepare_atoms
from quantum_features.errors import QuantumError
from quantum_features.features import DEFAULT_CUTOFF, OrbitalFeatures, featurize
from quantum_features.levels import DEFAULT_LEVEL

log = logging.getLogger(__name__)

__all__ = [
    "featurize_cached",
    "featurize_many",
    "load_qm9",
    "qm9_atoms",
    "qm9_split",
    "qm9_subset",
    "qm9_graphs",
    "qm9_graph",
    "QM9_MODEL_TARGETS",
    "QM9_TARGETS",
    "SPLIT_SIZES",
]

SPLIT_SIZES = {"train": 110_000, "val": 10_000}  # test: the rest (10,831)

#: Output column -> (qm9pack column, factor to this toolkit's unit).
QM9_TARGETS: dict[str, tuple[str, float]] = {
    "u0_hartree": ("InternalEnergy_0K_au", 1.0),
    "u298_hartree": ("InternalEnergy_298K_au", 1.0),
    "h298_hartree": ("Enthalphy_298K_au", 1.0),
    "g298_hartree": ("GibbsFreeEnergy_298K_au", 1.0),
    "homo_ev": ("HOMO_au", HARTREE2EV),
    "lumo_ev": ("LUMO_au", HARTREE2EV),
    "gap_ev": ("HOMO_LUMO_gap_au", HARTREE2EV),
    "dipole_debye": ("Dipole_debye", 1.0),
    "polarizability_bohr3": ("Polarizability_bohr3", 1.0),
    "r2_bohr2": ("R2_bohr2", 1.0),
    "zpve_hartree": ("ZPVE_au", 1.0),
    "cv_cal_mol_k": ("Heatcapacity_Cv_cal_mol_K", 1.0),
}


# ------------------------------------------------------------------------------------------
# Featurising with the cache
# ------------------------------------------------------------------------------------------
def featurize_cached(
    molecule: str | Chem.Mol | Atoms,
    cache: FeatureCache,
    *,
    charge: int | None = None,
    multiplicity: int | None = None,
    level: str = DEFAULT_LEVEL,
    cutoff: float = DEFAULT_CUTOFF,
    open_shell: str = "uhf",
    **calc_options: Any,
) -> OrbitalFeatures:
    """`featurize` through `cache`: a structure already there is loaded, not recomputed.

    ``cache.hits`` and ``cache.misses`` count what happened.
    """
    atoms = prepare_atoms(molecule, charge, multiplicity)
    key = cache_key(atoms, level, cutoff, open_shell)
    if key in cache:
        cached = cache.get(key)
        # The key leaves out `gradient`: an entry stored without one does not answer a request for it.
        if not calc_options.get("gradient") or cached.gradient_hartree_per_angstrom is not None:
            cache.hits += 1
            return cached
    cache.misses += 1
    features = featurize(atoms, level=level, cutoff=cutoff, open_shell=open_shell, **calc_options)
    cache.put(key, features, {"smiles": atoms.info.get("smiles")})
    return features


def _featurize_item(item: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Worker side: structure -> features; small metadata travels with them."""
    atoms = prepare_atoms(item, options.get("charge"), options.get("multiplicity"))
    calc_options = {k: v for k, v in options.items() if k not in ("charge", "multiplicity")}
    features = featurize(atoms, **calc_options)
    return {
        "cache_key": _item_cache_key(atoms, options),
        "smiles": atoms.info.get("smiles"),
        "n_atoms": len(atoms),
        "energy_hartree": features.energy_hartree,
        "features": features,
    }


def _item_cache_key(atoms: Atoms, options: dict[str, Any]) -> str:
    """The cache key of a prepared structure under `featurize_many` options (one definition: the
    worker that stores features and the resume check that compares them must agree)."""
    return cache_key(atoms, options.get("level", DEFAULT_LEVEL), options.get("cutoff", DEFAULT_CUTOFF),
                     options.get("open_shell", "uhf"))


def _keep_journal_rows(journal: Path, keep: Callable[[dict[str, Any]], bool]) -> None:
    """Rewrite `journal` with only the rows for which ``keep(row)`` is true (if any are dropped)."""
    rows = read_journal(journal)
    kept = [row for row in rows if keep(row)]
    if len(kept) != len(rows):
        journal.write_text("".join(json.dumps(row) + "\n" for row in kept))


def _forget_changed_structures(journal: Path, rows: dict[Any, dict[str, Any]], keys: Sequence[Any],
                               items: Sequence[Any], options: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    """Forget journal rows of `ase.Atoms` items whose structure differs from the one featurised
    under the same key (e.g. a grown label file, an edited input): they are computed again
    instead of returning another structure's features. (SMILES items are embedded on the workers.)

    Args:
        rows: the journal's finished rows by key (`finished_rows`), read once by the caller.

    Returns:
        `rows` without the forgotten keys.
    """
    if not rows:
        return rows
    changed = set()
    for key, item in zip(keys, items):
        row = rows.get(key)
        if isinstance(item, Atoms) and row is not None and row.get("cache_key") is not None:
            atoms = prepare_atoms(item, options.get("charge"), options.get("multiplicity"))
            if _item_cache_key(atoms, options) != row["cache_key"]:
                changed.add(key)
    if changed:
        log.warning("%s: %d structures differ from the ones featurised under their names; computing them again",
                    journal, len(changed))
        _keep_journal_rows(journal, lambda row: row["key"] not in changed)
    return {key: row for key, row in rows.items() if key not in changed}


def _reconcile_journal(journal: Path, cache: FeatureCache) -> None:
    """Forget journal rows whose features are not in the cache (e.g. a hard kill landed
    between the two writes), so that those molecules are computed again."""
    _keep_journal_rows(journal, lambda row: row.get("error") is not None or row.get("cache_key") in cache)


def _all_cached(rows: dict[Any, dict[str, Any]], keys: Sequence[Any], out: Path) -> bool:
    """Whether every key has a journal row (in `rows`, the finished rows by key) whose
    features (unless it failed) are in `out`."""
    if not rows or not out.exists():
        return False
    if any(key not in rows for key in keys):
        return False
    try:
        with FeatureCache(out, mode="r") as cache:
            return all(rows[key].get("error") is not None or rows[key].get("cache_key") in cache for key in keys)
    except InputFileError:  # locked by a writer, or unreadable: take the writing path and its error
        return False


def featurize_many(
    molecules: Sequence[str | Chem.Mol | Atoms] | pd.Series,
    out: str | Path,
    *,
    names: Sequence[str] | None = None,
    scheduler: Scheduler = None,
    journal: str | Path | None = None,
    progress: bool = False,
    n_workers: int | None = None,
    processes: bool = True,
    **options: Any,
) -> pd.DataFrame:
    """Featurise a collection into the HDF5 cache `out`, in parallel and resumably.

    Args:
        molecules: SMILES, RDKit Mols or `ase.Atoms` (keys are their positions, or `names`).
        out: HDF5 feature cache written incrementally.
        journal: JSON-lines record of finished rows (default: ``<out>.journal.jsonl``); resuming
            it with other `options` (e.g. another level) raises `QuantumError` instead of
            returning rows computed under the old ones.
        scheduler: Dask scheduler address or client (default: a LocalCluster).
        options: `featurize` options (level, cutoff, gradient, charge, multiplicity, ...).

    Returns:
        One row per molecule: ``key``, ``cache_key``, ``smiles``, ``n_atoms``,
        ``energy_hartree``, ``error``, ``seconds``.
    """
    out = Path(out)
    journal = Path(journal) if journal is not None else out.with_name(out.name + ".journal.jsonl")
    defaults = {"level": DEFAULT_LEVEL, "cutoff": DEFAULT_CUTOFF, "gradient": False}
    check_run_settings(journal, {**defaults, **options}, QuantumError)
    items = list(molecules)
    keys = list(names) if names is not None else list(range(len(items)))
    rows = _forget_changed_structures(journal, finished_rows(journal), keys, items, options)
    # When everything is already cached, only read: several jobs (e.g. two ensemble members
    # training at once) can then share one cache, which HDF5 locks while it is open for writing.
    mode = "r" if _all_cached(rows, keys, out) else "a"
    with FeatureCache(out, mode=mode) as cache:
        if mode == "a":
            _reconcile_journal(journal, cache)

        def store(row: dict[str, Any]) -> dict[str, Any]:
            features = row.pop("features", None)
            if features is not None:
                cache.put(row["cache_key"], features, {"smiles": row.get("smiles"), "name": str(row["key"])})
            return row

        frame = map_items(
            partial(_featurize_item, options=options),
            items,
            keys=keys,
            scheduler=scheduler,
            journal=journal,
            progress=progress,
            description="featurize",
            n_workers=n_workers,
            processes=processes,
            on_result=store,
        )
    return frame


# ------------------------------------------------------------------------------------------
# QM9
# ------------------------------------------------------------------------------------------
def _qm9_files() -> list[Path]:
    directory = package_dir("qm9pack") / "data"
    files = sorted(directory.glob("qm9_part*.csv"))
    if not files:
        raise InputFileError(f"{directory}: no qm9_part*.csv files in the qm9pack package")
    return files


def load_qm9(limit: int | None = None) -> pd.DataFrame:
    """QM9 (130,831 molecules) with geometries and targets in this toolkit's units.

    Returns:
        DataFrame indexed by QM9 id with ``smiles``, ``n_atoms``, ``elements`` and
        ``positions_angstrom`` (as stored, Python-literal strings; see `qm9_atoms`), the
        `QM9_TARGETS` columns
        and ``split`` (train/val/test).
    """
    source_columns = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang"] + [c for c, _ in QM9_TARGETS.values()]
    parts = []
    for path in _qm9_files():
        parts.append(pd.read_csv(path, usecols=source_columns, nrows=None if limit is None else limit))
        if limit is not None and sum(map(len, parts)) >= limit:
            break
    raw = pd.concat(parts, ignore_index=True).sort_values("Index")
    if limit is not None:
        raw = raw.iloc[:limit]
    frame = pd.DataFrame(
        {
            "smiles": raw["SMILES"].to_numpy(),
            "n_atoms": raw["N_atoms"].to_numpy(),
            "elements": raw["Elements"].to_numpy(),
            "positions_angstrom": raw["XYZ_Ang"].to_numpy(),
        },
        index=pd.Index(raw["Index"].to_numpy(), name="qm9_id"),
    )
    for column, (source, factor) in QM9_TARGETS.items():
        frame[column] = raw[source].to_numpy(dtype=float) * factor
    frame["split"] = qm9_split().reindex(frame.index)
    return frame


def qm9_atoms(row: pd.Series) -> Atoms:
    """The QM9 geometry of one `load_qm9` row as neutral singlet `ase.Atoms`."""
    # Python literals, not JSON: some entries are written like "0." which JSON rejects.
    elements = ast.literal_eval(row["elements"])
    positions = np.asarray(ast.literal_eval(row["positions_angstrom"]), dtype=float)
    atoms = Atoms(symbols=elements, positions=positions)
    atoms.info.update(charge=0, multiplicity=1, smiles=row["smiles"], qm9_id=int(row.name))
    return atoms


@lru_cache(maxsize=1)
@lru_cache(maxsize=1)
def _qm9_hash_order() -> tuple[int, ...]:
    ids = pd.concat([pd.read_csv(path, usecols=["Index"])["Index"] for path in _qm9_files()]).to_numpy()
    return tuple(sorted(ids.tolist(), key=lambda i: hashlib.sha256(f"qm9-{i}".encode()).hexdigest()))


def qm9_split() -> pd.Series:
    """train/val/test label of every QM9 id (see the module docstring for the rule)."""
    order = _qm9_hash_order()
    n_train, n_val = SPLIT_SIZES["train"], SPLIT_SIZES["val"]
    labels = ["train"] * n_train + ["val"] * n_val + ["test"] * (len(order) - n_train - n_val)
    return pd.Series(labels, index=pd.Index(order, name="qm9_id"), name="split").sort_index()


def qm9_subset(split: str, n: int | None = None) -> list[int]:
    """The first `n` QM9 ids of `split` in the fixed hash order (nested: 1,000 ⊂ 10,000).

    QM9's own ids grow with molecule size, so "the first N ids" would be a biased sample;
    the hash order is not.
    """
    if split not in SPLIT_SIZES and split != "test":
        raise ValueError(f"split {split!r}: expected 'train', 'val' or 'test'")
    order = _qm9_hash_order()
    n_train, n_val = SPLIT_SIZES["train"], SPLIT_SIZES["val"]
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(order))}
    start, stop = bounds[split]
    ids = list(order[start:stop])
    return ids if n is None else ids[:n]


#: Training-target name -> `load_qm9` column (units: Hartree, eV, eV, eV, Debye).
QM9_MODEL_TARGETS: dict[str, str] = {
    "energy": "u0_hartree",
    "homo": "homo_ev",
    "lumo": "lumo_ev",
    "gap": "gap_ev",
    "dipole": "dipole_debye",
}


def qm9_graphs(
    split: str,
    n: int | None,
    cache_path: str | Path,
    *,
    scheduler: Scheduler = None,
    progress: bool = False,
) -> list:
    """QM9 graphs with targets for training/evaluation, featurising what the cache lacks.

    The first `n` molecules of `split` (`qm9_subset`) are featurised into `cache_path`
    (resumable: see `featurize_many`), then loaded as `Data` objects carrying ``qm9_id`` and
    ``y_<target>`` for each `QM9_MODEL_TARGETS` entry (``y_energy`` float64 Hartree, the
    rest float32 in eV/Debye). Molecules whose calculation failed are left out (and listed
    in the cache's journal with the reason).
    """
    frame = load_qm9().loc[qm9_subset(split, n)]
    atoms = {int(qm9_id): qm9_atoms(row) for qm9_id, row in frame.iterrows()}
    # A finished cache is only read (several trainings may share it): see `featurize_many`.
    result = featurize_many(list(atoms.values()), cache_path, names=list(atoms), scheduler=scheduler,
                            progress=progress)
    result = result.set_index("key")
    graphs = []
    with FeatureCache(cache_path, mode="r") as cache:
        for qm9_id, row in frame.iterrows():
            key = result.loc[int(qm9_id)]
            if isinstance(key.get("error"), str):
                continue
            graphs.append(qm9_graph(cache.get(key["cache_key"]), row))
    return graphs


def qm9_graph(features: OrbitalFeatures, row: pd.Series):
    """A `Data` graph of `features` with the targets of QM9 row `row` (``y_<target>``)."""
    data = features.to_data()
    data.qm9_id = torch.tensor([int(row.name)])
    for name, column in QM9_MODEL_TARGETS.items():
        dtype = torch.float64 if name == "energy" else torch.float32
        setattr(data, f"y_{name}", torch.tensor([row[column]], dtype=dtype))
    return data
