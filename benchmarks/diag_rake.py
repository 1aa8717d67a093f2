"""Diagnostic: how much of dpar's 3-way TVD on a wide table is error in its 1-way marginals?

Declared (twenty-sixth session, before any run). On the wide evaluation tables at epsilon = 4,
dpar's 1-way TVD is about four times aim's (adult-wide 0.012 against 0.003, loans-wide 0.030
against 0.018), and its 3-way TVD 0.041 against 0.023. If much of the 3-way error is 1-way
error, a small share of the budget spent on measuring the 1-way marginals (cheap: one
histogram per column) and a post-processing step that matches dpar's samples to them could
close part of the gap.

The step: draw ``MULTIPLE`` x n candidate rows from the fitted dpar, weight them by iterative
proportional fitting (raking, Deming and Stephan 1940) so that their weighted 1-way
histograms (the evaluation's bins: numeric columns in 20 bins on the declared bounds) match
the target counts, and draw n rows with those weights. Targets:

* ``oracle``: the training rows' exact counts (no privacy; an upper bound on the gain);
* ``noisy``: those counts plus Gaussian noise of ``sigma`` per cell, the noise a Gaussian
  mechanism would add for all 1-way histograms at 5 % of dpar's zCDP-equivalent budget
  (rho = 0.013 at epsilon = 4, delta = 1e-5; L2 sensitivity sqrt(columns)), negatives set to
  0. The budget is *not* taken from dpar's run here: this is a diagnostic only.

Tuning table only: ``randhie-wide`` (44 columns, 12,000 training rows), epsilon = 4, seeds 0
and 1; also HMDA at epsilon = 1 (a narrow tuning table, where the tenth session found that
exact raking to noisy counts hurt). Rule (declared): a library lever is built only if
``noisy`` lowers the mean 3-way TVD on randhie-wide by at least 20 % without lowering the mean
TSTR by more than 0.01.

    OMP_NUM_THREADS=1 python benchmarks/diag_rake.py randhie-wide 4 0 1
    OMP_NUM_THREADS=1 python benchmarks/diag_rake.py hmda 1 0 1
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from bench_table_models import DELTA, LOADERS, broken, split  # noqa: E402

from dpsynth.evaluate import average_tvd, tstr_auc  # noqa: E402
from dpsynth.evaluate.fidelity import discretize  # noqa: E402

MULTIPLE = 5
SWEEPS = 30
RHO_SHARE = 0.05


def rho_of(epsilon: float, delta: float) -> float:
    """The zCDP rho whose standard conversion gives (epsilon, delta) (Bun and Steinke 2016)."""
    lo, hi = 0.0, epsilon
    for _ in range(100):
        mid = (lo + hi) / 2
        if mid + 2 * math.sqrt(mid * math.log(1 / delta)) > epsilon:
            hi = mid
        else:
            lo = mid
    return lo


def rake(codes: np.ndarray, targets: list[np.ndarray], sweeps: int = SWEEPS) -> np.ndarray:
    """Weights on the candidate rows (``codes``: rows x columns of bin indices) whose weighted
    1-way histograms approach ``targets`` (one vector of counts per column)."""
    w = np.ones(len(codes))
    for _ in range(sweeps):
        for j, target in enumerate(targets):
            have = np.bincount(codes[:, j], weights=w, minlength=len(target))
            want = target / max(target.sum(), 1e-12) * w.sum()
            factor = np.where(have > 0, want / np.maximum(have, 1e-12), 1.0)
            w = w * np.clip(factor, 0.05, 20.0)[codes[:, j]]
    return w


def main() -> None:
    import torch

    from dpsynth.synthesizers.ar import DPARSynthesizer

    torch.set_num_threads(1)
    name, eps, seeds = sys.argv[1], float(sys.argv[2]), [int(s) for s in sys.argv[3:]]
    table = LOADERS[name]()
    s = table.schema
    for seed in seeds:
        train, test = split(table, seed)
        synth = DPARSynthesizer(epsilon=eps, delta=DELTA, random_state=seed).fit(train, s)
        n = len(train)
        pool = synth.sample(MULTIPLE * n, random_state=seed)
        real_codes = discretize(train, s).to_numpy() + 1  # 0: null
        pool_codes = discretize(pool, s).to_numpy() + 1
        sizes = [int(max(real_codes[:, j].max(), pool_codes[:, j].max())) + 1
                 for j in range(real_codes.shape[1])]
        exact = [np.bincount(real_codes[:, j], minlength=k).astype(float)
                 for j, k in enumerate(sizes)]
        sigma = math.sqrt(len(sizes)) / math.sqrt(2 * RHO_SHARE * rho_of(eps, DELTA))
        rng = np.random.default_rng(10_000 + seed)
        noisy = [np.maximum(t + rng.normal(0, sigma, len(t)), 0.0) for t in exact]
        variants: dict[str, pd.DataFrame] = {"plain": pool.iloc[:n].reset_index(drop=True)}
        for label, targets in (("oracle", exact), ("noisy", noisy)):
            w = rake(pool_codes, targets)
            pick = rng.choice(len(pool), size=n, replace=True, p=w / w.sum())
            variants[label] = pool.iloc[pick].reset_index(drop=True)
        for label, rows in variants.items():
            print(json.dumps({
                "table": name, "epsilon": eps, "seed": seed, "variant": label,
                "sigma": round(sigma, 1) if label == "noisy" else None,
                "tvd1": round(average_tvd(train, rows, s, way=1), 4),
                "tvd2": round(average_tvd(train, rows, s, way=2), 4),
                "tvd3": round(average_tvd(train, rows, s, way=3, max_marginals=200), 4),
                "tstr": round(tstr_auc(rows, test, s, table.target, positive=table.positive), 4),
                "broken": {k: round(broken(rows, p, c), 4) for k, p, c in table.implications},
                "distinct": round(len(rows.drop_duplicates()) / len(rows), 4),
            }), flush=True)


if __name__ == "__main__":
    main()
