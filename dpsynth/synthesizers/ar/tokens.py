"""Rows as sequences of column tokens over the declared domain, and back.

Each data column becomes one token per row, with a vocabulary fixed by the schema alone (no
data is read to build it, so the tokenisation releases nothing):

* ``categorical`` / ``ordinal``: one token per declared category, in declared order;
* ``integer`` whose declared range has at most ``n_bins`` values: one token per value;
* other ``numeric``, ``integer`` and ``datetime`` columns: ``n_bins`` bins of equal width on
  the declared ``[lower, upper]`` (no quantiles: those would be read from the private rows);
  values outside the bounds fall in the end bins;
* a nullable column gets one more token, the last, for a missing value.

Decoding draws a binned value uniformly inside its bin, so sampled values spread over the bin
instead of piling up at its edge or centre, then hands the values to
:class:`~dpsynth.data.encode.TableEncoder` for rounding, clipping and the output dtypes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.data.encode import TableEncoder
from dpsynth.errors import DataValidationError
from dpsynth.schema import CATEGORY_KINDS, Column, Schema


@dataclass(frozen=True)
class ColumnCodec:
    """The token vocabulary of one column.

    Attributes
    ----------
    name, kind:
        The column's name and kind.
    n_values:
        Tokens for observed values (categories, integer values or bins).
    nullable:
        Whether token ``n_values`` stands for a missing value.
    exact:
        Whether each value token is one declared value (categories, small integer ranges)
        rather than a bin of a range.
    lower, upper:
        The declared bounds as floats (datetimes in ns), for bounded kinds.
    origin:
        The value of token 0 of an exact integer column (the first integer in the bounds).
    """

    name: str
    kind: str
    n_values: int
    nullable: bool
    exact: bool
    lower: float = 0.0
    upper: float = 1.0
    origin: float = 0.0

    @property
    def vocab_size(self) -> int:
        return self.n_values + int(self.nullable)

    @property
    def null_token(self) -> int | None:
        return self.n_values if self.nullable else None


def codec_for(col: Column, n_bins: int) -> ColumnCodec:
    """The codec of a declared column (categories or bounds must be declared)."""
    if col.kind in CATEGORY_KINDS:
        assert col.categories is not None
        return ColumnCodec(col.name, col.kind, len(col.categories), col.nullable, True)
    lo, hi = col.bound_values()
    if col.kind == "integer":
        first, last = math.ceil(lo), math.floor(hi)
        if last - first + 1 <= n_bins:
            return ColumnCodec(col.name, col.kind, last - first + 1, col.nullable, True,
                               lo, hi, float(first))
    return ColumnCodec(col.name, col.kind, int(n_bins), col.nullable, False, lo, hi)


class TableTokenizer:
    """Table <-> ``(n, n_columns)`` int64 tokens over a schema's declared domain.

    Parameters
    ----------
    n_bins:
        Bins per bounded column whose values are not enumerated one by one.
    """

    def __init__(self, n_bins: int = 32):
        self.n_bins = n_bins

    def fit(self, schema: Schema) -> TableTokenizer:
        """Build the vocabularies from ``schema`` (no data is read). Returns ``self``."""
        self.encoder_ = TableEncoder().fit(schema)  # checks every domain is declared
        self.codecs_ = tuple(codec_for(c, int(self.n_bins)) for c in schema.data_columns)
        return self

    @property
    def vocab_sizes(self) -> tuple[int, ...]:
        return tuple(c.vocab_size for c in self.codecs_)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.codecs_]

    # -- encode ---------------------------------------------------------------------------
    def transform(self, data: pd.DataFrame) -> np.ndarray:
        """Tokens of ``data``; every value outside the declared domain is reported at once."""
        schema = self.encoder_.schema_
        out = np.zeros((len(data), len(self.codecs_)), dtype=np.int64)
        problems: list[str] = []
        for j, codec in enumerate(self.codecs_):
            tokens, problem = _encode(codec, schema[codec.name], data[codec.name])
            if problem:
                problems.append(problem)
            else:
                out[:, j] = tokens
        if problems:
            raise DataValidationError(problems)
        return out

    def value_tokens(self, name: str, values: pd.Series) -> np.ndarray:
        """Tokens of one column's ``values`` (for conditions given at sampling)."""
        j = self.names.index(name)
        tokens, problem = _encode(self.codecs_[j], self.encoder_.schema_[name],
                                  values.reset_index(drop=True))
        if problem:
            raise DataValidationError([problem])
        return tokens

    # -- decode ---------------------------------------------------------------------------
    def inverse_transform(self, tokens: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Rows for ``tokens``; binned values drawn uniformly inside their bin with ``rng``."""
        enc = self.encoder_
        matrix = np.zeros((len(tokens), enc.n_features_), dtype=np.float64)
        spans: dict[str, list[Any]] = {}
        for span in enc.spans_:
            spans.setdefault(span.column, []).append(span)
        for j, codec in enumerate(self.codecs_):
            _decode_into(codec, tokens[:, j], spans[codec.name], matrix, rng)
        return enc.inverse_transform(matrix)


def _encode(codec: ColumnCodec, col: Column, series: pd.Series) -> tuple[np.ndarray, str]:
    """Tokens of one column, or an empty array and the reason it cannot be encoded."""
    null = series.isna().to_numpy()
    if null.any() and not codec.nullable:
        return np.zeros(0), (f"column {codec.name!r} has {int(null.sum())} missing value(s) "
                             "but is not nullable")
    if codec.kind in CATEGORY_KINDS:
        assert col.categories is not None
        lookup: dict[Any, int] = {}
        for i, cat in enumerate(col.categories):  # string forms first, exact values win
            lookup.setdefault(str(cat), i)
        for i, cat in enumerate(col.categories):
            lookup[cat] = i
        codes = series.map(lookup).to_numpy(dtype=np.float64, na_value=np.nan)
        if (np.isnan(codes) & ~null).any():
            return np.zeros(0), (f"column {codec.name!r} has value(s) outside its declared "
                                 "categories")
    else:
        numbers = _numbers(codec, series)
        if (np.isnan(numbers) & ~null).any():
            return np.zeros(0), f"column {codec.name!r} has value(s) that are not {codec.kind}"
        codes = _bin(codec, numbers)
    tokens = np.where(null, codec.n_values, np.nan_to_num(codes)).astype(np.int64)
    return tokens, ""


def _numbers(codec: ColumnCodec, series: pd.Series) -> np.ndarray:
    if codec.kind == "datetime":
        stamps = pd.to_datetime(series, errors="coerce")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        out = np.full(len(series), np.nan)
        ok = stamps.notna().to_numpy()
        out[ok] = stamps[ok].astype("datetime64[ns]").astype("int64").to_numpy(np.float64)
        return out
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64,
                                                             na_value=np.nan)
    return np.where(np.isfinite(numbers), numbers, np.nan)


def _bin(codec: ColumnCodec, values: np.ndarray) -> np.ndarray:
    """Value token of each number (NaN stays NaN), clipped into the declared range."""
    if codec.exact:
        idx = np.round(values) - codec.origin
    else:
        idx = np.floor((values - codec.lower) / (codec.upper - codec.lower) * codec.n_values)
    return np.clip(idx, 0, codec.n_values - 1)


def _decode_into(codec: ColumnCodec, tokens: np.ndarray, spans: list[Any], matrix: np.ndarray,
                 rng: np.random.Generator) -> None:
    """Write one column's tokens into a :class:`TableEncoder` matrix (one-hot / scaled)."""
    value = spans[0]
    rows = np.arange(len(tokens))
    if codec.kind in CATEGORY_KINDS:
        matrix[rows, value.start + tokens] = 1.0  # the null token is the span's last slot
        return
    missing = tokens == codec.null_token if codec.nullable else np.zeros(len(tokens), bool)
    idx = np.minimum(tokens, codec.n_values - 1).astype(np.float64)
    if codec.exact:
        number = codec.origin + idx
    else:
        width = (codec.upper - codec.lower) / codec.n_values
        number = codec.lower + (idx + rng.random(len(tokens))) * width
    scaled = 2.0 * (number - codec.lower) / (codec.upper - codec.lower) - 1.0
    matrix[:, value.start] = np.where(missing, 0.0, scaled)
    if codec.nullable:
        matrix[rows, spans[1].start + missing.astype(np.int64)] = 1.0


__all__ = ["ColumnCodec", "TableTokenizer", "codec_for"]
