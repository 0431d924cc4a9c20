"""Per-row application of molecule functions to DataFrames, failures recorded not raised.

Batch functions (`standardize_frame`, `describe`, ...) all follow one rule: the output keeps
the input's columns, adds the computed ones, and a row that fails gets None in the computed
columns and the reason in ``error`` while the other rows carry on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from rdkit import Chem

from molops.errors import ChemToolkitError, MoleculeError, ParseError

__all__ = ["molecule_frame", "apply_rows", "object_column"]


def object_column(series: pd.Series) -> pd.Series:
    """`series` as object dtype with None (not NaN) for missing values.

    Keeps ``error`` columns testable with ``is None`` under pandas' string dtype.
    """
    return series.astype(object).where(series.notna(), None)


MoleculesInput = pd.DataFrame | Iterable[str | Chem.Mol | None] | str | Chem.Mol


def molecule_frame(molecules: MoleculesInput, mol_column: str = "mol") -> tuple[pd.DataFrame, str]:
    """A copy of `molecules` as a DataFrame with an ``error`` column, and its molecule column.

    A DataFrame is read from `mol_column`, or from ``smiles`` if it has no `mol_column`.
    A list of SMILES becomes a ``smiles`` column, any other list a `mol_column` column.
    """
    if isinstance(molecules, (str, Chem.Mol)):
        molecules = [molecules]
    if molecules is None:
        raise ParseError("got None instead of molecules (a list of SMILES/Mols or a DataFrame)")
    if isinstance(molecules, pd.DataFrame):
        frame = molecules.copy()
        if mol_column not in frame.columns:
            if "smiles" not in frame.columns:
                raise MoleculeError(f"DataFrame has neither a {mol_column!r} nor a 'smiles' column "
                                    f"(columns: {', '.join(map(str, frame.columns))})")
            mol_column = "smiles"
    else:
        values = list(molecules)
        if values and all(isinstance(v, str) for v in values):
            mol_column = "smiles"
        frame = pd.DataFrame({mol_column: pd.Series(values, dtype=object)})
    if "error" not in frame.columns:
        frame["error"] = None
    frame["error"] = object_column(frame["error"])
    return frame, mol_column


def _typed(values: list[Any], index: pd.Index) -> pd.Series:
    """Nullable integer/boolean dtypes keep ints and bools exact next to failed (None) rows."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return pd.Series(values, index=index, dtype="boolean")
    if present and all(isinstance(v, (int, np.integer)) for v in present):
        return pd.Series(values, index=index, dtype="Int64")
    if present and all(isinstance(v, (float, int, np.floating, np.integer)) for v in present):
        return pd.Series([np.nan if v is None else v for v in values], index=index, dtype=float)
    return pd.Series(values, index=index, dtype=object)


def apply_rows(
    frame: pd.DataFrame,
    func: Callable[[Any], dict[str, Any]],
    columns: Sequence[str],
    mol_column: str = "mol",
) -> pd.DataFrame:
    """Fill `columns` of `frame` (in place, and returned) from ``func(row[mol_column])``.

    `func` returns a dict keyed by `columns`. Rows with an earlier error, or whose call raises
    a `ChemToolkitError`, get None in `columns` and the reason in ``error``.
    """
    values: dict[str, list[Any]] = {column: [] for column in columns}
    errors: list[str | None] = []
    for value, previous_error in zip(frame[mol_column], frame["error"]):
        result: dict[str, Any] = {}
        error = previous_error
        if error is None and value is None:
            error = "no molecule"
        if error is None:
            try:
                result = func(value)
            except ChemToolkitError as exc:
                error = str(exc)
        for column in columns:
            values[column].append(result.get(column))
        errors.append(error)
    for column in columns:
        frame[column] = _typed(values[column], frame.index)
    frame["error"] = pd.Series(errors, index=frame.index, dtype=object)
    return frame
