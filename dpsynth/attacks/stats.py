"""The statistics behind every attack's verdict: intervals for rates and ROC figures.

Pure functions of numbers and NumPy arrays (numpy and scipy only; no attack, no table):

* Wilson (1927) score interval for one proportion, and the exact Clopper & Pearson
  (*Biometrika* 26:404, 1934) one-sided bounds.
* Newcombe's hybrid score interval for the difference of two proportions, independent
  (*Statistics in Medicine* 17:873, 1998, method 10) or paired (*Statistics in Medicine*
  17:2635, 1998, method 10).
* The privacy risk of Giomi et al. (PoPETs 2023), ``(success - control) / (1 - control)``,
  with the difference interval carried through, and the one-sided p-value for "risk above a
  threshold" that inverts that interval.
* Holm's step-down rule, which keeps an audit's family-wise false-alarm rate at its level
  however many attacks it runs.
* The ROC curve of a membership score, its AUC (Mann-Whitney) with the Hanley & McNeil
  (*Radiology* 143:29, 1982) interval, and the TPR at a low FPR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

from dpsynth.errors import param_error

Interval = tuple[float, float]


# -- one proportion --------------------------------------------------------------------------
def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile for ``confidence`` (1.96 for 0.95)."""
    if not 0 < confidence < 1:
        raise param_error("confidence", "a float in (0, 1)", confidence)
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion (Wilson, JASA 1927); (0, 1) for n = 0."""
    return _wilson(successes, n, z_value(confidence))


def _wilson(successes: int, n: int, z: float) -> Interval:
    """Wilson interval at the normal quantile ``z``."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, min(p, center - half)), min(1.0, max(p, center + half)))


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` lower confidence bound on a binomial proportion.

    The exact (Clopper and Pearson, Biometrika 1934) bound: the ``alpha`` quantile of
    ``Beta(k, n - k + 1)``; 0 when there is no success or no trial.
    """
    if trials <= 0 or successes <= 0:
        return 0.0
    return float(stats.beta.ppf(alpha, successes, trials - successes + 1))


def clopper_pearson_upper(successes: int, trials: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` upper confidence bound on a binomial proportion (1 at ``k = n``)."""
    if trials <= 0 or successes >= trials:
        return 1.0
    return float(stats.beta.ppf(1 - alpha, successes + 1, trials - successes))


# -- two proportions -------------------------------------------------------------------------
def difference_interval(hits: ArrayLike, control_hits: ArrayLike, *, paired: bool = False,
                        confidence: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval for ``mean(hits) - mean(control_hits)``.

    With ``paired=True`` the two arrays are outcomes on matched pairs and the Wilson limits are
    combined with the correlation of the pair outcomes (Newcombe 1998, paired method 10).
    Either arm empty: ``(-1, 1)``.
    """
    return _difference(np.asarray(hits, dtype=bool), np.asarray(control_hits, dtype=bool),
                       paired, z_value(confidence))


def _difference(x: NDArray[np.bool_], y: NDArray[np.bool_], paired: bool, z: float) -> Interval:
    """Newcombe's interval at the normal quantile ``z``."""
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        return (-1.0, 1.0)
    p1, p2 = float(x.mean()), float(y.mean())
    l1, u1 = _wilson(int(x.sum()), n1, z)
    l2, u2 = _wilson(int(y.sum()), n2, z)
    phi = pair_correlation(x, y) if paired else 0.0
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    d = p1 - p2
    return (max(-1.0, d - below), min(1.0, d + above))


def pair_correlation(x: NDArray[np.bool_], y: NDArray[np.bool_]) -> float:
    """Phi coefficient of paired binary outcomes (0 when a margin is constant)."""
    if x.size != y.size:
        raise param_error("control_hits", f"paired outcomes of the same length {x.size}",
                          y.size, "difference_interval")
    a = float(np.sum(x & y))
    b = float(np.sum(x & ~y))
    c = float(np.sum(~x & y))
    d = float(np.sum(~x & ~y))
    denom = math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    return 0.0 if denom == 0 else (a * d - b * c) / denom


def risk_interval(success: float, control: float, difference: Interval) -> tuple[float, Interval]:
    """The risk ``(success - control) / (1 - control)`` and its interval (Giomi et al. 2023).

    ``difference`` is an interval for ``success - control``; it is divided by ``1 - control``.
    When the control rate is 1 nothing is left to add: the risk is 0, its interval the
    difference interval widened to hold 0.
    """
    lo, hi = difference
    room = 1.0 - control
    if room <= 0:
        return 0.0, (min(lo, 0.0), max(hi, 0.0))
    value = float(np.clip((success - control) / room, -1.0, 1.0))
    return value, (max(-1.0, lo / room), min(1.0, hi / room))


