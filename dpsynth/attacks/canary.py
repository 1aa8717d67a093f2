"""Canaries: crafted outlying records inserted into the training data to measure leakage.

A canary is a record built to be easy to spot if the generator copies it and hard to explain
otherwise: rare category values, numeric values at the edges of the column's domain, and far
from every population record (Jagielski, Ullman and Oprea, NeurIPS 2020, craft poisoning
canaries for the same reason; Meeus et al., ESORICS 2023, show outliers are the records
synthetic data exposes most).

:func:`one_run_audit` is the one-run audit of Steinke, Nasr and Jagielski (NeurIPS 2023): ``m``
canaries, each inserted independently with probability 1/2, one generator run, and guesses on
the canaries whose synthetic neighbourhood is most (or least) populated. The number of correct
guesses bounds epsilon from below (:func:`~dpsynth.attacks.empirical_eps.one_run_epsilon_lower`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from dpsynth.attacks.distance import MixedEncoder, nearest
from dpsynth.attacks.empirical_eps import EpsilonBound, one_run_epsilon_lower
from dpsynth.attacks.generators import Generator
from dpsynth.schema import Schema

#: Guess grids of the one-run audit, as fractions of the canaries: (guessed in, guessed out).
DEFAULT_GUESSES: tuple[tuple[float, float], ...] = ((0.05, 0.0), (0.1, 0.0), (0.2, 0.0),
                                                   (0.4, 0.0), (0.25, 0.25))
_CANDIDATES_PER_CANARY = 5
_EDGE = 0.05


def craft_canaries(population: pd.DataFrame, encoder: MixedEncoder, m: int,
                   rng: np.random.Generator, *, schema: Schema | None = None,
                   prefix: str = "canary") -> pd.DataFrame:
    """``m`` outlying records in the population's columns and dtypes, indexed ``canary-i``.

    Numeric columns take values near an edge of the declared (else observed) range half of the
    time and anywhere in it otherwise; category columns favour rare values (weight
    ``1 / (count + 1)``). Of ``5 m`` candidates, the ``m`` farthest from the population are kept,
    preferring ones far from each other.
    """
    n_candidates = max(_CANDIDATES_PER_CANARY * m, 50)
    columns = {c: _draw_column(population[c], n_candidates, rng, schema) for c in
               population.columns}
    candidates = pd.DataFrame(columns)
    pop_x = encoder.transform(population)
    cand_x = encoder.transform(candidates)
    outlying = nearest(cand_x, pop_x)[0][:, 0]
    spread = float(np.median(nearest(pop_x, pop_x, k=1, exclude_self=True)[0][:, 0])) \
        if len(pop_x) > 1 else 0.0
    chosen = _spread_out(cand_x, outlying, m, spread)
    out = candidates.iloc[chosen].reset_index(drop=True)
    out.index = pd.Index([f"{prefix}-{i}" for i in range(len(out))])
    return out


def _draw_column(series: pd.Series, n: int, rng: np.random.Generator,
                 schema: Schema | None) -> pd.Series:
    column = schema[str(series.name)] if schema is not None and series.name in schema else None
    kind = column.kind if column is not None else None
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and kind not in ("categorical", "ordinal", "identifier", "text"):
        lo, hi = _range(series, column)
        edge = rng.random(n) < 0.5
        low_side = rng.random(n) < 0.5
        width = (hi - lo) * np.where(edge, _EDGE, 1.0)
        start = np.where(edge & ~low_side, hi - width, lo)
        values = start + rng.random(n) * width
        if pd.api.types.is_integer_dtype(series) or kind == "integer":
            values = np.clip(np.round(values), np.ceil(lo), np.floor(hi))
        return pd.Series(values, name=series.name).astype(series.dtype)
    observed = series.dropna()
    counts = observed.value_counts()
    declared = list(column.categories) if column is not None and column.categories else []
    labels = list(counts.index) + [c for c in declared if c not in counts.index]
    if not labels:
        return pd.Series([None] * n, name=series.name, dtype=series.dtype)
    weights = np.array([1.0 / (counts.get(c, 0) + 1) for c in labels])
    picks = rng.choice(len(labels), size=n, p=weights / weights.sum())
    return pd.Series([labels[i] for i in picks], name=series.name).astype(series.dtype)


def _range(series: pd.Series, column: object) -> tuple[float, float]:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 1.0
    declared = getattr(column, "lower", None), getattr(column, "upper", None)
    if all(isinstance(v, (int, float)) for v in declared):
        lo, hi = float(declared[0]), float(declared[1])  # type: ignore[arg-type]
    return lo, max(hi, lo)


def _spread_out(x: np.ndarray, outlying: np.ndarray, m: int, spread: float) -> np.ndarray:
    """Greedy: most outlying first, skipping candidates within ``spread`` of a chosen one."""
    order = np.argsort(-outlying, kind="stable")
    chosen: list[int] = []
    for i in order:
        if len(chosen) == m:
            break
        if chosen and np.min(np.linalg.norm(x[chosen] - x[i], axis=1)) < spread:
            continue
        chosen.append(int(i))
    for i in order:  # not enough far-apart ones: fill with the next most outlying
        if len(chosen) == m:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return np.array(chosen, dtype=int)


# -- the one-run audit -----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class OneRunContext:
    """What the one-run worker needs."""

    generator: Generator
    pool: pd.DataFrame
    canaries: pd.DataFrame
    encoder: MixedEncoder
    radius: np.ndarray
    n_rows: int
    n_synthetic: int


@dataclass(frozen=True, eq=False)
class OneRunScores:
    """Which canaries were inserted, and each one's score (higher: more likely inserted)."""

    included: np.ndarray
    scores: np.ndarray


