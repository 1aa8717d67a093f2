"""Synthesizers: one base class, an explicit registry, marginal-based and DP-SGD generators.

The registry names every built-in synthesizer; a synthesizer's module is imported the first
time its class is looked up, so importing this package imports neither torch nor Opacus.
"""

from __future__ import annotations

from dpsynth.synthesizers._registry import SYNTHESIZERS, SynthesizerRegistry, create, register
from dpsynth.synthesizers.base import BaseSynthesizer, PrivacyReport
from dpsynth.synthesizers.plan import DPSGDPlan, FitPlan, PlannedSpend, TrainingPlan

#: The generator ``dpsynth fit`` and ``dpsynth demo`` use for tables unless told otherwise.
DEFAULT_TABLE_SYNTHESIZER = "aim"

__all__ = [
    "DEFAULT_TABLE_SYNTHESIZER",
    "SYNTHESIZERS",
    "BaseSynthesizer",
    "DPSGDPlan",
    "FitPlan",
    "PlannedSpend",
    "PrivacyReport",
    "SynthesizerRegistry",
    "TrainingPlan",
    "create",
    "register",
]
