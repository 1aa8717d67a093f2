"""What every DP-SGD table synthesizer (dpvae, dpar) owes through the shared engine:
the reported epsilon is the PLD figure of the steps run, the engine's parameters are checked
(all problems at once), and CUDA is refused where there is none. Model-specific checks stay in
``test_dpvae.py`` and ``test_dpar.py``."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
import torch
from tables import every_kind_table

from dpsynth.accounting import SubsampledGaussianEvent, pld_epsilon
from dpsynth.errors import ParameterError
from dpsynth.schema import Schema
from dpsynth.synthesizers.ar import DPARSynthesizer
from dpsynth.synthesizers.base import BaseSynthesizer
from dpsynth.synthesizers.dpvae import DPVAESynthesizer

N_ROWS = 400
MODELS: dict[str, tuple[type[BaseSynthesizer], dict[str, Any]]] = {
    "dpvae": (DPVAESynthesizer, dict(epochs=4, batch_size=64, hidden_sizes=(32, 32),
                                     latent_dim=4)),
    "dpar": (DPARSynthesizer, dict(epochs=4, batch_size=64, d_model=16, n_layers=1,
                                   n_heads=2)),
}


def _table() -> tuple[pd.DataFrame, Schema]:
    return every_kind_table(0, N_ROWS)


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request: pytest.FixtureRequest) -> tuple[str, BaseSynthesizer, pd.DataFrame]:
    torch.set_num_threads(1)
    klass, fast = MODELS[request.param]
    df, schema = _table()
    return request.param, klass(epsilon=1.0, random_state=0, **fast).fit(df, schema), df


def test_reported_epsilon_is_pld_of_the_steps_run(fitted):
    name, synth, df = fitted
    fast = MODELS[name][1]
    report = synth.privacy_
    (spend,) = report.spends
    event = spend.event
    assert spend.purpose == f"train:{name}" and isinstance(event, SubsampledGaussianEvent)
    q = fast["batch_size"] / len(df)
    assert event.sample_rate == pytest.approx(q)
    assert synth.steps_run_ == event.steps == math.ceil(fast["epochs"] / q)
    assert synth.grad_sample_mode_ == "bookkeeping"
    rerun = SubsampledGaussianEvent(event.noise_multiplier, q, synth.steps_run_)
    assert report.epsilon == pytest.approx(pld_epsilon([rerun], report.delta), rel=1e-12)
    assert report.epsilon <= 1.0 + 1e-9 and report.target_epsilon == 1.0
    assert report.epsilon > 0.9  # the noise is calibrated to the target, not far below it


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("params, name", [
    (dict(epochs=0), "epochs"),
    (dict(epochs=float("nan")), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(batch_size=N_ROWS + 1), "batch_size"),
    (dict(max_grad_norm=-1.0), "max_grad_norm"),
    (dict(learning_rate=0), "learning_rate"),
    (dict(grad_sample_mode="functorch"), "grad_sample_mode"),
    (dict(device="tpu"), "device"),
    (dict(progress="yes"), "progress"),
])
def test_bad_engine_params_raise_parameter_error(model, params, name):
    klass, fast = MODELS[model]
    df, schema = _table()
    with pytest.raises(ParameterError, match=f"The '{name}' parameter of {klass.__name__}"):
        klass(**{**fast, **params}).fit(df, schema)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_bad_param_is_reported_at_once(model):
    klass, _ = MODELS[model]
    df, schema = _table()
    with pytest.raises(ParameterError) as info:
        klass(epochs=0, batch_size=-3, device="tpu").fit(df, schema)
    assert all(f"'{n}'" in str(info.value) for n in ("epochs", "batch_size", "device"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("model", sorted(MODELS))
def test_cuda_requested_without_cuda_is_a_parameter_error(model):
    klass, fast = MODELS[model]
    df, schema = _table()
    with pytest.raises(ParameterError, match="'device'"):
        klass(device="cuda", **fast).fit(df, schema)
