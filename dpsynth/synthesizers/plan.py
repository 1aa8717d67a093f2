"""Typed budget plans, fixed before a fit reads any data (torch-free).

:meth:`~dpsynth.synthesizers.base.BaseSynthesizer.plan_budget` returns a :class:`FitPlan`:
the budget, the row count taken as public, the DP discovery spends and the training spends,
plus the synthesizer's own typed plan of its training (``detail``), e.g. a
:class:`DPSGDPlan` or a marginal mechanism's
:class:`~dpsynth.synthesizers.marginal.plan.MarginalPlan`. ``_fit`` receives that value and
reads what it needs by attribute (:meth:`FitPlan.detail_as`), never by a purpose string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from dpsynth.accounting import (
    Budget,
    Event,
    Spend,
    SubsampledGaussianEvent,
    pld_epsilon,
)
from dpsynth.errors import PrivacyError

#: A spend planned before the data is touched (same value as a recorded one).
PlannedSpend = Spend

_D = TypeVar("_D")


@runtime_checkable
class TrainingPlan(Protocol):
    """What ``_plan_training`` may return: a typed plan that lists its spends in order."""

    @property
    def spends(self) -> tuple[PlannedSpend, ...]: ...


@dataclass(frozen=True)
class SpendList:
    """A training plan that is nothing but its spends (simple synthesizers)."""

    spends: tuple[PlannedSpend, ...]


def as_training_plan(value: TrainingPlan | Sequence[PlannedSpend]) -> TrainingPlan:
    """``value`` when it has ``spends``; a plain sequence of spends as a :class:`SpendList`."""
    if isinstance(value, TrainingPlan):
        return value
    return SpendList(tuple(value))


@dataclass(frozen=True)
class FitPlan:
    """Everything a fit on ``n_rows`` rows will spend, planned from the schema alone.

    Parameters
    ----------
    budget:
        The ``(epsilon, delta)`` target of the fit.
    n_rows:
        Number of rows, taken as public (as Opacus does for its sampling rate).
    discovery:
        Spends of the DP discovery of undeclared bounds and category lists, in order.
    training:
        Spends of the synthesizer's own mechanisms, in order.
    detail:
        The synthesizer's typed plan of its training (the object ``_plan_training`` returned).
    """

    budget: Budget
    n_rows: int
    discovery: tuple[PlannedSpend, ...]
    training: tuple[PlannedSpend, ...]
    detail: Any = None

    @property
    def spends(self) -> tuple[PlannedSpend, ...]:
        """Every planned spend: discovery first, then training."""
        return (*self.discovery, *self.training)

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(s.event for s in self.spends)

    def detail_as(self, kind: type[_D]) -> _D:
        """The typed training plan, checked to be a ``kind``."""
        if not isinstance(self.detail, kind):
            raise PrivacyError(f"internal error: the fit plan holds a "
                               f"{type(self.detail).__name__}, not a {kind.__name__}.")
        return self.detail

    def epsilon(self) -> float:
        """The PLD composition of every planned spend at the budget's delta."""
        return pld_epsilon(list(self.events), self.budget.delta)

    def summary(self) -> str:
        """Human-readable budget split, shown before any data is touched."""
        return plan_summary(list(self.spends), self.budget)


def plan_summary(plan: Sequence[PlannedSpend], budget: Budget) -> str:
    """Human-readable budget split of ``plan`` (see :meth:`FitPlan.summary`)."""
    lines = [f"Privacy budget plan for {budget} (accountant: PLD):"]
    for p in plan:
        alone = pld_epsilon([p.event], budget.delta)
        lines.append(f"  - {p.purpose:<22} {p.event.describe()}  (alone: ε={alone:.3g})")
    total = pld_epsilon([p.event for p in plan], budget.delta)
    lines.append(f"  composed: ε={total:.4g} ≤ target {budget.epsilon:.4g}")
    return "\n".join(lines)


@dataclass(frozen=True)
class DPSGDPlan:
    """A DP-SGD run (Abadi et al., CCS 2016): Poisson rate, steps and noise multiplier."""

    purpose: str
    sample_rate: float
    steps: int
    noise_multiplier: float

    @property
    def event(self) -> SubsampledGaussianEvent:
        return SubsampledGaussianEvent(self.noise_multiplier, self.sample_rate, self.steps)

    @property
    def spends(self) -> tuple[PlannedSpend, ...]:
        return (PlannedSpend(self.purpose, self.event),)


@dataclass(frozen=True)
class DPSGDPlanWith(DPSGDPlan):
    """A DP-SGD run and other runs of the same fit (``also``, spent after it), the run's
    noise calibrated with them as prior events so that all compose to the budget: dpar and
    its target head."""

    also: tuple[DPSGDPlan, ...] = ()

    @property
    def spends(self) -> tuple[PlannedSpend, ...]:
        return (PlannedSpend(self.purpose, self.event),
                *(s for p in self.also for s in p.spends))


__all__ = [
    "DPSGDPlan",
    "DPSGDPlanWith",
    "FitPlan",
    "PlannedSpend",
    "SpendList",
    "TrainingPlan",
    "as_training_plan",
    "plan_summary",
]
