"""White-box audits of the DP-SGD generators (dpvae, dptext) at epsilon 4 and 10 (issue 15).

Usage (from the repository root)::

    python benchmarks/bench_audit_white_box_dpsgd.py validity
    python benchmarks/bench_audit_white_box_dpsgd.py correct [--fits 1000] [--epsilons 4 10]
        [--synthesizers dpvae dptext]
    python benchmarks/bench_audit_white_box_dpsgd.py planted [--fits 300] [--epsilons 4 10]

* ``validity``: the GDP fit of both statistics of
  :func:`dpsynth.attacks.white_box_dpsgd.statistics` on the *ideal* Poisson-subsampled
  Gaussian mechanism (simulated, 20,000 runs per side, no confidence interval), over sampling
  rates 0.1 to 1, 1 to 200 steps and epsilon 4 and 10 at delta 1e-5, beside the PLD
  accountant's epsilon: a correct mechanism must never fit above its claim.
* ``correct``: :func:`~dpsynth.attacks.white_box_dpsgd.dpsgd_white_box_audit` of dpvae and
  dptext as shipped (tiny models, ``D`` of 9 rows plus the canary, 20 steps at rate 1/2),
  ``--fits`` fits on each table. Reports mu with its interval, the lower bounds (GDP fit and
  Clopper-Pearson), the ratio to the claim, what a perfect audit of the statistic shows, the
  power against a halved noise scale and the CPU time.
* ``planted``: the same generators with half the planned noise and with fixed-size shuffled
  batches accounted as Poisson (``tests/planted_mechanisms.py``), beside the correct ones.

Results go to ``benchmarks/results/audit_white_box_dpsgd_<mode>[_<synthesizers>].json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from dpsynth.accounting import calibrate_dpsgd_noise  # noqa: E402
from dpsynth.attacks.white_box import gdp_epsilon  # noqa: E402
from dpsynth.attacks.white_box_dpsgd import (  # noqa: E402
    dpsgd_white_box_audit,
    ideal_updates,
    separation,
    statistics,
)

EPSILONS = (4.0, 10.0)


def validity(epsilons: list[float]) -> list[dict]:
    rows = []
    for epsilon in epsilons:
        for q in (0.1, 0.25, 0.5, 1.0):
            for epochs in (1, 2, 5, 10, 20):
                steps = max(1, math.ceil(epochs / q - 1e-9))
                if steps > 200:
                    continue
                sigma = calibrate_dpsgd_noise(epsilon, 1e-5, sample_rate=q, steps=steps)
                n_others = 9
                scores = statistics(ideal_updates(q, steps, sigma, n_others, n=20000), q,
                                    sigma, n_others)
                fitted = [gdp_epsilon(max(separation(scores[..., k]), 0.0), 1e-5)
                          for k in range(2)]
                row = {"epsilon": epsilon, "sample_rate": q, "steps": steps,
                       "noise_multiplier": sigma, "epsilon_fit_canary": fitted[0],
                       "epsilon_fit_displacement": fitted[1],
                       "ratio_canary": fitted[0] / epsilon}
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def row(name: str, epsilon: float, fits: int, registry: dict | None = None) -> dict:
    audit = dpsgd_white_box_audit(name, epsilon=epsilon, n_fits=fits, registry=registry)
    out = audit.to_dict()
    keep = ("synthesizer", "accounted_epsilon", "n_fits", "mu_hat", "mu_ci", "mu_planned",
            "epsilon_lower", "epsilon_lower_gdp", "epsilon_ci", "epsilon_lower_cp",
            "epsilon_planned", "power_half_noise", "cpu_seconds", "violated")
    result = ({k: out[k] for k in keep} | {"ratio": out["epsilon_lower"] / epsilon}
              | {"statistic": out["params"]["statistic"], "other": out["params"]["other"],
                 "noise_multiplier": out["params"]["noise_multiplier"]})
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("validity", "correct", "planted"))
    parser.add_argument("--synthesizers", nargs="+", default=["dpvae", "dptext"])
    parser.add_argument("--fits", type=int, default=None)
    parser.add_argument("--epsilons", type=float, nargs="+", default=list(EPSILONS))
    args = parser.parse_args()
    if args.mode == "validity":
        rows = validity(args.epsilons)
    elif args.mode == "correct":
        rows = [row(s, e, args.fits or 1000) for s in args.synthesizers for e in args.epsilons]
    else:
        from planted_mechanisms import DPSGD_REGISTRY

        names = [n for s in args.synthesizers for n in (s, f"{s}-half-noise", f"{s}-shuffled")]
        rows = [row(n, e, args.fits or 300, DPSGD_REGISTRY) for e in args.epsilons
                for n in names]
    result = {"command": " ".join(sys.argv), "rows": rows}
    suffix = "" if args.mode == "validity" else "_" + "_".join(args.synthesizers)
    name = f"audit_white_box_dpsgd_{args.mode}{suffix}.json"
    (ROOT / "benchmarks" / "results" / name).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
