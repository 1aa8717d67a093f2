"""The registry of synthesizers by name, filled lazily (nothing imported until looked up)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from dpsynth.errors import param_error

if TYPE_CHECKING:
    from dpsynth.synthesizers.base import BaseSynthesizer

# -- registry -------------------------------------------------------------------------------
#: Built-in synthesizers, imported on first use (the torch ones cost seconds to import).
_BUILT_IN = {
    "aim": "dpsynth.synthesizers.marginal.aim:AIMSynthesizer",
    "mst": "dpsynth.synthesizers.marginal.mst:MSTSynthesizer",
    "dpar": "dpsynth.synthesizers.ar.synthesizer:DPARSynthesizer",
    "dpvae": "dpsynth.synthesizers.dpvae:DPVAESynthesizer",
    "dptext": "dpsynth.synthesizers.text.synthesizer:DPTextSynthesizer",
    "dptext-table": "dpsynth.synthesizers.text.tabular:TabularTextSynthesizer",
    "dptext-pp": "dpsynth.synthesizers.text.private_prediction:PrivatePredictionSynthesizer",
}


class SynthesizerRegistry(MutableMapping[str, "type[BaseSynthesizer]"]):
    """Synthesizer classes by name; refuses silent overwrites (as Opacus' accountant registry).

    A name may be declared lazily as ``"module:Class"``: the module is imported when the
    class is first looked up, so listing names or checking ``name in registry`` imports
    nothing (and ``import dpsynth.synthesizers`` does not import torch).
    """

    def __init__(self, lazy: Mapping[str, str] | None = None):
        self._classes: dict[str, type[BaseSynthesizer]] = {}
        self._lazy: dict[str, str] = dict(lazy or {})

    def __getitem__(self, name: str) -> type[BaseSynthesizer]:
        if name not in self._classes and name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            klass = getattr(importlib.import_module(module), attr)
            self[name] = klass  # a no-op when importing the module registered it
        return self._classes[name]

    def __setitem__(self, name: str, klass: type[BaseSynthesizer]) -> None:
        have = self._classes.get(name)
        target = self._lazy.get(name)
        if (have is not None and have is not klass) or (
                target is not None and target != f"{klass.__module__}:{klass.__qualname__}"):
            raise ValueError(f"A synthesizer named {name!r} is already registered "
                             f"({have.__qualname__ if have is not None else target}).")
        self._classes[name] = klass

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._classes.pop(name, None)
        self._lazy.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._classes or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._lazy, *self._classes]))

    def __len__(self) -> int:
        return len(set(self._lazy) | set(self._classes))


SYNTHESIZERS = SynthesizerRegistry(_BUILT_IN)
_S = TypeVar("_S", bound="type[BaseSynthesizer]")


def register(cls: _S) -> _S:
    """Class decorator adding a synthesizer to the registry; refuses silent overwrites."""
    SYNTHESIZERS[cls.name] = cls
    return cls


def create(name: str, **params: Any) -> BaseSynthesizer:
    """``create("dpvae", epsilon=1.0)``: a synthesizer by registry name."""
    if name not in SYNTHESIZERS:
        raise param_error("name", f"one of {sorted(SYNTHESIZERS)}", name, "create")
    return SYNTHESIZERS[name](**params)


__all__ = ["SYNTHESIZERS", "SynthesizerRegistry", "create", "register"]
