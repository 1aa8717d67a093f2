"""Calibrated noise never overshoots the target epsilon (PLD), and is not wastefully large."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpsynth.accounting import (
    PureDPEvent,
    SubsampledGaussianEvent,
    calibrate_dpsgd_noise,
    calibrate_gaussian,
    pld_epsilon,
)
from dpsynth.accounting.events import GaussianEvent

SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    sample_rate=st.sampled_from([0.001, 0.01, 0.05, 0.2, 1.0]),
    steps=st.integers(min_value=1, max_value=400),
    target=st.floats(min_value=0.2, max_value=10.0),
)
def test_dpsgd_noise_never_overshoots(sample_rate: float, steps: int, target: float) -> None:
    delta = 1e-6
    sigma = calibrate_dpsgd_noise(target, delta, sample_rate=sample_rate, steps=steps,
                                  rel_tol=1e-2)
    eps = pld_epsilon([SubsampledGaussianEvent(sigma, sample_rate, steps)], delta)
    assert eps <= target
    # Tight: 3 % less noise would overshoot (the bracket is within 1 %).
    eps_less = pld_epsilon([SubsampledGaussianEvent(sigma * 0.97, sample_rate, steps)], delta)
    assert eps_less > target


@SETTINGS
@given(target=st.floats(min_value=0.5, max_value=8.0), prior=st.floats(0.01, 0.3))
def test_calibration_accounts_for_prior_events(target: float, prior: float) -> None:
    delta = 1e-6
    prior_events = (PureDPEvent(prior * target),)
    sigma = calibrate_dpsgd_noise(target, delta, sample_rate=0.02, steps=200,
                                  prior_events=prior_events, rel_tol=1e-2)
    total = pld_epsilon([*prior_events, SubsampledGaussianEvent(sigma, 0.02, 200)], delta)
    assert total <= target


@SETTINGS
@given(target=st.floats(min_value=0.1, max_value=10.0), count=st.integers(1, 50))
def test_gaussian_noise_never_overshoots(target: float, count: int) -> None:
    sigma = calibrate_gaussian(target, 1e-7, count=count, rel_tol=1e-3)
    assert pld_epsilon([GaussianEvent(sigma, count)], 1e-7) <= target
