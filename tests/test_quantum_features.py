"""quantum_features.features: equivariance, invariance, permutations, graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation
from torch_geometric.data import Batch

from conftest import ACETATE, METHYL_RADICAL
from quantum_features.calc import prepare_atoms
from quantum_features.features import EDGE_IRREPS, NODE_IRREPS, featurize
from quantum_features.irreps import pyscf_to_e3nn, wigner_d

TIGHT = {"conv_tol": 1e-12}  # converged densities, so features agree to ~1e-8


def block_wigner(irreps, rotation) -> np.ndarray:
    """The block-diagonal Wigner matrix of a whole irreps layout."""
    matrix = np.zeros((irreps.dim, irreps.dim))
    start = 0
    for mul, ir in irreps:
        d = wigner_d(ir.l, rotation)
        for _ in range(mul):
            matrix[start : start + ir.dim, start : start + ir.dim] = d
            start += ir.dim
    return matrix


def plain_atoms(smiles: str) -> Atoms:
    atoms = prepare_atoms(smiles)
    return Atoms(numbers=atoms.numbers, positions=atoms.positions,
                 info={"charge": atoms.info["charge"], "multiplicity": atoms.info["multiplicity"]})


@pytest.fixture(scope="module")
def thiol() -> Atoms:
    return plain_atoms("ClC(Br)CS")  # s/p valence of 2nd, 3rd and 4th row atoms


def test_basis_change_is_orthogonal():
    for l in (1, 2):
        q = pyscf_to_e3nn(l)
        np.testing.assert_allclose(q @ q.T, np.eye(2 * l + 1), atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_rotation_equivariance(thiol, seed):
    rotation = Rotation.random(random_state=seed).as_matrix()
    rotated = thiol.copy()
    rotated.positions = thiol.positions @ rotation.T
    before, after = featurize(thiol, **TIGHT), featurize(rotated, **TIGHT)
    # l = 0 parts unchanged, l = 1, 2 parts rotated by their Wigner matrices.
    np.testing.assert_allclose(after.node_features, before.node_features @ block_wigner(NODE_IRREPS, rotation).T, atol=1e-6)
    np.testing.assert_allclose(after.edge_features, before.edge_features @ block_wigner(EDGE_IRREPS, rotation).T, atol=1e-6)
    scalars = NODE_IRREPS.count("0e")
    np.testing.assert_allclose(after.node_features[:, :scalars], before.node_features[:, :scalars], atol=1e-6)
    np.testing.assert_allclose(after.dipole_debye, rotation @ before.dipole_debye, atol=1e-6)
    assert after.energy_hartree == pytest.approx(before.energy_hartree, abs=1e-8)
    assert np.abs(before.node_features[:, scalars:]).max() > 1e-2  # the test is not vacuous


def test_translation_invariance():
    atoms = plain_atoms(ACETATE)  # charged: the dipole's origin matters
    moved = atoms.copy()
    moved.positions += np.array([3.0, -7.5, 12.0])
    a, b = featurize(atoms, **TIGHT), featurize(moved, **TIGHT)
    np.testing.assert_allclose(b.node_features, a.node_features, atol=1e-6)
    np.testing.assert_allclose(b.edge_features, a.edge_features, atol=1e-6)
    np.testing.assert_allclose(b.dipole_debye, a.dipole_debye, atol=1e-6)


def test_permutation_consistency(thiol):
    permutation = np.random.default_rng(3).permutation(len(thiol))
    shuffled = Atoms(numbers=thiol.numbers[permutation], positions=thiol.positions[permutation], info=dict(thiol.info))
    a, b = featurize(thiol, **TIGHT), featurize(shuffled, **TIGHT)
    np.testing.assert_allclose(b.node_features, a.node_features[permutation], atol=1e-6)
    edges_a = {(int(i), int(j)): row for (i, j), row in zip(a.edge_index.T, a.edge_features)}
    assert len(edges_a) == b.edge_index.shape[1]
    for (i, j), row in zip(b.edge_index.T, b.edge_features):
        np.testing.assert_allclose(row, edges_a[(int(permutation[i]), int(permutation[j]))], atol=1e-6)


def test_charged_and_radical_features():
    acetate = featurize(ACETATE)
    assert acetate.charge == -1
    assert acetate.node_features[:, 0].sum() == pytest.approx(-1.0, abs=1e-6)  # Mulliken charges
    methyl = featurize(METHYL_RADICAL)
    assert methyl.multiplicity == 2
    assert methyl.node_features[:, 1].sum() == pytest.approx(1.0, abs=1e-6)  # spin populations
    assert methyl.node_features[0, 1] > 0.8  # the unpaired electron sits on carbon


def test_hydrogen_has_no_p_features_and_layout_dims():
    features = featurize("C")
    assert features.node_features.shape == (5, NODE_IRREPS.dim)
    assert features.edge_features.shape == (20, EDGE_IRREPS.dim)
    scalars = NODE_IRREPS.count("0e")
    hydrogens = features.numbers == 1
    np.testing.assert_array_equal(features.node_features[hydrogens, scalars:], 0.0)


def test_graph_data_and_batching():
    first = featurize("CCO", gradient=True).to_data()
    second = featurize(METHYL_RADICAL).to_data()
    assert first.node_attr.shape == (9, NODE_IRREPS.dim) and first.edge_attr.shape[1] == EDGE_IRREPS.dim
    assert first.gradient_cheap.shape == (9, 3) and first.energy_cheap.dtype == torch.float64
    batch = Batch.from_data_list([first, featurize("CCO").to_data(), second])
    assert batch.num_graphs == 3 and batch.node_attr.shape[0] == 9 + 9 + 4
    assert batch.charge.tolist() == [0.0, 0.0, 0.0] and batch.multiplicity.tolist() == [1.0, 1.0, 2.0]
    assert batch.dipole_cheap.shape == (3, 3)
    assert int(batch.edge_index.max()) < batch.num_nodes
