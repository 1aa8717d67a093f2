"""Mixed-type encoding and neighbour search: hand-computed distances, brute-force references."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from dpsynth.attacks.distance import MixedEncoder, audited_kinds, log_kernel_density, nearest
from dpsynth.errors import NotFittedError, ParameterError
from dpsynth.schema import Column, Schema


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "x": [0.0, 10.0, 5.0, np.nan],
        "colour": ["red", "blue", "red", None],
        "size": ["S", "L", "M", "S"],
    })


def _encoder(frame: pd.DataFrame, schema: Schema | None = None) -> MixedEncoder:
    kinds = {"x": "numeric", "colour": "categorical", "size": "numeric" if schema else
             "categorical"}
    return MixedEncoder(kinds, schema).fit([frame])


def test_squared_distance_is_gower_like_sum_over_columns():
    frame = _frame()
    enc = _encoder(frame)
    x = enc.transform(frame).astype(float)
    scale = enc.codings_[0].scale
    d2 = cdist(x, x, "sqeuclidean")
    # rows 0 and 1: numeric gap 10/scale, colour differs, size differs
    assert d2[0, 1] == pytest.approx((10 / scale) ** 2 + 1 + 1, rel=1e-5)
    # rows 0 and 2: numeric gap 5/scale, same colour, different size
    assert d2[0, 2] == pytest.approx((5 / scale) ** 2 + 1, rel=1e-5)
    # row 3: missing x (imputed with the median 5, flagged: +1), missing colour is a category
    assert d2[2, 3] == pytest.approx(1 + 1 + 1, rel=1e-5)
    assert d2[0, 3] == pytest.approx((5 / scale) ** 2 + 1 + 1, rel=1e-5)


def test_robust_range_scale_and_missing_indicator():
    frame = _frame()
    enc = _encoder(frame)
    coding = enc.codings_[0]
    present = np.array([0.0, 10.0, 5.0])
    lo, hi = np.quantile(present, [0.01, 0.99])
    assert coding.scale == pytest.approx(hi - lo)
    assert coding.center == 5.0 and coding.has_missing
    assert enc.n_features_ == 2 + 3 + 3  # x + indicator, 3 colours (incl. missing), 3 sizes


def test_ordinal_columns_use_declared_order():
    frame = _frame()
    schema = Schema((Column("x", "numeric", nullable=True),
                     Column("colour", "categorical", nullable=True),
                     Column("size", "ordinal", categories=("S", "M", "L"))))
    enc = _encoder(frame, schema)
    values = enc.values(frame)
    assert values[:, 2].tolist() == [0.0, 2.0, 1.0, 0.0]


def test_declared_categories_are_all_coded_and_unseen_values_get_minus_one():
    frame = _frame()
    schema = Schema((Column("x", "numeric", nullable=True),
                     Column("colour", "categorical", categories=("red", "blue", "green"),
                            nullable=True),
                     Column("size", "categorical", categories=("S", "M", "L"))))
    enc = MixedEncoder({"x": "numeric", "colour": "categorical", "size": "categorical"},
                       schema).fit([frame])
    assert enc.codings_[1].categories[:3] == ("red", "blue", "green")
    other = pd.DataFrame({"x": [1.0], "colour": ["purple"], "size": ["S"]})
    assert enc.values(other)[0, 1] == -1
    row = enc.transform(other)[0]
    assert row[enc.feature_index(["colour"])].sum() == 0  # unseen: no one-hot bit


def test_kinds_inferred_from_dtypes_drop_identifiers():
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(60)], "age": range(60),
                          "sex": ["f", "m"] * 30})
    kinds = audited_kinds(frame, None)
    assert kinds == {"age": "numeric", "sex": "categorical"}


def test_feature_index_and_not_fitted():
    enc = MixedEncoder({"a": "numeric"})
    with pytest.raises(NotFittedError):
        enc.values(pd.DataFrame({"a": [1.0]}))
    enc = _encoder(_frame())
    assert enc.feature_index(["x"]).tolist() == [0, 1]
    with pytest.raises(ParameterError, match="columns"):
        enc.feature_index(["nope"])


@pytest.mark.parametrize("k", [1, 3, 20])
def test_nearest_matches_brute_force(k):
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(57, 6)).astype(np.float32)
    pool = rng.normal(size=(301, 6)).astype(np.float32)
    dist, idx = nearest(queries, pool, k=k)
    full = cdist(queries.astype(float), pool.astype(float))
    expected = np.sort(full, axis=1)[:, :k]
    np.testing.assert_allclose(dist, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.take_along_axis(full, idx, axis=1), expected, rtol=1e-6)


def test_nearest_exact_copies_have_distance_zero_and_self_can_be_excluded():
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(50, 4)).astype(np.float32) * 1000
    dist, idx = nearest(pool, pool)
    assert np.all(dist[:, 0] == 0) and np.all(idx[:, 0] == np.arange(50))
    dist, idx = nearest(pool, pool, k=1, exclude_self=True)
    assert np.all(idx[:, 0] != np.arange(50)) and np.all(dist > 0)


def test_nearest_rejects_bad_k_and_reports_progress():
    pool = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ParameterError, match="'k'"):
        nearest(pool, pool, k=3, exclude_self=True)
    seen = []
    nearest(pool, pool, k=2, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (3, 3)


def test_log_kernel_density_matches_direct_formula():
    rng = np.random.default_rng(2)
    queries, pool = rng.normal(size=(20, 3)), rng.normal(size=(40, 3))
    h = 0.7
    got = log_kernel_density(queries, pool, h)
    d2 = cdist(queries, pool, "sqeuclidean")
    expected = logsumexp(-d2 / (2 * h * h), axis=1) - math.log(40)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ParameterError, match="bandwidth"):
        log_kernel_density(queries, pool, 0.0)


def test_undeclared_ordinal_order_is_numeric_and_fixed_at_fit():
    schema = Schema((Column("grade", "ordinal"),))
    enc = MixedEncoder({"grade": "numeric"}, schema).fit(
        [pd.DataFrame({"grade": [2, 10, 9]}), pd.DataFrame({"grade": [1]})])
    assert enc.codings_[0].categories == ("1", "2", "9", "10")
    # another frame with fewer values keeps the fitted ranks
    assert enc.values(pd.DataFrame({"grade": [10, 1]}))[:, 0].tolist() == [3.0, 0.0]


def test_integer_categories_match_across_dtypes():
    ints = pd.DataFrame({"code": [1, 2, 3]})
    floats = pd.DataFrame({"code": [1.0, 2.0, np.nan]})
    enc = MixedEncoder({"code": "categorical"}).fit([ints, floats])
    assert enc.codings_[0].categories == ("1", "2", "3", "<missing>")
    np.testing.assert_array_equal(enc.values(ints)[:2], enc.values(floats)[:2])
