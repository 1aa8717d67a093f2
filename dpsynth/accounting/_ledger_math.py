"""Composition figures for the ledger: PLD with a prefix cache, cumulative curves, plain sum.

A ledger composes the same growing list of events again and again (every check, every spend,
every report). :class:`PrefixComposer` keeps the composed privacy-loss distributions of
recent prefixes and extends the longest cached one, composing in the same order as
:func:`dpsynth.accounting.analysis.pld_epsilon`, so its figures are the same numbers.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dpsynth.accounting.analysis import PLD_INTERVAL, event_pld, pld_epsilon
from dpsynth.accounting.events import ApproxDPEvent, Event

if TYPE_CHECKING:
    from dp_accounting.pld import privacy_loss_distribution as pld_lib


class PrefixComposer:
    """PLD epsilon of event sequences, reusing the composition of the longest cached prefix.

    Thread-safe. ``maxsize`` bounds the number of composed PLDs held (each can take a few MB).
    """

    def __init__(self, maxsize: int = 8, interval: float = PLD_INTERVAL):
        self._cache: OrderedDict[tuple[Event, ...], pld_lib.PrivacyLossDistribution] = (
            OrderedDict()
        )
        self._maxsize = maxsize
        self._interval = interval
        self._lock = threading.Lock()

    def epsilon(self, events: Sequence[Event], delta: float) -> float:
        """Smallest epsilon with the composition (epsilon, delta)-DP; 0 for no events."""
        events = tuple(events)
        if not events:
            return 0.0
        with self._lock:
            start, pld = self._longest_prefix(events)
            for i in range(start, len(events)):
                step = event_pld(events[i], self._interval)
                pld = step if pld is None else pld.compose(step)
            assert pld is not None
            self._put(events, pld)
        return _eps(pld, delta)

    def cumulative(self, events: Sequence[Event], delta: float, *, every: int = 1) -> list[float]:
        """Epsilon after every ``every``-th event and after the last one (one pass, no cache)."""
        out: list[float] = []
        pld: pld_lib.PrivacyLossDistribution | None = None
        for i, event in enumerate(events):
            step = event_pld(event, self._interval)
            pld = step if pld is None else pld.compose(step)
            if (i + 1) % every == 0 or i + 1 == len(events):
                out.append(_eps(pld, delta))
        return out

    def _longest_prefix(
        self, events: tuple[Event, ...]
    ) -> tuple[int, pld_lib.PrivacyLossDistribution | None]:
        for k in range(len(events), 0, -1):
            pld = self._cache.get(events[:k])
            if pld is not None:
                self._cache.move_to_end(events[:k])
                return k, pld
        return 0, None

    def _put(self, key: tuple[Event, ...], pld: pld_lib.PrivacyLossDistribution) -> None:
        self._cache[key] = pld
        self._cache.move_to_end(key)
        while len(self._cache) > self._maxsize:
            self._cache.popitem(last=False)


def _eps(pld: pld_lib.PrivacyLossDistribution, delta: float) -> float:
    return max(0.0, float(pld.get_epsilon_for_delta(delta)))


def plain_sum_epsilon(events: Sequence[Event], delta: float) -> float:
    """Basic-composition epsilon at total ``delta`` (Dwork, McSherry, Nissim and Smith, TCC 2006).

    Each (epsilon_i, delta_i)-DP event keeps its own delta; the rest of ``delta`` is split
    evenly over the other events, each taken at its PLD epsilon for that share. The sum of the
    epsilons is then an (epsilon, delta) guarantee too, one that ignores how privacy losses
    partly cancel: the loose "plain sum" shown beside the PLD figure, which it always bounds
    from above (up to the PLD discretisation). Infinite when the approximate-DP events alone
    use up ``delta``.
    """
    events = tuple(events)
    if not events:
        return 0.0
    approx = [e for e in events if isinstance(e, ApproxDPEvent)]
    others = [e for e in events if not isinstance(e, ApproxDPEvent)]
    left = delta - sum(e.delta for e in approx)
    total = float(sum(e.epsilon for e in approx))
    if not others:
        return total if left >= 0 else math.inf
    if left <= 0:
        return math.inf
    share = left / len(others)
    return total + float(sum(pld_epsilon([e], share) for e in others))
