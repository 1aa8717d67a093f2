"""The temporal holdout: train on the past, test on the latest period.

With a time column the release holds out the **latest period** (the last calendar year of a
datetime column; the largest value of an integer, numeric or ordinal column). Training,
domain discovery and the audit's members come from the earlier periods only. The gate's own
holdout (the audit's control and the utility test set) is then a random holdout drawn from the
earlier periods with as many rows as the latest period, so that drift over time is never
mistaken for a leak; the card reports utility on both, side by side, and the policy can
require that the latest period does not regress by more than a margin
(``utility.max_temporal_regression``). The figures read private rows without noise: epsilon
does not cover them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.errors import ParameterError
from dpsynth.release.card_sections import _Section
from dpsynth.release.policy import Check
from dpsynth.schema import Schema

#: Fewest rows the latest period needs to be evaluated on.
MIN_LATEST_ROWS = 10


@dataclass(frozen=True)
class TemporalHoldout(_Section):
    """Utility (and 1-way fidelity) on the latest period beside a random holdout."""

    time_column: str
    latest_period: str
    periods: int
    n_latest: int
    n_random: int
    tvd_1way_latest: float
    tvd_1way_random: float
    tstr_auc_latest: float | None = None
    tstr_auc_random: float | None = None
    trtr_auc_latest: float | None = None
    trtr_auc_random: float | None = None
    regression: float | None = None
    holdout_use: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemporalHoldout:
        values: dict[str, Any] = {k: data.get(k) for k in cls.__dataclass_fields__}
        return cls(**values)


def periods_of(data: pd.DataFrame, schema: Schema, column: str) -> pd.Series:
    """The period of each row: the calendar year of a datetime column, the value otherwise
    (ordinal columns by their declared order)."""
    values = data[column]
    col = schema[column]
    if col.kind == "datetime":
        return pd.to_datetime(values).dt.year.rename("year")
    if col.kind == "ordinal":
        order = {str(c): i for i, c in enumerate(col.categories or ())}
        return values.astype(str).map(order).rename("rank")
    return pd.to_numeric(values)


def split_time(data: pd.DataFrame, schema: Schema, column: str,
               target: str | None) -> tuple[pd.DataFrame, pd.DataFrame, str, int]:
    """``(earlier, latest, latest_label, n_periods)``; :class:`ParameterError` with one clear
    line for a time column with nulls, one period only, or a latest period too small."""
    missing = int(data[column].isna().sum())
    if missing:
        raise ParameterError(f"The time column {column!r} has {missing} missing value"
                             f"{'s' if missing != 1 else ''}: a temporal holdout needs every "
                             "row dated (drop or date those rows).")
    period = periods_of(data, schema, column)
    distinct = np.sort(period.dropna().unique())
    if len(distinct) < 2:
        only = _label(data, column, period, distinct[-1])
        raise ParameterError(f"The time column {column!r} holds one period only ({only}): "
                             "a temporal holdout needs at least two.")
    is_latest = (period == distinct[-1]).to_numpy()
    latest, earlier = data.loc[is_latest], data.loc[~is_latest]
    label = _label(data, column, period, distinct[-1])
    small = len(latest) < MIN_LATEST_ROWS
    one_class = target is not None and latest[target].astype(str).nunique() < 2
    if small or one_class:
        why = (f"has {len(latest)} row{'s' if len(latest) != 1 else ''} (at least "
               f"{MIN_LATEST_ROWS} are needed)" if small else
               f"holds a single class of the target {target!r}")
        raise ParameterError(f"The latest period of {column!r} ({label}) {why}: too small to "
                             "evaluate on; use a coarser time column.")
    if len(latest) > len(earlier):
        raise ParameterError(f"The latest period of {column!r} ({label}) holds "
                             f"{len(latest)} of {len(data)} rows: more than the earlier "
                             "periods together, too few left to train on.")
    return earlier, latest, label, len(distinct)


def _label(data: pd.DataFrame, column: str, period: pd.Series, value: Any) -> str:
    """The latest period as written: the year of a datetime column, else its value."""
    if pd.api.types.is_datetime64_any_dtype(data[column]) or period.name != column:
        return str(value.item() if isinstance(value, np.generic) else value)
    return str(data.loc[(period == value).to_numpy(), column].iloc[0])


def temporal_holdout(train: pd.DataFrame, random_holdout: pd.DataFrame, latest: pd.DataFrame,
                     synthetic: pd.DataFrame, schema: Schema, *, time_column: str,
                     latest_label: str, periods: int, target: str | None,
                     positive: object | None, seed: int) -> TemporalHoldout:
    """Fidelity and, with a ``target``, utility on ``latest`` beside ``random_holdout``."""
    from threadpoolctl import threadpool_limits

    from dpsynth.evaluate import average_tvd, tstr_auc

    columns = [c.name for c in schema.data_columns
               if c.kind != "text" and c.name != time_column]
    tvd = {name: float(average_tvd(frame[columns], synthetic[columns], schema, way=1))
           for name, frame in (("latest", latest), ("random", random_holdout))}
    aucs: dict[str, float | None] = dict.fromkeys(("sl", "sr", "rl", "rr"))
    if target is not None:
        with threadpool_limits(limits=1, user_api="openmp"):
            for key, fit, test in (("sl", synthetic, latest), ("sr", synthetic, random_holdout),
                                   ("rl", train, latest), ("rr", train, random_holdout)):
                aucs[key] = tstr_auc(fit.drop(columns=[time_column]),
                                     test.drop(columns=[time_column]), schema, target,
                                     positive=positive, random_state=seed)
    regression = (None if aucs["sr"] is None or aucs["sl"] is None
                  else float(aucs["sr"] - aucs["sl"]))
    return TemporalHoldout(
        time_column, latest_label, periods, len(latest), len(random_holdout), tvd["latest"],
        tvd["random"], aucs["sl"], aucs["sr"], aucs["rl"], aucs["rr"], regression,
        f"The latest period of {time_column!r} ({latest_label}, {len(latest)} rows) is held "
        "out: never used for training, domain discovery or the audit. The generator trained "
        "on the earlier periods, less a random holdout of the same size drawn from them (the "
        "audit's control and the utility test set); both are compared here. The time column "
        "is not a feature of these models: its latest value lies outside what they trained "
        "on.")


def temporal_check(found: TemporalHoldout | None, limit: float) -> Check:
    """The policy's ``utility.max_temporal_regression``: TSTR AUC random - latest."""
    name = "utility:temporal_regression"
    if found is None or found.regression is None:
        return Check(name, "utility", None, limit, None,
                     "needs a time column and a target column")
    return Check(name, "utility", found.regression, limit, found.regression <= limit,
                 f"<= {limit:g} (TSTR ROC-AUC on a random holdout minus on the latest period)")


__all__ = ["MIN_LATEST_ROWS", "TemporalHoldout", "periods_of", "split_time",
           "temporal_check", "temporal_holdout"]
