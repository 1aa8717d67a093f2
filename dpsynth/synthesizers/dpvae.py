"""A tabular variational autoencoder trained with DP-SGD.

The model is a VAE (Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014) over
rows encoded by :class:`~dpsynth.data.encode.TableEncoder`, in the spirit of TVAE (Xu et al.,
"Modeling Tabular Data using Conditional GAN", NeurIPS 2019) but with the simple min-max
encoding of the declared domain (mode-specific normalisation would fit a mixture to private
data). The loss of a row is the sum of a cross-entropy per categorical span, a Gaussian
negative log-likelihood per numeric value (mean and scale predicted by the decoder) and the
KL divergence of the approximate posterior from the standard-normal prior.

Training is DP-SGD (Abadi et al., CCS 2016) with Poisson sampling, per-example clipping and
Gaussian noise calibrated with the PLD accountant before the data is read; see
:mod:`dpsynth.synthesizers._dpsgd` for where the noise comes from. All layers are
``nn.Linear``, so dpsynth's book-keeping clipping (:mod:`dpsynth.synthesizers._bookkeeping`;
Bu et al., ICML 2023) applies to every parameter and is the default; Opacus' ghost clipping
and per-sample hooks remain available. With ``distributed=True`` the same training runs
data-parallel over the processes of a ``torch.distributed`` job
(:mod:`dpsynth.synthesizers._distributed`). Sampling decodes draws from the prior; it is
post-processing and costs no privacy.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from dpsynth.accounting import Budget, Event, SubsampledGaussianEvent, calibrate_dpsgd_noise
from dpsynth.accounting.session import SpendRecorder
from dpsynth.data.encode import TableEncoder
from dpsynth.errors import (
    ModelFormatError,
    ParameterError,
    PrivacyError,
    param_error,
    raise_if_problems,
)
from dpsynth.schema import Schema
from dpsynth.synthesizers import _distributed, _dpsgd
from dpsynth.synthesizers.base import BaseSynthesizer, PlannedSpend, register

logger = logging.getLogger(__name__)

TRAIN_PURPOSE = "train:dpvae"
_SIGMA_MIN = 0.02  # smallest predicted std of a numeric value, on the [-1, 1] scale
_LOGVAR_MAX = 8.0
_SAMPLE_CHUNK = 65536


class _TabularVAE(nn.Module):
    """MLP encoder and decoder, Linear layers only.

    The decoder head has ``n_features + n_numeric`` outputs: scores in the encoder's layout
    (logits on categorical spans, the pre-tanh mean on numeric ones), then one raw scale per
    numeric value.
    """

    def __init__(self, n_features: int, n_numeric: int, latent_dim: int,
                 hidden: tuple[int, ...]):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = _mlp([n_features, *hidden, 2 * latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden), n_features + n_numeric])

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mu, raw = self.encoder(x).chunk(2, dim=1)
        logvar = _LOGVAR_MAX * torch.tanh(raw / _LOGVAR_MAX)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decoder(z), mu, logvar


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b, device="meta"))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _build_model(n_features: int, n_numeric: int, latent_dim: int, hidden: tuple[int, ...],
                 seed: int | None) -> _TabularVAE:
    """The model on CPU; weights drawn from a generator seeded with ``seed`` (no global RNG).

    Layers are created on the meta device so torch's default initialisation (which draws
    from the global generator) never runs; ``seed=None`` leaves them uninitialised for
    loading.
    """
    model = _TabularVAE(n_features, n_numeric, latent_dim, hidden).to_empty(device="cpu")
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in model.modules():
                if isinstance(layer, nn.Linear):  # PyTorch's default: U(±1/sqrt(fan_in))
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=gen)
                    layer.bias.uniform_(-bound, bound, generator=gen)
    return model


class _VAELoss(nn.Module):
    """Per-row negative ELBO; ``reduction`` is ``"none"``, ``"mean"`` or ``"sum"``."""

    def __init__(self, encoder: TableEncoder):
        super().__init__()
        self.reduction = "mean"
        self.n_features = encoder.n_features_
        self.cat_spans = [(s.start, s.stop) for s in encoder.categorical_spans]
        self.num_idx = encoder.numeric_columns.tolist()

    def forward(self, output: tuple[torch.Tensor, ...], x: torch.Tensor) -> torch.Tensor:
        head, mu, logvar = output
        per_row = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
        for start, stop in self.cat_spans:
            target = x[:, start:stop].argmax(dim=1)
            per_row = per_row + F.cross_entropy(head[:, start:stop], target, reduction="none")
        if self.num_idx:
            mean, sigma = _numeric_params(head, self.num_idx, self.n_features)
            z = (x[:, self.num_idx] - mean) / sigma
            per_row = per_row + (0.5 * z.pow(2) + torch.log(sigma)).sum(dim=1)
        if self.reduction == "none":
            return per_row
        return per_row.sum() if self.reduction == "sum" else per_row.mean()


def _numeric_params(head: torch.Tensor, num_idx: list[int],
                    n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tanh(head[:, num_idx])
    sigma = _SIGMA_MIN + (1.0 - _SIGMA_MIN) * torch.sigmoid(head[:, n_features:])
    return mean, sigma


@register
class DPVAESynthesizer(BaseSynthesizer):
    """Tabular VAE trained with DP-SGD (Opacus ghost clipping, PLD accounting).

    Parameters
    ----------
    epsilon, delta, random_state, secure_mode, discovery_fraction:
        See :class:`~dpsynth.synthesizers.base.BaseSynthesizer`. ``epsilon=inf`` trains the
        same model for the same number of steps without clipping or noise, on plain shuffled
        minibatches: a non-private reference only.
    epochs:
        Expected passes over the data; the number of steps is ``ceil(epochs / q)`` with
        sampling rate ``q = batch_size / n_rows``.
    batch_size:
        Expected (Poisson) batch size; at most the number of rows.
    max_grad_norm:
        Per-example gradient clipping norm ``C``; the noise std is ``sigma * C``.
    learning_rate:
        Adam learning rate.
    latent_dim:
        Size of the latent space.
    hidden_sizes:
        Widths of the encoder's hidden layers (the decoder mirrors them).
    device:
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    progress:
        Show a progress bar over the training steps (on stderr).
    grad_sample_mode:
        Per-example clipping: ``"auto"`` (default: ``"bookkeeping"``, which this model
        always allows), ``"bookkeeping"`` (dpsynth's book-keeping clipping: one backward,
        no per-example gradients, near plain-training cost), ``"ghost"`` (Opacus' ghost
        clipping) or ``"hooks"`` (Opacus' materialised per-example gradients; a reference,
        much slower on CPU). All clip the same per-example gradients.
    distributed:
        Train data-parallel over the processes of an initialised ``torch.distributed`` job
        (``torchrun``): every process calls ``fit`` with the same table, schema and
        parameters; each trains on its share of the rows, Poisson-sampled at the global
        rate, and the spend is the one-process spend. Needs book-keeping clipping, a finite
        epsilon and a fully declared schema. See ``docs/distributed.md``.

    Examples
    --------
    >>> synth = DPVAESynthesizer(epsilon=1.0, random_state=0).fit(df, schema)  # doctest: +SKIP
    >>> synth.sample(1000, random_state=1)                                     # doctest: +SKIP
    """

    name: ClassVar[str] = "dpvae"

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, epochs: float = 20, batch_size: int = 256,
                 max_grad_norm: float = 1.0, learning_rate: float = 2e-3, latent_dim: int = 16,
                 hidden_sizes: tuple[int, ...] = (128, 128), device: str = "auto",
                 progress: bool = False, grad_sample_mode: str = "auto",
                 distributed: bool = False):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction)
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self.learning_rate = learning_rate
        self.latent_dim = latent_dim
        self.hidden_sizes = hidden_sizes
        self.device = device
        self.progress = progress
        self.grad_sample_mode = grad_sample_mode
        self.distributed = distributed

    # -- parameters -----------------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        raise_if_problems(_param_problems(self), type(self).__name__)

    def _schedule(self, n_rows: int) -> tuple[float, int]:
        """Sampling rate and number of steps for ``n_rows`` rows (no data is read)."""
        if self.batch_size > n_rows:
            raise param_error("batch_size", f"at most the number of rows ({n_rows})",
                              self.batch_size, type(self).__name__)
        q = self.batch_size / n_rows
        return q, _dpsgd.steps_for(float(self.epochs), q)

    def _resolve_device(self, *, strict: bool = True) -> torch.device:
        if self.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            return _distributed.local_device(device) if self.distributed else device
        device = torch.device(self.device)
        if self.distributed:
            device = _distributed.local_device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            if strict:
                raise param_error("device", "'auto' or 'cpu' on this machine (no CUDA device "
                                  "is available)", self.device, type(self).__name__)
            logger.warning("device=%r is not available here; using the CPU", self.device)
            return torch.device("cpu")
        return device

    # -- fitting --------------------------------------------------------------------------
    def _plan_training(self, n_rows: int, budget: Budget,
                       prior_events: list[Event]) -> list[PlannedSpend]:
        if self.distributed and prior_events:
            raise PrivacyError("distributed=True needs every column's domain declared in the "
                               "schema: DP discovery would run apart on every process.")
        q, steps = self._schedule(n_rows)
        sigma = calibrate_dpsgd_noise(budget.epsilon, budget.delta, sample_rate=q,
                                      steps=steps, prior_events=prior_events)
        return [PlannedSpend(TRAIN_PURPOSE, SubsampledGaussianEvent(sigma, q, steps))]

    def _fit(self, data: pd.DataFrame, schema: Schema, recorder: SpendRecorder | None) -> None:
        q, steps = self._schedule(len(data))
        device = self._resolve_device()
        self.encoder_ = TableEncoder().fit(schema)
        rows = torch.from_numpy(self.encoder_.transform(data)).to(device)
        seed = _dpsgd.torch_seed(self.noise_)
        model = self._new_model(seed).to(device)
        gen = torch.Generator(device=device).manual_seed(seed + 1)
        self.world_size_ = 1
        if recorder is None:
            loader = _dpsgd.batch_loader(rows, _dpsgd.ShuffledBatches(
                len(rows), int(self.batch_size), steps, self.noise_))
            log = self._train_plain(model, loader, gen, q)
        else:
            log = self._fit_private(model, rows, recorder, seed)
        self.steps_run_ = log.steps_run
        self.empty_batches_ = log.empty_batches
        self.rows_seen_ = log.rows_seen
        self.loss_history_ = list(log.epoch_losses)
        self.device_ = device
        self.model_ = self._new_model(None).to(device)
        self.model_.load_state_dict(model.state_dict())
        self.model_.eval()

    def _fit_private(self, model: _TabularVAE, rows: torch.Tensor, recorder: SpendRecorder,
                     seed: int) -> _dpsgd.TrainingLog:
        """DP-SGD on ``rows`` (this process's shard of them when distributed)."""
        event = self._planned_event()
        rep = _distributed.replica(type(self).__name__) if self.distributed else None
        sampling = self.noise_
        if rep is not None:
            _distributed.check_same_everywhere(
                [len(rows), event.steps, event.sample_rate, event.noise_multiplier,
                 float(rows.sum())], ["n_rows", "steps", "sample_rate", "noise", "data"])
            rows = rows[torch.from_numpy(_distributed.shard(len(rows), rep)).to(rows.device)]
            sampling = _distributed.sampling_source(self.noise_, rep)
            seed += rep.rank  # the VAE's own latent draws differ between ranks
        gen = torch.Generator(device=rows.device).manual_seed(seed + 1)
        loader = _dpsgd.batch_loader(rows, _dpsgd.FastPoissonBatches(
            len(rows), event.sample_rate, event.steps, sampling))
        spend = (recorder.spend(TRAIN_PURPOSE, event) if rep is None or rep.leader
                 else contextlib.nullcontext())
        with spend:
            log = self._train_private(model, loader, gen, event, rep)
        if log.steps_run != event.steps:
            raise PrivacyError(f"internal error: ran {log.steps_run} DP-SGD steps, but "
                               f"{event.steps} were planned and accounted for.")
        self.world_size_ = 1 if rep is None else rep.world_size
        return log

    def _new_model(self, seed: int | None) -> _TabularVAE:
        return _build_model(self.encoder_.n_features_, len(self.encoder_.numeric_spans),
                            int(self.latent_dim), tuple(int(h) for h in self.hidden_sizes),
                            seed)

    def _planned_event(self) -> SubsampledGaussianEvent:
        for spend in self.budget_plan_:
            if spend.purpose == TRAIN_PURPOSE and isinstance(spend.event,
                                                             SubsampledGaussianEvent):
                return spend.event
        raise PrivacyError("internal error: no DP-SGD spend was planned before training.")

    def _train_plain(self, model: _TabularVAE, loader: Any, gen: torch.Generator,
                     q: float) -> _dpsgd.TrainingLog:
        criterion = _VAELoss(self.encoder_)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(self.learning_rate))
        model.train()

        def step(batch: torch.Tensor) -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            eps = torch.randn(len(batch), model.latent_dim, generator=gen, device=batch.device)
            loss = criterion(model(batch, eps), batch)
            loss.backward()
            optimizer.step()
            return loss.detach()

        return _dpsgd.run_steps(loader, step=step, empty_step=lambda: None,
                                steps_per_epoch=_dpsgd.steps_for(1.0, q),
                                progress=bool(self.progress), description="dpvae (non-private)")

    def _train_private(self, model: _TabularVAE, loader: Any, gen: torch.Generator,
                       event: SubsampledGaussianEvent,
                       rep: _distributed.Replica | None = None) -> _dpsgd.TrainingLog:
        device = next(model.parameters()).device
        optimizer = torch.optim.Adam(model.parameters(), lr=float(self.learning_rate))
        noise_fn = _dpsgd.make_noise_fn(self.noise_, device)
        if rep is not None:
            training = _distributed.make_private(
                model, optimizer, _VAELoss(self.encoder_),
                noise_multiplier=event.noise_multiplier, max_grad_norm=float(self.max_grad_norm),
                expected_batch_size=int(self.batch_size), noise_fn=noise_fn, rep=rep)
        else:
            training = _dpsgd.make_private(
                model, optimizer, _VAELoss(self.encoder_), loader,
                noise_multiplier=event.noise_multiplier, max_grad_norm=float(self.max_grad_norm),
                expected_batch_size=int(self.batch_size), noise_fn=noise_fn,
                grad_sample_mode=str(self.grad_sample_mode))
        self.grad_sample_mode_ = training.mode
        module, optimizer, criterion = training.module, training.optimizer, training.criterion

        def step(batch: torch.Tensor) -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            eps = torch.randn(len(batch), model.latent_dim, generator=gen, device=batch.device)
            loss = criterion(module(batch, eps), batch)
            loss.backward()
            optimizer.step()
            return loss.detach()

        try:
            return _dpsgd.run_steps(
                loader, step=step, empty_step=optimizer.noise_only_step,
                steps_per_epoch=_dpsgd.steps_for(1.0, event.sample_rate),
                progress=bool(self.progress),
                description=f"dpvae DP-SGD (σ={event.noise_multiplier:.3g})",
            )
        finally:
            module.to_standard_module()  # type: ignore[operator]  # removes Opacus' hooks

    # -- sampling -------------------------------------------------------------------------
    def _sample(self, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        n_features = self.encoder_.n_features_
        num_idx = self.encoder_.numeric_columns.tolist()
        parts = []
        for start in range(0, n_rows, _SAMPLE_CHUNK):
            m = min(_SAMPLE_CHUNK, n_rows - start)
            z = torch.randn(m, int(self.latent_dim), generator=gen)
            noise = torch.randn(m, len(num_idx), generator=gen)
            with torch.no_grad():
                head = self.model_.decoder(z.to(self.device_)).to("cpu", torch.float64)
            matrix = head[:, :n_features].clone()
            if num_idx:
                mean, sigma = _numeric_params(head, num_idx, n_features)
                matrix[:, num_idx] = mean + sigma * noise.to(torch.float64)
            parts.append(self.encoder_.inverse_transform(matrix.numpy(), sample=True, rng=rng))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    # -- persistence ----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"model.{k}": v.detach().to("cpu").numpy()
                  for k, v in self.model_.state_dict().items()}
        state = {
            "n_features": self.encoder_.n_features_,
            "n_numeric": len(self.encoder_.numeric_spans),
            "latent_dim": int(self.latent_dim),
            "hidden_sizes": [int(h) for h in self.hidden_sizes],
            "steps_run": self.steps_run_,
            "empty_batches": self.empty_batches_,
            "loss_history": self.loss_history_,
        }
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.encoder_ = TableEncoder().fit(self.schema_)
        expected = (self.encoder_.n_features_, len(self.encoder_.numeric_spans),
                    int(self.latent_dim), [int(h) for h in self.hidden_sizes])
        saved = (state.get("n_features"), state.get("n_numeric"), state.get("latent_dim"),
                 state.get("hidden_sizes"))
        if saved != expected:
            raise ModelFormatError(f"The saved model's architecture {saved} does not match "
                                   f"its schema and parameters {expected}.")
        weights = {k.removeprefix("model."): torch.from_numpy(v.copy())
                   for k, v in arrays.items() if k.startswith("model.")}
        model = self._new_model(None)
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise ModelFormatError(f"The saved weights do not fit the model: {exc}") from None
        self.device_ = self._resolve_device(strict=False)
        self.model_ = model.to(self.device_).eval()
        self.steps_run_ = int(state["steps_run"])
        self.empty_batches_ = int(state.get("empty_batches", 0))
        self.loss_history_ = [float(v) for v in state.get("loss_history", [])]


