"""Run every attack on a synthetic table and combine the verdicts.

The suite answers from the data alone - training rows, a holdout never used for training, and
the synthetic rows - so it audits the output of any tool, and it is the gate dpsynth runs on its
own output before a release.

**Audit-wide rule.** Each attack gives a one-sided p-value for "its risk exceeds its threshold"
(:func:`dpsynth.attacks.stats.risk_p_value`). The audit flags an attack when Holm's step-down
rule rejects at family level ``1 - confidence`` *and* the attack's own interval clears its
threshold; the verdict is ``leak`` when any attack is flagged. Holm keeps the chance of any
false alarm at or below ``1 - confidence`` however many attacks run, so adding attacks does
not inflate false alarms; the second condition keeps every flagged attack a leak by its own
figures too. The copy attacks use their own threshold of 0 (a copy is direct evidence).

Each attack draws its randomness from a generator derived from the audit's seed and the attack's
name, so an attack gives the same result whichever other attacks run beside it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth._util.jsonable import json_default
from dpsynth._util.progress import StageProgressFn, stage
from dpsynth._util.seeds import child_rng, resolve_seed
from dpsynth._version import __version__
from dpsynth.attacks.copies import COPY_THRESHOLD, exact_copies, near_copies
from dpsynth.attacks.inference import attribute_inference
from dpsynth.attacks.linkability import linkability
from dpsynth.attacks.membership import dcr_membership, domias_membership
from dpsynth.attacks.rare import rare_records
from dpsynth.attacks.result import LEAK, NO_RISK, AttackResult, rule_problems
from dpsynth.attacks.singling_out import singling_out
from dpsynth.attacks.stats import holm_rejections
from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import ModelFormatError, ParameterError, param_error
from dpsynth.schema import Schema

logger = logging.getLogger(__name__)

FORMAT = "dpsynth.audit"
FORMAT_VERSION = 1

def _singling_out_univariate(data: AuditData, threat: ThreatModel | None = None,
                             **kwargs: Any) -> AttackResult:
    return singling_out(data, threat, mode="univariate", **kwargs)


def _singling_out_multivariate(data: AuditData, threat: ThreatModel | None = None,
                               **kwargs: Any) -> AttackResult:
    return singling_out(data, threat, mode="multivariate", **kwargs)


ATTACKS: Mapping[str, Callable[..., AttackResult]] = {
    "dcr_membership": dcr_membership,
    "domias_membership": domias_membership,
    "rare_records": rare_records,
    "singling_out_univariate": _singling_out_univariate,
    "singling_out_multivariate": _singling_out_multivariate,
    "linkability": linkability,
    "exact_copies": exact_copies,
    "near_copies": near_copies,
    "attribute_inference": attribute_inference,
}
"""Every attack of the suite, by name. Each is called as
``attack(data, threat, *, threshold, confidence, random_state, progress)``."""

FIXED_THRESHOLDS: Mapping[str, float] = {"exact_copies": COPY_THRESHOLD,
                                         "near_copies": COPY_THRESHOLD}
"""Attacks whose verdict threshold does not follow the audit's ``threshold``."""


def audit_flags(results: Sequence[AttackResult], confidence: float) -> tuple[bool, ...]:
    """Which results the audit flags: Holm at level ``1 - confidence``, and a leak alone.

    Results without a p-value (saved before it existed) count by their own verdict.
    """
    if not results:
        return ()
    p_values = [(0.0 if r.leak else 1.0) if r.p_value is None else r.p_value for r in results]
    holm = holm_rejections(p_values, 1.0 - confidence)
    return tuple(bool(h and r.leak) for h, r in zip(holm, results, strict=True))


def _threat_for(name: str, n_targets: int, secret: str | None) -> ThreatModel:
    if name in ("dcr_membership", "exact_copies", "near_copies"):
        return ThreatModel.membership(n_targets)
    if name == "domias_membership":
        return ThreatModel.membership(n_targets, reference=True)
    if name == "rare_records":
        return ThreatModel.membership(min(50, n_targets), reference=True,
                                      targets="vulnerable")
    if name.startswith("singling_out"):
        return ThreatModel.singling_out(min(500, n_targets))
    if name == "linkability":
        return ThreatModel.linkability(None, n_targets)
    assert secret is not None
    return ThreatModel.attribute_inference(secret, n_targets)


