"""DP-SGD training-loop helpers shared by dpsynth's deep generators (built on Opacus).

DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016) clips each
example's gradient to norm ``C``, sums, adds Gaussian noise of std ``sigma * C`` and steps, on
batches drawn by Poisson sampling (each row joins each batch independently with probability
``q``), which is the sampling the PLD accountant assumes. Per-example norms come from Opacus
(Yousefpour et al., "Opacus: User-Friendly Differential Privacy Library in PyTorch", 2021);
by default with ghost clipping (Li et al., "Large Language Models Can Be Strong
Differentially Private Learners", ICLR 2022; Bu et al., "Differentially Private Optimization
on Large Model at Small Cost", ICML 2023), which obtains the norms of linear layers without
materialising per-example gradients, so a step costs a small multiple of a plain one.
dpsynth's own book-keeping clipping (:mod:`dpsynth.synthesizers._bookkeeping`; Bu et al.,
ICML 2023) needs no Opacus wrapper and no second backward and brings a step near the cost of
a plain one; ``grad_sample_mode="auto"`` picks it whenever every trainable layer is an
``nn.Linear``, ``nn.Embedding`` or ``nn.LayerNorm``, and Opacus' ghost clipping otherwise.

Where the randomness comes from (no global RNG is touched):

* **Noise.** Opacus' own ``secure_mode`` needs ``torchcsprng``, which does not exist for
  current torch. dpsynth therefore replaces Opacus' ``add_noise`` (subclasses of its two
  optimizers) with a draw from a :data:`NoiseFn` built by :func:`make_noise_fn`: in secure
  mode the Gaussian noise comes from :class:`~dpsynth.accounting.NoiseSource` (``os.urandom``
  and the Box–Muller transform, in float64, then cast to the gradient's dtype); in seeded mode
  from a ``torch.Generator`` seeded with ``NoiseSource.child_seed()`` (reproducible, not for
  releases).
* **Sampling.** :class:`PoissonBatches` draws each batch with ``NoiseSource.bernoulli``, so
  batch membership is secure or seeded in the same way; :class:`FastPoissonBatches` draws the
  same distribution from ``NoiseSource.uniform`` with ``O(q n)`` draws per batch instead of
  ``n`` (geometric gaps between selected rows), many steps per vectorised call. Opacus'
  ``DPDataLoader`` is not used (it would draw from torch's global generator); ``make_private``
  is called with ``poisson_sampling=False`` on a loader that already samples this way.
* **Accounting.** Opacus' accountant hook is detached: dpsynth accounts with its PLD
  accountant, from the event planned before training.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from dpsynth._util.progress import progress_bar
from dpsynth.accounting import NoiseSource
from dpsynth.errors import ParameterError
from dpsynth.synthesizers import _bookkeeping

logger = logging.getLogger(__name__)

#: ``noise_fn(reference, std)``: Gaussian noise with the shape, dtype and device of ``reference``.
NoiseFn = Callable[[torch.Tensor, float], torch.Tensor]

#: Values of ``grad_sample_mode``: ``auto`` (book-keeping when the model allows it, else
#: ghost), dpsynth's ``bookkeeping``, and Opacus' ``ghost`` and ``hooks``.
GRAD_SAMPLE_MODES = ("auto", "bookkeeping", "ghost", "hooks")
OPACUS_MODES = ("ghost", "hooks")


def make_noise_fn(noise: NoiseSource, device: torch.device) -> NoiseFn:
    """Gaussian noise for DP-SGD from ``noise`` (secure: os.urandom; seeded: a torch generator)."""
    if noise.secure:
        def secure(reference: torch.Tensor, std: float) -> torch.Tensor:
            draw = noise.normal(reference.numel(), scale=std)
            out = torch.from_numpy(draw).to(dtype=reference.dtype)
            return out.view(reference.shape).to(reference.device)

        return secure
    generator = torch.Generator(device=device)
    generator.manual_seed(noise.child_seed())

    def seeded(reference: torch.Tensor, std: float) -> torch.Tensor:
        return torch.normal(0.0, std, size=tuple(reference.shape), generator=generator,
                            device=reference.device, dtype=reference.dtype)

    return seeded


def torch_seed(noise: NoiseSource) -> int:
    """Seed for training randomness that is not DP noise (initial weights, VAE sampling).

    Seeded mode derives it from the noise source (reproducible); secure mode from os.urandom.
    Such randomness does not depend on the data, so it plays no part in the guarantee.
    """
    if noise.secure:
        return int(noise.uniform(1)[0] * 2.0**53)
    return noise.child_seed()


class _NoiseFromSource:
    """Mixin replacing Opacus' ``add_noise`` with draws from a dpsynth :data:`NoiseFn`."""

    params: list[nn.Parameter]
    noise_multiplier: float
    max_grad_norm: float
    expected_batch_size: int
    loss_reduction: str
    original_optimizer: torch.optim.Optimizer

    def __init__(self, *args: Any, noise_fn: NoiseFn, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.noise_fn = noise_fn

    @property
    def noise_std(self) -> float:
        return float(self.noise_multiplier) * float(self.max_grad_norm)

    def add_noise(self) -> None:
        std = self.noise_std
        for p in self.params:
            summed = p.summed_grad  # type: ignore[attr-defined]
            noise = self.noise_fn(summed, std) if std > 0 else torch.zeros_like(summed)
            p.grad = (summed + noise).view_as(p)

    def noise_only_step(self) -> None:
        """The step for an empty Poisson batch: the clipped sum is zero, the update is noise.

        The accountant counts every step, empty or not, so an empty batch must still be a
        step (skipping it would not change the guarantee but would break "steps run = steps
        planned", and biases nothing either way).
        """
        self.original_optimizer.zero_grad()
        scale = float(self.expected_batch_size) if self.loss_reduction == "mean" else 1.0
        for p in self.params:
            zeros = torch.zeros_like(p)
            noise = self.noise_fn(zeros, self.noise_std) if self.noise_std > 0 else zeros
            p.grad = noise / scale
        self.original_optimizer.step()


class SourceNoiseDPOptimizer(_NoiseFromSource, DPOptimizer):
    """Opacus' per-example clipping optimizer (``hooks`` mode) with dpsynth's noise."""


class SourceNoiseFastClipOptimizer(_NoiseFromSource, DPOptimizerFastGradientClipping):
    """Opacus' ghost-clipping optimizer with dpsynth's noise."""


class _DpsynthPrivacyEngine(PrivacyEngine):
    """Opacus' engine, building dpsynth's optimizers and a fixed expected batch size."""

    def __init__(self, noise_fn: NoiseFn, expected_batch_size: int):
        with warnings.catch_warnings():  # "secure RNG turned off": dpsynth brings its own
            warnings.simplefilter("ignore")
            super().__init__(accountant="rdp", secure_mode=False)
        self._noise_fn = noise_fn
        self._expected_batch_size = expected_batch_size

    def _prepare_optimizer(self, *, optimizer: torch.optim.Optimizer, noise_multiplier: float,
                           max_grad_norm: Any, expected_batch_size: int,
                           loss_reduction: str = "mean", distributed: bool = False,
                           clipping: str = "flat", noise_generator: Any = None,
                           grad_sample_mode: str = "hooks", **kwargs: Any) -> DPOptimizer:
        if distributed or clipping != "flat" or grad_sample_mode not in OPACUS_MODES:
            raise ParameterError("dpsynth supports flat clipping in 'ghost' or 'hooks' mode "
                                 "on one device only.")
        if isinstance(optimizer, DPOptimizer):
            optimizer = optimizer.original_optimizer
        klass = (SourceNoiseFastClipOptimizer if grad_sample_mode == "ghost"
                 else SourceNoiseDPOptimizer)
        return klass(optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                     expected_batch_size=self._expected_batch_size,
                     loss_reduction=loss_reduction, noise_fn=self._noise_fn)


@dataclass
class PrivateTraining:
    """What :func:`make_private` returns: the wrapped module, optimizer and loss.

    ``mode`` is the clipping that runs (``"bookkeeping"``, ``"ghost"`` or ``"hooks"``).
    """

    module: nn.Module
    optimizer: Any  # SourceNoiseDPOptimizer | SourceNoiseFastClipOptimizer | Bookkeeping...
    criterion: Callable[..., Any]
    ghost: bool
    mode: str = ""


def resolve_grad_sample_mode(model: nn.Module, mode: str) -> str:
    """``mode``, with ``"auto"`` resolved: book-keeping if ``model`` allows it, else ghost."""
    if mode not in GRAD_SAMPLE_MODES:
        raise ParameterError(f"The 'grad_sample_mode' parameter must be one of "
                             f"{GRAD_SAMPLE_MODES}. Got {mode!r} instead.")
    if mode == "auto":
        return "bookkeeping" if _bookkeeping.supports(model) else "ghost"
    return mode


def make_private(model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                 loader: DataLoader | None, *, noise_multiplier: float, max_grad_norm: float,
                 expected_batch_size: int, noise_fn: NoiseFn,
                 grad_sample_mode: str = "ghost") -> PrivateTraining:
    """Wrap model, optimizer and loss for DP-SGD (see the module docstring).

    ``criterion`` must accept a ``reduction`` of ``"none"`` (per-example losses) and
    ``"mean"``. ``loader`` must already sample batches by Poisson sampling from dpsynth's
    noise source (:class:`PoissonBatches`); book-keeping does not use it (it may be None).
    ``grad_sample_mode`` is one of :data:`GRAD_SAMPLE_MODES`.
    """
    mode = resolve_grad_sample_mode(model, grad_sample_mode)
    if mode != "bookkeeping" and getattr(model, "clip_groups", None) is not None:
        raise ParameterError(f"This model clips its parameter groups apart, which only "
                             f"grad_sample_mode='bookkeeping' supports; got {mode!r}.")
    if mode == "bookkeeping":
        return make_private_bookkeeping(
            model, optimizer, criterion, noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm, expected_batch_size=expected_batch_size,
            noise_fn=noise_fn)
    if loader is None:
        raise ParameterError(f"grad_sample_mode={mode!r} (Opacus) needs the data loader.")
    engine = _DpsynthPrivacyEngine(noise_fn, expected_batch_size)
    model.train()
    result = engine.make_private(
        module=model, optimizer=optimizer, criterion=criterion, data_loader=loader,
        noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
        poisson_sampling=False, grad_sample_mode=mode, loss_reduction="mean",
    )
    ghost = mode == "ghost"
    if ghost:
        module, dp_optimizer, dp_criterion, _ = result
    else:
        (module, dp_optimizer, _), dp_criterion = result, criterion
    dp_optimizer.step_hook = None  # dpsynth's PLD accountant records the spend, not Opacus'
    return PrivateTraining(module, dp_optimizer, dp_criterion, ghost, mode)


def make_private_bookkeeping(model: nn.Module, optimizer: torch.optim.Optimizer,
                             criterion: nn.Module, *, noise_multiplier: float,
                             max_grad_norm: float, expected_batch_size: int, noise_fn: NoiseFn,
                             reduce_fn: Callable[[torch.Tensor], None] | None = None,
                             add_noise: bool = True, recompute: str = "cheap"
                             ) -> PrivateTraining:
    """DP-SGD with dpsynth's book-keeping clipping (:mod:`~dpsynth.synthesizers._bookkeeping`).

    The returned module is used like the model (``to_standard_module()`` restores it), the
    criterion returns a loss whose ``backward()`` clips, the optimizer adds the noise.
    ``reduce_fn`` and ``add_noise`` serve data-parallel training
    (:mod:`~dpsynth.synthesizers._distributed`); ``recompute`` trades time for memory (see
    :class:`~dpsynth.synthesizers._bookkeeping.BookkeepingClipper`).
    """
    clipper = _bookkeeping.BookkeepingClipper(model, max_grad_norm, recompute=recompute)
    model.train()
    dp_optimizer = _bookkeeping.BookkeepingDPOptimizer(
        optimizer, clipper, noise_multiplier=noise_multiplier,
        expected_batch_size=expected_batch_size, noise_fn=noise_fn, loss_reduction="mean",
        reduce_fn=reduce_fn, add_noise=add_noise)
    return PrivateTraining(_bookkeeping.BookkeepingModule(model, clipper), dp_optimizer,
                           _bookkeeping.BookkeepingCriterion(criterion, clipper), False,
                           "bookkeeping")


# -- batches --------------------------------------------------------------------------------
class PoissonBatches(Sampler[np.ndarray]):
    """``steps`` batches; each row joins each batch independently with prob. ``sample_rate``."""

    def __init__(self, n_rows: int, sample_rate: float, steps: int, noise: NoiseSource):
        self.n_rows, self.sample_rate, self.steps, self.noise = n_rows, sample_rate, steps, noise

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self.steps):
            yield np.flatnonzero(self.noise.bernoulli(self.sample_rate, self.n_rows))


