"""Empirical lower bounds on epsilon: what an attack's success proves about a generator.

A mechanism ``M`` is (epsilon, delta)-DP when, for neighbouring datasets ``D`` and
``D' = D + {x}`` and every set of outcomes ``S``, ``P[M(D') in S] <= e^eps P[M(D) in S] + delta``
and the same with ``D`` and ``D'`` swapped. A membership test that says "x was in" on ``S`` has
true-positive rate ``TPR = P[M(D') in S]`` and false-positive rate ``FPR = P[M(D) in S]``, so
(Kairouz, Oh and Viswanath, ICML 2015, the hypothesis-testing view of DP)::

    eps >= ln((TPR - delta) / FPR)      and      eps >= ln((TNR - delta) / FNR)

Two ways to turn observed guesses into a bound that holds with a stated confidence:

* **Many runs** (Jagielski, Ullman and Oprea, "Auditing Differentially Private Machine
  Learning: How Private is Private SGD?", NeurIPS 2020, Algorithm 2; Nasr, Song, Thakurta,
  Papernot and Carlini, "Adversary Instantiation", IEEE S&P 2021): the generator is trained
  many times with and without the target, and the rates are replaced by one-sided
  Clopper-Pearson (Biometrika 1934) bounds: a lower bound on the TPR and an upper bound on the
  FPR, each at level ``alpha / 2`` so that both hold together with probability ``1 - alpha``.
  :func:`epsilon_lower_bound`.
* **One run** (Steinke, Nasr and Jagielski, "Privacy Auditing with One (1) Training Run",
  NeurIPS 2023, arXiv:2305.08846): ``m`` canaries are each included independently with
  probability 1/2, the generator is trained once, and the auditor guesses the membership of
  ``r`` of them. Their main theorem bounds the number ``W`` of correct guesses of any auditor
  against an (epsilon, delta)-DP mechanism::

      P[W >= v] <= f(v) + 2 m delta max_{i = 1..v} (f(v - i) - f(v)) / i,
      f(v) = P[Binomial(r, e^eps / (1 + e^eps)) >= v]

  (with ``delta = 0`` it says ``W`` is dominated by the binomial: each guess is no better than
  eps-DP randomised response). The audit reports the largest epsilon whose p-value for the
  observed ``v`` is below ``1 - confidence``. :func:`one_run_epsilon_lower`.

Everything here is plain floats in, floats out, so it can be checked against the papers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

from dpsynth.attacks.stats import clopper_pearson_lower, clopper_pearson_upper
from dpsynth.errors import ParameterError, param_error

_BISECTIONS = 60


def _check_level(confidence: float, owner: str) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or \
            not 0 < confidence < 1:
        raise param_error("confidence", "a float in (0, 1)", confidence, owner)


def _check_delta(delta: float, owner: str) -> None:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 <= delta < 1:
        raise param_error("delta", "a float in [0, 1)", delta, owner)


def _log_ratio(numerator: float, denominator: float) -> float:
    if numerator <= 0 or denominator <= 0:
        return 0.0
    return max(0.0, math.log(numerator / denominator))


def epsilon_lower_bound(tp: int, fp: int, tn: int, fn: int, *, delta: float = 0.0,
                        confidence: float = 0.95) -> float:
    """Lower bound on epsilon from a membership test's counts (many-run audit).

    Parameters
    ----------
    tp, fn:
        Runs trained *with* the target that the test called member / non-member.
    fp, tn:
        Runs trained *without* the target that the test called member / non-member.
    delta:
        The delta of the (epsilon, delta) claim under test.
    confidence:
        Probability that the bound holds: the TPR lower bound and the FPR upper bound are
        each taken at one-sided level ``(1 - confidence) / 2`` (Jagielski et al. 2020,
        Algorithm 2), and both forms of the DP inequality use those same two bounds.

    Returns
    -------
    float
        ``max(0, ln((TPR_lo - delta) / FPR_hi), ln((TNR_lo - delta) / FNR_hi))``. The test's
        threshold must have been chosen without looking at these counts.
    """
    counts = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    bad = {k: v for k, v in counts.items()
           if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0}
    if bad:
        raise ParameterError(" ".join(str(param_error(k, "a non-negative integer", v,
                                                      "epsilon_lower_bound"))
                                      for k, v in bad.items()))
    _check_level(confidence, "epsilon_lower_bound")
    _check_delta(delta, "epsilon_lower_bound")
    alpha = (1 - confidence) / 2
    tpr_lo = clopper_pearson_lower(int(tp), int(tp + fn), alpha)
    fpr_hi = clopper_pearson_upper(int(fp), int(fp + tn), alpha)
    if tp + fn == 0 or fp + tn == 0:
        return 0.0
    return max(_log_ratio(tpr_lo - delta, fpr_hi), _log_ratio(1 - fpr_hi - delta, 1 - tpr_lo))


def epsilon_ceiling(n_with: int, n_without: int, *, delta: float = 0.0,
                    confidence: float = 0.95) -> float:
    """The bound a perfect test reaches with this many runs: the most such an audit can show."""
    return epsilon_lower_bound(n_with, 0, n_without, 0, delta=delta, confidence=confidence)


def best_threshold(member_scores: np.ndarray, other_scores: np.ndarray, *,
                   delta: float = 0.0, confidence: float = 0.95) -> float:
    """The score threshold (guess member when ``score >= t``) maximising the bound.

    Meant for *calibration* runs: applying the chosen threshold to fresh runs keeps their bound
    honest, as in Jagielski et al. (2020), who pick the threshold on one set of trained models
    and count on another.
    """
    pos = np.sort(np.asarray(member_scores, dtype=float))
    neg = np.sort(np.asarray(other_scores, dtype=float))
    candidates = np.unique(np.concatenate([pos, neg]))
    if candidates.size == 0:
        return 0.5
    best, best_key = 0.5, (-1.0, -2.0)
    for t in candidates:
        tp = int(pos.size - np.searchsorted(pos, t, side="left"))
        fp = int(neg.size - np.searchsorted(neg, t, side="left"))
        eps = epsilon_lower_bound(tp, fp, int(neg.size - fp), int(pos.size - tp),
                                  delta=delta, confidence=confidence)
        # the highest bound; among equal bounds (often all 0) the best TPR - FPR
        key = (round(eps, 12), tp / max(pos.size, 1) - fp / max(neg.size, 1))
        if key > best_key:
            best, best_key = float(t), key
    return best


# -- one run (Steinke, Nasr and Jagielski 2023) ---------------------------------------------
def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P-value of ``v`` correct guesses out of ``r`` under an (epsilon, delta)-DP null.

    Steinke, Nasr and Jagielski (NeurIPS 2023), main theorem: with ``m`` canaries each
    included independently with probability 1/2 and ``r`` guesses, the number of correct
    guesses satisfies ``P[W >= v] <= f(v) + 2 m delta max_{i=1..v} (f(v-i) - f(v)) / i`` with
    ``f(x) = P[Binomial(r, e^eps / (1 + e^eps)) >= x]``.
    """
    if not 0 <= v <= r <= m:
        raise ParameterError(f"one_run_p_value needs 0 <= v <= r <= m; got v={v}, r={r}, m={m}")
    q = float(special.expit(epsilon))  # accuracy of epsilon-DP randomised response

    def tail(x: np.ndarray | int) -> np.ndarray:
        return np.asarray(stats.binom.sf(np.asarray(x) - 1, r, q), dtype=float)

    beta = float(tail(v))
    if delta == 0 or v == 0:
        return min(1.0, beta)
    i = np.arange(1, v + 1)
    alpha = float(np.max((tail(v - i) - beta) / i))
    return min(1.0, beta + 2 * m * delta * alpha)


