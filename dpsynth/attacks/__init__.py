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
    "MixedEncoder",
    "Rate",
    "RocCurve",
    "ThreatModel",
    "attribute_inference",
    "dcr_membership",
    "domias_membership",
    "linkability",
    "nearest",
    "rare_records",
    "render_html",
    "run_audit",
    "save_html",
    "singling_out",
    "vulnerability",
]
