"""What a release was asked to do (:class:`ReleasePlan`), validated once, and the typed values
the release passes between its steps: the synthesizer factory and an attempt's outcome."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth._util.seeds import resolve_seed
from dpsynth.accounting import Budget
from dpsynth.errors import ParameterError, param_error
from dpsynth.release.evidence import EvidenceSection
from dpsynth.release.gate import Assessment
from dpsynth.release.policy import ReleasePolicy, resolve_policy
from dpsynth.schema import CATEGORY_KINDS, Schema
from dpsynth.synthesizers import SYNTHESIZERS, BaseSynthesizer

DEFAULT_HOLDOUT_FRACTION = 0.2
#: Parameters of the generator that the release sets itself.
#: Training, holdout and synthetic rows the gate reads at most in a streamed release
#: (:mod:`~dpsynth.release.streamed`).
DEFAULT_SAMPLE_ROWS = 100_000

RELEASE_SET = ("delta", "epsilon", "random_state", "secure_mode")


def effective_delta(delta: float | None, cap: Budget) -> float:
    """The delta an attempt runs at: its own ``delta``, else the ledger cap's."""
    return float(delta) if delta is not None else float(cap.delta)


@dataclass(frozen=True)
class SynthesizerFactory:
    """Makes one fresh, unfitted generator per attempt: ``klass(**params)`` plus the budget,
    seed and noise source the release sets."""

    klass: type[BaseSynthesizer]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.klass.name

    def __call__(self, epsilon: float, delta: float | None, seed: int | None,
                 secure: bool) -> BaseSynthesizer:
        return self.klass(**{**self.params, "epsilon": epsilon, "delta": delta,
                             "random_state": None if secure else seed, "secure_mode": secure})

    @classmethod
    def resolve(cls, spec: str | BaseSynthesizer | None,
                params: Mapping[str, Any] | None) -> SynthesizerFactory:
        """A registered name (default generator when ``None``) or an instance used as a
        template, with ``params`` on top; :class:`ParameterError` names what is wrong."""
        from dpsynth.synthesizers import DEFAULT_TABLE_SYNTHESIZER

        if isinstance(spec, BaseSynthesizer):
            klass: type[BaseSynthesizer] = type(spec)
            base = dict(spec.get_params())
        else:
            name = spec or DEFAULT_TABLE_SYNTHESIZER
            if name not in SYNTHESIZERS:
                raise param_error("synthesizer", f"one of {sorted(SYNTHESIZERS)} or an "
                                  "instance", name, "release")
            klass, base = SYNTHESIZERS[name], {}
        extra = dict(params or {})
        free = set(klass.parameter_names()) - set(RELEASE_SET)
        bad = sorted(set(extra) - free)
        if bad:
            raise param_error("synthesizer_params", f"parameters of {klass.__name__} other "
                              f"than {list(RELEASE_SET)}: {sorted(free)}", bad, "release")
        return cls(klass, {**base, **extra})


@dataclass(frozen=True)
class ReleasePlan:
    """Everything a release was asked for, validated (see :func:`~dpsynth.release.release`
    for the meaning of each field). ``seed`` is the recorded root seed (drawn when none was
    given); ``delta`` is ``None`` when the attempts run at the ledger cap's delta."""

    dataset: str
    epsilon: float
    delta: float | None
    synthesizer: SynthesizerFactory
    policy: ReleasePolicy
    target: str | None
    positive: object | None
    secrets: tuple[str, ...] | None
    holdout_fraction: float
    n_rows: int | None
    n_targets: int
    seed: int
    secure: bool
    time_column: str | None = None
    source_licence: str | None = None
    source_description: str | None = None
    invocation: str | None = None
    reject_rule_breaks: bool = False
    clip: bool = False
    generator_audit_fits: int = 0
    sample_rows: int = DEFAULT_SAMPLE_ROWS

    @property
    def synth_name(self) -> str:
        return self.synthesizer.name

    @classmethod
    def build(cls, schema: Schema, *, epsilon: float, dataset: str,
              delta: float | None = None, synthesizer: str | BaseSynthesizer | None = None,
              synthesizer_params: Mapping[str, Any] | None = None, target: str | None = None,
              positive: object | None = None, secrets: Sequence[str] | None = None,
              policy: ReleasePolicy | Mapping[str, Any] | str | Path | None = None,
              holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, n_rows: int | None = None,
              n_targets: int = 2000, random_state: int | None = None,
              secure: bool = False, time_column: str | None = None,
              source_licence: str | None = None, source_description: str | None = None,
              invocation: str | None = None,
              reject_rule_breaks: bool = False, clip: bool = False,
              generator_audit_fits: int = 0,
              sample_rows: int = DEFAULT_SAMPLE_ROWS) -> ReleasePlan:
        """Check every argument against ``schema`` and raise one :class:`ParameterError`
        listing all the problems found."""
        if not isinstance(schema, Schema):
            raise param_error("schema", "a dpsynth.Schema", type(schema).__name__, "release")
        problems = _problems(schema, epsilon, dataset, holdout_fraction, n_rows, target,
                             secrets, random_state, secure)
        problems += _evidence_problems(schema, time_column, source_licence,
                                       source_description, invocation)
        resolved: ReleasePolicy | None = None
        factory: SynthesizerFactory | None = None
        try:
            resolved = resolve_policy(policy)
        except ParameterError as exc:
            problems.append(str(exc))
        try:
            factory = SynthesizerFactory.resolve(synthesizer, synthesizer_params)
        except ParameterError as exc:
            problems.append(str(exc))
        problems += _audit_problems(generator_audit_fits, factory)
        if not _integer(sample_rows) or sample_rows < 100:
            problems.append(str(param_error("sample_rows", "an integer >= 100", sample_rows,
                                            "release")))
        if problems or resolved is None or factory is None:
            raise ParameterError("Invalid release arguments:\n"
                                 + "\n".join(f"  - {p}" for p in problems))
        return cls(dataset, float(epsilon), delta, factory, resolved, target, positive,
                   tuple(secrets) if secrets else None, float(holdout_fraction),
                   None if n_rows is None else int(n_rows), int(n_targets),
                   resolve_seed(random_state, "release"), bool(secure), time_column,
                   source_licence, source_description, invocation, bool(reject_rule_breaks),
                   bool(clip), int(generator_audit_fits), int(sample_rows))


