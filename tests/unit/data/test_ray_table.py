"""The Ray Data counting backend: same fit as the embedded path for the same seed, on a
local Ray started by the test; bad input refused before spending."""

from __future__ import annotations

import pandas as pd
import pytest

from dpsynth.accounting import Budget, BudgetSession
from dpsynth.errors import DataValidationError
from dpsynth.synthesizers import create

ray = pytest.importorskip("ray")

from test_stream import SCHEMA, _table  # noqa: E402

from dpsynth.data.ray_table import RayTable  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_counts_fit_like_the_embedded_path(tmp_path, local_ray):
    df = _table(2000)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(2):
        df.iloc[i * 1000:(i + 1) * 1000].to_parquet(folder / f"p{i}.parquet", index=False)
    for name, params in (("aim", {"rounds": 3}), ("mst", {})):
        embedded = create(name, epsilon=1.0, random_state=5, **params).fit(
            folder, SCHEMA, ledger=BudgetSession(Budget(1.0, 1e-6)))
        session = BudgetSession(Budget(1.0, 1e-6))
        on_ray = create(name, epsilon=1.0, random_state=5, **params).fit(
            RayTable(folder, batch_rows=300), SCHEMA, ledger=session)
        pd.testing.assert_frame_equal(on_ray.sample(400, random_state=2),
                                      embedded.sample(400, random_state=2))
        assert on_ray.n_rows_ == 2000 and on_ray.privacy_ == embedded.privacy_
    other = create("mst", epsilon=1.0, random_state=6).fit(
        RayTable(folder), SCHEMA, ledger=BudgetSession(Budget(1.0, 1e-6)))
    assert not other.sample(400, random_state=2).equals(embedded.sample(400, random_state=2))


def test_ray_reads_identifier_columns_for_validation(tmp_path, local_ray):
    from dpsynth.schema import Column, Schema

    schema = Schema((Column("id", "identifier"), *SCHEMA.columns))
    df = _table(500).assign(id=[f"r{i}" for i in range(500)])
    df.to_parquet(tmp_path / "t.parquet", index=False)
    session = BudgetSession(Budget(1.0, 1e-6))
    fitted = create("mst", epsilon=1.0, random_state=0).fit(
        RayTable(tmp_path / "t.parquet"), schema, ledger=session)
    assert fitted.n_rows_ == 500 and "id" not in fitted.sample(5).columns


def test_ray_refuses_bad_values_before_spending(tmp_path, local_ray):
    df = _table(600)
    df.loc[450, "job"] = "zzz"
    path = tmp_path / "bad.parquet"
    df.to_parquet(path, index=False)
    session = BudgetSession(Budget(1.0, 1e-6))
    with pytest.raises(DataValidationError, match="job"):
        create("mst", epsilon=1.0, random_state=0).fit(RayTable(path), SCHEMA, ledger=session)
    assert session.spent_events() == ()
