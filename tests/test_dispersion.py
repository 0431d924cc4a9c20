"""The dispersion term of conformer models: values, analytic gradient, autograd forces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import energy_derivative
from quantum_features.conformer_training import energy_and_forces
from quantum_features.dispersion import batch_dispersion_energy, dispersion_energy_and_gradient, parse_dispersion
from quantum_features.features import featurize
from quantum_features.model import ModelConfig, OrbitalPropertyNet

TINY_MODEL = {"hidden_irreps": "8x0e + 4x1o", "n_layers": 1, "n_radial": 4, "radial_hidden": 8, "readout_hidden": 8}
# Butane, gauche: the dispersion energy depends on the dihedral.
NUMBERS = np.array([6, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
POSITIONS = np.array([
    [-1.95, 0.35, 0.28], [-0.56, -0.18, -0.04], [0.56, 0.63, 0.62], [1.95, 0.10, 0.28],
    [-2.70, -0.27, -0.22], [-2.06, 1.37, -0.10], [-2.12, 0.37, 1.36], [-0.44, -1.21, 0.30],
    [-0.45, -0.20, -1.13], [0.44, 1.66, 0.27], [0.45, 0.65, 1.71], [2.70, 0.74, 0.76],
    [2.06, -0.91, 0.69], [2.12, 0.05, -0.80],
])


def test_dispersion_is_attractive_and_its_gradient_matches_finite_differences():
    energy, gradient = dispersion_energy_and_gradient(NUMBERS, POSITIONS, "b3lyp-d3bj")
    assert -0.02 < energy < 0 and gradient.shape == POSITIONS.shape  # a few kcal/mol for butane
    step = 1e-4
    for atom, axis in [(0, 0), (3, 2), (7, 1)]:
        plus, minus = POSITIONS.copy(), POSITIONS.copy()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        numeric = (dispersion_energy_and_gradient(NUMBERS, plus)[0] - dispersion_energy_and_gradient(NUMBERS, minus)[0]) / (2 * step)
        assert gradient[atom, axis] == pytest.approx(numeric, abs=1e-7)
    # Functional-specific damping: HF's D3(BJ) parameters give a different energy.
    assert dispersion_energy_and_gradient(NUMBERS, POSITIONS, "hf-d3bj")[0] != pytest.approx(energy, rel=1e-3)


def test_bad_dispersion_names_and_positions_are_refused():
    assert parse_dispersion("B3LYP-D3BJ") == ("b3lyp", "d3", "d3bj")
    for bad in ("b3lyp", "d3bj", "b3lyp-d9"):
        with pytest.raises(ValueError, match="dispersion"):
            parse_dispersion(bad)
    with pytest.raises(ValueError, match="finite"):
        dispersion_energy_and_gradient(NUMBERS, np.full_like(POSITIONS, np.nan))


def test_batch_energies_are_per_graph_and_backpropagate_the_analytic_gradient():
    pos = torch.tensor(np.concatenate([POSITIONS, POSITIONS + 10.0]), requires_grad=True)
    z = torch.tensor(np.concatenate([NUMBERS, NUMBERS]))
    graph = torch.tensor([0] * len(NUMBERS) + [1] * len(NUMBERS))
    energies = batch_dispersion_energy(pos, z, graph, 2, "b3lyp-d3bj")
    expected, gradient = dispersion_energy_and_gradient(NUMBERS, POSITIONS)
    assert energies.tolist() == pytest.approx([expected, expected])  # translation invariant
    (grad,) = torch.autograd.grad((2.0 * energies[0] + energies[1]), pos)
    assert np.allclose(grad[: len(NUMBERS)].numpy(), 2.0 * gradient) and np.allclose(grad[len(NUMBERS):].numpy(), gradient)


def test_model_with_dispersion_adds_its_energy_and_forces_exactly():
    from ase import Atoms

    data = featurize(Atoms(numbers=NUMBERS, positions=POSITIONS), gradient=True).to_data()
    torch.manual_seed(0)
    plain = OrbitalPropertyNet(ModelConfig.from_dict(TINY_MODEL)).eval()
    with_d3 = OrbitalPropertyNet(ModelConfig.from_dict({**TINY_MODEL, "dispersion": "b3lyp-d3bj"})).eval()
    with_d3.load_state_dict(plain.state_dict())
    e_plain, f_plain = energy_and_forces(plain, data.clone())
    e_d3, f_d3 = energy_and_forces(with_d3, data.clone())
    energy, gradient = dispersion_energy_and_gradient(NUMBERS, data.pos.double().numpy())
    assert float((e_d3 - e_plain).detach()) == pytest.approx(energy, abs=1e-9)
    assert np.allclose((f_d3 - f_plain).detach().double().numpy(), -gradient, atol=1e-6)
    assert with_d3.baseline_energies([data])[0] == pytest.approx(float(data.energy_cheap) + energy, abs=1e-9)
    baseline, (fixed_gradient,) = with_d3.baseline_energies_and_gradients([data])  # fixed part of −forces: cheap + D3
    assert baseline[0] == pytest.approx(with_d3.baseline_energies([data])[0], abs=1e-12)
    assert np.allclose(fixed_gradient.double().numpy(), data.gradient_cheap.double().numpy() + gradient, atol=1e-6)


def test_zeroed_energy_correction_leaves_baseline_plus_element_references():
    from ase import Atoms

    data = featurize(Atoms(numbers=NUMBERS, positions=POSITIONS)).to_data()
    torch.manual_seed(0)
    model = OrbitalPropertyNet(ModelConfig.from_dict({**TINY_MODEL, "dispersion": "b3lyp-d3bj"})).eval()
    with torch.no_grad():
        model.energy_reference.uniform_(-1.0, 1.0)
    before = float(model(data.clone())["energy"][0])
    model.zero_energy_correction()
    after = float(model(data.clone())["energy"][0])
    references = float(model.energy_reference[model._element_index(data.z)].sum())
    assert after == pytest.approx(model.baseline_energies([data])[0] + references, abs=1e-9)
    assert before != pytest.approx(after, abs=1e-9)  # the correction was not zero before


def test_geometry_only_model_forces_are_the_derivative_of_its_whole_energy():
    # No cheap level in its energy, so no cheap gradient in its forces (none is needed either).
    from ase import Atoms

    data = featurize(Atoms(numbers=NUMBERS, positions=POSITIONS)).to_data()  # gradient_cheap is NaN
    torch.manual_seed(0)
    model = OrbitalPropertyNet(ModelConfig.from_dict(
        {**TINY_MODEL, "use_orbital_features": False, "dispersion": "b3lyp-d3bj"})).double().eval()
    data.pos = data.pos.double()
    _, forces = energy_and_forces(model, data.clone())
    step = 1e-4
    for atom, axis in [(0, 0), (3, 2), (7, 1)]:
        assert float(forces[atom, axis]) == pytest.approx(-energy_derivative(model, data, atom, axis, step), abs=1e-7)
