"""Empirical dispersion (DFT-D3/D4 via pyscf-dispersion) as a fixed physics term of a model.

The reference labels (B3LYP-D3(BJ)/def2-SVP) contain a dispersion energy that the cheap level
(HF/STO-3G) lacks entirely. That term is known in closed form and costs milliseconds, and it
is what separates folded from extended conformers: on this project's conformer labels,
HF/STO-3G alone ranks conformers with median R² −0.16, HF/STO-3G + B3LYP-D3(BJ) with 0.61
(`benchmarks/conformer_ranking.py`). A conformer model with ``ModelConfig.dispersion`` set
adds this term exactly, so the network only learns the remaining electronic difference.

Energies are in Hartree, positions in Å, gradients in Hartree/Å. `DispersionEnergy` is a
torch autograd function whose backward uses the library's analytic gradient, so forces
obtained by autograd of the model's energy include the dispersion forces exactly.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["parse_dispersion", "dispersion_energy_and_gradient", "DispersionEnergy", "batch_dispersion_energy"]

_VERSIONS = {"d3bj": ("d3", "d3bj"), "d3zero": ("d3", "d3zero"), "d3bjm": ("d3", "d3mbj"),
             "d3zerom": ("d3", "d3mzero"), "d4": ("d4", None)}


def parse_dispersion(method: str) -> tuple[str, str, str | None]:
    """``"b3lyp-d3bj"`` -> (functional, model, damping), e.g. ("b3lyp", "d3", "d3bj").

    Raises:
        ValueError: `method` is not ``<functional>-<d3bj|d3zero|d3bjm|d3zerom|d4>``.
    """
    functional, _, suffix = method.lower().rpartition("-")
    if not functional or suffix not in _VERSIONS:
        raise ValueError(f"dispersion {method!r} is not '<functional>-<version>' with version one of {sorted(_VERSIONS)}")
    model, damping = _VERSIONS[suffix]
    return functional, model, damping


def dispersion_energy_and_gradient(numbers: np.ndarray, positions: np.ndarray,
                                   method: str = "b3lyp-d3bj") -> tuple[float, np.ndarray]:
    """Dispersion energy (Hartree) and its gradient ([n_atoms, 3], Hartree/Å) of one structure.

    Args:
        numbers: atomic numbers [n_atoms].
        positions: Cartesian coordinates [n_atoms, 3] in Å.
        method: functional and correction, e.g. ``"b3lyp-d3bj"`` (the reference level's own).
    """
    from pyscf import gto
    from pyscf.data.nist import BOHR  # Å, the constant quantum_features.calc converts with

    functional, model, damping = parse_dispersion(method)
    numbers = np.asarray(numbers, dtype=int)
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (len(numbers), 3) or not np.isfinite(positions).all():
        raise ValueError(f"positions must be a finite [{len(numbers)}, 3] array (got shape {positions.shape})")
    # Only geometry and elements matter; the spin keeps PySCF from refusing odd electron counts.
    mol = gto.M(atom=list(zip(numbers.tolist(), positions.tolist())), unit="Angstrom", basis="sto-3g",
                spin=int(numbers.sum()) % 2, verbose=0)
    if model == "d3":
        from pyscf.dispersion.dftd3 import DFTD3Dispersion

        result = DFTD3Dispersion(mol, xc=functional, version=damping).get_dispersion(grad=True)
    else:
        from pyscf.dispersion.dftd4 import DFTD4Dispersion

        result = DFTD4Dispersion(mol, xc=functional).get_dispersion(grad=True)
    return float(result["energy"]), np.asarray(result["gradient"]) / BOHR  # Ha/Bohr -> Ha/Å


class DispersionEnergy(torch.autograd.Function):
    """Per-graph dispersion energies [B] (float64) of a batch; backward gives the analytic
    gradient with respect to positions (no gradient for anything else)."""

    @staticmethod
    def forward(ctx, positions: torch.Tensor, numbers: torch.Tensor, graph: torch.Tensor, n_graphs: int,
                method: str) -> torch.Tensor:
        pos = positions.detach().cpu().double().numpy()
        z = numbers.detach().cpu().numpy()
        index = graph.detach().cpu().numpy()
        energies = np.zeros(n_graphs)
        gradient = np.zeros_like(pos)
        for g in range(n_graphs):
            atoms = np.flatnonzero(index == g)
            if len(atoms):
                energies[g], gradient[atoms] = dispersion_energy_and_gradient(z[atoms], pos[atoms], method)
        ctx.save_for_backward(torch.from_numpy(gradient).to(positions.device), graph)
        return torch.from_numpy(energies).to(positions.device)

    @staticmethod
    def backward(ctx, grad_energy: torch.Tensor):
        gradient, graph = ctx.saved_tensors
        grad_positions = (grad_energy[graph].unsqueeze(1) * gradient).to(grad_energy.dtype)
        return grad_positions, None, None, None, None


def batch_dispersion_energy(positions: torch.Tensor, numbers: torch.Tensor, graph: torch.Tensor, n_graphs: int,
                            method: str) -> torch.Tensor:
    """`DispersionEnergy` of a batch: [n_graphs] Hartree, differentiable in `positions`."""
    return DispersionEnergy.apply(positions, numbers, graph, n_graphs, method)
