"""Singling-out: predicates written from the synthetic data that isolate one training record.

Following Giomi et al. ("A Unified Framework for Quantifying Privacy Risk in Synthetic Data",
PoPETs 2023; the GDPR notion of singling out, Article 29 Working Party Opinion 05/2014), the
attacker writes predicates that match exactly one synthetic row:

* **univariate**: a rare category (``col == v``), a narrow interval around a numeric value
  (``|col - v| <= tol * range``), or below the minimum / above the maximum;
* **multivariate**: the conjunction of such conditions on a few random columns of a random
  synthetic row.

A predicate succeeds when it matches exactly one training record. The same predicates are
evaluated on the control table, of the same size, to measure how often they single out someone
by chance; a naive attacker draws predicate values at random from the columns' ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsynth._util.progress import ProgressFn
from dpsynth.attacks.membership import expect_goal
from dpsynth.attacks.result import AttackResult, check_rule, exposed_ids, score_attack
from dpsynth.attacks.threat import AuditData, Part, ThreatModel
from dpsynth.errors import ParameterError, param_error

MODES = ("univariate", "multivariate")


@dataclass(frozen=True)
class Condition:
    """``lo <= column <= hi`` (equality when ``lo == hi``); ``lo`` NaN means "is missing"."""

    column: int
    lo: float
    hi: float

    def mask(self, values: np.ndarray) -> np.ndarray:
        col = values[:, self.column]
        if np.isnan(self.lo):
            return np.asarray(np.isnan(col))
        return (col >= self.lo) & (col <= self.hi)


Predicate = tuple[Condition, ...]


def matches(predicate: Predicate, values: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``values`` that satisfy every condition."""
    mask = np.ones(len(values), dtype=bool)
    for cond in predicate:
        mask &= cond.mask(values)
    return mask


class SortedColumns:
    """The columns of a value matrix, each sorted once, so that the rows a predicate matches
    are found by bisection on its most selective condition and a check of the others on those
    rows only, instead of a scan of the whole table per predicate. Exact: the same rows as
    :func:`matches`."""

    def __init__(self, values: np.ndarray):
        self.values = values
        small = np.int32 if len(values) < 2**31 else np.int64
        self.order = [np.argsort(values[:, j], kind="stable").astype(small)
                      for j in range(values.shape[1])]
        self.sorted = [values[o, j] for j, o in enumerate(self.order)]  # missing values last
        self.present = [int(np.count_nonzero(~np.isnan(c))) for c in self.sorted]

    def _span(self, cond: Condition) -> tuple[int, int]:
        column, present = self.sorted[cond.column], self.present[cond.column]
        if np.isnan(cond.lo):
            return present, len(column)
        return (int(np.searchsorted(column[:present], cond.lo, "left")),
                int(np.searchsorted(column[:present], cond.hi, "right")))

    def rows(self, predicate: Predicate, *, ordered: bool = True) -> np.ndarray:
        """Indices of the rows that satisfy every condition (ascending when ``ordered``)."""
        if not predicate:
            return np.arange(len(self.values))
        spans = [self._span(c) for c in predicate]
        by_size = np.argsort([hi - lo for lo, hi in spans], kind="stable")
        lo, hi = spans[by_size[0]]
        rows = self.order[predicate[by_size[0]].column][lo:hi]
        for i in by_size[1:]:
            if not rows.size:
                break
            cond = predicate[i]
            col = self.values[rows, cond.column]
            keep = np.isnan(col) if np.isnan(cond.lo) else (col >= cond.lo) & (col <= cond.hi)
            rows = rows[keep]
        return np.sort(rows) if ordered else rows

    def count(self, predicate: Predicate) -> int:
        return int(self.rows(predicate, ordered=False).size)


def _condition(data: AuditData, j: int, value: float, tolerance: float) -> Condition:
    coding = data.encoder.codings_[j]
    if np.isnan(value):
        return Condition(j, np.nan, np.nan)
    if coding.kind == "categorical":
        return Condition(j, value, value)
    half = tolerance * coding.scale
    return Condition(j, value - half, value + half)


def _univariate(data: AuditData, tolerance: float) -> list[Predicate]:
    """Every univariate predicate that isolates exactly one synthetic row."""
    syn = data.synthetic.values
    out: list[Predicate] = []
    for j, coding in enumerate(data.encoder.codings_):
        col = syn[:, j]
        present = np.sort(col[~np.isnan(col)])
        if present.size == 0:
            continue
        if coding.kind == "categorical":
            values, counts = np.unique(present, return_counts=True)
            out.extend((Condition(j, v, v),) for v in values[counts == 1])
            continue
        half = tolerance * coding.scale
        n_near = (np.searchsorted(present, present + half, side="right")
                  - np.searchsorted(present, present - half, side="left"))
        out.extend((Condition(j, v - half, v + half),) for v in present[n_near == 1])
        if np.sum(present == present[0]) == 1:
            out.append((Condition(j, -np.inf, present[0]),))
        if np.sum(present == present[-1]) == 1:
            out.append((Condition(j, present[-1], np.inf),))
    return out


