"""Privacy accounting: budgets, mechanism events, PLD composition and noise calibration.

Pure maths lives in :mod:`~dpsynth.accounting.analysis` and
:mod:`~dpsynth.accounting.calibrate`; state (a capped record of spends) in
:mod:`~dpsynth.accounting.session`. This package never imports torch.
"""

from dpsynth.accounting.analysis import ACCOUNTANT, pld_delta, pld_epsilon, rdp_epsilon
from dpsynth.accounting.budget import Budget, default_delta
from dpsynth.accounting.calibrate import (
    calibrate_dpsgd_noise,
    calibrate_gaussian,
    laplace_noise_multiplier,
)
from dpsynth.accounting.events import (
    ApproxDPEvent,
    Event,
    GaussianEvent,
    LaplaceEvent,
    PureDPEvent,
    SubsampledGaussianEvent,
    event_from_dict,
)
from dpsynth.accounting.fingerprint import fingerprint, identify
from dpsynth.accounting.ledger import Ledger, LedgerRecorder, default_ledger_location
from dpsynth.accounting.noise import NoiseSource
from dpsynth.accounting.session import BudgetSession, Spend, SpendRecorder

__all__ = [
    "ACCOUNTANT",
    "ApproxDPEvent",
    "Budget",
    "BudgetSession",
    "Event",
    "GaussianEvent",
    "LaplaceEvent",
    "Ledger",
    "LedgerRecorder",
    "NoiseSource",
    "PureDPEvent",
    "Spend",
    "SpendRecorder",
    "SubsampledGaussianEvent",
    "calibrate_dpsgd_noise",
    "calibrate_gaussian",
    "default_delta",
    "default_ledger_location",
    "event_from_dict",
    "fingerprint",
    "identify",
    "laplace_noise_multiplier",
    "pld_delta",
    "pld_epsilon",
    "rdp_epsilon",
]
