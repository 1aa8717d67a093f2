"""The release gate on one synthetic table: evaluate, attack, and apply the policy.

:func:`assess` works on the output of any tool (it needs the training rows, a holdout never
used for training, and the synthetic rows), so the same gate that :func:`~dpsynth.release.
release` runs on its own attempts can judge data made elsewhere.

Everything here reads the private rows *without* differential privacy: the fidelity, utility
and attack figures are aggregate statistics for the data custodian's decision, and the dataset
card says that they are not covered by the epsilon guarantee.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from dpsynth._util.jsonable import plain
from dpsynth._util.progress import StageProgressFn
from dpsynth.attacks import AttackResult, AuditReport, RocCurve, run_audit, run_text_audit
from dpsynth.attacks.text_suite import text_check_name
from dpsynth.errors import ParameterError, param_error
from dpsynth.evaluate import average_tvd, discretize, fidelity_report, tstr_auc
from dpsynth.evaluate.association import association_difference
from dpsynth.release.policy import Check, Decision, ReleasePolicy, resolve_policy
from dpsynth.schema import CATEGORY_KINDS, Column, Schema

logger = logging.getLogger(__name__)

"""Called as ``progress(stage, done, total)`` (the audit suite's convention)."""

#: Below this many cells, the utility classifier runs on one thread: OpenMP start-up then costs
#: more than it saves, and on a busy machine many threads make it ten times slower.
_SMALL_TABLE_CELLS = 2_000_000
#: A target whose real-data classifier scores at most this AUC is not predictable, so the
#: TSTR / TRTR ratio says nothing and the utility check is skipped.
_MIN_INFORMATIVE_AUC = 0.55
FIGURE_BINS = 20


@dataclass(frozen=True)
class Marginal:
    """One column's distribution on the declared domain, real (training) and synthetic."""

    column: str
    labels: tuple[str, ...]
    real: tuple[float, ...]
    synthetic: tuple[float, ...]
    tvd: float


@dataclass(frozen=True)
class Figures:
    """What the report plots beyond the card's numbers (not written to the card)."""

    marginals: tuple[Marginal, ...] = ()
    association_columns: tuple[str, ...] = ()
    association_real: tuple[tuple[float, ...], ...] = ()
    association_synthetic: tuple[tuple[float, ...], ...] = ()
    roc: tuple[tuple[str, RocCurve], ...] = ()


@dataclass(frozen=True)
class Assessment:
    """The gate's findings on one synthetic table.

    ``audit`` is ``None`` when the table has fewer than two columns the tabular attacks can read
    (free text only); ``text_audit`` holds the text attacks' results
    (:func:`~dpsynth.attacks.run_text_audit`), ``None`` without a text column, and ``text``
    its copy and PII measurements per text column. Both reports' results are judged by the
    same rule, :attr:`~dpsynth.attacks.AuditReport.flags` (Holm across the attacks).
    """

    fidelity: dict[str, Any]
    utility: dict[str, Any] | None
    audit: AuditReport | None
    decision: Decision
    figures: Figures
    text: dict[str, Any] = field(default_factory=dict)
    text_audit: AuditReport | None = None

    @property
    def outcome(self) -> str:
        return self.decision.outcome


def assess(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
           schema: Schema, *, policy: ReleasePolicy | str | None = None,
           target: str | None = None, positive: object | None = None,
           secrets: Sequence[str] | None = None, n_targets: int = 2000, attempt: int = 1,
           random_state: int | None = None, progress: StageProgressFn | None = None) -> Assessment:
    """Evaluate and audit ``synthetic`` and apply ``policy`` (default :data:`DEFAULT_POLICY`).

    Parameters
    ----------
    train, holdout, synthetic:
        The generator's training rows, rows of the same population it never saw (the audit's
        control and the utility test set), and its output.
    schema:
        Declared domains of every column (bounds and categories): fidelity is measured on them.
        Text columns are attacked for copies of training text and of its PII instead
        (:func:`~dpsynth.attacks.run_text_audit`).
    target, positive:
        Categorical column for the utility check (train on synthetic, test on the holdout,
        against train on real) and its positive class (default: the last declared category).
    secrets:
        Columns attacked by attribute inference (default: ``target`` if given, else the last).
    n_targets:
        Training records attacked per attack.
    attempt:
        Which attempt this is (1-based), for the regenerate-or-reject rule.
    random_state:
        Seed of the audit and the utility classifier.
    """
    rules = resolve_policy(policy)
    columns = [c.name for c in schema.data_columns if c.kind != "text"]
    texts = [c.name for c in schema.data_columns if c.kind == "text"]
    _check_inputs(train, holdout, synthetic, schema, target, columns + texts)
    seeds = np.random.SeedSequence(random_state).generate_state(3)
    tick = progress or (lambda stage, done, total: None)
    tick("evaluate fidelity and utility", 0, 2)
    fidelity, figures = (_fidelity(train[columns], synthetic[columns], schema) if columns
                         else ({}, Figures()))
    tick("evaluate fidelity and utility", 1, 2)
    utility = None
    if target is not None:
        utility = _utility(train, holdout, synthetic, schema, target, positive, int(seeds[1]))
    tick("evaluate fidelity and utility", 2, 2)
    audit = None
    if len(columns) >= 2:
        audit = run_audit(train[columns], holdout[columns], synthetic[columns], schema=schema,
                          secrets=list(secrets) if secrets else ([target] if target else None),
                          n_targets=n_targets, threshold=rules.max_attack_risk,
                          confidence=rules.confidence, random_state=int(seeds[0]),
                          progress=progress)
    text_audit = (run_text_audit(train, holdout, synthetic, texts,
                                 threshold=rules.max_attack_risk, confidence=rules.confidence,
                                 random_state=int(seeds[2])) if texts else None)
    checks = _checks(rules, fidelity, utility, audit, text_audit)
    decision = rules.decide(checks, attempt)
    roc = () if audit is None else tuple((attack_label(r), r.roc) for r in audit.results
                                         if r.roc is not None)
    figures = replace(figures, roc=roc)
    logger.info("attempt %d: %s (%s)", attempt, decision.outcome, "; ".join(decision.reasons))
    return Assessment(fidelity, utility, audit, decision, figures,
                      dict(text_audit.data["text"]) if text_audit else {}, text_audit)


def attack_label(result: AttackResult) -> str:
    """``attack`` or ``attack[secret]`` for attribute inference."""
    secret, name = result.threat_model.secret, str(result.attack)
    return f"{name}[{secret}]" if secret and not name.endswith(f"[{secret}]") else name


def _check_inputs(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                  schema: Schema, target: str | None, columns: list[str]) -> None:
    problems = []
    if not isinstance(schema, Schema):
        raise param_error("schema", "a dpsynth.Schema", type(schema).__name__, "assess")
    for role, frame in (("train", train), ("holdout", holdout), ("synthetic", synthetic)):
        if not isinstance(frame, pd.DataFrame) or len(frame) < 2:
            problems.append(f"{role} must be a DataFrame with at least 2 rows")
            continue
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            problems.append(f"{role} lacks the columns {missing}")
    undeclared = [c.name for c in schema.data_columns if c.needs_domain]
    if undeclared:
        problems.append(f"the schema must declare the domains (bounds, categories) of "
                        f"{undeclared} to measure fidelity on them; pass the fitted "
                        "synthesizer's schema_ or declare them")
    if target is not None and (target not in schema or schema[target].kind not in
                               CATEGORY_KINDS):
        problems.append(str(param_error("target", "a categorical column of the schema",
                                        target, "assess")))
    if problems:
        raise ParameterError("Cannot assess the synthetic data: " + "; ".join(problems))


def _fidelity(real: pd.DataFrame, synthetic: pd.DataFrame,
              schema: Schema) -> tuple[dict[str, Any], Figures]:
    if len(real.columns) >= 2:
        report = fidelity_report(real, synthetic, schema)
    else:  # a single modelled column: no pairs to compare
        report = {"tvd_1way": average_tvd(real, synthetic, schema, way=1)}
    marginals = _marginals(real, synthetic, schema)
    a, b, mean_diff = association_difference(real, synthetic, schema)
    fidelity: dict[str, Any] = {
        **{k: float(v) for k, v in report.items()},
        "association_difference": mean_diff,
        "tvd_by_column": {m.column: m.tvd for m in marginals},
        "compared_with": "training rows",
    }
    figures = Figures(marginals, tuple(a.columns), _rows(a), _rows(b))
    return fidelity, figures


def _rows(frame: pd.DataFrame) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in frame.to_numpy())