def one_run_epsilon_lower(m: int, r: int, v: int, *, delta: float = 0.0,
                          confidence: float = 0.95) -> float:
    """Largest epsilon rejected by :func:`one_run_p_value` at level ``1 - confidence``.

    0 when even epsilon = 0 is not rejected. The p-value grows with epsilon, so the bound is
    found by doubling then bisection (to about 1e-6 relative precision).
    """
    _check_level(confidence, "one_run_epsilon_lower")
    _check_delta(delta, "one_run_epsilon_lower")
    significance = 1 - confidence
    if one_run_p_value(m, r, v, 0.0, delta) >= significance:
        return 0.0
    lo, hi = 0.0, 1.0
    while one_run_p_value(m, r, v, hi, delta) < significance:
        lo, hi = hi, 2 * hi
        if hi > 1e4:  # every guess right with delta = 0 and r huge: report what was proven
            return lo
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        if one_run_p_value(m, r, v, mid, delta) < significance:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class EpsilonBound:
    """One empirical lower bound on epsilon, with what it was computed from.

    Attributes
    ----------
    epsilon:
        The lower bound (0 when the audit proves nothing).
    method:
        ``"clopper_pearson"`` (many runs) or ``"one_run"``.
    confidence:
        Probability with which the bound holds (after any multiple-testing correction).
    delta:
        The delta it was computed at.
    ceiling:
        The bound a perfect attack would have reached with the same number of trials.
    counts:
        ``tp/fp/tn/fn`` (many runs) or ``m/r/v`` (one run).
    label:
        What was attacked (a target id, or the canary set).
    """

    epsilon: float
    method: str
    confidence: float
    delta: float
    ceiling: float
    counts: Mapping[str, int] = field(default_factory=dict)
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "method": self.method, "confidence": self.confidence,
                "delta": self.delta, "ceiling": self.ceiling, "counts": dict(self.counts),
                "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpsilonBound:
        return cls(float(data["epsilon"]), str(data["method"]), float(data["confidence"]),
                   float(data["delta"]), float(data["ceiling"]),
                   {str(k): int(v) for k, v in dict(data.get("counts", {})).items()},
                   str(data.get("label", "")))