def _param_problems(synth: DPVAESynthesizer) -> list[ParameterError]:
    """Every invalid DPVAE-specific parameter (the base class checks the shared ones)."""
    owner = type(synth).__name__
    out: list[ParameterError] = []

    def number(value: Any, integer: bool = False) -> bool:
        kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
        return isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)

    for name, integer in (("epochs", False), ("batch_size", True), ("max_grad_norm", False),
                          ("learning_rate", False), ("latent_dim", True)):
        value = getattr(synth, name)
        if not number(value, integer) or value <= 0:
            kind = "an integer >= 1" if integer else "a finite float > 0"
            out.append(param_error(name, kind, value, owner))
    hidden = synth.hidden_sizes
    if not isinstance(hidden, (list, tuple)) or not hidden or not all(
            number(h, True) and h > 0 for h in hidden):
        out.append(param_error("hidden_sizes", "a non-empty sequence of integers >= 1", hidden,
                               owner))
    if synth.grad_sample_mode not in _dpsgd.GRAD_SAMPLE_MODES:
        out.append(param_error("grad_sample_mode", f"one of {_dpsgd.GRAD_SAMPLE_MODES}",
                               synth.grad_sample_mode, owner))
    for name in ("progress", "distributed"):
        if not isinstance(getattr(synth, name), bool):
            out.append(param_error(name, "a bool", getattr(synth, name), owner))
    if synth.distributed is True:
        if synth.grad_sample_mode not in ("auto", "bookkeeping"):
            out.append(param_error("grad_sample_mode", "'auto' or 'bookkeeping' when "
                                   "distributed=True", synth.grad_sample_mode, owner))
        if not synth.is_private:
            out.append(param_error("distributed", "False for the non-private reference "
                                   "(epsilon=inf)", True, owner))
        elif not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            out.append(param_error("distributed", "False unless torch.distributed is "
                                   "initialised in this process (see docs/distributed.md)",
                                   True, owner))
    out.extend(ParameterError(p) for p in _dpsgd.device_problems(synth.device, owner))
    return out


__all__ = ["DPVAESynthesizer"]
