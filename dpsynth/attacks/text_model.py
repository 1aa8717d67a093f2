"""Audits of a text model that need the model: canary exposure and loss-based membership.

* **Canary exposure** (Carlini et al., "The Secret Sharer: Evaluating and Testing Unintended
  Memorization in Neural Networks", USENIX Security 2019): random secrets
  (``"my secret code is 418093"``) are inserted ``repeats`` times into the training data; after
  training, a canary's *exposure* is ``log2 |R| - log2 rank``, its rank being its place among
  all ``|R|`` possible secrets ordered by the model's likelihood. A model that did not memorise
  gives a random rank (expected exposure ``1/ln 2 ≈ 1.44`` bits); a memorised canary ranks first
  (``log2 |R|`` bits). The rank is estimated from ``n_candidates`` random secrets (at most
  ``log2(n_candidates + 1)`` bits can be measured that way) and, as in §4.3 of the paper,
  extrapolated from a skew-normal fit of the candidates' log-perplexities. Canaries that were
  *not* inserted are scored alike, as controls.
* **Loss membership inference** (Yeom et al., "Privacy Risk in Machine Learning: Analyzing the
  Connection to Overfitting", CSF 2018): training records have lower loss than records of the
  same population the model never saw. Optionally calibrated by a reference model trained on
  public text only (Carlini et al., "Extracting Training Data from Large Language Models",
  USENIX Security 2021; Mireshghallah et al., EMNLP 2022), which removes how hard a record is
  in general. The attack claims membership for the records whose score is above the median
  score of all records it queried; the ROC AUC (Hanley–McNeil interval) and TPR at 1% FPR are
  reported beside it.

Both return an :class:`~dpsynth.attacks.result.AttackResult` judged by the rule of every
attack (:func:`~dpsynth.attacks.result.score_attack`): inserted canaries against never-inserted
ones, training records against holdout records. The model is reached only through the
protocols of :mod:`dpsynth.attacks.protocols`. Both train or score with private data: they
are for the data owner, before a release.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from dpsynth.attacks.protocols import CalibratedScorer, RetrainableScorer, SequenceScorer
from dpsynth.attacks.result import (
    AttackResult,
    check_rule,
    exposed_ids,
    roc_curve,
    score_attack,
)
from dpsynth.attacks.stats import tpr_at_fpr
from dpsynth.attacks.threat import ThreatModel
from dpsynth.errors import DataValidationError, param_error
from dpsynth.schema import Schema

DEFAULT_TEMPLATE = "my secret code is {secret}"


# -- canaries -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Canary:
    """A random secret and the record text that carries it."""

    secret: str
    text: str


def make_canaries(n: int, *, digits: int = 6, template: str = DEFAULT_TEMPLATE,
                  rng: np.random.Generator) -> list[Canary]:
    """``n`` distinct canaries with uniformly random ``digits``-digit secrets."""
    if "{secret}" not in template:
        raise param_error("template", "a string containing '{secret}'", template, "canaries")
    space = 10 ** digits
    if n > space // 2:
        raise param_error("n", f"at most {space // 2} for {digits} digits", n, "canaries")
    values = rng.choice(space, size=n, replace=False)
    return [Canary(f"{v:0{digits}d}", template.format(secret=f"{v:0{digits}d}"))
            for v in values]


def insert_canaries(frame: pd.DataFrame, text_column: str, canaries: Sequence[Canary],
                    repeats: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame`` plus ``repeats`` records of each canary, shuffled in; and the donor row.

    Every canary record copies the other columns of one random real record (the donor), so
    its control values stay inside the declared domain; the audit scores canaries with them.
    """
    donor = frame.iloc[[int(rng.integers(0, len(frame)))]]
    extra = donor.iloc[np.zeros(len(canaries) * repeats, dtype=int)].copy()
    extra[text_column] = [c.text for c in canaries for _ in range(repeats)]
    out = pd.concat([frame, extra], ignore_index=True)
    return out.iloc[rng.permutation(len(out))].reset_index(drop=True), donor


def _scorer(model: SequenceScorer, donor: pd.DataFrame,
            text_column: str) -> Callable[[list[str]], np.ndarray]:
    """Scores texts under ``model`` as records carrying the donor row's other values."""

    def score(texts: list[str]) -> np.ndarray:
        frame = donor.iloc[np.zeros(len(texts), dtype=int)].reset_index(drop=True)
        frame[text_column] = texts
        return np.asarray(model.record_losses(frame), dtype=float)

    return score


