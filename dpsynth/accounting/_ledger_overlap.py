"""One population, one budget: a keyed bottom-k sketch of a table's rows and their overlap.

Each row is normalised (column names lower-cased and sorted, text stripped and lower-cased,
numbers as floats), hashed with HMAC-SHA256 under the ledger's key, and the ``k`` smallest
distinct hashes are kept (a bottom-k sketch; Cohen and Kaplan, PODC 2007). Two sketches estimate
the Jaccard similarity of the row sets, hence how many rows two tables share, whatever their
order, format, or a few rows dropped or added. Without the key the hashes reveal nothing of the
rows; with it, one can test whether a guessed row is among the ``k`` sampled ones (see
``docs/ledger-threat-model.md``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from dpsynth.accounting._ledger_chain import LedgerEvent
from dpsynth.errors import PrivacyError

#: Hashes kept per sketch.
SKETCH_SIZE = 512
#: Above this share of the smaller table's rows found in a registered dataset, a registration
#: is the same population.
OVERLAP_LIMIT = 0.5


def _normalised_rows(data: Any) -> list[str]:
    import pandas as pd

    frame = data.rename(columns=lambda c: str(c).strip().lower())
    parts = []
    for column in sorted(frame.columns):
        values = frame[column]
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().sum() == values.notna().sum():
            text = numbers.round(9).astype("float64").astype(str)
        else:
            text = values.astype(str).str.strip().str.lower()
        parts.append(column + "=" + text.where(values.notna(), "<na>"))
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "\x1f" + part
    return [str(row) for row in joined.tolist()]


def row_sketch(data: Any, key: bytes, size: int = SKETCH_SIZE) -> list[int]:
    """The bottom-``size`` keyed hashes (64-bit integers) of the normalised rows of ``data``."""
    hashes = {int.from_bytes(hmac.new(key, row.encode("utf-8"), hashlib.sha256).digest()[:8],
                             "big") for row in _normalised_rows(data)}
    return sorted(hashes)[:size]


def shared_fraction(a: Sequence[int], n_a: int, b: Sequence[int], n_b: int,
                    size: int = SKETCH_SIZE) -> float:
    """Estimated share of the smaller table's rows that the other table holds too."""
    if not a or not b:
        return 0.0
    union = sorted(set(a) | set(b))[:size]
    both = set(a) & set(b)
    jaccard = sum(1 for h in union if h in both) / len(union)
    together = jaccard * (n_a + n_b) / (1 + jaccard)
    return min(1.0, together / max(1, min(n_a, n_b)))


def check_overlap(name: str, registered: Mapping[str, list[LedgerEvent]], fingerprint: str,
                  content_hash: str | None, sketch: Sequence[int] | None, n_rows: int,
                  different_population: bool) -> dict[str, Any]:
    """Refuse a new budget for rows already registered under another name.

    Returns what to record with the registration (the overlap measured, when declared a
    different population).
    """
    from dpsynth.accounting._ledger_records import record_from

    worst: tuple[float, str] = (0.0, "")
    for other, regs in sorted(registered.items()):
        if other == name:
            continue
        if record_from(regs).matches(fingerprint, content_hash):
            raise PrivacyError(f"This data (fingerprint {fingerprint[:19]}...) is already "
                               f"registered as dataset {other!r}; spend from that budget "
                               "instead of opening a second one for the same people.")
        for reg in regs:
            theirs = reg.detail.get("sketch")
            if sketch is not None and isinstance(theirs, list):
                shared = shared_fraction(sketch, n_rows, theirs,
                                         int(reg.detail.get("n_rows", 0)))
                worst = max(worst, (shared, other))
    if worst[0] > OVERLAP_LIMIT and not different_population:
        raise PrivacyError(
            f"About {worst[0]:.0%} of these rows are already registered as dataset "
            f"{worst[1]!r}: the same people would get a second budget. Spend from that "
            "budget, or declare a different population (--different-population) if they "
            "truly are other people.")
    if different_population and worst[1]:
        return {"different_population": True, "overlap": {"dataset": worst[1],
                                                          "shared_fraction": worst[0]}}
    return {}

