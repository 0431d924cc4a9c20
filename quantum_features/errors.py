"""Errors of the quantum-chemistry layer (all are `molops.errors.ChemToolkitError`)."""

from __future__ import annotations

from molops.errors import ChemToolkitError

__all__ = ["QuantumError", "SCFConvergenceError", "ElectronCountError", "GeometryError", "UnknownLevelError"]


class QuantumError(ChemToolkitError):
    """A quantum-chemistry calculation cannot be set up or did not succeed."""


class SCFConvergenceError(QuantumError):
    """The SCF did not converge, even after every fallback strategy."""


class ElectronCountError(QuantumError, ValueError):
    """Charge and spin multiplicity are inconsistent with the molecule's electrons."""


class GeometryError(QuantumError, ValueError):
    """A 3D structure cannot be computed: no atoms, non-finite coordinates or overlapping atoms."""


class UnknownLevelError(QuantumError, KeyError):
    """A level-of-theory name that `quantum_features.levels` does not define."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
