"""Values the ledger hands back: a dataset's registration, its spends, its status."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dpsynth.accounting._ledger_chain import LedgerEvent
from dpsynth.accounting._ledger_math import plain_sum_epsilon
from dpsynth.accounting.analysis import ACCOUNTANT
from dpsynth.accounting.budget import Budget
from dpsynth.accounting.events import Event
from dpsynth.accounting.rdp_filter import FILTER_NAME
from dpsynth.errors import ParameterError, param_error
from dpsynth.errors import UnknownDatasetError as UnknownDatasetError  # re-exported

#: How a reservation ended: a commit row, an abort row, or neither (process killed or running).
STATUSES = ("committed", "aborted", "interrupted")


@dataclass(frozen=True)
class DataVersion:
    """One version of a dataset's data registered under its name."""

    fingerprint: str
    content_hash: str | None
    n_rows: int
    registered_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "content_hash": self.content_hash,
                "n_rows": self.n_rows, "registered_at": self.registered_at}


@dataclass(frozen=True)
class DatasetRecord:
    """A registered dataset: its name, current fingerprint, hard cap and privacy unit.

    ``versions`` lists every version of the data registered under the name; all of them share
    the cap and the spends.
    """

    name: str
    fingerprint: str
    cap: Budget
    n_rows: int
    privacy_unit: str
    schema: Mapping[str, Any] | None = field(hash=False)
    registered_at: str
    registered_by: str
    versions: tuple[DataVersion, ...]

    def matches(self, fingerprint: str | None = None, content_hash: str | None = None) -> bool:
        """Whether data with this fingerprint or content hash is one of the versions."""
        return any((fingerprint is not None and v.fingerprint == fingerprint)
                   or (content_hash is not None and v.content_hash == content_hash)
                   for v in self.versions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "fingerprint": self.fingerprint, "cap": self.cap.to_dict(),
            "n_rows": self.n_rows, "privacy_unit": self.privacy_unit,
            "schema": None if self.schema is None else dict(self.schema),
            "registered_at": self.registered_at, "registered_by": self.registered_by,
            "versions": [v.to_dict() for v in self.versions],
        }


@dataclass(frozen=True)
class SpendEntry:
    """A reservation and how it ended (``committed``, ``aborted`` or ``interrupted``).

    Every spend counts against the cap whatever its status: noise may have been drawn and
    results seen before a failure or a kill.
    """

    reservation: LedgerEvent
    status: str
    closed_at: str | None = None
    error: str | None = None

    @property
    def event(self) -> Event:
        event = self.reservation.event
        assert event is not None, "a reservation always carries its event"
        return event

    @property
    def purpose(self) -> str:
        return self.reservation.purpose or ""

    def to_dict(self) -> dict[str, Any]:
        r = self.reservation
        return {
            "seq": r.seq, "purpose": r.purpose, "mechanism": r.mechanism,
            "event": self.event.to_dict(), "description": self.event.describe(),
            "epsilon_alone": r.epsilon, "delta": r.delta, "rdp_epsilon_alone": r.rdp_epsilon,
            "status": self.status, "actor": r.actor, "reserved_at": r.created_at,
            "closed_at": self.closed_at, "error": self.error, "release_id": r.release_id,
            "dpsynth_version": r.dpsynth_version,
        }


@dataclass(frozen=True)
class Status:
    """Where a dataset's budget stands.

    ``epsilon`` composes every counted spend with the PLD accountant at the cap's delta: the
    exact figure if no release was chosen after seeing another. ``filter_epsilon`` is what
    the Rényi-DP filter certifies (:mod:`dpsynth.accounting.rdp_filter`), valid however the
    releases were chosen; the cap holds both, so ``remaining`` is measured against the larger.
    ``rdp_epsilon`` (Rényi DP, looser; ``nan`` when RDP cannot express a mechanism) and
    ``plain_sum_epsilon`` (basic composition, loosest) are shown for comparison only.
    """

    dataset: DatasetRecord
    epsilon: float
    rdp_epsilon: float
    plain_sum_epsilon: float
    n_spends: int
    n_committed: int
    n_aborted: int
    n_interrupted: int
    filter_epsilon: float = 0.0
    accountant: str = ACCOUNTANT
    cap_rule: str = FILTER_NAME

    @classmethod
    def build(cls, record: DatasetRecord, spends: Sequence[SpendEntry], epsilon: float,
              rdp: float, adaptive: float = 0.0) -> Status:
        count = {s: sum(1 for e in spends if e.status == s) for s in STATUSES}
        events = [s.event for s in spends]
        return cls(record, epsilon, rdp, plain_sum_epsilon(events, record.cap.delta),
                   len(spends), count["committed"], count["aborted"], count["interrupted"],
                   adaptive)

    @property
    def cap(self) -> Budget:
        return self.dataset.cap

    @property
    def remaining(self) -> float:
        """Epsilon left under the cap (at the cap's delta), by the larger of PLD and filter."""
        return max(0.0, self.cap.epsilon - max(self.epsilon, self.filter_epsilon))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.name, "cap": self.cap.to_dict(),
            "epsilon": self.epsilon, "delta": self.cap.delta, "remaining": self.remaining,
            "rdp_epsilon": _finite_or_none(self.rdp_epsilon),
            "plain_sum_epsilon": _finite_or_none(self.plain_sum_epsilon),
            "n_spends": self.n_spends, "n_committed": self.n_committed,
            "n_aborted": self.n_aborted, "n_interrupted": self.n_interrupted,
            "filter_epsilon": _finite_or_none(self.filter_epsilon),
            "accountant": self.accountant, "cap_rule": self.cap_rule,
        }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def record_from(registrations: Sequence[LedgerEvent]) -> DatasetRecord:
    """The dataset record from its ``register`` rows (first: cap; last: current version)."""
    first, last = registrations[0], registrations[-1]
    try:
        cap = Budget(first.epsilon, first.delta or 0.0)  # type: ignore[arg-type]
    except ParameterError:
        raise ParameterError(f"Ledger entry {first.seq} registers dataset {first.dataset!r} "
                             "without a valid cap; run `dpsynth budget verify`.") from None
    versions = tuple(DataVersion(str(r.detail.get("fingerprint", "")),
                                 r.detail.get("content_hash"), int(r.detail.get("n_rows", 0)),
                                 r.created_at) for r in registrations)
    schema = last.detail.get("schema")
    return DatasetRecord(
        name=first.dataset, fingerprint=versions[-1].fingerprint, cap=cap,
        n_rows=versions[-1].n_rows,
        privacy_unit=str(first.detail.get("privacy_unit", "row")),
        schema=schema if isinstance(schema, Mapping) else None,
        registered_at=first.created_at, registered_by=first.actor, versions=versions,
    )


