"""DP text whose control header names the label in words the public model knows.

``probe_text_header.py`` found on the fine-food tuning reviews that the untouched SmolLM2
separates the labels a little behind ``sentiment: positive`` / ``sentiment: negative``
(zero-shot accuracy 0.658, majority 0.627) and not behind the corpus' own ``source: great`` /
``source: other`` (0.580). This benchmark fits the library's DP recipe on the records with the
label column renamed ``sentiment`` and its values shown as ``positive`` / ``negative`` (the
schema is public: a data steward names a column by what it holds), then maps the synthetic
records' labels back and scores them as the earlier runs did. Declared before any run
(2026-12-06, thirteenth session), with the same rule on both corpora (the column named
by what it holds, the values by their sentiment in plain words: fine foods ``great`` →
positive, ``other`` → negative; reviews ``fresh`` → positive, ``rotten`` → negative); judged
on the tuning corpus against its default-header draws (0.693 / 0.698 / 0.713 with 2,000
records), the reviews reported whatever they show.

* ``--corpus finefoods``: the settings of the eleventh session's
  ``tune_text_guidance.py --corpus finefoods --eps 8 --max-length 64`` run (the library's
  automatic schedule; 2,000 records drawn with seed 1).
* ``--corpus reviews``: the settings of ``bench_text_smollm_dp.py --corpus reviews --eps 8
  --epochs 4 --n-synthetic 6000`` (6,000 records drawn with seed 1).

    python benchmarks/bench_text_header.py --corpus finefoods --n-synthetic 2000 \\
        --classifier-sizes 1000 --threads 1
    python benchmarks/bench_text_header.py --corpus reviews --n-synthetic 6000 \\
        --classifier-sizes 2000 4000 --threads 1

Results: ``benchmarks/results/text_header_<corpus>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import (  # noqa: E402
    classifier_by_size,
    draw_and_label,
    label_model_scores,
    plain_args,
    smollm_dir,
)
from bench_text_partition import add_run_args, split  # noqa: E402
from bench_text_smollm import peak_rss_gb  # noqa: E402
from bench_text_smollm_dp import build_parser, recipe  # noqa: E402

from dpsynth.evaluate import text as tq  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers.text import DPTextSynthesizer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
COLUMN = "sentiment"
SHOWN = {"finefoods": {"great": "positive", "other": "negative"},
         "reviews": {"fresh": "positive", "rotten": "negative"}}


def model(corpus: str, eps: float, max_length: int) -> DPTextSynthesizer:
    """The DP recipe of the earlier run on ``corpus`` (see the module docstring): the reviews
    take ``bench_text_smollm_dp.py``'s, the fine foods the library's defaults with
    ``max_length`` from the schema, as those runs did."""
    if corpus == "finefoods":
        return DPTextSynthesizer(epsilon=eps, model_dir=str(smollm_dir()), progress=True,
                                 random_state=0)
    return recipe(build_parser().parse_args(["--eps", str(eps), "--max-length",
                                             str(max_length)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(SHOWN), default="finefoods")
    parser.add_argument("--eps", type=float, default=8.0)
    parser.add_argument("--max-length", type=int, default=64)
    add_run_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or RESULTS / f"text_header_{args.corpus}.json"
    train, holdout = split(args.corpus, args.limit)
    shown = SHOWN[args.corpus]
    back = {v: k for k, v in shown.items()}
    data = pd.DataFrame({COLUMN: train.source.map(shown), "text": train.text})
    schema = Schema((Column(COLUMN, "categorical", categories=tuple(sorted(back))),
                     Column("text", "text", max_length=args.max_length)), name=args.corpus)
    results: dict[str, Any] = {"args": plain_args(args), "shown": shown}
    synth = model(args.corpus, args.eps, args.max_length)
    cpu, wall = time.process_time(), time.perf_counter()
    synth.fit(data, schema)
    results["fit"] = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
                      "steps": synth.steps_run_,
                      "epsilon": synth.privacy_.epsilon if synth.privacy_ else None,
                      "resolved": synth.automatic_params(), "peak_rss_gb": peak_rss_gb()}
    print(json.dumps(results["fit"], default=float), flush=True)
    if args.save is not None:
        synth.save(args.save)
    cpu = time.process_time()
    drawn, frame = draw_and_label(synth, args.n_synthetic, seed=1)
    results["sample_cpu_s_per_record"] = (time.process_time() - cpu) / args.n_synthetic
    shown_holdout = pd.DataFrame({COLUMN: holdout.source.map(shown), "text": holdout.text})
    results["label_model"] = label_model_scores(synth, drawn, shown_holdout, column=COLUMN)
    frame = pd.DataFrame({"source": frame[COLUMN].map(back), "text": frame.text})
    m = min(args.n_quality, len(frame))
    quality = tq.text_quality(holdout.text.tolist(), frame.text[:m].tolist(),
                              reference=train.text.tolist())
    results["quality"] = {k: v for k, v in quality.items() if not isinstance(v, list)}
    results["classifier_synthetic_to_real"] = tq.text_classifier_score(
        frame.text, frame.source, holdout.text, holdout.source)
    results["classifier_by_size"] = classifier_by_size(frame, train, holdout,
                                                       args.classifier_sizes)
    results["samples"] = [f"[{s}] {t}" for s, t in zip(frame.source[:10], frame.text[:10],
                                                       strict=True)]
    print(json.dumps({k: results[k] for k in ("label_model", "classifier_synthetic_to_real",
                                              "classifier_by_size")}, default=float),
          flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
