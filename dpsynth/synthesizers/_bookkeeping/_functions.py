"""Autograd functions of the tapped layers: input gradient only; inputs and output
gradients recorded on the layer's tap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dpsynth.synthesizers._bookkeeping._taps import _Tap


class _LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                tap: _Tap) -> torch.Tensor:
        ctx.tap = tap
        ctx.save_for_backward(x, weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, weight = ctx.saved_tensors
        ctx.tap.record(x.detach(), grad)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.matmul(weight.to(grad.dtype)).to(x.dtype)
        return grad_x, None, None, None


class _EmbeddingFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, ids: torch.Tensor, weight: torch.Tensor, tap: _Tap,
                padding_idx: int | None) -> torch.Tensor:
        ctx.tap = tap
        ctx.save_for_backward(ids)
        return F.embedding(ids, weight, padding_idx)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        (ids,) = ctx.saved_tensors
        ctx.tap.record(ids, grad)
        return None, None, None, None


class _LayerNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor | None,
                bias: torch.Tensor | None, tap: _Tap, shape: list[int],
                eps: float) -> torch.Tensor:
        out, mean, rstd = torch.native_layer_norm(x, shape, weight, bias, eps)
        ctx.tap, ctx.shape = tap, shape
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, weight, bias, mean, rstd = ctx.saved_tensors
        ctx.tap.record((x.detach(), mean, rstd), grad)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.native_layer_norm_backward(
                grad.to(x.dtype), x, ctx.shape, mean, rstd, weight, bias,
                [True, False, False])[0]
        return grad_x, None, None, None, None, None


def _patched_forward(tap: _Tap) -> Callable[..., torch.Tensor]:
    module = tap.module
    if isinstance(module, nn.Linear):
        return lambda x: _LinearFn.apply(x, module.weight, module.bias, tap)
    if isinstance(module, nn.Embedding):
        return lambda ids: _EmbeddingFn.apply(ids, module.weight, tap, module.padding_idx)
    assert isinstance(module, nn.LayerNorm)
    return lambda x: _LayerNormFn.apply(x, module.weight, module.bias, tap,
                                        list(module.normalized_shape), module.eps)
