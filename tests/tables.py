"""Small hand-made tables shared by the synthesizer tests (import as ``from tables import ...``;
``tests/`` is on the path through the root ``conftest.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpsynth.schema import Column, Schema


def every_kind_table(seed: int = 0, n: int = 400) -> tuple[pd.DataFrame, Schema]:
    """A hand-made table with skewed marginals, every column kind and a nullable column."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue", "grey"], size=n, p=[0.7, 0.2, 0.07, 0.03])
    size = rng.choice([1, 2, 3], size=n, p=[0.1, 0.15, 0.75])
    flag = rng.choice([False, True], size=n, p=[0.85, 0.15])
    age = np.clip(np.round(rng.normal(30, 4, size=n)), 18, 90).astype(np.int64)
    score = np.clip(rng.normal(3.0, 1.0, n), 0.0, 10.0)
    score[rng.random(n) < 0.1] = np.nan
    day = pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 60, n), unit="D")
    df = pd.DataFrame({"id": np.arange(n), "colour": colour, "size": size, "flag": flag,
                       "age": age, "score": score, "day": day})
    schema = Schema((
        Column("id", "identifier"),
        Column("colour", "categorical", categories=("red", "green", "blue", "grey")),
        Column("size", "ordinal", categories=(1, 2, 3)),
        Column("flag", "categorical", categories=(False, True)),
        Column("age", "integer", lower=18, upper=90),
        Column("score", "numeric", lower=0.0, upper=10.0, nullable=True),
        Column("day", "datetime", lower="2019-01-01", upper="2021-01-01"),
    ))
    schema.validate(df)
    return df, schema


def workers_schema(jobs: tuple[str, ...] = ("a", "b", "c", "d")) -> Schema:
    """The public schema of :func:`workers_table` (every domain declared, so it streams)."""
    return Schema((
        Column("age", "integer", lower=17, upper=90, public=True),
        Column("hours", "numeric", lower=0.0, upper=100.0, public=True, nullable=True),
        Column("job", "categorical", categories=jobs, public=True),
        Column("kids", "ordinal", categories=(0, 1, 2, 3), public=True),
    ))


def workers_table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Four dependent columns of every numeric kind, 5 % of ``hours`` missing."""
    rng = np.random.default_rng(seed)
    age = rng.integers(17, 91, n)
    job = np.where(age > 50, rng.choice(["a", "b"], n), rng.choice(["c", "d", "a"], n))
    hours = np.round(rng.normal(40, 10, n).clip(0, 100), 1)
    hours[rng.random(n) < 0.05] = np.nan
    kids = np.minimum(3, (age - 17) // 15 + rng.integers(0, 2, n))
    return pd.DataFrame({"age": age, "hours": hours, "job": job, "kids": kids})


def copied_table(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    """``twin`` equals ``first`` in every row; ``noise`` is independent of both (a planted
    dependency for the DP-SGD table models)."""
    rng = np.random.default_rng(seed)
    first = rng.choice(list("abcdef"), size=n, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    df = pd.DataFrame({"noise": rng.integers(0, 5, n), "first": first, "twin": first})
    levels = tuple("abcdef")
    schema = Schema((Column("noise", "integer", lower=0, upper=4),
                     Column("first", "categorical", categories=levels),
                     Column("twin", "categorical", categories=levels)))
    return df, schema
