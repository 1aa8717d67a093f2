"""A run that fails after reserving its plan says exactly what stays spent."""

from __future__ import annotations

import pytest

from dpsynth.accounting import Budget, GaussianEvent
from dpsynth.accounting.analysis import pld_epsilon
from dpsynth.accounting.ledger import Ledger
from dpsynth.accounting.session import Spend
from dpsynth.commands.budget import check_before_spending, spend_report
from dpsynth.errors import ParameterError

FP = "sha256:" + "d" * 64


def test_a_failure_after_reserving_reports_the_spend(tmp_path, capsys):
    book = Ledger(tmp_path / "l.sqlite")
    book.register("d", Budget(2.0, 1e-6), fingerprint=FP, n_rows=5000)
    rec = book.recorder("d")
    plan = [Spend("a", GaussianEvent(9.0)), Spend("b", GaussianEvent(10.0))]
    with pytest.raises(RuntimeError), spend_report(rec):
        rec.reserve_plan(plan)
        with rec.spend("a", GaussianEvent(9.0)):
            raise RuntimeError("disk full")
    said = capsys.readouterr()
    spent = pld_epsilon([s.event for s in plan], 1e-6)
    assert f"Spent before the failure: ε = {spent:.4g} on dataset 'd'" in said.out + said.err
    assert {s.status for s in book.spends("d")} == {"aborted"}  # counted, none left open


def test_a_refusal_before_reserving_reports_nothing(tmp_path, capsys):
    book = Ledger(tmp_path / "l.sqlite")
    book.register("d", Budget(0.1, 1e-6), fingerprint=FP, n_rows=5000)
    rec = book.recorder("d")
    with pytest.raises(ValueError, match="Nothing was spent"), spend_report(rec):
        rec.reserve_plan([Spend("a", GaussianEvent(1.0))])
    said = capsys.readouterr()
    assert "Spent before" not in said.out + said.err


def test_outputs_and_infinite_epsilon_are_checked_first(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(ParameterError, match="is a file"):
        check_before_spending(tmp_path / "afile" / "m", 1.0, None, None)
    with pytest.raises(ParameterError, match="finite epsilon"):
        check_before_spending(tmp_path / "m", float("inf"), tmp_path / "l.sqlite", "d")
    check_before_spending(tmp_path / "m", float("inf"), None, None)  # no ledger: a reference run
    check_before_spending(tmp_path / "new" / "deeper" / "m", 1.0, None, "d")