def spends_from(entries: Sequence[LedgerEvent]) -> tuple[SpendEntry, ...]:
    """Pair each ``reserve`` row with the ``commit`` / ``abort`` row that closed it, if any."""
    closes = {e.ref: e for e in entries if e.kind in ("commit", "abort")}
    out = []
    for e in entries:
        if e.kind != "reserve":
            continue
        close = closes.get(e.seq)
        if close is None:
            out.append(SpendEntry(e, "interrupted"))
        else:
            status = "committed" if close.kind == "commit" else "aborted"
            error = close.detail.get("error") if close.kind == "abort" else None
            out.append(SpendEntry(e, status, close.created_at, error))
    return tuple(out)


def check_registration(name: str, cap: Budget, fingerprint: str, n_rows: int,
                       privacy_unit: str, schema: Any) -> None:
    """Raise one :class:`ParameterError` listing every problem with a registration."""
    owner, problems = "Ledger.register", []
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        problems.append(param_error("name", "a non-empty string without surrounding spaces",
                                    name, owner))
    if not isinstance(cap, Budget):
        problems.append(param_error("cap", "a dpsynth.Budget", cap, owner))
    if not isinstance(fingerprint, str) or len(fingerprint) < 16:
        problems.append(param_error("fingerprint", "a dataset fingerprint string (see "
                                    "dpsynth.accounting.fingerprint)", fingerprint, owner))
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 2:
        problems.append(param_error("n_rows", "an integer >= 2", n_rows, owner))
    elif isinstance(cap, Budget):
        try:
            cap.check_delta_for(n_rows)
        except ParameterError as exc:
            problems.append(exc)
    unit = privacy_unit if isinstance(privacy_unit, str) else ""
    if not (unit in ("row", "user") or (unit.startswith("user:") and len(unit) > 5)):
        problems.append(param_error("privacy_unit", "'row', 'user' or 'user:<key column>'",
                                    privacy_unit, owner))
    if schema is not None and not isinstance(schema, Mapping):
        problems.append(param_error("schema", "None, a Schema or a dict", schema, owner))
    if problems:
        raise ParameterError("\n".join(str(p) for p in problems))


def reregistration_adds_row(existing: DatasetRecord, cap: Budget, fingerprint: str, n_rows: int,
                   privacy_unit: str, allow_new_fingerprint: bool) -> bool:
    """Whether a re-registration adds a row (new data version); raise if it is not allowed."""
    name = existing.name
    if cap != existing.cap:
        raise ParameterError(f"Dataset {name!r} is registered with the cap {existing.cap}; a cap "
                             f"never changes (asked for {cap}).")
    if privacy_unit != existing.privacy_unit:
        raise ParameterError(f"Dataset {name!r} is registered with privacy unit "
                             f"{existing.privacy_unit!r}; it cannot change to {privacy_unit!r}.")
    if fingerprint == existing.fingerprint:
        if int(n_rows) != existing.n_rows:
            raise ParameterError(f"Dataset {name!r} is registered with {existing.n_rows} rows "
                                 f"for this fingerprint, not {n_rows}.")
        return False
    if not allow_new_fingerprint:
        raise ParameterError(
            f"Dataset {name!r} is registered with different data (fingerprint "
            f"{existing.fingerprint[:19]}..., this data {fingerprint[:19]}...). If this is a new "
            "version of the same data, register it with allow_new_fingerprint=True "
            "(--allow-new-fingerprint): it keeps the cap and everything already spent."
        )
    return True
