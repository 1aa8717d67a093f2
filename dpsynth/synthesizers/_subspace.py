"""DP-SGD in the span of the model's own per-row gradients.

Plain DP-SGD adds noise of norm ``sigma C sqrt(d)`` to a sum of clipped per-row gradients
whose mean has norm at most ``C``, for a model of ``d`` parameters. On a small table the noise's
share of a step, ``sigma sqrt(d) / B`` for an expected batch ``B``, is several times the
signal (2-11 on tables of 400-2,400 rows at epsilon 1), and no setting of the model's width,
bins or optimiser moved it (``docs/benchmarks.md``).

Here the noise lives in a subspace of ``k`` dimensions instead. Every ``every`` steps,
``k`` rows are drawn from the current model and an orthonormal basis ``P`` (``d x k``) of
the span of their per-row gradients is taken (a QR decomposition). Each private row's
gradient ``g`` is projected, ``P^T g``, clipped to norm ``C`` in the ``k`` dimensions, the
clipped rows are summed, ``N(0, sigma^2 C^2 I_k)`` is added, and the step's gradient is
``P (sum + noise) / B``.

Privacy: ``P`` is a function of the weights released by the earlier steps and of
randomness that does not depend on the data, so under adaptive composition each step is the
Poisson-subsampled Gaussian mechanism in ``R^k`` with sensitivity ``C``; mapping the noisy
sum back through ``P`` is post-processing. The noise multiplier, sampling rate and step
count, and hence the PLD accounting, are exactly those of plain DP-SGD.

Why the model's own rows: the covariance of per-row gradients under the model is its Fisher
information, and the gradient of the data's likelihood concentrates where that is large
(Gur-Ari, Roberts and Dyer, "Gradient descent happens in a tiny subspace", 2018). Projecting
onto a subspace found without privacy cost follows Zhou, Wu and Banerjee ("Bypassing the
ambient dimension: private SGD with gradient subspace identification", ICLR 2021) and Yu,
Zhang, Chen, Yin and Liu ("Do not let privacy overbill utility: gradient embedding
perturbation for private learning", ICLR 2021), who take the subspace from public data; here
there is none, and the model's samples stand in for it.

Per-row gradients come from :mod:`torch.func` (``vmap`` over ``grad``), so any module whose
loss can be written for one row works; nothing here knows about tables.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from dpsynth.accounting import NoiseSource
from dpsynth.synthesizers import _dpsgd

#: Rows per chunk of per-row gradients (bounds the memory at ``CHUNK x d`` floats).
CHUNK = 256

RowLoss = Callable[[Callable[[torch.Tensor], Any], torch.Tensor], torch.Tensor]
"""``row_loss(forward, rows)``: the per-row losses ``(n,)`` of a batch of rows, where
``forward(rows)`` is the module's output for them."""


def noise_share(noise_multiplier: float, n_parameters: int, batch: int) -> float:
    """The norm of plain DP-SGD's noise over the largest mean clipped signal (``C`` = 1):
    ``sigma sqrt(d) / B``. Fixed before training from the plan and the model's size."""
    return float(noise_multiplier) * math.sqrt(int(n_parameters)) / float(batch)


class RowGradients:
    """Per-row gradients of ``row_loss`` for ``module``'s trainable parameters, flattened."""

    def __init__(self, module: nn.Module, row_loss: RowLoss):
        self.module = module
        self.params = {n: p for n, p in module.named_parameters() if p.requires_grad}

        def one(weights: dict[str, torch.Tensor], row: torch.Tensor) -> torch.Tensor:
            return row_loss(lambda x: functional_call(module, weights, (x,)), row[None]).sum()

        self._per_row = vmap(grad(one), in_dims=(None, 0))

    @property
    def size(self) -> int:
        """``d``: the number of trainable parameters."""
        return sum(p.numel() for p in self.params.values())

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """``(len(rows), d)`` per-row gradients, in float32."""
        weights = {n: p.detach() for n, p in self.params.items()}
        parts = []
        for start in range(0, len(rows), CHUNK):
            with warnings.catch_warnings():  # attention's backward has no batching rule yet
                warnings.filterwarnings("ignore", message="There is a performance drop")
                g = self._per_row(weights, rows[start:start + CHUNK])
            parts.append(torch.cat([g[n].reshape(len(g[n]), -1).float() for n in self.params],
                                   dim=1))
        return torch.cat(parts)

    def assign(self, flat: torch.Tensor) -> None:
        """Set the parameters' ``.grad`` from one flat gradient of length ``d``."""
        offset = 0
        for p in self.params.values():
            p.grad = flat[offset:offset + p.numel()].view_as(p).to(p.dtype).clone()
            offset += p.numel()


def span_basis(grads: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis ``(d, k)`` of the span of the rows of ``grads`` (``k`` rows)."""
    q, _ = torch.linalg.qr(grads.T.double(), mode="reduced")
    return q.to(grads.dtype)


def train_projected(module: nn.Module, rows: torch.Tensor, row_loss: RowLoss,
                    draw_probes: Callable[[], torch.Tensor], *, sample_rate: float,
                    steps: int, noise_multiplier: float, max_grad_norm: float, batch: int,
                    noise_fn: _dpsgd.NoiseFn, sampling: NoiseSource, learning_rate: float,
                    after_step: Callable[[torch.optim.Optimizer], Callable[[], None] | None],
                    every: int, progress: bool, description: str) -> _dpsgd.TrainingLog:
    """Run ``steps`` DP-SGD steps of ``module`` on ``rows`` in the probes' gradient span.

    ``draw_probes()`` returns rows drawn from the current model (no private data); the basis
    is refreshed from them every ``every`` steps, empty batches included. ``sampling`` is the
    noise source of the Poisson batches; ``after_step(optimizer)`` builds the per-step
    learning rate scheduler call. The noise is ``noise_fn(reference, sigma C)`` in the
    basis' coordinates.
    """
    grads = RowGradients(module, row_loss)
    optimizer = torch.optim.Adam(list(grads.params.values()), lr=learning_rate)
    schedule = after_step(optimizer)
    clip, std = float(max_grad_norm), float(noise_multiplier) * float(max_grad_norm)
    state: dict[str, torch.Tensor | int] = {"t": 0}

    def basis() -> torch.Tensor:
        if int(state["t"]) % every == 0:
            state["basis"] = span_basis(grads(draw_probes()))
        state["t"] = int(state["t"]) + 1
        return state["basis"]  # type: ignore[return-value]

    def apply(p: torch.Tensor, total: torch.Tensor) -> None:
        grads.assign(p @ (total + noise_fn(total, std)) / batch)
        optimizer.step()

    def step(batch_rows: torch.Tensor) -> torch.Tensor:
        p = basis()
        z = grads(batch_rows) @ p
        z = z * (clip / z.norm(dim=1, keepdim=True).clamp_min(clip))
        apply(p, z.sum(dim=0))
        with torch.no_grad():
            return row_loss(module, batch_rows).mean().detach()

    def empty_step() -> None:
        p = basis()
        apply(p, torch.zeros(p.shape[1], dtype=p.dtype, device=p.device))

    loader = _dpsgd.batch_loader(rows, _dpsgd.FastPoissonBatches(
        len(rows), sample_rate, steps, sampling))
    return _dpsgd.run_steps(loader, step=step, empty_step=empty_step,
                            steps_per_epoch=_dpsgd.steps_for(1.0, sample_rate),
                            progress=progress, description=description, after_step=schedule)


__all__ = ["RowGradients", "noise_share", "span_basis", "train_projected"]
