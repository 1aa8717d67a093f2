"""The release of a table bigger than memory: read in batches, held out by a row-key hash.

:func:`~dpsynth.release.release` given a path (a Parquet file, a folder of Parquet files, a
CSV) or a :class:`~dpsynth.data.stream.StreamedTable`, with a generator that fits from a
stream (aim, mst) and a schema that declares every domain, runs the release without ever
holding the table:

1. **One pass over the input** (:func:`scan`): every batch is parsed and validated as the
   schema says (bad input fails here: nothing is registered, spent or written), hashed into
   the table's ledger identity (:class:`~dpsynth.accounting.fingerprint.StreamedIdentity`,
   equal to that of the same rows in a DataFrame), and split into training and holdout rows
   by :func:`~dpsynth.data.stream.holdout_mask` on the row's key, salted with the release
   seed. Bounded samples of at most ``sample_rows`` training and ``sample_rows`` holdout rows
   are kept: the rows with the smallest values of a second salted hash of the key (a bottom-k
   sample: uniform without replacement, and the same rows whatever the batch size or the
   order of the batches).
2. **The DP fit** reads the stream again through :class:`TrainingRows`, which drops the
   holdout rows of each batch before they are encoded: the holdout never reaches the counts.
3. **The gate and the evidence** read the two samples and at most ``sample_rows`` synthetic
   rows; when the release draws more synthetic rows than that, the bundle's files are drawn in
   chunks (:meth:`~dpsynth.synthesizers.BaseSynthesizer.sample_to`) and the gate reads a random
   part of their first chunk. The card says what each figure read.

**The row key.** The schema's first ``identifier`` column when it has one (rows sharing a key
go to the same side), else the row's position: its row number in the file for a single file;
in a folder, the file's path inside the folder (without its extension) and the row number in
that file. The position key stays the same whatever the batch size, the folder's location, or
files added to the folder beside the others; it changes when the rows of a file are reordered
or a file is renamed. Declare an identifier column to keep the holdout across such changes.

Peak memory grows with the batch size and ``sample_rows``, not with the number of rows. The
in-memory release (a DataFrame) is unchanged: it draws its holdout at random in memory, so the
two releases of the same rows hold out different rows; for the same training rows and seed
the DP fit is the same (the streamed fit counts exactly what the in-memory fit counts).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth._util.progress import StageProgressFn
from dpsynth._util.seeds import child_seed
from dpsynth.accounting import Budget
from dpsynth.accounting.fingerprint import DataIdentity, StreamedIdentity
from dpsynth.accounting.ledger import Ledger, LedgerRecorder
from dpsynth.data.stream import StreamedTable, holdout_mask
from dpsynth.errors import DataReadError, ParameterError, param_error
from dpsynth.release.ablation import split_anchor
from dpsynth.release.bundle import check_out_dir
from dpsynth.release.core import SAMPLE_CHUNK_ROWS, Inputs, ReleaseResult, _check_split, carry_out
from dpsynth.release.evidence import EvidenceData
from dpsynth.release.plan import DEFAULT_SAMPLE_ROWS, ReleasePlan
from dpsynth.schema import Schema


# -- the row key and the split ----------------------------------------------------------------
def key_column(schema: Schema) -> str | None:
    """The column whose value keys a row for the holdout: the first ``identifier`` column."""
    for column in schema.columns:
        if column.kind == "identifier":
            return column.name
    return None


def _salt(seed: int, purpose: str) -> str:
    return f"dpsynth-release-{purpose}:{child_seed(seed, 0)}"


def _hashes(keys: pd.Series, salt: str) -> np.ndarray:
    """64-bit hashes of the keys' text, keyed by ``salt`` (as :func:`holdout_mask` hashes)."""
    key = hashlib.blake2b(salt.encode(), digest_size=8).hexdigest()
    return pd.util.hash_pandas_object(keys.astype(str), index=False,
                                      hash_key=key).to_numpy(dtype=np.uint64)


