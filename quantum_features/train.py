"""Training the property network: config file, checkpoints, resume, early stopping.

A run lives in one directory: ``config.yaml`` (what was asked), ``metrics.csv`` (one row per
epoch: losses, validation MAE per target in meV / Debye, learning rate, seconds),
``last.pt`` (everything needed to resume: model, optimiser, scheduler, epoch, early-stopping
state, random-number states) and ``best.pt`` (the weights with the lowest validation loss).
Running the same config again resumes from ``last.pt``; a run that stopped early or used up
``max_epochs`` is left as it is. ``max_minutes`` ends a call cleanly after the current epoch,
so long trainings spread over several sessions.

Loss: Σ_t w_t · MAE_t / s_t over the targets, with s_t the spread of what the model has to
learn (from `OrbitalPropertyNet.fit_statistics`), so targets in different units weigh alike.
Learning rate: Adam with ReduceLROnPlateau on the validation loss. Under
``torch.distributed`` (launched with torchrun) the model is wrapped in
DistributedDataParallel, batches are sharded with a DistributedSampler and rank 0 writes.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.utils.data.distributed import DistributedSampler
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from molops.runfiles import append_csv, keep_epochs_before, load_torch_file, save_atomic
from quantum_features.averaging import WeightAverage
from quantum_features.epochs import EpochProgress
from quantum_features.model import (INTENSIVE_TARGETS, TARGETS, ModelConfig, OrbitalPropertyNet, options_from_dict,
                                    target_mask)

__all__ = ["TrainConfig", "load_config", "train", "fit", "evaluate", "load_model", "export_weights", "targets_of",
           "run_wall_time"]

#: MAE reporting units: target -> (column suffix, factor from the model's unit).
REPORT_UNITS: dict[str, tuple[str, float]] = {
    "energy": ("mev", 27211.386245988),
    "homo": ("mev", 1000.0),
    "lumo": ("mev", 1000.0),
    "gap": ("mev", 1000.0),
    "dipole": ("debye", 1.0),
}


@dataclass
class TrainConfig:
    """One training run (see the module docstring). Paths are relative to the caller's cwd."""

    out_dir: str = "runs/qm9"
    model: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=lambda: {t: 1.0 for t in TARGETS})
    n_train: int = 1000
    n_val: int = 1000
    feature_cache_dir: str = "data/qm9"
    batch_size: int = 32
    lr: float = 2e-3
    lr_factor: float = 0.5
    lr_patience: int = 10
    min_lr: float = 1e-5
    max_epochs: int = 500
    patience: int = 40
    max_minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    # EMA of the weights (`quantum_features.averaging`): validation, best.pt and export use the
    # average. None: the raw weights (runs written before the option existed).
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        unknown = set(self.targets) - set(TARGETS)
        if unknown:
            raise ValueError(f"unknown targets {sorted(unknown)}; known: {list(TARGETS)}")
        ModelConfig.from_dict(self.model)  # validates early

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return options_from_dict(cls, values, "training")


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML training config (keys: the fields of `TrainConfig`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such training config")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of options, got {type(values).__name__}")
    return TrainConfig.from_dict(values)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def targets_of(graphs: list, names) -> dict[str, np.ndarray]:
    """name -> [n_graphs] array of the graphs' ``y_<name>`` values."""
    return {t: np.array([float(getattr(g, f"y_{t}")) for g in graphs]) for t in names}


def _loss_scales(model: OrbitalPropertyNet, graphs: list) -> dict[str, float]:
    mean_atoms = float(np.mean([g.z.shape[0] for g in graphs]))
    scales = {"energy": float(model.energy_scale) * math.sqrt(mean_atoms), "dipole": float(model.dipole_scale)}
    scales.update({t: float(model.intensive_scale[k]) for k, t in enumerate(INTENSIVE_TARGETS)})
    return scales


def _errors(out: dict[str, torch.Tensor], batch, names) -> dict[str, torch.Tensor]:
    errors = {}
    for t in names:
        prediction = out["dipole_norm"] if t == "dipole" else out[t]
        truth = getattr(batch, f"y_{t}").view(-1).to(prediction.dtype)
        errors[t] = prediction - truth
    return errors


def _loss(errors: dict[str, torch.Tensor], weights: dict[str, float], scales: dict[str, float]) -> torch.Tensor:
    total = 0.0
    for t, e in errors.items():
        ok = torch.isfinite(e)
        if ok.any():
            total = total + weights[t] * e[ok].abs().mean().float() / scales[t]
    return total


@torch.no_grad()
def evaluate(model: OrbitalPropertyNet, graphs: list, targets=None, batch_size: int = 64,
             device: str | torch.device = "cpu") -> dict[str, float]:
    """MAE per target on `graphs` in reporting units (``energy_mae_mev``, ``gap_mae_mev``,
    ``dipole_mae_debye``, ...); `targets` defaults to those the model was trained on."""
    targets = model.target_names if targets is None else tuple(targets)
    model.eval()
    absolute = {t: [] for t in targets}
    for batch in DataLoader(graphs, batch_size=batch_size):
        batch = batch.to(device)
        for t, e in _errors(model(batch), batch, targets).items():
            absolute[t].append(e.abs().double().cpu())
    result = {}
    for t, chunks in absolute.items():
        suffix, factor = REPORT_UNITS[t]
        values = torch.cat(chunks)
        values = values[torch.isfinite(values)]
        result[f"{t}_mae_{suffix}"] = float(values.mean()) * factor if len(values) else float("nan")
    return result


