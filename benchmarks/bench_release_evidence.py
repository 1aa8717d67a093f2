"""Release evidence on real tables: the real-anchor ablation curve and the rounds study.

Run: ``python benchmarks/bench_release_evidence.py [--adult-rows N] [--rounds K]``. Prints one
JSON line per result and writes ``benchmarks/results/release_evidence.json``. Tables: the
bundled wage table (3,000 CPS rows, target ``health_ins``) and Adult (target ``income>50K``),
each fitted once with MST at ε = 1 on 80 % of the rows; the remaining 20 % are split into the
ablation's anchor and test parts exactly as ``dpsynth release`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench_audit import adult_schema  # noqa: E402

from dpsynth.datasets import load_dataset  # noqa: E402
from dpsynth.release.ablation import anchor_ablation, split_anchor  # noqa: E402
from dpsynth.release.core import split_holdout  # noqa: E402
from dpsynth.release.rounds import evaluate_rounds  # noqa: E402
from dpsynth.synthesizers import SYNTHESIZERS  # noqa: E402


def _tables(adult_rows: int) -> dict[str, tuple[pd.DataFrame, object, str]]:
    wage, wage_schema = load_dataset("wage")
    data = pd.read_csv(ROOT / "data" / "adult.csv").sample(adult_rows, random_state=0)
    domain = json.loads((ROOT / "data" / "adult-domain.json").read_text())
    return {"wage": (wage, wage_schema, "health_ins"),
            "adult": (data.reset_index(drop=True), adult_schema(domain), "income>50K")}


def ablation(name: str, data: pd.DataFrame, schema, target: str, epsilon: float) -> dict:
    start = time.perf_counter()
    train, holdout = split_holdout(data, schema, 0.2, 0)
    anchor, test = split_anchor(holdout, target, 1)
    synth = SYNTHESIZERS["mst"](epsilon=epsilon, random_state=0).fit(train, schema)
    rows = synth.sample(len(train), random_state=1)
    found = anchor_ablation(anchor, test, rows, synth.schema_, target, seed=2)
    return {"table": name, "epsilon": epsilon, "n_anchor": found.n_anchor,
            "n_test": found.n_test, "curve": {p.label: round(p.auc, 4) for p in found.points},
            "best_share": found.best_share, "gain": round(found.gain, 4),
            "verdict": found.verdict, "seconds": round(time.perf_counter() - start, 1)}


def rounds(name: str, data: pd.DataFrame, schema, rounds_: int, epsilon: float) -> dict:
    start = time.perf_counter()
    result = evaluate_rounds(data, schema, rounds=rounds_, epsilon=epsilon, random_state=0)
    frame = result.frame().round(4).astype(object)
    frame = frame.where(frame.notna(), None)  # NaN (no numeric column) as JSON null
    return {"table": name, "epsilon": epsilon, "rounds": frame.to_dict(orient="records"),
            "warning": result.warning(), "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adult-rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epsilon", type=float, default=1.0)
    args = parser.parse_args()
    results = []
    for name, (data, schema, target) in _tables(args.adult_rows).items():
        results.append(ablation(name, data, schema, target, args.epsilon))
        print(json.dumps(results[-1]), flush=True)
        results.append(rounds(name, data, schema, args.rounds, args.epsilon))
        print(json.dumps(results[-1]), flush=True)
    out = ROOT / "results" / "release_evidence.json"
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
