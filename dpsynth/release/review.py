"""The human review loop: a random sample of the released rows, a sheet to mark the
implausible ones, and the reviewed share (with its interval) on the card.

``export_review`` writes ``review/review.csv`` (the sampled rows plus empty ``implausible``
and ``note`` columns) and ``review/review.html`` (the same rows, for reading) into the bundle.
``import_review`` reads the filled sheet, counts the rows marked implausible (``yes``, ``y``,
``true``, ``1``, ``x``), and records the share with its Wilson score interval on the card's
``evidence.review``, together with the sheet's sha256. When the card's policy sets
``review.max_implausible_share``, the upper end of the interval must not exceed it
(``passed`` on the card; ``dpsynth review import`` exits 3 otherwise). Reviewing synthetic
rows reads no private data: it costs no privacy.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import replace
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.errors import ParameterError
from dpsynth.release.card import CARD_FILE, DatasetCard
from dpsynth.release.evidence import EvidenceSection
from dpsynth.release.provenance import sha256_file

REVIEW_DIR = "review"
MARKS = {"yes", "y", "true", "1", "x", "implausible"}
CLEAR = {"no", "n", "false", "0", "ok", "plausible"}


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials."""
    from scipy.stats import norm

    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def export_review(bundle: str | Path, n: int = 100, seed: int = 0) -> Path:
    """Write the review sheet of ``n`` random synthetic rows; returns the CSV path."""
    root = Path(bundle)
    data = root / "synthetic.csv"
    if not data.is_file():
        raise ParameterError(f"{root} holds no synthetic.csv (a rejected release has no rows "
                             "to review)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParameterError(f"The 'n' parameter of review export must be an integer >= 1; "
                             f"got {n!r}.")
    rows = pd.read_csv(data, dtype=str, keep_default_na=False)
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), min(n, len(rows)),
                                                      replace=False))
    sheet = rows.iloc[pick].reset_index(drop=True)
    sheet.insert(0, "review_id", range(1, len(sheet) + 1))
    sheet["implausible"] = ""
    sheet["note"] = ""
    folder = root / REVIEW_DIR
    folder.mkdir(exist_ok=True)
    path = folder / "review.csv"
    sheet.to_csv(path, index=False)
    (folder / "review.html").write_text(_sheet_html(sheet), encoding="utf-8")
    return path


def _sheet_html(sheet: pd.DataFrame) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in sheet.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in sheet.itertuples(index=False))
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Review sheet"
            "</title></head><body style='font-family:system-ui,sans-serif'><h1>Review sheet"
            "</h1><p>For each row, write <b>yes</b> in the <code>implausible</code> column of "
            "review.csv when no real person could have this record (impossible or "
            "contradictory values), <b>no</b> otherwise; then run <code>dpsynth review import"
            f"</code>.</p><table border=1 cellpadding=3><tr>{head}</tr>{body}</table></body>"
            "</html>\n")


def import_review(bundle: str | Path, sheet: str | Path | None = None,
                  confidence: float = 0.95) -> DatasetCard:
    """Record the filled review sheet on the bundle's card; returns the updated card."""
    root = Path(bundle)
    path = Path(sheet) if sheet is not None else root / REVIEW_DIR / "review.csv"
    if not path.is_file():
        raise ParameterError(f"no review sheet at {path} (run dpsynth review export first)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "implausible" not in frame.columns:
        raise ParameterError(f"{path} has no 'implausible' column")
    marks = frame["implausible"].str.strip().str.lower()
    unknown = sorted(set(marks) - MARKS - CLEAR - {""})
    if unknown:
        raise ParameterError(f"{path}: the implausible column must read yes or no; found "
                             f"{unknown[:5]}")
    reviewed = int((marks != "").sum())
    bad = int(marks.isin(MARKS).sum())
    lo, hi = wilson(bad, reviewed, confidence)
    card = DatasetCard.load(root)
    review: dict[str, Any] = {
        "n_reviewed": reviewed, "n_implausible": bad,
        "share": bad / reviewed if reviewed else None, "ci": [lo, hi],
        "confidence": confidence, "n_in_sheet": len(frame), "sheet": path.name,
        "sheet_sha256": sha256_file(path),
        "reviewed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "note": "human review of released synthetic rows: reads no private data"}
    limit = card.policy.max_implausible_share
    if limit is not None:
        review["max_implausible_share"] = limit
        review["passed"] = bool(reviewed) and hi <= limit
    evidence = card.evidence or EvidenceSection()
    card = replace(card, evidence=replace(evidence, review=review))
    card.save(root / CARD_FILE)
    return card


__all__ = ["REVIEW_DIR", "export_review", "import_review", "wilson"]