def risk_p_value(hits: ArrayLike, control_hits: ArrayLike, threshold: float, *,
                 paired: bool = False) -> float:
    """One-sided p-value for "the risk exceeds ``threshold``", by inverting the risk interval.

    The one-sided ``1 - p`` lower bound of the risk is the lower end of the two-sided
    ``1 - 2p`` interval (Newcombe's difference interval divided by ``1 - control``, as in
    :func:`risk_interval`). The p-value is the ``p`` at which that lower bound meets
    ``threshold``: the smallest one-sided level at which the risk interval clears it. So an
    attack whose two-sided ``confidence`` interval lies above ``threshold`` has
    ``p < (1 - confidence) / 2``, and the test agrees with the per-attack verdict. When the
    risk estimate itself is at or below ``threshold`` no level clears it: the p-value is 1
    (conservative; the exact value is at least 1/2).
    """
    x = np.asarray(hits, dtype=bool)
    y = np.asarray(control_hits, dtype=bool)
    if x.size == 0 or y.size == 0:
        return 1.0
    control = float(y.mean())
    room = 1.0 - control
    if room <= 0 or (float(x.mean()) - control) / room <= threshold:
        return 1.0

    def margin(z: float) -> float:
        return _difference(x, y, paired, z)[0] / room - threshold

    top = 40.0  # normal tail of about 1e-350: beyond double precision
    if margin(top) > 0:
        return 0.0
    z_star = float(optimize.brentq(margin, 0.0, top, xtol=1e-10))
    return float(stats.norm.sf(z_star))


def holm_rejections(p_values: Sequence[float], alpha: float) -> tuple[bool, ...]:
    """Holm's (Scand. J. Statist. 6:65, 1979) step-down test of several hypotheses at once.

    Sort the p-values; reject the ``i``-th smallest (``i`` from 0) while it is at most
    ``alpha / (m - i)``, and stop at the first that is not. The chance of rejecting any true
    hypothesis stays at most ``alpha`` whatever the dependence between the tests.
    """
    if not 0 < alpha < 1:
        raise param_error("alpha", "a float in (0, 1)", alpha, "holm_rejections")
    m = len(p_values)
    rejected = [False] * m
    for step, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        if p_values[index] > alpha / (m - step):
            break
        rejected[index] = True
    return tuple(rejected)


# -- ROC -------------------------------------------------------------------------------------
def roc_points(member_scores: ArrayLike, control_scores: ArrayLike
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Full ROC curve ``(fpr, tpr)`` of a score that is higher for members (ties grouped)."""
    pos = np.asarray(member_scores, dtype=float)
    neg = np.asarray(control_scores, dtype=float)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # last index of each score
    tpr = np.r_[0.0, np.cumsum(y)[last] / pos.size]
    fpr = np.r_[0.0, np.cumsum(~y)[last] / neg.size]
    return fpr, tpr


def auc_interval(member_scores: ArrayLike, control_scores: ArrayLike,
                 confidence: float = 0.95) -> tuple[float, Interval]:
    """Mann-Whitney AUC (ties count one half) with the Hanley & McNeil (1982) interval."""
    pos = np.asarray(member_scores, dtype=float)
    neg = np.asarray(control_scores, dtype=float)
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    auc = float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (pos.size - 1) * (q1 - auc * auc)
           + (neg.size - 1) * (q2 - auc * auc)) / (pos.size * neg.size)
    half = z_value(confidence) * math.sqrt(max(var, 0.0))
    return auc, (max(0.0, auc - half), min(1.0, auc + half))


def thin_indices(fpr: NDArray[np.float64], n_points: int = 300) -> NDArray[np.intp]:
    """About ``n_points`` indices of a ROC curve, dense at low FPR, ends kept."""
    if fpr.size <= n_points:
        return np.arange(fpr.size)
    grid = np.unique(np.r_[np.linspace(0, 1, n_points // 2), np.logspace(-4, 0, n_points // 2)])
    picks = np.searchsorted(fpr, grid, side="right") - 1
    return np.unique(np.r_[0, np.clip(picks, 0, fpr.size - 1), fpr.size - 1])


def tpr_at_fpr(fpr: NDArray[np.float64], tpr: NDArray[np.float64], alpha: float,
               n_controls: int) -> float | None:
    """Largest TPR with FPR at most ``alpha``; None when the controls cannot resolve ``alpha``."""
    if n_controls * alpha < 1:
        return None
    return float(tpr[fpr <= alpha + 1e-12].max())


__all__ = [
    "Interval",
    "auc_interval",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "difference_interval",
    "holm_rejections",
    "pair_correlation",
    "risk_interval",
    "risk_p_value",
    "roc_points",
    "thin_indices",
    "tpr_at_fpr",
    "wilson_interval",
    "z_value",
]
