"""Benchmark: the generator-aware MAMA-MIA attack against the shadow-model (Groundhog) attack on
dpsynth's marginal generators (mst, aim) at epsilon = 1, 10 and inf, on Adult.

Two parts, both on ``benchmarks/data/adult.csv`` (14 binned columns)::

    python benchmarks/bench_audit_mama.py --out benchmarks/results/audit_mama.json

* ``population``: the attack as an auditor runs it on one release. Per seed, ``--n`` training
  rows (members), ``--n`` held-out rows of the same population (controls) and a disjoint
  ``--n-population`` rows for the attacker; the generator (default parameters) is fitted on the
  members and samples ``--n`` rows. Reported: the AUC of MAMA-MIA (Golob et al., arXiv
  2410.05506; :func:`dpsynth.attacks.mama.mama_membership`) with its Hanley-McNeil interval,
  the same on the rarest 10% of members and controls (rarest population cell over all one- and
  two-way marginals, a population-only rule), TPR at 1% FPR, and the generic density-ratio
  attack DOMIAS on the same data as the baseline.
* ``shadow``: both attacks on the same shadow runs of ``audit_generator`` (5 vulnerable and 5
  random population records and one canary, each in half the runs): pooled AUC with interval
  over the vulnerable targets and over the canary, and the largest per-target epsilon lower
  bound of each. The generators here run with fewer iterations (and AIM with ``rounds = d``)
  to fit the CPU budget; the table says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_audit import ADULT, adult_schema  # noqa: E402

from dpsynth.attacks.generator_audit import ShadowPlan, audit_generator  # noqa: E402
from dpsynth.attacks.generators import DpsynthGenerator  # noqa: E402
from dpsynth.attacks.mama import MamaModel, mama_membership  # noqa: E402
from dpsynth.attacks.membership import domias_membership  # noqa: E402
from dpsynth.attacks.stats import auc_interval  # noqa: E402
from dpsynth.attacks.threat import AuditData  # noqa: E402
from dpsynth.synthesizers import create  # noqa: E402

EPSILONS = (math.inf, 10.0, 1.0)
FAMILIES = ("mst", "aim")
SHADOW_PARAMS = {"mst": {"final_iterations": 60},
                 "aim": {"final_iterations": 60, "round_iterations": 10, "rounds": 14}}


def _eps(e: float) -> str:
    return "inf" if math.isinf(e) else f"{e:g}"


def _rarity(model: MamaModel, codes: np.ndarray) -> np.ndarray:
    """The smallest population count of a row's cells over all one- and two-way marginals."""
    d = codes.shape[1]
    out = np.full(len(codes), np.inf)
    for a in range(d):
        for cols in [(a,), *((a, b) for b in range(a + 1, d))]:
            flat = np.zeros(len(codes), dtype=np.int64)
            for c in cols:
                flat = flat * model.levels[c] + codes[:, c]
            out = np.minimum(out, model._population_counts(cols)[flat])
    return out


