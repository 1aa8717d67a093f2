"""Budget plans of the marginal mechanisms: PLD-calibrated, never above the target."""

from __future__ import annotations

import pytest

from dpsynth.accounting import GaussianEvent, LaplaceEvent, PureDPEvent, pld_epsilon
from dpsynth.errors import PrivacyError
from dpsynth.synthesizers.marginal.plan import plan_marginals


def _eps(plan, delta, prior=()):
    return pld_epsilon([*prior, *(e for _, e in plan.events())], delta)


@pytest.mark.parametrize("epsilon", [0.3, 1.0, 3.0])
def test_plan_composes_to_just_below_the_target(epsilon):
    plan = plan_marginals(epsilon, 1e-9, first_count=6, rounds=8, first_share=0.1,
                          select_share=0.1)
    spent = _eps(plan, 1e-9)
    assert spent <= epsilon
    assert spent > 0.995 * epsilon  # the budget is used, not wasted
    kinds = [type(e) for _, e in plan.events()]
    assert kinds == [GaussianEvent, PureDPEvent, GaussianEvent]
    assert [e.count for _, e in plan.events()] == [6, 8, 8]


def test_prior_events_leave_less_for_the_measurements():
    prior = (LaplaceEvent(10.0),)
    alone = plan_marginals(1.0, 1e-9, first_count=6, rounds=8, first_share=0.1,
                           select_share=0.1)
    after = plan_marginals(1.0, 1e-9, first_count=6, rounds=8, first_share=0.1,
                           select_share=0.1, prior=prior)
    assert after.round_sigma > alone.round_sigma
    assert _eps(after, 1e-9, prior) <= 1.0


def test_shares_shape_the_noise():
    a = plan_marginals(1.0, 1e-9, first_count=6, rounds=8, first_share=0.1, select_share=0.1)
    b = plan_marginals(1.0, 1e-9, first_count=6, rounds=8, first_share=0.3, select_share=0.1)
    assert b.first_sigma < a.first_sigma and b.round_sigma > a.round_sigma


def test_no_rounds_spends_everything_on_one_way_marginals():
    plan = plan_marginals(1.0, 1e-9, first_count=3, rounds=0, first_share=0.3,
                          select_share=0.3)
    assert [n for n, _ in plan.events()] == ["one-way marginals"]
    assert _eps(plan, 1e-9) > 0.995


def test_invalid_shares_and_exhausted_budget_raise():
    with pytest.raises(PrivacyError):
        plan_marginals(1.0, 1e-9, first_count=3, rounds=2, first_share=0.6, select_share=0.5)
    with pytest.raises(PrivacyError, match="already uses"):
        plan_marginals(1.0, 1e-9, first_count=3, rounds=2, first_share=0.3, select_share=0.3,
                       prior=(PureDPEvent(2.0),))
