"""Spending budget within one capped session: check before spend, then record.

:class:`BudgetSession` is the in-memory recorder a synthesizer uses when no persistent ledger
is given; the persistent ``Ledger`` offers the same interface (:class:`SpendRecorder`) per
dataset, so ``fit(data, schema, ledger=...)`` works with either.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from dpsynth.accounting.analysis import pld_epsilon, rdp_epsilon
from dpsynth.accounting.budget import Budget
from dpsynth.accounting.events import Event, event_from_dict
from dpsynth.errors import BudgetExceededError

# Slack for the discretised accountant: a plan calibrated to exactly the cap must be admitted.
EPS_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Spend:
    """One mechanism run, planned or recorded: what for (``bounds:age``) and its event."""

    purpose: str
    event: Event

    def to_dict(self) -> dict[str, Any]:
        return {"purpose": self.purpose, "event": self.event.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spend:
        return cls(str(data["purpose"]), event_from_dict(dict(data["event"])))


@runtime_checkable
class SpendRecorder(Protocol):
    """What a synthesizer needs from a budget keeper."""

    @property
    def cap(self) -> Budget: ...

    def check(self, events: Sequence[Event]) -> None:
        """Raise :class:`BudgetExceededError` if spending ``events`` would cross the cap."""

    def reserve_plan(self, spends: Sequence[Spend]) -> None:
        """Check a run's whole plan and reserve all of it at once, or nothing.

        Raises :class:`BudgetExceededError` (nothing reserved) if the plan would cross the cap.
        Each later :meth:`spend` of a planned ``(purpose, event)`` uses its reservation.
        """

    def spend(self, purpose: str, event: Event) -> contextlib.AbstractContextManager[None]:
        """Run the block for ``event``: uses its reservation from :meth:`reserve_plan`, else
        reserves it alone (refused over the cap)."""

    def spent_events(self) -> tuple[Event, ...]:
        """Every event spent so far (reservations included)."""


def over_cap_message(cap: Budget, spent_eps: float, would_be: float) -> str:
    left = max(0.0, cap.epsilon - spent_eps)
    return (
        f"Refused: this spend would bring epsilon to {would_be:.4g}, over the cap of "
        f"{cap.epsilon:.4g} (delta={cap.delta:.3g}). Already spent {spent_eps:.4g}; "
        f"{left:.4g} is left. Nothing was spent."
    )


class BudgetSession:
    """An in-memory, capped record of spends (one fit, one process)."""

    def __init__(self, cap: Budget):
        self._cap = cap
        self._spends: list[Spend] = []
        self._pending: list[Spend] = []
        self._lock = threading.Lock()

    @property
    def cap(self) -> Budget:
        return self._cap

    @property
    def spends(self) -> tuple[Spend, ...]:
        """Every spend counted: reserved plans (used or not) and spends made alone."""
        return tuple(self._spends)

    def spent_events(self) -> tuple[Event, ...]:
        return tuple(s.event for s in self._spends)

    def epsilon_spent(self) -> float:
        return pld_epsilon(self.spent_events(), self._cap.delta)

    def rdp_epsilon_spent(self) -> float:
        return rdp_epsilon(self.spent_events(), self._cap.delta)

    def check(self, events: Sequence[Event]) -> None:
        would_be = pld_epsilon((*self.spent_events(), *events), self._cap.delta)
        if would_be > self._cap.epsilon + EPS_TOLERANCE:
            raise BudgetExceededError(over_cap_message(self._cap, self.epsilon_spent(), would_be))

    def reserve_plan(self, spends: Sequence[Spend]) -> None:
        spends = tuple(spends)
        with self._lock:
            self.check([s.event for s in spends])
            self._spends.extend(spends)
            self._pending.extend(spends)

    @contextlib.contextmanager
    def spend(self, purpose: str, event: Event) -> Iterator[None]:
        with self._lock:
            planned = [s for s in self._pending if s.event == event]
            exact = [s for s in planned if s.purpose == purpose]
            if planned:
                self._pending.remove((exact or planned)[0])
            else:
                self.check([event])
                # Recorded before the mechanism runs: a failure part-way still counts as spent.
                self._spends.append(Spend(purpose, event))
        yield