def fit(config: TrainConfig, train_graphs: list, val_graphs: list, *, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) in ``config.out_dir``; returns the final state summary.

    Returns:
        ``{"epoch", "best_epoch", "best_val_loss", "finished", "stop_reason", "val_mae"}``
        where ``val_mae`` holds the best checkpoint's validation MAEs.
    """
    rank, world = _distributed()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(config.device)
    names = [t for t, w in config.targets.items() if w > 0]
    last = out / "last.pt"

    torch.manual_seed(config.seed)
    model = OrbitalPropertyNet(ModelConfig.from_dict(config.model))
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        model.mark_trained_targets(names)  # a run from before models recorded them
    else:
        model.fit_statistics(train_graphs, targets_of(train_graphs, names))
        state = None
    model.to(device)
    average = WeightAverage.for_run(model, config.ema_decay, state)
    scales = _loss_scales(model, train_graphs)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr
    )
    progress_state = EpochProgress(config.max_epochs, config.patience, config.max_minutes)
    if state is not None:
        progress_state.resume(state, optimizer, scheduler)
    if progress_state.finished:
        return _summary(progress_state.state)
    if rank == 0:
        (out / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))

    trainer = model
    if world > 1:  # heads of targets left out of the loss get no gradient
        trainer = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=len(names) < len(TARGETS))
    sampler = DistributedSampler(train_graphs, num_replicas=world, rank=rank, seed=config.seed) if world > 1 else None
    generator = torch.Generator()  # seeded per epoch below: a resumed run shuffles as an uninterrupted one
    loader = DataLoader(train_graphs, batch_size=config.batch_size, shuffle=sampler is None,
                        sampler=sampler, generator=generator if sampler is None else None)
    metrics_path = out / "metrics.csv"
    if rank == 0:
        keep_epochs_before(metrics_path, progress_state.state["epoch"])
    epochs = tqdm(range(progress_state.state["epoch"], config.max_epochs), desc=f"train {out.name}",
                  initial=progress_state.state["epoch"], total=config.max_epochs, disable=not progress or rank != 0)
    for epoch in epochs:
        if sampler is not None:
            sampler.set_epoch(epoch)
        generator.manual_seed(config.seed + epoch)
        model.train()
        tick = time.perf_counter()
        losses = []
        for batch in loader:
            batch = batch.to(device)
            loss = _loss(_errors(trainer(batch), batch, names), config.targets, scales)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            if average is not None:
                average.update()
            losses.append(float(loss.detach()))
        judged = average.model if average is not None else model
        val = evaluate(judged, val_graphs, names, device=device)
        val_loss = sum(
            config.targets[t] * val[f"{t}_mae_{REPORT_UNITS[t][0]}"] / REPORT_UNITS[t][1] / scales[t] for t in names
        )
        scheduler.step(val_loss)
        improved = progress_state.record(epoch, val_loss, val)
        lr = optimizer.param_groups[0]["lr"]
        if rank == 0:
            row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss, **val,
                   "lr": lr, "seconds": time.perf_counter() - tick}
            append_csv(metrics_path, row)
            if improved:
                save_atomic({"model": judged.state_dict(), "model_config": model.config.to_dict(),
                       "epoch": epoch, "val_mae": val, "train_config": asdict(config)}, out / "best.pt")
            ema = {"ema": average.state_dict()} if average is not None else {}
            save_atomic(progress_state.checkpoint(model, optimizer, scheduler, train_config=asdict(config), **ema),
                        last)
            epochs.set_postfix(val_loss=f"{val_loss:.3f}", lr=f"{lr:.1e}")
        if progress_state.finished or progress_state.out_of_time():
            break
    return _summary(progress_state.state)


def _summary(progress_state: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": progress_state["epoch"], "best_epoch": progress_state["best_epoch"],
            "best_val_loss": progress_state["best_val_loss"], "finished": progress_state["finished"],
            "stop_reason": progress_state["stop_reason"], "val_mae": progress_state["best_val"]}


def run_wall_time(run: str | Path) -> tuple[float, int]:
    """(minutes spent training and validating, epochs) of a run, from its metrics.csv."""
    path = Path(run) / "metrics.csv"
    if not path.exists():
        return float("nan"), 0
    with open(path, newline="") as handle:
        seconds = [float(r["seconds"]) for r in csv.DictReader(handle)]
    return sum(seconds) / 60, len(seconds)



def train(config: TrainConfig | str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Train on QM9 as `config` says: featurise (cached) the first ``n_train`` training and
    ``n_val`` validation molecules of the fixed split, then `fit`."""
    from quantum_features.datasets import qm9_graphs

    if not isinstance(config, TrainConfig):
        config = load_config(config)
    torch.set_num_threads(os.cpu_count() or 1)
    cache = Path(config.feature_cache_dir)
    train_graphs = qm9_graphs("train", config.n_train, cache / "train.h5", progress=progress)
    val_graphs = qm9_graphs("val", config.n_val, cache / "val.h5", progress=progress)
    return fit(config, train_graphs, val_graphs, progress=progress)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> OrbitalPropertyNet:
    """A model from a checkpoint or exported weights file, in eval mode."""
    state = load_torch_file(path, "model", keys=("model", "model_config"))
    model = OrbitalPropertyNet(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def export_weights(checkpoint: str | Path, path: str | Path, *, targets: Sequence[str] | None = None,
                   **metadata: Any) -> Path:
    """Write the inference-only part of a checkpoint (config + weights + `metadata`).

    Args:
        targets: record these as the model's trained targets (`OrbitalPropertyNet.target_names`),
            for checkpoints written before models recorded them; default: as the checkpoint says.
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    weights = dict(state["model"])
    if targets is not None:
        weights["trained_targets"] = target_mask(targets)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"model": weights, "model_config": state["model_config"],
           "val_mae": state.get("val_mae"), **metadata}, path)
    return path
