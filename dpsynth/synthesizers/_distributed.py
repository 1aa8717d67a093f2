"""Data-parallel DP-SGD across processes and GPUs with ``torch.distributed``.

Every process (*rank*) of a job started by ``torchrun`` (or any launcher that initialises
``torch.distributed``) calls ``fit`` with the same table, schema and parameters. The design
keeps the privacy analysis of one process unchanged:

* **Sampling.** Rank ``r`` of ``W`` trains on the shard ``rows[r::W]`` and draws each of its
  rows into each step's batch independently with probability ``q``, from its own random
  stream (seeded mode: a seed derived from the shared seed and ``r``; secure mode:
  ``os.urandom``). Every row belongs to exactly one shard, so the union of the local batches
  is a Poisson sample of the whole table at rate ``q``: the global batch is exactly the one
  the accountant assumes, and the spend is the one-process event
  ``SubsampledGaussianEvent(sigma, q, steps)`` with ``q = batch_size / n_rows`` (global).
* **Clipping.** Each rank clips its examples with book-keeping
  (:mod:`~dpsynth.synthesizers._bookkeeping`) into one flat buffer of clipped sums.
* **Noise, once.** Rank 0 alone draws ``N(0, sigma^2 C^2 I)`` and adds it to its own clipped
  sum; one ``all_reduce(SUM)`` of the flat buffers then gives every rank
  ``sum_i c_i g_i + noise`` with the noise counted once. Drawing on rank 0 only (rather than
  on every rank from a shared seed) keeps secure mode simple: only rank 0's ``os.urandom``
  draws matter and no seed is shared. Every rank divides by the expected global batch size.
* **Replicas.** Rank 0's initial weights are broadcast; identical gradients and optimizers
  then keep the replicas identical. An empty local batch still joins the step's
  ``all_reduce`` (with zeros), so the ranks never fall out of step.
* **Ledger.** Rank 0 alone records the spend (the other ranks plan and check it too).

This is data parallelism written for DP rather than ``DistributedDataParallel``, whose reducer
sums the unclipped gradients during the backward; Opacus' ``DPDDP`` follows the same plan
(all-reduce of clipped sums, noise on rank 0). See ``docs/distributed.md`` for running it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from dpsynth.accounting import NoiseSource
from dpsynth.errors import ParameterError, param_error
from dpsynth.synthesizers import _dpsgd


@dataclass(frozen=True)
class Replica:
    """This process's place in the job."""

    rank: int
    world_size: int

    @property
    def leader(self) -> bool:
        return self.rank == 0


def replica(owner: str) -> Replica:
    """The current process group's rank and size; an error when none is initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        raise param_error("distributed", "False unless torch.distributed is initialised in "
                          "this process (start it with torchrun; see docs/distributed.md)",
                          True, owner)
    return Replica(dist.get_rank(), dist.get_world_size())


def init_from_env(backend: str | None = None) -> Replica:
    """Initialise the default process group from torchrun's environment variables.

    ``backend`` defaults to ``"nccl"`` when CUDA is available, else ``"gloo"``; on CUDA the
    process's device becomes ``cuda:LOCAL_RANK``.
    """
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    return Replica(dist.get_rank(), dist.get_world_size())


def local_device(requested: torch.device) -> torch.device:
    """``cuda`` without an index becomes this process's GPU (``LOCAL_RANK``) in a job."""
    if requested.type == "cuda" and requested.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return requested


def shard(n_rows: int, rep: Replica) -> np.ndarray:
    """Indices of the rows this rank trains on: every ``world_size``-th row from ``rank``."""
    return np.arange(rep.rank, n_rows, rep.world_size)


def sampling_source(noise: NoiseSource, rep: Replica) -> NoiseSource:
    """An independent random stream for this rank's Poisson sampling.

    Seeded mode derives it from the shared seed and the rank (every rank must draw its own
    rows independently; equal streams would correlate the shards' batches); secure mode
    draws from ``os.urandom`` on every rank.
    """
    if noise.secure:
        return NoiseSource.create(None, True)
    base = noise.child_seed()
    seed = int(np.random.SeedSequence([base, rep.rank]).generate_state(1, np.uint64)[0] >> 1)
    return NoiseSource.create(seed, False)


def check_same_everywhere(values: Sequence[float], names: Sequence[str]) -> None:
    """Raise unless every rank passes equal ``values`` (same table, schema and schedule)."""
    device = (torch.device("cuda", torch.cuda.current_device())
              if dist.get_backend() == "nccl" else torch.device("cpu"))
    local = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    low, high = local.clone(), local.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    differ = [n for n, a, b in zip(names, low.tolist(), high.tolist(), strict=True) if a != b]
    if differ:
        raise ParameterError(f"The processes of the distributed job disagree on {differ}: every "
                             "rank must call fit with the same table, schema and parameters.")


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def all_reduce_sum(tensor: torch.Tensor) -> None:
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def make_private(model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module, *,
                 noise_multiplier: float, max_grad_norm: float, expected_batch_size: int,
                 noise_fn: _dpsgd.NoiseFn, rep: Replica) -> _dpsgd.PrivateTraining:
    """Book-keeping DP-SGD whose clipped sums are summed over ranks, noised on rank 0 only.

    ``expected_batch_size`` is the global one (``q * n_rows``), which the summed gradient
    is divided by.
    """
    broadcast_module(model)
    return _dpsgd.make_private_bookkeeping(
        model, optimizer, criterion, noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm, expected_batch_size=expected_batch_size,
        noise_fn=noise_fn, reduce_fn=all_reduce_sum, add_noise=rep.leader)


__all__ = [
    "Replica",
    "all_reduce_sum",
    "broadcast_module",
    "check_same_everywhere",
    "init_from_env",
    "local_device",
    "make_private",
    "replica",
    "sampling_source",
    "shard",
]
