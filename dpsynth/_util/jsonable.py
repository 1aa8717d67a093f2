"""JSON values: one normaliser for manifests, reports, cards and ledger rows."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(value: Any, *, nonfinite: str = "keep") -> Any:
    """``value`` as plain JSON types (dict, list, str, int, float, bool, None), recursively.

    numpy scalars and arrays, tuples, sets (sorted), ``Path``, dataclasses and objects with a
    ``to_dict()`` are converted. ``nonfinite`` says what becomes of NaN and ±inf floats:
    ``"keep"`` (Python's json writes ``NaN``/``Infinity`` and reads them back), ``"null"``
    (None) or ``"string"`` (``"nan"``, ``"inf"``, ``"-inf"``).
    """
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _float(float(value), nonfinite)
    if isinstance(value, np.ndarray):
        return [to_jsonable(v, nonfinite=nonfinite) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, nonfinite=nonfinite) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_jsonable(v, nonfinite=nonfinite) for v in value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict(), nonfinite=nonfinite)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value), nonfinite=nonfinite)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; any other value unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def plain_id(value: Any) -> int | str:
    """A row id as JSON can hold it: integers (numpy's too) as ``int``, anything else as text."""
    return int(value) if isinstance(value, (int, np.integer)) else str(value)


def _float(value: float, nonfinite: str) -> Any:
    if math.isfinite(value) or nonfinite == "keep":
        return value
    if nonfinite == "null":
        return None
    if nonfinite == "string":
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    raise ValueError(f"nonfinite must be 'keep', 'null' or 'string'; got {nonfinite!r}")


def json_default(value: Any) -> Any:
    """A ``default=`` for :func:`json.dumps`: numpy scalars and the types of :func:`to_jsonable`."""
    return to_jsonable(value)


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, floats by their shortest exact repr.

    The ledger hashes these exact bytes (``row_hash``): changing the output breaks every
    existing ledger's chain.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=True)


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON text after :func:`to_jsonable`."""
    return json.dumps(to_jsonable(value), indent=indent)


__all__ = ["canonical_json", "dumps", "json_default", "plain", "plain_id", "to_jsonable"]