class FastPoissonBatches(Sampler[np.ndarray]):
    """:class:`PoissonBatches` drawn in ``O(q n)`` per batch, many batches per call.

    The ``steps`` batches are one Bernoulli(``q``) sequence over ``steps * n_rows`` positions;
    the gaps between its successes are i.i.d. geometric, ``floor(log U / log(1 - q))`` for
    uniform ``U`` from ``noise`` (secure or seeded), so each row joins each batch
    independently with probability ``q`` exactly as in :class:`PoissonBatches`, with about
    ``q n`` draws per batch instead of ``n`` and no Python loop over rows.
    """

    def __init__(self, n_rows: int, sample_rate: float, steps: int, noise: NoiseSource, *,
                 chunk_steps: int = 64):
        self.n_rows, self.sample_rate, self.steps, self.noise = n_rows, sample_rate, steps, noise
        self.chunk_steps = chunk_steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[np.ndarray]:
        n = self.n_rows
        for start in range(0, self.steps, self.chunk_steps):
            count = min(self.chunk_steps, self.steps - start)
            positions = bernoulli_positions(count * n, self.sample_rate, self.noise)
            cuts = np.searchsorted(positions, np.arange(1, count) * n)
            for k, part in enumerate(np.split(positions, cuts)):
                yield part - k * n


