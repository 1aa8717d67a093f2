"""Text speed on CPU (issue 17, item 4): the trial's configuration against the new levers.

One process, one thread count at a time (``--threads 1 2``: the rows of the table), the same
records, ε, batch and seed for every configuration; CPU-seconds by ``time.process_time``:

* **DP training**: target tokens per CPU-second of the DP-SGD steps of a
  :class:`DPTextSynthesizer` fit on real tweets (``dslabs::trump_tweets``, the corpus of
  ``bench_text_smollm.py``), model loading excluded. The trial's configuration: LoRA rank 8
  on every linear layer of every block, float32, batch 16, the loss taken on the logits. The
  others add bfloat16 autocast (``precision="bfloat16"``), adapters only in the top K blocks
  (``lora_layers=K``) and, in the last rows, the frozen head applied inside the loss a chunk
  of positions at a time (``dpsynth/synthesizers/text/headloss.py``, the library's way for
  models with a frozen head); system CPU-seconds and page faults are reported beside.
* **Sampling**: CPU-seconds per tweet of one batch of ``--n-samples`` tweets continuing the
  same header, with the key/value cache. The trial's way is the sampling loop as it was
  (copied below: float32 weights with the LoRA adapters unmerged, a full 49,152-way sort per
  row and token for the nucleus, finished rows kept in the batch); the new way is the
  library's (``precision="bfloat16"``, or ``"auto"`` on a CPU with native bfloat16: the
  adapters merged into a bfloat16 copy, the nucleus drawn by rejection without sorting the
  vocabulary, in blocks of rows that stay in the cache, finished rows leave the batch), on
  the same batch and on one batch twice as large (the library decodes up to 512 at once),
  and the trial's loop on the larger batch too.
* **Numerics**: mean NLL per token of held-out tweets under the float32 model and under
  the bfloat16 sampling copy.

Run (a few CPU-minutes per thread count)::

    python benchmarks/bench_text_speed.py [--threads 1 2] [--n-train 64] [--steps 3]
        [--n-samples 32] [--lora-layers 8 4]

Results go to ``benchmarks/results/text_speed.json`` and a summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import load_split, schema_for, smollm_dir  # noqa: E402

from dpsynth.synthesizers import _dpsgd  # noqa: E402
from dpsynth.synthesizers.text import DPTextSynthesizer, hf  # noqa: E402
from dpsynth.synthesizers.text.backend import backend_nll  # noqa: E402
from dpsynth.synthesizers.text.hf import HFBackend  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "text_speed.json"
HEAD = "source=Twitter for Android\x1e"


class _Counted:
    """A batch loader that counts the target tokens of the batches it yields."""

    def __init__(self, loader: Any, tally: list[int]):
        self.loader, self.tally = loader, tally

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        for batch in self.loader:
            self.tally[0] += int(batch[:, 1].sum())
            yield batch


def train_speed(model_dir: str, train: pd.DataFrame, *, eps: float, batch: int, steps: int,
                max_length: int, precision: str, layers: int | None, fused: bool = False,
                micro_batch: int | None = None) -> dict[str, Any]:
    """DP-SGD target tokens per CPU-second of one fit (its training steps only).

    ``fused``: the frozen head applied inside the loss, chunk by chunk (the library's way
    since the ninth session, :mod:`dpsynth.synthesizers.text.headloss`); otherwise the model
    returns its logits and the loss is taken on them, as in the trial.
    ``micro_batch``: records per physical chunk (default: the whole batch).
    """
    tally, spent = [0], [0.0]
    real_loader, real_train = _dpsgd.batch_loader, DPTextSynthesizer._train
    real_head = hf.frozen_head

    def loader(*args: Any, **kwargs: Any) -> Any:
        return _Counted(real_loader(*args, **kwargs), tally)

    system = [0.0, 0]

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start, usage = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        try:
            return real_train(self, *args, **kwargs)
        finally:
            spent[0] += time.process_time() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
            system[0] += after.ru_stime - usage.ru_stime
            system[1] += after.ru_minflt - usage.ru_minflt

    synth = DPTextSynthesizer(
        epsilon=eps, model_dir=model_dir, lora_rank=8, lora_targets="all-linear",
        lora_layers=layers, micro_batch_size=micro_batch or batch, batch_size=batch,
        epochs=steps * batch / len(train), learning_rate=1e-3, max_length=max_length,
        precision=precision, random_state=0)
    _dpsgd.batch_loader = loader  # type: ignore[assignment]
    DPTextSynthesizer._train = timed  # type: ignore[method-assign]
    if not fused:
        hf.frozen_head = lambda lm: None  # type: ignore[assignment]
    try:
        synth.fit(train, schema_for(max_length))
    finally:
        _dpsgd.batch_loader = real_loader  # type: ignore[assignment]
        DPTextSynthesizer._train = real_train  # type: ignore[method-assign]
        hf.frozen_head = real_head  # type: ignore[assignment]
    return {"precision": precision, "lora_layers": layers, "fused_head": fused,
            "micro_batch": micro_batch or batch, "steps": synth.steps_run_,
            "epsilon": synth.privacy_.epsilon if synth.privacy_ else None,
            "trainable": synth.trainable_parameters_, "target_tokens": tally[0],
            "train_cpu_s": spent[0], "tokens_per_cpu_s": tally[0] / spent[0],
            "system_cpu_s": system[0], "minor_page_faults": system[1],
            "mode": synth.grad_sample_mode_}


# -- the trial's sampling loop, as it was before the speed work -----------------------------
def _trial_draw(logits: torch.Tensor, temperature: float, top_p: float,
                generator: torch.Generator, banned: tuple[int, ...]) -> torch.Tensor:
    logits = logits.float().clone()
    if banned:
        logits[:, list(banned)] = float("-inf")
    probs = (logits / temperature).softmax(dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    drop = sorted_p.cumsum(dim=-1) - sorted_p > top_p
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    probs = torch.zeros_like(probs).scatter(1, order, sorted_p)
    probs = probs / probs.sum(dim=-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def trial_generate(backend: HFBackend, n: int, max_length: int,
                   generator: torch.Generator) -> list[str]:
    lm = backend.wrapper.lm.eval()
    prompt = torch.tensor([backend.bos, *backend._ids(backend._head(HEAD))]).expand(n, -1)
    out = lm(input_ids=prompt.contiguous(), use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1]
    steps = max_length + 1
    drawn = torch.full((n, steps), backend.eos, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    for step in range(steps):
        nxt = _trial_draw(logits, 1.0, 0.95, generator, backend.banned)
        nxt = torch.where(done, torch.full_like(nxt, backend.eos), nxt)
        drawn[:, step] = nxt
        done |= nxt == backend.eos
        if bool(done.all()) or step == steps - 1:
            break
        out = lm(input_ids=nxt[:, None], past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1]
    texts = []
    for row in drawn.tolist():
        end = row.index(backend.eos) if backend.eos in row else len(row)
        texts.append(backend.tokenizer.decode(row[:end], skip_special_tokens=True))
    return texts


def sample_speed(model_dir: str, n: int, max_length: int,
                 holdout: pd.DataFrame) -> dict[str, Any]:
    """CPU-seconds per tweet, the trial's loop against the library's bfloat16 sampling."""
    backend = HFBackend.load(model_dir, lora_rank=8, seed=0)
    with torch.no_grad():  # adapters away from zero, as after training (B starts at 0)
        for name, p in backend.wrapper.lm.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 1e-3)
    start = time.process_time()
    trial = trial_generate(backend, n, max_length, torch.Generator().manual_seed(0))
    trial_s = (time.process_time() - start) / n
    backend.sample_precision = "bfloat16"
    backend._sampler()  # the bfloat16 copy is built once, before any timing
    start = time.process_time()
    new = backend.generate(HEAD, n, max_length=max_length, temperature=1.0, top_p=0.95,
                           generator=torch.Generator().manual_seed(0))
    new_s = (time.process_time() - start) / n
    start = time.process_time()
    backend.generate(HEAD, 2 * n, max_length=max_length, temperature=1.0, top_p=0.95,
                     generator=torch.Generator().manual_seed(0))
    new_2n = (time.process_time() - start) / (2 * n)
    start = time.process_time()  # the trial's loop at the larger batch too, to be fair
    trial_generate(backend, 2 * n, max_length, torch.Generator().manual_seed(0))
    trial_2n = (time.process_time() - start) / (2 * n)
    coded = backend.code(holdout.text.tolist(), [HEAD] * len(holdout), max_length)
    nll32 = backend_nll(backend, coded)
    bf16 = backend._sampler()
    real = backend.wrapper.lm
    backend.wrapper.lm = bf16
    try:
        nll16 = backend_nll(backend, coded)
    finally:
        backend.wrapper.lm = real
    return {"trial_cpu_s_per_tweet": trial_s, "new_cpu_s_per_tweet": new_s,
            "sampling_speedup": trial_s / new_s, "new_cpu_s_per_tweet_batch_2n": new_2n,
            "sampling_speedup_batch_2n": trial_s / new_2n,
            "trial_cpu_s_per_tweet_batch_2n": trial_2n,
            "sampling_speedup_both_batch_2n": trial_2n / new_2n,
            "sampling_speedup_best_trial": min(trial_s, trial_2n) / new_2n,
            "mean_tokens_trial": float(np.mean([len(backend._ids(t)) for t in trial])),
            "mean_tokens_new": float(np.mean([len(backend._ids(t)) for t in new])),
            "nll_float32": float(nll32.mean()), "nll_bfloat16": float(nll16.mean()),
            "nll_max_abs_diff": float(np.abs(nll32 - nll16).max()),
            "samples_trial": trial[:5], "samples_new": new[:5]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--n-train", type=int, default=64)
    parser.add_argument("--eps", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--micro-batch-size", type=int, default=None,
                        help="records per physical chunk (default: the whole batch)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--lora-layers", type=int, nargs="+", default=[8])
    parser.add_argument("--sampling-only", action="store_true",
                        help="skip the training configurations")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    model_dir = smollm_dir()
    train, holdout = load_split(args.n_train, 32, seed=0)
    configs: list[tuple[str, int | None, bool]] = [
        ("float32", None, False), ("bfloat16", None, False),
        *(("bfloat16", k, False) for k in args.lora_layers),
        *(("bfloat16", k, True) for k in args.lora_layers)]
    results: dict[str, Any] = {"args": vars(args), "rows": []}
    for threads in args.threads:
        torch.set_num_threads(threads)
        row: dict[str, Any] = {"threads": threads, "training": []}
        for precision, layers, fused in [] if args.sampling_only else configs:
            found = train_speed(str(model_dir), train, eps=args.eps, batch=args.batch_size,
                                steps=args.steps, max_length=args.max_length,
                                precision=precision, layers=layers, fused=fused,
                                micro_batch=args.micro_batch_size)
            row["training"].append(found)
            base = row["training"][0]["tokens_per_cpu_s"]
            print(f"threads {threads} train {precision:8s} layers {layers} "
                  f"{'fused head' if fused else 'logits'}: "
                  f"{found['tokens_per_cpu_s']:.1f} tokens/CPU-s "
                  f"({found['tokens_per_cpu_s'] / base:.2f}x trial), "
                  f"of which system {found['system_cpu_s']:.1f} s "
                  f"({found['minor_page_faults']} page faults)",
                  flush=True)
        row["sampling"] = sample_speed(str(model_dir), args.n_samples, args.max_length,
                                       holdout)
        s = row["sampling"]
        print(f"threads {threads} sampling: trial {s['trial_cpu_s_per_tweet']:.3f}, new "
              f"{s['new_cpu_s_per_tweet']:.3f} CPU-s/tweet ({s['sampling_speedup']:.1f}x), "
              f"batch x2 {s['new_cpu_s_per_tweet_batch_2n']:.3f} "
              f"({s['sampling_speedup_batch_2n']:.1f}x; trial at x2 "
              f"{s['trial_cpu_s_per_tweet_batch_2n']:.3f}, "
              f"{s['sampling_speedup_both_batch_2n']:.1f}x); "
              f"NLL float32 {s['nll_float32']:.4f} bfloat16 {s['nll_bfloat16']:.4f}",
              flush=True)
        results["rows"].append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)  # after each thread count
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
        print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
