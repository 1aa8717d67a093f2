"""Synthesizers: one base class, an explicit registry, marginal-based and DP-SGD generators."""

from __future__ import annotations

import importlib

from dpsynth.synthesizers.base import (
    SYNTHESIZERS,
    BaseSynthesizer,
    PlannedSpend,
    PrivacyReport,
    create,
    register,
)

# Registering modules (imported for their @register side effect on the registry).
for _module in ("dpsynth.synthesizers.dpvae", "dpsynth.synthesizers.marginal"):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as _exc:  # pragma: no cover - while a module is being written
        if _exc.name != _module:
            raise

#: The generator ``dpsynth fit`` and ``dpsynth demo`` use for tables unless told otherwise.
DEFAULT_TABLE_SYNTHESIZER = "aim" if "aim" in SYNTHESIZERS else "dpvae"

__all__ = [
    "DEFAULT_TABLE_SYNTHESIZER",
    "SYNTHESIZERS",
    "BaseSynthesizer",
    "PlannedSpend",
    "PrivacyReport",
    "create",
    "register",
]
