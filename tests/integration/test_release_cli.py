"""``dpsynth release`` end to end on the real wage table: files in, bundle out, exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from cli_app import cli_app
from planted import Copycat
from typer.testing import CliRunner

from dpsynth.accounting.ledger import Ledger
from dpsynth.commands.release import register
from dpsynth.datasets import load_dataset
from dpsynth.release import DatasetCard
from dpsynth.synthesizers import SYNTHESIZERS

runner = CliRunner()


def _app() -> typer.Typer:
    return cli_app(register)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("release")
    rows, schema = load_dataset("wage")
    paths = {"data": folder / "wage.csv", "schema": folder / "wage.yaml"}
    rows.to_csv(paths["data"], index=False)
    schema.save(paths["schema"])
    return paths


def _release(files: dict[str, Path], tmp_path: Path, *extra: str):
    args = ["release", str(files["data"]), "--schema", str(files["schema"]), "--epsilon", "1",
            "--dataset", "wage", "--out", str(tmp_path / "bundle"), "--ledger",
            str(tmp_path / "ledger.sqlite"), "--seed", "0", "--quiet", *extra]
    return runner.invoke(_app(), args)


def test_dp_release_ships_with_exit_0(files, tmp_path):
    result = _release(files, tmp_path, "--cap-epsilon", "3", "--cap-delta", "1e-5",
                      "--synthesizer", "mst", "--target", "health_ins", "--positive", "2. No")
    assert result.exit_code == 0, result.output
    assert "SHIP" in result.output and "report.html" in result.output
    bundle = tmp_path / "bundle"
    for name in ("synthetic.csv", "synthetic.parquet", "dataset_card.yaml", "report.html"):
        assert (bundle / name).is_file()
    card = DatasetCard.load(bundle)
    assert card.decision == "ship" and card.evaluation["utility"]["positive"] == "2. No"
    assert Ledger(tmp_path / "ledger.sqlite").status("wage").epsilon == pytest.approx(
        card.privacy["dataset_epsilon_after"])


def test_release_passes_synthesizer_parameters(files, tmp_path):
    result = _release(files, tmp_path, "--cap-epsilon", "3", "--synthesizer", "mst",
                      "--param", "n_bins=8")
    assert result.exit_code in (0, 3), result.output  # a decision was made
    card_text = (tmp_path / "bundle" / "dataset_card.yaml").read_text()
    assert "n_bins: 8" in card_text


def test_copying_generator_exits_3_and_writes_no_rows(files, tmp_path, monkeypatch):
    monkeypatch.setitem(SYNTHESIZERS, "copycat", Copycat)
    result = _release(files, tmp_path, "--cap-epsilon", "3", "--synthesizer", "copycat",
                      "--n-targets", "500")
    assert result.exit_code == 3, result.output
    assert "REJECT" in result.output and "no synthetic data was written" in result.output
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == [
        "dataset_card.yaml", "report.html"]


@pytest.mark.parametrize(("extra", "message"), [
    ((), "dpsynth budget register"),  # no cap and not registered
    (("--cap-epsilon", "3", "--policy", "POLICY"), "privacy.max_atack_risk"),
    (("--cap-epsilon", "3", "--target", "wage"), "'target'"),
    (("--cap-epsilon", "3", "--epsilon", "0"), "'epsilon'"),
    (("--cap-delta", "1e-5",), "--cap-delta needs --cap-epsilon"),
    (("--cap-epsilon", "3", "--generator-audit-fits", "5"), "'generator_audit_fits'"),
    (("--cap-epsilon", "3", "--synthesizer", "mst", "--param", "nope=1"),
     "'synthesizer_params'"),
    (("--cap-epsilon", "3", "--param", "n_bins"), "must be key=value"),
])
def test_usage_errors_exit_2_and_spend_nothing(files, tmp_path, extra, message):
    policy = tmp_path / "policy.yaml"
    policy.write_text("privacy:\n  max_atack_risk: 0.1\n")
    Ledger(tmp_path / "ledger.sqlite")  # an empty ledger
    extra = tuple(str(policy) if x == "POLICY" else x for x in extra)
    result = _release(files, tmp_path, *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert Ledger(tmp_path / "ledger.sqlite").datasets() == ()
    assert not (tmp_path / "bundle").exists()


def test_existing_bundle_needs_overwrite(files, tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "dataset_card.yaml").write_text("old\n")
    result = _release(files, tmp_path, "--cap-epsilon", "3")
    assert result.exit_code == 2 and "--overwrite" in result.output


def test_demo_releases_the_bundled_table(tmp_path):
    from dpsynth.release.demo import run_demo

    first = run_demo(tmp_path / "demo", epsilon=1.0, seed=0, synthesizer="mst")
    assert first.shipped, first.card.reasons
    assert (tmp_path / "demo" / "report.html").is_file()
    again = run_demo(tmp_path / "demo", epsilon=1.0, seed=1, synthesizer="mst")
    assert again.card.privacy["dataset_epsilon_before"] == 0.0  # a fresh demo ledger


def _card_app() -> typer.Typer:
    from dpsynth.commands.card import register as register_card

    app = _app()
    register_card(app)
    return app


def test_card_records_provenance_and_verify_catches_one_changed_byte(files, tmp_path):
    result = _release(files, tmp_path, "--cap-epsilon", "3", "--cap-delta", "1e-5",
                      "--synthesizer", "mst", "--target", "health_ins",
                      "--source-licence", "GPL-2 (ISLR)",
                      "--source-description", "CPS wage extract, 3000 rows")
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "bundle"
    card = DatasetCard.load(bundle)
    prov = card.provenance
    assert prov is not None and prov.source_licence == "GPL-2 (ISLR)"
    assert prov.source_description == "CPS wage extract, 3000 rows"
    assert prov.seed == 0 and "seeded" in prov.randomness
    assert "--epsilon 1" in prov.invocation and prov.invocation.startswith("dpsynth release")
    assert {"numpy", "pandas", "scikit-learn"} <= set(prov.dependencies)
    assert "dataset_card.yaml" not in prov.files
    assert {"synthetic.csv", "synthetic.parquet", "report.html",
            "model/manifest.json", "model/model.safetensors"} <= set(prov.files)
    assert len(prov.ledger_entries) == card.privacy.n_spends > 0
    ok = runner.invoke(_card_app(), ["card", "verify", str(bundle)])
    assert ok.exit_code == 0 and "verified" in ok.output, ok.output
    data = bytearray((bundle / "synthetic.csv").read_bytes())
    data[-2] = ord("7") if data[-2] != ord("7") else ord("8")
    (bundle / "synthetic.csv").write_bytes(bytes(data))
    bad = runner.invoke(_card_app(), ["card", "verify", str(bundle)])
    assert bad.exit_code == 1
    assert "synthetic.csv" in bad.output and "changed" in bad.output
    assert len([line for line in bad.output.splitlines() if "mismatch" in line]) == 1


def test_card_verify_checks_epsilon_against_the_ledger(files, tmp_path):
    result = _release(files, tmp_path, "--cap-epsilon", "3", "--cap-delta", "1e-5",
                      "--synthesizer", "mst")
    assert result.exit_code == 0, result.output
    card_path = tmp_path / "bundle" / "dataset_card.yaml"
    text = card_path.read_text()
    card = DatasetCard.load(card_path)
    stated = f"release_epsilon: {card.privacy.release_epsilon!r}"
    assert stated in text
    card_path.write_text(text.replace(stated, "release_epsilon: 0.5"))
    bad = runner.invoke(_card_app(), ["card", "verify", str(tmp_path / "bundle")])
    assert bad.exit_code == 1 and "release_epsilon" in bad.output, bad.output
    missing = runner.invoke(_card_app(), ["card", "verify", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no dataset card" in missing.output


def test_temporal_release_carries_ablation_temporal_tails_and_hashes(files, tmp_path):
    result = _release(files, tmp_path, "--cap-epsilon", "5", "--cap-delta", "1e-5",
                      "--synthesizer", "mst", "--target", "health_ins",
                      "--time-column", "year")
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "bundle"
    card = DatasetCard.load(bundle)
    ev = card.evidence
    assert ev is not None and ev.temporal is not None and ev.anchor_ablation is not None
    assert ev.temporal.latest_period == "2009" and ev.temporal.n_latest == 389
    assert ev.temporal.n_random == 389 and ev.temporal.tstr_auc_latest is not None
    assert "latest period of 'year'" in card.source.holdout_use
    assert card.source.n_train == 3000 - 2 * 389
    ablation = ev.anchor_ablation
    assert ablation.n_anchor + ablation.n_test == 389
    assert [p.share for p in ablation.points][1:-1] == [0.1, 0.3, 0.5, 1.0, 2.0, 5.0]
    assert ev.tails is not None and "epsilon does not cover" in ev.tails.note
    assert "synthetic.csv" in card.provenance.files
    html = (bundle / "report.html").read_text()
    assert "Real-anchor ablation" in html and "Temporal holdout" in html
    assert 'data-key="evidence.anchor_ablation.gain"' in html
    ok = runner.invoke(_card_app(), ["card", "verify", str(bundle)])
    assert ok.exit_code == 0, ok.output
    data = bytearray((bundle / "synthetic.csv").read_bytes())
    data[len(data) // 2] ^= 1
    (bundle / "synthetic.csv").write_bytes(bytes(data))
    bad = runner.invoke(_card_app(), ["card", "verify", str(bundle)])
    assert bad.exit_code == 1 and "synthetic.csv: sha256" in bad.output


def test_policy_requiring_an_anchor_gain_rejects(files, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("utility:\n  min_anchor_gain: 0.5\nmax_attempts: 1\n")
    result = _release(files, tmp_path, "--cap-epsilon", "3", "--cap-delta", "1e-5",
                      "--synthesizer", "mst", "--target", "health_ins", "--policy",
                      str(policy))
    assert result.exit_code == 3, result.output
    card = DatasetCard.load(tmp_path / "bundle")
    gain = [c for c in card.checks if c.name == "utility:anchor_gain"]
    assert len(gain) == 1 and gain[0].passed is False
    assert any("anchor_gain" in r for r in card.reasons)


def test_time_column_with_one_period_is_one_clear_line(files, tmp_path):
    import pandas as pd

    data = tmp_path / "one.csv"
    pd.read_csv(files["data"]).assign(year=2005).to_csv(data, index=False)
    args = ["release", str(data), "--schema", str(files["schema"]), "--epsilon", "1",
            "--dataset", "wage", "--out", str(tmp_path / "b"), "--ledger",
            str(tmp_path / "l.sqlite"), "--cap-epsilon", "3", "--time-column", "year",
            "--quiet"]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 2
    assert "holds one period only (2005)" in result.output
    assert "Traceback" not in result.output


def test_declared_rule_broken_by_the_synthetic_rows_and_the_rule_filter(files, tmp_path):
    import yaml

    schema = yaml.safe_load(files["schema"].read_text())
    schema["rules"] = ["wage >= 40 if education == '5. Advanced Degree'"]
    ruled = tmp_path / "ruled.yaml"
    ruled.write_text(yaml.safe_dump(schema))
    common = ["release", str(files["data"]), "--schema", str(ruled), "--epsilon", "1",
              "--dataset", "wage", "--ledger", str(tmp_path / "ledger.sqlite"),
              "--cap-epsilon", "5", "--cap-delta", "1e-5", "--synthesizer", "mst",
              "--seed", "0", "--quiet"]
    plain = runner.invoke(_app(), [*common, "--out", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    [row] = DatasetCard.load(tmp_path / "a").evidence.rules["checked"]
    assert row["synthetic_rate"] > row["real_rate"] and row["synthetic_violations"] > 0
    filtered = runner.invoke(_app(), [*common, "--out", str(tmp_path / "b"),
                                      "--reject-rule-breaks"])
    assert filtered.exit_code == 0, filtered.output
    card = DatasetCard.load(tmp_path / "b")
    [row] = card.evidence.rules["checked"]
    assert row["synthetic_violations"] == 0 and card.evidence.rules["rejected_rows"] > 0
    assert len(card.filters) == 1 and card.filters[0].startswith("rule filter:")
    assert "Public rules between columns" in (tmp_path / "b" / "report.html").read_text()


def test_review_round_trip_records_the_share_on_the_card(files, tmp_path):
    import pandas as pd

    from dpsynth.commands.review import register as register_review

    assert _release(files, tmp_path, "--cap-epsilon", "3", "--cap-delta", "1e-5",
                    "--synthesizer", "mst").exit_code == 0
    app = _card_app()
    register_review(app)
    bundle = tmp_path / "bundle"
    exported = runner.invoke(app, ["review", "export", str(bundle), "--n", "40"])
    assert exported.exit_code == 0, exported.output
    sheet = pd.read_csv(bundle / "review" / "review.csv", dtype=str, keep_default_na=False)
    assert len(sheet) == 40 and {"review_id", "implausible", "note"} <= set(sheet.columns)
    sheet["implausible"] = ["yes"] * 4 + ["no"] * 36
    sheet.to_csv(bundle / "review" / "review.csv", index=False)
    imported = runner.invoke(app, ["review", "import", str(bundle)])
    assert imported.exit_code == 0 and "4 implausible" in imported.output, imported.output
    review = DatasetCard.load(bundle).evidence.review
    assert review["n_reviewed"] == 40 and review["share"] == pytest.approx(0.1)
    assert review["ci"][0] < 0.1 < review["ci"][1]
    assert runner.invoke(app, ["card", "verify", str(bundle)]).exit_code == 0
    card_path = bundle / "dataset_card.yaml"
    card_path.write_text(card_path.read_text().replace(
        "max_implausible_share: null", "max_implausible_share: 0.05"))
    strict = runner.invoke(app, ["review", "import", str(bundle)])
    assert strict.exit_code == 3 and "do not ship" in strict.output, strict.output
    assert DatasetCard.load(bundle).evidence.review["passed"] is False
    sheet["implausible"] = "maybe"
    sheet.to_csv(bundle / "review" / "review.csv", index=False)
    bad = runner.invoke(app, ["review", "import", str(bundle)])
    assert bad.exit_code == 2 and "yes or no" in bad.output


def test_release_with_declared_public_rows(files, tmp_path):
    rows, _ = load_dataset("wage")
    private, public = tmp_path / "private.csv", tmp_path / "opt_in.csv"
    rows.iloc[:2600].to_csv(private, index=False)
    rows.iloc[2600:].to_csv(public, index=False)  # 400 rows that are not in the private file
    streamed = _release({**files, "data": private}, tmp_path, "--cap-epsilon", "3",
                        "--synthesizer", "dpar", "--public", str(public), "--stream")
    assert streamed.exit_code == 2 and "--stream" in streamed.output
    result = _release({**files, "data": private}, tmp_path, "--cap-epsilon", "3",
                      "--synthesizer", "dpar", "--public", str(public), "--n-targets", "300")
    assert result.exit_code in (0, 3), result.output
    assert "Declared public rows read by the generator without privacy (on the card): 400" \
        in " ".join(result.output.split())
    said = " ".join(result.output.split())
    assert "aim gave higher TSTR than dpar" in said
    from dpsynth.release.core import DEFAULT_HOLDOUT_FRACTION

    fit_rows = 2600 - round(DEFAULT_HOLDOUT_FRACTION * 2600)  # the rows left after the holdout
    assert f"at {fit_rows:,} rows" in said
    assert "--param target=" not in said  # dpar refuses a target with declared public rows
    card = DatasetCard.load(tmp_path / "bundle")
    assert card.source.public_rows["rows"] == 400 and card.source.n_rows == 2600
    assert "--public" in card.provenance.invocation
