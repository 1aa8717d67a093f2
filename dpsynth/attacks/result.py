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
risk interval is the difference interval divided by ``1 - control``. The formulas live in
:mod:`dpsynth.attacks.stats`.

**Verdict.** An attack flags a leak when the *lower* end of the risk interval is above
``threshold``. Under no leak the attack and control rates are equal, so the lower end of a
two-sided 95% interval exceeds 0 with probability about 2.5%, and exceeds a positive threshold
less often: the threshold bounds the false-positive rate on data that does not leak while
letting small, real effects on large tables through unflagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dpsynth._util.jsonable import plain_id
from dpsynth.attacks.stats import (
    auc_interval,
    difference_interval,
    risk_interval,
    risk_p_value,
    roc_points,
    thin_indices,
    wilson_interval,
)
from dpsynth.attacks.threat import ThreatModel
from dpsynth.errors import ParameterError, param_error

LEAK = "leak"
NO_RISK = "no risk found"


# -- ROC curves -----------------------------------------------------------------------------
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


def roc_curve(member_scores: ArrayLike, control_scores: ArrayLike, confidence: float = 0.95
              ) -> tuple[RocCurve, NDArray[np.float64], NDArray[np.float64]]:
    """ROC of a score that is higher for members; returns the thinned curve and the full one.

    The AUC and its interval come from :func:`dpsynth.attacks.stats.auc_interval`.
    """
    fpr, tpr = roc_points(member_scores, control_scores)
    auc, auc_ci = auc_interval(member_scores, control_scores, confidence)
    keep = thin_indices(fpr)
    curve = RocCurve(tuple(float(v) for v in np.round(fpr[keep], 6)),
                     tuple(float(v) for v in np.round(tpr[keep], 6)), auc, auc_ci)
    return curve, fpr, tpr


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
    p_value:
        One-sided p-value for "risk above ``threshold``"
        (:func:`~dpsynth.attacks.stats.risk_p_value`); an audit combines these with Holm's
        rule. None in results saved before it existed.
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
    p_value: float | None = None

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
            "seconds": self.seconds, "p_value": self.p_value,
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
            p_value=None if data.get("p_value") is None else float(data["p_value"]),
        )


def score_attack(attack: str, threat: ThreatModel, hits: np.ndarray, control_hits: np.ndarray,
                 baseline_hits: np.ndarray, *, threshold: float, confidence: float,
                 paired: bool = False, **extra: Any) -> AttackResult:
    """Turn per-target outcomes into an :class:`AttackResult`.

    ``hits`` and ``control_hits`` are booleans (attack correct) on training targets and on
    controls; ``baseline_hits`` the outcomes of a naive attacker on the training targets.
    ``extra`` is passed on to the result (metrics, roc, exposed_row_ids, notes); the
    one-sided p-value for "risk above ``threshold``" is computed from the same outcomes.
    """
    success, control = Rate.of(hits, confidence), Rate.of(control_hits, confidence)
    difference = difference_interval(hits, control_hits, paired=paired, confidence=confidence)
    value, ci = risk_interval(success.value, control.value, difference)
    risk = Rate(value, ci)
    extra.setdefault("p_value", risk_p_value(hits, control_hits, threshold, paired=paired))
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
    return tuple(plain_id(ids[i]) for i in order[:limit])


