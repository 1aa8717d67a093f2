"""AIM and MST synthesizers: recovery without noise, the model-size cap, honest accounting."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.accounting import Budget, BudgetSession, GaussianEvent, PureDPEvent, pld_epsilon
from dpsynth.errors import NotFittedError, ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import DEFAULT_TABLE_SYNTHESIZER, SYNTHESIZERS, create
from dpsynth.synthesizers.marginal import AIMSynthesizer, MSTSynthesizer

# A Markov chain a -> b -> c with probabilities in multiples of 1/1000: the table below has
# exactly these frequencies, so every marginal of the data is known in advance.
P_A = {"x": 0.5, "y": 0.3, "z": 0.2}
P_B_GIVEN_A = {"x": (0.8, 0.1, 0.1), "y": (0.1, 0.8, 0.1), "z": (0.2, 0.2, 0.6)}
P_C_GIVEN_B = {0: (0.9, 0.1), 1: (0.5, 0.5), 2: (0.2, 0.8)}
SCHEMA = Schema((
    Column("a", "categorical", categories=("x", "y", "z")),
    Column("b", "ordinal", categories=(0, 1, 2)),
    Column("c", "categorical", categories=(False, True)),
))


def _known_table(scale: int = 5) -> tuple[pd.DataFrame, dict[tuple[str, ...], dict]]:
    rows, joint = [], {}
    for a, pa in P_A.items():
        for b, pb in enumerate(P_B_GIVEN_A[a]):
            for c, pc in enumerate(P_C_GIVEN_B[b]):
                p = pa * pb * pc
                joint[(a, b, bool(c))] = p
                rows += [(a, b, bool(c))] * round(p * 1000 * scale)
    df = pd.DataFrame(rows, columns=["a", "b", "c"]).sample(frac=1.0, random_state=0)
    return df.reset_index(drop=True), joint


def _frequencies(df: pd.DataFrame, cols: tuple[str, ...]) -> pd.Series:
    return df.groupby(list(cols)).size() / len(df)


@pytest.mark.parametrize("name", ["aim", "mst"])
def test_noiseless_fit_recovers_the_known_marginals(name):
    df, _ = _known_table()
    synth = create(name, epsilon=math.inf, final_iterations=800).fit(df, SCHEMA)
    assert synth.privacy_ is None
    out = synth.sample(len(df), random_state=0)
    for k in (1, 2):
        for cols in itertools.combinations(["a", "b", "c"], k):
            truth = _frequencies(df, cols)
            got = _frequencies(out, cols).reindex(truth.index, fill_value=0.0)
            assert np.abs(got - truth).max() < 0.01, (name, cols)


def test_a_wrong_model_does_not_recover_the_marginals():
    """Control for the recovery test: one-way measurements alone miss the dependence."""
    df, _ = _known_table()
    synth = AIMSynthesizer(epsilon=math.inf, degree=1, rounds=1).fit(df, SCHEMA)
    out = synth.sample(len(df), random_state=0)
    truth = _frequencies(df, ("a", "b"))
    got = _frequencies(out, ("a", "b")).reindex(truth.index, fill_value=0.0)
    assert np.abs(got - truth).max() > 0.05


def _wide_table(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 6, size=n)
    cols = {f"v{i}": (base + rng.integers(0, 2, size=n) * i) % 6 for i in range(5)}
    schema = Schema(tuple(Column(k, "categorical", categories=tuple(range(6))) for k in cols))
    return pd.DataFrame(cols), schema


def test_selected_marginals_respect_the_model_size_cap():
    df, schema = _wide_table()
    cap = 150
    synth = AIMSynthesizer(epsilon=math.inf, rounds=8, max_model_cells=cap,
                           compress=False).fit(df, schema)
    assert synth.selection_log_
    for entry in synth.selection_log_:
        assert entry["cells"] <= entry["cap"] <= cap
    assert synth.model_.tree.size(synth.model_.domain) <= cap
    free = AIMSynthesizer(epsilon=math.inf, rounds=8, compress=False).fit(df, schema)
    assert free.model_.tree.size(free.model_.domain) > cap  # the cap above was binding


@pytest.mark.parametrize("klass", [AIMSynthesizer, MSTSynthesizer])
def test_accounted_epsilon_matches_the_measurements_made(klass):
    df, schema = _wide_table()
    session = BudgetSession(Budget(1.0, 1e-6))
    synth = klass(epsilon=1.0, delta=1e-6, random_state=0, rounds=6) if klass is \
        AIMSynthesizer else klass(epsilon=1.0, delta=1e-6, random_state=0)
    synth.fit(df, schema, ledger=session)
    plan = synth.plan_budget(schema, len(df)).detail  # the plan is pure: the same again
    # what was run, rebuilt one mechanism at a time from the fitted synthesizer
    made = [GaussianEvent(sigma) for _, sigma in synth.measurements_]
    made += [PureDPEvent(plan.select_epsilon)] * len(synth.selection_log_)
    assert len(synth.measurements_) == len(schema.columns) + plan.rounds
    assert len(synth.selection_log_) == plan.rounds
    run_eps = pld_epsilon(made, 1e-6)
    assert synth.privacy_.epsilon == pytest.approx(run_eps, abs=2e-3)
    assert synth.privacy_.epsilon <= 1.0
    assert session.spent_events() == tuple(s.event for s in synth.privacy_.spends)
    assert session.epsilon_spent() == pytest.approx(synth.privacy_.epsilon)


def test_mixed_columns_nulls_and_bins_survive_the_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    kind = rng.integers(0, 3, n)
    df = pd.DataFrame({
        "kind": np.array(["p", "q", "r"], dtype=object)[kind],
        "x": np.clip(rng.normal(20 + 20 * kind, 5), 0, 100),
        "k": rng.integers(0, 10, n),
        "tag": np.where(rng.random(n) < 0.2, None, np.where(kind == 0, "u", "v")).astype(object),
        "day": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
    })
    schema = Schema((
        Column("kind", "categorical", categories=("p", "q", "r")),
        Column("x", "numeric", lower=0, upper=100),
        Column("k", "integer", lower=0, upper=9),
        Column("tag", "categorical", categories=("u", "v"), nullable=True),
        Column("day", "datetime", lower="2021-01-01", upper="2021-12-31"),
    ))
    synth = AIMSynthesizer(epsilon=1.0, random_state=0, n_bins=16).fit(df, schema)
    out = synth.sample(n, random_state=1)
    schema.validate(out)
    assert abs(out["tag"].isna().mean() - 0.2) < 0.05
    # the numeric column keeps its dependence on the category
    means = out.groupby("kind")["x"].mean()
    assert means["p"] < means["q"] < means["r"]
    synth.save(tmp_path / "model")
    again = AIMSynthesizer.load(tmp_path / "model")
    pd.testing.assert_frame_equal(again.sample(500, random_state=3),
                                  synth.sample(500, random_state=3))


def test_secure_mode_fits_without_a_seed():
    df, schema = _wide_table(500)
    synth = MSTSynthesizer(epsilon=1.0, secure_mode=True).fit(df, schema)
    assert synth.privacy_.secure_mode and synth.privacy_.epsilon <= 1.0
    assert len(synth.sample(50)) == 50


def test_registry_default_and_not_fitted():
    assert SYNTHESIZERS["aim"] is AIMSynthesizer and SYNTHESIZERS["mst"] is MSTSynthesizer
    assert DEFAULT_TABLE_SYNTHESIZER == "aim"
    with pytest.raises(NotFittedError):
        AIMSynthesizer().sample(3)


def test_every_bad_parameter_is_reported_at_once():
    df, schema = _wide_table(200)
    bad = AIMSynthesizer(n_bins=1, degree=0, rounds=0, select_share=0.9, first_share=0.5)
    with pytest.raises(ParameterError) as info:
        bad.fit(df, schema)
    message = str(info.value)
    for name in ("n_bins", "degree", "rounds", "select_share"):
        assert name in message


@pytest.mark.parametrize("shares", [(0.0, 0.4), (0.6, 0.4), (0.05, 1.0), (True, 0.4),
                                    ("0.05", 0.4), (math.nan, 0.4), (0.05, -0.1)])
def test_mst_rejects_bad_budget_shares(shares):
    select, first = shares
    with pytest.raises(ParameterError, match="select_share"):
        MSTSynthesizer(select_share=select, first_share=first).plan_budget(SCHEMA, 1000)


@pytest.mark.parametrize(("epsilon", "shares"), [(1.0, None), (4.0, None), (10.0, None),
                                                (4.0, (1 / 3, 1 / 3))])
def test_mst_plan_spends_the_target_in_the_given_shares(epsilon, shares):
    kwargs = {} if shares is None else {"select_share": shares[0], "first_share": shares[1]}
    synth = MSTSynthesizer(epsilon=epsilon, delta=1e-6, **kwargs)
    select, first = shares or (synth.select_share, synth.first_share)
    plan = synth.plan_budget(SCHEMA, 5000).detail
    spent = pld_epsilon([e for _, e in plan.events()], 1e-6)
    assert 0.995 * epsilon < spent <= epsilon
    # the zCDP-style split of the plan is the one asked for
    parts = np.array([plan.first_count / (2 * plan.first_sigma ** 2),
                      plan.rounds * plan.select_epsilon ** 2 / 8,
                      plan.rounds / (2 * plan.round_sigma ** 2)])
    assert parts / parts.sum() == pytest.approx([first, select, 1 - first - select], rel=1e-6)
    assert plan.rounds == len(SCHEMA.columns) - 1


def test_mst_shares_are_saved_with_the_model(tmp_path):
    df, _ = _known_table(1)
    synth = MSTSynthesizer(epsilon=2.0, random_state=0, select_share=0.1, first_share=0.3)
    synth.fit(df, SCHEMA).save(tmp_path / "model")
    again = MSTSynthesizer.load(tmp_path / "model")
    assert (again.select_share, again.first_share) == (0.1, 0.3)
    assert MSTSynthesizer().get_params()["select_share"] == 0.05