@dataclass(frozen=True)
class Exposure:
    """Exposure (bits) of one canary: rank-based and skew-normal extrapolated."""

    secret: str
    inserted: bool
    rank_exposure: float
    fitted_exposure: float


def exposures(score: Callable[[list[str]], np.ndarray], canaries: Sequence[Canary],
              inserted: Sequence[bool], *, digits: int, template: str, n_candidates: int,
              rng: np.random.Generator) -> list[Exposure]:
    """Exposure of each canary against ``n_candidates`` random secrets (Carlini et al. 2019)."""
    space = 10 ** digits
    draws = rng.integers(0, space, size=n_candidates)
    candidates = [template.format(secret=f"{v:0{digits}d}") for v in draws]
    cand = score(candidates)
    own = score([c.text for c in canaries])
    loc_a, loc, scale = stats.skewnorm.fit(cand)
    top = math.log2(space)
    out = []
    for canary, was_in, value in zip(canaries, inserted, own, strict=True):
        below = float(np.sum(cand < value) + 0.5 * np.sum(cand == value))
        rank_fraction = (below + 1.0) / (n_candidates + 1.0)
        cdf = float(stats.skewnorm.cdf(value, loc_a, loc, scale))
        fitted = min(top, -math.log2(max(cdf, 2.0 ** -top)))
        out.append(Exposure(canary.secret, bool(was_in), min(top, -math.log2(rank_fraction)),
                            fitted))
    return out


@dataclass(frozen=True)
class CanaryAudit:
    """Exposures of inserted canaries and of never-inserted control canaries.

    ``result`` scores them as an attack: inserted canaries exposed against controls exposed.
    """

    repeats: int
    digits: int
    n_candidates: int
    exposures: tuple[Exposure, ...]
    result: AttackResult

    def _mean(self, inserted: bool, fitted: bool) -> float:
        vals = [e.fitted_exposure if fitted else e.rank_exposure for e in self.exposures
                if e.inserted == inserted]
        return float(np.mean(vals)) if vals else float("nan")

    @property
    def mean_exposure(self) -> float:
        return self._mean(True, False)

    @property
    def control_exposure(self) -> float:
        return self._mean(False, False)

    @property
    def mean_fitted_exposure(self) -> float:
        return self._mean(True, True)

    @property
    def max_measurable(self) -> float:
        """Largest rank exposure the candidate sample can show: ``log2(n_candidates + 1)``."""
        return math.log2(self.n_candidates + 1)

    def to_dict(self) -> dict[str, Any]:
        return {"repeats": self.repeats, "digits": self.digits,
                "n_candidates": self.n_candidates, "mean_exposure": self.mean_exposure,
                "control_exposure": self.control_exposure,
                "mean_fitted_exposure": self.mean_fitted_exposure,
                "control_fitted_exposure": self._mean(False, True),
                "max_measurable": self.max_measurable,
                "exposures": [asdict(e) for e in self.exposures],
                "result": self.result.to_dict()}


