"""quantum_features.model / train / predict: equivariance, overfitting, resume, predict API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from rdkit import Chem
from rdkit.Chem import AllChem
from scipy.spatial.transform import Rotation
from torch_geometric.data import Batch

from quantum_features.datasets import load_qm9, qm9_atoms, qm9_graph
from quantum_features.averaging import WeightAverage
from quantum_features.features import EDGE_IRREPS, NODE_IRREPS, featurize
from quantum_features.model import TARGETS, ModelConfig, OrbitalPropertyNet
from quantum_features.predict import OUTPUT_COLUMNS, load_ensemble, predict_graphs, predict_properties
from quantum_features.spread import (UNIT_SYMBOLS, calibrate_spread, ensemble_errors, load_spread_reference,
                                     ordinal_percentile)
from quantum_features.train import TrainConfig, evaluate, export_weights, fit, load_config, load_model, targets_of
from test_quantum_features import block_wigner

TINY = {"hidden_irreps": "8x0e + 4x1o + 2x2e", "n_layers": 2, "n_radial": 6, "radial_hidden": 16,
        "edge_channels": 1, "readout_hidden": 16}
#: QM9 ids 1-12 (CH4, NH3, H2O, C2H2, HCN, CH2O, C2H6, CH3OH, ... ): tiny, fast to featurise.
QM9_IDS = list(range(1, 13))


@pytest.fixture(scope="module")
def qm9_graphs():
    frame = load_qm9(limit=20).loc[QM9_IDS]
    return [qm9_graph(featurize(qm9_atoms(row)), row) for _, row in frame.iterrows()]


def _model(graphs, **options) -> OrbitalPropertyNet:
    torch.manual_seed(0)
    model = OrbitalPropertyNet(ModelConfig(**{**TINY, **options}))
    model.fit_statistics(graphs, targets_of(graphs, TARGETS))
    # Random (not trained) weights everywhere, including the zero-initialised parts.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _rotated(data, rotation: np.ndarray):
    rotated = data.clone()
    r = torch.as_tensor(rotation, dtype=torch.float32)
    rotated.pos = data.pos @ r.T
    rotated.node_attr = data.node_attr @ torch.as_tensor(block_wigner(NODE_IRREPS, rotation), dtype=torch.float32).T
    rotated.edge_attr = data.edge_attr @ torch.as_tensor(block_wigner(EDGE_IRREPS, rotation), dtype=torch.float32).T
    rotated.dipole_cheap = data.dipole_cheap @ r.T
    return rotated


@pytest.mark.parametrize("orbital", [True, False])
def test_model_is_equivariant(qm9_graphs, orbital):
    model = _model(qm9_graphs, use_orbital_features=orbital)
    graphs = qm9_graphs[4:10]
    rotation = Rotation.random(random_state=3).as_matrix()
    before = model(Batch.from_data_list(graphs))
    after = model(Batch.from_data_list([_rotated(g, rotation) for g in graphs]))
    for name in ("energy", "homo", "lumo", "gap", "dipole_norm"):
        torch.testing.assert_close(after[name].double(), before[name].double(), atol=1e-5, rtol=0)
    expected = before["dipole"].double() @ torch.as_tensor(rotation).T
    torch.testing.assert_close(after["dipole"].double(), expected, atol=1e-5, rtol=0)
    # Not vacuous: the learned part of the dipole is there and not along one axis only.
    assert (before["dipole"] - (graphs[0].dipole_cheap if orbital else 0)).abs().max() > 1e-3


def test_equivariant_end_to_end_through_pyscf(qm9_graphs):
    # Rotate the molecule itself (new SCF, new features), not the features.
    frame = load_qm9(limit=20)
    atoms = qm9_atoms(frame.loc[8])  # methanol
    rotation = Rotation.random(random_state=7).as_matrix()
    turned = atoms.copy()
    turned.positions = atoms.positions @ rotation.T
    model = _model(qm9_graphs)
    tight = {"conv_tol": 1e-11}
    a = model(Batch.from_data_list([featurize(atoms, **tight).to_data()]))
    b = model(Batch.from_data_list([featurize(turned, **tight).to_data()]))
    for name in ("energy", "homo", "gap", "dipole_norm"):
        torch.testing.assert_close(b[name].double(), a[name].double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(b["dipole"].double(), a["dipole"].double() @ torch.as_tensor(rotation).T, atol=1e-5, rtol=0)


def test_tiny_model_overfits_a_handful_of_molecules(qm9_graphs, tmp_path):
    config = TrainConfig(out_dir=str(tmp_path / "run"), model=TINY, batch_size=12, lr=5e-3, max_epochs=250,
                         patience=1000, lr_patience=1000)
    torch.manual_seed(0)
    untrained = OrbitalPropertyNet(ModelConfig(**TINY))
    untrained.fit_statistics(qm9_graphs, targets_of(qm9_graphs, TARGETS))
    start = evaluate(untrained, qm9_graphs)
    summary = fit(config, qm9_graphs, qm9_graphs, progress=False)
    end = evaluate(load_model(tmp_path / "run" / "best.pt"), qm9_graphs)
    assert summary["finished"]
    for key in ("energy_mae_mev", "homo_mae_mev", "lumo_mae_mev", "gap_mae_mev", "dipole_mae_debye"):
        assert end[key] < 0.25 * start[key], (key, start[key], end[key])
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["epoch"]) == list(range(250))


def test_training_resumes_from_the_last_checkpoint(qm9_graphs, tmp_path):
    base = {"out_dir": str(tmp_path / "run"), "model": TINY, "batch_size": 4, "max_epochs": 3}
    first = fit(TrainConfig(**base), qm9_graphs[:8], qm9_graphs[8:], progress=False)
    assert first["finished"] and first["epoch"] == 3
    # Same directory, more epochs: continues at epoch 3 instead of starting over.
    second = fit(TrainConfig(**{**base, "max_epochs": 5}), qm9_graphs[:8], qm9_graphs[8:], progress=False)
    assert second["epoch"] == 5
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1, 2, 3, 4]
    # The resumed run trains exactly as an uninterrupted one (same batches, same weights).
    whole = fit(TrainConfig(**{**base, "max_epochs": 5, "out_dir": str(tmp_path / "whole")}), qm9_graphs[:8],
                qm9_graphs[8:], progress=False)
    resumed_weights = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["model"]
    whole_weights = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)["model"]
    assert whole["epoch"] == 5 and all(torch.equal(resumed_weights[k], whole_weights[k]) for k in whole_weights)
    # A kill after an epoch's metrics row but before its checkpoint: the row is written once.
    pd.concat([metrics, metrics.tail(1).assign(epoch=5)]).to_csv(tmp_path / "run" / "metrics.csv", index=False)
    # A time budget ends the call after one epoch and leaves a resumable run.
    third = fit(TrainConfig(**{**base, "max_epochs": 50, "max_minutes": 0.0}), qm9_graphs[:8], qm9_graphs[8:],
                progress=False)
    assert third["epoch"] == 6 and not third["finished"] and "resume" in third["stop_reason"]
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["epoch"]) == [0, 1, 2, 3, 4, 5]


def test_weight_average_is_the_exponential_average_of_the_steps():
    model = torch.nn.Linear(2, 1)
    model.register_buffer("reference", torch.zeros(1))
    average = WeightAverage(model, decay=0.5)
    seen = []
    for value in (1.0, 3.0, 5.0):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update()
        seen.append(value)
    # First update copies the weights, then θ̄ ← 0.5 θ̄ + 0.5 θ: 1 → 2 → 3.5.
    assert torch.allclose(average.model.weight, torch.full((1, 2), 3.5))
    model.reference.fill_(7.0)  # buffers follow the live model, they are not averaged
    assert float(average.model.reference) == 7.0
    restored = WeightAverage(model, decay=0.5)
    restored.load_state_dict(average.state_dict())
    assert torch.equal(restored.model.weight, average.model.weight)
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(model, decay=0.9).load_state_dict(average.state_dict())
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(model, decay=1.0)


def test_training_with_a_weight_average_selects_and_resumes_the_average(qm9_graphs, tmp_path):
    base = {"out_dir": str(tmp_path / "run"), "model": TINY, "batch_size": 4, "max_epochs": 3, "ema_decay": 0.8}
    fit(TrainConfig(**base), qm9_graphs[:8], qm9_graphs[8:], progress=False)
    fit(TrainConfig(**{**base, "max_epochs": 5}), qm9_graphs[:8], qm9_graphs[8:], progress=False)
    fit(TrainConfig(**{**base, "max_epochs": 5, "out_dir": str(tmp_path / "whole")}), qm9_graphs[:8],
        qm9_graphs[8:], progress=False)
    resumed = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    # The average continues across the resume exactly as in an uninterrupted run.
    for key, value in whole["ema"]["average"].items():
        assert torch.equal(resumed["ema"]["average"][key], value), key
    # best.pt holds averaged weights (not the last step's), and it is what validation scored.
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    live, averaged = resumed["model"], resumed["ema"]["average"]
    if best["epoch"] == 4:
        assert all(torch.equal(best["model"][k], averaged[f"module.{k}"]) for k in live)
    assert any(not torch.equal(live[k], averaged[f"module.{k}"]) for k in live if live[k].is_floating_point())
    scored = evaluate(load_model(tmp_path / "run" / "best.pt"), qm9_graphs[8:])
    assert scored["energy_mae_mev"] == pytest.approx(best["val_mae"]["energy_mae_mev"], rel=1e-6)


def test_config_file_errors(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("n_train: 10\nmodel: {hidden_irreps: '4x0e + 2x1o', n_layers: 1}\n")
    assert load_config(path).model["n_layers"] == 1
    path.write_text("n_trian: 10\n")
    with pytest.raises(ValueError, match="n_trian"):
        load_config(path)
    path.write_text("targets: {enthalpy: 1.0}\n")
    with pytest.raises(ValueError, match="enthalpy"):
        load_config(path)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


@pytest.fixture(scope="module")
def tiny_ensemble(qm9_graphs, tmp_path_factory):
    paths = []
    for seed in (0, 1):
        out = tmp_path_factory.mktemp(f"member{seed}")
        fit(TrainConfig(out_dir=str(out), model=TINY, batch_size=12, lr=5e-3, max_epochs=40, seed=seed),
            qm9_graphs, qm9_graphs, progress=False)
        paths.append(export_weights(out / "best.pt", out / f"qm9_orbital_{seed}.pt"))
    return paths


def test_predict_properties_on_smiles_mol_and_atoms(tiny_ensemble):
    mol = Chem.AddHs(Chem.MolFromSmiles("CO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    frame = predict_properties(["CC=O", mol, water], models=tiny_ensemble)
    assert list(frame["input"]) == ["CC=O", "CO", "H2O"]
    assert frame["error"].isna().all()
    for column in ("energy_hartree", "homo_ev", "lumo_ev", "gap_ev", "dipole_debye",
                   "energy_std_hartree", "gap_std_ev"):
        assert np.isfinite(frame[column]).all(), column
    assert (frame["energy_std_hartree"] > 0).all()  # two different members disagree a little
    # Δ-learning: the prediction sits near the cheap energy (B3LYP vs HF/STO-3G: ~1 %).
    assert np.all(np.abs(frame["energy_hartree"] / frame["energy_cheap_hartree"] - 1) < 0.03)


def test_a_model_trained_on_some_targets_reports_only_those(qm9_graphs, tiny_ensemble, tmp_path):
    fit(TrainConfig(out_dir=str(tmp_path / "u0"), model=TINY, batch_size=12, max_epochs=2, targets={"energy": 1.0}),
        qm9_graphs, qm9_graphs, progress=False)
    u0 = load_model(tmp_path / "u0" / "best.pt")
    assert u0.target_names == ("energy",)
    assert set(evaluate(u0, qm9_graphs)) == {"energy_mae_mev"}  # untrained heads are not scored
    alone = predict_properties("CO", models=u0)
    assert np.isfinite(alone.loc[0, "energy_hartree"])
    assert alone[["homo_ev", "lumo_ev", "gap_ev", "dipole_debye"]].isna().all(axis=None)  # NaN, not noise
    # With an all-target member: energy from both (a spread), the rest from the one that learnt them.
    mixed = predict_properties("CO", models=[u0, tiny_ensemble[0]])
    assert np.isfinite(mixed.loc[0, "energy_std_hartree"])
    full = predict_properties("CO", models=tiny_ensemble[0])
    assert mixed.loc[0, "gap_ev"] == pytest.approx(full.loc[0, "gap_ev"])
    assert np.isnan(mixed.loc[0, "gap_std_ev"])


def test_model_files_from_before_trained_targets_were_recorded(tiny_ensemble, tmp_path):
    state = torch.load(tiny_ensemble[0], weights_only=False)
    del state["model"]["trained_targets"]  # as written by earlier versions: all-target QM9 models
    torch.save(state, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").target_names == tuple(TARGETS)
    checkpoint = Path(tiny_ensemble[0]).parent / "best.pt"
    energy_only = export_weights(checkpoint, tmp_path / "energy.pt", targets=("energy",))  # e.g. conformer models
    assert load_model(energy_only).target_names == ("energy",)
    with pytest.raises(ValueError, match="enthalpy"):
        export_weights(checkpoint, tmp_path / "bad.pt", targets=("enthalpy",))


def test_model_files_are_loaded_once_while_unchanged(tiny_ensemble, tmp_path):
    import os
    import shutil

    path = tmp_path / "member.pt"
    shutil.copy(tiny_ensemble[0], path)
    first = load_ensemble(path)[0]
    assert load_ensemble([str(path)])[0] is first  # same file version: the loaded model is reused
    shutil.copy(tiny_ensemble[1], path)  # rewritten: another model, read again
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = load_ensemble(path)[0]
    assert second is not first
    assert not torch.equal(next(second.parameters()), next(first.parameters()))


def test_predict_properties_bad_inputs_are_rows_with_reasons(tiny_ensemble):
    overlapping = Atoms("H2O", positions=[[0, 0, 0], [0.05, 0, 0], [0.2, 0.9, 0]])
    frame = predict_properties(["C1CC", "CS", "C[Se]C", "CO", overlapping], models=tiny_ensemble[0])
    errors = list(frame["error"])
    assert "are 0.05 Å apart" in errors[4]
    assert "unclosed ring" in errors[0]
    assert "S are outside the model's training data" in errors[1]  # S: computable, never trained
    assert "Se" in errors[2] and "unsupported" in errors[2]
    assert errors[3] is None and np.isfinite(frame.loc[3, "gap_ev"])
    assert np.isnan(frame.loc[3, "gap_std_ev"])  # one model: no ensemble spread
    big = predict_properties("CCCCCCCCCCO", models=tiny_ensemble[0])
    assert "extrapolation" in big.loc[0, "warning"]


def test_predict_properties_warns_for_charged_and_open_shell_molecules(tiny_ensemble):
    frame = predict_properties(["C[O-]", "[CH3]", "CO"], models=tiny_ensemble)
    assert "charge -1, multiplicity 1" in frame.loc[0, "warning"] and "neutral closed-shell" in frame.loc[0, "warning"]
    assert "charge 0, multiplicity 2" in frame.loc[1, "warning"]
    assert frame.loc[2, "warning"] is None  # own models: no shipped spread reference applies
    assert frame["error"].isna().all()
    fluoride = predict_properties("[F-]")  # shipped models (they know F); STO-3G: all 5 orbitals occupied
    assert np.isnan(fluoride.loc[0, "lumo_ev"]) and "no LUMO or gap" in fluoride.loc[0, "warning"]


def test_shipped_ensemble_flags_a_molecule_its_members_disagree_on():
    # CO2 lies far from QM9's chemistry: the shipped members' HOMOs differ by eV, far above the
    # 99th percentile of their spread on 5,000 unseen QM9 molecules (quantum_features/weights/qm9_orbital_spread.json).
    reference = load_spread_reference()
    assert reference.percentile == "99th"
    thresholds = reference.thresholds
    assert set(thresholds) == {std for _, std in OUTPUT_COLUMNS.values()}
    assert 0.1 < thresholds["gap_std_ev"] < 1.0
    frame = predict_properties("O=C=O")
    assert frame.loc[0, "homo_std_ev"] > thresholds["homo_std_ev"]
    assert "ensemble spread above its 99th percentile" in frame.loc[0, "warning"]
    for column, threshold in thresholds.items():  # every column above its threshold is named, no other
        name, _, unit = column.partition("_std_")
        named = f"{name} {frame.loc[0, column]:.3g} > {threshold:.3g} {UNIT_SYMBOLS[unit]}" in frame.loc[0, "warning"]
        assert named == (frame.loc[0, column] > threshold)


def test_cli_predict_with_the_shipped_ensemble_reports_warnings(tmp_path):
    from typer.testing import CliRunner

    from molops.cli import app

    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(app, ["predict", "O=C=O", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 of 1 predictions carry a warning" in result.output
    assert "ensemble spread above its 99th percentile" in pd.read_csv(out).loc[0, "warning"]


def test_spread_warning_names_the_reference_quantile_and_units():
    from quantum_features.predict import _spread_warning
    from quantum_features.spread import SpreadReference

    reference = SpreadReference(0.95, {"gap_std_ev": 0.2, "dipole_std_debye": 0.5})
    row = {"gap_std_ev": 0.31, "dipole_std_debye": 0.1}
    message = _spread_warning(row, reference)
    assert message.startswith("ensemble spread above its 95th percentile")
    assert "gap 0.31 > 0.2 eV" in message and "dipole" not in message
    assert _spread_warning({"gap_std_ev": 0.1}, reference) is None
    assert _spread_warning(row, SpreadReference()) is None  # no reference, no flag
    assert [ordinal_percentile(q) for q in (0.99, 0.95, 0.5, 0.91, 0.92, 0.93, 0.11, 0.975)] == [
        "99th", "95th", "50th", "91st", "92nd", "93rd", "11th", "97.5th"]


def test_spread_reference_is_the_quantile_of_the_ensemble_spread(tiny_ensemble, qm9_graphs):
    ensemble = load_ensemble(tiny_ensemble)
    reference = calibrate_spread(ensemble, qm9_graphs, quantile=0.5, batch_size=5)
    rows = predict_graphs(ensemble, qm9_graphs)
    spreads = np.array([r["gap_std_ev"] for r in rows])
    assert reference["gap_std_ev"]["threshold"] == pytest.approx(np.quantile(spreads, 0.5))
    errors = np.abs(np.array([r["gap_ev"] for r in rows]) - targets_of(qm9_graphs, TARGETS)["gap"])
    assert reference["gap_std_ev"]["mae_all"] == pytest.approx(errors.mean(), rel=1e-6)
    assert reference["gap_std_ev"]["mae_above"] == pytest.approx(errors[spreads > np.quantile(spreads, 0.5)].mean(), rel=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        calibrate_spread(ensemble[:1], qm9_graphs)
    # the per-molecule errors behind it (and behind the model card's tables)
    per_molecule = ensemble_errors(ensemble, qm9_graphs, batch_size=3)
    assert set(per_molecule) == {"energy", "homo", "lumo", "gap", "dipole"}
    np.testing.assert_allclose(per_molecule["gap"]["error"], errors, atol=1e-6)
    np.testing.assert_allclose(per_molecule["gap"]["std"], spreads, atol=1e-6)
    dipole_errors = np.abs(np.array([r["dipole_debye"] for r in rows]) - targets_of(qm9_graphs, TARGETS)["dipole"])
    np.testing.assert_allclose(per_molecule["dipole"]["error"], dipole_errors, atol=1e-6)  # float32, other batches


def test_model_rejects_unknown_elements(qm9_graphs):
    model = _model(qm9_graphs)
    data = qm9_graphs[0].clone()
    data.z = data.z.clone()
    data.z[0] = 26
    with pytest.raises(ValueError, match=r"\[26\]"):
        model(Batch.from_data_list([data]))


def test_fine_tuning_fits_input_statistics_of_new_elements_only(qm9_graphs):
    # A QM9-trained model meeting sulfur: S features must be normalised, the rest left as trained.
    model = _model(qm9_graphs)
    known = model.node_shift.clone(), model.node_scale.clone()
    thiol = Chem.AddHs(Chem.MolFromSmiles("CS"))
    AllChem.EmbedMolecule(thiol, randomSeed=1)
    data = featurize(Atoms([a.GetSymbol() for a in thiol.GetAtoms()], thiol.GetConformer().GetPositions())).to_data()
    assert model.fit_new_element_statistics([qm9_graphs[0], data]) == [16]
    sulfur = int(model.z_to_index[16])
    changed = (model.node_shift != known[0]).any(dim=1) | (model.node_scale != known[1]).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [sulfur]
    assert model.node_scale[sulfur].min() > 0 and not torch.equal(model.node_scale[sulfur], torch.ones_like(model.node_scale[sulfur]))
    assert model.fit_new_element_statistics([data]) == [16]  # still untrained: fitted again, nothing else touched


def test_shipped_training_config_loads():
    from quantum_features.train import TrainConfig as Config

    config = load_config(Path(__file__).resolve().parents[1] / "quantum_features" / "configs" / "qm9_orbital.yaml")
    assert isinstance(config, Config) and config.model["use_orbital_features"]


def test_cli_predict_and_train(tiny_ensemble, tmp_path):
    from typer.testing import CliRunner

    from molops.cli import app

    runner = CliRunner()
    out = tmp_path / "pred.csv"
    args = ["predict", "CC=O", "--out", str(out)] + [a for p in tiny_ensemble for a in ("--model", str(p))]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert np.isfinite(frame.loc[0, "gap_ev"]) and frame.loc[0, "gap_std_ev"] > 0
    result = runner.invoke(app, ["predict", "C1CC", "--model", str(tiny_ensemble[0])])
    assert result.exit_code == 1 and "unclosed ring" in result.output
    result = runner.invoke(app, ["predict", "CC=O", "--model", str(tmp_path / "missing.pt")])
    assert result.exit_code == 1 and "missing.pt" in result.output

    config = tmp_path / "train.yaml"
    config.write_text(
        f"out_dir: {tmp_path / 'run'}\nn_train: 4\nn_val: 2\nfeature_cache_dir: {tmp_path / 'cache'}\n"
        f"max_epochs: 2\nbatch_size: 2\nmodel: {TINY}\n"
    )
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.output
    assert "validation energy_mae_mev" in result.output
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 2


def _ddp_worker(rank: int, world: int, port: int, graphs_path: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        graphs = torch.load(graphs_path, weights_only=False)
        fit(TrainConfig(out_dir=out_dir, model=TINY, batch_size=3, max_epochs=2), graphs[:8], graphs[8:], progress=False)
    finally:
        dist.destroy_process_group()


def test_training_under_distributed_data_parallel(qm9_graphs, tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.save(qm9_graphs, tmp_path / "graphs.pt")
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "graphs.pt"), str(tmp_path / "run")), nprocs=2, join=True)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")  # rank 0 alone writes
    assert list(metrics["epoch"]) == [0, 1]
    assert (tmp_path / "run" / "best.pt").exists()


def test_shipped_ensemble_predicts_qm9_like_molecules():
    from quantum_features.predict import WEIGHTS_DIR, default_model_paths

    assert len(default_model_paths()) >= 2 and (WEIGHTS_DIR / "MODEL_CARD.md").exists()
    frame = predict_properties(["CC#N", "O"])
    assert frame["error"].isna().all()
    # Acetonitrile in QM9 (B3LYP): U0 -132.718 Ha, gap 9.90 eV, |μ| 3.83 D; loose sanity bounds
    # (the SMILES route uses an MMFF geometry, not the B3LYP one).
    assert abs(frame.loc[0, "energy_hartree"] - (-132.718)) < 0.05
    assert 7.0 < frame.loc[0, "gap_ev"] < 11.0 and 3.0 < frame.loc[0, "dipole_debye"] < 4.8
    assert (frame["gap_std_ev"] > 0).all()
