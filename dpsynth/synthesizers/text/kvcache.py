"""A key/value cache written in place, for dpsynth's own decoding loop.

transformers' ``DynamicLayer`` grows each layer's keys and values by concatenation, so every
decoded token copies the whole cache of every layer: at a few hundred rows and a few dozen
tokens that copy costs about as much as the attention itself on a CPU
(``docs/benchmarks.md``, text speed). :func:`preallocate` swaps each such layer of a cache
for one whose buffers already hold the whole draw (the prompt plus the most tokens it can
write); a token is written into its slot and attention reads a view of the filled part.
The values are the same; only where they live changes.

Only plain full-attention layers (exactly ``DynamicLayer``) are swapped: a sliding-window or
other special layer is left as it is, and a cache without layers is not touched.
"""

from __future__ import annotations

from typing import Any

import torch


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
            if end > self._keys.shape[2]:  # past the planned length: grow as the base does
                grow = max(end, 2 * self._keys.shape[2]) - self._keys.shape[2]
                self._keys = torch.cat([self._keys, self._keys.new_empty(
                    (*self._keys.shape[:2], grow, self._keys.shape[-1]))], dim=2)
                self._values = torch.cat([self._values, self._values.new_empty(
                    (*self._values.shape[:2], grow, self._values.shape[-1]))], dim=2)
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


__all__ = ["preallocate"]
