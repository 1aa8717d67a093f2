"""AIM: adaptive, iterative selection and measurement of marginals.

McKenna, Mullins, Sheldon and Miklau, "AIM: An Adaptive and Iterative Mechanism for
Differentially Private Synthetic Data", VLDB 2022. Differences from the paper, each chosen so
that the accounted epsilon is exactly the planned one and the fit is fast:

* the number of rounds and the noise of every round are fixed before the data is touched
  (no data-dependent annealing), and the budget is set by PLD accounting
  (:mod:`~dpsynth.synthesizers.marginal.plan`);
* the one-way marginals get their own, larger share of the budget (40 %; AIM measures them
  at the noise of every round): they weigh on every larger marginal at small epsilon; and
  selection a smaller one (5 % against 10 %): the PLD accountant charges each exponential
  mechanism as a pure-DP mechanism, about four times its zCDP cost. Both tuned on Adult;
* rare values are merged after the one-way measurements, as in MST (free post-processing);
* the model is re-fitted with a few warm-started mirror-descent steps per round, and fully
  once at the end; rows are drawn with rounded ancestral sampling.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from dpsynth.accounting import Budget, Event
from dpsynth.errors import param_error
from dpsynth.synthesizers.base import register
from dpsynth.synthesizers.marginal.common import MarginalSynthesizer, _Run
from dpsynth.synthesizers.marginal.counts import CountSource
from dpsynth.synthesizers.marginal.estimate import FittedModel, fit_model
from dpsynth.synthesizers.marginal.measure import Measurement, measure
from dpsynth.synthesizers.marginal.plan import MarginalPlan, plan_marginals, share_problems
from dpsynth.synthesizers.marginal.select import (
    aim_scores,
    candidates,
    eligible_candidates,
    exponential_mechanism,
    workload_cliques,
)

logger = logging.getLogger(__name__)


def default_rounds(n_columns: int, epsilon: float) -> int:
    """Rounds of AIM when not given: ``d * (2 + 1.2 log10(epsilon))``, clipped to ``[d, 4d]``.

    Tuned on Adult (14 columns): 20, 30 and 30-45 rounds were best at epsilon 0.3, 1 and 3.
    More budget pays for more (and larger) measured marginals.
    """
    if not math.isfinite(epsilon):
        return 4 * n_columns
    scale = min(4.0, max(1.0, 2.0 + 1.2 * math.log10(epsilon)))
    return max(1, round(n_columns * scale))


@register
class AIMSynthesizer(MarginalSynthesizer):
    """AIM-style marginal synthesizer, the default for tables.

    Parameters
    ----------
    degree:
        The workload is every ``degree``-way marginal; candidates are their subsets.
    rounds:
        Selection rounds (``None``: :func:`default_rounds`).
    max_model_cells:
        Cap on the junction tree's size in cells; a round may use the share of the cap
        proportional to the measurements made so far (as AIM does with its budget).
    select_share, first_share:
        Shares of the zCDP-style plan spent on all selections and on the one-way marginals
        (the rest measures the selected marginals).
    round_iterations:
        Warm-started mirror-descent iterations after each round.
    """

    name = "aim"
    defaults_tuned_on = ("Adult (benchmarks/data/adult.csv), the project's tuning table: "
                         "rounds and budget shares (benchmarks/bench_marginal.py --params)")

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, n_bins: int = 32, compress: bool = True,
                 final_iterations: int = 300, degree: int = 2, rounds: int | None = None,
                 max_model_cells: int = 250_000, select_share: float = 0.05,
                 first_share: float = 0.4, round_iterations: int = 20,
                 keep_measurements: bool = False):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction,
                         n_bins=n_bins, compress=compress, final_iterations=final_iterations,
                         keep_measurements=keep_measurements)
        self.degree = degree
        self.rounds = rounds
        self.max_model_cells = max_model_cells
        self.select_share = select_share
        self.first_share = first_share
        self.round_iterations = round_iterations

    def _param_problems(self) -> list[str]:
        out = super()._param_problems()
        for name, low in (("degree", 1), ("max_model_cells", 1), ("round_iterations", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                out.append(str(param_error(name, f"an integer >= {low}", v, "AIMSynthesizer")))
        r = self.rounds
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, np.integer))
                              or r < 1):
            out.append(str(param_error("rounds", "None or an integer >= 1", r,
                                       "AIMSynthesizer")))
        return out + share_problems(self.select_share, self.first_share, "AIMSynthesizer")

    def _resolved(self) -> dict[str, Any]:
        out = super()._resolved()
        if hasattr(self, "codecs_"):  # fitted: one column per codec
            out["rounds"] = self._n_rounds(len(self.codecs_))
        return out

    def _n_rounds(self, n_columns: int) -> int:
        if self.rounds is not None:
            return int(self.rounds)
        return default_rounds(n_columns, float(self.epsilon))

    def _make_plan(self, n_columns: int, budget: Budget, prior: tuple[Event, ...]
                   ) -> MarginalPlan:
        return plan_marginals(budget.epsilon, budget.delta, first_count=n_columns,
                              rounds=self._n_rounds(n_columns),
                              first_share=float(self.first_share),
                              select_share=float(self.select_share), prior=prior)

    def _measure_more(self, codes: CountSource, domain: tuple[int, ...],
                      measured: list[Measurement], run: _Run
                      ) -> tuple[list[Measurement], FittedModel | None]:
        noise, sigma, select_eps = run.noise, run.round_sigma, run.select_epsilon
        cands = candidates(workload_cliques(len(domain), int(self.degree)))
        sensitivity = max(cands.values())
        answers = dict(zip(cands, codes.counts(list(cands), domain), strict=True))
        model = fit_model(domain, measured, self.total_, iterations=int(self.round_iterations))
        rounds = self._n_rounds(len(domain))
        self.selection_log_: list[dict[str, object]] = []
        with run.spend("marginal selection"), run.spend("selected marginals"):
            for t in range(rounds):
                cap = self.max_model_cells * (len(domain) + t + 1) / (len(domain) + rounds)
                eligible = eligible_candidates(cands, model, cap)
                scores = aim_scores(cands, answers, model, self.total_, sigma, eligible)
                chosen = eligible[exponential_mechanism(scores, select_eps, sensitivity, noise)]
                measured.append(measure(codes, chosen, domain, sigma, noise))
                model = fit_model(domain, measured, self.total_,
                                  iterations=int(self.round_iterations), warm=model,
                                  structure=model.tree.cliques)
                size = model.tree.size(domain)
                if size > cap:
                    raise RuntimeError(f"internal error: model size {size} over cap {cap}")
                self.selection_log_.append({"attrs": chosen, "cells": size, "cap": cap})
                logger.debug("AIM round %d/%d: measured %s (model %d cells)", t + 1, rounds,
                             chosen, size)
        return measured, model
