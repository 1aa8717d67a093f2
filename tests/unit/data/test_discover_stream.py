"""DP discovery of domains from a table read in batches: the grid quantile, the counts that sum
over batches, the same category lists and spends as in memory, and the streamed fit/CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.accounting import Budget, BudgetSession, NoiseSource
from dpsynth.data import discover
from dpsynth.data._dp_primitives import exponential_quantile, grid_cells, grid_quantile
from dpsynth.data.discover import (
    GRID_CELLS,
    OTHER,
    DiscoveryCounts,
    plan_discovery,
    run_discovery,
)
from dpsynth.data.stream import StreamedTable
from dpsynth.errors import BudgetExceededError, DataValidationError, PrivacyError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import create

SCHEMA = Schema((
    Column("job", "categorical", public=False),
    Column("age", "integer", public=False),
    Column("income", "numeric", nullable=True, public=False),
    Column("day", "datetime", public=False),
    Column("kids", "ordinal", categories=(0, 1, 2, 3), public=True),
))
CATEGORIES_ONLY = Schema((
    Column("job", "categorical", public=False),
    Column("age", "integer", lower=17, upper=90, public=True),
    Column("kids", "ordinal", categories=(0, 1, 2, 3), public=True),
))


def _table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(17, 91, n)
    job = np.where(age > 50, rng.choice(["a", "b"], n), rng.choice(["c", "d", "a"], n))
    job[5] = "rare"  # one row: its value is dropped at any sensible delta
    income = rng.lognormal(10, 0.5, n)
    income[rng.random(n) < 0.05] = np.nan
    day = pd.Timestamp("2010-01-01") + pd.to_timedelta(rng.integers(0, 3650, n), "D")
    kids = np.minimum(3, (age - 17) // 15 + rng.integers(0, 2, n))
    return pd.DataFrame({"job": job, "age": age, "income": income, "day": day, "kids": kids})


def _counts(frames, schema=SCHEMA, columns=None) -> DiscoveryCounts:
    found = DiscoveryCounts(schema, columns if columns is not None else schema.undeclared())
    for frame in frames:
        found.add(frame)
    return found


def _run(data, schema=SCHEMA, eps=20.0, delta=1e-6, seed=0):
    plan = plan_discovery(schema, schema.undeclared(), epsilon=eps, delta=delta)
    session = BudgetSession(Budget(eps, delta))
    out = run_discovery(data, schema, plan, noise=NoiseSource.create(seed, False),
                        recorder=session)
    return out, session


# -- the grid quantile ------------------------------------------------------------------------
def test_grid_quantile_is_the_exponential_quantile_of_the_rounded_values():
    # cells [0,1) [1,2) [2,3); one value in cell 1 (rounded down to 1.0). On the rounded value
    # the exponential quantile draws below 1.0 with probability 1/2 (target 0, eps 2 ln 2);
    # the grid mechanism must give the same distribution.
    eps = 2 * math.log(2)
    counts = grid_cells(np.array([1.5]), lower=0.0, upper=3.0, cells=3)
    assert counts.tolist() == [0, 1, 0]
    noise = NoiseSource.create(1, False)
    grid = np.array([grid_quantile(counts, target_rank=0, epsilon=eps, lower=0.0, upper=3.0,
                                   noise=noise) for _ in range(20_000)])
    exact = np.array([exponential_quantile(np.array([1.0]), target_rank=0, epsilon=eps,
                                           lower=0.0, upper=3.0, noise=noise)
                      for _ in range(20_000)])
    assert abs(np.mean(grid < 1.0) - 0.5) < 0.02
    assert abs(np.mean(grid < 1.0) - np.mean(exact < 1.0)) < 0.03
    assert abs(np.mean(grid >= 2.0) - np.mean(exact >= 2.0)) < 0.03
    assert grid.min() >= 0.0 and grid.max() <= 3.0


def test_grid_cells_clip_to_the_range_and_sum_over_pieces():
    values = np.array([-5.0, 0.0, 0.49, 0.5, 9.99, 10.0, 42.0])
    whole = grid_cells(values, lower=0.0, upper=10.0, cells=20)
    assert whole.sum() == values.size and whole[0] == 3 and whole[1] == 1 and whole[-1] == 3
    parts = grid_cells(values[:3], lower=0.0, upper=10.0, cells=20) + \
        grid_cells(values[3:], lower=0.0, upper=10.0, cells=20)
    np.testing.assert_array_equal(parts, whole)


# -- the counts -------------------------------------------------------------------------------
def test_counts_of_batches_equal_the_counts_of_the_whole_table():
    df = _table()
    whole = _counts([df])
    pieces = _counts(df.iloc[i:i + 250] for i in range(0, len(df), 250))
    assert pieces.n_rows == whole.n_rows == len(df)
    assert list(pieces.categories["job"].items()) == list(whole.categories["job"].items())
    expected = df["job"].value_counts(sort=False)
    assert list(whole.categories["job"]) == list(expected.index)  # first-seen order
    for name in ("age", "income", "day"):
        np.testing.assert_array_equal(pieces.grids[name], whole.grids[name])
        assert pieces.grids[name].size == GRID_CELLS
    assert whole.non_null["income"] == int(df["income"].notna().sum())


def test_too_many_distinct_values_are_refused_clearly(monkeypatch):
    monkeypatch.setattr(discover, "MAX_STREAMED_DISTINCT", 10)
    frame = pd.DataFrame({"job": [f"v{i}" for i in range(11)]})
    schema = Schema((Column("job", "categorical", public=False),))
    with pytest.raises(DataValidationError, match="more than 10 distinct values"):
        _counts([frame], schema)


# -- same mechanism, same result; same spends -------------------------------------------------
def test_streamed_category_lists_equal_the_in_memory_ones_for_the_same_seed():
    df = _table()
    # 20 values seen 14 times each, at the threshold (about 14.1 at eps=1, delta=1e-6): each
    # passes with probability about 1/2, so another seed gives another list
    edge = [f"e{i}" for i in range(20) for _ in range(14)]
    df = pd.concat([df, pd.DataFrame({"job": edge})], ignore_index=True).sample(
        frac=1.0, random_state=0).reset_index(drop=True)
    in_memory, a = _run(df[["job"]], CATEGORIES_ONLY, eps=1.0)
    streamed, b = _run(_counts((df.iloc[i:i + 700] for i in range(0, len(df), 700)),
                               CATEGORIES_ONLY), CATEGORIES_ONLY, eps=1.0)
    assert streamed == in_memory
    kept = streamed["job"].categories
    assert {"a", "b", "c", "d", OTHER} <= set(kept) and "rare" not in kept
    assert 0 < len(kept) - 5 < 20
    assert a.spent_events() == b.spent_events()
    other, _ = _run(_counts([df], CATEGORIES_ONLY), CATEGORIES_ONLY, eps=1.0, seed=5)
    assert other["job"].categories != kept  # the comparison above can fail


def test_streamed_bounds_are_near_the_in_memory_ones_and_cost_the_same():
    df = _table()
    in_memory, a = _run(df)
    streamed, b = _run(_counts(df.iloc[i:i + 500] for i in range(0, len(df), 500)))
    assert a.spent_events() == b.spent_events()
    for name in ("age", "income"):
        true_lo, true_hi = df[name].quantile([0.01, 0.99])
        assert streamed[name].lower == pytest.approx(true_lo, rel=0.05)
        assert streamed[name].upper == pytest.approx(true_hi, rel=0.05)
        assert streamed[name].lower == pytest.approx(in_memory[name].lower, rel=0.05)
    true_days = df["day"].quantile([0.01, 0.99])
    assert abs((pd.Timestamp(streamed["day"].lower) - true_days.iloc[0]).days) < 40
    assert abs((pd.Timestamp(streamed["day"].upper) - true_days.iloc[1]).days) < 40
    record = streamed.metadata["dp_discovered"]["income"]
    assert record["mechanism"] == discover.GRID_QUANTILE_MECHANISM
    assert record["grid_cells"] == GRID_CELLS
    assert record["epsilon"] == in_memory.metadata["dp_discovered"]["income"]["epsilon"]
    # the counts do not depend on the batches: same seed, same schema
    again, _ = _run(_counts([df]))
    assert again == streamed


# -- the streamed fit -------------------------------------------------------------------------
def _fit(name: str, data: object, schema: Schema, ledger=None, seed: int = 7,
         discovery_fraction: float = 0.1):
    params = {"rounds": 3} if name == "aim" else {}
    synth = create(name, epsilon=2.0, random_state=seed, discovery_fraction=discovery_fraction,
                   **params)
    return synth.fit(data, schema, ledger=ledger)


@pytest.mark.parametrize("name", ["aim", "mst"])
def test_streamed_fit_discovers_categories_like_memory(tmp_path, name):
    df = _table()[["job", "age", "kids"]]
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    a, b = BudgetSession(Budget(2.0, 1e-6)), BudgetSession(Budget(2.0, 1e-6))
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    in_memory = _fit(name, df, CATEGORIES_ONLY, a)
    streamed = _fit(name, StreamedTable(path, batch_rows=400), CATEGORIES_ONLY, b)
    assert streamed.schema_ == in_memory.schema_
    assert a.spent_events() == b.spent_events()
    assert streamed.privacy_ == in_memory.privacy_
    assert [s.purpose for s in streamed.privacy_.spends][0] == "categories:job"
    expected = in_memory.sample(300, random_state=1)
    pd.testing.assert_frame_equal(streamed.sample(300, random_state=1), expected)
    assert "rare" not in set(streamed.sample(2000, random_state=2)["job"])
    from_csv = _fit(name, StreamedTable(csv, batch_rows=700), CATEGORIES_ONLY,
                    BudgetSession(Budget(2.0, 1e-6)))
    assert from_csv.schema_ == in_memory.schema_
    pd.testing.assert_frame_equal(from_csv.sample(300, random_state=1), expected)


def test_streamed_fit_discovers_bounds_and_spends_like_memory(tmp_path):
    df = _table()
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    a, b = BudgetSession(Budget(2.0, 1e-6)), BudgetSession(Budget(2.0, 1e-6))
    in_memory = _fit("aim", df, SCHEMA, a, discovery_fraction=0.5)
    streamed = _fit("aim", path, SCHEMA, b, discovery_fraction=0.5)
    assert a.spent_events() == b.spent_events()
    assert streamed.privacy_.epsilon == in_memory.privacy_.epsilon <= 2.0 + 1e-9
    assert [s.purpose for s in streamed.privacy_.spends][:4] == [
        "categories:job", "bounds:age", "bounds:income", "bounds:day"]
    assert streamed.schema_.undeclared() == [] and streamed.schema_.is_public
    synthetic = streamed.sample(500, random_state=0)
    streamed.schema_.validate(synthetic)
    assert streamed.n_rows_ == len(df)


def test_streamed_discovery_spends_nothing_on_bad_input_or_a_small_ledger(tmp_path,
                                                                          monkeypatch):
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    df = _table(600)
    bad = df.copy()
    bad.loc[550, "kids"] = 9  # outside the declared categories, in a late batch
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path, index=False)
    session = BudgetSession(Budget(2.0, 1e-6))
    with pytest.raises(DataValidationError, match="rows 500..599"):
        _fit("aim", StreamedTable(path, batch_rows=100), SCHEMA, session)
    assert session.spent_events() == ()
    good = tmp_path / "good.parquet"
    df[["job", "age", "kids"]].to_parquet(good, index=False)
    small = BudgetSession(Budget(0.5, 1e-6))
    with pytest.raises(BudgetExceededError):
        _fit("aim", good, CATEGORIES_ONLY, small)
    assert small.spent_events() == ()
    with pytest.raises(PrivacyError, match="no declared domain"):
        create("mst", epsilon=math.inf).fit(good, SCHEMA)
    assert list((tmp_path / "tmp").iterdir()) == []  # no code files left behind


def test_cli_fits_a_parquet_file_with_a_partial_schema_in_batches(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dpsynth.cli import app
    from dpsynth.data import stream as stream_module
    from dpsynth.synthesizers import BaseSynthesizer

    df = _table(1500)[["job", "age", "kids"]]
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    schema_file = CATEGORIES_ONLY.save(tmp_path / "schema.json")
    streamed_batches = []
    original = stream_module.StreamedTable.batches

    def counting(self, *args, **kwargs):
        for frame in original(self, *args, **kwargs):
            streamed_batches.append(len(frame))
            yield frame

    monkeypatch.setattr(stream_module.StreamedTable, "batches", counting)
    res = CliRunner().invoke(app, ["fit", str(path), "--schema", str(schema_file), "--out",
                                   str(tmp_path / "m"), "--synthesizer", "mst", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "on 1500 rows" in res.output
    assert sum(streamed_batches) == 2 * 1500  # the discovery pass, then the encoding pass
    loaded = BaseSynthesizer.load(tmp_path / "m")
    in_memory = create("mst", epsilon=1.0, random_state=1).fit(df, CATEGORIES_ONLY)
    assert loaded.schema_ == in_memory.schema_
    pd.testing.assert_frame_equal(loaded.sample(300, random_state=0),
                                  in_memory.sample(300, random_state=0))


# -- memory of the reader ---------------------------------------------------------------------
def _arrow_growth(path, monkeypatch, pre_buffer: bool | None) -> int:
    """Growth of pyarrow's allocations while the batches of ``path`` are read one by one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if pre_buffer is not None:  # force the reader's setting, to show what the test catches
        original = pq.ParquetFile

        def forced(source, **kwargs):
            kwargs["pre_buffer"] = pre_buffer
            return original(source, **kwargs)

        monkeypatch.setattr(pq, "ParquetFile", forced)
    schema = Schema((Column("x", "numeric", lower=0.0, upper=1.0, public=True),))
    seen = [pa.total_allocated_bytes()]
    for batch in StreamedTable(path, batch_rows=20_000)._raw_batches(schema, ["x"]):
        del batch
        seen.append(pa.total_allocated_bytes())
    monkeypatch.undo()
    return max(seen) - seen[0]


def test_reading_parquet_does_not_keep_what_it_has_read(tmp_path, monkeypatch):
    # 30 row groups of incompressible floats (160 kB each, 4.8 MB): pyarrow's pre-buffer
    # cache would keep them all (apache/arrow#39808), memory growing with the rows read
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "floats.parquet"
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(path, pa.schema([("x", pa.float64())]), compression="none") as w:
        for _ in range(30):
            w.write_table(pa.table({"x": rng.random(20_000)}))
    assert _arrow_growth(path, monkeypatch, True) > 4_000_000  # the leak the test must catch
    assert _arrow_growth(path, monkeypatch, None) < 1_500_000
