"""Training loops of the autoregressive table model: plain and DP-SGD.

DP-SGD (Abadi et al., CCS 2016) runs on Poisson-sampled batches with per-row clipping by
book-keeping (Bu et al., ICML 2023) through :mod:`dpsynth.synthesizers._dpsgd`; the caller
plans and records the spend. On CUDA the forward pass runs under bfloat16 autocast (norms and
clipped sums are formed in float32 by the clipper). Nothing here knows about synthesizers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers._dpsgd_base import autocast
from dpsynth.synthesizers.ar.model import ARTransformer, RowLoss


@dataclass(frozen=True)
class DPSGDSettings:
    """The DP-SGD parameters of one run (the event's ``sigma``, ``q`` and ``steps``)."""

    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    expected_batch_size: int
    grad_sample_mode: str = "auto"


def _step_fn(module: Callable[..., Any], criterion: Callable[..., Any], optimizer: Any,
             device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    def step(batch: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, "bfloat16" if device.type == "cuda" else "float32"):
            logits = module(batch)
        loss = criterion(logits, batch)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def train_plain(model: ARTransformer, loader: DataLoader, *, learning_rate: float,
                steps_per_epoch: int, progress: bool) -> _dpsgd.TrainingLog:
    """Non-private training (Adam, mean loss) over ``loader``'s batches."""
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    return _dpsgd.run_steps(loader, step=_step_fn(model, RowLoss(), optimizer, device),
                            empty_step=lambda: None, steps_per_epoch=steps_per_epoch,
                            progress=progress, description="dpar (non-private)")


def train_private(model: ARTransformer, loader: DataLoader, settings: DPSGDSettings, *,
                  learning_rate: float, noise_fn: _dpsgd.NoiseFn, progress: bool
                  ) -> tuple[_dpsgd.TrainingLog, str]:
    """DP-SGD over ``loader``'s Poisson batches; returns the log and the clipping mode run."""
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    training = _dpsgd.make_private(
        model, optimizer, RowLoss(), loader, noise_multiplier=settings.noise_multiplier,
        max_grad_norm=settings.max_grad_norm, expected_batch_size=settings.expected_batch_size,
        noise_fn=noise_fn, grad_sample_mode=settings.grad_sample_mode)
    step = _step_fn(training.module, training.criterion, training.optimizer, device)
    try:
        log = _dpsgd.run_steps(
            loader, step=step, empty_step=training.optimizer.noise_only_step,
            steps_per_epoch=_dpsgd.steps_for(1.0, settings.sample_rate), progress=progress,
            description=f"dpar DP-SGD (σ={settings.noise_multiplier:.3g})")
    finally:
        training.module.to_standard_module()  # type: ignore[operator]
    return log, training.mode


__all__ = ["DPSGDSettings", "train_plain", "train_private"]