def _problems(schema: Schema, epsilon: Any, dataset: Any, holdout_fraction: Any, n_rows: Any,
              target: Any, secrets: Any, seed: Any, secure: Any) -> list[str]:
    out = []

    def bad(name: str, expected: str, value: Any) -> None:
        out.append(str(param_error(name, expected, value, "release")))

    if not _number(epsilon) or not 0 < epsilon < math.inf:
        bad("epsilon", "a finite float > 0 (a release is always DP)", epsilon)
    if not isinstance(dataset, str) or not dataset.strip():
        bad("dataset", "the name of the dataset in the ledger", dataset)
    if not _number(holdout_fraction) or not 0.05 <= holdout_fraction <= 0.5:
        bad("holdout_fraction", "a float in [0.05, 0.5]", holdout_fraction)
    if n_rows is not None and (not _integer(n_rows) or n_rows < 2):
        bad("n_rows", "None or an integer >= 2", n_rows)
    if target is not None and (target not in schema or schema[target].kind not in
                               CATEGORY_KINDS):
        bad("target", "a categorical or ordinal column of the schema", target)
    unknown = [s for s in secrets or () if s not in schema]
    if unknown:
        bad("secrets", "columns of the schema", unknown)
    if secure and seed is not None:
        bad("random_state", "None with secure=True (secure noise cannot be seeded)", seed)
    if seed is not None and (not _integer(seed) or seed < 0):
        bad("random_state", "None or a non-negative integer", seed)
    return out


#: Column kinds that order rows in time (``--time-column``).
TIME_KINDS = ("datetime", "integer", "numeric", "ordinal")


def _evidence_problems(schema: Schema, time_column: Any, licence: Any, description: Any,
                       invocation: Any) -> list[str]:
    out = []
    if time_column is not None and (time_column not in schema
                                    or schema[time_column].kind not in TIME_KINDS):
        out.append(str(param_error("time_column", f"a column of the schema of kind "
                                   f"{' / '.join(TIME_KINDS)}", time_column, "release")))
    for name, value in (("source_licence", licence), ("source_description", description),
                        ("invocation", invocation)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            out.append(str(param_error(name, "None or a non-empty string", value, "release")))
    return out


def _audit_problems(fits: Any, factory: SynthesizerFactory | None) -> list[str]:
    """``generator_audit_fits``: 0 (no audit) or at least 20 fits of a synthesizer the
    white-box audit supports."""
    from dpsynth.attacks.white_box import white_box_supported

    if not _integer(fits) or fits < 0 or 0 < fits < 20:
        return [str(param_error("generator_audit_fits", "0 (no generator audit) or an integer "
                                ">= 20", fits, "release"))]
    if fits and factory is not None and not white_box_supported(factory.klass):
        return [str(param_error("generator_audit_fits", "0: the white-box audit supports the "
                                "marginal and DP-SGD synthesizers (mst, aim, dpar, dpvae, "
                                "dptext)", fits, "release"))]
    return []


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _integer(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


@dataclass(frozen=True, eq=False)
class AttemptOutcome:
    """What one evaluated attempt produced: the fitted generator, its rows, the gate's
    findings."""

    synthesizer: BaseSynthesizer
    synthetic: pd.DataFrame
    assessment: Assessment
    evidence: EvidenceSection | None = None


__all__ = ["DEFAULT_HOLDOUT_FRACTION", "DEFAULT_SAMPLE_ROWS", "TIME_KINDS", "AttemptOutcome",
           "ReleasePlan",
           "SynthesizerFactory", "effective_delta"]
