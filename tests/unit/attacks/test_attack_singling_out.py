"""Singling-out predicates on hand-made tables with known answers."""

import numpy as np
import pandas as pd
import pytest

from dpsynth.attacks import AuditData, ThreatModel, singling_out
from dpsynth.attacks.singling_out import Condition, _univariate, matches
from dpsynth.errors import ParameterError


def test_conditions_and_predicates():
    values = np.array([[1.0, 0.0], [2.0, 1.0], [np.nan, 1.0], [2.5, 0.0]])
    assert Condition(0, 1.5, 2.6).mask(values).tolist() == [False, True, False, True]
    assert Condition(0, np.nan, np.nan).mask(values).tolist() == [False, False, True, False]
    pred = (Condition(0, 1.5, 2.6), Condition(1, 1.0, 1.0))
    assert matches(pred, values).tolist() == [False, True, False, False]


def test_univariate_predicates_isolate_one_synthetic_row():
    frame = pd.DataFrame({"colour": ["red"] * 5 + ["blue"] * 4 + ["green"],
                          "x": [0, 0, 1, 1, 2, 2, 3, 3, 4, 9.0]})
    data = AuditData.from_frames(frame, frame, frame)
    preds = _univariate(data, tolerance=0.01)
    # "green" is unique; 4 is unique; 9 is unique (as a value and as the maximum); the
    # minimum 0 is not unique; "red", "blue" and the other numbers occur more than once
    assert len(preds) == 4
    for pred in preds:
        assert matches(pred, data.synthetic.values).sum() == 1


def _unique_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                         "c": rng.choice(list("pqrs"), size=n), "d": rng.normal(size=n)})


def test_copy_is_singled_out_and_independent_sample_is_not():
    train, holdout, other = _unique_rows(400, 1), _unique_rows(400, 2), _unique_rows(400, 3)
    leak = singling_out(AuditData.from_frames(train, holdout, train), n_columns=3,
                        random_state=0)
    assert leak.success.value == 1.0 and leak.leak
    assert leak.metrics["n_predicates"] == 500
    safe = singling_out(AuditData.from_frames(train, holdout, other), random_state=0)
    assert not safe.leak
    uni = singling_out(AuditData.from_frames(train, holdout, train), mode="univariate",
                       random_state=0)
    assert uni.success.value == 1.0 and uni.leak


def test_singled_out_rows_are_reported_by_id():
    train = _unique_rows(200, 4)
    train.index = pd.RangeIndex(1000, 1200)
    result = singling_out(AuditData.from_frames(train, _unique_rows(200, 5), train),
                          ThreatModel.singling_out(30), random_state=0)
    assert result.n_targets == 30
    assert set(result.exposed_row_ids) <= set(range(1000, 1200)) and result.exposed_row_ids


def test_larger_train_is_subsampled_to_the_control_size():
    train, holdout = _unique_rows(800, 6), _unique_rows(200, 7)
    result = singling_out(AuditData.from_frames(train, holdout, train), random_state=0)
    assert result.metrics["table_size"] == 200
    # a predicate isolating a synthetic (= training) row finds it in the subsample 1 time in 4
    assert result.success.value == pytest.approx(0.25, abs=0.08)


def test_no_predicate_gives_an_empty_no_risk_result():
    same = pd.DataFrame({"a": [1, 1, 1, 1], "b": ["x", "x", "x", "x"]})
    result = singling_out(AuditData.from_frames(same, same, same), mode="univariate")
    assert result.n_targets == 0 and not result.leak and "no predicate" in result.notes


def test_parameters_are_validated_together():
    frame = _unique_rows(20, 8)
    data = AuditData.from_frames(frame, frame, frame)
    with pytest.raises(ParameterError) as info:
        singling_out(data, mode="trivariate", n_columns=0, tolerance=2.0)
    assert all(name in str(info.value) for name in ("'mode'", "'n_columns'", "'tolerance'"))
