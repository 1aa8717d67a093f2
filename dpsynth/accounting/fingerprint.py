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

    if schema is not None and hasattr(schema, "to_dict"):
        schema = schema.to_dict()
    if schema is not None and not isinstance(schema, Mapping):
        raise param_error("schema", "None, a dpsynth.Schema or a dict", type(schema).__name__,
                          "fingerprint")
    header = {
        "schema": schema,
        "columns": sorted(str(c) for c in df.columns) if isinstance(df, pd.DataFrame) else None,
        "n_rows": len(df) if isinstance(df, pd.DataFrame) else None,
    }
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(text.encode("utf-8"))
    digest.update(content_hash(df).encode("ascii"))
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
