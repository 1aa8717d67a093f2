"""Mapping a private table into a released domain: clipping to bounds, unreleased categories
to :data:`OTHER`. Row-local post-processing of a public (declared or DP-released) domain."""

from __future__ import annotations

import math

import pandas as pd

from dpsynth.schema import BOUNDED_KINDS, CATEGORY_KINDS, Column, Schema

#: The explicit category that values outside a discovered category list map to.
OTHER = "__other__"


def map_to_domain(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A copy of ``df`` mapped into the domain of ``schema``.

    Category values outside a category list that contains :data:`OTHER` become ``OTHER``;
    numbers and dates are clipped into the column's bounds. Both are part of the DP design
    (the discovered domain is released, and the generator must stay inside it). Columns
    without ``OTHER`` are left as they are, so :meth:`Schema.validate` still reports values
    outside a declared list. Missing values are kept.
    """
    out = df.copy()
    for column in schema.columns:
        if column.name not in out.columns:
            continue
        series = out[column.name]
        if column.kind in CATEGORY_KINDS and column.categories and OTHER in column.categories:
            allowed = list(set(column.categories) | {str(c) for c in column.categories})
            outside = series.notna() & ~series.isin(allowed)
            if outside.any():
                out[column.name] = series.astype(object).where(~outside, OTHER)
        elif column.kind in BOUNDED_KINDS and column.lower is not None \
                and column.upper is not None:
            out[column.name] = clip_column(column, series)
    return out


def clip_column(column: Column, series: pd.Series) -> pd.Series:
    """``series`` clipped into the column's bounds; text that parses (dates or numbers
    stored as strings) is parsed first; anything else is left for validation to report."""
    if column.kind == "datetime":
        if not pd.api.types.is_datetime64_any_dtype(series):
            parsed = pd.to_datetime(series, errors="coerce")
            if int(parsed.isna().sum()) != int(series.isna().sum()):
                return series
            series = parsed
        lo, hi = pd.Timestamp(column.lower), pd.Timestamp(column.upper)
        tz = getattr(series.dt, "tz", None)
        if tz is not None:
            lo = lo.tz_localize(tz) if lo.tz is None else lo
            hi = hi.tz_localize(tz) if hi.tz is None else hi
        return series.clip(lo, hi)
    if pd.api.types.is_bool_dtype(series):
        return series
    if not pd.api.types.is_numeric_dtype(series):
        parsed = pd.to_numeric(series, errors="coerce")
        if int(parsed.isna().sum()) != int(series.isna().sum()):
            return series
        series = parsed
    lo_f, hi_f = column.bound_values()
    if column.kind == "integer":
        return series.clip(math.ceil(lo_f), math.floor(hi_f))
    return series.clip(lo_f, hi_f)


__all__ = ["OTHER", "clip_column", "map_to_domain"]
