"""``release``: holdout, DP fit through the ledger, sample, evaluate, attack, decide, bundle.

One call runs the whole path of a release (Design, "The flow"):

1. **Holdout.** A fraction of the rows (``holdout_fraction``, 0.2 by default), drawn with the
   release's random state (whole users when the schema has a ``user_key``), is set aside. It is
   never used for training nor for DP discovery of domains; it is the audit's control and the
   utility test set. It is private data too: nothing of it leaves the bundle except the
   aggregate evaluation and audit figures of the card. A table given as a path is read in
   batches instead, held out by a hash of each row's key, and gated on bounded samples
   (:mod:`~dpsynth.release.streamed`).
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
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dpsynth._util.progress import StageProgressFn
from dpsynth._util.seeds import child_seed
from dpsynth.accounting import Budget, Event, pld_epsilon, rdp_epsilon
from dpsynth.accounting.fingerprint import DataIdentity, identify
from dpsynth.accounting.ledger import Ledger, LedgerRecorder
from dpsynth.accounting.session import Spend
from dpsynth.errors import BudgetExceededError, ParameterError, param_error
from dpsynth.release.ablation import split_anchor
from dpsynth.release.bundle import check_out_dir, write_bundle
from dpsynth.release.card import Attempt, DatasetCard
from dpsynth.release.card_fields import (
    REFUSED,
    ReleaseFacts,
    ReleaseSpend,
    build_card,
    final_decision,
)
from dpsynth.release.card_sections import AttemptSeeds, SpendRow
from dpsynth.release.evidence import EvidenceData, evidence_checks, gather_evidence
from dpsynth.release.gate import Assessment, Figures, assess
from dpsynth.release.plan import (
    DEFAULT_HOLDOUT_FRACTION,
    DEFAULT_SAMPLE_ROWS,
    AttemptOutcome,
    ReleasePlan,
)
from dpsynth.release.policy import REGENERATE, REJECT, SHIP, ReleasePolicy
from dpsynth.release.temporal import split_time
from dpsynth.schema import Schema
from dpsynth.synthesizers import BaseSynthesizer

if TYPE_CHECKING:
    from dpsynth.data.stream import StreamedTable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseResult:
    """What :func:`release` produced.

    ``synthetic`` and ``synthesizer`` are the last attempt's, kept in memory whatever the
    decision; the bundle holds them only when the release ships. ``holdout_index`` names the
    rows held out (index labels of ``data``) for further evaluation; it is never written.
    For a streamed release (:mod:`~dpsynth.release.streamed`) ``synthetic`` holds the rows
    the gate read (all of them unless the release drew more than ``sample_rows``: the bundle
    then holds every row) and ``holdout_index`` the positions, in the input, of the sampled
    holdout rows the gate read.
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


class _Composer:
    """PLD epsilon at one delta, each distinct set of events composed once per release."""

    def __init__(self, delta: float):
        self.delta = delta
        self._seen: dict[tuple[Event, ...], float] = {}

    def __call__(self, events: Sequence[Event]) -> float:
        key = tuple(events)
        if not key:
            return 0.0
        if key not in self._seen:
            self._seen[key] = float(pld_epsilon(key, self.delta))
        return self._seen[key]


