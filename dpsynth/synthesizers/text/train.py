"""Training loops of the text models: DP-SGD with one clipping unit per record, or plain.

DP-SGD (Abadi et al., CCS 2016) through :mod:`dpsynth.synthesizers._dpsgd`: Poisson sampling
of records from dpsynth's noise source, per-record clipping by Opacus (Yousefpour et al.,
2021) and Gaussian noise from dpsynth's noise source, calibrated before the data is read. A
record is one row of the batch (its tokens padded, its loss averaged over its own bytes), so
the clipped quantity is the gradient of one record's whole loss.

``grad_sample_mode="auto"`` uses dpsynth's book-keeping clipping
(:mod:`~dpsynth.synthesizers._bookkeeping`) when every trainable layer allows it (the byte
transformer does), else Opacus' ``hooks`` mode, whose functorch fallback handles any layer of
a Hugging Face model (``ghost`` supports fewer layer types, and for sequences needs a
``T x T`` Gram matrix per record and layer).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from dpsynth.accounting import NoiseSource, SubsampledGaussianEvent
from dpsynth.errors import PrivacyError
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers.text.model import RecordNLL, split_batch


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast of the forward pass when ``precision == "bfloat16"``."""
    if precision == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def clipping_mode(module: nn.Module, requested: str) -> str:
    """``requested``, with ``"auto"`` resolved: book-keeping when supported, else hooks."""
    if requested != "auto":
        return requested
    from dpsynth.synthesizers import _bookkeeping

    return "bookkeeping" if _bookkeeping.supports(module) else "hooks"


def train_private(module: nn.Module, rows: torch.Tensor, event: SubsampledGaussianEvent, *,
                  noise: NoiseSource, expected_batch_size: int, max_grad_norm: float,
                  learning_rate: float, grad_sample_mode: str, progress: bool,
                  precision: str = "float32") -> tuple[_dpsgd.TrainingLog, str]:
    """Run exactly ``event.steps`` DP-SGD steps on ``rows`` ``(n, 2, length)``.

    Returns the log and the clipping mode that ran.
    """
    device = rows.device
    loader = _dpsgd.batch_loader(rows, _dpsgd.PoissonBatches(
        len(rows), event.sample_rate, event.steps, noise))
    training = _dpsgd.make_private(
        module, torch.optim.Adam(trainable(module), lr=learning_rate), RecordNLL(), loader,
        noise_multiplier=event.noise_multiplier, max_grad_norm=max_grad_norm,
        expected_batch_size=expected_batch_size, noise_fn=_dpsgd.make_noise_fn(noise, device),
        grad_sample_mode=clipping_mode(module, grad_sample_mode))
    wrapped, optimizer, criterion = training.module, training.optimizer, training.criterion

    def step(batch: torch.Tensor) -> torch.Tensor:
        inputs, target = split_batch(batch)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = criterion(wrapped(inputs), target)
        loss.backward()
        optimizer.step()
        return loss.detach()

    try:
        log = _dpsgd.run_steps(
            loader, step=step, empty_step=optimizer.noise_only_step,
            steps_per_epoch=_dpsgd.steps_for(1.0, event.sample_rate), progress=progress,
            description=f"text DP-SGD (σ={event.noise_multiplier:.3g})")
    finally:
        _unwrap(wrapped)
    if log.steps_run != event.steps:
        raise PrivacyError(f"internal error: ran {log.steps_run} DP-SGD steps, but "
                           f"{event.steps} were planned and accounted for.")
    return log, training.mode


def train_plain(module: nn.Module, rows: torch.Tensor, *, steps: int, batch_size: int,
                noise: NoiseSource, learning_rate: float, progress: bool,
                precision: str = "float32") -> _dpsgd.TrainingLog:
    """The non-private reference: the same number of steps on shuffled fixed-size batches."""
    loader = _dpsgd.batch_loader(rows, _dpsgd.ShuffledBatches(len(rows), batch_size, steps,
                                                              noise))
    optimizer = torch.optim.Adam(trainable(module), lr=learning_rate)
    criterion = RecordNLL()
    module.train()

    def step(batch: torch.Tensor) -> torch.Tensor:
        inputs, target = split_batch(batch)
        optimizer.zero_grad(set_to_none=True)
        with autocast(rows.device, precision):
            loss = criterion(module(inputs), target)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return _dpsgd.run_steps(loader, step=step, empty_step=lambda: None,
                            steps_per_epoch=max(1, len(rows) // batch_size), progress=progress,
                            description="text model (non-private)")


def _unwrap(wrapped: Any) -> None:
    """Remove Opacus' hooks and per-sample attributes: the model is a plain module again."""
    for name in ("remove_hooks", "to_standard_module"):
        method = getattr(wrapped, name, None)
        if method is not None:
            method()


__all__ = ["autocast", "clipping_mode", "train_plain", "train_private", "trainable"]
