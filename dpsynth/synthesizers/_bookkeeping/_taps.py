"""What book-keeping records per layer during a backward: taps, calls, per-example norms."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

SUPPORTED_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Embedding, nn.LayerNorm)
_STABILITY = 1e-6  # c_i = min(1, C / (norm_i + 1e-6)), the same guard as Opacus
_RECOMPUTE_TOLERANCE = 1e-3  # relative gap allowed between recomputed and recorded norms
RECOMPUTE_CHOICES = ("none", "cheap", "all")


@dataclass(eq=False)
class _Call:
    """What one backward recorded for a layer."""

    saved: Any  # input (Linear), ids (Embedding), (input, mean, rstd) (LayerNorm)
    grad: torch.Tensor | None  # output gradient; None: recomputed from the chain's next layer
    grad_norm2: torch.Tensor | None  # per-example ||G_i||^2 when ``grad`` is None
    order: int  # position in the backward pass
    norm2: torch.Tensor | None = None  # per-example squared norm, when found in the backward
    per_sample: list[torch.Tensor] | None = None  # per-example gradients, when kept instead


@dataclass(eq=False)
class _Tap:
    """One supported layer: its trainable parameters and what a backward recorded."""

    name: str
    module: nn.Module
    weight: nn.Parameter | None
    bias: nn.Parameter | None
    clock: Iterator[int]
    dtype: torch.dtype = torch.float32  # of norms and clipped sums
    next: _Tap | None = None  # Sequential(this, ReLU, next): G recomputable from next's
    calls: list[_Call] = field(default_factory=list)

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for p in (self.weight, self.bias) if p is not None]

    def record(self, saved: Any, grad: torch.Tensor) -> None:
        grad, order = grad.detach(), next(self.clock)
        if self._can_recompute(saved, grad):
            self.calls.append(_Call(saved, None, _sq_norms(grad), order))
        elif isinstance(self.module, nn.Linear) and saved[0].numel() != saved.shape[-1]:
            self.calls.append(_sequence_call(self, saved, grad, order))
        else:
            self.calls.append(_Call(saved, grad, None, order))

    def _can_recompute(self, saved: Any, grad: torch.Tensor) -> bool:
        """Whether the next layer of the chain recorded one call on rows in this backward."""
        nxt = self.next
        if nxt is None or self.calls or len(nxt.calls) != 1 or saved.dim() != 2:
            return False
        later = nxt.calls[0]
        return (isinstance(later.saved, torch.Tensor) and later.saved.dim() == 2
                and later.norm2 is None and grad.dtype == saved.dtype == self.dtype)


def _sq_norms(x: torch.Tensor) -> torch.Tensor:
    """Squared L2 norm of each row of ``x`` ``(B, n)`` without an ``x``-sized temporary."""
    return torch.linalg.vector_norm(x, dim=1).square()


def _sequence_call(tap: _Tap, a: torch.Tensor, g: torch.Tensor, order: int) -> _Call:
    """A Linear layer on sequences ``(B, T, d)``, handled during the backward.

    With ``T (d + p) < d p``: ghost norms from ``T x T`` Gram matrices (``B T^2 (d + p)``
    products) and ``(a, G)`` kept for the clipped sum. Otherwise the ``(B, p, d)``
    per-example gradients cost fewer products (``B T d p``) *and* fewer values than
    ``(a, G)``: they are kept instead, and the clipped sum is a weighted sum of them (the
    mixed rule of Bu et al., ICML 2023).
    """
    b, d, p = g.shape[0], a.shape[-1], g.shape[-1]
    a, g = a.to(tap.dtype).reshape(b, -1, d), g.to(tap.dtype).reshape(b, -1, p)
    t = a.shape[1]
    norm2 = g.new_zeros(b)
    g_sum = g.sum(1) if tap.bias is not None else None
    if g_sum is not None:
        norm2 += _sq_norms(g_sum)
    if tap.weight is None or t * (d + p) < d * p:
        if tap.weight is not None:
            norm2 += (torch.bmm(a, a.transpose(1, 2)) *
                      torch.bmm(g, g.transpose(1, 2))).sum((1, 2))
        return _Call(a, g, None, order, norm2)
    per_sample = torch.bmm(g.transpose(1, 2), a)
    norm2 += _sq_norms(per_sample.reshape(b, -1))
    kept = [per_sample] + ([g_sum] if g_sum is not None else [])
    return _Call(None, None, None, order, norm2, kept)
