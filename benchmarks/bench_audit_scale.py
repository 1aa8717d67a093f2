"""The audit at scale (issue 19, item 4): CPU-seconds and peak memory of ``run_audit`` at
100,000 and 1,000,000 rows, against the all-pairs path as the baseline where it fits.

Usage (from the repository root)::

    python benchmarks/bench_audit_scale.py --rows 100000 1000000 --baseline-rows 100000

Each size is audited twice: the safe case (the synthetic table an independent draw: the
verdict must be "no risk found") and a planted leak (1 % of the synthetic rows replaced by
training rows verbatim: the verdict must be "leak"). ``--baseline-rows`` sizes are also audited
by the all-pairs code of ``--baseline-ref`` (a git revision, extracted to a temporary folder),
in the same run, for the ratio. ``knn`` times the search choices the index was chosen by:
2,000 queries into the 100,000-row synthetic embedding by all pairs, the blocked index, and
scikit-learn's k-d and ball trees. Results: ``benchmarks/results/audit_scale.json``.

Tables: Adult (``benchmarks/data/adult.csv``) split in three disjoint thirds; the training
table, the holdout and the synthetic table are each resampled from their own third to
``--rows`` rows, numeric columns de-binned with uniform jitter (so rows are not duplicates),
categorical codes as labels, and one derived numeric column with 5 % missing values: 15 mixed
columns. Each audit runs in its own child process: CPU-seconds are its process time (all
threads), peak memory its ``ru_maxrss``, beside the resident size once the tables are built.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

if "DPSYNTH_BENCH_BASELINE" not in os.environ:  # the baseline child imports the old tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path(__file__).resolve().parent / "data" / "adult.csv"
RESULTS = Path(__file__).resolve().parent / "results"
ORDINAL = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")


def _resample(third: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = third.iloc[rng.integers(len(third), size=n)].reset_index(drop=True)
    out = pd.DataFrame(index=range(n))
    for name in third.columns:
        col = rows[name].to_numpy()
        if name in ORDINAL:
            out[name] = col + rng.uniform(-0.5, 0.5, size=n)
        else:
            out[name] = pd.Series(np.char.add(f"{name[:3]}_", col.astype(str)), dtype=object)
    derived = np.log1p(out["hours-per-week"].abs().to_numpy()) + rng.normal(0, 0.1, size=n)
    derived[rng.random(n) < 0.05] = np.nan
    out["derived_num"] = derived
    return out


def scale_tables(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Training, holdout and synthetic tables of ``n`` rows each (15 mixed columns).

    The three are independent draws from one population (Adult rows resampled with jitter), so
    the audit of this synthetic table must find no risk; the continuous jitter makes the
    tables disjoint (no row of one equals a row of another; :func:`main` checks it). Drawing
    them from disjoint thirds of Adult would not do: each table would then hold jittered twins
    of its own rows that the others lack, which the holdout-based attacks rightly tell apart.
    """
    adult = pd.read_csv(DATA)
    rng = np.random.default_rng(seed)
    train, holdout, synthetic = (_resample(adult, n, rng) for _ in range(3))
    return train, holdout, synthetic


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int, case: str, seed: int) -> dict:
    """One audit in this process (run by :func:`main` in a child)."""
    from dpsynth.attacks import run_audit

    train, holdout, synthetic = scale_tables(n, seed)
    if case == "leak":
        k = n // 100
        rng = np.random.default_rng(seed + 1)
        rows = rng.choice(n, size=k, replace=False)
        synthetic.iloc[rows[: k // 2]] = train.iloc[rng.choice(n, size=k // 2,
                                                                replace=False)].to_numpy()
        synthetic.iloc[rows[k // 2:]] = train.iloc[rng.choice(n, size=k - k // 2,
                                                               replace=False)].to_numpy()
    tables_mb = _rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    report = run_audit(train, holdout, synthetic, random_state=seed)
    return {"rows": n, "case": case, "cpu_seconds": round(time.process_time() - cpu, 1),
            "wall_seconds": round(time.perf_counter() - wall, 1),
            "peak_rss_mb": round(_rss_mb()), "rss_after_tables_mb": round(tables_mb),
            "verdict": report.verdict,
            "flagged": [r.attack for r, f in zip(report.results, report.flags, strict=True)
                        if f],
            "sampling": report.data.get("sampling"),
            "attacks": {r.attack: {"wall_seconds": r.seconds, "n_targets": r.n_targets,
                                   "risk_ci": [round(r.risk.ci[0], 4), round(r.risk.ci[1], 4)]}
                        for r in report.results}}