def _marginals(real: pd.DataFrame, synthetic: pd.DataFrame,
               schema: Schema) -> tuple[Marginal, ...]:
    r = discretize(real, schema, bins=FIGURE_BINS)
    s = discretize(synthetic, schema, bins=FIGURE_BINS)
    out = []
    for name in r.columns:
        labels = _bin_labels(schema[name], FIGURE_BINS)
        k = len(labels)
        p = np.bincount(r[name].to_numpy() + 1, minlength=k + 1) / len(r)
        q = np.bincount(s[name].to_numpy() + 1, minlength=k + 1) / len(s)
        tvd = float(0.5 * np.abs(p - q).sum())
        keep = np.ones(k + 1, dtype=bool)
        keep[0] = p[0] > 0 or q[0] > 0  # the null / unknown bar, only when it is used
        if schema[name].kind == "integer":  # bins holding no integer stay empty: drop them
            keep[1:] &= (p[1:] > 0) | (q[1:] > 0)
        shown = np.array(["missing/other", *labels], dtype=object)[keep]
        out.append(Marginal(name, tuple(str(x) for x in shown),
                            tuple(float(x) for x in p[keep]), tuple(float(x) for x in q[keep]),
                            tvd))
    return tuple(out)


def _bin_labels(column: Column, bins: int) -> tuple[str, ...]:
    if column.kind in CATEGORY_KINDS:
        return tuple(str(c) for c in column.categories or ())
    lo, hi = column.bound_values()
    edges = np.linspace(lo, hi, bins + 1)
    if column.kind == "datetime":
        return tuple(str(pd.Timestamp(int(e)).date()) for e in edges[:-1])
    if column.kind == "integer":
        firsts = np.ceil(edges[:-1]).astype(np.int64)
        lasts = np.r_[np.ceil(edges[1:-1]).astype(np.int64) - 1, int(np.floor(edges[-1]))]
        return tuple(str(a) if a >= b else f"{a}-{b}" for a, b in zip(firsts, lasts,
                                                                       strict=True))
    return tuple(f"{e:.4g}" for e in edges[:-1])


