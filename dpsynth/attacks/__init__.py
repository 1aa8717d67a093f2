"""Attacks on synthetic data: membership inference, rare records, singling-out, linkability and
attribute inference, and for free text copies, PII reproduction, loss membership and canary
exposure; each scored against a control set the generator never saw, by one rule.

The suite answers from the data alone (training rows, a holdout, the synthetic rows), so it can
audit any tool's output, and it is the gate dpsynth runs before a release::

    from dpsynth.attacks import run_audit, save_html
    report = run_audit(train, holdout, synthetic, secrets=["income"], random_state=0)
    report.verdict            # "leak" or "no risk found"
    save_html(report, "audit.html")

This package imports no torch.
"""

from dpsynth.attacks.distance import MixedEncoder, nearest
from dpsynth.attacks.empirical_eps import (
    EpsilonBound,
    epsilon_lower_bound,
    one_run_epsilon_lower,
)
from dpsynth.attacks.generator_audit import ShadowPlan, audit_generator
from dpsynth.attacks.generators import (
    CallableGenerator,
    CommandGenerator,
    DpsynthGenerator,
    MemorizingGenerator,
    PublicSampler,
)
from dpsynth.attacks.inference import attribute_inference
from dpsynth.attacks.linkability import linkability
from dpsynth.attacks.mama import mama_membership
from dpsynth.attacks.membership import dcr_membership, domias_membership
from dpsynth.attacks.protocols import CalibratedScorer, RetrainableScorer, SequenceScorer
from dpsynth.attacks.rare import rare_records, vulnerability
from dpsynth.attacks.report import render_html, save_html
from dpsynth.attacks.result import LEAK, NO_RISK, AttackResult, Rate, RocCurve
from dpsynth.attacks.singling_out import singling_out
from dpsynth.attacks.suite import ATTACKS, AuditReport, run_audit
from dpsynth.attacks.text import TextData, copy_attacks, pii_attack
from dpsynth.attacks.text_model import canary_audit, loss_membership
from dpsynth.attacks.text_suite import TEXT_ATTACKS, run_text_audit
from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import GeneratorError

__all__ = [
    "ATTACKS",
    "LEAK",
    "NO_RISK",
    "AttackResult",
    "AuditData",
    "AuditReport",
    "CalibratedScorer",
    "CallableGenerator",
    "CommandGenerator",
    "DpsynthGenerator",
    "EpsilonBound",
    "GeneratorError",
    "MemorizingGenerator",
    "MixedEncoder",
    "PublicSampler",
    "Rate",
    "RetrainableScorer",
    "RocCurve",
    "SequenceScorer",
    "ShadowPlan",
    "TEXT_ATTACKS",
    "TextData",
    "ThreatModel",
    "attribute_inference",
    "audit_generator",
    "canary_audit",
    "copy_attacks",
    "dcr_membership",
    "domias_membership",
    "epsilon_lower_bound",
    "linkability",
    "loss_membership",
    "mama_membership",
    "nearest",
    "one_run_epsilon_lower",
    "pii_attack",
    "rare_records",
    "render_html",
    "run_audit",
    "run_text_audit",
    "save_html",
    "singling_out",
    "vulnerability",
]
