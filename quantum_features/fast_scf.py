"""Faster SCF cycles for small-basis molecules: in-memory density fitting and diagonalisation.

Coulomb and exchange matrices come from an in-memory density-fitting tensor.

For minimal-basis molecules of drug size the three-index tensor B[P, μ, ν] (PySCF's
Cholesky-decomposed ``_cderi``, unpacked once) fits in memory (melatonin: 950 × 101 × 101
doubles, 78 MB), and then each SCF cycle's J and K are a few large matrix products:

- J[D]_μν = Σ_P B_Pμν ρ_P with ρ_P = Σ_κλ B_Pκλ D_λκ;
- K[D]_μν = Σ_P (B_P D B_P)_μν, computed as Σ_P X_Pᵀ X_P with X_P = (C_occ √n)ᵀ B_P when D is
  a density built from occupied orbitals (PySCF tags those with ``mo_coeff``/``mo_occ``),
  and with the general product otherwise.

This gives the same matrices as PySCF's blocked DF code to round-off, about three times
faster for these sizes (the blocked code pays for unpacking and small GEMMs every cycle).
While an SCF density (one built from orbitals) still moves by more than `FLOAT32_ABOVE`
from the previous one (the first few cycles), the exchange products run in float32, twice as
fast; the last cycles, response/Newton trial densities and every matrix handed to the
features use float64, and `CheapCalculation` re-evaluates the converged energy in float64.

The Roothaan–Hall equations F C = S C ε are solved in the Löwdin-orthogonalised basis
X = S^(-1/2) computed once (``eigh(XᵀFX)``), instead of a generalised eigensolver per cycle.
"""

from __future__ import annotations

import weakref

import numpy as np
from pyscf import lib

__all__ = ["InMemoryDensityFitting", "use_fast_scf", "FLOAT32_ABOVE"]

#: Largest change of any density-matrix element since the previous J/K build above which
#: the exchange products run in float32.
FLOAT32_ABOVE = 1e-3


class InMemoryDensityFitting:
    """J/K builder holding the fitted three-index tensor unpacked (float64).

    Stored as ``bt[κ, P, μ] = B_Pκμ`` so that every contraction below is a product of
    contiguous matrices (no transposed copies of the large tensor in the SCF loop).
    """

    def __init__(self, with_df) -> None:
        if with_df._cderi is None:
            with_df.build()
        if isinstance(with_df._cderi, np.ndarray):
            cderi = with_df._cderi
        else:
            # PySCF keeps the tensor in an HDF5 file when it judged memory short (it counts the
            # process's current use, which grows in a long-lived worker): read it back in
            # blocks; the caller has checked that it fits.
            cderi = np.vstack([np.asarray(block) for block in with_df.loop()])
        self.nao = with_df.mol.nao
        self.naux = cderi.shape[0]
        b = lib.unpack_tril(cderi).reshape(self.naux, self.nao, self.nao)  # [P, κ, μ]
        self.bt = np.ascontiguousarray(b.transpose(1, 0, 2))  # [κ, P, μ]
        self._bt32: np.ndarray | None = None
        self._last_dm: np.ndarray | None = None

    def _flat(self, low_precision: bool) -> np.ndarray:
        if not low_precision:
            return self.bt.reshape(self.nao, -1)
        if self._bt32 is None:
            self._bt32 = self.bt.astype(np.float32)
        return self._bt32.reshape(self.nao, -1)

    def _coulomb(self, dm: np.ndarray) -> np.ndarray:
        rho = np.einsum("kPl,lk->P", self.bt, dm)  # ρ_P = Σ B_Pκλ D_λκ
        return np.einsum("mPn,P->mn", self.bt, rho)

    def _exchange(self, dm: np.ndarray, mo_coeff: np.ndarray | None, mo_occ: np.ndarray | None,
                  low_precision: bool) -> np.ndarray:
        flat = self._flat(low_precision)  # [κ, P·μ]
        if mo_coeff is not None and mo_occ is not None and np.all(mo_occ >= 0):
            occupied = mo_occ > 0
            factors = (mo_coeff[:, occupied] * np.sqrt(mo_occ[occupied])).astype(flat.dtype)  # [κ, o]
            z = (factors.T @ flat).reshape(-1, self.nao)  # [o·P, μ]
            return (z.T @ z).astype(np.float64)  # Σ_{o,P} X_oPμ X_oPν
        v = (dm.T.astype(flat.dtype) @ flat).reshape(-1, self.nao)  # [λ·P, μ] = Σ_κ D_κλ B_Pκμ
        return (v.T @ flat.reshape(-1, self.nao)).astype(np.float64)  # Σ_{λ,P} V_λPμ B_Pλν

    def get_jk(self, dm, with_j: bool = True, with_k: bool = True):
        """J and K for one density matrix [nao, nao] or a stack [n, nao, nao]."""
        dms = np.asarray(dm)
        single = dms.ndim == 2
        stack = dms.reshape(-1, self.nao, self.nao)
        coeffs = getattr(dm, "mo_coeff", None)
        occs = getattr(dm, "mo_occ", None)
        if coeffs is not None:
            coeffs = np.asarray(coeffs).reshape(len(stack), self.nao, -1)
            occs = np.asarray(occs).reshape(len(stack), -1)
        low_precision = False
        if coeffs is not None:
            # Only SCF densities (built from orbitals) may use float32, and only while they
            # still move; trial densities of response/Newton steps always use float64.
            moved = np.inf if self._last_dm is None or self._last_dm.shape != stack.shape else np.abs(stack - self._last_dm).max()
            self._last_dm = stack.copy()
            low_precision = bool(moved > FLOAT32_ABOVE)
        vj = np.stack([self._coulomb(d) for d in stack]) if with_j else None
        vk = (
            np.stack([
                self._exchange(d, None if coeffs is None else coeffs[i], None if occs is None else occs[i],
                               low_precision)
                for i, d in enumerate(stack)
            ])
            if with_k
            else None
        )
        if single:
            vj = None if vj is None else vj[0]
            vk = None if vk is None else vk[0]
        return vj, vk


