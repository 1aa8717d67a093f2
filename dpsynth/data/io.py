"""Reading and writing tables: CSV (also gzipped), Parquet and JSON lines.

:func:`read_table` turns every way a file can fail to be a table (missing, a directory, empty,
the wrong encoding, another delimiter, ragged rows, an unknown extension) into one
:class:`~dpsynth.errors.DataReadError` that says what to do, never a pandas traceback. Given a
:class:`~dpsynth.schema.Schema`, it parses each column as its kind says without rejecting bad
values: a column that does not parse is left as text so that :meth:`Schema.validate` can
report every bad value with its row.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import warnings
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from dpsynth.errors import DataReadError, ParameterError, param_error
from dpsynth.schema import Column, Schema

logger = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_OTHER_DELIMITERS = (";", "\t", "|")
_SAMPLE_BYTES = 64 * 1024
_SAMPLE_LINES = 20
_DEFAULT_ENCODING = "utf-8-sig"  # utf-8, ignoring a byte-order mark


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in CSV_SUFFIXES + PARQUET_SUFFIXES + JSON_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return "".join(path.suffixes[-2:]).lower() or "(none)"


def read_table(path: str | Path, *, schema: Schema | None = None, delimiter: str | None = None,
               encoding: str | None = None) -> pd.DataFrame:
    """Read a table from ``path``, chosen by its extension.

    Parameters
    ----------
    path:
        A ``.csv`` / ``.tsv`` (optionally ``.gz``), ``.parquet`` / ``.pq``, or ``.jsonl`` /
        ``.ndjson`` / ``.json`` (JSON lines, or one JSON array of records) file.
    schema:
        When given, columns are parsed as their kinds say (numbers, nullable integers,
        dates, category values kept as text unless the declared categories are numbers or
        booleans). Values that do not parse are kept as they are, for
        :meth:`Schema.validate` to report. The file's column order is kept.
    delimiter:
        CSV field delimiter. ``None`` detects ``,`` ``;`` tab or ``|`` and logs the choice.
    encoding:
        Text encoding of CSV / JSON files; default UTF-8.

    Raises
    ------
    DataReadError
        The file is missing, a directory, empty, not in ``encoding``, delimited by another
        character than ``delimiter``, malformed, or has an unsupported extension.
    """
    path = _check_path(path)
    _check_text_options(delimiter, encoding)
    suffix = _suffix(path)
    if suffix in CSV_SUFFIXES:
        default = "\t" if suffix.startswith(".tsv") else None
        df = _read_csv(path, delimiter if delimiter is not None else default,
                       encoding or _DEFAULT_ENCODING, as_text=schema is not None)
    elif suffix in PARQUET_SUFFIXES:
        df = _read_parquet(path)
    elif suffix in JSON_SUFFIXES:
        df = _read_json(path, encoding or _DEFAULT_ENCODING)
    else:
        raise DataReadError(
            f"Cannot read {path}: unsupported file type {suffix!r}. Supported: "
            f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES + JSON_SUFFIXES)}."
        )
    df.columns = [str(c) for c in df.columns]
    return coerce_to_schema(df, schema) if schema is not None else df


def _check_path(path: str | Path) -> Path:
    if not isinstance(path, (str, Path)):
        raise param_error("path", "a file path (str or Path)", type(path).__name__, "read_table")
    path = Path(path)
    if not path.exists():
        raise DataReadError(f"File not found: {path}")
    if path.is_dir():
        raise DataReadError(f"{path} is a directory, not a table file.")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataReadError(f"Cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise DataReadError(f"{path} is empty (0 bytes).")
    return path


def _check_text_options(delimiter: str | None, encoding: str | None) -> None:
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1
                                  or delimiter in "\r\n\"'"):
        raise param_error("delimiter", "a single character such as ',' ';' '|' or '\\t'",
                          delimiter, "read_table")
    if encoding is not None:
        try:
            "".encode(encoding)
        except (LookupError, TypeError):
            raise param_error("encoding", "a known text encoding such as 'utf-8' or 'latin-1'",
                              encoding, "read_table") from None


# -- CSV -------------------------------------------------------------------------------------
def _read_csv(path: Path, delimiter: str | None, encoding: str, *, as_text: bool) -> pd.DataFrame:
    sample = _text_sample(path, encoding)
    if not sample.strip():
        raise DataReadError(f"{path} holds no data (only blank lines).")
    detected = _detect_delimiter(sample)
    if delimiter is None:
        delimiter = detected if detected in _OTHER_DELIMITERS else ","
        if delimiter != ",":
            logger.info("%s: detected the delimiter %r", path, delimiter)
    _check_header(path, sample, delimiter)
    df = _parse_csv(path, delimiter, encoding, detected, as_text=as_text)
    if len(df) == 0:
        raise DataReadError(f"{path} has a header line but no data rows.")
    if df.shape[1] == 1 and detected is not None and detected != delimiter:
        raise DataReadError(_delimiter_hint(path, delimiter, detected))
    return df


def _check_header(path: Path, sample: str, delimiter: str) -> None:
    """Refuse duplicate column names (pandas would rename them ``name.1``)."""
    first = next(csv.reader(io.StringIO(sample.lstrip("\ufeff")), delimiter=delimiter), [])
    names = [n.strip() for n in first]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataReadError(f"{path}: duplicate column names in the header: {dupes}; give "
                            "each column its own name.")


def _parse_csv(path: Path, delimiter: str, encoding: str, detected: str | None, *,
               as_text: bool) -> pd.DataFrame:
    options: dict[str, Any] = {"sep": delimiter, "encoding": encoding, "low_memory": False}
    if as_text:
        options["dtype"] = str
    try:
        df = pd.read_csv(path, **options)
    except UnicodeDecodeError as exc:
        raise DataReadError(_encoding_hint(path, encoding, exc)) from None
    except pd.errors.EmptyDataError:
        raise DataReadError(f"{path} holds no data (no header line).") from None
    except (pd.errors.ParserError, ValueError) as exc:
        hint = ""
        if detected is not None and detected != delimiter:
            hint = " " + _delimiter_hint(path, delimiter, detected)
        msg = str(exc).strip().replace("C error: ", "")
        raise DataReadError(f"{path} is not a valid CSV file with delimiter {delimiter!r}: "
                            f"{msg}.{hint}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataReadError(f"Cannot read {path}: {exc}") from None
    if not df.index.equals(pd.RangeIndex(len(df))):
        raise DataReadError(
            f"{path}: some rows have more fields than the header line ({df.shape[1]} names) "
            f"with delimiter {delimiter!r}; fix the header or the delimiter."
        )
    return df


def _text_sample(path: Path, encoding: str) -> str:
    """The first lines of the file, decoded (raises DataReadError on undecodable bytes)."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            raw = fh.read(_SAMPLE_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataReadError(f"Cannot read {path}: {exc}") from None
    wide = any(w in encoding.lower().replace("-", "") for w in ("utf16", "utf32"))
    if b"\x00" in raw[:8192] and not wide:
        raise DataReadError(f"{path} is a binary file (it holds NUL bytes), not a text table: "
                            "pass a CSV, Parquet (.parquet) or JSON lines (.jsonl) file.")
    truncated = len(raw) == _SAMPLE_BYTES
    if truncated and b"\n" in raw:
        raw = raw[: raw.rindex(b"\n") + 1]  # do not cut a multi-byte character in two
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(raw) - 4:  # a character cut by the sample's end
            return raw[: exc.start].decode(encoding, errors="ignore")
        raise DataReadError(_encoding_hint(path, encoding, exc)) from None


