"""Tables with a free-text column: a tabular generator plus a text model, one budget.

The other columns are synthesised by a registered tabular synthesizer (AIM, MST, DP-VAE...);
the text column by :class:`~dpsynth.synthesizers.text.synthesizer.DPTextSynthesizer`
conditioned on chosen categorical columns, whose values come from the synthetic rows (so the
text model releases no control distribution of its own). Both parts are planned together
before the data is read: the tabular part gets ``1 - text_fraction`` of epsilon, and the text
model's DP-SGD noise is calibrated so that the PLD composition of everything (discovery,
tabular, text) meets the target; every spend goes through the same recorder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dpsynth._util.jsonable import to_jsonable
from dpsynth.accounting import Budget, Event, NoiseSource
from dpsynth.accounting.session import SpendRecorder
from dpsynth.errors import ModelFormatError, ParameterError, param_error
from dpsynth.schema import CATEGORY_KINDS, KINDS, Schema
from dpsynth.synthesizers.base import (
    FORMAT_VERSION,
    SYNTHESIZERS,
    BaseSynthesizer,
    register,
)
from dpsynth.synthesizers.plan import FitPlan, PlannedSpend
from dpsynth.synthesizers.text.synthesizer import DPTextSynthesizer

_SHARED = ("epsilon", "delta", "random_state", "secure_mode", "discovery_fraction")


@register
class TabularTextSynthesizer(BaseSynthesizer):
    """A table with one free-text column: tabular synthesizer + conditioned text model.

    Parameters
    ----------
    epsilon, delta, random_state, secure_mode, discovery_fraction:
        See :class:`~dpsynth.synthesizers.base.BaseSynthesizer`; shared by both parts.
    table_synthesizer:
        Registered name of the generator of the non-text columns.
    table_params, text_params:
        Extra parameters of the two parts (the shared ones above are set here).
    condition_on:
        Categorical columns the text is conditioned on; ``None``: every categorical column.
    text_fraction:
        Share of epsilon for the text model (the rest goes to the tabular part).
    """

    name: ClassVar[str] = "dptext-table"
    supported_kinds: ClassVar[tuple[str, ...]] = tuple(k for k in KINDS if k != "identifier")

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, table_synthesizer: str = "aim",
                 table_params: dict[str, Any] | None = None,
                 text_params: dict[str, Any] | None = None,
                 condition_on: tuple[str, ...] | None = None, text_fraction: float = 0.5):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction)
        self.table_synthesizer = table_synthesizer
        self.table_params = table_params
        self.text_params = text_params
        self.condition_on = condition_on
        self.text_fraction = text_fraction

    # -- parts ----------------------------------------------------------------------------
    def _shared(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _SHARED}

    def _make_parts(self) -> tuple[BaseSynthesizer, DPTextSynthesizer]:
        owner = type(self).__name__
        if self.table_synthesizer not in SYNTHESIZERS or self.table_synthesizer in (
                self.name, DPTextSynthesizer.name):
            raise param_error("table_synthesizer", "a registered tabular synthesizer",
                              self.table_synthesizer, owner)
        for name, extra in (("table_params", self.table_params),
                            ("text_params", self.text_params)):
            if extra is not None and (not isinstance(extra, dict) or set(extra) & set(_SHARED)):
                raise param_error(name, f"None or a dict without {list(_SHARED)}", extra, owner)
        table = SYNTHESIZERS[self.table_synthesizer](**self._shared(),
                                                     **(self.table_params or {}))
        text = DPTextSynthesizer(**self._shared(), **{**(self.text_params or {}),
                                                      "release_controls": False})
        return table, text

    def _validate_params(self) -> None:
        super()._validate_params()
        if not isinstance(self.text_fraction, (int, float)) or not 0 < self.text_fraction < 1:
            raise param_error("text_fraction", "a float in (0, 1)", self.text_fraction,
                              type(self).__name__)
        self._make_parts()  # an unknown table synthesizer or bad part parameters raise here

    def _split(self, schema: Schema) -> tuple[Schema, Schema]:
        texts = [c for c in schema.data_columns if c.kind == "text"]
        owner = type(self).__name__
        if len(texts) != 1:
            raise ParameterError(f"{owner} needs exactly one text column; the schema has "
                                 f"{[c.name for c in texts]}.")
        others = [c for c in schema.data_columns if c.kind != "text"]
        cats = [c.name for c in others if c.kind in CATEGORY_KINDS]
        chosen = list(cats if self.condition_on is None else self.condition_on)
        if not set(chosen) <= set(cats):
            raise param_error("condition_on", f"None or categorical columns among {cats}",
                              self.condition_on, owner)
        if not others:
            raise ParameterError(f"{owner} needs columns besides the text; use "
                                 f"{DPTextSynthesizer.name!r} for text alone.")
        table = Schema(tuple(others), name=schema.name, user_key=schema.user_key)
        text = Schema(tuple([*(schema[c] for c in chosen), texts[0]]), name=schema.name)
        return table, text

    def _check_schema(self, schema: Schema) -> None:
        super()._check_schema(schema)
        self._split(schema)

    # -- planning and fitting -------------------------------------------------------------
    def _plan_training(self, schema: Schema, n_rows: int, budget: Budget,
                       prior_events: tuple[Event, ...]) -> TabularTextPlan:
        table_schema, text_schema = self._split(schema)
        table, text = self._make_parts()
        table_budget = Budget(budget.epsilon * (1 - float(self.text_fraction)), budget.delta)
        table_plan = table.plan_training(table_schema, n_rows, table_budget, prior=prior_events)
        text_plan = text.plan_training(text_schema, n_rows, budget,
                                       prior=(*prior_events, *table_plan.events))
        return TabularTextPlan(table_plan, text_plan)

    def _fit(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
             recorder: SpendRecorder | None, noise: NoiseSource) -> None:
        parts_plan = plan.detail_as(TabularTextPlan) if plan is not None else None
        table, text = self._make_parts()
        for part, sub, part_plan in zip(
                (table, text), self._split(schema),
                (None, None) if parts_plan is None else (parts_plan.table, parts_plan.text),
                strict=True):
            part.fit_planned(data[[c.name for c in sub.data_columns]], sub, plan=part_plan,
                             recorder=recorder, noise=noise)
        self.table_, self.text_ = table, text

    def _sample(self, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        rows = self.table_.sample(n_rows, random_state=rng)
        rows[self.text_.text_column_] = self.text_.generate_text(rows, random_state=rng)
        return rows

    # -- persistence ----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for key, part in (("table", self.table_), ("text", self.text_)):
            manifest, part_arrays = part.to_manifest()
            state[key] = {"schema": manifest["schema"], "state": manifest["state"]}
            arrays.update({f"{key}/{k}": v for k, v in part_arrays.items()})
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        parts = []
        for key, part in zip(("table", "text"), self._make_parts(), strict=True):
            if key not in state:
                raise ModelFormatError(f"The saved model lacks its {key} part.")
            manifest = {
                "format_version": FORMAT_VERSION, "synthesizer": part.name,
                "params": to_jsonable(part.get_params()), "schema": state[key]["schema"],
                "privacy": None, "fitted_at": self.fitted_at_, "n_rows": self.n_rows_,
                "state": state[key]["state"],
            }
            parts.append(type(part).from_manifest(
                manifest, {k.removeprefix(f"{key}/"): v for k, v in arrays.items()
                           if k.startswith(f"{key}/")}))
        table, text = parts
        if not isinstance(text, DPTextSynthesizer):
            raise ModelFormatError("The saved text part is not a DPTextSynthesizer.")
        self.table_, self.text_ = table, text


@dataclass(frozen=True)
class TabularTextPlan:
    """The composite's plan: the tabular part's, then the text model's (one budget)."""

    table: FitPlan
    text: FitPlan

    @property
    def spends(self) -> tuple[PlannedSpend, ...]:
        return (*self.table.training, *self.text.training)


__all__ = ["TabularTextPlan", "TabularTextSynthesizer"]
