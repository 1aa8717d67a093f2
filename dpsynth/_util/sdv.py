"""SDV metadata JSON read into dpsynth columns (SDV itself is not needed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpsynth.errors import SchemaError
from dpsynth.schema import Column


def columns_from_sdv(metadata: Mapping[str, Any] | str | Path,
                     table: str | None) -> tuple[tuple[Column, ...], str]:
    """The columns and table name of SDV metadata (single-table or multi-table v1).

    See :meth:`dpsynth.schema.Schema.from_sdv_metadata`: every column comes back undeclared
    and ``public=False``.
    """
    if isinstance(metadata, (str, Path)):
        path = Path(metadata)
        if not path.is_file():
            raise SchemaError(f"SDV metadata file not found: {path}")
        try:
            metadata = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(metadata, Mapping):
        raise SchemaError("SDV metadata must be a JSON object")
    tables = metadata.get("tables")
    if tables:
        if table is None:
            if len(tables) != 1:
                raise SchemaError(f"SDV metadata has tables {sorted(tables)}; pass table=")
            table = next(iter(tables))
        spec = tables[table]
    else:
        spec, table = metadata, table or "table"
    columns = []
    for name, info in spec.get("columns", {}).items():
        sdtype = info.get("sdtype", "categorical")
        if sdtype == "numerical":
            kind = "integer" if str(info.get("computer_representation", "")).startswith(
                ("Int", "int")) else "numeric"
        elif sdtype == "datetime":
            kind = "datetime"
        elif sdtype in ("id",) or name == spec.get("primary_key"):
            kind = "identifier"
        elif sdtype == "boolean":
            columns.append(Column(name, "categorical", categories=(False, True),
                                  nullable=True, public=False))
            continue
        elif sdtype in ("categorical",):
            kind = "categorical"
        else:  # email, phone_number, address ... (PII types) are treated as identifiers
            kind = "identifier"
        columns.append(Column(name, kind, nullable=True, public=False))
    return tuple(columns), str(table)


__all__ = ["columns_from_sdv"]
