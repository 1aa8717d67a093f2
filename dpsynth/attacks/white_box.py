"""White-box audits of the marginal mechanisms (MST, AIM): epsilon bounds from what they released.

A black-box attack on synthetic rows sees the mechanism through its post-processing and gives
loose bounds. This audit looks at the noisy marginals themselves, the mechanism's real output,
on the worst-case pair of neighbouring datasets, as tight audits do (Nasr, Hayes, Steinke et
al., "Tight Auditing of Differentially Private Machine Learning", USENIX Security 2023):

* ``D`` is a tiny table whose columns never take the value ``"canary"``; ``D'`` adds one
  *canary* record that takes it in every column, so it sits alone in its cell of every
  marginal. Every marginal the mechanism measures (the one-way ones and every selected one)
  moves by exactly one in that cell, and nowhere else.
* The mechanism is fitted many times, with fresh seeds, on ``D`` and on ``D'``, keeping its
  noisy measurements (``keep_measurements=True``), each time under the plan
  :meth:`~dpsynth.synthesizers.BaseSynthesizer.plan_budget` makes for that table.
* The test statistic is the Neyman-Pearson one for a Gaussian mechanism: the canary cell's
  noisy count minus its count in ``D``, weighted by ``1 / sigma^2`` over every measurement and
  standardised, ``T = sum_j (y_j - c_j) / sigma_j^2 / sqrt(sum_j 1 / sigma_j^2)``. With the
  claimed ``sigma_j`` it is ``N(0, 1)`` on ``D`` and ``N(mu, 1)`` on ``D'`` for a correct
  mechanism, ``mu = sqrt(sum_j 1 / sigma_j^2)``.

Two lower bounds on epsilon at the audit's confidence:

* **GDP fit** (the headline): the two samples of ``T`` give the separation
  ``mu_hat = (mean_1 - mean_0) / pooled_sd`` with the standard error of a standardised mean
  difference; its one-sided lower bound is converted to epsilon at ``delta`` through the
  Gaussian-DP trade-off curve (Dong, Roth and Su, "Gaussian Differential Privacy", JRSS B
  2022, Corollary 2.13). ``T`` is exactly Gaussian given the claimed noise, so the fit is exact
  for a correct mechanism and estimates the true separation of a broken one (a halved noise
  scale shrinks the standard deviation, a doubled sensitivity the mean shift: both raise
  ``mu_hat``). It reaches epsilon near the claim with a few hundred fits per side.
* **Clopper-Pearson** (no distributional assumption): a threshold on ``T`` chosen on half of
  the fits, its true- and false-positive counts on the other half, and the exact bound of
  :func:`~dpsynth.attacks.empirical_eps.epsilon_lower_bound`. It needs about ``e^epsilon``
  fits to show epsilon, so it is informative at small epsilon only.

A third check needs no statistic: the released domain (the codecs: categories and bin edges)
must come from the public schema, so it is the same in every fit. With ``numeric=True`` the
tables carry a numeric column whose canary value sits at the declared upper bound, far from
``D``'s values; a mechanism that reads bounds (or categories) from the data releases another
domain with the canary than without it, which the audit reports as a domain leak (Annamalai,
Ganev and De Cristofaro, USENIX Security 2024, found such unpaid bounds in published tools).

What the audit cannot see: the selection steps (MST's spanning tree, AIM's exponential
mechanism) also spend budget, and the canary's effect on them is not tested. The planned
measurement part, ``mu_planned``, is what a perfect audit of this statistic can show; the
report gives its epsilon beside the claim. Both mechanisms spend 5 % of their zCDP-style plan
on selection by default (``select_share``), so their measurements carry about 0.9 of epsilon
on the canary tables (MST with the paper's thirds: about 0.7, which no number of fits could
bring to 0.8 of the claim).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import optimize, stats

from dpsynth._util.progress import ProgressFn
from dpsynth.accounting import Budget, Event, NoiseSource
from dpsynth.attacks.empirical_eps import best_threshold, epsilon_lower_bound
from dpsynth.errors import GeneratorError, ParameterError, param_error
from dpsynth.schema import Column, Schema

CANARY = "canary"
NUMERIC_CANARY = 100.0
DOMAIN_METHOD = ("Clopper-Pearson bound of telling the neighbours apart by the released domain "
                 "(a bound or category read from the data without paying)")
METHOD = ("GDP fit of the canary-cell statistic on the noisy marginals (Nasr et al. 2023; "
          "Dong, Roth and Su 2022)")


class MarginalMechanism(Protocol):
    """What the audit needs of a fitted marginal synthesizer (``keep_measurements=True``)."""

    codecs_: Any
    merges_: Any
    noisy_measurements_: Any

    def fit(self, data: pd.DataFrame, schema: Schema) -> Any: ...


# -- Gaussian differential privacy --------------------------------------------------------------
def gdp_delta(mu: float, epsilon: float) -> float:
    """The delta of ``mu``-GDP at ``epsilon`` (Dong, Roth and Su 2022, Corollary 2.13)."""
    if mu <= 0:
        return 0.0
    a = stats.norm.cdf(-epsilon / mu + mu / 2)
    b = math.exp(epsilon + float(stats.norm.logcdf(-epsilon / mu - mu / 2)))
    return float(max(0.0, a - b))


def gdp_epsilon(mu: float, delta: float) -> float:
    """The smallest epsilon with ``(epsilon, delta)``-DP for a ``mu``-GDP mechanism (0 if none)."""
    if not 0 < delta < 1:
        raise param_error("delta", "a float in (0, 1)", delta, "gdp_epsilon")
    if mu <= 0 or gdp_delta(mu, 0.0) <= delta:
        return 0.0
    top = 1.0
    while gdp_delta(mu, top) > delta:
        top *= 2
    return float(optimize.brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, top, xtol=1e-9))


def gdp_mu(epsilon: float, delta: float) -> float:
    """The ``mu`` whose GDP curve passes through ``(epsilon, delta)``."""
    top = 1.0
    while gdp_delta(top, epsilon) < delta:
        top *= 2
    return float(optimize.brentq(lambda m: gdp_delta(m, epsilon) - delta, 1e-9, top,
                                 xtol=1e-10))


# -- the neighbouring tables ----------------------------------------------------------------------
def canary_tables(n_rows: int = 20, n_columns: int = 3, seed: int = 0, *,
                  numeric: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    """``D`` (``n_rows`` rows over values a/b/c), the canary record, and the public schema.

    The schema declares ``"canary"`` in every column; no row of ``D`` takes it, so the canary
    is alone in its cell of every marginal. With ``numeric=True`` a numeric column ``x`` is
    added, declared on ``[0, 100]``: ``D``'s values lie in ``[0, 10)`` and the canary's at the
    upper bound, alone in the top bin. A mechanism that reads the bounds from the data instead
    of the schema then releases a different domain with and without the canary.
    """
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(n_columns)]
    values = ("a", "b", "c")
    data = pd.DataFrame({n: rng.choice(values, n_rows) for n in names})
    canary = pd.DataFrame({n: [CANARY] for n in names})
    columns = [Column(n, "categorical", categories=(*values, CANARY)) for n in names]
    if numeric:
        data["x"] = np.round(rng.uniform(0.0, 10.0, n_rows), 3)
        canary["x"] = [NUMERIC_CANARY]
        columns.append(Column("x", "numeric", lower=0.0, upper=NUMERIC_CANARY))
    return data, canary, Schema(tuple(columns))


def domain_fingerprint(fitted: MarginalMechanism) -> str:
    """The released domain (codecs) of one fit as canonical JSON.

    The domain must come from the public schema alone, so it is the same for every fit on
    ``D`` and on ``D'``; any difference is a bound or category read from the data unpaid.
    """
    from dpsynth._util.jsonable import canonical_json

    return canonical_json([c.to_dict() for c in fitted.codecs_])


def canary_statistic(fitted: MarginalMechanism, data: pd.DataFrame, canary: pd.DataFrame, *,
                     raw: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, float]:
    """``(T, mu_planned)`` of one fit: the standardised canary-cell statistic and its shift.

    ``data`` is ``D`` (the canary's count in each cell is measured against it); the first
    ``d`` measurements are over the raw codes, the rest over the fit's merged codes. ``raw``:
    ``data`` and ``canary`` already encoded with the fit's codecs (the same for every fit of
    one released domain), to skip encoding them again.
    """
    from dpsynth.synthesizers.marginal.binning import encode_table
    from dpsynth.synthesizers.marginal.compress import compress_codes

    raw_domain = [c.size for c in fitted.codecs_]
    if raw is None:
        raw = encode_table(fitted.codecs_, data), encode_table(fitted.codecs_, canary)
    merged = tuple(compress_codes(x, fitted.merges_, raw_domain) for x in raw)
    total, weight = 0.0, 0.0
    for j, m in enumerate(fitted.noisy_measurements_):
        rows, target = raw if j < len(raw_domain) else merged
        attrs = list(m.attrs)
        cell = tuple(int(v) for v in target[0, attrs])
        count = float(np.all(rows[:, attrs] == target[0, attrs], axis=1).sum())
        total += (float(m.values[cell]) - count) / m.sigma ** 2
        weight += 1.0 / m.sigma ** 2
    root = math.sqrt(weight)
    return total / root, root


class _Tally:
    """A recorder that only lists the spends: the plan was checked once, before the fits.

    (A :class:`~dpsynth.accounting.BudgetSession` re-runs the PLD accountant at every spend,
    which costs more than the fit of a 20-row table.)
    """

    def __init__(self, cap: Budget):
        self._cap = cap
        self._events: list[Event] = []

    @property
    def cap(self) -> Budget:
        return self._cap

    def check(self, events: Sequence[Event]) -> None:
        """Nothing to check: :meth:`BaseSynthesizer.plan_budget` checked the whole plan."""

    @contextlib.contextmanager
    def spend(self, purpose: str, event: Event) -> Iterator[None]:
        self._events.append(event)
        yield

    def spent_events(self) -> tuple[Event, ...]:
        return tuple(self._events)


def white_box_supported(klass: type) -> bool:
    """Whether a white-box audit exists for synthesizers of class ``klass``: this module's
    for the marginal ones, :mod:`~dpsynth.attacks.white_box_dpsgd`'s for the DP-SGD ones."""
    import sys

    from dpsynth.synthesizers.marginal.common import MarginalSynthesizer

    if not isinstance(klass, type):
        return False
    dpsgd = sys.modules.get("dpsynth.synthesizers._dpsgd_base")  # loaded with any such class
    return issubclass(klass, MarginalSynthesizer) or (
        dpsgd is not None and issubclass(klass, dpsgd.DPSGDSynthesizer))


