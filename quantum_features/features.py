"""Orbital features (OrbNet-Equi style) from a cheap calculation, as SO(3) irreps.

Every operator matrix T of the converged calculation is cut into atom blocks T_AB over the
*valence* shells of each atom in the minimal basis (H: 1s; B–F: 2s, 2p; Si–Cl: 3s, 3p;
Br: 4s, 4p; I: 5s, 5p; core shells are left out: they are element constants that an atom
embedding learns). Each (s|s), (s|p), (p|s), (p|p) sub-block is rotated into e3nn's real
spherical-harmonic basis and projected with Clebsch–Gordan coefficients onto irreps
L = |l1−l2| … l1+l2, so rotating the molecule by R rotates every L-feature by D_L(R).
Hydrogen's missing p shell gives zeros.

Operators (units): F Fock (Hartree; spin-averaged for open shells), P density and Ps spin
density (electrons), S overlap, H core Hamiltonian (Hartree), J Coulomb and K exchange
matrices of the converged density (Hartree).

Node features (per atom A, from the diagonal block T_AA), `NODE_IRREPS` = 14x0e+6x1o+6x2e:
- 0e [0]: Mulliken charge (e); [1]: Mulliken spin population (e);
- 0e [2 + 2k], [3 + 2k]: (s|s) and the L=0 part of (p|p) of operator k in (F, P, Ps, H, J, K);
- 1o [k]: (s|p) of operator k;
- 2e [k]: L=2 part of (p|p) of operator k (the L=1 part of a symmetric block is zero).

Edge features (per ordered pair A→B within `cutoff` Å, from T_AB), `EDGE_IRREPS` =
14x0e+14x1o+7x1e+7x2e, for operator k in (F, P, Ps, S, H, J, K):
- 0e [2k], [2k + 1]: (s|s) and L=0 of (p|p);  1o [2k], [2k + 1]: (s_A|p_B) and (p_A|s_B);
- 1e [k]: L=1 of (p|p);  2e [k]: L=2 of (p|p).

Graph-level values: the cheap total energy (Hartree), HOMO/LUMO energies (Hartree), the
dipole moment (Debye, about the centre of nuclear charge) and, when computed, the analytic
nuclear gradient (Hartree/Å).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from e3nn import o3
from rdkit import Chem
from torch_geometric.data import Data

from quantum_features.calc import CheapCalculation, OperatorMatrices
from quantum_features.errors import QuantumError
from quantum_features.irreps import coupling, pyscf_to_e3nn

__all__ = [
    "NODE_IRREPS",
    "EDGE_IRREPS",
    "NODE_OPERATORS",
    "EDGE_OPERATORS",
    "FEATURE_VERSION",
    "OrbitalFeatures",
    "orbital_features",
    "featurize",
]

NODE_OPERATORS = ("fock", "density", "spin_density", "core_hamiltonian", "coulomb", "exchange")
EDGE_OPERATORS = ("fock", "density", "spin_density", "overlap", "core_hamiltonian", "coulomb", "exchange")
NODE_IRREPS = o3.Irreps(f"{2 + 2 * len(NODE_OPERATORS)}x0e + {len(NODE_OPERATORS)}x1o + {len(NODE_OPERATORS)}x2e")
EDGE_IRREPS = o3.Irreps(
    f"{2 * len(EDGE_OPERATORS)}x0e + {2 * len(EDGE_OPERATORS)}x1o + "
    f"{len(EDGE_OPERATORS)}x1e + {len(EDGE_OPERATORS)}x2e"
)
#: Bumped whenever the features change meaning; part of every cache key.
FEATURE_VERSION = 1
DEFAULT_CUTOFF = 5.0  # Å


@dataclass(frozen=True)
class OrbitalFeatures:
    """Features of one molecule (float64 numpy; shapes in brackets).

    Attributes:
        numbers: [N] atomic numbers.  positions: [N, 3] Å.
        node_features: [N, NODE_IRREPS.dim].  edge_index: [2, E] (source, target).
        edge_features: [E, EDGE_IRREPS.dim].
        charge, multiplicity: total charge (e) and 2S+1.
        energy_hartree, homo_hartree, lumo_hartree: cheap-level energies.
        dipole_debye: [3].  gradient_hartree_per_angstrom: [N, 3] or None.
        level: name of the level of theory.
    """

    numbers: np.ndarray
    positions: np.ndarray
    node_features: np.ndarray
    edge_index: np.ndarray
    edge_features: np.ndarray
    charge: int
    multiplicity: int
    energy_hartree: float
    homo_hartree: float
    lumo_hartree: float
    dipole_debye: np.ndarray
    gradient_hartree_per_angstrom: np.ndarray | None
    level: str
    cutoff: float = DEFAULT_CUTOFF

    def to_data(self, dtype: torch.dtype = torch.float32) -> Data:
        """A torch-geometric `Data` graph (batches with `torch_geometric.data.Batch`)."""
        data = Data(
            z=torch.as_tensor(self.numbers, dtype=torch.long),
            pos=torch.as_tensor(self.positions, dtype=dtype),
            node_attr=torch.as_tensor(self.node_features, dtype=dtype),
            edge_index=torch.as_tensor(self.edge_index, dtype=torch.long),
            edge_attr=torch.as_tensor(self.edge_features, dtype=dtype),
            charge=torch.tensor([self.charge], dtype=dtype),
            multiplicity=torch.tensor([self.multiplicity], dtype=dtype),
            energy_cheap=torch.tensor([self.energy_hartree], dtype=torch.float64),
            homo_cheap=torch.tensor([self.homo_hartree], dtype=dtype),
            lumo_cheap=torch.tensor([self.lumo_hartree], dtype=dtype),
            dipole_cheap=torch.as_tensor(self.dipole_debye, dtype=dtype).reshape(1, 3),
        )
        # Always present so that graphs with and without gradients batch together; NaN
        # marks "not computed" (never a silent zero).
        gradient = self.gradient_hartree_per_angstrom
        if gradient is None:
            gradient = np.full((len(self.numbers), 3), np.nan)
        data.gradient_cheap = torch.as_tensor(gradient, dtype=dtype)
        return data


def _valence_indices(mol) -> tuple[np.ndarray, np.ndarray]:
    """AO index of each atom's valence s function and its valence p triple (nao = missing)."""
    ao_loc = mol.ao_loc_nr()
    s_index = np.full(mol.natm, -1)
    p_index = np.full((mol.natm, 3), mol.nao)  # index nao points at an appended zero row
    for shell in range(mol.nbas):
        atom, l = mol.bas_atom(shell), mol.bas_angular(shell)
        first_of_last_contraction = ao_loc[shell + 1] - (2 * l + 1)
        if l == 0:
            s_index[atom] = first_of_last_contraction  # shells come in increasing n
        elif l == 1:
            p_index[atom] = first_of_last_contraction + np.arange(3)
    return s_index, p_index


