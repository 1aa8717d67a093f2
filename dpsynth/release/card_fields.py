"""The sections of a dataset card, assembled from one release's plan, ledger and attempts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from dpsynth._version import __version__
from dpsynth.accounting import ACCOUNTANT, pld_epsilon, rdp_epsilon
from dpsynth.accounting.fingerprint import identify
from dpsynth.accounting.ledger import Ledger, LedgerRecorder
from dpsynth.attacks import AuditReport
from dpsynth.release.card import Attempt, plain
from dpsynth.release.gate import Assessment, attack_label
from dpsynth.schema import Schema

NO_FILTER_NOTE = ("No post-generation filter was applied. dpsynth never drops synthetic rows "
                  "for resembling real ones: such filtering reads the private data without "
                  "noise and itself reveals who is in it.")


def card_fields(*, plan: Any, data: pd.DataFrame, schema: Schema, train: pd.DataFrame,
                holdout: pd.DataFrame, book: Ledger, recorder: LedgerRecorder,
                attempts: Sequence[Attempt], last: Any, before: float) -> dict[str, Any]:
    """Every card section but the identity, decision and attempts (filled by the caller)."""
    synth, rows, found = last if last is not None else (None, None, None)
    assessed = [a for a in attempts if a.checks]
    return {
        "generator": _generator(plan, synth),
        "source": _source(plan, data, schema, train, holdout, book),
        "schema": (synth.schema_ if synth is not None else schema).to_dict(),
        "synthetic": {"n_rows": None if rows is None else len(rows), "synthetic_share": 1.0,
                      "share_note": "every released row is synthetic; no real row is mixed in",
                      "files": {}, "withheld": True,
                      "withheld_reason": "the bundle has not been written"},
        "privacy": _privacy(plan, book, recorder, before),
        "evaluation": _evaluation(found),
        "audit": _audit_section(found),
        "checks": assessed[-1].checks if assessed else (),
        "policy": plan.policy.to_dict(),
        "reproduce": _reproduce(plan, assessed[-1] if assessed else None,
                                None if rows is None else len(rows)),
        "filters": (),
        "notes": (NO_FILTER_NOTE,),
    }


def _generator(plan: Any, synth: Any) -> dict[str, Any]:
    if synth is None:
        return {"name": plan.synth_name, "dpsynth_version": __version__}
    return {"name": synth.name, "class": f"{type(synth).__module__}.{type(synth).__qualname__}",
            "dpsynth_version": __version__, "params": plain(synth.get_params()),
            "fitted_at": getattr(synth, "fitted_at_", None)}


def _source(plan: Any, data: pd.DataFrame, schema: Schema, train: pd.DataFrame,
            holdout: pd.DataFrame, book: Ledger) -> dict[str, Any]:
    ident = identify(data, schema)
    record = book.dataset(plan.dataset)
    unit = f"users ({schema.user_key!r})" if schema.user_key else "rows"
    return {
        "dataset": plan.dataset, "fingerprint": ident.fingerprint,
        "content_hash": ident.content_hash, "n_rows": ident.n_rows,
        "n_train": len(train), "n_holdout": len(holdout),
        "holdout_fraction": plan.holdout_fraction, "privacy_unit": record.privacy_unit,
        "holdout_use": (f"Holdout: {plan.holdout_fraction:.0%} of the {unit}, drawn at "
                        "random with the release seed; never used for training or domain "
                        "discovery; read only by the evaluation (utility test set) and the "
                        "audit (control). Only the aggregate figures of this card are "
                        "released about it."),
    }


def _privacy(plan: Any, book: Ledger, recorder: LedgerRecorder,
             before: float) -> dict[str, Any]:
    status = book.status(plan.dataset)
    cap = status.cap
    events = [s.event for s in book.spends(plan.dataset)
              if s.reservation.release_id == recorder.release_id]
    rdp = rdp_epsilon(events, cap.delta) if events else 0.0
    randomness = ("secure: the generator's DP noise came from the operating system's "
                  "cryptographic random source" if plan.secure else
                  "seeded: reproducible research/test mode, not for real releases")
    return {
        "epsilon_per_attempt": plan.epsilon,
        "delta_per_attempt": plan.delta if plan.delta is not None else cap.delta,
        "accountant": ACCOUNTANT,
        "release_epsilon": float(pld_epsilon(events, cap.delta)) if events else 0.0,
        "release_delta": cap.delta, "release_rdp_epsilon": rdp,
        "n_spends": len(events),
        "dataset_cap": cap.to_dict(), "dataset_epsilon_before": before,
        "dataset_epsilon_after": status.epsilon, "dataset_remaining": status.remaining,
        "privacy_unit": status.dataset.privacy_unit, "randomness": randomness,
        "ledger": book.location, "ledger_anchor": book.anchor(),
        "not_covered_by_dp": [
            "The evaluation and audit figures of this card are computed on the private rows "
            "(training and holdout) without differential privacy. They are aggregates, but "
            "epsilon does not cover them.",
            "The release decision, and so which attempt was released, depends on those "
            "figures: a selection that epsilon does not cover (its leakage is bounded by the "
            "attempts cap).",
            "The number of rows is treated as public.",
        ],
    }


def _evaluation(found: Assessment | None) -> dict[str, Any]:
    if found is None:
        return {"fidelity": None, "utility": None}
    return {"fidelity": found.fidelity, "utility": found.utility}


def _audit_section(found: Assessment | None) -> dict[str, Any]:
    if found is None:
        return {}
    out = audit_summary(found.audit) if found.audit is not None else {"attacks": []}
    leak = any(c.area == "privacy" and c.passed is False for c in found.decision.checks)
    out["verdict"] = "leak" if leak else "no risk found"
    if found.text:
        out["text"] = found.text
    return out


def audit_summary(report: AuditReport) -> dict[str, Any]:
    """The audit as the card keeps it: rates and intervals, never row ids."""
    return {
        "verdict": report.verdict, "threshold": report.threshold,
        "confidence": report.confidence, "seed": report.seed, "seconds": report.seconds,
        "n_train": report.data.get("n_train"), "n_holdout": report.data.get("n_holdout"),
        "n_synthetic": report.data.get("n_synthetic"),
        "attacks": [{
            "attack": attack_label(r), "goal": r.threat_model.goal,
            "threat_model": r.threat_model.describe(), "n_targets": r.n_targets,
            "success": r.success.to_dict(), "control": r.control.to_dict(),
            "baseline": r.baseline.to_dict(), "risk": r.risk.to_dict(), "verdict": r.verdict,
            "auc": None if r.roc is None else r.roc.auc,
            "auc_ci": None if r.roc is None else list(r.roc.auc_ci),
        } for r in report.results],
    }


def _reproduce(plan: Any, attempt: Attempt | None, n_rows: int | None) -> dict[str, Any]:
    flags = [f"--epsilon {plan.epsilon:g}", f"--dataset {plan.dataset}",
             f"--holdout-fraction {plan.holdout_fraction:g}", f"--n-targets {plan.n_targets}",
             f"--synthesizer {plan.synth_name}"]
    if plan.delta is not None:
        flags.append(f"--delta {plan.delta:g}")
    if plan.target:
        flags.append(f"--target {plan.target}")
    flags += [f"--secret {s}" for s in plan.secrets or ()]
    flags.append("--secure" if plan.secure else f"--seed {plan.seed}")
    return {
        "seed": plan.seed, "secure": plan.secure, "holdout_fraction": plan.holdout_fraction,
        "n_rows": plan.n_rows, "n_targets": plan.n_targets, "target": plan.target,
        "positive": plain(plan.positive), "secrets": list(plan.secrets or []),
        "synthesizer": plan.synth_name,
        "sample_seed": None if attempt is None else attempt.seeds.get("sample"),
        "sample": None if attempt is None else (
            f"dpsynth sample model/ --n-rows {n_rows} --seed {attempt.seeds.get('sample')} "
            "--out synthetic.csv (no privacy cost: redraws the released rows from the "
            "released model)"),
        "rerun": ("dpsynth release DATA --schema SCHEMA --out DIR --policy POLICY "
                  + " ".join(flags) + " (POLICY: this card's policy section saved as YAML; "
                  "reads the private data again, so it spends epsilon again)"),
    }


__all__ = ["NO_FILTER_NOTE", "audit_summary", "card_fields"]
