"""dpar's target head (``DPARSynthesizer(target=...)``): its plan and spend, its noise, what it
learns, its draws, persistence and refusals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tables import copied_table, every_kind_table

from dpsynth.accounting import Budget, BudgetSession, NoiseSource, calibrate_dpsgd_noise
from dpsynth.accounting.analysis import pld_epsilon
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers.ar import DPARSynthesizer, target_head
from dpsynth.synthesizers.plan import DPSGDPlan

FAST: dict[str, Any] = dict(epochs=4, batch_size=64, d_model=16, n_layers=1, n_heads=2)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _agreement(rows: pd.DataFrame) -> float:
    return float((rows["first"].astype(str) == rows["twin"].astype(str)).mean())


# -- plan and spend ---------------------------------------------------------------------------
def test_plan_runs_dpar_then_the_head_and_composes_both_by_pld():
    df, schema = copied_table()
    n = len(df)
    plain = DPARSynthesizer(epsilon=1.0, delta=1e-5, **FAST).plan_budget(schema, n)
    plan = DPARSynthesizer(epsilon=1.0, delta=1e-5, target="twin", **FAST).plan_budget(
        schema, n)
    assert [s.purpose for s in plan.spends] == ["train:dpar", target_head.HEAD_PURPOSE]
    main, head = (s.event for s in plan.spends)
    assert pld_epsilon([head], 1e-5) == pytest.approx(0.3, abs=2e-3)
    assert 0.99 <= plan.epsilon() <= 1.0
    sigma = main.noise_multiplier
    q, steps = main.sample_rate, main.steps
    split = calibrate_dpsgd_noise(0.7, 1e-5, sample_rate=q, steps=steps)
    # more noise than without the head, much less than splitting epsilon 0.3 / 0.7 would need
    assert plain.spends[0].event.noise_multiplier < sigma < split


def test_spend_is_the_plan_and_goes_through_the_recorder():
    df, schema = copied_table()
    synth = DPARSynthesizer(epsilon=1.0, delta=1e-5, random_state=0, target="twin", **FAST)
    plan = synth.plan_budget(schema, len(df))
    session = BudgetSession(Budget(1.0, 1e-5))
    synth.fit(df, schema, ledger=session)
    assert [s.purpose for s in session.spends] == [s.purpose for s in plan.spends]
    assert [s.event for s in session.spends] == list(plan.events)
    assert synth.privacy_.epsilon == pytest.approx(plan.epsilon(), rel=1e-9)


# -- what the head learns -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def copies() -> dict[Any, DPARSynthesizer]:
    """Heads on a planted copy: the default (correcting dpar's conditional) at epsilon =
    inf and 0.05, and the plain head (``target_offset=False``) at both."""
    torch.set_num_threads(1)
    df, schema = copied_table()
    return {(eps, offset): DPARSynthesizer(epsilon=eps, delta=1e-5, random_state=0,
                                           target="twin", target_offset=offset,
                                           **FAST).fit(df, schema)
            for eps in (math.inf, 0.05) for offset in (True, False)}


@pytest.mark.parametrize("offset", [True, False])
def test_head_learns_a_planted_copy_without_noise_and_not_at_a_tiny_epsilon(copies, offset):
    """A column that equals another is learnt at epsilon = inf; with the noise of epsilon =
    0.05 it is not (a head that added no noise would learn it there too)."""
    plain = _agreement(copies[math.inf, offset].sample(2000, random_state=1))
    noisy = _agreement(copies[0.05, offset].sample(2000, random_state=1))
    assert plain >= 0.95
    assert noisy < 0.8 and noisy < plain - 0.1


def test_redrawn_target_keeps_dpar_class_frequencies(copies):
    from dpsynth.synthesizers.ar import sampling

    synth = copies[0.05, True]
    rng = np.random.default_rng(0)
    rows = synth.sample(3000, random_state=2)
    drawn = rng.integers(0, 6, 3000)
    drawn[:1500] = 0  # class 0 at more than half
    offsets = sampling.column_given_rest(synth.model_, synth.tokenizer_.transform(rows), 2, 6)
    assert synth.head_.n_classes == synth.tokenizer_.vocab_sizes[2] == 6
    new = synth.head_.redraw(rows, drawn, rng, offsets)
    with pytest.raises(ValueError, match="offsets"):
        synth.head_.redraw(rows, drawn, rng)
    wanted = np.bincount(drawn, minlength=6) / 3000
    got = np.bincount(new, minlength=6) / 3000
    assert np.abs(got - wanted).max() < 0.03


def test_shift_matches_frequencies_and_keeps_empty_classes_empty():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (500, 4))
    p = target_head.shifted(logits, np.array([0.5, 0.3, 0.2, 0.0]))
    assert np.allclose(p.mean(axis=0), [0.5, 0.3, 0.2, 0.0], atol=1e-6)
    assert (p[:, 3] == 0).all() and np.allclose(p.sum(axis=1), 1.0)
    # the order of the rows' odds is kept: a shift adds the same constant to each class
    ratio = np.log(p[:, 1] / p[:, 0]) - (logits[:, 1] - logits[:, 0])
    assert np.ptp(ratio) < 1e-8


def test_fit_head_adds_the_planned_noise():
    """Weights of features no row has get no gradient and move by the noise alone: their
    spread is ``rate * sigma * C / (q n)`` per step, over ``steps`` steps; without a plan
    they do not move."""
    n, d = 2000, 200
    indices = np.zeros((n, 2), dtype=np.int64)  # every row the same two features
    y = np.zeros(n, dtype=np.int64)
    plan = DPSGDPlan(target_head.HEAD_PURPOSE, 0.1, 50, 4.0)
    weights = target_head.fit_head(indices, d, y, 3, plan, NoiseSource.create(0, False), 0.01)
    spread = 0.01 * 4.0 * target_head.HEAD_CLIP / (0.1 * n) * math.sqrt(50)
    # rows 1.. are never active: they move by the noise alone
    assert np.std(weights[1:]) == pytest.approx(spread, rel=0.15)
    plain = target_head.fit_head(indices, d, y, 3, None, NoiseSource.create(0, False), 0.01)
    assert np.abs(plain[1:]).max() == 0.0


def test_fit_head_clips_each_row():
    """A row's gradient ``x (p - e_y)`` has norm ``sqrt(columns + 1) |p - y|`` (here
    sqrt(4) / 2 = 1 at the start) and is clipped to the clip: with one row and one step at
    rate 1, the weights move by exactly the clipped norm."""
    indices = np.array([[0, 1, 2, 3]])
    y = np.array([1])
    plan = DPSGDPlan(target_head.HEAD_PURPOSE, 1.0, 1, 0.0)
    weights = target_head.fit_head(indices, 5, y, 2, plan, NoiseSource.create(0, False), 1.0)
    assert np.linalg.norm(weights) == pytest.approx(1.0, rel=1e-9)
    wide = np.arange(16)[None, :]  # norm sqrt(16) / 2 = 2 before clipping
    weights = target_head.fit_head(wide, 16, y, 2, plan, NoiseSource.create(0, False), 1.0)
    assert np.linalg.norm(weights) == pytest.approx(target_head.HEAD_CLIP, rel=1e-9)


# -- draws and persistence ----------------------------------------------------------------------
def test_conditions_on_the_target_are_kept_and_others_redraw_it(copies):
    synth = copies[math.inf, True]
    kept = synth.sample_conditional({"twin": "c"}, 200, random_state=0)
    assert (kept["twin"] == "c").all()
    redrawn = synth.sample_conditional({"first": "b"}, 200, random_state=0)
    assert (redrawn["twin"] == "b").mean() >= 0.9


def test_save_load_reproduces_samples(copies, tmp_path):
    synth = copies[0.05, False]
    synth.save(tmp_path / "m")
    loaded = DPARSynthesizer.load(tmp_path / "m")
    assert loaded.target == "twin" and loaded.head_ is not None and not loaded.head_.offset
    pd.testing.assert_frame_equal(loaded.sample(300, random_state=4),
                                  synth.sample(300, random_state=4))


def test_a_bounded_nullable_target_and_secure_noise():
    df, schema = every_kind_table()
    synth = DPARSynthesizer(epsilon=2.0, secure_mode=True, target="score", **FAST)
    out = synth.fit(df, schema).sample(300)
    Schema(tuple(schema.data_columns)).validate(out)
    assert out["score"].isna().any() and out["score"].notna().any()


# -- refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, needle", [
    ({"target": "nope"}, "'target'"),
    ({"target": ""}, "'target'"),
    ({"target": "twin", "target_share": 0.0}, "'target_share'"),
    ({"target": "twin", "target_share": 1.5}, "'target_share'"),
    ({"target": "twin", "distributed": True}, "'target'"),
])
def test_bad_targets_are_refused_before_any_spend(params, needle):
    df, schema = copied_table()
    session = BudgetSession(Budget(1.0, 1e-5))
    with pytest.raises(ParameterError, match=needle):
        DPARSynthesizer(epsilon=1.0, delta=1e-5, **FAST, **params).fit(df, schema,
                                                                       ledger=session)
    assert session.spends == ()


def test_public_rows_and_one_column_tables_are_refused():
    df, schema = copied_table()
    session = BudgetSession(Budget(1.0, 1e-5))
    synth = DPARSynthesizer(epsilon=1.0, delta=1e-5, target="twin", **FAST)
    with pytest.raises(ParameterError, match="'public'"):
        synth.fit(df.iloc[:1000], schema, public=df.iloc[1000:], ledger=session)
    assert session.spends == ()
    one = Schema((Column("first", "categorical", categories=tuple("abcdef")),))
    with pytest.raises(ParameterError, match="one column"):
        DPARSynthesizer(epsilon=1.0, target="first", **FAST).fit(df[["first"]], one)


def test_the_head_rate_follows_its_own_epsilon():
    """The tuning tables' choice: rate 0.5 at head budgets 0.3 and 0.6, 2.0 at 1.2."""
    assert target_head.head_rate(0.3) == target_head.head_rate(0.6) == 0.5
    assert target_head.head_rate(1.2) == target_head.head_rate(math.inf) == 2.0


