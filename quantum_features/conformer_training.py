"""Fine-tuning the property network on DFT conformer labels: energies and forces.

Graphs: every labelled structure (`quantum_features.labelling.LabelSet`) is featurised at the
cheap level *with its analytic gradient* (cached in HDF5, resumable) and carries the reference
energy (``y_energy``, Hartree) and forces (``y_forces``, Hartree/Å).

Forces of the model: ``F = −∇E_cheap − ∂E_net/∂R``, where ∇E_cheap is the cheap level's
analytic gradient and ∂E_net/∂R is autograd of the network's energy (with ``dispersion`` set,
that energy includes the D3 term, whose autograd backward is its analytic gradient) through its
explicit geometric inputs (bond vectors: radial basis, spherical harmonics, cutoff envelope). The orbital
features themselves also move with the atoms, and that part of the derivative (through the
SCF) is *not* included: the network learns its correction under this approximation, and the
force errors reported by `evaluate_conformers` measure the result against the DFT forces.

Loss per batch of whole molecules (all their structures together):
``w_E·|ΔE|/s_E + w_rel·|ΔE − mean_molecule(ΔE)|/s_E + w_F·|ΔF|/s_F`` (MAE terms); the relative
term is what conformer ranking needs: energy differences within a molecule.

Metrics (`evaluate_conformers`, held-out molecules): per molecule with ≥ 3 conformers,
R² of the relative energies (each set centred on its own mean, i.e. the best common offset),
Spearman ρ and MAE (kcal/mol); medians over molecules; force MAE (Hartree/Å and kcal/mol/Å).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from scipy.stats import spearmanr
from torch_geometric.data import Batch
from torch_geometric.utils import scatter
from tqdm.auto import tqdm

from molops.runfiles import append_csv, keep_epochs_before, read_yaml_options, save_atomic
from quantum_features.averaging import WeightAverage
from quantum_features.epochs import EpochProgress
from quantum_features.errors import QuantumError
from quantum_features.labelling import LabelSet
from quantum_features.model import ModelConfig, OrbitalPropertyNet, element_counts, gradient_outside_autograd

__all__ = ["ConformerTrainConfig", "energy_and_forces", "evaluate_conformers", "fit_conformers", "label_graphs",
           "split_labels", "train_conformers", "training_labels", "HARTREE_TO_KCAL"]

HARTREE_TO_KCAL = 627.5094740631

log = logging.getLogger(__name__)


def energy_and_forces(model: OrbitalPropertyNet, batch, forces: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Energies [B] (Hartree) and forces [N, 3] (Hartree/Å) of a batch (see the module docstring).

    Forces are −(autograd of the energy + `gradient_outside_autograd`): an orbital model's
    batch needs ``gradient_cheap`` (featurised with ``gradient=True``), since its energy
    contains the cheap level's; a geometry-only model's forces are autograd's alone.
    """
    if not forces:
        return model(batch)["energy"], None
    pos = batch.pos.detach().requires_grad_(True)
    batch.pos = pos
    energy = model(batch)["energy"]
    (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=model.training)
    return energy, -(gradient_outside_autograd(model.config, batch).to(grad.dtype) + grad)


def label_graphs(labels: LabelSet, cache_path: str | Path, *, scheduler: Any = None, n_workers: int | None = None,
                 progress: bool = False) -> list:
    """Graphs of every labelled structure with ``y_energy``, ``y_forces``, ``molecule`` (an
    integer id per molecule_id) and ``conformer_kind`` (1 conformer, 0 distorted); structures
    whose cheap calculation failed are left out (their reason is in the cache journal)."""
    from quantum_features.cache import FeatureCache
    from quantum_features.datasets import featurize_many

    keys = labels.frame["key"].tolist()
    atoms = [labels.atoms(i) for i in range(len(labels))]
    result = featurize_many(atoms, cache_path, names=keys, scheduler=scheduler, n_workers=n_workers,
                            progress=progress, gradient=True).set_index("key")
    molecule_ids = {m: i for i, m in enumerate(sorted(labels.frame["molecule_id"].unique()))}
    graphs = []
    with FeatureCache(cache_path, mode="r") as cache:
        for i, key in enumerate(keys):
            row = result.loc[key]
            if isinstance(row.get("error"), str):
                continue
            data = cache.get(row["cache_key"]).to_data()
            data.y_energy = torch.tensor([labels.frame["energy_hartree"].iloc[i]], dtype=torch.float64)
            data.y_forces = torch.as_tensor(labels.forces[i], dtype=torch.float32)
            data.molecule = torch.tensor([molecule_ids[labels.frame["molecule_id"].iloc[i]]])
            data.conformer_kind = torch.tensor([int(labels.frame["kind"].iloc[i] == "conformer")])
            graphs.append(data)
    return graphs


