"""Copies of training records in the synthetic data, against the chance level of controls.

A generator that leaks part of its training table verbatim (say 1 % of the rows copied among
otherwise safe ones) hardly moves average-case attacks, but each copied row is a disclosure.
Two attacks look for copies directly; both are scored, like every attack, against controls
from the holdout, so a table in which identical rows are common by chance (a few
low-cardinality columns, where most rows have a twin) does not raise an alarm: the controls
have as many chance copies as the members.

* :func:`exact_copies` claims a target when some synthetic row equals it on every audited
  column (after the audit's coding: category codes and numbers, nulls equal to nulls).
* :func:`near_copies` claims a target when the nearest synthetic row is much closer to it
  than its nearest holdout neighbour: ``DCR(x) < ratio * d_holdout(x)`` (leaving a control out
  of its own neighbourhood). This is the holdout-based distance test of Platzer & Reutterer
  ("Holdout-Based Empirical Assessment of Mixed-Type Synthetic Data", Frontiers in Big Data
  2021), run as an attack with the holdout as the yardstick of what the population alone
  explains; a ``ratio`` well below 1 keeps the chance rate low, so a few jittered copies stand
  out. A target with a holdout twin (``d_holdout = 0``) cannot be claimed: chance explains it.

A copy is direct evidence, not a statistical hint, so these attacks flag any excess of copies
over the control rate: their default ``threshold`` is 0, and the verdict needs the lower end
of the risk interval above it.
"""

from __future__ import annotations

import numpy as np

from dpsynth._util.progress import ProgressFn
from dpsynth.attacks.membership import expect_goal
from dpsynth.attacks.result import AttackResult, check_rule, exposed_ids, score_attack
from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import param_error

#: The verdict threshold of the copy attacks: any excess over the controls' rate.
COPY_THRESHOLD = 0.0


def _row_keys(values: np.ndarray) -> np.ndarray:
    """One hashable key per row of coded values (NaN equal to NaN, -0.0 equal to 0.0)."""
    coded = np.where(np.isnan(values), np.inf, values + 0.0) if values.dtype.kind == "f" \
        else values
    rows = np.ascontiguousarray(coded.astype(np.float64))
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


