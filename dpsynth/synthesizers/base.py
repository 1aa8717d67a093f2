"""The synthesizer contract: one base class, a template ``fit``, and an explicit registry.

``fit`` (here) validates parameters and data, plans the whole budget *before* the data is
touched, discovers undeclared domains with DP, then hands over to the subclass' ``_fit``.
Subclasses implement ``_plan_training``, ``_fit``, ``_sample`` and their state for saving.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from dpsynth._version import __version__
from dpsynth.accounting import (
    ACCOUNTANT,
    Budget,
    BudgetSession,
    Event,
    NoiseSource,
    Spend,
    SpendRecorder,
    default_delta,
    pld_epsilon,
    rdp_epsilon,
)
from dpsynth.errors import (
    DataValidationError,
    ModelFormatError,
    NotFittedError,
    ParameterError,
    PrivacyError,
    param_error,
)
from dpsynth.schema import Schema

logger = logging.getLogger(__name__)

_DISCOVERY_PURPOSES = ("bounds", "categories")
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1


#: A spend planned before the data is touched (same value as a recorded one).
PlannedSpend = Spend


@dataclass(frozen=True)
class PrivacyReport:
    """What a fit spent, as the accountant reports it."""

    epsilon: float
    delta: float
    target_epsilon: float
    rdp_epsilon: float
    accountant: str
    spends: tuple[PlannedSpend, ...]
    secure_mode: bool
    privacy_unit: str = "row"

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "target_epsilon": self.target_epsilon,
            "rdp_epsilon": None if math.isnan(self.rdp_epsilon) else self.rdp_epsilon,
            "accountant": self.accountant,
            "privacy_unit": self.privacy_unit,
            "secure_mode": self.secure_mode,
            "spends": [s.to_dict() for s in self.spends],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyReport:
        rdp = data.get("rdp_epsilon")
        return cls(
            epsilon=float(data["epsilon"]), delta=float(data["delta"]),
            target_epsilon=float(data["target_epsilon"]),
            rdp_epsilon=math.nan if rdp is None else float(rdp),
            accountant=str(data["accountant"]),
            spends=tuple(PlannedSpend.from_dict(s) for s in data["spends"]),
            secure_mode=bool(data["secure_mode"]),
            privacy_unit=str(data.get("privacy_unit", "row")),
        )


def plan_summary(plan: list[PlannedSpend], budget: Budget) -> str:
    """Human-readable budget split, shown before any data is touched."""
    lines = [f"Privacy budget plan for {budget} (accountant: PLD):"]
    for p in plan:
        alone = pld_epsilon([p.event], budget.delta)
        lines.append(f"  - {p.purpose:<22} {p.event.describe()}  (alone: ε={alone:.3g})")
    total = pld_epsilon([p.event for p in plan], budget.delta)
    lines.append(f"  composed: ε={total:.4g} ≤ target {budget.epsilon:.4g}")
    return "\n".join(lines)


class BaseSynthesizer:
    """Base class of every dpsynth synthesizer.

    Parameters (shared by all synthesizers)
    ---------------------------------------
    epsilon:
        Total privacy budget for this fit (preprocessing and training together).
    delta:
        The delta of the (epsilon, delta) guarantee. ``None`` picks ``1 / n**1.1``.
    random_state:
        Seed for reproducible runs (tests, research). Not allowed with ``secure_mode``.
    secure_mode:
        Draw all DP noise from the operating system's CSPRNG. Use it for real releases.
    discovery_fraction:
        Share of ``epsilon`` spent on discovering undeclared bounds and category lists,
        when the schema leaves some undeclared.
    """

    name: ClassVar[str] = "base"
    #: Whether the synthesizer can model each column kind.
    supported_kinds: ClassVar[tuple[str, ...]] = (
        "categorical", "ordinal", "numeric", "integer", "datetime", "identifier",
    )

    def __init__(
        self,
        *,
        epsilon: float = 1.0,
        delta: float | None = None,
        random_state: int | None = None,
        secure_mode: bool = False,
        discovery_fraction: float = 0.1,
    ):
        self.epsilon = epsilon
        self.delta = delta
        self.random_state = random_state
        self.secure_mode = secure_mode
        self.discovery_fraction = discovery_fraction

    # -- parameters -----------------------------------------------------------------------
    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """The names of the constructor's parameters (what :meth:`get_params` returns)."""
        import inspect

        return tuple(k for k in inspect.signature(cls.__init__).parameters if k != "self")

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.parameter_names()}

    def _validate_params(self) -> None:
        owner = type(self).__name__
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps:
            raise param_error("epsilon", "a float in (0, inf]", eps, owner)
        if self.delta is not None and (
            isinstance(self.delta, bool) or not isinstance(self.delta, (int, float))
            or not 0 < self.delta < 1
        ):
            raise param_error("delta", "None or a float in (0, 1)", self.delta, owner)
        if not 0 < self.discovery_fraction < 1:
            raise param_error("discovery_fraction", "a float in (0, 1)",
                              self.discovery_fraction, owner)
        if self.secure_mode and self.random_state is not None:
            raise param_error("random_state", "None when secure_mode=True", self.random_state,
                              owner)

    @property
    def is_private(self) -> bool:
        """False only for the explicit non-private reference (epsilon=inf)."""
        return math.isfinite(float(self.epsilon))

    # -- template fit -------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, schema: Schema, *,
            ledger: SpendRecorder | None = None) -> BaseSynthesizer:
        """Fit on private ``data`` whose public domain is ``schema``, spending through ``ledger``.

        The whole budget is planned and checked before the data is read; undeclared domains
        are discovered with DP; the training noise is calibrated so the PLD composition of
        everything stays within ``(epsilon, delta)``.
        """
        self._validate_params()
        if not isinstance(schema, Schema):
            raise param_error("schema", "a dpsynth.Schema", type(schema).__name__,
                              type(self).__name__)
        schema.validate(data)
        self._check_schema(schema)
        n = len(data)
        if n < 2:
            raise DataValidationError([f"the table has {n} row(s); at least 2 are needed"])
        data = data[[c.name for c in schema.data_columns]]

        self.noise_ = NoiseSource.create(self.random_state, bool(self.secure_mode))
        if not self.is_private:
            logger.warning("epsilon=inf: training WITHOUT differential privacy (reference only)")
            self.schema_ = self._require_declared(schema)
            self._n_rows = n
            self._fit(data, self.schema_, None)
            self.privacy_ = None
            self.fitted_at_ = _now()
            return self

        budget, plan = self.plan_budget(schema, n, ledger=ledger)
        recorder: SpendRecorder = ledger if ledger is not None else BudgetSession(budget)
        undeclared = schema.undeclared()
        discovery_plan = [p for p in plan if p.purpose.split(":")[0] in _DISCOVERY_PURPOSES]
        self._n_rows = n
        self.budget_plan_ = tuple(plan)
        logger.info(plan_summary(plan, budget))
        recorder.reserve_plan(plan)

        if undeclared:
            from dpsynth.data.discover import map_to_domain, run_discovery

            schema = run_discovery(data, schema, discovery_plan, noise=self.noise_,
                                   recorder=recorder)
            data = map_to_domain(data, schema)  # clip / map unreleased values to "__other__"
        self.schema_ = schema
        self._fit(data, schema, recorder)
        spent = [p.event for p in plan]
        self.privacy_ = PrivacyReport(
            epsilon=pld_epsilon(spent, budget.delta), delta=budget.delta,
            target_epsilon=budget.epsilon, rdp_epsilon=rdp_epsilon(spent, budget.delta),
            accountant=ACCOUNTANT, spends=tuple(plan), secure_mode=bool(self.secure_mode),
            privacy_unit=schema.user_key or "row",
        )
        self.fitted_at_ = _now()
        return self

    def plan_budget(self, schema: Schema, n_rows: int, *, ledger: SpendRecorder | None = None
                    ) -> tuple[Budget, list[PlannedSpend]]:
        """The budget and every mechanism run a fit on ``n_rows`` rows would make.

        Reads no data (only the schema and the row count, taken as public, as in Opacus), so
        it can be shown to the user before anything is touched: :func:`plan_summary`.
        """
        self._validate_params()
        self._check_schema(schema)
        if self.delta is not None:
            delta = self.delta
        elif ledger is not None:
            delta = ledger.cap.delta  # plan at the ledger's delta, so its check agrees
        else:
            delta = default_delta(n_rows)
        budget = Budget(float(self.epsilon), float(delta))
        budget.check_delta_for(n_rows)
        undeclared = schema.undeclared()
        discovery_plan: list[PlannedSpend] = []
        if undeclared:
            from dpsynth.data.discover import plan_discovery

            discovery_plan = plan_discovery(
                schema, undeclared, epsilon=budget.epsilon * self.discovery_fraction,
                delta=budget.delta * self.discovery_fraction, n_rows=n_rows,
            )
        prior = [p.event for p in discovery_plan]
        plan = discovery_plan + self._plan_training(n_rows, budget, prior)
        total = pld_epsilon([p.event for p in plan], budget.delta)
        if total > budget.epsilon + 1e-9:
            raise PrivacyError(f"internal error: plan composes to ε={total} > {budget.epsilon}")
        return budget, plan

    def _check_schema(self, schema: Schema) -> None:
        owner = type(self).__name__
        unsupported = [c.name for c in schema.data_columns if c.kind not in self.supported_kinds]
        if unsupported:
            raise ParameterError(f"{owner} cannot model columns {unsupported} (kinds: "
                                 f"{sorted({schema[c].kind for c in unsupported})}).")
        drafted = [c.name for c in schema.data_columns if not c.public and not c.needs_domain]
        if drafted:
            raise PrivacyError(
                f"The domains of columns {drafted} are not declared public (they were drafted "
                "from the data, which would leak it). Review them, replace data-derived values "
                "with public knowledge, and declare them public (`public: true`), or remove "
                "the bounds/categories so they are discovered with DP."
            )
        if not [c for c in schema.data_columns]:
            raise ParameterError("The schema has no columns to model (only identifiers).")

    def _require_declared(self, schema: Schema) -> Schema:
        if schema.undeclared():
            raise PrivacyError(f"Columns {schema.undeclared()} have no declared domain.")
        return schema

    # -- sampling -----------------------------------------------------------------------
    def sample(self, n_rows: int, *, random_state: int | None = None) -> pd.DataFrame:
        """Draw ``n_rows`` synthetic rows (post-processing: no privacy cost)."""
        if not hasattr(self, "schema_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows <= 0:
            raise param_error("n_rows", "an integer > 0", n_rows, type(self).__name__)
        rng = np.random.default_rng(random_state)
        out = self._sample(int(n_rows), rng)
        return out[[c.name for c in self.schema_.data_columns]].reset_index(drop=True)

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save to directory ``path``: ``manifest.json`` + ``model.safetensors`` (no pickle)."""
        if not hasattr(self, "schema_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state, arrays = self._get_state()
        manifest = {
            "format_version": FORMAT_VERSION,
            "dpsynth_version": __version__,
            "synthesizer": self.name,
            "params": _jsonable(self.get_params()),
            "schema": self.schema_.to_dict(),
            "privacy": None if self.privacy_ is None else self.privacy_.to_dict(),
            "fitted_at": self.fitted_at_,
            "n_rows": self._n_rows,
            "state": state,
        }
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path / WEIGHTS))
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> BaseSynthesizer:
        """Load a synthesizer saved by :meth:`save`; checks the format and the synthesizer."""
        from safetensors.numpy import load_file

        path = Path(path)
        if not (path / MANIFEST).is_file() or not (path / WEIGHTS).is_file():
            raise ModelFormatError(f"{path} is not a saved dpsynth model (needs {MANIFEST} and "
                                   f"{WEIGHTS}).")
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except json.JSONDecodeError as exc:
            raise ModelFormatError(f"{path / MANIFEST} is not valid JSON: {exc}") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(f"Unsupported model format {manifest.get('format_version')}; "
                                   f"this dpsynth reads format {FORMAT_VERSION}.")
        name = manifest.get("synthesizer")
        klass = SYNTHESIZERS.get(name) if cls is BaseSynthesizer else cls
        if klass is None or klass.name != name:
            raise ModelFormatError(f"The model was saved by synthesizer {name!r}, not "
                                   f"{cls.name!r}.")
        obj = klass(**manifest["params"])
        obj.schema_ = Schema.from_dict(manifest["schema"])
        obj.privacy_ = (None if manifest["privacy"] is None
                        else PrivacyReport.from_dict(manifest["privacy"]))
        obj.fitted_at_ = manifest["fitted_at"]
        obj._n_rows = int(manifest["n_rows"])
        obj._set_state(manifest["state"], load_file(str(path / WEIGHTS)))
        return obj

    # -- for subclasses -----------------------------------------------------------------
    def _plan_training(self, n_rows: int, budget: Budget,
                       prior_events: list[Event]) -> list[PlannedSpend]:
        raise NotImplementedError

    def _fit(self, data: pd.DataFrame, schema: Schema, recorder: SpendRecorder | None) -> None:
        raise NotImplementedError

    def _sample(self, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        raise NotImplementedError

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        if isinstance(v, float) and math.isinf(v):
            out[k] = float("inf")  # json writes Infinity, which json reads back
        elif isinstance(v, (np.integer, np.floating)):
            out[k] = v.item()
        else:
            out[k] = v
    return out


# -- registry -------------------------------------------------------------------------------
SYNTHESIZERS: dict[str, type[BaseSynthesizer]] = {}
_S = TypeVar("_S", bound=type[BaseSynthesizer])


def register(cls: _S) -> _S:
    """Class decorator adding a synthesizer to the registry; refuses silent overwrites."""
    if cls.name in SYNTHESIZERS and SYNTHESIZERS[cls.name] is not cls:
        raise ValueError(f"A synthesizer named {cls.name!r} is already registered "
                         f"({SYNTHESIZERS[cls.name].__qualname__}).")
    SYNTHESIZERS[cls.name] = cls
    return cls


def create(name: str, **params: Any) -> BaseSynthesizer:
    """``create("dpvae", epsilon=1.0)``: a synthesizer by registry name."""
    if name not in SYNTHESIZERS:
        raise param_error("name", f"one of {sorted(SYNTHESIZERS)}", name, "create")
    return SYNTHESIZERS[name](**params)

