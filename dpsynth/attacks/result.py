"""Attack results and the statistics behind them.

Every attack is scored the same way (Giomi et al., "A Unified Framework for Quantifying Privacy
Risk in Synthetic Data", PoPETs 2023): the attack is run against *targets* (training rows) and,
identically, against *controls* (rows of the same population never used for training). Its
success rate on the targets is compared with its rate on the controls, and the privacy risk is
the part of the success the synthetic data adds beyond what it reveals about the population::

    risk = (attack - control) / (1 - control)

Confidence intervals: Wilson (1927) score intervals for each rate, and Newcombe's hybrid score
interval for the difference of two rates, independent (Newcombe, *Statistics in Medicine* 17:873,
1998, method 10) or paired (Newcombe, *Statistics in Medicine* 17:2635, 1998, method 10). The
risk interval is the difference interval divided by ``1 - control``.

**Verdict.** An attack flags a leak when the *lower* end of the risk interval is above
``threshold``. Under no leak the attack and control rates are equal, so the lower end of a
two-sided 95% interval exceeds 0 with probability about 2.5%, and exceeds a positive threshold
less often: the threshold bounds the false-positive rate on data that does not leak while
letting small, real effects on large tables through unflagged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from dpsynth.attacks.threat import ThreatModel
from dpsynth.errors import ParameterError, param_error

LEAK = "leak"
NO_RISK = "no risk found"


# -- statistics -----------------------------------------------------------------------------
def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile for ``confidence`` (1.96 for 0.95)."""
    if not 0 < confidence < 1:
        raise param_error("confidence", "a float in (0, 1)", confidence)
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson, JASA 1927)."""
    if n <= 0:
        return (0.0, 1.0)
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, min(p, center - half)), min(1.0, max(p, center + half)))


def difference_interval(hits: np.ndarray, control_hits: np.ndarray, *, paired: bool = False,
                        confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``mean(hits) - mean(control_hits)``.

    With ``paired=True`` the two arrays are outcomes on matched pairs and the Wilson limits are
    combined with the correlation of the pair outcomes (Newcombe 1998, paired method 10).
    """
    hits = np.asarray(hits, dtype=bool)
    control_hits = np.asarray(control_hits, dtype=bool)
    n1, n2 = hits.size, control_hits.size
    if n1 == 0 or n2 == 0:
        return (-1.0, 1.0)
    p1, p2 = hits.mean(), control_hits.mean()
    l1, u1 = wilson_interval(int(hits.sum()), n1, confidence)
    l2, u2 = wilson_interval(int(control_hits.sum()), n2, confidence)
    phi = _pair_correlation(hits, control_hits) if paired else 0.0
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    d = float(p1 - p2)
    return (max(-1.0, d - below), min(1.0, d + above))


def _pair_correlation(x: np.ndarray, y: np.ndarray) -> float:
    if x.size != y.size:
        raise param_error("control_hits", f"paired outcomes of the same length {x.size}",
                          y.size, "difference_interval")
    a = float(np.sum(x & y))
    b = float(np.sum(x & ~y))
    c = float(np.sum(~x & y))
    d = float(np.sum(~x & ~y))
    denom = math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    return 0.0 if denom == 0 else (a * d - b * c) / denom


@dataclass(frozen=True)
class RocCurve:
    """A receiver operating characteristic curve (members positive, controls negative).

    ``fpr``/``tpr`` are thinned to a few hundred points for storage and plotting; ``auc`` and
    the TPR at low FPR are computed on the full curve.
    """

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    auc: float
    auc_ci: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"fpr": list(self.fpr), "tpr": list(self.tpr), "auc": self.auc,
                "auc_ci": list(self.auc_ci)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RocCurve:
        return cls(tuple(data["fpr"]), tuple(data["tpr"]), float(data["auc"]),
                   (float(data["auc_ci"][0]), float(data["auc_ci"][1])))


