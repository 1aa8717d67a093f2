"""Tables bigger than memory: read in record batches, encoded once to compact codes on disk.

:class:`StreamedTable` names a Parquet file, a folder of Parquet files, or a CSV file
(``.csv``/``.tsv``, optionally gzipped) and reads it in record batches with pyarrow
(``ParquetFile.iter_batches``, ``pyarrow.csv.open_csv``): memory stays bounded by the batch
size whatever the number of rows.
The marginal synthesizers (AIM, MST) fit from it in one pass (:meth:`StreamedTable.encode`):
each batch is parsed as the schema says (:func:`~dpsynth.data.io.coerce_to_schema`),
validated (:meth:`Schema.problems`), encoded with the public codecs and appended as
``uint8``/``uint16`` codes to a file in a temporary folder, which is then read back and
counted chunk by chunk (:mod:`dpsynth.synthesizers.marginal.counts`). The whole input is read
and validated before anything is spent, so bad input (a folder whose files disagree on the
columns or their types, a value outside the schema, an unreadable file part way through)
fails with one :class:`~dpsynth.errors.DataValidationError` or
:class:`~dpsynth.errors.DataReadError`, spends nothing and leaves no file behind.

Undeclared domains are discovered with DP from the stream too: a first pass validates every
batch and accumulates the counts the mechanisms need
(:class:`~dpsynth.data.discover.DiscoveryCounts`), and the encoding pass then maps each batch
into the released domain (``to_domain``: clipping, unreleased values to ``"__other__"``).
Rows are the privacy unit (a ``user_key`` needs every row of a user at once, which a stream
cannot promise).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dpsynth.errors import DataReadError, DataValidationError, ParameterError, param_error
from dpsynth.schema import Schema

if TYPE_CHECKING:
    import pyarrow as pa

    from dpsynth.synthesizers.marginal.binning import ColumnCodec
    from dpsynth.synthesizers.marginal.counts import CountSource

#: Rows per record batch read from the input.
BATCH_ROWS = 262_144

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".tsv", ".csv.gz", ".tsv.gz")


@dataclass(frozen=True)
class StreamedTable:
    """A table read in record batches: a Parquet file, a folder of Parquet files, or a CSV.

    Pass it (or just the path) to ``fit`` of a marginal synthesizer; other synthesizers read
    it whole into memory (:meth:`read_all`).
    """

    path: Path
    batch_rows: int = BATCH_ROWS

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if isinstance(self.batch_rows, bool) or not isinstance(self.batch_rows, int) \
                or self.batch_rows < 1:
            raise param_error("batch_rows", "an integer >= 1", self.batch_rows, "StreamedTable")

    # -- the files ------------------------------------------------------------------------
    @property
    def files(self) -> list[Path]:
        """The files read, in order (a folder: its Parquet files, sorted by name)."""
        p = self.path
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file()
                           and f.name.lower().endswith(_PARQUET))
            if not found:
                raise DataReadError(f"{p} is a folder without Parquet files (*.parquet, *.pq).")
            return found
        if not p.exists():
            raise DataReadError(f"No such file or folder: {p}")
        if not p.name.lower().endswith(_PARQUET + _CSV):
            raise DataReadError(f"{p}: streamed input must be a Parquet file, a folder of "
                                "Parquet files, or a CSV (.csv/.tsv, optionally .gz).")
        return [p]

    @property
    def is_csv(self) -> bool:
        return not self.path.is_dir() and self.path.name.lower().endswith(_CSV)

    def _raw_batches(self, schema: Schema, names: list[str]) -> Iterator[pa.RecordBatch]:
        """Record batches of ``names``, file after file; memory holds one batch (the
        Parquet reader decodes one row group at a time, without read-ahead).

        ``pre_buffer=False``: with pyarrow's default (``True``) the reader's read-range cache
        keeps every compressed column chunk it has read until the reader is closed
        (apache/arrow#39808), so memory grew by the size of the Parquet file (about 6 bytes
        a row of the 15-column benchmark table: 1 GB peak at 100 M rows)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as papq

        if self.is_csv:
            delimiter = "\t" if ".tsv" in self.path.name.lower() else ","
            header = _csv_header(self.path, delimiter)
            _require_columns(names, header, self.path)
            try:
                reader = pacsv.open_csv(
                    pa.input_stream(str(self.path), compression="detect"),
                    read_options=pacsv.ReadOptions(block_size=1 << 24),
                    parse_options=pacsv.ParseOptions(delimiter=delimiter,
                                                     newlines_in_values=True),
                    convert_options=pacsv.ConvertOptions(
                        column_types={c: pa.string() for c in header}, include_columns=names,
                        strings_can_be_null=True))
                yield from reader
            except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
                raise DataReadError(f"{self.path} cannot be read as CSV: {_short(exc)}") from None
            return
        files = self.files
        first = _check_same_schema(files, schema)
        _require_columns(names, first, self.path)
        for f in files:
            try:
                yield from papq.ParquetFile(f, pre_buffer=False).iter_batches(
                    batch_size=self.batch_rows, columns=names)
            except (OSError, ValueError) as exc:
                raise DataReadError(f"{f} could not be read: {_short(exc)}") from None

    # -- reading --------------------------------------------------------------------------
    def batches(self, schema: Schema, *, all_columns: bool = False, to_domain: bool = False
                ) -> Iterator[pd.DataFrame]:
        """The validated batches, as pandas frames of the schema's modelled columns (every
        column of the schema, identifiers included, with ``all_columns``).

        ``to_domain`` maps each batch into the schema's domain before validating it
        (:func:`~dpsynth.data.domain.map_to_domain`), for a schema whose domains were
        discovered with DP.

        Raises :class:`DataValidationError` for the first batch with a problem (its problems
        and where they are), :class:`DataReadError` for a file that cannot be read.
        """
        names = [c.name for c in schema.columns]  # all read: the schema validates them all
        keep = names if all_columns else [c.name for c in schema.data_columns]
        start = 0
        for batch in self._raw_batches(schema, names):
            if batch.num_rows == 0:
                continue
            frame = self._checked(batch, schema, start, to_domain)
            yield frame if all_columns else frame[keep]
            start += batch.num_rows

    def _checked(self, batch: pa.RecordBatch, schema: Schema, start: int,
                 to_domain: bool = False) -> pd.DataFrame:
        from dpsynth.data.domain import map_to_domain
        from dpsynth.data.io import coerce_to_schema

        frame = batch.to_pandas()
        if self.is_csv:
            frame = frame.replace({"": None})
        frame = coerce_to_schema(frame, schema)
        if to_domain:
            frame = map_to_domain(frame, schema)
        frame.index = pd.RangeIndex(start, start + len(frame))
        problems = schema.problems(frame)
        if problems:
            raise DataValidationError([*problems[:20], f"(in rows {start}..{start + len(frame) - 1}"
                                       f" of {self.path}; nothing was spent)"])
        return frame

    def count_rows(self) -> int:
        """Rows in the input: Parquet footers only; a CSV is parsed once (no values kept)."""
        if not self.is_csv:
            import pyarrow.parquet as papq

            n = 0
            for f in self.files:
                try:
                    n += papq.ParquetFile(f).metadata.num_rows
                except (OSError, ValueError) as exc:
                    raise DataReadError(f"{f} is not a readable Parquet file: "
                                        f"{_short(exc)}") from None
            return n
        n = 0
        with _open_text(self.path) as fh:
            import csv

            reader = csv.reader(fh, delimiter="\t" if ".tsv" in self.path.name.lower() else ",")
            next(reader, None)
            for row in reader:
                n += bool(row)
        return n

    @contextlib.contextmanager
    def count_source(self, schema: Schema, codecs: Sequence[ColumnCodec], *,
                     to_domain: bool = False) -> Iterator[CountSource]:
        """The exact counts of the table, for the marginal fit (:meth:`encode`, then
        :class:`~dpsynth.synthesizers.marginal.counts.ChunkedCounts` over the memory map)."""
        from dpsynth.synthesizers.marginal.counts import ChunkedCounts, FileChunks, MemmapChunks

        with self.encode(schema, codecs, to_domain=to_domain) as codes:
            if isinstance(codes, np.memmap) and codes.filename is not None:
                n_rows, n_columns = codes.shape
                yield ChunkedCounts(FileChunks(codes.filename, n_rows, n_columns, codes.dtype))
            else:
                yield ChunkedCounts(MemmapChunks(codes))

    def read_all(self, schema: Schema, *, all_columns: bool = False) -> pd.DataFrame:
        """The whole table in memory (validated), for the synthesizers that need it."""
        parts = list(self.batches(schema, all_columns=all_columns))
        if not parts:
            cols = schema.columns if all_columns else schema.data_columns
            return pd.DataFrame({c.name: [] for c in cols})
        return pd.concat(parts, ignore_index=True)

    @contextlib.contextmanager
    def encode(self, schema: Schema, codecs: Sequence[ColumnCodec], *,
               workdir: str | Path | None = None, to_domain: bool = False
               ) -> Iterator[np.ndarray]:
        """Encode every row to codes on disk; yields them memory-mapped (rows × columns).

        One pass over the input; the codes live in a temporary folder (under ``workdir``)
        removed on exit, also when reading or validation fails part way. ``to_domain`` as
        for :meth:`batches`.
        """
        dtype = code_dtype([c.size for c in codecs])
        folder = Path(tempfile.mkdtemp(prefix="dpsynth-codes-", dir=workdir))
        try:
            path = folder / "codes.bin"
            n = 0
            with path.open("wb") as fh:
                for frame in self.batches(schema, to_domain=to_domain):
                    codes = np.empty((len(frame), len(codecs)), dtype=dtype)
                    for i, codec in enumerate(codecs):  # same codes as encode_table
                        codes[:, i] = codec.encode(frame[codec.name])
                    fh.write(codes.tobytes())
                    n += len(codes)
            shape = (n, len(codecs))
            if n == 0:
                yield np.zeros(shape, dtype=dtype)
            else:
                mm = np.memmap(path, dtype=dtype, mode="r", shape=shape)
                try:
                    yield mm
                finally:
                    del mm
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def code_dtype(sizes: Sequence[int]) -> np.dtype[Any]:
    """The smallest unsigned dtype that holds every code."""
    top = max(sizes, default=1)
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    return np.dtype(np.int64)