class WithPublicRows(Sampler[np.ndarray]):
    """The batches of ``private`` (indices below ``n_private``), each with ``per_step``
    declared public rows appended (indices ``n_private + j``, ``j`` drawn without replacement
    among ``n_public`` at each step from ``noise``).

    The public rows are clipped like the private ones and share the step's noise; their
    draws do not depend on the private rows, so each step stays the subsampled Gaussian
    mechanism the accountant composes for the private rows (adaptive composition: the
    public rows' gradients are a function of released weights and public data). A step
    whose private batch is empty still carries the public rows, and its noise.
    """

    def __init__(self, private: Sampler[np.ndarray], n_private: int, n_public: int,
                 per_step: int, noise: NoiseSource):
        if not 1 <= per_step <= n_public:
            raise ValueError(f"per_step must be in [1, {n_public}], not {per_step}")
        self.private, self.n_private, self.n_public = private, n_private, n_public
        self.per_step, self.noise = per_step, noise

    def __len__(self) -> int:
        return len(self.private)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in self.private:
            if self.per_step == self.n_public:
                drawn = np.arange(self.n_public)
            else:
                keys = self.noise.uniform(self.n_public)
                drawn = np.sort(np.argpartition(keys, self.per_step - 1)[:self.per_step])
            yield np.concatenate([np.asarray(batch, np.int64), self.n_private + drawn])


