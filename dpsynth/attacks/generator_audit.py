"""Audit a generator itself: shadow-model attacks, canaries, and an empirical epsilon.

A DP guarantee is only as good as its implementation: Annamalai, Ganev and De Cristofaro
("'What do you want from theory alone?' Experimenting with Tight Auditing of Differentially
Private Synthetic Data Generation", USENIX Security 2024) found violations in four of six DP
synthetic-data implementations they audited. :func:`audit_generator` attacks a generator the
way the strongest papers do and checks the empirical lower bound on epsilon against the
epsilon the generator claims:

1. targets: the most vulnerable population records (Meeus et al., ESORICS 2023), random ones
   for contrast, and crafted canaries (:mod:`~dpsynth.attacks.canary`);
2. shadow runs (:mod:`~dpsynth.attacks.shadow`): the generator trained many times on reference
   rows plus each target with probability 1/2, in parallel (:mod:`~dpsynth.attacks.runner`);
3. one Groundhog classifier per target (Stadler et al., USENIX Security 2022), its AUC and
   its counts on fresh runs, and a Clopper-Pearson bound on epsilon per target (Jagielski et
   al., NeurIPS 2020);
4. for marginal generators (MST, AIM), the generator-aware black-box attack MAMA-MIA (Golob
   et al., arXiv 2410.05506; :mod:`~dpsynth.attacks.mama`) on the same runs: it trains
   nothing, and knows only the generator's family, the population and each synthetic table;
5. a one-run audit with many canaries (Steinke, Nasr and Jagielski, NeurIPS 2023).

All bounds share the confidence level Bonferroni-wise, so the largest holds at the stated
confidence. The result is an :class:`~dpsynth.attacks.suite.AuditReport`; when the largest
bound exceeds the accounted epsilon the verdict is a leak and the report says ``violated``:
a bug in dpsynth or in the generator under test.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth._util.jsonable import plain_id
from dpsynth._util.progress import StageProgressFn, stage
from dpsynth._util.seeds import child_rng, resolve_seed
from dpsynth.attacks.canary import OneRunContext, craft_canaries, one_run_bound, one_run_task
from dpsynth.attacks.distance import MixedEncoder, audited_kinds, nearest
from dpsynth.attacks.empirical_eps import EpsilonBound, epsilon_ceiling
from dpsynth.attacks.generators import DpsynthGenerator, Generator
from dpsynth.attacks.mama import FAMILIES, MamaModel, mama_outcomes
from dpsynth.attacks.rare import vulnerability
from dpsynth.attacks.result import AttackResult, rule_problems, score_attack
from dpsynth.attacks.result import roc_curve as _roc
from dpsynth.attacks.runner import RunBatch, run_many
from dpsynth.attacks.shadow import (
    Featurizer,
    ShadowContext,
    ShadowRun,
    TargetOutcome,
    attack_targets,
    shadow_run,
)
from dpsynth.attacks.stats import tpr_at_fpr
from dpsynth.attacks.suite import AuditReport
from dpsynth.attacks.threat import ThreatModel
from dpsynth.errors import DataValidationError, GeneratorError, ParameterError, param_error
from dpsynth.schema import Schema

logger = logging.getLogger(__name__)

_MIN_RUNS = 10


@dataclass(frozen=True)
class ShadowPlan:
    """The sizes of a generator audit (see :func:`audit_generator`)."""

    n_rows: int | None = None
    n_synthetic: int | None = None
    n_vulnerable: int = 5
    n_random: int = 5
    n_canaries: int = 1
    n_shadow_train: int = 100
    n_shadow_test: int = 100
    one_run_canaries: int = 200

    def problems(self) -> list[str]:
        out = []
        for name, low in (("n_vulnerable", 0), ("n_random", 0), ("n_canaries", 0),
                          ("n_shadow_train", _MIN_RUNS), ("n_shadow_test", _MIN_RUNS),
                          ("one_run_canaries", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                out.append(str(param_error(name, f"an integer >= {low}", v, "audit_generator")))
        for name in ("n_rows", "n_synthetic"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                  or v < 2):
                out.append(str(param_error(name, "None or an integer >= 2", v,
                                           "audit_generator")))
        if self.n_vulnerable + self.n_random + self.n_canaries < 1:
            out.append("audit_generator needs at least one target (n_vulnerable, n_random or "
                       "n_canaries)")
        return out


def _group_results(outcomes: list[TargetOutcome], threshold: float, confidence: float, seed: int,
                   n_train: int, n_test: int, mama: str | None = None) -> list[AttackResult]:
    """One membership result per target group (vulnerable, random, canary) that has targets;
    ``mama``: the outcomes are MAMA-MIA's on a generator of that family."""
    return [_group_result(group, [o for o in outcomes if o.kind == group], threshold,
                          confidence, seed, n_train, n_test, mama)
            for group in ("vulnerable", "random", "canary")
            if any(o.kind == group for o in outcomes)]


