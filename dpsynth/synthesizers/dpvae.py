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

import logging
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from dpsynth.accounting import NoiseSource, SpendRecorder
from dpsynth.data.encode import TableEncoder
from dpsynth.errors import ModelFormatError, param_error, raise_if_problems
from dpsynth.schema import Schema
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers._dpsgd_base import DPSGDSynthesizer, Objective, number
from dpsynth.synthesizers.base import register
from dpsynth.synthesizers.plan import DPSGDPlan, FitPlan

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
class DPVAESynthesizer(DPSGDSynthesizer):
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
    defaults_tuned_on: ClassVar[str] = "no declared tuning table (set by hand)"
    learning_rate: float  # never None here (no automatic choice)
    train_purpose: ClassVar[str] = TRAIN_PURPOSE

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, epochs: float = 20, batch_size: int = 256,
                 max_grad_norm: float = 1.0, learning_rate: float = 2e-3, latent_dim: int = 16,
                 hidden_sizes: tuple[int, ...] = (128, 128), device: str = "auto",
                 progress: bool = False, grad_sample_mode: str = "auto",
                 distributed: bool = False):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction,
                         epochs=epochs, batch_size=batch_size, max_grad_norm=max_grad_norm,
                         learning_rate=learning_rate, device=device, progress=progress,
                         grad_sample_mode=grad_sample_mode)
        self.latent_dim = latent_dim
        self.hidden_sizes = hidden_sizes
        self.distributed = distributed

    # -- parameters -----------------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        raise_if_problems(_param_problems(self), type(self).__name__)

    # -- fitting --------------------------------------------------------------------------
    def _fit(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
             recorder: SpendRecorder | None, noise: NoiseSource) -> None:
        device = self._resolve_device()
        self.encoder_ = TableEncoder().fit(schema)
        rows = torch.from_numpy(self.encoder_.transform(data)).to(device)
        seed = _dpsgd.torch_seed(noise)
        model = self._new_model(seed).to(device)
        dpsgd = plan.detail_as(DPSGDPlan) if plan is not None else None
        rows, sampling, rep = self._replicate(rows, dpsgd, noise)
        if rep is not None:
            seed += rep.rank  # the VAE's own latent draws differ between ranks
        log, mode = self._train(model, rows, self._objective(model, seed, device), plan=dpsgd,
                                recorder=recorder, noise=noise,
                                learning_rate=float(self.learning_rate), name="dpvae",
                                sampling=sampling, rep=rep)
        if mode != "none":
            self.grad_sample_mode_ = mode
        self._record_run(log, rep)
        self.device_ = device
        self.model_ = self._new_model(None).to(device)
        self.model_.load_state_dict(model.state_dict())
        self.model_.eval()

    def _objective(self, model: _TabularVAE, seed: int, device: torch.device) -> Objective:
        """The negative ELBO, with the reparametrisation noise from a seeded generator."""
        gen = torch.Generator(device=device).manual_seed(seed + 1)
        latent = model.latent_dim

        def loss(module: Any, criterion: Any, batch: torch.Tensor) -> torch.Tensor:
            eps = torch.randn(len(batch), latent, generator=gen, device=batch.device)
            return criterion(module(batch, eps), batch)

        return Objective(_VAELoss(self.encoder_), loss)

    def _new_model(self, seed: int | None) -> _TabularVAE:
        return _build_model(self.encoder_.n_features_, len(self.encoder_.numeric_spans),
                            int(self.latent_dim), tuple(int(h) for h in self.hidden_sizes),
                            seed)

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
        state = {
            "n_features": self.encoder_.n_features_,
            "n_numeric": len(self.encoder_.numeric_spans),
            "latent_dim": int(self.latent_dim),
            "hidden_sizes": [int(h) for h in self.hidden_sizes],
            **self._run_state(),
        }
        return state, self._weight_arrays(self.model_)

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.encoder_ = TableEncoder().fit(self.schema_)
        expected = (self.encoder_.n_features_, len(self.encoder_.numeric_spans),
                    int(self.latent_dim), [int(h) for h in self.hidden_sizes])
        saved = (state.get("n_features"), state.get("n_numeric"), state.get("latent_dim"),
                 state.get("hidden_sizes"))
        if saved != expected:
            raise ModelFormatError(f"The saved model's architecture {saved} does not match "
                                   f"its schema and parameters {expected}.")
        self.model_ = self._load_weights(self._new_model(None), arrays)
        self._restore_run(state)


def _param_problems(synth: DPVAESynthesizer) -> list[str]:
    """Every invalid DPVAE parameter (the base classes check the shared ones)."""
    owner = type(synth).__name__
    out = synth._dpsgd_problems()
    if not number(synth.latent_dim, True) or synth.latent_dim <= 0:
        out.append(str(param_error("latent_dim", "an integer >= 1", synth.latent_dim, owner)))
    hidden = synth.hidden_sizes
    if not isinstance(hidden, (list, tuple)) or not hidden or not all(
            number(h, True) and h > 0 for h in hidden):
        out.append(str(param_error("hidden_sizes", "a non-empty sequence of integers >= 1",
                                   hidden, owner)))
    return out


__all__ = ["DPVAESynthesizer"]
