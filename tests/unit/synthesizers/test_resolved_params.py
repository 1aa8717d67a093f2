"""``resolved_params``: what a fit chose for its automatic settings, kept by save/load and
written on the dataset card."""

from __future__ import annotations

import math

import pytest
import torch
from tables import every_kind_table

from dpsynth.release.card_fields import _generator
from dpsynth.synthesizers.ar import DPARSynthesizer
from dpsynth.synthesizers.base import BaseSynthesizer, create
from dpsynth.synthesizers.marginal.aim import default_rounds

SMALL = dict(d_model=16, n_layers=1, n_heads=2)


@pytest.fixture(scope="module")
def table():
    torch.set_num_threads(1)
    return every_kind_table(0, 400)


def test_unfitted_model_resolves_nothing():
    synth = DPARSynthesizer()
    assert synth.resolved_params() == synth.get_params()
    assert synth.automatic_params() == {}


def test_dpar_records_its_automatic_schedule(table, tmp_path):
    df, schema = table
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, **SMALL).fit(df, schema)
    given, ran = synth.get_params(), synth.resolved_params()
    assert given["epochs"] is None and given["batch_size"] is None
    assert given["learning_rate"] is None and given["device"] == "auto"
    assert ran["batch_size"] == min(512, len(df) // 4)
    assert ran["learning_rate"] == DPARSynthesizer.DP_LEARNING_RATE
    assert ran["steps"] == synth.steps_run_
    # the passes made: steps at the Poisson rate, ceil(20 / q) of them
    q = ran["batch_size"] / len(df)
    assert ran["steps"] == math.ceil(DPARSynthesizer.DP_EPOCHS / q)
    assert ran["epochs"] == pytest.approx(ran["steps"] * q, abs=1e-3)
    assert ran["device"] == "cpu" and ran["grad_sample_mode"] == "bookkeeping"
    assert ran["delta"] == synth.privacy_.delta
    assert ran["epsilon"] == 1.0  # what was given stays as given
    chose = synth.automatic_params()
    assert chose["steps"] == ran["steps"] and "epsilon" not in chose and "n_bins" not in chose
    again = BaseSynthesizer.load(synth.save(tmp_path / "m"))
    assert again.resolved_params() == ran


def test_dpar_plain_run_records_its_floor_of_steps(table):
    df, schema = table
    synth = DPARSynthesizer(epsilon=math.inf, random_state=0, **SMALL).fit(df, schema)
    ran = synth.resolved_params()
    assert ran["steps"] == synth.steps_run_ == DPARSynthesizer.PLAIN_MIN_STEPS
    assert ran["learning_rate"] == DPARSynthesizer.PLAIN_LEARNING_RATE
    assert ran["epochs"] > DPARSynthesizer.DP_EPOCHS  # the floor made it train longer
    assert "delta" not in ran or ran["delta"] is None


def test_given_values_are_kept(table):
    df, schema = table
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, epochs=3, batch_size=50,
                            learning_rate=5e-3, **SMALL).fit(df, schema)
    ran = synth.resolved_params()
    assert ran["batch_size"] == 50 and ran["learning_rate"] == 5e-3
    assert ran["epochs"] == pytest.approx(math.ceil(3 / (50 / 400)) * 50 / 400)


def test_aim_records_its_rounds(table, tmp_path):
    df, schema = table
    synth = create("aim", epsilon=1.0, random_state=0).fit(df, schema)
    rounds = default_rounds(len(schema.data_columns), 1.0)
    assert synth.get_params()["rounds"] is None
    assert synth.resolved_params()["rounds"] == rounds
    again = BaseSynthesizer.load(synth.save(tmp_path / "aim"))
    assert again.resolved_params()["rounds"] == rounds


def test_card_shows_what_the_fit_chose(table):
    from types import SimpleNamespace

    from dpsynth.release.card_sections import GeneratorSection

    df, schema = table
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, **SMALL).fit(df, schema)
    section = _generator(SimpleNamespace(synth_name="dpar"),  # type: ignore[arg-type]
                         SimpleNamespace(synthesizer=synth))  # type: ignore[arg-type]
    chose = section.automatic()
    assert chose["epochs"] == synth.resolved_params()["epochs"]
    assert chose["batch_size"] == 100 and chose["steps"] == synth.steps_run_
    assert "epsilon" not in chose and "d_model" not in chose
    data = section.to_dict()
    assert data["params"]["epochs"] is None and data["resolved_params"]["steps"] > 0
    assert GeneratorSection.from_dict(data) == section
    # a card written before the field was added reads back without it
    old = {k: v for k, v in data.items() if k != "resolved_params"}
    assert GeneratorSection.from_dict(old).automatic() == {}
