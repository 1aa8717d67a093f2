"""Noise calibration: the smallest noise that keeps a composition within a target epsilon.

Every function here returns noise for which the PLD epsilon (the figure dpsynth reports) is at
most the target, never above it: bisection keeps the upper end of the bracket, which always
satisfies the target. Calibration happens before any private data is touched.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

from dpsynth.accounting.analysis import PLD_INTERVAL, pld_epsilon
from dpsynth.accounting.events import Event, GaussianEvent, SubsampledGaussianEvent
from dpsynth.errors import PrivacyError, param_error

_SIGMA_MAX = 1e4
_SIGMA_MIN = 0.05


def _bisect_sigma(
    eps_of: Callable[[float], float], target_eps: float, *, rel_tol: float, what: str
) -> float:
    """Smallest sigma (to ``rel_tol``) with ``eps_of(sigma) <= target_eps``; eps_of decreasing.

    The bracket is found by doubling or halving from sigma = 1, so the accountant is never
    asked about tiny noise levels, whose privacy-loss distributions are huge and slow.
    """
    hi = 1.0
    if eps_of(hi) <= target_eps:
        lo = hi / 2
        while eps_of(lo) <= target_eps:
            hi, lo = lo, lo / 2
            if lo < _SIGMA_MIN:
                return hi  # more noise than strictly needed: never an overshoot
    else:
        lo, hi = hi, hi * 2.0
        while eps_of(hi) > target_eps:
            lo, hi = hi, hi * 2.0
            if hi > _SIGMA_MAX:
                raise PrivacyError(
                    f"No noise level up to sigma={_SIGMA_MAX:g} reaches epsilon={target_eps:g} "
                    f"for {what}; raise epsilon or lower the number of steps / sampling rate."
                )
    while hi / lo > 1 + rel_tol:
        mid = math.sqrt(lo * hi)
        if eps_of(mid) <= target_eps:
            hi = mid
        else:
            lo = mid
    return hi


def _calibrate(eps_of: Callable[[float, float], float], target_eps: float, *,
               rel_tol: float, interval: float, what: str) -> float:
    """Search on a 10x coarser PLD grid (fast; still an upper bound on epsilon), then check on
    the reporting grid and step the noise up until the reported figure is within the target."""
    sigma = _bisect_sigma(lambda s: eps_of(s, interval * 10), target_eps, rel_tol=rel_tol,
                          what=what)
    while eps_of(sigma, interval) > target_eps:
        sigma *= 1 + rel_tol
    return sigma


@functools.lru_cache(maxsize=128)
def _calibrate_dpsgd_cached(
    target_eps: float, delta: float, sample_rate: float, steps: int,
    prior: tuple[Event, ...], rel_tol: float, interval: float,
) -> float:
    def eps_of(sigma: float, grid: float) -> float:
        event = SubsampledGaussianEvent(sigma, sample_rate, steps)
        return pld_epsilon((*prior, event), delta, interval=grid)

    if prior and eps_of(_SIGMA_MAX, interval) > target_eps:
        raise PrivacyError(
            f"The preprocessing already uses all of epsilon={target_eps:g}; nothing is left "
            "to train. Raise epsilon, or declare more of the schema public."
        )
    return _calibrate(eps_of, target_eps, rel_tol=rel_tol, interval=interval, what="DP-SGD")


def calibrate_dpsgd_noise(
    epsilon: float,
    delta: float,
    *,
    sample_rate: float,
    steps: int,
    prior_events: Sequence[Event] = (),
    rel_tol: float = 1e-3,
    interval: float = PLD_INTERVAL,
) -> float:
    """Noise multiplier for DP-SGD so that ``prior_events`` + training is (epsilon, delta)-DP.

    Parameters
    ----------
    epsilon, delta:
        The target for the whole composition (prior events included).
    sample_rate:
        Poisson sampling rate (expected batch size / number of rows).
    steps:
        Number of optimiser steps.
    prior_events:
        Events already planned on the same data (bounds discovery, ...), composed with the
        training by PLD.
    """
    if not (0 < sample_rate <= 1):
        raise param_error("sample_rate", "a float in (0, 1]", sample_rate, "calibrate_dpsgd_noise")
    if steps < 1:
        raise param_error("steps", "an integer >= 1", steps, "calibrate_dpsgd_noise")
    prior = tuple(prior_events)
    return _calibrate_dpsgd_cached(
        float(epsilon), float(delta), float(sample_rate), int(steps), prior,
        float(rel_tol), float(interval),
    )


def calibrate_gaussian(
    epsilon: float, delta: float, *, count: int = 1, rel_tol: float = 1e-4
) -> float:
    """Noise multiplier sigma/sensitivity for ``count`` Gaussian mechanisms at (epsilon, delta)."""
    if not (epsilon > 0 and 0 < delta < 1):
        raise param_error("(epsilon, delta)", "epsilon > 0 and 0 < delta < 1",
                          (epsilon, delta), "calibrate_gaussian")

    def eps_of(sigma: float, grid: float) -> float:
        return pld_epsilon([GaussianEvent(sigma, count)], delta, interval=grid)

    return _calibrate(eps_of, epsilon, rel_tol=rel_tol, interval=PLD_INTERVAL,
                      what="the Gaussian mechanism")


def laplace_noise_multiplier(epsilon: float) -> float:
    """Scale/sensitivity of the Laplace mechanism for pure ``epsilon``-DP (Dwork et al. 2006)."""
    if not (0 < epsilon < math.inf):
        raise param_error("epsilon", "a float in (0, inf)", epsilon, "laplace_noise_multiplier")
    return 1.0 / epsilon
