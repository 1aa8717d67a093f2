"""How much the public model already ties a control header's words to the label, zero-shot.

A DP fine-tune learns only faintly how a record's label shapes its text (the reviews' records
as drawn: a classifier 0.56-0.58; the reviews' target of issue 17: 0.70). The pretrained model
knows what "positive" or "negative" means; it does not know what the corpus' own label
values ("great" / "other", "fresh" / "rotten") mean, nor a column named ``source``. The header
a record is written behind (``source: fresh\\ntext: ...``) is public: the column and value
names are the schema's. This probe asks, before any DP fit, which header words make the
untouched SmolLM2-135M separate the labels: each held-out text is scored under the header of
every label value, and the zero-shot guess is the header of highest likelihood (no private
record is trained on; the accuracy is of the holdout). It also draws ``--n`` records per header
from the untouched model and reports how often the benchmark's classifier (TF-IDF + logistic
regression trained on the real training texts) gives them the header's label.

Candidates are JSON: ``[[column, {value: shown value, ...}], ...]``; the first is the corpus as
it is. Declared before any run (2026-12-06, thirteenth session): the candidates are chosen on
the tuning corpus (``--corpus finefoods``); the reviews then take the same rule (the column
named by what it holds and the values by their sentiment in plain words) and are not probed
before their DP run.

    python benchmarks/probe_text_header.py --corpus finefoods --threads 2
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import plain_args, smollm_dir  # noqa: E402
from tune_text_guidance import finefoods_split  # noqa: E402

from dpsynth.evaluate import text as tq  # noqa: E402
from dpsynth.synthesizers.text import codec  # noqa: E402
from dpsynth.synthesizers.text.backend import backend_nll  # noqa: E402
from dpsynth.synthesizers.text.hf import HFBackend  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FINEFOODS = [
    ["source", {"great": "great", "other": "other"}],
    ["sentiment", {"great": "positive", "other": "negative"}],
    ["review", {"great": "positive", "other": "negative"}],
    ["rating", {"great": "5 stars", "other": "1 to 4 stars"}],
    ["verdict", {"great": "great", "other": "not great"}],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("finefoods",), default="finefoods")
    parser.add_argument("--candidates", type=json.loads, default=FINEFOODS)
    parser.add_argument("--n-score", type=int, default=1000)
    parser.add_argument("--n", type=int, default=200, help="records drawn per header")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or RESULTS / f"text_header_probe_{args.corpus}.json"
    train, holdout = finefoods_split()
    scored = holdout.head(args.n_score)
    labels = sorted(train.source.unique())
    judge = tq.text_classifier().fit(train.text.tolist(), train.source.tolist())
    backend = HFBackend.load(str(smollm_dir()), lora_rank=0, seed=0)
    backend.module.eval()
    results: dict[str, Any] = {"args": plain_args(args), "labels": labels,
                               "majority": float(scored.source.value_counts(
                                   normalize=True).max()), "runs": []}
    for column, shown in args.candidates:
        cpu = time.process_time()
        heads = {v: codec.header({column: shown[v]}) for v in labels}
        nll = np.stack([backend_nll(backend, backend.code(
            scored.text.tolist(), [heads[v]] * len(scored), args.max_length)) for v in labels])
        guess = np.asarray(labels)[nll.argmin(axis=0)]
        run: dict[str, Any] = {"column": column, "shown": shown,
                               "zero_shot_accuracy": float(np.mean(guess == scored.source)),
                               "guess_shares": {v: float(np.mean(guess == v)) for v in labels}}
        gen = torch.Generator().manual_seed(0)
        agree = {}
        for v in labels:
            texts = backend.generate(heads[v], args.n, max_length=args.max_length,
                                     temperature=1.0, top_p=0.95, generator=gen)
            agree[v] = float(np.mean(judge.predict(texts) == v))
            run.setdefault("samples", {})[v] = texts[:3]
        run["drawn_judged_as_header"] = agree
        run["label_effect"] = agree[labels[0]] - (1 - agree[labels[1]])
        run["cpu_s"] = time.process_time() - cpu
        results["runs"].append(run)
        print(json.dumps({k: run[k] for k in ("column", "shown", "zero_shot_accuracy",
                                                "guess_shares", "drawn_judged_as_header",
                                                "label_effect", "cpu_s")}), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