@dataclass
class ConformerTrainConfig:
    """A fine-tuning run on conformer labels (paths relative to the caller's cwd)."""

    out_dir: str = "runs/conformers"
    labels: str = "quantum_features/data/conformer_labels.npz"
    # Use only the first N structures of `labels` (None: all). The labeller appends, so the first
    # N rows stay the set an earlier run was trained on while the file grows.
    n_structures: int | None = None
    feature_cache: str = "data/conformers/features.h5"
    init: str | None = None  # weights to start from (e.g. a QM9 model); None: from scratch
    # The reference level's empirical dispersion (e.g. "b3lyp-d3bj"), added to the model's energy
    # exactly instead of being learned (quantum_features.dispersion); None: learned like the rest.
    dispersion: str | None = None
    # Start the fine-tune with the init model's energy correction zeroed (baseline + references).
    zero_energy_correction: bool = False
    # Centre the relative-energy loss per molecule ("molecule") or per molecule and structure kind
    # ("molecule_and_kind": conformers among conformers, distorted among distorted), so that the
    # large errors of distorted structures do not swamp the kcal/mol differences that rank conformers.
    relative_within: str = "molecule"
    # Weights of the validation loss that selects the checkpoint (None: the training weights). Each
    # metric enters relative to the starting model's value on the validation molecules, so the
    # weights compare fractional changes, not Hartree against Hartree/Å.
    selection_weights: dict[str, float] | None = None
    model: dict[str, Any] = field(default_factory=dict)  # used when init is None
    test_fraction: float = 0.2  # molecules held out for benchmarks/conformer_ranking.py, never seen in training
    val_fraction: float = 0.2  # of the remaining molecules: early stopping and learning-rate schedule
    split_seed: int = 0
    weights: dict[str, float] = field(default_factory=lambda: {"energy": 0.2, "relative": 1.0, "forces": 1.0})
    batch_molecules: int = 4
    lr: float = 1e-3
    min_lr: float = 1e-5
    lr_patience: int = 10
    max_epochs: int = 300
    patience: int = 40
    max_minutes: float | None = None
    seed: int = 0
    # L2-SP (Li et al., ICML 2018): adds anchor_decay * Σ (θ − θ_start)² to each batch's loss,
    # θ_start being the weights fine-tuning starts from (the init model after its set-up). A few
    # dozen training molecules overfit within a few epochs; this is meant to keep what QM9 taught
    # (on the shipped set it was no better on validation: configs/conformers.yaml). 0: off.
    anchor_decay: float = 0.0
    # EMA of the weights (`quantum_features.averaging`) validated, selected and saved as best.pt;
    # None: the raw weights. An epoch here is only a few optimiser steps (35 molecules, 4 per step).
    ema_decay: float | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> ConformerTrainConfig:
        return cls(**read_yaml_options(path, cls.__dataclass_fields__, "conformer training config"))


def _refit_energy_reference(model: OrbitalPropertyNet, graphs: list, baseline: np.ndarray) -> None:
    """Per-element references of ``E_ref − baseline`` by least squares (the new level's); `baseline`
    is ``model.baseline_energies(graphs)`` (E_cheap, plus E_dispersion when set), Hartree."""
    counts = element_counts(graphs)
    delta = np.array([float(g.y_energy) for g in graphs]) - baseline
    seen = counts.sum(axis=0) > 0
    reference = np.zeros(counts.shape[1])
    reference[seen] = np.linalg.lstsq(counts[:, seen], delta, rcond=None)[0]
    residual = delta - counts @ reference
    with torch.no_grad():
        model.energy_reference.copy_(torch.from_numpy(reference))
        n_atoms = counts.sum(axis=1)
        model.energy_scale.fill_(max(float(np.std(residual / np.sqrt(n_atoms))), 1e-6))
        # Only elements with a reference at the new level count as trained: an element the
        # start model knew but these labels lack would get total energies off by its whole
        # reference (~1.7 Hartree per F atom), so the model refuses it instead.
        model.trained_elements.copy_(torch.from_numpy(seen))