def release(data: pd.DataFrame | str | Path | StreamedTable, schema: Schema, *,
            epsilon: float, dataset: str,
            out: str | Path | None = None, ledger: Ledger | str | Path | None = None,
            cap: Budget | None = None, delta: float | None = None,
            synthesizer: str | BaseSynthesizer | None = None,
            synthesizer_params: Mapping[str, Any] | None = None, target: str | None = None,
            positive: object | None = None, secrets: Sequence[str] | None = None,
            policy: ReleasePolicy | Mapping[str, Any] | str | Path | None = None,
            holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, n_rows: int | None = None,
            n_targets: int = 2000, random_state: int | None = None, secure: bool = False,
            overwrite: bool = False, progress: StageProgressFn | None = None,
            time_column: str | None = None, source_licence: str | None = None,
            source_description: str | None = None, invocation: str | None = None,
            reject_rule_breaks: bool = False, clip: bool = False,
            generator_audit_fits: int = 0,
            sample_rows: int = DEFAULT_SAMPLE_ROWS,
            public: pd.DataFrame | None = None) -> ReleaseResult:
    """Release ``data`` as DP synthetic data, gated by an evaluation, an audit and a policy.

    Parameters
    ----------
    data, schema, epsilon, dataset:
        The private table, its public schema, the budget **per attempt** (each regenerated
        attempt spends it again) and the dataset's name in the ledger. ``data`` may also be
        a path (a Parquet file, a folder of Parquet files, a CSV) or a
        :class:`~dpsynth.data.stream.StreamedTable`: with a generator that fits from a
        stream (aim, mst) and a schema declaring every domain (no ``user_key``), it is then
        read in batches and held out by a hash of each row's key
        (:mod:`~dpsynth.release.streamed`); otherwise it is read whole.
    out, overwrite, ledger, cap:
        Directory of the bundle (nothing written when ``None``; an existing bundle is
        replaced only with ``overwrite=True``); a :class:`~dpsynth.accounting.ledger.Ledger`
        or its location; a cap that registers ``dataset`` if it is not registered yet.
    delta, synthesizer, synthesizer_params:
        The delta of each attempt (default the cap's); a registered generator name (default
        :data:`~dpsynth.synthesizers.DEFAULT_TABLE_SYNTHESIZER`) with extra parameters, or
        an instance used as a template.
    target, positive, secrets:
        Categorical column and positive class of the utility check and the real-anchor
        ablation; columns attacked by attribute inference (default: ``target``).
    policy, holdout_fraction, n_rows, n_targets:
        A :class:`ReleasePolicy`, its mapping or YAML path; the holdout share in [0.05, 0.5];
        synthetic rows (default: as many as the training rows); records attacked per attack.
    random_state, secure, progress:
        Seed of every step (recorded; not with ``secure``); noise from the OS's CSPRNG (real
        releases); an optional ``progress(stage, done, total)`` callback.
    time_column, source_licence, source_description, invocation:
        Hold out the latest period of this column (:mod:`~dpsynth.release.temporal`); what
        the custodian declares about the source, and the call, for the card's provenance.
    reject_rule_breaks, clip:
        Drop synthetic rows that break the schema's ``rules`` and draw again; clip values to
        the declared bounds instead of refusing them. Both row-local (no privacy cost) and
        recorded as filters on the card.
    generator_audit_fits:
        When positive, first audit the generator's mechanism white-box with this many fits
        on each of a worst-case pair of neighbouring tables it makes up
        (:func:`~dpsynth.attacks.white_box.white_box_audit`: no private data, no budget); the
        result goes on the card (``generator_audit``), and a violation rejects the release
        before anything is fitted or spent. Marginal synthesizers (mst, aim) and the DP-SGD
        ones (dpar, dpvae, dptext; on a small model of the audit's own, so the mechanism is
        what is tested).
    sample_rows:
        Streamed input only: the gate and the evidence read at most this many training rows,
        holdout rows and synthetic rows (samples drawn batch by batch; the card says so).
    public:
        Rows the data holder declares public (people who agreed to publication), for a
        generator that reads them (``dpar``: see ``fit(..., public=...)``). They are checked
        before anything is spent, are not part of the holdout, the evaluation or the audit,
        and their count and fingerprint go on the card (``source.public_rows``); the
        guarantee covers ``data`` alone. With them the table is read whole.
    """
    plan = ReleasePlan.build(
        schema, epsilon=epsilon, dataset=dataset, delta=delta, synthesizer=synthesizer,
        synthesizer_params=synthesizer_params, target=target, positive=positive,
        secrets=secrets, policy=policy, holdout_fraction=holdout_fraction, n_rows=n_rows,
        n_targets=n_targets, random_state=random_state, secure=secure,
        time_column=time_column, source_licence=source_licence,
        source_description=source_description, invocation=invocation,
        reject_rule_breaks=reject_rule_breaks, clip=clip,
        generator_audit_fits=generator_audit_fits, sample_rows=sample_rows)
    folder = None if out is None else Path(out)
    if not isinstance(data, pd.DataFrame):
        from dpsynth.release.streamed import as_stream, run_streamed, streams

        stream = as_stream(data)
        if streams(plan, schema) and public is None:
            return run_streamed(plan, stream, schema, out=folder, ledger=ledger, cap=cap,
                                overwrite=overwrite, progress=progress)
        data = stream.read_all(schema, all_columns=True)
    return run_plan(plan, data, schema, out=folder, ledger=ledger, cap=cap,
                    overwrite=overwrite, progress=progress, public=public)


