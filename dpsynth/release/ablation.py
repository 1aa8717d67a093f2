"""The real-anchor ablation: does adding synthetic rows to a little real data help?

The release splits its holdout (rows the generator never saw) into a small real **anchor**
and a **test** part. The downstream model (the ``target`` classifier of the utility check) is
trained on

(a) the anchor alone,
(b) the anchor plus synthetic rows at :data:`SHARES` of the anchor's size (10 % ... 500 %),
(c) the synthetic rows alone,

and each is scored (ROC-AUC) on the test part, which none of them trained on. The curve shows
whether the synthetic data adds signal to real data or only noise; the policy can require that
the best mix at least matches the anchor alone (``utility.min_anchor_gain``). This is the
"keep a real anchor, compare against a no-synthetic ablation" practice of model-collapse work
(Shumailov et al., Nature 2024; Gerstgrasser et al., 2024). Like the other evaluations, it reads
the private holdout without noise: its figures are not covered by epsilon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dpsynth.release.card_sections import _Section
from dpsynth.release.policy import Check
from dpsynth.schema import Schema

#: Synthetic rows added to the anchor, as a multiple of the anchor's size.
SHARES = (0.1, 0.3, 0.5, 1.0, 2.0, 5.0)
#: Share of the holdout that becomes the anchor (the rest is the test part).
ANCHOR_FRACTION = 0.3
#: Repetitions (fresh synthetic draws and classifier seeds) averaged per point.
REPEATS = 3
TESTED_ON = ("the holdout, split at random into a real anchor ({n_anchor} rows: training data "
             "of the ablation's models) and a test part ({n_test} rows) that no model of the "
             "ablation, and not the generator, trained on")


@dataclass(frozen=True)
class AblationPoint(_Section):
    """One point of the curve: what trained the model and its test ROC-AUC (mean of the
    repeats, with their range)."""

    label: str
    share: float | None
    n_real: int
    n_synthetic: int
    auc: float
    auc_min: float
    auc_max: float

    @classmethod
    def from_dict(cls, data: dict) -> AblationPoint:
        share = data.get("share")
        return cls(str(data["label"]), None if share is None else float(share),
                   int(data["n_real"]), int(data["n_synthetic"]), float(data["auc"]),
                   float(data["auc_min"]), float(data["auc_max"]))


@dataclass(frozen=True)
class AnchorAblation(_Section):
    """The curve, the best share of synthetic rows and the verdict."""

    target: str
    n_anchor: int
    n_test: int
    anchor_auc: float
    synthetic_only_auc: float
    best_share: float | None
    best_auc: float
    gain: float
    verdict: str
    tested_on: str
    points: tuple[AblationPoint, ...] = ()

    @classmethod
    def from_dict(cls, data: dict) -> AnchorAblation:
        best = data.get("best_share")
        return cls(str(data["target"]), int(data["n_anchor"]), int(data["n_test"]),
                   float(data["anchor_auc"]), float(data["synthetic_only_auc"]),
                   None if best is None else float(best), float(data["best_auc"]),
                   float(data["gain"]), str(data["verdict"]), str(data["tested_on"]),
                   tuple(AblationPoint.from_dict(p) for p in data.get("points") or ()))


def split_anchor(holdout: pd.DataFrame, target: str, seed: int,
                 fraction: float = ANCHOR_FRACTION) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(anchor, test)``: a random ``fraction`` of ``holdout`` and the rest, drawn so that
    each part keeps both classes of ``target`` when the holdout has them (stratified)."""
    rng = np.random.default_rng(seed)
    labels = holdout[target].astype(str).to_numpy()
    take = np.zeros(len(holdout), dtype=bool)
    for value in np.unique(labels):
        where = np.flatnonzero(labels == value)
        k = int(round(fraction * len(where)))
        k = min(max(k, 1), len(where) - 1) if len(where) > 1 else 0
        take[rng.choice(where, size=k, replace=False)] = True
    return holdout.loc[take], holdout.loc[~take]