def as_streamed(data: object) -> Any:
    """A path (str or Path) as a :class:`StreamedTable`; a :class:`StreamedTable` or a
    :class:`~dpsynth.data.ray_table.RayTable` as it is."""
    from dpsynth.data.ray_table import RayTable

    if isinstance(data, (StreamedTable, RayTable)):
        return data
    if isinstance(data, (str, Path)):
        return StreamedTable(Path(data))
    raise ParameterError(f"data must be a pandas DataFrame, a path (Parquet file, folder of "
                         f"Parquet files, CSV) or a StreamedTable; got {type(data).__name__}")


def holdout_mask(keys: pd.Series, fraction: float, salt: str = "") -> np.ndarray:
    """Rows held out: those whose key hashes below ``fraction`` (stable, batch by batch).

    The hash (pandas' SipHash of the key's text, keyed by a BLAKE2b digest of ``salt``)
    depends on the row alone, so a row is held out or not whatever batch it comes in and
    without reading the rest of the table.
    """
    if not 0.0 <= fraction < 1.0:
        raise param_error("fraction", "a float in [0, 1)", fraction, "holdout_mask")
    key = hashlib.blake2b(salt.encode(), digest_size=8).hexdigest()  # 16 characters
    hashed = pd.util.hash_pandas_object(keys.astype(str), index=False, hash_key=key)
    return hashed.to_numpy(dtype=np.uint64) < np.uint64(int(fraction * 2**64))