# -- the audit -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WhiteBoxAudit:
    """The outcome of :func:`white_box_audit` (JSON: :meth:`to_dict`).

    ``epsilon_lower`` (GDP fit) and ``epsilon_lower_cp`` (Clopper-Pearson) hold with
    probability ``confidence``; ``epsilon_planned`` is what this statistic shows on a correct
    mechanism (the measurement part of the budget); ``power_half_noise`` the chance that this
    audit flags the same mechanism with its noise scale halved. ``epsilon_lower_domain`` is
    the Clopper-Pearson bound of telling ``D`` from ``D'`` by the released domain alone (0 when
    every fit released the same domain, as it must: ``domains_seen`` counts the distinct ones).
    ``domain_leak`` says the released domain told the held-out fits on ``D`` and ``D'`` apart
    without error: the domain is a function of the private data. That violates any finite
    epsilon, whatever the number of fits lets the Clopper-Pearson bound show.
    """

    synthesizer: str
    epsilon: float
    delta: float
    n_fits: int
    confidence: float
    mu_hat: float
    mu_ci: tuple[float, float]
    mu_planned: float
    epsilon_lower: float
    epsilon_ci: tuple[float, float]
    epsilon_planned: float
    epsilon_lower_cp: float
    power_half_noise: float
    cpu_seconds: float
    epsilon_lower_domain: float = 0.0
    domains_seen: int = 1
    domain_leak: bool = False
    method: str = METHOD
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def epsilon_lower_best(self) -> float:
        return max(self.epsilon_lower, self.epsilon_lower_cp, self.epsilon_lower_domain)

    @property
    def violated(self) -> bool:
        """An epsilon lower bound exceeds the claimed epsilon, or the domain leaks."""
        return self.domain_leak or self.epsilon_lower_best > self.epsilon * (1 + 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": "white-box", "synthesizer": self.synthesizer,
            "accounted_epsilon": self.epsilon, "delta": self.delta, "n_fits": self.n_fits,
            "confidence": self.confidence, "mu_hat": self.mu_hat, "mu_ci": list(self.mu_ci),
            "mu_planned": self.mu_planned, "epsilon_lower": self.epsilon_lower_best,
            "epsilon_lower_gdp": self.epsilon_lower, "epsilon_ci": list(self.epsilon_ci),
            "epsilon_lower_cp": self.epsilon_lower_cp, "epsilon_planned": self.epsilon_planned,
            "epsilon_lower_domain": self.epsilon_lower_domain,
            "domains_seen": self.domains_seen, "domain_leak": self.domain_leak,
            "epsilon_lower_source": (DOMAIN_METHOD if self.epsilon_lower_domain
                                     > max(self.epsilon_lower, self.epsilon_lower_cp)
                                     else self.method), "power_half_noise": self.power_half_noise,
            "power": (f"a halved noise scale would have been caught with probability "
                      f"{self.power_half_noise:.2f}"),
            "cpu_seconds": self.cpu_seconds, "violated": self.violated,
            "params": dict(self.params),
        }


