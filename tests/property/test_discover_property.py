"""Property: a discovery plan never composes (by PLD) to more than the epsilon it was given."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dpsynth.accounting import ApproxDPEvent, PureDPEvent, pld_epsilon
from dpsynth.accounting.analysis import PLD_INTERVAL
from dpsynth.data.discover import plan_discovery
from dpsynth.schema import Column, Schema


@settings(max_examples=40, deadline=None)
@given(
    n_bounds=st.integers(0, 12),
    n_categories=st.integers(0, 12),
    epsilon=st.sampled_from([0.01, 0.05, 0.1, 0.3, 1.0, 2.0, 5.0, 10.0]),
    delta=st.sampled_from([1e-10, 1e-8, 1e-6, 1e-4, 1e-2]),
)
def test_planned_events_compose_within_epsilon(n_bounds, n_categories, epsilon, delta):
    columns = [Column(f"n{i}", ("numeric", "integer", "datetime")[i % 3], public=False)
               for i in range(n_bounds)]
    columns += [Column(f"c{i}", "categorical", public=False) for i in range(n_categories)]
    if not columns:
        columns = [Column("only", "numeric", public=False)]
    schema = Schema(tuple(columns))
    plan = plan_discovery(schema, schema.names, epsilon=epsilon, delta=delta)
    events = [p.event for p in plan]
    assert len(plan) == len(columns)
    assert pld_epsilon(events, delta) <= epsilon
    # delta is spent only by the category histograms, and never more than given in total
    assert sum(e.delta for e in events if isinstance(e, ApproxDPEvent)) <= delta * (1 + 1e-12)
    # every column gets the plain even split, up to the accountant's discretisation
    shares = {e.epsilon * (e.count if isinstance(e, PureDPEvent) else 1) for e in events}
    assert min(shares) >= epsilon / len(columns) * (1 - 2e-3) - 2 * PLD_INTERVAL
    assert max(shares) - min(shares) <= 1e-12 * epsilon
