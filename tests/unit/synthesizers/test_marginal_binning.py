"""Encoding tables on their public domain, decoding within bins, and rare-value merging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.schema import Column, Schema
from dpsynth.synthesizers.marginal.binning import (
    ColumnCodec,
    codecs_for,
    decode_table,
    encode_table,
)
from dpsynth.synthesizers.marginal.compress import (
    ColumnMerge,
    compress_codes,
    expand_codes,
    merged_measurement,
    plan_merge,
)
from dpsynth.synthesizers.marginal.measure import Measurement


def test_numeric_values_are_decoded_inside_their_bin():
    col = Column("x", "numeric", lower=0.0, upper=10.0, nullable=True)
    codec = ColumnCodec.from_column(col, n_bins=5)
    values = pd.Series([0.0, 1.9, 2.0, 9.99, 10.0, None])
    codes = codec.encode(values)
    assert codes.tolist() == [0, 0, 1, 4, 4, 5]  # 5 is the null code
    rng = np.random.default_rng(0)
    many = np.repeat(codes, 200)
    back = codec.decode(many, rng)
    edges = np.asarray(codec.edges)
    ok = ~np.isnan(back.to_numpy())
    assert (back[ok] >= edges[many[ok]]).all() and (back[ok] < edges[many[ok] + 1]).all()
    assert back.isna().sum() == 200


def test_small_integer_range_gets_one_bin_per_value():
    codec = ColumnCodec.from_column(Column("k", "integer", lower=1, upper=6), n_bins=32)
    assert codec.size == 6
    values = pd.Series([1, 2, 3, 4, 5, 6])
    codes = codec.encode(values)
    back = codec.decode(codes, np.random.default_rng(0))
    assert back.tolist() == values.tolist()


def test_wide_integer_range_decodes_integers_in_bin():
    codec = ColumnCodec.from_column(Column("k", "integer", lower=0, upper=999), n_bins=10)
    codes = codec.encode(pd.Series([0, 99, 100, 999]))
    assert codes.tolist() == [0, 0, 1, 9]
    back = codec.decode(np.repeat(codes, 50), np.random.default_rng(1)).to_numpy()
    bins = np.repeat(codes, 50)
    assert ((back // 100) == bins).all()


def test_categories_nulls_and_datetimes_round_trip():
    schema = Schema((
        Column("c", "categorical", categories=("a", "b"), nullable=True),
        Column("o", "ordinal", categories=(1, 2, 3)),
        Column("t", "datetime", lower="2020-01-01", upper="2020-12-31"),
    ))
    df = pd.DataFrame({"c": ["a", None, "b"], "o": [3, 1, 2],
                       "t": pd.to_datetime(["2020-01-05", "2020-06-01", "2020-12-30"])})
    codecs = codecs_for(schema, n_bins=12)
    codes = encode_table(codecs, df)
    assert codes[:, 0].tolist() == [0, 2, 1]
    assert codes[:, 1].tolist() == [2, 0, 1]
    back = decode_table(codecs, codes, np.random.default_rng(0))
    assert back["c"].isna().tolist() == [False, True, False]
    assert back["o"].tolist() == [3, 1, 2]
    assert (codecs[2].encode(back["t"]) == codes[:, 2]).all()  # drawn inside the same bin
    schema.validate(back)


def test_codec_dict_round_trip():
    codec = ColumnCodec.from_column(Column("x", "numeric", lower=-1, upper=1), n_bins=4)
    assert ColumnCodec.from_dict(codec.to_dict()) == codec


def test_rare_values_are_merged_and_drawn_back_by_weight():
    noisy = Measurement((0,), np.array([500.0, 2.0, -3.0, 400.0, 8.0]), 5.0, 5.0)
    merge = plan_merge(noisy, threshold=3.0)  # threshold 15: values 1, 2, 4 are rare
    assert merge.kept == (0, 3) and merge.merged == (1, 2, 4)
    assert merge.weights == pytest.approx((0.2, 0.0, 0.8))
    one_way = merged_measurement(noisy, merge, 0)
    np.testing.assert_allclose(one_way.values, [500.0, 400.0, 7.0])
    np.testing.assert_allclose(one_way.std, [5.0, 5.0, 5.0 * np.sqrt(3)])
    codes = np.array([[0], [1], [2], [3], [4]])
    small = compress_codes(codes, [merge], [5])
    assert small[:, 0].tolist() == [0, 2, 2, 1, 2]
    back = expand_codes(np.full((1000, 1), 2), [merge], np.random.default_rng(0))
    assert set(np.unique(back)) <= {1, 4}  # value 2 has weight 0
    assert 0.7 < (back == 4).mean() < 0.9


def test_no_merge_when_at_most_one_value_is_rare():
    noisy = Measurement((0,), np.array([500.0, 2.0, 300.0]), 5.0, 5.0)
    assert plan_merge(noisy, 3.0) == ColumnMerge((0, 1, 2))