def roc_curve(member_scores: np.ndarray, control_scores: np.ndarray,
              confidence: float = 0.95) -> tuple[RocCurve, np.ndarray, np.ndarray]:
    """ROC of a score that is higher for members; returns the thinned curve and the full one.

    The AUC is the Mann-Whitney statistic (ties count one half) with the Hanley & McNeil
    (*Radiology* 1982) standard error.
    """
    pos = np.asarray(member_scores, dtype=float)
    neg = np.asarray(control_scores, dtype=float)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # last index of each score
    tpr = np.r_[0.0, np.cumsum(y)[last] / pos.size]
    fpr = np.r_[0.0, np.cumsum(~y)[last] / neg.size]
    ranks = stats.rankdata(scores)
    auc = float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (pos.size - 1) * (q1 - auc * auc)
           + (neg.size - 1) * (q2 - auc * auc)) / (pos.size * neg.size)
    half = z_value(confidence) * math.sqrt(max(var, 0.0))
    keep = _thin(fpr)
    curve = RocCurve(tuple(np.round(fpr[keep], 6)), tuple(np.round(tpr[keep], 6)), auc,
                     (max(0.0, auc - half), min(1.0, auc + half)))
    return curve, fpr, tpr


def _thin(fpr: np.ndarray, n_points: int = 300) -> np.ndarray:
    if fpr.size <= n_points:
        return np.arange(fpr.size)
    grid = np.unique(np.r_[np.linspace(0, 1, n_points // 2), np.logspace(-4, 0, n_points // 2)])
    picks = np.searchsorted(fpr, grid, side="right") - 1
    return np.unique(np.r_[0, np.clip(picks, 0, fpr.size - 1), fpr.size - 1])


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, alpha: float, n_controls: int) -> float | None:
    """Largest TPR with FPR at most ``alpha``; None when the controls cannot resolve ``alpha``."""
    if n_controls * alpha < 1:
        return None
    return float(tpr[fpr <= alpha + 1e-12].max())


# -- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    """A success rate with its confidence interval."""

    value: float
    ci: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": list(self.ci)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rate:
        return cls(float(data["value"]), (float(data["ci"][0]), float(data["ci"][1])))

    @classmethod
    def of(cls, hits: np.ndarray, confidence: float) -> Rate:
        hits = np.asarray(hits, dtype=bool)
        value = float(hits.mean()) if hits.size else 0.0
        return cls(value, wilson_interval(int(hits.sum()), hits.size, confidence))


@dataclass(frozen=True)
class AttackResult:
    """The outcome of one attack, in the JSON format shared by audits and release gates.

    Attributes
    ----------
    attack:
        Attack name (a key of :data:`dpsynth.attacks.ATTACKS`).
    threat_model:
        What the attacker had and whom it targeted.
    n_targets:
        Number of attacks on training records (the control arm has as many, or nearly).
    success, control, baseline:
        Success rate on training targets, on controls, and of a naive attacker, each with a
        Wilson interval.
    risk:
        ``(success - control) / (1 - control)`` with its interval.
    threshold, confidence:
        The verdict rule: ``leak`` when ``risk.ci[0] > threshold``.
    metrics:
        Attack-specific figures (AUC, TPR at low FPR, tolerances...), JSON scalars only.
    roc:
        ROC curve for score-based attacks.
    exposed_row_ids:
        Row ids (never values) of the training records the attack exposed most.
    """

    attack: str
    threat_model: ThreatModel
    n_targets: int
    success: Rate
    control: Rate
    baseline: Rate
    risk: Rate
    threshold: float
    confidence: float
    metrics: Mapping[str, float | int | str | None] = field(default_factory=dict)
    roc: RocCurve | None = None
    exposed_row_ids: tuple[int | str, ...] = ()
    notes: str = ""
    seconds: float | None = None

    @property
    def leak(self) -> bool:
        return self.risk.ci[0] > self.threshold

    @property
    def verdict(self) -> str:
        return LEAK if self.leak else NO_RISK

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack, "threat_model": self.threat_model.to_dict(),
            "n_targets": self.n_targets, "success_rate": self.success.to_dict(),
            "control_rate": self.control.to_dict(), "baseline": self.baseline.to_dict(),
            "risk": self.risk.to_dict(), "threshold": self.threshold,
            "confidence": self.confidence, "verdict": self.verdict,
            "metrics": dict(self.metrics),
            "roc": self.roc.to_dict() if self.roc is not None else None,
            "exposed_row_ids": list(self.exposed_row_ids), "notes": self.notes,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttackResult:
        roc = data.get("roc")
        return cls(
            attack=str(data["attack"]),
            threat_model=ThreatModel.from_dict(data["threat_model"]),
            n_targets=int(data["n_targets"]), success=Rate.from_dict(data["success_rate"]),
            control=Rate.from_dict(data["control_rate"]),
            baseline=Rate.from_dict(data["baseline"]), risk=Rate.from_dict(data["risk"]),
            threshold=float(data["threshold"]), confidence=float(data["confidence"]),
            metrics=dict(data.get("metrics", {})),
            roc=RocCurve.from_dict(roc) if roc else None,
            exposed_row_ids=tuple(data.get("exposed_row_ids", ())),
            notes=str(data.get("notes", "")), seconds=data.get("seconds"),
        )


def score_attack(attack: str, threat: ThreatModel, hits: np.ndarray, control_hits: np.ndarray,
                 baseline_hits: np.ndarray, *, threshold: float, confidence: float,
                 paired: bool = False, **extra: Any) -> AttackResult:
    """Turn per-target outcomes into an :class:`AttackResult`.

    ``hits`` and ``control_hits`` are booleans (attack correct) on training targets and on
    controls; ``baseline_hits`` the outcomes of a naive attacker on the training targets.
    ``extra`` is passed on to the result (metrics, roc, exposed_row_ids, notes).
    """
    success, control = Rate.of(hits, confidence), Rate.of(control_hits, confidence)
    lo, hi = difference_interval(hits, control_hits, paired=paired, confidence=confidence)
    room = 1.0 - control.value
    if room <= 0:
        risk = Rate(0.0, (min(lo, 0.0), max(hi, 0.0)))
    else:
        value = (success.value - control.value) / room
        risk = Rate(float(np.clip(value, -1, 1)),
                    (float(max(-1.0, lo / room)), float(min(1.0, hi / room))))
    return AttackResult(attack=attack, threat_model=threat, n_targets=int(np.size(hits)),
                        success=success, control=control,
                        baseline=Rate.of(baseline_hits, confidence), risk=risk,
                        threshold=threshold, confidence=confidence, **extra)


def rule_problems(threshold: float, confidence: float, owner: str) -> list[str]:
    """Every problem with the verdict rule's parameters, as messages."""
    problems = []
    if not (isinstance(threshold, (int, float)) and 0 <= threshold < 1):
        problems.append(str(param_error("threshold", "a float in [0, 1)", threshold, owner)))
    if not (isinstance(confidence, (int, float)) and 0.5 <= confidence < 1):
        problems.append(str(param_error("confidence", "a float in [0.5, 1)", confidence, owner)))
    return problems


def check_rule(threshold: float, confidence: float, owner: str) -> None:
    """Validate the verdict rule's parameters, raising one error naming every problem."""
    problems = rule_problems(threshold, confidence, owner)
    if problems:
        raise ParameterError(" ".join(problems))


def exposed_ids(ids: Sequence[Any], order: np.ndarray, limit: int = 20) -> tuple[Any, ...]:
    """The first ``limit`` row ids in ``order`` as JSON-friendly values."""
    return tuple(_plain_id(ids[i]) for i in order[:limit])


def _plain_id(value: Any) -> int | str:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return str(value)
