"""dpar's DP-SGD in the span of the model's own per-row gradients (``subspace``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tables import every_kind_table

from dpsynth.accounting import NoiseSource
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import _subspace
from dpsynth.synthesizers.ar import DPARSynthesizer
from dpsynth.synthesizers.ar.model import ARConfig, RowLoss, build_model
from dpsynth.synthesizers.base import BaseSynthesizer

FAST: dict[str, Any] = dict(epochs=4, batch_size=64, d_model=16, n_layers=1, n_heads=2)


def _nll(forward: Any, rows: torch.Tensor) -> torch.Tensor:
    loss = RowLoss()
    loss.reduction = "none"
    return loss(forward(rows), rows)


def _tokens(config: ARConfig, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (n,), generator=g) for v in config.vocab_sizes], 1)


def _one_step(model: torch.nn.Module, rows: torch.Tensor, probes: torch.Tensor, clip: float,
              noise_fn: Any) -> None:
    """One projected step over every row (rate 1), learning rate 0: only ``.grad`` is set."""
    _subspace.train_projected(
        model, rows, _nll, lambda: probes, sample_rate=1.0, steps=1, noise_multiplier=1.0,
        max_grad_norm=clip, batch=len(rows), noise_fn=noise_fn,
        sampling=NoiseSource.create(0, False), learning_rate=0.0, after_step=lambda opt: None,
        every=10, progress=False, description="test")


def test_per_row_gradients_match_a_loop_over_rows():
    config = ARConfig((3, 5, 4), d_model=8, n_layers=1, n_heads=2)
    model, rows = build_model(config, seed=3), _tokens(config, 5, 0)
    flat = _subspace.RowGradients(model, _nll)(rows)
    for i, row in enumerate(rows):
        model.zero_grad()
        _nll(model, row[None]).sum().backward()
        ref = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(flat[i], ref, rtol=1e-4, atol=1e-6)


def test_a_step_in_the_rows_own_span_is_the_clipped_dpsgd_step():
    """Probing with the batch's own rows, the span holds every row's gradient, so without
    noise the projected step is plain DP-SGD's: the mean of the clipped per-row gradients."""
    config = ARConfig((3, 5, 4), d_model=8, n_layers=1, n_heads=2)
    model, rows, clip = build_model(config, seed=3), _tokens(config, 6, 1), 0.05
    grads = _subspace.RowGradients(model, _nll)(rows)
    scale = (clip / grads.norm(dim=1, keepdim=True)).clamp(max=1.0)
    expected = (grads * scale).sum(0) / len(rows)
    _one_step(model, rows, rows, clip, lambda ref, std: torch.zeros_like(ref))
    got = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_the_noise_is_drawn_in_k_dimensions_and_stays_in_the_span():
    config = ARConfig((3, 5, 4), d_model=8, n_layers=1, n_heads=2)
    model, rows = build_model(config, seed=3), _tokens(config, 6, 2)
    probes, seen = _tokens(config, 4, 3), []
    d = sum(p.numel() for p in model.parameters())

    def noise_fn(reference: torch.Tensor, std: float) -> torch.Tensor:
        seen.append((reference.numel(), std))
        return torch.full_like(reference, 100.0)  # the noise dwarfs the clipped rows

    basis = _subspace.span_basis(_subspace.RowGradients(model, _nll)(probes))
    _one_step(model, rows, probes, 0.5, noise_fn)
    assert seen == [(4, 0.5)] and d > 100  # sigma C, in 4 of d dimensions
    step = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    inside = basis @ (basis.T @ step)
    torch.testing.assert_close(step, inside, rtol=1e-4, atol=1e-6)


def test_noise_share_is_sigma_sqrt_d_over_the_batch():
    assert _subspace.noise_share(2.0, 10_000, 50) == pytest.approx(4.0)


