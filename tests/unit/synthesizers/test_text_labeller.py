"""The DP label model of the text synthesizer: its mechanism, its plan and the re-assignment."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.accounting import Budget, BudgetSession, NoiseSource, pld_epsilon
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import BaseSynthesizer
from dpsynth.synthesizers.plan import DPSGDPlan
from dpsynth.synthesizers.text import DPTextSynthesizer
from dpsynth.synthesizers.text.labeller import (
    HASHED,
    LABEL_PURPOSE,
    LabelModel,
    assign_cells,
    embed,
    plan_labels,
)

TINY = {"pretrained": None, "d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 32,
        "learning_rate": 5e-3, "epochs": 1}
WORDS = {"cat": ("meow", "purr", "whiskers", "litter"), "dog": ("woof", "bark", "fetch", "leash")}


def pets(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    """A planted dependency: each label has its own words."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["cat", "dog"], n, p=[0.6, 0.4])
    texts = [" ".join(rng.choice(WORDS[a], 3)) + f" {rng.integers(100)}" for a in labels]
    schema = Schema((Column("pet", "categorical", categories=("cat", "dog")),
                     Column("text", "text", max_length=32)))
    return pd.DataFrame({"pet": labels, "text": texts}), schema


def fitted(plan: DPSGDPlan | None, seed: int = 0) -> tuple[float, LabelModel]:
    """Held-out accuracy of a label model fitted under ``plan`` on hashed embeddings."""
    train, _ = pets(400, seed)
    test, _ = pets(400, seed + 100)
    cells = (train.pet == "dog").to_numpy().astype(int)
    model = LabelModel.fit(embed(train.text.tolist(), HASHED), cells, 2, HASHED, plan=plan,
                           noise=NoiseSource.create(seed, False))
    guess = model.log_probs(embed(test.text.tolist(), HASHED)).argmax(1)
    return float(np.mean(guess == (test.pet == "dog").to_numpy())), model


def test_assignment_keeps_the_drawn_values_and_maximises_the_score_for_two_cells():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 8))
        lp = np.log(rng.dirichlet([1.0, 1.0], n))
        drawn = rng.integers(0, 2, n)
        out = assign_cells(lp, drawn)
        assert sorted(out) == sorted(drawn)
        best = max(lp[np.arange(n), list(p)].sum()
                   for p in set(itertools.permutations(drawn)))
        assert lp[np.arange(n), out].sum() == pytest.approx(best)


def test_assignment_of_several_cells_is_a_permutation():
    rng = np.random.default_rng(1)
    lp = np.log(rng.dirichlet(np.ones(5), 50))
    drawn = rng.integers(0, 5, 50)
    out = assign_cells(lp, drawn)
    assert np.array_equal(np.bincount(out, minlength=5), np.bincount(drawn, minlength=5))
    with pytest.raises(ParameterError, match="drawn cells"):
        assign_cells(lp, drawn[:-1])


def test_the_label_model_learns_a_planted_label_and_the_dp_noise_costs_accuracy():
    exact, _ = fitted(None)
    assert exact > 0.95
    loose, _ = fitted(plan_labels(Budget(8.0, 1e-5), 1.0))
    assert loose > 0.9  # epsilon 8 on 400 records still finds a word-level label
    tiny = plan_labels(Budget(0.01, 1e-5), 1.0)
    noisy = np.mean([fitted(tiny, seed)[0] for seed in range(3)])
    assert noisy < exact - 0.1  # the noise is really added


def test_the_plan_is_calibrated_to_its_share():
    plan = plan_labels(Budget(4.0, 1e-5), 0.25)
    assert plan.purpose == LABEL_PURPOSE
    assert pld_epsilon([plan.event], 1e-5 * 0.25) <= 1.0 + 1e-6
    assert pld_epsilon([plan.event], 1e-5 * 0.25) > 0.95


def test_a_private_fit_spends_the_planned_label_model_within_the_budget(tmp_path):
    df, schema = pets()
    session = BudgetSession(Budget(4.0, 1e-4))
    synth = DPTextSynthesizer(epsilon=4.0, delta=1e-4, random_state=0, **TINY)
    plan = synth.plan_budget(schema, len(df))
    synth.fit(df, schema, ledger=session)
    spent = {s.purpose: s.event for s in session.spends}
    assert spent[LABEL_PURPOSE] == plan.detail.labels.event
    assert synth.privacy_.epsilon <= 4.0 + 1e-6 and session.epsilon_spent() <= 4.0 + 1e-6
    assert synth.labels_ is not None and synth.labels_.cells == 2
    synth.save(tmp_path / "m")
    again = BaseSynthesizer.load(tmp_path / "m")
    assert np.array_equal(again.labels_.weights, synth.labels_.weights)
    assert again.sample(8, random_state=2).equals(synth.sample(8, random_state=2))


