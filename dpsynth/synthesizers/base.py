"""The synthesizer contract: one base class, a template ``fit``, and an explicit registry.

``fit`` (here) validates parameters and data, plans the whole budget *before* the data is
touched (:meth:`BaseSynthesizer.plan_budget`, a pure query returning a typed
:class:`~dpsynth.synthesizers.plan.FitPlan`), discovers undeclared domains with DP, then
hands over to the subclass' ``_fit(data, schema, *, plan, recorder, noise)``. Subclasses
implement ``_plan_training(schema, n_rows, budget, prior_events)``, ``_fit``, ``_sample`` and
their state for saving; they keep only learned state (names ending in ``_``) on ``self``.
Composites plan and fit their parts through :meth:`~BaseSynthesizer.plan_training` and
:meth:`~BaseSynthesizer.fit_planned`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import pandas as pd

from dpsynth._util.jsonable import to_jsonable
from dpsynth._util.params import chosen
from dpsynth._version import __version__
from dpsynth.accounting import (
    ACCOUNTANT,
    Budget,
    BudgetSession,
    Event,
    NoiseSource,
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
from dpsynth.synthesizers._registry import SYNTHESIZERS, create, register
from dpsynth.synthesizers.plan import (
    FitPlan,
    PlannedSpend,
    TrainingPlan,
    as_training_plan,
    plan_summary,
)

if TYPE_CHECKING:
    from dpsynth.data.ray_table import RayTable
    from dpsynth.data.stream import StreamedTable

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1
#: What a manifest's ``fit_notes`` say about clipping (``fit(..., clip=True)``).
_CLIP_NOTE = ("values outside the declared public bounds were clipped to them before the fit "
             "(row-local, no privacy cost); counts per column")
#: What a manifest's ``fit_notes`` say about declared public rows (``fit(..., public=...)``).
_PUBLIC_NOTE = ("rows the data holder declared public (people who agreed to publication) were "
                "read without privacy; the privacy guarantee covers the private rows only")


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
    #: Where the default hyper-parameters were chosen (shown on the dataset card): the
    #: tables or corpora they were tuned on, or that none was declared.
    defaults_tuned_on: ClassVar[str] = "not recorded"
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

    def resolved_params(self) -> dict[str, Any]:
        """The parameters as the fit ran them: :meth:`get_params` with every automatic value
        (``None`` or ``"auto"`` where a model allows it) replaced by the one the fit chose,
        as the dataset card records them. An unfitted model's are its :meth:`get_params`."""
        return {**self.get_params(), **self._resolved()}

    def automatic_params(self) -> dict[str, Any]:
        """The entries of :meth:`resolved_params` that :meth:`get_params` does not hold as
        they are: what the fit chose (``dpsynth fit`` prints them)."""
        return chosen(self.get_params(), self.resolved_params())

    def _resolved(self) -> dict[str, Any]:
        """What the fit resolved (see :meth:`resolved_params`): here ``delta``, once
        fitted with ``delta=None``; subclasses add their own."""
        report = getattr(self, "privacy_", None)
        return {"delta": report.delta} if report is not None and self.delta is None else {}

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
    def fit(self, data: pd.DataFrame | str | Path | StreamedTable | RayTable, schema: Schema, *,
            ledger: SpendRecorder | None = None, clip: bool = False,
            public: pd.DataFrame | None = None) -> Self:
        """Fit on private ``data`` whose public domain is ``schema``, spending through ``ledger``.

        The whole budget is planned and checked before the data is read; undeclared domains
        are discovered with DP; the training noise is calibrated so the PLD composition of
        everything stays within ``(epsilon, delta)``. ``data`` may also be a path (a Parquet
        file, a folder of Parquet files, a CSV) or a
        :class:`~dpsynth.data.stream.StreamedTable`: the marginal synthesizers then read it
        in batches (:meth:`_fit_streamed`); the others read it whole.

        ``clip=True`` first moves every value outside its column's declared public bounds to
        the nearest bound (:func:`dpsynth.release.clip.clip_to_bounds`): row-local and
        driven by public bounds only, so it costs no privacy. The count clipped per column
        is kept in ``clipped_`` and saved in the model's manifest (``fit_notes``); without
        it, such values are refused (:class:`~dpsynth.errors.DataValidationError`). It needs
        the table in memory: a streamed input is then read whole.

        ``public`` (synthesizers with ``accepts_public``, such as ``dpar``): rows of the same
        schema that the data holder **declares public**, for instance those of people who
        agreed to their publication. They are read without any privacy and must not be
        among the private rows: the guarantee covers ``data`` alone, and ``epsilon`` is
        spent on it as without them. They are checked like ``data`` (and clipped with
        ``clip=True``) before anything is spent, refused if they are the private table itself,
        and their count and fingerprint (:func:`dpsynth.accounting.fingerprint`) are kept in
        ``public_rows_`` and the saved manifest (``fit_notes``).
        """
        self._validate_params()
        if ledger is not None and not self.is_private:
            raise PrivacyError(f"{type(self).__name__}(epsilon=inf) trains without differential "
                               "privacy, so it cannot spend through a ledger; a non-private "
                               "model of ledgered data would bypass its cap. Refused before "
                               "reading the data.")
        self._checked_schema(schema)
        public, public_record = self.checked_public(public, schema, clip=clip)
        if not isinstance(data, pd.DataFrame):
            from dpsynth.data.stream import as_streamed

            stream = as_streamed(data)
            if self.streams and not clip and public is None:
                self._fit_streamed(stream, schema, ledger=ledger)
                self.public_rows_ = None
                return self
            data = stream.read_all(schema)
        clipped: dict[str, int] = {}
        if clip:
            from dpsynth.release.clip import clip_to_bounds

            data, clipped = clip_to_bounds(data, schema)
        schema.validate(data)
        self.clipped_ = clipped
        n = self._enough_rows(len(data))
        if public is not None:
            self._refuse_private_as_public(data, public, schema)
        data = data[[c.name for c in schema.data_columns]]
        noise = NoiseSource.create(self.random_state, bool(self.secure_mode))
        if not self.is_private:
            self._fit_declared(data, self._require_declared(schema), plan=None, recorder=None,
                               noise=noise, public=public)
            self.privacy_, self.public_rows_ = None, public_record
            return self

        plan, recorder = self._reserve(schema, n, ledger)
        if schema.undeclared():
            from dpsynth.data.discover import map_to_domain, run_discovery

            schema = run_discovery(data, schema, list(plan.discovery), noise=noise,
                                   recorder=recorder)
            data = map_to_domain(data, schema)  # clip / map unreleased values to "__other__"
            if public is not None:  # into the released domain, like the private rows
                public = map_to_domain(public, schema)
        self._fit_declared(data, schema, plan=plan, recorder=recorder, noise=noise,
                           public=public)
        self.privacy_ = self._privacy_report(plan, schema)
        self.public_rows_ = public_record
        return self

    #: Whether :meth:`fit` takes declared public rows (``public=``); see :meth:`_fit`.
    accepts_public: ClassVar[bool] = False
    #: The declared public rows of the last successful fit: ``{"rows", "fingerprint"}``.
    public_rows_: dict[str, Any] | None = None

    def checked_public(self, public: pd.DataFrame | None, schema: Schema, *,
                       clip: bool = False, private: pd.DataFrame | None = None
                       ) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
        """Declared public rows as :meth:`fit` takes them: checked against ``schema``'s
        modelled columns (identifiers dropped; clipped with ``clip``), refused when this
        synthesizer or configuration does not read them or when they are the ``private``
        table itself, and their record (count and fingerprint) for ``public_rows_``.
        ``(None, None)`` when there are none. Raises before anything is spent."""
        if public is None:
            return None, None
        owner = type(self).__name__
        if not self.accepts_public:
            readers = sorted(n for n, k in SYNTHESIZERS.items() if k.accepts_public)
            raise param_error("public", f"None: only {', '.join(readers)} read(s) declared "
                              "public rows", "a table", owner)
        if not isinstance(public, pd.DataFrame):
            raise param_error("public", "a pandas DataFrame of rows declared public",
                              type(public).__name__, owner)
        self._check_public_support()
        ids = [c.name for c in schema.columns if c.kind == "identifier" and c.name in public]
        public = public.drop(columns=ids)  # identifiers are never modelled, nor needed here
        modelled = Schema(tuple(schema.data_columns), name=schema.name)
        if clip:
            from dpsynth.release.clip import clip_to_bounds

            public, _ = clip_to_bounds(public, modelled)
        try:
            modelled.validate(public)
        except DataValidationError as exc:
            raise DataValidationError([f"public rows: {p}" for p in exc.problems]) from None
        if len(public) < 1:
            raise DataValidationError(["public rows: the table is empty; pass public=None "
                                       "when there are none"])
        public = public[[c.name for c in schema.data_columns]].reset_index(drop=True)
        if private is not None:
            self._refuse_private_as_public(private, public, schema)
        from dpsynth.accounting import fingerprint

        return public, {"rows": len(public), "fingerprint": fingerprint(public, schema)}

    def _check_public_support(self) -> None:
        """Raise if this configuration cannot use public rows (called before any spend)."""

    @staticmethod
    def _refuse_private_as_public(data: pd.DataFrame, public: pd.DataFrame,
                                  schema: Schema) -> None:
        """Refuse public rows that are the private table itself (a likely mix-up that would
        publish it), before anything is spent. Rows merely shared by both are allowed:
        different people may have the same values."""
        from dpsynth.accounting.fingerprint import content_hash

        names = [c.name for c in schema.data_columns]
        if len(public) == len(data) and content_hash(public[names]) == content_hash(data[names]):
            raise PrivacyError("The public rows are the private table itself; declaring them "
                               "public would publish it. Pass only rows whose owners agreed "
                               "to publication. Refused before anything was spent.")

    def _enough_rows(self, n: int) -> int:
        """``n`` when it is at least 2 rows; warns once here for the non-private reference."""
        if n < 2:
            raise DataValidationError([f"the table has {n} row(s); at least 2 are needed"])
        if not self.is_private:
            logger.warning("epsilon=inf: training WITHOUT differential privacy (reference only)")
        return n

    def _reserve(self, schema: Schema, n_rows: int, ledger: SpendRecorder | None
                 ) -> tuple[FitPlan, SpendRecorder]:
        """The checked plan for ``n_rows`` rows and the recorder that has reserved all of it
        (``ledger``, or a one-fit :class:`BudgetSession`)."""
        plan = self.plan_budget(schema, n_rows, ledger=ledger)
        recorder: SpendRecorder = ledger if ledger is not None else BudgetSession(plan.budget)
        if logger.isEnabledFor(logging.INFO):  # the summary composes every spend: only if shown
            logger.info(plan.summary())
        recorder.reserve_plan(plan.spends)
        return plan, recorder

    def _fitted(self, schema: Schema, n_rows: int) -> None:
        """Record what the fit was on (the last step of every fit path)."""
        self.schema_ = schema
        self.n_rows_ = n_rows
        self.fitted_at_ = _now()

    #: Whether :meth:`_fit_streamed` reads a :class:`StreamedTable` in batches.
    streams: ClassVar[bool] = False

    def _fit_streamed(self, stream: StreamedTable | RayTable, schema: Schema, *,
                      ledger: SpendRecorder | None) -> None:
        raise NotImplementedError

    def _privacy_report(self, plan: FitPlan, schema: Schema) -> PrivacyReport:
        return PrivacyReport(
            epsilon=plan.epsilon(), delta=plan.budget.delta,
            target_epsilon=plan.budget.epsilon,
            rdp_epsilon=rdp_epsilon(list(plan.events), plan.budget.delta), accountant=ACCOUNTANT,
            spends=plan.spends, secure_mode=bool(self.secure_mode),
            privacy_unit=schema.user_key or "row",
        )

    def fit_planned(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
                    recorder: SpendRecorder | None, noise: NoiseSource) -> Self:
        """Fit under a ``plan`` made beforehand (by :meth:`plan_training`), for composites.

        ``schema`` must declare every domain (the caller ran any discovery) and ``data`` hold
        ``plan.n_rows`` rows. Every planned spend goes through ``recorder``; ``plan`` and
        ``recorder`` are both ``None`` for the non-private reference. ``privacy_`` stays
        ``None``: the caller reports the privacy of the whole.
        """
        self._validate_params()
        self._checked_schema(schema)
        self._require_declared(schema)
        schema.validate(data)
        owner = type(self).__name__
        if (plan is None) != (recorder is None) or (plan is None) == self.is_private:
            raise param_error("plan", "a FitPlan with a recorder when epsilon is finite, else "
                              "None without one", type(plan).__name__, owner)
        if plan is not None and plan.n_rows != len(data):
            raise param_error("data", f"a table of the planned {plan.n_rows} rows",
                              f"{len(data)} rows", owner)
        self._fit_declared(data[[c.name for c in schema.data_columns]], schema, plan=plan,
                           recorder=recorder, noise=noise)
        self.privacy_ = None
        return self

    def _fit_declared(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
                      recorder: SpendRecorder | None, noise: NoiseSource,
                      public: pd.DataFrame | None = None) -> None:
        extra = {} if public is None else {"public": public}  # only accepts_public takes it
        self._fit(data, schema, plan=plan, recorder=recorder, noise=noise, **extra)
        self._fitted(schema, len(data))

    def plan_budget(self, schema: Schema, n_rows: int, *, ledger: SpendRecorder | None = None
                    ) -> FitPlan:
        """The budget and every mechanism run a fit on ``n_rows`` rows would make.

        Reads no data (only the schema and the row count, taken as public, as in Opacus) and
        changes nothing on ``self``, so it can be shown to the user before anything is
        touched (:meth:`FitPlan.summary`).
        """
        self._validate_params()
        self._checked_schema(schema)
        if self.delta is not None:
            delta = self.delta
        elif ledger is not None:
            delta = ledger.cap.delta  # plan at the ledger's delta, so its check agrees
        else:
            delta = default_delta(n_rows)
        budget = Budget(float(self.epsilon), float(delta))
        budget.check_delta_for(n_rows)
        undeclared = schema.undeclared()
        discovery: list[PlannedSpend] = []
        if undeclared:
            from dpsynth.data.discover import plan_discovery

            discovery = plan_discovery(
                schema, undeclared, epsilon=budget.epsilon * self.discovery_fraction,
                delta=budget.delta * self.discovery_fraction, n_rows=n_rows,
            )
        return self._planned(schema, n_rows, budget, tuple(discovery), ())

    def plan_training(self, schema: Schema, n_rows: int, budget: Budget, *,
                      prior: Sequence[Event] = ()) -> FitPlan:
        """The plan of the training alone within ``budget``, after the ``prior`` events.

        For composites that split one budget between parts: the returned plan has no
        discovery spends; pass it to :meth:`fit_planned`. Pure, like :meth:`plan_budget`.
        """
        self._validate_params()
        self._checked_schema(schema)
        return self._planned(schema, int(n_rows), budget, (), tuple(prior))

    def _planned(self, schema: Schema, n_rows: int, budget: Budget,
                 discovery: tuple[PlannedSpend, ...], prior: tuple[Event, ...]) -> FitPlan:
        before = (*prior, *(p.event for p in discovery))
        detail = as_training_plan(self._plan_training(schema, n_rows, budget, before))
        plan = FitPlan(budget, n_rows, discovery, tuple(detail.spends), detail)
        total = pld_epsilon([*prior, *plan.events], budget.delta)
        if total > budget.epsilon + 1e-9:
            raise PrivacyError(f"internal error: plan composes to ε={total} > {budget.epsilon}")
        return plan

    def _checked_schema(self, schema: Schema) -> Schema:
        if not isinstance(schema, Schema):
            raise param_error("schema", "a dpsynth.Schema", type(schema).__name__,
                              type(self).__name__)
        self._check_schema(schema)
        return schema

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
    def sample(self, n_rows: int, *,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        """Draw ``n_rows`` synthetic rows (post-processing: no privacy cost)."""
        return self._sample_checked(self._sample, n_rows, random_state)

    def _sample_checked(self, draw: Callable[[int, np.random.Generator], pd.DataFrame],
                        n_rows: int, random_state: int | np.random.Generator | None
                        ) -> pd.DataFrame:
        """:meth:`sample` with ``draw`` in place of :meth:`_sample` (a subclass's sampling
        options): the checks, the generator and the schema's column order."""
        if not hasattr(self, "schema_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows <= 0:
            raise param_error("n_rows", "an integer > 0", n_rows, type(self).__name__)
        rng = np.random.default_rng(random_state)
        out = draw(int(n_rows), rng)
        return out[[c.name for c in self.schema_.data_columns]].reset_index(drop=True)

    def sample_to(self, path: str | Path, n_rows: int, *,
                  random_state: int | np.random.Generator | None = None,
                  chunk_rows: int = 1_000_000) -> Path:
        """Draw ``n_rows`` rows straight to a Parquet or CSV file, ``chunk_rows`` at a time.

        Memory holds one chunk, whatever ``n_rows``; the file appears only once complete.
        One generator runs through the chunks, so a seed gives the same file every time
        (not the same rows as one :meth:`sample` call of ``n_rows``).
        """
        from dpsynth.data.stream import write_chunks

        for name, value in (("n_rows", n_rows), ("chunk_rows", chunk_rows)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise param_error(name, "an integer > 0", value, type(self).__name__)
        if not hasattr(self, "schema_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        rng = np.random.default_rng(random_state)
        sizes = [min(int(chunk_rows), int(n_rows) - s) for s in range(0, int(n_rows),
                                                                      int(chunk_rows))]
        write_chunks((self.sample(k, random_state=rng) for k in sizes), path)
        return Path(path)

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save to directory ``path``: ``manifest.json`` + ``model.safetensors`` (no pickle)."""
        from safetensors.numpy import save_file

        manifest, arrays = self.to_manifest()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path / WEIGHTS))
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return path

    def to_manifest(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The JSON manifest and the named arrays :meth:`save` writes."""
        if not hasattr(self, "schema_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        state, arrays = self._get_state()
        manifest = {
            "format_version": FORMAT_VERSION,
            "dpsynth_version": __version__,
            "synthesizer": self.name,
            "params": to_jsonable(self.get_params()),
            "schema": self.schema_.to_dict(),
            "privacy": None if self.privacy_ is None else self.privacy_.to_dict(),
            "fitted_at": self.fitted_at_,
            "n_rows": self.n_rows_,
            "state": state,
        }
        notes: dict[str, Any] = {}
        clipped = getattr(self, "clipped_", None)
        if clipped:  # only when --clip changed a value: other manifests stay as they were
            notes.update({"clipped": dict(clipped), "note": _CLIP_NOTE})
        public = self.public_rows_
        if public:  # likewise only with declared public rows
            notes["public_rows"] = {**public, "note": _PUBLIC_NOTE}
        if notes:
            manifest["fit_notes"] = notes
        return manifest, arrays

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
        return cls.from_manifest(manifest, load_file(str(path / WEIGHTS)))

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any],
                      arrays: Mapping[str, np.ndarray]) -> BaseSynthesizer:
        """The fitted synthesizer a :meth:`to_manifest` pair describes (checked)."""
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(f"Unsupported model format {manifest.get('format_version')}; "
                                   f"this dpsynth reads format {FORMAT_VERSION}.")
        name = manifest.get("synthesizer")
        klass = (SYNTHESIZERS.get(name) if cls is BaseSynthesizer and isinstance(name, str)
                 else cls)
        if klass is None or klass.name != name:
            raise ModelFormatError(f"The model was saved by synthesizer {name!r}, not "
                                   f"{cls.name!r}.")
        obj = klass(**manifest["params"])
        obj.schema_ = Schema.from_dict(manifest["schema"])
        obj.privacy_ = (None if manifest["privacy"] is None
                        else PrivacyReport.from_dict(manifest["privacy"]))
        obj.fitted_at_ = manifest["fitted_at"]
        obj.n_rows_ = int(manifest["n_rows"])
        notes = manifest.get("fit_notes") or {}
        obj.clipped_ = {str(k): int(v) for k, v in dict(notes.get("clipped", {})).items()}
        public = notes.get("public_rows")
        obj.public_rows_ = (None if not public else {"rows": int(public["rows"]),
                                                     "fingerprint": str(public["fingerprint"])})
        obj._set_state(dict(manifest["state"]), dict(arrays))
        return obj

    # -- for subclasses -----------------------------------------------------------------
    def _plan_training(self, schema: Schema, n_rows: int, budget: Budget,
                       prior_events: tuple[Event, ...]
                       ) -> TrainingPlan | Sequence[PlannedSpend]:
        """The training's spends (or a typed plan listing them) within ``budget``.

        ``prior_events`` come first (discovery, a composite's other parts); the training's
        noise must be calibrated so that everything composes to at most ``budget.epsilon``.
        """
        raise NotImplementedError

    def _fit(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
             recorder: SpendRecorder | None, noise: NoiseSource) -> None:
        """Learn the model. ``plan`` and ``recorder`` are ``None`` only without DP."""
        raise NotImplementedError

    def _sample(self, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        raise NotImplementedError

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


__all__ = [
    "FORMAT_VERSION",
    "SYNTHESIZERS",
    "BaseSynthesizer",
    "FitPlan",
    "PlannedSpend",
    "PrivacyReport",
    "create",
    "plan_summary",
    "register",
]