# -- the head as a correction of dpar's conditional (target_offset) ---------------------------
def test_column_given_rest_is_bayes_rule_on_the_model():
    """Each class scored through the factorisation, normalised: equal to the joint's
    conditional computed by brute force over the column's values."""
    from dpsynth.synthesizers.ar import sampling

    df, schema = copied_table(n=300)
    synth = DPARSynthesizer(epsilon=math.inf, random_state=0, **FAST).fit(df, schema)
    tokens = synth.tokenizer_.transform(df.head(20))
    model = synth.model_
    for j in range(tokens.shape[1]):
        k = synth.tokenizer_.vocab_sizes[j]
        got = sampling.column_given_rest(model, tokens, j, k)
        joint = np.zeros((len(tokens), k))
        for value in range(k):
            trial = torch.from_numpy(tokens.copy())
            trial[:, j] = value
            with torch.no_grad():
                logits = model(trial)
            joint[:, value] = sum(torch.log_softmax(z.float(), -1).gather(
                1, trial[:, c:c + 1]).squeeze(1).numpy() for c, z in enumerate(logits))
        expected = joint - np.logaddexp.reduce(joint, axis=1, keepdims=True)
        assert np.allclose(got, expected, atol=1e-5)


def test_offset_head_reproduces_after_load(tmp_path):
    df, schema = copied_table()
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, target="twin", **FAST).fit(df, schema)
    assert synth.head_.offset  # the default
    synth.save(tmp_path / "m")
    loaded = DPARSynthesizer.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.sample(300, random_state=4),
                                  synth.sample(300, random_state=4))
    with pytest.raises(ParameterError, match="'target_offset'"):
        DPARSynthesizer(target="twin", target_offset="yes").fit(df, schema)