def test_sampling_reassigns_the_drawn_values_by_the_text():
    df, schema = pets()
    synth = DPTextSynthesizer(epsilon=math.inf, random_state=0, **TINY).fit(df, schema)
    real, _ = pets(200, seed=7)
    shuffled = real.assign(pet=real.pet.sample(frac=1.0, random_state=3).to_numpy())
    moved = synth.relabel(shuffled)
    assert moved.pet.value_counts().equals(shuffled.pet.value_counts())  # same multiset
    assert (shuffled.pet == real.pet).mean() < 0.7
    assert (moved.pet == real.pet).mean() > 0.95  # the text decides who gets which value
    assert moved.text.equals(shuffled.text) and shuffled.pet.ne(real.pet).any()  # a copy
    out = synth.sample(30, random_state=1)
    assert list(out.columns) == ["pet", "text"] and set(out.pet) <= {"cat", "dog"}


def test_records_as_written_are_the_sampled_ones_before_relabelling():
    df, schema = pets()
    synth = DPTextSynthesizer(epsilon=math.inf, random_state=0, **TINY).fit(df, schema)
    written = synth.sample(40, random_state=5, relabel=False)
    sampled = synth.sample(40, random_state=5)
    assert written.text.equals(sampled.text)  # one draw, two ways to label it
    assert synth.relabel(written).equals(sampled)
    assert sorted(written.pet) == sorted(sampled.pet)
    for bad, match in ((written.drop(columns=["pet"]), "missing"),
                       (written.assign(pet="horse"), "declared domain")):
        with pytest.raises(ParameterError, match=match):
            synth.relabel(bad)
    with pytest.raises(ParameterError, match="relabel"):
        synth.sample(4, relabel="no")
    plain = DPTextSynthesizer(epsilon=math.inf, random_state=0, labeller=False,
                              **TINY).fit(df, schema)
    with pytest.raises(ParameterError, match="no DP label model"):
        plain.relabel(written)
    assert plain.sample(8, random_state=1, relabel=False).equals(
        plain.sample(8, random_state=1))  # nothing to re-assign


def test_off_and_inapplicable_settings():
    df, schema = pets()
    off = DPTextSynthesizer(epsilon=4.0, delta=1e-4, labeller=False, random_state=0, **TINY)
    assert off.plan_budget(schema, len(df)).detail.labels is None
    hidden = DPTextSynthesizer(epsilon=4.0, delta=1e-4, release_controls=False, **TINY)
    assert hidden.plan_budget(schema, len(df)).detail.labels is None
    text_only = Schema((Column("text", "text", max_length=32),))
    assert DPTextSynthesizer(epsilon=4.0, delta=1e-4, **TINY).plan_budget(
        text_only, len(df)).detail.labels is None
    with pytest.raises(ParameterError, match="labeller"):
        DPTextSynthesizer(epsilon=4.0, delta=1e-4, labeller=True, **TINY).plan_budget(
            text_only, len(df))


@pytest.mark.parametrize("params, match", [
    ({"labeller": "yes"}, "labeller"),
    ({"labeller": 1}, "labeller"),
    ({"label_fraction": 0.0}, "label_fraction"),
    ({"label_fraction": 0.9, "control_fraction": 0.2}, "label_fraction"),
])
def test_bad_parameters_are_refused(params, match):
    df, schema = pets(50)
    with pytest.raises(ParameterError, match=match):
        DPTextSynthesizer(epsilon=4.0, delta=1e-4, **{**TINY, **params}).fit(df, schema)


def test_the_label_share_is_checked_only_where_the_label_model_trains():
    df, schema = pets(50)
    crowded = {"control_fraction": 0.5, "label_fraction": 0.5}  # nothing left for the text
    text_only = Schema((Column("text", "text", max_length=32),))
    plan = DPTextSynthesizer(epsilon=4.0, delta=1e-4, **{**TINY, **crowded}).plan_budget(
        text_only, len(df))  # 'auto' and no controls: no label model, no complaint
    assert plan.detail.labels is None
    session = BudgetSession(Budget(4.0, 1e-4))
    synth = DPTextSynthesizer(epsilon=4.0, delta=1e-4, **{**TINY, **crowded})
    with pytest.raises(ParameterError, match="labeller=False"):
        synth.fit(df, schema, ledger=session)
    assert session.spends == () and not hasattr(synth, "backend_")  # refused before a spend
    with pytest.raises(ParameterError, match="label_fraction"):  # True: refused at once
        DPTextSynthesizer(labeller=True, **{**TINY, **crowded})._validate_params()
    DPTextSynthesizer(epsilon=4.0, delta=1e-4, labeller=False, random_state=0,
                      **{**TINY, **crowded}).fit(df, schema)  # off: the shares are fine


def test_assignment_with_a_surplus_keeps_the_surest_rows():
    lp = np.log(np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    out = assign_cells(lp, np.array([0, 1]), surplus=True)
    assert out.tolist() == [-1, 0, 1, -1]
    with pytest.raises(ParameterError, match="drawn cells"):
        assign_cells(lp[:1], np.array([0, 1]), surplus=True)
