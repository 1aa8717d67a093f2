"""DP topic clusters of the text as a control code (dptext ``topics=k``, the CTCL recipe)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from cli_app import cli_app
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from dpsynth.accounting import (
    Budget,
    BudgetSession,
    GaussianEvent,
    NoiseSource,
    calibrate_gaussian,
    pld_epsilon,
)
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import BaseSynthesizer
from dpsynth.synthesizers.text import DPTextSynthesizer
from dpsynth.synthesizers.text.synthesizer import CONTROL_PURPOSE, TOPIC_PURPOSE, TRAIN_PURPOSE
from dpsynth.synthesizers.text.topics import (
    DEFAULT_ITERATIONS,
    MAX_TOPICS,
    HashedEmbedder,
    cluster,
    dp_kmeans,
    initial_centres,
    unit_rows,
)

TINY = {"pretrained": None, "d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 32,
        "learning_rate": 5e-3}
VOCAB = (("goal", "match", "striker", "league", "referee", "penalty", "keeper", "stadium"),
         ("rain", "storm", "forecast", "thunder", "snow", "weather", "cloudy", "wind"),
         ("stocks", "market", "shares", "profits", "investor", "dividend", "bonds", "trading"))


def corpus(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, Schema]:
    """Texts of three planted topics with disjoint vocabularies (and a shared filler)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, len(VOCAB), n)
    texts = [" ".join(["the", *rng.choice(VOCAB[g], 4, replace=False)]) for g in group]
    schema = Schema((Column("text", "text", max_length=40),))
    return pd.DataFrame({"text": texts}), group, schema


