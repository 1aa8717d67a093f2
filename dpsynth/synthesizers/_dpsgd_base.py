"""One base for the synthesizers trained with DP-SGD: parameters, schedule, plan, training.

DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016): ``steps`` steps
at Poisson sampling rate ``q = batch_size / n_rows`` (``steps = ceil(epochs / q)``), each
clipping every example's gradient to ``max_grad_norm`` and adding Gaussian noise of std
``sigma * max_grad_norm``; ``sigma`` is calibrated with the PLD accountant before the data is
read (:class:`~dpsynth.synthesizers.plan.DPSGDPlan`). A subclass supplies its model and an
:class:`Objective` (its loss on a batch); :meth:`DPSGDSynthesizer._train` runs the plain
reference or the private run, records the spend, and checks that every planned step ran.
The clipping, noise and batch sampling are in :mod:`~dpsynth.synthesizers._dpsgd`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from dpsynth._util.device import device_problems, resolve_device
from dpsynth.accounting import Budget, Event, NoiseSource, SpendRecorder, calibrate_dpsgd_noise
from dpsynth.errors import ModelFormatError, ParameterError, PrivacyError, param_error
from dpsynth.schema import Schema
from dpsynth.synthesizers import _bookkeeping, _distributed, _dpsgd
from dpsynth.synthesizers.base import BaseSynthesizer
from dpsynth.synthesizers.plan import DPSGDPlan, TrainingPlan

ModuleT = TypeVar("ModuleT", bound=nn.Module)

#: ``loss(module, criterion, batch)``: the mean loss of ``batch`` (a tensor of rows).
LossFn = Callable[[Callable[..., Any], Callable[..., Any], torch.Tensor], Any]


@dataclass(frozen=True)
class Objective:
    """What a model is trained on: a criterion and how a batch's loss is computed.

    ``criterion`` must accept ``reduction`` ``"none"`` (per-example losses) and ``"mean"``;
    ``precision`` ``"bfloat16"`` autocasts the forward pass.
    """

    criterion: nn.Module
    loss: LossFn
    precision: str = "float32"


def number(value: Any, integer: bool = False) -> bool:
    """Whether ``value`` is a finite number (an integer when ``integer``), not a bool."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    return isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast of the forward pass when ``precision == "bfloat16"``."""
    if precision == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def make_optimizer(module: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """Adam over ``module``'s trainable parameters at ``learning_rate``, or over the
    parameter groups of its ``optimizer_groups(learning_rate)`` when it defines one (a
    network whose parts train at different rates)."""
    groups = getattr(module, "optimizer_groups", None)
    if groups is None:
        return torch.optim.Adam(trainable(module), lr=learning_rate)
    return torch.optim.Adam(groups(learning_rate))


def make_step(module: Callable[..., Any], optimizer: Any, criterion: Callable[..., Any],
              objective: Objective, device: torch.device
              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The one optimiser step on a batch, plain or private: returns the detached mean loss."""

    def step(batch: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, objective.precision):
            loss = objective.loss(module, criterion, batch)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


class DPSGDSynthesizer(BaseSynthesizer):
    """Base of the synthesizers trained with DP-SGD (see the module docstring).

    Parameters (besides :class:`~dpsynth.synthesizers.base.BaseSynthesizer`'s)
    --------------------------------------------------------------------------
    epochs, batch_size, max_grad_norm, learning_rate:
        ``ceil(epochs / q)`` steps at Poisson rate ``q = batch_size / n_rows``, per-example
        clipping norm, Adam learning rate.
    device:
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    progress:
        Show a progress bar over the training steps (on stderr).
    grad_sample_mode:
        Per-example clipping: ``"auto"``, ``"bookkeeping"``, ``"ghost"`` or ``"hooks"``.
    """

    #: Purpose under which the DP-SGD run is recorded.
    train_purpose: ClassVar[str] = "train:dpsgd"
    #: Clipping ``"auto"`` picks when the model does not allow book-keeping.
    fallback_clipping: ClassVar[str] = "ghost"
    #: Whether ``learning_rate=None`` (the subclass picks one) is allowed.
    automatic_learning_rate: ClassVar[bool] = False
    #: Whether ``batch_size=None`` is allowed: ``min(max_automatic_batch, n_rows // 4)``.
    automatic_batch_size: ClassVar[bool] = False
    max_automatic_batch: ClassVar[int] = 512
    #: Declared public rows per DP-SGD step, as a share of the expected private batch.
    PUBLIC_BATCH_RATIO: ClassVar[float] = 1.0
    #: Whether ``epochs=None`` (the subclass picks, see :meth:`_epochs`) is allowed.
    automatic_epochs: ClassVar[bool] = False

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, epochs: float | None = 20,
                 batch_size: int | None = 256,
                 max_grad_norm: float = 1.0, learning_rate: float | None = 1e-3,
                 device: str = "auto", progress: bool = False, grad_sample_mode: str = "auto"):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction)
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self.learning_rate = learning_rate
        self.device = device
        self.progress = progress
        self.grad_sample_mode = grad_sample_mode

    # -- parameters -----------------------------------------------------------------------
    def _dpsgd_problems(self) -> list[str]:
        """Messages for every invalid shared DP-SGD parameter."""
        owner = type(self).__name__
        out: list[str] = []
        for name, integer in (("epochs", False), ("batch_size", True),
                              ("max_grad_norm", False)):
            value = getattr(self, name)
            if value is None and ((name == "batch_size" and self.automatic_batch_size)
                                  or (name == "epochs" and self.automatic_epochs)):
                continue
            if not number(value, integer) or value <= 0:
                out.append(str(param_error(name, "an integer >= 1" if integer else
                                           "a finite float > 0", value, owner)))
        lr = self.learning_rate
        if self.automatic_learning_rate:
            if lr is not None and (not number(lr) or lr <= 0):
                out.append(str(param_error("learning_rate", "None (automatic) or a finite "
                                           "float > 0", lr, owner)))
        elif not number(lr) or lr is None or lr <= 0:
            out.append(str(param_error("learning_rate", "a finite float > 0", lr, owner)))
        if self.grad_sample_mode not in _dpsgd.GRAD_SAMPLE_MODES:
            out.append(str(param_error("grad_sample_mode", f"one of {_dpsgd.GRAD_SAMPLE_MODES}",
                                       self.grad_sample_mode, owner)))
        if not isinstance(self.progress, bool):
            out.append(str(param_error("progress", "a bool", self.progress, owner)))
        out.extend(self._distributed_problems())
        out.extend(device_problems(self.device, owner))
        return out

    def _distributed_problems(self) -> list[str]:
        """``distributed`` (for subclasses that have it): a bool, and when true book-keeping
        clipping, a finite epsilon and an initialised ``torch.distributed``."""
        owner, value = type(self).__name__, getattr(self, "distributed", False)
        if not isinstance(value, bool):
            return [str(param_error("distributed", "a bool", value, owner))]
        out: list[str] = []
        if value:
            if self.grad_sample_mode not in ("auto", "bookkeeping"):
                out.append(str(param_error("grad_sample_mode", "'auto' or 'bookkeeping' when "
                                           "distributed=True", self.grad_sample_mode, owner)))
            if not self.is_private:
                out.append(str(param_error("distributed", "False for the non-private "
                                           "reference (epsilon=inf)", True, owner)))
            elif not (torch.distributed.is_available() and torch.distributed.is_initialized()):
                out.append(str(param_error("distributed", "False unless torch.distributed is "
                                           "initialised in this process (see "
                                           "docs/distributed.md)", True, owner)))
        return out

    def _automatic_batch(self, n_rows: int) -> int:
        """The batch of ``batch_size=None``: a quarter of the rows, at most
        ``max_automatic_batch``."""
        return max(1, min(self.max_automatic_batch, n_rows // 4))

    def _batch_size(self, n_rows: int) -> int:
        """The expected batch size for ``n_rows`` rows (no data is read; the row count is
        treated as public)."""
        if self.batch_size is None:
            return self._automatic_batch(n_rows)
        if self.batch_size > n_rows:
            raise param_error("batch_size", f"at most the number of rows ({n_rows})",
                              self.batch_size, type(self).__name__)
        return int(self.batch_size)

    def _epochs(self) -> float:
        """Expected passes over the rows (``epochs``; a subclass with ``automatic_epochs``
        resolves ``None``)."""
        if self.epochs is None:
            raise param_error("epochs", "a finite float > 0", None, type(self).__name__)
        return float(self.epochs)

    def _plain_steps(self, sample_rate: float) -> int:
        """Steps of the non-private run (``epsilon=inf``) at ``sample_rate``: those of the
        private run by default; a subclass with automatic epochs may train longer there,
        where no budget limits the steps."""
        return _dpsgd.steps_for(self._epochs(), sample_rate)

    def _schedule(self, n_rows: int) -> tuple[float, int]:
        """Sampling rate and number of steps for ``n_rows`` rows (no data is read)."""
        q = self._batch_size(n_rows) / n_rows
        return q, _dpsgd.steps_for(self._epochs(), q)

    def _resolve_device(self, *, strict: bool = True) -> torch.device:
        """The training device (this process' own GPU when ``distributed``)."""
        device = resolve_device(self.device, type(self).__name__, strict=strict)
        return (_distributed.local_device(device) if getattr(self, "distributed", False)
                else device)

    def _clipping(self, module: nn.Module) -> str:
        """``grad_sample_mode`` with ``"auto"`` resolved for ``module``."""
        if self.grad_sample_mode != "auto":
            return str(self.grad_sample_mode)
        return "bookkeeping" if _bookkeeping.supports(module) else self.fallback_clipping

    # -- planning -------------------------------------------------------------------------
    def _plan_training(self, schema: Schema, n_rows: int, budget: Budget,
                       prior_events: tuple[Event, ...]) -> TrainingPlan:
        return self._plan_dpsgd(n_rows, budget, prior_events)

    def _plan_dpsgd(self, n_rows: int, budget: Budget,
                    prior_events: tuple[Event, ...]) -> DPSGDPlan:
        """The DP-SGD run, its noise calibrated so everything meets ``budget``."""
        if getattr(self, "distributed", False) and prior_events:
            raise PrivacyError("distributed=True needs every column's domain declared in the "
                               "schema: DP discovery would run apart on every process.")
        q, steps = self._schedule(n_rows)
        sigma = calibrate_dpsgd_noise(budget.epsilon, budget.delta, sample_rate=q, steps=steps,
                                      prior_events=list(prior_events))
        return DPSGDPlan(self.train_purpose, q, steps, sigma)

    # -- what a run leaves behind ---------------------------------------------------------
    def _note_schedule(self, batch: int, sample_rate: float, steps: int,
                       learning_rate: float) -> None:
        """Keep the schedule a training run is about to follow (:meth:`_resolved`)."""
        self.schedule_ = {"epochs": round(float(steps) * float(sample_rate), 3),
                          "batch_size": int(batch), "learning_rate": float(learning_rate)}

    def _resolved(self) -> dict[str, Any]:
        """The schedule that ran (``epochs`` as the expected passes it made: the steps
        times the sampling rate), its steps, the device and the clipping, once fitted."""
        out: dict[str, Any] = {**super()._resolved(), **getattr(self, "schedule_", {})}
        if hasattr(self, "steps_run_"):
            out["steps"] = self.steps_run_
        if hasattr(self, "device_"):
            out["device"] = str(self.device_)
        mode = getattr(self, "grad_sample_mode_", "")
        if mode:
            out["grad_sample_mode"] = mode
        return out

    def _record_run(self, log: _dpsgd.TrainingLog, rep: _distributed.Replica | None) -> None:
        """The fitted attributes every DP-SGD model reports about its training run."""
        self.world_size_ = 1 if rep is None else rep.world_size
        self.steps_run_ = log.steps_run
        self.empty_batches_ = log.empty_batches
        self.rows_seen_ = log.rows_seen
        self.loss_history_ = list(log.epoch_losses)

    def _run_state(self) -> dict[str, Any]:
        """The training-run part of the saved state (see :meth:`_restore_run`)."""
        return {"steps_run": self.steps_run_, "empty_batches": self.empty_batches_,
                "loss_history": self.loss_history_, "schedule": dict(self.schedule_)}

    def _restore_run(self, state: dict[str, Any]) -> None:
        self.steps_run_ = int(state["steps_run"])
        self.empty_batches_ = int(state.get("empty_batches", 0))
        self.loss_history_ = [float(v) for v in state.get("loss_history", [])]
        self.schedule_ = dict(state.get("schedule") or {})  # {} for models saved before it

    @staticmethod
    def _weight_arrays(model: nn.Module) -> dict[str, np.ndarray]:
        """The model's weights as float32 arrays, saved under ``model.<name>``."""
        return {f"model.{k}": v.detach().to("cpu").float().numpy()
                for k, v in model.state_dict().items()}

    def _load_weights(self, model: ModuleT, arrays: dict[str, np.ndarray]) -> ModuleT:
        """``model`` with the saved weights, on this synthesizer's device, in eval mode
        (:class:`~dpsynth.errors.ModelFormatError` when they do not fit it)."""
        weights = {k.removeprefix("model."): torch.from_numpy(v.copy())
                   for k, v in arrays.items() if k.startswith("model.")}
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise ModelFormatError(f"The saved weights do not fit the model: {exc}") from None
        self.device_ = self._resolve_device(strict=False)
        return model.to(self.device_).eval()

    # -- training -------------------------------------------------------------------------
    def _replicate(self, rows: torch.Tensor, plan: DPSGDPlan | None, noise: NoiseSource
                   ) -> tuple[torch.Tensor, NoiseSource, _distributed.Replica | None]:
        """This process' rows, batch-sampling source and replica when ``distributed``
        (every process checks that the others fit the same plan on the same table); the
        rows, ``noise`` and ``None`` otherwise."""
        if not getattr(self, "distributed", False) or plan is None:
            return rows, noise, None
        rep = _distributed.replica(type(self).__name__)
        _distributed.check_same_everywhere(
            [len(rows), plan.steps, plan.sample_rate, plan.noise_multiplier,
             float(rows.double().sum())], ["n_rows", "steps", "sample_rate", "noise", "data"])
        shard = rows[torch.from_numpy(_distributed.shard(len(rows), rep)).to(rows.device)]
        return shard, _distributed.sampling_source(noise, rep), rep

    def _train(self, module: nn.Module, rows: torch.Tensor, objective: Objective, *,
               plan: DPSGDPlan | None, recorder: SpendRecorder | None, noise: NoiseSource,
               learning_rate: float, name: str, sampling: NoiseSource | None = None,
               rep: _distributed.Replica | None = None, batch_size: int | None = None,
               schedule: str = "constant", public: torch.Tensor | None = None,
               plain_steps: int | None = None) -> tuple[_dpsgd.TrainingLog, str]:
        """Train ``module`` on ``rows``: the training log and the clipping that ran.

        Without a ``plan`` (``epsilon=inf``) :meth:`_plain_steps` steps run on shuffled
        fixed-size batches, unclipped and without noise (clipping ``"none"``). With one, the
        DP-SGD run is recorded through ``recorder`` (by the leader alone when distributed)
        and must run exactly the planned number of steps. ``sampling`` draws the batches
        (default ``noise``; a replica's own stream when distributed). ``batch_size`` is the
        expected global batch (default: :meth:`_batch_size` of ``rows``; pass it when
        ``rows`` is a replica's shard and the batch size is automatic). ``schedule`` is the
        learning rate over the run: ``"constant"`` or ``"cosine"`` (see :func:`lr_scheduler`).
        ``public``: declared public rows, appended to every DP-SGD step
        (:class:`~dpsynth.synthesizers._dpsgd.WithPublicRows`, ``PUBLIC_BATCH_RATIO`` times
        the expected batch, or all of them if fewer) and, without DP, simply added to the
        rows. ``plain_steps`` overrides :meth:`_plain_steps` for a run without DP.
        """
        batch = int(batch_size) if batch_size is not None else self._batch_size(len(rows))
        if plan is None or recorder is None:  # not runs_private(...), spelled for mypy
            if public is not None:
                rows = torch.cat([rows, public])
            q = batch / len(rows)
            steps = self._plain_steps(q) if plain_steps is None else int(plain_steps)
            self._note_schedule(batch, q, steps, learning_rate)
            loader = _dpsgd.batch_loader(rows, _dpsgd.ShuffledBatches(
                len(rows), batch, steps, noise))
            optimizer = make_optimizer(module, learning_rate)
            module.train()
            return _dpsgd.run_steps(
                loader, step=make_step(module, optimizer, objective.criterion, objective,
                                       rows.device),
                empty_step=lambda: None, steps_per_epoch=_dpsgd.steps_for(1.0, q),
                progress=bool(self.progress), description=f"{name} (non-private)",
                after_step=lr_scheduler(optimizer, schedule, steps)), "none"
        self._note_schedule(batch, plan.sample_rate, plan.steps, learning_rate)
        spend = (recorder.spend(plan.purpose, plan.event) if rep is None or rep.leader
                 else contextlib.nullcontext())
        with spend:
            log, mode = self._train_private(module, rows, objective, plan, noise,
                                            learning_rate, name, sampling or noise, rep, batch,
                                            schedule, public)
        if log.steps_run != plan.steps:
            raise PrivacyError(f"internal error: ran {log.steps_run} DP-SGD steps, but "
                               f"{plan.steps} were planned and accounted for.")
        return log, mode

    def _train_private(self, module: nn.Module, rows: torch.Tensor, objective: Objective,
                       plan: DPSGDPlan, noise: NoiseSource, learning_rate: float, name: str,
                       sampling: NoiseSource, rep: _distributed.Replica | None, batch: int,
                       schedule: str = "constant", public: torch.Tensor | None = None
                       ) -> tuple[_dpsgd.TrainingLog, str]:
        sampler: Sampler[np.ndarray] = _dpsgd.FastPoissonBatches(
            len(rows), plan.sample_rate, plan.steps, sampling)
        if public is not None:
            if rep is not None:
                raise ParameterError("declared public rows are not supported with "
                                     "distributed training")
            per_step = min(len(public), max(1, round(self.PUBLIC_BATCH_RATIO * batch)))
            sampler = _dpsgd.WithPublicRows(sampler, len(rows), len(public), per_step,
                                            sampling)
            rows = torch.cat([rows, public])
        loader = _dpsgd.batch_loader(rows, sampler)
        optimizer = make_optimizer(module, learning_rate)
        after_step = lr_scheduler(optimizer, schedule, plan.steps)  # before any wrapping
        noise_fn = _dpsgd.make_noise_fn(noise, rows.device)
        settings: dict[str, Any] = {
            "noise_multiplier": plan.noise_multiplier,
            "max_grad_norm": float(self.max_grad_norm),
            "expected_batch_size": batch, "noise_fn": noise_fn}
        if rep is not None:
            training = _distributed.make_private(module, optimizer, objective.criterion,
                                                 rep=rep, **settings)
        else:
            training = _dpsgd.make_private(module, optimizer, objective.criterion, loader,
                                           grad_sample_mode=self._clipping(module),
                                           **settings)
        wrapped, dp_optimizer = training.module, training.optimizer
        try:
            log = _dpsgd.run_steps(
                loader, step=make_step(wrapped, dp_optimizer, training.criterion, objective,
                                       rows.device),
                empty_step=dp_optimizer.noise_only_step,
                steps_per_epoch=_dpsgd.steps_for(1.0, plan.sample_rate),
                progress=bool(self.progress),
                description=f"{name} DP-SGD (σ={plan.noise_multiplier:.3g})",
                after_step=after_step)
        finally:
            _unwrap(wrapped)
        return log, training.mode


def runs_private(plan: DPSGDPlan | None, recorder: SpendRecorder | None) -> bool:
    """Whether :meth:`DPSGDSynthesizer._train` runs DP-SGD (a plan and a recorder) or the
    plain, non-private reference."""
    return plan is not None and recorder is not None


#: Learning rate schedules over a training run (``schedule=`` of ``_train``).
LR_SCHEDULES = ("constant", "cosine")


def lr_scheduler(optimizer: torch.optim.Optimizer, schedule: str, steps: int
                 ) -> Callable[[], None] | None:
    """The per-step scheduler call for ``schedule`` over ``steps`` steps (``None``: constant).

    ``"cosine"`` decays the rate from its initial value to zero along half a cosine
    (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts). The schedule depends only on
    the step count, never on the data, so it is free under DP; under DP-SGD it averages
    the late, noisy updates down instead of letting them move the weights at full rate.
    """
    if schedule == "constant":
        return None
    if schedule != "cosine":
        raise ValueError(f"unknown learning rate schedule {schedule!r}")
    total = max(1, int(steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, total) / total)))
    return scheduler.step


def _unwrap(wrapped: Any) -> None:
    """Remove Opacus' or book-keeping's hooks: the model is a plain module again."""
    for name in ("remove_hooks", "to_standard_module"):
        method = getattr(wrapped, name, None)
        if method is not None:
            method()


__all__ = ["DPSGDSynthesizer", "Objective", "autocast", "make_optimizer", "make_step", "number",
           "runs_private", "trainable"]