def white_box_audit(synthesizer: str, *, epsilon: float, delta: float = 1e-5,
                    n_fits: int = 300, n_rows: int = 20, n_columns: int = 3,
                    numeric: bool = False, confidence: float = 0.95, random_state: int = 0,
                    params: Mapping[str, Any] | None = None,
                    registry: Mapping[str, Any] | None = None, n_jobs: int | None = 1,
                    ray_address: str | None = None,
                    progress: ProgressFn | None = None) -> WhiteBoxAudit:
    """Audit a marginal synthesizer on the canary pair with ``n_fits`` fits on each table.

    Parameters
    ----------
    synthesizer:
        A registered marginal synthesizer (``"mst"``, ``"aim"``) or a key of ``registry``.
    epsilon, delta:
        The claim under test.
    n_fits:
        Fits on ``D`` and as many on ``D'``.
    n_rows, n_columns, numeric:
        Size of ``D`` and whether it has a numeric column (see :func:`canary_tables`).
    params:
        Extra constructor parameters (post-processing knobs such as ``final_iterations``).
    n_jobs, ray_address, progress:
        Fan the fits out in chunks of 100 over local processes (``n_jobs``; 1 runs here) or a
        Ray cluster (:func:`~dpsynth.attacks.runner.run_many`); every fit keeps its own seed,
        so the result does not depend on either. ``progress(done, total)`` per chunk.
    registry:
        Where to find ``synthesizer`` (default: :data:`dpsynth.synthesizers.SYNTHESIZERS`);
        tests pass deliberately broken mechanisms here.
    """
    problems = []
    if isinstance(n_fits, bool) or not isinstance(n_fits, int) or n_fits < 20:
        problems.append(str(param_error("n_fits", "an integer >= 20", n_fits,
                                        "white_box_audit")))
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < math.inf):
        problems.append(str(param_error("epsilon", "a finite float > 0", epsilon,
                                        "white_box_audit")))
    if not 0.5 <= confidence < 1:
        problems.append(str(param_error("confidence", "a float in [0.5, 1)", confidence,
                                        "white_box_audit")))
    if problems:
        raise ParameterError(" ".join(problems))
    from dpsynth.synthesizers import SYNTHESIZERS

    classes: Mapping[str, Any] = SYNTHESIZERS if registry is None else registry
    if synthesizer not in classes:
        raise param_error("synthesizer", f"one of {sorted(classes)}", synthesizer,
                          "white_box_audit")
    cls, extra = classes[synthesizer], {"final_iterations": 1} | dict(params or {})
    data, canary, schema = canary_tables(n_rows, n_columns, random_state, numeric=numeric)
    neighbour = pd.concat([data, canary], ignore_index=True)
    seeds = np.random.SeedSequence(random_state).generate_state(2 * n_fits)
    began = time.process_time()
    plans = [cls(epsilon=epsilon, delta=delta, **extra).plan_budget(schema, len(table))
             for table in (data, neighbour)]
    context = _FitContext(cls, float(epsilon), float(delta), extra, data, neighbour, canary,
                          schema, tuple(plans), tuple(int(s) for s in seeds))
    chunks = [(lo, min(lo + _CHUNK, 2 * n_fits)) for lo in range(0, 2 * n_fits, _CHUNK)]
    from dpsynth.attacks.runner import run_many

    batch = run_many(_fit_chunk, (context, chunks), len(chunks), seed=random_state,
                     n_jobs=n_jobs, ray_address=ray_address, retries=0, progress=progress)
    if batch.failed:
        raise GeneratorError(
            f"white-box fits of {synthesizer!r} failed: {batch.failed[0].error}")
    scores, planned = np.empty((2, n_fits)), 0.0
    domains: list[list[str]] = [[], []]
    worker_seconds = 0.0
    for (lo, _), (values, fingerprints, mu, seconds) in zip(chunks, batch.values(),
                                                          strict=True):
        for i, (value, fingerprint) in enumerate(zip(values, fingerprints, strict=True),
                                                 start=lo):
            scores[i % 2, i // 2] = value
            domains[i % 2].append(fingerprint)
        planned, worker_seconds = mu, worker_seconds + seconds
    own = time.process_time() - began
    seconds = own + (worker_seconds if batch.backend != "serial" else 0.0)
    audit = _summarise(synthesizer, epsilon, delta, scores, planned, confidence, seconds,
                       dict(params or {}))
    bound, leak = _domain_bound(domains, delta, confidence)
    return dataclasses.replace(audit, epsilon_lower_domain=bound, domain_leak=leak,
                               domains_seen=len(set(domains[0]) | set(domains[1])))


#: Fits per task of :func:`~dpsynth.attacks.runner.run_many` (each task is one chunk).
_CHUNK = 100


@dataclass(frozen=True)
class _FitContext:
    """What every chunk of fits needs (sent once to each worker)."""

    cls: Any
    epsilon: float
    delta: float
    extra: Mapping[str, Any]
    data: pd.DataFrame
    neighbour: pd.DataFrame
    canary: pd.DataFrame
    schema: Schema
    plans: tuple[Any, Any]
    seeds: tuple[int, ...]


def _fit_chunk(payload: tuple[_FitContext, list[tuple[int, int]]], index: int,
               _: np.random.SeedSequence) -> tuple[list[float], list[str], float, float]:
    """Fits ``lo .. hi - 1`` of chunk ``index``: even fits on ``D``, odd ones on ``D'``, each
    with its own seed from the audit's seed list (the same whatever the number of workers)."""
    from dpsynth.synthesizers.marginal.binning import encode_table

    ctx, chunks = payload
    lo, hi = chunks[index]
    began = time.process_time()
    values, fingerprints, planned = [], [], 0.0
    encoded: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # per released domain
    for i in range(lo, hi):
        seed, plan = ctx.seeds[i], ctx.plans[i % 2]
        synth = ctx.cls(epsilon=ctx.epsilon, delta=ctx.delta, random_state=seed,
                        keep_measurements=True, **ctx.extra)
        synth.fit_planned(ctx.neighbour if i % 2 else ctx.data, ctx.schema, plan=plan,
                          recorder=_Tally(plan.budget), noise=NoiseSource.create(seed, False))
        fingerprint = domain_fingerprint(synth)
        if fingerprint not in encoded:
            encoded[fingerprint] = (encode_table(synth.codecs_, ctx.data),
                                    encode_table(synth.codecs_, ctx.canary))
        value, planned = canary_statistic(synth, ctx.data, ctx.canary,
                                          raw=encoded[fingerprint])
        values.append(value)
        fingerprints.append(fingerprint)
    return values, fingerprints, planned, time.process_time() - began


def _domain_bound(domains: Sequence[Sequence[str]], delta: float, confidence: float
                  ) -> tuple[float, bool]:
    """Clopper-Pearson epsilon of guessing ``D'`` from the released domain, and whether the
    guess was never wrong on the held-out fits.

    The domains of the first half of the fits on ``D'`` never seen in the first half on ``D``
    are the guess "``D'``"; it is counted on the second halves.
    """
    without, with_ = domains
    if len(set(without) | set(with_)) == 1:
        return 0.0, False
    half = len(without) // 2
    telling = set(with_[:half]) - set(without[:half])
    tp = sum(d in telling for d in with_[half:])
    fp = sum(d in telling for d in without[half:])
    rest = len(without) - half
    bound = epsilon_lower_bound(tp, fp, rest - fp, rest - tp, delta=delta,
                                confidence=confidence)
    return bound, tp == rest and fp == 0


def _summarise(name: str, epsilon: float, delta: float, scores: np.ndarray, planned: float,
               confidence: float, seconds: float, params: dict[str, Any],
               mu_half: float | None = None) -> WhiteBoxAudit:
    """The bounds from ``scores`` (row 0: fits on ``D``, row 1: on ``D'``).

    ``mu_half`` is the separation the statistic has with the noise scale halved (default
    ``2 * planned``, exact for a Gaussian statistic); it gives the power figure.
    """
    without, with_ = scores
    n = without.size
    pooled = math.sqrt((without.var(ddof=1) + with_.var(ddof=1)) / 2)
    mu = float((with_.mean() - without.mean()) / pooled) if pooled > 0 else math.inf
    se = math.sqrt(2 / n + mu * mu / (4 * n))
    z = float(stats.norm.ppf(confidence))
    mu_ci = (max(0.0, mu - z * se), mu + z * se)
    half = n // 2
    cut = best_threshold(with_[:half], without[:half], delta=delta, confidence=confidence)
    tp, fp = int((with_[half:] >= cut).sum()), int((without[half:] >= cut).sum())
    cp = epsilon_lower_bound(tp, fp, n - half - fp, n - half - tp, delta=delta,
                             confidence=confidence)
    claim_mu = gdp_mu(epsilon, delta)
    half_mu = 2 * planned if mu_half is None else mu_half
    se_half = math.sqrt(2 / n + half_mu * half_mu / (4 * n))
    power = float(stats.norm.cdf((half_mu - z * se_half - claim_mu) / se_half))
    return WhiteBoxAudit(
        synthesizer=name, epsilon=float(epsilon), delta=float(delta), n_fits=n,
        confidence=confidence, mu_hat=mu, mu_ci=mu_ci, mu_planned=planned,
        epsilon_lower=(lower := gdp_epsilon(mu_ci[0], delta)),
        epsilon_ci=(lower, gdp_epsilon(mu_ci[1], delta)),
        epsilon_planned=gdp_epsilon(planned, delta), epsilon_lower_cp=cp,
        power_half_noise=power, cpu_seconds=round(seconds, 2), params=params)


__all__ = ["CANARY", "NUMERIC_CANARY", "WhiteBoxAudit", "canary_statistic", "canary_tables",
           "domain_fingerprint", "gdp_delta", "gdp_epsilon", "gdp_mu", "white_box_audit",
           "white_box_supported"]
