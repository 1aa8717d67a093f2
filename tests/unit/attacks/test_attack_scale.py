"""The audit at scale: the neighbour index, sorted-column predicates and hashed copies give the
all-pairs answers; rare-record ranking and the report state their sampling."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

from dpsynth.attacks import copies, distance, run_audit
from dpsynth.attacks.copies import exact_copy_hits
from dpsynth.attacks.distance import (
    MixedEncoder,
    NeighbourIndex,
    audited_kinds,
    log_kernel_density,
    nearest,
)
from dpsynth.attacks.rare import rare_records
from dpsynth.attacks.report import render_html
from dpsynth.attacks.singling_out import Condition, SortedColumns, matches
from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import ParameterError


def _table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Mixed columns; few categories so that patterns repeat, with missing values."""
    age = rng.integers(18, 80, n) + rng.uniform(-0.5, 0.5, n)
    income = rng.lognormal(10, 1, n)
    income[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "age": age, "income": income,
        "sex": rng.choice(["f", "m"], n),
        "region": rng.choice(["n", "s", "e", "w", None], n),
        "job": rng.choice(list("abcdef"), n),
    })


@pytest.fixture(scope="module")
def embedded() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pool_frame, query_frame = _table(6000, rng), _table(400, rng)
    query_frame.iloc[:50] = pool_frame.iloc[:50].to_numpy()  # exact copies: distance 0
    enc = MixedEncoder(audited_kinds(pool_frame, None)).fit([pool_frame, query_frame])
    return enc.transform(pool_frame), enc.transform(query_frame)


@pytest.fixture
def small_index(monkeypatch):
    monkeypatch.setattr(distance, "INDEX_MIN_ROWS", 100)