def _blocks(matrix: np.ndarray, s_index: np.ndarray, p_index: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """(s|s) [E], (s|p) [E,3], (p|s) [E,3], (p|p) [E,3,3] blocks for atom pairs rows→cols,
    with p in e3nn's basis."""
    padded = np.pad(matrix, ((0, 1), (0, 1)))
    q = pyscf_to_e3nn(1)
    s_r, s_c = s_index[rows], s_index[cols]
    p_r, p_c = p_index[rows], p_index[cols]
    ss = padded[s_r, s_c]
    sp = padded[s_r[:, None], p_c] @ q.T
    ps = padded[p_r, s_c[:, None]] @ q.T
    pp = q @ padded[p_r[:, :, None], p_c[:, None, :]] @ q.T
    return ss, sp, ps, pp


def _project(pp: np.ndarray, big_l: int) -> np.ndarray:
    return np.einsum("mnM,emn->eM", coupling(1, 1, big_l), pp)


def _node_features(ops: OperatorMatrices, s_index, p_index, mulliken, spin_pop) -> np.ndarray:
    atoms = np.arange(len(s_index))
    scalars, vectors, tensors = [mulliken, spin_pop], [], []
    for name in NODE_OPERATORS:
        ss, sp, _, pp = _blocks(getattr(ops, name), s_index, p_index, atoms, atoms)
        scalars += [ss, _project(pp, 0)[:, 0]]
        vectors.append(sp)
        tensors.append(_project(pp, 2))
    return np.concatenate(
        [np.stack(scalars, axis=1), np.concatenate(vectors, axis=1), np.concatenate(tensors, axis=1)], axis=1
    )


def _edge_features(ops: OperatorMatrices, s_index, p_index, edge_index) -> np.ndarray:
    rows, cols = edge_index
    scalars, vectors, pseudo, tensors = [], [], [], []
    for name in EDGE_OPERATORS:
        ss, sp, ps, pp = _blocks(getattr(ops, name), s_index, p_index, rows, cols)
        scalars += [ss, _project(pp, 0)[:, 0]]
        vectors += [sp, ps]
        pseudo.append(_project(pp, 1))
        tensors.append(_project(pp, 2))
    parts = [np.stack(scalars, axis=1)] + [np.concatenate(x, axis=1) for x in (vectors, pseudo, tensors)]
    return np.concatenate(parts, axis=1)


def _radius_graph(positions: np.ndarray, cutoff: float) -> np.ndarray:
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    rows, cols = np.nonzero((distances < cutoff) & ~np.eye(len(positions), dtype=bool))
    return np.stack([rows, cols])


def orbital_features(calc: CheapCalculation, cutoff: float = DEFAULT_CUTOFF) -> OrbitalFeatures:
    """Features of a finished `CheapCalculation` (see the module docstring for the layout)."""
    mol = calc.mol
    ops = calc.matrices()
    s_index, p_index = _valence_indices(mol)
    atom_of_ao = np.array([label[0] for label in mol.ao_labels(fmt=False)])
    ps_diag = np.einsum("ij,ji->i", ops.density, ops.overlap)
    spin_diag = np.einsum("ij,ji->i", ops.spin_density, ops.overlap)
    mulliken = mol.atom_charges() - np.bincount(atom_of_ao, ps_diag, minlength=mol.natm)
    spin_pop = np.bincount(atom_of_ao, spin_diag, minlength=mol.natm)
    positions = np.asarray(calc.atoms.positions, dtype=float)
    edge_index = _radius_graph(positions, cutoff)
    homo, lumo = calc.frontier_orbitals()
    return OrbitalFeatures(
        numbers=np.asarray(calc.atoms.numbers),
        positions=positions,
        node_features=_node_features(ops, s_index, p_index, mulliken, spin_pop),
        edge_index=edge_index,
        edge_features=_edge_features(ops, s_index, p_index, edge_index),
        charge=int(calc.atoms.info["charge"]),
        multiplicity=int(calc.atoms.info["multiplicity"]),
        energy_hartree=float(calc.e_tot),
        homo_hartree=homo,
        lumo_hartree=lumo,
        dipole_debye=calc.dipole_debye(ops.density),
        gradient_hartree_per_angstrom=calc.gradient,
        level=calc.level.name,
        cutoff=cutoff,
    )


def featurize(
    molecule: str | Chem.Mol | Atoms,
    *,
    charge: int | None = None,
    multiplicity: int | None = None,
    cutoff: float = DEFAULT_CUTOFF,
    **calc_options: object,
) -> OrbitalFeatures:
    """Run the cheap calculation on `molecule` and return its orbital features.

    Args:
        molecule: SMILES, RDKit Mol (3D conformer used if present) or `ase.Atoms`.
        calc_options: attributes of `CheapCalculation` (level, gradient, conv_tol, ...).

    Raises:
        UnsupportedElementError, ElectronCountError, SCFConvergenceError.
    """
    if not cutoff > 0:  # also NaN: a graph without edges would be silently wrong
        raise QuantumError(f"edge cutoff {cutoff} Å must be positive")
    calc = CheapCalculation(molecule, charge=charge, multiplicity=multiplicity, **calc_options).run()
    return orbital_features(calc, cutoff)
