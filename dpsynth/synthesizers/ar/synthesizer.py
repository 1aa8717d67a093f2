"""``dpar``: an autoregressive transformer over column tokens, trained with DP-SGD.

The one class here ties the parts to :class:`~dpsynth.synthesizers.base.BaseSynthesizer`:
:mod:`~dpsynth.synthesizers.ar.tokens` turns rows into column tokens over the declared domain,
:mod:`~dpsynth.synthesizers.ar.model` is the network (DP-TBART, Castellon et al. 2023),
:mod:`~dpsynth.synthesizers.ar.train` the plain and DP-SGD loops and
:mod:`~dpsynth.synthesizers.ar.sampling` the ancestral and conditional draws. The noise is
calibrated with the PLD accountant before any row is read, for Poisson sampling at rate
``q = batch_size / n`` over ``ceil(epochs / q)`` steps; the spend is recorded before
training starts. Sampling is post-processing and costs no privacy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from dpsynth._util.device import device_problems, resolve_device
from dpsynth.accounting import Budget, Event, NoiseSource, calibrate_dpsgd_noise
from dpsynth.accounting.session import SpendRecorder
from dpsynth.errors import (
    ModelFormatError,
    NotFittedError,
    ParameterError,
    PrivacyError,
    param_error,
    raise_if_problems,
)
from dpsynth.schema import BOUNDED_KINDS, Schema
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers._dpsgd_base import number
from dpsynth.synthesizers.ar import sampling
from dpsynth.synthesizers.ar.model import ARConfig, ARTransformer, build_model
from dpsynth.synthesizers.ar.tokens import TableTokenizer
from dpsynth.synthesizers.ar.train import DPSGDSettings, train_plain, train_private
from dpsynth.synthesizers.base import BaseSynthesizer, register
from dpsynth.synthesizers.plan import DPSGDPlan, FitPlan

logger = logging.getLogger(__name__)

TRAIN_PURPOSE = "train:dpar"
_INT_PARAMS = ("batch_size", "n_bins", "d_model", "n_layers", "n_heads")
_DEFAULT_BATCH = 512
_FLOAT_PARAMS = ("epochs", "max_grad_norm", "learning_rate")


@register
class DPARSynthesizer(BaseSynthesizer):
    """Autoregressive transformer over column tokens, trained with DP-SGD (DP-TBART).

    Parameters
    ----------
    epsilon, delta, random_state, secure_mode, discovery_fraction:
        See :class:`~dpsynth.synthesizers.base.BaseSynthesizer`. ``epsilon=inf`` trains the
        same model for the same steps on shuffled batches without clipping or noise: a
        non-private reference only.
    epochs:
        Expected passes over the data; steps = ``ceil(epochs / q)``, ``q = batch_size / n``.
    batch_size:
        Expected (Poisson) batch size; at most the number of rows. ``None`` (default):
        ``min(512, n // 4)`` for ``n`` rows (the row count is treated as public).
    max_grad_norm:
        Per-row gradient clipping norm ``C``; the noise std is ``sigma * C``.
    learning_rate:
        Adam learning rate.
    n_bins:
        Equal-width bins on the declared bounds of a numeric, datetime or wide integer
        column (an integer column with at most ``n_bins`` values gets one token per value).
    d_model, n_layers, n_heads:
        Width, depth and attention heads of the transformer (``d_model`` divisible by
        ``n_heads``).
    device:
        ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        On CUDA the forward pass runs under bfloat16 autocast.
    progress:
        Show a progress bar over the training steps (on stderr).
    grad_sample_mode:
        ``"auto"`` / ``"bookkeeping"`` (default: book-keeping clipping, near plain cost),
        ``"ghost"`` or ``"hooks"`` (Opacus); all clip the same per-row gradients.

    Examples
    --------
    >>> synth = DPARSynthesizer(epsilon=1.0, random_state=0).fit(df, schema)  # doctest: +SKIP
    >>> synth.sample(1000, random_state=1)                                    # doctest: +SKIP
    >>> synth.sample_conditional({"sex": "Female"}, 100)                      # doctest: +SKIP
    """

    name: ClassVar[str] = "dpar"

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, epochs: float = 20,
                 batch_size: int | None = None,
                 max_grad_norm: float = 1.0, learning_rate: float = 1e-2, n_bins: int = 64,
                 d_model: int = 32, n_layers: int = 1, n_heads: int = 4, device: str = "auto",
                 progress: bool = False, grad_sample_mode: str = "auto"):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction)
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self.learning_rate = learning_rate
        self.n_bins = n_bins
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.device = device
        self.progress = progress
        self.grad_sample_mode = grad_sample_mode

    # -- parameters -----------------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        raise_if_problems(_param_problems(self), type(self).__name__)

    def _batch_size(self, n_rows: int) -> int:
        """The expected batch size for ``n_rows`` rows (no data is read)."""
        if self.batch_size is None:
            return max(1, min(_DEFAULT_BATCH, n_rows // 4))
        if self.batch_size > n_rows:
            raise param_error("batch_size", f"at most the number of rows ({n_rows})",
                              self.batch_size, type(self).__name__)
        return int(self.batch_size)

    def _schedule(self, n_rows: int) -> tuple[float, int]:
        """Sampling rate and number of steps for ``n_rows`` rows (no data is read)."""
        q = self._batch_size(n_rows) / n_rows
        return q, _dpsgd.steps_for(float(self.epochs), q)

    def _config(self) -> ARConfig:
        return ARConfig(self.tokenizer_.vocab_sizes, int(self.d_model), int(self.n_layers),
                        int(self.n_heads))

    # -- fitting --------------------------------------------------------------------------
    def _plan_training(self, schema: Schema, n_rows: int, budget: Budget,
                       prior_events: tuple[Event, ...]) -> DPSGDPlan:
        q, steps = self._schedule(n_rows)
        sigma = calibrate_dpsgd_noise(budget.epsilon, budget.delta, sample_rate=q,
                                      steps=steps, prior_events=list(prior_events))
        return DPSGDPlan(TRAIN_PURPOSE, q, steps, sigma)

    def _fit(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
             recorder: SpendRecorder | None, noise: NoiseSource) -> None:
        q, steps = self._schedule(len(data))
        device = resolve_device(self.device, type(self).__name__)
        self.tokenizer_ = TableTokenizer(int(self.n_bins)).fit(schema)
        rows = torch.from_numpy(self.tokenizer_.transform(data)).to(device)
        model = build_model(self._config(), _dpsgd.torch_seed(noise)).to(device)
        lr, progress = float(self.learning_rate), bool(self.progress)
        if plan is None or recorder is None:
            loader = _dpsgd.batch_loader(rows, _dpsgd.ShuffledBatches(
                len(rows), self._batch_size(len(rows)), steps, noise))
            log = train_plain(model, loader, learning_rate=lr,
                              steps_per_epoch=_dpsgd.steps_for(1.0, q), progress=progress)
            self.grad_sample_mode_ = "none"
        else:
            event = plan.detail_as(DPSGDPlan).event
            settings = DPSGDSettings(event.noise_multiplier, event.sample_rate, event.steps,
                                     float(self.max_grad_norm), self._batch_size(len(rows)),
                                     str(self.grad_sample_mode))
            loader = _dpsgd.batch_loader(rows, _dpsgd.FastPoissonBatches(
                len(rows), event.sample_rate, event.steps, noise))
            with recorder.spend(TRAIN_PURPOSE, event):
                log, self.grad_sample_mode_ = train_private(
                    model, loader, settings, learning_rate=lr,
                    noise_fn=_dpsgd.make_noise_fn(noise, device), progress=progress)
            if log.steps_run != event.steps:
                raise PrivacyError(f"internal error: ran {log.steps_run} DP-SGD steps, but "
                                   f"{event.steps} were planned and accounted for.")
        self.steps_run_ = log.steps_run
        self.empty_batches_ = log.empty_batches
        self.loss_history_ = list(log.epoch_losses)
        self.device_ = device
        self.model_ = model.eval()

    # -- sampling -------------------------------------------------------------------------
    def _generator(self, rng: np.random.Generator) -> torch.Generator:
        return torch.Generator(device=self.device_).manual_seed(int(rng.integers(0, 2**62)))

    def _sample(self, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        fixed = np.full((n_rows, len(self.tokenizer_.codecs_)), sampling.FREE, np.int64)
        tokens, _ = sampling.draw_tokens(self.model_, fixed, self._generator(rng))
        return self.tokenizer_.inverse_transform(tokens, rng)

    def sample_conditional(self, conditions: pd.DataFrame | Mapping[str, Any],
                           n_rows: int | None = None, *, random_state: int | None = None,
                           candidates: int = 32) -> pd.DataFrame:
        """Rows drawn given the values of some columns (post-processing: no privacy cost).

        Parameters
        ----------
        conditions:
            A table with one row per wanted row and the given columns, or a mapping
            ``{column: value}`` applied to all ``n_rows`` rows.
        n_rows:
            Number of rows for a mapping; for a table ``None`` or its length.
        random_state:
            Seed of the draws.
        candidates:
            Clamped draws per row among which one is kept by importance resampling (see
            :mod:`~dpsynth.synthesizers.ar.sampling`); more is closer to the exact
            conditional when the given columns come late in the schema's order.
        """
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        given = _conditions_frame(conditions, n_rows, self.tokenizer_.names,
                                  type(self).__name__)
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise param_error("candidates", "an integer >= 1", candidates, type(self).__name__)
        rng = np.random.default_rng(random_state)
        fixed = np.full((len(given), len(self.tokenizer_.codecs_)), sampling.FREE, np.int64)
        for name in given.columns:
            fixed[:, self.tokenizer_.names.index(name)] = self.tokenizer_.value_tokens(
                name, given[name])
        tokens = sampling.sample_conditional(self.model_, fixed, self._generator(rng), rng,
                                             candidates)
        out = self.tokenizer_.inverse_transform(tokens, rng)
        for name in given.columns:  # bounded columns keep the given value, not a bin draw
            if self.schema_[name].kind in BOUNDED_KINDS:
                out[name] = given[name].to_numpy()
        return out[[c.name for c in self.schema_.data_columns]]

    # -- persistence ----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"model.{k}": v.detach().to("cpu").float().numpy()
                  for k, v in self.model_.state_dict().items()}
        state = {
            "vocab_sizes": list(self.tokenizer_.vocab_sizes),
            "steps_run": self.steps_run_,
            "empty_batches": self.empty_batches_,
            "loss_history": self.loss_history_,
            "grad_sample_mode": self.grad_sample_mode_,
        }
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.tokenizer_ = TableTokenizer(int(self.n_bins)).fit(self.schema_)
        if list(self.tokenizer_.vocab_sizes) != state.get("vocab_sizes"):
            raise ModelFormatError(f"The saved vocabularies {state.get('vocab_sizes')} do not "
                                   f"match the schema's {list(self.tokenizer_.vocab_sizes)}.")
        weights = {k.removeprefix("model."): torch.from_numpy(v.copy())
                   for k, v in arrays.items() if k.startswith("model.")}
        model: ARTransformer = build_model(self._config(), None)
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise ModelFormatError(f"The saved weights do not fit the model: {exc}") from None
        self.device_ = resolve_device(self.device, type(self).__name__, strict=False)
        self.model_ = model.to(self.device_).eval()
        self.steps_run_ = int(state["steps_run"])
        self.empty_batches_ = int(state.get("empty_batches", 0))
        self.loss_history_ = [float(v) for v in state.get("loss_history", [])]
        self.grad_sample_mode_ = str(state.get("grad_sample_mode", ""))


def _conditions_frame(conditions: Any, n_rows: Any, names: list[str],
                      owner: str) -> pd.DataFrame:
    """The conditions as a table with one row per wanted row (every problem raised at once)."""
    problems: list[ParameterError] = []
    if isinstance(conditions, pd.DataFrame):
        given = conditions.reset_index(drop=True)
        if n_rows is not None and n_rows != len(given):
            problems.append(param_error("n_rows", f"None or {len(given)} (the conditions' "
                                        "length)", n_rows, owner))
    elif isinstance(conditions, Mapping):
        if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
            problems.append(param_error("n_rows", "an integer >= 1 with a mapping of "
                                        "conditions", n_rows, owner))
            n_rows = 0
        given = pd.DataFrame({k: [v] * int(n_rows) for k, v in conditions.items()})
    else:
        raise param_error("conditions", "a DataFrame or a mapping of column to value",
                          type(conditions).__name__, owner)
    unknown = [c for c in given.columns if c not in names]
    if unknown or len(given.columns) == 0:
        problems.append(param_error("conditions", f"some of the modelled columns {names}",
                                    list(given.columns), owner))
    raise_if_problems(problems, owner)
    if len(given) == 0:
        raise param_error("conditions", "at least one row", 0, owner)
    return given


def _param_problems(synth: DPARSynthesizer) -> list[ParameterError]:
    """Every invalid dpar-specific parameter (the base class checks the shared ones)."""
    owner = type(synth).__name__
    out: list[ParameterError] = []

    for name in (*_INT_PARAMS, *_FLOAT_PARAMS):
        value, integer = getattr(synth, name), name in _INT_PARAMS
        if name == "batch_size" and value is None:
            continue
        if not number(value, integer) or value <= 0:
            out.append(param_error(name, "an integer >= 1" if integer else "a finite float > 0",
                                   value, owner))
    if number(synth.n_bins, True) and synth.n_bins < 2:
        out.append(param_error("n_bins", "an integer >= 2", synth.n_bins, owner))
    if (number(synth.d_model, True) and number(synth.n_heads, True) and synth.n_heads > 0
            and synth.d_model % synth.n_heads):
        out.append(param_error("d_model", f"a multiple of n_heads ({synth.n_heads})",
                               synth.d_model, owner))
    if synth.grad_sample_mode not in _dpsgd.GRAD_SAMPLE_MODES:
        out.append(param_error("grad_sample_mode", f"one of {_dpsgd.GRAD_SAMPLE_MODES}",
                               synth.grad_sample_mode, owner))
    if not isinstance(synth.progress, bool):
        out.append(param_error("progress", "a bool", synth.progress, owner))
    out.extend(ParameterError(p) for p in device_problems(synth.device, owner))
    return out


__all__ = ["DPARSynthesizer"]
