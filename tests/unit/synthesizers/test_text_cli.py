"""``dpsynth text fit`` / ``canary-audit`` through the CLI runner (tiny settings)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import typer
from typer.testing import CliRunner

from dpsynth.commands.text import register
from dpsynth.schema import Column, Schema


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _main() -> None:
        pass

    register(root)
    return root


def write(tmp_path) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    kinds = rng.choice(["a", "b"], 160)
    df = pd.DataFrame({"kind": kinds, "text": [f"ticket {k} {i}" for i, k in enumerate(kinds)]})
    df.to_csv(tmp_path / "t.csv", index=False)
    Schema((Column("kind", "categorical", categories=("a", "b")),
            Column("text", "text", max_length=24))).save(tmp_path / "s.yaml")
    return str(tmp_path / "t.csv"), str(tmp_path / "s.yaml")


def test_text_fit_saves_a_model(tmp_path, app):
    data, schema = write(tmp_path)
    result = CliRunner().invoke(app, ["text", "fit", data, "--schema", schema, "--out",
                                      str(tmp_path / "m"), "--epsilon", "3", "--epochs", "0.5",
                                      "--batch-size", "64", "--seed", "0"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["synthesizer"] == "dptext" and manifest["privacy"]["epsilon"] <= 3.0


def test_text_fit_rejects_missing_model_dir(tmp_path, app):
    data, schema = write(tmp_path)
    result = CliRunner().invoke(app, ["text", "fit", data, "--schema", schema, "--out",
                                      str(tmp_path / "m"), "--model-dir", str(tmp_path / "no")])
    assert result.exit_code == 2


def test_main_fit_and_sample_commands_take_dptext(tmp_path):
    from dpsynth.cli import app as main_app

    data, schema = write(tmp_path)
    runner = CliRunner()
    fitted = runner.invoke(main_app, ["fit", data, "--schema", schema, "--out",
                                      str(tmp_path / "m"), "--synthesizer", "dptext",
                                      "--epsilon", "4", "--epochs", "1", "--seed", "0"])
    assert fitted.exit_code == 0, fitted.output
    sampled = runner.invoke(main_app, ["sample", str(tmp_path / "m"), "-n", "5", "--out",
                                       str(tmp_path / "s.csv"), "--seed", "1"])
    assert sampled.exit_code == 0, sampled.output
    out = pd.read_csv(tmp_path / "s.csv")
    assert list(out.columns) == ["kind", "text"] and len(out) == 5
