"""``release``: holdout, DP fit through the ledger, sample, evaluate, attack, decide, bundle.

One call runs the whole path of a release (Design, "The flow"):

1. **Holdout.** A fraction of the rows (``holdout_fraction``, 0.2 by default), drawn with the
   release's random state (whole users when the schema has a ``user_key``), is set aside. It is
   never used for training nor for DP discovery of domains; it is the audit's control and the
   utility test set. It is private data too: nothing of it leaves the bundle except the
   aggregate evaluation and audit figures of the card.
2. **Fit through the ledger.** The dataset must be registered in the ledger (or ``cap`` given
   to register it). Every spend carries the release id. ``epsilon`` is the budget **of one
   attempt**: a regenerated attempt is a new fit that spends its own ``epsilon``, checked
   against the cap before any noise is drawn; the card lists every attempt and the ledger's
   PLD composition of all of them.
3. **Gate.** :func:`~dpsynth.release.gate.assess` evaluates fidelity (1-/2-way TVD against the
   training rows) and utility (TSTR against TRTR ROC-AUC on the holdout), runs the attack suite
   with the holdout as control, and applies the policy: ship, regenerate (attempts left) or
   reject.
4. **Bundle.** :func:`~dpsynth.release.bundle.write_bundle` writes the card, the report and -
   only when the release ships - the synthetic data and the model that reproduces it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import inspect
import logging
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.accounting import Budget, Event, pld_epsilon
from dpsynth.accounting.fingerprint import identify
from dpsynth.accounting.ledger import Ledger, LedgerRecorder
from dpsynth.accounting.session import Spend
from dpsynth.errors import BudgetExceededError, ParameterError, param_error
from dpsynth.release.bundle import check_out_dir, write_bundle
from dpsynth.release.card import Attempt, DatasetCard
from dpsynth.release.gate import Assessment, Figures, Progress, assess
from dpsynth.release.policy import REGENERATE, REJECT, SHIP, ReleasePolicy, resolve_policy
from dpsynth.schema import CATEGORY_KINDS, Schema
from dpsynth.synthesizers import SYNTHESIZERS, BaseSynthesizer

logger = logging.getLogger(__name__)

DEFAULT_HOLDOUT_FRACTION = 0.2
REFUSED = "refused"


@dataclass(frozen=True)
class ReleaseResult:
    """What :func:`release` produced.

    ``synthetic`` and ``synthesizer`` are the last attempt's, kept in memory whatever the
    decision; the bundle holds them only when the release ships. ``holdout_index`` names the
    rows held out (index labels of ``data``) for further evaluation; it is never written.
    """

    card: DatasetCard
    synthetic: pd.DataFrame | None
    synthesizer: BaseSynthesizer | None
    assessment: Assessment | None
    figures: Figures
    holdout_index: pd.Index
    paths: Mapping[str, Path] = field(default_factory=dict)

    @property
    def decision(self) -> str:
        return self.card.decision

    @property
    def shipped(self) -> bool:
        return self.card.decision == SHIP


@dataclass(frozen=True)
class _Plan:
    """Validated arguments of one release (no data read yet beyond validation)."""

    epsilon: float
    delta: float | None
    dataset: str
    policy: ReleasePolicy
    make: Any
    synth_name: str
    target: str | None
    positive: object | None
    secrets: tuple[str, ...] | None
    holdout_fraction: float
    n_rows: int | None
    n_targets: int
    seed: int
    secure: bool


class _AttemptRecorder:
    """The ledger recorder of one attempt: tags purposes with the attempt, keeps its spends."""

    def __init__(self, inner: LedgerRecorder, attempt: int):
        self.inner = inner
        self.attempt = attempt
        self.spends: list[tuple[str, Event]] = []

    @property
    def cap(self) -> Budget:
        return self.inner.cap

    def check(self, events: Sequence[Event]) -> None:
        self.inner.check(events)

    def reserve_plan(self, spends: Sequence[Spend]) -> None:
        self.inner.reserve_plan([Spend(f"release attempt {self.attempt}: {s.purpose}", s.event)
                                 for s in spends])

    @contextlib.contextmanager
    def spend(self, purpose: str, event: Event) -> Iterator[None]:
        tagged = f"release attempt {self.attempt}: {purpose}"
        with self.inner.spend(tagged, event):
            self.spends.append((tagged, event))
            yield

    def spent_events(self) -> tuple[Event, ...]:
        return self.inner.spent_events()


def release(data: pd.DataFrame, schema: Schema, *, epsilon: float, dataset: str,
            out: str | Path | None = None, ledger: Ledger | str | Path | None = None,
            cap: Budget | None = None, delta: float | None = None,
            synthesizer: str | BaseSynthesizer | None = None,
            synthesizer_params: Mapping[str, Any] | None = None, target: str | None = None,
            positive: object | None = None, secrets: Sequence[str] | None = None,
            policy: ReleasePolicy | Mapping[str, Any] | str | Path | None = None,
            holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, n_rows: int | None = None,
            n_targets: int = 2000, random_state: int | None = None, secure: bool = False,
            overwrite: bool = False, progress: Progress | None = None) -> ReleaseResult:
    """Release ``data`` as DP synthetic data, gated by an evaluation, an audit and a policy.

    Parameters
    ----------
    data, schema:
        The private table and its public schema.
    epsilon:
        Privacy budget **per attempt**; each regenerated attempt spends it again.
    dataset:
        The dataset's name in the ledger; every spend of the release lands on its budget.
    out:
        Directory of the bundle (nothing is written when ``None``). An existing bundle there
        is replaced only with ``overwrite=True``.
    ledger:
        A :class:`~dpsynth.accounting.ledger.Ledger`, its location, or ``None`` for the
        default location.
    cap:
        Registers ``dataset`` with this cap when it is not registered yet. Without it an
        unregistered dataset is an error (register it with ``dpsynth budget register``).
    delta:
        The delta of each attempt; default the ledger cap's delta.
    synthesizer, synthesizer_params:
        A registered name (default :data:`~dpsynth.synthesizers.DEFAULT_TABLE_SYNTHESIZER`)
        with extra parameters, or an instance used as a template (its epsilon, delta,
        random_state and secure_mode are set by the release).
    target, positive:
        Categorical column and positive class of the utility check.
    secrets:
        Columns attacked by attribute inference (default: ``target``, else the last column).
    policy:
        A :class:`ReleasePolicy`, its nested mapping, a YAML path, or ``None`` (default).
    holdout_fraction:
        Share of rows (or users) set aside as the holdout, in [0.05, 0.5].
    n_rows:
        Synthetic rows to draw (default: as many as the training rows).
    n_targets:
        Training records attacked per attack.
    random_state:
        Seed of the split, the generator, sampling and the audit (recorded in the card).
        Not allowed with ``secure``.
    secure:
        Draw the generator's DP noise from the operating system's CSPRNG (real releases).
    progress:
        Optional ``progress(stage, done, total)`` callback.
    """
    plan = _validate(data, schema, epsilon=epsilon, dataset=dataset, delta=delta,
                     synthesizer=synthesizer, synthesizer_params=synthesizer_params,
                     target=target, positive=positive, secrets=secrets, policy=policy,
                     holdout_fraction=holdout_fraction, n_rows=n_rows, n_targets=n_targets,
                     random_state=random_state, secure=secure)
    if out is not None:
        check_out_dir(Path(out), overwrite)
    train, holdout = split_holdout(data, schema, plan.holdout_fraction, _seed(plan.seed, 0))
    _check_split(train, holdout, schema, plan.target)
    book, recorder = _open_ledger(ledger, plan.dataset, cap, data, schema)
    before = book.status(plan.dataset).epsilon
    attempts, last = _run_attempts(plan, train, holdout, schema, recorder, progress)
    card = _build_card(plan, data, schema, train, holdout, book, recorder, attempts, last,
                       before)
    synth = last[0] if last else None
    rows = last[1] if last else None
    assessment = last[2] if last else None
    figures = assessment.figures if assessment is not None else Figures()
    result = ReleaseResult(card, rows, synth, assessment, figures, holdout.index)
    if out is not None:
        card, paths = write_bundle(Path(out), result, overwrite=overwrite)
        result = replace(result, card=card, paths=paths)
    logger.info("release %s of %r: %s", card.release_id, plan.dataset, card.decision)
    return result


# -- validation ------------------------------------------------------------------------------
def _validate(data: pd.DataFrame, schema: Schema, **kw: Any) -> _Plan:
    if not isinstance(schema, Schema):
        raise param_error("schema", "a dpsynth.Schema", type(schema).__name__, "release")
    problems = _argument_problems(schema, kw)
    try:
        policy = resolve_policy(kw["policy"])
    except ParameterError as exc:
        problems.append(str(exc))
        policy = None
    make, name = None, ""
    try:
        make, name = _synth_factory(kw["synthesizer"], kw["synthesizer_params"])
    except ParameterError as exc:
        problems.append(str(exc))
    if problems:
        raise ParameterError("Invalid release arguments:\n" + "\n".join(f"  - {p}" for p in
                                                                          problems))
    schema.validate(data)
    seed = kw["random_state"]
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(2, np.uint32) @ [1, 2**31])
    assert policy is not None
    return _Plan(float(kw["epsilon"]), kw["delta"], kw["dataset"], policy, make, name,
                 kw["target"], kw["positive"], tuple(kw["secrets"]) if kw["secrets"] else None,
                 float(kw["holdout_fraction"]), kw["n_rows"], int(kw["n_targets"]), int(seed),
                 bool(kw["secure"]))


def _argument_problems(schema: Schema, kw: Mapping[str, Any]) -> list[str]:
    out = []
    eps = kw["epsilon"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
        out.append(str(param_error("epsilon", "a finite float > 0 (a release is always DP)",
                                   eps, "release")))
    if not isinstance(kw["dataset"], str) or not kw["dataset"].strip():
        out.append(str(param_error("dataset", "the name of the dataset in the ledger",
                                   kw["dataset"], "release")))
    frac = kw["holdout_fraction"]
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.05 <= frac <= 0.5:
        out.append(str(param_error("holdout_fraction", "a float in [0.05, 0.5]", frac,
                                   "release")))
    n_rows = kw["n_rows"]
    if n_rows is not None and (isinstance(n_rows, bool) or not isinstance(
            n_rows, (int, np.integer)) or n_rows < 2):
        out.append(str(param_error("n_rows", "None or an integer >= 2", n_rows, "release")))
    target = kw["target"]
    if target is not None and (target not in schema or schema[target].kind not in
                               CATEGORY_KINDS):
        out.append(str(param_error("target", "a categorical or ordinal column of the schema",
                                   target, "release")))
    unknown = [s for s in kw["secrets"] or () if s not in schema]
    if unknown:
        out.append(str(param_error("secrets", "columns of the schema", unknown, "release")))
    if kw["secure"] and kw["random_state"] is not None:
        out.append(str(param_error("random_state", "None with secure=True (secure noise "
                                   "cannot be seeded)", kw["random_state"], "release")))
    seed = kw["random_state"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        out.append(str(param_error("random_state", "None or a non-negative integer", seed,
                                   "release")))
    return out


def _synth_factory(spec: str | BaseSynthesizer | None,
                   params: Mapping[str, Any] | None) -> tuple[Any, str]:
    """A function ``(epsilon, delta, seed, secure) -> fresh unfitted synthesizer``."""
    from dpsynth.synthesizers import DEFAULT_TABLE_SYNTHESIZER

    if isinstance(spec, BaseSynthesizer):
        klass: type[BaseSynthesizer] = type(spec)
        base = dict(spec.get_params())
    else:
        name = spec or DEFAULT_TABLE_SYNTHESIZER
        if name not in SYNTHESIZERS:
            raise param_error("synthesizer", f"one of {sorted(SYNTHESIZERS)} or an instance",
                              name, "release")
        klass, base = SYNTHESIZERS[name], {}
    extra = dict(params or {})
    accepted = set(inspect.signature(klass.__init__).parameters) - {"self"}
    fixed = {"epsilon", "delta", "random_state", "secure_mode"}
    bad = sorted(set(extra) - (accepted - fixed))
    if bad:
        raise param_error("synthesizer_params", f"parameters of {klass.__name__} other than "
                          f"{sorted(fixed)}: {sorted(accepted - fixed)}", bad, "release")
    base.update(extra)

    def make(epsilon: float, delta: float | None, seed: int, secure: bool) -> BaseSynthesizer:
        return klass(**{**base, "epsilon": epsilon, "delta": delta,
                        "random_state": None if secure else seed, "secure_mode": secure})

    return make, klass.name


# -- ledger, split ---------------------------------------------------------------------------
def _open_ledger(ledger: Ledger | str | Path | None, dataset: str, cap: Budget | None,
                 data: pd.DataFrame, schema: Schema) -> tuple[Ledger, LedgerRecorder]:
    """The ledger and a recorder on ``dataset`` tagged with a fresh release id."""
    if cap is not None and not isinstance(cap, Budget):
        raise param_error("cap", "None or a dpsynth Budget", cap, "release")
    book = ledger if isinstance(ledger, Ledger) else Ledger(ledger, create=cap is not None)
    if cap is not None:
        book.register_table(dataset, cap, data, schema)
    ident = identify(data, schema)
    release_id = f"release-{uuid.uuid4().hex[:12]}"
    return book, book.recorder(dataset, release_id=release_id, fingerprint=ident.fingerprint,
                               content_hash=ident.content_hash)


def _seed(root: int, *path: int) -> int:
    """A 63-bit child seed of ``root`` for one purpose (split, attempt k...)."""
    state = np.random.SeedSequence([root, *path]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def split_holdout(data: pd.DataFrame, schema: Schema, fraction: float,
                  seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, holdout)``: a random ``fraction`` of the rows (of the users, with a
    ``user_key``) held out, both in their original order."""
    rng = np.random.default_rng(seed)
    if schema.user_key:
        keys = pd.unique(data[schema.user_key])
        held = set(rng.choice(keys, size=max(1, round(fraction * len(keys))), replace=False))
        mask = data[schema.user_key].isin(held).to_numpy()
    else:
        mask = np.zeros(len(data), dtype=bool)
        mask[rng.choice(len(data), size=max(1, round(fraction * len(data))), replace=False)] = 1
    return data.loc[~mask], data.loc[mask]


