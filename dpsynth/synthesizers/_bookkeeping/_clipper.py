"""The book-keeping clipper: taps a model's layers and forms clipped gradient sums."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn

from dpsynth.errors import ParameterError, PrivacyError
from dpsynth.synthesizers._bookkeeping._functions import _patched_forward
from dpsynth.synthesizers._bookkeeping._norms import (
    _RULES,
    _Carry,
    _linear_norms,
    _rows_norms,
    _writing,
)
from dpsynth.synthesizers._bookkeeping._taps import (
    _RECOMPUTE_TOLERANCE,
    _STABILITY,
    RECOMPUTE_CHOICES,
    SUPPORTED_LAYERS,
    _Call,
    _Tap,
)


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

    A model may split its parameters into groups clipped apart by defining ``clip_groups()``,
    a list of ``(parameters, share)`` pairs whose shares are positive and sum to 1: each
    example's gradient on group ``g`` is clipped to ``C sqrt(share_g)``, so its whole
    gradient still has norm at most ``C`` and the noise calibrated to ``C`` covers it
    (group-wise clipping, McMahan et al., "Learning differentially private recurrent
    language models", ICLR 2018). Every trainable parameter must be in exactly one group,
    and a layer's parameters in the same one.
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
        self.group_of, self.group_clips = _clip_groups(model, self.taps, self.max_grad_norm)
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
        norm2 = torch.zeros(len(self.group_clips), batch_size,
                            dtype=taps[0].dtype if taps else self.summed.dtype,
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
                norm2[self.group_of[id(tap)]] += part
                pending.append(accumulate)
            del calls
            clips = self.group_clips.to(device=norm2.device, dtype=norm2.dtype)[:, None]
            factors = (clips / (norm2.sqrt() + _STABILITY)).clamp(max=1.0)  # (groups, B)
            norms = norm2.sum(0).sqrt()
            carry = _Carry()
            for i, tap in enumerate(taps):
                step = pending[i]
                assert step is not None
                step(factors[self.group_of[id(tap)]], carry, self._views[id(tap)])
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


def _clip_groups(model: nn.Module, taps: list[_Tap], max_grad_norm: float
                 ) -> tuple[dict[int, int], torch.Tensor]:
    """Each tap's clipping group and the groups' norms ``C sqrt(share)`` (one group of norm
    ``C`` unless the model defines ``clip_groups()``; see :class:`BookkeepingClipper`)."""
    declared = getattr(model, "clip_groups", None)
    if declared is None:
        return {id(tap): 0 for tap in taps}, torch.tensor([max_grad_norm], dtype=torch.float64)
    groups = list(declared())
    shares = [float(share) for _, share in groups]
    if not groups or min(shares) <= 0 or abs(sum(shares) - 1.0) > 1e-9:
        raise ParameterError(f"clip_groups() must give positive shares summing to 1; got "
                             f"{shares}.")
    of_param: dict[int, int] = {}
    for g, (params, _) in enumerate(groups):
        for p in params:
            if id(p) in of_param:
                raise ParameterError("clip_groups() puts a parameter in two groups.")
            of_param[id(p)] = g
    group_of: dict[int, int] = {}
    for tap in taps:
        owners = {of_param.get(id(p), -1) for p in tap.params}
        if len(owners) != 1 or -1 in owners:
            raise ParameterError(f"clip_groups() must put each of layer {tap.name!r}'s "
                                 "trainable parameters in one and the same group.")
        group_of[id(tap)] = owners.pop()
    for tap in taps:
        if tap.next is not None and group_of[id(tap.next)] != group_of[id(tap)]:
            raise ParameterError(f"Layers {tap.name!r} and {tap.next.name!r} are recomputed "
                                 "together but lie in different clip groups; use "
                                 "recompute='none'.")
    clips = torch.tensor([max_grad_norm * math.sqrt(share) for share in shares],
                         dtype=torch.float64)
    return group_of, clips


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
