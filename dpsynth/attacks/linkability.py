"""Linkability: joining two auxiliary sources about the same people through the synthetic data.

The attacker holds two tables about the same individuals, one with columns ``A`` and one with
columns ``B`` (the target's record split in two), and no key to join them. For each target it
looks up the ``k`` synthetic rows nearest to the ``A`` part and the ``k`` nearest to the ``B``
part; it links the two parts when the sets share a synthetic row (Giomi et al., "A Unified
Framework for Quantifying Privacy Risk in Synthetic Data", PoPETs 2023). Controls are split and
linked the same way; a naive attacker picks ``k`` synthetic rows at random for each part.
"""

from __future__ import annotations

import numpy as np

from dpsynth._util.progress import ProgressFn
from dpsynth.attacks.distance import NeighbourIndex
from dpsynth.attacks.membership import expect_goal
from dpsynth.attacks.result import AttackResult, check_rule, exposed_ids, score_attack
from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import param_error


def default_split(columns: tuple[str, ...],
                  rng: np.random.Generator) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A random split of the columns into two halves (the first gets the extra column)."""
    order = rng.permutation(len(columns))
    half = (len(columns) + 1) // 2
    first = tuple(columns[i] for i in np.sort(order[:half]))
    second = tuple(columns[i] for i in np.sort(order[half:]))
    return first, second


def _linked(indexes: tuple[NeighbourIndex, NeighbourIndex], x: np.ndarray,
            feats: tuple[np.ndarray, np.ndarray], k: int,
            progress: ProgressFn | None) -> np.ndarray:
    _, idx_a = indexes[0].nearest(x[:, feats[0]], k=k, progress=progress)
    _, idx_b = indexes[1].nearest(x[:, feats[1]], k=k, progress=progress)
    return np.asarray((idx_a[:, :, None] == idx_b[:, None, :]).any(axis=(1, 2)))


def linkability(data: AuditData, threat: ThreatModel | None = None, *, n_neighbors: int = 1,
                threshold: float = 0.05, confidence: float = 0.95,
                random_state: int | np.random.Generator | None = None,
                progress: ProgressFn | None = None) -> AttackResult:
    """Linkability attack (Giomi et al., PoPETs 2023).

    Parameters
    ----------
    threat:
        A ``linkability`` threat model; its ``aux_columns`` are the two sources' columns
        (default: a random split of the audited columns into halves).
    n_neighbors:
        Synthetic rows looked up per part; a link needs one in common.
    """
    threat = threat or ThreatModel.linkability()
    expect_goal(threat, "linkability", "linkability")
    check_rule(threshold, confidence, "linkability")
    limit = len(data.synthetic)
    if not (isinstance(n_neighbors, int) and 1 <= n_neighbors <= limit):
        raise param_error("n_neighbors", f"an integer in [1, {limit}]", n_neighbors,
                          "linkability")
    if len(data.columns) < 2:
        raise param_error("data", "a table with at least two audited columns",
                          list(data.columns), "linkability")
    rng = np.random.default_rng(random_state)
    aux = threat.aux_columns or default_split(data.columns, rng)
    feats = (data.encoder.feature_index(aux[0]), data.encoder.feature_index(aux[1]))
    members, controls = data.balanced_targets(threat.n_targets, rng)
    syn = data.synthetic.x
    indexes = (NeighbourIndex(syn, feats[0]), NeighbourIndex(syn, feats[1]))
    hits = _linked(indexes, data.train.embed(members), feats, n_neighbors, progress)
    control_hits = _linked(indexes, data.control.embed(controls), feats, n_neighbors, progress)
    guess_a = rng.integers(limit, size=(members.size, n_neighbors))
    guess_b = rng.integers(limit, size=(members.size, n_neighbors))
    baseline_hits = (guess_a[:, :, None] == guess_b[:, None, :]).any(axis=(1, 2))
    ids = exposed_ids([data.train.ids[i] for i in members], np.flatnonzero(hits))
    return score_attack("linkability", threat, hits, control_hits, baseline_hits,
                        threshold=threshold, confidence=confidence,
                        metrics={"n_neighbors": n_neighbors,
                                 "source_a": ", ".join(aux[0]), "source_b": ", ".join(aux[1])},
                        exposed_row_ids=ids)