# -- through dpar -----------------------------------------------------------------------------
def _copied(n: int = 600, seed: int = 1) -> tuple[pd.DataFrame, Schema]:
    rng = np.random.default_rng(seed)
    first = rng.choice(list("abcdef"), size=n, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    df = pd.DataFrame({"noise": rng.integers(0, 5, n), "first": first, "twin": first})
    levels = tuple("abcdef")
    return df, Schema((Column("noise", "integer", lower=0, upper=4),
                       Column("first", "categorical", categories=levels),
                       Column("twin", "categorical", categories=levels)))


def test_the_accounting_is_plain_dpsgd_and_the_run_is_reported(tmp_path):
    df, schema = every_kind_table(0, 400)
    plain = DPARSynthesizer(epsilon=1.0, random_state=0, **FAST).fit(df, schema)
    sub = DPARSynthesizer(epsilon=1.0, random_state=0, subspace=16, **FAST).fit(df, schema)
    assert sub.privacy_ == plain.privacy_ and sub.steps_run_ == plain.steps_run_
    assert sub.grad_sample_mode_ == "subspace"
    assert sub.resolved_params()["subspace"] == 16
    assert plain.resolved_params()["subspace"] == 0
    again = BaseSynthesizer.load(sub.save(tmp_path / "sub"))
    pd.testing.assert_frame_equal(again.sample(200, random_state=4),
                                  sub.sample(200, random_state=4))
    assert again.resolved_params()["subspace"] == 16


def test_the_projected_run_really_adds_noise():
    """At a budget 10,000 times larger the projected run fits the marginals clearly better."""
    df, schema = _copied()
    params = dict(epochs=20, batch_size=30, d_model=16, n_layers=1, n_heads=2,
                  learning_rate=1e-2, subspace=64)
    loose = DPARSynthesizer(epsilon=1000.0, random_state=0, **params).fit(df, schema)
    tight = DPARSynthesizer(epsilon=0.1, random_state=0, **params).fit(df, schema)
    assert loose.steps_run_ == tight.steps_run_
    cols = ["noise", "first", "twin"]

    def tvd(rows: pd.DataFrame) -> float:
        return float(np.mean([0.5 * df[c].astype(str).value_counts(normalize=True).sub(
            rows[c].astype(str).value_counts(normalize=True), fill_value=0).abs().sum()
            for c in cols]))

    assert tvd(tight.sample(3000, random_state=1)) > tvd(loose.sample(3000, random_state=1)) + 0.03


def test_auto_projects_only_where_the_noise_dominates():
    df, schema = every_kind_table(0, 400)
    small = DPARSynthesizer(epsilon=1.0, random_state=0, subspace="auto", **FAST)
    small.SUBSPACE_PROBES = 32  # type: ignore[misc]  # an instance attribute: a faster test
    assert small.fit(df, schema).resolved_params()["subspace"] == 32
    loose = DPARSynthesizer(epsilon=500.0, random_state=0, subspace="auto", **FAST)
    assert loose.fit(df, schema).resolved_params()["subspace"] == 0


def test_secure_mode_draws_the_projected_noise():
    df, schema = every_kind_table(0, 200)
    synth = DPARSynthesizer(epsilon=1.0, secure_mode=True, subspace=8, **FAST).fit(df, schema)
    assert synth.steps_run_ > 0 and synth.resolved_params()["subspace"] == 8
    assert len(synth.sample(50)) == 50


@pytest.mark.parametrize("params", [dict(subspace=0), dict(subspace=-3), dict(subspace="yes"),
                                    dict(subspace=True), dict(subspace=2.5),
                                    dict(subspace=8, distributed=True)])
def test_bad_subspace_values_are_refused(params):
    df, schema = every_kind_table(0, 100)
    with pytest.raises(ParameterError, match="The 'subspace' parameter of DPARSynthesizer"):
        DPARSynthesizer(**{**FAST, **params}).fit(df, schema)


def test_the_plain_run_ignores_the_subspace():
    df, schema = every_kind_table(0, 200)
    synth = DPARSynthesizer(epsilon=math.inf, random_state=0, subspace=8, **FAST)
    assert synth.fit(df, schema).resolved_params()["subspace"] == 0