def _mama_family(generator: Generator, family: str | None) -> str | None:
    """The family MAMA-MIA assumes: ``family``, else a dpsynth mst/aim synthesizer's name;
    None (no MAMA-MIA) for other generators or ``family="none"``."""
    if family == "none":
        return None
    if family is None and isinstance(generator, DpsynthGenerator) and \
            generator.synthesizer in FAMILIES:
        return generator.synthesizer
    return family


def _check_inputs(generator: Generator, plan: ShadowPlan, threshold: float,
                  confidence: float, family: str | None = None) -> None:
    """Raise one :class:`ParameterError` naming every bad input of :func:`audit_generator`."""
    problems = plan.problems() + rule_problems(threshold, confidence, "audit_generator")
    if family is not None and family not in (*FAMILIES, "none"):
        problems.append(str(param_error("family", f"None, 'none' or one of {FAMILIES}",
                                        family, "audit_generator")))
    if not isinstance(generator, Generator):
        problems.append(str(param_error("generator", "a dpsynth.attacks.generators.Generator",
                                        type(generator).__name__, "audit_generator")))
    if problems:
        raise ParameterError(" ".join(problems))


def audit_generator(generator: Generator, population: pd.DataFrame, *,
                    schema: Schema | None = None, plan: ShadowPlan | None = None,
                    threshold: float = 0.05, confidence: float = 0.95,
                    random_state: int | np.random.Generator | None = None,
                    n_jobs: int | None = None, ray_address: str | None = None,
                    progress: StageProgressFn | None = None,
                    family: str | None = None) -> AuditReport:
    """Attack ``generator`` with shadow models and canaries; bound its epsilon from below.

    Parameters
    ----------
    generator:
        A :class:`~dpsynth.attacks.generators.Generator` (dpsynth synthesizer, Python
        callable or command line).
    population:
        Reference rows from the population (the attacker's knowledge); shadow datasets,
        targets and canaries come from them. Never the private table itself.
    schema:
        Column kinds and declared domains (inferred from dtypes when absent).
    plan:
        Sizes: rows per shadow dataset (``n_rows``, default ``min(1000, pool / 2)``), synthetic
        rows per run (default ``n_rows``), targets, shadow runs for training and testing the
        classifiers, canaries of the one-run audit (0 skips it).
    threshold, confidence:
        Verdict rule of the membership results (as :func:`~dpsynth.attacks.run_audit`), and
        the confidence of the epsilon lower bound.
    random_state:
        Master seed; results are identical for a seed whatever ``n_jobs`` or Ray.
    n_jobs, ray_address:
        Local worker processes (default: the usable CPUs), or a Ray cluster's address.
    family:
        The marginal-generator family (``"mst"``, ``"aim"``) MAMA-MIA assumes
        (:mod:`~dpsynth.attacks.mama`), scored on the same shadow runs beside the Groundhog
        attack and adding its own epsilon bounds. Default: the synthesizer's name for a
        dpsynth ``mst`` or ``aim`` generator, none for others; ``"none"`` leaves it out.
    """
    plan = plan or ShadowPlan()
    _check_inputs(generator, plan, threshold, confidence, family)
    family = _mama_family(generator, family)
    if isinstance(generator, DpsynthGenerator):
        generator.check()
        schema = schema if schema is not None else generator.schema
    seed = resolve_seed(random_state, "audit_generator")
    start = time.perf_counter()
    setup = _setup(population, schema, plan, seed)
    tick = stage(progress, "shadow runs", announce=True)
    n_runs = plan.n_shadow_train + plan.n_shadow_test
    mama = None if family is None else MamaModel.from_values(
        setup.encoder.values(setup.pool), setup.encoder, family=family,
        epsilon=generator.epsilon if (generator.epsilon or 0) > 0 else None,
        delta=generator.delta or 1e-5,
        n_train=setup.n_rows + len(setup.ids) // 2)
    ctx = ShadowContext(generator, setup.pool, setup.targets, setup.featurizer, setup.n_rows,
                        setup.n_synthetic, mama)
    batch = run_many(shadow_run, ctx, n_runs, seed=seed, n_jobs=n_jobs,
                     ray_address=ray_address, progress=tick)
    runs, n_train = _split_runs(batch, plan.n_shadow_train)
    delta = privacy[1] if (privacy := generator.privacy(setup.n_rows)) else 0.0
    n_bounds = len(setup.ids) * (2 if mama else 1) + (1 if plan.one_run_canaries else 0)
    level = 1 - (1 - confidence) / n_bounds
    forest_seed = int(np.random.SeedSequence([seed, 3]).generate_state(1)[0] >> 1)  # < 2**31
    outcomes = attack_targets(runs, n_train, setup.ids, setup.kinds, setup.vulnerability,
                              delta=delta, confidence=level, seed=forest_seed)
    bounds = [_target_bound(o, delta, level) for o in outcomes]
    results = _group_results(outcomes, threshold, confidence, seed, n_train,
                             len(runs) - n_train)
    mama_found: list[TargetOutcome] = []
    if family is not None:
        mama_found = mama_outcomes(runs, n_train, setup.ids, setup.kinds, setup.vulnerability,
                                   delta=delta, confidence=level)
        bounds += [_target_bound(o, delta, level, "mama:") for o in mama_found]
        results += _group_results(mama_found, threshold, confidence, seed, n_train,
                                  len(runs) - n_train, family)
    one_run = None
    if plan.one_run_canaries:
        one_run = _one_run(generator, setup, plan.one_run_canaries, delta, level, seed,
                           n_jobs, ray_address, progress)
        bounds.append(one_run[0])
    return _report(generator, privacy, outcomes, bounds, results, one_run, batch, setup,
                   threshold, confidence, seed, time.perf_counter() - start,
                   (family, mama_found))


@dataclass(frozen=True, eq=False)
class _Setup:
    encoder: MixedEncoder
    pool: pd.DataFrame
    targets: pd.DataFrame
    ids: tuple[int | str, ...]
    kinds: tuple[str, ...]
    vulnerability: np.ndarray
    featurizer: Featurizer
    n_rows: int
    n_synthetic: int
    schema: Schema | None


def _setup(population: pd.DataFrame, schema: Schema | None, plan: ShadowPlan,
           seed: int) -> _Setup:
    """Code the population, pick the targets, craft canaries, build the featurizer."""
    n_real = plan.n_vulnerable + plan.n_random
    if not isinstance(population, pd.DataFrame) or len(population) < n_real + 20:
        raise DataValidationError([f"the population table must be a DataFrame with at least "
                                   f"{n_real + 20} rows (targets plus a pool to sample from)"])
    rng = child_rng(seed, 0)
    encoder = MixedEncoder(audited_kinds(population, schema), schema).fit([population])
    values = encoder.values(population)
    x = encoder.embed(values)
    score = vulnerability(x, rng)[0]
    ranked = np.argsort(-score, kind="stable")
    vulnerable = ranked[: plan.n_vulnerable]
    rest = np.setdiff1d(np.arange(len(population)), vulnerable)
    chosen = np.concatenate([vulnerable, rng.choice(rest, size=plan.n_random, replace=False)])
    pool = population.iloc[np.setdiff1d(np.arange(len(population)), chosen)].reset_index(
        drop=True)
    canaries = craft_canaries(population, encoder, plan.n_canaries, rng, schema=schema) \
        if plan.n_canaries else population.iloc[:0]
    targets = pd.concat([population.iloc[chosen], canaries])
    ids = tuple(plain_id(i) for i in targets.index)
    kinds = ("vulnerable",) * plan.n_vulnerable + ("random",) * plan.n_random + \
        ("canary",) * len(canaries)
    canary_score = vulnerability(np.vstack([x, encoder.transform(canaries)]), rng)[0][len(x):] \
        if len(canaries) else np.zeros(0)
    targets = targets.reset_index(drop=True)
    pool_x = encoder.transform(pool)
    featurizer = Featurizer.build(encoder, pool_x, encoder.values(pool), targets)
    n_rows = plan.n_rows or min(1000, len(pool) // 2)
    if n_rows > len(pool):
        raise param_error("n_rows", f"at most the {len(pool)} population rows left after "
                          "taking the targets", n_rows, "audit_generator")
    return _Setup(encoder, pool, targets, ids, kinds,
                  np.concatenate([score[chosen], canary_score]), featurizer, n_rows,
                  plan.n_synthetic or n_rows, schema)


def _split_runs(batch: RunBatch, n_train: int) -> tuple[list[ShadowRun], int]:
    """Successful runs, training ones first; raise when too few are left to attack."""
    train = [o.value for o in batch.outcomes if o.ok and o.index < n_train]
    test = [o.value for o in batch.outcomes if o.ok and o.index >= n_train]
    if len(train) < _MIN_RUNS or len(test) < _MIN_RUNS:
        errors = "; ".join(f"run {o.index}: {o.error}" for o in batch.failed[:3])
        raise GeneratorError(f"{len(batch.failed)} of {len(batch.outcomes)} shadow runs failed "
                             f"(each tried twice), too many to attack: {errors}")
    return train + test, len(train)


def _target_bound(o: TargetOutcome, delta: float, level: float,
                  prefix: str = "") -> EpsilonBound:
    return EpsilonBound(o.epsilon_lower, "clopper_pearson", level, delta,
                        epsilon_ceiling(o.tp + o.fn, o.fp + o.tn, delta=delta,
                                        confidence=level),
                        {"tp": o.tp, "fp": o.fp, "tn": o.tn, "fn": o.fn},
                        f"{prefix}{o.kind}:{o.row_id}")


def _group_result(group: str, outcomes: Sequence[TargetOutcome], threshold: float,
                  confidence: float, seed: int, n_train: int, n_test: int,
                  mama: str | None = None) -> AttackResult:
    """One result per target group: rates pooled over its targets' test runs (Groundhog's,
    or MAMA-MIA's on a generator of family ``mama``)."""
    hits = np.concatenate([np.array(o.member_scores) >= o.threshold for o in outcomes])
    control = np.concatenate([np.array(o.other_scores) >= o.threshold for o in outcomes])
    rng = child_rng(seed, len(group))
    rate = float(np.concatenate([hits, control]).mean()) if hits.size + control.size else 0.0
    aucs = np.array([o.auc for o in outcomes], dtype=float)
    known = aucs[np.isfinite(aucs)]
    metrics: dict[str, float | int | str | None] = {
        "auc": None, "auc_mean": float(known.mean()) if known.size else None,
        "auc_max": float(known.max()) if known.size else None,
        "auc_min": float(known.min()) if known.size else None,
        "n_target_records": len(outcomes), "n_shadow_train": n_train, "n_shadow_test": n_test,
        "tpr_at_fpr_10pct": None, "tpr_at_fpr_1pct": None,
        "epsilon_lower": max(o.epsilon_lower for o in outcomes),
    }
    roc = None
    if hits.size and control.size:
        roc, fpr, tpr = _roc(np.concatenate([o.member_scores for o in outcomes]),
                             np.concatenate([o.other_scores for o in outcomes]))
        metrics.update(auc=roc.auc, tpr_at_fpr_10pct=tpr_at_fpr(fpr, tpr, 0.1, control.size),
                       tpr_at_fpr_1pct=tpr_at_fpr(fpr, tpr, 0.01, control.size))
    order = np.argsort(-np.nan_to_num(aucs, nan=0.0), kind="stable")
    knowledge = ("synthetic", "reference", "target_record",
                 "generator" if mama is None else "generator_family")
    threat = ThreatModel("membership", knowledge, group, len(outcomes))
    if mama is not None:
        metrics["family"] = mama
        name = f"mama_membership[{group}]"
        notes = (f"MAMA-MIA (Golob et al. 2024), generator family {mama}: noise-weighted "
                 f"likelihood ratio of each target's cells in the synthetic marginals against "
                 f"the population; scores standardised and thresholds chosen on {n_train} "
                 f"runs, counted on {n_test} fresh ones.")
    else:
        name = f"shadow_membership[{group}]"
        notes = (f"Groundhog shadow-model attack: one classifier per target, trained on "
                 f"{n_train} shadow runs, tested on {n_test} fresh ones (rates pooled over "
                 f"the group's targets and test runs).")
    return score_attack(name, threat, hits, control, rng.random(hits.size) < rate,
                        threshold=threshold, confidence=confidence, metrics=metrics, roc=roc,
                        exposed_row_ids=tuple(outcomes[i].row_id for i in order[:20]
                                              if aucs[i] > 0.5), notes=notes)


def _one_run(generator: Generator, setup: _Setup, m: int, delta: float, level: float,
             seed: int, n_jobs: int | None, ray_address: str | None,
             progress: StageProgressFn | None) -> tuple[EpsilonBound, dict[str, int], RunBatch]:
    rng = child_rng(seed, 1)
    canaries = craft_canaries(setup.pool, setup.encoder, m, rng, schema=setup.schema,
                              prefix="one-run-canary")
    radius = np.maximum(nearest(setup.encoder.transform(canaries),
                                setup.encoder.transform(setup.pool))[0][:, 0], 1e-6)
    ctx = OneRunContext(generator, setup.pool, canaries, setup.encoder, radius, setup.n_rows,
                        setup.n_synthetic)
    child = int(np.random.SeedSequence([seed, 2]).generate_state(1)[0])
    batch = run_many(one_run_task, ctx, 1, seed=child, n_jobs=n_jobs, ray_address=ray_address,
                     progress=stage(progress, "one run", announce=True))
    if batch.failed:
        raise GeneratorError(f"the one-run canary audit failed twice: {batch.failed[0].error}")
    bound, counts = one_run_bound(batch.outcomes[0].value, delta=delta, confidence=level,
                                  rng=rng)
    return bound, counts, batch


def _report(generator: Generator, privacy: tuple[float, float] | None,
            outcomes: Sequence[TargetOutcome], bounds: list[EpsilonBound],
            results: list[AttackResult], one_run: tuple[EpsilonBound, dict[str, int],
                                                        RunBatch] | None,
            batch: RunBatch, setup: _Setup, threshold: float, confidence: float, seed: int,
            seconds: float,
            mama: tuple[str | None, Sequence[TargetOutcome]] = (None, ())) -> AuditReport:
    best = max(bounds, key=lambda b: b.epsilon)
    accounted = None if privacy is None else privacy[0]
    violated = accounted is not None and best.epsilon > accounted + 1e-9
    if violated:
        logger.error("PRIVACY VIOLATION: empirical epsilon lower bound %.3f (%s) exceeds the "
                     "accounted epsilon %.3f of %s at %.0f%% confidence", best.epsilon,
                     best.label, accounted, generator.name, 100 * confidence)
    audit: Mapping[str, Any] = {
        "generator": generator.describe(), "accounted_epsilon": accounted,
        "accounted_delta": None if privacy is None else privacy[1],
        "epsilon_lower": best.epsilon, "epsilon_lower_source": best.label,
        "confidence": confidence, "violated": violated,
        "bounds": [b.to_dict() for b in bounds],
        "targets": [o.to_dict() for o in outcomes],
        "mama": None if mama[0] is None else {
            "family": mama[0], "targets": [o.to_dict() for o in mama[1]]},
        "shadow_runs": batch.summary(),
        "one_run": None if one_run is None else {**one_run[0].to_dict(), **one_run[1],
                                                 **one_run[2].summary()},
    }
    summary = {"n_population": len(setup.pool) + sum(k != "canary" for k in setup.kinds),
               "n_rows": setup.n_rows, "n_synthetic": setup.n_synthetic,
               "n_shadow_runs": len(batch.outcomes), "columns": {c.name: c.kind for c in
                                                                 setup.encoder.codings_}}
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return AuditReport(tuple(results), threshold, confidence, seed, summary, round(seconds, 3),
                       created, generator_audit=audit)