@dataclass(frozen=True)
class AuditReport:
    """All attack results of one audit, with the overall verdict (JSON: :meth:`to_dict`)."""

    results: tuple[AttackResult, ...]
    threshold: float
    confidence: float
    seed: int
    data: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    created: str = ""
    version: str = __version__
    generator_audit: Mapping[str, Any] | None = None
    """Set by :func:`~dpsynth.attacks.generator_audit.audit_generator`: the generator, its
    accounted epsilon and the empirical lower bounds; ``violated`` makes the verdict a leak."""

    @property
    def violated(self) -> bool:
        """An empirical epsilon lower bound exceeds the generator's accounted epsilon."""
        return bool(self.generator_audit and self.generator_audit.get("violated"))

    @property
    def flags(self) -> tuple[bool, ...]:
        """Per result, whether the audit-wide rule flags it (see the module docstring)."""
        return audit_flags(self.results, self.confidence)

    @property
    def leak(self) -> bool:
        return any(self.flags) or self.violated

    @property
    def verdict(self) -> str:
        return LEAK if self.leak else NO_RISK

    def exposed_row_ids(self, limit: int = 20) -> list[tuple[int | str, int]]:
        """Training row ids exposed by the most leaking attacks, with how many exposed each."""
        counts: Counter[int | str] = Counter()
        for result, flagged in zip(self.results, self.flags, strict=True):
            if flagged:
                counts.update(result.exposed_row_ids)
        return counts.most_common(limit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "dpsynth_version": self.version,
            "created": self.created, "verdict": self.verdict, "leak": self.leak,
            "threshold": self.threshold, "confidence": self.confidence, "seed": self.seed,
            "rule": f"Holm at family level {1 - self.confidence:.3g} over {len(self.results)}"
                    " attacks (one-sided p-values), each flagged attack a leak alone",
            "flagged": [r.attack if r.threat_model.secret is None
                        else f"{r.attack}[{r.threat_model.secret}]"
                        for r, f in zip(self.results, self.flags, strict=True) if f],
            "seconds": self.seconds, "data": dict(self.data),
            "exposed_row_ids": [{"row_id": r, "attacks": n} for r, n in self.exposed_row_ids()],
            "attacks": [r.to_dict() for r in self.results],
        } | ({} if self.generator_audit is None else
             {"generator_audit": dict(self.generator_audit)})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditReport:
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(f"not a {FORMAT} v{FORMAT_VERSION} document: format="
                                   f"{data.get('format')!r} v{data.get('format_version')!r}")
        return cls(results=tuple(AttackResult.from_dict(r) for r in data["attacks"]),
                   threshold=float(data["threshold"]), confidence=float(data["confidence"]),
                   seed=int(data["seed"]), data=dict(data.get("data", {})),
                   seconds=float(data.get("seconds", 0.0)), created=str(data.get("created", "")),
                   version=str(data.get("dpsynth_version", "")),
                   generator_audit=data.get("generator_audit"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=json_default)

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> AuditReport:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _check(attacks: Sequence[str], secrets: Sequence[str] | None, columns: Sequence[str],
           n_targets: int, threshold: float, confidence: float,
           max_rows: int | None = None) -> None:
    problems = rule_problems(threshold, confidence, "run_audit")
    unknown_secrets = [s for s in secrets or () if s not in columns]
    if unknown_secrets:
        problems.append(str(param_error("secrets", f"columns of the training table {list(columns)}",
                                        unknown_secrets, "run_audit")))
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        problems.append(str(param_error("attacks", f"a non-empty list of {list(ATTACKS)}",
                                        list(attacks), "run_audit")))
    if not (isinstance(n_targets, (int, np.integer)) and n_targets >= 10):
        problems.append(str(param_error("n_targets", "an integer >= 10", n_targets,
                                        "run_audit")))
    if max_rows is not None and not (isinstance(max_rows, (int, np.integer))
                                     and not isinstance(max_rows, bool) and max_rows >= 100):
        problems.append(str(param_error("max_rows", "an integer >= 100 or None", max_rows,
                                        "run_audit")))
    if problems:
        raise ParameterError(" ".join(problems))


def _sampling(data: AuditData, n_targets: int, max_rows: int | None) -> dict[str, Any]:
    """How the audit sampled its targets, for the report."""
    n = min(len(data.train), len(data.control))
    return {
        "n_targets": int(min(n_targets, n)),
        "targets_sampled": bool(n_targets < max(len(data.train), len(data.control))),
        "rare_records_ranked": int(n if max_rows is None else min(max_rows, n)),
        "note": "each attack draws its own random targets from the training rows and as many "
                "controls from the holdout (its n_targets); intervals are for that many; the "
                "synthetic table and the holdout are searched whole",
    }


def _plan(data: AuditData, attacks: Sequence[str], secrets: Sequence[str] | None,
          n_targets: int) -> list[tuple[str, ThreatModel]]:
    """(attack name, threat model) pairs; attribute inference once per secret."""
    chosen = list(secrets) if secrets else [data.columns[-1]]
    unknown = [s for s in chosen if s not in data.columns]
    if unknown:
        raise param_error("secrets", f"audited columns among {list(data.columns)}", unknown,
                          "run_audit")
    plan = []
    for name in attacks:
        for secret in (chosen if name == "attribute_inference" else [None]):
            plan.append((name, _threat_for(name, n_targets, secret)))
    return plan


def run_audit(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, *,
              schema: Schema | None = None, reference: pd.DataFrame | None = None,
              secrets: Sequence[str] | None = None, attacks: Sequence[str] | None = None,
              n_targets: int = 2000, max_rows: int | None = 20_000,
              threshold: float = 0.05, confidence: float = 0.95,
              random_state: int | np.random.Generator | None = None,
              progress: StageProgressFn | None = None) -> AuditReport:
    """Audit ``synthetic`` for leaks about ``train``, with ``holdout`` as the control.

    Parameters
    ----------
    train, holdout, synthetic:
        The generator's training rows, rows of the same population it never saw, and its
        output. Train and holdout should be of similar size (the larger is subsampled where
        sizes matter).
    schema:
        Column kinds and declared categories; inferred from dtypes when absent.
    reference:
        Extra population rows for DOMIAS; by default half of the holdout plays that part.
    secrets, attacks:
        Columns attacked by attribute inference (default: the last audited column); names
        from :data:`ATTACKS` (default: all).
    n_targets:
        Training records attacked per attack, a random sample (and as many controls from the
        holdout); the report gives each attack's count, and its intervals are for that many.
        The synthetic table is always searched whole.
    max_rows:
        Training rows (and as many holdout rows) the rare-record attack ranks by
        vulnerability: a random sample beyond it; ``None`` ranks them all. Singling-out
        predicates are checked on the whole tables.
    threshold, confidence:
        An attack is a leak when its risk interval's lower end exceeds ``threshold`` (0 for
        copy attacks); the audit flags the leaks Holm's rule at ``1 - confidence`` keeps.
    random_state:
        Seed for target selection and every attack's randomness.
    progress:
        Optional ``progress(stage, done, total)`` callback.
    """
    attacks = list(ATTACKS) if attacks is None else list(attacks)
    columns = list(train.columns) if isinstance(train, pd.DataFrame) else []
    _check(attacks, secrets, columns, n_targets, threshold, confidence, max_rows)
    seed = resolve_seed(random_state, "run_audit")
    start = time.perf_counter()
    data = AuditData.from_frames(train, holdout, synthetic, schema=schema, reference=reference)
    plan = _plan(data, attacks, secrets, n_targets)
    results = []
    for step, (name, threat) in enumerate(plan):
        label = name if threat.secret is None else f"{name}[{threat.secret}]"
        tick = stage(progress, label, announce=True)
        rng = child_rng(seed, zlib.crc32(label.encode()))
        began = time.perf_counter()
        rule = {"threshold": FIXED_THRESHOLDS.get(name, threshold), "confidence": confidence}
        extra = {"max_rows": max_rows} if name == "rare_records" else {}
        result = ATTACKS[name](data, threat, **rule, **extra,
                               random_state=rng, progress=tick)
        results.append(replace(result, seconds=round(time.perf_counter() - began, 3)))
        logger.info("attack %d/%d %s: %s", step + 1, len(plan), label, result.verdict)
        if tick is not None:
            tick(1, 1)
    summary = {
        "n_train": len(data.train), "n_holdout": len(data.control),
        "n_synthetic": len(data.synthetic),
        "n_reference": None if data.reference is None else len(data.reference),
        "columns": data.kinds,
        "sampling": _sampling(data, n_targets, max_rows),
    }
    return AuditReport(tuple(results), threshold, confidence, seed, summary,
                       round(time.perf_counter() - start, 3),
                       _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
