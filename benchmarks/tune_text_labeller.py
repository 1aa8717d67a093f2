"""The DP label model's optimiser settings, chosen on the declared labelled tuning text.

Tuning corpus: the 2012 convention speeches of ``tune_text_guidance.py`` (named there before
any run; party as the label, holdout by speaker), neither evaluation corpus. For each
``passes,learning_rate`` pair the label model of
:mod:`dpsynth.synthesizers.text.labeller` is fitted on the training pieces' public
embeddings at ``--eps`` (its whole budget; the Poisson rate and clipping norm are the
module's) and without noise, and scored by its accuracy on the held-out speakers' pieces.

    python benchmarks/tune_text_labeller.py --eps 1

Results: ``benchmarks/results/text_labeller_tuning.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_text import plain_args  # noqa: E402
from tune_text_guidance import PARTIES, convention_split  # noqa: E402

from dpsynth.accounting import Budget, NoiseSource  # noqa: E402
from dpsynth.synthesizers.text import labeller  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "text_labeller_tuning.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--grid", nargs="+", default=["30,0.5", "30,2", "30,8", "100,2",
                                                      "100,8"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    train, holdout = convention_split()
    kind = labeller.embedder_kind()
    x_train = labeller.embed(train.text.tolist(), kind)
    x_hold = labeller.embed(holdout.text.tolist(), kind)
    y_train = np.array([PARTIES.index(v) for v in train.source])
    y_hold = np.array([PARTIES.index(v) for v in holdout.source])
    rows = []
    for pair in args.grid:
        passes, rate = (float(v) for v in pair.split(","))
        for eps in (args.eps, math.inf):
            plan = None if math.isinf(eps) else labeller.plan_labels(
                Budget(eps, args.delta), 1.0, epochs=passes)
            accuracy = []
            for seed in range(args.seeds):
                model = labeller.LabelModel.fit(
                    x_train, y_train, len(PARTIES), kind, plan=plan,
                    noise=NoiseSource.create(seed, False), learning_rate=rate, epochs=passes)
                accuracy.append(float(np.mean(model.log_probs(x_hold).argmax(1) == y_hold)))
            row = {"passes": passes, "learning_rate": rate, "epsilon": eps,
                   "accuracy": float(np.mean(accuracy)), "per_seed": accuracy}
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": plain_args(args), "embedder": kind,
                                    "n_train": len(train), "n_holdout": len(holdout),
                                    "rows": rows}, indent=2, default=float))


if __name__ == "__main__":
    main()
