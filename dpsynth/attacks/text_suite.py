"""Run the text attacks on free-text columns and report them as an :class:`AuditReport`.

The same report type, verdict rule and JSON/HTML output as :func:`~dpsynth.attacks.run_audit`:
per text column, exact, long-substring and near-verbatim copies of training records and the
reproduction of their PII (:mod:`dpsynth.attacks.text`), and, given the fitted model, loss
membership inference (:mod:`dpsynth.attacks.text_model`). ``report.data["text"]`` keeps each
column's measurements (rates on training and holdout text, substring lengths, PII counts;
never a text value) for cards and printed summaries.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from dpsynth._util.jsonable import to_jsonable
from dpsynth._util.seeds import resolve_seed
from dpsynth.attacks.protocols import SequenceScorer
from dpsynth.attacks.result import AttackResult, rule_problems
from dpsynth.attacks.suite import AuditReport
from dpsynth.attacks.text import TextData, copy_attacks, pii_attack
from dpsynth.attacks.text_model import loss_membership
from dpsynth.errors import DataValidationError, ParameterError, param_error

#: Result names of the text attacks, with the measure each check is named after.
TEXT_ATTACKS = {"text_exact": "exact", "text_long_copy": "long_copy",
                "text_near_verbatim": "near_verbatim", "text_pii": "pii",
                "text_loss_membership": "loss_membership",
                "text_canary_exposure": "canary_exposure"}


def run_text_audit(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                   columns: Sequence[str], *, model: SequenceScorer | None = None,
                   n_targets: int = 1000, threshold: float = 0.05, confidence: float = 0.95,
                   random_state: int | None = None) -> AuditReport:
    """Audit the free-text ``columns`` of ``synthetic`` for copies of ``train``.

    Parameters
    ----------
    train, holdout, synthetic:
        The generator's training rows, rows of the same population it never saw (the
        control), and its output; each holds ``columns``.
    columns:
        The free-text columns to audit.
    model:
        The fitted text model (one text column only): also run loss membership inference.
    n_targets:
        Records of each arm the membership attack scores.
    threshold, confidence:
        The verdict rule of every attack (see :mod:`dpsynth.attacks.result`).
    random_state:
        Seed of the training subsets compared and of the membership attack's draws.
    """
    _check(train, holdout, synthetic, columns, model, threshold, confidence)
    seed = resolve_seed(random_state, "run_text_audit")
    start = time.perf_counter()
    results: list[AttackResult] = []
    measures: dict[str, Any] = {}
    for name in columns:
        data = TextData.from_frames(train, holdout, synthetic, name)
        began = time.perf_counter()
        copies, found = copy_attacks(data, threshold=threshold, confidence=confidence,
                                     random_state=seed)
        pii, leaked = pii_attack(data, threshold=threshold, confidence=confidence)
        took = round(time.perf_counter() - began, 3)
        results += [_timed(r, took) for r in (*found, leaked)]
        measures[name] = to_jsonable({
            "reproduction": copies, "pii": pii,
            "mean_length_real": _mean_length(data.train),
            "mean_length_synthetic": _mean_length(data.synthetic)}, nonfinite="null")
    if model is not None:
        began = time.perf_counter()
        mia = loss_membership(model, train, holdout, column=columns[0], n_targets=n_targets,
                              threshold=threshold, confidence=confidence, random_state=seed)
        results.append(_timed(mia, round(time.perf_counter() - began, 3)))
    summary = {"n_train": len(train), "n_holdout": len(holdout), "n_synthetic": len(synthetic),
               "n_reference": None, "columns": {name: "text" for name in columns},
               "text": measures}
    return AuditReport(tuple(results), threshold, confidence, seed, summary,
                       round(time.perf_counter() - start, 3),
                       _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def text_check_name(result: AttackResult) -> str:
    """``text:<column>:<measure>`` for a text attack's result (``text:note:exact``)."""
    measure = TEXT_ATTACKS.get(result.attack, result.attack)
    return f"text:{result.threat_model.secret}:{measure}"


def _timed(result: AttackResult, seconds: float) -> AttackResult:
    return replace(result, seconds=seconds)


def _mean_length(texts: Sequence[str]) -> float:
    return float(sum(len(t) for t in texts) / len(texts)) if texts else 0.0


def _check(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
           columns: Sequence[str], model: SequenceScorer | None, threshold: float,
           confidence: float) -> None:
    problems = rule_problems(threshold, confidence, "run_text_audit")
    if not columns or isinstance(columns, str):
        problems.append(str(param_error("columns", "a non-empty list of text columns",
                                        columns, "run_text_audit")))
    if model is not None and len(columns) != 1:
        problems.append(str(param_error("model", "None when more than one column is audited",
                                        type(model).__name__, "run_text_audit")))
    if problems:
        raise ParameterError(" ".join(problems))
    missing = [f"the {role} table lacks the columns {[c for c in columns if c not in f]}"
               for role, f in (("train", train), ("holdout", holdout), ("synthetic", synthetic))
               if any(c not in f for c in columns)]
    if missing:
        raise DataValidationError(missing)


__all__ = ["TEXT_ATTACKS", "run_text_audit", "text_check_name"]
