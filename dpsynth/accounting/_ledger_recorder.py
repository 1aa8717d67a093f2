"""The ledger's :class:`~dpsynth.accounting.session.SpendRecorder`: one dataset, one run."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from dpsynth.accounting._ledger_records import DatasetRecord
from dpsynth.accounting.budget import Budget
from dpsynth.accounting.events import Event

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
    report groups the spends of one fit or release.
    """

    def __init__(self, ledger: Ledger, record: DatasetRecord, *, actor: str | None = None,
                 release_id: str | None = None):
        self.ledger = ledger
        self.dataset = record.name
        self.actor = actor or default_actor()
        self.release_id = release_id or new_release_id()
        self._cap = record.cap

    @property
    def cap(self) -> Budget:
        return self._cap

    def check(self, events: Sequence[Event]) -> None:
        self.ledger.check(self.dataset, events)

    @contextlib.contextmanager
    def spend(self, purpose: str, event: Event) -> Iterator[None]:
        with self.ledger.spend(self.dataset, purpose, event, actor=self.actor,
                               release_id=self.release_id):
            yield

    def spent_events(self) -> tuple[Event, ...]:
        return self.ledger.spent_events(self.dataset)

    def __repr__(self) -> str:
        return (f"LedgerRecorder({self.ledger.location!r}, dataset={self.dataset!r}, "
                f"release_id={self.release_id!r})")