def run_plan(plan: ReleasePlan, data: pd.DataFrame, schema: Schema, *, out: Path | None,
             ledger: Ledger | str | Path | None, cap: Budget | None, overwrite: bool = False,
             progress: StageProgressFn | None = None,
             public: pd.DataFrame | None = None) -> ReleaseResult:
    """Carry out a validated :class:`ReleasePlan` on ``data`` (see :func:`release`)."""
    clipped: dict[str, int] = {}
    if plan.clip:
        from dpsynth.release.clip import clip_to_bounds

        data, clipped = clip_to_bounds(data, schema)
    schema.validate(data)
    public, public_rows = _checked_public(plan, data, schema, public)
    if out is not None:
        check_out_dir(out, overwrite)
    train, holdout, extra = _split(plan, data, schema)
    identity = identify(data, schema)
    book, recorder = _open_ledger(ledger, plan.dataset, cap, data, schema, identity)
    return carry_out(plan, Inputs(train, holdout, extra, public=public), schema, identity,
                     book, recorder, out=out, overwrite=overwrite, progress=progress,
                     clipped=clipped, public_rows=public_rows)


def _checked_public(plan: ReleasePlan, data: pd.DataFrame, schema: Schema,
                    public: pd.DataFrame | None
                    ) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
    """The declared public rows and their record, checked by the generator as its ``fit``
    checks them, before the ledger is opened or anything spent."""
    if public is None:
        return None, None
    synth = plan.synthesizer(plan.epsilon, plan.delta, None, plan.secure)
    return synth.checked_public(public, schema, clip=plan.clip, private=data)


@dataclass(frozen=True, eq=False)
class Inputs:
    """What the attempts read.

    ``train`` and ``holdout`` are the rows the gate and the evidence read: every row in
    memory, or bounded samples of a streamed table (:mod:`~dpsynth.release.streamed`), whose
    generator is then fitted on ``fit_data`` (the training rows of the stream, ``n_train``
    of them, ``n_holdout`` held out) and whose gate reads at most ``gate_rows`` synthetic
    rows. ``compared_with``/``tested_on`` name what the fidelity and utility figures read.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    extra: EvidenceData
    fit_data: Any = None
    n_train: int | None = None
    n_holdout: int | None = None
    gate_rows: int | None = None
    compared_with: str | None = None
    tested_on: str | None = None
    holdout_use: str | None = None
    #: Rows declared public, handed to the generator's ``fit`` (``None``: none).
    public: pd.DataFrame | None = None

    @property
    def fit_on(self) -> Any:
        return self.train if self.fit_data is None else self.fit_data

    @property
    def n_fit(self) -> int:
        return len(self.train) if self.n_train is None else self.n_train

    @property
    def n_held(self) -> int:
        return len(self.holdout) if self.n_holdout is None else self.n_holdout

    def n_synthetic(self, plan: ReleasePlan) -> int:
        """Synthetic rows the release draws (and the bundle holds when it ships)."""
        return plan.n_rows or self.n_fit

    def chunked(self, plan: ReleasePlan) -> bool:
        """Whether the bundle's rows are drawn in chunks (more than the gate reads)."""
        return self.gate_rows is not None and self.n_synthetic(plan) > self.gate_rows