def _multivariate(data: AuditData, n: int, n_columns: int, tolerance: float,
                  rng: np.random.Generator) -> list[Predicate]:
    """Up to ``n`` predicates from random synthetic rows that isolate exactly that row."""
    syn = data.synthetic.values
    syn_columns = data.synthetic.sorted_columns
    width = min(n_columns, syn.shape[1])
    out: list[Predicate] = []
    seen: set[Predicate] = set()
    for _ in range(20 * n):
        row = syn[rng.integers(len(syn))]
        cols = np.sort(rng.choice(syn.shape[1], size=width, replace=False))
        pred = tuple(_condition(data, int(j), row[j], tolerance) for j in cols)
        if pred not in seen and syn_columns.count(pred) == 1:
            out.append(pred)
            if len(out) == n:
                break
        seen.add(pred)
    return out


def _naive(data: AuditData, n: int, n_columns: int, tolerance: float,
           rng: np.random.Generator) -> list[Predicate]:
    """Predicates whose values are drawn at random, column by column, from the synthetic data."""
    syn = data.synthetic.values
    out = []
    for _ in range(n):
        cols = np.sort(rng.choice(syn.shape[1], size=min(n_columns, syn.shape[1]),
                                  replace=False))
        out.append(tuple(_condition(data, int(j), syn[rng.integers(len(syn)), j], tolerance)
                         for j in cols))
    return out


def singling_out(data: AuditData, threat: ThreatModel | None = None, *,
                 mode: str = "multivariate", n_columns: int = 4, tolerance: float = 0.005,
                 threshold: float = 0.05, confidence: float = 0.95,
                 random_state: int | np.random.Generator | None = None,
                 progress: ProgressFn | None = None) -> AttackResult:
    """Singling-out attack (Giomi et al., PoPETs 2023).

    Parameters
    ----------
    threat:
        A ``singling_out`` threat model; ``n_targets`` is the number of predicates tried.
    mode:
        ``univariate`` or ``multivariate``.
    n_columns:
        Conditions per multivariate predicate.
    tolerance:
        Half-width of numeric intervals, as a fraction of the column's robust range.
    """
    threat = threat or ThreatModel.singling_out()
    expect_goal(threat, "singling_out", "singling_out")
    check_rule(threshold, confidence, "singling_out")
    problems = []
    if mode not in MODES:
        problems.append(str(param_error("mode", f"one of {MODES}", mode, "singling_out")))
    if not (isinstance(n_columns, int) and n_columns >= 1):
        problems.append(str(param_error("n_columns", "an integer >= 1", n_columns,
                                        "singling_out")))
    if not 0 <= tolerance < 1:
        problems.append(str(param_error("tolerance", "a float in [0, 1)", tolerance,
                                        "singling_out")))
    if problems:
        raise ParameterError(" ".join(problems))
    rng = np.random.default_rng(random_state)
    n = threat.n_targets
    if mode == "univariate":
        candidates = _univariate(data, tolerance)
        keep = rng.permutation(len(candidates))[:n]
        predicates = [candidates[i] for i in np.sort(keep)]
        naive = _naive(data, len(predicates), 1, tolerance, rng)
    else:
        predicates = _multivariate(data, n, n_columns, tolerance, rng)
        naive = _naive(data, len(predicates), n_columns, tolerance, rng)
    members, controls = data.balanced_targets(len(data.train) + len(data.control), rng)
    train, control = _columns(data.train, members), _columns(data.control, controls)
    hits, control_hits, found = _evaluate(predicates, train, control, progress)
    baseline_hits = np.array([train.count(p) == 1 for p in naive], dtype=bool)
    ids = exposed_ids([data.train.ids[members[i]] for i in found], np.arange(len(found)))
    notes = "" if predicates else "no predicate isolates a single synthetic row"
    return score_attack(f"singling_out_{mode}", threat, hits, control_hits, baseline_hits,
                        threshold=threshold, confidence=confidence,
                        metrics={"mode": mode, "n_predicates": len(predicates),
                                 "n_columns": n_columns if mode == "multivariate" else 1,
                                 "tolerance": tolerance, "table_size": len(members)},
                        exposed_row_ids=ids, notes=notes)


def _columns(part: Part, rows: np.ndarray) -> SortedColumns:
    """Sorted columns of ``part``'s ``rows`` (sorted, distinct): the part's own when all."""
    return part.sorted_columns if rows.size == len(part) else SortedColumns(part.values[rows])


def _evaluate(predicates: list[Predicate], train: SortedColumns, control: SortedColumns,
              progress: ProgressFn | None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    hits = np.zeros(len(predicates), dtype=bool)
    control_hits = np.zeros(len(predicates), dtype=bool)
    found: list[int] = []
    for i, pred in enumerate(predicates):
        rows = train.rows(pred)
        hits[i] = rows.size == 1
        if hits[i]:
            found.append(int(rows[0]))
        control_hits[i] = control.count(pred) == 1
        if progress is not None and (i + 1) % 100 == 0:
            progress(i + 1, len(predicates))
    return hits, control_hits, list(dict.fromkeys(found))