def canary_audit(model: RetrainableScorer, data: pd.DataFrame, schema: Schema, *,
                 n_canaries: int = 4, repeats: int = 10, digits: int = 6,
                 template: str = DEFAULT_TEMPLATE, n_candidates: int = 1000,
                 exposed_bits: float = 4.0, threshold: float = 0.05, confidence: float = 0.95,
                 random_state: int | None = 0) -> tuple[CanaryAudit, RetrainableScorer]:
    """Train a copy of ``model`` with canaries inserted, and measure their exposure.

    ``n_canaries`` canaries are inserted ``repeats`` times each; as many others are not, and
    serve as controls. A canary counts as exposed (a hit) when its rank exposure reaches
    ``exposed_bits`` (it ranks in the top ``2**-exposed_bits`` of the candidate secrets, which
    a never-inserted canary does with that probability). Returns the audit, whose ``result``
    is the ``text_canary_exposure`` :class:`AttackResult`, and the fitted copy (whose privacy
    report covers the augmented data; nothing is spent on any ledger).
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise param_error("repeats", "an integer >= 1", repeats, "canary_audit")
    if not exposed_bits > 0:
        raise param_error("exposed_bits", "a float > 0", exposed_bits, "canary_audit")
    check_rule(threshold, confidence, "canary_audit")
    rng = np.random.default_rng(random_state)
    canaries = make_canaries(2 * n_canaries, digits=digits, template=template, rng=rng)
    text = next(c.name for c in schema.data_columns if c.kind == "text")
    augmented, donor = insert_canaries(data, text, canaries[:n_canaries], repeats, rng)
    fitted = model.unfitted_copy()
    fitted.fit(augmented, schema)
    found = exposures(_scorer(fitted, donor, text), canaries,
                      [True] * n_canaries + [False] * n_canaries, digits=digits,
                      template=template, n_candidates=n_candidates, rng=rng)
    hit = np.array([e.rank_exposure >= exposed_bits for e in found])
    knowledge = ("synthetic", "generator", "model_scores")
    threat = ThreatModel("membership", knowledge, "canary", n_canaries, secret=text)
    metrics: dict[str, float | int | str | None] = {
        "exposed_bits": exposed_bits, "repeats": repeats, "n_candidates": n_candidates,
        "max_measurable": math.log2(n_candidates + 1),
        "mean_exposure": float(np.mean([e.rank_exposure for e in found[:n_canaries]])),
        "control_exposure": float(np.mean([e.rank_exposure for e in found[n_canaries:]]))}
    result = score_attack("text_canary_exposure", threat, hit[:n_canaries], hit[n_canaries:],
                          hit[n_canaries:], threshold=threshold, confidence=confidence,
                          metrics=metrics)
    return CanaryAudit(repeats, digits, n_candidates, tuple(found), result), fitted


# -- membership inference -------------------------------------------------------------------
def loss_membership(model: SequenceScorer, members: pd.DataFrame, holdout: pd.DataFrame, *,
                    calibrate: bool = False, column: str = "text", n_targets: int = 1000,
                    threshold: float = 0.05, confidence: float = 0.95,
                    random_state: int | np.random.Generator | None = 0) -> AttackResult:
    """Tell training records from holdout records by the model's loss on them (Yeom et al.).

    The score is ``-NLL`` (lower loss: member), or ``NLL_public - NLL`` with ``calibrate``
    (the model must then be a :class:`~dpsynth.attacks.protocols.CalibratedScorer`).
    ``min(n_targets, len(members), len(holdout))`` records of each are scored; the attack
    claims the records scoring above the median of all scored records, and the naive baseline
    claims at random at the same rate. ``column`` names the text column in the result.
    """
    if len(members) < 2 or len(holdout) < 2:
        raise DataValidationError(["members and holdout need at least 2 records each"])
    if calibrate and not isinstance(model, CalibratedScorer):
        raise param_error("calibrate", "False for a model without reference_losses", calibrate,
                          "loss_membership")
    check_rule(threshold, confidence, "loss_membership")
    rng = np.random.default_rng(random_state)
    m = int(min(n_targets, len(members), len(holdout)))
    mem = members.iloc[np.sort(rng.choice(len(members), m, replace=False))]
    ctl = holdout.iloc[np.sort(rng.choice(len(holdout), m, replace=False))]
    mem_s = -np.asarray(model.record_losses(mem), dtype=float)
    ctl_s = -np.asarray(model.record_losses(ctl), dtype=float)
    if calibrate:
        assert isinstance(model, CalibratedScorer)
        mem_s = mem_s + model.reference_losses(mem)
        ctl_s = ctl_s + model.reference_losses(ctl)
    roc, fpr, tpr = roc_curve(mem_s, ctl_s, confidence)
    cut = float(np.median(np.r_[mem_s, ctl_s]))
    hits, control_hits = mem_s > cut, ctl_s > cut
    baseline = rng.random(m) < float(np.mean(np.r_[hits, control_hits]))
    knowledge = ("synthetic", "target_record", "model_scores") + (
        ("public_model",) if calibrate else ())
    threat = ThreatModel("membership", knowledge, "random", m, secret=column)
    metrics: dict[str, float | int | str | None] = {
        "auc": roc.auc, "auc_ci_low": roc.auc_ci[0], "auc_ci_high": roc.auc_ci[1],
        "tpr_at_fpr_1pct": tpr_at_fpr(fpr, tpr, 0.01, m), "n_controls": m,
        "calibrated": int(calibrate), "cut": cut}
    claimed = np.flatnonzero(hits)
    order = claimed[np.argsort(-mem_s[claimed], kind="stable")]
    ids = exposed_ids(list(mem.index), order)
    return score_attack("text_loss_membership", threat, hits, control_hits, baseline,
                        threshold=threshold, confidence=confidence, metrics=metrics, roc=roc,
                        exposed_row_ids=ids)


__all__ = [
    "DEFAULT_TEMPLATE",
    "Canary",
    "CanaryAudit",
    "Exposure",
    "canary_audit",
    "exposures",
    "insert_canaries",
    "loss_membership",
    "make_canaries",
]
