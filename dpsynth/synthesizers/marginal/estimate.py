"""Estimate a graphical model consistent with noisy marginals (Private-PGM).

Among distributions whose marginals minimise the weighted squared error to the noisy
measurements, the one of maximum entropy is a graphical model whose cliques are the measured
attribute sets (McKenna, Sheldon and Miklau, "Graphical-model based estimation and inference
for differential privacy", ICML 2019). It is found by entropic mirror descent on the marginal
polytope: each step moves the log-potentials against the gradient of the loss with respect to
the marginals, and belief propagation on a junction tree maps potentials back to marginals.
The step size follows an Armijo backtracking rule, and Nesterov momentum with adaptive
restarts makes it several times faster than plain mirror descent (measured on Adult: the
loss plain descent reaches in 1,600 belief propagations takes about 250). Everything here is
post-processing of the measurements: it never sees the private rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dpsynth.synthesizers.marginal.junction import Clique, JunctionTree, build_junction_tree
from dpsynth.synthesizers.marginal.measure import Measurement
from dpsynth.synthesizers.marginal.model import add_many, calibrate, project, sample, sum_many

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Measurements of one attribute set combined: ``0.5 * sum(weight * (mu - mean)**2)``."""

    attrs: Clique
    mean: np.ndarray
    weight: np.ndarray | float


def combine(measurements: Iterable[Measurement], total: float) -> list[Target]:
    """Inverse-variance combination of measurements of the same attributes, as probabilities."""
    acc: dict[Clique, tuple[np.ndarray | float, np.ndarray]] = {}
    for m in measurements:
        w_arr = (total / np.asarray(m.std, dtype=float)) ** 2
        w: np.ndarray | float = float(w_arr) if w_arr.ndim == 0 else w_arr
        wy = w * (m.values / total)
        if m.attrs in acc:
            w0, wy0 = acc[m.attrs]
            acc[m.attrs] = (w0 + w, wy0 + wy)
        else:
            acc[m.attrs] = (w, wy)
    return [Target(a, wy / w, w) for a, (w, wy) in acc.items()]


@dataclass(frozen=True)
class FittedModel:
    """Log-potentials per measured attribute set and the calibrated clique marginals."""

    domain: tuple[int, ...]
    tree: JunctionTree
    theta: Mapping[Clique, np.ndarray]
    marginals: tuple[np.ndarray, ...] = field(repr=False)
    step: float = 0.0

    def project(self, attrs: Clique) -> np.ndarray:
        """Model marginal over ``attrs`` (probabilities)."""
        return project(self.tree, self.domain, self.marginals, attrs)

    def project_many(self, sets: Iterable[Clique]) -> dict[Clique, np.ndarray]:
        """Model marginals of many attribute sets, sharing sums within each clique."""
        homes = {r: self.tree.home(r) for r in sets}
        inside = {r: h for r, h in homes.items() if h >= 0}
        out = _target_marginals(self.tree, self.domain, self.marginals, inside)
        out.update({r: self.project(r) for r, h in homes.items() if h < 0})
        return out

    def sample(self, n_rows: int, rng: np.random.Generator) -> np.ndarray:
        return sample(self.tree, self.domain, self.marginals, n_rows, rng)


def model_from_theta(domain: Sequence[int], theta: Mapping[Clique, np.ndarray],
                     extra: Iterable[Clique] = (), step: float = 0.0) -> FittedModel:
    """Build the junction tree of ``theta``'s attribute sets and calibrate it."""
    domain = tuple(int(s) for s in domain)
    tree = build_junction_tree(domain, [*theta, *extra])
    homes = {a: tree.home(a) for a in theta}
    return FittedModel(domain, tree, dict(theta),
                       tuple(calibrate(tree, domain, _log_potentials(tree, domain, theta, homes))),
                       step)


def _log_potentials(tree: JunctionTree, domain: Sequence[int],
                    theta: Mapping[Clique, np.ndarray], homes: Mapping[Clique, int]
                    ) -> list[np.ndarray]:
    parts: list[list[tuple[Clique, np.ndarray]]] = [[] for _ in tree.cliques]
    for attrs, t in theta.items():
        parts[homes[attrs]].append((attrs, t))
    return [np.zeros([domain[a] for a in c]) + (add_many(c, p, domain) if p else 0.0)
            for c, p in zip(tree.cliques, parts, strict=True)]


def _target_marginals(tree: JunctionTree, domain: Sequence[int], marg: Sequence[np.ndarray],
                      homes: Mapping[Clique, int]) -> dict[Clique, np.ndarray]:
    wanted: list[list[Clique]] = [[] for _ in tree.cliques]
    for attrs, h in homes.items():
        wanted[h].append(attrs)
    out: dict[Clique, np.ndarray] = {}
    for c, (attrs, w) in enumerate(zip(tree.cliques, wanted, strict=True)):
        if w:
            out.update(sum_many(marg[c], attrs, w, domain))
    return out