def _check_split(train: pd.DataFrame, holdout: pd.DataFrame, schema: Schema,
                 target: str | None) -> None:
    problems = []
    if len(train) < 20 or len(holdout) < 10:
        problems.append(f"the table is too small to hold out a control set: {len(train)} "
                        f"training and {len(holdout)} holdout rows (need 20 and 10)")
    if target is not None and holdout[target].astype(str).nunique() < 2:
        problems.append(f"the holdout has a single class of the target {target!r}; the "
                        "utility check needs both (use a larger holdout_fraction)")
    if problems:
        raise ParameterError("Cannot release: " + "; ".join(problems))


# -- attempts --------------------------------------------------------------------------------
def _run_attempts(plan: _Plan, train: pd.DataFrame, holdout: pd.DataFrame, schema: Schema,
                  recorder: LedgerRecorder, progress: Progress | None,
                  ) -> tuple[list[Attempt], tuple[BaseSynthesizer, pd.DataFrame, Assessment]
                             | None]:
    attempts: list[Attempt] = []
    last = None
    for number in range(1, plan.policy.max_attempts + 1):
        seeds = {"generator": None if plan.secure else _seed(plan.seed, number, 1),
                 "sample": _seed(plan.seed, number, 2), "audit": _seed(plan.seed, number, 3)}
        tagged = _AttemptRecorder(recorder, number)
        synth = plan.make(plan.epsilon, plan.delta, seeds["generator"] or 0, plan.secure)
        tick = progress or (lambda stage, done, total: None)
        tick(f"attempt {number}: fit {plan.synth_name}", 0, 1)
        try:
            synth.fit(train, schema, ledger=tagged)
        except BudgetExceededError as exc:
            if number == 1:
                raise
            attempts.append(Attempt(number, REFUSED, (f"the ledger refused the attempt's "
                                                      f"budget (nothing spent): {exc}",), None,
                                    seeds=seeds))
            break
        tick(f"attempt {number}: fit {plan.synth_name}", 1, 1)
        rows = synth.sample(plan.n_rows or len(train), random_state=seeds["sample"])
        found = assess(train, holdout, rows, synth.schema_, policy=plan.policy,
                       target=plan.target, positive=plan.positive, secrets=plan.secrets,
                       n_targets=plan.n_targets, attempt=number, random_state=seeds["audit"],
                       progress=progress)
        attempts.append(Attempt(number, found.outcome, found.decision.reasons,
                                _epsilon([e for _, e in tagged.spends], recorder.cap.delta),
                                tuple(_spend_rows(tagged.spends, recorder.cap.delta)), seeds,
                                found.decision.checks))
        last = (synth, rows, found)
        if found.outcome != REGENERATE:
            break
    return attempts, last


