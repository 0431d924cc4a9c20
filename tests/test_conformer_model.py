"""Conformer energies: graphs from labels, fine-tuning with forces, ranking API, ASE calculator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import energy_derivative
from molops.errors import ChemToolkitError
from quantum_features.calculator import (
    OrbNetCalculator,
    ensemble_energy_and_forces,
    load_conformer_models,
    optimize_geometry,
    rank_conformers,
)
from quantum_features.conformer_training import (
    HARTREE_TO_KCAL,
    ConformerTrainConfig,
    energy_and_forces,
    evaluate_conformers,
    fit_conformers,
    label_graphs,
    run_splits,
)
from quantum_features.errors import QuantumError
from quantum_features.labelling import LabelOptions, label_molecules
from quantum_features.model import ModelConfig

TINY_MODEL = {"hidden_irreps": "8x0e + 4x1o", "n_layers": 1, "n_radial": 4, "radial_hidden": 8, "readout_hidden": 8}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Labels (B3LYP-D3(BJ)/STO-3G) of 3 small molecules, their graphs, a model trained 3 epochs."""
    root = tmp_path_factory.mktemp("conformers")
    options = LabelOptions(level="b3lyp-d3bj/sto-3g", n_conformers=3, n_distorted=1, device="cpu")
    labels, _ = label_molecules({"propanol": "CCCO", "ethylamine": "CCN", "methoxyethane": "CCOC"},
                                root / "labels.npz", options=options, n_workers=1, progress=False)
    graphs = label_graphs(labels, root / "features.h5", n_workers=1)
    config = ConformerTrainConfig(out_dir=str(root / "run"), model=TINY_MODEL, max_epochs=3, batch_molecules=2,
                                  dispersion="b3lyp-d3bj")  # as the shipped config: the labels' own D3(BJ)
    train = [g for g in graphs if int(g.molecule) != 2]  # ids sorted: 2 is propanol
    val = [g for g in graphs if int(g.molecule) == 2]
    state = fit_conformers(config, train, val, progress=False)
    return {"root": root, "labels": labels, "graphs": graphs, "config": config, "state": state,
            "model": root / "run" / "best.pt", "train": train, "val": val}


def test_graphs_carry_reference_energies_forces_and_cheap_gradients(tiny_run):
    labels, graphs = tiny_run["labels"], tiny_run["graphs"]
    assert len(graphs) == len(labels)
    g = graphs[0]
    assert g.y_forces.shape == g.pos.shape and not torch.isnan(g.gradient_cheap).any()
    assert float(g.y_energy) == pytest.approx(labels.frame["energy_hartree"].iloc[0])


def test_model_forces_are_the_cheap_gradient_plus_the_network_derivative(tiny_run):
    from quantum_features.train import load_model

    model = load_model(tiny_run["model"])
    data = tiny_run["graphs"][1].clone()
    _, forces = energy_and_forces(model, data.clone())
    step = 1e-3
    for atom, axis in [(0, 0), (2, 1)]:
        network = energy_derivative(model, data, atom, axis, step)  # features held fixed
        expected = -(float(data.gradient_cheap[atom, axis]) + network)
        assert float(forces[atom, axis]) == pytest.approx(expected, abs=2e-4)


def test_energy_only_path_gives_the_energy_of_the_forces_path(tiny_run):
    # Ranking skips the cheap gradient; its energies must be the calculator's.
    models = load_conformer_models(tiny_run["model"])
    atoms = tiny_run["labels"].atoms(0)
    energy_only, no_forces = ensemble_energy_and_forces(models, atoms, forces=False)
    energy, forces = ensemble_energy_and_forces(models, atoms, forces=True)
    assert no_forces is None and forces.shape == (len(atoms), 3)
    assert energy_only == pytest.approx(energy, abs=1e-7)


