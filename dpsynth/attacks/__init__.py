"""Attacks on synthetic data: membership inference, rare records, singling-out, linkability and
attribute inference, each scored against a control set the generator never saw.

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
    GeneratorError,
    MemorizingGenerator,
    PublicSampler,
)
from dpsynth.attacks.inference import attribute_inference
from dpsynth.attacks.linkability import linkability
from dpsynth.attacks.membership import dcr_membership, domias_membership
from dpsynth.attacks.rare import rare_records, vulnerability
from dpsynth.attacks.report import render_html, save_html
from dpsynth.attacks.result import LEAK, NO_RISK, AttackResult, Rate, RocCurve
from dpsynth.attacks.singling_out import singling_out
from dpsynth.attacks.suite import ATTACKS, AuditReport, run_audit
from dpsynth.attacks.threat import AuditData, ThreatModel

__all__ = [
    "ATTACKS",
    "LEAK",
    "NO_RISK",
    "AttackResult",
    "AuditData",
    "AuditReport",
    "CallableGenerator",
    "CommandGenerator",
    "DpsynthGenerator",
    "EpsilonBound",
    "GeneratorError",
    "MemorizingGenerator",
    "MixedEncoder",
    "PublicSampler",
    "Rate",
    "RocCurve",
    "ShadowPlan",
    "ThreatModel",
    "attribute_inference",
    "audit_generator",
    "dcr_membership",
    "domias_membership",
    "epsilon_lower_bound",
    "linkability",
    "nearest",
    "one_run_epsilon_lower",
    "rare_records",
    "render_html",
    "run_audit",
    "save_html",
    "singling_out",
    "vulnerability",
]
