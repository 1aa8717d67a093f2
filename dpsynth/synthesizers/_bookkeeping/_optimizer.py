"""The model, loss and optimizer wrappers that run DP-SGD with book-keeping clipping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dpsynth.errors import PrivacyError
from dpsynth.synthesizers._bookkeeping._clipper import BookkeepingClipper


class BookkeepingModule(nn.Module):
    """The model with its layers routed through a :class:`BookkeepingClipper`.

    Called like the model; :meth:`to_standard_module` (or :meth:`remove_hooks`) restores the
    layers and returns the model.
    """

    def __init__(self, module: nn.Module, clipper: BookkeepingClipper):
        super().__init__()
        self._module = module
        self.clipper = clipper
        clipper.attach()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._module(*args, **kwargs)

    def to_standard_module(self) -> nn.Module:
        self.clipper.detach()
        return self._module

    def remove_hooks(self) -> None:
        self.clipper.detach()


class BookkeepingLoss:
    """A batch's loss; :meth:`backward` back-propagates the per-example losses and clips."""

    def __init__(self, per_sample: torch.Tensor, clipper: BookkeepingClipper, reduction: str):
        self.per_sample, self.clipper, self.reduction = per_sample, clipper, reduction
        self.norms: torch.Tensor | None = None

    def backward(self) -> None:
        self.norms = self.clipper.backward(self.per_sample)

    def detach(self) -> torch.Tensor:
        losses = self.per_sample.detach()
        return losses.sum() if self.reduction == "sum" else losses.mean()

    def item(self) -> float:
        return float(self.detach())


class BookkeepingCriterion:
    """Wraps a loss with a ``reduction`` attribute; calls it with ``reduction="none"``."""

    def __init__(self, criterion: Any, clipper: BookkeepingClipper):
        self.criterion, self.clipper = criterion, clipper
        self.reduction = getattr(criterion, "reduction", "mean")

    def __call__(self, *args: Any, **kwargs: Any) -> BookkeepingLoss:
        self.criterion.reduction = "none"
        try:
            per_sample = self.criterion(*args, **kwargs)
        finally:
            self.criterion.reduction = self.reduction
        return BookkeepingLoss(per_sample, self.clipper, self.reduction)


class BookkeepingDPOptimizer:
    """DP-SGD around ``optimizer``: clipped sum + Gaussian noise, scaled, then ``step``.

    The gradient given to ``optimizer`` is ``(sum_i c_i g_i + N(0, (sigma C)^2 I)) / B`` with
    ``B`` the expected batch size (``loss_reduction="mean"``), as in Opacus. ``reduce_fn``
    (data-parallel training) sums the buffer across processes after the local noise, so with
    ``add_noise`` true on exactly one process the noise is added once.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, clipper: BookkeepingClipper, *,
                 noise_multiplier: float, expected_batch_size: int,
                 noise_fn: Callable[[torch.Tensor, float], torch.Tensor],
                 loss_reduction: str = "mean",
                 reduce_fn: Callable[[torch.Tensor], None] | None = None,
                 add_noise: bool = True):
        self.original_optimizer, self.clipper = optimizer, clipper
        self.noise_multiplier = float(noise_multiplier)
        self.max_grad_norm = clipper.max_grad_norm
        self.expected_batch_size = int(expected_batch_size)
        self.noise_fn, self.loss_reduction = noise_fn, loss_reduction
        self.reduce_fn, self.add_noise = reduce_fn, add_noise

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.original_optimizer.param_groups

    @property
    def noise_std(self) -> float:
        return self.noise_multiplier * self.max_grad_norm

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.original_optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is not None:
            with torch.enable_grad():
                closure()
        if not self.clipper.ready:
            raise PrivacyError("optimizer.step() ran without a clipped backward pass "
                               "(call backward() on the loss from the wrapped criterion).")
        summed = self.clipper.summed
        if self.add_noise and self.noise_std > 0:
            summed.add_(self.noise_fn(summed, self.noise_std))
        if self.reduce_fn is not None:
            self.reduce_fn(summed)
        if self.loss_reduction == "mean":
            summed.div_(self.expected_batch_size)
        for p, view in zip(self.clipper.params, self.clipper.grad_views, strict=True):
            p.grad = view
        self.clipper.ready = False
        return self.original_optimizer.step()

    def noise_only_step(self) -> None:
        """The step for an empty Poisson batch: the clipped sum is zero, the update is noise."""
        self.clipper.zero()
        self.step()

    def state_dict(self) -> dict[str, Any]:
        return self.original_optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.original_optimizer.load_state_dict(state)