def _utility(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
             schema: Schema, target: str, positive: object | None,
             seed: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    small = len(train) * len(schema.data_columns) < _SMALL_TABLE_CELLS
    with threadpool_limits(limits=1 if small else None, user_api="openmp"):
        tstr = tstr_auc(synthetic, holdout, schema, target, positive=positive,
                        random_state=seed)
        trtr = tstr_auc(train, holdout, schema, target, positive=positive, random_state=seed)
    cats = schema[target].categories or ()
    return {"target": target, "positive": plain(positive if positive is not None
                                                  else (cats[-1] if cats else None)),
            "tstr_auc": tstr, "trtr_auc": trtr, "ratio": tstr / trtr if trtr > 0 else None,
            "tested_on": "holdout rows"}


def check_name(result: AttackResult) -> str:
    """The release check of an attack result: ``attack:<label>`` or ``text:<column>:<measure>``."""
    if result.attack.startswith("text_"):
        return text_check_name(result)
    return f"attack:{attack_label(result)}"


def _checks(rules: ReleasePolicy, fidelity: dict[str, Any], utility: dict[str, Any] | None,
            audit: AuditReport | None, text_audit: AuditReport | None) -> list[Check]:
    conf = f"{100 * rules.confidence:g}%"
    flagged = [(r, f) for report in (audit, text_audit) if report is not None
               for r, f in zip(report.results, report.flags, strict=True)]
    checks = [Check(check_name(r), "privacy", r.risk.ci[0], r.threshold, not f,
                    f"risk lower bound ({conf}) <= {r.threshold:g}, or not kept by Holm's rule")
              for r, f in flagged]
    for way, limit in (("tvd_1way", rules.max_tvd_1way), ("tvd_2way", rules.max_tvd_2way)):
        if limit is not None and fidelity.get(way) is not None:
            checks.append(Check(f"fidelity:{way}", "fidelity", fidelity[way], limit,
                                fidelity[way] <= limit, f"<= {limit:g}"))
    if rules.min_utility_ratio is not None:
        checks.append(_utility_check(rules.min_utility_ratio, utility))
    return checks


def _utility_check(limit: float, utility: dict[str, Any] | None) -> Check:
    name, rule = "utility:tstr_trtr_ratio", f">= {limit:g}"
    if utility is None:
        return Check(name, "utility", None, limit, None, "no target column was given")
    if utility["trtr_auc"] <= _MIN_INFORMATIVE_AUC or utility["ratio"] is None:
        return Check(name, "utility", utility["ratio"], limit, None,
                     f"the target is not predictable from the real data (TRTR AUC "
                     f"{utility['trtr_auc']:.3f} <= {_MIN_INFORMATIVE_AUC})")
    return Check(name, "utility", utility["ratio"], limit, utility["ratio"] >= limit, rule)


__all__ = ["Assessment", "Figures", "Marginal", "assess", "attack_label", "check_name"]
