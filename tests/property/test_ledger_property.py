"""Properties of the ledger for any sequence of spends (hypothesis).

- it never admits a spend that would cross the cap (PLD, and the adaptive filter from the
  second spend on), and admits every one that fits;
- the composed epsilon is monotone in the events;
- the PLD composition is at most the plain (basic-composition) sum.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpsynth.accounting import (
    ApproxDPEvent,
    Budget,
    GaussianEvent,
    LaplaceEvent,
    PureDPEvent,
    SubsampledGaussianEvent,
    pld_epsilon,
)
from dpsynth.accounting._ledger_math import PrefixComposer, plain_sum_epsilon
from dpsynth.accounting.analysis import PLD_INTERVAL
from dpsynth.accounting.ledger import Ledger
from dpsynth.accounting.rdp_filter import filter_epsilon
from dpsynth.accounting.session import EPS_TOLERANCE
from dpsynth.errors import BudgetExceededError

DELTA = 1e-6

events = st.one_of(
    st.builds(PureDPEvent, st.floats(0.01, 1.5), st.integers(1, 3)),
    st.builds(LaplaceEvent, st.floats(0.7, 60.0), st.integers(1, 3)),
    st.builds(GaussianEvent, st.floats(3.0, 40.0), st.integers(1, 4)),
    st.builds(ApproxDPEvent, st.floats(0.01, 1.0), st.floats(0.0, 1e-8)),
    # Noise kept >= 2.5 so that each PLD takes tens of ms (smaller noise: up to a second).
    st.builds(SubsampledGaussianEvent, st.floats(2.5, 6.0), st.floats(0.001, 0.05),
              st.integers(1, 200)),
)
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@settings(SETTINGS, max_examples=15)
@given(spends=st.lists(events, min_size=1, max_size=7), cap_eps=st.floats(0.2, 3.0))
def test_ledger_never_admits_a_spend_over_the_cap(spends, cap_eps):
    cap = Budget(cap_eps, DELTA)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(Path(tmp) / "ledger.sqlite")
        ledger.register("d", cap, fingerprint="sha256:" + "f" * 64, n_rows=100_000)
        admitted = []
        for event in spends:
            trial = [*admitted, event]
            fits = pld_epsilon(trial, DELTA) <= cap_eps + EPS_TOLERANCE
            if admitted:  # from the second plan on, the adaptive filter must hold too
                fits = fits and filter_epsilon(trial, DELTA) <= cap_eps + EPS_TOLERANCE
            try:
                with ledger.spend("d", "p", event):
                    pass
                won = True
            except BudgetExceededError:
                won = False
            assert won == fits  # refuses exactly the spends that would cross the cap
            if won:
                admitted.append(event)
            status = ledger.status("d")
            assert status.epsilon <= cap_eps + EPS_TOLERANCE
            assert status.epsilon == pld_epsilon(admitted, DELTA)
            if len(admitted) > 1:
                assert status.filter_epsilon <= cap_eps + EPS_TOLERANCE
        assert list(ledger.spent_events("d")) == admitted


@SETTINGS
@given(spends=st.lists(events, min_size=1, max_size=8))
def test_composed_epsilon_is_monotone_in_the_events(spends):
    curve = PrefixComposer().cumulative(spends, DELTA)
    assert all(b >= a - 1e-12 for a, b in zip(curve, curve[1:], strict=False))
    assert curve[-1] == pld_epsilon(spends, DELTA)


@SETTINGS
@given(spends=st.lists(events, min_size=1, max_size=8))
def test_pld_composition_is_at_most_the_plain_sum(spends):
    pld = pld_epsilon(spends, DELTA)
    # Both sides are pessimistic PLD figures; allow their discretisation, one step per event.
    assert pld <= plain_sum_epsilon(spends, DELTA) + PLD_INTERVAL * len(spends)