def test_training_reports_metrics_and_resumes(tiny_run):
    state = tiny_run["state"]
    assert state["epoch"] == 3 and set(state["best_val"]) >= {"median_r2", "median_spearman", "force_mae_hartree_per_angstrom"}
    config = ConformerTrainConfig(**{**tiny_run["config"].__dict__, "max_epochs": 4})
    again = fit_conformers(config, tiny_run["train"], tiny_run["val"], progress=False)
    assert again["epoch"] == 4  # one more epoch, resumed from last.pt
    # Resuming on other structures (e.g. a grown label file) would mix two runs: refused.
    with pytest.raises(QuantumError, match=r"other structures \(\d+ training / \d+ validation then"):
        fit_conformers(config, tiny_run["train"][1:], tiny_run["val"], progress=False)
    from quantum_features.train import load_model

    metrics = evaluate_conformers(load_model(tiny_run["model"]), tiny_run["val"])
    frame = tiny_run["labels"].frame
    n_conformers = int(((frame["molecule_id"] == "propanol") & (frame["kind"] == "conformer")).sum())
    assert metrics["n_molecules"] == int(n_conformers >= 3) and np.isfinite(metrics["relative_mae_kcal_mol"])


def test_a_run_can_train_on_the_first_structures_of_a_grown_label_file(tiny_run, tmp_path):
    from quantum_features.conformer_training import training_labels

    path = tiny_run["root"] / "labels.npz"
    every = training_labels(ConformerTrainConfig(labels=str(path)))
    first = training_labels(ConformerTrainConfig(labels=str(path), n_structures=5))
    assert len(every) == len(tiny_run["labels"]) > 5 and len(first) == 5
    assert first.frame["key"].tolist() == every.frame["key"].tolist()[:5]
    with pytest.raises(QuantumError, match=rf"n_structures = {len(every) + 1}, but the file holds {len(every)}"):
        training_labels(ConformerTrainConfig(labels=str(path), n_structures=len(every) + 1))


def test_selection_loss_is_relative_to_the_starting_model(tiny_run):
    # Each selection term is a fraction of the starting model's validation error, so that a
    # ranking weight of 1 and a force weight of 0.2 compare like with like (not kcal/mol with Ha/Å).
    import pandas as pd

    from quantum_features.conformer_training import _selection_metrics

    last = torch.load(tiny_run["root"] / "run" / "last.pt", map_location="cpu", weights_only=False)
    start = last["selection_reference"]
    assert set(start) == {"relative", "energy", "forces"} and all(v > 0 for v in start.values())
    weights = tiny_run["config"].weights
    for row in pd.read_csv(tiny_run["root"] / "run" / "metrics.csv").to_dict("records"):
        current = _selection_metrics(row)
        expected = sum(w * current[k] / start[k] for k, w in weights.items() if w)
        assert row["val_loss"] == pytest.approx(expected, rel=1e-9)


def test_rank_conformers_returns_ranked_relative_energies(tiny_run):
    frame = rank_conformers("CCCO", n_conformers=3, models=tiny_run["model"])
    assert list(frame.columns) == ["conformer_id", "rank", "energy_hartree", "relative_energy_kcal_mol",
                                   "uncertainty_kcal_mol", "mmff_relative_kcal_mol"]
    assert frame["rank"].tolist() == list(range(1, len(frame) + 1))
    assert frame["relative_energy_kcal_mol"].iloc[0] == 0 and frame["relative_energy_kcal_mol"].is_monotonic_increasing
    assert frame["uncertainty_kcal_mol"].isna().all()  # one model: no spread to measure
    assert frame.attrs["mol"].GetNumConformers() == len(frame)
    from quantum_features.train import load_model

    other = load_model(tiny_run["model"])
    torch.manual_seed(1)
    with torch.no_grad():  # a second, different ensemble member
        for parameter in other.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    two = rank_conformers("CCCO", n_conformers=3, models=[load_model(tiny_run["model"]), other])
    assert (two["uncertainty_kcal_mol"] >= 0).all() and two["uncertainty_kcal_mol"].iloc[1:].gt(0).any()


