"""Tails and diversity across generations: what happens when synthetic data feeds the next
generator.

Two arms, run for ``rounds`` generations after a first DP fit on the real rows:

``replace``
    each generation is fitted on the previous generation's synthetic rows only (the setting
    in which models collapse: Shumailov et al., "AI models collapse when trained on
    recursively generated data", Nature 2024). Fitting on released synthetic data is
    post-processing: it costs no privacy.
``accumulate``
    each generation is fitted on a real anchor plus every earlier generation's synthetic rows
    (the setting that avoids collapse: Gerstgrasser et al., "Is model collapse inevitable?",
    2024). It reads the real anchor again in every generation, so each of its fits spends
    epsilon on the anchor: :attr:`RoundsResult.fits_on_real` counts them. Run it on research
    or public data, or account for it.

Each generation is measured against the real rows (without noise; not covered by epsilon):
the share of real categories it still produces, the same for rare categories, how much of the
real numeric tails (beyond the 5 % and 95 % quantiles) it keeps, and the average 2-way TVD.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from dpsynth.schema import CATEGORY_KINDS, Schema

RARE_SHARE = 0.05
TAIL = 0.05
METRICS = ("category_coverage", "rare_coverage", "tail_mass", "tvd_2way")


@dataclass(frozen=True)
class RoundStats:
    """One generation of one arm, measured against the real rows."""

    arm: str
    round: int
    category_coverage: float
    rare_coverage: float
    tail_mass: float
    tvd_2way: float


@dataclass(frozen=True)
class RoundsResult:
    """Every generation of both arms; ``fits_on_real`` counts the fits that read real rows
    (each spends epsilon)."""

    rows: tuple[RoundStats, ...]
    epsilon: float
    synthesizer: str
    fits_on_real: int

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.__dict__ for r in self.rows])

    def series(self, arm: str, metric: str) -> list[float]:
        return [getattr(r, metric) for r in self.rows if r.arm == arm]

    def warning(self) -> str:
        """One line for the card or the console."""
        k = len(self.series("replace", "tvd_2way")) - 1
        tvd0, tvd_r = (self.series("replace", "tvd_2way")[i] for i in (0, -1))
        tvd_a = self.series("accumulate", "tvd_2way")[-1]
        rare_r = self.series("replace", "rare_coverage")[-1]
        rare_a = self.series("accumulate", "rare_coverage")[-1]
        return (f"Refitted on its own output for {k} rounds, {self.synthesizer} drifted from "
                f"2-way TVD {tvd0:.3f} to {tvd_r:.3f} (rare categories kept: {rare_r:.0%}); "
                f"accumulating real data with synthetic ended at {tvd_a:.3f} ({rare_a:.0%}). "
                "Do not replace real data with synthetic across generations.")


def measure(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, arm: str,
            round_: int) -> RoundStats:
    """Coverage, rare coverage, tail mass and 2-way TVD of ``synthetic`` against ``real``."""
    from dpsynth.evaluate import average_tvd

    seen = rare_seen = total = rare_total = 0
    tails = []
    for col in schema.data_columns:
        if col.kind in CATEGORY_KINDS:
            shares = real[col.name].astype(str).value_counts(normalize=True)
            present = set(synthetic[col.name].astype(str))
            hit = shares.index.isin(list(present))
            rare = (shares < RARE_SHARE).to_numpy()
            seen, total = seen + int(hit.sum()), total + len(shares)
            rare_seen, rare_total = rare_seen + int((hit & rare).sum()), rare_total + int(
                rare.sum())
        elif col.kind in ("integer", "numeric"):
            r = pd.to_numeric(real[col.name], errors="coerce").dropna()
            s = pd.to_numeric(synthetic[col.name], errors="coerce").dropna()
            lo, hi = np.quantile(r, [TAIL, 1 - TAIL])
            expected = float(np.mean((r < lo) | (r > hi)))
            if expected > 0 and len(s):
                tails.append(float(np.mean((s < lo) | (s > hi))) / expected)
    columns = [c.name for c in schema.data_columns if c.kind != "text"]
    tvd = float(average_tvd(real[columns], synthetic[columns], schema, way=2)) if len(
        columns) >= 2 else float("nan")
    return RoundStats(arm, round_, seen / total if total else float("nan"),
                      rare_seen / rare_total if rare_total else float("nan"),
                      float(np.mean(tails)) if tails else float("nan"), tvd)


def evaluate_rounds(real: pd.DataFrame, schema: Schema, *, rounds: int = 5,
                    epsilon: float = 1.0, synthesizer: str = "mst",
                    anchor_fraction: float = 0.2, random_state: int = 0,
                    progress: Callable[[str, int, int], None] | None = None) -> RoundsResult:
    """Run both arms for ``rounds`` generations (see the module docstring).

    Generation 0 is one DP fit on the real rows, shared by both arms. ``anchor_fraction`` of
    the real rows form the accumulate arm's anchor.
    """
    from dpsynth.release.plan import SynthesizerFactory

    if rounds < 1:
        from dpsynth.errors import param_error

        raise param_error("rounds", "an integer >= 1", rounds, "evaluate_rounds")
    klass = SynthesizerFactory.resolve(synthesizer, None).klass  # names an unknown one
    schema = replace(schema, columns=tuple(schema.data_columns), user_key=None)
    real = real[schema.names]
    rng = np.random.default_rng(random_state)
    seeds = iter(int(s) for s in rng.integers(0, 2**31 - 1, size=4 * rounds + 4))
    n = len(real)
    tick = progress or (lambda stage, done, total: None)

    def generate(data: pd.DataFrame) -> pd.DataFrame:
        model = klass(epsilon=epsilon, random_state=next(seeds)).fit(data, schema)
        return model.sample(n, random_state=next(seeds))

    anchor = real.sample(max(2, int(anchor_fraction * n)), random_state=next(seeds))
    first = generate(real)
    start = measure(real, first, schema, "replace", 0)  # both arms start from the same data
    rows = [start, replace(start, arm="accumulate")]
    last, pool = first, [anchor, first]
    for k in range(1, rounds + 1):
        tick("generations", k - 1, rounds)
        last = generate(last)
        rows.append(measure(real, last, schema, "replace", k))
        grown = generate(pd.concat(pool, ignore_index=True))
        pool.append(grown)
        rows.append(measure(real, grown, schema, "accumulate", k))
    tick("generations", rounds, rounds)
    return RoundsResult(tuple(rows), float(epsilon), synthesizer, 1 + rounds)


def rounds_html(result: RoundsResult, title: str = "Tails and diversity across rounds") -> str:
    """A self-contained HTML page with one chart per measure (both arms)."""
    from html import escape

    from dpsynth.release._svg import line_chart

    labels = [str(r.round) for r in result.rows if r.arm == "replace"]
    names = {"category_coverage": "share of real categories produced",
             "rare_coverage": f"share of rare categories (< {RARE_SHARE:.0%}) produced",
             "tail_mass": "numeric tail mass kept (1 = as real)",
             "tvd_2way": "average 2-way TVD to the real rows"}
    charts = "".join(line_chart(names[m], labels, {
        "replace (synthetic only)": _clean(result.series("replace", m)),
        "accumulate (real anchor + synthetic)": _clean(result.series("accumulate", m))},
        y_label=m) for m in METRICS)
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
            f"</title></head><body style='font-family:system-ui,sans-serif'><h1>"
            f"{escape(title)}</h1><p>{escape(result.warning())}</p><p>Generator "
            f"{escape(result.synthesizer)} at ε = {result.epsilon:g} per fit; x axis: "
            "generation (0 = fitted on the real rows). The figures read the real rows without "
            f"noise: epsilon does not cover them.</p>{charts}</body></html>\n")


def _clean(values: Sequence[float]) -> list[float]:
    return [0.0 if v != v else float(v) for v in values]


__all__ = ["METRICS", "RoundStats", "RoundsResult", "evaluate_rounds", "measure",
           "rounds_html"]