def _molecule_batches(graphs: list, batch_molecules: int, rng: np.random.Generator | None) -> list[list]:
    by_molecule: dict[int, list] = {}
    for g in graphs:
        by_molecule.setdefault(int(g.molecule), []).append(g)
    order = list(by_molecule)
    if rng is not None:
        order = [order[i] for i in rng.permutation(len(order))]
    return [[g for m in order[i:i + batch_molecules] for g in by_molecule[m]] for i in range(0, len(order), batch_molecules)]


def _loss_terms(model, batch, relative_within: str = "molecule") -> dict[str, torch.Tensor]:
    energy, forces = energy_and_forces(model, batch)
    error = energy - batch.y_energy.view(-1).to(energy.dtype)
    if relative_within == "molecule":
        group = batch.molecule.view(-1)
    elif relative_within == "molecule_and_kind":
        group = 2 * batch.molecule.view(-1) + batch.conformer_kind.view(-1)
    else:
        raise ValueError(f"relative_within must be 'molecule' or 'molecule_and_kind', not {relative_within!r}")
    group_index = torch.unique(group, return_inverse=True)[1]
    centred = error - scatter(error, group_index, 0, reduce="mean")[group_index]
    return {"energy": error.abs().mean(), "relative": centred.abs().mean(),
            "forces": (forces - batch.y_forces).abs().mean()}


def _starting_model(config: ConformerTrainConfig, train_graphs: list) -> OrbitalPropertyNet:
    """The model fine-tuning starts from: `config.init` set up for the new level, or a fresh one."""
    from quantum_features.train import load_model

    if config.init:
        model = load_model(config.init).train()
        # Fine-tuning moves the shared layers under the QM9 heads (HOMO, LUMO, gap, dipole):
        # only the energy stays a trained output.
        model.mark_trained_targets(("energy",))
        model.config.dispersion = config.dispersion
        if config.zero_energy_correction:
            model.zero_energy_correction()
        new_elements = model.fit_new_element_statistics(train_graphs)  # e.g. S, Cl after QM9
        if new_elements:
            log.info("input statistics fitted for elements new to %s: %s", config.init, new_elements)
        return model
    torch.manual_seed(config.seed)
    model = OrbitalPropertyNet(ModelConfig.from_dict({**config.model, "dispersion": config.dispersion}))
    model.fit_statistics(train_graphs, {"energy": np.array([float(g.y_energy) for g in train_graphs])})
    return model