def carry_out(plan: ReleasePlan, inputs: Inputs, schema: Schema, identity: DataIdentity,
              book: Ledger, recorder: LedgerRecorder, *, out: Path | None,
              overwrite: bool = False, progress: StageProgressFn | None = None,
              clipped: Mapping[str, int] | None = None,
              public_rows: Mapping[str, Any] | None = None) -> ReleaseResult:
    """The generator audit, the attempts, the card and the bundle of a release whose inputs
    are validated and whose ledger is open (nothing is spent before this)."""
    before = book.status(plan.dataset).epsilon
    compose = _Composer(recorder.cap.delta)
    audit = _generator_audit(plan, compose.delta, progress)
    if audit is not None and audit["violated"]:
        attempts: tuple[Attempt, ...] = (Attempt(1, REJECT, (_audit_reason(audit),), None),)
        last, events = None, _NOTHING_SPENT
    else:
        attempts, last, events = _run_attempts(plan, inputs, schema, recorder, compose,
                                               progress)
    spend = ReleaseSpend(events, compose(events),
                         float(rdp_epsilon(events, compose.delta)) if events else 0.0,
                         compose.delta, before)
    entries = tuple(s.reservation.seq for s in book.spends(plan.dataset)
                    if s.reservation.release_id == recorder.release_id)
    chunked = last is not None and inputs.chunked(plan)
    card = build_card(ReleaseFacts(plan, schema, identity, inputs.n_fit, inputs.n_held,
                                   recorder.release_id, attempts, last, spend, entries,
                                   dict(clipped or {}), audit,
                                   n_synthetic=inputs.n_synthetic(plan) if chunked else None,
                                   holdout_use=inputs.holdout_use,
                                   streamed=inputs.fit_data is not None,
                                   public_rows=public_rows), book)
    synthetic = None if last is None else last.synthetic
    synth = None if last is None else last.synthesizer
    figures = last.assessment.figures if last is not None else Figures()
    paths: dict[str, Path] = {}
    if out is not None:
        draw = None
        if chunked and card.reproduce.sample_seed is not None:
            draw = (inputs.n_synthetic(plan), card.reproduce.sample_seed)
        card, paths = write_bundle(out, card, synthetic, synth, figures, overwrite=overwrite,
                                   draw=draw)
    logger.info("release %s of %r: %s", card.release_id, plan.dataset, card.decision)
    return ReleaseResult(card, synthetic, synth, None if last is None else last.assessment,
                         figures, inputs.holdout.index, paths)


_NOTHING_SPENT: tuple[Event, ...] = ()


# -- generator audit -------------------------------------------------------------------------
def _generator_audit(plan: ReleasePlan, delta: float, progress: StageProgressFn | None
                     ) -> dict[str, Any] | None:
    """The white-box audit of the plan's generator at the attempts' epsilon and delta."""
    if not plan.generator_audit_fits:
        return None
    from dpsynth.attacks.white_box import white_box_audit
    from dpsynth.attacks.white_box_dpsgd import dpsgd_white_box_audit, is_dpsgd_synthesizer
    from dpsynth.release.plan import RELEASE_SET

    tick = progress or (lambda stage, done, total: None)
    label = f"white-box audit of {plan.synth_name}"
    tick(label, 0, 1)
    name, registry = plan.synth_name, {plan.synth_name: plan.synthesizer.klass}
    if is_dpsgd_synthesizer(name, registry):
        # the audit's own small model and schedule; the release's mechanism settings apply
        keep = ("max_grad_norm", "grad_sample_mode")
        audit = dpsgd_white_box_audit(
            name, epsilon=plan.epsilon, delta=plan.delta or delta,
            n_fits=plan.generator_audit_fits, random_state=plan.seed % 2**32,
            params={k: v for k, v in plan.synthesizer.params.items() if k in keep},
            registry=registry)
    else:
        drop = {*RELEASE_SET, "final_iterations", "progress", "keep_measurements"}
        audit = white_box_audit(
            name, epsilon=plan.epsilon, delta=plan.delta or delta,
            n_fits=plan.generator_audit_fits, random_state=plan.seed % 2**32,
            params={k: v for k, v in plan.synthesizer.params.items() if k not in drop},
            registry=registry)
    tick(label, 1, 1)
    return audit.to_dict()


def _audit_reason(audit: Mapping[str, Any]) -> str:
    if audit.get("domain_leak"):
        return ("the white-box generator audit found the released domain depends on the data "
                "(nothing was fitted or spent)")
    return (f"the white-box generator audit bounds epsilon below by "
            f"{audit['epsilon_lower']:.3g} > the claimed {audit['accounted_epsilon']:g} "
            "(nothing was fitted or spent)")


# -- ledger, split ---------------------------------------------------------------------------
def _open_ledger(ledger: Ledger | str | Path | None, dataset: str, cap: Budget | None,
                 data: pd.DataFrame, schema: Schema,
                 identity: DataIdentity) -> tuple[Ledger, LedgerRecorder]:
    """The ledger and a recorder on ``dataset`` tagged with a fresh release id."""
    if cap is not None and not isinstance(cap, Budget):
        raise param_error("cap", "None or a dpsynth Budget", cap, "release")
    book = ledger if isinstance(ledger, Ledger) else Ledger(ledger, create=cap is not None)
    if cap is not None:
        book.register_table(dataset, cap, data, schema, identity=identity)
    release_id = f"release-{uuid.uuid4().hex[:12]}"
    return book, book.recorder(dataset, release_id=release_id,
                               fingerprint=identity.fingerprint,
                               content_hash=identity.content_hash)


