"""TableEncoder: layout from the declared domain only, round trips, decoding and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.encode import Span, TableEncoder
from dpsynth.errors import DataValidationError, NotFittedError, ParameterError, PrivacyError
from dpsynth.schema import Column, Schema

SCHEMA = Schema((
    Column("id", "identifier"),
    Column("colour", "categorical", categories=("red", "green", "blue"), nullable=True),
    Column("size", "ordinal", categories=(1, 2, 3)),
    Column("flag", "categorical", categories=(False, True)),
    Column("x", "numeric", lower=0.0, upper=10.0, nullable=True),
    Column("n", "integer", lower=-5, upper=5),
    Column("when", "datetime", lower="2000-01-01", upper="2001-01-01", nullable=True),
))


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [10, 11, 12, 13],
        "colour": ["red", None, "blue", "green"],
        "size": [1, 3, 2, 3],
        "flag": [True, False, False, True],
        "x": [0.0, 2.5, np.nan, 10.0],
        "n": [-5, 0, 4, 5],
        "when": pd.to_datetime(["2000-01-01 00:00", None, "2000-07-01 12:00", "2001-01-01 00:00"]),
    })


@pytest.fixture
def enc() -> TableEncoder:
    return TableEncoder().fit(SCHEMA)


def test_layout_follows_the_declared_domain(enc):
    assert enc.spans_ == (
        Span("colour", "categorical", 0, 4),           # 3 categories + null slot
        Span("size", "categorical", 4, 3),
        Span("flag", "categorical", 7, 2),
        Span("x", "numeric", 9, 1),
        Span("x", "categorical", 10, 2, role="null"),  # [observed, missing]
        Span("n", "numeric", 12, 1),
        Span("when", "numeric", 13, 1),
        Span("when", "categorical", 14, 2, role="null"),
    )
    assert enc.n_features_ == 16
    assert enc.numeric_columns.tolist() == [9, 12, 13]
    assert [s.column for s in enc.categorical_spans] == ["colour", "size", "flag", "x", "when"]


def test_transform_values(enc):
    X = enc.transform(_frame())
    assert X.dtype == np.float32 and X.shape == (4, 16)
    np.testing.assert_array_equal(X[:, 0:4], [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0],
                                              [0, 1, 0, 0]])
    np.testing.assert_allclose(X[:, 9], [-1.0, -0.5, 0.0, 1.0])   # NaN -> 0 + missing flag
    np.testing.assert_array_equal(X[:, 10:12], [[1, 0], [1, 0], [0, 1], [1, 0]])
    np.testing.assert_allclose(X[:, 12], [-1.0, 0.0, 0.8, 1.0])
    assert X[0, 13] == -1.0 and X[3, 13] == 1.0 and abs(X[2, 13]) < 0.01
    # each categorical span is one-hot
    for span in enc.categorical_spans:
        np.testing.assert_array_equal(X[:, span.start:span.stop].sum(axis=1), 1.0)


def test_round_trip_by_argmax(enc):
    df = _frame()
    back = enc.inverse_transform(enc.transform(df))
    assert list(back.columns) == ["colour", "size", "flag", "x", "n", "when"]  # id dropped
    assert back["colour"].tolist()[0] == "red" and pd.isna(back["colour"][1])
    assert back["size"].tolist() == [1, 3, 2, 3] and back["size"].dtype == np.int64
    assert back["flag"].tolist() == [True, False, False, True] and back["flag"].dtype == bool
    np.testing.assert_allclose(back["x"], df["x"], atol=1e-5)
    assert back["n"].tolist() == [-5, 0, 4, 5] and back["n"].dtype == np.int64
    assert pd.isna(back["when"][1]) and pd.api.types.is_datetime64_any_dtype(back["when"])
    err = (back["when"] - df["when"]).abs().dropna().max()
    assert err < pd.Timedelta(minutes=5)  # float32 resolution on a one-year range


def test_out_of_bounds_values_are_clipped():
    schema = Schema((Column("x", "numeric", lower=0, upper=1),
                     Column("k", "integer", lower=0, upper=3)))
    enc = TableEncoder().fit(schema)
    X = enc.transform(pd.DataFrame({"x": [-4.0, 7.0], "k": [9, -2]}))
    np.testing.assert_array_equal(X, [[-1, 1], [1, -1]])
    back = enc.inverse_transform(np.array([[-3.0, 1.7], [5.0, -2.0]]))
    assert back["x"].tolist() == [0.0, 1.0] and back["k"].tolist() == [3, 0]


def test_categories_given_as_strings_map_to_the_declared_values():
    schema = Schema((Column("size", "categorical", categories=(1, 2, 3)),))
    enc = TableEncoder().fit(schema)
    X = enc.transform(pd.DataFrame({"size": ["2", "3", "1"]}))
    assert enc.inverse_transform(X)["size"].tolist() == [2, 3, 1]


def test_nullable_integer_decodes_to_a_nullable_dtype():
    schema = Schema((Column("k", "integer", lower=0, upper=9, nullable=True),))
    enc = TableEncoder().fit(schema)
    back = enc.inverse_transform(enc.transform(pd.DataFrame({"k": [3, None, 9]})))
    assert str(back["k"].dtype) == "Int64" and back["k"].isna().tolist() == [False, True, False]
    assert back["k"][0] == 3 and back["k"][2] == 9


def test_sampling_follows_the_softmax_and_is_seeded():
    schema = Schema((Column("c", "categorical", categories=("a", "b")),))
    enc = TableEncoder().fit(schema)
    logits = np.tile(np.log([0.8, 0.2]), (20000, 1))
    draws = enc.inverse_transform(logits, sample=True, rng=np.random.default_rng(0))["c"]
    assert (draws == "a").mean() == pytest.approx(0.8, abs=0.015)
    again = enc.inverse_transform(logits, sample=True, rng=np.random.default_rng(0))["c"]
    assert draws.equals(again)
    assert set(enc.inverse_transform(logits)["c"]) == {"a"}  # argmax


def test_sampling_needs_a_generator(enc):
    with pytest.raises(ParameterError, match="'rng'"):
        enc.inverse_transform(np.zeros((2, enc.n_features_)), sample=True)


def test_wrong_matrix_shape_is_a_parameter_error(enc):
    with pytest.raises(ParameterError, match="'matrix'"):
        enc.inverse_transform(np.zeros((2, enc.n_features_ + 1)))


def test_state_round_trips_through_json(enc):
    state = json.loads(json.dumps(enc.to_dict()))
    again = TableEncoder.from_dict(state)
    assert again.spans_ == enc.spans_
    np.testing.assert_array_equal(again.transform(_frame()), enc.transform(_frame()))


def test_layout_does_not_depend_on_the_data(enc):
    """Two tables with different values get the same layout: only the schema is read."""
    few = _frame().iloc[:1]
    assert enc.transform(few).shape == (1, enc.n_features_)
    assert TableEncoder().fit(SCHEMA).spans_ == enc.spans_


def test_values_outside_the_domain_are_all_reported(enc):
    df = _frame()
    df.loc[0, "colour"] = "purple"
    df.loc[1, "size"] = 7
    df["n"] = df["n"].astype(float)
    df.loc[2, "n"] = np.nan  # not nullable
    with pytest.raises(DataValidationError) as info:
        enc.transform(df)
    assert len(info.value.problems) == 3
    assert {"'colour'", "'size'", "'n'"} <= {w for p in info.value.problems for w in p.split()}


def test_undeclared_domains_are_refused():
    schema = Schema((Column("c", "categorical"), Column("x", "numeric", lower=0)))
    with pytest.raises(PrivacyError, match="'c', 'x'"):
        TableEncoder().fit(schema)


def test_text_columns_are_refused():
    with pytest.raises(ParameterError, match="text"):
        TableEncoder().fit(Schema((Column("t", "text"),)))


def test_use_before_fit_raises():
    with pytest.raises(NotFittedError):
        TableEncoder().transform(_frame())
