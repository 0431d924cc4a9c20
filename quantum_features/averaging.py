"""Exponential moving average (EMA) of a model's weights, for both training loops.

Validating, selecting and shipping the average of the recent weights instead of the last step's
is a common remedy for the epoch-to-epoch noise of small-data training (NequIP, MACE and
Allegro train this way): with 1,000 QM9 molecules the validation U0 MAE of the raw weights
jumps by 20–40 meV between neighbouring epochs. Measured here it smooths that curve but did not
lower the orbital network's test U0 (74.7 vs 75.3 meV at 1,000 molecules, decay 0.995) nor the
conformer fine-tune's selection loss, so the shipped configs leave it off. The averaging itself is PyTorch's
`torch.optim.swa_utils.AveragedModel` with an EMA update; this module only adds what the two
loops need around it: buffer hand-over, checkpoint state and the start from a run without one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["WeightAverage"]


class WeightAverage:
    """EMA of `model`'s parameters: after each optimiser step, θ̄ ← decay·θ̄ + (1 − decay)·θ.

    Buffers (input statistics, energy references, element masks) are not averaged: they are
    set before training and are copied from the live model whenever the average is read, so a
    buffer changed after the average was made (e.g. a refitted energy reference) is never stale.

    Args:
        model: the model being trained.
        decay: weight of the old average per step, in (0, 1); 0.999 averages over roughly the
            last 1,000 optimiser steps.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {decay!r}")
        self.decay = decay
        self._model = model
        self._average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))

    @classmethod
    def for_run(cls, model: torch.nn.Module, decay: float | None,
                checkpoint: dict[str, Any] | None) -> WeightAverage | None:
        """The average a training run keeps: None when `decay` is None (or 0), else one continued
        from `checkpoint` (a ``last.pt`` payload; None or one without an average starts afresh)."""
        if not decay:
            return None
        average = cls(model, decay)
        if checkpoint is not None:
            average.load_state_dict(checkpoint.get("ema"))
        return average

    def update(self) -> None:
        """Fold the live model's current parameters into the average (call after each step)."""
        self._average.update_parameters(self._model)

    @property
    def model(self) -> torch.nn.Module:
        """The averaged model (same class and config as the live one), with the live buffers."""
        averaged = self._average.module
        with torch.no_grad():
            for mine, live in zip(averaged.buffers(), self._model.buffers()):
                mine.copy_(live)
        return averaged

    def state_dict(self) -> dict[str, Any]:
        """What `load_state_dict` needs to continue the average (stored in ``last.pt``)."""
        return {"decay": self.decay, "average": self._average.state_dict()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue a stored average; None (a run written without one) starts it from the live weights."""
        if state is None:
            return  # AveragedModel copies the live weights on its first update
        if float(state["decay"]) != self.decay:
            raise ValueError(f"the stored weight average used ema_decay {state['decay']}, the config asks "
                             f"{self.decay}: resuming would mix two averages; keep the run's ema_decay")
        self._average.load_state_dict(state["average"])
