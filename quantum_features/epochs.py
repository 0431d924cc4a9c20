"""Epoch bookkeeping shared by the training loops: best checkpoint, early stopping, resume, time budget.

Both the QM9 property training (`quantum_features.train`) and the conformer fine-tuning
(`quantum_features.conformer_training`) keep the same small progress record in ``last.pt``;
this module owns what it means, so the two loops stop, resume and report alike.
"""

from __future__ import annotations

import time
from typing import Any

import torch

__all__ = ["EpochProgress"]


class EpochProgress:
    """Progress of an epoch-based training run.

    ``state`` is a plain dict (stored in ``last.pt``): ``epoch`` (epochs done), ``best_val_loss``,
    ``best_epoch``, ``since_best``, ``finished``, ``stop_reason`` and ``best_val`` (the best
    epoch's validation metrics).
    """

    def __init__(self, max_epochs: int, patience: int, max_minutes: float | None = None) -> None:
        self.max_epochs = max_epochs
        self.patience = patience
        self.max_minutes = max_minutes
        self.state: dict[str, Any] = {"epoch": 0, "best_val_loss": float("inf"), "best_epoch": -1, "since_best": 0,
                                      "finished": False, "stop_reason": None, "best_val": {}}
        self._started = time.perf_counter()

    def resume(self, checkpoint: dict[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Restore optimiser, scheduler, progress and torch RNG from a ``last.pt`` payload."""
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        stored = dict(checkpoint["progress"])
        if "best_val_mae" in stored:  # name used by runs written before this module existed
            stored["best_val"] = stored.pop("best_val_mae")
        self.state.update(stored)
        torch.set_rng_state(checkpoint["rng_torch"])
        if self.state["stop_reason"] == "max_epochs reached" and self.state["epoch"] < self.max_epochs:
            self.state.update(finished=False, stop_reason=None)  # asked for more epochs

    def checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                   **extra: Any) -> dict[str, Any]:
        """The ``last.pt`` payload that `resume` reads."""
        return {"model": model.state_dict(), "model_config": model.config.to_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "progress": dict(self.state), "rng_torch": torch.get_rng_state(), **extra}

    @property
    def finished(self) -> bool:
        return bool(self.state["finished"])

    def record(self, epoch: int, val_loss: float, metrics: dict[str, float]) -> bool:
        """Book the end of `epoch` (0-based); True when it is the best so far (save best.pt)."""
        improved = val_loss < self.state["best_val_loss"]
        self.state["epoch"] = epoch + 1
        if improved:
            self.state.update(best_val_loss=val_loss, best_epoch=epoch, since_best=0, best_val=dict(metrics))
        else:
            self.state["since_best"] += 1
        if self.state["since_best"] >= self.patience:
            self.state.update(finished=True, stop_reason=f"early stopping: no improvement for {self.patience} epochs")
        elif epoch + 1 >= self.max_epochs:
            self.state.update(finished=True, stop_reason="max_epochs reached")
        return improved

    def out_of_time(self) -> bool:
        """True (and the stop reason set) once this call's time budget is used."""
        if self.max_minutes is None or (time.perf_counter() - self._started) / 60 < self.max_minutes:
            return False
        self.state["stop_reason"] = f"time budget of {self.max_minutes} min used; run again to resume"
        return True