def test_ranking_uncertainty_is_measured_from_the_conformer_ranked_lowest(tiny_run, monkeypatch):
    import quantum_features.calculator as calculator

    # Two members that disagree on the lowest conformer (energies in kcal/mol, per conformer).
    members = iter(np.array([[0.0, 2.0], [1.0, 1.5], [3.0, 3.0]]) / HARTREE_TO_KCAL)
    monkeypatch.setattr(calculator, "ensemble_energy_and_forces", lambda ensemble, atoms, forces: (next(members), None))
    frame = rank_conformers("CCCO", n_conformers=3, models=tiny_run["model"], prune_rms_angstrom=0.0)
    assert frame["conformer_id"].tolist() == [0, 1, 2]  # mean 1.0, 1.25, 3.0
    assert frame["relative_energy_kcal_mol"].tolist() == pytest.approx([0.0, 0.25, 2.0])
    # Member 2 measured from conformer 0 as well: sample spreads (ddof=1) of (0, 0), (1, -0.5), (3, 1).
    assert frame["uncertainty_kcal_mol"].tolist() == pytest.approx([0.0, 1.5 / 2**0.5, 2 / 2**0.5])


def test_bad_inputs_give_clear_errors(tiny_run, monkeypatch):
    with pytest.raises(ChemToolkitError, match="cannot parse"):
        rank_conformers("C1CC(", models=tiny_run["model"])
    with pytest.raises(ChemToolkitError, match="unsupported element"):
        rank_conformers("C[Se]C", models=tiny_run["model"])
    import quantum_features.calculator as calculator

    monkeypatch.setattr(calculator, "WEIGHTS_DIR", tiny_run["root"])
    with pytest.raises(QuantumError, match="no conformer-energy model ships"):
        rank_conformers("CCO")
    with pytest.raises(QuantumError, match="unknown optimiser"):
        optimize_geometry("O", models=tiny_run["model"], optimizer="SD")


def test_ase_calculator_and_geometry_optimisation(tiny_run):
    from ase.units import Hartree

    from quantum_features.calc import prepare_atoms

    atoms = prepare_atoms("CCO")
    atoms.calc = OrbNetCalculator(tiny_run["model"])
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    assert np.isfinite(energy) and forces.shape == (len(atoms), 3)
    assert energy / Hartree < -100  # a total energy in eV (ethanol ≈ −154 Hartree)
    atoms.info.update(charge=1, multiplicity=2)  # same geometry, another electronic state: computed again
    assert atoms.get_potential_energy() != energy
    atoms.info["charge"] = 0.5
    with pytest.raises(ChemToolkitError, match="charge 0.5 is not a whole number"):
        atoms.get_potential_energy()
    relaxed, trajectory = optimize_geometry("O", models=tiny_run["model"], fmax=0.2, steps=60)
    assert trajectory["energy_ev"].iloc[-1] <= trajectory["energy_ev"].iloc[0] + 1e-6
    assert trajectory["fmax_ev_per_angstrom"].iloc[-1] < 0.2 and len(relaxed) == 3


