"""Buffers reused from token to token by dpsynth's own decoding loop: a key/value cache
written in place, and an output layer that writes its logits into a few reused tensors.

transformers' ``DynamicLayer`` grows each layer's keys and values by concatenation, so every
decoded token copies the whole cache of every layer: at a few hundred rows and a few dozen
tokens that copy costs about as much as the attention itself on a CPU
(``docs/benchmarks.md``, text speed). :func:`preallocate` swaps each such layer of a cache
for one whose buffers already hold the whole draw (the prompt plus the most tokens it can
write); a token is written into its slot and attention reads a view of the filled part.
The values are the same; only where they live changes.

Only plain full-attention layers (exactly ``DynamicLayer``) are swapped: a sliding-window or
other special layer is left as it is, and a cache without layers is not touched.

The logits of a decoding step are rows by vocabulary (512 x 49,152 bfloat16 is 50 MB). A
new tensor that large is mapped fresh from the operating system at every token, and first
touching its pages cost as much as the output layer's product itself
(``docs/benchmarks.md``). :class:`ReusedLogits` replaces the output layer of the sampling
copy; inside :func:`reusing_logits` it writes into a ring of buffers, so a step's logits stay
valid until ``slots`` more forward passes have run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class ReusedLogits(nn.Module):
    """An ``nn.Linear`` output layer that, while :func:`reusing_logits` is active, writes its
    output into a ring of reused buffers (the same values as the layer it replaces)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = linear.weight  # the same parameters (tied ones stay tied)
        self.bias = linear.bias
        self._ring: list[torch.Tensor | None] = []
        self._next = 0
        self._owner: int | None = None  # the thread whose decoding loop holds the ring

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._ring or self._owner != threading.get_ident() \
                or x.dtype != self.weight.dtype or x.device != self.weight.device:
            return nn.functional.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, x.shape[-1])
        rows, width = flat.shape[0], self.weight.shape[0]
        buf = self._ring[self._next]
        if buf is None or buf.shape[0] < rows:
            buf = self._ring[self._next] = flat.new_empty((rows, width))
        self._next = (self._next + 1) % len(self._ring)
        out = buf[:rows]
        torch.mm(flat, self.weight.t(), out=out)
        if self.bias is not None:
            out.add_(self.bias)
        return out.view(*x.shape[:-1], width)


@contextlib.contextmanager
def reusing_logits(model: nn.Module, slots: int) -> Iterator[None]:
    """While active, ``model``'s :class:`ReusedLogits` output layer (if it has one) reuses
    ``slots`` buffers: a forward's logits are overwritten by the ``slots``-th next one.
    Only the calling thread's forwards use them, and only the outermost loop's: a nested
    or concurrent loop gets a new tensor per forward, as without the ring."""
    get = getattr(model, "get_output_embeddings", None)
    found = get() if get is not None else None
    head = found if isinstance(found, ReusedLogits) else None
    with _RING_LOCK:
        mine = head is not None and head._owner is None
        if head is not None and mine:
            head._ring, head._next = [None] * max(1, slots), 0
            head._owner = threading.get_ident()
    if head is None or not mine:
        yield
        return
    try:
        yield
    finally:
        with _RING_LOCK:
            head._ring, head._owner = [], None


_RING_LOCK = threading.Lock()


def reuse_logits(model: nn.Module) -> None:
    """Give ``model`` (a copy used only for sampling) a :class:`ReusedLogits` output layer
    when its output layer is a plain ``nn.Linear``."""
    get = getattr(model, "get_output_embeddings", None)
    put = getattr(model, "set_output_embeddings", None)
    head = get() if get is not None else None
    if put is not None and type(head) is nn.Linear:
        put(ReusedLogits(head))


def _dynamic_layer() -> type | None:
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # an older transformers without cache layers
        return None
    return DynamicLayer


def preallocate(cache: Any, capacity: int) -> bool:
    """Swap the plain layers of ``cache`` for in-place layers of ``capacity`` positions;
    ``True`` when every layer was swapped (or already was one)."""
    base = _dynamic_layer()
    layers = getattr(cache, "layers", None)
    if base is None or not isinstance(layers, list) or not layers:
        return False
    fixed = _fixed_layer_class(base)
    swapped = True
    for i in range(len(layers)):
        layer: Any = layers[i]
        kind: Any = type(layer)
        if kind is fixed:
            continue
        if kind is not base or not layer.is_initialized or layer.keys is None \
                or layer.keys.dim() != 4 or layer.keys.shape[-2] > capacity:
            swapped = False
            continue
        layers[i] = fixed(layer, capacity)
    return swapped


_FIXED: dict[type, type] = {}


def _grown(buffer: torch.Tensor, size: int) -> torch.Tensor:
    """``buffer`` ``(rows, heads, positions, dim)`` with room for ``size`` positions."""
    out = buffer.new_empty((*buffer.shape[:2], size, buffer.shape[-1]))
    out[:, :, :buffer.shape[2]] = buffer
    return out


def _fixed_layer_class(base: type) -> type:
    """The in-place layer class, built once on transformers' ``DynamicLayer`` (imported
    lazily: transformers is an optional dependency)."""
    if base in _FIXED:
        return _FIXED[base]

    class FixedLayer(base):  # type: ignore[misc, valid-type]
        """A ``DynamicLayer`` whose keys and values are views of buffers sized up front."""

        def __init__(self, layer: Any, capacity: int):
            super().__init__()
            keys, values = layer.keys, layer.values
            b, h, t, d = keys.shape
            self._keys = keys.new_empty((b, h, capacity, d))
            self._values = values.new_empty((b, values.shape[1], capacity, values.shape[-1]))
            self._keys[:, :, :t] = keys
            self._values[:, :, :t] = values
            self._filled = t
            self.device = keys.device
            self.is_initialized = True
            self._views()

        def _views(self) -> None:
            self.keys = self._keys[:, :, :self._filled]
            self.values = self._values[:, :, :self._filled]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor,
                   *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            t = key_states.shape[-2]
            end = self._filled + t
            if end > self._keys.shape[2]:  # past the planned length: double it
                size = max(end, 2 * self._keys.shape[2])
                self._keys, self._values = _grown(self._keys, size), _grown(self._values, size)
            self._keys[:, :, self._filled:end] = key_states
            self._values[:, :, self._filled:end] = value_states
            self._filled = end
            self._views()
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self._keys = self._keys[indices]
            self._values = self._values[indices]
            self._views()

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._views()

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError("crop takes a negative count of tokens to remove")
            self._filled = max(0, self._filled + tokens_to_remove)
            self._views()

        def reset(self) -> None:
            self._filled = 0
            self._views()

    _FIXED[base] = FixedLayer
    return FixedLayer


__all__ = ["ReusedLogits", "preallocate", "reuse_logits", "reusing_logits"]
