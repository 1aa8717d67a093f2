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
When the schema has text columns (a table with free text, generator ``dptext-table``, or a
text corpus, ``dptext``), also the text measures of :mod:`dpsynth.evaluate.text`: self-BLEU
and distinct-2 (diversity; collapse shows as rising self-BLEU and falling distinct-2), MAUVE
and embedding coverage against the real text (closeness and how much of the real text's
variety is still produced; Naeem et al., ICML 2020), averaged over the text columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dpsynth.schema import CATEGORY_KINDS, Schema

if TYPE_CHECKING:
    from dpsynth.synthesizers.base import BaseSynthesizer

RARE_SHARE = 0.05
TAIL = 0.05
METRICS = ("category_coverage", "rare_coverage", "tail_mass", "tvd_2way")
#: Measured only when the schema has text columns (``None`` otherwise).
TEXT_METRICS = ("self_bleu", "distinct_2", "mauve", "embedding_coverage")


@dataclass(frozen=True)
class RoundStats:
    """One generation of one arm, measured against the real rows."""

    arm: str
    round: int
    category_coverage: float
    rare_coverage: float
    tail_mass: float
    tvd_2way: float
    self_bleu: float | None = None
    distinct_2: float | None = None
    mauve: float | None = None
    embedding_coverage: float | None = None


