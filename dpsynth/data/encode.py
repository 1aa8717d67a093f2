"""Encode a table as a float matrix over its *declared* domain, and decode it back.

The :class:`TableEncoder` is fitted on a :class:`~dpsynth.schema.Schema` alone: category lists
and bounds come from the declared (public) domain, never from the rows, so encoding releases
nothing about the data. Layout of the matrix, column by column in schema order:

* ``categorical`` / ``ordinal``: one-hot over the declared categories, plus a final null slot
  when the column is nullable (one ``categorical`` span);
* ``numeric`` / ``integer`` / ``datetime``: the value scaled linearly from the declared
  ``[lower, upper]`` onto ``[-1, 1]`` and clipped there (one ``numeric`` span of width 1),
  followed, when the column is nullable, by a two-slot ``categorical`` span
  ``[observed, missing]`` (role ``"null"``);
* ``identifier``: dropped (never encoded, never released).

Decoding reads categorical spans as scores (one-hot rows, probabilities or logits): it takes
the argmax, or samples from their softmax with a given NumPy generator. Numeric spans are
scaled back, clipped to the bounds, rounded for integers and turned into timestamps for
datetimes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.errors import (
    DataValidationError,
    NotFittedError,
    ParameterError,
    PrivacyError,
    param_error,
)
from dpsynth.schema import BOUNDED_KINDS, CATEGORY_KINDS, Column, Schema

ENCODER_VERSION = 1


@dataclass(frozen=True)
class Span:
    """A contiguous block of encoded features belonging to one column.

    Attributes
    ----------
    column:
        Name of the source column.
    kind:
        ``"categorical"`` (scores over ``width`` slots; a model applies a softmax over the span)
        or ``"numeric"`` (one value in ``[-1, 1]``).
    start, width:
        Position of the span in the encoded matrix.
    role:
        ``"value"``, or ``"null"`` for the ``[observed, missing]`` indicator of a nullable
        numeric/integer/datetime column.
    """

    column: str
    kind: str
    start: int
    width: int
    role: str = "value"

    @property
    def stop(self) -> int:
        return self.start + self.width


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(2.0 * (values - lo) / (hi - lo) - 1.0, -1.0, 1.0)


def _unscale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((np.clip(values, -1.0, 1.0) + 1.0) / 2.0 * (hi - lo) + lo, lo, hi)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _choose(scores: np.ndarray, sample: bool, rng: np.random.Generator | None) -> np.ndarray:
    """Row-wise argmax of ``scores``, or a draw from ``softmax(scores)`` with ``rng``."""
    if not sample:
        return np.asarray(scores.argmax(axis=1))
    assert rng is not None
    cdf = np.cumsum(_softmax(scores.astype(np.float64)), axis=1)
    u = rng.random(len(scores))[:, None] * cdf[:, -1:]
    return np.minimum((cdf < u).sum(axis=1), scores.shape[1] - 1)


class TableEncoder:
    """One-hot / min-max encoder over a schema's declared domain (see the module docstring).

    Examples
    --------
    >>> enc = TableEncoder().fit(schema)                       # doctest: +SKIP
    >>> X = enc.transform(df)                                   # float32, (n, enc.n_features_)
    >>> back = enc.inverse_transform(X)                         # same columns and domains
    """

    def fit(self, schema: Schema) -> TableEncoder:
        """Build the layout from ``schema`` (no data is read). Returns ``self``."""
        if not isinstance(schema, Schema):
            raise param_error("schema", "a dpsynth.Schema", type(schema).__name__,
                              "TableEncoder")
        text = [c.name for c in schema.data_columns if c.kind == "text"]
        if text:
            raise ParameterError(f"TableEncoder cannot encode text columns {text}; "
                                 "model them with the text synthesizer or drop them.")
        undeclared = schema.undeclared()
        if undeclared:
            raise PrivacyError(
                f"Columns {undeclared} have no declared domain; the encoder never reads it "
                "from the data. Declare it in the schema or discover it with DP first."
            )
        spans: list[Span] = []
        start = 0
        for col in schema.data_columns:
            for span in _column_spans(col, start):
                spans.append(span)
                start = span.stop
        self.schema_ = schema
        self.spans_: tuple[Span, ...] = tuple(spans)
        self.n_features_ = start
        return self

    # -- layout ---------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "spans_"):
            raise NotFittedError("This TableEncoder is not fitted yet; call fit(schema) first.")

    @property
    def categorical_spans(self) -> tuple[Span, ...]:
        """Spans a model should treat with a softmax (values and null indicators)."""
        self._check_fitted()
        return tuple(s for s in self.spans_ if s.kind == "categorical")

    @property
    def numeric_spans(self) -> tuple[Span, ...]:
        """Width-1 spans holding a value scaled onto ``[-1, 1]``."""
        self._check_fitted()
        return tuple(s for s in self.spans_ if s.kind == "numeric")

    @property
    def numeric_columns(self) -> np.ndarray:
        """Feature indices of the numeric spans, in layout order."""
        return np.array([s.start for s in self.numeric_spans], dtype=np.int64)

    # -- encode ---------------------------------------------------------------------------
    def transform(self, data: pd.DataFrame) -> np.ndarray:
        """Encode ``data`` as a ``float32`` matrix of shape ``(len(data), n_features_)``.

        Raises :class:`~dpsynth.errors.DataValidationError` listing every value outside the
        declared domain (an unknown category, a missing value in a non-nullable column).
        """
        self._check_fitted()
        if not isinstance(data, pd.DataFrame):
            raise param_error("data", "a pandas DataFrame", type(data).__name__, "TableEncoder")
        missing = [c.name for c in self.schema_.data_columns if c.name not in data.columns]
        if missing:
            raise DataValidationError([f"columns missing from the data: {missing}"])
        out = np.zeros((len(data), self.n_features_), dtype=np.float32)
        problems: list[str] = []
        by_column: dict[str, list[Span]] = {}
        for span in self.spans_:
            by_column.setdefault(span.column, []).append(span)
        for col in self.schema_.data_columns:
            problems.extend(_encode_column(col, data[col.name], by_column[col.name], out))
        if problems:
            raise DataValidationError(problems)
        return out

    # -- decode ---------------------------------------------------------------------------
    def inverse_transform(self, matrix: np.ndarray, *, sample: bool = False,
                          rng: np.random.Generator | None = None) -> pd.DataFrame:
        """Decode a matrix in this layout back into a table over the declared domain.

        Parameters
        ----------
        matrix:
            ``(n, n_features_)`` array. Categorical spans hold scores (one-hot rows,
            probabilities or logits); numeric spans hold values on the ``[-1, 1]`` scale
            (clipped there).
        sample:
            ``False``: each categorical span decodes to its argmax. ``True``: to a draw from
            the softmax of its scores, using ``rng``.
        rng:
            NumPy generator for ``sample=True``.
        """
        self._check_fitted()
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features_:
            raise param_error("matrix", f"a 2-D array with {self.n_features_} columns",
                              getattr(matrix, "shape", None), "TableEncoder.inverse_transform")
        if sample and not isinstance(rng, np.random.Generator):
            raise param_error("rng", "a numpy Generator when sample=True", rng,
                              "TableEncoder.inverse_transform")
        matrix = np.nan_to_num(matrix.astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
        columns: dict[str, pd.Series] = {}
        spans = iter(self.spans_)
        for col in self.schema_.data_columns:
            value = next(spans)
            null = next(spans) if (col.nullable and col.kind in BOUNDED_KINDS) else None
            block = matrix[:, value.start:value.stop]
            if col.kind in CATEGORY_KINDS:
                columns[col.name] = _decode_categories(col, _choose(block, sample, rng))
            else:
                missing = np.zeros(len(matrix), dtype=bool)
                if null is not None:
                    missing = _choose(matrix[:, null.start:null.stop], sample, rng) == 1
                columns[col.name] = _decode_bounded(col, block[:, 0], missing)
        return pd.DataFrame(columns)

    # -- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: the schema (the layout is rebuilt from it)."""
        self._check_fitted()
        return {"version": ENCODER_VERSION, "schema": self.schema_.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableEncoder:
        if data.get("version") != ENCODER_VERSION:
            raise param_error("version", f"{ENCODER_VERSION}", data.get("version"),
                              "TableEncoder.from_dict")
        return cls().fit(Schema.from_dict(data["schema"]))


# -- per-column helpers -----------------------------------------------------------------------
def _column_spans(col: Column, start: int) -> list[Span]:
    if col.kind in CATEGORY_KINDS:
        assert col.categories is not None
        width = len(col.categories) + int(col.nullable)
        return [Span(col.name, "categorical", start, width)]
    spans = [Span(col.name, "numeric", start, 1)]
    if col.nullable:
        spans.append(Span(col.name, "categorical", start + 1, 2, role="null"))
    return spans


def _category_lookup(col: Column) -> dict[Any, int]:
    assert col.categories is not None
    lookup: dict[Any, int] = {}
    for i, cat in enumerate(col.categories):  # string forms first, exact values win
        lookup.setdefault(str(cat), i)
    for i, cat in enumerate(col.categories):
        lookup[cat] = i
    return lookup


def _encode_column(col: Column, series: pd.Series, spans: list[Span],
                   out: np.ndarray) -> list[str]:
    null = series.isna().to_numpy()
    if null.any() and not col.nullable:
        return [f"column {col.name!r} has {int(null.sum())} missing value(s) but is not nullable"]
    rows = np.arange(len(series))
    value = spans[0]
    if col.kind in CATEGORY_KINDS:
        codes = series.map(_category_lookup(col)).to_numpy(dtype=np.float64, na_value=np.nan)
        unknown = np.isnan(codes) & ~null
        if unknown.any():
            return [f"column {col.name!r} has {int(unknown.sum())} value(s) outside its "
                    "declared categories"]
        idx = np.where(null, value.width - 1, np.nan_to_num(codes)).astype(np.int64)
        out[rows, value.start + idx] = 1.0
        return []
    numbers = _as_numbers(col, series, null)
    bad = np.isnan(numbers) & ~null
    if bad.any():
        return [f"column {col.name!r} has {int(bad.sum())} value(s) that are not {col.kind}"]
    lo, hi = col.bound_values()
    out[:, value.start] = np.where(null, 0.0, _scale(np.nan_to_num(numbers), lo, hi))
    if col.nullable:
        out[rows, spans[1].start + null.astype(np.int64)] = 1.0
    return []


def _as_numbers(col: Column, series: pd.Series, null: np.ndarray) -> np.ndarray:
    """Numbers as float64 (datetimes as ns since the epoch); NaN where missing or unreadable."""
    if col.kind == "datetime":
        stamps = pd.to_datetime(series, errors="coerce")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        ok = stamps.notna().to_numpy()
        ns = np.full(len(series), np.nan)
        ns[ok] = stamps[ok].astype("datetime64[ns]").astype("int64").to_numpy(dtype=np.float64)
        return ns
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(numbers), numbers, np.nan)


def _decode_categories(col: Column, idx: np.ndarray) -> pd.Series:
    assert col.categories is not None
    cats = list(col.categories)
    values = [None if i >= len(cats) else cats[i] for i in idx.tolist()]
    has_null = any(v is None for v in values)
    if has_null and not all(isinstance(c, str) for c in cats):
        return pd.Series(values, dtype=object)
    return pd.Series(values) if values else pd.Series(values, dtype=object)


def _decode_bounded(col: Column, scaled: np.ndarray, missing: np.ndarray) -> pd.Series:
    lo, hi = col.bound_values()
    values = _unscale(scaled, lo, hi)
    if col.kind == "integer":
        ints = np.clip(np.round(values), math.ceil(lo), math.floor(hi)).astype(np.int64)
        if col.nullable:
            return pd.Series(pd.array(ints, dtype="Int64")).mask(missing)
        return pd.Series(ints)
    if col.kind == "datetime":
        stamps = pd.Series(pd.to_datetime(np.round(values).astype(np.int64), unit="ns"))
        return stamps.mask(missing) if col.nullable else stamps
    return pd.Series(np.where(missing, np.nan, values))


__all__ = ["Span", "TableEncoder"]