def one_run_task(ctx: OneRunContext, index: int, seed: np.random.SeedSequence) -> OneRunScores:
    """Insert each canary with probability 1/2, train once, score every canary.

    The score is minus the distance from the canary to its closest synthetic row, relative to
    its distance to the closest population row.
    """
    rng = np.random.default_rng(seed)
    base = rng.choice(len(ctx.pool), size=ctx.n_rows, replace=False)
    included = rng.random(len(ctx.canaries)) < 0.5
    train = pd.concat([ctx.pool.iloc[base], ctx.canaries.loc[included]], ignore_index=True)
    train = train.iloc[rng.permutation(len(train))].reset_index(drop=True)
    synthetic = ctx.generator.fit_sample(train, ctx.n_synthetic, int(rng.integers(2**31 - 1)))
    dcr = nearest(ctx.encoder.transform(ctx.canaries), ctx.encoder.transform(synthetic))[0][:, 0]
    return OneRunScores(included, -dcr / ctx.radius)


def one_run_bound(scores: OneRunScores, *, delta: float, confidence: float,
                  guesses: Sequence[tuple[float, float]] = DEFAULT_GUESSES,
                  rng: np.random.Generator) -> tuple[EpsilonBound, dict[str, int]]:
    """The best bound over the guess grid; each grid point is tested at ``confidence``
    divided Bonferroni-wise over the grid, so the best holds at ``confidence``.

    Returns the bound and the counts of the pre-declared ``(0.25, 0)`` grid point for the
    report's rates (``tp``: inserted canaries guessed in, ``fp``: others guessed in).
    """
    m = scores.included.size
    order = rng.permutation(m)  # break ties at random
    ranked = order[np.argsort(-scores.scores[order], kind="stable")]
    level = 1 - (1 - confidence) / max(len(guesses), 1)
    best = EpsilonBound(0.0, "one_run", confidence, delta, 0.0, {"m": m, "r": 0, "v": 0},
                        "canaries")
    ceiling = 0.0
    for frac_in, frac_out in guesses:
        k_in, k_out = int(round(frac_in * m)), int(round(frac_out * m))
        k_out = min(k_out, m - k_in)
        guessed_in, guessed_out = ranked[:k_in], ranked[m - k_out:] if k_out else ranked[:0]
        v = int(scores.included[guessed_in].sum() + (~scores.included[guessed_out]).sum())
        r = k_in + k_out
        eps = one_run_epsilon_lower(m, r, v, delta=delta, confidence=level)
        ceiling = max(ceiling, one_run_epsilon_lower(m, r, r, delta=delta, confidence=level))
        if eps > best.epsilon or best.counts["r"] == 0:
            best = EpsilonBound(eps, "one_run", confidence, delta, 0.0,
                                {"m": m, "r": r, "v": v}, "canaries")
    best = replace(best, ceiling=ceiling)
    top = ranked[: int(round(0.25 * m))]
    counts = {"tp": int(scores.included[top].sum()), "fp": int((~scores.included[top]).sum()),
              "n_in": int(scores.included.sum()), "n_out": int((~scores.included).sum())}
    return best, counts