def planted_vectors(n: int, k: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    directions = unit_rows(rng.normal(size=(k, dim)))
    group = rng.integers(0, k, n)
    return unit_rows(directions[group] + 0.15 * rng.normal(size=(n, dim))), group


def run_kmeans(x: np.ndarray, k: int, sigma: float | None, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)  # not the planted directions' generator
    init = initial_centres(np.zeros((0, x.shape[1])), k, x.shape[1], rng)
    noise = NoiseSource.create(seed, False)
    centres = dp_kmeans(x, init, iterations=DEFAULT_ITERATIONS, sigma=sigma, noise=noise,
                        rng=rng)
    return np.argmax(x @ centres.T - 0.5 * (centres**2).sum(1), axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dp_kmeans_recovers_planted_groups_at_large_epsilon(seed):
    x, group = planted_vectors(800, 4, 32, seed)
    sigma = calibrate_gaussian(4.0, 1e-5, count=DEFAULT_ITERATIONS)
    assert adjusted_rand_score(group, run_kmeans(x, 4, None, seed)) > 0.95
    assert adjusted_rand_score(group, run_kmeans(x, 4, sigma, seed)) > 0.95


def test_dp_kmeans_at_tiny_epsilon_runs_and_loses_the_groups():
    x, group = planted_vectors(800, 4, 32, 0)
    sigma = calibrate_gaussian(0.01, 1e-5, count=DEFAULT_ITERATIONS)
    labels = run_kmeans(x, 4, sigma, 0)
    assert labels.shape == group.shape
    assert adjusted_rand_score(group, labels) < 0.5  # the noise is really added


def test_dp_kmeans_refuses_unbounded_rows():
    with pytest.raises(ValueError, match="norm"):
        dp_kmeans(np.full((4, 3), 2.0), np.zeros((2, 3)), iterations=1, sigma=None,
                  noise=None, rng=np.random.default_rng(0))


def test_hashed_embeddings_are_public_and_bounded():
    emb = HashedEmbedder().embed(["The storm and the rain", "the the the", ""])
    norms = np.linalg.norm(emb, axis=1)
    assert norms[0] == pytest.approx(1.0) and norms[1] == 0 and norms[2] == 0
    again = HashedEmbedder().embed(["The storm and the rain"])  # no fitted vocabulary
    assert np.array_equal(emb[:1], again)


def test_accounted_epsilon_is_the_planned_pld_figure():
    df, _, schema = corpus()
    session = BudgetSession(Budget(2.0, 1e-4))
    synth = DPTextSynthesizer(epsilon=2.0, delta=1e-4, epochs=0.3, topics=3, random_state=0,
                              **TINY)
    plan = synth.plan_budget(schema, len(df))
    synth.fit(df, schema, ledger=session)
    assert [s.purpose for s in session.spends] == [TOPIC_PURPOSE, CONTROL_PURPOSE,
                                                   TRAIN_PURPOSE]
    topic = session.spends[0].event
    assert isinstance(topic, GaussianEvent) and topic.count == DEFAULT_ITERATIONS
    assert session.spends == plan.spends
    spent = pld_epsilon(list(session.spent_events()), 1e-4)
    assert spent == pytest.approx(plan.epsilon()) and spent <= 2.0 + 1e-6
    assert synth.privacy_.epsilon == pytest.approx(plan.epsilon())
    # the clustering alone: its share (0.1) of epsilon at its share of delta
    assert pld_epsilon([topic], 0.1 * 1e-4) == pytest.approx(0.2, rel=1e-2)


def test_topics_recover_planted_text_groups():
    df, group, schema = corpus(600)
    raw = HashedEmbedder().embed(df.text.tolist())
    for sigma in (None, calibrate_gaussian(4.0, 1e-5, count=DEFAULT_ITERATIONS)):
        topics, found = cluster(HashedEmbedder(), raw, 3, sigma=sigma,
                                noise=NoiseSource.create(0, False),
                                rng=np.random.default_rng(0))
        assert adjusted_rand_score(group, found) > 0.8, sigma
        assert np.array_equal(found, topics.assign(raw))
    synth = DPTextSynthesizer(epsilon=math.inf, epochs=0.1, topics=3, random_state=0,
                              **TINY).fit(df, schema)
    found = synth.topics_.assign(raw)
    assert adjusted_rand_score(group, found) > 0.8
    shares = [t["share"] for t in synth.topic_card()]
    assert sum(shares) == pytest.approx(1.0) and min(shares) > 0.2
    out = synth.sample(6, random_state=0)
    assert list(out.columns) == ["text"] and len(out) == 6


def test_small_epsilon_still_runs_and_conditions_with_controls():
    df, _, _ = corpus(160)
    df["kind"] = np.where(np.arange(len(df)) % 2 == 0, "a", "b")
    schema = Schema((Column("kind", "categorical", categories=("a", "b")),
                     Column("text", "text", max_length=40)))
    synth = DPTextSynthesizer(epsilon=0.05, epochs=0.2, topics=4, random_state=0,
                              **TINY).fit(df, schema)
    assert synth.controls_.columns == ("kind", "topic")
    assert len(synth.controls_.domain) == 8 and synth.privacy_.epsilon <= 0.05 + 1e-6
    out = synth.sample(5, random_state=1)
    assert list(out.columns) == ["kind", "text"]
    texts = synth.generate_text(pd.DataFrame({"kind": ["a", "b"]}), random_state=0)
    assert len(texts) == 2  # the topic is drawn from the released histogram given "kind"


def test_save_and_load_keep_the_topics(tmp_path):
    df, _, schema = corpus(120)
    synth = DPTextSynthesizer(epsilon=2.0, epochs=0.3, topics=3, random_state=0,
                              **TINY).fit(df, schema)
    synth.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    card = manifest["state"]["topics"]["card"]
    assert [t["topic"] for t in card] == [0, 1, 2]
    assert not list(tmp_path.glob("m/*.pkl"))
    again = BaseSynthesizer.load(tmp_path / "m")
    assert np.array_equal(again.topics_.centres, synth.topics_.centres)
    assert np.array_equal(again.topics_.projection, synth.topics_.projection)
    assert np.allclose(again.score_records(df.head(8)), synth.score_records(df.head(8)))
    assert again.sample(4, random_state=2).equals(synth.sample(4, random_state=2))


@pytest.mark.parametrize("params", [
    {"topics": -1}, {"topics": 1}, {"topics": 2.5}, {"topics": True},
    {"topics": MAX_TOPICS + 1}, {"topics": "4"},
    {"topics": 3, "topic_fraction": 0.0}, {"topics": 3, "topic_fraction": 0.96},
    {"topics": 3, "release_controls": False}])
def test_bad_topics_are_parameter_errors(params):
    df, _, schema = corpus(60)
    with pytest.raises(ParameterError, match="topic"):
        DPTextSynthesizer(epsilon=1.0, **TINY, **params).fit(df, schema)


def test_a_column_named_topic_is_refused():
    df, _, _ = corpus(60)
    df["topic"] = "x"
    schema = Schema((Column("topic", "categorical", categories=("x",)),
                     Column("text", "text", max_length=40)))
    with pytest.raises(ParameterError, match="topic"):
        DPTextSynthesizer(topics=2, **TINY).fit(df, schema)


def test_cli_fit_with_topics(tmp_path):
    from dpsynth.commands.text import register

    df, _, schema = corpus(120)
    df.to_csv(tmp_path / "t.csv", index=False)
    schema.save(tmp_path / "s.yaml")
    result = CliRunner().invoke(cli_app(register), [
        "text", "fit", str(tmp_path / "t.csv"), "--schema", str(tmp_path / "s.yaml"),
        "--out", str(tmp_path / "m"), "--epsilon", "3", "--epochs", "0.2", "--batch-size",
        "32", "--seed", "0", "--pretrained", "byte-small", "--max-length", "40",
        "--topics", "3"])
    assert result.exit_code == 0, result.output
    assert "topic 2:" in result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    purposes = [s["purpose"] for s in manifest["privacy"]["spends"]]
    assert purposes[:2] == [TOPIC_PURPOSE, CONTROL_PURPOSE]


def test_tiny_llama_topics_list_public_tokens_and_reload(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from test_text_hf import write_tiny_model

    model_dir = write_tiny_model(tmp_path / "llama", arch="llama")
    df = pd.DataFrame({"text": ["the printer is broken again", "please reset my password",
                                "my invoice is wrong"] * 20})
    schema = Schema((Column("text", "text", max_length=16),))
    synth = DPTextSynthesizer(epsilon=2.0, model_dir=model_dir, lora_rank=2, epochs=0.3,
                              batch_size=16, topics=2, random_state=0).fit(df, schema)
    card = synth.topic_card()
    assert len(card) == 2 and all(0 < len(t["words"]) <= 8 for t in card)
    synth.save(tmp_path / "m")
    again = BaseSynthesizer.load(tmp_path / "m")
    assert again.topic_card() == card
    assert np.allclose(again.score_records(df.head(4)), synth.score_records(df.head(4)),
                       atol=1e-5)
