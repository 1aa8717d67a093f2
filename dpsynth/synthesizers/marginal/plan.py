"""Budget plans of the marginal mechanisms, fixed before the data is touched.

A plan is a zero-concentrated-DP style split of a scale ``rho`` (Bun and Steinke, TCC 2016):
a Gaussian measurement with noise multiplier ``sigma`` costs ``1 / (2 sigma**2)`` and an
exponential-mechanism selection with parameter ``eps`` costs ``eps**2 / 8`` (Cesar and Rogers,
"Bounding, concentrating, and truncating: unifying privacy loss composition for data
analytics", ALT 2021). That split only decides the *shape* of the plan; its size is then set by
bisection on ``rho`` so that the PLD composition of the planned events, with the Gaussian
measurements composed exactly and each selection charged as a pure ``eps``-DP mechanism, is
at most the target epsilon. The reported epsilon is that PLD figure, never the zCDP one.

Every event of a plan is run exactly once (the number of rounds is fixed in advance), so the
accounted epsilon is the composition of the measurements actually made.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from dpsynth.accounting import Event, GaussianEvent, PureDPEvent, Spend, pld_epsilon
from dpsynth.errors import PrivacyError, param_error

_RHO_MIN, _RHO_MAX = 1e-14, 1e6


@dataclass(frozen=True)
class MarginalPlan:
    """Noise of every step of a marginal mechanism.

    ``first_sigma`` measures ``first_count`` marginals (the one-way marginals); each of the
    ``rounds`` rounds makes one selection with ``select_epsilon`` and measures the selected
    marginal with ``round_sigma``.
    """

    first_sigma: float
    first_count: int
    rounds: int
    select_epsilon: float
    round_sigma: float

    def events(self) -> list[tuple[str, Event]]:
        out: list[tuple[str, Event]] = [
            ("one-way marginals", GaussianEvent(self.first_sigma, self.first_count))]
        if self.rounds:
            out += [("marginal selection", PureDPEvent(self.select_epsilon, self.rounds)),
                    ("selected marginals", GaussianEvent(self.round_sigma, self.rounds))]
        return out

    @property
    def spends(self) -> tuple[Spend, ...]:
        """The plan's events as spends, in the order they are made."""
        return tuple(Spend(purpose, event) for purpose, event in self.events())


def _shape(rho: float, first_count: int, rounds: int, first_share: float,
           select_share: float) -> MarginalPlan:
    """Split ``rho``: ``first_share`` on the one-way marginals, ``select_share`` on selection."""
    rest = 1.0 - first_share - select_share
    first_sigma = math.sqrt(first_count / (2.0 * first_share * rho))
    if rounds == 0:
        return MarginalPlan(first_sigma, first_count, 0, 0.0, 0.0)
    return MarginalPlan(
        first_sigma=first_sigma, first_count=first_count, rounds=rounds,
        select_epsilon=math.sqrt(8.0 * select_share * rho / rounds),
        round_sigma=math.sqrt(rounds / (2.0 * rest * rho)),
    )


def share_problems(select_share: object, first_share: object, owner: str) -> list[str]:
    """The problem with a synthesizer's ``(select_share, first_share)``, if any: both must be
    floats in ``(0, 1)`` with a sum below 1 (what :func:`plan_marginals` can split)."""
    shares = (select_share, first_share)
    numbers = [float(s) for s in shares
               if isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s < 1]
    if len(numbers) == 2 and sum(numbers) < 1:
        return []
    return [str(param_error("(select_share, first_share)",
                            "floats in (0, 1) with a sum below 1", shares, owner))]


@functools.lru_cache(maxsize=64)
def plan_marginals(epsilon: float, delta: float, *, first_count: int, rounds: int,
                   first_share: float, select_share: float,
                   prior: tuple[Event, ...] = (), rel_tol: float = 1e-3) -> MarginalPlan:
    """The plan with the largest ``rho`` whose PLD composition (after ``prior``) is ≤ epsilon."""
    if rounds == 0:
        first_share, select_share = 1.0, 0.0
    elif not (0 < first_share and 0 < select_share and first_share + select_share < 1):
        raise PrivacyError(f"invalid budget shares: first={first_share}, select={select_share}")

    def eps_of(rho: float) -> float:
        plan = _shape(rho, first_count, rounds, first_share, select_share)
        return pld_epsilon([*prior, *(e for _, e in plan.events())], delta)

    if prior and pld_epsilon(prior, delta) >= epsilon:
        raise PrivacyError(f"The domain discovery already uses all of epsilon={epsilon:g}; "
                           "nothing is left to measure marginals.")
    # bracket around the zCDP conversion rho = (sqrt(log(1/delta) + eps) - sqrt(log(1/delta)))^2
    guess = (math.sqrt(math.log(1 / delta) + epsilon) - math.sqrt(math.log(1 / delta))) ** 2
    lo, hi = guess / 2.0, guess * 2.0
    while eps_of(lo) > epsilon:
        lo, hi = lo / 4.0, lo
        if lo < _RHO_MIN:
            raise PrivacyError(f"No plan reaches epsilon={epsilon:g} at delta={delta:g}.")
    while eps_of(hi) <= epsilon:
        if hi * 4.0 > _RHO_MAX:
            return _shape(hi, first_count, rounds, first_share, select_share)
        lo, hi = hi, hi * 4.0
    return _shape(_illinois(eps_of, epsilon, lo, hi, rel_tol), first_count, rounds,
                  first_share, select_share)


def _illinois(eps_of: Callable[[float], float], target: float, lo: float, hi: float,
              rel_tol: float) -> float:
    """Largest ``rho`` in ``[lo, hi]`` (to ``rel_tol``) with ``eps_of(rho) <= target``.

    False position on ``log(rho)`` with the Illinois modification; ``eps_of`` is increasing
    and ``eps_of(lo) <= target < eps_of(hi)``. The returned point always meets the target.
    """
    x_lo, x_hi = math.log(lo), math.log(hi)
    f_lo, f_hi = eps_of(lo) - target, eps_of(hi) - target
    side = 0
    while x_hi - x_lo > math.log1p(rel_tol) and -f_lo > rel_tol * target * 0.1:
        x = (x_lo * f_hi - x_hi * f_lo) / (f_hi - f_lo)
        x = min(max(x, x_lo + 1e-3 * (x_hi - x_lo)), x_hi - 1e-3 * (x_hi - x_lo))
        f = eps_of(math.exp(x)) - target
        if f <= 0:
            x_lo, f_lo = x, f
            f_hi = f_hi / 2 if side == -1 else f_hi
            side = -1
        else:
            x_hi, f_hi = x, f
            f_lo = f_lo / 2 if side == 1 else f_lo
            side = 1
    return math.exp(x_lo)
