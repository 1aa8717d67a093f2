"""Book-keeping clipping: clipped sums against Opacus' per-sample reference and a microbatch loop.

Every check runs in float64 with the noise off: the clipped sum from book-keeping must equal
Opacus' ``hooks`` mode (per-sample gradients materialised) and a loop over examples, each
back-propagated and clipped alone, to well within 1e-6.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dpsynth.accounting import NoiseSource
from dpsynth.data.encode import TableEncoder
from dpsynth.errors import ParameterError, PrivacyError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import _bookkeeping, _dpsgd
from dpsynth.synthesizers._bookkeeping import _norms
from dpsynth.synthesizers.dpvae import _build_model, _VAELoss

ATOL = 1e-9  # float64 agreement (the requirement is 1e-6)
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")



def _zero_noise(reference: torch.Tensor, std: float) -> torch.Tensor:
    return torch.zeros_like(reference)


def _clipped_sum(model: nn.Module, loss: Any, inputs: tuple, target: tuple, clip: float,
                 mode: str, **kwargs: Any) -> list[torch.Tensor]:
    """``sum_i c_i g_i`` through dpsynth's DP-SGD wrappers in ``mode`` (noise off, lr 0)."""
    n = len(target[0])
    loader = _dpsgd.batch_loader(torch.zeros(n, 1), _dpsgd.ShuffledBatches(
        n, n, 1, NoiseSource.create(0, False)))
    if mode == "bookkeeping":
        training = _dpsgd.make_private_bookkeeping(
            model, torch.optim.SGD(model.parameters(), lr=0.0), loss, noise_multiplier=0.0,
            max_grad_norm=clip, expected_batch_size=1, noise_fn=_zero_noise, **kwargs)
    else:
        training = _dpsgd.make_private(
            model, torch.optim.SGD(model.parameters(), lr=0.0), loss, loader,
            noise_multiplier=0.0, max_grad_norm=clip, expected_batch_size=1,
            noise_fn=_zero_noise, grad_sample_mode=mode)
    training.optimizer.zero_grad()
    training.criterion(training.module(*inputs), *target).backward()
    training.optimizer.step()
    out = [p.grad.detach().clone() for p in model.parameters()]
    training.module.to_standard_module()
    return out


def _microbatch(model: nn.Module, loss: Any, inputs: tuple, target: tuple,
                clip: float) -> tuple[list[torch.Tensor], list[float]]:
    """The obviously correct reference: one backward per example, clipped one by one."""
    loss.reduction = "none"
    total = [torch.zeros_like(p) for p in model.parameters()]
    norms = []
    for i in range(len(target[0])):
        model.zero_grad()
        one = tuple(x[i:i + 1] for x in inputs)
        loss(model(*one), *(t[i:i + 1] for t in target)).sum().backward()
        grads = [p.grad.detach().clone() for p in model.parameters()]
        norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads))
        norms.append(norm)
        for t, g in zip(total, grads, strict=True):
            t += g * min(1.0, clip / (norm + 1e-6))
    loss.reduction = "mean"
    model.zero_grad()
    return total, norms


def _assert_same(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=ATOL)


# -- models ---------------------------------------------------------------------------------
def _vae(seed: int = 1) -> tuple[nn.Module, _VAELoss, tuple, tuple]:
    schema = Schema((Column("c", "categorical", categories=("a", "b", "c")),
                     Column("x", "numeric", lower=0.0, upper=1.0),
                     Column("k", "integer", lower=0, upper=9)))
    enc = TableEncoder().fit(schema)
    rng = np.random.default_rng(0)
    import pandas as pd

    df = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 12), "x": rng.random(12),
                       "k": rng.integers(0, 10, 12)})
    rows = torch.from_numpy(enc.transform(df)).double()
    eps = torch.randn(12, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = _build_model(enc.n_features_, len(enc.numeric_spans), 3, (16, 8), seed).double()
    return model, _VAELoss(enc), (rows, eps), (rows,)


class _TokenModel(nn.Module):
    """Embeddings, LayerNorm and Linear layers on (B, T, d) sequences."""

    def __init__(self, vocab: int = 11, d: int = 6, t: int = 12, padding_idx: int | None = None):
        super().__init__()
        self.tok = nn.Embedding(vocab, d, padding_idx=padding_idx)
        self.pos = nn.Embedding(t, d)
        self.ln = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 8)
        self.out = nn.Linear(8, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, t = ids.shape
        pos = torch.arange(t).expand(b, t).contiguous()
        return self.out(torch.tanh(self.fc(self.ln(self.tok(ids) + self.pos(pos)))))


class _TokenLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                              reduction="none").view(target.shape).mean(1)
        return nll if self.reduction == "none" else nll.mean()