def _encoding_hint(path: Path, encoding: str, exc: UnicodeDecodeError) -> str:
    name = "utf-8" if encoding == _DEFAULT_ENCODING else encoding
    byte = exc.object[exc.start: exc.start + 1].hex() if exc.object else "?"
    return (f"{path} cannot be decoded as {name} (byte 0x{byte} at position {exc.start}). "
            f"Pass its encoding: encoding='latin-1' (CLI: --encoding latin-1), or 'cp1252'.")


def _detect_delimiter(sample: str) -> str | None:
    """The delimiter among , ; tab | that splits the first lines into a constant number (> 1)
    of fields; csv.Sniffer's choice when it is one of them. None when nothing fits."""
    lines = [ln for ln in sample.splitlines() if ln.strip()][:_SAMPLE_LINES]
    fitting = {}
    for delim in (",",) + _OTHER_DELIMITERS:
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=delim)}
        except csv.Error:
            continue
        if len(widths) == 1 and (width := widths.pop()) > 1:
            fitting[delim] = width
    try:
        sniffed = csv.Sniffer().sniff("\n".join(lines), delimiters="," + "".join(
            _OTHER_DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    if sniffed in fitting:
        return sniffed
    return max(fitting, key=lambda d: fitting[d]) if fitting else None


def _delimiter_hint(path: Path, used: str, detected: str) -> str:
    return (f"{path} looks delimited by {detected!r}, not {used!r}: pass "
            f"delimiter={detected!r} (CLI: --delimiter {detected!r}).")


# -- Parquet and JSON ------------------------------------------------------------------------
def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
        raise DataReadError(f"Reading Parquet needs pyarrow: {exc}") from None
    except Exception as exc:  # pyarrow raises many types for a corrupt file
        raise DataReadError(f"{path} is not a readable Parquet file: {exc}") from None


def _read_json(path: Path, encoding: str) -> pd.DataFrame:
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise DataReadError(_encoding_hint(path, encoding, exc)) from None
    except OSError as exc:
        raise DataReadError(f"Cannot read {path}: {exc}") from None
    if not text.strip():
        raise DataReadError(f"{path} holds no data (only blank lines).")
    import io

    lines = not text.lstrip().startswith("[")
    try:
        df = pd.read_json(io.StringIO(text), lines=lines, orient=None if lines else "records",
                          dtype=False)
    except ValueError as exc:
        form = "JSON lines (one object per line)" if lines else "a JSON array of records"
        raise DataReadError(f"{path} is not valid {form}: {exc}") from None
    if not isinstance(df, pd.DataFrame):  # pragma: no cover - read_json returns frames here
        raise DataReadError(f"{path} does not hold a table of records.")
    return df


# -- parsing columns by their declared kinds ---------------------------------------------------
def coerce_to_schema(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A copy of ``df`` with each schema column parsed as its kind says (never raises for bad
    values: a column with any value that does not parse is left unchanged)."""
    out = df.copy()
    for column in schema.columns:
        if column.name in out.columns:
            out[column.name] = _coerce_column(column, out[column.name])
    return out


def _coerce_column(column: Column, series: pd.Series) -> pd.Series:
    if column.kind in ("numeric", "integer"):
        return _as_numbers(series, integer=column.kind == "integer")
    if column.kind == "datetime":
        return _as_datetimes(series)
    if column.kind in ("categorical", "ordinal") and column.categories:
        cats = column.categories
        if all(isinstance(c, bool) for c in cats):
            return _as_booleans(series)
        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cats):
            return _as_numbers(series, integer=all(isinstance(c, int) for c in cats))
    return series  # category values, text and identifiers stay as they were read


def _as_numbers(series: pd.Series, *, integer: bool) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series
    numbers = pd.to_numeric(series, errors="coerce")
    if int(numbers.isna().sum()) != int(series.isna().sum()):
        return series  # some values are not numbers: Schema.validate reports them
    if integer:
        values = numbers.dropna()
        if len(values) and not (values == values.round()).all():
            return numbers  # fractions: Schema.validate reports them
        if numbers.isna().any():
            return numbers.astype("Int64")
        try:
            return numbers.astype("int64")
        except (OverflowError, ValueError):
            return numbers
    return numbers.astype(float)


def _as_datetimes(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    n_null = int(series.isna().sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in (None, "mixed"):
            try:
                stamps = pd.to_datetime(series, errors="coerce", format=fmt)
            except (TypeError, ValueError, OverflowError):
                continue
            if int(stamps.isna().sum()) == n_null:
                return stamps
    return series  # some values are not dates: Schema.validate reports them


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _as_booleans(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series

    def to_bool(value: Any) -> Any:
        if pd.isna(value) or isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else value

    return series.astype(object).map(to_bool)


# -- writing ---------------------------------------------------------------------------------
def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` to ``.csv`` / ``.tsv`` (optionally ``.gz``) or ``.parquet`` / ``.pq``."""
    if not isinstance(df, pd.DataFrame):
        raise param_error("df", "a pandas DataFrame", type(df).__name__, "write_table")
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise param_error("path", f"a file ending in one of "
                          f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}", str(path),
                          "write_table")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if suffix in CSV_SUFFIXES:
            df.to_csv(path, index=False, sep="\t" if suffix.startswith(".tsv") else ",")
        else:
            df.to_parquet(path, index=False)
    except Exception as exc:  # pyarrow raises several types for unwritable columns
        raise ParameterError(f"Cannot write the table to {path}: {exc}") from None
    return path


__all__ = ["coerce_to_schema", "read_table", "write_table"]
