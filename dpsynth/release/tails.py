"""Tails on the card: what the synthetic data under-represents, against the training rows.

DP generators smooth the distribution: rare categories shrink or vanish and the extremes of
numeric columns are pulled in. This module lists, per column,

* categories whose synthetic share is below :data:`UNDER_RATIO` times their real share;
* the numeric tails (below the real 5 % and above the real 95 % quantile) that hold less than
  :data:`UNDER_RATIO` times the 5 % expected;
* the **rare** categories (real share below ``rare_share``) that the synthetic data dropped
  entirely, with the count of real rows in them: the people the release does not represent.

The figures read the training rows without noise (epsilon does not cover them), and the card
says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.release.card_sections import _Section
from dpsynth.schema import CATEGORY_KINDS, Schema

#: A category or tail is under-represented below this share of its real share.
UNDER_RATIO = 0.5
#: A category is rare below this real share.
RARE_SHARE = 0.01
TAIL_QUANTILE = 0.05
#: Rows listed on the card at most (the worst first).
MAX_LISTED = 20


@dataclass(frozen=True)
class TailsSection(_Section):
    """The under-represented categories and ranges, and the real rows of dropped rare
    categories."""

    under_represented: tuple[dict[str, Any], ...]
    dropped_rare_categories: tuple[dict[str, Any], ...]
    real_rows_in_dropped_rare: int
    rare_share: float
    under_ratio: float
    compared_with: str = "training rows"
    note: str = ("Measured on the private training rows without noise: epsilon does not "
                 "cover these figures.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TailsSection:
        return cls(tuple(data["under_represented"]), tuple(data["dropped_rare_categories"]),
                   int(data["real_rows_in_dropped_rare"]), float(data["rare_share"]),
                   float(data["under_ratio"]), str(data.get("compared_with", "")),
                   str(data.get("note", "")))


def tails_report(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *,
                 rare_share: float = RARE_SHARE,
                 under_ratio: float = UNDER_RATIO) -> TailsSection:
    """See the module docstring."""
    under: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for col in schema.data_columns:
        if col.name not in real or col.name not in synthetic:
            continue
        if col.kind in CATEGORY_KINDS:
            u, d = _categories(real[col.name], synthetic[col.name], rare_share, under_ratio)
            under += [{"column": col.name, **row} for row in u]
            dropped += [{"column": col.name, **row} for row in d]
        elif col.kind in ("integer", "numeric"):
            under += [{"column": col.name, **row} for row in
                      _numeric(real[col.name], synthetic[col.name], under_ratio)]
    under.sort(key=lambda r: r["synthetic_share"] / max(r["real_share"], 1e-12))
    return TailsSection(tuple(under[:MAX_LISTED]), tuple(dropped),
                        int(sum(r["real_rows"] for r in dropped)), rare_share, under_ratio)


def _categories(real: pd.Series, synthetic: pd.Series, rare: float,
                ratio: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    r = real.dropna().astype(str).value_counts()
    s = synthetic.dropna().astype(str).value_counts()
    n_r, n_s = max(int(r.sum()), 1), max(int(s.sum()), 1)
    under, dropped = [], []
    for value, count in r.items():
        p, q = count / n_r, int(s.get(value, 0)) / n_s
        if q < ratio * p:
            under.append({"values": str(value), "real_share": float(p),
                          "synthetic_share": float(q)})
        if p < rare and q == 0:
            dropped.append({"category": str(value), "real_rows": int(count),
                            "real_share": float(p)})
    return under, dropped


def _numeric(real: pd.Series, synthetic: pd.Series, ratio: float) -> list[dict[str, Any]]:
    r = pd.to_numeric(real, errors="coerce").dropna().to_numpy(float)
    s = pd.to_numeric(synthetic, errors="coerce").dropna().to_numpy(float)
    if len(r) < 20 or len(s) == 0:
        return []
    lo, hi = np.quantile(r, [TAIL_QUANTILE, 1 - TAIL_QUANTILE])
    out = []
    for label, p, q in ((f"< {lo:.6g}", np.mean(r < lo), np.mean(s < lo)),
                        (f"> {hi:.6g}", np.mean(r > hi), np.mean(s > hi))):
        if p > 0 and q < ratio * p:
            out.append({"values": label, "real_share": float(p), "synthetic_share": float(q)})
    return out


__all__ = ["RARE_SHARE", "UNDER_RATIO", "TailsSection", "tails_report"]
