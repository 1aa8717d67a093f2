"""A Rényi-DP privacy filter: the dataset cap, valid when releases are chosen adaptively.

Within one release the plan is fixed before the data is read, so its events compose exactly by
the PLD accountant. Across releases the steward picks the next release after seeing the
earlier ones: that is *fully adaptive* composition, where the privacy parameters of each
mechanism may themselves depend on earlier outputs. A PLD or f-DP "filter" is not valid there
in general (Whitehouse, Ramdas, Rogers and Wu, ICML 2023). Rényi-DP filters are:

Feldman and Zrnic, "Individual Privacy Accounting via a Rényi Filter", NeurIPS 2021,
Theorem 3.1 (see also Lécuyer, "Practical Privacy Filters and Odometers with Rényi
Differential Privacy", 2021): for a fixed order ``a``, if every adaptively chosen mechanism is
admitted only while the running sum of the Rényi divergences ``rho_i(a)`` stays under ``B``,
the process ``exp((a - 1) * (L_t - sum_i rho_i(a)))`` of the privacy loss ``L_t`` is a
supermartingale, so ``E[exp((a - 1) L)] <= exp((a - 1) B)`` for the stopped transcript.
Since ``(1 - exp(eps - L))_+ <= c_a exp((a - 1)(L - eps))`` pointwise, with ``c_a = (1 / a)
(1 - 1 / a)^(a - 1)``, the hockey-stick delta at ``eps`` is at most ``c_a exp((a - 1)(B -
eps))``: the conversion of Canonne, Kamath and Steinke (NeurIPS 2020, Proposition 12).

This module runs that filter over a fixed set of orders :data:`ORDERS` (``K`` of them) at
once: an event is admitted while *some* order still has room. Sums only grow, so an order that
admits the last event admitted every earlier one too; splitting the delta over the event "this
order is still open at the end", order by order, gives ``delta <= sum_a c_a exp((a - 1)(B_a -
eps))``. With ``B_a = eps - (log(K / delta) + log c_a) / (a - 1)`` each term is ``delta / K``:
the cap ``(eps, delta)`` holds. That union bound is the price: ``log(K)`` (about 2.7 for the
15 orders here) is added to ``log(1 / delta)``.

The order infinity is in the set too, at no cost in delta: its divergence is the pure-DP
epsilon (infinite for Gaussian noise), and the plain sum of pure-DP epsilons is a filter valid
under full adaptivity (Rogers, Roth, Ullman and Vadhan, "Privacy Odometers and Filters",
NeurIPS 2016), so histories of pure-DP mechanisms keep their exact figure.

The first release on a dataset is chosen before anything was released, so the ledger admits it
by PLD alone. That keeps the guarantee at ``delta`` (no union): whether the first release
passes the filter is fixed before any data is read. If it does, every admitted release passed
the filter and the argument above applies; if it does not, no order is open after it, no later
release is ever admitted, and the transcript is that one release, exact by PLD.

Approximate-DP events (``(eps_i, delta_i)``) take their ``delta_i`` off the filter's delta
and count as pure ``eps_i``-DP otherwise: every ``(eps, delta)``-DP mechanism is a
post-processing of one whose privacy loss exceeds ``eps`` only with probability ``delta``
(Kairouz, Oh and Viswanath, ICML 2015, Theorem 2.4 and its proof).

Per-event Rényi divergences: Gaussian ``a / (2 sigma^2)`` per run (Mironov, CSF 2017,
Proposition 7); Laplace, Mironov's closed form (Proposition 6); Poisson-subsampled Gaussian,
the numerical bound of ``dp_accounting``'s RDP accountant (Mironov, Talwar and Zhang 2019);
pure ``eps``-DP ``min(eps, a * eps^2 / 2)`` (Bun and Steinke, TCC 2016, Proposition 1.4, and
the bound ``D_a <= eps`` of any ``eps``-DP mechanism), ``a * eps^2 / 8`` for an event labelled
``exponential`` (the exponential mechanism is ``eps``-bounded-range: Cesar and Rogers, ALT 2021).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Sequence

from dpsynth.accounting.events import (
    ApproxDPEvent,
    Event,
    GaussianEvent,
    LaplaceEvent,
    PureDPEvent,
    SubsampledGaussianEvent,
)

#: The fixed Rényi orders of the filter (fixed before any release: the union bound needs it).
ORDERS: tuple[float, ...] = (1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0,
                             24.0, 32.0, 64.0)

FILTER_NAME = (f"Rényi-DP filter (Feldman & Zrnic 2021), {len(ORDERS)} fixed orders, union "
               "bound over the orders")


def _laplace_rdp(alpha: float, scale: float) -> float:
    # Mironov 2017, Proposition 6 (sensitivity 1, noise scale b), in log space for large alpha.
    a, lam = alpha, 1.0 / scale
    first = math.log(a / (2 * a - 1)) + (a - 1) * lam
    second = math.log((a - 1) / (2 * a - 1)) - a * lam
    top = max(first, second)
    return (top + math.log(math.exp(first - top) + math.exp(second - top))) / (a - 1)


def _subsampled_rdp(event: SubsampledGaussianEvent) -> tuple[float, ...]:
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)  # orders that fail to converge are reported as inf
    try:
        import dp_accounting  # loaded on first use: keeps the CLI's start-up light

        accountant = dp_accounting.rdp.RdpAccountant(orders=list(ORDERS))
        accountant.compose(event.to_dp_event())
        values = accountant._rdp  # noqa: SLF001  (the per-order curve; no public getter)
    finally:
        absl_logger.setLevel(level)
    return tuple(float(v) if math.isfinite(float(v)) else math.inf for v in values)


@functools.lru_cache(maxsize=4096)
def event_rdp(event: Event) -> tuple[float, ...]:
    """The Rényi divergence of ``event`` at every order of :data:`ORDERS`.

    ``ApproxDPEvent`` is taken as its pure ``epsilon`` part (its ``delta`` is handled by
    :func:`filter_epsilon`).
    """
    if isinstance(event, SubsampledGaussianEvent):
        return _subsampled_rdp(event)
    if isinstance(event, GaussianEvent):
        return tuple(a * event.count / (2 * event.noise_multiplier**2) for a in ORDERS)
    if isinstance(event, LaplaceEvent):
        return tuple(event.count * _laplace_rdp(a, event.noise_multiplier) for a in ORDERS)
    if isinstance(event, PureDPEvent):
        eps = event.epsilon
        # The exponential mechanism is eps-bounded-range, hence eps^2/8-zCDP (Cesar and
        # Rogers, "Bounding, Concentrating, and Truncating", ALT 2021, Lemma 3.2); any other
        # eps-DP mechanism is eps^2/2-zCDP (Bun and Steinke 2016, Proposition 1.4).
        factor = 8 if event.mechanism == "exponential" else 2
        return tuple(event.count * min(eps, a * eps * eps / factor) for a in ORDERS)
    if isinstance(event, ApproxDPEvent):
        eps = event.epsilon
        return tuple(min(eps, a * eps * eps / 2) for a in ORDERS)
    raise TypeError(f"Unsupported event type {type(event).__name__}")


def filter_epsilon(events: Iterable[Event], delta: float) -> float:
    """The epsilon the Rényi filter certifies for ``events`` at total ``delta``.

    ``min over orders a of sum_i rho_i(a) + (log(K / delta') - log a) / (a - 1) + log(1 - 1/a)``
    where ``delta'`` is
    ``delta`` less the deltas of approximate-DP events; the filter admits a history whose
    figure is at most the cap's epsilon. 0 for no events.
    """
    events = tuple(events)
    if not events:
        return 0.0
    left = delta - sum(e.delta for e in events if isinstance(e, ApproxDPEvent))
    if left <= 0:
        return math.inf
    totals = [0.0] * len(ORDERS)
    for event in events:
        for i, value in enumerate(event_rdp(event)):
            totals[i] += value
    log_k = math.log(len(ORDERS) / left)
    finite = min(t + (log_k - math.log(a)) / (a - 1) + math.log1p(-1 / a)
                 for t, a in zip(totals, ORDERS, strict=True))
    return max(0.0, min(finite, sum(pure_epsilon(e) for e in events)))


def pure_epsilon(event: Event) -> float:
    """The Rényi divergence of order infinity: the pure-DP epsilon (``inf`` for Gaussians)."""
    if isinstance(event, LaplaceEvent):
        return event.count / event.noise_multiplier
    if isinstance(event, PureDPEvent):
        return event.count * event.epsilon
    if isinstance(event, ApproxDPEvent):
        return event.epsilon
    return math.inf


def filter_admits(events: Sequence[Event], epsilon_cap: float, delta: float,
                  tolerance: float = 1e-9) -> bool:
    """Whether the filter with cap ``(epsilon_cap, delta)`` admits the history ``events``."""
    return filter_epsilon(events, delta) <= epsilon_cap + tolerance


__all__ = ["FILTER_NAME", "ORDERS", "event_rdp", "filter_admits",
           "filter_epsilon", "pure_epsilon"]
