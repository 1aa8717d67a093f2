"""Verify on open: the keyed chain, the witness and the guards, before every spend and read.

:class:`Integrity` holds what a ledger needs to check itself: its HMAC key (``None`` for a
format-1 ledger, whose plain chain is still read but never spent on) and its witness file
(:mod:`dpsynth.accounting._ledger_key`). :meth:`Integrity.problems` lists every problem of the
rows read in a transaction; the ledger refuses to go on (:class:`LedgerCorruptedError`) if
there is one.
"""

from __future__ import annotations

import datetime as _dt
import logging
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from dpsynth.accounting._ledger_chain import LedgerEvent, verify_entries
from dpsynth.accounting._ledger_key import (
    WitnessFile,
    create_key,
    key_id,
    read_key,
    witness_path_for,
)
from dpsynth.errors import LegacyLedgerError, ParameterError, WitnessError

logger = logging.getLogger(__name__)


def new_meta_for(key_path: Path) -> dict[str, str]:
    """The ``ledger_meta`` rows of a new keyed ledger; creates its key file if needed."""
    try:
        key = create_key(key_path)
    except FileExistsError:
        key = read_key(key_path, str(key_path))
    old = witness_path_for(key_path)
    if old.exists():
        # A ledger was here before: keep its witness as evidence, never silently reuse it.
        kept = old.with_name(f"{old.name}.replaced-{_dt.datetime.now():%Y%m%dT%H%M%S%f}")
        old.replace(kept)
        logger.warning("a new ledger replaces an earlier one whose witness is kept as %s", kept)
    return {"ledger_id": secrets.token_hex(16), "key_id": key_id(key)}


class Integrity:
    """The key and witness of one ledger, and the checks made on every open."""

    def __init__(self, location: str, meta: Mapping[str, str], key_path: Path):
        self.location = location
        #: A server ledger: each machine keeps its own witness, created on first use.
        self.shared = "://" in location and not location.startswith("sqlite")
        self.keyed = meta.get("format") != "1"
        self.key: bytes | None = None
        self.witness: WitnessFile | None = None
        if not self.keyed:
            return
        key = read_key(key_path, location)
        if key_id(key) != meta.get("key_id"):
            raise ParameterError(f"The key {key_path} is not the key of the ledger {location} "
                                 "(its key id differs); point $DPSYNTH_LEDGER_KEY at the "
                                 "right key file.")
        self.key = key
        self.witness = WitnessFile(witness_path_for(key_path), key, meta.get("ledger_id", ""))

    def problems(self, entries: Sequence[LedgerEvent], head: tuple[int, str] | None,
                 anchor: str | None = None) -> list[str]:
        """Every problem with ``entries`` (the whole ledger, in order) and ``head``."""
        problems = verify_entries(entries, head, anchor, self.key)
        problems.extend(self._witness_problems(entries, head))
        return problems

    def _witness_problems(self, entries: Sequence[LedgerEvent],
                          head: tuple[int, str] | None) -> list[str]:
        if self.witness is None:
            return []
        try:
            seen = self.witness.read()
        except WitnessError as exc:
            return [str(exc)]
        last = head[0] if head else 0
        if seen is None:
            if last == 0 or self.shared:  # a server ledger seen from this machine first
                return []
            return [f"its witness file {self.witness.path} is missing (deleted, or the "
                    "database was copied here without it)"]
        if seen.seq > last:
            return [f"it ends at entry {last} but its witness saw entry {seen.seq}: entries "
                    f"{last + 1}..{seen.seq} were removed (truncated, or an older copy of "
                    "the database was restored)"]
        if seen.seq > 0:
            row = [e for e in entries if e.seq == seen.seq]
            if not row or row[0].row_hash != seen.row_hash:
                return [f"entry {seen.seq} differs from the one its witness saw (the chain "
                        "was rewritten from there)"]
        return []

    def advance(self, seq: int, row_hash: str, *, quiet: bool = False) -> None:
        """Move the witness to ``(seq, row_hash)`` after a committed write (or a verified
        read, ``quiet``: a witness that cannot be written then does not stop the read)."""
        if self.witness is None:
            return
        try:
            self.witness.advance(seq, row_hash)
        except OSError:
            if not quiet:
                raise

    def require_keyed(self) -> None:
        if not self.keyed:
            raise LegacyLedgerError(
                f"The ledger {self.location} has format 1 (an un-keyed chain, so a rollback or "
                "rewrite could not be detected); it is read but not spent on. Register its "
                "datasets in a new ledger and carry their spends over (see "
                "docs/ledger-threat-model.md, 'Old ledgers').")
