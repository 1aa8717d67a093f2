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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dpsynth._version import __version__
from dpsynth.accounting._ledger_chain import (
    LedgerEvent,
    canonical_json,
    clean_float,
    compute_row_hash,
)
from dpsynth.accounting._ledger_integrity import Integrity, new_meta_for
from dpsynth.accounting._ledger_key import hide_password, key_path_for
from dpsynth.accounting._ledger_math import PrefixComposer
from dpsynth.accounting._ledger_overlap import SKETCH_SIZE, check_overlap, row_sketch
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
from dpsynth.accounting.rdp_filter import filter_epsilon
from dpsynth.accounting.session import EPS_TOLERANCE, Spend, over_cap_message
from dpsynth.errors import (
    BudgetExceededError,
    LedgerCorruptedError,
    LegacyLedgerError,
    PrivacyError,
    param_error,
)

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

    Every read and every spend first verifies the whole ledger (keyed chain, witness, guards)
    and refuses to go on if it fails (:class:`LedgerCorruptedError`).

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
        key_path = key_path_for(self.location)
        self._store = open_store(self.location, timeout=timeout, create=create,
                                 new_meta=lambda: new_meta_for(key_path),
                                 make_parent=location is None)
        self._integrity = Integrity(self.display_location, self._store.meta, key_path)
        self._composer = PrefixComposer()

    def __repr__(self) -> str:
        return f"Ledger({self.display_location!r})"

    @property
    def display_location(self) -> str:
        """The location to show: a URL without its password."""
        return hide_password(self.location)

    @property
    def keyed(self) -> bool:
        """Whether the chain is keyed (format 2); format-1 ledgers are read, never spent on."""
        return self._integrity.keyed

    # -- datasets -----------------------------------------------------------------------
    def register(self, name: str, cap: Budget, *, fingerprint: str, n_rows: int,
                 privacy_unit: str = "row", schema: Any = None, content_hash: str | None = None,
                 actor: str | None = None, allow_new_fingerprint: bool = False,
                 sketch: Sequence[int] | None = None,
                 different_population: bool = False) -> DatasetRecord:
        """Register dataset ``name`` with its hard ``cap``; idempotent for the same data.

        Re-registering ``name`` with another fingerprint (the data changed) needs
        ``allow_new_fingerprint=True`` unless ``content_hash`` shows the same rows under a new
        schema; history and cap carry over. The cap and the privacy unit never change.
        Registering data already registered under another name (same fingerprint or content
        hash, or, with ``sketch``, over half of its rows) is refused: it would open a second
        budget for the same people, unless ``different_population`` declares otherwise (the
        overlap measured is recorded). ``schema`` is stored with the registration.
        """
        schema_dict = schema.to_dict() if callable(getattr(schema, "to_dict", None)) else schema
        check_registration(name, cap, fingerprint, n_rows, privacy_unit, schema_dict)
        self._integrity.require_keyed()
        with self._store.transaction(write=True) as txn:
            entries = self._load(txn)
            registered = _registrations(entries)
            overlap = check_overlap(name, registered, fingerprint, content_hash, sketch,
                                    n_rows, different_population)
            if name in registered:
                existing = record_from(registered[name])
                same_rows = content_hash is not None and existing.matches(None, content_hash)
                if not reregistration_adds_row(existing, cap, fingerprint, n_rows, privacy_unit,
                                               allow_new_fingerprint or same_rows):
                    return existing
            detail = {"fingerprint": fingerprint, "content_hash": content_hash,
                      "n_rows": int(n_rows), "privacy_unit": privacy_unit,
                      "schema": schema_dict, **overlap}
            if sketch is not None:
                detail["sketch"] = [int(v) for v in sketch]
            entry = self._append(txn, entries, dataset=name, kind="register",
                                 epsilon=cap.epsilon, delta=cap.delta,
                                 actor=actor or default_actor(), detail=detail)
            record = record_from([*registered.get(name, []), entry])
        self._integrity.advance(entry.seq, entry.row_hash)
        logger.info("registered dataset %r with cap %s in %s", name, cap, self.display_location)
        return record

    def register_table(self, name: str, cap: Budget, data: Any, schema: Any = None, *,
                       privacy_unit: str | None = None, actor: str | None = None,
                       allow_new_fingerprint: bool = False,
                       identity: Any = None,
                       different_population: bool = False) -> DatasetRecord:
        """:meth:`register` a DataFrame: identifies it (fingerprint, content hash, rows and a
        keyed overlap sketch) itself, unless its
        :class:`~dpsynth.accounting.fingerprint.DataIdentity` is given as ``identity`` (the
        caller hashed it already; the sketch is still computed).

        The privacy unit defaults to the schema's ``user_key`` (``user:<key>``), else ``row``.
        """
        from dpsynth.accounting.fingerprint import identify

        ident = identity if identity is not None else identify(data, schema)
        key = getattr(schema, "user_key", None)
        sketch = row_sketch(data, self._integrity.key) if self._integrity.key else None
        return self.register(name, cap, fingerprint=ident.fingerprint, n_rows=ident.n_rows,
                             privacy_unit=privacy_unit or (f"user:{key}" if key else "row"),
                             schema=schema, content_hash=ident.content_hash, actor=actor,
                             allow_new_fingerprint=allow_new_fingerprint, sketch=sketch,
                             different_population=different_population)

    def sketch_frames(self, frames: Iterable[Any]) -> list[int] | None:
        """The overlap sketch :meth:`register_table` computes, of a table seen one frame at a
        time (bottom-k sketches merge exactly; a column whose values read as numbers in some
        frames only is normalised frame by frame). ``None`` for an unkeyed ledger."""
        if not self._integrity.key:
            return None
        kept: list[int] = []
        for frame in frames:
            kept = sorted(set(kept) | set(row_sketch(frame, self._integrity.key)))[:SKETCH_SIZE]
        return kept

    def dataset(self, name: str) -> DatasetRecord:
        """The registration of ``name``; :class:`UnknownDatasetError` (with a hint) if none."""
        return self._dataset_in(self._read(), name)

    def datasets(self, *, verify: bool = True) -> tuple[DatasetRecord, ...]:
        """Every registered dataset, by name."""
        registered = _registrations(self._read(verify))
        return tuple(record_from(registered[n]) for n in sorted(registered))

    # -- reading --------------------------------------------------------------------------
    def entries(self, dataset: str | None = None) -> tuple[LedgerEvent, ...]:
        """Raw rows in order (all datasets when ``dataset`` is ``None``); not verified."""
        with self._store.transaction(write=False) as txn:
            rows = [LedgerEvent.from_row(r) for r in txn.rows(f"{_SELECT} ORDER BY seq")]
        return tuple(e for e in rows if dataset is None or e.dataset == dataset)

    def spends(self, dataset: str, *, verify: bool = True) -> tuple[SpendEntry, ...]:
        """Every reservation on ``dataset`` with its status: committed, aborted, interrupted.

        ``verify=False`` reads a ledger that fails verification (to show what it says).
        """
        entries = self._read(verify)
        self._dataset_in(entries, dataset)
        return spends_from([e for e in entries if e.dataset == dataset])

    def spent_events(self, dataset: str) -> tuple[Event, ...]:
        """The events counted against ``dataset``'s cap (every reservation, however it ended)."""
        entries = self._read()
        self._dataset_in(entries, dataset)
        return _counted(entries, dataset)

    def status(self, dataset: str, *, verify: bool = True) -> Status:
        """Cap, spent (PLD; the adaptive filter, RDP and plain sum beside it) and remaining.

        ``verify=False`` reads a ledger that fails verification (to show what it says).
        """
        entries = self._read(verify)
        record = self._dataset_in(entries, dataset)
        spends = spends_from([e for e in entries if e.dataset == dataset])
        events = [s.event for s in spends]
        delta = record.cap.delta
        return Status.build(record, spends, self._composer.epsilon(events, delta),
                            rdp_epsilon(events, delta), filter_epsilon(events, delta))

    def cumulative_epsilon(self, events: Sequence[Event], delta: float) -> list[float]:
        """PLD epsilon after each of ``events`` in turn (the running total of a history)."""
        return self._composer.cumulative(events, delta)

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
        """Every integrity problem found (an empty list means the ledger is intact).

        Detects edited, deleted, inserted and reordered rows, a changed cap, a head that does
        not match, a chain recomputed without the key, a ledger cut short or rolled back to an
        older copy (the witness), removed append-only guards (SQLite) and, with ``anchor``
        (``"seq:hash"`` recorded earlier), a chain that differs from that point.
        """
        with self._store.transaction(write=False) as txn:
            entries, head = self._rows_and_head(txn)
        problems = self._integrity.problems(entries, head, anchor)
        missing = sorted(set(SQLITE_GUARDS) - set(self._store_guards()))
        if missing:
            problems.append(f"the append-only guard triggers {missing} were removed")
        return problems

    # -- spending -------------------------------------------------------------------------
    def check(self, dataset: str, events: Sequence[Event]) -> None:
        """Raise :class:`BudgetExceededError` if spending ``events`` would cross the cap."""
        entries = self._read()
        record = self._dataset_in(entries, dataset)
        self._refuse_over_cap(record, _counted(entries, dataset), tuple(events))

    def reserve_plan(self, dataset: str, spends: Sequence[Spend], *, actor: str | None = None,
                     release_id: str | None = None) -> tuple[LedgerEvent, ...]:
        """Check the whole plan against the cap and reserve all of it in one transaction.

        All or nothing: a plan over the cap (PLD or the adaptive filter) reserves nothing.
        The reservations count from the moment they are written, whatever happens next.
        """
        spends = _checked_plan(spends)
        self._integrity.require_keyed()
        entries = self._read(verify=False)  # warm the PLD cache unlocked; verified below
        delta = self._dataset_in(entries, dataset).cap.delta
        self._composer.epsilon((*_counted(entries, dataset), *(s.event for s in spends)), delta)
        figures = [(pld_epsilon([s.event], delta), rdp_epsilon([s.event], delta))
                   for s in spends]
        detail = {"pid": os.getpid(), "host": socket.gethostname(), "plan_size": len(spends)}
        with self._store.transaction(write=True) as txn:
            entries = self._load(txn)
            record = self._dataset_in(entries, dataset)
            self._refuse_over_cap(record, _counted(entries, dataset),
                                  tuple(s.event for s in spends))
            made = tuple(self._append(
                txn, entries, dataset=dataset, kind="reserve", purpose=s.purpose,
                mechanism=s.event.kind, event_json=canonical_json(s.event.to_dict()),
                epsilon=alone, delta=delta, rdp_epsilon=rdp, actor=actor or default_actor(),
                release_id=release_id, detail=detail)
                for s, (alone, rdp) in zip(spends, figures, strict=True))
        self._integrity.advance(made[-1].seq, made[-1].row_hash)
        logger.info("reserved %d spend(s) on %r (entries %d..%d)", len(made), dataset,
                    made[0].seq, made[-1].seq)
        return made

    @contextlib.contextmanager
    def spend(self, dataset: str, purpose: str, event: Event, *, actor: str | None = None,
              release_id: str | None = None) -> Iterator[LedgerEvent]:
        """Reserve ``event`` (refused over the cap), run the block, then commit it.

        The reservation is written and committed *before* the block runs, so it counts even if
        the process dies; an exception in the block appends an ``abort`` row and re-raises.
        """
        (reservation,) = self.reserve_plan(dataset, [Spend(purpose, event)], actor=actor,
                                           release_id=release_id)
        with self.settle(reservation):
            yield reservation

    @contextlib.contextmanager
    def settle(self, reservation: LedgerEvent) -> Iterator[None]:
        """Run the block for an existing ``reservation``: commit it, or abort it on error."""
        try:
            yield
        except GeneratorExit:
            raise  # abandoned without an outcome: stays counted, shown as interrupted
        except BaseException as exc:
            self.close(reservation, "abort", {"error": f"{type(exc).__name__}: {exc}"[:500]})
            raise
        self.close(reservation, "commit", {})

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

    def close(self, reservation: LedgerEvent, kind: str, detail: Mapping[str, Any]) -> None:
        """Append how ``reservation`` ended (``commit`` or ``abort``); it stays counted."""
        try:
            with self._store.transaction(write=True) as txn:
                entries = self._load(txn)
                entry = self._append(txn, entries, dataset=reservation.dataset, kind=kind,
                                     ref=reservation.seq, purpose=reservation.purpose,
                                     actor=reservation.actor,
                                     release_id=reservation.release_id, detail=dict(detail))
            self._integrity.advance(entry.seq, entry.row_hash)
        except Exception:
            if kind == "commit":
                raise
            # The reservation stays counted (shown as interrupted); keep the original error.
            logger.exception("could not record the abort of ledger entry %d", reservation.seq)

    def _refuse_over_cap(self, record: DatasetRecord, counted: tuple[Event, ...],
                         new: tuple[Event, ...]) -> None:
        cap = record.cap
        would_be = self._composer.epsilon((*counted, *new), cap.delta)
        # The first plan on a dataset is chosen before anything was released: PLD is exact
        # for it. From the second on, the filter must hold too (see rdp_filter: if the first
        # plan alone already exceeds the filter, no later plan is ever admitted).
        adaptive = filter_epsilon((*counted, *new), cap.delta) if counted else 0.0
        if not max(would_be, adaptive) <= cap.epsilon + EPS_TOLERANCE:  # also refuses NaN
            spent = self._composer.epsilon(counted, cap.delta)
            message = over_cap_message(cap, spent, would_be)
            if would_be <= cap.epsilon + EPS_TOLERANCE:
                message = (f"Refused by the adaptive-composition filter: it would certify "
                           f"epsilon {adaptive:.4g} for every release so far and this one, "
                           f"over the cap of {cap.epsilon:.4g} (PLD, valid only if no release "
                           f"was chosen after seeing another, would say {would_be:.4g}). "
                           "Nothing was spent.")
            raise BudgetExceededError(f"Dataset {record.name!r}: {message}")

    # -- storage helpers ------------------------------------------------------------------
    def _store_guards(self) -> list[str]:
        guards = getattr(self._store, "guards_present", None)
        return list(guards()) if guards is not None else sorted(SQLITE_GUARDS)

    def _rows_and_head(self, txn: Txn) -> tuple[list[LedgerEvent], tuple[int, str] | None]:
        entries = [LedgerEvent.from_row(r) for r in txn.rows(f"{_SELECT} ORDER BY seq")]
        head_rows = txn.rows("SELECT seq, row_hash FROM ledger_head WHERE id = 1")
        head = (int(head_rows[0][0]), str(head_rows[0][1])) if head_rows else None
        return entries, head

    def _load(self, txn: Txn) -> list[LedgerEvent]:
        """Every row, verified (verify on open); :class:`LedgerCorruptedError` otherwise."""
        entries, head = self._rows_and_head(txn)
        problems = self._integrity.problems(entries, head)
        if self._store.is_sqlite:
            found = txn.rows("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            missing = sorted(set(SQLITE_GUARDS) - {str(r[0]) for r in found})
            if missing:
                problems.append(f"the append-only guard triggers {missing} were removed")
        if problems:
            raise LedgerCorruptedError(self.display_location, problems)
        if head is not None and head[0] > 0:  # what this machine has now seen verified
            self._integrity.advance(head[0], head[1], quiet=True)
        return entries

    def _read(self, verify: bool = True) -> list[LedgerEvent]:
        with self._store.transaction(write=False) as txn:
            if not verify:
                return self._rows_and_head(txn)[0]
            return self._load(txn)

    def _dataset_in(self, entries: Sequence[LedgerEvent], name: str) -> DatasetRecord:
        registered = _registrations(entries)
        if name not in registered:
            raise UnknownDatasetError(name, sorted(registered), self.display_location)
        return record_from(registered[name])

    def _append(self, txn: Txn, entries: list[LedgerEvent], *, dataset: str, kind: str,
                actor: str, detail: Mapping[str, Any], ref: int | None = None,
                purpose: str | None = None, mechanism: str | None = None,
                event_json: str | None = None, epsilon: float | None = None,
                delta: float | None = None, rdp_epsilon: float | None = None,
                release_id: str | None = None) -> LedgerEvent:
        """Append one row after the verified ``entries`` (extended in place)."""
        head_seq, head_hash = txn.rows("SELECT seq, row_hash FROM ledger_head WHERE id = 1")[0]
        fields: dict[str, Any] = {
            "seq": int(head_seq) + 1, "dataset": dataset, "kind": kind, "ref": ref,
            "purpose": purpose, "mechanism": mechanism, "event_json": event_json,
            "epsilon": clean_float(epsilon), "delta": clean_float(delta),
            "rdp_epsilon": clean_float(rdp_epsilon), "actor": actor, "created_at": _now(),
            "dpsynth_version": __version__, "release_id": release_id,
            "detail_json": canonical_json(dict(detail)), "prev_hash": str(head_hash),
        }
        fields["row_hash"] = compute_row_hash(str(head_hash), fields, self._integrity.key)
        txn.run(f"INSERT INTO ledger_entries ({', '.join(COLUMNS)}) VALUES "
                f"({', '.join(':' + c for c in COLUMNS)})", fields)
        txn.run("UPDATE ledger_head SET seq = :seq, row_hash = :h WHERE id = 1",
                {"seq": fields["seq"], "h": fields["row_hash"]})
        entry = LedgerEvent.from_row([fields[c] for c in COLUMNS])
        entries.append(entry)
        return entry


def _registrations(entries: Sequence[LedgerEvent]) -> dict[str, list[LedgerEvent]]:
    out: dict[str, list[LedgerEvent]] = {}
    for entry in entries:
        if entry.kind == "register":
            out.setdefault(entry.dataset, []).append(entry)
    return out


def _counted(entries: Sequence[LedgerEvent], dataset: str) -> tuple[Event, ...]:
    events = (e.event for e in entries if e.dataset == dataset and e.kind == "reserve")
    return tuple(e for e in events if e is not None)


def _checked_plan(spends: Sequence[Spend]) -> tuple[Spend, ...]:
    spends = tuple(spends)
    if not spends:
        raise param_error("spends", "a non-empty sequence of Spend", spends, "Ledger.reserve_plan")
    for spend in spends:
        if not isinstance(spend, Spend):
            raise param_error("spends", "Spend(purpose, event) values", spend,
                              "Ledger.reserve_plan")
        if not isinstance(spend.purpose, str) or not spend.purpose.strip():
            raise param_error("purpose", "a non-empty string such as 'train:generator'",
                              spend.purpose, "Ledger.spend")
        if not isinstance(spend.event, Event):
            raise param_error("event", "a dpsynth.accounting Event", spend.event, "Ledger.spend")
    return spends


__all__ = [
    "DataVersion",
    "DatasetRecord",
    "Ledger",
    "LedgerCorruptedError",
    "LegacyLedgerError",
    "LedgerEvent",
    "LedgerRecorder",
    "SpendEntry",
    "Status",
    "UnknownDatasetError",
    "default_actor",
    "default_ledger_location",
    "new_release_id",
]
