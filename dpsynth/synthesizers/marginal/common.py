"""What AIM and MST share: encoding, the one-way measurements, compression, sampling, state.

A marginal synthesizer encodes the table on its public domain (:mod:`.binning`), measures all
one-way marginals with the Gaussian mechanism, merges rare values (:mod:`.compress`), then lets
the subclass choose and measure more marginals (``_measure_more``), and finally fits one
graphical model to every measurement (:mod:`.estimate`). Sampling draws codes from the model
and decodes them. Every measurement is made inside ``recorder.spend`` of its planned event.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dpsynth.accounting import Budget, Event, NoiseSource, SpendRecorder
from dpsynth.errors import DataReadError, ParameterError, PrivacyError, param_error
from dpsynth.schema import Schema
from dpsynth.synthesizers.base import BaseSynthesizer
from dpsynth.synthesizers.marginal.binning import (
    ColumnCodec,
    codecs_for,
    decode_table,
    encode_table,
)
from dpsynth.synthesizers.marginal.compress import (
    ColumnMerge,
    expand_codes,
    merged_measurement,
    plan_merge,
)
from dpsynth.synthesizers.marginal.counts import ArrayCounts, CountSource
from dpsynth.synthesizers.marginal.estimate import FittedModel, fit_model, model_from_theta
from dpsynth.synthesizers.marginal.measure import Measurement, add_noise
from dpsynth.synthesizers.marginal.plan import MarginalPlan
from dpsynth.synthesizers.plan import FitPlan, PlannedSpend

if TYPE_CHECKING:
    from dpsynth.data.ray_table import RayTable
    from dpsynth.data.stream import StreamedTable

logger = logging.getLogger(__name__)

#: Merge values whose noisy one-way count is at most this many noise deviations.
MERGE_THRESHOLD = 3.0


@dataclass(frozen=True)
class _Run:
    """One fit's privacy context: the plan, the noise and the recorder (all ``None`` without
    DP), and the spends made so far, in order."""

    plan: MarginalPlan | None
    noise: NoiseSource | None
    recorder: SpendRecorder | None
    spent: list[PlannedSpend]

    @property
    def first_sigma(self) -> float:
        return self.plan.first_sigma if self.plan is not None else 0.0

    @property
    def round_sigma(self) -> float:
        return self.plan.round_sigma if self.plan is not None else 0.0

    @property
    def select_epsilon(self) -> float:
        return self.plan.select_epsilon if self.plan is not None else math.inf

    @contextlib.contextmanager
    def spend(self, purpose: str) -> Iterator[None]:
        """Spend the planned event of ``purpose`` around a mechanism run (nothing without DP)."""
        events = dict(self.plan.events()) if self.plan is not None else {}
        event = events.get(purpose)
        if self.recorder is None or event is None:
            yield
            return
        with self.recorder.spend(purpose, event):
            self.spent.append(PlannedSpend(purpose, event))
            yield


class MarginalSynthesizer(BaseSynthesizer):
    """Base of the marginal-based synthesizers (AIM, MST); see the module docstring.

    Parameters
    ----------
    n_bins:
        Bins per numeric, integer or datetime column (between its declared bounds).
    compress:
        Merge the values that the noisy one-way marginals show to be rare (free: it only
        post-processes DP measurements).
    final_iterations:
        Mirror-descent iterations of the final model fit.
    keep_measurements:
        Keep every noisy measurement the mechanism released as ``noisy_measurements_`` (the
        one-way marginals over the raw codes first, then the later ones over the merged
        codes), for white-box audits (:mod:`dpsynth.attacks.white_box`). Not saved.
    """

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, n_bins: int = 32, compress: bool = True,
                 final_iterations: int = 300, keep_measurements: bool = False):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction)
        self.n_bins = n_bins
        self.compress = compress
        self.final_iterations = final_iterations
        self.keep_measurements = keep_measurements

    # -- validation and planning ----------------------------------------------------------
    def _param_problems(self) -> list[str]:
        owner = type(self).__name__
        out = []
        for name, low in (("n_bins", 2), ("final_iterations", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                out.append(str(param_error(name, f"an integer >= {low}", v, owner)))
        for flag in ("compress", "keep_measurements"):
            if not isinstance(getattr(self, flag), bool):
                out.append(str(param_error(flag, "a bool", getattr(self, flag), owner)))
        return out

    def _validate_params(self) -> None:
        super()._validate_params()
        problems = self._param_problems()
        if problems:
            raise ParameterError("\n".join(problems))

    def _plan_training(self, schema: Schema, n_rows: int, budget: Budget,
                       prior_events: tuple[Event, ...]) -> MarginalPlan:
        return self._make_plan(len(schema.data_columns), budget, tuple(prior_events))

    def _make_plan(self, n_columns: int, budget: Budget, prior: tuple[Event, ...]
                   ) -> MarginalPlan:
        raise NotImplementedError

    # -- fitting --------------------------------------------------------------------------
    def _fit(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
             recorder: SpendRecorder | None, noise: NoiseSource) -> None:
        self.codecs_ = codecs_for(schema, int(self.n_bins))
        self._fit_counts(ArrayCounts(encode_table(self.codecs_, data)), plan=plan,
                         recorder=recorder, noise=noise)

    streams = True

    def _fit_streamed(self, stream: StreamedTable | RayTable, schema: Schema, *,
                      ledger: SpendRecorder | None) -> None:
        """Fit from a table read in batches: one encoding pass (which validates every row)
        to codes on disk, then every count chunk by chunk (:mod:`.counts`). Nothing is spent
        before the whole input has been read and validated.

        Undeclared domains take one more pass first: it validates every batch and accumulates
        the counts DP discovery needs (:class:`~dpsynth.data.discover.DiscoveryCounts`); then
        the whole plan is reserved (discovery first, as in memory), the domains are released,
        and the encoding pass maps each batch into them."""
        from dpsynth.data.stream import StreamedTable

        if schema.user_key:
            raise ParameterError(f"Streaming {stream.path} supports row-level privacy only; "
                                 f"the schema's user_key {schema.user_key!r} needs every row of "
                                 "a user at once. Fit from a DataFrame.")
        noise = NoiseSource.create(self.random_state, bool(self.secure_mode))
        undeclared = schema.undeclared()
        reserved: tuple[FitPlan, SpendRecorder] | None = None
        n = 0
        if undeclared and self.is_private:
            if not isinstance(stream, StreamedTable):
                raise ParameterError(
                    f"Fitting from {stream.path} with Ray needs a schema that declares the "
                    f"bounds/categories of every column (undeclared: {undeclared}). Declare "
                    "the public domain, or stream the table from its path.")
            from dpsynth.data.discover import DiscoveryCounts, run_discovery

            found = DiscoveryCounts(schema, undeclared)
            for frame in stream.batches(schema):  # validates every row; nothing spent yet
                found.add(frame)
            n = self._enough_rows(found.n_rows)
            reserved = self._reserve(schema, n, ledger)
            schema = run_discovery(found, schema, list(reserved[0].discovery), noise=noise,
                                   recorder=reserved[1])
        schema = self._require_declared(schema)
        self.codecs_ = codecs_for(schema, int(self.n_bins))
        counting = stream.count_source(schema, self.codecs_, to_domain=True) \
            if reserved is not None and isinstance(stream, StreamedTable) else \
            stream.count_source(schema, self.codecs_)
        with counting as source:
            if reserved is not None and source.n_rows != n:
                raise DataReadError(f"{stream.path} changed while it was read: {n} rows when "
                                    f"its domains were discovered, {source.n_rows} now.")
            n = self._enough_rows(source.n_rows)
            if not self.is_private:
                self._fit_counts(source, plan=None, recorder=None, noise=noise)
                self.privacy_ = None
            else:
                plan, recorder = reserved or self._reserve(schema, n, ledger)
                self._fit_counts(source, plan=plan, recorder=recorder, noise=noise)
                self.privacy_ = self._privacy_report(plan, schema)
        self._fitted(schema, n)

    def _fit_counts(self, source: CountSource, *, plan: FitPlan | None,
                    recorder: SpendRecorder | None, noise: NoiseSource) -> None:
        """The fit proper, on the exact counts of ``source`` (codes of ``self.codecs_``)."""
        run = _Run(None, None, recorder, []) if plan is None or recorder is None else \
            _Run(plan.detail_as(MarginalPlan), noise, recorder, [])
        raw_domain = [c.size for c in self.codecs_]
        ones = [(i,) for i in range(len(raw_domain))]
        exact = source.counts(ones, raw_domain)  # one pass over the rows for all of them
        with run.spend("one-way marginals"):
            first = [add_noise(a, c, run.first_sigma, run.noise)
                     for a, c in zip(ones, exact, strict=True)]
        self.merges_ = tuple(
            plan_merge(m, MERGE_THRESHOLD) if self.compress else ColumnMerge(tuple(range(s)))
            for m, s in zip(first, raw_domain, strict=True))
        codes = source.compressed(self.merges_, raw_domain)
        domain = tuple(m.size for m in self.merges_)
        measured = [merged_measurement(m, g, i) for i, (m, g) in
                    enumerate(zip(first, self.merges_, strict=True))]
        self.total_ = max(1.0, float(np.mean([m.values.sum() for m in measured])))
        measured, model = self._measure_more(codes, domain, measured, run)
        self.model_ = fit_model(domain, measured, self.total_,
                                iterations=int(self.final_iterations), warm=model,
                                structure=() if model is None else model.tree.cliques)
        self.measurements_ = tuple((m.attrs, m.sigma) for m in measured)
        if self.keep_measurements:
            self.noisy_measurements_ = tuple(first) + tuple(measured[len(first):])
        if run.plan is not None and tuple(run.spent) != run.plan.spends:
            raise PrivacyError("internal error: the spends differ from the plan")

    def _measure_more(self, codes: CountSource, domain: tuple[int, ...],
                      measured: list[Measurement], run: _Run
                      ) -> tuple[list[Measurement], FittedModel | None]:
        raise NotImplementedError

    # -- sampling and state ---------------------------------------------------------------
    def _sample(self, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        codes = self.model_.sample(n_rows, rng)
        codes = expand_codes(codes, self.merges_, rng)
        return decode_table(self.codecs_, codes, rng)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        keys = list(self.model_.theta)
        state = {
            "codecs": [c.to_dict() for c in self.codecs_],
            "merges": [m.to_dict() for m in self.merges_],
            "domain": list(self.model_.domain),
            "theta_attrs": [list(k) for k in keys],
            "tree_cliques": [list(c) for c in self.model_.tree.cliques],
            "total": self.total_,
            "measurements": [{"attrs": list(a), "sigma": s} for a, s in self.measurements_],
        }
        arrays = {f"theta_{i}": np.asarray(self.model_.theta[k]) for i, k in enumerate(keys)}
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.codecs_ = tuple(ColumnCodec.from_dict(c) for c in state["codecs"])
        self.merges_ = tuple(ColumnMerge.from_dict(m) for m in state["merges"])
        theta = {tuple(int(a) for a in k): np.asarray(arrays[f"theta_{i}"], dtype=float)
                 for i, k in enumerate(state["theta_attrs"])}
        cliques = [tuple(int(a) for a in c) for c in state["tree_cliques"]]
        self.model_ = model_from_theta(state["domain"], theta, extra=cliques)
        self.total_ = float(state["total"])
        self.measurements_ = tuple((tuple(m["attrs"]), float(m["sigma"]))
                                   for m in state["measurements"])

