"""The ledger's :class:`~dpsynth.accounting.session.SpendRecorder`: one dataset, one run."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from dpsynth.accounting._ledger_chain import LedgerEvent
from dpsynth.accounting._ledger_records import DatasetRecord
from dpsynth.accounting.budget import Budget
from dpsynth.accounting.events import Event
from dpsynth.accounting.session import Spend

if TYPE_CHECKING:
    from dpsynth.accounting.ledger import Ledger


def default_actor() -> str:
    """``user@host`` of this process (``$DPSYNTH_ACTOR`` overrides it)."""
    env = os.environ.get("DPSYNTH_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def new_release_id() -> str:
    """A fresh identifier grouping the spends of one fit or release."""
    return f"run-{uuid.uuid4().hex[:12]}"


class LedgerRecorder:
    """Spends on one dataset of a :class:`Ledger`; a :class:`SpendRecorder` for ``fit``.

    Every spend carries the same ``actor`` and ``release_id`` (a fresh one by default), so the
    report groups the spends of one fit or release. :meth:`reserve_plan` reserves a run's whole
    plan in one transaction; each :meth:`spend` then uses its reservation (same event and
    purpose) without checking again.
    """

    def __init__(self, ledger: Ledger, record: DatasetRecord, *, actor: str | None = None,
                 release_id: str | None = None):
        self.ledger = ledger
        self.dataset = record.name
        self.actor = actor or default_actor()
        self.release_id = release_id or new_release_id()
        self._cap = record.cap
        self._reserved: list[LedgerEvent] = []
        self._pending: list[LedgerEvent] = []

    @property
    def cap(self) -> Budget:
        return self._cap

    @property
    def reserved(self) -> tuple[LedgerEvent, ...]:
        """Every reservation this recorder made (all counted against the cap)."""
        return tuple(self._reserved)

    @property
    def unused(self) -> tuple[LedgerEvent, ...]:
        """Reservations of the plan that no :meth:`spend` has used yet."""
        return tuple(self._pending)

    def check(self, events: Sequence[Event]) -> None:
        self.ledger.check(self.dataset, events)

    def reserve_plan(self, spends: Sequence[Spend]) -> None:
        """Check the whole plan against the cap and reserve it in one transaction."""
        made = self.ledger.reserve_plan(self.dataset, spends, actor=self.actor,
                                        release_id=self.release_id)
        self._reserved.extend(made)
        self._pending.extend(made)

    @contextlib.contextmanager
    def spend(self, purpose: str, event: Event) -> Iterator[None]:
        reservation = self._take(purpose, event)
        if reservation is None:  # not in a reserved plan: reserve it alone (checked)
            (reservation,) = self.ledger.reserve_plan(
                self.dataset, [Spend(purpose, event)], actor=self.actor,
                release_id=self.release_id)
            self._reserved.append(reservation)
        with self.ledger.settle(reservation):
            yield

    def release_unused(self, reason: str) -> None:
        """Close every unused reservation as aborted (they stay counted)."""
        while self._pending:
            self.ledger.close(self._pending.pop(0), "abort", {"error": reason[:500]})

    def _take(self, purpose: str, event: Event) -> LedgerEvent | None:
        wanted = event.to_dict()
        matches = [r for r in self._pending if r.event is not None
                   and r.event.to_dict() == wanted]
        if not matches:
            return None
        exact = [r for r in matches if r.purpose == purpose]
        chosen = (exact or matches)[0]
        self._pending.remove(chosen)
        return chosen

    def spent_events(self) -> tuple[Event, ...]:
        return self.ledger.spent_events(self.dataset)

    def __repr__(self) -> str:
        return (f"LedgerRecorder({self.ledger.location!r}, dataset={self.dataset!r}, "
                f"release_id={self.release_id!r})")
