"""DPVAESynthesizer: contract, privacy accounting, DP-SGD mechanics and persistence."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tables import every_kind_table

from dpsynth.accounting import NoiseSource
from dpsynth.data.encode import TableEncoder
from dpsynth.errors import NotFittedError, ParameterError, PrivacyError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers.base import SYNTHESIZERS, BaseSynthesizer, create
from dpsynth.synthesizers.dpvae import DPVAESynthesizer, _build_model, _VAELoss

FAST: dict[str, Any] = dict(epochs=4, batch_size=64, hidden_sizes=(32, 32), latent_dim=4)
N_ROWS = 400



def _table(seed: int = 0, n: int = N_ROWS) -> tuple[pd.DataFrame, Schema]:
    return every_kind_table(seed, n)


@pytest.fixture(scope="module")
def fitted() -> tuple[DPVAESynthesizer, pd.DataFrame, Schema]:
    torch.set_num_threads(1)
    df, schema = _table()
    synth = DPVAESynthesizer(epsilon=1.0, random_state=0, **FAST)
    synth.fit(df, schema)
    return synth, df, schema


def _tvd(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema) -> float:
    """Average 1-way total variation distance (numeric columns in 20 equal bins)."""
    out = []
    for col in schema.data_columns:
        if col.kind in ("categorical", "ordinal"):
            a = real[col.name].astype(str).value_counts(normalize=True)
            b = synth[col.name].astype(str).value_counts(normalize=True)
        else:
            a, b = _histogram(real[col.name], col), _histogram(synth[col.name], col)
        out.append(0.5 * a.sub(b, fill_value=0).abs().sum())
    return float(np.mean(out))


def _histogram(s: pd.Series, col: Column) -> pd.Series:
    """Shares of 20 equal bins over the declared bounds, plus the share of missing values."""
    lo, hi = col.bound_values()
    values = s.dropna()
    if col.kind == "datetime":
        values = pd.to_datetime(values).astype("datetime64[ns]").astype("int64")
    counts = np.histogram(values.astype(float), np.linspace(lo, hi, 21))[0].tolist()
    return pd.Series([*counts, int(s.isna().sum())]) / len(s)


# -- contract ---------------------------------------------------------------------------------
def test_registered_and_created_by_name():
    assert SYNTHESIZERS["dpvae"] is DPVAESynthesizer
    synth = create("dpvae", epsilon=2.0, epochs=3)
    assert isinstance(synth, DPVAESynthesizer) and synth.epochs == 3 and synth.epsilon == 2.0


def test_init_only_stores_params():
    synth = DPVAESynthesizer(epochs=-1, device="nonsense")  # validated in fit, not here
    assert synth.get_params()["epochs"] == -1 and synth.device == "nonsense"


def test_sample_before_fit_raises():
    with pytest.raises(NotFittedError):
        DPVAESynthesizer().sample(5)


def test_sample_matches_schema(fitted):
    synth, _, schema = fitted
    out = synth.sample(500, random_state=3)
    assert list(out.columns) == [c.name for c in schema.data_columns]  # identifier dropped
    assert len(out) == 500
    schema_wo_id = Schema(tuple(schema.data_columns))
    schema_wo_id.validate(out)  # every value inside its declared domain
    assert set(out["colour"]) <= {"red", "green", "blue", "grey"}
    assert set(out["size"]) <= {1, 2, 3} and out["size"].dtype == np.int64
    assert out["flag"].dtype == bool
    assert out["age"].dtype == np.int64 and out["age"].between(18, 90).all()
    assert out["score"].dtype == np.float64 and out["score"].dropna().between(0, 10).all()
    assert pd.api.types.is_datetime64_any_dtype(out["day"])
    assert out["day"].between(pd.Timestamp("2019-01-01"), pd.Timestamp("2021-01-01")).all()


def test_sample_is_reproducible_with_a_seed(fitted):
    synth, _, _ = fitted
    a, b = synth.sample(200, random_state=7), synth.sample(200, random_state=7)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(synth.sample(200, random_state=8))


def test_fit_is_reproducible_and_leaves_global_rngs_alone():
    df, schema = _table()
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    one = DPVAESynthesizer(epsilon=1.0, random_state=5, **FAST).fit(df, schema)
    two = DPVAESynthesizer(epsilon=1.0, random_state=5, **FAST).fit(df, schema)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np_state[1].tolist() == np.random.get_state()[1].tolist()  # noqa: NPY002
    for key, value in one.model_.state_dict().items():
        assert torch.equal(value, two.model_.state_dict()[key])
    other = DPVAESynthesizer(epsilon=1.0, random_state=6, **FAST).fit(df, schema)
    assert not torch.equal(one.model_.decoder[0].weight, other.model_.decoder[0].weight)


# -- privacy ----------------------------------------------------------------------------------
def test_dp_training_really_adds_noise():
    """The non-private reference fits the marginals clearly better than the eps=1 model."""
    df, schema = _table(seed=1)
    params = dict(epochs=30, batch_size=32, hidden_sizes=(64, 64), latent_dim=8,
                  learning_rate=5e-3)
    plain = DPVAESynthesizer(epsilon=math.inf, random_state=0, **params).fit(df, schema)
    private = DPVAESynthesizer(epsilon=1.0, random_state=0, **params).fit(df, schema)
    assert plain.privacy_ is None and plain.steps_run_ == private.steps_run_
    tvd_plain = _tvd(df, plain.sample(4000, random_state=1), schema)
    tvd_private = _tvd(df, private.sample(4000, random_state=1), schema)
    assert tvd_plain < 0.08
    assert tvd_private > tvd_plain + 0.05


def test_secure_mode_fits_and_refuses_a_seed():
    df, schema = _table()
    synth = DPVAESynthesizer(epsilon=1.0, secure_mode=True, **FAST).fit(df, schema)
    assert synth.privacy_.secure_mode  # the noise source is built in fit, not kept
    assert len(synth.sample(50)) == 50
    with pytest.raises(ParameterError, match="random_state"):
        DPVAESynthesizer(secure_mode=True, random_state=1, **FAST).fit(df, schema)


def test_secure_noise_comes_from_the_noise_source():

    noise_fn = _dpsgd.make_noise_fn(NoiseSource.create(None, True), torch.device("cpu"))
    draws = noise_fn(torch.zeros(20000), 2.0)
    assert draws.dtype == torch.float32 and draws.std().item() == pytest.approx(2.0, rel=0.05)
    with pytest.raises(PrivacyError):  # a secure source cannot hand out seeds
        NoiseSource.create(None, True).child_seed()


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_empty_poisson_batches_still_count_as_noisy_steps(mode):
    df, schema = _table(n=50)
    enc = TableEncoder().fit(schema)
    rows = torch.from_numpy(enc.transform(df))
    noise = NoiseSource.create(3, False)
    sampler = _dpsgd.PoissonBatches(50, 0.01, 12, noise)  # P(empty batch) ~ 0.6
    loader = _dpsgd.batch_loader(rows, sampler)
    model = _build_model(enc.n_features_, len(enc.numeric_spans), 2, (8,), seed=0)
    training = _dpsgd.make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.1), _VAELoss(enc), loader,
        noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=1,
        noise_fn=_dpsgd.make_noise_fn(noise, torch.device("cpu")), grad_sample_mode=mode)
    sizes: list[int] = []
    empty_updates: list[bool] = []

    def step(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(len(batch))
        training.optimizer.zero_grad()
        eps = torch.zeros(len(batch), 2)
        loss = training.criterion(training.module(batch, eps), batch)
        loss.backward()
        training.optimizer.step()
        return loss.detach()

    def empty_step() -> None:
        sizes.append(0)
        before = [p.detach().clone() for p in model.parameters()]
        training.optimizer.noise_only_step()
        empty_updates.append(all(not torch.equal(b, p) for b, p in
                                 zip(before, model.parameters(), strict=True)))

    log = _dpsgd.run_steps(loader, step=step, empty_step=empty_step, steps_per_epoch=100,
                           progress=False, description="test")
    assert log.steps_run == 12 == len(sizes)
    assert log.empty_batches == sizes.count(0) >= 1 and max(sizes) >= 1
    assert all(empty_updates)  # an empty batch is a step of pure noise, not a skipped step


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_clipped_gradient_matches_per_example_reference(mode):
    """Opacus' clipped sum (noise off) equals a loop over examples clipped one by one."""
    df, schema = _table(n=40)
    enc = TableEncoder().fit(schema)
    rows = torch.from_numpy(enc.transform(df.head(6)))
    eps = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    clip, expected_batch = 10.0, 4

    reference = _build_model(enc.n_features_, len(enc.numeric_spans), 3, (16,), seed=1)
    loss_fn = _VAELoss(enc)
    loss_fn.reduction = "none"
    total = [torch.zeros_like(p) for p in reference.parameters()]
    norms = []
    for i in range(len(rows)):
        reference.zero_grad()
        loss_fn(reference(rows[i:i + 1], eps[i:i + 1]), rows[i:i + 1]).sum().backward()
        grads = [p.grad.detach().clone() for p in reference.parameters()]
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        norms.append(norm.item())
        for t, g in zip(total, grads, strict=True):
            t += g * min(1.0, clip / (norm.item() + 1e-6))
    assert min(norms) < clip < max(norms)  # the check covers clipped and unclipped rows

    model = _build_model(enc.n_features_, len(enc.numeric_spans), 3, (16,), seed=1)
    sampler = _dpsgd.ShuffledBatches(6, 6, 1, NoiseSource.create(0, False))
    loader = _dpsgd.batch_loader(rows, sampler)
    training = _dpsgd.make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.0), _VAELoss(enc), loader,
        noise_multiplier=0.0, max_grad_norm=clip, expected_batch_size=expected_batch,
        noise_fn=lambda ref, std: torch.zeros_like(ref), grad_sample_mode=mode)
    training.optimizer.zero_grad()
    training.criterion(training.module(rows, eps), rows).backward()
    training.optimizer.step()
    for p, t in zip(model.parameters(), total, strict=True):
        torch.testing.assert_close(p.grad, t / expected_batch, rtol=1e-4, atol=1e-6)


