"""The release policy: thresholds that turn an evaluation and an audit into a decision.

A policy is a small YAML file (every key optional; the defaults are :data:`DEFAULT_POLICY`)::

    version: 1
    privacy:
      max_attack_risk: 0.05    # an attack fails the release when the LOWER end of its risk's
      confidence: 0.95         #   confidence interval is above this (the audit's leak rule)
    fidelity:
      max_tvd_1way: 0.15       # average total-variation distance of 1-way marginals
      max_tvd_2way: 0.25       # ... and of 2-way marginals (null: not checked)
    utility:
      min_ratio: 0.8           # TSTR ROC-AUC / TRTR ROC-AUC on the holdout (needs a target)
      min_anchor_gain: null    # best (real anchor + synthetic) AUC - anchor alone AUC; 0 means
                               #   "must improve or match the anchor alone" (null: not checked)
      max_temporal_regression: null  # with a time column: TSTR AUC on the latest period may
                               #   fall at most this far below TSTR AUC on a random holdout
    review:
      max_implausible_share: null  # upper end of the interval of the share of reviewed rows
                               #   marked implausible (dpsynth review import); null: none
    max_attempts: 2            # fits, each spending its own epsilon, before giving up

**Decision.** *ship* when every check passes. *reject* when any attack finds a risk: the
generator is differentially private by construction, so a measurable leak means a bug, a
mis-declared (data-derived) domain or an epsilon too large for the table, and drawing again at
the same epsilon would not fix any of them. Worse, retrying until the audit stops noticing is
a multiple-testing loop that lets a leaking generator through with growing probability. When
privacy passes but fidelity or utility fails, the decision is *regenerate* while attempts are
left (each attempt is a new fit that spends its own epsilon through the ledger) and *reject*
once they are exhausted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dpsynth.errors import PolicyError

POLICY_VERSION = 1
SHIP, REGENERATE, REJECT = "ship", "regenerate", "reject"
OUTCOMES = (SHIP, REGENERATE, REJECT)

#: YAML section and key of each policy field.
_LAYOUT: dict[str, tuple[str, str]] = {
    "max_attack_risk": ("privacy", "max_attack_risk"),
    "confidence": ("privacy", "confidence"),
    "max_tvd_1way": ("fidelity", "max_tvd_1way"),
    "max_tvd_2way": ("fidelity", "max_tvd_2way"),
    "min_utility_ratio": ("utility", "min_ratio"),
    "min_anchor_gain": ("utility", "min_anchor_gain"),
    "max_temporal_regression": ("utility", "max_temporal_regression"),
    "max_implausible_share": ("review", "max_implausible_share"),
    "max_attempts": ("", "max_attempts"),
}


@dataclass(frozen=True)
class Check:
    """One test of the policy on one attempt.

    ``passed`` is ``None`` when the check could not run (no utility target given).
    """

    name: str
    area: str
    value: float | None
    threshold: float | None
    passed: bool | None
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "area": self.area, "value": self.value,
                "threshold": self.threshold, "passed": self.passed, "rule": self.rule}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        value, threshold = data.get("value"), data.get("threshold")
        return cls(str(data["name"]), str(data["area"]),
                   None if value is None else float(value),
                   None if threshold is None else float(threshold),
                   data.get("passed"), str(data.get("rule", "")))


@dataclass(frozen=True)
class Decision:
    """What the policy says about one attempt, and why."""

    outcome: str
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]

    def failed(self, area: str | None = None) -> list[Check]:
        return [c for c in self.checks if c.passed is False and area in (None, c.area)]


@dataclass(frozen=True)
class ReleasePolicy:
    """Thresholds of the release gate (see the module docstring for the YAML form).

    Parameters
    ----------
    max_attack_risk:
        An attack fails the release when the lower end of the confidence interval of its risk
        ``(attack - control) / (1 - control)`` exceeds this (the audit's leak rule).
    confidence:
        Confidence level of the attack intervals.
    max_tvd_1way, max_tvd_2way:
        Largest average total-variation distance of 1-way / 2-way marginals between the
        synthetic rows and the training rows; ``None`` skips the check.
    min_utility_ratio:
        Smallest TSTR / TRTR ROC-AUC ratio on the holdout; ``None`` skips the check. Checked
        only when the release names a target column.
    min_anchor_gain:
        Smallest gain in ROC-AUC of the best real-anchor + synthetic mix over the anchor
        alone (:mod:`~dpsynth.release.ablation`); 0 requires "improve or match"; ``None``
        (default) skips the check.
    max_temporal_regression:
        With a time column: largest drop of the TSTR ROC-AUC on the latest period below the
        TSTR ROC-AUC on a random holdout of the same size; ``None`` (default) skips it.
    max_implausible_share:
        Largest upper end of the interval of the share of reviewed rows a person marked
        implausible; checked by ``dpsynth review import`` (``None``: no review required).
    max_attempts:
        Fits allowed (each spends its own epsilon); 1 disables regeneration.
    """

    max_attack_risk: float = 0.05
    confidence: float = 0.95
    max_tvd_1way: float | None = 0.15
    max_tvd_2way: float | None = 0.25
    min_utility_ratio: float | None = 0.8
    max_attempts: int = 2
    min_anchor_gain: float | None = None
    max_temporal_regression: float | None = None
    max_implausible_share: float | None = None

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise PolicyError(problems)

    def problems(self) -> list[str]:
        """Every invalid value, as messages naming the YAML key."""
        out = []
        for name, (lo, hi, optional) in _RANGES.items():
            value = getattr(self, name)
            if value is None and optional:
                continue
            section, key = _LAYOUT[name]
            where = f"{section}.{key}" if section else key
            if name == "max_attempts":
                ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
                must = f"an integer from {lo} to {hi}"
            else:
                ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                      and math.isfinite(value) and lo <= value <= hi)
                must = f"a number in [{lo}, {hi}]" + (" or null" if optional else "")
            if not ok:
                out.append(f"{where} must be {must}; got {value!r}")
        if isinstance(self.confidence, (int, float)) and self.confidence >= 1:
            out.append(f"privacy.confidence must be below 1; got {self.confidence!r}")
        return out

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": POLICY_VERSION}
        for name, (section, key) in _LAYOUT.items():
            if section:
                out.setdefault(section, {})[key] = getattr(self, name)
        out["max_attempts"] = self.max_attempts
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None,
                  source: str = "the release policy") -> ReleasePolicy:
        """Read the nested YAML form, reporting every unknown key and bad value at once."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise PolicyError([f"the policy must be a mapping; got {type(data).__name__}"],
                              source)
        values, problems = _flatten(data)
        if problems:
            raise PolicyError(problems, source)
        try:
            return cls(**values)
        except PolicyError as exc:
            raise PolicyError(exc.problems, source) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def load(cls, path: str | Path) -> ReleasePolicy:
        """Read a policy YAML file (:class:`PolicyError` on any problem)."""
        path = Path(path)
        if not path.is_file():
            raise PolicyError([f"file not found: {path}"], f"policy {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise PolicyError([f"not valid YAML: {exc}"], f"policy {path}") from None
        return cls.from_dict(data, f"policy {path}")

    # -- the decision -----------------------------------------------------------------------
    def decide(self, checks: Sequence[Check], attempt: int) -> Decision:
        """The outcome of ``attempt`` (1-based) given its checks, with the reasons."""
        privacy = [c for c in checks if c.area == "privacy" and c.passed is False]
        quality = [c for c in checks if c.area != "privacy" and c.passed is False]
        if privacy:
            names = ", ".join(c.name.split(":", 1)[-1] for c in privacy)
            reasons = [f"privacy: {names} found a risk above {self.max_attack_risk:g} (lower "
                       f"end of the {100 * self.confidence:g}% interval). A DP generator "
                       "should not leak measurably; regenerating at the same epsilon would not "
                       "fix the cause, so the data is rejected."]
            return Decision(REJECT, tuple(reasons + _describe(quality)), tuple(checks))
        if quality:
            reasons = _describe(quality)
            if attempt < self.max_attempts:
                reasons.append(f"regenerate: attempt {attempt + 1} of {self.max_attempts} "
                               "will spend its own epsilon")
                return Decision(REGENERATE, tuple(reasons), tuple(checks))
            reasons.append(f"rejected: fidelity/utility still failing after {attempt} "
                           f"attempt{'s' if attempt != 1 else ''} (max_attempts="
                           f"{self.max_attempts})")
            return Decision(REJECT, tuple(reasons), tuple(checks))
        skipped = [f"{c.name}: not checked ({c.rule})" for c in checks if c.passed is None]
        return Decision(SHIP, ("every check passed", *skipped), tuple(checks))


_RANGES: dict[str, tuple[float, float, bool]] = {
    "max_attack_risk": (0.0, 0.99, False),
    "confidence": (0.5, 0.999999, False),
    "max_tvd_1way": (0.0, 1.0, True),
    "max_tvd_2way": (0.0, 1.0, True),
    "min_utility_ratio": (0.0, 2.0, True),
    "min_anchor_gain": (-1.0, 1.0, True),
    "max_temporal_regression": (0.0, 1.0, True),
    "max_implausible_share": (0.0, 1.0, True),
    "max_attempts": (1, 10, False),
}


def _flatten(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    by_key = {(section, key): name for name, (section, key) in _LAYOUT.items()}
    sections = {s for s, _ in by_key if s}
    values: dict[str, Any] = {}
    problems = []
    version = data.get("version", POLICY_VERSION)
    if version != POLICY_VERSION:
        problems.append(f"version must be {POLICY_VERSION}; got {version!r}")
    for top, value in data.items():
        if top == "version":
            continue
        if top in sections:
            if not isinstance(value, Mapping):
                problems.append(f"{top} must be a mapping of thresholds; got {value!r}")
                continue
            for key, inner in value.items():
                if (top, key) in by_key:
                    values[by_key[(top, key)]] = inner
                else:
                    allowed = sorted(k for s, k in by_key if s == top)
                    problems.append(f"unknown key {top}.{key}; allowed: {allowed}")
        elif ("", top) in by_key:
            values[by_key[("", top)]] = value
        else:
            allowed = sorted([*sections, "max_attempts", "version"])
            problems.append(f"unknown key {top!r}; allowed top-level keys: {allowed}")
    return values, problems


def _describe(failed: Sequence[Check]) -> list[str]:
    out = []
    for c in failed:
        value = "n/a" if c.value is None else f"{c.value:.4g}"
        out.append(f"{c.name} = {value} does not meet {c.rule}")
    return out


DEFAULT_POLICY = ReleasePolicy()
"""The policy used when none is given."""


def resolve_policy(policy: ReleasePolicy | Mapping[str, Any] | str | Path | None
                   ) -> ReleasePolicy:
    """A :class:`ReleasePolicy` from an instance, a nested mapping, a YAML path, or None."""
    if policy is None:
        return DEFAULT_POLICY
    if isinstance(policy, ReleasePolicy):
        return policy
    if isinstance(policy, Mapping):
        return ReleasePolicy.from_dict(policy)
    if isinstance(policy, (str, Path)):
        return ReleasePolicy.load(policy)
    raise PolicyError([f"expected a ReleasePolicy, a mapping or a YAML path; got "
                       f"{type(policy).__name__}"])


__all__ = [
    "DEFAULT_POLICY",
    "OUTCOMES",
    "REGENERATE",
    "REJECT",
    "SHIP",
    "Check",
    "Decision",
    "PolicyError",
    "ReleasePolicy",
    "resolve_policy",
]
