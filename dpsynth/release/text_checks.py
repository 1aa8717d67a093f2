"""The gate's privacy checks for free-text columns: copies of training text and of its PII.

Language models memorise and repeat training text (Carlini et al., USENIX Security 2021), so
for every text column the gate measures, with :mod:`dpsynth.attacks.text`, how often synthetic
records copy a training record exactly, share a long substring with one, or nearly reproduce
one, each against the same rate measured on the holdout (text the population writes anyway is
copied from the holdout as often). A check fails when the copying rate on training text exceeds
the holdout's by more than the policy's ``max_attack_risk`` even at the lower end of the two
Wilson intervals (a conservative bound, in the spirit of the audit's leak rule), or when the
synthetic text reproduces PII-like strings (e-mails, phone numbers, URLs) of the training text
more often than those of the holdout by that much.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from dpsynth.release.card import plain
from dpsynth.release.policy import Check

#: Copy measures of :class:`dpsynth.attacks.text.ReproductionReport` that the gate checks.
COPY_MEASURES = ("exact", "long_copy", "near_verbatim")


def text_audit(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
               columns: Sequence[str], *, seed: int) -> dict[str, Any]:
    """Reproduction and PII measurements per text column (plain values for the card)."""
    from dpsynth.attacks.text import pii_reproduction, verbatim_reproduction

    out: dict[str, Any] = {}
    for name in columns:
        real, held = _texts(train[name]), _texts(holdout[name])
        fake = _texts(synthetic[name])
        copies = verbatim_reproduction(real, fake, held, random_state=seed)
        pii = pii_reproduction(real, fake, held)
        out[name] = plain({"reproduction": copies.to_dict(), "pii": pii.to_dict(),
                           "mean_length_real": _mean_length(real),
                           "mean_length_synthetic": _mean_length(fake)})
    return out


def _texts(series: pd.Series) -> list[str]:
    return series.fillna("").astype(str).tolist()


def _mean_length(texts: Sequence[str]) -> float:
    return float(sum(len(t) for t in texts) / len(texts)) if texts else 0.0


def text_checks(audit: Mapping[str, Any], threshold: float) -> list[Check]:
    """One privacy check per copy measure and one for PII, per text column."""
    checks = []
    rule = f"excess over the holdout (lower bound) <= {threshold:g}"
    for name, found in audit.items():
        for measure in COPY_MEASURES:
            comp = found["reproduction"][measure]
            value = float(comp["train_ci"][0] - comp["control_ci"][1])
            checks.append(Check(f"text:{name}:{measure}", "privacy", value, threshold,
                                value <= threshold, rule))
        pii = found["pii"]
        value = float(pii["rate"] - pii["control_rate"])
        checks.append(Check(f"text:{name}:pii", "privacy", value, threshold,
                            value <= threshold, f"excess over the holdout <= {threshold:g}"))
    return checks


__all__ = ["COPY_MEASURES", "text_audit", "text_checks"]
