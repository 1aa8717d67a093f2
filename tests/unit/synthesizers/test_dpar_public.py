"""Declared public rows in dpar (``fit(..., public=rows)``): what they change and what not."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tables import copied_table as _copied

from dpsynth.accounting import Budget, Ledger, NoiseSource
from dpsynth.errors import DataValidationError, ParameterError, PrivacyError
from dpsynth.schema import Schema
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers.ar import DPARSynthesizer
from dpsynth.synthesizers.base import BaseSynthesizer, create

FAST: dict[str, Any] = dict(epochs=4, batch_size=64, d_model=16, n_layers=1, n_heads=2)


def _agree(rows: pd.DataFrame) -> float:
    return float((rows["first"].astype(str) == rows["twin"].astype(str)).mean())


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


# -- what the public rows give ----------------------------------------------------------------
def test_a_rule_in_the_public_rows_is_learned_where_the_private_rows_alone_cannot_teach_it():
    """At epsilon 1 on 150 private rows dpar barely learns ``twin = first`` (it holds in
    0.34-0.55 of its rows over three seeds, chance being 0.22); 200 declared public rows
    holding the same rule teach it (0.91), under the same spend."""
    private, schema = _copied(150, seed=1)
    public, _ = _copied(200, seed=2)
    params = dict(epsilon=1.0, random_state=0, d_model=16, n_layers=1, n_heads=2)
    alone = DPARSynthesizer(**params).fit(private, schema)
    helped = DPARSynthesizer(**params).fit(private, schema, public=public)
    assert helped.privacy_.epsilon == pytest.approx(alone.privacy_.epsilon)
    agree_alone, agree_helped = (_agree(alone.sample(2000, random_state=1)),
                                 _agree(helped.sample(2000, random_state=1)))
    assert agree_alone < 0.6 and agree_helped > 0.85
    assert agree_helped > agree_alone + 0.25


def test_the_public_rows_change_neither_the_plan_nor_the_spend(tmp_path):
    private, schema = _copied(400, seed=3)
    public, _ = _copied(100, seed=4)
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.register_table("t", Budget(3.0, 1e-5), private, schema)
    alone = DPARSynthesizer(epsilon=1.0, delta=1e-5, random_state=0, **FAST).fit(
        private, schema)
    helped = DPARSynthesizer(epsilon=1.0, delta=1e-5, random_state=0, **FAST).fit(
        private, schema, public=public, ledger=ledger.recorder("t"))
    assert helped.privacy_.to_dict() == alone.privacy_.to_dict()
    assert helped.steps_run_ == alone.steps_run_ and helped.n_rows_ == len(private)
    assert ledger.status("t").epsilon == pytest.approx(alone.privacy_.epsilon, rel=1e-6)


def test_every_dp_step_carries_the_public_rows(monkeypatch):
    """As many public rows as the expected private batch in every step, or all if fewer."""
    made: list[_dpsgd.WithPublicRows] = []
    real = _dpsgd.WithPublicRows

    def spy(*args: Any, **kwargs: Any) -> _dpsgd.WithPublicRows:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(_dpsgd, "WithPublicRows", spy)
    private, schema = _copied(400, seed=5)
    for n_public, per_step in ((30, 30), (200, 64)):
        public, _ = _copied(n_public, seed=6)
        DPARSynthesizer(epsilon=1.0, random_state=0, **FAST).fit(private, schema,
                                                                 public=public)
        assert (made[-1].n_private, made[-1].n_public) == (400, n_public)
        assert made[-1].per_step == per_step


def test_with_public_rows_appends_distinct_public_indices_even_to_an_empty_batch():
    private = [np.array([0, 3]), np.array([], dtype=np.int64), np.array([9])]
    sampler = _dpsgd.WithPublicRows(private, 10, 7, 3, NoiseSource.create(0, False))  # type: ignore[arg-type]
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3
    for mine, batch in zip(private, batches, strict=True):
        assert list(batch[:len(mine)]) == list(mine)
        drawn = batch[len(mine):]
        assert len(drawn) == 3 and len(set(drawn)) == 3 and all(10 <= i < 17 for i in drawn)
    every = list(_dpsgd.WithPublicRows(private, 10, 7, 7, NoiseSource.create(0, False)))  # type: ignore[arg-type]
    assert all(list(b[-7:]) == list(range(10, 17)) for b in every)
    with pytest.raises(ValueError, match="per_step"):
        _dpsgd.WithPublicRows(private, 10, 7, 8, NoiseSource.create(0, False))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_opacus_clipping_modes_take_public_rows(mode):
    private, schema = _copied(200, seed=7)
    public, _ = _copied(50, seed=8)
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, grad_sample_mode=mode,
                            **FAST).fit(private, schema, public=public)
    assert synth.grad_sample_mode_ == mode and len(synth.sample(20, random_state=0)) == 20


def test_without_dp_the_public_rows_are_more_training_rows():
    private, schema = _copied(200, seed=9)
    public, _ = _copied(50, seed=10)
    synth = DPARSynthesizer(epsilon=math.inf, random_state=0, **FAST).fit(private, schema,
                                                                         public=public)
    assert synth.privacy_ is None and synth.public_rows_["rows"] == 50


# -- what is kept ------------------------------------------------------------------------------
def test_count_and_fingerprint_are_saved_with_the_model(tmp_path):
    from dpsynth.accounting import fingerprint

    private, schema = _copied(200, seed=11)
    public, _ = _copied(40, seed=12)
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, **FAST).fit(private, schema,
                                                                     public=public)
    assert synth.public_rows_ == {"rows": 40, "fingerprint": fingerprint(public, schema)}
    synth.save(tmp_path / "m")
    notes = json.loads((tmp_path / "m" / "manifest.json").read_text())["fit_notes"]
    assert notes["public_rows"]["rows"] == 40 and "privacy guarantee" in notes["public_rows"][
        "note"]
    loaded = BaseSynthesizer.load(tmp_path / "m")
    assert loaded.public_rows_ == synth.public_rows_
    pd.testing.assert_frame_equal(loaded.sample(50, random_state=3),
                                  synth.sample(50, random_state=3))
    plain = DPARSynthesizer(epsilon=1.0, random_state=0, **FAST).fit(private, schema)
    plain.save(tmp_path / "p")  # without public rows the manifest is as before
    assert "fit_notes" not in json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert BaseSynthesizer.load(tmp_path / "p").public_rows_ is None


def test_the_record_is_that_of_the_last_successful_fit():
    private, schema = _copied(200, seed=20)
    public, _ = _copied(30, seed=21)
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, **FAST)
    assert synth.public_rows_ is None
    synth.fit(private, schema, public=public)
    with pytest.raises(DataValidationError):  # a failed refit leaves the last record
        synth.fit(private.assign(twin="zz"), schema, public=public.head(10))
    assert synth.public_rows_["rows"] == 30
    synth.fit(private, schema)  # a refit without public rows clears it
    assert synth.public_rows_ is None


# -- what is refused, before anything is spent -------------------------------------------------
def _ledger(tmp_path: Any, rows: pd.DataFrame, schema: Schema) -> Ledger:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.register_table("t", Budget(3.0, 1e-5), rows, schema)
    return ledger


def _nothing_spent(ledger: Ledger) -> bool:
    return ledger.status("t").epsilon == 0 and not ledger.spends("t")


def test_public_rows_outside_the_schema_are_refused_before_spending(tmp_path):
    private, schema = _copied(200, seed=13)
    public, _ = _copied(20, seed=14)
    ledger = _ledger(tmp_path, private, schema)
    bad = public.assign(twin="zz")
    with pytest.raises(DataValidationError, match="public rows: .*twin"):
        DPARSynthesizer(epsilon=1.0, **FAST).fit(private, schema, public=bad,
                                                  ledger=ledger.recorder("t"))
    with pytest.raises(DataValidationError, match="public rows: .*no rows"):
        DPARSynthesizer(epsilon=1.0, **FAST).fit(private, schema, public=public.iloc[:0],
                                                  ledger=ledger.recorder("t"))
    with pytest.raises(ParameterError, match="DataFrame"):
        DPARSynthesizer(epsilon=1.0, **FAST).fit(private, schema, public=public.to_numpy(),
                                                  ledger=ledger.recorder("t"))
    assert _nothing_spent(ledger)


def test_out_of_bounds_public_values_are_clipped_with_clip(tmp_path):
    private, schema = _copied(200, seed=15)
    public, _ = _copied(20, seed=16)
    wide = public.assign(noise=public["noise"] + 10)
    with pytest.raises(DataValidationError, match="public rows"):
        DPARSynthesizer(epsilon=1.0, **FAST).fit(private, schema, public=wide)
    synth = DPARSynthesizer(epsilon=1.0, **FAST).fit(private, schema, public=wide, clip=True)
    assert synth.public_rows_["rows"] == 20


def test_the_private_table_itself_is_refused_as_public(tmp_path):
    private, schema = _copied(200, seed=17)
    ledger = _ledger(tmp_path, private, schema)
    shuffled = private.sample(frac=1.0, random_state=0)[["twin", "noise", "first"]]
    with pytest.raises(PrivacyError, match="private table itself"):
        DPARSynthesizer(epsilon=1.0, **FAST).fit(private, schema, public=shuffled,
                                                  ledger=ledger.recorder("t"))
    assert _nothing_spent(ledger)


def test_synthesizers_without_public_support_refuse_public_rows(tmp_path):
    private, schema = _copied(200, seed=18)
    public, _ = _copied(20, seed=19)
    ledger = _ledger(tmp_path, private, schema)
    for name in ("aim", "mst", "dpvae"):
        with pytest.raises(ParameterError, match="public"):
            create(name, epsilon=1.0).fit(private, schema, public=public,
                                          ledger=ledger.recorder("t"))
    with pytest.raises(ParameterError, match="distributed"):
        DPARSynthesizer(epsilon=1.0, distributed=True, **FAST).fit(
            private, schema, public=public, ledger=ledger.recorder("t"))
    assert _nothing_spent(ledger)
