"""Levels of theory for the cheap calculation, by name.

The default, ``hf/sto-3g/df``, is Hartree–Fock in the STO-3G minimal basis with density
fitting on an even-tempered auxiliary basis (PySCF's ``aug_etb``, β = 2.0). Density fitting
replaces the four-centre integrals, which dominate a minimal-basis SCF, by three-centre ones:
measured on this project's 2-core machine it is 3.3x faster than exact integrals for QM9-size
molecules and 2.4x for melatonin, with absolute energy errors of 1–4 mHa that are systematic
(Δ-learning absorbs them). ``hf/sto-3g`` keeps exact integrals. See
benchmarks/featurize_speed.py for the speed-up over B3LYP/def2-SVP.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

__all__ = ["Level", "LEVELS", "DEFAULT_LEVEL", "REFERENCE_LEVEL", "get_level", "gpu_available"]


@dataclass(frozen=True)
class Level:
    """A mean-field level of theory.

    Attributes:
        name: the key in `LEVELS`, recorded with every result.
        method: "hf" (RHF/UHF/ROHF by spin) or a PySCF functional name for Kohn–Sham; a
            "-d3bj"/"-d4" suffix adds that dispersion correction (pyscf-dispersion), to the
            energy and to the analytic gradient.
        basis: PySCF basis name.
        density_fit: fit the two-electron integrals.
        etb_beta: even-tempered auxiliary basis progression (None: PySCF's default aux basis).
    """

    name: str
    method: str
    basis: str
    density_fit: bool = False
    etb_beta: float | None = None


LEVELS: dict[str, Level] = {
    level.name: level
    for level in (
        Level("hf/sto-3g/df", "hf", "sto-3g", density_fit=True, etb_beta=2.0),
        Level("hf/sto-3g", "hf", "sto-3g"),
        Level("b3lyp/def2-svp", "b3lyp", "def2-svp"),
        Level("b3lyp/def2-svp/df", "b3lyp", "def2-svp", density_fit=True),
        # Reference levels of the DFT labels (dispersion D3(BJ) via pyscf-dispersion).
        Level("b3lyp-d3bj/def2-svp/df", "b3lyp-d3bj", "def2-svp", density_fit=True),
        Level("wb97x-d3bj/def2-svp/df", "wb97x-d3bj", "def2-svp", density_fit=True),
        Level("b3lyp-d3bj/def2-tzvp/df", "b3lyp-d3bj", "def2-tzvp", density_fit=True),
        # Minimal-basis DFT with dispersion: seconds per molecule, for tests and quick checks.
        Level("b3lyp-d3bj/sto-3g", "b3lyp-d3bj", "sto-3g"),
    )
}
#: The level of this project's conformer labels (quantum_features.labelling).
REFERENCE_LEVEL = "b3lyp-d3bj/def2-svp/df"
DEFAULT_LEVEL = "hf/sto-3g/df"


def get_level(name: str | Level) -> Level:
    """The `Level` called `name` (case-insensitive); unknown names list the valid ones."""
    from quantum_features.errors import UnknownLevelError

    if isinstance(name, Level):
        return name
    if not isinstance(name, str) or name.lower() not in LEVELS:
        raise UnknownLevelError(f"unknown level of theory {name!r}; choose from {', '.join(LEVELS)}")
    return LEVELS[name.lower()]


@cache
def gpu_available() -> bool:
    """Whether gpu4pyscf and a CUDA device are usable (PySCF runs then move to the GPU)."""
    try:
        import cupy
        import gpu4pyscf  # noqa: F401

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - missing package, driver or device all mean "no"
        return False
