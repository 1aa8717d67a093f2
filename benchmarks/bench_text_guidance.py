"""Control guidance at sampling, measured on a saved DP text model (issue 17).

``guidance`` (``DPTextSynthesizer(guidance=w)``, ``dpsynth text fit --guidance w``) draws each
token from ``log p(x | c) + w (log p(x | c) - log sum_c' pi(c') p(x | c'))``: classifier-free
guidance against the released control mixture. It is post-processing of a fitted model, so
this script loads one (``bench_text_smollm_dp.py --save DIR``) and samples it at several
``w`` with the same seed. For each it scores, against the held-out split of the corpus the
model was fitted on: MAUVE and the other measures of
:func:`dpsynth.evaluate.text.text_quality` on the first ``--n-quality`` samples, and the
classifier trained on all ``--n-synthetic`` samples, tested on the real holdout
(train-synthetic-test-real); plus CPU-seconds per record.

These are evaluation corpora, not tuning text: a ``w`` read off this table is chosen on the
data it is scored on, which is why the library's default stays ``w = 0``.

    python benchmarks/bench_text_guidance.py --model /tmp/eps8 --corpus tweets --guidance 0 1 3

Results: ``benchmarks/results/text_guidance_<corpus>.json`` (``--out`` for other runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import draw_and_label, label_model_scores, load_split, plain_args  # noqa: E402
from bench_text_smollm_dp import review_split  # noqa: E402

from dpsynth.evaluate import text as tq  # noqa: E402
from dpsynth.synthesizers import BaseSynthesizer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True,
                        help="a DP text model saved by bench_text_smollm_dp.py --save")
    parser.add_argument("--corpus", choices=("tweets", "reviews"), default="tweets")
    parser.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 3.0])
    parser.add_argument("--n-synthetic", type=int, default=1000)
    parser.add_argument("--n-quality", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = load_split if args.corpus == "tweets" else review_split
    train, holdout = split(6000, 1000, 0)
    synth: Any = BaseSynthesizer.load(args.model)
    out = args.out or RESULTS / f"text_guidance_{args.corpus}.json"
    results: dict[str, Any] = {"args": plain_args(args),
                               "privacy": synth.privacy_.to_dict() if synth.privacy_ else None,
                               "runs": []}
    m = min(args.n_quality, args.n_synthetic)
    results["real_vs_real"] = {k: v for k, v in tq.text_quality(
        holdout.text.tolist(), train.text[:m].tolist()).items() if not isinstance(v, list)}
    results["classifier_real_to_real_same_size"] = tq.text_classifier_score(
        train.text[:args.n_synthetic], train.source[:args.n_synthetic], holdout.text,
        holdout.source)
    for w in args.guidance:
        results["runs"].append(guided_run(synth, w, args.n_synthetic, m, train, holdout))
        out.write_text(json.dumps(results, indent=2, default=float))


def guided_run(synth: Any, w: float, n: int, m: int, train: pd.DataFrame,
               holdout: pd.DataFrame, sizes: Sequence[int] = ()) -> dict[str, Any]:
    """``n`` draws (seed 1) of ``synth`` at guidance ``w``, scored against ``holdout``:
    text quality of the first ``m``, the classifier trained on all ``n`` (synthetic → real)
    and on the first ``k`` for each of ``sizes``, CPU-seconds per record and ten samples.
    The summary is printed."""
    synth.guidance = w
    cpu = time.process_time()
    drawn, frame = draw_and_label(synth, n, seed=1)
    took = (time.process_time() - cpu) / n
    quality = tq.text_quality(holdout.text.tolist(), frame.text[:m].tolist(),
                              reference=train.text.tolist())
    run = {"guidance": w, "cpu_s_per_record": took,
           "quality": {k: v for k, v in quality.items() if not isinstance(v, list)},
           "classifier_synthetic_to_real": tq.text_classifier_score(
               frame.text, frame.source, holdout.text, holdout.source),
           "classifier_synthetic_to_real_first": {
               str(k): tq.text_classifier_score(frame.text[:k], frame.source[:k],
                                                holdout.text, holdout.source)
               for k in sizes if k < n},
           "label_model": label_model_scores(synth, drawn, holdout),
           "samples": [f"[{s}] {t}" for s, t in zip(frame.source[:10], frame.text[:10],
                                                    strict=True)]}
    print(json.dumps({k: v for k, v in run.items() if k != "samples"}, default=float),
          flush=True)
    return run


if __name__ == "__main__":
    main()