def anchor_distance(model: torch.nn.Module, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ (θ − θ_anchor)² over the model's parameters (the L2-SP penalty before its weight)."""
    return sum(((p - anchor[name]) ** 2).sum() for name, p in model.named_parameters())


def _data_fingerprint(train_graphs: list, val_graphs: list) -> dict[str, Any]:
    """Sizes and a hash of the reference energies of the training and validation structures."""
    digest = hashlib.sha256()
    for graphs in (train_graphs, val_graphs):
        digest.update(np.sort([float(g.y_energy) for g in graphs]).tobytes() + b"|")
    return {"n_train": len(train_graphs), "n_val": len(val_graphs), "sha256": digest.hexdigest()[:16]}


def fit_conformers(config: ConformerTrainConfig, train_graphs: list, val_graphs: list, *,
                   progress: bool = True) -> dict[str, Any]:
    """Train (or resume from ``last.pt``) in ``config.out_dir``; returns the best validation metrics."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    torch.manual_seed(config.seed)
    data = _data_fingerprint(train_graphs, val_graphs)
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state.get("data", data) != data:  # e.g. the label file grew and n_structures was not set
            raise QuantumError(
                f"{last} was trained on other structures ({state['data']['n_train']} training / "
                f"{state['data']['n_val']} validation then, {data['n_train']} / {data['n_val']} now): resuming would "
                "mix two runs; set n_structures to the run's, or choose another out_dir to start afresh")
        model = OrbitalPropertyNet(ModelConfig.from_dict(state["model_config"]))
        model.load_state_dict(state["model"])
        model.mark_trained_targets(("energy",))  # a run from before models recorded them
    else:
        state = None
        model = _starting_model(config, train_graphs)
    # The L2-SP anchor: the starting weights (rebuilt the same way when resuming).
    anchor = None
    if config.anchor_decay > 0:
        start_model = model if state is None else _starting_model(config, train_graphs)
        anchor = {name: p.detach().clone() for name, p in start_model.named_parameters()}
    baseline, baseline_gradients = model.baseline_energies_and_gradients(train_graphs)
    if state is None:
        _refit_energy_reference(model, train_graphs, baseline)
    # Force-loss unit: the mean force the network itself has to supply (reference minus the fixed
    # part of the model's force, i.e. the cheap level's and, when set, the dispersion's).
    residual_forces = torch.cat([(g.y_forces + gradient).reshape(-1)
                                 for g, gradient in zip(train_graphs, baseline_gradients)])
    scales = {"energy": float(model.energy_scale) * math.sqrt(np.mean([len(g.z) for g in train_graphs])),
              "forces": max(float(residual_forces.abs().mean()), 1e-6)}
    scales["relative"] = scales["energy"]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=config.lr_patience,
                                                           min_lr=config.min_lr)
    progress_state = EpochProgress(config.max_epochs, config.patience, config.max_minutes)
    if state is not None:
        progress_state.resume(state, optimizer, scheduler)
    if progress_state.finished:
        return progress_state.state
    average = WeightAverage.for_run(model, config.ema_decay, state)
    # The starting model's validation metrics: the unit of each term of the selection loss.
    start = state.get("selection_reference") if state is not None else None
    if start is None:  # a fresh run (or one written before this was stored: its current model)
        start = _selection_metrics(evaluate_conformers(model, val_graphs))
        log.info("starting model on the validation molecules: %s", start)
    (out / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))
    keep_epochs_before(out / "metrics.csv", progress_state.state["epoch"])
    epochs = tqdm(range(progress_state.state["epoch"], config.max_epochs), desc=f"train {out.name}",
                  initial=progress_state.state["epoch"], total=config.max_epochs, disable=not progress)
    for epoch in epochs:
        tick = time.perf_counter()
        model.train()
        rng = np.random.default_rng([config.seed, epoch])
        losses = []
        for graphs in _molecule_batches(train_graphs, config.batch_molecules, rng):
            terms = _loss_terms(model, Batch.from_data_list(graphs), config.relative_within)
            loss = sum(config.weights.get(k, 0.0) * v.float() / scales[k] for k, v in terms.items())
            if anchor is not None:
                loss = loss + config.anchor_decay * anchor_distance(model, anchor)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            if average is not None:
                average.update()
            losses.append(float(loss.detach()))
        judged = average.model if average is not None else model
        metrics = evaluate_conformers(judged, val_graphs)
        select = config.selection_weights if config.selection_weights is not None else config.weights
        current = _selection_metrics(metrics)
        val_loss = sum(weight * current[k] / max(start[k], 1e-12) for k, weight in select.items()
                       if weight and math.isfinite(current[k]) and math.isfinite(start[k]))
        scheduler.step(val_loss)
        improved = progress_state.record(epoch, val_loss, metrics)
        append_csv(out / "metrics.csv", {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                                         **metrics, "lr": optimizer.param_groups[0]["lr"],
                                         "seconds": time.perf_counter() - tick})
        if improved:
            save_atomic({"model": judged.state_dict(), "model_config": model.config.to_dict(), "epoch": epoch,
                         "val": metrics, "train_config": asdict(config)}, out / "best.pt")
        ema = {"ema": average.state_dict()} if average is not None else {}
        save_atomic(progress_state.checkpoint(model, optimizer, scheduler, selection_reference=start, data=data, **ema),
                    last)
        epochs.set_postfix(val_loss=f"{val_loss:.3f}", r2=f"{metrics['median_r2']:.2f}")
        if progress_state.finished or progress_state.out_of_time():
            break
    return progress_state.state


def _selection_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The validation errors model selection weighs: energy and relative (kcal/mol), forces (Hartree/Å).

    Selection follows the job: ``relative`` is the relative-energy error of the (MMFF94)
    conformers, i.e. ranking, not of the distorted structures (those enter through forces).
    """
    relative = metrics["conformer_relative_mae_kcal_mol"]
    return {"relative": metrics["relative_mae_kcal_mol"] if math.isnan(relative) else relative,
            "energy": metrics["energy_mae_kcal_mol"], "forces": metrics["force_mae_hartree_per_angstrom"]}


def predict_label_graphs(models: list[OrbitalPropertyNet], graphs: list, forces: bool = True,
                         batch_size: int = 16) -> tuple[np.ndarray, list[np.ndarray]]:
    """Ensemble-mean energies [n] (Hartree) and forces (list of [N_i, 3], Hartree/Å)."""
    energies, force_list = [], []
    for start in range(0, len(graphs), batch_size):
        batch = Batch.from_data_list(graphs[start:start + batch_size])
        member_e, member_f = [], []
        for model in models:
            model.eval()
            with torch.set_grad_enabled(forces):
                e, f = energy_and_forces(model, batch.clone(), forces=forces)
            member_e.append(e.detach().double().numpy())
            if forces:
                member_f.append(f.detach().double().numpy())
        energies.append(np.mean(member_e, axis=0))
        if forces:
            mean_f = np.mean(member_f, axis=0)
            bounds = np.cumsum([0] + [len(g.z) for g in graphs[start:start + batch_size]])
            force_list += [mean_f[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return np.concatenate(energies) if energies else np.zeros(0), force_list


def conformer_metrics(frame: pd.DataFrame, predicted: str, reference: str = "reference_hartree",
                      min_conformers: int = 3) -> dict[str, float]:
    """Median R², Spearman ρ and MAE (kcal/mol) of relative energies per molecule.

    `frame` has ``molecule`` and the two energy columns (Hartree); energies of each molecule
    are centred on their own mean before R² and MAE (the best common offset).
    """
    r2, rho, mae = [], [], []
    for _, group in frame.groupby("molecule"):
        if len(group) < min_conformers:
            continue
        ref = (group[reference] - group[reference].mean()).to_numpy() * HARTREE_TO_KCAL
        pred = (group[predicted] - group[predicted].mean()).to_numpy() * HARTREE_TO_KCAL
        spread = np.sum(ref**2)
        r2.append(1 - np.sum((pred - ref) ** 2) / spread if spread > 0 else np.nan)
        rho.append(spearmanr(pred, ref).statistic)
        mae.append(np.mean(np.abs(pred - ref)))
    return {"median_r2": float(np.nanmedian(r2)) if r2 else math.nan,
            "median_spearman": float(np.nanmedian(rho)) if rho else math.nan,
            "relative_mae_kcal_mol": float(np.mean(mae)) if mae else math.nan,
            "n_molecules": len(r2)}


def evaluate_conformers(models: OrbitalPropertyNet | list[OrbitalPropertyNet], graphs: list) -> dict[str, float]:
    """Validation metrics on held-out graphs: conformer ranking (conformers only), energy MAE
    (kcal/mol, absolute), relative-energy MAE over all structures and over conformers only
    (``conformer_relative_mae_kcal_mol``, molecules with ≥ 2 conformers), force MAE."""
    models = models if isinstance(models, list) else [models]
    if not graphs:
        raise ValueError("no validation structures: hold out at least one labelled molecule")
    energies, forces = predict_label_graphs(models, graphs, forces=True)
    frame = pd.DataFrame({"molecule": [int(g.molecule) for g in graphs],
                          "kind": [int(g.conformer_kind) for g in graphs],
                          "reference_hartree": [float(g.y_energy) for g in graphs], "predicted": energies})
    ranking = conformer_metrics(frame[frame["kind"] == 1], "predicted")
    everything = conformer_metrics(frame, "predicted", min_conformers=2)
    force_errors = np.concatenate([np.abs(f - g.y_forces.double().numpy()).ravel() for f, g in zip(forces, graphs)])
    conformers_only = conformer_metrics(frame[frame["kind"] == 1], "predicted", min_conformers=2)
    return {**ranking, "relative_mae_kcal_mol": everything["relative_mae_kcal_mol"],
            "conformer_relative_mae_kcal_mol": conformers_only["relative_mae_kcal_mol"],
            "energy_mae_kcal_mol": float(np.mean(np.abs(frame["predicted"] - frame["reference_hartree"])) * HARTREE_TO_KCAL),
            "force_mae_hartree_per_angstrom": float(force_errors.mean()),
            "force_mae_kcal_mol_per_angstrom": float(force_errors.mean() * HARTREE_TO_KCAL)}


def split_labels(labels: LabelSet, test_fraction: float = 0.2, val_fraction: float = 0.2,
                 seed: int = 0) -> tuple[LabelSet, LabelSet, LabelSet]:
    """(train, validation, test) by whole molecules, stable as the label set grows.

    Test molecules (``split_by_molecule(test_fraction, seed)``) are never used for training
    or model selection; validation molecules (a ``val_fraction`` of the rest, hash seed
    ``seed + 1``) drive early stopping.
    """
    rest, test = labels.split_by_molecule(test_fraction, seed)
    train, val = rest.split_by_molecule(val_fraction, seed + 1)
    return train, val, test


def training_labels(config: ConformerTrainConfig, root: str | Path | None = None) -> LabelSet:
    """The label set a run trains on: `config.labels` (relative to `root`, default the cwd),
    cut to its first `config.n_structures` structures when set."""
    path = Path(root) / config.labels if root is not None else Path(config.labels)
    labels = LabelSet.load(path)
    if config.n_structures is None:
        return labels
    if not 0 < config.n_structures <= len(labels):
        raise QuantumError(f"{path}: n_structures = {config.n_structures}, but the file holds {len(labels)} "
                           "structures (it must be between 1 and that)")
    return labels.subset(np.arange(config.n_structures))


def run_splits(config: ConformerTrainConfig, root: str | Path | None = None) -> tuple[LabelSet, LabelSet, LabelSet]:
    """(train, validation, test) label sets of a run: `training_labels` split by `split_labels`
    with the config's fractions and seed (what the benchmarks score a run on)."""
    return split_labels(training_labels(config, root), config.test_fraction, config.val_fraction, config.split_seed)


def train_conformers(config: ConformerTrainConfig | str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Load the labels, hold out whole molecules, featurise (cached) and `fit_conformers`."""
    if not isinstance(config, ConformerTrainConfig):
        config = ConformerTrainConfig.from_file(config)
    labels = training_labels(config)
    _, val_set, test_set = split_labels(labels, config.test_fraction, config.val_fraction, config.split_seed)
    cache = Path(config.feature_cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    graphs = label_graphs(labels, cache, progress=progress)
    ids = sorted(labels.frame["molecule_id"].unique())
    val_ids, test_ids = set(val_set.frame["molecule_id"]), set(test_set.frame["molecule_id"])
    val_index = {i for i, m in enumerate(ids) if m in val_ids}
    test_index = {i for i, m in enumerate(ids) if m in test_ids}
    train_graphs = [g for g in graphs if int(g.molecule) not in val_index | test_index]
    val_graphs = [g for g in graphs if int(g.molecule) in val_index]
    return fit_conformers(config, train_graphs, val_graphs, progress=progress)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Fine-tune the property network on conformer labels (resumable).")
    parser.add_argument("config", help="YAML config (fields of ConformerTrainConfig)")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--out-dir", default=None, help="override the config's out_dir (e.g. an ensemble member)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed (ensemble members)")
    parser.add_argument("--init", default=None, help="override the config's starting weights (ensemble members)")
    args = parser.parse_args()
    config = ConformerTrainConfig.from_file(args.config)
    if args.max_minutes is not None:
        config.max_minutes = args.max_minutes
    if args.out_dir is not None:
        config.out_dir = args.out_dir
    if args.seed is not None:  # the split stays (split_seed is separate); batch order changes
        config.seed = args.seed
    if args.init is not None:
        config.init = args.init
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    state = train_conformers(config)
    print(f"epoch {state['epoch']}: best validation {state['best_val']} ({state['stop_reason'] or 'running'})")


if __name__ == "__main__":
    main()