def knn(n: int, seed: int) -> dict:
    """2,000 queries into an ``n``-row synthetic embedding by each search."""
    from sklearn.neighbors import BallTree, KDTree

    from dpsynth.attacks.distance import NeighbourIndex, nearest
    from dpsynth.attacks.threat import AuditData

    data = AuditData.from_frames(*scale_tables(n, seed))
    queries = data.train.x[np.random.default_rng(seed).choice(n, 2000, replace=False)]
    pool = data.synthetic.x
    out: dict = {"rows": n, "queries": 2000, "coordinates": int(pool.shape[1])}
    cpu = time.process_time()
    reference = nearest(queries, pool)[0]
    out["all_pairs_cpu_seconds"] = round(time.process_time() - cpu, 2)
    cpu = time.process_time()
    found = NeighbourIndex(pool).nearest(queries)[0]
    out["index_cpu_seconds"] = round(time.process_time() - cpu, 2)
    out["index_max_abs_difference"] = float(np.abs(found - reference).max())
    for name, cls in (("kd_tree", KDTree), ("ball_tree", BallTree)):
        cpu = time.process_time()
        tree = cls(pool)
        dist = tree.query(queries, k=1)[0]
        out[f"{name}_cpu_seconds"] = round(time.process_time() - cpu, 2)
        out[f"{name}_max_abs_difference"] = float(np.abs(dist - reference).max())
    return out


def _run_child(args: list[str], pythonpath: str, baseline: bool = False) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    if baseline:
        env["DPSYNTH_BENCH_BASELINE"] = "1"
    done = subprocess.run([sys.executable, __file__, *args], env=env, check=True,
                          capture_output=True, text=True)
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--baseline-rows", type=int, nargs="*", default=[100_000])
    parser.add_argument("--baseline-ref", default="a636599")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "audit_scale.json")
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "CASE"), help=argparse.SUPPRESS)
    parser.add_argument("--knn", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.seed)))
        return
    if args.knn:
        print(json.dumps(knn(args.knn, args.seed)))
        return
    root = Path(__file__).resolve().parents[1]
    here = str(root)
    results: dict = {"command": "python benchmarks/bench_audit_scale.py " + " ".join(
        sys.argv[1:]), "cpus": os.cpu_count(), "runs": [], "baseline": []}
    results["knn"] = _run_child(["--knn", "100000", "--seed", str(args.seed)], here)
    for n in args.rows:
        for case in ("safe", "leak"):
            results["runs"].append(_run_child(["--child", str(n), case, "--seed",
                                               str(args.seed)], here))
    if args.baseline_rows:
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(["git", "-C", here, "archive", args.baseline_ref,
                                      "dpsynth"], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            for n in args.baseline_rows:
                old = _run_child(["--child", str(n), "safe", "--seed", str(args.seed)],
                                 f"{tmp}{os.pathsep}{here}", baseline=True)
                new = next(r for r in results["runs"] if r["rows"] == n and r["case"] == "safe")
                old["ref"] = args.baseline_ref
                old["cpu_ratio_old_over_new"] = round(old["cpu_seconds"] / new["cpu_seconds"],
                                                      1)
                results["baseline"].append(old)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
