"""Per-example clipping for DP-SGD by book-keeping: one forward, one backward, no second pass.

DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016) needs, for every
example ``i`` of a batch, the norm of its gradient so that it can sum the clipped gradients
``sum_i c_i g_i`` with ``c_i = min(1, C / (||g_i|| + 1e-6))``. For the layers of dpsynth's
models that norm follows from what a training step computes anyway:

* ``nn.Linear`` ``y = x W^T + b`` with input ``a_i`` ``(T, d)`` and output gradient
  ``G_i = dL_i/dy_i`` ``(T, p)``: the example's weight gradient is ``G_i^T a_i``. For tables
  (``T = 1``) its squared norm is ``||G_i||^2 ||a_i||^2``. For sequences it is
  ``<a_i a_i^T, G_i G_i^T>`` (the "ghost norm" of Li et al., "Large Language Models Can Be
  Strong Differentially Private Learners", ICLR 2022; ``T^2 (d + p)`` products) or the norm
  of the materialised ``G_i^T a_i`` (``T d p`` products), whichever is cheaper (the mixed rule
  of Bu et al., "Differentially Private Optimization on Large Model at Small Cost", ICML 2023).
* ``nn.Embedding``: the example's gradient sums its output gradients by token id; grouping
  ``(example, id)`` pairs gives the norm in ``O(T d)`` whatever the vocabulary.
* ``nn.LayerNorm``: the example's gradients ``sum_t G_t * xhat_t`` and ``sum_t G_t`` have
  ``d`` values each and are formed directly.

Book-keeping (Bu et al., ICML 2023) forms the clipped sum from the same activations and output
gradients, ``sum_i c_i G_i^T a_i = (c * G)^T a``: one matrix product per layer, the one plain
back-propagation spends on the unclipped weight gradient (for sequences where the
per-example gradients were cheaper, they are smaller than ``(a, G)`` too, and are kept and
summed instead). The layers run through autograd functions whose backward computes the
input gradient only and records what the clipped sum needs: autograd never forms a weight
gradient and no second backward runs, so a DP step costs about a plain one plus the norms.

Keeping the output gradients until every norm is known costs memory, as much again as the
layer outputs of an MLP. Inside an ``nn.Sequential`` run ``Linear -> ReLU -> Linear`` on
rows, the first layer's output gradient is ``(G' W') * [a' > 0]`` from the second layer's
``G'``, ``W'`` and input ``a'``, all kept anyway; so only its per-example norms are kept in
the backward and ``c * G`` is recomputed from ``c * G'`` (rows scale through the product).
By default this is done where the extra product costs no more than the layer's own weight
gradient. The recomputed rows are checked against the norms recorded in the backward (a gap
beyond rounding is a :class:`~dpsynth.errors.PrivacyError`) and scaled down where rounding
made them larger, so the bound ``||c_i g_i|| <= C`` never rests on the chain being what it
seems.

Norms and clipped sums are computed in at least float32 from the stored tensors, so the bound
holds to float32 rounding also when the forward and backward ran in bfloat16 under autocast.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dpsynth.errors import ParameterError, PrivacyError

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


# -- autograd functions: input gradient only; inputs and output gradients recorded ------------
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


# -- per-layer norms and clipped sums ---------------------------------------------------------
# A rule returns the squared norm of every example's gradient of the layer's trainable
# parameters, shape (B,), and a closure giving the clipped sums for factors c, shape (B,).
Accumulate = Callable[[torch.Tensor], list[torch.Tensor]]


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


# -- the clipper ------------------------------------------------------------------------------
class BookkeepingClipper:
    """Per-example clipping of a model's gradients by book-keeping (see the module docstring).

    Parameters
    ----------
    model:
        Every trainable parameter must belong to an ``nn.Linear``, ``nn.Embedding`` (without
        ``max_norm`` or sparse gradients) or ``nn.LayerNorm`` that uses it through its own
        ``forward``, once per step, with the batch as the first dimension of its input.
    max_grad_norm:
        The clipping norm ``C``.
    recompute:
        For the first layers of ``Linear -> ReLU -> Linear`` chains, recompute the output
        gradients instead of keeping them: ``"cheap"`` (default) where the extra product costs
        no more than the layer's own weight gradient, ``"all"`` (least memory) or ``"none"``
        (fastest, keeps every output gradient).

    After :meth:`attach`, :meth:`backward` back-propagates the per-example losses, recording
    each layer's input and output gradient instead of forming weight gradients, and writes
    ``sum_i c_i g_i`` into :attr:`summed` (one flat buffer; :attr:`grad_views` are its
    per-parameter views).
    """

    def __init__(self, model: nn.Module, max_grad_norm: float, *, recompute: str = "cheap"):
        if recompute not in RECOMPUTE_CHOICES:
            raise ParameterError(f"The 'recompute' parameter of BookkeepingClipper must be one "
                                 f"of {RECOMPUTE_CHOICES}. Got {recompute!r} instead.")
        self.max_grad_norm = float(max_grad_norm)
        self.taps = _find_taps(model, recompute)
        self.params = [p for tap in self.taps for p in tap.params]
        first = self.params[0]
        self.summed = torch.zeros(sum(p.numel() for p in self.params), dtype=first.dtype,
                                  device=first.device)
        self.grad_views: list[torch.Tensor] = []
        offset = 0
        for p in self.params:
            self.grad_views.append(self.summed[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        by_param = dict(zip(map(id, self.params), self.grad_views, strict=True))
        self._views = {id(tap): [by_param[id(p)] for p in tap.params] for tap in self.taps}
        self.attached = False
        self.ready = False  # clipped sums computed since the last optimizer step

    def attach(self) -> None:
        """Route the layers' forward through the recording autograd functions."""
        if not self.attached:
            patched = [tap.name for tap in self.taps if "forward" in vars(tap.module)]
            if patched:
                raise ParameterError(f"Layers {patched} already have their forward replaced "
                                     "(another clipper is attached to this model).")
            for tap in self.taps:
                tap.module.forward = _patched_forward(tap)  # type: ignore[method-assign]
            self.attached = True

    def detach(self) -> None:
        """Restore the layers' own forward (idempotent)."""
        if self.attached:
            for tap in self.taps:
                del tap.module.forward
                tap.calls.clear()
            self.attached = False

    def backward(self, per_sample_losses: torch.Tensor) -> torch.Tensor:
        """Back-propagate ``per_sample_losses`` (shape ``(B,)``) and clip; returns the norms."""
        if per_sample_losses.dim() != 1:
            raise ParameterError("book-keeping clipping needs one loss per example (a 1-d "
                                 f"tensor); got shape {tuple(per_sample_losses.shape)}.")
        for tap in self.taps:
            tap.calls.clear()
        for p in self.params:
            p.grad = None
        per_sample_losses.sum().backward()
        bypassed = [tap.name for tap in self.taps if any(p.grad is not None for p in tap.params)]
        if bypassed:
            raise PrivacyError(f"Parameters of layers {bypassed} received gradients outside "
                               "their layer's forward; book-keeping clipping cannot bound them. "
                               "Use grad_sample_mode='hooks'.")
        return self.clip(len(per_sample_losses))

    def clip(self, batch_size: int) -> torch.Tensor:
        """Write the clipped sum of the recorded batch into :attr:`summed`; returns the norms."""
        taps = sorted((t for t in self.taps if t.calls), key=lambda t: t.calls[0].order)
        calls = [_only_call(tap, batch_size) for tap in taps]
        storages = [c.grad.untyped_storage().data_ptr() for c in calls if c.grad is not None]
        sources = {id(t.next) for t, c in zip(taps, calls, strict=True) if c.grad is None}
        norm2 = torch.zeros(batch_size, dtype=taps[0].dtype if taps else self.summed.dtype,
                            device=self.summed.device)
        pending: list[Callable[..., None] | None] = []
        with torch.autocast(self.summed.device.type, enabled=False):
            for tap, call in zip(taps, calls, strict=True):
                if isinstance(tap.module, nn.Linear) and call.norm2 is not None:
                    part, rule = _linear_norms(tap, call)  # sequences
                    accumulate = _writing(rule)
                elif isinstance(tap.module, nn.Linear):
                    owned = call.grad is not None and storages.count(
                        call.grad.untyped_storage().data_ptr()) == 1
                    part, accumulate = _rows_norms(tap, call, owned, id(tap) in sources)
                else:
                    part, rule = _RULES[type(tap.module)](tap, call.saved, call.grad)
                    accumulate = _writing(rule)
                norm2 += part
                pending.append(accumulate)
            del calls
            norms = norm2.sqrt()
            factor = (self.max_grad_norm / (norms + _STABILITY)).clamp(max=1.0)
            carry = _Carry()
            for i, tap in enumerate(taps):
                step = pending[i]
                assert step is not None
                step(factor, carry, self._views[id(tap)])
                pending[i] = step = None  # free this layer's tensors now
            reached = {id(t) for t in taps}
            for tap in self.taps:
                if id(tap) not in reached:  # a layer this batch's loss does not depend on
                    for view in self._views[id(tap)]:
                        view.zero_()
        if carry.gaps and bool(torch.stack(carry.gaps).max() > 2 * _RECOMPUTE_TOLERANCE):
            raise PrivacyError("A recomputed output gradient does not match the one seen in "
                               "the backward pass: the model is not the plain Linear -> ReLU "
                               "-> Linear chain it seemed. Use BookkeepingClipper(recompute="
                               "'none').")
        self.ready = True
        return norms

    def zero(self) -> None:
        """An empty batch: the clipped sum is zero."""
        self.summed.zero_()
        self.ready = True