def _tokens(t: int, padding_idx: int | None = None) -> tuple[nn.Module, Any, tuple, tuple]:
    gen = torch.Generator().manual_seed(t)
    ids = torch.randint(0, 11, (6, t), generator=gen)
    ids[0, -3:] = 0  # some padding when padding_idx == 0
    target = torch.randint(0, 11, (6, t), generator=gen)
    model = _TokenModel(t=t, padding_idx=padding_idx).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model, _TokenLoss(), (ids,), (target,)


def _fresh(factory: Any, *args: Any) -> tuple:
    return factory(*args)


# -- agreement with Opacus and with the microbatch loop ---------------------------------------
@pytest.mark.parametrize("recompute, recomputed", [("none", 0), ("cheap", 2), ("all", 4)])
def test_vae_clipped_sum_matches_opacus_hooks_and_microbatch(recompute, recomputed,
                                                             monkeypatch):
    calls = []
    original = _norms._recompute
    monkeypatch.setattr(_norms, "_recompute",
                        lambda *args: calls.append(1) or original(*args))
    model, loss, inputs, target = _vae()
    reference, norms = _microbatch(model, loss, inputs, target, clip=1.0)
    clip = float(np.median(norms))
    reference, norms = _microbatch(model, loss, inputs, target, clip=clip)
    assert min(norms) < clip < max(norms)  # clipped and unclipped rows both present
    ours = _clipped_sum(model, loss, inputs, target, clip, "bookkeeping", recompute=recompute)
    assert len(calls) == recomputed  # the recomputing path really ran
    _assert_same(ours, reference)
    model2, loss2, inputs2, target2 = _vae()
    _assert_same(ours, _clipped_sum(model2, loss2, inputs2, target2, clip, "hooks"))


@pytest.mark.parametrize("length", [3, 12])  # ghost norms, per-example gradients kept
def test_sequence_model_matches_opacus_hooks_and_microbatch(length):
    model, loss, inputs, target = _tokens(length)
    _, norms = _microbatch(model, loss, inputs, target, clip=1.0)
    clip = float(np.median(norms))
    reference, _ = _microbatch(model, loss, inputs, target, clip)
    ours = _clipped_sum(model, loss, inputs, target, clip, "bookkeeping")
    _assert_same(ours, reference)
    _assert_same(ours, _clipped_sum(*_tokens(length), clip, "hooks"))


class _SeqLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per = (out - target).pow(2).flatten(1).mean(1)
        return per if self.reduction == "none" else per.mean()


