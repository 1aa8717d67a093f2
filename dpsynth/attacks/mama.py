"""A generator-aware membership attack on marginal-based generators (MAMA-MIA family).

Golob, Pentyala, Maratkhan and De Cock ("Privacy Vulnerabilities in Marginals-based Synthetic
Data", arXiv 2410.05506, 2024; the attack won the first SNAKE challenge) attack generators that
measure noisy low-order marginals of the training data and sample synthetic rows from a model
that reproduces them (MST, AIM, PrivBayes). The attacker knows the generator's family and holds
population (auxiliary) rows and the synthetic rows; it never runs a classifier. Its steps:

1. *focal points*: the marginals the generator most likely measured. The paper estimates them
   from shadow runs of the generator's selection on auxiliary data. Here they are estimated
   from the synthetic table itself, which reproduces the measured marginals and little else:
   a graphical model sampled from an MST tree is tree-structured, so the Chow-Liu tree
   (maximum spanning tree of pairwise mutual information) of the synthetic rows recovers the
   measured pairs; for AIM the strongest further pairs are added (``selection="synthetic"``).
   ``selection="population"`` instead runs MST's own (noise-free) criterion, the L1 error of
   the independence model, on the population rows.
2. *scores*: a member adds one count to the cell it occupies in every measured marginal; a
   non-member adds nothing. With the population predicting a cell's count ``mu = n p`` and the
   synthetic table showing ``y`` (its cell frequency scaled to the training size ``n``), the
   Gaussian log-likelihood ratio of "member" against "non-member" is
   ``(y - mu - 1/2) / v``, where ``v`` adds the generator's measurement noise ``sigma**2`` (from
   its privacy plan at the claimed epsilon), the sampling variance of the training table
   around the population (``n p``) and that of the synthetic sample (``n (n p + 1) / m``).
   The score of a record is the sum over the focal marginals (all one-way marginals, which
   MST and AIM both measure, and the selected pairs): rare cells, where ``v`` is small, count
   most, and a marginal measured with much noise counts little.

:func:`mama_membership` runs the attack on one release (training rows against holdout rows);
:func:`mama_outcomes` runs it on the shadow runs of
:func:`~dpsynth.attacks.generator_audit.audit_generator`, beside the Groundhog classifiers.

Like DOMIAS (van Breugel et al., AISTATS 2023), on which the paper's attack builds, the
score is a density ratio of synthetic to population data, but only on the generator's own
statistics and weighted by their noise, so it does not dilute the signal over the full joint
density. Numeric columns are cut into population quantile bins; missing values are a cell of
their own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dpsynth._util.progress import ProgressFn
from dpsynth.attacks.distance import MixedEncoder, audited_kinds
from dpsynth.attacks.empirical_eps import best_threshold, epsilon_lower_bound
from dpsynth.attacks.membership import _score_membership, expect_goal
from dpsynth.attacks.result import AttackResult, check_rule
from dpsynth.attacks.shadow import ShadowRun, TargetOutcome
from dpsynth.attacks.stats import auc_interval
from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import DataValidationError, ParameterError, param_error
from dpsynth.schema import Schema

FAMILIES = ("mst", "aim")
"""Generator families the attack knows."""

SELECTIONS = ("synthetic", "population")

_MAX_EXACT = 32  # numeric columns with at most this many distinct values keep them all
_AIM_EXTRA = 1.0  # AIM: pairs beyond the tree, as a multiple of d - 1


@functools.lru_cache(maxsize=64)
def marginal_sigmas(family: str, epsilon: float | None, delta: float,
                    n_columns: int) -> tuple[float, float]:
    """Noise (in counts) of the one-way and of the selected marginals of ``family``.

    The plan its synthesizer makes at its default settings (``_make_plan``: MST's shares and
    ``d - 1`` pairs; AIM's shares and rounds). ``epsilon`` None or infinite: no noise, the
    non-private reference fit.
    """
    if epsilon is None or not math.isfinite(epsilon):
        return 0.0, 0.0
    from dpsynth.accounting import Budget
    from dpsynth.synthesizers import create
    from dpsynth.synthesizers.marginal.common import MarginalSynthesizer

    synth = create(family, epsilon=epsilon, delta=delta)
    assert isinstance(synth, MarginalSynthesizer), family
    plan = synth._make_plan(n_columns, Budget(epsilon, delta), ())
    return float(plan.first_sigma), float(plan.round_sigma or plan.first_sigma)


@dataclass(frozen=True, eq=False)
class MamaModel:
    """The attacker's public knowledge: cell coding, population counts, noise levels.

    Build it with :meth:`build` from population rows; score any number of synthetic tables
    with :meth:`scores`. Pure numpy, so it travels to shadow-run workers.
    """

    encoder: MixedEncoder
    family: str
    edges: tuple[np.ndarray | None, ...]
    levels: tuple[int, ...]
    population: np.ndarray
    sigma_one: float
    sigma_pair: float
    n_train: int | None
    selection: str
    _pop_cache: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, population: pd.DataFrame, *, family: str = "mst",
              schema: Schema | None = None, encoder: MixedEncoder | None = None,
              epsilon: float | None = None, delta: float = 1e-5, n_train: int | None = None,
              selection: str = "synthetic", n_bins: int = 16) -> MamaModel:
        """Code ``population`` and plan the noise of ``family`` at ``epsilon``.

        ``encoder`` (fitted) codes the columns; by default one is fitted on ``population``
        over the columns ``schema`` (or the dtypes) marks auditable.
        """
        problems = _problems(family, selection, epsilon, delta, n_train, n_bins)
        if problems:
            raise ParameterError(" ".join(problems))
        if not isinstance(population, pd.DataFrame) or len(population) < 2:
            raise DataValidationError(["the population table must be a DataFrame with at "
                                       "least 2 rows"])
        if encoder is None:
            encoder = MixedEncoder(audited_kinds(population, schema), schema).fit([population])
        return cls.from_values(encoder.values(population), encoder, family=family,
                               epsilon=epsilon, delta=delta, n_train=n_train,
                               selection=selection, n_bins=n_bins)

    @classmethod
    def from_values(cls, values: np.ndarray, encoder: MixedEncoder, *, family: str = "mst",
                    epsilon: float | None = None, delta: float = 1e-5,
                    n_train: int | None = None, selection: str = "synthetic",
                    n_bins: int = 16) -> MamaModel:
        """:meth:`build` on population rows already coded by ``encoder`` (its ``values``)."""
        problems = _problems(family, selection, epsilon, delta, n_train, n_bins)
        if problems:
            raise ParameterError(" ".join(problems))
        edges: list[np.ndarray | None] = []
        levels: list[int] = []
        for j, coding in enumerate(encoder.codings_):
            if coding.kind == "numeric":
                col = values[:, j]
                col = col[np.isfinite(col)]
                distinct = np.unique(col)
                if distinct.size <= _MAX_EXACT:
                    cuts = (distinct[1:] + distinct[:-1]) / 2 if distinct.size > 1 \
                        else np.zeros(0)
                else:
                    cuts = np.unique(np.quantile(col, np.linspace(0, 1, n_bins + 1))[1:-1])
                edges.append(cuts)
                levels.append(cuts.size + 2)  # bins, then "missing"
            else:
                edges.append(None)
                levels.append(len(coding.categories) + 1)  # codes, then unseen/missing
        sigma_one, sigma_pair = marginal_sigmas(family, epsilon, delta, len(levels))
        model = cls(encoder, family, tuple(edges), tuple(levels), np.zeros((0, 0), np.int64),
                    sigma_one, sigma_pair, n_train, selection)
        object.__setattr__(model, "population", model.code(values))
        return model

    # -- coding ---------------------------------------------------------------------------
    def code(self, values: np.ndarray) -> np.ndarray:
        """Cell codes ``(rows, columns)`` of an :meth:`MixedEncoder.values` matrix."""
        out = np.empty(values.shape, dtype=np.int64)
        for j, cuts in enumerate(self.edges):
            col = values[:, j]
            missing = self.levels[j] - 1
            if cuts is None:
                known = np.isfinite(col) & (col >= 0)
                out[:, j] = np.where(known, np.nan_to_num(col, nan=-1.0), missing)
            else:
                out[:, j] = np.where(np.isfinite(col), np.searchsorted(cuts, col), missing)
        return out

    def code_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.code(self.encoder.values(frame))

    # -- focal points ---------------------------------------------------------------------
    def select(self, synthetic: np.ndarray) -> list[tuple[int, int]]:
        """The pairs the generator most likely measured (see the module docstring)."""
        d = len(self.levels)
        if d < 2:
            return []
        pairs = [(a, b) for a in range(d) for b in range(a + 1, d)]
        source = synthetic if self.selection == "synthetic" else self.population
        weight = {p: (_mutual_information(source, p, self.levels)
                      if self.selection == "synthetic" else self._independence_error(p))
                  for p in pairs}
        tree = _max_spanning_tree(weight, d)
        if self.family != "aim":
            return tree
        extra = [p for p in sorted(pairs, key=lambda p: -weight[p]) if p not in set(tree)]
        return tree + extra[: int(round(_AIM_EXTRA * (d - 1)))]

    def _independence_error(self, pair: tuple[int, int]) -> float:
        """MST's selection score on the population: L1 distance to the independence model."""
        joint = self._population_counts(pair).reshape(self.levels[pair[0]], self.levels[pair[1]])
        n = max(joint.sum(), 1.0)
        guess = np.outer(joint.sum(1), joint.sum(0)) / n
        return float(np.abs(joint - guess).sum())

    def _population_counts(self, cols: tuple[int, ...]) -> np.ndarray:
        cached = self._pop_cache.get(cols)
        if cached is None:
            cached = _counts(self.population, cols, self.levels)
            self._pop_cache[cols] = cached
        return cached

    # -- scores ---------------------------------------------------------------------------
    def scores(self, targets: np.ndarray, synthetic: np.ndarray, *,
               population_rows: np.ndarray | None = None) -> np.ndarray:
        """Membership scores (log-likelihood ratios, higher: member) of coded ``targets``.

        ``synthetic`` is the coded synthetic table. ``population_rows`` marks targets that
        are themselves population rows, whose own count is then left out of the population
        estimate (used to calibrate on the population).
        """
        m = len(synthetic)
        if m == 0 or len(targets) == 0:
            return np.zeros(len(targets))
        n = float(self.n_train or m)
        n_pop = float(len(self.population))
        own = np.zeros(len(targets)) if population_rows is None else \
            population_rows.astype(float)
        marginals: list[tuple[tuple[int, ...], float]] = [
            ((j,), self.sigma_one) for j in range(len(self.levels))]
        marginals += [(p, self.sigma_pair) for p in self.select(synthetic)]
        total = np.zeros(len(targets))
        for cols, sigma in marginals:
            cells = _flat(targets, cols, self.levels)
            size = int(np.prod([self.levels[c] for c in cols]))
            pop = self._population_counts(cols)[cells] - own
            p = (pop + 1.0 / size) / (n_pop - own + 1.0)
            y = n * _counts(synthetic, cols, self.levels)[cells] / m
            mu = n * p
            var = sigma ** 2 + mu + n * (mu + 1.0) / m
            total += (y - mu - 0.5) / var
        return total


def _problems(family: str, selection: str, epsilon: float | None, delta: float,
              n_train: int | None, n_bins: int) -> list[str]:
    out = []
    if family not in FAMILIES:
        out.append(str(param_error("family", f"one of {FAMILIES}", family, "mama_membership")))
    if selection not in SELECTIONS:
        out.append(str(param_error("selection", f"one of {SELECTIONS}", selection,
                                   "mama_membership")))
    if epsilon is not None and not (isinstance(epsilon, (int, float)) and epsilon > 0):
        out.append(str(param_error("epsilon", "None or a float > 0 (inf: no noise)", epsilon,
                                   "mama_membership")))
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        out.append(str(param_error("delta", "a float in (0, 1)", delta, "mama_membership")))
    if n_train is not None and (isinstance(n_train, bool) or not isinstance(n_train, int)
                                or n_train < 1):
        out.append(str(param_error("n_train", "None or an integer >= 1", n_train,
                                   "mama_membership")))
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        out.append(str(param_error("n_bins", "an integer >= 2", n_bins, "mama_membership")))
    return out


def _flat(codes: np.ndarray, cols: Sequence[int], levels: Sequence[int]) -> np.ndarray:
    flat = np.zeros(len(codes), dtype=np.int64)
    for c in cols:
        flat = flat * levels[c] + codes[:, c]
    return flat


def _counts(codes: np.ndarray, cols: Sequence[int], levels: Sequence[int]) -> np.ndarray:
    size = int(np.prod([levels[c] for c in cols]))
    return np.bincount(_flat(codes, cols, levels), minlength=size).astype(float)


def _mutual_information(codes: np.ndarray, pair: tuple[int, int],
                        levels: Sequence[int]) -> float:
    """Plug-in mutual information (nats) of two coded columns."""
    joint = _counts(codes, pair, levels).reshape(levels[pair[0]], levels[pair[1]])
    n = joint.sum()
    if n == 0:
        return 0.0
    pj = joint / n
    pa, pb = pj.sum(1, keepdims=True), pj.sum(0, keepdims=True)
    nz = pj > 0
    return float((pj[nz] * np.log(pj[nz] / (pa @ pb)[nz])).sum())


def _max_spanning_tree(weight: dict[tuple[int, int], float], d: int) -> list[tuple[int, int]]:
    """Kruskal's maximum spanning tree (ties broken by pair order)."""
    parent = list(range(d))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = []
    for a, b in sorted(weight, key=lambda p: (-weight[p], p)):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
            tree.append((a, b))
    return tree


def mama_scores(targets: pd.DataFrame, synthetic: pd.DataFrame, population: pd.DataFrame, *,
                family: str = "mst", schema: Schema | None = None,
                epsilon: float | None = None, delta: float = 1e-5, n_train: int | None = None,
                selection: str = "synthetic") -> np.ndarray:
    """MAMA-MIA scores of ``targets`` (higher: more likely members) from synthetic and
    population rows alone (Golob et al., arXiv 2410.05506; see the module docstring)."""
    model = MamaModel.build(population, family=family, schema=schema, epsilon=epsilon,
                            delta=delta, n_train=n_train, selection=selection)
    return model.scores(model.code_frame(targets), model.code_frame(synthetic))


def mama_membership(data: AuditData, threat: ThreatModel | None = None, *,
                    family: str = "mst", epsilon: float | None = None, delta: float = 1e-5,
                    n_train: int | None = None, selection: str = "synthetic",
                    claim_rate: float = 0.5, threshold: float = 0.05, confidence: float = 0.95,
                    random_state: int | np.random.Generator | None = None,
                    progress: ProgressFn | None = None) -> AttackResult:
    """Generator-aware membership inference against a marginal generator (MAMA-MIA family).

    Golob et al., "Privacy Vulnerabilities in Marginals-based Synthetic Data" (arXiv
    2410.05506). Training rows are the targets, holdout rows the controls, the reference rows
    (given, or half of the holdout) the attacker's population data.

    Parameters
    ----------
    family:
        ``"mst"`` or ``"aim"``: the generator family the attacker assumes.
    epsilon, delta:
        The generator's claimed budget, which sets the noise weighting the marginals
        (None or ``inf``: no noise).
    n_train:
        Training rows the attacker assumes (default: as many as synthetic rows).
    selection:
        How the measured pairs are estimated: ``"synthetic"`` (Chow-Liu tree of the synthetic
        rows) or ``"population"`` (MST's criterion on the reference rows).
    claim_rate:
        Claims are the scores above the ``1 - claim_rate`` quantile of the reference rows' own
        (leave-one-out) scores, so about this share of non-members is claimed.
    threshold, confidence, random_state:
        Verdict rule and seed (see :mod:`dpsynth.attacks.result`).
    """
    threat = threat or ThreatModel("membership", ("synthetic", "target_record", "reference",
                                                  "generator_family"))
    expect_goal(threat, "membership", "mama_membership")
    check_rule(threshold, confidence, "mama_membership")
    if not (isinstance(claim_rate, (int, float)) and 0 < claim_rate < 1):
        raise param_error("claim_rate", "a float in (0, 1)", claim_rate, "mama_membership")
    problems = _problems(family, selection, epsilon, delta, n_train, 16)
    if problems:
        raise ParameterError(" ".join(problems))
    rng = np.random.default_rng(random_state)
    data = data.with_reference(rng)
    assert data.reference is not None
    members, controls = data.balanced_targets(threat.n_targets, rng)
    model = MamaModel.from_values(data.reference.values, data.encoder, family=family,
                                  epsilon=epsilon, delta=delta, n_train=n_train,
                                  selection=selection)
    syn = model.code(data.synthetic.values)
    queries = np.vstack([model.code(data.train.values[members]),
                         model.code(data.control.values[controls])])
    score = model.scores(queries, syn)
    null = model.scores(model.population, syn, population_rows=np.ones(len(model.population)))
    cut = float(np.quantile(null, 1 - claim_rate))
    if progress is not None:
        progress(1, 1)
    metrics: dict[str, float | int | str | None] = {
        "family": family, "epsilon": None if epsilon is None else float(epsilon),
        "selection": selection, "sigma_one_way": model.sigma_one,
        "sigma_selected": model.sigma_pair, "claim_rate": claim_rate,
        "n_reference": len(data.reference),
    }
    return _score_membership("mama_membership", threat, data, members, score[: members.size],
                             score[members.size:], cut, rng, threshold, confidence, metrics)


def mama_outcomes(runs: Sequence[ShadowRun], n_train: int, ids: Sequence[int | str],
                  kinds: Sequence[str], vulnerability: np.ndarray, *, delta: float,
                  confidence: float) -> list[TargetOutcome]:
    """MAMA-MIA on each target of a shadow-model audit (:mod:`~dpsynth.attacks.shadow`).

    The runs carry each target's score on that run's synthetic table. The attack trains
    nothing; the first ``n_train`` runs only standardise each target's scores (so they pool
    across targets) and choose its decision threshold, and the remaining runs are counted,
    which keeps each target's epsilon bound honest, as for the Groundhog classifiers.
    """
    scores = np.stack([np.asarray(r.mama, dtype=float) for r in runs])
    included = np.stack([r.included for r in runs])
    out = []
    for j in range(scores.shape[1]):
        s, y = scores[:, j], included[:, j]
        train = s[:n_train]
        z = (s - train.mean()) / (train.std() or 1.0)
        cut = best_threshold(z[:n_train][y[:n_train]], z[:n_train][~y[:n_train]], delta=delta,
                             confidence=confidence)
        member, other = z[n_train:][y[n_train:]], z[n_train:][~y[n_train:]]
        tp, fp = int((member >= cut).sum()), int((other >= cut).sum())
        tn, fn = int(other.size - fp), int(member.size - tp)
        auc = auc_interval(member, other)[0] if member.size and other.size else math.nan
        eps = epsilon_lower_bound(tp, fp, tn, fn, delta=delta, confidence=confidence)
        out.append(TargetOutcome(ids[j], kinds[j], float(vulnerability[j]), auc, tp, fp, tn, fn,
                                 float(cut), eps, tuple(map(float, member)),
                                 tuple(map(float, other))))
    return out
