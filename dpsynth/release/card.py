"""The dataset card: what was released, how, under which budget, and why it was allowed.

The card is YAML (``dataset_card.yaml`` in the bundle) and round-trips exactly:
``DatasetCard.from_yaml(card.to_yaml()) == card``. Its fields follow the synthetic-data card
practice (generator and version, generation date, source fingerprint, schema, synthetic share,
epsilon/delta and accountant, privacy unit, randomness, filters, evaluations, audit results with
confidence intervals, decision and reasons), plus every attempt with its spend and what is
needed to reproduce the release. The HTML report is rendered from the card, so the two always
show the same figures.

In Python every section is a typed, frozen value read by attribute
(``card.privacy.release_epsilon``; see :mod:`dpsynth.release.card_sections`), ``policy`` is the
:class:`~dpsynth.release.policy.ReleasePolicy` applied and ``schema`` the schema's own document.

Sections (``dataset_card.yaml``):

``generator``
    name, class, dpsynth version, parameters (the last attempt's) and fitting time.
``source``
    dataset name, fingerprint and content hash of the private table, rows, training and
    holdout rows, the holdout fraction and what the holdout was used for, privacy unit.
``schema``
    the released schema (declared domains, plus any discovered with DP).
``synthetic``
    rows, synthetic share (1.0: no real row mixed in), files with their sha256, or why the
    data was withheld.
``privacy``
    epsilon and delta per attempt, accountant, the release's composed epsilon (PLD; RDP
    beside it), the dataset cap and its spend before and after, privacy unit, randomness
    (secure or seeded), the ledger and its anchor, and what epsilon does not cover.
``attempts``
    every attempt: outcome, reasons, epsilon and spends, seeds, checks.
``evaluation``, ``audit``, ``checks``
    fidelity and utility, attack results with confidence intervals (never row ids), text
    copy measurements, and the policy's checks of the last evaluated attempt.
``policy``, ``decision``, ``reasons``, ``filters``, ``reproduce``, ``notes``
    the policy applied, the decision and why, post-generation filters (row-local clipping
    and rule rejections, when asked for), seeds and commands that reproduce the bundle.
``evidence``
    the real-anchor ablation, the temporal holdout, the tails the synthetic data misses and
    the schema's rules between columns (:mod:`dpsynth.release.evidence`).
``generator_audit``
    when asked for (``generator_audit_fits``), the white-box audit of the generator's
    mechanism: claimed epsilon, the epsilon lower bound with its interval, method and power
    (:mod:`dpsynth.attacks.white_box`); a violation rejects the release.
``provenance``
    dpsynth's and its dependencies' versions, the command line or API call, seed or secure
    mode, the source's declared licence and description, the ledger entries of the release
    and the sha256 of every file of the bundle but the card (``dpsynth card verify``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dpsynth.errors import ModelFormatError
from dpsynth.release.card_sections import (
    AttemptSeeds,
    AuditSection,
    EvaluationSection,
    GeneratorAuditSection,
    GeneratorSection,
    PrivacySection,
    ReproduceSection,
    SourceSection,
    SpendRow,
    SyntheticSection,
    plain,
)
from dpsynth.release.evidence import EvidenceSection
from dpsynth.release.policy import Check, ReleasePolicy
from dpsynth.release.provenance import ProvenanceSection

CARD_FORMAT = "dpsynth.dataset_card"
CARD_VERSION = 1
CARD_FILE = "dataset_card.yaml"


@dataclass(frozen=True)
class Attempt:
    """One fit of the generator: what it spent and what the gate said about it.

    ``outcome`` is ``ship``, ``regenerate`` or ``reject``, or ``refused`` when the ledger
    refused the attempt's budget (nothing was spent). ``epsilon`` composes the attempt's own
    spends (PLD, at the ledger cap's delta).
    """

    number: int
    outcome: str
    reasons: tuple[str, ...]
    epsilon: float | None
    spends: tuple[SpendRow, ...] = ()
    seeds: AttemptSeeds | None = None
    checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "reasons", tuple(str(r) for r in self.reasons))
        object.__setattr__(self, "spends", tuple(self.spends))
        object.__setattr__(self, "checks", tuple(self.checks))

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "outcome": self.outcome, "reasons": list(self.reasons),
                "epsilon": self.epsilon, "spends": [s.to_dict() for s in self.spends],
                "seeds": {} if self.seeds is None else self.seeds.to_dict(),
                "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attempt:
        eps = data.get("epsilon")
        seeds = data.get("seeds")
        return cls(int(data["number"]), str(data["outcome"]), tuple(data.get("reasons", ())),
                   None if eps is None else float(eps),
                   tuple(SpendRow.from_dict(s) for s in data.get("spends", ())),
                   AttemptSeeds.from_dict(seeds) if seeds else None,
                   tuple(Check.from_dict(c) for c in data.get("checks", ())))


@dataclass(frozen=True)
class DatasetCard:
    """The card of one release (see the module docstring).

    Sections are typed values read by attribute (``card.privacy.release_epsilon``); ``schema``
    is the released schema's document (:meth:`dpsynth.Schema.to_dict`). Filled by
    :func:`dpsynth.release.release`.
    """

    release_id: str
    dataset: str
    created: str
    decision: str
    reasons: tuple[str, ...]
    generator: GeneratorSection
    source: SourceSection
    schema: Mapping[str, Any]
    synthetic: SyntheticSection
    privacy: PrivacySection
    attempts: tuple[Attempt, ...]
    evaluation: EvaluationSection
    audit: AuditSection
    checks: tuple[Check, ...]
    policy: ReleasePolicy
    reproduce: ReproduceSection
    filters: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    provenance: ProvenanceSection | None = None
    evidence: EvidenceSection | None = None
    generator_audit: GeneratorAuditSection | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema", plain(self.schema))
        for name in ("reasons", "filters", "notes"):
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        object.__setattr__(self, "attempts", tuple(self.attempts))
        object.__setattr__(self, "checks", tuple(self.checks))

    @property
    def shipped(self) -> bool:
        return self.decision == "ship"

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CARD_FORMAT, "format_version": CARD_VERSION,
            "release_id": self.release_id, "dataset": self.dataset, "created": self.created,
            "decision": self.decision, "reasons": list(self.reasons),
            "generator": self.generator.to_dict(), "source": self.source.to_dict(),
            "schema": dict(self.schema), "synthetic": self.synthetic.to_dict(),
            "privacy": self.privacy.to_dict(), "filters": list(self.filters),
            "attempts": [a.to_dict() for a in self.attempts],
            "evaluation": self.evaluation.to_dict(), "audit": self.audit.to_dict(),
            "checks": [c.to_dict() for c in self.checks], "policy": self.policy.to_dict(),
            "reproduce": self.reproduce.to_dict(), "notes": list(self.notes),
            **({} if self.evidence is None else {"evidence": self.evidence.to_dict()}),
            **({} if self.generator_audit is None
               else {"generator_audit": self.generator_audit.to_dict()}),
            **({} if self.provenance is None else {"provenance": self.provenance.to_dict()}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetCard:
        if not isinstance(data, Mapping) or data.get("format") != CARD_FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ModelFormatError(f"not a {CARD_FORMAT} document (format={found!r})")
        if data.get("format_version") != CARD_VERSION:
            raise ModelFormatError(f"unsupported dataset card version "
                                   f"{data.get('format_version')!r}; this dpsynth reads "
                                   f"{CARD_VERSION}")
        try:
            return cls(
                release_id=str(data["release_id"]), dataset=str(data["dataset"]),
                created=str(data["created"]), decision=str(data["decision"]),
                reasons=tuple(data["reasons"]),
                generator=GeneratorSection.from_dict(data["generator"]),
                source=SourceSection.from_dict(data["source"]), schema=data["schema"],
                synthetic=SyntheticSection.from_dict(data["synthetic"]),
                privacy=PrivacySection.from_dict(data["privacy"]),
                filters=tuple(data.get("filters") or ()),
                attempts=tuple(Attempt.from_dict(a) for a in data["attempts"]),
                evaluation=EvaluationSection.from_dict(data["evaluation"]),
                audit=AuditSection.from_dict(data["audit"]),
                checks=tuple(Check.from_dict(c) for c in data["checks"]),
                policy=ReleasePolicy.from_dict(data["policy"], "the card's policy"),
                reproduce=ReproduceSection.from_dict(data["reproduce"]),
                notes=tuple(data.get("notes") or ()),
                provenance=(ProvenanceSection.from_dict(data["provenance"])
                            if data.get("provenance") else None),
                evidence=(EvidenceSection.from_dict(data["evidence"])
                          if data.get("evidence") else None),
                generator_audit=(GeneratorAuditSection.from_dict(data["generator_audit"])
                                 if data.get("generator_audit") else None))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"the dataset card is incomplete or malformed: {exc!r}"
                                   ) from None

    def to_yaml(self) -> str:
        header = ("# dpsynth dataset card: what was released, how, under which privacy budget,\n"
                  "# and why. Figures under evaluation/audit are NOT covered by epsilon (see\n"
                  "# privacy.not_covered_by_dp).\n")
        return header + yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True,
                                       width=100)

    @classmethod
    def from_yaml(cls, text: str) -> DatasetCard:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelFormatError(f"the dataset card is not valid YAML: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> DatasetCard:
        """Read a card file, or the card of a bundle directory."""
        path = Path(path)
        if path.is_dir():
            path = path / CARD_FILE
        if not path.is_file():
            raise ModelFormatError(f"no dataset card at {path}")
        return cls.from_yaml(path.read_text(encoding="utf-8"))

    def value(self, key: str) -> Any:
        """The value at a dotted path (``privacy.release_epsilon``, ``attempts.0.epsilon``)."""
        return value_at(self.to_dict(), key)


def value_at(tree: Any, key: str) -> Any:
    """Follow a dotted path through nested mappings and lists (indices are integers)."""
    node = tree
    for part in key.split("."):
        if isinstance(node, Mapping):
            node = node[part]
        elif isinstance(node, Sequence) and not isinstance(node, str):
            node = node[int(part)]
        else:
            raise KeyError(key)
    return node


__all__ = ["CARD_FILE", "Attempt", "DatasetCard", "plain", "value_at"]
