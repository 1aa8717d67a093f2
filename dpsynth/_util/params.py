"""What a fit chose: the resolved parameters that differ from the given ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def chosen(given: Mapping[str, Any], resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``resolved`` that ``given`` lacks or holds with another value (the
    automatic settings a fit resolved, and the figures it adds, such as its steps)."""
    return {k: v for k, v in resolved.items() if k not in given or given[k] != v}
