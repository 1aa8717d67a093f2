"""The dataset card of one release, assembled from its plan, its attempts, its spend and
the ledger (every input typed; the data's identity and the composed epsilon are computed once
by :func:`~dpsynth.release.release` and handed in)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dpsynth._version import __version__
from dpsynth.accounting import ACCOUNTANT, Event
from dpsynth.accounting.fingerprint import DataIdentity
from dpsynth.accounting.ledger import Ledger, Status
from dpsynth.attacks import AuditReport
from dpsynth.release.card import Attempt, DatasetCard
from dpsynth.release.card_sections import (
    AttackRow,
    AuditSection,
    EvaluationSection,
    GeneratorAuditSection,
    GeneratorSection,
    PrivacySection,
    ReproduceSection,
    SourceSection,
    SyntheticSection,
    UtilitySection,
)
from dpsynth.release.clip import clip_filter
from dpsynth.release.gate import Assessment, attack_label
from dpsynth.release.plan import AttemptOutcome, ReleasePlan, effective_delta
from dpsynth.release.policy import REJECT, SHIP
from dpsynth.release.provenance import ProvenanceSection, api_call, new_provenance
from dpsynth.schema import Schema

REFUSED = "refused"
NO_FILTER_NOTE = ("No post-generation filter was applied. dpsynth never drops synthetic rows "
                  "for resembling real ones: such filtering reads the private data without "
                  "noise and itself reveals who is in it.")
NOT_COVERED_BY_DP = (
    "The evaluation and audit figures of this card are computed on the private rows "
    "(training and holdout) without differential privacy. They are aggregates, but "
    "epsilon does not cover them.",
    "The release decision, and so which attempt was released, depends on those "
    "figures: a selection that epsilon does not cover (its leakage is bounded by the "
    "attempts cap).",
    "The number of rows is treated as public.",
)


@dataclass(frozen=True)
class ReleaseSpend:
    """What the release spent, composed once: its events, their PLD epsilon (and RDP beside
    it) at the cap's ``delta``, and the dataset's epsilon before the release."""

    events: tuple[Event, ...]
    epsilon: float
    rdp_epsilon: float
    delta: float
    before: float


@dataclass(frozen=True, eq=False)
class ReleaseFacts:
    """Everything the card says about one release, gathered by :func:`release`."""

    plan: ReleasePlan
    schema: Schema
    identity: DataIdentity
    n_train: int
    n_holdout: int
    release_id: str
    attempts: tuple[Attempt, ...]
    last: AttemptOutcome | None
    spend: ReleaseSpend
    ledger_entries: tuple[int, ...] = ()
    clipped: Mapping[str, int] = field(default_factory=dict)
    generator_audit: Mapping[str, Any] | None = None
    #: Synthetic rows of the bundle when they are more than the gate read (streamed release;
    #: ``None``: as many as ``last.synthetic``).
    n_synthetic: int | None = None
    #: How the holdout was drawn, when not at random in memory (streamed release).
    holdout_use: str | None = None
    #: Whether the table was read in batches (the rerun command then says ``--stream``).
    streamed: bool = False
    #: Count and fingerprint of rows declared public and read by the generator, if any.
    public_rows: Mapping[str, Any] | None = None


def final_decision(attempts: Sequence[Attempt]) -> tuple[str, tuple[str, ...]]:
    """Ship when the last attempt ships; otherwise reject, with the reasons."""
    last = attempts[-1]
    if last.outcome == SHIP:
        return SHIP, last.reasons
    if last.outcome == REFUSED:
        previous = attempts[-2].reasons if len(attempts) > 1 else ()
        return REJECT, (*previous, *last.reasons)
    return REJECT, last.reasons


def build_card(facts: ReleaseFacts, book: Ledger) -> DatasetCard:
    """The card of the release (its ``synthetic`` section says the bundle is not written
    yet; :func:`~dpsynth.release.bundle.write_bundle` fills in the files)."""
    plan, last = facts.plan, facts.last
    status = book.status(plan.dataset)
    assessed = [a for a in facts.attempts if a.checks]
    n_rows = None if last is None else (facts.n_synthetic if facts.n_synthetic is not None
                                        else len(last.synthetic))
    decision, reasons = final_decision(facts.attempts)
    return DatasetCard(
        release_id=facts.release_id, dataset=plan.dataset,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        decision=decision, reasons=reasons,
        generator=_generator(plan, last), source=_source(facts, status),
        schema=(facts.schema if last is None else last.synthesizer.schema_).to_dict(),
        synthetic=SyntheticSection(n_rows), privacy=_privacy(facts, status, book),
        attempts=facts.attempts,
        evaluation=_evaluation(None if last is None else last.assessment),
        audit=_audit_section(None if last is None else last.assessment),
        checks=assessed[-1].checks if assessed else (), policy=plan.policy,
        reproduce=_reproduce(plan, assessed[-1] if assessed else None, n_rows,
                             facts.streamed),
        filters=(filters := _filters(facts)), notes=() if filters else (NO_FILTER_NOTE,),
        provenance=_provenance(facts),
        evidence=None if last is None else last.evidence,
        generator_audit=(None if facts.generator_audit is None
                         else GeneratorAuditSection.from_audit(facts.generator_audit)))


def _filters(facts: ReleaseFacts) -> tuple[str, ...]:
    """Every filter applied to the input or the released rows (row-local, no budget)."""
    last = facts.last
    rules = None if last is None or last.evidence is None else last.evidence.rules
    found = (clip_filter(dict(facts.clipped)),) if facts.clipped else ()
    return found + ((rules["filter"],) if rules and rules.get("filter") else ())


def _provenance(facts: ReleaseFacts) -> ProvenanceSection:
    plan = facts.plan
    call = plan.invocation or api_call(
        plan.dataset, plan.epsilon, delta=plan.delta, synthesizer=plan.synth_name,
        target=plan.target, holdout_fraction=plan.holdout_fraction,
        time_column=plan.time_column, random_state=None if plan.secure else plan.seed,
        secure=plan.secure,
        public=(None if not facts.public_rows else
                f"<{facts.public_rows['rows']} declared public rows, "
                f"{facts.public_rows['fingerprint']}>"))
    found = new_provenance(call, seed=plan.seed, secure=plan.secure,
                           licence=plan.source_licence, description=plan.source_description)
    return replace(found, ledger_entries=facts.ledger_entries)


def _generator(plan: ReleasePlan, last: AttemptOutcome | None) -> GeneratorSection:
    if last is None:
        return GeneratorSection(plan.synth_name, __version__)
    synth = last.synthesizer
    return GeneratorSection(synth.name, __version__,
                            f"{type(synth).__module__}.{type(synth).__qualname__}",
                            synth.get_params(), getattr(synth, "fitted_at_", None),
                            type(synth).defaults_tuned_on, synth.resolved_params())


def _source(facts: ReleaseFacts, status: Status) -> SourceSection:
    plan, schema = facts.plan, facts.schema
    unit = f"users ({schema.user_key!r})" if schema.user_key else "rows"
    use = (f"Holdout: {plan.holdout_fraction:.0%} of the {unit}, drawn at random with the "
           "release seed")
    if plan.time_column is not None:
        use = (f"Holdout: the latest period of {plan.time_column!r} is set aside (see "
               f"evidence.temporal), and {facts.n_holdout} of the {unit} of the earlier "
               "periods are drawn at random with the release seed")
    if facts.holdout_use is not None:
        use = facts.holdout_use
    if plan.target is not None:
        use += ("; the holdout is further split into a real anchor and a test part for the "
                "real-anchor ablation (evidence.anchor_ablation)")
    return SourceSection(
        plan.dataset, facts.identity.fingerprint, facts.identity.content_hash,
        facts.identity.n_rows, facts.n_train, facts.n_holdout, plan.holdout_fraction,
        status.dataset.privacy_unit,
        use + "; never used for training or domain discovery; read only by the evaluation "
        "(utility test set) and the audit (control). Only the aggregate figures of this card "
        "are released about it.", public_rows=facts.public_rows)


def _privacy(facts: ReleaseFacts, status: Status, book: Ledger) -> PrivacySection:
    plan, spend = facts.plan, facts.spend
    randomness = ("secure: the generator's DP noise came from the operating system's "
                  "cryptographic random source" if plan.secure else
                  "seeded: reproducible research/test mode, not for real releases")
    return PrivacySection(
        epsilon_per_attempt=plan.epsilon,
        delta_per_attempt=effective_delta(plan.delta, status.cap), accountant=ACCOUNTANT,
        release_epsilon=spend.epsilon, release_delta=spend.delta,
        release_rdp_epsilon=spend.rdp_epsilon, n_spends=len(spend.events),
        dataset_cap=status.cap, dataset_epsilon_before=spend.before,
        dataset_epsilon_after=status.epsilon, dataset_remaining=status.remaining,
        privacy_unit=status.dataset.privacy_unit, randomness=randomness,
        ledger=book.location, ledger_anchor=book.anchor(), not_covered_by_dp=NOT_COVERED_BY_DP)


def _evaluation(found: Assessment | None) -> EvaluationSection:
    if found is None:
        return EvaluationSection()
    utility = None if found.utility is None else UtilitySection.from_dict(found.utility)
    return EvaluationSection(found.fidelity, utility)


def _audit_section(found: Assessment | None) -> AuditSection:
    if found is None:
        return AuditSection()
    leak = any(c.area == "privacy" and c.passed is False for c in found.decision.checks)
    summary = audit_summary(found.audit) if found.audit is not None else AuditSection()
    return replace(summary, verdict="leak" if leak else "no risk found",
                   text=found.text or None)


def audit_summary(report: AuditReport) -> AuditSection:
    """The audit as the card keeps it: rates and intervals, never row ids."""
    return AuditSection(
        verdict=report.verdict, threshold=report.threshold, confidence=report.confidence,
        seed=report.seed, seconds=report.seconds, n_train=report.data.get("n_train"),
        n_holdout=report.data.get("n_holdout"), n_synthetic=report.data.get("n_synthetic"),
        attacks=tuple(AttackRow(
            attack_label(r), r.threat_model.goal, r.threat_model.describe(), r.n_targets,
            r.success.to_dict(), r.control.to_dict(), r.baseline.to_dict(), r.risk.to_dict(),
            r.verdict, None if r.roc is None else r.roc.auc,
            None if r.roc is None else (r.roc.auc_ci[0], r.roc.auc_ci[1]))
            for r in report.results))


def _reproduce(plan: ReleasePlan, attempt: Attempt | None, n_rows: int | None,
               streamed: bool = False) -> ReproduceSection:
    flags = [f"--epsilon {plan.epsilon:g}", f"--dataset {plan.dataset}",
             f"--holdout-fraction {plan.holdout_fraction:g}", f"--n-targets {plan.n_targets}",
             f"--synthesizer {plan.synth_name}"]
    if plan.delta is not None:
        flags.append(f"--delta {plan.delta:g}")
    if plan.target:
        flags.append(f"--target {plan.target}")
    flags += [f"--secret {s}" for s in plan.secrets or ()]
    if streamed:
        flags.append(f"--stream --sample-rows {plan.sample_rows}")
    flags.append("--secure" if plan.secure else f"--seed {plan.seed}")
    sample_seed = None if attempt is None or attempt.seeds is None else attempt.seeds.sample
    return ReproduceSection(
        seed=plan.seed, secure=plan.secure, holdout_fraction=plan.holdout_fraction,
        n_rows=plan.n_rows, n_targets=plan.n_targets, target=plan.target,
        positive=plan.positive, secrets=plan.secrets or (), synthesizer=plan.synth_name,
        sample_seed=sample_seed,
        sample=None if attempt is None else (
            f"dpsynth sample model/ --n-rows {n_rows} --seed {sample_seed} "
            "--out synthetic.csv (no privacy cost: redraws the released rows from the "
            "released model)"),
        rerun=("dpsynth release DATA --schema SCHEMA --out DIR --policy POLICY "
               + " ".join(flags) + " (POLICY: this card's policy section saved as YAML; "
               "reads the private data again, so it spends epsilon again)"))


__all__ = ["NO_FILTER_NOTE", "REFUSED", "ReleaseFacts", "ReleaseSpend", "audit_summary",
           "build_card", "final_decision"]