def _loss(targets: Sequence[Target], mus: Sequence[np.ndarray]) -> tuple[float, list[np.ndarray]]:
    loss, grads = 0.0, []
    for t, mu in zip(targets, mus, strict=True):
        diff = mu - t.mean
        g = t.weight * diff
        loss += 0.5 * float(np.sum(g * diff))
        grads.append(g)
    return loss, grads


#: (clique marginals, loss, gradients and marginals of the targets) at some potentials
Evaluation = tuple[list[np.ndarray], float, list[np.ndarray], list[np.ndarray]]


def fit_model(domain: Sequence[int], measurements: Sequence[Measurement], total: float, *,
              iterations: int, warm: FittedModel | None = None,
              structure: Iterable[Clique] = ()) -> FittedModel:
    """Mirror descent on the measured marginals, warm-started from ``warm`` when given.

    ``total`` is the (noisy) number of rows that turns counts into probabilities; the
    junction tree covers the measured sets and the cliques of ``structure``.
    """
    domain = tuple(int(s) for s in domain)
    targets = combine(measurements, total)
    tree = build_junction_tree(domain, [*(t.attrs for t in targets), *structure])
    homes = {t.attrs: tree.home(t.attrs) for t in targets}
    old = warm.theta if warm is not None else {}
    theta = {t.attrs: np.array(old[t.attrs]) if t.attrs in old else np.zeros(t.mean.shape)
             for t in targets}

    def evaluate(th: Mapping[Clique, np.ndarray]) -> Evaluation:
        marg = calibrate(tree, domain, _log_potentials(tree, domain, th, homes))
        by_attrs = _target_marginals(tree, domain, marg, homes)
        mus = [by_attrs[t.attrs] for t in targets]
        loss, grads = _loss(targets, mus)
        return marg, loss, grads, mus

    max_w = max(float(np.max(t.weight)) for t in targets)
    step = warm.step if warm is not None and warm.step > 0 else 1.0 / max_w
    theta, marg, loss, step = _accelerated(evaluate, theta, targets, iterations, step)
    logger.debug("mirror descent: %d iterations, loss %.4g", iterations, loss)
    return FittedModel(domain, tree, theta, tuple(marg), step)


_GROW_AFTER = 5  # accepted steps in a row before the step size is doubled


def _accelerated(evaluate: Callable[[Mapping[Clique, np.ndarray]], Evaluation],
                 theta: dict[Clique, np.ndarray], targets: Sequence[Target], iterations: int,
                 step: float) -> tuple[dict[Clique, np.ndarray], list[np.ndarray], float,
                                       float]:
    """Mirror descent with Nesterov momentum on the potentials, Armijo steps, restarts.

    The gradient step is taken from the extrapolated point ``theta + beta * (theta - prev)``
    (Nesterov, 1983; Beck and Teboulle, SIAM J. Imaging Sci. 2009); the momentum restarts
    whenever the loss would go up (O'Donoghue and Candès, Found. Comput. Math. 2015).
    """
    marg, loss, grads, mus = evaluate(theta)
    prev, momentum, streak = theta, 1.0, 0
    for _ in range(iterations):
        nxt = (1.0 + math.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
        beta = (momentum - 1.0) / nxt
        if beta > 0:
            point = {a: theta[a] + beta * (theta[a] - prev[a]) for a in theta}
            _, p_loss, p_grads, p_mus = evaluate(point)
        else:
            point, p_loss, p_grads, p_mus = theta, loss, grads, mus
        if streak >= _GROW_AFTER:
            step, streak = step * 2.0, 0
        for _ in range(30):
            trial = {t.attrs: point[t.attrs] - step * g for t, g in zip(targets, p_grads,
                                                                        strict=True)}
            t_marg, t_loss, t_grads, t_mus = evaluate(trial)
            decrease = sum(float(np.sum(g * (m0 - m1))) for g, m0, m1 in zip(
                p_grads, p_mus, t_mus, strict=True))
            if p_loss - t_loss >= 0.5 * decrease:
                streak += 1
                break
            step, streak = step * 0.5, 0
        else:
            break
        if t_loss > loss:  # restart the momentum from the current point
            prev, momentum = theta, 1.0
        else:
            prev, theta, momentum = theta, trial, nxt
            marg, loss, grads, mus = t_marg, t_loss, t_grads, t_mus
    return theta, marg, loss, step
