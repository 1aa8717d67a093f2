"""Membership inference from synthetic data alone (no-box).

Two attacks, both scored against controls from the holdout:

* :func:`dcr_membership` - distance to the closest synthetic record (DCR). A training record
  that the generator memorised lies unusually close to a synthetic record. The attack claims
  membership when the DCR is at most ``tau``, a low quantile of the synthetic rows' own
  leave-one-out nearest-neighbour distances (something the attacker can compute from the
  synthetic data alone). As Yao et al. ("The DCR Delusion: Measuring the Privacy Risk of
  Synthetic Data", 2025) show, DCR *summaries* are no privacy proof; here DCR is used as a real
  attack whose success is compared with its success on controls.
* :func:`domias_membership` - DOMIAS (van Breugel, Sun, Qian & van der Schaar, "Membership
  Inference Attacks against Synthetic Data through Overfitting Detection", AISTATS 2023): the
  score is the density of the synthetic data over the density of reference data at the target,
  both estimated with Gaussian kernels in the mixed-type embedding. A ratio above one claims
  membership. ROC-AUC and TPR at FPR 1% and 0.1% are reported beside the verdict.
"""

from __future__ import annotations

import numpy as np

from dpsynth._util.progress import ProgressFn
from dpsynth.attacks.distance import NeighbourIndex
from dpsynth.attacks.result import (
    AttackResult,
    check_rule,
    exposed_ids,
    roc_curve,
    score_attack,
)
from dpsynth.attacks.stats import tpr_at_fpr
from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import param_error

_SCALE_SAMPLE = 2000


def expect_goal(threat: ThreatModel, goal: str, owner: str) -> None:
    if threat.goal != goal:
        raise param_error("threat.goal", repr(goal), threat.goal, owner)


def leave_one_out_distances(x: np.ndarray, rng: np.random.Generator,
                            n: int = _SCALE_SAMPLE,
                            index: NeighbourIndex | None = None) -> np.ndarray:
    """Distances from a sample of rows of ``x`` to their nearest *other* row of ``x``
    (``index``: an index over ``x``, reused when given)."""
    rows = np.sort(rng.choice(len(x), size=min(n, len(x)), replace=False))
    dist, index_ = (index or NeighbourIndex(x)).nearest(x[rows], k=2)
    own_first = index_[:, 0] == rows
    return np.where(own_first, dist[:, 1], dist[:, 0])


def _score_membership(name: str, threat: ThreatModel, data: AuditData, members: np.ndarray,
                      member_scores: np.ndarray, control_scores: np.ndarray, cut: float,
                      rng: np.random.Generator, threshold: float, confidence: float,
                      metrics: dict[str, float | int | str | None]) -> AttackResult:
    """Claims are ``score > cut``; the naive baseline claims at random at the same rate."""
    hits, control_hits = member_scores > cut, control_scores > cut
    rate = float(np.mean(np.r_[hits, control_hits]))
    baseline_hits = rng.random(hits.size) < rate
    roc, fpr, tpr = roc_curve(member_scores, control_scores, confidence)
    n_controls = control_scores.size
    metrics = {
        "auc": roc.auc, "auc_ci_low": roc.auc_ci[0], "auc_ci_high": roc.auc_ci[1],
        "tpr_at_fpr_1pct": tpr_at_fpr(fpr, tpr, 0.01, n_controls),
        "tpr_at_fpr_0.1pct": tpr_at_fpr(fpr, tpr, 0.001, n_controls),
        "n_controls": int(n_controls), **metrics,
    }
    claimed = np.flatnonzero(hits)
    order = claimed[np.argsort(-member_scores[claimed], kind="stable")]
    ids = exposed_ids([data.train.ids[i] for i in members], order)
    return score_attack(name, threat, hits, control_hits, baseline_hits, threshold=threshold,
                        confidence=confidence, metrics=metrics, roc=roc, exposed_row_ids=ids)


