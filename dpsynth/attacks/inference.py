"""Attribute inference: guessing a target's secret column from its other columns.

The attacker knows every audited column of the target except ``secret``; it finds the nearest
synthetic rows on the known columns and guesses their secret value (the majority category, or
the median number). A guess is right when it equals the true category, or lies within
``tolerance`` times the column's robust range of the true number (Giomi et al., "A Unified
Framework for Quantifying Privacy Risk in Synthetic Data", PoPETs 2023). Controls show how well
the secret can be guessed from the population's correlations alone - that part is inference
about the population, not a leak about the individual; only the excess on training targets is.
A naive attacker guesses the secret of a random synthetic row.
"""

from __future__ import annotations

import numpy as np

from dpsynth._util.progress import ProgressFn
from dpsynth.attacks.distance import NeighbourIndex
from dpsynth.attacks.membership import expect_goal
from dpsynth.attacks.result import AttackResult, check_rule, score_attack
from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import ParameterError, param_error


def _guess(neighbour_values: np.ndarray, categorical: bool) -> np.ndarray:
    """One guess per row from the secret values of its neighbours (rows of the input)."""
    if neighbour_values.shape[1] == 1:
        return neighbour_values[:, 0]
    if not categorical:
        return np.asarray(np.nanmedian(neighbour_values, axis=1))
    guesses = np.empty(len(neighbour_values))
    for i, row in enumerate(neighbour_values):
        values, counts = np.unique(row, return_counts=True)
        guesses[i] = values[np.argmax(counts)]  # ties go to the lower code
    return guesses


def _correct(guess: np.ndarray, truth: np.ndarray, categorical: bool, tol: float) -> np.ndarray:
    if categorical:
        return np.asarray(guess == truth)
    both_missing = np.isnan(guess) & np.isnan(truth)
    with np.errstate(invalid="ignore"):
        close = np.abs(guess - truth) <= tol
    return np.asarray(both_missing | close)


def _checked(data: AuditData, threat: ThreatModel | None, secret: str | None,
             n_neighbors: int, tolerance: float) -> ThreatModel:
    """The threat model (built from ``secret`` when not given), after checking every
    parameter; raises one :class:`ParameterError` naming every problem."""
    if threat is None:
        if secret is None:
            raise param_error("secret", "a column name (or a threat model naming one)", secret,
                              "attribute_inference")
        threat = ThreatModel.attribute_inference(secret)
    expect_goal(threat, "attribute_inference", "attribute_inference")
    problems = []
    if threat.secret not in data.columns:
        problems.append(str(param_error("secret", f"an audited column among {list(data.columns)}",
                                        threat.secret, "attribute_inference")))
    elif len(data.columns) < 2:
        problems.append("attribute inference needs at least one column besides the secret")
    if not (isinstance(n_neighbors, int) and 1 <= n_neighbors <= len(data.synthetic)):
        problems.append(str(param_error("n_neighbors", "an integer in [1, n_synthetic]",
                                        n_neighbors, "attribute_inference")))
    if not 0 <= tolerance < 1:
        problems.append(str(param_error("tolerance", "a float in [0, 1)", tolerance,
                                        "attribute_inference")))
    if problems:
        raise ParameterError(" ".join(problems))
    return threat


def attribute_inference(data: AuditData, threat: ThreatModel | None = None, *,
                        secret: str | None = None, n_neighbors: int = 1,
                        tolerance: float = 0.05, threshold: float = 0.05,
                        confidence: float = 0.95,
                        random_state: int | np.random.Generator | None = None,
                        progress: ProgressFn | None = None) -> AttackResult:
    """Attribute inference attack on a categorical or numeric secret column.

    Parameters
    ----------
    threat:
        An ``attribute_inference`` threat model naming the secret; built from ``secret`` when
        not given.
    secret:
        The secret column, when ``threat`` is not given.
    n_neighbors:
        Synthetic neighbours consulted per guess.
    tolerance:
        For a numeric secret, the largest error counted as right, as a fraction of the
        column's robust range.
    """
    threat = _checked(data, threat, secret, n_neighbors, tolerance)
    check_rule(threshold, confidence, "attribute_inference")
    assert threat.secret is not None
    rng = np.random.default_rng(random_state)
    j = data.columns.index(threat.secret)
    coding = data.encoder.codings_[j]
    categorical = coding.kind == "categorical"
    tol = tolerance * coding.scale
    known = data.encoder.feature_index([c for c in data.columns if c != threat.secret])
    members, controls = data.balanced_targets(threat.n_targets, rng)
    syn_index = NeighbourIndex(data.synthetic.x, known)
    syn_secret = data.synthetic.values[:, j]

    def attack(part_values: np.ndarray, part_x: np.ndarray) -> np.ndarray:
        _, idx = syn_index.nearest(part_x[:, known], k=n_neighbors, progress=progress)
        return _correct(_guess(syn_secret[idx], categorical), part_values[:, j], categorical,
                        tol)

    hits = attack(data.train.values[members], data.train.embed(members))
    control_hits = attack(data.control.values[controls], data.control.embed(controls))
    naive = syn_secret[rng.integers(len(syn_secret), size=members.size)]
    baseline_hits = _correct(naive, data.train.values[members, j], categorical, tol)
    metrics: dict[str, float | int | str | None] = {
        "secret": threat.secret, "secret_kind": coding.kind, "n_neighbors": n_neighbors,
        "tolerance": None if categorical else tolerance,
    }
    return score_attack(f"attribute_inference[{threat.secret}]", threat, hits, control_hits,
                        baseline_hits, threshold=threshold, confidence=confidence,
                        metrics=metrics)
