"""Errors of the generators, and the checks of their settings that raise them.

All derive from molops' `ChemToolkitError`.
"""

from __future__ import annotations

import numbers

from molops.errors import ChemToolkitError

__all__ = ["GenerationError", "check_count", "check_similarity"]


class GenerationError(ChemToolkitError, ValueError):
    """Bad input to, or a failure of, a generator; the message names the input and the reason."""


def check_count(name: str, value: object) -> None:
    """Refuse `value` unless it is a whole number ≥ 1 (a number of iterations, samples, edits...)."""
    if not isinstance(value, numbers.Integral) or value < 1:
        raise GenerationError(f"{name} must be a whole number ≥ 1, got {value!r}")


def check_similarity(name: str, value: object) -> None:
    """Refuse `value` unless it is a Tanimoto similarity in [0, 1] (NaN and non-numbers included)."""
    if not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise GenerationError(f"{name} is a Tanimoto similarity between 0 and 1, got {value!r}")