@pytest.mark.parametrize("length", [1, 2, 9])
def test_chain_on_sequences_is_clipped_without_recomputation(length):
    """A Linear -> ReLU -> Linear chain fed (B, T, d) inputs: sequence rules, no recompute."""
    gen = torch.Generator().manual_seed(length)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    x = torch.randn(7, length, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(7, length, 3, generator=gen, dtype=torch.float64)
    loss = _SeqLoss()
    _, norms = _microbatch(model, loss, (x,), (y,), clip=1.0)
    clip = float(np.median(norms))
    reference, _ = _microbatch(model, loss, (x,), (y,), clip)
    _assert_same(_clipped_sum(model, loss, (x,), (y,), clip, "bookkeeping", recompute="all"),
                 reference)


def test_padding_row_gets_no_gradient_like_pytorch():
    """With ``padding_idx`` the per-example gradient of the padding row is zero (PyTorch's rule).

    Opacus 1.6's per-sample embedding gradient ignores ``padding_idx``, so here the reference
    is the microbatch loop alone.
    """
    model, loss, inputs, target = _tokens(5, padding_idx=0)
    _, norms = _microbatch(model, loss, inputs, target, clip=1.0)
    clip = float(np.median(norms))
    reference, _ = _microbatch(model, loss, inputs, target, clip)
    ours = _clipped_sum(model, loss, inputs, target, clip, "bookkeeping")
    _assert_same(ours, reference)
    assert torch.equal(ours[0][0], torch.zeros_like(ours[0][0]))


def test_text_transformer_matches_opacus_hooks():
    text = pytest.importorskip("dpsynth.synthesizers.text.model")
    cfg = text.TransformerConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_positions=16)

    def parts() -> tuple:
        gen = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, cfg.vocab_size, (5, 11), generator=gen)
        target = torch.stack([tokens[:, 1:], torch.ones_like(tokens[:, 1:])], 1).contiguous()
        return (text.build_model(cfg, seed=0).double(), text.RecordNLL(),
                (tokens[:, :-1].contiguous(),), (target,))

    model, loss, inputs, target = parts()
    _, norms = _microbatch(model, loss, inputs, target, clip=1.0)
    clip = float(np.median(norms))
    reference, _ = _microbatch(model, loss, inputs, target, clip)
    ours = _clipped_sum(model, loss, inputs, target, clip, "bookkeeping")
    _assert_same(ours, reference)
    _assert_same(ours, _clipped_sum(*parts(), clip, "hooks"))


def test_norms_returned_are_the_per_example_gradient_norms():
    model, loss, inputs, target = _vae()
    _, norms = _microbatch(model, loss, inputs, target, clip=1.0)
    clipper = _bookkeeping.BookkeepingClipper(model, 1.0)
    wrapped = _bookkeeping.BookkeepingModule(model, clipper)
    value = _bookkeeping.BookkeepingCriterion(loss, clipper)(wrapped(*inputs), *target)
    value.backward()
    assert value.norms is not None
    np.testing.assert_allclose(value.norms.numpy(), norms, rtol=1e-12)
    wrapped.to_standard_module()


def test_bfloat16_autocast_keeps_every_contribution_within_the_clip_norm():
    """Under autocast the norms come from the bfloat16 tensors that are summed: bound holds."""
    model, loss, inputs, target = _vae()
    model.float()
    rows, eps = (x.float() for x in inputs)
    clip = 0.05  # every example is clipped
    clipper = _bookkeeping.BookkeepingClipper(model, clip)
    wrapped = _bookkeeping.BookkeepingModule(model, clipper)
    criterion = _bookkeeping.BookkeepingCriterion(loss, clipper)
    for i in range(len(rows)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = wrapped(rows[i:i + 1], eps[i:i + 1])
        criterion(tuple(o.float() for o in out), rows[i:i + 1]).backward()
        assert float(clipper.summed.norm()) <= clip * (1 + 1e-5)
        assert float(clipper.summed.norm()) > clip * 0.99
    wrapped.to_standard_module()


# -- the optimizer ----------------------------------------------------------------------------
def test_noise_is_added_once_and_scaled_by_the_expected_batch():
    model, loss, inputs, target = _vae()
    reference, _ = _microbatch(model, loss, inputs, target, clip=0.5)
    training = _dpsgd.make_private_bookkeeping(
        model, torch.optim.SGD(model.parameters(), lr=0.0), loss, noise_multiplier=2.0,
        max_grad_norm=0.5, expected_batch_size=4,
        noise_fn=lambda ref, std: torch.full_like(ref, std))  # "noise" = its std, visible
    training.criterion(training.module(*inputs), *target).backward()
    training.optimizer.step()
    for p, r in zip(model.parameters(), reference, strict=True):
        torch.testing.assert_close(p.grad, (r + 1.0) / 4, rtol=0, atol=ATOL)
    training.optimizer.noise_only_step()  # an empty Poisson batch: noise only
    for p in model.parameters():
        torch.testing.assert_close(p.grad, torch.full_like(p, 0.25), rtol=0, atol=ATOL)
    with pytest.raises(PrivacyError, match="without a clipped backward"):
        training.optimizer.step()


def test_to_standard_module_restores_plain_autograd():
    model, loss, inputs, target = _vae()
    before = model(*inputs)[0].detach().clone()
    training = _dpsgd.make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), loss,
                                   None, noise_multiplier=1.0, max_grad_norm=1.0,
                                   expected_batch_size=4, noise_fn=_zero_noise,
                                   grad_sample_mode="auto")
    assert training.mode == "bookkeeping"
    torch.testing.assert_close(training.module(*inputs)[0], before)
    assert training.module.to_standard_module() is model
    loss(model(*inputs), *target).backward()
    assert all(p.grad is not None for p in model.parameters())  # autograd's own grads again


