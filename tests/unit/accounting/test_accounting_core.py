import math

import pytest

from dpsynth.accounting import (
    ApproxDPEvent,
    Budget,
    BudgetSession,
    GaussianEvent,
    LaplaceEvent,
    NoiseSource,
    PureDPEvent,
    SubsampledGaussianEvent,
    calibrate_dpsgd_noise,
    default_delta,
    event_from_dict,
    laplace_noise_multiplier,
    pld_epsilon,
    rdp_epsilon,
)
from dpsynth.errors import BudgetExceededError, ParameterError, PrivacyError


@pytest.mark.parametrize("eps", [0, -1, math.inf, math.nan, "1", True])
def test_budget_rejects_bad_epsilon(eps):
    with pytest.raises(ParameterError, match="'epsilon'"):
        Budget(eps, 1e-6)


@pytest.mark.parametrize("delta", [-0.1, 1, 1.5])
def test_budget_rejects_bad_delta(delta):
    with pytest.raises(ParameterError, match="'delta'"):
        Budget(1.0, delta)


def test_delta_must_be_below_one_over_n():
    Budget(1.0, 1e-4).check_delta_for(1000)
    with pytest.raises(ParameterError, match="1/n"):
        Budget(1.0, 1e-2).check_delta_for(1000)


def test_default_delta_far_below_one_over_n():
    for n in (2, 10, 3000, 10**6):
        assert 0 < default_delta(n) <= 1 / n**1.5
    assert default_delta(3000) == pytest.approx(6e-6)


def test_pure_laplace_is_exact():
    # A single Laplace mechanism with b = 1/eps is eps-DP with delta = 0 (Dwork et al. 2006).
    eps = pld_epsilon([LaplaceEvent(laplace_noise_multiplier(0.7))], 1e-12)
    assert eps == pytest.approx(0.7, abs=2e-3)


def test_pure_dp_composes_at_most_additively_and_better_with_delta():
    events = [PureDPEvent(0.1, count=50)]
    assert pld_epsilon(events, 1e-12) <= 5.0 + 1e-3  # never worse than basic composition
    # Advanced composition: with delta > 0 much less than the sum (Kairouz et al. 2015).
    assert pld_epsilon(events, 1e-6) < 3.5


def test_pld_tighter_than_rdp_for_dpsgd():
    event = SubsampledGaussianEvent(1.1, 0.01, 2000)
    pld, rdp = pld_epsilon([event], 1e-5), rdp_epsilon([event], 1e-5)
    assert pld < rdp < pld * 1.5


def test_rdp_comparison_keeps_the_log_quiet(caplog):
    # Large sampling rates make dp-accounting warn once per RDP order it drops; the figure
    # is only a comparison, so those warnings must not reach the user's log.
    with caplog.at_level("WARNING"):
        rdp = rdp_epsilon([SubsampledGaussianEvent(1.43, 0.17, 18)], 1e-5)
    assert math.isfinite(rdp) and rdp > 0
    assert not [r for r in caplog.records if "converge" in r.getMessage()]


def test_gaussian_count_equals_repeated_events():
    one = pld_epsilon([GaussianEvent(4.0, count=4)], 1e-6)
    four = pld_epsilon([GaussianEvent(4.0)] * 4, 1e-6)
    assert one == pytest.approx(four, rel=1e-3)


def test_approx_dp_event_has_no_rdp_and_costs_its_epsilon():
    assert math.isnan(rdp_epsilon([ApproxDPEvent(0.5, 1e-7)], 1e-6))
    assert pld_epsilon([ApproxDPEvent(0.5, 1e-7)], 1e-6) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("event", [
    GaussianEvent(2.0, 3), LaplaceEvent(1.5), SubsampledGaussianEvent(1.0, 0.1, 10),
    PureDPEvent(0.3, 2, "exponential (quantile)"), ApproxDPEvent(0.2, 1e-8),
])
def test_event_round_trips(event):
    assert event_from_dict(event.to_dict()) == event


def test_event_validation():
    with pytest.raises(ParameterError, match="'sample_rate'"):
        SubsampledGaussianEvent(1.0, 1.5, 10)
    with pytest.raises(ParameterError, match="'noise_multiplier'"):
        GaussianEvent(0.0)


def test_session_refuses_over_cap_and_says_what_is_left():
    session = BudgetSession(Budget(1.0, 1e-6))
    with session.spend("a", PureDPEvent(0.6)):
        pass
    with pytest.raises(BudgetExceededError, match="0.4 is left"):
        with session.spend("b", PureDPEvent(0.6)):
            raise AssertionError("the mechanism must not run")
    assert len(session.spends) == 1


def test_failed_mechanism_still_counts():
    session = BudgetSession(Budget(1.0, 1e-6))
    with pytest.raises(RuntimeError), session.spend("a", PureDPEvent(0.5)):
        raise RuntimeError("crash after noise was drawn")
    assert session.epsilon_spent() == pytest.approx(0.5, abs=1e-3)


def test_calibration_refuses_when_prior_uses_everything():
    with pytest.raises(PrivacyError, match="nothing is left"):
        calibrate_dpsgd_noise(1.0, 1e-6, sample_rate=0.1, steps=10,
                              prior_events=[PureDPEvent(1.0)])


def test_noise_source_seeded_is_reproducible_and_secure_is_not_seedable():
    a, b = NoiseSource.create(3, False), NoiseSource.create(3, False)
    assert (a.normal(5) == b.normal(5)).all()
    with pytest.raises(ParameterError):
        NoiseSource.create(3, True)
    with pytest.raises(PrivacyError):
        NoiseSource.create(None, True).child_seed()


@pytest.mark.parametrize("secure", [False, True])
def test_noise_source_distributions(secure):
    src = NoiseSource.create(None if secure else 0, secure)
    z = src.normal(200_000, scale=2.0)
    lap = src.laplace(200_000, scale=3.0)
    u = src.uniform(100_000)
    assert abs(z.mean()) < 0.03 and z.std() == pytest.approx(2.0, rel=0.02)
    assert abs(lap.mean()) < 0.05 and lap.std() == pytest.approx(3.0 * math.sqrt(2), rel=0.02)
    assert 0 < u.min() and u.max() < 1 and u.mean() == pytest.approx(0.5, abs=0.01)
    g = src.gumbel(200_000)
    assert g.mean() == pytest.approx(0.5772, abs=0.02)
