"""Discover undeclared column domains with differential privacy, paid through the recorder.

A generator must know each column's domain (numeric bounds, category lists) before it sees
the data, and that domain is part of what it releases. When the schema leaves a domain
undeclared, :class:`~dpsynth.synthesizers.base.BaseSynthesizer` buys it here:

1. :func:`plan_discovery` (data-independent) splits the discovery budget evenly over the
   columns, scaled up as far as the PLD accountant allows, and returns one planned spend per
   column: ``bounds:<col>`` (two exponential-mechanism quantiles, pure DP) or
   ``categories:<col>`` (a thresholded Laplace histogram, approximate DP).
2. :func:`run_discovery` runs each mechanism inside ``with recorder.spend(...)``, so a column's
   values are read only after its spend is recorded, and returns a schema whose discovered
   columns are marked ``public=True`` (their domain is now a DP release) with provenance in
   ``Schema.metadata["dp_discovered"]`` and in each column's ``description``.
3. :func:`map_to_domain` then maps the private table into the discovered domain: values
   outside the discovered bounds are clipped to them, and category values that the histogram
   did not release become the explicit category :data:`OTHER` (``"__other__"``), which every
   discovered category list contains (whether anything was dropped is itself private).
   Clipping and mapping to ``"__other__"`` are part of the mechanism design: the generator
   trains on the mapped table, and its output never contains a value outside the released
   domain.

A table read in batches (:class:`~dpsynth.data.stream.StreamedTable`) is discovered the same
way from :class:`DiscoveryCounts`, which accumulates what the mechanisms need batch by batch:
the count of each category value (a dict, one entry per distinct value: about 100-200 bytes
each, capped at :data:`MAX_STREAMED_DISTINCT` per column) and, for bounds, the counts of the
values on a public grid of :data:`GRID_CELLS` equal cells of the (``asinh``-scaled) search range
(8 bytes a cell, 512 KiB a column). The category mechanism is the same as in memory (same
seed, same data: same list); the exponential-mechanism quantile needs the sorted values, so
the streamed path runs it on the values rounded to the public grid
(:func:`~dpsynth.data._dp_primitives.grid_quantile`), with the same guarantee and the same
planned spend, and the bounds differ from the in-memory ones by at most a cell's width plus
the noise.

Options come from the schema, under ``metadata: {discovery: {...}}`` (see
:class:`DiscoveryOptions`), so they can be written in a schema file. The public search range
bounds what the quantile mechanism can output: data outside it is clipped into it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from dpsynth._util.jsonable import plain
from dpsynth.accounting import (
    ApproxDPEvent,
    Event,
    NoiseSource,
    PureDPEvent,
    SpendRecorder,
    pld_epsilon,
)
from dpsynth.accounting.session import Spend as PlannedSpend
from dpsynth.data._dp_primitives import (
    exponential_quantile,
    grid_cells,
    grid_quantile,
    histogram_threshold,
    thresholded_histogram,
)
from dpsynth.data.domain import OTHER, map_to_domain
from dpsynth.errors import DataValidationError, ParameterError, PrivacyError, param_error
from dpsynth.schema import BOUNDED_KINDS, CATEGORY_KINDS, Column, Schema

logger = logging.getLogger(__name__)

#: The category that stands for every value the DP histogram did not release.
QUANTILE_MECHANISM = "exponential (quantile)"
#: The streamed variant: the same mechanism on values rounded to a public grid.
GRID_QUANTILE_MECHANISM = "exponential (quantile, public grid)"
#: Equal cells of the public grid that the streamed quantile mechanism rounds values to
#: (over the asinh-scaled default range [-1e9, 1e9]: about 0.07 % of a value above 1).
GRID_CELLS = 1 << 16
#: Most distinct values of one column that streamed category discovery counts; beyond it the
#: column is refused (before any spend) as no usable category list.
MAX_STREAMED_DISTINCT = 1_000_000
HISTOGRAM_MECHANISM = "thresholded histogram"
_NS_PER_DAY = 86_400 * 10**9
_REL_TOL = 1e-3
#: 2 (ln(1e6) + ln(1e3)): see :func:`_target_rank`.
_MIN_RANK_NUMERATOR = 2 * math.log(1e9)


@dataclass(frozen=True)
class DiscoveryOptions:
    """Public, data-independent settings of the discovery mechanisms.

    Parameters
    ----------
    quantiles:
        The low and high quantile released as a column's bounds. Values beyond them are
        clipped; wider quantiles clip less but are noisier at small epsilon.
    search_range:
        Public range the quantile mechanism searches for ``numeric``/``integer`` columns.
        It must not come from the data. The default is wide; a narrower range known from
        public knowledge (e.g. ages in [0, 130]) gives tighter bounds for the same epsilon.
    datetime_search_range:
        The same for ``datetime`` columns (ISO dates).
    search_ranges:
        Per-column public search ranges, overriding the two above.
    scale:
        ``"asinh"`` (default) runs the numeric mechanism on ``asinh(x)``, so the wide
        default range costs only logarithmically; ``"linear"`` on ``x``. Datetimes are
        always linear (in days).

    In a schema file: ``metadata: {discovery: {quantiles: [0.02, 0.98],
    search_ranges: {age: [0, 130]}}}``.
    """

    quantiles: tuple[float, float] = (0.01, 0.99)
    search_range: tuple[float, float] = (-1e9, 1e9)
    datetime_search_range: tuple[str, str] = ("1900-01-01", "2100-01-01")
    search_ranges: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    scale: str = "asinh"

    def __post_init__(self) -> None:
        owner = "DiscoveryOptions"
        q = tuple(self.quantiles)
        if len(q) != 2 or not all(isinstance(v, (int, float)) for v in q) or \
                not 0 < q[0] < q[1] < 1:
            raise param_error("quantiles", "two floats 0 < low < high < 1", self.quantiles, owner)
        object.__setattr__(self, "quantiles", (float(q[0]), float(q[1])))
        if self.scale not in ("asinh", "linear"):
            raise param_error("scale", "'asinh' or 'linear'", self.scale, owner)
        object.__setattr__(self, "search_range", _numeric_range("search_range",
                                                                self.search_range))
        _datetime_range("datetime_search_range", self.datetime_search_range)
        ranges = {str(k): tuple(v) for k, v in dict(self.search_ranges).items()}
        object.__setattr__(self, "search_ranges", ranges)

    @classmethod
    def from_schema(cls, schema: Schema) -> DiscoveryOptions:
        """Options from ``schema.metadata["discovery"]`` (defaults where absent)."""
        raw = dict(schema.metadata.get("discovery") or {})
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise param_error("metadata.discovery", f"a mapping with keys among "
                              f"{sorted(cls.__dataclass_fields__)}", unknown, "Schema")
        for key in ("quantiles", "search_range", "datetime_search_range"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)

    def range_for(self, column: Column) -> tuple[float, float]:
        """The public search range of ``column`` as floats (days since 1970 for datetimes)."""
        if column.kind == "datetime":
            lo, hi = self.search_ranges.get(column.name, self.datetime_search_range)
            return _datetime_range(f"search_ranges[{column.name!r}]", (lo, hi))
        if column.name in self.search_ranges:
            return _numeric_range(f"search_ranges[{column.name!r}]",
                                  self.search_ranges[column.name])
        return self.search_range


def _numeric_range(name: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise param_error(name, "two numbers [low, high]", value, "DiscoveryOptions") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise param_error(name, "two finite numbers with low < high", value, "DiscoveryOptions")
    return lo, hi


def _datetime_range(name: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (pd.Timestamp(v).value / _NS_PER_DAY for v in value)
    except (TypeError, ValueError, OverflowError):
        raise param_error(name, "two dates [low, high]", value, "DiscoveryOptions") from None
    if not lo < hi:
        raise param_error(name, "two dates with low < high", value, "DiscoveryOptions")
    return lo, hi


# -- planning (data-independent) --------------------------------------------------------------
def plan_discovery(schema: Schema, columns: list[str], *, epsilon: float,
                   delta: float, n_rows: int | None = None) -> list[PlannedSpend]:
    """Plan the DP discovery of the domains of ``columns`` within ``(epsilon, delta)``.

    Every column gets the same epsilon, scaled up to the largest value for which the PLD
    composition of all the planned events is at most ``epsilon`` at ``delta`` (never less
    than the plain split ``epsilon / len(columns)``, up to the accountant's discretisation).
    Category lists need ``delta > 0``, split evenly over them. Looks at no data.

    ``n_rows`` (public, optional) lets the plan fail fast, with a :class:`ParameterError`
    naming the columns, when the budget is too small to release a usable domain from that
    many rows; :func:`run_discovery` checks it again in any case.
    """

    owner = "plan_discovery"
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or \
            not 0 < epsilon < math.inf:
        raise param_error("epsilon", "a float in (0, inf)", epsilon, owner)
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 <= delta < 1:
        raise param_error("delta", "a float in [0, 1)", delta, owner)
    cols = _columns_to_discover(schema, list(columns))
    if not cols:
        return []
    n_cat = sum(c.kind in CATEGORY_KINDS for c in cols)
    if n_cat and delta <= 0:
        raise param_error("delta", "> 0 when category lists are discovered (the thresholded "
                          "histogram is (epsilon, delta)-DP)", delta, owner)
    delta_each = delta / n_cat if n_cat else 0.0

    def events(eps_each: float) -> list[Event]:
        return [_column_event(c, eps_each, delta_each) for c in cols]

    eps_each = _largest_share(events, float(epsilon), float(delta), len(cols))
    plan = [PlannedSpend(_purpose(c), e) for c, e in zip(cols, events(eps_each), strict=True)]
    if n_rows is not None:
        _check_feasible(list(zip(plan, cols, strict=True)), int(n_rows))
    return plan


def _refuse_user_key(schema: Schema, columns: list[str]) -> None:
    if schema.user_key is not None:
        raise PrivacyError(
            f"DP discovery of domains counts one row per person, but the schema has a user key "
            f"({schema.user_key!r}: several rows per person). Declare the domains of columns "
            f"{columns} public in the schema instead."
        )


def _columns_to_discover(schema: Schema, columns: list[str]) -> list[Column]:
    _refuse_user_key(schema, columns)
    problems = []
    for name in columns:
        if name not in schema:
            problems.append(f"{name!r} is not a column of the schema")
        elif schema[name].kind not in BOUNDED_KINDS + CATEGORY_KINDS:
            problems.append(f"{name!r} is a {schema[name].kind} column (no domain to discover)")
    if len(set(columns)) != len(columns):
        problems.append("a column is listed twice")
    if problems:
        raise param_error("columns", "columns of the schema with a domain to discover",
                          "; ".join(problems), "plan_discovery")
    return [schema[name] for name in columns]


def _purpose(column: Column) -> str:
    return ("categories:" if column.kind in CATEGORY_KINDS else "bounds:") + column.name


def _column_event(column: Column, epsilon: float, delta: float) -> Event:
    if column.kind in CATEGORY_KINDS:
        return ApproxDPEvent(epsilon, delta, mechanism=HISTOGRAM_MECHANISM)
    return PureDPEvent(epsilon / 2, count=2, mechanism=QUANTILE_MECHANISM)


def _largest_share(events: Any, epsilon: float, delta: float, k: int) -> float:
    """Largest per-column epsilon (to 0.1 %) whose composed PLD epsilon is at most ``epsilon``.

    Starts from the plain split ``epsilon / k``, which the pessimistic discretisation of the
    accountant can overshoot slightly at very small epsilon, and bisects.
    """

    def composed(eps_each: float) -> float:
        return pld_epsilon(events(eps_each), delta)

    lo = hi = epsilon / k
    if composed(lo) > epsilon:
        lo *= epsilon / composed(lo)
        while composed(lo) > epsilon:
            lo *= 0.9
    else:
        hi = lo * 2
        while composed(hi) <= epsilon:
            lo, hi = hi, hi * 2
    while hi / lo > 1 + _REL_TOL:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if composed(mid) <= epsilon else (lo, mid)
    return lo


# -- accumulating batch by batch (a table read in pieces) -------------------------------------
class DiscoveryCounts:
    """What the discovery mechanisms read from the data, accumulated batch by batch.

    For a table read in batches (:class:`~dpsynth.data.stream.StreamedTable`): :meth:`add`
    each validated batch, then pass this object to :func:`run_discovery` in place of the
    DataFrame. It keeps, per category column, the count of each distinct non-null value (in
    the order first seen, as ``value_counts(sort=False)`` of the whole column would) and, per
    bounded column, the counts on a public grid of :data:`GRID_CELLS` cells of the column's
    search range (scaled as the options say) and its number of non-null values. Memory does
    not grow with the rows: 512 KiB per bounded column, and one dict entry per distinct value
    of a category column (about 100-200 bytes each), refused beyond
    :data:`MAX_STREAMED_DISTINCT` values. Nothing here is released: :func:`run_discovery`
    draws from these counts only inside each column's spend.
    """

    def __init__(self, schema: Schema, columns: list[str],
                 options: DiscoveryOptions | None = None) -> None:
        self.options = options if options is not None else DiscoveryOptions.from_schema(schema)
        self.columns = _columns_to_discover(schema, list(columns))
        self.n_rows = 0
        self.categories: dict[str, dict[Any, int]] = {}
        self.grids: dict[str, np.ndarray] = {}
        self.non_null: dict[str, int] = {}
        self.scales: dict[str, tuple[float, float, bool]] = {}
        for column in self.columns:
            if column.kind in CATEGORY_KINDS:
                self.categories[column.name] = {}
                continue
            lo, hi = self.options.range_for(column)  # a bad range fails before any read
            asinh = self.options.scale == "asinh" and column.kind != "datetime"
            fwd = np.arcsinh if asinh else _identity
            self.scales[column.name] = (float(fwd(lo)), float(fwd(hi)), asinh)
            self.grids[column.name] = np.zeros(GRID_CELLS, dtype=np.int64)
            self.non_null[column.name] = 0

    def add(self, frame: pd.DataFrame) -> None:
        """Count one batch (validated against the schema)."""
        for column in self.columns:
            series = frame[column.name]
            if column.kind in CATEGORY_KINDS:
                counts = self.categories[column.name]
                found = series.dropna().value_counts(sort=False)
                for value, k in zip(found.index.tolist(), found.to_numpy().tolist(),
                                    strict=True):
                    counts[value] = counts.get(value, 0) + int(k)
                if len(counts) > MAX_STREAMED_DISTINCT:
                    raise DataValidationError([
                        f"column {column.name!r} has more than {MAX_STREAMED_DISTINCT:,} "
                        "distinct values: too many to discover a category list from a "
                        "streamed table (nothing was spent). Declare its categories, make it "
                        "an identifier or text column, or fit from a DataFrame."])
            else:
                values = _as_floats(column, series)
                lo, hi, asinh = self.scales[column.name]
                if asinh:
                    values = np.arcsinh(values)
                self.grids[column.name] += grid_cells(values, lower=lo, upper=hi,
                                                      cells=GRID_CELLS)
                self.non_null[column.name] += int(values.size)
        self.n_rows += len(frame)


# -- running (reads the data, inside each spend) ---------------------------------------------
def run_discovery(data: pd.DataFrame | DiscoveryCounts, schema: Schema,
                  plan: list[PlannedSpend], *, noise: NoiseSource, recorder: SpendRecorder,
                  options: DiscoveryOptions | None = None) -> Schema:
    """Run the planned mechanisms and return ``schema`` with the discovered domains filled in.

    Each column is read only inside ``with recorder.spend(purpose, event)``: a refused spend
    raises before any value of that column is read. The returned schema marks the
    discovered columns ``public=True`` and records, in ``metadata["dp_discovered"]``, the
    mechanism, epsilon and delta of each. Call :func:`map_to_domain` on the data before
    training on it.

    ``data`` may be :class:`DiscoveryCounts` accumulated from a table read in batches (its
    options are used): the category lists come from the same mechanism (same seed, same
    list), the bounds from the grid variant of the quantile mechanism
    (:data:`GRID_QUANTILE_MECHANISM`), under the same planned spends.
    """
    if isinstance(data, DiscoveryCounts):
        options = data.options
    else:
        options = options if options is not None else DiscoveryOptions.from_schema(schema)
    steps = _check_plan(data, schema, plan, options)
    found: dict[str, Any] = dict(schema.metadata.get("dp_discovered") or {})
    for spend, column in steps:
        with recorder.spend(spend.purpose, spend.event):
            if isinstance(data, DiscoveryCounts):
                if column.kind in CATEGORY_KINDS:
                    counts = data.categories[column.name]
                    new, record = _release_categories(
                        column, list(counts), np.fromiter(counts.values(), dtype=float,
                                                          count=len(counts)), spend.event, noise)
                else:
                    new, record = _discover_bounds_on_grid(column, data, spend.event, noise)
            else:
                values = data[column.name]
                if column.kind in CATEGORY_KINDS:
                    new, record = _discover_categories(column, values, spend.event, noise)
                else:
                    new, record = _discover_bounds(column, values, spend.event, noise, options)
        schema = schema.replace_column(new)
        found[column.name] = record
        logger.info("discovered the domain of %r with DP: %s", column.name, new.description)
    return replace(schema, metadata={**schema.metadata, "dp_discovered": found})


def _check_plan(data: pd.DataFrame | DiscoveryCounts, schema: Schema, plan: list[PlannedSpend],
                options: DiscoveryOptions) -> list[tuple[PlannedSpend, Column]]:
    """Match each planned spend to its column; every problem at once, before any spend."""
    if isinstance(data, DiscoveryCounts):
        available = {c.name for c in data.columns}
        n_rows = data.n_rows
    elif isinstance(data, pd.DataFrame):
        available, n_rows = set(data.columns), len(data)
    else:
        raise param_error("data", "a pandas DataFrame or DiscoveryCounts", type(data).__name__,
                          "run_discovery")
    _refuse_user_key(schema, [p.purpose.partition(":")[2] for p in plan])
    problems: list[str] = []
    steps: list[tuple[PlannedSpend, Column]] = []
    for spend in plan:
        kind, _, name = spend.purpose.partition(":")
        column = schema[name] if name in schema else None
        if column is None or kind not in ("bounds", "categories"):
            problems.append(f"{spend.purpose!r} names no column of the schema")
            continue
        expected = _purpose(column)
        if spend.purpose != expected:
            problems.append(f"{spend.purpose!r} does not fit a {column.kind} column")
        elif kind == "bounds" and not (isinstance(spend.event, PureDPEvent)
                                       and spend.event.count == len(options.quantiles)):
            problems.append(f"{spend.purpose!r} needs a PureDPEvent with count=2")
        elif kind == "categories" and not (isinstance(spend.event, ApproxDPEvent)
                                           and spend.event.delta > 0):
            problems.append(f"{spend.purpose!r} needs an ApproxDPEvent with delta > 0")
        elif name not in available:
            problems.append(f"column {name!r} is not in the data")
        elif any(name == c.name for _, c in steps):
            problems.append(f"{spend.purpose!r} is planned twice")
        else:
            if kind == "bounds":
                options.range_for(column)  # a bad search range fails here, before any spend
            steps.append((spend, column))
    if problems:
        raise ParameterError("The discovery plan cannot run: " + "; ".join(problems))
    _check_feasible(steps, n_rows)
    return steps


def _check_feasible(steps: list[tuple[PlannedSpend, Column]], n_rows: int) -> None:
    """Refuse, before any spend, budgets too small to release a usable domain from ``n_rows``
    rows (the row count is public, as for the choice of delta).

    Bounds: the quantile targets would sit more than ``n / 4`` rows in from each end
    (:func:`_target_rank`), so the bounds would clip over half of the rows, or the draw would
    land far outside the data. Categories: the threshold exceeds ``n``, so no value can pass.
    """
    short = []
    for spend, column in steps:
        event = spend.event
        if isinstance(event, PureDPEvent):
            need = 2 * 4 * _MIN_RANK_NUMERATOR / n_rows  # both quantiles together
            have = event.epsilon * event.count
        else:
            assert isinstance(event, ApproxDPEvent)
            need = math.log(1 / (2 * event.delta)) / max(n_rows - 1, 1)
            have = event.epsilon
        if have < need:
            what = "categories" if column.kind in CATEGORY_KINDS else "bounds"
            short.append(f"column {column.name!r} needs epsilon >= {need:.3g} for its {what} "
                         f"(planned: {have:.3g})")
    if short:
        raise ParameterError(
            f"The 'epsilon' for discovering domains is too small for a table of {n_rows} rows: "
            + "; ".join(short) + ". Declare these domains in the schema from public knowledge, "
            "or raise epsilon (or discovery_fraction)."
        )


def _discover_bounds(column: Column, series: pd.Series, event: Event, noise: NoiseSource,
                     options: DiscoveryOptions) -> tuple[Column, dict[str, Any]]:
    assert isinstance(event, PureDPEvent)
    values, n_rows = _as_floats(column, series), len(series)
    lo_range, hi_range = options.range_for(column)
    asinh = options.scale == "asinh" and column.kind != "datetime"
    fwd, inv = (np.arcsinh, np.sinh) if asinh else (_identity, _identity)
    found = sorted(
        float(inv(exponential_quantile(
            fwd(values), target_rank=_target_rank(q, values.size, event.epsilon),
            epsilon=event.epsilon,
            lower=float(fwd(lo_range)), upper=float(fwd(hi_range)), noise=noise,
        )))
        for q in options.quantiles
    )
    return _bounds_found(column, found, event, options, n_rows, QUANTILE_MECHANISM, asinh)


def _discover_bounds_on_grid(column: Column, data: DiscoveryCounts, event: Event,
                             noise: NoiseSource) -> tuple[Column, dict[str, Any]]:
    """:func:`_discover_bounds` from the grid counts (the grid variant of the mechanism)."""
    assert isinstance(event, PureDPEvent)
    options = data.options
    counts, n_values = data.grids[column.name], data.non_null[column.name]
    lo, hi, asinh = data.scales[column.name]
    inv = np.sinh if asinh else _identity
    found = sorted(
        float(inv(grid_quantile(counts, target_rank=_target_rank(q, n_values, event.epsilon),
                                epsilon=event.epsilon, lower=lo, upper=hi, noise=noise)))
        for q in options.quantiles
    )
    return _bounds_found(column, found, event, options, data.n_rows, GRID_QUANTILE_MECHANISM,
                         asinh, grid_cells=int(counts.size))


def _bounds_found(column: Column, found: list[float], event: PureDPEvent,
                  options: DiscoveryOptions, n_rows: int, mechanism: str, asinh: bool,
                  **extra: Any) -> tuple[Column, dict[str, Any]]:
    """The column with its released bounds, and the discovery record (either mechanism)."""
    lo_range, hi_range = options.range_for(column)
    lower, upper = _finish_bounds(column, found[0], found[1])
    r_min = _MIN_RANK_NUMERATOR / event.epsilon
    _warn_small_epsilon(column, event, options, n_rows, r_min)
    record = {
        "mechanism": mechanism, "epsilon": event.epsilon * event.count, "delta": 0.0,
        "quantiles": list(options.quantiles), "search_range": [lo_range, hi_range],
        "scale": "asinh" if asinh else "linear", "min_rank": r_min, **extra,
    }
    if column.kind == "datetime":
        record["search_range"] = [_day_to_iso(lo_range), _day_to_iso(hi_range)]
    desc = (f"discovered with DP: quantiles {options.quantiles} by the {mechanism} "
            f"mechanism, ε={event.epsilon * event.count:.4g}")
    return replace(column, lower=lower, upper=upper, public=True, description=desc), record


def _warn_small_epsilon(column: Column, event: PureDPEvent, options: DiscoveryOptions,
                        n_rows: int, r_min: float) -> None:
    if min(options.quantiles[0], 1 - options.quantiles[1]) * n_rows < r_min:  # public n
        logger.warning(
            "column %r: epsilon=%.3g per quantile is too small to release the %s quantiles "
            "reliably; its bounds are at least %.0f values in from each end instead (clipping "
            "more). Declare its bounds or give discovery more epsilon.",
            column.name, event.epsilon, options.quantiles, r_min)


def _target_rank(q: float, n: int, epsilon: float) -> float:
    """The rank the quantile mechanism aims at: ``q * n``, moved inward at small epsilon.

    By the utility theorem of the exponential mechanism (McSherry and Talwar, FOCS 2007) the
    output's rank is within ``2 (ln(L / w) + ln(1 / beta)) / epsilon`` of the target with
    probability ``1 - beta``, where ``L / w`` is the search range over the width of the
    target interval. Aiming closer to an end than that lets the output fall into the empty
    stretch of the search range beyond the data (bounds like -1e8). So the target is kept at
    least :data:`_MIN_RANK_NUMERATOR` ``/ epsilon`` ranks from each end (``L / w = 1e6``,
    ``beta = 1e-3``), and at the median at the most. As a function of ``n`` the target never
    decreases and rises by at most 1 per added row, so the score's sensitivity stays 1.
    """
    r_min = _MIN_RANK_NUMERATOR / epsilon
    if q < 0.5:
        return min(max(q * n, r_min), n / 2)
    return max(min(q * n, n - r_min), n / 2)


def _identity(x: Any) -> Any:
    return x


def _as_floats(column: Column, series: pd.Series) -> np.ndarray:
    """Non-null values as floats (days since 1970 for datetimes); unparsable ones dropped."""
    if column.kind == "datetime":
        stamps = pd.to_datetime(series, errors="coerce").dropna()
        ns = stamps.astype("datetime64[ns]").astype("int64").to_numpy(dtype=float)
        return ns / _NS_PER_DAY
    numbers = pd.to_numeric(series, errors="coerce").astype(float).to_numpy()
    return numbers[~np.isnan(numbers)]


def _finish_bounds(column: Column, lo: float, hi: float) -> tuple[Any, Any]:
    """Round the released bounds outward (post-processing) into the column's units."""
    if column.kind == "integer":
        ilo, ihi = math.floor(lo), math.ceil(hi)
        return ilo, ihi if ihi > ilo else ilo + 1
    if column.kind == "datetime":
        dlo, dhi = math.floor(lo), math.ceil(hi)
        return _day_to_iso(dlo), _day_to_iso(dhi if dhi > dlo else dlo + 1)
    step = 10.0 ** (math.floor(math.log10(max(hi - lo, 1e-12))) - 3)
    flo, fhi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    flo, fhi = float(f"{flo:.12g}"), float(f"{fhi:.12g}")
    return flo, fhi if fhi > flo else flo + step


def _day_to_iso(days: float) -> str:
    stamp = pd.Timestamp(int(round(days * _NS_PER_DAY)), unit="ns")
    return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()


def _discover_categories(column: Column, series: pd.Series, event: Event,
                         noise: NoiseSource) -> tuple[Column, dict[str, Any]]:
    counts = series.dropna().value_counts(sort=False)
    return _release_categories(column, list(counts.index), counts.to_numpy(), event, noise)


def _release_categories(column: Column, values: list[Any], counts: np.ndarray, event: Event,
                        noise: NoiseSource) -> tuple[Column, dict[str, Any]]:
    """The thresholded histogram over the observed ``values`` and their ``counts``."""
    assert isinstance(event, ApproxDPEvent)
    keep = thresholded_histogram(counts, epsilon=event.epsilon, delta=event.delta,
                                 noise=noise)
    kept = _sorted_values([plain(v) for v, k in zip(values, keep, strict=True) if k])
    if OTHER not in kept:
        kept.append(OTHER)
    if len(kept) == 1:
        logger.warning("no value of column %r passed the DP threshold: it will only hold %r; "
                       "declare its categories or give discovery more epsilon", column.name,
                       OTHER)
    tau = histogram_threshold(event.epsilon, event.delta)
    record = {"mechanism": HISTOGRAM_MECHANISM, "epsilon": event.epsilon,
              "delta": event.delta, "threshold": tau, "other": OTHER}
    desc = (f"discovered with DP: {HISTOGRAM_MECHANISM}, ε={event.epsilon:.4g}, "
            f"δ={event.delta:.3g}; unreleased values map to {OTHER!r}")
    return replace(column, categories=tuple(kept), public=True, description=desc), record


def _sorted_values(values: list[Any]) -> list[Any]:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return sorted(values) if numbers else sorted(values, key=str)


__all__ = [
    "GRID_CELLS",
    "MAX_STREAMED_DISTINCT",
    "OTHER",
    "DiscoveryCounts",
    "DiscoveryOptions",
    "map_to_domain",
    "plan_discovery",
    "run_discovery",
]