# -- persistence ------------------------------------------------------------------------------
def test_save_load_reproduces_samples(fitted, tmp_path):
    synth, _, _ = fitted
    synth.save(tmp_path / "model")
    for loader in (DPVAESynthesizer.load, BaseSynthesizer.load):
        again = loader(tmp_path / "model")
        assert isinstance(again, DPVAESynthesizer)
        pd.testing.assert_frame_equal(again.sample(300, random_state=11),
                                      synth.sample(300, random_state=11))
        assert again.privacy_ == synth.privacy_ and again.steps_run_ == synth.steps_run_


def test_non_private_model_saves_and_loads(tmp_path):
    df, schema = _table()
    synth = DPVAESynthesizer(epsilon=math.inf, random_state=0, **FAST).fit(df, schema)
    again = DPVAESynthesizer.load(synth.save(tmp_path / "ref"))
    assert again.privacy_ is None
    pd.testing.assert_frame_equal(again.sample(50, random_state=1),
                                  synth.sample(50, random_state=1))


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("params, name", [  # the engine's: test_dpsgd_contract.py
    (dict(latent_dim=0), "latent_dim"),
    (dict(hidden_sizes=()), "hidden_sizes"),
    (dict(hidden_sizes=(32, -1)), "hidden_sizes"),
])
def test_bad_params_raise_parameter_error(params, name):
    df, schema = _table()
    with pytest.raises(ParameterError, match=repr(name)):
        DPVAESynthesizer(**{**FAST, **params}).fit(df, schema)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_sample_and_load_on_cuda(tmp_path):
    df, schema = _table()
    synth = DPVAESynthesizer(epsilon=1.0, random_state=0, device="cuda", **FAST).fit(df, schema)
    assert synth.device_.type == "cuda"
    out = synth.sample(100, random_state=2)
    Schema(tuple(schema.data_columns)).validate(out)
    again = DPVAESynthesizer.load(synth.save(tmp_path / "gpu"))
    pd.testing.assert_frame_equal(again.sample(100, random_state=2), out)
