"""TabularTextSynthesizer: a table with a free-text column under one budget and one ledger."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.accounting import Budget, BudgetSession, pld_epsilon
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import BaseSynthesizer
from dpsynth.synthesizers.text import TabularTextSynthesizer
from dpsynth.synthesizers.text.synthesizer import TRAIN_PURPOSE

TEXT = {"pretrained": None, "d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 32,
        "learning_rate": 5e-3}



def table(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    rng = np.random.default_rng(seed)
    kind = np.where(rng.random(n) < 0.6, "billing", "login")
    urgent = np.where(rng.random(n) < 0.3, "yes", "no")
    age = rng.integers(18, 80, n)
    text = [("invoice wrong" if k == "billing" else "cannot log in") +
            (" asap" if u == "yes" else "") for k, u in zip(kind, urgent, strict=True)]
    schema = Schema((
        Column("kind", "categorical", categories=("billing", "login")),
        Column("urgent", "categorical", categories=("no", "yes")),
        Column("age", "integer", lower=18, upper=80),
        Column("note", "text", max_length=24),
    ))
    return pd.DataFrame({"kind": kind, "urgent": urgent, "age": age, "note": text}), schema


def test_one_plan_one_ledger(tmp_path):
    df, schema = table()
    session = BudgetSession(Budget(4.0, 1e-4))
    synth = TabularTextSynthesizer(epsilon=4.0, delta=1e-4, random_state=0,
                                   table_synthesizer="mst", condition_on=("kind",),
                                   text_params={**TEXT, "epochs": 1})
    synth.fit(df, schema, ledger=session)
    purposes = [s.purpose for s in session.spends]
    assert purposes[-1] == TRAIN_PURPOSE and len(purposes) >= 2  # tabular spends come first
    assert [s.purpose for s in synth.privacy_.spends] == purposes
    total = pld_epsilon([s.event for s in session.spends], 1e-4)
    assert total <= 4.0 + 1e-6 and synth.privacy_.epsilon <= 4.0 + 1e-6
    # the text model released no control distribution of its own
    assert synth.text_.controls_ is None
    out = synth.sample(30, random_state=1)
    assert list(out.columns) == ["kind", "urgent", "age", "note"]
    synth.save(tmp_path / "m")
    again = BaseSynthesizer.load(tmp_path / "m")
    assert again.sample(8, random_state=2).equals(synth.sample(8, random_state=2))


def test_text_follows_the_synthetic_rows():
    df, schema = table()
    synth = TabularTextSynthesizer(epsilon=math.inf, random_state=0, table_synthesizer="mst",
                                   text_params={**TEXT, "epochs": 25})
    synth.fit(df, schema)
    out = synth.sample(60, random_state=3)
    billing = out[out.kind == "billing"].note
    login = out[out.kind == "login"].note
    assert billing.str.startswith("invoice").mean() > 0.8
    assert login.str.startswith("cannot").mean() > 0.8
    urgent = out[out.urgent == "yes"].note.str.endswith("asap").mean()
    calm = out[out.urgent == "no"].note.str.endswith("asap").mean()
    assert urgent > calm + 0.5


def test_bad_parts_are_refused():
    df, schema = table()
    with pytest.raises(ParameterError, match="table_synthesizer"):
        TabularTextSynthesizer(table_synthesizer="nope").fit(df, schema)
    with pytest.raises(ParameterError, match="condition_on"):
        TabularTextSynthesizer(condition_on=("age",), text_params=TEXT).fit(df, schema)
    with pytest.raises(ParameterError, match="text_params"):
        TabularTextSynthesizer(text_params={"epsilon": 3}).fit(df, schema)