def bernoulli_positions(length: int, p: float, noise: NoiseSource) -> np.ndarray:
    """Sorted positions of the successes of ``length`` i.i.d. Bernoulli(``p``) trials."""
    if p >= 1.0:
        return np.arange(length, dtype=np.int64)
    if p <= 0.0 or length == 0:
        return np.zeros(0, dtype=np.int64)
    log_fail = math.log1p(-p)
    parts, last = [], -1.0  # position of the last success so far
    while True:
        expected = (length - 1 - last) * p
        k = int(expected + 6.0 * math.sqrt(expected) + 16)
        gaps = np.floor(np.log(noise.uniform(k)) / log_fail)  # failures before a success
        found = last + np.cumsum(gaps + 1.0)
        inside = found[found < length]
        parts.append(inside)
        if len(inside) < k:
            break
        last = float(found[-1])
    return np.concatenate(parts).astype(np.int64)


class ShuffledBatches(Sampler[np.ndarray]):
    """``steps`` fixed-size minibatches, reshuffled at each pass (non-private reference)."""

    def __init__(self, n_rows: int, batch_size: int, steps: int, noise: NoiseSource):
        self.n_rows, self.batch_size, self.steps, self.noise = n_rows, batch_size, steps, noise

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[np.ndarray]:
        order, pos = np.arange(0), 0
        for _ in range(self.steps):
            if pos + self.batch_size > len(order):
                order, pos = np.argsort(self.noise.uniform(self.n_rows)), 0
            yield order[pos:pos + self.batch_size]
            pos += self.batch_size


