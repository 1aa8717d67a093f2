"""Synthesizers: one base class, an explicit registry, marginal-based and DP-SGD generators."""

from __future__ import annotations

# Imported for their @register side effect on the registry.
from dpsynth.synthesizers import dpvae, marginal, text  # noqa: E402,F401
from dpsynth.synthesizers.base import (
    SYNTHESIZERS,
    BaseSynthesizer,
    PlannedSpend,
    PrivacyReport,
    create,
    register,
)

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
