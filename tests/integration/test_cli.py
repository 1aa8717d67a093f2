"""The CLI as a user drives it: help, schema drafting, fit/sample, ledger, bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.cli import app
from dpsynth.datasets import load_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def wage(tmp_path_factory) -> tuple[Path, Path]:
    df, schema = load_dataset("wage")
    folder = tmp_path_factory.mktemp("wage")
    df.iloc[:600].to_csv(folder / "wage.csv", index=False)
    schema.save(folder / "wage.yaml")
    return folder / "wage.csv", folder / "wage.yaml"


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_help_explains_epsilon_and_delta():
    result = invoke("fit", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "ε (epsilon), the privacy budget" in text and "far below 1/n" in text


def test_schema_draft_warns_loudly_and_fit_refuses_it(wage, tmp_path):
    data, _ = wage
    draft = tmp_path / "draft.yaml"
    result = invoke("schema", "draft", data, "--out", draft)
    assert result.exit_code == 0, result.output
    assert "NOT public" in result.output
    refused = invoke("fit", data, "--schema", draft, "--out", tmp_path / "m", "--seed", "0")
    assert refused.exit_code == 2
    assert "not declared public" in refused.output


def test_schema_validate_lists_problems(wage, tmp_path):
    data, schema = wage
    assert invoke("schema", "validate", data, "--schema", schema).exit_code == 0
    bad = pd.read_csv(data)
    bad.loc[0, "age"] = 200
    bad.loc[1, "race"] = "5. Martian"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = invoke("schema", "validate", tmp_path / "bad.csv", "--schema", schema)
    assert result.exit_code == 2
    assert "'age' has 1 value(s) outside" in result.output
    assert "'race' has 1 value(s) outside" in result.output


def test_fit_then_sample(wage, tmp_path):
    data, schema = wage
    model = tmp_path / "model"
    fitted = invoke("fit", data, "--schema", schema, "--out", model, "--epsilon", "2",
                    "--synthesizer", "dpvae", "--epochs", "1", "--seed", "0")
    assert fitted.exit_code == 0, fitted.output
    assert "Privacy spent: ε =" in fitted.output
    assert "Settings the fit chose: " in fitted.output and "steps=" in fitted.output
    assert "dpvae learns little" in fitted.output
    out = tmp_path / "synthetic.csv"
    sampled = invoke("sample", model, "--n-rows", "50", "--out", out, "--seed", "1")
    assert sampled.exit_code == 0, sampled.output
    rows = pd.read_csv(out)
    assert len(rows) == 50 and "rownames" not in rows.columns


def test_fit_with_declared_public_rows(wage, tmp_path):
    data, schema = wage
    df, _ = load_dataset("wage")
    public = tmp_path / "opt_in.csv"
    df.iloc[600:700].to_csv(public, index=False)  # rows not in the private file
    fitted = invoke("fit", data, "--schema", schema, "--out", tmp_path / "m", "--epsilon", "1",
                    "--synthesizer", "dpar", "--epochs", "1", "--seed", "0", "--public", public)
    assert fitted.exit_code == 0, fitted.output
    assert "Declared public rows read without privacy: 100" in fitted.output
    assert "Privacy spent: ε =" in fitted.output
    refused = invoke("fit", data, "--schema", schema, "--out", tmp_path / "a", "--epsilon",
                     "1", "--synthesizer", "aim", "--seed", "0", "--public", public)
    assert refused.exit_code == 2 and "aim does not read declared public rows" in " ".join(
        refused.output.split())
    assert not (tmp_path / "a").exists()
    itself = invoke("fit", data, "--schema", schema, "--out", tmp_path / "s", "--epsilon", "1",
                    "--synthesizer", "dpar", "--seed", "0", "--public", data)
    assert itself.exit_code != 0 and "private table itself" in " ".join(itself.output.split())


def test_fit_takes_synthesizer_parameters(wage, tmp_path):
    from dpsynth.synthesizers.ar import DPARSynthesizer

    data, schema = wage
    fitted = invoke("fit", data, "--schema", schema, "--out", tmp_path / "m", "--epsilon", "1",
                    "--synthesizer", "dpar", "--epochs", "1", "--seed", "0",
                    "--param", "network=experts", "--param", "d_model=16")
    assert fitted.exit_code == 0, fitted.output
    assert "Settings given: network='experts', d_model=16" in fitted.output
    assert "aim gave higher TSTR than dpar" in fitted.output  # 600 rows at epsilon = 1
    model = DPARSynthesizer.load(tmp_path / "m")
    assert model.network_ == "experts" and model.d_model == 16 and model.epochs == 1


def test_fit_with_a_target_head(wage, tmp_path):
    from dpsynth.synthesizers.ar import DPARSynthesizer

    data, schema = wage
    fitted = invoke("fit", data, "--schema", schema, "--out", tmp_path / "m", "--epsilon", "1",
                    "--synthesizer", "dpar", "--epochs", "1", "--seed", "0",
                    "--param", "target=health_ins")
    assert fitted.exit_code == 0, fitted.output
    assert "train:dpar-target" in fitted.output and "Settings given: target='health_ins'" \
        in fitted.output and "the target head brought" in fitted.output
    model = DPARSynthesizer.load(tmp_path / "m")
    assert model.target == "health_ins" and model.head_ is not None
    assert model.privacy_.epsilon <= 1.0
    refused = invoke("fit", data, "--schema", schema, "--out", tmp_path / "n", "--epsilon",
                     "1", "--synthesizer", "dpar", "--param", "target=nope")
    assert refused.exit_code == 2 and "'target'" in refused.output
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("name, epsilon, n_rows, hinted", [
    ("dpar", 1.0, 9_999, True), ("dpar", 1.0, 10_000, False), ("dpar", 0.5, 9_000, True),
    ("dpar", 2.0, 14_000, True), ("dpar", 2.0, 14_200, False), ("dpar", 4.0, 19_999, True),
    ("dpar", 8.0, 20_000, False), ("dpar", float("inf"), 100, False), ("aim", 1.0, 100, False),
    ("mst", 1.0, 100, False), ("dpvae", 1.0, 10**6, True),
])
def test_model_choice_hint_follows_the_benchmarked_sizes(name, epsilon, n_rows, hinted):
    from dpsynth.commands._common import model_choice_hint

    assert (model_choice_hint(name, epsilon, n_rows) is not None) is hinted
    with_target = model_choice_hint(name, epsilon, n_rows, "y")
    assert (with_target is not None) is hinted
    if hinted and name == "dpar":
        assert "3-way TVD" in with_target and "higher TSTR" not in with_target
        assert "target=COLUMN" in model_choice_hint(name, epsilon, n_rows)
        assert "target=COLUMN" not in model_choice_hint(name, epsilon, n_rows, public=True)


def test_model_choice_hint_names_the_release_target_for_dpar():
    from dpsynth.commands._common import model_choice_hint

    large = model_choice_hint("dpar", 1.0, 50_000, predicts="income")
    assert large is not None and "--param target=income" in large
    assert "--param target=income" in model_choice_hint("dpar", 1.0, 100, predicts="income")
    assert model_choice_hint("dpar", 1.0, 50_000) is None  # no column to name
    assert model_choice_hint("dpar", 1.0, 50_000, "income", predicts="income") is None
    assert model_choice_hint("dpar", 1.0, 50_000, public=True, predicts="income") is None
    assert model_choice_hint("aim", 1.0, 50_000, predicts="income") is None
    assert model_choice_hint("dpar", float("inf"), 50_000, predicts="income") is None


@pytest.mark.parametrize("args, needle", [
    (("--epsilon", "0"), "'epsilon'"),
    (("--epsilon", "-1"), "'epsilon'"),
    (("--delta", "0.5"), "'delta'"),
    (("--synthesizer", "nope"), "unknown synthesizer"),
    (("--synthesizer", "dpar", "--param", "nope=1"), "dpar has no parameter 'nope'"),
    (("--synthesizer", "dpar", "--param", "epsilon=2"), "use --epsilon"),
    (("--synthesizer", "dpar", "--param", "network"), "must be key=value"),
    (("--synthesizer", "dpar", "--param", "network=mixture"), "'network'"),
])
def test_fit_bad_parameters_exit_2_with_one_line(wage, tmp_path, args, needle):
    data, schema = wage
    result = invoke("fit", data, "--schema", schema, "--out", tmp_path / "m", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_missing_file_and_bad_n_rows(wage, tmp_path):
    _, schema = wage
    result = invoke("fit", tmp_path / "nope.csv", "--schema", schema, "--out", tmp_path / "m")
    assert result.exit_code == 2 and "not found" in result.output
    result = invoke("sample", tmp_path, "--n-rows", "0", "--out", tmp_path / "x.csv")
    assert result.exit_code == 2 and "--n-rows" in result.output


def test_other_delimiter_is_read(wage, tmp_path):
    data, schema = wage
    semi = tmp_path / "semi.csv"
    pd.read_csv(data).to_csv(semi, sep=";", index=False)
    assert invoke("schema", "validate", semi, "--schema", schema).exit_code == 0


def test_fit_spends_through_the_ledger_and_refuses_past_the_cap(wage, tmp_path):
    data, schema = wage
    ledger = tmp_path / "ledger.sqlite"
    registered = invoke("budget", "register", "wage", "--data", data, "--schema", schema,
                        "--epsilon", "1.2", "--ledger", ledger)
    assert registered.exit_code == 0, registered.output
    args = ("fit", data, "--schema", schema, "--synthesizer", "dpvae", "--epochs", "1",
            "--seed", "0", "--ledger", ledger, "--dataset", "wage", "--epsilon", "1")
    first = invoke(*args, "--out", tmp_path / "m1")
    assert first.exit_code == 0, first.output
    second = invoke(*args, "--out", tmp_path / "m2")
    assert second.exit_code == 1
    assert "is left" in second.output and not (tmp_path / "m2").exists()
    shown = invoke("budget", "show", "wage", "--ledger", ledger)
    assert shown.exit_code == 0 and "remaining" in shown.output
