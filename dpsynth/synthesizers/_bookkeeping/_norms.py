"""Per-layer norms and clipped sums from what a backward recorded (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dpsynth.synthesizers._bookkeeping._taps import (
    _Call,
    _sq_norms,
    _Tap,
)

# A rule returns the squared norm of every example's gradient of the layer's trainable
# parameters, shape (B,), and a closure giving the clipped sums for factors c, shape (B,).
Accumulate = Callable[[torch.Tensor], list[torch.Tensor]]


def _linear_norms(tap: _Tap, call: _Call) -> tuple[torch.Tensor, Accumulate]:
    """Linear layer on sequences: norms from the backward, then the clipped sum."""
    assert call.norm2 is not None
    if call.per_sample is not None:
        kept = call.per_sample
        return call.norm2, lambda c: [torch.mv(v.reshape(len(c), -1).t(), c) for v in kept]
    assert call.grad is not None
    a, g = call.saved, call.grad

    def accumulate(c: torch.Tensor) -> list[torch.Tensor]:
        scaled = g * c[:, None, None]
        p = g.shape[-1]
        out = [torch.mm(scaled.reshape(-1, p).t(), a.reshape(-1, a.shape[-1]))
               ] if tap.weight is not None else []
        if tap.bias is not None:
            out.append(scaled.sum((0, 1)))
        return out

    return call.norm2, accumulate


def _rows_norms(tap: _Tap, call: _Call, owned: bool, source: bool
                ) -> tuple[torch.Tensor, Callable[..., None]]:
    """Linear layer with one input row per example: ``||g_i a_i^T|| = ||g_i|| ||a_i||``.

    ``owned``: the output gradient may be scaled in place; ``source``: another layer's
    gradient is recomputed from this one's, so the scaled gradient is handed on in ``carry``.
    """
    a = call.saved.to(tap.dtype)
    a = a.reshape(len(a), -1)
    g = None if call.grad is None else call.grad.to(tap.dtype).reshape(len(a), -1)
    owned = owned or (call.grad is not None and call.grad.dtype != tap.dtype)
    g_norm2 = _sq_norms(g) if g is not None else call.grad_norm2
    assert g_norm2 is not None
    if tap.weight is None:
        norm2 = g_norm2
    elif tap.bias is None:
        norm2 = g_norm2 * _sq_norms(a)
    else:
        norm2 = torch.addcmul(g_norm2, g_norm2, _sq_norms(a))  # ||g||^2 (||a||^2 + 1)

    def accumulate(c: torch.Tensor, carry: _Carry, views: list[torch.Tensor]) -> None:
        if g is None:
            scaled = _recompute(tap, carry, c, g_norm2)
        else:
            scaled = g.mul_(c[:, None]) if owned else g * c[:, None]
        if tap.weight is not None:
            _write(views[0], torch.mm, scaled.t(), a)
        if tap.bias is not None:
            _write(views[-1], torch.sum, scaled, 0)
        if source:
            carry.scaled[id(tap)] = (scaled, a)

    return norm2, accumulate


@dataclass
class _Carry:
    """Scaled output gradients handed down a chain, and the recomputation checks."""

    scaled: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    gaps: list[torch.Tensor] = field(default_factory=list)


def _write(view: torch.Tensor, op: Callable[..., torch.Tensor], *args: Any) -> None:
    """``view[...] = op(*args)``, straight into ``view`` when the types allow it."""
    if view.dtype == args[0].dtype and view.is_contiguous():
        op(*args, out=view)
    else:
        view.copy_(op(*args))


def _recompute(tap: _Tap, carry: _Carry, c: torch.Tensor,
               g_norm2: torch.Tensor) -> torch.Tensor:
    """``c * G`` of ``tap`` from ``c * G'``, ``W'`` and ``a'`` of the next layer of its chain.

    Rows whose norm came out above ``c_i ||G_i||`` (as recorded in the backward) are scaled
    down to it; the relative gap of the squared norms is recorded in ``carry.gaps`` and the
    caller raises when one exceeds rounding.
    """
    assert tap.next is not None
    scaled_next, a_next = carry.scaled.pop(id(tap.next))
    layer = tap.next.module
    assert isinstance(layer, nn.Linear)
    weight = layer.weight.detach().to(tap.dtype)
    scaled = torch.ops.aten.threshold_backward(torch.mm(scaled_next, weight), a_next, 0)
    ratio2 = (c.square() * g_norm2 + 1e-30) / (_sq_norms(scaled) + 1e-30)  # want / got
    carry.gaps.append((ratio2 - 1.0).abs().max())
    return scaled.mul_(ratio2.clamp(max=1.0).sqrt()[:, None])


def _embedding_norms(tap: _Tap, ids: torch.Tensor, g: torch.Tensor
                     ) -> tuple[torch.Tensor, Accumulate]:
    module = tap.module
    assert isinstance(module, nn.Embedding)
    b, vocab = g.shape[0], module.num_embeddings
    ids = ids.reshape(b, -1)
    g = g.to(tap.dtype).reshape(ids.numel(), -1)
    if module.padding_idx is not None:  # the padding row's gradient is zero
        g = g * (ids.reshape(-1, 1) != module.padding_idx).to(tap.dtype)
    owner = torch.arange(b, device=ids.device).repeat_interleave(ids.shape[1])
    keys, inverse = torch.unique(owner * vocab + ids.reshape(-1), return_inverse=True)
    grouped = g.new_zeros(len(keys), g.shape[1]).index_add_(0, inverse, g)
    key_owner = torch.div(keys, vocab, rounding_mode="floor")
    norm2 = g.new_zeros(b).index_add_(0, key_owner, _sq_norms(grouped))

    def accumulate(c: torch.Tensor) -> list[torch.Tensor]:
        weighted = grouped * c[key_owner][:, None]
        return [g.new_zeros(vocab, g.shape[1]).index_add_(0, keys - key_owner * vocab, weighted)]

    return norm2, accumulate


def _layer_norm_norms(tap: _Tap, saved: tuple[torch.Tensor, ...], g: torch.Tensor
                      ) -> tuple[torch.Tensor, Accumulate]:
    module = tap.module
    assert isinstance(module, nn.LayerNorm)
    b, width = g.shape[0], math.prod(module.normalized_shape)
    g = g.to(tap.dtype).reshape(b, -1, width)
    per_sample = []
    if tap.weight is not None:
        x, mean, rstd = (v.to(tap.dtype).reshape(b, g.shape[1], -1) for v in saved)
        per_sample.append((g * ((x - mean) * rstd)).sum(1))
    if tap.bias is not None:
        per_sample.append(g.sum(1))
    norm2 = sum((_sq_norms(s) for s in per_sample), g.new_zeros(b))

    def accumulate(c: torch.Tensor) -> list[torch.Tensor]:
        return [torch.mv(s.t(), c) for s in per_sample]

    return norm2, accumulate


_RULES: dict[type[nn.Module], Callable[..., tuple[torch.Tensor, Accumulate]]] = {
    nn.Embedding: _embedding_norms, nn.LayerNorm: _layer_norm_norms}


def _writing(rule: Accumulate) -> Callable[..., None]:
    def accumulate(c: torch.Tensor, carry: _Carry, views: list[torch.Tensor]) -> None:
        for view, value in zip(views, rule(c), strict=True):
            view.copy_(value.view_as(view))

    return accumulate
