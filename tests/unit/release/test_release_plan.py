"""The typed inputs of a release: the validated plan, the generator factory, the data's
identity hashed once, each set of events composed once."""

from __future__ import annotations

import importlib

import pytest
from planted import Copycat

from dpsynth.accounting import Budget
from dpsynth.datasets import load_dataset
from dpsynth.errors import ParameterError
from dpsynth.release import ReleasePlan, ReleasePolicy, SynthesizerFactory, release
from dpsynth.release.plan import effective_delta
from dpsynth.synthesizers import SYNTHESIZERS

fingerprint = importlib.import_module("dpsynth.accounting.fingerprint")
core = importlib.import_module("dpsynth.release.core")


@pytest.fixture(scope="module")
def small():
    rows, schema = load_dataset("wage")
    return rows.sample(400, random_state=2).reset_index(drop=True), schema


def test_plan_holds_typed_validated_values(small):
    _, schema = small
    plan = ReleasePlan.build(schema, epsilon=2, dataset="wage", synthesizer="mst",
                             synthesizer_params={"n_bins": 7}, secrets=["race"],
                             policy={"max_attempts": 3}, random_state=7, n_rows=10)
    assert plan.epsilon == 2.0 and isinstance(plan.epsilon, float)
    assert plan.secrets == ("race",) and plan.seed == 7 and plan.n_rows == 10
    assert plan.policy == ReleasePolicy(max_attempts=3)
    assert plan.synth_name == "mst"
    synth = plan.synthesizer(0.5, None, 11, False)
    assert type(synth) is SYNTHESIZERS["mst"]
    assert (synth.epsilon, synth.random_state, synth.n_bins) == (0.5, 11, 7)
    secure = plan.synthesizer(0.5, 1e-6, 11, True)
    assert secure.random_state is None and secure.secure_mode and secure.delta == 1e-6
    with pytest.raises(ParameterError) as info:
        ReleasePlan.build(schema, epsilon=0, dataset=" ", n_rows=1, random_state=-1)
    for name in ("'epsilon'", "'dataset'", "'n_rows'", "'random_state'"):
        assert name in str(info.value)


def test_factory_from_a_template_keeps_its_parameters():
    template = Copycat(epsilon=9.0)
    factory = SynthesizerFactory.resolve(template, None)
    made = factory(1.0, None, 3, False)
    assert made is not template and made.epsilon == 1.0 and made.random_state == 3
    with pytest.raises(ParameterError, match="synthesizer_params"):
        SynthesizerFactory.resolve("mst", {"random_state": 1})


def test_effective_delta_is_the_attempts_else_the_caps():
    assert effective_delta(None, Budget(1, 1e-5)) == 1e-5
    assert effective_delta(1e-7, Budget(1, 1e-5)) == 1e-7


def test_data_is_identified_once_per_release(small, tmp_path, monkeypatch):
    rows, schema = small
    calls = []
    real = fingerprint.identify

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fingerprint, "identify", counting)
    monkeypatch.setattr(core, "identify", counting)
    result = release(rows, schema, epsilon=1.0, dataset="wage", ledger=tmp_path / "l.sqlite",
                     cap=Budget(5, 1e-5), synthesizer=Copycat(), random_state=0,
                     n_targets=50)
    assert len(calls) == 1
    assert result.card.source.fingerprint == real(rows, schema).fingerprint


def test_each_set_of_events_is_composed_once(small, tmp_path, monkeypatch):
    rows, schema = small
    calls = []
    real = core.pld_epsilon

    def counting(events, delta):
        calls.append(tuple(events))
        return real(events, delta)

    monkeypatch.setattr(core, "pld_epsilon", counting)
    result = release(rows, schema, epsilon=1.0, dataset="wage", ledger=tmp_path / "l.sqlite",
                     cap=Budget(5, 1e-5), synthesizer=Copycat(), random_state=0,
                     n_targets=50)
    # one spend: the spend alone, the attempt and the release are the same composition
    assert len(calls) == 1
    card = result.card
    assert card.privacy.release_epsilon == card.attempts[0].epsilon
    assert card.attempts[0].spends[0].epsilon_alone == card.attempts[0].epsilon
