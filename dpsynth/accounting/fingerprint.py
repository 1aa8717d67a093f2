"""Dataset fingerprints: one hash that names a table's content and schema in the ledger.

The fingerprint is ``"sha256:" + hex`` of the schema (canonical JSON), the column names, the
number of rows, and a hash of the content that ignores the order of rows and
columns (:func:`pandas.util.hash_pandas_object` per row over the sorted columns, then
sorted). Shuffling rows or columns keeps it; changing, adding or removing any value changes
it. The per-row hashes come from pandas and are stable across runs and machines, but a pandas
release could change them: register the new fingerprint (``allow_new_fingerprint``) if so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dpsynth.errors import param_error

if TYPE_CHECKING:
    import pandas as pd

PREFIX = "sha256:"


def content_hash(df: pd.DataFrame) -> str:
    """Hex sha256 of ``df``'s values, independent of row order, column order and the index."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise param_error("df", "a pandas DataFrame", type(df).__name__, "content_hash")
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        raise param_error("df", "a DataFrame with unique column names", names, "content_hash")
    ordered = df.set_axis(names, axis=1)[sorted(names)]
    rows = pd.util.hash_pandas_object(ordered, index=False).to_numpy(dtype=np.uint64)
    digest = hashlib.sha256()
    digest.update(np.sort(rows).astype("<u8").tobytes())
    return digest.hexdigest()


def fingerprint(df: pd.DataFrame, schema: Any = None) -> str:
    """``"sha256:<hex>"`` naming ``df`` together with its ``schema`` (a Schema, dict or None).

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    >>> fingerprint(a) == fingerprint(a.iloc[::-1][["y", "x"]])
    True
    >>> fingerprint(a) == fingerprint(a.assign(x=[1, 3]))
    False
    """
    import pandas as pd

    return _fingerprint_of(
        schema, sorted(str(c) for c in df.columns) if isinstance(df, pd.DataFrame) else None,
        len(df) if isinstance(df, pd.DataFrame) else None, content_hash(df))


def _schema_dict(schema: Any) -> Any:
    if schema is not None and hasattr(schema, "to_dict"):
        schema = schema.to_dict()
    if schema is not None and not isinstance(schema, Mapping):
        raise param_error("schema", "None, a dpsynth.Schema or a dict", type(schema).__name__,
                          "fingerprint")
    return schema


def _fingerprint_of(schema: Any, columns: list[str] | None, n_rows: int | None,
                    content: str) -> str:
    header = {"schema": _schema_dict(schema), "columns": columns, "n_rows": n_rows}
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(text.encode("utf-8"))
    digest.update(content.encode("ascii"))
    return PREFIX + digest.hexdigest()


@dataclass(frozen=True)
class DataIdentity:
    """What the ledger knows a table by.

    ``fingerprint`` names the content together with the schema; ``content_hash`` the content
    alone, so the same rows are recognised whatever schema they are declared with (a new
    schema is not a new budget).
    """

    fingerprint: str
    content_hash: str
    n_rows: int


def identify(df: pd.DataFrame, schema: Any = None) -> DataIdentity:
    """The :class:`DataIdentity` of ``df`` declared with ``schema``."""
    return DataIdentity(fingerprint(df, schema), content_hash(df), len(df))


#: Buckets of the streamed content hash (by the top byte of the row hash).
_BUCKETS = 256


class StreamedIdentity:
    """The :class:`DataIdentity` of a table seen one batch at a time, equal to
    :func:`identify` of the batches concatenated.

    :func:`content_hash` sorts every row hash; here each batch's row hashes are appended to
    one of 256 files by their top byte, and at the end each file is sorted in turn and fed to
    the digest (bucket order is sort order). Disk: 8 bytes a row, in ``workdir`` (removed by
    :meth:`close`); memory: one batch, then one bucket (1/256 of the row hashes).
    """

    def __init__(self, workdir: str | Path | None = None):
        import tempfile

        self._dir = Path(tempfile.mkdtemp(prefix="dpsynth-identity-", dir=workdir))
        self._files = [(self._dir / f"{i:03d}.u64").open("ab") for i in range(_BUCKETS)]
        self._columns: list[str] | None = None
        self.n_rows = 0

    def add(self, frame: pd.DataFrame) -> None:
        """Hash the rows of one batch (the same columns every batch)."""
        import pandas as pd

        names = [str(c) for c in frame.columns]
        if self._columns is None:
            self._columns = sorted(names)
        elif sorted(names) != self._columns:
            raise param_error("frame", f"a batch with the columns {self._columns}",
                              sorted(names), "StreamedIdentity")
        ordered = frame.set_axis(names, axis=1)[self._columns]
        rows = pd.util.hash_pandas_object(ordered, index=False).to_numpy(dtype=np.uint64)
        top = (rows >> np.uint64(56)).astype(np.intp)
        order = np.argsort(top, kind="stable")
        bounds = np.searchsorted(top[order], np.arange(_BUCKETS + 1))
        for b in np.flatnonzero(np.diff(bounds)):
            self._files[b].write(rows[order[bounds[b]:bounds[b + 1]]].astype("<u8").tobytes())
        self.n_rows += len(rows)

    def result(self, schema: Any = None) -> DataIdentity:
        """The identity of every row added, declared with ``schema``."""
        digest = hashlib.sha256()
        for f in self._files:
            f.flush()
        for i in range(_BUCKETS):
            part = np.fromfile(self._dir / f"{i:03d}.u64", dtype="<u8")
            digest.update(np.sort(part).tobytes())
        content = digest.hexdigest()
        return DataIdentity(_fingerprint_of(schema, self._columns, self.n_rows, content),
                            content, self.n_rows)

    def close(self) -> None:
        """Remove the hash files."""
        import shutil

        for f in self._files:
            f.close()
        shutil.rmtree(self._dir, ignore_errors=True)
