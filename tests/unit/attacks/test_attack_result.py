"""Statistics of attack results: intervals against published values and references."""

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from dpsynth.attacks.result import AttackResult, roc_curve, score_attack
from dpsynth.attacks.stats import difference_interval, tpr_at_fpr, wilson_interval, z_value
from dpsynth.attacks.threat import ThreatModel
from dpsynth.errors import ParameterError


def _bools(k: int, n: int) -> np.ndarray:
    return np.r_[np.ones(k, bool), np.zeros(n - k, bool)]


@pytest.mark.parametrize(("k", "n"), [(0, 10), (5, 10), (81, 263), (10, 10), (1, 2000)])
def test_wilson_matches_scipy(k, n):
    ref = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_newcombe_difference_matches_published_example():
    # Newcombe (1998), Stat Med 17:873, example 56/70 - 48/80, method 10: 0.0524 to 0.3339
    lo, hi = difference_interval(_bools(56, 70), _bools(48, 80))
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_paired_interval_uses_pair_correlation():
    rng = np.random.default_rng(0)
    x = rng.random(200) < 0.4
    y = x.copy()
    y[rng.choice(200, 10, replace=False)] ^= True
    paired = difference_interval(x, y, paired=True)
    independent = difference_interval(x, y)
    assert paired[0] < x.mean() - y.mean() < paired[1]
    assert paired[1] - paired[0] < 0.6 * (independent[1] - independent[0])
    with pytest.raises(ParameterError, match="paired"):
        difference_interval(x, y[:10], paired=True)


def test_interval_coverage_under_the_null_is_about_nominal():
    rng = np.random.default_rng(1)
    lows = [difference_interval(rng.random(300) < 0.3, rng.random(300) < 0.3)[0]
            for _ in range(400)]
    assert np.mean(np.array(lows) > 0) < 0.05  # one-sided error about 2.5%


def test_auc_and_roc_match_scikit_learn():
    rng = np.random.default_rng(2)
    pos = np.round(rng.normal(0.5, 1, 300), 1)  # ties on purpose
    neg = np.round(rng.normal(0.0, 1, 400), 1)
    roc, fpr, tpr = roc_curve(pos, neg)
    labels = np.r_[np.ones(300), np.zeros(400)]
    assert roc.auc == pytest.approx(roc_auc_score(labels, np.r_[pos, neg]))
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, np.r_[pos, neg], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert roc.auc_ci[0] < roc.auc < roc.auc_ci[1]
    assert tpr_at_fpr(fpr, tpr, 0.01, 400) == pytest.approx(sk_tpr[sk_fpr <= 0.01].max())
    assert tpr_at_fpr(fpr, tpr, 0.001, 400) is None  # 400 controls cannot resolve 0.1%


def test_roc_curve_is_thinned_but_keeps_ends():
    rng = np.random.default_rng(3)
    roc, fpr, _ = roc_curve(rng.normal(size=5000), rng.normal(size=5000))
    assert len(roc.fpr) <= 302 < len(fpr)
    assert roc.fpr[0] == 0 and roc.fpr[-1] == 1 and roc.tpr[-1] == 1


def _result(hits, control, threshold=0.05):
    return score_attack("demo", ThreatModel.membership(), hits, control, np.zeros(10, bool),
                        threshold=threshold, confidence=0.95, metrics={"auc": 0.5})


def test_risk_is_attack_over_control_and_verdict_uses_lower_bound():
    result = _result(_bools(90, 100), _bools(20, 100))
    assert result.risk.value == pytest.approx((0.9 - 0.2) / 0.8)
    assert result.leak and result.verdict == "leak"
    lo, hi = difference_interval(_bools(90, 100), _bools(20, 100))
    assert result.risk.ci == pytest.approx((lo / 0.8, hi / 0.8))
    same = _result(_bools(20, 100), _bools(20, 100))
    assert same.risk.value == 0 and not same.leak and same.verdict == "no risk found"
    strict = _result(_bools(90, 100), _bools(20, 100), threshold=0.99)
    assert not strict.leak


def test_full_control_success_gives_zero_risk():
    result = _result(_bools(100, 100), _bools(100, 100))
    assert result.risk.value == 0 and not result.leak


def test_result_is_frozen_and_round_trips_through_json():
    result = _result(_bools(90, 100), _bools(20, 100))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.n_targets = 3  # type: ignore[misc]
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = AttackResult.from_dict(json.loads(text))
    assert back == result
    for key in ("attack", "threat_model", "metrics", "success_rate", "control_rate", "baseline",
                "risk", "n_targets", "verdict", "roc", "exposed_row_ids"):
        assert key in result.to_dict()


def test_z_value_validates():
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    with pytest.raises(ParameterError, match="confidence"):
        z_value(1.5)
