"""Adaptive selection of marginals (AIM) and maximum-spanning-tree selection (MST).

AIM (McKenna, Mullins, Sheldon and Miklau, "AIM: An Adaptive and Iterative Mechanism for
Differentially Private Synthetic Data", VLDB 2022) picks, in each round, the candidate
marginal whose current model estimate is worst, with the exponential mechanism on the score
``w_r * (||M_r(data) - M_r(model)||_1 - sqrt(2/pi) * sigma * cells_r)``: the expected L1 error
that measuring it would remove, less the noise it would add, weighted by how much of the
workload it covers. The sensitivity of the score is ``max_r w_r``. Only candidates that keep
the junction tree within a share of the model-size cap that grows with the budget used are
eligible. MST (McKenna, Miklau and Sheldon, JPC 2021) picks a spanning tree of attribute
pairs, each edge by the exponential mechanism on the L1 error of the independence model.

Here the number of rounds and the noise are fixed in advance (see
:mod:`~dpsynth.synthesizers.marginal.plan`): AIM's data-dependent annealing of the noise is
left out, so the accounted events are exactly the planned ones.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dpsynth.accounting import NoiseSource
from dpsynth.synthesizers.marginal.estimate import FittedModel
from dpsynth.synthesizers.marginal.junction import Clique, cells, model_size


def exponential_mechanism(scores: np.ndarray, epsilon: float, sensitivity: float,
                          noise: NoiseSource | None) -> int:
    """Index drawn with probability ∝ ``exp(epsilon * score / (2 * sensitivity))``.

    McSherry and Talwar, FOCS 2007; sampled with the Gumbel-max trick. ``noise=None`` is the
    non-private argmax of the reference fit.
    """
    if noise is None:
        return int(np.argmax(scores))
    logits = epsilon * (scores - scores.max()) / (2.0 * sensitivity)
    return int(np.argmax(logits + noise.gumbel(len(scores))))


def workload_cliques(d: int, degree: int) -> list[Clique]:
    """All ``degree``-way marginals of ``d`` attributes (fewer when ``d < degree``)."""
    return [tuple(c) for c in itertools.combinations(range(d), min(degree, d))]


def candidates(workload: Sequence[Clique]) -> dict[Clique, float]:
    """The downward closure of the workload with AIM's weights ``sum_W |r ∩ W|``."""
    closure = {tuple(s) for w in workload for k in range(1, len(w) + 1)
               for s in itertools.combinations(w, k)}
    return {r: float(sum(len(set(r) & set(w)) for w in workload)) for r in sorted(closure)}


@dataclass(frozen=True)
class SizeFilter:
    """Eligibility under the model-size cap for one round (the model's tree is fixed)."""

    domain: tuple[int, ...]
    model_cliques: tuple[Clique, ...]
    current: int

    def size_with(self, r: Clique) -> int:
        if any(set(r) <= set(c) for c in self.model_cliques):
            return self.current
        return model_size(self.domain, [*self.model_cliques, r])


def aim_scores(cands: dict[Clique, float], answers: dict[Clique, np.ndarray],
               model: FittedModel, total: float, sigma: float,
               eligible: Sequence[Clique]) -> np.ndarray:
    """AIM's quality score of each eligible candidate (private: uses the true answers)."""
    bias = math.sqrt(2.0 / math.pi) * sigma
    estimates = model.project_many(eligible)
    out = np.empty(len(eligible))
    for i, r in enumerate(eligible):
        err = float(np.abs(answers[r] - total * estimates[r]).sum())
        out[i] = cands[r] * (err - bias * cells(model.domain, r))
    return out


def eligible_candidates(cands: dict[Clique, float], model: FittedModel,
                        cap: float) -> list[Clique]:
    """Candidates whose addition keeps the junction tree within ``cap`` cells."""
    flt = SizeFilter(model.domain, model.tree.cliques, model.tree.size(model.domain))
    return [r for r in cands if flt.size_with(r) <= cap]


def mst_edges(codes_pairs_error: dict[tuple[int, int], float], d: int, epsilon: float,
              noise: NoiseSource | None) -> list[tuple[int, int]]:
    """A spanning tree of ``d`` attributes, each edge chosen by the exponential mechanism.

    Kruskal's algorithm where the heaviest edge between two components is replaced by an
    exponential-mechanism draw over all such edges (sensitivity 1: one row moves an L1 error
    by at most one).
    """
    comp = list(range(d))
    chosen: list[tuple[int, int]] = []
    for _ in range(d - 1):
        options = [e for e in codes_pairs_error if comp[e[0]] != comp[e[1]]]
        if not options:
            break
        scores = np.array([codes_pairs_error[e] for e in options])
        a, b = options[exponential_mechanism(scores, epsilon, 1.0, noise)]
        chosen.append((a, b))
        old, new = comp[b], comp[a]
        comp = [new if c == old else c for c in comp]
    return chosen