@dataclass(frozen=True)
class TrainingRows(StreamedTable):
    """The training rows of a streamed table: each batch without its holdout rows.

    A row is held out when :func:`~dpsynth.data.stream.holdout_mask` of its key (see the
    module docstring) with ``fraction`` and ``salt`` says so. The marginal fit reads the rows
    through :meth:`batches` (:meth:`StreamedTable.encode` encodes what it yields), so held-out
    rows are dropped before they are encoded. :meth:`count_rows` still counts every row of
    the input.
    """

    fraction: float = 0.2
    salt: str = ""
    key: str | None = None

    @functools.cached_property
    def _file_starts(self) -> tuple[np.ndarray, list[str]]:
        """First row of each file in the stream, and each file's label in the key."""
        if self.is_csv or not self.path.is_dir():
            return np.zeros(1, dtype=np.int64), [""]
        import pyarrow.parquet as papq

        files, sizes = self.files, []
        for f in files:
            try:
                sizes.append(papq.ParquetFile(f).metadata.num_rows)
            except (OSError, ValueError) as exc:
                raise DataReadError(f"{f} is not a readable Parquet file: {exc}") from None
        labels = [f.relative_to(self.path).with_suffix("").as_posix() + "#" for f in files]
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64), labels

    def row_keys(self, frame: pd.DataFrame) -> pd.Series:
        """The key of each row of a batch (its index holds the rows' positions)."""
        if self.key is not None:
            return frame[self.key]
        position = np.asarray(frame.index, dtype=np.int64)
        starts, labels = self._file_starts
        if len(labels) == 1:
            return pd.Series(position)
        which = np.searchsorted(starts, position, side="right") - 1
        local = pd.Series(position - starts[which]).astype(str)
        return pd.Series(np.asarray(labels, dtype=object)[which]) + local

    def held_out(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of a validated batch (every column) are held out."""
        return holdout_mask(self.row_keys(frame), self.fraction, self.salt)

    def all_batches(self, schema: Schema, *, to_domain: bool = False
                    ) -> Iterator[pd.DataFrame]:
        """Every validated batch, holdout rows included, with every column of the schema."""
        return StreamedTable.batches(self, schema, all_columns=True, to_domain=to_domain)

    def batches(self, schema: Schema, *, all_columns: bool = False, to_domain: bool = False
                ) -> Iterator[pd.DataFrame]:
        """The validated batches without their holdout rows (``to_domain``: as
        :meth:`StreamedTable.batches`)."""
        keep = None if all_columns else [c.name for c in schema.data_columns]
        for frame in self.all_batches(schema, to_domain=to_domain):
            part = frame.loc[~self.held_out(frame)]
            yield part if keep is None else part[keep]


class BottomK:
    """The ``k`` rows with the smallest hashes seen so far (a bottom-k sample)."""

    def __init__(self, k: int):
        self.k = k
        self.frame: pd.DataFrame | None = None
        self.hashes = np.empty(0, dtype=np.uint64)

    def add(self, frame: pd.DataFrame, hashes: np.ndarray) -> None:
        if len(self.hashes) >= self.k:  # only rows below the current k-th hash can enter
            keep = hashes < self.hashes.max()
            frame, hashes = frame.loc[keep], hashes[keep]
        if not len(frame):
            return
        both = frame if self.frame is None else pd.concat([self.frame, frame])
        hashes = np.concatenate([self.hashes, hashes])
        if len(hashes) > self.k:
            pick = np.argpartition(hashes, self.k - 1)[:self.k]
            both, hashes = both.iloc[pick], hashes[pick]
        self.frame, self.hashes = both, hashes

    def rows(self, columns: list[str]) -> pd.DataFrame:
        """The sample in the order of the table."""
        if self.frame is None:
            return pd.DataFrame({c: [] for c in columns})
        return self.frame.sort_index()


@dataclass(frozen=True, eq=False)
class Scan:
    """What one pass over a streamed table found."""

    n_train: int
    n_holdout: int
    train: pd.DataFrame
    holdout: pd.DataFrame
    identity: DataIdentity


def scan(table: TrainingRows, schema: Schema, sample_rows: int,
         progress: StageProgressFn | None = None) -> Scan:
    """Validate every row, count and sample both sides of the split, hash the identity."""
    tick = progress or (lambda stage, done, total: None)
    label = f"read {table.path.name} (validate, split, sample)"
    identity = StreamedIdentity()
    try:
        samples = (BottomK(sample_rows), BottomK(sample_rows))
        counts = [0, 0]
        sample_salt = table.salt + ":sample"
        tick(label, 0, 1)
        for frame in table.all_batches(schema):
            identity.add(frame)
            held = table.held_out(frame)
            order = _hashes(table.row_keys(frame), sample_salt)
            for side, mask in enumerate((~held, held)):
                counts[side] += int(mask.sum())
                samples[side].add(frame.loc[mask], order[mask])
        tick(label, 1, 1)
        names = [c.name for c in schema.columns]
        return Scan(counts[0], counts[1], samples[0].rows(names), samples[1].rows(names),
                    identity.result(schema))
    finally:
        identity.close()


# -- the release ------------------------------------------------------------------------------
def streams(plan: ReleasePlan, schema: Schema) -> bool:
    """Whether the release can read its input in batches (else it reads it whole)."""
    return bool(plan.synthesizer.klass.streams) and not schema.undeclared() \
        and not schema.user_key


def streaming_problems(plan: ReleasePlan, schema: Schema) -> list[str]:
    """What the streamed release does not support of the plan."""
    problems = []
    if plan.time_column is not None:
        problems.append("time_column (the latest period is found by reading every row; "
                        "release a DataFrame)")
    if plan.clip:
        problems.append("clip (clip the values in the files, or release a DataFrame)")
    if plan.reject_rule_breaks and plan.n_rows is not None and plan.n_rows > plan.sample_rows:
        problems.append(f"reject_rule_breaks with n_rows > sample_rows ({plan.sample_rows}): "
                        "the rule filter draws every row in memory")
    return problems


def run_streamed(plan: ReleasePlan, data: StreamedTable, schema: Schema, *,
                 out: Path | None, ledger: Ledger | str | Path | None, cap: Budget | None,
                 overwrite: bool = False,
                 progress: StageProgressFn | None = None) -> ReleaseResult:
    """Carry out ``plan`` on a table read in batches (see the module docstring)."""
    problems = streaming_problems(plan, schema)
    if problems:
        raise ParameterError(f"A streamed release of {data.path} does not support: "
                             + "; ".join(problems))
    if out is not None:
        check_out_dir(out, overwrite)
    if cap is None:  # a missing ledger or registration is said before the table is read
        (ledger if isinstance(ledger, Ledger) else Ledger(ledger, create=False)).dataset(
            plan.dataset)
    key = key_column(schema)
    table = TrainingRows(data.path, data.batch_rows, fraction=plan.holdout_fraction,
                         salt=_salt(plan.seed, "holdout"), key=key)
    found = scan(table, schema, plan.sample_rows, progress)
    if plan.reject_rule_breaks and schema.rules and plan.n_rows is None \
            and found.n_train > plan.sample_rows:
        raise ParameterError(f"A streamed release with reject_rule_breaks draws every "
                             f"synthetic row in memory: give n_rows <= sample_rows "
                             f"({plan.sample_rows}); the table has {found.n_train} training "
                             "rows (nothing was spent)")
    _check_split(found.train, found.holdout, schema, plan.target,
                 counts=(found.n_train, found.n_holdout))
    anchor = test = None
    if plan.target is not None:
        anchor, test = split_anchor(found.holdout, plan.target, child_seed(plan.seed, 4))
    extra = EvidenceData(anchor, test, None, "", 0, schema.rules)
    book, recorder = _open_ledger(ledger, plan.dataset, cap, table, schema, found.identity)
    inputs = Inputs(found.train, found.holdout, extra, fit_data=table,
                    n_train=found.n_train, n_holdout=found.n_holdout,
                    gate_rows=plan.sample_rows,
                    compared_with=_sampled(len(found.train), found.n_train, "training"),
                    tested_on=_sampled(len(found.holdout), found.n_holdout, "holdout"),
                    holdout_use=_holdout_use(plan, key, found))
    return carry_out(plan, inputs, schema, found.identity, book, recorder, out=out,
                     overwrite=overwrite, progress=progress)


def _sampled(k: int, n: int, side: str) -> str:
    if k >= n:
        return f"{side} rows"
    return f"a sample of {k} of the {n} {side} rows (bottom-k of a salted row-key hash)"


def _holdout_use(plan: ReleasePlan, key: str | None, found: Scan) -> str:
    by = (f"the value of the identifier column {key!r}" if key else
          "the row's position (file within the folder, row within the file)")
    return (f"Holdout: the rows whose key ({by}) hashes below {plan.holdout_fraction:g}, "
            f"salted with the release seed ({found.n_holdout} of "
            f"{found.n_train + found.n_holdout} rows; the table was read in batches). The "
            f"evaluation and the audit read at most {plan.sample_rows} training rows, "
            f"{plan.sample_rows} holdout rows and {plan.sample_rows} synthetic rows "
            f"(here {len(found.train)} and {len(found.holdout)} real rows)")


def _open_ledger(ledger: Ledger | str | Path | None, dataset: str, cap: Budget | None,
                 table: TrainingRows, schema: Schema,
                 identity: DataIdentity) -> tuple[Ledger, LedgerRecorder]:
    """As the in-memory release's: registering with ``cap`` reads the table once more for
    the ledger's overlap sketch (bottom-k of keyed row hashes, merged batch by batch)."""
    if cap is not None and not isinstance(cap, Budget):
        raise param_error("cap", "None or a dpsynth Budget", cap, "release")
    book = ledger if isinstance(ledger, Ledger) else Ledger(ledger, create=cap is not None)
    if cap is not None:
        sketch = book.sketch_frames(table.all_batches(schema))
        key = schema.user_key
        book.register(dataset, cap, fingerprint=identity.fingerprint, n_rows=identity.n_rows,
                      privacy_unit=f"user:{key}" if key else "row", schema=schema,
                      content_hash=identity.content_hash, sketch=sketch)
    release_id = f"release-{uuid.uuid4().hex[:12]}"
    return book, book.recorder(dataset, release_id=release_id,
                               fingerprint=identity.fingerprint,
                               content_hash=identity.content_hash)


def as_stream(data: Any) -> StreamedTable:
    """A path or a :class:`StreamedTable` as a :class:`StreamedTable`."""
    if isinstance(data, StreamedTable):
        return data
    if isinstance(data, (str, Path)):
        return StreamedTable(Path(data))
    raise ParameterError(f"data must be a pandas DataFrame, a path (Parquet file, folder of "
                         f"Parquet files, CSV) or a StreamedTable; got {type(data).__name__}")


__all__ = ["DEFAULT_SAMPLE_ROWS", "SAMPLE_CHUNK_ROWS", "BottomK", "Scan", "TrainingRows",
           "key_column", "run_streamed", "scan", "streaming_problems", "streams"]
