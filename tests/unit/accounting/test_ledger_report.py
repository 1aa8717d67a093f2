"""The compliance report: figures match the ledger, the HTML is self-contained and escaped."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import pytest

from dpsynth.accounting import ApproxDPEvent, Budget, LaplaceEvent, PureDPEvent, pld_epsilon
from dpsynth.accounting.ledger import Ledger
from dpsynth.accounting.report import build_report, explain, render, write_report
from dpsynth.errors import ParameterError

FP = "sha256:" + "d" * 64
CAP = Budget(2.0, 1e-6)
EVENTS = [("bounds:age", LaplaceEvent(10.0)), ("categories:job", ApproxDPEvent(0.1, 1e-8)),
          ("train:generator", PureDPEvent(0.5)), ("train:generator", PureDPEvent(0.3))]


@pytest.fixture
def ledger(tmp_path):
    book = Ledger(tmp_path / "ledger.sqlite")
    book.register("census", CAP, fingerprint=FP, n_rows=20_000, privacy_unit="user:person_id")
    for purpose, event in EVENTS[:3]:
        with book.spend("census", purpose, event, actor="alice", release_id="rel-1"):
            pass
    book.spend("census", *EVENTS[3]).__enter__()  # killed: interrupted, still counted
    return book


def test_report_figures_match_the_ledger(ledger):
    report = build_report(ledger)
    assert report["integrity"]["verified"] is True
    assert report["integrity"]["anchor"] == ledger.anchor()
    (ds,) = report["datasets"]
    events = [e for _, e in EVENTS]
    total = pld_epsilon(events, CAP.delta)
    assert ds["status"]["epsilon"] == pytest.approx(total)
    binding = max(total, ds["status"]["filter_epsilon"])
    assert ds["status"]["remaining"] == pytest.approx(CAP.epsilon - binding)
    assert ds["status"]["rdp_epsilon"] is None  # RDP cannot express the (eps, delta) event
    assert ds["status"]["plain_sum_epsilon"] >= total
    assert [s["status"] for s in ds["spends"]] == ["committed"] * 3 + ["interrupted"]
    curve = [s["cumulative_epsilon"] for s in ds["spends"]]
    assert curve == sorted(curve) and curve[-1] == pytest.approx(total)
    purposes = {p["purpose"]: p for p in ds["by_purpose"]}
    assert purposes["train:generator"]["count"] == 2
    assert purposes["train:generator"]["epsilon"] == pytest.approx(0.8, abs=1e-3)
    assert ds["delta_check"] == {"delta": 1e-6, "one_over_n": 5e-5,
                                 "ratio": pytest.approx(0.02), "ok": True}
    assert ds["privacy_unit"] == "user:person_id" and "'person_id'" in ds["privacy_unit_text"]
    json.dumps(report)  # plain JSON


def test_explanation_is_correct_plain_language(ledger):
    status = ledger.status("census")
    text = " ".join(explain(status))
    factor = math.exp(status.epsilon)
    assert f"e^ε ≈ {factor:.3g}" in text
    assert f"{factor / (1 + factor):.0%} sure" in text
    assert "except with a probability of at most δ = 1e-06" in text
    assert "counted in full" in text  # the interrupted run
    assert "PLD" in text and "RDP is n/a" in text


def test_accountant_and_why_are_stated(ledger):
    report = build_report(ledger)
    why = report["accountant"]["why"]
    assert "PLD" in report["accountant"]["name"]
    assert "upper bound" in why and "never used" in why and "GDP" in why


def test_html_is_self_contained_and_escaped(ledger):
    with ledger.spend("census", "<script>alert(1)</script>", PureDPEvent(0.01)):
        pass
    html = render(build_report(ledger), "html")
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") == 2
    assert "<script" not in html and "&lt;script&gt;" in html
    for pattern in (r"<link\b", r"\bsrc=", r"\bhref=", r"url\(", r"@import"):
        assert not re.search(pattern, html), pattern
    # The only URL is the SVG namespace, which is never fetched.
    assert set(re.findall(r"https?://[^\s\"']+", html)) == {"http://www.w3.org/2000/svg"}


def test_markdown_and_json_formats(ledger, tmp_path):
    md = write_report(ledger, tmp_path / "r.md").read_text()
    assert "## Dataset `census`" in md and "| train:generator | 2 |" in md
    assert "interrupted" in md
    data = json.loads(write_report(ledger, tmp_path / "r.json").read_text())
    assert data["datasets"][0]["name"] == "census"
    with pytest.raises(ParameterError, match="'format'"):
        write_report(ledger, tmp_path / "r.pdf")


def test_report_on_a_tampered_ledger_says_so(ledger):
    import sqlite3

    con = sqlite3.connect(ledger.location)
    con.execute("DROP TRIGGER ledger_entries_no_update")
    con.execute("UPDATE ledger_entries SET epsilon = 0.0 WHERE seq = 2")
    con.commit()
    con.close()
    report = build_report(ledger)
    assert report["integrity"]["verified"] is False
    assert "FAILED" in render(report, "html")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_html_renders_in_a_headless_browser(ledger, tmp_path):
    page = write_report(ledger, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1200,1800", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000
