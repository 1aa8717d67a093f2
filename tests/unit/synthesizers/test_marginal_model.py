"""Junction tree, belief propagation, projection and the rounded sampler, against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dpsynth.synthesizers.marginal.estimate import fit_model, model_from_theta
from dpsynth.synthesizers.marginal.junction import build_junction_tree, model_size
from dpsynth.synthesizers.marginal.measure import marginal_counts, measure
from dpsynth.synthesizers.marginal.model import _systematic_counts

DOMAIN = (2, 3, 2, 4, 3, 2)
CLIQUES = [(0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (0, 4)]  # a loop: needs triangulation


def _random_theta(rng: np.random.Generator) -> dict[tuple[int, ...], np.ndarray]:
    return {c: rng.normal(size=[DOMAIN[a] for a in c]) for c in CLIQUES}


def _brute_joint(theta: dict[tuple[int, ...], np.ndarray]) -> np.ndarray:
    logp = np.zeros(DOMAIN)
    for attrs, t in theta.items():
        logp = logp + t.reshape([DOMAIN[a] if a in attrs else 1 for a in range(len(DOMAIN))])
    p = np.exp(logp)
    return p / p.sum()


def test_junction_tree_covers_cliques_and_has_running_intersection():
    tree = build_junction_tree(DOMAIN, CLIQUES)
    for c in CLIQUES:
        assert tree.home(c) >= 0
    # running intersection: cliques holding an attribute form a connected subtree
    for a in range(len(DOMAIN)):
        holders = {i for i, c in enumerate(tree.cliques) if a in c}
        tops = [i for i in holders if tree.parent[i] not in holders]
        assert len(tops) == 1, (a, tree)
    assert tree.size(DOMAIN) == model_size(DOMAIN, CLIQUES)


def test_belief_propagation_and_projection_match_brute_force():
    rng = np.random.default_rng(0)
    theta = _random_theta(rng)
    model = model_from_theta(DOMAIN, theta)
    joint = _brute_joint(theta)
    for k in (1, 2, 3):
        for attrs in itertools.combinations(range(len(DOMAIN)), k):
            expected = joint.sum(axis=tuple(i for i in range(len(DOMAIN)) if i not in attrs))
            np.testing.assert_allclose(model.project(attrs), expected, atol=1e-12)


def test_systematic_counts_are_floor_or_ceiling_and_sum_to_totals():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(7), size=50)
    totals = rng.integers(0, 40, size=50).astype(float)
    counts = _systematic_counts(totals, probs, rng)
    assert (counts.sum(axis=1) == totals).all()
    expected = totals[:, None] * probs
    assert (counts >= np.floor(expected) - 1e-9).all()
    assert (counts <= np.ceil(expected) + 1e-9).all()


def test_sample_reproduces_model_marginals_to_rounding():
    rng = np.random.default_rng(2)
    theta = _random_theta(rng)
    model = model_from_theta(DOMAIN, theta)
    n = 20_000
    rows = model.sample(n, np.random.default_rng(3))
    assert rows.shape == (n, len(DOMAIN))
    for attrs in itertools.combinations(range(len(DOMAIN)), 2):
        got = marginal_counts(rows, attrs, DOMAIN) / n
        # random sampling would be off by ~1/sqrt(n) ≈ 0.007; rounding keeps it far smaller
        # for the marginals inside a clique; pairs across cliques are sampled conditionally
        tol = 0.002 if model.tree.home(attrs) >= 0 else 0.02
        np.testing.assert_allclose(got, model.project(attrs), atol=tol)


def test_fit_recovers_exact_measurements():
    rng = np.random.default_rng(4)
    joint = _brute_joint(_random_theta(rng))
    n = 10_000
    flat = rng.choice(joint.size, size=n, p=joint.ravel())
    codes = np.stack(np.unravel_index(flat, DOMAIN), axis=1)
    measured = [measure(codes, c, DOMAIN, 0.0, None) for c in CLIQUES]
    model = fit_model(DOMAIN, measured, float(n), iterations=400)
    for m in measured:
        np.testing.assert_allclose(model.project(m.attrs), m.values / n, atol=2e-3)


@pytest.mark.parametrize("attrs", [(0, 1), (2,)])
def test_marginal_counts_total(attrs):
    codes = np.array([[0, 1, 1, 0, 0, 0], [1, 2, 0, 3, 2, 1], [1, 2, 0, 3, 2, 1]])
    counts = marginal_counts(codes, attrs, DOMAIN)
    assert counts.sum() == 3
    assert counts.shape == tuple(DOMAIN[a] for a in attrs)
