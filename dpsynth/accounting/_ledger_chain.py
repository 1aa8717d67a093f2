"""The ledger's rows as values, their hash chain, and the verification of that chain.

Every row carries the hash of the row before it (``prev_hash``) and its own hash,
``row_hash = HMAC-SHA256(key, prev_hash + canonical JSON of all its other fields)`` with the
ledger's secret key (kept outside the database, :mod:`dpsynth.accounting._ledger_key`); older
ledgers (format 1) used a plain SHA-256 instead of the HMAC. The first row links
to :data:`GENESIS_HASH`, and the ``ledger_head`` row holds the last sequence number and hash.
Editing a value, deleting, inserting or reordering rows therefore breaks a hash, a link or the
run of sequence numbers. Recomputing the chain after a change needs the key; cutting the chain
short or restoring an older copy is caught by the witness kept beside the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dpsynth._util.jsonable import canonical_json as canonical_json  # re-exported
from dpsynth.accounting._ledger_store import COLUMNS, GENESIS_HASH
from dpsynth.accounting.events import Event, event_from_dict

KINDS = ("register", "reserve", "commit", "abort")


def compute_row_hash(prev_hash: str, fields: Mapping[str, Any], key: bytes | None = None) -> str:
    """``HMAC-SHA256(key, prev_hash + canonical_json(fields))`` as hex (plain SHA-256 without a
    key: format-1 ledgers); ``fields`` excludes ``row_hash``."""
    body = {k: v for k, v in fields.items() if k != "row_hash"}
    message = (prev_hash + canonical_json(body)).encode("utf-8")
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def clean_float(value: Any) -> Any:
    """Store NaN as NULL and every number as a float, so a row reads back as it was hashed.

    A value that is not a number (only possible after tampering) is returned as it is, so the
    row's hash check reports it.
    """
    if value is None or isinstance(value, (str, bytes)):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return None if math.isnan(number) else number


def _clean_int(value: Any) -> Any:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else value


@dataclass(frozen=True)
class LedgerEvent:
    """One row of the ledger, as read back.

    ``kind`` is ``register`` (a dataset and its cap), ``reserve`` (a spend, counted from the
    moment it is written), ``commit`` or ``abort`` (how the reservation ``ref`` ended).
    ``epsilon`` / ``delta`` of a reservation are its PLD figure alone at the cap's delta; of a
    registration, the cap. ``rdp_epsilon`` is the Rényi-DP figure beside it (``None`` when RDP
    cannot express the mechanism).
    """

    seq: int
    dataset: str
    kind: str
    ref: int | None
    purpose: str | None
    mechanism: str | None
    event_json: str | None
    epsilon: float | None
    delta: float | None
    rdp_epsilon: float | None
    actor: str
    created_at: str
    dpsynth_version: str
    release_id: str | None
    detail_json: str
    prev_hash: str
    row_hash: str
    detail: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> LedgerEvent:
        values = dict(zip(COLUMNS, row, strict=True))
        for name in ("epsilon", "delta", "rdp_epsilon"):
            values[name] = clean_float(values[name])
        for name in ("seq", "ref"):
            values[name] = _clean_int(values[name])
        try:
            detail = json.loads(values["detail_json"])
        except (TypeError, ValueError):
            detail = {}
        return cls(**values, detail=detail if isinstance(detail, dict) else {})

    def fields(self) -> dict[str, Any]:
        """The stored columns, as hashed."""
        return {name: getattr(self, name) for name in COLUMNS}

    @property
    def event(self) -> Event | None:
        """The mechanism event of a reservation (``None`` for other kinds)."""
        if self.event_json is None:
            return None
        return event_from_dict(json.loads(self.event_json))

    def to_dict(self) -> dict[str, Any]:
        out = self.fields()
        out["event"] = json.loads(self.event_json) if self.event_json else None
        out["detail"] = dict(self.detail)
        del out["event_json"], out["detail_json"]
        return out


def verify_entries(entries: Sequence[LedgerEvent], head: tuple[int, str] | None,
                   anchor: str | None = None, key: bytes | None = None) -> list[str]:
    """Every problem in the chain: edited, deleted, inserted or reordered rows; bad references.

    ``head`` is the ``(seq, hash)`` the ledger says it ends at; ``anchor`` an optional
    ``"seq:hash"`` recorded earlier (for example in a compliance report); ``key`` the ledger's
    HMAC key (``None`` for a format-1 ledger).
    """
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS_HASH
    for entry in entries:
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing "
                                "(deleted)")
            else:
                problems.append(f"entry {entry.seq} is out of order (reordered)")
        if entry.prev_hash != prev:
            problems.append(f"entry {entry.seq}: its link to the previous entry is broken "
                            "(an entry before it was deleted, inserted or reordered)")
        if not hmac.compare_digest(compute_row_hash(entry.prev_hash, entry.fields(), key),
                                   entry.row_hash):
            problems.append(f"entry {entry.seq} ({entry.kind} on dataset {entry.dataset!r}): "
                            "its content was edited (hash mismatch)")
        expected_seq, prev = entry.seq + 1, entry.row_hash
    problems.extend(_head_problems(entries, head))
    problems.extend(_reference_problems(entries))
    if anchor is not None:
        problems.extend(_anchor_problems(entries, anchor))
    return problems


def _head_problems(entries: Sequence[LedgerEvent], head: tuple[int, str] | None) -> list[str]:
    if head is None:
        return ["the ledger head row is missing"]
    last_seq, last_hash = (entries[-1].seq, entries[-1].row_hash) if entries else (0, GENESIS_HASH)
    seq, digest = head
    if seq > last_seq:
        return [f"entries {last_seq + 1}..{seq} are missing at the end (deleted)"]
    if seq < last_seq:
        return [f"entries {seq + 1}..{last_seq} were added behind the ledger's back"]
    if digest != last_hash:
        return [f"the ledger head does not match entry {seq} (edited)"]
    return []


def _reference_problems(entries: Sequence[LedgerEvent]) -> list[str]:
    problems: list[str] = []
    caps: dict[str, tuple[float | None, float | None]] = {}
    reservations: dict[int, str] = {}
    closed: set[int] = set()
    for e in entries:
        if e.kind not in KINDS:
            problems.append(f"entry {e.seq}: unknown kind {e.kind!r}")
        elif e.kind == "register":
            cap = (e.epsilon, e.delta)
            if caps.setdefault(e.dataset, cap) != cap:
                problems.append(f"entry {e.seq}: the cap of dataset {e.dataset!r} changed")
        elif e.dataset not in caps:
            problems.append(f"entry {e.seq}: dataset {e.dataset!r} was never registered")
        elif e.kind == "reserve":
            reservations[e.seq] = e.dataset
        elif e.ref not in reservations or reservations[e.ref] != e.dataset:
            problems.append(f"entry {e.seq}: {e.kind} of unknown reservation {e.ref}")
        elif e.ref in closed:
            problems.append(f"entry {e.seq}: reservation {e.ref} was closed twice")
        else:
            closed.add(e.ref)
    return problems


def _anchor_problems(entries: Sequence[LedgerEvent], anchor: str) -> list[str]:
    seq_text, _, digest = anchor.partition(":")
    try:
        seq = int(seq_text)
    except ValueError:
        return [f"the anchor {anchor!r} is not of the form 'seq:hash'"]
    match = [e for e in entries if e.seq == seq]
    if not match:
        return [f"the anchored entry {seq} is missing"]
    if match[0].row_hash != digest:
        return [f"entry {seq} differs from the anchor (the chain was rewritten)"]
    return []
