"""The gate on synthetic data from any tool: a copy of the training rows is rejected, an
independent sample of the same population ships."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.datasets import load_dataset
from dpsynth.errors import ParameterError
from dpsynth.release import ReleasePolicy, assess
from dpsynth.schema import Column


@pytest.fixture(scope="module")
def wage():
    rows, schema = load_dataset("wage")
    order = np.random.default_rng(0).permutation(len(rows))
    train, holdout, independent = (rows.iloc[order[i * 1000:(i + 1) * 1000]] for i in range(3))
    return train, holdout, independent, schema


def test_released_as_is_is_rejected(wage):
    train, holdout, _, schema = wage
    found = assess(train, holdout, train.drop(columns="rownames"), schema, target="jobclass",
                   n_targets=500, random_state=0)
    assert found.outcome == "reject"
    assert found.audit.leak
    assert found.decision.failed("privacy")
    assert "regenerating at the same epsilon would not fix" in found.decision.reasons[0]


def test_independent_sample_ships(wage):
    train, holdout, independent, schema = wage
    found = assess(train, holdout, independent, schema, target="jobclass", n_targets=500,
                   random_state=0)
    assert found.outcome == "ship", found.decision.reasons
    assert not found.audit.leak
    fid = found.fidelity
    assert 0 < fid["tvd_1way"] < fid["tvd_2way"] < 0.25
    assert set(fid["tvd_by_column"]) == {c.name for c in schema.data_columns}
    assert np.mean(list(fid["tvd_by_column"].values())) == pytest.approx(fid["tvd_1way"])
    util = found.utility
    assert util["target"] == "jobclass" and util["positive"] == "2. Information"
    assert 0.8 < util["ratio"] < 1.25
    # plot data: one marginal per column, shares summing to 1, ROC curves of the MIAs
    assert len(found.figures.marginals) == len(schema.data_columns)
    for m in found.figures.marginals:
        assert sum(m.real) == pytest.approx(1) and sum(m.synthetic) == pytest.approx(1)
        assert len(m.labels) == len(m.real)
    year = next(m for m in found.figures.marginals if m.column == "year")
    assert year.labels == tuple(str(y) for y in range(2003, 2010))  # empty bins dropped
    assert {label for label, _ in found.figures.roc} >= {"dcr_membership"}


def test_policy_thresholds_drive_the_outcome(wage):
    train, holdout, independent, schema = wage
    strict = ReleasePolicy(max_tvd_1way=0.001, max_attempts=2)
    found = assess(train, holdout, independent, schema, policy=strict, attempt=1,
                   random_state=0, n_targets=200)
    assert found.outcome == "regenerate"
    assert [c.name for c in found.decision.failed()] == ["fidelity:tvd_1way"]
    utility = [c for c in found.decision.checks if c.area == "utility"]
    assert utility[0].passed is None  # no target: not checked


def test_inputs_are_validated_together(wage):
    train, holdout, _, schema = wage
    loose = schema.replace_column(Column("wage", "numeric"))
    with pytest.raises(ParameterError) as info:
        assess(train, holdout.drop(columns="age"), pd.DataFrame({"a": [1]}), loose,
               target="age")
    text = str(info.value)
    for part in ("holdout lacks", "synthetic must be", "declare the domains", "'target'"):
        assert part in text


def _notes(rng: np.random.Generator, start: int, n: int) -> pd.DataFrame:
    topics = rng.choice(["billing", "refund", "delivery"], n)
    return pd.DataFrame({"topic": topics, "note": [
        f"Customer {i} wrote from user{i}@example.com about {t} for order "
        f"{rng.integers(10**6)}; please call back" for i, t in zip(range(start, start + n),
                                                                   topics, strict=True)]})


def test_text_copies_are_rejected_and_fresh_text_ships():
    from dpsynth.schema import Schema

    schema = Schema((Column("topic", "categorical", categories=("billing", "refund",
                                                                "delivery")),
                     Column("note", "text")))
    rng = np.random.default_rng(0)
    train, holdout, fresh = _notes(rng, 0, 300), _notes(rng, 1000, 200), _notes(rng, 5000, 300)
    copied = assess(train, holdout, train.sample(300, replace=True, random_state=0), schema,
                    random_state=0)
    assert copied.outcome == "reject"
    failed = {c.name for c in copied.decision.failed("privacy")}
    assert {"text:note:exact", "text:note:long_copy", "text:note:pii"} <= failed
    assert copied.audit is None  # one tabular column: nothing for the attack suite
    ok = assess(train, holdout, fresh, schema, random_state=0)
    assert ok.outcome == "ship", ok.decision.reasons
    assert ok.text["note"]["reproduction"]["exact"]["train"] == 0.0
