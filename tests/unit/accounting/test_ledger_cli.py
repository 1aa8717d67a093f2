"""``dpsynth budget`` through typer's runner, on an app built here with ``register(app)``."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from dpsynth.accounting import Budget, PureDPEvent
from dpsynth.accounting.ledger import Ledger
from dpsynth.commands._common import cli_errors
from dpsynth.commands.budget import DatasetOpt, LedgerOpt, open_recorder, register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("spend")  # stands in for `dpsynth fit --ledger --dataset`
    def spend(epsilon: float, ledger: LedgerOpt = None, dataset: DatasetOpt = None) -> None:
        with cli_errors():
            recorder = open_recorder(ledger, dataset)
            assert recorder is not None
            with recorder.spend("train:generator", PureDPEvent(epsilon)):
                pass

    return app


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "people.csv"
    pd.DataFrame({"age": rng.integers(18, 90, 300), "sex": rng.choice(["F", "M"], 300)}).to_csv(
        data, index=False)
    ledger = tmp_path / "ledger.sqlite"
    app = _app()
    result = runner.invoke(app, ["budget", "register", "people", "--data", str(data),
                                 "--epsilon", "1.0", "--delta", "1e-9", "--ledger", str(ledger)])
    assert result.exit_code == 0, result.output
    assert "registered 'people'" in result.output
    return app, ledger, data


def test_register_show_history(setup):
    app, ledger, _ = setup
    assert runner.invoke(app, ["spend", "0.4", "--ledger", str(ledger), "--dataset",
                               "people"]).exit_code == 0
    show = runner.invoke(app, ["budget", "show", "--ledger", str(ledger)])
    assert show.exit_code == 0
    assert "cap        ε = 1  δ = 1e-09" in show.output
    assert "spent      ε = 0.4 (PLD)" in show.output
    assert "remaining  ε = 0.6" in show.output
    data = json.loads(runner.invoke(app, ["budget", "show", "people", "--json", "--ledger",
                                          str(ledger)]).output)
    assert data[0]["remaining"] == pytest.approx(0.6, abs=1e-4)
    history = runner.invoke(app, ["budget", "history", "people", "--ledger", str(ledger)])
    assert history.exit_code == 0
    assert "committed" in history.output and "train:generator" in history.output


def test_exceeding_the_cap_is_a_clear_error(setup):
    app, ledger, _ = setup
    args = ["--ledger", str(ledger), "--dataset", "people"]
    assert runner.invoke(app, ["spend", "0.7", *args]).exit_code == 0
    result = runner.invoke(app, ["spend", "0.5", *args])
    assert result.exit_code == 1
    assert "over the cap" in result.output and "0.3 is left" in result.output
    assert "Traceback" not in result.output


def test_unknown_dataset_and_missing_ledger_are_usage_errors(setup, tmp_path):
    app, ledger, _ = setup
    result = runner.invoke(app, ["spend", "0.1", "--ledger", str(ledger), "--dataset", "adult"])
    assert result.exit_code == 2 and "budget register adult" in result.output
    result = runner.invoke(app, ["budget", "show", "--ledger", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2 and "No privacy ledger" in result.output
    assert runner.invoke(app, ["spend", "0.1", "--ledger", str(ledger)]).exit_code == 2


def test_register_conflicts(setup, tmp_path):
    app, ledger, data = setup
    base = ["budget", "register", "people", "--data", str(data), "--ledger", str(ledger)]
    again = runner.invoke(app, [*base, "--epsilon", "1.0", "--delta", "1e-9"])
    assert again.exit_code == 0  # idempotent
    other_cap = runner.invoke(app, [*base, "--epsilon", "5.0", "--delta", "1e-9"])
    assert other_cap.exit_code == 2 and "never changes" in other_cap.output
    big_delta = runner.invoke(app, ["budget", "register", "x", "--data", str(data), "--epsilon",
                                    "1", "--delta", "0.01", "--ledger", str(tmp_path / "o.db")])
    assert big_delta.exit_code == 2 and "'delta'" in big_delta.output


def test_verify_exit_status(setup):
    app, ledger, _ = setup
    runner.invoke(app, ["spend", "0.2", "--ledger", str(ledger), "--dataset", "people"])
    ok = runner.invoke(app, ["budget", "verify", "--ledger", str(ledger)])
    assert ok.exit_code == 0 and "verified" in ok.output
    con = sqlite3.connect(ledger)
    con.execute("DROP TRIGGER ledger_entries_no_update")
    con.execute("UPDATE ledger_entries SET epsilon = 0.01 WHERE kind = 'reserve'")
    con.commit()
    con.close()
    bad = runner.invoke(app, ["budget", "verify", "--ledger", str(ledger)])
    assert bad.exit_code == 1
    lines = [line for line in bad.output.splitlines() if line.startswith("tampered:")]
    assert len(lines) == 2
    assert any("entry 2" in line and "edited" in line for line in lines)
    assert any("guard" in line for line in lines)


def test_report_formats(setup, tmp_path):
    app, ledger, _ = setup
    runner.invoke(app, ["spend", "0.2", "--ledger", str(ledger), "--dataset", "people"])
    for fmt in ("html", "json", "md"):
        out = tmp_path / f"report.{fmt}"
        result = runner.invoke(app, ["budget", "report", "--format", fmt, "--out", str(out),
                                     "--ledger", str(ledger)])
        assert result.exit_code == 0, result.output
        assert "people" in out.read_text()
    text = runner.invoke(app, ["budget", "report", "people", "--format", "json", "--ledger",
                               str(ledger)]).output
    assert json.loads(text)["datasets"][0]["status"]["epsilon"] == pytest.approx(0.2, abs=1e-6)
    bad = runner.invoke(app, ["budget", "report", "--format", "pdf", "--ledger", str(ledger)])
    assert bad.exit_code == 2


def test_default_ledger_comes_from_the_environment(setup, monkeypatch):
    app, ledger, _ = setup
    monkeypatch.setenv("DPSYNTH_LEDGER", str(ledger))
    result = runner.invoke(app, ["budget", "show", "people"])
    assert result.exit_code == 0 and "remaining  ε = 1" in result.output
    assert Ledger().location == str(ledger)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_register_reads_a_file_in_batches_with_the_identity_of_the_whole(tmp_path, monkeypatch,
                                                                       suffix):
    """With a schema, a Parquet or CSV file is registered batch by batch (memory does not grow
    with the rows) under the same fingerprint, rows and overlap sketch as the table read whole;
    and it never reads the table whole."""
    from dpsynth.data import io
    from dpsynth.data.stream import StreamedTable
    from dpsynth.schema import Column, Schema

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"age": rng.integers(18, 90, 700), "sex": rng.choice(["F", "M"], 700)})
    schema = Schema((Column("age", "integer", lower=18, upper=89),
                     Column("sex", "categorical", categories=("F", "M"))))
    schema_path = schema.save(tmp_path / "schema.yaml")
    data = tmp_path / f"people{suffix}"
    df.to_parquet(data) if suffix == ".parquet" else df.to_csv(data, index=False)
    whole = Ledger(tmp_path / "whole.sqlite", create=True).register_table(
        "people", Budget(1.0, 1e-9), io.read_table(data, schema=schema), schema)

    def refuse(*args, **kwargs):
        raise AssertionError("the table was read whole")

    monkeypatch.setattr(io, "read_table", refuse)
    monkeypatch.setattr(StreamedTable, "batch_rows", 64)  # many batches
    ledger = tmp_path / "streamed.sqlite"
    result = runner.invoke(_app(), ["budget", "register", "people", "--data", str(data),
                                    "--schema", str(schema_path), "--epsilon", "1.0",
                                    "--delta", "1e-9", "--ledger", str(ledger)])
    assert result.exit_code == 0, result.output
    streamed = Ledger(ledger).dataset("people")
    assert streamed.fingerprint == whole.fingerprint and streamed.n_rows == 700
    assert streamed.privacy_unit == "row"


def test_register_in_batches_refuses_a_bad_late_value_and_registers_nothing(tmp_path):
    from dpsynth.schema import Column, Schema

    df = pd.DataFrame({"age": [30] * 500 + [200]})
    Schema((Column("age", "integer", lower=18, upper=89),)).save(tmp_path / "s.yaml")
    df.to_parquet(tmp_path / "t.parquet")
    ledger = tmp_path / "ledger.sqlite"
    result = runner.invoke(_app(), ["budget", "register", "t", "--data",
                                    str(tmp_path / "t.parquet"), "--schema",
                                    str(tmp_path / "s.yaml"), "--epsilon", "1.0",
                                    "--ledger", str(ledger)])
    assert result.exit_code != 0 and "age" in result.output
    assert not ledger.exists() or not Ledger(ledger).datasets()