def holdout_size(n: int, fraction: float) -> int:
    """How many of ``n`` rows (or users) :func:`split_holdout` holds out: at least one."""
    return max(1, round(fraction * n))


def split_holdout(data: pd.DataFrame, schema: Schema, fraction: float,
                  seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, holdout)``: a random ``fraction`` of the rows (of the users, with a
    ``user_key``) held out, both in their original order."""
    rng = np.random.default_rng(seed)
    if schema.user_key:
        keys = pd.unique(data[schema.user_key])
        held = set(rng.choice(keys, size=holdout_size(len(keys), fraction), replace=False))
        mask = data[schema.user_key].isin(held).to_numpy()
    else:
        mask = np.zeros(len(data), dtype=bool)
        mask[rng.choice(len(data), size=holdout_size(len(data), fraction), replace=False)] = 1
    return data.loc[~mask], data.loc[mask]


def _split(plan: ReleasePlan, data: pd.DataFrame,
           schema: Schema) -> tuple[pd.DataFrame, pd.DataFrame, EvidenceData]:
    """Training rows, the gate's holdout and the evidence's real rows. With a time column
    the latest period is set aside first and the holdout is drawn from the earlier periods
    with as many rows (:mod:`~dpsynth.release.temporal`); with a target the holdout is split
    into the ablation's anchor and test parts (:mod:`~dpsynth.release.ablation`)."""
    latest, label, periods = None, "", 0
    pool, fraction = data, plan.holdout_fraction
    if plan.time_column is not None:
        pool, latest, label, periods = split_time(data, schema, plan.time_column, plan.target)
        fraction = min(0.5, len(latest) / len(pool))
    train, holdout = split_holdout(pool, schema, fraction, child_seed(plan.seed, 0))
    _check_split(train, holdout, schema, plan.target)
    anchor = test = None
    if plan.target is not None:
        anchor, test = split_anchor(holdout, plan.target, child_seed(plan.seed, 4))
    return train, holdout, EvidenceData(anchor, test, latest, label, periods, schema.rules)


def _check_split(train: pd.DataFrame, holdout: pd.DataFrame, schema: Schema,
                 target: str | None, counts: tuple[int, int] | None = None) -> None:
    """Enough rows on both sides (``counts``: of a streamed table, whose ``train`` and
    ``holdout`` are samples), and both classes of the target in the holdout."""
    problems = []
    n_train, n_holdout = counts or (len(train), len(holdout))
    if n_train < 20 or n_holdout < 10:
        problems.append(f"the table is too small to hold out a control set: {n_train} "
                        f"training and {n_holdout} holdout rows (need 20 and 10)")
    if target is not None and holdout[target].astype(str).nunique() < 2:
        problems.append(f"the holdout has a single class of the target {target!r}; the "
                        "utility check needs both (use a larger holdout_fraction)")
    if problems:
        raise ParameterError("Cannot release: " + "; ".join(problems))


# -- attempts --------------------------------------------------------------------------------
def _run_attempts(plan: ReleasePlan, inputs: Inputs, schema: Schema, recorder: LedgerRecorder,
                  compose: _Composer,
                  progress: StageProgressFn | None,
                  ) -> tuple[tuple[Attempt, ...], AttemptOutcome | None, tuple[Event, ...]]:
    """Fit, sample and assess until an attempt ships, is rejected, is refused by the
    ledger or the policy's attempts run out; also returns every event the release spent."""
    attempts: list[Attempt] = []
    events: list[Event] = []
    last = None
    for number in range(1, plan.policy.max_attempts + 1):
        tagged = _AttemptRecorder(recorder, number)
        attempt, outcome = _attempt(plan, number, inputs, schema, tagged, compose, progress)
        attempts.append(attempt)
        events += [e for _, e in tagged.spends]
        if outcome is None:
            break
        last = outcome
        if attempt.outcome != REGENERATE:
            break
    return tuple(attempts), last, tuple(events)


