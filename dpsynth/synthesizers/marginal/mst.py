"""MST: one-way marginals, a maximum spanning tree of pairs, one graphical model.

McKenna, Miklau and Sheldon, "Winning the NIST Contest: A scalable and general approach to
differentially private synthetic data", Journal of Privacy and Confidentiality, 2021. A third
of the (zCDP-style) budget measures the one-way marginals, a third selects ``d - 1`` pairs
forming a spanning tree (each edge by the exponential mechanism on how badly the independence
model fits that pair), and a third measures the selected pairs. The plan is sized by PLD
accounting (:mod:`~dpsynth.synthesizers.marginal.plan`). Fast, and a baseline for AIM.
"""

from __future__ import annotations

import itertools

import numpy as np

from dpsynth.accounting import Budget, Event
from dpsynth.synthesizers.base import register
from dpsynth.synthesizers.marginal.common import MarginalSynthesizer, _Run
from dpsynth.synthesizers.marginal.counts import CountSource
from dpsynth.synthesizers.marginal.estimate import FittedModel, fit_model
from dpsynth.synthesizers.marginal.measure import Measurement, measure
from dpsynth.synthesizers.marginal.plan import MarginalPlan, plan_marginals
from dpsynth.synthesizers.marginal.select import mst_edges

_THIRD = 1.0 / 3.0


@register
class MSTSynthesizer(MarginalSynthesizer):
    """MST marginal synthesizer (fast baseline). Parameters as :class:`MarginalSynthesizer`."""

    name = "mst"

    def _make_plan(self, n_columns: int, budget: Budget, prior: tuple[Event, ...]
                   ) -> MarginalPlan:
        return plan_marginals(budget.epsilon, budget.delta, first_count=n_columns,
                              rounds=n_columns - 1, first_share=_THIRD,
                              select_share=_THIRD, prior=prior)

    def _measure_more(self, codes: CountSource, domain: tuple[int, ...],
                      measured: list[Measurement], run: _Run
                      ) -> tuple[list[Measurement], FittedModel | None]:
        d = len(domain)
        if d < 2:
            return measured, None
        noise = run.noise
        independent = fit_model(domain, measured, self.total_, iterations=50)
        errors = {}
        pairs = list(itertools.combinations(range(d), 2))
        exact = dict(zip(pairs, codes.counts(pairs, domain), strict=True))  # one pass
        for a, b in pairs:
            guess = self.total_ * np.multiply.outer(independent.project((a,)),
                                                    independent.project((b,)))
            errors[(a, b)] = float(np.abs(exact[(a, b)] - guess).sum())
        with run.spend("marginal selection"):
            edges = mst_edges(errors, d, run.select_epsilon, noise)
        with run.spend("selected marginals"):
            measured += [measure(codes, e, domain, run.round_sigma, noise) for e in edges]
        self.selection_log_ = [{"attrs": e} for e in edges]
        return measured, None
