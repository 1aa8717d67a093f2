"""Rare-record exposure: the most vulnerable records, each tested against its control twin.

Average-case attacks can miss a generator that copies its outliers. Following Meeus, Guépin,
Creţu & de Montjoye ("Achilles' Heels: Vulnerable Record Identification in Synthetic Data
Publishing", ESORICS 2023), the auditor ranks real records by their mean distance to their
``k`` nearest real neighbours and attacks the most outlying ones. Training and holdout records
are ranked in one pool (of equal parts, so the ranking treats both alike), and the ``i``-th most
vulnerable training record is paired with the ``i``-th most vulnerable holdout record: its
control twin.

A record is claimed exposed when some synthetic row is much closer to it than any other real
record is: ``DCR(x) <= ratio * d_real(x)``, with ``d_real`` the distance to the nearest other
real record. An outlier that the generator did not see has no reason to get a synthetic
near-copy; one that it memorised does. Pairs are compared with a paired interval.

On large tables the ranking runs on a random sample of ``max_rows`` training rows and as many
holdout rows (the most vulnerable of the sample stand for the most vulnerable of the table);
each chosen record is still searched for in the whole synthetic table.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from dpsynth._util.progress import ProgressFn
from dpsynth.attacks.distance import nearest
from dpsynth.attacks.membership import expect_goal
from dpsynth.attacks.result import AttackResult, check_rule, exposed_ids, score_attack
from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import ParameterError, param_error


def vulnerability(x: np.ndarray, rng: np.random.Generator, *, n_neighbors: int = 5,
                  pool_size: int = 10_000,
                  progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Meeus et al.'s vulnerability score and the distance to the nearest other record.

    Distances are taken to a random subsample of at most ``pool_size`` rows of ``x`` (all of
    them when ``x`` is smaller), leaving each row's own copy out.

    Returns
    -------
    score : ndarray
        Mean distance to the ``n_neighbors`` nearest other rows.
    nearest_other : ndarray
        Distance to the nearest other row.
    """
    pool = np.sort(rng.choice(len(x), size=min(pool_size, len(x)), replace=False))
    k = min(n_neighbors, len(pool) - 1)
    dist, idx = nearest(x, x[pool], k=k + 1, progress=progress)
    is_self = pool[idx] == np.arange(len(x))[:, None]
    keep = ~is_self
    keep[~is_self.any(axis=1), k] = False  # not in the pool: drop the farthest instead
    kept = dist[keep].reshape(len(x), k)
    return kept.mean(axis=1), kept[:, 0]


def _check_params(n_neighbors: int, ratio: float, pool_size: int,
                  max_rows: int | None = None) -> None:
    """Raise one :class:`ParameterError` naming every bad parameter of :func:`rare_records`."""
    problems = []
    if not (isinstance(n_neighbors, int) and n_neighbors >= 1):
        problems.append(str(param_error("n_neighbors", "an integer >= 1", n_neighbors,
                                        "rare_records")))
    if not 0 < ratio <= 1:
        problems.append(str(param_error("ratio", "a float in (0, 1]", ratio, "rare_records")))
    if not (isinstance(pool_size, int) and pool_size >= 2):
        problems.append(str(param_error("pool_size", "an integer >= 2", pool_size,
                                        "rare_records")))
    if max_rows is not None and not (isinstance(max_rows, int) and max_rows >= 2):
        problems.append(str(param_error("max_rows", "an integer >= 2 or None", max_rows,
                                        "rare_records")))
    if problems:
        raise ParameterError(" ".join(problems))


def rare_records(data: AuditData, threat: ThreatModel | None = None, *, n_neighbors: int = 5,
                 ratio: float = 0.2, pool_size: int = 10_000,
                 max_rows: int | None = 20_000, threshold: float = 0.05,
                 confidence: float = 0.95,
                 random_state: int | np.random.Generator | None = None,
                 progress: ProgressFn | None = None) -> AttackResult:
    """Rare-record exposure, each vulnerable training record against its control twin.

    Parameters
    ----------
    threat:
        A ``membership`` threat model; ``n_targets`` is the number of vulnerable pairs
        (default 50: Meeus et al. attack the top 1% of records).
    n_neighbors:
        ``k`` of the vulnerability score (Meeus et al. use 5).
    ratio:
        A record is claimed exposed when its DCR is at most ``ratio`` times the distance to the
        nearest other real record (0.2: a synthetic row five times closer than any other real
        record is hard to explain without the record itself).
    pool_size:
        Real rows the vulnerability score is measured against (a random subsample beyond it).
    max_rows:
        Training rows ranked (and as many holdout rows): a random sample beyond it; ``None``
        ranks every row. Below it the ranking covers the smaller table whole.
    """
    threat = threat or ThreatModel.membership(50, reference=True, targets="vulnerable")
    expect_goal(threat, "membership", "rare_records")
    check_rule(threshold, confidence, "rare_records")
    _check_params(n_neighbors, ratio, pool_size, max_rows)
    rng = np.random.default_rng(random_state)
    whole = len(data.train) + len(data.control)
    members, controls = data.balanced_targets(whole if max_rows is None else max_rows, rng)
    m = members.size
    real = np.concatenate([data.train.embed(members), data.control.embed(controls)])
    score, d_real = vulnerability(real, rng, n_neighbors=n_neighbors, pool_size=pool_size,
                                  progress=progress)
    n_pairs = min(threat.n_targets, m)
    top_members = np.argsort(-score[:m], kind="stable")[:n_pairs]
    top_controls = m + np.argsort(-score[m:], kind="stable")[:n_pairs]
    chosen = np.concatenate([top_members, top_controls])
    dcr = data.synthetic.index.nearest(real[chosen])[0][:, 0]
    exposure = dcr / np.maximum(d_real[chosen], 1e-12)
    claims = exposure <= ratio
    hits, control_hits = claims[:n_pairs], claims[n_pairs:]
    baseline_hits = rng.random(n_pairs) < claims.mean()
    member_only = int(np.sum(hits & ~control_hits))
    twin_only = int(np.sum(~hits & control_hits))
    sign_p = (float(stats.binomtest(member_only, member_only + twin_only, 0.5,
                                    alternative="greater").pvalue)
              if member_only + twin_only else 1.0)
    flagged = np.flatnonzero(hits & ~control_hits)
    order = flagged[np.argsort(exposure[:n_pairs][flagged], kind="stable")]
    ids = exposed_ids([data.train.ids[members[i]] for i in top_members], order)
    metrics: dict[str, float | int | str | None] = {
        "n_pairs": n_pairs, "n_ranked": m, "n_neighbors": n_neighbors, "ratio": ratio,
        "pairs_member_only": member_only, "pairs_twin_only": twin_only,
        "sign_test_p": sign_p,
        "mean_vulnerability_members": float(score[top_members].mean()),
        "mean_vulnerability_controls": float(score[top_controls].mean()),
    }
    return score_attack("rare_records", threat, hits, control_hits, baseline_hits,
                        threshold=threshold, confidence=confidence, paired=True,
                        metrics=metrics, exposed_row_ids=ids)
