"""White-box audits of MST and AIM at epsilon 1, 4 and 10, and of planted bugs (issue 15).

Usage (from the repository root)::

    python benchmarks/bench_audit_white_box.py correct --synthesizer mst [--fits 2000]
        [--epsilons 1 4 10]
    python benchmarks/bench_audit_white_box.py planted [--fits 300] [--epsilons 1 4 10]

* ``correct``: :func:`dpsynth.attacks.white_box.white_box_audit` of the synthesizer as shipped,
  at epsilon 1, 4 and 10 (delta 1e-5), ``--fits`` fits on each of the two neighbouring tables
  (20 rows and 3 columns, plus the canary). Reports the lower bounds (GDP fit and
  Clopper-Pearson), the epsilon of the measurements the canary touches (the most this
  statistic can show), the ratio to the claim, the power against a halved noise scale and the
  CPU time.
* ``planted``: MST with its noise halved, MST counting each record twice (sensitivity 2
  accounted as 1) and MST reading its numeric bounds from the data (run with the numeric
  canary column), beside the correct MST, at the same three epsilons.

``--jobs N`` fans the fits out over N processes (same result); ``--tag`` names the file;
``--params JSON`` passes constructor parameters (e.g. MST's paper split:
``'{"select_share": 0.3333333333333333, "first_share": 0.3333333333333333}'``).

Results go to ``benchmarks/results/audit_white_box_<mode>[_<synthesizer>].json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from dpsynth.attacks.white_box import white_box_audit  # noqa: E402

EPSILONS = (1.0, 4.0, 10.0)


def row(name: str, epsilon: float, fits: int, registry: dict | None = None, jobs: int = 1,
        numeric: bool = False, params: dict | None = None) -> dict:
    began = time.perf_counter()
    audit = white_box_audit(name, epsilon=epsilon, n_fits=fits, registry=registry,
                            n_jobs=jobs, numeric=numeric, params=params)
    out = audit.to_dict()
    keep = ("synthesizer", "accounted_epsilon", "n_fits", "mu_hat", "mu_ci", "mu_planned",
            "epsilon_lower", "epsilon_lower_gdp", "epsilon_ci", "epsilon_lower_cp",
            "epsilon_planned", "epsilon_lower_domain", "domain_leak", "power_half_noise",
            "cpu_seconds", "violated")
    result = {k: out[k] for k in keep} | {
        "ratio": out["epsilon_lower"] / epsilon, "jobs": jobs, "numeric_column": numeric,
        "params": params or {},
        "wall_seconds": round(time.perf_counter() - began, 1)}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("correct", "planted"))
    parser.add_argument("--synthesizer", default="mst")
    parser.add_argument("--fits", type=int, default=None)
    parser.add_argument("--epsilons", type=float, nargs="+", default=list(EPSILONS))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the fits")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    parser.add_argument("--params", type=json.loads, default={},
                        help="JSON object of constructor parameters of the audited synthesizer")
    args = parser.parse_args()
    if args.mode == "correct":
        rows = [row(args.synthesizer, e, args.fits or 2000, jobs=args.jobs, params=args.params)
                for e in args.epsilons]
        name = f"audit_white_box_correct_{args.synthesizer}{args.tag}.json"
    else:
        from planted_mechanisms import DataBoundsMST, DoubleCountMST, HalfNoiseMST

        from dpsynth.synthesizers.marginal.mst import MSTSynthesizer

        registry = {"mst": MSTSynthesizer, "mst-half-noise": HalfNoiseMST,
                    "mst-double-count": DoubleCountMST, "mst-data-bounds": DataBoundsMST}
        rows = [row(n, e, args.fits or 300, registry, args.jobs,
                    numeric=n == "mst-data-bounds", params=args.params)
                for e in args.epsilons for n in registry]
        name = f"audit_white_box_planted{args.tag}.json"
    result = {"command": " ".join(sys.argv), "rows": rows}
    (ROOT / "benchmarks" / "results" / name).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