def _attempt(plan: ReleasePlan, number: int, inputs: Inputs, schema: Schema,
             tagged: _AttemptRecorder, compose: _Composer,
             progress: StageProgressFn | None) -> tuple[Attempt, AttemptOutcome | None]:
    """One attempt; its outcome is ``None`` when the ledger refused a later attempt."""
    train, holdout, extra = inputs.train, inputs.holdout, inputs.extra
    seeds = AttemptSeeds(None if plan.secure else child_seed(plan.seed, number, 1),
                         child_seed(plan.seed, number, 2), child_seed(plan.seed, number, 3))
    synth = plan.synthesizer(plan.epsilon, plan.delta, seeds.generator, plan.secure)
    tick = progress or (lambda stage, done, total: None)
    tick(f"attempt {number}: fit {plan.synth_name}", 0, 1)
    try:
        synth.fit(inputs.fit_on, schema, ledger=tagged, public=inputs.public)
    except BudgetExceededError as exc:
        if number == 1:
            raise
        return Attempt(number, REFUSED, (f"the ledger refused the attempt's budget (nothing "
                                         f"spent): {exc}",), None, seeds=seeds), None
    tick(f"attempt {number}: fit {plan.synth_name}", 1, 1)
    rows, dropped = _sample(plan, synth, inputs, seeds, extra.rules)
    found = assess(train, holdout, rows, synth.schema_, policy=plan.policy,
                   target=plan.target, positive=plan.positive, secrets=plan.secrets,
                   n_targets=plan.n_targets, attempt=number, random_state=seeds.audit,
                   progress=progress)
    found = _relabel(found, inputs)
    tick(f"attempt {number}: evidence against real data", 0, 1)
    evidence = gather_evidence(plan, extra, train, holdout, rows, synth.schema_, seeds.audit,
                               dropped)
    more = evidence_checks(plan.policy, evidence)
    if more:
        found = replace(found, decision=plan.policy.decide(
            (*found.decision.checks, *more), number))
    tick(f"attempt {number}: evidence against real data", 1, 1)
    spends = tuple(SpendRow(p, e.describe(), compose([e])) for p, e in tagged.spends)
    attempt = Attempt(number, found.outcome, found.decision.reasons,
                      compose([e for _, e in tagged.spends]), spends, seeds,
                      found.decision.checks)
    return attempt, AttemptOutcome(synth, rows, found, evidence)


def _relabel(found: Assessment, inputs: Inputs) -> Assessment:
    """Say on the figures which rows they read, when those are samples."""
    if inputs.compared_with is None:
        return found
    fidelity = {**found.fidelity, "compared_with": inputs.compared_with}
    utility = None if found.utility is None else {**found.utility,
                                                  "tested_on": inputs.tested_on}
    return replace(found, fidelity=fidelity, utility=utility)


#: Synthetic rows per chunk when a bundle is drawn in chunks; the same as ``dpsynth sample``'s,
#: so the card's ``reproduce.sample`` command redraws the released file exactly.
SAMPLE_CHUNK_ROWS = 1_000_000


def _sample(plan: ReleasePlan, synth: BaseSynthesizer, inputs: Inputs, seeds: AttemptSeeds,
            rules: tuple[str, ...]) -> tuple[pd.DataFrame, int | None]:
    """The attempt's synthetic rows the gate reads, and how many broke a rule and were
    dropped (``None`` when no rule filter applies).

    When the release draws more rows than the gate reads (:meth:`Inputs.chunked`), the gate
    reads ``gate_rows`` rows picked at random (with the audit seed) among the first chunk of
    the rows the bundle will hold (:meth:`~dpsynth.synthesizers.BaseSynthesizer.sample_to`
    draws the same first chunk from the same seed).
    """
    n, seed = inputs.n_synthetic(plan), seeds.sample
    if inputs.chunked(plan):
        assert inputs.gate_rows is not None
        first = synth.sample(min(n, SAMPLE_CHUNK_ROWS), random_state=seed)
        rng = np.random.default_rng(seeds.audit)
        pick = np.sort(rng.choice(len(first), size=min(inputs.gate_rows, len(first)),
                                  replace=False))
        return first.iloc[pick].reset_index(drop=True), None
    if not (plan.reject_rule_breaks and rules):
        return synth.sample(n, random_state=seed), None
    from dpsynth.release.rules import sample_within_rules

    return sample_within_rules(synth, n, seed, rules, synth.schema_.names)


__all__ = ["DEFAULT_HOLDOUT_FRACTION", "SAMPLE_CHUNK_ROWS", "AttemptOutcome", "Inputs",
           "ReleasePlan", "ReleaseResult", "carry_out", "final_decision", "holdout_size",
           "release", "run_plan", "split_holdout"]