# -- what book-keeping refuses ----------------------------------------------------------------
def test_unsupported_layers_are_listed_and_auto_falls_back_to_ghost():
    model = nn.Sequential(nn.Linear(4, 4), nn.Conv1d(1, 1, 3))
    with pytest.raises(ParameterError, match=r"1 \(Conv1d\)"):
        _bookkeeping.BookkeepingClipper(model, 1.0)
    assert not _bookkeeping.supports(model)
    assert _dpsgd.resolve_grad_sample_mode(model, "auto") == "ghost"
    assert _dpsgd.resolve_grad_sample_mode(nn.Linear(2, 2), "auto") == "bookkeeping"
    with pytest.raises(ParameterError, match="grad_sample_mode"):
        _dpsgd.resolve_grad_sample_mode(model, "functorch")


def test_shared_parameters_are_refused():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    with pytest.raises(ParameterError, match="shared"):
        _bookkeeping.BookkeepingClipper(nn.Sequential(a, b), 1.0)


class _Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.lin(x))


class _Flattened(nn.Module):
    """Tokens folded into the batch before a Linear: per-token, not per-example, norms."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.reshape(-1, 3)).reshape(len(x), -1)


class _Bypass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + x @ self.lin.weight.t()  # weight used outside the layer


@pytest.mark.parametrize("model, shape, error, match", [
    (_Twice(), (4, 3), ParameterError, "ran 2 times"),
    (_Flattened(), (4, 2, 3), ParameterError, "batch must come first"),
    (_Bypass(), (4, 3), PrivacyError, "outside their layer's forward"),
])
def test_misuse_is_an_error_not_a_wrong_clip(model, shape, error, match):
    clipper = _bookkeeping.BookkeepingClipper(model, 1.0)
    wrapped = _bookkeeping.BookkeepingModule(model, clipper)
    out = wrapped(torch.randn(shape, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(error, match=match):
        clipper.backward(out.pow(2).reshape(shape[0], -1).sum(1))
    wrapped.to_standard_module()


def test_recomputed_gradient_that_does_not_match_is_a_privacy_error():
    """The safety net of recomputation: a gradient that is not what the backward saw is caught."""
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    clipper = _bookkeeping.BookkeepingClipper(model, 1.0, recompute="all")
    wrapped = _bookkeeping.BookkeepingModule(model, clipper)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    for tamper, fails in ((1.0, False), (3.0, True)):
        wrapped(x).pow(2).sum().backward()
        assert clipper.taps[0].calls[0].grad is None  # recorded for recomputation
        with torch.no_grad():
            model[2].weight.mul_(tamper)  # the next layer changed after the backward
        if fails:
            with pytest.raises(PrivacyError, match="recomputed output gradient"):
                clipper.clip(8)
        else:
            clipper.clip(8)
    wrapped.to_standard_module()


def test_recompute_policy_links_only_cheap_pairs():
    model = nn.Sequential(nn.Linear(25, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                          nn.Linear(128, 32))
    cheap = _bookkeeping.BookkeepingClipper(model, 1.0)
    assert [t.next is not None for t in cheap.taps] == [False, True, False]
    every = _bookkeeping.BookkeepingClipper(model, 1.0, recompute="all")
    assert [t.next is not None for t in every.taps] == [True, True, False]
    none = _bookkeeping.BookkeepingClipper(model, 1.0, recompute="none")
    assert all(t.next is None for t in none.taps)
    with pytest.raises(ParameterError, match="recompute"):
        _bookkeeping.BookkeepingClipper(model, 1.0, recompute="yes")


# -- Poisson batches --------------------------------------------------------------------------
def test_fast_poisson_batches_have_the_poisson_distribution():
    n, q, steps = 200, 0.05, 3000
    sampler = _dpsgd.FastPoissonBatches(n, q, steps, NoiseSource.create(0, False),
                                        chunk_steps=37)
    counts = np.zeros(n)
    sizes = []
    for batch in sampler:
        assert batch.dtype == np.int64 and np.all(np.diff(batch) > 0)
        assert batch.min(initial=0) >= 0 and batch.max(initial=0) < n
        counts[batch] += 1
        sizes.append(len(batch))
    assert len(sizes) == len(sampler) == steps
    # each row joins each batch with probability q: counts ~ Binomial(steps, q)
    sd = math.sqrt(steps * q * (1 - q))
    assert np.abs(counts - steps * q).max() < 5 * sd
    chi2 = float(((counts - steps * q) ** 2 / (steps * q * (1 - q))).sum())
    assert abs(chi2 - n) < 5 * math.sqrt(2 * n)
    # batch sizes ~ Binomial(n, q): a fixed-size sampler would fail the variance check
    assert np.mean(sizes) == pytest.approx(n * q, rel=0.03)
    assert np.var(sizes) == pytest.approx(n * q * (1 - q), rel=0.15)


def test_fast_poisson_batches_edge_cases():
    noise = NoiseSource.create(1, False)
    assert [b.tolist() for b in _dpsgd.FastPoissonBatches(4, 1.0, 2, noise)] == [[0, 1, 2, 3]] * 2
    first = [b.tolist() for b in _dpsgd.FastPoissonBatches(50, 0.1, 7, NoiseSource.create(3, 0))]
    again = [b.tolist() for b in _dpsgd.FastPoissonBatches(50, 0.1, 7, NoiseSource.create(3, 0))]
    assert first == again  # seeded: reproducible
    secure = list(_dpsgd.FastPoissonBatches(1000, 0.01, 5, NoiseSource.create(None, True)))
    assert len(secure) == 5 and all(len(b) < 100 for b in secure)
    assert _dpsgd.bernoulli_positions(0, 0.5, noise).size == 0


# -- the dpvae default ------------------------------------------------------------------------
def _small_table() -> tuple[Any, Schema]:
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"c": rng.choice(["a", "b"], 120), "x": rng.random(120)})
    return df, Schema((Column("c", "categorical", categories=("a", "b")),
                       Column("x", "numeric", lower=0.0, upper=1.0)))


@pytest.mark.parametrize("mode, used", [("auto", "bookkeeping"), ("ghost", "ghost")])
def test_dpvae_trains_with_bookkeeping_by_default(mode, used):
    from dpsynth.synthesizers.dpvae import DPVAESynthesizer

    df, schema = _small_table()
    synth = DPVAESynthesizer(epsilon=2.0, random_state=0, epochs=2, batch_size=30,
                             hidden_sizes=(8,), latent_dim=2, grad_sample_mode=mode)
    synth.fit(df, schema)
    assert synth.grad_sample_mode_ == used and synth.steps_run_ == 8
    assert 0 < synth.rows_seen_ < 2 * 8 * 30 and synth.world_size_ == 1


@pytest.mark.parametrize("params, name", [
    (dict(distributed="yes"), "distributed"),
    (dict(distributed=True, grad_sample_mode="ghost"), "grad_sample_mode"),
    (dict(distributed=True, epsilon=math.inf), "distributed"),
    (dict(distributed=True), "distributed"),  # no process group in this process
])
def test_dpvae_distributed_parameters_are_checked(params, name):
    from dpsynth.synthesizers.dpvae import DPVAESynthesizer

    df, schema = _small_table()
    with pytest.raises(ParameterError, match=repr(name)):
        DPVAESynthesizer(**{"epochs": 1, "batch_size": 30, **params}).fit(df, schema)