def anchor_ablation(anchor: pd.DataFrame, test: pd.DataFrame, synthetic: pd.DataFrame,
                    schema: Schema, target: str, *, positive: object | None = None,
                    seed: int = 0, shares: Sequence[float] = SHARES,
                    repeats: int = REPEATS) -> AnchorAblation:
    """Train the ``target`` classifier on the anchor, the anchor plus synthetic rows at each
    of ``shares`` (those the synthetic rows are enough for), and the synthetic rows alone;
    score each on ``test`` (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    from dpsynth.evaluate import tstr_auc

    rng = np.random.default_rng(seed)
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=repeats)]
    usable = [s for s in shares if int(round(s * len(anchor))) <= len(synthetic)]

    def score(make: object, label: str, share: float | None, n_real: int) -> AblationPoint:
        aucs, n_syn = [], 0
        for r, s in enumerate(seeds):
            frame, n_syn = make(np.random.default_rng(s + r))  # type: ignore[operator]
            aucs.append(tstr_auc(frame, test, schema, target, positive=positive,
                                 random_state=s))
        return AblationPoint(label, share, n_real, n_syn,
                             float(np.mean(aucs)), float(min(aucs)), float(max(aucs)))

    def mix(share: float) -> object:
        n = int(round(share * len(anchor)))
        return lambda g: (pd.concat([anchor, synthetic.iloc[g.choice(len(synthetic), n,
                                                                      replace=False)]],
                                    ignore_index=True), n)

    with threadpool_limits(limits=1, user_api="openmp"):
        points = [score(lambda g: (anchor, 0), "anchor alone", 0.0, len(anchor))]
        points += [score(mix(s), f"anchor + {s:.0%} synthetic", s, len(anchor))
                   for s in usable]
        points.append(score(lambda g: (synthetic, len(synthetic)), "synthetic alone", None,
                            0))
    return _summarise(target, anchor, test, tuple(points))


def _summarise(target: str, anchor: pd.DataFrame, test: pd.DataFrame,
               points: tuple[AblationPoint, ...]) -> AnchorAblation:
    base = points[0].auc
    mixes = [p for p in points[1:-1]]
    best = max(mixes, key=lambda p: p.auc) if mixes else points[0]
    gain = best.auc - base
    if not mixes:
        verdict = "not enough synthetic rows to mix with the anchor"
    elif gain > 0.005:
        verdict = (f"synthetic rows help: anchor + {best.share:.0%} synthetic reaches ROC-AUC "
                   f"{best.auc:.3f} against {base:.3f} for the anchor alone")
    elif gain >= -0.005:
        verdict = (f"synthetic rows match the anchor alone (best {best.auc:.3f} against "
                   f"{base:.3f}): they add no measurable signal")
    else:
        verdict = (f"synthetic rows hurt: every mix scores below the anchor alone (best "
                   f"{best.auc:.3f} against {base:.3f}); prefer the real anchor")
    return AnchorAblation(target, len(anchor), len(test), base, points[-1].auc,
                          best.share if mixes else None, best.auc, gain, verdict,
                          TESTED_ON.format(n_anchor=len(anchor), n_test=len(test)), points)


def anchor_check(ablation: AnchorAblation | None, limit: float) -> Check:
    """The policy's ``utility.min_anchor_gain`` check: best mix AUC - anchor-alone AUC."""
    name, rule = "utility:anchor_gain", (f">= {limit:g} (best anchor + synthetic ROC-AUC "
                                         "minus the anchor alone's)")
    if ablation is None:
        return Check(name, "utility", None, limit, None, "no target column was given")
    return Check(name, "utility", ablation.gain, limit, ablation.gain >= limit, rule)


__all__ = ["ANCHOR_FRACTION", "SHARES", "AblationPoint", "AnchorAblation", "anchor_ablation",
           "anchor_check", "split_anchor"]