def _open_text(path: Path) -> Any:
    import gzip

    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def _csv_header(path: Path, delimiter: str) -> list[str]:
    try:
        with _open_text(path) as fh:
            line = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataReadError(f"{path} cannot be read as CSV: {exc}") from None
    header = [h.strip().strip('"') for h in line.rstrip("\r\n").split(delimiter)]
    if not line or not any(header):
        raise DataReadError(f"{path} is empty (no header line).")
    return header


def _require_columns(names: Sequence[str], found: Sequence[str], path: Path) -> None:
    missing = [n for n in names if n not in found]
    if missing:
        raise DataValidationError([f"columns {missing} of the schema are missing from {path}"])


def _check_same_schema(files: Sequence[Path | str], schema: Schema) -> list[str]:
    """Every Parquet file must have the modelled columns with the first file's types (read
    from the footers only); returns the first file's column names."""
    import pyarrow.parquet as papq

    names = [c.name for c in schema.columns]
    first: dict[str, Any] | None = None
    first_names: list[str] = []
    first_file = ""
    problems: list[str] = []
    for f in files:
        try:
            physical = papq.read_schema(f)
        except (OSError, ValueError) as exc:
            raise DataReadError(f"{f} is not a readable Parquet file: {_short(exc)}") from None
        types = {n: physical.field(n).type for n in names if n in physical.names}
        if first is None:
            first, first_file, first_names = types, str(f), list(physical.names)
            continue
        for n in names:
            if n in first and n not in types:
                problems.append(f"{f} has no column {n!r} (unlike {first_file})")
            elif n in first and types[n] != first[n]:
                problems.append(f"column {n!r} is {types[n]} in {f} but {first[n]} in "
                                f"{first_file}")
    if problems:
        raise DataValidationError([*problems[:20], "the files of one table must share one "
                                   "schema; nothing was read or spent"])
    return first_names


def write_chunks(frames: Iterator[pd.DataFrame], path: str | Path) -> int:
    """Write frames one after another to one Parquet or CSV file; returns the rows written.

    Memory holds one frame at a time. The file appears only when complete: it is written
    next to ``path`` under a temporary name and renamed at the end (removed on failure).
    Later frames are cast to the first frame's column types.
    """
    import pyarrow as pa
    import pyarrow.parquet as papq

    path = Path(path)
    name = path.name.lower()
    if not name.endswith(_PARQUET + (".csv", ".tsv")):
        raise param_error("path", "a .parquet/.pq, .csv or .tsv file", str(path), "write_chunks")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    n = 0
    try:
        if name.endswith(_PARQUET):
            writer = None
            try:
                for frame in frames:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = papq.ParquetWriter(str(tmp), table.schema)
                    elif table.schema != writer.schema:
                        table = table.cast(writer.schema)
                    writer.write_table(table)
                    n += len(frame)
            finally:
                if writer is not None:
                    writer.close()
        else:
            sep = "\t" if name.endswith(".tsv") else ","
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                for i, frame in enumerate(frames):
                    frame.to_csv(fh, index=False, header=i == 0, sep=sep)
                    n += len(frame)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


__all__ = ["BATCH_ROWS", "StreamedTable", "as_streamed", "code_dtype", "holdout_mask",
           "write_chunks"]