def test_cli_conformers_rank(tiny_run, tmp_path):
    from rdkit import Chem
    from typer.testing import CliRunner

    from molops.cli import app

    out = tmp_path / "ranked.sdf"
    result = CliRunner().invoke(app, ["conformers", "CCCO", "--rank", "-n", "3", "--model", str(tiny_run["model"]),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "ΔE (kcal/mol)" in result.output
    ranked = [m for m in Chem.SDMolSupplier(str(out), removeHs=False)]
    assert ranked and ranked[0].GetNumConformers() == 1 and float(ranked[0].GetProp("relative_energy_kcal_mol")) == 0
    # The conformer options apply to ranking too: a zero MMFF window leaves only the minimum.
    result = CliRunner().invoke(app, ["conformers", "CCCO", "--rank", "-n", "3", "--energy-window", "0",
                                      "--model", str(tiny_run["model"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list(Chem.SDMolSupplier(str(out), removeHs=False))) == 1
    junk = tmp_path / "junk.pt"
    junk.write_text("not weights")
    result = CliRunner().invoke(app, ["conformers", "CCCO", "--rank", "--model", str(junk)])
    assert result.exit_code == 1 and "not a readable model file" in result.output


def test_relative_loss_can_centre_conformers_and_distorted_structures_separately(tiny_run):
    from torch_geometric.data import Batch
    from torch_geometric.utils import scatter

    from quantum_features.conformer_training import _loss_terms

    class OffsetByKind(torch.nn.Module):
        """Energies = labels + 0.01 Hartree on distorted structures (a per-kind offset)."""

        config = ModelConfig(use_orbital_features=True)  # forces: cheap gradient + autograd, as for the real network

        def forward(self, batch):
            per_graph = scatter(batch.pos.sum(dim=1) * 0.0, batch.batch, 0, reduce="sum").double()
            return {"energy": batch.y_energy.view(-1) + 0.01 * (1 - batch.conformer_kind.view(-1)) + per_graph}

    batch = Batch.from_data_list([g for g in tiny_run["graphs"] if int(g.molecule) == 0])
    assert 0 < int(batch.conformer_kind.sum()) < len(batch.conformer_kind)  # both kinds present
    by_molecule = _loss_terms(OffsetByKind(), batch.clone(), "molecule")
    by_kind = _loss_terms(OffsetByKind(), batch.clone(), "molecule_and_kind")
    assert float(by_molecule["relative"]) > 1e-3 and float(by_kind["relative"]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="relative_within"):
        _loss_terms(OffsetByKind(), batch.clone(), "kind")


def test_shipped_conformer_model_ranks_butane_anti_below_gauche():
    # The shipped ensemble (quantum_features/weights/conformer_*.pt), no models= given. n-Butane:
    # anti is the global minimum, gauche about 0.6 kcal/mol above it (experiment and DFT).
    from rdkit.Chem import rdMolTransforms

    frame = rank_conformers("CCCC", n_conformers=5)
    mol = frame.attrs["mol"]
    dihedrals = [abs(rdMolTransforms.GetDihedralDeg(mol.GetConformer(int(cid)), 0, 1, 2, 3))
                 for cid in frame["conformer_id"]]
    assert dihedrals[0] > 170  # anti first
    gauche = frame["relative_energy_kcal_mol"][[abs(d - 65) < 15 for d in dihedrals]]
    assert len(gauche) and 0.2 < gauche.min() < 1.5
    assert frame["uncertainty_kcal_mol"].iloc[1:].gt(0).all()  # several members: a real spread


def test_elements_the_conformer_models_never_saw_are_refused_not_scored():
    from molops.errors import ChemToolkitError

    # The shipped conformer models know the elements of their training molecules (H C N O F S Cl):
    # a bromide's energy would be a guess.
    with pytest.raises(ChemToolkitError, match="element\\(s\\) Br are outside the model's training data"):
        rank_conformers("BrCCBr", n_conformers=2)
    # F molecules are among the training molecules now: ranked, with finite energies and spreads.
    frame = rank_conformers("FCCCCF", n_conformers=2)
    assert len(frame) >= 1 and np.isfinite(frame["relative_energy_kcal_mol"]).all()


def test_benchmarks_leave_out_whole_molecules_the_models_refuse(tiny_run):
    from quantum_features.predict import split_refused_molecules
    from quantum_features.train import load_model

    labels, model = tiny_run["labels"], load_model(tiny_run["model"])
    kept, refused = split_refused_molecules([model], labels)
    assert refused == {} and len(kept) == len(labels)
    model.trained_elements[model._element_index(torch.tensor([7]))] = False  # as if no N in training
    kept, refused = split_refused_molecules([model], labels)
    assert list(refused) == ["ethylamine"] and "element(s) N are outside" in refused["ethylamine"]
    assert set(kept.frame["molecule_id"]) == {"propanol", "methoxyethane"}
    assert len(kept) == int((labels.frame["molecule_id"] != "ethylamine").sum())


def test_elements_missing_from_the_fine_tuning_labels_are_no_longer_trained(tiny_run):
    from quantum_features.conformer_training import _refit_energy_reference
    from quantum_features.train import load_model

    model = load_model(tiny_run["model"])
    model.trained_elements[model._element_index(torch.tensor([9]))] = True  # a QM9 start knows F; these labels lack it
    assert model.untrained_elements(torch.tensor([1, 6, 7, 8, 9])) == []
    baseline = model.baseline_energies_and_gradients(tiny_run["train"])[0]
    _refit_energy_reference(model, tiny_run["train"], baseline)
    assert model.untrained_elements(torch.tensor([1, 6, 7, 8, 9])) == [9]


def test_anchor_decay_keeps_fine_tuned_weights_near_the_start(tiny_run, tmp_path):
    # L2-SP: fine-tuning from a trained model with a strong anchor moves its weights less.
    from quantum_features.conformer_training import anchor_distance
    from quantum_features.train import load_model

    start = load_model(tiny_run["model"])
    anchor = {name: p.detach().clone() for name, p in start.named_parameters()}
    distances = {}
    for decay in (0.0, 100.0):
        config = ConformerTrainConfig(**{**tiny_run["config"].__dict__, "out_dir": str(tmp_path / f"decay{decay}"),
                                         "init": str(tiny_run["model"]), "anchor_decay": decay, "max_epochs": 2})
        fit_conformers(config, tiny_run["train"], tiny_run["val"], progress=False)
        last = torch.load(tmp_path / f"decay{decay}" / "last.pt", map_location="cpu", weights_only=False)
        tuned = load_model(tiny_run["model"])
        tuned.load_state_dict(last["model"])
        distances[decay] = float(anchor_distance(tuned, anchor))
    assert 0 < distances[100.0] < 0.5 * distances[0.0]


def test_fine_tuned_models_predict_the_energy_only(tiny_run, tmp_path):
    # Fine-tuning moves the layers under a QM9 model's HOMO/LUMO/gap/dipole heads: only the
    # energy stays a trained output, so predict_properties leaves the others NaN.
    from quantum_features.model import TARGETS
    from quantum_features.predict import predict_properties
    from quantum_features.train import export_weights, load_model

    qm9_like = export_weights(tiny_run["model"], tmp_path / "start.pt", targets=tuple(TARGETS))
    config = ConformerTrainConfig(**{**tiny_run["config"].__dict__, "out_dir": str(tmp_path / "tuned"),
                                     "init": str(qm9_like), "max_epochs": 1})
    fit_conformers(config, tiny_run["train"], tiny_run["val"], progress=False)
    tuned = load_model(tmp_path / "tuned" / "best.pt")
    assert tuned.target_names == ("energy",)
    frame = predict_properties("CCO", models=tuned)
    assert np.isfinite(frame.loc[0, "energy_hartree"]) and np.isnan(frame.loc[0, "gap_ev"])
    shipped = sorted((Path(__file__).parents[1] / "quantum_features" / "weights").glob("conformer_*.pt"))
    assert shipped and all(load_model(p).target_names == ("energy",) for p in shipped)


def test_weight_average_in_fine_tuning_is_what_is_selected_and_resumed(tiny_run, tmp_path):
    from quantum_features.train import load_model

    config = ConformerTrainConfig(**{**tiny_run["config"].__dict__, "out_dir": str(tmp_path / "ema"),
                                     "init": str(tiny_run["model"]), "ema_decay": 0.5, "max_epochs": 2})
    fit_conformers(config, tiny_run["train"], tiny_run["val"], progress=False)
    first = torch.load(tmp_path / "ema" / "last.pt", map_location="cpu", weights_only=False)
    assert first["ema"]["decay"] == 0.5
    again = fit_conformers(ConformerTrainConfig(**{**config.__dict__, "max_epochs": 3}), tiny_run["train"],
                           tiny_run["val"], progress=False)
    assert again["epoch"] == 3
    last = torch.load(tmp_path / "ema" / "last.pt", map_location="cpu", weights_only=False)
    assert int(last["ema"]["average"]["n_averaged"]) > int(first["ema"]["average"]["n_averaged"])
    best = torch.load(tmp_path / "ema" / "best.pt", map_location="cpu", weights_only=False)
    scored = evaluate_conformers(load_model(tmp_path / "ema" / "best.pt"), tiny_run["val"])
    assert scored["relative_mae_kcal_mol"] == pytest.approx(best["val"]["relative_mae_kcal_mol"], rel=1e-6)


def test_run_splits_hold_out_whole_molecules_of_the_run_labels(tiny_run):
    config = ConformerTrainConfig(**{**tiny_run["config"].__dict__, "labels": str(tiny_run["root"] / "labels.npz"),
                                     "n_structures": 5, "test_fraction": 0.34})
    parts = run_splits(config)
    assert sum(len(p) for p in parts) == 5  # only the run's first n_structures
    ids = [set(p.frame["molecule_id"]) for p in parts]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
