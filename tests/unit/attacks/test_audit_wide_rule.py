"""The audit-wide rule: one-sided p-values that match the intervals, and Holm across attacks."""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.attacks import AttackResult, AuditReport, ThreatModel
from dpsynth.attacks.result import Rate, score_attack
from dpsynth.attacks.stats import difference_interval, holm_rejections, risk_p_value
from dpsynth.errors import ParameterError


def _arms(k1: int, k2: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n) < k1, np.arange(n) < k2


@pytest.mark.parametrize(("k1", "k2", "threshold"), [(23, 0, 0.0), (640, 500, 0.05),
                                                     (700, 500, 0.0), (510, 500, 0.0)])
def test_p_value_inverts_the_risk_interval(k1, k2, threshold):
    hits, controls = _arms(k1, k2)
    p = risk_p_value(hits, controls, threshold)
    room = 1 - controls.mean()
    for confidence, above in ((1 - 2 * p - 1e-6, True), (1 - 2 * p + 1e-6, False)):
        if not 0 < confidence < 1:
            continue
        lower = difference_interval(hits, controls, confidence=confidence)[0] / room
        assert (lower > threshold) == above, (confidence, lower)


def test_p_value_is_one_without_an_excess_and_tiny_for_copies():
    assert risk_p_value(*_arms(5, 9), 0.0) == 1.0
    assert risk_p_value(*_arms(104, 0), 0.0) < 1e-12
    assert risk_p_value(np.zeros(0, bool), np.zeros(4, bool), 0.0) == 1.0


def test_holm_steps_down_and_stops_at_the_first_miss():
    assert holm_rejections([0.01, 0.04, 0.03, 0.5], 0.05) == (True, False, False, False)
    assert holm_rejections([0.001, 0.01, 0.02, 0.04], 0.05) == (True, True, True, True)
    assert holm_rejections([], 0.05) == ()
    with pytest.raises(ParameterError):
        holm_rejections([0.1], 1.5)


def _result(k1: int, k2: int, name: str = "dcr_membership") -> AttackResult:
    hits, controls = _arms(k1, k2)
    return score_attack(name, ThreatModel.membership(2000), hits, controls, controls,
                        threshold=0.0, confidence=0.95)


def test_report_flags_only_what_holm_keeps():
    # p about 0.016: a leak alone, not after Holm over nine attacks (0.05 / 9 = 0.0056).
    borderline = _result(560, 500)
    assert borderline.leak and 0.0056 < borderline.p_value < 0.025
    alone = AuditReport((borderline,), 0.0, 0.95, 0)
    assert alone.leak and alone.flags == (True,)
    crowd = AuditReport((borderline,) + tuple(_result(500, 500) for _ in range(8)), 0.0, 0.95, 0)
    assert not crowd.leak and crowd.exposed_row_ids() == []
    copies = AuditReport(crowd.results + (_result(23, 0, "exact_copies"),), 0.0, 0.95, 0)
    assert copies.leak and copies.flags[-1] and not any(copies.flags[:-1])
    assert copies.to_dict()["flagged"] == ["exact_copies"]


def test_results_saved_without_a_p_value_still_load_and_count_by_their_verdict():
    raw = _result(700, 500).to_dict()
    assert raw["p_value"] < 1e-6
    del raw["p_value"]
    old = AttackResult.from_dict(raw)
    assert old.p_value is None and old.leak
    assert AuditReport((old,), 0.0, 0.95, 0).leak
    quiet = AttackResult.from_dict(_result(500, 500).to_dict() | {"p_value": None})
    assert not AuditReport((quiet,), 0.0, 0.95, 0).leak
    assert isinstance(quiet.risk, Rate)