def _row_hashes(values: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each coded row (NaN equal to NaN, -0.0 equal to 0.0)."""
    out = np.empty(len(values), dtype=np.uint64)
    for start in range(0, len(values), _CHUNK):
        block = values[start:start + _CHUNK].astype(np.float64)
        block = np.where(np.isnan(block), np.inf, block + 0.0)
        lanes = np.ascontiguousarray(block).view(np.uint64)
        key = np.zeros(len(block), dtype=np.uint64)
        for j in range(lanes.shape[1]):
            key = (key ^ lanes[:, j]) * np.uint64(0x9E3779B97F4A7C15)
            key ^= key >> np.uint64(29)
        out[start:start + len(block)] = key
    return out


_CHUNK = 1 << 16
_HASH_MIN_ROWS = 50_000


def exact_copy_hits(queries: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """For each coded row of ``queries``, whether ``synthetic`` holds an identical row.

    Large synthetic tables are hashed row by row (64 bits, in chunks); a query whose hash
    occurs is then compared with the synthetic rows of that hash, so the answer stays exact.
    """
    if len(synthetic) < _HASH_MIN_ROWS:
        return np.isin(_row_keys(queries), _row_keys(synthetic))
    syn_hash = _row_hashes(synthetic)
    order = np.argsort(syn_hash, kind="stable")
    sorted_hash = syn_hash[order]
    q_hash = _row_hashes(queries)
    lo = np.searchsorted(sorted_hash, q_hash, "left")
    hi = np.searchsorted(sorted_hash, q_hash, "right")
    hits = np.zeros(len(queries), dtype=bool)
    q_keys = _row_keys(queries)
    for i in np.flatnonzero(hi > lo):
        hits[i] = bool(np.isin(q_keys[i:i + 1], _row_keys(synthetic[order[lo[i]:hi[i]]]))[0])
    return hits


def exact_copies(data: AuditData, threat: ThreatModel | None = None, *,
                 threshold: float = COPY_THRESHOLD, confidence: float = 0.95,
                 random_state: int | np.random.Generator | None = None,
                 progress: ProgressFn | None = None) -> AttackResult:
    """Training rows reproduced exactly in the synthetic data, against holdout rows.

    Parameters
    ----------
    data:
        The audit's tables.
    threat:
        A ``membership`` threat model (default: the synthetic data only, 2000 targets).
    threshold, confidence:
        Verdict rule (see :mod:`dpsynth.attacks.result`); by default any excess of copied
        members over copied controls whose interval excludes 0 is a leak.
    random_state:
        Seed or generator for the choice of targets and the baseline.
    progress:
        Unused (the test is one hash join); accepted for the suite's common signature.
    """
    threat = threat or ThreatModel.membership()
    expect_goal(threat, "membership", "exact_copies")
    check_rule(threshold, confidence, "exact_copies")
    rng = np.random.default_rng(random_state)
    members, controls = data.balanced_targets(threat.n_targets, rng)
    hits = exact_copy_hits(data.train.values[members], data.synthetic.values)
    control_hits = exact_copy_hits(data.control.values[controls], data.synthetic.values)
    return _score("exact_copies", threat, data, members, hits, control_hits, rng, threshold,
                  confidence, {"copied_members": int(hits.sum()),
                               "copied_controls": int(control_hits.sum())})


def near_copies(data: AuditData, threat: ThreatModel | None = None, *, ratio: float = 0.2,
                threshold: float = COPY_THRESHOLD, confidence: float = 0.95,
                random_state: int | np.random.Generator | None = None,
                progress: ProgressFn | None = None) -> AttackResult:
    """Targets much closer to a synthetic row than to any holdout row (``ratio`` of it).

    A member is compared with the whole holdout; a control with the holdout less itself, so
    both arms measure closeness against (almost) the same population sample. Other parameters
    as in :func:`exact_copies`.
    """
    threat = threat or ThreatModel.membership()
    expect_goal(threat, "membership", "near_copies")
    check_rule(threshold, confidence, "near_copies")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise param_error("ratio", "a float in (0, 1]", ratio, "near_copies")
    rng = np.random.default_rng(random_state)
    members, controls = data.balanced_targets(threat.n_targets, rng)
    hold = data.control.x
    queries = np.concatenate([data.train.embed(members), hold[controls]])
    d_syn = data.synthetic.index.nearest(queries, progress=progress)[0][:, 0]
    d_mem_hold = data.control.index.nearest(data.train.embed(members))[0][:, 0]
    dist, index = data.control.index.nearest(hold[controls], k=2)
    d_ctl_hold = np.where(index[:, 0] == controls, dist[:, 1], dist[:, 0])
    m = members.size
    hits, control_hits = d_syn[:m] < ratio * d_mem_hold, d_syn[m:] < ratio * d_ctl_hold
    return _score("near_copies", threat, data, members, hits, control_hits, rng, threshold,
                  confidence, {"ratio": float(ratio), "near_copied_members": int(hits.sum()),
                               "near_copied_controls": int(control_hits.sum())})


def _score(name: str, threat: ThreatModel, data: AuditData, members: np.ndarray,
           hits: np.ndarray, control_hits: np.ndarray, rng: np.random.Generator,
           threshold: float, confidence: float,
           metrics: dict[str, float | int | str | None]) -> AttackResult:
    """The common rule; the naive baseline claims at random at the pooled rate."""
    rate = float(np.mean(np.r_[hits, control_hits]))
    baseline_hits = rng.random(hits.size) < rate
    ids = exposed_ids([data.train.ids[i] for i in members], np.flatnonzero(hits))
    return score_attack(name, threat, hits, control_hits, baseline_hits, threshold=threshold,
                        confidence=confidence, metrics=metrics, exposed_row_ids=ids)


__all__ = ["COPY_THRESHOLD", "exact_copies", "exact_copy_hits", "near_copies"]
