"""The persistent privacy ledger: every spend on a dataset, durable, capped and verifiable.

A dataset is registered once, under a name and the fingerprint of its content
(:func:`dpsynth.accounting.fingerprint.fingerprint`), with a hard cap ``(epsilon, delta)``.
Every mechanism run on it is then *reserved* before any noise is drawn: in one exclusive
transaction the ledger composes everything already counted with the new event (PLD
accountant, at the cap's delta), refuses the spend if that would cross the cap, and appends a
``reserve`` row otherwise. When the mechanism finishes a ``commit`` row is appended; when it
raises, an ``abort`` row, but the reservation stays counted (noise may have been drawn). A
process killed in between leaves its reservation counted and shown as ``interrupted``: privacy
spent is never under-reported. Rows are never updated or deleted and form a hash chain
(:mod:`dpsynth.accounting._ledger_chain`) that :meth:`Ledger.verify` checks.

Storage is one SQLite file by default (WAL journal), or a server database through a SQLAlchemy
URL (:mod:`dpsynth.accounting._ledger_store`). A :class:`LedgerRecorder` satisfies
:class:`~dpsynth.accounting.session.SpendRecorder`, so ``synth.fit(data, schema,
ledger=ledger.recorder("census"))`` lands every spend of a fit here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dpsynth._version import __version__
from dpsynth.accounting._ledger_chain import (
    LedgerEvent,
    canonical_json,
    clean_float,
    compute_row_hash,
    verify_entries,
)
from dpsynth.accounting._ledger_math import PrefixComposer
from dpsynth.accounting._ledger_recorder import LedgerRecorder, default_actor, new_release_id
from dpsynth.accounting._ledger_records import (
    DatasetRecord,
    DataVersion,
    SpendEntry,
    Status,
    UnknownDatasetError,
    check_registration,
    record_from,
    reregistration_adds_row,
    spends_from,
)
from dpsynth.accounting._ledger_store import COLUMNS, SQLITE_GUARDS, Txn, open_store
from dpsynth.accounting.analysis import pld_epsilon, rdp_epsilon
from dpsynth.accounting.budget import Budget
from dpsynth.accounting.events import Event
from dpsynth.accounting.session import EPS_TOLERANCE, over_cap_message
from dpsynth.errors import BudgetExceededError, PrivacyError, param_error

logger = logging.getLogger(__name__)

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM ledger_entries"


def default_ledger_location() -> str:
    """``$DPSYNTH_LEDGER``, else ``$XDG_DATA_HOME/dpsynth/ledger.sqlite`` (XDG default
    ``~/.local/share``)."""
    env = os.environ.get("DPSYNTH_LEDGER")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "dpsynth" / "ledger.sqlite")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


class Ledger:
    """A persistent, capped, append-only record of privacy spends per dataset.

    Parameters
    ----------
    location:
        A SQLite file path, or a SQLAlchemy URL (``postgresql://...``; needs the ``server``
        extra) for a ledger a team shares. ``None`` uses :func:`default_ledger_location`.
    create:
        Create the ledger if it does not exist. ``False`` raises
        :class:`~dpsynth.accounting._ledger_store.LedgerNotFoundError` instead.
    timeout:
        Seconds a writer waits for another one to finish before giving up.
    """

    def __init__(self, location: str | Path | None = None, *, create: bool = True,
                 timeout: float = 60.0):
        self.location = str(location) if location is not None else default_ledger_location()
        self._store = open_store(self.location, timeout=timeout, create=create)
        self._composer = PrefixComposer()

    def __repr__(self) -> str:
        return f"Ledger({self.location!r})"

    # -- datasets -----------------------------------------------------------------------
    def register(self, name: str, cap: Budget, *, fingerprint: str, n_rows: int,
                 privacy_unit: str = "row", schema: Any = None, content_hash: str | None = None,
                 actor: str | None = None, allow_new_fingerprint: bool = False) -> DatasetRecord:
        """Register dataset ``name`` with its hard ``cap``; idempotent for the same data.

        Re-registering ``name`` with another fingerprint (the data changed) needs
        ``allow_new_fingerprint=True`` unless ``content_hash`` shows the same rows under a new
        schema; history and cap carry over. The cap and the privacy unit never change.
        Registering data already registered under another name (same fingerprint or content
        hash) is refused: it would open a second budget for the same people. ``schema`` (a
        :class:`~dpsynth.schema.Schema` or its dict) is stored with the registration.
        """
        schema_dict = schema.to_dict() if callable(getattr(schema, "to_dict", None)) else schema
        check_registration(name, cap, fingerprint, n_rows, privacy_unit, schema_dict)
        with self._store.transaction(write=True) as txn:
            registered = self._registrations(txn)
            twins = sorted(n for n, regs in registered.items() if n != name
                           and record_from(regs).matches(fingerprint, content_hash))
            if twins:
                raise PrivacyError(f"This data (fingerprint {fingerprint[:19]}...) is already "
                                   f"registered as dataset {twins[0]!r}; spend from that budget "
                                   "instead of opening a second one for the same people.")
            if name in registered:
                existing = record_from(registered[name])
                same_rows = content_hash is not None and existing.matches(None, content_hash)
                if not reregistration_adds_row(existing, cap, fingerprint, n_rows, privacy_unit,
                                      allow_new_fingerprint or same_rows):
                    return existing
            self._append(txn, dataset=name, kind="register", epsilon=cap.epsilon,
                         delta=cap.delta, actor=actor or default_actor(), detail={
                             "fingerprint": fingerprint, "content_hash": content_hash,
                             "n_rows": int(n_rows), "privacy_unit": privacy_unit,
                             "schema": schema_dict})
            record = record_from(self._registrations(txn, name)[name])
        logger.info("registered dataset %r with cap %s in %s", name, cap, self.location)
        return record

    def register_table(self, name: str, cap: Budget, data: Any, schema: Any = None, *,
                       privacy_unit: str | None = None, actor: str | None = None,
                       allow_new_fingerprint: bool = False,
                       identity: Any = None) -> DatasetRecord:
        """:meth:`register` a DataFrame: identifies it (fingerprint, content hash, rows) itself,
        unless its :class:`~dpsynth.accounting.fingerprint.DataIdentity` is given as
        ``identity`` (the caller hashed it already).

        The privacy unit defaults to the schema's ``user_key`` (``user:<key>``), else ``row``.
        """
        from dpsynth.accounting.fingerprint import identify

        ident = identity if identity is not None else identify(data, schema)
        key = getattr(schema, "user_key", None)
        return self.register(name, cap, fingerprint=ident.fingerprint, n_rows=ident.n_rows,
                             privacy_unit=privacy_unit or (f"user:{key}" if key else "row"),
                             schema=schema, content_hash=ident.content_hash, actor=actor,
                             allow_new_fingerprint=allow_new_fingerprint)

    def dataset(self, name: str) -> DatasetRecord:
        """The registration of ``name``; :class:`UnknownDatasetError` (with a hint) if none."""
        with self._store.transaction(write=False) as txn:
            return self._dataset_in(txn, name)

    def datasets(self) -> tuple[DatasetRecord, ...]:
        """Every registered dataset, by name."""
        with self._store.transaction(write=False) as txn:
            registered = self._registrations(txn)
        return tuple(record_from(registered[n]) for n in sorted(registered))

    # -- reading --------------------------------------------------------------------------
    def entries(self, dataset: str | None = None) -> tuple[LedgerEvent, ...]:
        """Raw rows in order (all datasets when ``dataset`` is ``None``)."""
        with self._store.transaction(write=False) as txn:
            if dataset is None:
                rows = txn.rows(f"{_SELECT} ORDER BY seq")
            else:
                rows = txn.rows(f"{_SELECT} WHERE dataset = :d ORDER BY seq", {"d": dataset})
        return tuple(LedgerEvent.from_row(r) for r in rows)

    def spends(self, dataset: str) -> tuple[SpendEntry, ...]:
        """Every reservation on ``dataset`` with its status: committed, aborted, interrupted."""
        with self._store.transaction(write=False) as txn:
            self._dataset_in(txn, dataset)
            rows = txn.rows(f"{_SELECT} WHERE dataset = :d ORDER BY seq", {"d": dataset})
        return spends_from([LedgerEvent.from_row(r) for r in rows])

    def spent_events(self, dataset: str) -> tuple[Event, ...]:
        """The events counted against ``dataset``'s cap (every reservation, however it ended)."""
        with self._store.transaction(write=False) as txn:
            self._dataset_in(txn, dataset)
            return self._counted_in(txn, dataset)

    def status(self, dataset: str) -> Status:
        """Cap, spent (PLD; RDP and plain sum beside it) and remaining for ``dataset``."""
        with self._store.transaction(write=False) as txn:
            record = self._dataset_in(txn, dataset)
            rows = txn.rows(f"{_SELECT} WHERE dataset = :d ORDER BY seq", {"d": dataset})
        spends = spends_from([LedgerEvent.from_row(r) for r in rows])
        events = [s.event for s in spends]
        delta = record.cap.delta
        return Status.build(record, spends, self._composer.epsilon(events, delta),
                            rdp_epsilon(events, delta))

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last entry: record it elsewhere to anchor :meth:`verify`."""
        with self._store.transaction(write=False) as txn:
            rows = txn.rows("SELECT seq, row_hash FROM ledger_head WHERE id = 1")
        return int(rows[0][0]), str(rows[0][1])

    def anchor(self) -> str:
        """The head as ``"seq:hash"``, the form :meth:`verify` takes."""
        seq, digest = self.head()
        return f"{seq}:{digest}"

    def verify(self, *, anchor: str | None = None) -> list[str]:
        """Every integrity problem found (an empty list means the chain is intact).

        Detects edited, deleted, inserted and reordered rows, a changed cap, a head that does
        not match, removed append-only guards (SQLite) and, with ``anchor`` (``"seq:hash"``
        recorded earlier), a chain rewritten from that point on.
        """
        with self._store.transaction(write=False) as txn:
            rows = txn.rows(f"{_SELECT} ORDER BY seq")
            head_rows = txn.rows("SELECT seq, row_hash FROM ledger_head WHERE id = 1")
        head = (int(head_rows[0][0]), str(head_rows[0][1])) if head_rows else None
        problems = verify_entries([LedgerEvent.from_row(r) for r in rows], head, anchor)
        missing = sorted(set(SQLITE_GUARDS) - set(self._store_guards()))
        if missing:
            problems.append(f"the append-only guard triggers {missing} were removed")
        return problems

    # -- spending -------------------------------------------------------------------------
    def check(self, dataset: str, events: Sequence[Event]) -> None:
        """Raise :class:`BudgetExceededError` if spending ``events`` would cross the cap."""
        with self._store.transaction(write=False) as txn:
            record = self._dataset_in(txn, dataset)
            counted = self._counted_in(txn, dataset)
        self._refuse_over_cap(record, counted, tuple(events))

    @contextlib.contextmanager
    def spend(self, dataset: str, purpose: str, event: Event, *, actor: str | None = None,
              release_id: str | None = None) -> Iterator[LedgerEvent]:
        """Reserve ``event`` (refused over the cap), run the block, then commit it.

        The reservation is written and committed *before* the block runs, so it counts even if
        the process dies; an exception in the block appends an ``abort`` row and re-raises.
        """
        reservation = self._reserve(dataset, purpose, event, actor or default_actor(),
                                    release_id)
        try:
            yield reservation
        except GeneratorExit:
            raise  # abandoned without an outcome: stays counted, shown as interrupted
        except BaseException as exc:
            self._close(reservation, "abort", {"error": f"{type(exc).__name__}: {exc}"[:500]})
            raise
        self._close(reservation, "commit", {})

    def recorder(self, dataset: str, *, actor: str | None = None, release_id: str | None = None,
                 fingerprint: str | None = None,
                 content_hash: str | None = None) -> LedgerRecorder:
        """A :class:`~dpsynth.accounting.session.SpendRecorder` spending on ``dataset``.

        With the ``fingerprint`` and/or ``content_hash`` of the data about to be used
        (:func:`~dpsynth.accounting.fingerprint.identify`), refuses data that is none of the
        registered versions of the dataset: its spends would land on the wrong budget.
        """
        record = self.dataset(dataset)
        given = fingerprint is not None or content_hash is not None
        if given and not record.matches(fingerprint, content_hash):
            raise PrivacyError(
                f"The data does not match dataset {dataset!r} in the ledger (registered "
                f"fingerprint {record.fingerprint[:19]}..., this data "
                f"{(fingerprint or content_hash or '')[:19]}...). Use the registered data, or "
                "register this version (allow_new_fingerprint / --allow-new-fingerprint) so "
                "its spends count against the same budget."
            )
        return LedgerRecorder(self, record, actor=actor, release_id=release_id)

    def _reserve(self, dataset: str, purpose: str, event: Event, actor: str,
                 release_id: str | None) -> LedgerEvent:
        if not isinstance(purpose, str) or not purpose.strip():
            raise param_error("purpose", "a non-empty string such as 'train:generator'",
                              purpose, "Ledger.spend")
        if not isinstance(event, Event):
            raise param_error("event", "a dpsynth.accounting Event", event, "Ledger.spend")
        # Compose outside the write lock first (warms the cache); inside it, the same figure is
        # recomputed only if another process spent in between.
        with self._store.transaction(write=False) as txn:
            delta = self._dataset_in(txn, dataset).cap.delta
            self._composer.epsilon((*self._counted_in(txn, dataset), event), delta)
        alone, rdp = pld_epsilon([event], delta), rdp_epsilon([event], delta)
        with self._store.transaction(write=True) as txn:
            record = self._dataset_in(txn, dataset)
            self._refuse_over_cap(record, self._counted_in(txn, dataset), (event,))
            reservation = self._append(
                txn, dataset=dataset, kind="reserve", purpose=purpose, mechanism=event.kind,
                event_json=canonical_json(event.to_dict()), epsilon=alone, delta=delta,
                rdp_epsilon=rdp, actor=actor, release_id=release_id,
                detail={"pid": os.getpid(), "host": socket.gethostname()})
        logger.info("reserved %s on %r for %s (entry %d)", event.describe(), dataset, purpose,
                    reservation.seq)
        return reservation

    def _close(self, reservation: LedgerEvent, kind: str, detail: Mapping[str, Any]) -> None:
        try:
            with self._store.transaction(write=True) as txn:
                self._append(txn, dataset=reservation.dataset, kind=kind, ref=reservation.seq,
                             purpose=reservation.purpose, actor=reservation.actor,
                             release_id=reservation.release_id, detail=dict(detail))
        except Exception:
            if kind == "commit":
                raise
            # The reservation stays counted (shown as interrupted); keep the original error.
            logger.exception("could not record the abort of ledger entry %d", reservation.seq)

    def _refuse_over_cap(self, record: DatasetRecord, counted: tuple[Event, ...],
                         new: tuple[Event, ...]) -> None:
        cap = record.cap
        would_be = self._composer.epsilon((*counted, *new), cap.delta)
        if not would_be <= cap.epsilon + EPS_TOLERANCE:  # also refuses NaN
            spent = self._composer.epsilon(counted, cap.delta)
            raise BudgetExceededError(f"Dataset {record.name!r}: "
                                      + over_cap_message(cap, spent, would_be))

    # -- storage helpers ------------------------------------------------------------------
    def _store_guards(self) -> list[str]:
        guards = getattr(self._store, "guards_present", None)
        return list(guards()) if guards is not None else sorted(SQLITE_GUARDS)

    def _registrations(self, txn: Txn, name: str | None = None) -> dict[str, list[LedgerEvent]]:
        sql = f"{_SELECT} WHERE kind = 'register'"
        params = {}
        if name is not None:
            sql, params = sql + " AND dataset = :d", {"d": name}
        out: dict[str, list[LedgerEvent]] = {}
        for row in txn.rows(sql + " ORDER BY seq", params):
            entry = LedgerEvent.from_row(row)
            out.setdefault(entry.dataset, []).append(entry)
        return out

    def _dataset_in(self, txn: Txn, name: str) -> DatasetRecord:
        registered = self._registrations(txn, name)
        if name not in registered:
            known = sorted(self._registrations(txn))
            raise UnknownDatasetError(name, known, self.location)
        return record_from(registered[name])

    def _counted_in(self, txn: Txn, dataset: str) -> tuple[Event, ...]:
        rows = txn.rows(f"{_SELECT} WHERE dataset = :d AND kind = 'reserve' ORDER BY seq",
                        {"d": dataset})
        events = (LedgerEvent.from_row(r).event for r in rows)
        return tuple(e for e in events if e is not None)

    def _append(self, txn: Txn, *, dataset: str, kind: str, actor: str,
                detail: Mapping[str, Any], ref: int | None = None, purpose: str | None = None,
                mechanism: str | None = None, event_json: str | None = None,
                epsilon: float | None = None, delta: float | None = None,
                rdp_epsilon: float | None = None, release_id: str | None = None) -> LedgerEvent:
        head_seq, head_hash = txn.rows("SELECT seq, row_hash FROM ledger_head WHERE id = 1")[0]
        fields: dict[str, Any] = {
            "seq": int(head_seq) + 1, "dataset": dataset, "kind": kind, "ref": ref,
            "purpose": purpose, "mechanism": mechanism, "event_json": event_json,
            "epsilon": clean_float(epsilon), "delta": clean_float(delta),
            "rdp_epsilon": clean_float(rdp_epsilon), "actor": actor, "created_at": _now(),
            "dpsynth_version": __version__, "release_id": release_id,
            "detail_json": canonical_json(dict(detail)), "prev_hash": str(head_hash),
        }
        fields["row_hash"] = compute_row_hash(str(head_hash), fields)
        txn.run(f"INSERT INTO ledger_entries ({', '.join(COLUMNS)}) VALUES "
                f"({', '.join(':' + c for c in COLUMNS)})", fields)
        txn.run("UPDATE ledger_head SET seq = :seq, row_hash = :h WHERE id = 1",
                {"seq": fields["seq"], "h": fields["row_hash"]})
        return LedgerEvent.from_row([fields[c] for c in COLUMNS])


__all__ = [
    "DataVersion",
    "DatasetRecord",
    "Ledger",
    "LedgerEvent",
    "LedgerRecorder",
    "SpendEntry",
    "Status",
    "UnknownDatasetError",
    "default_actor",
    "default_ledger_location",
    "new_release_id",
]
