"""Tamper evidence: every edit, deletion or reordering made behind the ledger's back is found."""

from __future__ import annotations

import sqlite3

import pytest

from dpsynth.accounting import Budget, LaplaceEvent, PureDPEvent
from dpsynth.accounting._ledger_chain import compute_row_hash
from dpsynth.accounting._ledger_store import COLUMNS, SQLITE_GUARDS
from dpsynth.accounting.ledger import Ledger

FP = "sha256:" + "c" * 64


@pytest.fixture
def ledger(tmp_path):
    book = Ledger(tmp_path / "ledger.sqlite")
    book.register("census", Budget(2.0, 1e-6), fingerprint=FP, n_rows=5000)
    for purpose, event in [("bounds:age", LaplaceEvent(10.0)), ("cats:sex", PureDPEvent(0.1)),
                           ("train:generator", PureDPEvent(0.5))]:
        with book.spend("census", purpose, event):
            pass
    return book  # 7 entries: register, then reserve + commit three times


def tamper(path: str, *statements: str, keep_guards: bool = True) -> None:
    """Edit the file with the sqlite3 module, as someone bypassing dpsynth would."""
    con = sqlite3.connect(path)
    sql = {name: sql for name, sql in con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")}
    for name in sql:
        con.execute(f"DROP TRIGGER {name}")
    for statement in statements:
        con.execute(statement)
    if keep_guards:  # put the guards back, so only the data change itself can be caught
        for text in sql.values():
            con.execute(text)
    con.commit()
    con.close()


def test_untouched_ledger_verifies(ledger):
    assert ledger.verify() == []
    assert ledger.head()[0] == 7
    assert ledger.verify(anchor=ledger.anchor()) == []


def test_guards_refuse_plain_update_and_delete(ledger):
    con = sqlite3.connect(ledger.location)
    for statement in ("UPDATE ledger_entries SET epsilon = 0.0 WHERE seq = 2",
                      "DELETE FROM ledger_entries WHERE seq = 2"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(statement)
    con.close()
    assert ledger.verify() == []


def test_edited_value_is_detected(ledger):
    tamper(ledger.location, "UPDATE ledger_entries SET epsilon = 0.001 WHERE seq = 2")
    problems = ledger.verify()
    assert problems == ["entry 2 (reserve on dataset 'census'): its content was edited "
                        "(hash mismatch)"]


def test_edited_event_parameters_are_detected(ledger):
    tamper(ledger.location, "UPDATE ledger_entries SET event_json = "
           "replace(event_json, '0.5', '0.05') WHERE seq = 6")
    assert any("entry 6" in p and "edited" in p for p in ledger.verify())


def test_changed_cap_is_detected(ledger):
    tamper(ledger.location, "UPDATE ledger_entries SET epsilon = 100.0 WHERE kind = 'register'")
    assert any("entry 1 (register" in p for p in ledger.verify())


def test_edit_with_recomputed_hash_breaks_the_next_link(ledger):
    # The row hash is keyed: recomputed without the key (plain SHA-256, the old scheme), the
    # edited row itself fails, and the next link breaks too.
    entry = ledger.entries()[1]
    fields = {**entry.fields(), "epsilon": 0.001}
    new_hash = compute_row_hash(entry.prev_hash, fields)
    tamper(ledger.location, f"UPDATE ledger_entries SET epsilon = 0.001, row_hash = '{new_hash}' "
           "WHERE seq = 2")
    problems = ledger.verify()
    assert "entry 2" in problems[0] and "edited" in problems[0]
    assert any("entry 3" in p and "link to the previous entry is broken" in p for p in problems)


def test_deleted_row_is_detected(ledger):
    tamper(ledger.location, "DELETE FROM ledger_entries WHERE seq = 4")
    problems = ledger.verify()
    assert any("entries 4..4 are missing" in p for p in problems)
    assert any("entry 5" in p and "link" in p for p in problems)


def test_deleted_last_row_is_detected(ledger):
    tamper(ledger.location, "DELETE FROM ledger_entries WHERE seq = 7")
    problems = ledger.verify()
    assert problems[0] == "entries 7..7 are missing at the end (deleted)"
    assert any("witness" in p for p in problems[1:])


def test_deleted_tail_with_forged_head_needs_the_anchor(ledger):
    anchor = ledger.anchor()
    prev_hash = ledger.entries()[5].row_hash
    tamper(ledger.location, "DELETE FROM ledger_entries WHERE seq = 7",
           f"UPDATE ledger_head SET seq = 6, row_hash = '{prev_hash}'")
    # A consistent cut of the end of the chain is caught by the witness (and an anchor).
    assert ledger.verify() == ["it ends at entry 6 but its witness saw entry 7: entries 7..7 "
                               "were removed (truncated, or an older copy of the database "
                               "was restored)"]
    assert "the anchored entry 7 is missing" in ledger.verify(anchor=anchor)


def test_reordered_rows_are_detected(ledger):
    tamper(ledger.location,
           "UPDATE ledger_entries SET seq = 100 WHERE seq = 2",
           "UPDATE ledger_entries SET seq = 2 WHERE seq = 4",
           "UPDATE ledger_entries SET seq = 4 WHERE seq = 100")
    problems = ledger.verify()
    assert any("entry 2" in p and "edited" in p for p in problems)
    assert any("entry 4" in p for p in problems)


def test_inserted_row_is_detected(ledger):
    last = ledger.entries()[-1]
    values = {**last.fields(), "seq": 8, "prev_hash": last.row_hash}
    values["row_hash"] = compute_row_hash(last.row_hash, values)
    cols = ", ".join(COLUMNS)
    marks = ", ".join(f":{c}" for c in COLUMNS)
    con = sqlite3.connect(ledger.location)
    con.execute(f"INSERT INTO ledger_entries ({cols}) VALUES ({marks})", values)
    con.commit()
    con.close()
    problems = ledger.verify()
    assert problems == ["entry 8 (commit on dataset 'census'): its content was edited (hash "
                        "mismatch)", "entries 8..8 were added behind the ledger's back",
                        "entry 8: reservation 6 was closed twice"]


def test_removed_guards_are_reported(ledger):
    tamper(ledger.location, keep_guards=False)
    problems = ledger.verify()
    assert len(problems) == 1 and "guard" in problems[0]
    assert all(name in problems[0] for name in SQLITE_GUARDS)


def test_verification_survives_appends_after_the_anchor(ledger):
    anchor = ledger.anchor()
    with ledger.spend("census", "more", PureDPEvent(0.1)):
        pass
    assert ledger.verify(anchor=anchor) == []
