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
  in general. The ROC AUC (Hanley–McNeil interval) and TPR at 1% FPR are reported.

Both train or score with private data: they are for the data owner, before a release.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from dpsynth.attacks.result import roc_curve, tpr_at_fpr
from dpsynth.errors import DataValidationError, param_error
from dpsynth.schema import Schema
from dpsynth.synthesizers.text.backend import ByteBackend, backend_nll
from dpsynth.synthesizers.text.synthesizer import DPTextSynthesizer

DEFAULT_TEMPLATE = "my secret code is {secret}"
Scorer = Callable[[pd.DataFrame], np.ndarray]


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


def _scorer(synth: DPTextSynthesizer, donor: pd.DataFrame) -> Callable[[list[str]], np.ndarray]:
    """Scores texts under ``synth`` with the donor row's control values."""

    def score(texts: list[str]) -> np.ndarray:
        frame = pd.DataFrame({synth.text_column_: texts})
        for col in synth.control_columns_:
            frame[col] = [donor[col].iloc[0]] * len(texts)
        return synth.score_records(frame)

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
    """Exposures of inserted canaries and of never-inserted control canaries."""

    repeats: int
    digits: int
    n_candidates: int
    exposures: tuple[Exposure, ...]

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
                "exposures": [asdict(e) for e in self.exposures]}


def canary_audit(synth: DPTextSynthesizer, data: pd.DataFrame, schema: Schema, *,
                 n_canaries: int = 4, repeats: int = 10, digits: int = 6,
                 template: str = DEFAULT_TEMPLATE, n_candidates: int = 1000,
                 random_state: int | None = 0) -> tuple[CanaryAudit, DPTextSynthesizer]:
    """Train a copy of ``synth`` with canaries inserted, and measure their exposure.

    ``n_canaries`` canaries are inserted ``repeats`` times each; as many others are not, and
    serve as controls. Returns the audit and the fitted copy (whose privacy report covers the
    augmented data; nothing is spent on any ledger).
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise param_error("repeats", "an integer >= 1", repeats, "canary_audit")
    rng = np.random.default_rng(random_state)
    canaries = make_canaries(2 * n_canaries, digits=digits, template=template, rng=rng)
    text = next(c.name for c in schema.data_columns if c.kind == "text")
    augmented, donor = insert_canaries(data, text, canaries[:n_canaries], repeats, rng)
    model = type(synth)(**synth.get_params()).fit(augmented, schema)
    assert isinstance(model, DPTextSynthesizer)
    found = exposures(_scorer(model, donor), canaries, [True] * n_canaries + [False] * n_canaries,
                      digits=digits, template=template, n_candidates=n_candidates, rng=rng)
    return CanaryAudit(repeats, digits, n_candidates, tuple(found)), model


# -- membership inference -------------------------------------------------------------------
@dataclass(frozen=True)
class MembershipAudit:
    """Loss-based membership inference: members vs holdout records."""

    auc: float
    auc_ci: tuple[float, float]
    tpr_at_1pct_fpr: float | None
    n_members: int
    n_controls: int
    calibrated: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def public_reference(synth: DPTextSynthesizer) -> Scorer:
    """NLL of records under the public checkpoint ``synth`` started from (byte model only)."""
    if synth.model_dir is not None or synth.pretrained is None:
        raise param_error("synth", "a byte model fine-tuned from a public checkpoint",
                          synth.pretrained, "public_reference")
    backend = ByteBackend.create(synth.pretrained, synth._scratch_config(), 0)
    backend.to(synth.device_)

    def score(frame: pd.DataFrame) -> np.ndarray:
        texts = frame[synth.text_column_].fillna("").astype(str).tolist()
        heads = synth._headers(frame)
        return backend_nll(backend, backend.code(texts, heads, synth.max_length_))

    return score


def loss_membership(synth: DPTextSynthesizer, members: pd.DataFrame, holdout: pd.DataFrame, *,
                    reference: Scorer | None = None, n_targets: int = 1000,
                    random_state: int | None = 0) -> MembershipAudit:
    """AUC of telling training records from holdout records by the model's loss on them.

    The score is ``-NLL`` (lower loss: member), or ``NLL_reference - NLL`` with a reference.
    ``min(n_targets, len(members), len(holdout))`` records of each are scored.
    """
    if len(members) < 2 or len(holdout) < 2:
        raise DataValidationError(["members and holdout need at least 2 records each"])
    rng = np.random.default_rng(random_state)
    m = int(min(n_targets, len(members), len(holdout)))
    mem = members.iloc[np.sort(rng.choice(len(members), m, replace=False))]
    ctl = holdout.iloc[np.sort(rng.choice(len(holdout), m, replace=False))]
    mem_s, ctl_s = -synth.score_records(mem), -synth.score_records(ctl)
    if reference is not None:
        mem_s, ctl_s = mem_s + reference(mem), ctl_s + reference(ctl)
    roc, fpr, tpr = roc_curve(mem_s, ctl_s)
    return MembershipAudit(roc.auc, roc.auc_ci, tpr_at_fpr(fpr, tpr, 0.01, m), m, m,
                           reference is not None)


__all__ = [
    "DEFAULT_TEMPLATE",
    "Canary",
    "CanaryAudit",
    "Exposure",
    "MembershipAudit",
    "canary_audit",
    "exposures",
    "insert_canaries",
    "loss_membership",
    "make_canaries",
    "public_reference",
]
