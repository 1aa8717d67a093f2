"""Turn a table into integer codes on its declared public domain, and codes back into values.

Categorical and ordinal columns get one code per declared category. Numeric, integer and
datetime columns are cut into equal-width bins between their declared (or DP-discovered)
bounds; integer columns with fewer distinct values than bins get one bin per value. Decoding
draws a value uniformly within the bin. A nullable column gets one more code for the missing
value, so nulls are modelled like any other value. Only the schema decides the codes: nothing
here reads the private data beyond encoding it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.errors import SchemaError
from dpsynth.schema import BOUNDED_KINDS, CATEGORY_KINDS, Column, Schema


@dataclass(frozen=True)
class ColumnCodec:
    """Codes of one column: ``categories`` or bin ``edges``, plus a null code when nullable."""

    name: str
    kind: str
    categories: tuple[Any, ...] | None = None
    edges: tuple[float, ...] | None = None
    nullable: bool = False

    @property
    def n_values(self) -> int:
        """Codes for values (bins or categories), the null code excluded."""
        if self.categories is not None:
            return len(self.categories)
        assert self.edges is not None
        return len(self.edges) - 1

    @property
    def size(self) -> int:
        return self.n_values + int(self.nullable)

    @classmethod
    def from_column(cls, column: Column, n_bins: int) -> ColumnCodec:
        if column.kind in CATEGORY_KINDS:
            if column.categories is None:
                raise SchemaError(f"Column {column.name!r} has no declared categories.")
            return cls(column.name, column.kind, categories=tuple(column.categories),
                       nullable=column.nullable)
        if column.kind not in BOUNDED_KINDS:
            raise SchemaError(f"Column {column.name!r} of kind {column.kind} cannot be binned.")
        lo, hi = column.bound_values()
        if column.kind == "integer":
            lo, hi = math.ceil(lo), math.floor(hi)
            if hi - lo + 1 <= n_bins:  # one bin per value
                edges = np.arange(hi - lo + 2) + lo - 0.5
            else:
                edges = np.linspace(lo, hi + 1, n_bins + 1)
        else:
            edges = np.linspace(lo, hi, n_bins + 1)
        return cls(column.name, column.kind, edges=tuple(float(e) for e in edges),
                   nullable=column.nullable)

    def encode(self, series: pd.Series) -> np.ndarray:
        null = series.isna().to_numpy()
        codes = np.zeros(len(series), dtype=np.int64)
        values = series[~null]
        if self.categories is not None:
            lookup = {c: i for i, c in enumerate(self.categories)}
            lookup.update({str(c): i for i, c in enumerate(self.categories)
                           if str(c) not in lookup})
            codes[~null] = values.map(lookup).to_numpy(dtype=np.int64)
        else:
            assert self.edges is not None
            x = _as_float(values, self.kind)
            bins = np.searchsorted(np.asarray(self.edges), x, side="right") - 1
            codes[~null] = np.clip(bins, 0, self.n_values - 1)
        if self.nullable:
            codes[null] = self.n_values
        return codes

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.Series:
        null = codes >= self.n_values
        safe = np.where(null, 0, codes)
        if self.categories is not None:
            values = np.asarray(self.categories + (None,), dtype=object)
            return pd.Series(values[np.where(null, len(self.categories), safe)],
                             name=self.name).infer_objects()
        assert self.edges is not None
        edges = np.asarray(self.edges)
        left, right = edges[safe], edges[safe + 1]
        if self.kind == "numeric":
            x = left + rng.random(len(codes)) * (right - left)
            return pd.Series(np.where(null, np.nan, x), name=self.name)
        first, last = np.ceil(left), np.ceil(right) - 1  # integers inside [left, right)
        ints = first + np.floor(rng.random(len(codes)) * (last - first + 1))
        if self.kind == "integer":
            out = pd.Series(ints.astype(np.int64), name=self.name)
            return out.astype("Int64").mask(null) if null.any() else out
        stamps = pd.Series(pd.to_datetime(ints.astype(np.int64), unit="ns"), name=self.name)
        return stamps.mask(null)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "nullable": self.nullable}
        if self.categories is not None:
            out["categories"] = [c.item() if isinstance(c, np.generic) else c
                                 for c in self.categories]
        if self.edges is not None:
            out["edges"] = list(self.edges)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnCodec:
        cats, edges = data.get("categories"), data.get("edges")
        return cls(str(data["name"]), str(data["kind"]),
                   categories=None if cats is None else tuple(cats),
                   edges=None if edges is None else tuple(float(e) for e in edges),
                   nullable=bool(data["nullable"]))


def _as_float(values: pd.Series, kind: str) -> np.ndarray:
    if kind == "datetime":
        stamps = pd.to_datetime(values).astype("datetime64[ns]")
        return stamps.astype("int64").to_numpy(dtype=float)
    return pd.to_numeric(values).to_numpy(dtype=float)


def codecs_for(schema: Schema, n_bins: int) -> tuple[ColumnCodec, ...]:
    """One codec per modelled column of ``schema`` (which must declare every domain)."""
    return tuple(ColumnCodec.from_column(c, n_bins) for c in schema.data_columns)


def encode_table(codecs: Sequence[ColumnCodec], data: pd.DataFrame) -> np.ndarray:
    """Rows × columns integer codes."""
    return np.stack([c.encode(data[c.name]) for c in codecs], axis=1)


def decode_table(codecs: Sequence[ColumnCodec], codes: np.ndarray,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Values drawn back from codes (uniformly within each bin)."""
    return pd.DataFrame({c.name: c.decode(codes[:, i], rng) for i, c in enumerate(codecs)})
