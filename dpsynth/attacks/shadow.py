"""Shadow-model membership inference against a generator (Stadler et al.'s "Groundhog").

Stadler, Oprisanu and Troncoso ("Synthetic Data - Anonymisation Groundhog Day", USENIX
Security 2022) attack one target record at a time: the attacker, who holds reference rows from
the population and can run the generator, trains it many times on datasets drawn from the
reference rows with and without the target, turns each synthetic output into a feature vector,
and trains a classifier to tell "with" from "without". Its AUC on fresh shadow runs measures how
much the generator reveals about that record.

Here every shadow run serves all targets at once: its dataset is ``n_rows`` reference rows plus
each target included independently with probability 1/2 (the inclusion scheme of Steinke, Nasr
and Jagielski, NeurIPS 2023). For one target, the datasets with and without it differ by that
record alone (add/remove neighbours), the other targets being part of the random population,
so a run's output is a valid trial for every target, and the test counts of each target bound
epsilon (:mod:`~dpsynth.attacks.empirical_eps`).

Features of a synthetic table (Groundhog's naive, histogram and correlation features, plus
distances to the target as in TAPAS' closest-distance attacks):

* per column: mean and spread of numeric columns, a histogram on population deciles, category
  frequencies;
* correlations between the coordinates of the mixed-type embedding;
* per target: distance to the closest synthetic row (DCR) and mean distance to the five
  closest, how many synthetic rows fall within 1/2, 1 and 2 times the distance from the target
  to its nearest population row, and how often the target's own value (or bin) occurs in each
  column and jointly over its categorical columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dpsynth.attacks.distance import MixedEncoder, nearest
from dpsynth.attacks.empirical_eps import best_threshold, epsilon_lower_bound
from dpsynth.attacks.generators import Generator
from dpsynth.attacks.result import roc_curve

if TYPE_CHECKING:
    from dpsynth.attacks.mama import MamaModel

_RADII = (0.5, 1.0, 2.0)
_K_NEAR = 5


@dataclass(frozen=True, eq=False)
class Featurizer:
    """Turns a synthetic table into generic features and per-target features.

    Built from public material only: the population (reference) rows and the targets.
    """

    encoder: MixedEncoder
    edges: tuple[np.ndarray | None, ...]
    corr_dims: np.ndarray
    target_values: np.ndarray
    target_x: np.ndarray
    radius: np.ndarray

    @classmethod
    def build(cls, encoder: MixedEncoder, population_x: np.ndarray,
              population_values: np.ndarray, targets: pd.DataFrame, *, n_bins: int = 10,
              max_corr_dims: int = 24) -> Featurizer:
        edges: list[np.ndarray | None] = []
        for j, coding in enumerate(encoder.codings_):
            if coding.kind == "numeric":
                col = population_values[:, j]
                col = col[np.isfinite(col)]
                qs = np.unique(np.quantile(col, np.linspace(0, 1, n_bins + 1))) if col.size \
                    else np.array([0.0, 1.0])
                edges.append(qs if qs.size > 1 else np.array([qs[0] - 0.5, qs[0] + 0.5]))
            else:
                edges.append(None)
        numeric = [c.start for c in encoder.codings_ if c.kind == "numeric"]
        others = [i for i in range(encoder.n_features_) if i not in set(numeric)]
        corr_dims = np.array((numeric + others)[:max_corr_dims], dtype=int)
        values = encoder.values(targets)
        x = encoder.embed(values).astype(np.float64)
        radius = nearest(x, population_x)[0][:, 0]
        return cls(encoder, tuple(edges), corr_dims, values, x, np.maximum(radius, 1e-6))

    @property
    def n_targets(self) -> int:
        return len(self.target_x)

    def generic(self, values: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Marginal and correlation features of one synthetic table."""
        parts: list[np.ndarray] = []
        for j, coding in enumerate(self.encoder.codings_):
            col = values[:, j]
            if coding.kind == "numeric":
                present = col[np.isfinite(col)]
                scaled = (present - coding.center) / coding.scale
                stats_ = [scaled.mean(), scaled.std()] if present.size else [0.0, 0.0]
                parts.append(np.array(stats_ + [1 - present.size / max(col.size, 1)]))
                parts.append(_histogram(present, self.edges[j]))
            else:
                codes = col[col >= 0].astype(int)
                counts = np.bincount(codes, minlength=len(coding.categories))
                parts.append(counts / max(col.size, 1))
        parts.append(_correlations(x[:, self.corr_dims]))
        return np.concatenate(parts).astype(np.float32)

    def targeted(self, values: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Per-target features, shape ``(n_targets, n_features)``."""
        d = _distances(self.target_x, x.astype(np.float64))
        k = min(_K_NEAR, d.shape[1])
        closest = np.sort(np.partition(d, k - 1, axis=1)[:, :k], axis=1)
        cols = [closest[:, 0], closest.mean(axis=1), np.log(closest[:, 0] + 1e-9),
                closest[:, 0] / self.radius]
        cols += [(d <= r * self.radius[:, None]).mean(axis=1) for r in _RADII]
        same = self._same_value(values)
        cols += [same[:, :, j].mean(axis=1) for j in range(same.shape[2])]
        categorical = [j for j, c in enumerate(self.encoder.codings_) if c.kind != "numeric"]
        joint = same[:, :, categorical].all(axis=2).mean(axis=1) if categorical else \
            np.zeros(self.n_targets)
        cols.append(joint)
        return np.column_stack(cols).astype(np.float32)

    def _same_value(self, values: np.ndarray) -> np.ndarray:
        """``(targets, rows, columns)``: does the row share the target's value or bin?"""
        out = np.empty((self.n_targets, len(values), values.shape[1]), dtype=bool)
        for j, edges in enumerate(self.edges):
            col, tcol = values[:, j], self.target_values[:, j]
            if edges is None:
                out[:, :, j] = col[None, :] == tcol[:, None]
            else:
                out[:, :, j] = _bin(col, edges)[None, :] == _bin(tcol, edges)[:, None]
        return out

    def features(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Generic features (1-D) and per-target features (2-D) of a synthetic table."""
        values = self.encoder.values(frame)
        x = self.encoder.embed(values)
        return self.generic(values, x), self.targeted(values, x)


def _histogram(values: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
    assert edges is not None
    if values.size == 0:
        return np.zeros(edges.size - 1)
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return counts / values.size


def _bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    out = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)
    return np.where(np.isfinite(values), out, -1)


def _correlations(x: np.ndarray) -> np.ndarray:
    if x.shape[1] < 2 or x.shape[0] < 2:
        return np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(x, rowvar=False)
    upper = corr[np.triu_indices(x.shape[1], k=1)]
    return np.asarray(np.nan_to_num(upper, nan=0.0))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Euclidean distances between the rows of ``a`` (few) and ``b``."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.asarray(np.sqrt(np.maximum(d2, 0.0)))


# -- one shadow run --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ShadowContext:
    """What each worker needs: the generator, the reference pool, the targets, the features."""

    generator: Generator
    pool: pd.DataFrame
    targets: pd.DataFrame
    featurizer: Featurizer
    n_rows: int
    n_synthetic: int
    mama: MamaModel | None = None  # also score the targets with MAMA-MIA (marginal generators)


@dataclass(frozen=True, eq=False)
class ShadowRun:
    """Which targets a run included, the features of its synthetic table and, for marginal
    generators, the targets' MAMA-MIA scores (:mod:`~dpsynth.attacks.mama`)."""

    included: np.ndarray
    generic: np.ndarray
    targeted: np.ndarray
    mama: np.ndarray | None = None


def shadow_run(ctx: ShadowContext, index: int, seed: np.random.SeedSequence) -> ShadowRun:
    """Train the generator on ``n_rows`` pool rows plus each target with probability 1/2."""
    rng = np.random.default_rng(seed)
    base = rng.choice(len(ctx.pool), size=ctx.n_rows, replace=False)
    included = rng.random(len(ctx.targets)) < 0.5
    train = pd.concat([ctx.pool.iloc[base], ctx.targets.loc[included]], ignore_index=True)
    train = train.iloc[rng.permutation(len(train))].reset_index(drop=True)
    synthetic = ctx.generator.fit_sample(train, ctx.n_synthetic, int(rng.integers(2**31 - 1)))
    generic, targeted = ctx.featurizer.features(synthetic)
    mama = None if ctx.mama is None else \
        ctx.mama.scores(ctx.mama.code_frame(ctx.targets), ctx.mama.code_frame(synthetic))
    return ShadowRun(included, generic, targeted, mama)


# -- the attack on each target ----------------------------------------------------------------
@dataclass(frozen=True)
class TargetOutcome:
    """The shadow attack on one target, on fresh test runs."""

    row_id: int | str
    kind: str
    vulnerability: float
    auc: float
    tp: int
    fp: int
    tn: int
    fn: int
    threshold: float
    epsilon_lower: float
    member_scores: tuple[float, ...] = ()
    other_scores: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"row_id": self.row_id, "kind": self.kind,
                "vulnerability": _finite(self.vulnerability), "auc": _finite(self.auc),
                "tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn,
                "threshold": self.threshold, "epsilon_lower": self.epsilon_lower}


def _finite(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def attack_targets(runs: Sequence[ShadowRun], n_train: int, ids: Sequence[int | str],
                   kinds: Sequence[str], vulnerability: np.ndarray, *, delta: float,
                   confidence: float, seed: int) -> list[TargetOutcome]:
    """Train one classifier per target on the first ``n_train`` runs; test on the rest.

    ``confidence`` is the level of each target's epsilon bound (the caller corrects for the
    number of targets). The decision threshold is chosen on out-of-bag scores of the training
    runs, never on the test runs.
    """
    generic = np.stack([r.generic for r in runs])
    included = np.stack([r.included for r in runs])
    out = []
    for j in range(included.shape[1]):
        x = np.hstack([generic, np.stack([r.targeted[j] for r in runs])])
        y = included[:, j]
        outcome = _attack_one(x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                              delta=delta, confidence=confidence, seed=seed + j)
        out.append(TargetOutcome(ids[j], kinds[j], float(vulnerability[j]), *outcome))
    return out


def _attack_one(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray, *, delta: float, confidence: float,
                seed: int) -> tuple[float, int, int, int, int, float, float,
                                    tuple[float, ...], tuple[float, ...]]:
    from sklearn.ensemble import RandomForestClassifier

    if y_train.all() or not y_train.any():  # one class only: a coin is all one can do
        train_scores, test_scores = np.full(y_train.size, 0.5), np.full(y_test.size, 0.5)
    else:
        forest = RandomForestClassifier(n_estimators=150, min_samples_leaf=1, oob_score=True,
                                        random_state=seed, n_jobs=1)
        forest.fit(x_train, y_train)
        train_scores = np.nan_to_num(forest.oob_decision_function_[:, 1], nan=0.5)
        test_scores = forest.predict_proba(x_test)[:, 1]
    threshold = best_threshold(train_scores[y_train], train_scores[~y_train], delta=delta,
                               confidence=confidence)
    member, other = test_scores[y_test], test_scores[~y_test]
    tp, fp = int((member >= threshold).sum()), int((other >= threshold).sum())
    tn, fn = int(other.size - fp), int(member.size - tp)
    auc = roc_curve(member, other)[0].auc if member.size and other.size else math.nan
    eps = epsilon_lower_bound(tp, fp, tn, fn, delta=delta, confidence=confidence)
    return (auc, tp, fp, tn, fn, float(threshold), eps, tuple(map(float, member)),
            tuple(map(float, other)))