class _Rows(Dataset[torch.Tensor]):
    """Rows of an in-memory tensor, fetched a whole batch of indices at a time."""

    def __init__(self, rows: torch.Tensor):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: Any) -> torch.Tensor:
        return self.rows[torch.as_tensor(index, dtype=torch.long, device=self.rows.device)]


def batch_loader(rows: torch.Tensor, sampler: Sampler[np.ndarray]) -> DataLoader:
    """A loader yielding ``rows[batch]`` for each index array ``sampler`` yields.

    The loader's own generator only seeds worker processes (there are none); it is given
    explicitly so that iterating never draws from torch's global generator.
    """
    return DataLoader(_Rows(rows), sampler=sampler, batch_size=None,
                      generator=torch.Generator().manual_seed(0))


# -- the loop -------------------------------------------------------------------------------
@dataclass
class TrainingLog:
    """What a training loop did: steps run and the mean loss of each pass over the data."""

    steps_run: int = 0
    empty_batches: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    rows_seen: int = 0


def run_steps(loader: DataLoader, *, step: Callable[[torch.Tensor], torch.Tensor],
              empty_step: Callable[[], None], steps_per_epoch: int, progress: bool,
              description: str, after_step: Callable[[], None] | None = None) -> TrainingLog:
    """Run one optimiser step per batch of ``loader``; an empty batch runs ``empty_step``.

    ``step`` returns the (detached) mean loss of the batch; ``after_step`` (e.g. a learning
    rate scheduler's ``step``) runs after every step, empty or not.
    """
    log = TrainingLog()
    total: torch.Tensor | float = 0.0  # stays on the device until a pass ends (no sync)
    count = 0
    with progress_bar(progress, description, len(loader)) as tick, warnings.catch_warnings():
        # Opacus' ghost clipping runs backward hooks on a model whose inputs need no grad.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for batch in loader:
            if len(batch) == 0:
                empty_step()
                log.empty_batches += 1
            else:
                total = total + step(batch)
                count += 1
                log.rows_seen += len(batch)
            log.steps_run += 1
            if after_step is not None:
                after_step()
            if log.steps_run % steps_per_epoch == 0 and count:
                log.epoch_losses.append(float(total) / count)
                total, count = 0.0, 0
            if tick is not None:
                tick(log.steps_run, len(loader))
    if count:
        log.epoch_losses.append(float(total) / count)
    return log


def steps_for(epochs: float, sample_rate: float) -> int:
    """Number of steps for ``epochs`` expected passes at ``sample_rate``: ceil(epochs / q)."""
    return max(1, math.ceil(epochs / sample_rate - 1e-9))


__all__ = [
    "GRAD_SAMPLE_MODES",
    "OPACUS_MODES",
    "FastPoissonBatches",
    "NoiseFn",
    "PoissonBatches",
    "PrivateTraining",
    "ShuffledBatches",
    "SourceNoiseDPOptimizer",
    "SourceNoiseFastClipOptimizer",
    "TrainingLog",
    "batch_loader",
    "bernoulli_positions",
    "make_noise_fn",
    "make_private",
    "make_private_bookkeeping",
    "resolve_grad_sample_mode",
    "run_steps",
    "steps_for",
]
