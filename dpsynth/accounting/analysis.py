"""Pure accountant maths: compose mechanism events into (epsilon, delta).

The reported figure always comes from the privacy-loss-distribution (PLD) accountant of
`dp_accounting` (Koskela, Jälkö and Honkela, AISTATS 2020; Doroshenko et al., "Connect the
Dots", PETS 2022) with pessimistic discretisation, so it is an upper bound on the true epsilon
that is tight to about the discretisation interval. The Rényi-DP accountant (Mironov, CSF 2017)
is reported beside it for comparison only: it is looser. The Gaussian-DP (GDP) approximation is
never used: it can under-report epsilon.

Neighbouring datasets differ by adding or removing one privacy unit (one row by default).

`dp_accounting` is imported on first use (it loads scipy.signal and scipy.stats, about a CPU
second), so code that only reads or writes events does not pay for it.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from dpsynth.accounting.events import (
    ApproxDPEvent,
    Event,
    GaussianEvent,
    LaplaceEvent,
    PureDPEvent,
    SubsampledGaussianEvent,
)

if TYPE_CHECKING:
    from dp_accounting.pld import privacy_loss_distribution as pld_lib

#: Discretisation interval of the PLD (in units of privacy loss). Smaller is tighter and slower.
PLD_INTERVAL = 1e-4

ACCOUNTANT = "PLD (dp-accounting, pessimistic discretisation, add/remove-one neighbours)"


def event_pld(event: Event, interval: float) -> pld_lib.PrivacyLossDistribution:
    """The privacy loss distribution of one event, discretised at ``interval``."""
    from dp_accounting.pld import common as pld_common
    from dp_accounting.pld import privacy_loss_distribution as pld_lib

    if isinstance(event, SubsampledGaussianEvent):
        single = pld_lib.from_gaussian_mechanism(
            standard_deviation=event.noise_multiplier,
            sampling_prob=event.sample_rate,
            value_discretization_interval=interval,
        )
        return single.self_compose(event.steps)
    if isinstance(event, GaussianEvent):
        # count Gaussian runs with sensitivity 1 == one run with sensitivity sqrt(count).
        return pld_lib.from_gaussian_mechanism(
            standard_deviation=event.noise_multiplier / math.sqrt(event.count),
            value_discretization_interval=interval,
        )
    if isinstance(event, LaplaceEvent):
        return pld_lib.from_laplace_mechanism(
            parameter=event.noise_multiplier, value_discretization_interval=interval
        ).self_compose(event.count)
    if isinstance(event, PureDPEvent):
        return pld_lib.from_privacy_parameters(
            pld_common.DifferentialPrivacyParameters(event.epsilon, 0.0),
            value_discretization_interval=interval,
        ).self_compose(event.count)
    if isinstance(event, ApproxDPEvent):
        return pld_lib.from_privacy_parameters(
            pld_common.DifferentialPrivacyParameters(event.epsilon, event.delta),
            value_discretization_interval=interval,
        )
    raise TypeError(f"Unsupported event type {type(event).__name__}")


@functools.lru_cache(maxsize=256)
def _composed_pld(
    events: tuple[Event, ...], interval: float
) -> pld_lib.PrivacyLossDistribution | None:
    if not events:
        return None
    pld = event_pld(events[0], interval)
    for event in events[1:]:
        pld = pld.compose(event_pld(event, interval))
    return pld


def pld_epsilon(events: Iterable[Event], delta: float, *, interval: float = PLD_INTERVAL) -> float:
    """Smallest epsilon such that the composition of ``events`` is (epsilon, delta)-DP, by PLD."""
    pld = _composed_pld(tuple(events), interval)
    if pld is None:
        return 0.0
    return max(0.0, float(pld.get_epsilon_for_delta(delta)))


def pld_delta(events: Iterable[Event], epsilon: float, *, interval: float = PLD_INTERVAL) -> float:
    """Smallest delta such that the composition of ``events`` is (epsilon, delta)-DP, by PLD."""
    pld = _composed_pld(tuple(events), interval)
    if pld is None:
        return 0.0
    return float(pld.get_delta_for_epsilon(epsilon))


def rdp_epsilon(events: Iterable[Event], delta: float) -> float:
    """Epsilon of the composition by the Rényi-DP accountant (looser; for comparison only)."""
    events = tuple(events)
    if not events:
        return 0.0
    if delta <= 0:
        # RDP only converts to approximate DP; pure-DP-only compositions add up exactly.
        pure = [e for e in events if isinstance(e, PureDPEvent)]
        if len(pure) == len(events):
            return float(sum(e.epsilon * e.count for e in pure))
        return math.inf
    if any(isinstance(e, ApproxDPEvent) for e in events):
        return math.nan  # (epsilon, delta)-DP events have no RDP curve
    # dp-accounting logs a warning per RDP order that fails to converge at large sampling
    # rates (while composing); those orders are dropped (the bound stays valid), so keep
    # the log quiet.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        from dp_accounting.rdp import RdpAccountant

        accountant = RdpAccountant()
        for event in events:
            accountant.compose(event.to_dp_event())
        return float(accountant.get_epsilon(delta))
    finally:
        absl_logger.setLevel(level)


def basic_sum(events: Sequence[Event], delta_per_event: Sequence[float]) -> tuple[float, float]:
    """Plain sum of per-event (epsilon, delta): the loose basic-composition figure."""
    eps = sum(pld_epsilon([e], d) for e, d in zip(events, delta_per_event, strict=True))
    return eps, float(sum(delta_per_event))
