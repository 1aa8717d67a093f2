"""Clipping to the declared public bounds (``--clip``): row-local, so it costs no budget.

A value outside its column's declared ``[lower, upper]`` is moved to the nearest bound. Each
row is changed on its own, using only public bounds, so the table's neighbouring relation is
unchanged and the DP guarantee of the fit that follows is intact. The count clipped per column
is recorded as a filter on the card.
"""

from __future__ import annotations

import pandas as pd

from dpsynth.data.domain import clip_column
from dpsynth.schema import Schema

CLIPPABLE = ("integer", "numeric", "datetime")


def clip_to_bounds(data: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, dict[str, int]]:
    """``data`` with every value outside its declared bounds clipped, and the count per
    column (only columns with at least one clipped value)."""
    out = data.copy()
    counts: dict[str, int] = {}
    for col in schema.data_columns:
        if col.kind not in CLIPPABLE or col.lower is None or col.upper is None \
                or col.name not in out:
            continue
        if col.kind == "datetime":
            values = pd.to_datetime(out[col.name], errors="coerce")
            lo, hi = pd.Timestamp(col.lower), pd.Timestamp(col.upper)
        else:
            values = pd.to_numeric(out[col.name], errors="coerce")
            lo, hi = col.lower, col.upper
        outside = (values < lo) | (values > hi)
        n = int(outside.sum())
        if n:  # the same clipping as the DP domain mapping (integers inward, time zones kept)
            out[col.name] = clip_column(col, out[col.name])
            counts[col.name] = n
    return out, counts


def clip_filter(counts: dict[str, int]) -> str:
    """The card's line for the clip filter."""
    return (f"clip: values outside the declared public bounds were clipped to them before the "
            f"fit (row-local, no privacy cost); values clipped per column: {counts}")


__all__ = ["clip_filter", "clip_to_bounds"]