@dataclass(frozen=True)
class RoundsResult:
    """Every generation of both arms; ``fits_on_real`` counts the fits that read real rows
    (each spends epsilon). ``text_reference`` holds the real text's own self-BLEU and
    distinct-2 (empty without text columns)."""

    rows: tuple[RoundStats, ...]
    epsilon: float
    synthesizer: str
    fits_on_real: int
    text_reference: Mapping[str, float] = field(default_factory=dict)

    @property
    def has_text(self) -> bool:
        return any(r.distinct_2 is not None for r in self.rows)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The measures of this study: :data:`METRICS`, then :data:`TEXT_METRICS` for text."""
        return (*METRICS, *TEXT_METRICS) if self.has_text else METRICS

    def frame(self) -> pd.DataFrame:
        columns = ["arm", "round", *self.metrics]
        return pd.DataFrame([{c: getattr(r, c) for c in columns} for r in self.rows],
                            columns=columns)

    def series(self, arm: str, metric: str) -> list[float]:
        return [_float(getattr(r, metric)) for r in self.rows if r.arm == arm]

    def warning(self) -> str:
        """One line for the card or the console."""
        k = len(self.series("replace", "tvd_2way")) - 1
        tvd0, tvd_r = (self.series("replace", "tvd_2way")[i] for i in (0, -1))
        who = self.synthesizer
        if tvd0 == tvd0:  # a 2-way TVD exists (two or more non-text columns)
            tvd_a = self.series("accumulate", "tvd_2way")[-1]
            rare_r = self.series("replace", "rare_coverage")[-1]
            rare_a = self.series("accumulate", "rare_coverage")[-1]
            what = (f"{who} drifted from 2-way TVD {tvd0:.3f} to {tvd_r:.3f} (rare categories "
                    f"kept: {rare_r:.0%}); accumulating real data with synthetic ended at "
                    f"{tvd_a:.3f} ({rare_a:.0%})")
        else:
            what = f"{who} was measured"
        if self.has_text:
            d0, d_r = (self.series("replace", "distinct_2")[i] for i in (0, -1))
            d_a = self.series("accumulate", "distinct_2")[-1]
            c0, c_r = (self.series("replace", "embedding_coverage")[i] for i in (0, -1))
            c_a = self.series("accumulate", "embedding_coverage")[-1]
            cover = "" if c0 != c0 else (f", embedding coverage {c0:.3f} to {c_r:.3f} "
                                         f"(accumulating: {c_a:.3f})")
            text = f"distinct-2 {d0:.3f} to {d_r:.3f} (accumulating: {d_a:.3f}){cover}"
            what = (f"{what}; its text went from {text}" if tvd0 == tvd0
                    else f"the text of {who} went from {text}")
        return (f"Refitted on its own output for {k} rounds, {what}. "
                "Do not replace real data with synthetic across generations.")


def measure(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, arm: str,
            round_: int, *, embeddings: bool = True,
            real_embeddings: Mapping[str, np.ndarray] | None = None) -> RoundStats:
    """Coverage, rare coverage, tail mass and 2-way TVD of ``synthetic`` against ``real``;
    with text columns also self-BLEU, distinct-2, MAUVE and embedding coverage (averaged
    over the text columns; MAUVE and coverage only with ``embeddings``, which needs the
    ``text`` extra; ``real_embeddings`` reuses the real text's embeddings per column)."""
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
    stats = RoundStats(arm, round_, seen / total if total else float("nan"),
                       rare_seen / rare_total if rare_total else float("nan"),
                       float(np.mean(tails)) if tails else float("nan"), tvd)
    texts = [c.name for c in schema.data_columns if c.kind == "text"]
    if not texts:
        return stats
    found = [_text_measures(real[c], synthetic[c], embeddings,
                            None if real_embeddings is None else real_embeddings.get(c))
             for c in texts]
    mean = {m: float(np.mean([f[m] for f in found])) for m in TEXT_METRICS}
    return replace(stats, self_bleu=mean["self_bleu"], distinct_2=mean["distinct_2"],
                   mauve=mean["mauve"], embedding_coverage=mean["embedding_coverage"])


def _texts(values: pd.Series) -> list[str]:
    return ["" if v is None or v != v else str(v) for v in values]


def _text_measures(real: pd.Series, synthetic: pd.Series, embeddings: bool,
                   real_embeddings: np.ndarray | None) -> dict[str, float]:
    from dpsynth.evaluate.text import (
        distinct_n,
        embed_texts,
        embedding_coverage,
        mauve_score,
        self_bleu,
    )

    syn = _texts(synthetic)
    out = {"self_bleu": self_bleu(syn) if len(syn) > 1 else float("nan"),
           "distinct_2": distinct_n(syn, 2), "mauve": float("nan"),
           "embedding_coverage": float("nan")}
    if embeddings:
        ref = embed_texts(_texts(real)) if real_embeddings is None else real_embeddings
        emb = embed_texts(syn)
        out["mauve"] = mauve_score(ref, emb)
        out["embedding_coverage"] = embedding_coverage(ref, emb)["coverage"]
    return out


def default_generator(schema: Schema) -> str:
    """``mst`` for a table without text, ``dptext`` for text with categorical columns only
    (a corpus, perhaps with control codes), ``dptext-table`` for a table with free text."""
    kinds = {c.kind for c in schema.data_columns}
    if "text" not in kinds:
        return "mst"
    return "dptext" if kinds <= {"text", *CATEGORY_KINDS} else "dptext-table"


def evaluate_rounds(real: pd.DataFrame, schema: Schema, *, rounds: int = 5,
                    epsilon: float = 1.0, synthesizer: str | BaseSynthesizer | None = None,
                    synthesizer_params: Mapping[str, Any] | None = None,
                    anchor_fraction: float = 0.2, random_state: int = 0,
                    text_embeddings: bool = True,
                    progress: Callable[[str, int, int], None] | None = None) -> RoundsResult:
    """Run both arms for ``rounds`` generations (see the module docstring).

    Generation 0 is one DP fit on the real rows, shared by both arms. ``anchor_fraction`` of
    the real rows form the accumulate arm's anchor. ``synthesizer`` is a registered name or
    an instance used as a template (``None``: :func:`default_generator`), with
    ``synthesizer_params`` on top (say, a small text model's ``epochs`` or ``pretrained``).
    ``text_embeddings=False`` skips MAUVE and embedding coverage (they need the ``text``
    extra and cost a sentence-embedding pass per generation).
    """
    from dpsynth.release.plan import SynthesizerFactory

    if rounds < 1:
        from dpsynth.errors import param_error

        raise param_error("rounds", "an integer >= 1", rounds, "evaluate_rounds")
    factory = SynthesizerFactory.resolve(
        default_generator(schema) if synthesizer is None else synthesizer,
        synthesizer_params)  # names an unknown one or a parameter it does not take
    schema = replace(schema, columns=tuple(schema.data_columns), user_key=None)
    real = real[schema.names]
    rng = np.random.default_rng(random_state)
    seeds = iter(int(s) for s in rng.integers(0, 2**31 - 1, size=4 * rounds + 4))
    n = len(real)
    tick = progress or (lambda stage, done, total: None)

    def generate(data: pd.DataFrame) -> pd.DataFrame:
        model = factory(epsilon, None, next(seeds), False).fit(data, schema)
        return model.sample(n, random_state=next(seeds))

    texts = [c.name for c in schema.data_columns if c.kind == "text"]
    reference: dict[str, float] = {}
    real_emb: dict[str, np.ndarray] = {}
    if texts:
        from dpsynth.evaluate.text import distinct_n, embed_texts, self_bleu

        reference = {"self_bleu": float(np.mean([self_bleu(_texts(real[c])) for c in texts])),
                     "distinct_2": float(np.mean([distinct_n(_texts(real[c]), 2)
                                                  for c in texts]))}
        if text_embeddings:  # once, before any fit: a missing extra fails fast
            real_emb = {c: embed_texts(_texts(real[c])) for c in texts}

    def judge(synthetic: pd.DataFrame, arm: str, k: int) -> RoundStats:
        return measure(real, synthetic, schema, arm, k, embeddings=text_embeddings,
                       real_embeddings=real_emb)

    anchor = real.sample(max(2, int(anchor_fraction * n)), random_state=next(seeds))
    first = generate(real)
    start = judge(first, "replace", 0)  # both arms start from the same data
    rows = [start, replace(start, arm="accumulate")]
    last, pool = first, [anchor, first]
    for k in range(1, rounds + 1):
        tick("generations", k - 1, rounds)
        last = generate(last)
        rows.append(judge(last, "replace", k))
        grown = generate(pd.concat(pool, ignore_index=True))
        pool.append(grown)
        rows.append(judge(grown, "accumulate", k))
    tick("generations", rounds, rounds)
    return RoundsResult(tuple(rows), float(epsilon), factory.name, 1 + rounds, reference)


def rounds_html(result: RoundsResult, title: str = "Tails and diversity across rounds") -> str:
    """A self-contained HTML page with one chart per measure (both arms)."""
    from html import escape

    from dpsynth.release._svg import line_chart

    labels = [str(r.round) for r in result.rows if r.arm == "replace"]
    ref = result.text_reference
    names = {"category_coverage": "share of real categories produced",
             "rare_coverage": f"share of rare categories (< {RARE_SHARE:.0%}) produced",
             "tail_mass": "numeric tail mass kept (1 = as real)",
             "tvd_2way": "average 2-way TVD to the real rows",
             "self_bleu": "self-BLEU of the text (higher: less diverse; real text "
                          f"{ref.get('self_bleu', float('nan')):.3f})",
             "distinct_2": "distinct-2 of the text (lower: less diverse; real text "
                           f"{ref.get('distinct_2', float('nan')):.3f})",
             "mauve": "MAUVE against the real text (1 = indistinguishable)",
             "embedding_coverage": "share of the real texts' embedding neighbourhoods "
                                   "covered"}
    shown = [m for m in result.metrics  # with text, skip what was not measured (a corpus
             if not result.has_text  # has no 2-way TVD; no MAUVE without embeddings)
             or any(v == v for v in result.series("replace", m))]
    charts = "".join(line_chart(names[m], labels, {
        "replace (synthetic only)": _clean(result.series("replace", m)),
        "accumulate (real anchor + synthetic)": _clean(result.series("accumulate", m))},
        y_label=m) for m in shown)
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
            f"</title></head><body style='font-family:system-ui,sans-serif'><h1>"
            f"{escape(title)}</h1><p>{escape(result.warning())}</p><p>Generator "
            f"{escape(result.synthesizer)} at ε = {result.epsilon:g} per fit; x axis: "
            "generation (0 = fitted on the real rows). The figures read the real rows without "
            f"noise: epsilon does not cover them.</p>{charts}</body></html>\n")


def _clean(values: Sequence[float]) -> list[float]:
    return [0.0 if v != v else float(v) for v in values]


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


__all__ = ["METRICS", "TEXT_METRICS", "RoundStats", "RoundsResult", "default_generator",
           "evaluate_rounds", "measure", "rounds_html"]
