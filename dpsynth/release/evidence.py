"""The card's ``evidence`` section: what the synthetic data was checked against beyond the
gate, each part ``None`` when it did not run.

``anchor_ablation``
    a small real anchor alone, with synthetic rows mixed in, and synthetic alone
    (:mod:`~dpsynth.release.ablation`).
``temporal``
    utility on the latest period against a random holdout of the same size
    (:mod:`~dpsynth.release.temporal`).
``tails``
    categories and numeric ranges the synthetic data under-represents
    (:mod:`~dpsynth.release.tails`).
``rules``
    the schema's public rules between columns: violation rates of the synthetic and the real
    rows (:mod:`~dpsynth.release.rules`).
``review``
    the share of reviewed synthetic rows a person marked implausible, with its interval
    (:mod:`~dpsynth.release.review`; filled by ``dpsynth review import``).

Every figure here reads private rows without noise: none is covered by epsilon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from dpsynth.release.ablation import AnchorAblation, anchor_ablation, anchor_check
from dpsynth.release.card_sections import _Section, plain
from dpsynth.release.policy import Check, ReleasePolicy
from dpsynth.release.rules import check_rules
from dpsynth.release.tails import TailsSection, tails_report
from dpsynth.release.temporal import TemporalHoldout, temporal_check, temporal_holdout
from dpsynth.schema import Schema

if TYPE_CHECKING:
    from dpsynth.release.plan import ReleasePlan

NOT_COVERED = ("These figures are computed on the private rows without differential privacy; "
               "epsilon does not cover them.")
ROUNDS_WARNING = ("Do not train the next generation of a generator on this synthetic data in "
                  "place of real data: refitting on synthetic output loses the tails and rare "
                  "categories round after round (model collapse); keep the real data and add "
                  "synthetic rows to it instead (see `dpsynth evaluate rounds`).")


@dataclass(frozen=True)
class EvidenceSection(_Section):
    """See the module docstring."""

    anchor_ablation: AnchorAblation | None = None
    temporal: TemporalHoldout | None = None
    tails: TailsSection | None = None
    rules: Mapping[str, Any] | None = None
    review: Mapping[str, Any] | None = None
    rounds_warning: str = ROUNDS_WARNING
    not_covered_by_dp: str = NOT_COVERED

    def to_dict(self) -> dict[str, Any]:
        return {"anchor_ablation": plain(self.anchor_ablation),
                "temporal": plain(self.temporal), "tails": plain(self.tails),
                "rules": plain(self.rules), "review": plain(self.review),
                "rounds_warning": self.rounds_warning,
                "not_covered_by_dp": self.not_covered_by_dp}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvidenceSection:
        ablation, temporal, tails = (data.get(k) for k in ("anchor_ablation", "temporal",
                                                           "tails"))
        return cls(None if ablation is None else AnchorAblation.from_dict(ablation),
                   None if temporal is None else TemporalHoldout.from_dict(temporal),
                   None if tails is None else TailsSection.from_dict(tails),
                   data.get("rules"), data.get("review"),
                   str(data.get("rounds_warning", ROUNDS_WARNING)),
                   str(data.get("not_covered_by_dp", NOT_COVERED)))


@dataclass(frozen=True, eq=False)
class EvidenceData:
    """The real rows the evidence reads besides the training rows and the gate's holdout:
    the ablation's anchor and test parts (with a target), the latest period (with a time
    column)."""

    anchor: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    latest: pd.DataFrame | None = None
    latest_label: str = ""
    periods: int = 0
    rules: tuple[str, ...] = ()


def gather_evidence(plan: ReleasePlan, data: EvidenceData, train: pd.DataFrame,
                    holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema,
                    seed: int, rule_drops: int | None = None) -> EvidenceSection:
    """Every part of the evidence that the release's settings allow."""
    ablation = temporal = None
    seed %= 2**31
    if plan.target is not None and data.anchor is not None and data.test is not None:
        ablation = anchor_ablation(data.anchor, data.test, synthetic, schema, plan.target,
                                   positive=plan.positive, seed=seed)
    if plan.time_column is not None and data.latest is not None:
        temporal = temporal_holdout(train, holdout, data.latest, synthetic, schema,
                                    time_column=plan.time_column,
                                    latest_label=data.latest_label, periods=data.periods,
                                    target=plan.target, positive=plan.positive, seed=seed)
    rules = None
    if data.rules:
        rules = {"checked": check_rules(data.rules, synthetic, train, list(synthetic.columns)),
                 "compared_with": "training rows", "rejected_rows": rule_drops,
                 "filter": None if rule_drops is None else rule_filter(rule_drops)}
    return EvidenceSection(ablation, temporal, tails_report(train, synthetic, schema), rules)


def rule_filter(dropped: int) -> str:
    """The card's line for the rule filter."""
    return (f"rule filter: {dropped} synthetic row{'s' if dropped != 1 else ''} breaking the "
            "schema's rules were dropped at sampling and drawn again (post-processing of the "
            "generator's output, no privacy cost). The plain redraw of reproduce.sample does "
            "not apply this filter.")


def evidence_checks(policy: ReleasePolicy, evidence: EvidenceSection) -> list[Check]:
    """The policy's checks on the evidence (only those the policy asks for)."""
    checks = []
    if policy.min_anchor_gain is not None:
        checks.append(anchor_check(evidence.anchor_ablation, policy.min_anchor_gain))
    if policy.max_temporal_regression is not None:
        checks.append(temporal_check(evidence.temporal, policy.max_temporal_regression))
    return checks


__all__ = ["NOT_COVERED", "ROUNDS_WARNING", "EvidenceData", "EvidenceSection",
           "evidence_checks", "gather_evidence"]