@pytest.mark.parametrize("k", [1, 3])
def test_index_gives_the_all_pairs_neighbours(embedded, small_index, k):
    pool, queries = embedded
    index = NeighbourIndex(pool)
    dist, idx = index.nearest(queries, k=k)
    ref_dist, ref_idx = nearest(queries, pool, k=k)
    assert len(index.keys) > 10  # the blocked path ran, with many groups
    np.testing.assert_allclose(dist, ref_dist, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(idx, ref_idx)
    assert (dist[:50, 0] == 0).all()


def test_index_falls_back_for_unknown_patterns_and_far_queries(embedded, small_index,
                                                              monkeypatch):
    monkeypatch.setattr(distance, "_POOL_CHUNK", 1000)  # the fallback, a chunk at a time
    pool, queries = embedded
    odd = queries[:20].copy()
    odd[:10, pool.shape[1] - 1] = 0.3  # a coordinate value the pool lacks
    odd[10:, 0] += 50.0  # far from every row of its group
    dist, idx = NeighbourIndex(pool).nearest(odd, k=2)
    ref_dist, ref_idx = nearest(odd, pool, k=2)
    np.testing.assert_allclose(dist, ref_dist, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(idx, ref_idx)
    density = NeighbourIndex(pool).log_density(odd, 0.3)
    np.testing.assert_allclose(density, log_kernel_density(odd, pool, 0.3), rtol=1e-6,
                               atol=1e-4)


def test_index_without_discrete_coordinates_is_one_group(small_index):
    rng = np.random.default_rng(1)
    pool, queries = rng.normal(size=(3000, 4)), rng.normal(size=(100, 4))
    dist, idx = NeighbourIndex(pool).nearest(queries, k=2)
    ref_dist, ref_idx = nearest(queries, pool, k=2)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-12)
    np.testing.assert_array_equal(idx, ref_idx)


@pytest.mark.parametrize("bandwidth", [0.05, 0.3, 3.0])
def test_index_densities_match_float64_sums(embedded, small_index, bandwidth):
    pool, queries = embedded
    got = NeighbourIndex(pool).log_density(queries[:60], bandwidth)
    p = pool.astype(float)
    exact = np.array([logsumexp(-((p - q) ** 2).sum(1) / (2 * bandwidth**2))
                      for q in queries[:60].astype(float)]) - math.log(len(pool))
    np.testing.assert_allclose(got, exact, rtol=0, atol=2e-3)
    brute = log_kernel_density(queries[:60], pool, bandwidth)
    np.testing.assert_allclose(got, brute, rtol=0, atol=4e-3)


def test_small_pools_are_searched_all_pairs_as_before(embedded):
    pool, queries = embedded  # 6,000 rows, under INDEX_MIN_ROWS
    index = NeighbourIndex(pool)
    np.testing.assert_array_equal(index.nearest(queries, k=2)[1], nearest(queries, pool, 2)[1])
    assert not index._built


def test_sorted_columns_find_the_rows_a_scan_finds():
    rng = np.random.default_rng(2)
    values = np.column_stack([rng.integers(0, 4, 3000).astype(float), rng.normal(size=3000),
                              rng.integers(0, 50, 3000).astype(float)])
    values[rng.random(values.shape) < 0.1] = np.nan
    columns = SortedColumns(values)
    predicates = [(), (Condition(0, 2.0, 2.0),), (Condition(1, np.nan, np.nan),),
                  (Condition(1, -np.inf, -2.0), Condition(0, 1.0, 1.0)),
                  (Condition(2, 7.0, 7.0), Condition(1, -0.5, 0.5), Condition(0, 0.0, 3.0))]
    for _ in range(200):
        j = int(rng.integers(3))
        v = values[rng.integers(3000), j]
        predicates.append((Condition(j, v, v + 0.2), Condition(int(rng.integers(3)), 0.0, 1.0)))
    for pred in predicates:
        expected = np.flatnonzero(matches(pred, values))
        np.testing.assert_array_equal(columns.rows(pred), expected)
        assert columns.count(pred) == expected.size


def test_hashed_exact_copies_match_the_join(monkeypatch):
    rng = np.random.default_rng(3)
    syn = rng.integers(0, 3, size=(5000, 6)).astype(float)
    syn[rng.random(syn.shape) < 0.1] = np.nan
    queries = np.vstack([syn[:40], rng.integers(0, 3, size=(500, 6)).astype(float)])
    queries[0] = np.where(queries[0] == 0, -0.0, queries[0])  # -0.0 equals 0.0
    expected = exact_copy_hits(queries, syn)
    monkeypatch.setattr(copies, "_HASH_MIN_ROWS", 10)
    np.testing.assert_array_equal(exact_copy_hits(queries, syn), expected)
    assert expected[:40].all()


def _data(n: int, seed: int) -> AuditData:
    rng = np.random.default_rng(seed)
    return AuditData.from_frames(_table(n, rng), _table(n, rng), _table(n, rng))


def test_rare_records_ranks_a_sample_beyond_max_rows():
    data = _data(1500, 4)
    threat = ThreatModel.membership(20, reference=True, targets="vulnerable")
    whole = rare_records(data, threat, max_rows=None, random_state=0)
    same = rare_records(data, threat, max_rows=5000, random_state=0)
    assert same.to_dict() | {"seconds": 0} == whole.to_dict() | {"seconds": 0}
    assert whole.metrics["n_ranked"] == 1500
    sampled = rare_records(data, threat, max_rows=400, random_state=0)
    assert sampled.metrics["n_ranked"] == 400 and sampled.n_targets == 20
    with pytest.raises(ParameterError, match="max_rows"):
        rare_records(data, threat, max_rows=1)


def test_report_states_the_sampling():
    rng = np.random.default_rng(5)
    train, holdout, synthetic = (_table(800, rng) for _ in range(3))
    report = run_audit(train, holdout, synthetic, attacks=["exact_copies", "rare_records"],
                       n_targets=300, max_rows=500, random_state=0)
    sampling = report.data["sampling"]
    assert sampling["n_targets"] == 300 and sampling["targets_sampled"]
    assert sampling["rare_records_ranked"] == 500
    assert report.results[0].n_targets == 300
    assert "draws up to 300" in render_html(report)
    whole = run_audit(train, holdout, synthetic, attacks=["exact_copies"], random_state=0)
    assert not whole.data["sampling"]["targets_sampled"]
    assert whole.data["sampling"]["n_targets"] == 800
    with pytest.raises(ParameterError, match="max_rows"):
        run_audit(train, holdout, synthetic, max_rows=5)


def test_index_over_some_features_reads_the_pool_in_place(embedded, small_index, monkeypatch):
    monkeypatch.setattr(distance, "_POOL_CHUNK", 1000)
    monkeypatch.setattr(distance, "_ROW_CHUNK", 700)
    pool, queries = embedded
    features = np.array([0, 1, 2] + list(range(5, pool.shape[1], 2)))
    index = NeighbourIndex(pool, features)
    dist, idx = index.nearest(queries[:, features], k=2)
    ref_dist, ref_idx = nearest(queries[:, features], pool[:, features], k=2)
    np.testing.assert_allclose(dist, ref_dist, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(index.log_density(queries[:40, features], 0.2),
                               log_kernel_density(queries[:40, features], pool[:, features],
                                                  0.2), rtol=1e-6, atol=2e-3)
