"""Data-parallel DP-SGD in two CPU processes over the gloo backend (as torchrun would start them).

Checks that the two-process fit reports the same epsilon as one process for the same global
sampling rate and steps, that both ranks trained and stayed identical, that the global batch
has the Poisson size of the global rate, and that the noise is added once to the sum of both
ranks' clipped gradients.
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import _bookkeeping, _distributed
from dpsynth.synthesizers.ar import DPARSynthesizer
from dpsynth.synthesizers.dpvae import DPVAESynthesizer

SHARED: dict[str, Any] = dict(epsilon=1.0, random_state=0, epochs=3, batch_size=40)
MODELS: dict[str, tuple[type, dict[str, Any]]] = {
    "dpvae": (DPVAESynthesizer, SHARED | dict(hidden_sizes=(16,), latent_dim=2)),
    "dpar": (DPARSynthesizer, SHARED | dict(d_model=8, n_heads=2, n_bins=8)),
}
N_ROWS, WORLD = 300, 2

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="needs torch.distributed with gloo")


def _table() -> tuple[pd.DataFrame, Schema]:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], N_ROWS, p=[.6, .3, .1]),
                       "age": rng.integers(18, 70, N_ROWS)})
    schema = Schema((Column("colour", "categorical", categories=("red", "green", "blue")),
                     Column("age", "integer", lower=18, upper=90)))
    return df, schema


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out: str, name: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    rep = _distributed.init_from_env("gloo")
    try:
        df, schema = _table()
        cls, params = MODELS[name]
        synth = cls(distributed=True, **params).fit(df, schema)
        weights = {k: v.double().sum().item() for k, v in synth.model_.state_dict().items()}
        result = {"rank": rep.rank, "epsilon": synth.privacy_.epsilon,
                  "event": synth.privacy_.spends[-1].event.to_dict(),
                  "steps": synth.steps_run_, "rows_seen": synth.rows_seen_,
                  "world_size": synth.world_size_, "mode": synth.grad_sample_mode_,
                  "weights": weights, **_noise_once(rep)}
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _noise_once(rep: _distributed.Replica) -> dict[str, list[float]]:
    """One step on a tiny model: each rank's local clipped sum and the final gradient."""
    gen = torch.Generator().manual_seed(10 + rep.rank)  # different data on each rank
    x, y = torch.randn(5, 3, generator=gen), torch.randn(5, generator=gen)
    model = nn.Linear(3, 1)

    class Loss(nn.Module):
        reduction = "mean"

        def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            per = (out.squeeze(1) - target).pow(2)
            return per if self.reduction == "none" else per.mean()

    _distributed.broadcast_module(model)
    local = _bookkeeping.BookkeepingClipper(model, 0.5)  # this rank's clipped sum alone
    wrapped = _bookkeeping.BookkeepingModule(model, local)
    _bookkeeping.BookkeepingCriterion(Loss(), local)(wrapped(x), y).backward()
    local_sum = local.summed.tolist()
    wrapped.to_standard_module()
    training = _distributed.make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.0), Loss(), noise_multiplier=1.0,
        max_grad_norm=0.5, expected_batch_size=1, rep=rep,
        noise_fn=lambda ref, std: torch.full_like(ref, std))  # visible "noise" of size std
    training.criterion(training.module(x), y).backward()
    training.optimizer.step()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).tolist()
    return {"local_sum": local_sum, "grad": grad}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_two_gloo_processes_train_like_one_with_the_same_epsilon(tmp_path, name):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), name), nprocs=WORLD, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]

    torch.set_num_threads(1)
    df, schema = _table()
    cls, params = MODELS[name]
    alone = cls(**params).fit(df, schema)
    q = params["batch_size"] / N_ROWS
    for result in ranks:
        assert result["world_size"] == WORLD and result["mode"] == "bookkeeping"
        assert result["epsilon"] == alone.privacy_.epsilon  # same global q, same steps
        assert result["event"] == alone.privacy_.spends[-1].event.to_dict()
        assert result["event"]["sample_rate"] == pytest.approx(q)
        assert result["steps"] == alone.steps_run_ == math.ceil(params["epochs"] / q)
        assert result["rows_seen"] > 0  # both ranks trained on their own rows
    assert ranks[0]["weights"] == ranks[1]["weights"]  # replicas stayed identical
    assert ranks[0]["weights"] != {k: v.double().sum().item()
                                   for k, v in alone.model_.state_dict().items()}
    # the union of the local batches is a Poisson sample at rate q of all the rows
    seen, steps = sum(r["rows_seen"] for r in ranks), ranks[0]["steps"]
    sd = math.sqrt(steps * N_ROWS * q * (1 - q))
    assert abs(seen - steps * N_ROWS * q) < 5 * sd
    # noise once: every rank's gradient is (sum of the ranks' clipped sums + noise) / B
    expected = np.sum([r["local_sum"] for r in ranks], axis=0) + 1.0 * 0.5
    for result in ranks:
        # float32 sums in another order (gloo's all-reduce, numpy here): a few ulps apart;
        # noise added twice or not at all would be 0.5 off
        np.testing.assert_allclose(result["grad"], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ranks[0]["local_sum"], ranks[1]["local_sum"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_distributed_without_a_process_group_is_a_parameter_error(name):
    df, schema = _table()
    cls, params = MODELS[name]
    with pytest.raises(Exception, match="'distributed'"):
        cls(distributed=True, **params).fit(df, schema)