def use_fast_scf(mf) -> None:
    """Give the density-fitted SCF object `mf` the in-memory J/K and orthogonalised eig.

    Only the SCF's own J/K builds and diagonalisations change; gradients and response
    functions keep PySCF's density-fitting code, on the same fitted integrals.
    """
    builder = InMemoryDensityFitting(mf.with_df)
    # The methods below live on `mf` and reach it only through a weak reference: a closure
    # holding `mf` itself would make a reference cycle, which only Python's cyclic collector
    # frees. Until it ran, every finished calculation kept its tensors (hundreds of MB for
    # drug-sized molecules), and a worker featurising a library grew by that per molecule.
    owner = weakref.ref(mf)

    def get_jk(mol=None, dm=None, hermi=1, with_j=True, with_k=True, omega=None):
        scf_object = owner()
        if omega is not None or hermi != 1 or (mol is not None and mol is not scf_object.mol):
            return type(scf_object).get_jk(scf_object, mol, dm, hermi, with_j, with_k, omega)
        if dm is None:
            dm = scf_object.make_rdm1()
        return builder.get_jk(dm, with_j, with_k)

    overlap = mf.mol.intor_symmetric("int1e_ovlp")
    s_values, s_vectors = np.linalg.eigh(overlap)
    orthogonaliser = (s_vectors / np.sqrt(s_values)) @ s_vectors.T  # S^(-1/2)

    def eig(fock, s, x=None, **options):
        # `options`: PySCF passes e.g. overwrite=... on some paths (max_cycle=0); a memory hint
        # the fast path does not need, handed on to PySCF's own eig otherwise.
        fock = np.asarray(fock)
        if fock.ndim == 3:  # UHF: one problem per spin
            pairs = [eig(f, s) for f in fock]
            return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        if s is not overlap and not np.allclose(s, overlap, atol=1e-12):
            scf_object = owner()
            return type(scf_object).eig(scf_object, fock, s, x=x, **options)
        energies, vectors = np.linalg.eigh(orthogonaliser @ fock @ orthogonaliser)
        return energies, orthogonaliser @ vectors

    mf.get_jk = get_jk
    mf.eig = eig