def population_part(df: pd.DataFrame, schema: Any, seeds: list[int], n: int,
                    n_population: int) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(df))
        train = df.iloc[order[:n]].reset_index(drop=True)
        holdout = df.iloc[order[n:2 * n]].reset_index(drop=True)
        population = df.iloc[order[2 * n:2 * n + n_population]].reset_index(drop=True)
        for family in FAMILIES:
            for eps in EPSILONS:
                t0 = time.process_time()
                gen = create(family, epsilon=eps, delta=1e-5, random_state=seed)
                gen.fit(train, schema)
                synthetic = gen.sample(n, random_state=seed + 1)
                fit_s = time.process_time() - t0
                data = AuditData.from_frames(train, holdout, synthetic, schema=schema,
                                             reference=population)
                t0 = time.process_time()
                result = mama_membership(data, family=family, epsilon=eps,
                                         threat=None, random_state=seed)
                attack_s = time.process_time() - t0
                model = MamaModel.from_values(data.reference.values, data.encoder,  # type: ignore[union-attr]
                                              family=family, epsilon=eps)
                syn = model.code(data.synthetic.values)
                mem, ctl = model.code(data.train.values), model.code(data.control.values)
                s_mem, s_ctl = model.scores(mem, syn), model.scores(ctl, syn)
                rarity = np.concatenate([_rarity(model, mem), _rarity(model, ctl)])
                jitter = np.random.default_rng(seed).random(rarity.size) * 1e-3
                rare = (rarity + jitter) <= np.quantile(rarity + jitter, 0.1)
                auc_rare, ci_rare = auc_interval(s_mem[rare[:n]], s_ctl[rare[n:]])
                domias = domias_membership(data, random_state=seed)
                row: dict[str, Any] = {
                    "part": "population", "seed": seed, "family": family, "epsilon": _eps(eps),
                    "n_members": n, "n_controls": n, "n_population": n_population,
                    "auc": result.metrics["auc"],
                    "auc_ci": [result.metrics["auc_ci_low"], result.metrics["auc_ci_high"]],
                    "auc_rare": auc_rare, "auc_rare_ci": list(ci_rare),
                    "n_rare_members": int(rare[:n].sum()),
                    "n_rare_controls": int(rare[n:].sum()),
                    "tpr_at_fpr_1pct": result.metrics["tpr_at_fpr_1pct"],
                    "risk": result.risk.value, "risk_ci": list(result.risk.ci),
                    "verdict": result.verdict, "domias_auc": domias.metrics["auc"],
                    "domias_auc_ci": [domias.metrics["auc_ci_low"],
                                      domias.metrics["auc_ci_high"]],
                    "fit_cpu_s": round(fit_s, 2), "mama_cpu_s": round(attack_s, 2),
                }
                rows.append(row)
                print(f"population seed={seed} {family} eps={_eps(eps):>3}: MAMA AUC "
                      f"{row['auc']:.3f} [{row['auc_ci'][0]:.3f}, {row['auc_ci'][1]:.3f}], "
                      f"rare {auc_rare:.3f} [{ci_rare[0]:.3f}, {ci_rare[1]:.3f}], "
                      f"DOMIAS {row['domias_auc']:.3f} | fit {fit_s:.1f} s, "
                      f"MAMA {attack_s:.1f} s", flush=True)
    return rows


def _pooled(report: Any, name: str) -> dict[str, Any]:
    result = next((r for r in report.results if r.attack == name), None)
    if result is None or result.roc is None:
        return {"auc": None, "auc_ci": None, "epsilon_lower": None}
    return {"auc": result.roc.auc, "auc_ci": list(result.roc.auc_ci),
            "epsilon_lower": result.metrics.get("epsilon_lower"),
            "auc_mean": result.metrics.get("auc_mean"), "verdict": result.verdict}