def _epsilon(events: Sequence[Event], delta: float) -> float:
    return float(pld_epsilon(events, delta)) if events else 0.0


def _spend_rows(spends: Sequence[tuple[str, Event]], delta: float) -> list[dict[str, Any]]:
    return [{"purpose": p, "mechanism": e.describe(), "epsilon_alone": _epsilon([e], delta)}
            for p, e in spends]


def final_decision(attempts: Sequence[Attempt]) -> tuple[str, tuple[str, ...]]:
    """Ship when the last attempt ships; otherwise reject, with the reasons."""
    last = attempts[-1]
    if last.outcome == SHIP:
        return SHIP, last.reasons
    if last.outcome == REFUSED:
        previous = attempts[-2].reasons if len(attempts) > 1 else ()
        return REJECT, (*previous, *last.reasons)
    return REJECT, last.reasons


def _build_card(plan: _Plan, data: pd.DataFrame, schema: Schema, train: pd.DataFrame,
                holdout: pd.DataFrame, book: Ledger, recorder: LedgerRecorder,
                attempts: list[Attempt], last: Any, before: float) -> DatasetCard:
    from dpsynth.release.card_fields import card_fields

    decision, reasons = final_decision(attempts)
    fields = card_fields(plan=plan, data=data, schema=schema, train=train, holdout=holdout,
                         book=book, recorder=recorder, attempts=attempts, last=last,
                         before=before)
    return DatasetCard(release_id=recorder.release_id, dataset=plan.dataset,
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       decision=decision, reasons=reasons, attempts=tuple(attempts), **fields)


__all__ = ["DEFAULT_HOLDOUT_FRACTION", "ReleaseResult", "final_decision", "release",
           "split_holdout"]
