"""``dpsynth audit`` on a real table of 4,000 mixed rows (Adult) with a few verbatim rows.

The cases of issue 15: synthetic data made of an independent sample with 5 % or 1 % of it
replaced by training rows must exit 3; the independent sample alone must exit 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from cli_app import cli_app
from typer.testing import CliRunner

from dpsynth.commands.audit import register

ADULT = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "adult.csv"
runner = CliRunner()


def _app() -> typer.Typer:
    return cli_app(register)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("partial")
    rows = pd.read_csv(ADULT)
    order = np.random.default_rng(11).permutation(len(rows))
    train, holdout, independent = (rows.iloc[order[i * 4000:(i + 1) * 4000]] for i in range(3))
    paths = {name: folder / f"{name}.csv" for name in ("train", "holdout", "safe", "p1", "p5")}
    train.to_csv(paths["train"], index=False)
    holdout.to_csv(paths["holdout"], index=False)
    independent.to_csv(paths["safe"], index=False)
    for name, share in (("p1", 0.01), ("p5", 0.05)):
        k = int(share * len(independent))
        leaky = pd.concat([independent.iloc[k:], train.sample(k, random_state=5)])
        leaky.sample(frac=1.0, random_state=6).to_csv(paths[name], index=False)
    return paths


@pytest.mark.parametrize(("case", "status"), [("p5", 3), ("p1", 3), ("safe", 0)])
def test_partial_verbatim_leaks_exit_3_and_safe_data_passes(files, tmp_path, case, status):
    out = tmp_path / case
    args = ["audit", "--train", str(files["train"]), "--holdout", str(files["holdout"]),
            "--synthetic", str(files[case]), "--out", str(out), "--seed", "0", "--quiet"]
    result = runner.invoke(_app(), args)
    assert result.exit_code == status, result.output
    report = json.loads((out / "audit.json").read_text())
    assert report["leak"] == (status == 3)
    attacks = {a["attack"]: a for a in report["attacks"]}
    assert {"exact_copies", "near_copies"} <= set(attacks)
    if status == 3:
        assert "exact_copies" in report["flagged"]
        assert attacks["exact_copies"]["p_value"] < 0.05 / len(report["attacks"])
