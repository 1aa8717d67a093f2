"""Counting on a cluster: the marginal counts of a Parquet table computed by Ray Data.

:class:`RayTable` names Parquet data (a file or a folder, on storage every Ray node reads at
the same path) and a Ray cluster. Fitting AIM or MST on it sends only public things to the
workers: the schema and the column codecs (:mod:`dpsynth.synthesizers.marginal.binning`),
the merge lookups and the list of marginals wanted. Each worker reads Parquet blocks,
parses and validates them as the schema says, encodes them and bincounts the requested
marginals; the driver sums the integer arrays. Noise, selection and accounting stay in the
driver (:mod:`dpsynth.synthesizers.marginal.common`), so the privacy analysis is that of the
embedded path, and the counts, hence the fit for one seed, are identical to it.

One pass validates every row and counts them (nothing is spent before it succeeds); the
1-way marginals take one more pass, the candidate marginals of AIM (or the pairs of MST) one
more; later measurements reuse those counts. Ray is an optional dependency (``pip install
'dpsynth[ray]'``); see ``docs/scale.md`` for a real cluster.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dpsynth.errors import DataReadError, DataValidationError, ParameterError, param_error
from dpsynth.schema import Schema
from dpsynth.synthesizers.marginal.counts import _Cached

if TYPE_CHECKING:
    from dpsynth.synthesizers.marginal.binning import ColumnCodec
    from dpsynth.synthesizers.marginal.counts import CountSource
    from dpsynth.synthesizers.marginal.junction import Clique

#: Rows per block a Ray worker encodes and counts at once.
RAY_BATCH_ROWS = 262_144


@dataclass(frozen=True)
class RayTable:
    """Parquet data counted by a Ray cluster (see the module docstring).

    Parameters
    ----------
    path:
        A Parquet file or a folder of Parquet files, readable at this path by every node.
    address:
        The Ray cluster (``"auto"``, ``"ray://head:10001"``); ``None``: the Ray runtime this
        process is already connected to, else a local one started here and shut down after.
    num_cpus:
        CPUs of a local Ray started here (``None``: all).
    """

    path: Path
    address: str | None = None
    num_cpus: int | None = None
    batch_rows: int = RAY_BATCH_ROWS
    _files: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        from dpsynth.data.stream import StreamedTable

        files = StreamedTable(self.path).files
        if any(not f.name.lower().endswith((".parquet", ".pq")) for f in files):
            raise param_error("path", "a Parquet file or a folder of Parquet files",
                              str(self.path), "RayTable")
        object.__setattr__(self, "_files", tuple(str(f) for f in files))

    def read_all(self, schema: Schema) -> pd.DataFrame:
        """The whole table in memory, for synthesizers that do not stream (read locally)."""
        from dpsynth.data.stream import StreamedTable

        return StreamedTable(self.path).read_all(schema)

    @contextlib.contextmanager
    def count_source(self, schema: Schema, codecs: Sequence[ColumnCodec]
                     ) -> Iterator[CountSource]:
        """Connect to Ray, validate and count the rows (one pass), yield the counts source."""
        from dpsynth.data.stream import _check_same_schema

        _check_same_schema(list(self._files), schema)
        ray, started = _connect(self.address, self.num_cpus)
        try:
            source = RayCounts(self, schema, codecs)
            source.validate()
            yield source
        finally:
            if started:
                ray.shutdown()

    def _dataset(self) -> Any:
        """A Ray dataset of the table's partitions (file, row group), one per block.

        Workers read their row groups themselves with pyarrow (Ray's own Parquet reader
        lists the files again on every pass)."""
        import pyarrow.parquet as papq
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        parts = []
        for f in self._files:
            try:
                groups = papq.ParquetFile(f).metadata.num_row_groups
            except (OSError, ValueError) as exc:
                raise DataReadError(f"{f} is not a readable Parquet file: "
                                    f"{_first_line(exc)}") from None
            parts += [{"file": f, "row_group": g} for g in range(groups)]
        return ray.data.from_items(parts, override_num_blocks=max(1, len(parts)))


def _connect(address: str | None, num_cpus: int | None) -> tuple[Any, bool]:
    try:
        import ray
    except ModuleNotFoundError:
        raise ParameterError("RayTable needs the optional 'ray' package (pip install "
                             "'dpsynth[ray]'); without it, pass the path itself to fit "
                             "(read in batches on this machine)") from None
    if ray.is_initialized():
        return ray, False
    path = os.pathsep.join(p for p in sys.path if p)  # workers import dpsynth as we do
    ray.init(address=address, num_cpus=num_cpus if address is None else None,
             logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    return ray, True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _partition_codes(part: pd.DataFrame, schema_json: str, codecs_json: str,
                     batch_rows: int) -> Iterator[tuple[np.ndarray, list[str], int]]:
    """A worker's partitions, read in slices, parsed and validated as the schema says, then
    encoded: ``(codes, problems, first row)`` per slice (no codes when there are problems)."""
    import pyarrow.parquet as papq

    from dpsynth.data.io import coerce_to_schema
    from dpsynth.synthesizers.marginal.binning import ColumnCodec, encode_table

    schema = Schema.from_dict(json.loads(schema_json))
    codecs = [ColumnCodec.from_dict(c) for c in json.loads(codecs_json)]
    names = [c.name for c in schema.columns]  # all read: the schema validates them all
    for file, group in zip(part["file"], part["row_group"], strict=True):
        table = papq.ParquetFile(str(file)).read_row_group(int(group), columns=names)
        for start in range(0, table.num_rows, batch_rows):
            frame = coerce_to_schema(table.slice(start, batch_rows).to_pandas(), schema)
            problems = schema.problems(frame)
            if problems:
                where = f"(in row group {int(group)} of {file}, from its row {start})"
                yield np.zeros((0, len(codecs)), dtype=np.int64), [*problems, where], start
            else:
                yield encode_table(codecs, frame), [], start


def _validate_block(part: pd.DataFrame, schema_json: str, codecs_json: str,
                    batch_rows: int) -> dict[str, Any]:
    rows, problems = 0, []
    for codes, found, _ in _partition_codes(part, schema_json, codecs_json, batch_rows):
        rows += len(codes)
        problems += found
    return {"rows": np.array([rows]), "problems": np.array([json.dumps(problems[:20])])}


def _count_block(part: pd.DataFrame, schema_json: str, codecs_json: str, batch_rows: int,
                 cliques_json: str, domain: list[int], lookups: list[list[int] | None]
                 ) -> dict[str, Any]:
    from dpsynth.synthesizers.marginal.counts import count_chunk

    tables = [None if t is None else np.asarray(t, dtype=np.intp) for t in lookups]
    cliques = [tuple(c) for c in json.loads(cliques_json)]
    total = np.zeros(sum(int(np.prod([domain[a] for a in c])) for c in cliques), np.int64)
    for codes, problems, _ in _partition_codes(part, schema_json, codecs_json, batch_rows):
        if problems:  # the validation pass saw this block: the data changed under us
            raise DataValidationError(problems)
        total += np.concatenate([count_chunk(codes, c, domain, tables).ravel()
                                 for c in cliques])
    return {"counts": total[None, :]}


class RayCounts(_Cached):
    """:class:`~dpsynth.synthesizers.marginal.counts.CountSource` counted by Ray tasks."""

    def __init__(self, table: RayTable, schema: Schema, codecs: Sequence[ColumnCodec],
                 lookups: Sequence[np.ndarray | None] | None = None, n_rows: int = -1,
                 dataset: Any = None):
        super().__init__()
        self.table = table
        # one lazy Ray dataset of the partitions, re-executed by every pass
        self.dataset = dataset if dataset is not None else table._dataset()
        self.schema = schema
        self.codecs = tuple(codecs)
        self.lookups = None if lookups is None else list(lookups)
        self._n = n_rows
        self._schema_json = json.dumps(schema.to_dict(), default=str)
        self._codecs_json = json.dumps([c.to_dict() for c in self.codecs], default=str)

    @property
    def n_rows(self) -> int:
        if self._n < 0:
            raise RuntimeError("internal error: RayCounts used before validate()")
        return self._n

    def _ds(self) -> Any:
        return self.dataset

    def validate(self) -> None:
        """One pass: every block parsed and validated; the rows counted."""
        ds = self._ds().map_batches(
            _validate_block, batch_format="pandas", batch_size=1,
            fn_args=(self._schema_json, self._codecs_json, self.table.batch_rows))
        n, problems = 0, []
        try:
            for out in ds.iter_batches(batch_format="numpy", batch_size=None):
                n += int(np.sum(out["rows"]))
                for text in out["problems"]:
                    problems += json.loads(str(text))
        except Exception as exc:  # noqa: BLE001 - a worker failed to read a file
            raise DataReadError(f"{self.table.path}: Ray could not read the table: "
                                f"{_first_line(exc)}") from None
        if problems:
            raise DataValidationError([*problems[:20], f"(in {self.table.path}; nothing "
                                                       "was spent)"])
        self._n = n

    def _count(self, cliques: Sequence[Clique], domain: Sequence[int]) -> list[np.ndarray]:
        shapes = [[int(domain[a]) for a in c] for c in cliques]
        sizes = [int(np.prod(s)) for s in shapes]
        lookups = [None if t is None else [int(v) for v in t] for t in self.lookups] \
            if self.lookups is not None else [None] * len(self.codecs)
        ds = self._ds().map_batches(
            _count_block, batch_format="pandas", batch_size=1,
            fn_args=(self._schema_json, self._codecs_json, self.table.batch_rows,
                     json.dumps([list(c) for c in cliques]), [int(d) for d in domain],
                     lookups))
        total = np.zeros(sum(sizes), dtype=np.int64)
        try:
            for out in ds.iter_batches(batch_format="numpy", batch_size=None):
                total += np.asarray(out["counts"], dtype=np.int64).sum(axis=0)
        except Exception as exc:  # noqa: BLE001 - a worker failed
            raise DataReadError(f"{self.table.path}: Ray could not count the table: "
                                f"{_first_line(exc)}") from None
        parts = np.split(total, np.cumsum(sizes)[:-1])
        return [p.reshape(s).astype(float) for p, s in zip(parts, shapes, strict=True)]

    def compressed(self, merges: Sequence[Any], old_domain: Sequence[int]) -> RayCounts:
        lookups = []
        for i, (m, size) in enumerate(zip(merges, old_domain, strict=True)):
            table = m.lookup(size).astype(np.intp)
            old = None if self.lookups is None else self.lookups[i]
            lookups.append(table if old is None else table[old])
        return RayCounts(self.table, self.schema, self.codecs, lookups, self._n, self.dataset)


__all__ = ["RAY_BATCH_ROWS", "RayCounts", "RayTable"]
