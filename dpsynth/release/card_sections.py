"""The typed sections of a dataset card.

Each section is a frozen dataclass read by attribute (``card.privacy.release_epsilon``);
``to_dict`` writes exactly the keys of ``dataset_card.yaml`` and ``from_dict`` reads them back.
Item access (``card.privacy["release_epsilon"]``) returns the same YAML value, for code written
against the plain mappings the card used to hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dpsynth._util.params import chosen
from dpsynth.accounting import Budget


def plain(value: Any) -> Any:
    """``value`` as YAML/JSON-ready builtins: dicts with str keys, lists, None for NaN."""
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return plain(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _typed_mapping() -> Any:
    """A mapping field whose values are sections (kept as they are, not made plain)."""
    return field(default_factory=dict, metadata={"typed": True})


class _Section:
    """Shared behaviour: one YAML key per field, item access by YAML key."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and math.isnan(value):
                object.__setattr__(self, f.name, None)
            elif isinstance(value, np.generic):
                object.__setattr__(self, f.name, value.item())
            elif isinstance(value, Mapping) and not f.metadata.get("typed"):
                object.__setattr__(self, f.name, plain(value))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name))
                for f in fields(self)}

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]


@dataclass(frozen=True)
class GeneratorSection(_Section):
    """The generator: the last fitted attempt's, or only its name when none was fitted."""

    name: str
    dpsynth_version: str
    class_path: str | None = None
    params: Mapping[str, Any] | None = None
    fitted_at: str | None = None
    defaults_tuned_on: str | None = None
    #: The parameters as the fit ran them: ``params`` with automatic values resolved
    #: (``epochs=None`` -> the passes made, ``device="auto"`` -> ``"cpu"``, ...).
    resolved_params: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.class_path is None:
            return {"name": self.name, "dpsynth_version": self.dpsynth_version}
        out = {"name": self.name, "class": self.class_path,
               "dpsynth_version": self.dpsynth_version, "params": plain(self.params or {}),
               "fitted_at": self.fitted_at, "defaults_tuned_on": self.defaults_tuned_on}
        if self.resolved_params is not None:  # cards written before it read back as they were
            out["resolved_params"] = plain(self.resolved_params)
        return out

    def automatic(self) -> dict[str, Any]:
        """The resolved value of every parameter the fit chose (those given as ``None`` or
        ``"auto"``, and the values a fit adds, such as its number of steps)."""
        return chosen(self.params or {}, self.resolved_params or {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorSection:
        return cls(str(data["name"]), str(data["dpsynth_version"]), data.get("class"),
                   data.get("params"), data.get("fitted_at"), data.get("defaults_tuned_on"),
                   data.get("resolved_params"))  # None in cards written before it


@dataclass(frozen=True)
class SourceSection(_Section):
    """The private table: identity, sizes, the holdout and the privacy unit."""

    dataset: str
    fingerprint: str
    content_hash: str | None
    n_rows: int
    n_train: int
    n_holdout: int
    holdout_fraction: float
    privacy_unit: str
    holdout_use: str
    #: Rows the data holder declared public and the generator read without privacy:
    #: ``{"rows", "fingerprint"}`` (absent from the card when there were none).
    public_rows: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if out.get("public_rows") is None:  # cards without public rows stay as they were
            out.pop("public_rows", None)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceSection:
        public = data.get("public_rows")
        return cls(str(data["dataset"]), str(data["fingerprint"]), data["content_hash"],
                   int(data["n_rows"]), int(data["n_train"]), int(data["n_holdout"]),
                   float(data["holdout_fraction"]), str(data["privacy_unit"]),
                   str(data["holdout_use"]),
                   None if not public else {"rows": int(public["rows"]),
                                            "fingerprint": str(public["fingerprint"])})


@dataclass(frozen=True)
class FileEntry(_Section):
    """One file of the bundle with its digest."""

    path: str
    sha256: str
    bytes: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileEntry:
        return cls(str(data["path"]), str(data["sha256"]), int(data["bytes"]))


@dataclass(frozen=True)
class SyntheticSection(_Section):
    """The released rows: how many, their files, or why they were withheld."""

    n_rows: int | None
    synthetic_share: float = 1.0
    share_note: str = "every released row is synthetic; no real row is mixed in"
    files: Mapping[str, FileEntry] = _typed_mapping()
    withheld: bool = True
    withheld_reason: str | None = "the bundle has not been written"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyntheticSection:
        files = {str(k): FileEntry.from_dict(v) for k, v in (data["files"] or {}).items()}
        return cls(data["n_rows"], float(data["synthetic_share"]), str(data["share_note"]),
                   files, bool(data["withheld"]), data["withheld_reason"])


@dataclass(frozen=True)
class PrivacySection(_Section):
    """The guarantee: budget per attempt, the release's composed spend, the dataset's cap."""

    epsilon_per_attempt: float
    delta_per_attempt: float
    accountant: str
    release_epsilon: float
    release_delta: float
    release_rdp_epsilon: float
    n_spends: int
    dataset_cap: Budget
    dataset_epsilon_before: float
    dataset_epsilon_after: float
    dataset_remaining: float
    privacy_unit: str
    randomness: str
    ledger: str
    ledger_anchor: str
    not_covered_by_dp: tuple[str, ...]

    @property
    def secure(self) -> bool:
        """Whether the generator's noise came from the operating system's CSPRNG."""
        return self.randomness.startswith("secure")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacySection:
        cap = data["dataset_cap"]
        return cls(
            float(data["epsilon_per_attempt"]), float(data["delta_per_attempt"]),
            str(data["accountant"]), float(data["release_epsilon"]),
            float(data["release_delta"]), float(data["release_rdp_epsilon"]),
            int(data["n_spends"]), Budget(float(cap["epsilon"]), float(cap["delta"])),
            float(data["dataset_epsilon_before"]), float(data["dataset_epsilon_after"]),
            float(data["dataset_remaining"]), str(data["privacy_unit"]),
            str(data["randomness"]), str(data["ledger"]), str(data["ledger_anchor"]),
            tuple(str(s) for s in data["not_covered_by_dp"]))


@dataclass(frozen=True)
class UtilitySection(_Section):
    """Train on synthetic, test on the holdout (TSTR) against train on real (TRTR)."""

    target: str
    positive: Any
    tstr_auc: float
    trtr_auc: float
    ratio: float | None
    tested_on: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UtilitySection:
        return cls(str(data["target"]), data["positive"], float(data["tstr_auc"]),
                   float(data["trtr_auc"]), _optional_float(data["ratio"]),
                   str(data["tested_on"]))


@dataclass(frozen=True)
class EvaluationSection(_Section):
    """Fidelity (the gate's TVD and association figures) and utility; ``None``: not run."""

    fidelity: Mapping[str, Any] | None = None
    utility: UtilitySection | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationSection:
        utility = data["utility"]
        return cls(data["fidelity"], None if utility is None else
                   UtilitySection.from_dict(utility))


@dataclass(frozen=True)
class AttackRow(_Section):
    """One attack's rates with intervals (``success``, ``control``... are ``{value, ci}``)."""

    attack: str
    goal: str
    threat_model: str
    n_targets: int
    success: Mapping[str, Any]
    control: Mapping[str, Any]
    baseline: Mapping[str, Any]
    risk: Mapping[str, Any]
    verdict: str
    auc: float | None
    auc_ci: tuple[float, float] | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttackRow:
        ci = data["auc_ci"]
        return cls(str(data["attack"]), str(data["goal"]), str(data["threat_model"]),
                   int(data["n_targets"]), data["success"], data["control"],
                   data["baseline"], data["risk"], str(data["verdict"]),
                   _optional_float(data["auc"]),
                   None if ci is None else (float(ci[0]), float(ci[1])))


@dataclass(frozen=True)
class AuditSection(_Section):
    """The attack audit of the last evaluated attempt (rates and intervals, never row ids).

    ``verdict`` is ``None`` when no attempt was audited (the YAML section is then empty);
    ``threshold`` is ``None`` when only text columns were checked (no attack suite ran).
    """

    verdict: str | None = None
    threshold: float | None = None
    confidence: float | None = None
    seed: int | None = None
    seconds: float | None = None
    n_train: int | None = None
    n_holdout: int | None = None
    n_synthetic: int | None = None
    attacks: tuple[AttackRow, ...] = ()
    text: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.verdict is None:
            return {}
        attacks = [a.to_dict() for a in self.attacks]
        if self.threshold is None:
            out: dict[str, Any] = {"attacks": attacks, "verdict": self.verdict}
        else:
            out = {"verdict": self.verdict, "threshold": self.threshold,
                   "confidence": self.confidence, "seed": self.seed, "seconds": self.seconds,
                   "n_train": self.n_train, "n_holdout": self.n_holdout,
                   "n_synthetic": self.n_synthetic, "attacks": attacks}
        if self.text:
            out["text"] = plain(self.text)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditSection:
        if not data:
            return cls()
        return cls(str(data["verdict"]), _optional_float(data.get("threshold")),
                   _optional_float(data.get("confidence")), data.get("seed"),
                   _optional_float(data.get("seconds")), data.get("n_train"),
                   data.get("n_holdout"), data.get("n_synthetic"),
                   tuple(AttackRow.from_dict(a) for a in data["attacks"]), data.get("text"))


@dataclass(frozen=True)
class ReproduceSection(_Section):
    """Seeds, settings and the commands that redraw or rerun the release."""

    seed: int
    secure: bool
    holdout_fraction: float
    n_rows: int | None
    n_targets: int
    target: str | None
    positive: Any
    secrets: tuple[str, ...]
    synthesizer: str
    sample_seed: int | None
    sample: str | None
    rerun: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReproduceSection:
        return cls(int(data["seed"]), bool(data["secure"]), float(data["holdout_fraction"]),
                   data["n_rows"], int(data["n_targets"]), data["target"], data["positive"],
                   tuple(data["secrets"]), str(data["synthesizer"]), data["sample_seed"],
                   data["sample"], str(data["rerun"]))


@dataclass(frozen=True)
class SpendRow(_Section):
    """One spend of an attempt and its epsilon alone (PLD at the ledger cap's delta)."""

    purpose: str
    mechanism: str
    epsilon_alone: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpendRow:
        return cls(str(data["purpose"]), str(data["mechanism"]), float(data["epsilon_alone"]))


@dataclass(frozen=True)
class AttemptSeeds(_Section):
    """The child seeds of one attempt (``generator`` is ``None`` in secure mode)."""

    generator: int | None
    sample: int
    audit: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttemptSeeds:
        return cls(data["generator"], int(data["sample"]), int(data["audit"]))


@dataclass(frozen=True)
class GeneratorAuditSection(_Section):
    """A white-box audit of the generator's mechanism (:mod:`dpsynth.attacks.white_box`).

    It fits the generator many times on a synthetic worst-case pair of neighbouring tables,
    never on the private data, so it costs no budget. ``epsilon_lower`` holds with probability
    ``confidence``; ``power`` says what a pass rules out (a halved noise scale).
    """

    mode: str
    synthesizer: str
    claimed_epsilon: float
    delta: float
    epsilon_lower: float
    epsilon_ci: tuple[float, float]
    method: str
    confidence: float
    n_fits: int
    power: str
    cpu_seconds: float
    violated: bool

    @property
    def verdict(self) -> str:
        return "leak" if self.violated else "pass"

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"verdict": self.verdict}

    @classmethod
    def from_audit(cls, audit: Mapping[str, Any]) -> GeneratorAuditSection:
        """From :meth:`dpsynth.attacks.white_box.WhiteBoxAudit.to_dict`."""
        lo, hi = audit["epsilon_ci"]
        return cls(str(audit["mode"]), str(audit["synthesizer"]),
                   float(audit["accounted_epsilon"]), float(audit["delta"]),
                   float(audit["epsilon_lower"]), (float(lo), float(hi)),
                   str(audit["epsilon_lower_source"]), float(audit["confidence"]),
                   int(audit["n_fits"]), str(audit["power"]), float(audit["cpu_seconds"]),
                   bool(audit["violated"]))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorAuditSection:
        lo, hi = data["epsilon_ci"]
        return cls(str(data["mode"]), str(data["synthesizer"]), float(data["claimed_epsilon"]),
                   float(data["delta"]), float(data["epsilon_lower"]), (float(lo), float(hi)),
                   str(data["method"]), float(data["confidence"]), int(data["n_fits"]),
                   str(data["power"]), float(data["cpu_seconds"]), bool(data["violated"]))


__all__ = ["AttackRow", "AttemptSeeds", "AuditSection", "EvaluationSection", "FileEntry",
           "GeneratorAuditSection", "GeneratorSection", "PrivacySection", "ReproduceSection",
           "SourceSection", "SpendRow", "SyntheticSection", "UtilitySection", "plain"]
