"""Property prediction with the shipped (or any trained) orbital-feature network.

`predict_properties` takes SMILES, RDKit Mols or `ase.Atoms`, runs the cheap calculation
for each (SMILES and Mols without 3D coordinates get their lowest MMFF94 conformer), and
returns one row per input with the ensemble mean and its spread:

=====================  =========================================================
``energy_hartree``     U0-like total energy at 0 K (Hartree; QM9's B3LYP level)
``homo_ev``            HOMO energy (eV)          ``lumo_ev``  LUMO energy (eV)
``gap_ev``             HOMO–LUMO gap (eV)        ``dipole_debye``  |μ| (Debye)
``*_std_*``            standard deviation across the ensemble members (same unit)
``energy_cheap_hartree``  the cheap (HF/STO-3G) energy the Δ-model builds on
``warning``            why a prediction is an extrapolation (larger than QM9, charged or open
                       shell) or doubtful (shipped ensemble's spread above its 99th percentile
                       on unseen QM9 molecules, see `quantum_features.spread`)
``error``              why a row has no prediction (bad SMILES, unsupported element …)
=====================  =========================================================

A column is averaged over the members trained on its target (`OrbitalPropertyNet.target_names`):
a model trained on U0 alone, or fine-tuned on conformer energies, leaves the other columns NaN.

The spread of an ensemble of independently trained networks is the uncertainty estimate:
it grows away from the training data but is not a calibrated error bar. Elements the
networks never saw in training are refused (an error row) rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from ase import Atoms
from ase.data import chemical_symbols
from rdkit import Chem
from torch_geometric.data import Batch
from tqdm.auto import tqdm

from molops.errors import ChemToolkitError
from molops.table import object_column
from quantum_features.calc import prepare_atoms
from quantum_features.features import featurize
from quantum_features.model import ELEMENTS, OrbitalPropertyNet
from quantum_features.spread import UNIT_SYMBOLS, SpreadReference, load_spread_reference
from quantum_features.train import load_model

__all__ = ["predict_properties", "predict_graphs", "default_model_paths", "load_ensemble", "OUTPUT_COLUMNS", "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Model output -> (mean column, ensemble-spread column).
OUTPUT_COLUMNS = {"energy": ("energy_hartree", "energy_std_hartree"), "homo": ("homo_ev", "homo_std_ev"),
            "lumo": ("lumo_ev", "lumo_std_ev"), "gap": ("gap_ev", "gap_std_ev"),
            "dipole_norm": ("dipole_debye", "dipole_std_debye")}
QM9_MAX_HEAVY_ATOMS = 9


def default_model_paths() -> list[Path]:
    """The shipped ensemble members (``quantum_features/weights/qm9_orbital_*.pt``)."""
    paths = sorted(WEIGHTS_DIR.glob("qm9_orbital_*.pt"))
    if not paths:
        raise FileNotFoundError(f"{WEIGHTS_DIR}: no shipped weights (qm9_orbital_*.pt)")
    return paths


def check_trained_elements(models: Sequence[OrbitalPropertyNet], numbers: Sequence[int], label: str) -> None:
    """Refuse a structure with elements some model never saw in training (its output would be a guess).

    Raises:
        ChemToolkitError: naming the elements, the structure and the elements the models know.
    """
    trained = set.intersection(*[{z for z, ok in zip(ELEMENTS, m.trained_elements.tolist()) if ok} for m in models])
    unknown = sorted({int(z) for z in numbers} - trained)
    if unknown:
        names = ", ".join(chemical_symbols[z] for z in unknown)
        known = ", ".join(chemical_symbols[z] for z in sorted(trained))
        raise ChemToolkitError(f"{label}: element(s) {names} are outside the model's training data ({known})")


def split_refused_molecules(models: Sequence[OrbitalPropertyNet], labels: Any) -> tuple[Any, dict[str, str]]:
    """`labels` (a LabelSet) without the molecules `check_trained_elements` refuses, and the
    reason per refused molecule_id: benchmarks compare every method on the molecules kept."""
    refused: dict[str, str] = {}
    for i in range(len(labels)):
        molecule = labels.frame["molecule_id"].iloc[i]
        if molecule in refused:
            continue
        try:
            check_trained_elements(models, labels.numbers[i], molecule)
        except ChemToolkitError as exc:
            refused[molecule] = str(exc)
    kept = labels.subset(np.flatnonzero(~labels.frame["molecule_id"].isin(list(refused)).to_numpy()))
    return kept, refused


def load_ensemble(models: Any = None) -> list[OrbitalPropertyNet]:
    """Models from None (the shipped ensemble), a path, a model, or a list of either.

    A model file is read once per process and the loaded model reused while the file is
    unchanged (same modification time and size): building the e3nn modules takes ~1.5 s per
    model, which every `predict_properties` call, and every Dask task of a screen, would pay
    again. The models returned are shared; do not train or modify them in place.
    """
    if models is None:
        models = default_model_paths()
    if isinstance(models, (str, Path, OrbitalPropertyNet)):
        models = [models]
    loaded = [m if isinstance(m, OrbitalPropertyNet) else _load_unchanged(m) for m in models]
    if not loaded:
        raise ValueError("an empty list of models")
    for m in loaded:
        m.eval()
    return loaded


def _load_unchanged(path: str | Path) -> OrbitalPropertyNet:
    resolved = Path(path).resolve()
    if not resolved.is_file():
        return load_model(path)  # raises its clear error for a missing file
    stat = resolved.stat()
    return _load_file_version(str(resolved), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load_file_version(path: str, mtime_ns: int, size: int) -> OrbitalPropertyNet:
    """`load_model` keyed by the file's version (the key's mtime/size make a rewritten file a miss)."""
    return load_model(path)


def _label(molecule: Any, position: int) -> str:
    if isinstance(molecule, str):
        return molecule
    if isinstance(molecule, Atoms):
        return molecule.info.get("smiles") or molecule.get_chemical_formula()
    if isinstance(molecule, Chem.Mol):
        return Chem.MolToSmiles(Chem.RemoveHs(molecule)) if molecule.GetNumAtoms() else f"molecule {position}"
    return f"input {position}"


def _predict_batch(ensemble: list[OrbitalPropertyNet], ready: list[tuple[int, Any]], rows: list[dict[str, Any]]) -> None:
    """Fill `rows` with the ensemble's mean and spread for the featurised molecules in `ready`."""
    batch = Batch.from_data_list([data for _, data in ready])
    with torch.no_grad():
        outputs = [model(batch) for model in ensemble]
    for name, (column, std_column) in OUTPUT_COLUMNS.items():
        # Only members trained on this target count (e.g. a U0-only or conformer model has no
        # trained HOMO head); with none, the column stays NaN rather than holding noise.
        target = "dipole" if name == "dipole_norm" else name
        members = [o for model, o in zip(ensemble, outputs) if target in model.target_names]
        if not members:
            values = np.full((1, len(ready)), np.nan)
        else:
            values = torch.stack([o[name].double() for o in members]).numpy()  # [members, B]
        for j, (position, _) in enumerate(ready):
            rows[position][column] = float(values[:, j].mean())
            rows[position][std_column] = float(values[:, j].std(ddof=1)) if len(members) > 1 else np.nan


