"""Column and Schema: the declared public domain of a table.

Everything a DP generator needs to know about a column's domain (bounds, category lists) is
part of what it releases, so it must come from somewhere other than the private rows: declared
public by the user here, or discovered with a DP mechanism whose spend is recorded
(:mod:`dpsynth.data.discover`). A schema drafted from the data (:func:`draft_schema`) is marked
*not public* column by column until the user reviews it and declares it so.
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dpsynth._util import yamlio
from dpsynth.errors import DataValidationError, SchemaError

if typing.TYPE_CHECKING:
    import pandas as pd

KINDS = ("categorical", "ordinal", "numeric", "integer", "datetime", "text", "identifier")
BOUNDED_KINDS = ("numeric", "integer", "datetime")
CATEGORY_KINDS = ("categorical", "ordinal")
SCHEMA_VERSION = 1
_MAX_ROWS_SHOWN = 5


@dataclass(frozen=True)
class Column:
    """One column of a table and its declared domain.

    Parameters
    ----------
    name:
        Column name in the data.
    kind:
        One of ``categorical``, ``ordinal`` (ordered categories), ``numeric`` (float),
        ``integer``, ``datetime``, ``text`` (free text) or ``identifier`` (dropped before
        training, never released).
    categories:
        The full list of values for ``categorical`` / ``ordinal`` columns (in order for
        ``ordinal``). ``None`` means "not declared": it must then be discovered with DP.
    lower, upper:
        Bounds for ``numeric``, ``integer`` and ``datetime`` columns (ISO strings for dates).
        ``None`` means "not declared".
    nullable:
        Whether missing values are allowed (they are then modelled as their own value).
    public:
        Whether the user has declared this domain public. Drafted schemas set it to ``False``.
    max_length:
        For ``text``: maximum number of bytes kept per record.
    """

    name: str
    kind: str
    categories: tuple[Any, ...] | None = None
    lower: float | str | None = None
    upper: float | str | None = None
    nullable: bool = False
    public: bool = True
    max_length: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.categories is not None and not isinstance(self.categories, tuple):
            object.__setattr__(self, "categories", tuple(self.categories))
        problems = self.problems()
        if problems:
            raise SchemaError(f"Column {self.name!r}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        out: list[str] = []
        if not isinstance(self.name, str) or not self.name:
            out.append("the name must be a non-empty string")
        if self.kind not in KINDS:
            out.append(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
            return out
        if self.categories is not None:
            if self.kind not in CATEGORY_KINDS:
                out.append(f"categories are only for categorical/ordinal columns, not {self.kind}")
            elif len(self.categories) == 0:
                out.append("categories must not be empty")
            elif len(set(self.categories)) != len(self.categories):
                out.append("categories contain duplicates")
        if (self.lower is not None or self.upper is not None) and self.kind not in BOUNDED_KINDS:
            out.append(f"bounds are only for numeric/integer/datetime columns, not {self.kind}")
        elif self.lower is not None and self.upper is not None:
            try:
                lo, hi = self.bound_values()
            except (TypeError, ValueError) as exc:
                out.append(f"bounds cannot be read: {exc}")
            else:
                if not lo < hi:
                    out.append(f"lower ({self.lower}) must be below upper ({self.upper})")
        if self.max_length is not None and (self.kind != "text" or self.max_length < 1):
            out.append("max_length must be a positive integer and is only for text columns")
        return out

    @property
    def needs_domain(self) -> bool:
        """True when the domain is not declared and must be discovered (with DP) to train."""
        if self.kind in CATEGORY_KINDS:
            return self.categories is None
        if self.kind in BOUNDED_KINDS:
            return self.lower is None or self.upper is None
        return False

    def bound_values(self) -> tuple[float, float]:
        """Bounds as floats (datetimes as nanoseconds since the epoch)."""
        import pandas as pd

        if self.lower is None or self.upper is None:
            raise SchemaError(f"Column {self.name!r} has no declared bounds")
        if self.kind == "datetime":
            return (float(pd.Timestamp(self.lower).value), float(pd.Timestamp(self.upper).value))
        return float(self.lower), float(self.upper)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.categories is not None:
            out["categories"] = [_plain(c) for c in self.categories]
        for key in ("lower", "upper", "max_length"):
            if getattr(self, key) is not None:
                out[key] = _plain(getattr(self, key))
        out["nullable"] = self.nullable
        out["public"] = self.public
        if self.description:
            out["description"] = self.description
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - allowed
        if unknown:
            raise SchemaError(
                f"Column {data.get('name')!r}: unknown keys {sorted(unknown)}; "
                f"allowed: {sorted(allowed)}"
            )
        if "name" not in data or "kind" not in data:
            raise SchemaError(f"Every column needs 'name' and 'kind'; got {dict(data)}")
        fields = dict(data)
        for flag in ("nullable", "public"):
            if isinstance(fields.get(flag), str) and fields[flag].lower() in yamlio.YAML11_BOOLS:
                fields[flag] = yamlio.YAML11_BOOLS[fields[flag].lower()]
        return cls(**fields)




def _plain(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Schema:
    """An ordered set of :class:`Column` s, with validation of tables against it."""

    columns: tuple[Column, ...]
    name: str = "table"
    user_key: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: Public rules between columns (:mod:`dpsynth.release.rules`), checked on each release.
    rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.columns, tuple):
            object.__setattr__(self, "columns", tuple(self.columns))
        if not isinstance(self.rules, (list, tuple)):
            raise SchemaError(f"'rules' must be a list of strings; got {self.rules!r}")
        object.__setattr__(self, "rules", tuple(self.rules))
        if not self.columns:
            raise SchemaError("A schema needs at least one column.")
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"Duplicate column names in the schema: {dupes}")
        if self.user_key is not None and self.user_key not in names:
            raise SchemaError(f"user_key {self.user_key!r} is not a column of the schema")
        if self.rules:
            from dpsynth.release.rules import rule_problems

            bad = rule_problems(self.rules, names)
            if bad:
                raise SchemaError("Invalid rules:\n" + "\n".join(f"  - {b}" for b in bad))

    # -- access -------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def data_columns(self) -> list[Column]:
        """Columns that are modelled (identifiers are dropped)."""
        return [c for c in self.columns if c.kind != "identifier"]

    @property
    def is_public(self) -> bool:
        return all(c.public for c in self.data_columns)

    def undeclared(self) -> list[str]:
        """Names of columns whose domain must still be discovered with DP."""
        return [c.name for c in self.data_columns if c.needs_domain]

    def not_public(self) -> list[str]:
        return [c.name for c in self.data_columns if not c.public]

    def replace_column(self, column: Column) -> Schema:
        if column.name not in self:
            raise KeyError(column.name)
        cols = tuple(column if c.name == column.name else c for c in self.columns)
        return replace(self, columns=cols)

    def declare_public(self) -> Schema:
        """The same schema with every domain declared public (after the user reviewed it)."""
        return replace(self, columns=tuple(replace(c, public=True) for c in self.columns))

    # -- validation ---------------------------------------------------------------------
    def problems(self, df: pd.DataFrame) -> list[str]:
        """Every way ``df`` fails to conform to this schema (empty list when it conforms)."""
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            return [f"expected a pandas DataFrame, got {type(df).__name__}"]
        out: list[str] = []
        if len(df) == 0:
            out.append("the table has no rows")
        missing = [n for n in self.names if n not in df.columns]
        unknown = [str(n) for n in df.columns if n not in self]
        if missing:
            out.append(f"columns missing from the data: {missing}")
        if unknown:
            out.append(f"columns not in the schema: {unknown} (add them, or drop them)")
        if len(df) == 0:
            return out
        for col in self.columns:
            if col.name in df.columns and col.kind != "identifier":
                out.extend(_column_problems(col, df[col.name]))
        return out

    def validate(self, df: pd.DataFrame) -> None:
        """Raise :class:`DataValidationError` listing every problem, if there is any."""
        problems = self.problems(df)
        if problems:
            raise DataValidationError(problems)

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": SCHEMA_VERSION, "name": self.name}
        if self.user_key:
            out["user_key"] = self.user_key
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        out["columns"] = [c.to_dict() for c in self.columns]
        if self.rules:
            out["rules"] = list(self.rules)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        if not isinstance(data, Mapping) or "columns" not in data:
            raise SchemaError("A schema file needs a top-level 'columns' list.")
        version = data.get("version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise SchemaError(f"Unsupported schema version {version}; expected {SCHEMA_VERSION}.")
        cols = data["columns"]
        if isinstance(cols, Mapping):  # {name: {...}} form
            cols = [{"name": k, **v} for k, v in cols.items()]
        errors: list[str] = []
        columns: list[Column] = []
        for entry in cols:
            try:
                columns.append(Column.from_dict(entry))
            except (SchemaError, TypeError) as exc:
                errors.append(str(exc))
        if errors:
            raise SchemaError("Invalid schema:\n" + "\n".join(f"  - {e}" for e in errors))
        return cls(
            columns=tuple(columns), name=str(data.get("name", "table")),
            user_key=data.get("user_key"), metadata=dict(data.get("metadata", {})),
            rules=data.get("rules") or (),
        )

    def save(self, path: str | Path) -> Path:
        """Write the schema as YAML (``.yaml``/``.yml``) or JSON (anything else)."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        path = Path(path)
        if not path.is_file():
            raise SchemaError(f"Schema file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            data = yamlio.load_yaml(text)  # YAML is a superset of JSON
        except yaml.YAMLError as exc:
            raise SchemaError(f"Schema file {path} is neither valid YAML nor JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_sdv_metadata(cls, metadata: Mapping[str, Any] | str | Path,
                          table: str | None = None) -> Schema:
        """Read SDV metadata JSON (single-table or multi-table v1) into a Schema.

        SDV metadata names column types but not their domains, so every categorical and
        numeric column comes back undeclared (``needs_domain``) and ``public=False``: declare
        the domains, or discover them with DP. SDV itself is not needed.
        """
        from dpsynth._util.sdv import columns_from_sdv

        columns, name = columns_from_sdv(metadata, table)
        return cls(columns=columns, name=name)


def _column_problems(col: Column, series: pd.Series) -> list[str]:
    import pandas as pd

    name = col.name
    out: list[str] = []
    null = series.isna()
    n_null = int(null.sum())
    if n_null == len(series):
        return [f"column {name!r} is entirely null"]
    if n_null and not col.nullable:
        out.append(f"column {name!r} has {n_null} missing value(s) but is not nullable "
                   f"(rows {_rows(null)})")
    values = series[~null]
    if col.kind in ("numeric", "integer"):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna()
        if bad.any():
            out.append(f"column {name!r} is {col.kind} but {int(bad.sum())} value(s) are not "
                       f"numbers (rows {_rows(bad)})")
        numbers = numbers[~bad].astype(float)
        if col.kind == "integer" and len(numbers):
            frac = (numbers != np.round(numbers)) | ~np.isfinite(numbers)
            if frac.any():
                out.append(f"column {name!r} is integer but {int(frac.sum())} value(s) are not "
                           f"whole numbers (rows {_rows(frac)})")
        if col.kind == "numeric" and len(numbers):
            inf = ~np.isfinite(numbers)
            if inf.any():
                out.append(f"column {name!r} has {int(inf.sum())} infinite value(s) "
                           f"(rows {_rows(inf)})")
        out.extend(_bound_problems(col, numbers))
    elif col.kind == "datetime":
        stamps = pd.to_datetime(values, errors="coerce")
        bad = stamps.isna()
        if bad.any():
            out.append(f"column {name!r} is datetime but {int(bad.sum())} value(s) cannot be "
                       f"parsed as dates (rows {_rows(bad)})")
        ns = stamps[~bad].astype("datetime64[ns]").astype("int64").astype(float)
        out.extend(_bound_problems(col, ns))
    elif col.kind in CATEGORY_KINDS and col.categories is not None:
        allowed = set(col.categories) | {str(c) for c in col.categories}
        outside = ~values.isin(list(allowed))
        if outside.any():
            out.append(
                f"column {name!r} has {int(outside.sum())} value(s) outside its declared "
                f"categories (rows {_rows(outside)}); add them to the schema or map them to a "
                f"declared value"
            )
    elif col.kind == "text":
        not_text = ~values.map(lambda v: isinstance(v, str))
        if not_text.any():
            out.append(f"column {name!r} is text but {int(not_text.sum())} value(s) are not "
                       f"strings (rows {_rows(not_text)})")
    return out


def _bound_problems(col: Column, numbers: pd.Series) -> list[str]:
    if col.lower is None or col.upper is None or not len(numbers):
        return []
    lo, hi = col.bound_values()
    outside = (numbers < lo) | (numbers > hi)
    if not outside.any():
        return []
    return [f"column {col.name!r} has {int(outside.sum())} value(s) outside its declared bounds "
            f"[{col.lower}, {col.upper}] (rows {_rows(outside)}); rerun with --clip (fit or "
            "release; clip=True in Python) to clip them to the bounds at no privacy cost"]


def _rows(mask: pd.Series) -> str:
    idx = list(mask[mask].index[:_MAX_ROWS_SHOWN])
    more = int(mask.sum()) - len(idx)
    return ", ".join(str(i) for i in idx) + (f" and {more} more" if more > 0 else "")


def draft_schema(df: pd.DataFrame, *, max_categories: int = 50, name: str = "table") -> Schema:
    """Draft a schema from the data itself, for the user to review.

    The draft reads the private data (its bounds and category lists are the data's own), so
    every column is marked ``public=False``: training on it raises until the user reviews it,
    replaces data-derived values with public knowledge where needed, and declares it public
    (:meth:`Schema.declare_public`, or ``public: true`` in the file).
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or df.shape[1] == 0:
        raise SchemaError("draft_schema needs a DataFrame with at least one column")
    columns = [_draft_column(str(c), df[c], max_categories) for c in df.columns]
    return Schema(columns=tuple(columns), name=name,
                  metadata={"drafted_from_data": True})


def _draft_column(name: str, s: pd.Series, max_categories: int) -> Column:
    import pandas as pd

    nullable = bool(s.isna().any())
    values = s.dropna()
    n_unique = values.nunique()
    if pd.api.types.is_bool_dtype(s):
        return Column(name, "categorical", categories=(False, True), nullable=nullable,
                      public=False)
    if pd.api.types.is_datetime64_any_dtype(s):
        return Column(name, "datetime", lower=values.min().isoformat(),
                      upper=values.max().isoformat(), nullable=nullable, public=False)
    if pd.api.types.is_numeric_dtype(s):
        if len(values) and n_unique == len(values) and n_unique > max_categories and \
                pd.api.types.is_integer_dtype(s) and name.lower() in ("id", "rownames", "index"):
            return Column(name, "identifier", public=False)
        kind = "integer" if pd.api.types.is_integer_dtype(s) or (
            len(values) and bool((values == np.round(values)).all())) else "numeric"
        if len(values) == 0:
            return Column(name, kind, nullable=True, public=False)
        lo, hi = float(values.min()), float(values.max())
        if lo == hi:
            hi = lo + 1
        if kind == "integer":
            lo, hi = math.floor(lo), math.ceil(hi)
            return Column(name, kind, lower=int(lo), upper=int(hi), nullable=nullable,
                          public=False)
        return Column(name, kind, lower=lo, upper=hi, nullable=nullable, public=False)
    strings = values.astype(str)
    if n_unique <= max_categories:
        cats = sorted(strings.unique().tolist())
        return Column(name, "categorical", categories=tuple(cats), nullable=nullable,
                      public=False)
    mean_len = float(strings.str.len().mean()) if len(strings) else 0.0
    if mean_len > 30 or strings.str.contains(" ").mean() > 0.5:
        return Column(name, "text", nullable=nullable, public=False,
                      max_length=int(min(1024, strings.str.len().max())))
    if n_unique == len(values):
        return Column(name, "identifier", public=False)
    return Column(name, "categorical", nullable=nullable, public=False)


def columns_from(items: Iterable[Column] | Sequence[Mapping[str, Any]]) -> tuple[Column, ...]:
    return tuple(c if isinstance(c, Column) else Column.from_dict(c) for c in items)


__all__ = [
    "BOUNDED_KINDS",
    "CATEGORY_KINDS",
    "KINDS",
    "SCHEMA_VERSION",
    "Column",
    "Schema",
    "columns_from",
    "draft_schema",
]
