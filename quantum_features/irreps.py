"""From PySCF's real spherical AOs to e3nn irreps.

PySCF orders real spherical functions its own way (p: x, y, z; d: xy, yz, z², xz, x²−y²)
while e3nn's real spherical harmonics use another order and sign convention. Rather than
hard-coding permutations, `pyscf_to_e3nn(l)` finds the orthogonal matrix Q_l with
``φ_pyscf(r̂) ∝ Y_e3nn(r̂) @ Q_l`` by fitting both on points of the unit sphere, so a block
T (rows: shell of l1, columns: shell of l2, PySCF order) becomes ``Q_l1 @ T @ Q_l2.T`` in
e3nn's basis, where a rotation R acts as ``D_l1(R) @ T @ D_l2(R).T``.

`coupling(l1, l2, L)` is e3nn's real Clebsch–Gordan (Wigner 3j) tensor, normalised so that
the projections onto L = |l1−l2| … l1+l2 together form an orthogonal change of basis:
``f_L[M] = Σ_mn C[m, n, M] T_e3nn[m, n]`` transforms as ``D_L(R) f_L``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from e3nn import o3
from pyscf import gto

__all__ = ["pyscf_to_e3nn", "coupling", "wigner_d"]


@lru_cache(maxsize=None)
def pyscf_to_e3nn(l: int) -> np.ndarray:
    """Orthogonal [2l+1, 2l+1] matrix Q with φ_pyscf ∝ Y_e3nn @ Q (float64)."""
    if l == 0:
        return np.ones((1, 1))
    rng = np.random.default_rng(0)
    points = rng.normal(size=(64, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    mol = gto.M(atom="He 0 0 0", basis={"He": [[l, (1.0, 1.0)]]}, spin=None, verbose=0)
    mol.spin = mol.nelectron % 2
    mol.build()
    pyscf_values = mol.eval_gto("GTOval_sph", points)  # [points, 2l+1]; radial part constant on r=1
    e3nn_values = o3.spherical_harmonics(
        l, torch.from_numpy(points), normalize=True, normalization="component"
    ).numpy()
    fit, *_ = np.linalg.lstsq(e3nn_values, pyscf_values, rcond=None)
    scale = np.linalg.norm(fit, axis=0)
    q = fit / scale
    if not np.allclose(q @ q.T, np.eye(2 * l + 1), atol=1e-8):
        raise RuntimeError(f"PySCF l={l} functions are not an orthogonal transform of e3nn's")
    return q


@lru_cache(maxsize=None)
def coupling(l1: int, l2: int, big_l: int) -> np.ndarray:
    """[2l1+1, 2l2+1, 2L+1] coupling tensor with orthonormal columns (float64)."""
    c = o3.wigner_3j(l1, l2, big_l, dtype=torch.float64).numpy()
    return c / np.sqrt(np.sum(c[:, :, 0] ** 2))


def wigner_d(l: int, rotation: np.ndarray) -> np.ndarray:
    """e3nn's real Wigner D matrix of a 3x3 rotation matrix, in float64.

    Fitted from ``Y(R r̂) = D Y(r̂)`` on points of the sphere: e3nn's own `D_from_matrix`
    goes through float32 generators (errors ~1e-7), too coarse for 1e-6 equivariance tests.
    """
    if l == 0:
        return np.ones((1, 1))
    rng = np.random.default_rng(1)
    points = rng.normal(size=(8 * (2 * l + 1), 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    before = o3.spherical_harmonics(l, torch.from_numpy(points), normalize=True, normalization="component")
    after = o3.spherical_harmonics(
        l, torch.from_numpy(points @ np.asarray(rotation, dtype=np.float64).T), normalize=True,
        normalization="component",
    )
    fit, *_ = np.linalg.lstsq(before.numpy(), after.numpy(), rcond=None)
    return fit.T
