"""Fidelity, utility and fit time of dpsynth's table generators at a few epsilons.

For each dataset (the bundled ``wage`` table; Adult when ``benchmarks/data/adult`` is present)
the rows are split 80/20 with a fixed seed; generators see only the 80 % part. Reported:
average 1- and 2-way total-variation distance (TVD) to the training rows, ROC-AUC of a
gradient-boosted classifier trained on synthetic rows and tested on the real 20 % beside the
same classifier trained on the real 80 % (TRTR), and fit time.

    python benchmarks/bench_foundation.py [--synthesizers dpvae aim] [--epsilons 1 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from dpsynth.datasets import load_dataset
from dpsynth.evaluate import average_tvd, tstr_auc
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import SYNTHESIZERS, create

ADULT = Path(__file__).parent / "data"


def load_adult() -> tuple[pd.DataFrame, Schema, str, object] | None:
    if not (ADULT / "adult.csv").is_file():
        return None
    domain = json.loads((ADULT / "adult-domain.json").read_text())
    df = pd.read_csv(ADULT / "adult.csv")
    cols = tuple(Column(name, "categorical", categories=tuple(range(size)))
                 for name, size in domain.items())
    return df, Schema(columns=cols, name="adult"), "income>50K", 1


def datasets() -> dict[str, tuple[pd.DataFrame, Schema, str, object]]:
    df, schema = load_dataset("wage")
    out = {"wage": (df, schema, "health_ins", "1. Yes")}
    adult = load_adult()
    if adult is not None:
        out["adult"] = adult
    return out


def run(name: str, eps: float, df: pd.DataFrame, schema: Schema, target: str,
        positive: object, seed: int) -> dict[str, object]:
    train = df.sample(frac=0.8, random_state=seed)
    test = df.drop(train.index)
    synth = create(name, epsilon=eps, random_state=seed)
    start = time.perf_counter()
    synth.fit(train, schema)
    fit_s = time.perf_counter() - start
    rows = synth.sample(len(train), random_state=seed)
    return {
        "synthesizer": name, "epsilon": eps,
        "spent": None if synth.privacy_ is None else round(synth.privacy_.epsilon, 4),
        "tvd_1way": round(average_tvd(train, rows, schema, way=1), 4),
        "tvd_2way": round(average_tvd(train, rows, schema, way=2), 4),
        "tstr_auc": round(tstr_auc(rows, test, schema, target, positive=positive), 4),
        "trtr_auc": round(tstr_auc(train, test, schema, target, positive=positive), 4),
        "fit_s": round(fit_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthesizers", nargs="+", default=[n for n in ("dpvae", "aim")
                                                               if n in SYNTHESIZERS])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0])
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for data_name, (df, schema, target, positive) in datasets().items():
        if args.datasets and data_name not in args.datasets:
            continue
        for synth in args.synthesizers:
            for eps in args.epsilons:
                result = {"dataset": data_name, **run(synth, eps, df, schema, target,
                                                      positive, args.seed)}
                rows.append(result)
                print(json.dumps(result), flush=True)
    print(markdown_table(rows))


def markdown_table(rows: list[dict[str, object]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
