"""Fidelity: how close synthetic marginals are to real ones.

Columns are discretised on the *schema's* domain (categories as declared; numeric columns in
``bins`` equal-width bins between the declared bounds; nulls as their own value), so the metric
reads nothing from the data beyond counts and is comparable across generators.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from dpsynth.errors import param_error
from dpsynth.schema import CATEGORY_KINDS, Column, Schema


def discretize(df: pd.DataFrame, schema: Schema, *, bins: int = 20) -> pd.DataFrame:
    """Integer codes per column on the declared domain; -1 marks nulls and unknown categories."""
    out = {}
    for col in schema.data_columns:
        if col.kind == "text" or col.name not in df.columns:
            continue
        out[col.name] = _codes(df[col.name], col, bins)
    return pd.DataFrame(out, index=df.index)


def _codes(s: pd.Series, col: Column, bins: int) -> np.ndarray:
    if col.kind in CATEGORY_KINDS:
        if col.categories is None:
            cats = sorted(pd.unique(s.dropna().astype(str)))
        else:
            cats = [str(c) for c in col.categories]
        lookup = {c: i for i, c in enumerate(cats)}
        return np.array([-1 if pd.isna(v) else lookup.get(str(v), -1) for v in s], dtype=np.int64)
    if col.kind == "datetime":
        values = pd.to_datetime(s, errors="coerce").astype("datetime64[ns]").astype("int64")
        values = values.astype(float).where(s.notna())
    else:
        values = pd.to_numeric(s, errors="coerce").astype(float)
    if col.lower is not None and col.upper is not None:
        lo, hi = col.bound_values()
    else:
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    edges = np.linspace(lo, hi, bins + 1)[1:-1]
    codes = np.searchsorted(edges, np.clip(values.to_numpy(), lo, hi), side="right")
    return np.where(np.isnan(values.to_numpy()), -1, codes).astype(np.int64)


def marginal_tvd(real: pd.DataFrame, synth: pd.DataFrame, columns: Sequence[str]) -> float:
    """Total-variation distance between the two empirical marginals over ``columns``."""
    cols = list(columns)
    p = real.groupby(cols, dropna=False).size() / len(real)
    q = synth.groupby(cols, dropna=False).size() / len(synth)
    p, q = p.align(q, fill_value=0.0)
    return float(0.5 * np.abs(p.to_numpy() - q.to_numpy()).sum())


def average_tvd(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, *, way: int = 1,
                bins: int = 20, max_marginals: int | None = None,
                random_state: int | None = 0) -> float:
    """Average TVD over all ``way``-way marginals (a random subset if ``max_marginals``)."""
    if way < 1:
        raise param_error("way", "an integer >= 1", way, "average_tvd")
    if len(real) == 0 or len(synth) == 0:
        raise param_error("real/synth", "non-empty frames", (len(real), len(synth)),
                          "average_tvd")
    r, s = discretize(real, schema, bins=bins), discretize(synth, schema, bins=bins)
    combos = list(itertools.combinations(r.columns, way))
    if max_marginals is not None and len(combos) > max_marginals:
        rng = np.random.default_rng(random_state)
        idx = rng.choice(len(combos), size=max_marginals, replace=False)
        combos = [combos[i] for i in sorted(idx)]
    return float(np.mean([marginal_tvd(r, s, c) for c in combos]))


def fidelity_report(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, *,
                    bins: int = 20) -> dict[str, float]:
    """1-, 2- (and 3-way when the table is small) average TVD."""
    out = {
        "tvd_1way": average_tvd(real, synth, schema, way=1, bins=bins),
        "tvd_2way": average_tvd(real, synth, schema, way=2, bins=bins),
    }
    n_cols = len(discretize(real.head(1), schema, bins=bins).columns)
    if n_cols >= 3:
        out["tvd_3way"] = average_tvd(real, synth, schema, way=3, bins=bins, max_marginals=200)
    return out