def _writing(rule: Accumulate) -> Callable[..., None]:
    def accumulate(c: torch.Tensor, carry: _Carry, views: list[torch.Tensor]) -> None:
        for view, value in zip(views, rule(c), strict=True):
            view.copy_(value.view_as(view))

    return accumulate


def _only_call(tap: _Tap, batch_size: int) -> _Call:
    if len(tap.calls) > 1:
        raise ParameterError(f"Layer {tap.name!r} ran {len(tap.calls)} times in one step; "
                             "book-keeping clipping needs each layer once per step. Use "
                             "grad_sample_mode='hooks'.")
    call = tap.calls.pop()
    rows = (len(call.norm2) if call.norm2 is not None else
            call.grad.shape[0] if call.grad is not None else len(call.saved))
    if rows != batch_size:
        raise ParameterError(f"Layer {tap.name!r} saw a batch of {rows} along its first "
                             f"dimension, not the {batch_size} examples of the loss; the batch "
                             "must come first.")
    return call


def _find_taps(model: nn.Module, recompute: str) -> list[_Tap]:
    """The supported layers holding trainable parameters; every problem raised at once."""
    problems: list[str] = []
    taps: dict[int, _Tap] = {}
    owner: dict[int, str] = {}
    clock = itertools.count()
    for name, module in model.named_modules(remove_duplicate=False):
        direct = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        if not direct:
            continue
        label = name or type(model).__name__
        if type(module) not in SUPPORTED_LAYERS:
            problems.append(f"{label} ({type(module).__name__}) holds trainable parameters "
                            f"{[n for n, _ in direct]}")
            continue
        if isinstance(module, nn.Embedding) and (module.max_norm is not None or module.sparse):
            problems.append(f"{label} is an Embedding with max_norm or sparse gradients")
            continue
        for n, p in direct:
            if id(p) in owner:
                problems.append(f"{label}.{n} is shared with {owner[id(p)]}")
            owner[id(p)] = f"{label}.{n}"
        params = dict(direct)
        dtype = torch.promote_types(direct[0][1].dtype, torch.float32)
        taps[id(module)] = _Tap(label, module, params.get("weight"), params.get("bias"), clock,
                                dtype)
    kinds = {(p.dtype, p.device) for tap in taps.values() for p in tap.params}
    if len(kinds) > 1:
        problems.append(f"trainable parameters have several dtypes/devices "
                        f"{sorted(map(str, kinds))}")
    if not taps and not problems:
        problems.append("the model has no trainable parameters")
    if problems:
        raise ParameterError("Book-keeping clipping supports trainable nn.Linear, nn.Embedding "
                             "and nn.LayerNorm layers only (use grad_sample_mode='ghost' or "
                             "'hooks' otherwise):\n" + "\n".join(f"  - {p}" for p in problems))
    if recompute != "none":
        _link_chains(model, taps, recompute)
    return list(taps.values())