def shadow_part(df: pd.DataFrame, schema: Any, seed: int, n_rows: int,
                runs: int) -> list[dict[str, Any]]:
    population = df.iloc[np.random.default_rng(seed).permutation(len(df))[:4000]]
    population = population.reset_index(drop=True)
    plan = ShadowPlan(n_rows=n_rows, n_vulnerable=5, n_random=5, n_canaries=1,
                      n_shadow_train=runs, n_shadow_test=runs, one_run_canaries=0)
    rows = []
    for family in FAMILIES:
        for eps in EPSILONS:
            gen = DpsynthGenerator(family, schema, epsilon=eps, delta=1e-5,
                                   params=SHADOW_PARAMS[family])
            t0 = time.process_time()
            report = audit_generator(gen, population, plan=plan, random_state=seed, n_jobs=1)
            seconds = time.process_time() - t0
            row: dict[str, Any] = {"part": "shadow", "seed": seed, "family": family,
                                   "epsilon": _eps(eps), "params": SHADOW_PARAMS[family],
                                   "n_rows": n_rows, "runs_train": runs, "runs_test": runs}
            for attack in ("shadow", "mama"):
                for group in ("vulnerable", "random", "canary"):
                    row[f"{attack}_{group}"] = _pooled(report, f"{attack}_membership[{group}]")
            audit = report.generator_audit or {}
            row["epsilon_lower"] = audit["epsilon_lower"]
            row["epsilon_lower_source"] = audit["epsilon_lower_source"]
            row["cpu_s"] = round(seconds, 1)
            rows.append(row)
            sv, mv = row["shadow_vulnerable"], row["mama_vulnerable"]
            sc, mc = row["shadow_canary"], row["mama_canary"]
            print(f"shadow {family} eps={_eps(eps):>3}: vulnerable AUC Groundhog "
                  f"{sv['auc']:.3f} MAMA {mv['auc']:.3f}; canary Groundhog {sc['auc']:.3f} "
                  f"MAMA {mc['auc']:.3f}; eps_lower {row['epsilon_lower']:.3f} "
                  f"({row['epsilon_lower_source']}) | {seconds:.0f} CPU s", flush=True)
    return rows


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The tables of ``docs/benchmarks.md``: per-seed AUCs pooled by mean (and the range of the
    seeds' intervals), and the shadow comparison."""
    out = []
    pop = [r for r in rows if r["part"] == "population"]
    if pop:
        out += ["| generator | ε | MAMA-MIA AUC (mean of seeds; per-seed 95% CI range) | "
                "MAMA-MIA AUC, rarest 10% | TPR at 1% FPR | DOMIAS AUC | risk (verdict) |",
                "|---|---|---|---|---|---|---|"]
        for family in FAMILIES:
            for eps in map(_eps, EPSILONS):
                sel = [r for r in pop if r["family"] == family and r["epsilon"] == eps]
                if not sel:
                    continue
                lo = min(r["auc_ci"][0] for r in sel)
                hi = max(r["auc_ci"][1] for r in sel)
                rlo = min(r["auc_rare_ci"][0] for r in sel)
                rhi = max(r["auc_rare_ci"][1] for r in sel)
                verdicts = ", ".join(f"{r['risk']:+.3f} ({r['verdict']})" for r in sel)
                out.append(
                    f"| {family} | {eps} | {np.mean([r['auc'] for r in sel]):.3f} "
                    f"({lo:.3f}–{hi:.3f}) | {np.mean([r['auc_rare'] for r in sel]):.3f} "
                    f"({rlo:.3f}–{rhi:.3f}) | "
                    f"{np.mean([r['tpr_at_fpr_1pct'] for r in sel]):.3f} | "
                    f"{np.mean([r['domias_auc'] for r in sel]):.3f} | {verdicts} |")
    shadow = [r for r in rows if r["part"] == "shadow"]
    if shadow:
        out += ["", "| generator | ε | Groundhog AUC, vulnerable | MAMA-MIA AUC, vulnerable | "
                "Groundhog AUC, canary | MAMA-MIA AUC, canary | ε lower bound (source) | "
                "CPU s |", "|---|---|---|---|---|---|---|---|"]
        for r in shadow:
            cells = []
            for key in ("shadow_vulnerable", "mama_vulnerable", "shadow_canary",
                        "mama_canary"):
                auc = r[key]["auc"]
                cells.append("n/a" if auc is None else f"{auc:.3f}{_ci(r[key]['auc_ci'])}")
            out.append(f"| {r['family']} | {r['epsilon']} | " + " | ".join(cells) +
                       f" | {r['epsilon_lower']:.3f} ({r['epsilon_lower_source']}) | "
                       f"{r['cpu_s']:.0f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=2000, help="members (and controls) per seed")
    parser.add_argument("--n-population", type=int, default=10000)
    parser.add_argument("--shadow-rows", type=int, default=300)
    parser.add_argument("--shadow-runs", type=int, default=40, help="training and test runs")
    parser.add_argument("--parts", nargs="*", default=["population", "shadow"])
    parser.add_argument("--out", default=None, help="JSON file for the rows")
    parser.add_argument("--summarize", default=None,
                        help="print the Markdown tables of this results file and stop")
    args = parser.parse_args()
    if args.summarize:
        print(markdown(json.loads(Path(args.summarize).read_text())["rows"]))
        return
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    df = pd.read_csv(ADULT / "adult.csv")
    schema = adult_schema(json.loads((ADULT / "adult-domain.json").read_text()))
    t0 = time.process_time()
    rows = []
    if "population" in args.parts:
        rows += population_part(df, schema, args.seeds, args.n, args.n_population)
    if "shadow" in args.parts:
        rows += shadow_part(df, schema, args.seeds[0], args.shadow_rows, args.shadow_runs)
    total = time.process_time() - t0
    print(f"total {total:.0f} CPU s")
    print(markdown(rows))
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "cpu_s": round(total, 1),
                                              "args": vars(args)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
