"""The audit on large tables (issue 19): sampled targets still catch 1 % of training rows
copied verbatim into the synthetic table, and an independent draw still passes.

Tables: Adult rows resampled with jitter on the numeric columns (so rows are distinct), the
training table, holdout and synthetic table drawn independently from that population.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.attacks import run_audit

ADULT = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "adult.csv"
NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")


def _draw(adult: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = adult.iloc[rng.integers(len(adult), size=n)].reset_index(drop=True)
    for name in NUMERIC:
        rows[name] = rows[name] + rng.uniform(-0.5, 0.5, size=n)
    for name in rows.columns.difference(NUMERIC):
        rows[name] = "c" + rows[name].astype(str)
    return rows


def _tables(n: int) -> dict[str, pd.DataFrame]:
    adult = pd.read_csv(ADULT)
    rng = np.random.default_rng(19)
    train, holdout, safe = (_draw(adult, n, rng) for _ in range(3))
    leaky = safe.copy()
    k = n // 100  # 1 % of the synthetic rows are training rows, verbatim
    leaky.iloc[rng.choice(n, size=k, replace=False)] = \
        train.iloc[rng.choice(n, size=k, replace=False)].to_numpy()
    return {"train": train, "holdout": holdout, "safe": safe, "leaky": leaky}


@pytest.fixture(scope="module")
def tables_100k() -> dict[str, pd.DataFrame]:
    return _tables(100_000)


@pytest.mark.parametrize(("case", "leak"), [("leaky", True), ("safe", False)])
def test_copy_attacks_on_100k_rows_with_sampled_targets(tables_100k, case, leak):
    t = tables_100k
    report = run_audit(t["train"], t["holdout"], t[case],
                       attacks=["exact_copies", "near_copies", "dcr_membership"],
                       random_state=0)
    assert report.data["sampling"]["targets_sampled"]
    assert all(r.n_targets == 2000 for r in report.results)
    assert report.leak == leak
    if leak:
        flagged = {r.attack for r, f in zip(report.results, report.flags, strict=True) if f}
        assert "exact_copies" in flagged


@pytest.mark.slow
@pytest.mark.parametrize(("case", "leak"), [("leaky", True), ("safe", False)])
def test_full_audit_on_200k_rows(case, leak):
    t = _tables(200_000)
    report = run_audit(t["train"], t["holdout"], t[case], random_state=0)
    assert report.leak == leak
    assert report.data["sampling"]["rare_records_ranked"] == 20_000


def test_cli_sampling_options(tmp_path):
    import json

    import typer
    from typer.testing import CliRunner

    from dpsynth.commands.audit import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    tables = _tables(1000)
    for name in ("train", "holdout", "safe"):
        tables[name].to_csv(tmp_path / f"{name}.csv", index=False)
    base = ["audit", "--train", str(tmp_path / "train.csv"), "--holdout",
            str(tmp_path / "holdout.csv"), "--synthetic", str(tmp_path / "safe.csv"),
            "--attack", "rare_records", "--attack", "exact_copies", "--n-targets", "100",
            "--seed", "0", "--quiet"]
    for max_rows, ranked in (("300", 300), ("0", 1000)):
        out = tmp_path / max_rows
        result = CliRunner().invoke(app, [*base, "--max-rows", max_rows, "--out", str(out)])
        assert result.exit_code == 0, result.output
        sampling = json.loads((out / "audit.json").read_text())["data"]["sampling"]
        assert sampling == sampling | {"n_targets": 100, "rare_records_ranked": ranked}
    result = CliRunner().invoke(app, [*base, "--max-rows", "5", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "max_rows" in result.output
