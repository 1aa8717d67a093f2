"""The adaptive-composition cap: the Rényi filter, whole-plan reservations, witness, overlap."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.accounting import (
    ApproxDPEvent,
    Budget,
    GaussianEvent,
    LaplaceEvent,
    PureDPEvent,
    SubsampledGaussianEvent,
)
from dpsynth.accounting._ledger_overlap import row_sketch, shared_fraction
from dpsynth.accounting.analysis import pld_epsilon
from dpsynth.accounting.ledger import Ledger, LedgerCorruptedError
from dpsynth.accounting.rdp_filter import ORDERS, event_rdp, filter_epsilon
from dpsynth.accounting.session import BudgetSession, Spend
from dpsynth.errors import BudgetExceededError, PrivacyError

FP = "sha256:" + "f" * 64


@pytest.mark.parametrize("events", [
    [GaussianEvent(5.0)], [GaussianEvent(3.0, count=4)], [LaplaceEvent(2.0, count=3)],
    [SubsampledGaussianEvent(1.1, 0.01, 1000)], [GaussianEvent(8.0), PureDPEvent(0.2, 3)],
])
def test_the_filter_bounds_the_exact_figure_from_above(events):
    # The filter is valid under adaptivity, hence never below the exact non-adaptive figure.
    for delta in (1e-5, 1e-8):
        assert filter_epsilon(events, delta) >= pld_epsilon(events, delta) - 1e-3


def test_pure_dp_histories_keep_their_exact_sum():
    events = [PureDPEvent(0.3, mechanism="randomized response"), LaplaceEvent(10.0, count=2)]
    assert filter_epsilon(events, 1e-9) == pytest.approx(0.3 + 0.2)


def test_the_filter_grows_with_every_event_and_pays_for_approximate_deltas():
    history = [GaussianEvent(6.0)]
    figures = []
    for _ in range(5):
        figures.append(filter_epsilon(history, 1e-6))
        history.append(GaussianEvent(6.0))
    assert figures == sorted(figures) and len(set(figures)) == 5
    assert filter_epsilon([ApproxDPEvent(0.1, 1e-6)], 1e-6) == math.inf
    assert filter_epsilon([], 1e-6) == 0.0


def test_gaussian_and_laplace_divergences_match_their_closed_forms():
    assert event_rdp(GaussianEvent(2.0, count=3)) == pytest.approx(
        [3 * a / 8 for a in ORDERS])
    b, a = 1.5, 2.0  # Mironov 2017, Proposition 6
    expected = math.log(a / (2 * a - 1) * math.exp((a - 1) / b)
                        + (a - 1) / (2 * a - 1) * math.exp(-a / b)) / (a - 1)
    assert event_rdp(LaplaceEvent(b))[ORDERS.index(2.0)] == pytest.approx(expected)


def test_budget_session_reserves_the_whole_plan_or_nothing():
    session = BudgetSession(Budget(1.0, 1e-6))
    with pytest.raises(BudgetExceededError, match="Nothing was spent"):
        session.reserve_plan([Spend("a", PureDPEvent(0.6)), Spend("b", PureDPEvent(0.6))])
    assert session.spends == ()
    session.reserve_plan([Spend("a", PureDPEvent(0.5)), Spend("b", PureDPEvent(0.5))])
    with session.spend("b", PureDPEvent(0.5)), session.spend("a", PureDPEvent(0.5)):
        pass  # uses the reservations: no second check, nothing counted twice
    assert len(session.spends) == 2
    with pytest.raises(BudgetExceededError), session.spend("c", PureDPEvent(0.1)):
        pass


def test_ledger_recorder_uses_its_reservations_and_closes_the_unused(tmp_path):
    book = Ledger(tmp_path / "l.sqlite")
    book.register("d", Budget(2.0, 1e-6), fingerprint=FP, n_rows=5000)
    rec = book.recorder("d")
    rec.reserve_plan([Spend("a", GaussianEvent(9.0)), Spend("b", GaussianEvent(10.0))])
    with rec.spend("a", GaussianEvent(9.0)):
        pass
    assert len(rec.unused) == 1
    rec.release_unused("the run failed")
    statuses = {s.purpose: s.status for s in book.spends("d")}
    assert statuses == {"a": "committed", "b": "aborted"}  # both counted
    assert book.verify() == []


def test_a_forged_or_deleted_witness_is_reported(tmp_path):
    path = tmp_path / "l.sqlite"
    book = Ledger(path)
    book.register("d", Budget(2.0, 1e-6), fingerprint=FP, n_rows=5000)
    witness = tmp_path / "l.sqlite.witness"
    data = json.loads(witness.read_text())
    witness.write_text(json.dumps({**data, "seq": 99}))
    assert any("forged" in p for p in book.verify())
    witness.unlink()
    assert any("witness file" in p and "missing" in p for p in book.verify())
    with pytest.raises(LedgerCorruptedError):
        book.status("d")


def test_a_wrong_key_is_refused(tmp_path, monkeypatch):
    Ledger(tmp_path / "l.sqlite")
    other = tmp_path / "other.key"
    other.write_text("ab" * 32)
    monkeypatch.setenv("DPSYNTH_LEDGER_KEY", str(other))
    with pytest.raises(ValueError, match="not the key"):
        Ledger(tmp_path / "l.sqlite")


def test_the_overlap_sketch_sees_through_shuffles_and_formats():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 90, 4000), "job": rng.choice(list("abcde"),
                                                                               4000),
                          "pay": rng.normal(size=4000).round(3)})
    key = b"k" * 32
    reformatted = frame.sample(frac=1.0, random_state=2).iloc[:-40].rename(columns=str.upper)
    reformatted["JOB"] = " " + reformatted["JOB"].str.upper()
    reformatted = reformatted[["PAY", "JOB", "AGE"]]
    a, b = row_sketch(frame, key), row_sketch(reformatted, key)
    assert shared_fraction(a, len(frame), b, len(reformatted)) > 0.9
    other = frame.assign(pay=frame["pay"] + 100)
    assert shared_fraction(a, len(frame), row_sketch(other, key), len(other)) < 0.05
    assert row_sketch(frame, b"x" * 32) != a  # keyed: another key, other values


def test_registering_an_overlapping_table_needs_a_declaration(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.integers(0, 10**6, 3000), "y": rng.choice(list("pq"), 3000)})
    book = Ledger(tmp_path / "l.sqlite")
    book.register_table("a", Budget(1.0, 1e-6), frame)
    near = frame.sample(frac=1.0, random_state=3).iloc[:-5]
    with pytest.raises(PrivacyError, match="already registered as dataset 'a'"):
        book.register_table("b", Budget(1.0, 1e-6), near)
    record = book.register_table("b", Budget(1.0, 1e-6), near, different_population=True)
    assert record.name == "b"