def _link_chains(model: nn.Module, taps: dict[int, _Tap], recompute: str) -> None:
    """Mark ``Sequential(..., Linear, ReLU, Linear, ...)`` runs without hooks for recomputing.

    ``"cheap"`` keeps the pairs whose recomputing product (``B x p' x p``) costs no more than
    the first layer's own weight-gradient product (``B x p x d``), i.e. ``p' <= d``.
    """
    for seq in model.modules():
        if type(seq) is not nn.Sequential or _hooked(seq):
            continue
        kids = list(seq)
        for first, act, second in zip(kids, kids[1:], kids[2:], strict=False):
            if (type(first) is nn.Linear and type(second) is nn.Linear and id(first) in taps
                    and id(second) in taps and type(act) is nn.ReLU and not act.inplace
                    and not any(map(_hooked, (first, act, second)))
                    and (recompute == "all" or second.out_features <= first.in_features)):
                taps[id(first)].next = taps[id(second)]


def _hooked(module: nn.Module) -> bool:
    return any(getattr(module, name, None) for name in (
        "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))


def supports(model: nn.Module) -> bool:
    """Whether :class:`BookkeepingClipper` can clip ``model``."""
    try:
        _find_taps(model, recompute="none")
    except ParameterError:
        return False
    return True


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


__all__ = [
    "SUPPORTED_LAYERS",
    "BookkeepingClipper",
    "BookkeepingCriterion",
    "BookkeepingDPOptimizer",
    "BookkeepingLoss",
    "BookkeepingModule",
    "supports",
]
