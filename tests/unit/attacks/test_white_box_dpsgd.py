"""The white-box DP-SGD audit: the gradient canary moves only its probe, correct generators
pass, a halved noise scale and fixed-size shuffled batches are caught (issue 15)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from planted_mechanisms import DPSGD_REGISTRY

from dpsynth.attacks.white_box import gdp_epsilon
from dpsynth.attacks.white_box_dpsgd import (
    FAST_PARAMS,
    dpsgd_canary_tables,
    dpsgd_white_box_audit,
    ideal_updates,
    is_dpsgd_synthesizer,
    llr_statistic,
    noisy_updates,
    probed,
    separation,
    statistics,
)
from dpsynth.errors import ParameterError

FAST = {"epsilon": 4.0, "n_fits": 80, "registry": DPSGD_REGISTRY}


@pytest.mark.parametrize("name", ["dpvae", "dptext"])
def test_the_canary_alone_moves_its_probe_coordinate_by_exactly_the_clipping_norm(name):
    """Without noise the captured updates show the mechanism bare: the canary's coordinate is
    1 (``C``) on the steps it was drawn, 0 otherwise; every other row moves the second one by
    exactly -1, so it counts the batch."""
    from torch.optim import optimizer

    cls = DPSGD_REGISTRY[name]
    data, canary, schema = dpsgd_canary_tables(name, 9, 0)
    neighbour = pd.concat([data, canary], ignore_index=True)
    extra = FAST_PARAMS[name] | {"batch_size": 5, "device": "cpu", "epochs": 5.0}
    plan = cls(epsilon=4.0, delta=1e-5, **extra).plan_budget(schema, 10)
    detail = plan.detail
    if hasattr(detail, "training"):
        bare = dataclasses.replace(detail, training=dataclasses.replace(
            detail.training, noise_multiplier=1e-9))
    else:
        bare = dataclasses.replace(detail, noise_multiplier=1e-9)
    plan = dataclasses.replace(plan, detail=bare)
    plans = (dataclasses.replace(plan, n_rows=9), plan)
    hooks = len(optimizer._global_optimizer_pre_hooks)
    z = noisy_updates(probed(cls), (data, neighbour), schema, plans, 4, 0, epsilon=4.0,
                      delta=1e-5, **extra)
    assert len(optimizer._global_optimizer_pre_hooks) == hooks  # the capture hook is gone
    assert z.shape == (2, 4, 10, 2)
    np.testing.assert_allclose(z[0, ..., 0], 0.0, atol=1e-5)
    drawn = z[1, ..., 0]
    np.testing.assert_allclose(drawn, np.round(drawn), atol=1e-5)
    assert set(np.round(drawn).ravel()) == {0.0, 1.0}
    counts = -z[..., 1]
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)
    assert counts.min() >= 0 and counts.max() <= 9 and 2 < counts.mean() < 7


def test_statistics_on_the_ideal_mechanism():
    q, steps, sigma = 0.5, 20, 2.63
    # q = 1: the likelihood ratio is linear, the fit exact: mu = sqrt(steps) / sigma
    full = ideal_updates(1.0, 4, 1.0, 3)
    assert separation(llr_statistic(full[..., 0], 1.0, 1.0)) == pytest.approx(2.0, abs=0.05)
    ideal = statistics(ideal_updates(q, steps, sigma, 9), q, sigma, 9)
    canary, displacement = separation(ideal[..., 0]), separation(ideal[..., 1])
    # below the claim (4 at this sigma): the GDP fit of a subsampled Gaussian errs low
    assert 3.3 < gdp_epsilon(canary, 1e-5) < 4.0 and displacement < canary
    halved = statistics(ideal_updates(q, steps, sigma, 9, noise_scale=0.5, seed=1), q, sigma, 9)
    assert separation(halved[..., 0]) > 1.8 * canary


@pytest.fixture(scope="module")
def correct():
    return dpsgd_white_box_audit("dpvae", **FAST)


def test_correct_dpvae_passes_with_a_bound_below_its_planned_part(correct):
    assert not correct.violated, correct.to_dict()
    assert correct.epsilon_lower <= correct.epsilon_planned * 1.2
    assert correct.epsilon_planned > 0.8 * correct.epsilon
    raw = correct.to_dict()
    assert raw["mode"] == "white-box" and raw["accounted_epsilon"] == 4.0
    assert raw["params"]["statistic"] in ("canary", "displacement")
    assert raw["params"]["other"]["epsilon_lower"] <= 4.0
    assert raw["params"]["sample_rate"] == 0.5 and raw["params"]["steps"] == 20
    assert raw["power_half_noise"] > 0.9 and "gradient-canary" in raw["epsilon_lower_source"]


@pytest.mark.parametrize(("broken", "statistic", "fits"), [
    ("dpvae-half-noise", "canary", 80), ("dpvae-shuffled", "displacement", 120)])
def test_planted_dpsgd_bugs_push_the_lower_bound_above_the_claim(correct, broken, statistic,
                                                                 fits):
    """The shuffled batches need more fits: the displacement statistic's expected bound is
    about 5.3 at epsilon 4 (half noise: 7.6)."""
    result = dpsgd_white_box_audit(broken, **(FAST | {"n_fits": fits}))
    assert result.violated and result.epsilon_lower > result.epsilon, result.to_dict()
    assert result.params["statistic"] == statistic


@pytest.mark.slow
@pytest.mark.parametrize(("name", "leak"), [("dptext", False), ("dptext-half-noise", True),
                                            ("dptext-shuffled", True)])
def test_text_model_audit(name, leak):
    result = dpsgd_white_box_audit(name, **(FAST | {"n_fits": 300}))
    assert result.violated == leak, result.to_dict()


def test_dispatch_and_bad_parameters():
    assert is_dpsgd_synthesizer("dpvae") and is_dpsgd_synthesizer("dptext")
    assert not is_dpsgd_synthesizer("mst") and not is_dpsgd_synthesizer("nope")
    with pytest.raises(ParameterError) as info:
        dpsgd_white_box_audit("dpvae", epsilon=math.inf, n_fits=3, steps=0, confidence=2.0)
    for name in ("'n_fits'", "'epsilon'", "'steps'", "'confidence'"):
        assert name in str(info.value)
    with pytest.raises(ParameterError):
        dpsgd_white_box_audit("mst", epsilon=1.0)
