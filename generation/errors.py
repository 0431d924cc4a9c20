"""Errors of the generators; all derive from molops' `ChemToolkitError`."""

from __future__ import annotations

from molops.errors import ChemToolkitError

__all__ = ["GenerationError"]


class GenerationError(ChemToolkitError, ValueError):
    """Bad input to, or a failure of, a generator; the message names the input and the reason."""
