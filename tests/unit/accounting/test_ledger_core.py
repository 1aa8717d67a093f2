"""The persistent ledger: registration, check-before-spend, statuses, composition."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pandas as pd
import pytest

from dpsynth.accounting import (
    ApproxDPEvent,
    Budget,
    LaplaceEvent,
    PureDPEvent,
    SpendRecorder,
    pld_epsilon,
    rdp_epsilon,
)
from dpsynth.accounting._ledger_math import PrefixComposer, plain_sum_epsilon
from dpsynth.accounting.fingerprint import fingerprint, identify
from dpsynth.accounting.ledger import Ledger, UnknownDatasetError, default_ledger_location
from dpsynth.errors import BudgetExceededError, ParameterError, PrivacyError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers.base import BaseSynthesizer, PlannedSpend

FP = "sha256:" + "a" * 64
FP2 = "sha256:" + "b" * 64
CAP = Budget(1.0, 1e-6)


@pytest.fixture
def ledger(tmp_path):
    book = Ledger(tmp_path / "ledger.sqlite")
    book.register("census", CAP, fingerprint=FP, n_rows=10_000)
    return book


def test_register_records_cap_fingerprint_and_unit(ledger):
    record = ledger.dataset("census")
    assert record.cap == CAP
    assert record.fingerprint == FP
    assert record.n_rows == 10_000
    assert record.privacy_unit == "row"
    status = ledger.status("census")
    assert status.epsilon == 0.0
    assert status.remaining == 1.0
    assert status.n_spends == 0


def test_register_is_idempotent_for_the_same_data(ledger):
    again = ledger.register("census", CAP, fingerprint=FP, n_rows=10_000)
    assert again == ledger.dataset("census")
    assert len(ledger.entries("census")) == 1


def test_cap_and_privacy_unit_never_change(ledger):
    with pytest.raises(ParameterError, match="cap never changes"):
        ledger.register("census", Budget(2.0, 1e-6), fingerprint=FP, n_rows=10_000)
    with pytest.raises(ParameterError, match="privacy unit"):
        ledger.register("census", CAP, fingerprint=FP, n_rows=10_000, privacy_unit="user:id")


def test_new_fingerprint_needs_explicit_permission_and_keeps_spends(ledger):
    with ledger.spend("census", "bounds:age", PureDPEvent(0.3)):
        pass
    with pytest.raises(ParameterError, match="allow_new_fingerprint"):
        ledger.register("census", CAP, fingerprint=FP2, n_rows=10_001)
    record = ledger.register("census", CAP, fingerprint=FP2, n_rows=10_001,
                             allow_new_fingerprint=True)
    assert record.fingerprint == FP2
    assert [v.fingerprint for v in record.versions] == [FP, FP2]
    assert ledger.status("census").epsilon == pytest.approx(0.3, abs=1e-4)


def test_same_data_under_a_second_name_is_refused(ledger):
    with pytest.raises(PrivacyError, match="already registered as dataset 'census'"):
        ledger.register("census-copy", CAP, fingerprint=FP, n_rows=10_000)


def test_same_rows_with_another_schema_are_the_same_dataset(tmp_path):
    df, schema = _table()
    other = Schema((Column("age", "integer", lower=0, upper=130),
                    Column("sex", "categorical", categories=("F", "M"))))
    book = Ledger(tmp_path / "l.sqlite")
    book.register_table("people", Budget(1.0, 1e-3), df, schema)
    assert identify(df, schema).fingerprint != identify(df, other).fingerprint
    with pytest.raises(PrivacyError, match="already registered as dataset 'people'"):
        book.register_table("people-v2", Budget(1.0, 1e-3), df, other)
    # Under its own name a new schema is a new version of the same data, no flag needed.
    record = book.register_table("people", Budget(1.0, 1e-3), df, other)
    assert len(record.versions) == 2
    assert record.schema == other.to_dict()
    ident = identify(df.iloc[::-1], other)
    assert book.recorder("people", content_hash=ident.content_hash).dataset == "people"
    with pytest.raises(PrivacyError, match="does not match"):
        book.recorder("people", content_hash=identify(df.iloc[1:]).content_hash)


def test_register_lists_every_problem(tmp_path):
    book = Ledger(tmp_path / "l.sqlite")
    with pytest.raises(ParameterError) as info:
        book.register(" bad", Budget(1.0, 0.01), fingerprint="x", n_rows=1000,
                      privacy_unit="person")
    text = str(info.value)
    for name in ("'name'", "'fingerprint'", "'delta'", "'privacy_unit'"):
        assert name in text


def test_unknown_dataset_error_has_a_hint(ledger):
    with pytest.raises(UnknownDatasetError, match="budget register adult") as info:
        with ledger.spend("adult", "train:generator", PureDPEvent(0.1)):
            pass
    assert "'census'" in str(info.value)  # lists what is registered
    assert isinstance(info.value, ParameterError)


def test_spend_statuses_and_all_are_counted(ledger):
    with ledger.spend("census", "bounds:age", LaplaceEvent(10.0)):
        pass
    with pytest.raises(RuntimeError):
        with ledger.spend("census", "train:generator", PureDPEvent(0.2)):
            raise RuntimeError("boom")
    ledger.spend("census", "train:generator", PureDPEvent(0.1)).__enter__()  # never exits

    spends = ledger.spends("census")
    assert [s.status for s in spends] == ["committed", "aborted", "interrupted"]
    assert spends[1].error == "RuntimeError: boom"
    events = [LaplaceEvent(10.0), PureDPEvent(0.2), PureDPEvent(0.1)]
    assert list(ledger.spent_events("census")) == events
    status = ledger.status("census")
    assert status.epsilon == pytest.approx(pld_epsilon(events, CAP.delta), abs=1e-12)
    assert status.rdp_epsilon == pytest.approx(rdp_epsilon(events, CAP.delta))
    assert (status.n_committed, status.n_aborted, status.n_interrupted) == (1, 1, 1)
    assert status.epsilon <= status.plain_sum_epsilon


def test_event_fields_are_recorded(ledger):
    with ledger.spend("census", "bounds:age", LaplaceEvent(10.0), actor="alice",
                      release_id="rel-7") as reservation:
        assert reservation.kind == "reserve"
    entries = ledger.entries("census")
    assert [e.kind for e in entries] == ["register", "reserve", "commit"]
    reserve, commit = entries[1], entries[2]
    assert reserve.purpose == "bounds:age" and reserve.mechanism == "laplace"
    assert reserve.event == LaplaceEvent(10.0)
    assert reserve.epsilon == pytest.approx(0.1, abs=1e-4)
    assert reserve.delta == CAP.delta
    assert reserve.actor == "alice" and reserve.release_id == "rel-7"
    assert reserve.dpsynth_version and reserve.created_at
    assert commit.ref == reserve.seq
    assert commit.prev_hash == reserve.row_hash


def test_over_cap_is_refused_before_the_block_runs(ledger):
    with ledger.spend("census", "bounds:age", PureDPEvent(0.7)):
        pass
    before = ledger.entries()
    ran = []
    with pytest.raises(BudgetExceededError) as info:
        with ledger.spend("census", "train:generator", PureDPEvent(0.5)):
            ran.append(True)
    assert not ran
    assert ledger.entries() == before
    message = str(info.value)
    assert "'census'" in message and "is left" in message and "0.3" in message


def test_a_spend_exactly_at_the_cap_is_admitted(ledger):
    # PLD of pure DP events is exact up to discretisation: 0.5 + 0.5 lands on the cap.
    for _ in range(2):
        with ledger.spend("census", "q", PureDPEvent(0.5)):
            pass
    assert ledger.status("census").remaining == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(BudgetExceededError):
        ledger.check("census", [PureDPEvent(0.01)])


def test_check_plan_composes_with_what_was_spent(ledger):
    with ledger.spend("census", "bounds:age", PureDPEvent(0.5)):
        pass
    ledger.check("census", [PureDPEvent(0.2), PureDPEvent(0.2)])
    with pytest.raises(BudgetExceededError):
        ledger.check("census", [PureDPEvent(0.3), PureDPEvent(0.3)])
    assert ledger.status("census").n_spends == 1  # check spends nothing


def test_rows_are_never_updated(ledger):
    cm = ledger.spend("census", "q", PureDPEvent(0.1))
    reservation = cm.__enter__()
    cm.__exit__(None, None, None)
    assert ledger.entries("census")[1] == reservation  # the reserve row is untouched
    with sqlite3.connect(ledger.location) as con, pytest.raises(sqlite3.DatabaseError,
                                                                 match="append-only"):
        con.execute("UPDATE ledger_entries SET epsilon = 0 WHERE seq = 2")


def test_sqlite_file_uses_wal(ledger):
    with sqlite3.connect(ledger.location) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_threads_sharing_a_ledger_never_cross_the_cap(ledger):
    results: list[bool] = []

    def worker() -> None:
        for _ in range(3):
            try:
                with ledger.spend("census", "q", PureDPEvent(0.15)):
                    results.append(True)
            except BudgetExceededError:
                results.append(False)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 6  # 6 x 0.15 = 0.9 fits, a 7th would not
    assert ledger.status("census").epsilon <= CAP.epsilon + 1e-9


def test_default_location_respects_env(monkeypatch, tmp_path):
    monkeypatch.delenv("DPSYNTH_LEDGER", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_ledger_location() == str(tmp_path / "xdg" / "dpsynth" / "ledger.sqlite")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_ledger_location().endswith(".local/share/dpsynth/ledger.sqlite")
    monkeypatch.setenv("DPSYNTH_LEDGER", str(tmp_path / "x.sqlite"))
    assert default_ledger_location() == str(tmp_path / "x.sqlite")
    assert Ledger().location == str(tmp_path / "x.sqlite")


def test_prefix_composer_matches_pld_epsilon():
    events = [PureDPEvent(0.1), LaplaceEvent(5.0), ApproxDPEvent(0.2, 1e-8), PureDPEvent(0.3)]
    composer = PrefixComposer()
    assert composer.epsilon(events[:2], 1e-6) == pld_epsilon(events[:2], 1e-6)
    assert composer.epsilon(events, 1e-6) == pld_epsilon(events, 1e-6)  # extends the prefix
    curve = composer.cumulative(events, 1e-6)
    assert curve == [pld_epsilon(events[: i + 1], 1e-6) for i in range(len(events))]
    assert plain_sum_epsilon(events, 1e-6) >= curve[-1]


# -- a synthesizer spending through the ledger ------------------------------------------------
class _OneShot(BaseSynthesizer):
    name = "test-oneshot"
    ran = False

    def _plan_training(self, schema, n_rows, budget, prior_events):
        return [PlannedSpend("train:generator", PureDPEvent(float(self.epsilon)))]

    def _fit(self, data, schema, *, plan, recorder, noise):
        with recorder.spend("train:generator", PureDPEvent(float(self.epsilon))):
            type(self).ran = True


def _table():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"age": rng.integers(18, 90, 200), "sex": rng.choice(["F", "M"], 200)})
    schema = Schema((Column("age", "integer", lower=0, upper=120),
                     Column("sex", "categorical", categories=("F", "M"))))
    return df, schema


def test_fit_spends_through_the_ledger_and_is_refused_over_the_cap(tmp_path):
    df, schema = _table()
    book = Ledger(tmp_path / "l.sqlite")
    book.register("people", Budget(1.0, 1e-3), fingerprint=fingerprint(df, schema),
                  n_rows=len(df))
    recorder = book.recorder("people", actor="tester", fingerprint=fingerprint(df, schema))
    assert recorder.dataset == "people"
    assert isinstance(recorder, SpendRecorder)
    assert recorder.cap == Budget(1.0, 1e-3)
    _OneShot(epsilon=0.6, delta=1e-3).fit(df, schema, ledger=recorder)
    (spend,) = book.spends("people")
    assert spend.status == "committed" and spend.reservation.actor == "tester"
    assert spend.reservation.release_id == recorder.release_id
    _OneShot.ran = False
    with pytest.raises(BudgetExceededError, match="is left"):
        _OneShot(epsilon=0.6, delta=1e-3).fit(df, schema, ledger=book.recorder("people"))
    assert not _OneShot.ran  # refused at the plan check, before training
    assert book.status("people").n_spends == 1


def test_recorder_refuses_data_that_is_not_the_registered_dataset(ledger):
    with pytest.raises(PrivacyError, match="does not match dataset 'census'"):
        ledger.recorder("census", fingerprint=FP2)
