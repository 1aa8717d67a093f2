"""The traps a new user falls into writing a schema and a table by hand: one precise line
each, no traceback, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.cli import app
from dpsynth.data.io import read_table
from dpsynth.errors import DataReadError
from dpsynth.release import DatasetCard

runner = CliRunner()


def test_header_only_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("age,wage\n")
    with pytest.raises(DataReadError, match="has a header line but no data rows"):
        read_table(path)


def test_duplicate_column_names_say_duplicate(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("age,wage,age\n1,2,3\n")
    with pytest.raises(DataReadError, match=r"duplicate column names in the header: \['age'\]"):
        read_table(path)


def test_binary_file_is_called_binary(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataReadError, match="is a binary file") as info:
        read_table(path)
    assert "latin-1" not in str(info.value)


def _table(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300).round(3),
                          "c": rng.choice(["a", "b"], size=300)})
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  - {name: x, kind: numeric, lower: -1, upper: 1}\n"
                      "  - {name: c, kind: categorical, categories: [a, b]}\n")
    paths = {"schema": schema}
    for name, part in (("train", frame[:200]), ("holdout", frame[200:])):
        paths[name] = tmp_path / f"{name}.csv"
        part.to_csv(paths[name], index=False)
    return paths


def test_epsilon_nan_is_one_line_without_the_no_privacy_banner(tmp_path):
    paths = _table(tmp_path)
    result = runner.invoke(app, ["fit", str(paths["train"]), "--schema", str(paths["schema"]),
                                 "--epsilon", "nan", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "got nan" in result.output and "NO differential privacy" not in result.output


def test_audit_with_inf_is_one_line_and_writes_nothing(tmp_path):
    paths = _table(tmp_path)
    synthetic = pd.read_csv(paths["train"]).assign(x=lambda d: d["x"].where(d.index != 3,
                                                                            np.inf))
    synthetic.to_csv(tmp_path / "synthetic.csv", index=False)
    out = tmp_path / "audit"
    result = runner.invoke(app, ["audit", "--train", str(paths["train"]), "--holdout",
                                 str(paths["holdout"]), "--synthetic",
                                 str(tmp_path / "synthetic.csv"), "--out", str(out),
                                 "--quiet", "--n-targets", "50"])
    assert result.exit_code == 2, result.output
    assert "infinite values in {'x': 1}" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_audit_table_is_whole_when_stdout_is_not_a_terminal(tmp_path):
    paths = _table(tmp_path)
    result = runner.invoke(app, ["audit", "--train", str(paths["train"]), "--holdout",
                                 str(paths["holdout"]), "--synthetic", str(paths["train"]),
                                 "--out", str(tmp_path / "audit"), "--quiet", "--n-targets",
                                 "50", "--seed", "0"])
    assert result.exit_code == 3, result.output
    assert "control rate" in result.output and "1.…" not in result.output
    assert "risk [CI]" in result.output and "…" not in result.output.split("Audit took")[0]


def test_release_clip_counts_clipped_values_per_column(tmp_path):
    paths = _table(tmp_path)
    args = ["release", str(paths["train"]), "--schema", str(paths["schema"]), "--epsilon",
            "2", "--dataset", "t", "--ledger", str(tmp_path / "l.sqlite"), "--cap-epsilon",
            "9", "--synthesizer", "mst", "--seed", "0", "--quiet", "--n-targets", "50"]
    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "--clip" in refused.output
    clipped = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--clip"])
    assert clipped.exit_code in (0, 3), clipped.output
    card = DatasetCard.load(tmp_path / "b")
    n = int((pd.read_csv(paths["train"])["x"].abs() > 1).sum())
    assert n > 0 and card.filters[0].startswith("clip:") and f"'x': {n}" in card.filters[0]


def test_fit_clip_counts_clipped_values_and_refusal_spends_nothing(tmp_path):
    import json

    from dpsynth.accounting import Budget
    from dpsynth.accounting.ledger import Ledger
    from dpsynth.schema import Schema
    from dpsynth.synthesizers import BaseSynthesizer

    paths = _table(tmp_path)
    schema = Schema.load(paths["schema"])
    rows = read_table(paths["train"], schema=schema)
    ledger = str(tmp_path / "l.sqlite")
    Ledger(ledger).register_table("t", Budget(9.0, 1e-4), rows, schema)
    args = ["fit", str(paths["train"]), "--schema", str(paths["schema"]), "--epsilon", "1",
            "--synthesizer", "mst", "--seed", "0", "--ledger", ledger, "--dataset", "t"]
    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2, refused.output
    assert "'x'" in refused.output and "--clip" in refused.output
    assert Ledger(ledger).status("t").n_spends == 0 and not (tmp_path / "a" / "manifest.json"
                                                             ).exists()
    n = int((rows["x"].abs() > 1).sum())
    clipped = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--clip"])
    assert clipped.exit_code == 0, clipped.output
    assert n > 0 and f"'x': {n}" in clipped.output and Ledger(ledger).status("t").n_spends > 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["fit_notes"]["clipped"] == {"x": n}
    assert BaseSynthesizer.load(tmp_path / "b").clipped_ == {"x": n}


def test_fit_clip_python_api_and_manifest_unchanged_without_clipping(tmp_path):
    from dpsynth.errors import DataValidationError
    from dpsynth.schema import Schema
    from dpsynth.synthesizers import create

    paths = _table(tmp_path)
    schema = Schema.load(paths["schema"])
    rows = read_table(paths["train"], schema=schema)
    with pytest.raises(DataValidationError, match="clip=True"):
        create("mst", epsilon=1.0, random_state=0).fit(rows, schema)
    model = create("mst", epsilon=1.0, random_state=0).fit(rows, schema, clip=True)
    assert model.clipped_ == {"x": int((rows["x"].abs() > 1).sum())}
    assert model.sample(50, random_state=0)["x"].abs().max() <= 1
    inside = rows.assign(x=rows["x"].clip(-1, 1))
    plain = create("mst", epsilon=1.0, random_state=0).fit(inside, schema, clip=True)
    assert plain.clipped_ == {} and "fit_notes" not in plain.to_manifest()[0]
