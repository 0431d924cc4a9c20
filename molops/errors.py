"""Exception hierarchy shared by the whole toolkit.

Every error raised on purpose by `molops`, `quantum_features` or `generation` derives from
`ChemToolkitError`, so callers can catch one class. Each message names the offending input
(a SMILES string, a file and its record number, ...) and the reason.
"""

from __future__ import annotations

__all__ = [
    "ChemToolkitError",
    "MoleculeError",
    "ParseError",
    "UnsupportedElementError",
    "ConformerError",
    "InputFileError",
    "DockingError",
    "ReceptorError",
]


def describe_input(value: object, limit: int = 80) -> str:
    """A short, quoted rendering of an input for error messages."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text) if isinstance(value, str) else text


class ChemToolkitError(Exception):
    """Base class of every error this toolkit raises on purpose."""


class MoleculeError(ChemToolkitError, ValueError):
    """A molecule cannot be read, checked or processed by `molops`."""


class ParseError(MoleculeError):
    """A SMILES string or molecule record cannot be parsed or sanitised."""


class UnsupportedElementError(MoleculeError):
    """A molecule contains an element outside the supported set."""


class ConformerError(MoleculeError):
    """3D embedding or force-field optimisation failed."""


class InputFileError(MoleculeError, OSError):
    """A molecule file is missing, unreadable or of an unknown format."""


class DockingError(ChemToolkitError, ValueError):
    """A ligand, receptor or docking box cannot be prepared, or Vina fails."""


class ReceptorError(DockingError):
    """A receptor structure is missing, malformed or cannot be prepared for Vina."""