def dcr_membership(data: AuditData, threat: ThreatModel | None = None, *,
                   quantile: float = 0.1, threshold: float = 0.05, confidence: float = 0.95,
                   random_state: int | np.random.Generator | None = None,
                   progress: ProgressFn | None = None) -> AttackResult:
    """Membership inference by distance to the closest synthetic record.

    Parameters
    ----------
    data:
        The audit's tables.
    threat:
        A ``membership`` threat model (default: the synthetic data only, 2000 targets).
    quantile:
        The claim cut ``tau`` is this quantile of the synthetic rows' leave-one-out
        nearest-neighbour distances; targets with DCR <= ``tau`` are claimed members.
    threshold, confidence:
        Verdict rule (see :mod:`dpsynth.attacks.result`).
    random_state:
        Seed or generator for the choice of targets and the baseline.
    """
    threat = threat or ThreatModel.membership()
    expect_goal(threat, "membership", "dcr_membership")
    check_rule(threshold, confidence, "dcr_membership")
    if not 0 < quantile < 1:
        raise param_error("quantile", "a float in (0, 1)", quantile, "dcr_membership")
    rng = np.random.default_rng(random_state)
    members, controls = data.balanced_targets(threat.n_targets, rng)
    queries = np.concatenate([data.train.embed(members), data.control.embed(controls)])
    dcr = data.synthetic.index.nearest(queries, progress=progress)[0][:, 0]
    tau = float(np.quantile(leave_one_out_distances(data.synthetic.x, rng,
                                                    index=data.synthetic.index), quantile))
    d_mem, d_ctl = dcr[: members.size], dcr[members.size:]
    # score = -DCR; "DCR <= tau" is "score > -tau" up to the tie at tau, resolved with nextafter
    cut = -float(np.nextafter(tau, np.inf))
    metrics: dict[str, float | int | str | None] = {
        "tau": tau, "quantile": quantile,
        "exact_copies_members": float(np.mean(d_mem == 0)),
        "exact_copies_controls": float(np.mean(d_ctl == 0)),
        "median_dcr_members": float(np.median(d_mem)),
        "median_dcr_controls": float(np.median(d_ctl)),
    }
    return _score_membership("dcr_membership", threat, data, members, -d_mem, -d_ctl, cut, rng,
                             threshold, confidence, metrics)


def domias_membership(data: AuditData, threat: ThreatModel | None = None, *,
                      bandwidth: float | None = None, quantile: float = 0.1,
                      threshold: float = 0.05,
                      confidence: float = 0.95,
                      random_state: int | np.random.Generator | None = None,
                      progress: ProgressFn | None = None) -> AttackResult:
    """Density-ratio membership inference (DOMIAS, van Breugel et al., AISTATS 2023).

    The score of a record is ``log p_syn(x) - log p_ref(x)``, with Gaussian kernel density
    estimates over the synthetic rows and over reference rows (the given reference table, or
    half of the holdout, the other half serving as controls). Scores above 0 claim membership.

    Parameters
    ----------
    bandwidth:
        Kernel bandwidth in the embedding; default: the ``quantile`` of the positive
        leave-one-out nearest-neighbour distances among synthetic rows, small enough for the
        kernel to resolve near-copies (a wide kernel averages a memorised record away).
    quantile:
        Used for the default bandwidth only.
    """
    threat = threat or ThreatModel.membership(reference=True)
    expect_goal(threat, "membership", "domias_membership")
    check_rule(threshold, confidence, "domias_membership")
    if bandwidth is not None and not bandwidth > 0:
        raise param_error("bandwidth", "a float > 0 or None", bandwidth, "domias_membership")
    if not 0 < quantile < 1:
        raise param_error("quantile", "a float in (0, 1)", quantile, "domias_membership")
    rng = np.random.default_rng(random_state)
    data = data.with_reference(rng)
    assert data.reference is not None
    members, controls = data.balanced_targets(threat.n_targets, rng)
    if bandwidth is None:
        loo = leave_one_out_distances(data.synthetic.x, rng, index=data.synthetic.index)
        positive = loo[loo > 0]
        bandwidth = float(np.quantile(positive, quantile)) if positive.size else 1.0
    queries = np.concatenate([data.train.embed(members), data.control.embed(controls)])
    half = None if progress is None else (lambda done, total: progress(done, 2 * total))
    rest = None if progress is None else (lambda done, total: progress(total + done, 2 * total))
    log_syn = data.synthetic.index.log_density(queries, bandwidth, progress=half)
    log_ref = data.reference.index.log_density(queries, bandwidth, progress=rest)
    score = log_syn - log_ref
    metrics: dict[str, float | int | str | None] = {
        "bandwidth": bandwidth, "quantile": quantile, "n_reference": len(data.reference),
    }
    return _score_membership("domias_membership", threat, data, members, score[: members.size],
                             score[members.size:], 0.0, rng, threshold, confidence, metrics)
