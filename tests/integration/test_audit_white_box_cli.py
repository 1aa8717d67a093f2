"""``dpsynth audit-generator --white-box``: a correct MST passes, a halved noise scale exits 3."""

from __future__ import annotations

import json

import pytest
import typer
from cli_app import cli_app
from planted_mechanisms import DataBoundsMST, HalfNoiseMST
from typer.testing import CliRunner

from dpsynth.commands.audit_generator import register
from dpsynth.synthesizers import SYNTHESIZERS

runner = CliRunner()


def _app() -> typer.Typer:
    return cli_app(register)


@pytest.mark.parametrize(("name", "status"), [("mst", 0), ("mst-half-noise", 3)])
def test_white_box_audit_exit_status_and_report(monkeypatch, tmp_path, name, status):
    monkeypatch.setitem(SYNTHESIZERS, "mst-half-noise", HalfNoiseMST)
    result = runner.invoke(_app(), ["audit-generator", "--white-box", "--synthesizer", name,
                                    "--epsilon", "4", "--fits", "120", "--seed", "0",
                                    "--param", "n_bins=4", "--out", str(tmp_path)])
    assert result.exit_code == status, result.output
    audit = json.loads((tmp_path / "audit.json").read_text())["generator_audit"]
    assert audit["mode"] == "white-box" and audit["accounted_epsilon"] == 4.0
    assert audit["violated"] == (status == 3)
    assert (audit["epsilon_lower"] > 4.0) == (status == 3)
    page = (tmp_path / "audit.html").read_text()
    assert "White-box generator audit" in page and "halved noise" in page


def test_white_box_needs_a_synthesizer_and_an_epsilon(tmp_path):
    result = runner.invoke(_app(), ["audit-generator", "--white-box", "--out", str(tmp_path)])
    assert result.exit_code == 2


def test_bounds_read_from_the_data_exit_3_with_a_domain_leak(monkeypatch, tmp_path):
    monkeypatch.setitem(SYNTHESIZERS, "mst-data-bounds", DataBoundsMST)
    result = runner.invoke(_app(), ["audit-generator", "--white-box", "--synthesizer",
                                    "mst-data-bounds", "--epsilon", "4", "--fits", "40",
                                    "--numeric-column", "--out", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert "released domain differs" in " ".join(result.output.split())
    audit = json.loads((tmp_path / "audit.json").read_text())["generator_audit"]
    assert audit["domain_leak"] and audit["domains_seen"] == 2
    assert "DOMAIN LEAK" in (tmp_path / "audit.html").read_text()


@pytest.mark.parametrize(("name", "status"), [("dpvae", 0), ("dpvae-half-noise", 3),
                                              ("dpvae-shuffled", 3)])
def test_white_box_audit_of_dp_sgd(monkeypatch, tmp_path, name, status):
    from planted_mechanisms import DPSGD_REGISTRY

    for planted in ("dpvae-half-noise", "dpvae-shuffled"):
        monkeypatch.setitem(SYNTHESIZERS, planted, DPSGD_REGISTRY[planted])
    result = runner.invoke(_app(), ["audit-generator", "--white-box", "--synthesizer", name,
                                    "--epsilon", "4", "--fits", "80", "--seed", "0",
                                    "--out", str(tmp_path)])
    assert result.exit_code == status, result.output
    assert "statistic" in result.output
    audit = json.loads((tmp_path / "audit.json").read_text())["generator_audit"]
    assert audit["mode"] == "white-box" and audit["accounted_epsilon"] == 4.0
    assert audit["violated"] == (status == 3)
    assert (audit["epsilon_lower"] > 4.0) == (status == 3)
    assert "gradient-canary" in audit["epsilon_lower_source"]
    page = (tmp_path / "audit.html").read_text()
    assert "White-box generator audit" in page and "halved noise" in page
    assert "noise multiplier" in page and "displacement" in page