def predict_graphs(ensemble: list[OrbitalPropertyNet], graphs: list, batch_size: int = 16) -> list[dict[str, float]]:
    """Ensemble mean and spread (`OUTPUT_COLUMNS`) for already featurised graphs, one dict per graph."""
    rows: list[dict[str, Any]] = [{} for _ in graphs]
    numbered = list(enumerate(graphs))
    for start in range(0, len(numbered), batch_size):
        _predict_batch(ensemble, numbered[start:start + batch_size], rows)
    return rows


def _spread_warning(row: dict[str, Any], reference: SpreadReference) -> str | None:
    """The outputs on which the ensemble disagrees more than on most unseen QM9 molecules."""
    above = []
    for column, threshold in reference.thresholds.items():
        if np.isfinite(row.get(column, np.nan)) and row[column] > threshold:
            name, _, unit = column.partition("_std_")
            above.append(f"{name} {row[column]:.3g} > {threshold:.3g} {UNIT_SYMBOLS[unit]}")
    if not above:
        return None
    return (f"ensemble spread above its {reference.percentile} percentile on unseen QM9 molecules ("
            + ", ".join(above)
            + "): the members disagree, check these values")


def predict_properties(
    molecules: str | Chem.Mol | Atoms | Sequence[str | Chem.Mol | Atoms],
    *,
    models: Any = None,
    charge: int | None = None,
    multiplicity: int | None = None,
    seed: int = 42,
    batch_size: int = 16,
    progress: bool = False,
) -> pd.DataFrame:
    """Predict energy, HOMO, LUMO, gap and dipole for each molecule (units in the column names).

    Args:
        molecules: one molecule or a sequence (SMILES, RDKit Mol, ase.Atoms).
        models: None for the shipped ensemble, or path(s)/model(s) from `quantum_features.train`.
        charge, multiplicity: override what the input says (default: from the input, else 0 / lowest).
        seed: conformer-generation seed for inputs without 3D coordinates.

    Returns:
        DataFrame, one row per input in order (see the module docstring for the columns);
        failed rows keep their ``input`` and ``error`` and NaN values.
    """
    if isinstance(molecules, (str, Chem.Mol, Atoms)):
        molecules = [molecules]
    elif molecules is None:
        raise ChemToolkitError("predict_properties: got None instead of molecules")
    ensemble = load_ensemble(models)
    rows: list[dict[str, Any]] = []
    ready: list[tuple[int, Any]] = []
    for position, molecule in enumerate(tqdm(molecules, desc="featurise", disable=not progress)):
        row: dict[str, Any] = {"input": _label(molecule, position), "warning": None, "error": None}
        rows.append(row)
        try:
            atoms = prepare_atoms(molecule, charge, multiplicity, seed=seed)
            check_trained_elements(ensemble, atoms.numbers, row["input"])
            features = featurize(atoms)
        except (ChemToolkitError, ValueError) as exc:
            row["error"] = str(exc)
            continue
        heavy = int((atoms.numbers > 1).sum())
        row.update(n_atoms=len(atoms), charge=int(atoms.info["charge"]), multiplicity=int(atoms.info["multiplicity"]),
                   energy_cheap_hartree=features.energy_hartree)
        warnings = []
        if heavy > QM9_MAX_HEAVY_ATOMS:
            warnings.append(f"{heavy} heavy atoms: larger than any QM9 training molecule (≤ {QM9_MAX_HEAVY_ATOMS}); extrapolation")
        if row["charge"] != 0 or row["multiplicity"] != 1:
            warnings.append(f"charge {row['charge']}, multiplicity {row['multiplicity']}: QM9 holds only neutral "
                            "closed-shell molecules; extrapolation")
        if not np.isfinite(features.lumo_hartree):  # e.g. F⁻: every minimal-basis orbital is occupied
            warnings.append("no LUMO or gap: the cheap level's minimal basis leaves no virtual orbital")
        row["warning"] = "; ".join(warnings) or None
        ready.append((position, features.to_data()))
        if len(ready) == batch_size:  # predicted as they come: memory stays flat however long the input
            _predict_batch(ensemble, ready, rows)
            ready = []

    if ready:
        _predict_batch(ensemble, ready, rows)
    # The reference spreads belong to the shipped members; another ensemble has its own scale.
    reference = load_spread_reference() if models is None else SpreadReference()
    for row in rows:
        flagged = _spread_warning(row, reference)
        if flagged:
            row["warning"] = "; ".join(filter(None, [row["warning"], flagged]))
    frame = pd.DataFrame(rows)
    ordered = ["input", "n_atoms", "charge", "multiplicity"] + [c for pair in OUTPUT_COLUMNS.values() for c in pair]
    ordered += ["energy_cheap_hartree", "warning", "error"]
    for column in ordered:
        if column not in frame.columns:
            frame[column] = np.nan
    frame = frame[ordered].copy()
    for column in ("warning", "error"):
        frame[column] = object_column(frame[column])
    return frame
