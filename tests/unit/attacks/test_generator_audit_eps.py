"""Empirical epsilon lower bounds: Clopper-Pearson (many runs) and Steinke et al. (one run)."""

import math

import numpy as np
import pytest
from scipy import stats

from dpsynth.attacks.empirical_eps import (
    EpsilonBound,
    best_threshold,
    clopper_pearson_lower,
    clopper_pearson_upper,
    epsilon_ceiling,
    epsilon_lower_bound,
    one_run_epsilon_lower,
    one_run_p_value,
)
from dpsynth.errors import ParameterError


@pytest.mark.parametrize("k, n", [(1, 10), (7, 20), (19, 20), (50, 100)])
def test_clopper_pearson_bounds_solve_the_binomial_tails(k, n):
    alpha = 0.025
    lo, hi = clopper_pearson_lower(k, n, alpha), clopper_pearson_upper(k, n, alpha)
    assert stats.binom.sf(k - 1, n, lo) == pytest.approx(alpha, rel=1e-6)  # P[X >= k | lo]
    assert stats.binom.cdf(k, n, hi) == pytest.approx(alpha, rel=1e-6)  # P[X <= k | hi]
    assert lo < k / n < hi


def test_clopper_pearson_edges():
    assert clopper_pearson_lower(0, 10, 0.05) == 0.0
    assert clopper_pearson_upper(10, 10, 0.05) == 1.0
    assert clopper_pearson_upper(0, 10, 0.05) == pytest.approx(1 - 0.05 ** (1 / 10))


def test_perfect_test_bound_by_hand():
    # tp = 50/50, fp = 0/50: TPR >= (alpha/2)^(1/50), FPR <= 1 - (alpha/2)^(1/50)
    c = 0.025 ** (1 / 50)
    expected = math.log(c / (1 - c))
    assert epsilon_lower_bound(50, 0, 50, 0, confidence=0.95) == pytest.approx(expected)
    assert epsilon_ceiling(50, 50) == pytest.approx(expected)
    assert epsilon_lower_bound(50, 0, 50, 0, delta=0.1) < expected  # delta weakens the claim


def test_uninformative_tests_prove_nothing():
    assert epsilon_lower_bound(25, 25, 25, 25) == 0.0
    assert epsilon_lower_bound(0, 0, 50, 50) == 0.0
    assert epsilon_lower_bound(0, 0, 0, 0) == 0.0


def test_complementary_form_is_used():
    # every member is called member, most non-members too: only ln(TNR / FNR) is large
    tnr_form = epsilon_lower_bound(100, 70, 30, 0)
    assert tnr_form > 1.5
    assert tnr_form == pytest.approx(epsilon_lower_bound(30, 0, 100, 70))  # the mirrored test
    alpha = 0.025
    assert epsilon_lower_bound(100, 70, 30, 0) > math.log(
        clopper_pearson_lower(100, 100, alpha) / clopper_pearson_upper(70, 100, alpha))


def test_bad_counts_are_listed_together():
    with pytest.raises(ParameterError) as info:
        epsilon_lower_bound(-1, 2.5, 3, 4, confidence=1.5)  # type: ignore[arg-type]
    assert "'tp'" in str(info.value) and "'fp'" in str(info.value)


def test_many_run_bound_covers_the_true_epsilon():
    """Randomised response at eps = 1 (the optimal test): the bound exceeds 1 in <= 5%."""
    eps, trials, n = 1.0, 400, 200
    rng = np.random.default_rng(0)
    p = math.exp(eps) / (1 + math.exp(eps))
    tp = rng.binomial(n, p, trials)
    fp = rng.binomial(n, 1 - p, trials)
    bounds = np.array([epsilon_lower_bound(int(a), int(b), n - int(b), n - int(a))
                       for a, b in zip(tp, fp, strict=True)])
    assert np.mean(bounds > eps) <= 0.05
    assert np.median(bounds) > 0.3  # and it is not vacuous


def test_best_threshold_separates_the_scores():
    members, others = np.array([0.8, 0.9, 0.95, 0.7]), np.array([0.1, 0.2, 0.3, 0.6])
    t = best_threshold(members, others)
    assert 0.6 < t <= 0.7
    assert best_threshold(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.5


def test_one_run_p_value_is_the_binomial_tail_without_delta():
    m, r, v, eps = 100, 40, 30, 0.7
    q = math.exp(eps) / (1 + math.exp(eps))
    assert one_run_p_value(m, r, v, eps, 0.0) == pytest.approx(stats.binom.sf(v - 1, r, q))
    assert one_run_p_value(m, r, v, eps, 1e-3) > one_run_p_value(m, r, v, eps, 0.0)


def test_one_run_all_correct_has_a_closed_form():
    # every one of r guesses right: p = q^r, so eps = logit((1 - confidence)^(1/r))
    r = 60
    q = 0.05 ** (1 / r)
    expected = math.log(q / (1 - q))
    assert one_run_epsilon_lower(200, r, r, confidence=0.95) == pytest.approx(expected, rel=1e-5)
    assert one_run_epsilon_lower(200, r, r // 2, confidence=0.95) == 0.0  # chance level
    assert one_run_epsilon_lower(200, r, r, delta=1e-3) < expected


def test_one_run_rejects_impossible_counts():
    with pytest.raises(ParameterError, match="v <= r <= m"):
        one_run_p_value(10, 20, 5, 1.0, 0.0)


def test_one_run_bound_covers_the_true_epsilon():
    """Canaries through eps = 1 randomised response; guesses = the released bits."""
    eps, m, trials = 1.0, 500, 200
    rng = np.random.default_rng(1)
    p = math.exp(eps) / (1 + math.exp(eps))
    bounds = []
    for _ in range(trials):
        correct = int(rng.binomial(m, p))  # every guess is right with probability p
        bounds.append(one_run_epsilon_lower(m, m, correct, delta=1e-6, confidence=0.95))
    assert np.mean(np.array(bounds) > eps) <= 0.05
    assert np.median(bounds) > 0.5


def test_epsilon_bound_round_trips_through_json():
    bound = EpsilonBound(1.2, "one_run", 0.95, 1e-5, 3.4, {"m": 10, "r": 4, "v": 4}, "x")
    assert EpsilonBound.from_dict(bound.to_dict()) == bound
