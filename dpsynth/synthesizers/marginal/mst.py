"""MST: one-way marginals, a maximum spanning tree of pairs, one graphical model.

McKenna, Miklau and Sheldon, "Winning the NIST Contest: A scalable and general approach to
differentially private synthetic data", Journal of Privacy and Confidentiality, 2021. Part of
the (zCDP-style) budget measures the one-way marginals, part selects ``d - 1`` pairs forming a
spanning tree (each edge by the exponential mechanism on how badly the independence model fits
that pair), and the rest measures the selected pairs. The plan is sized by PLD accounting
(:mod:`~dpsynth.synthesizers.marginal.plan`). Fast, and a baseline for AIM.

Difference from the paper: MST splits its budget in thirds; here the selection gets 5 % and
the one-way marginals 40 % (``select_share``, ``first_share``). The PLD accountant charges
each exponential mechanism as a pure-DP mechanism, about four times its zCDP cost, so a third
on selection leaves the measurements only about 0.7 of epsilon (all a white-box audit of them
can show); at 5 % they carry about 0.9 of it, and on Adult the 2- and 3-way TVD are lower at
epsilon 1, 4 and 10 with the TSTR AUC unchanged within noise (2 % cost about 0.02 AUC at
epsilon 1). Tuned on Adult (``benchmarks/data/adult.csv``, the project's tuning table;
``benchmarks/bench_marginal.py --params``), as AIM's shares are.
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
from dpsynth.synthesizers.marginal.plan import MarginalPlan, plan_marginals, share_problems
from dpsynth.synthesizers.marginal.select import mst_edges


@register
class MSTSynthesizer(MarginalSynthesizer):
    """MST marginal synthesizer (fast baseline).

    Parameters
    ----------
    select_share, first_share:
        Shares of the zCDP-style plan spent on the selection of the ``d - 1`` pairs and on
        the one-way marginals (the rest measures the selected pairs). The paper's split is
        ``(1/3, 1/3)``; see the module docstring for the defaults.

    The other parameters are :class:`MarginalSynthesizer`'s.
    """

    name = "mst"
    defaults_tuned_on = ("Adult (benchmarks/data/adult.csv), the project's tuning table: "
                         "select_share and first_share (benchmarks/bench_marginal.py --params)")

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, n_bins: int = 32, compress: bool = True,
                 final_iterations: int = 300, select_share: float = 0.05,
                 first_share: float = 0.4, keep_measurements: bool = False):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction,
                         n_bins=n_bins, compress=compress, final_iterations=final_iterations,
                         keep_measurements=keep_measurements)
        self.select_share = select_share
        self.first_share = first_share

    def _param_problems(self) -> list[str]:
        return super()._param_problems() + share_problems(
            self.select_share, self.first_share, type(self).__name__)

    def _make_plan(self, n_columns: int, budget: Budget, prior: tuple[Event, ...]
                   ) -> MarginalPlan:
        return plan_marginals(budget.epsilon, budget.delta, first_count=n_columns,
                              rounds=n_columns - 1, first_share=float(self.first_share),
                              select_share=float(self.select_share), prior=prior)

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
