"""A discrete graphical model on a junction tree: belief propagation, marginals and sampling.

Tables are numpy arrays whose axes follow the sorted attribute tuple they are defined on, so
broadcasting a table to a superset of its attributes is a reshape. Inference is the
sum-product algorithm on the junction tree in log space (Lauritzen and Spiegelhalter, JRSS-B
1988); marginals of attribute sets that no clique contains are obtained by eliminating
variables along the smallest subtree that covers them. Sampling walks the tree from the root
and draws each clique's new attributes given its separator, allotting rows to values by
systematic rounding of the expected counts, which keeps sampling error below one row per cell
(the "round" sampler of private-pgm, McKenna et al., ICML 2019).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from dpsynth.synthesizers.marginal.junction import Clique, JunctionTree


def expand(values: np.ndarray, attrs: Clique, target: Clique, domain: Sequence[int]) -> np.ndarray:
    """View of a table over ``attrs`` broadcastable against one over ``target`` ⊇ ``attrs``.

    ``values`` may itself be broadcast-shaped (length-1 axes in place of full ones).
    """
    if values.ndim != len(attrs):
        raise ValueError(f"a table over {attrs} must have {len(attrs)} axes, not {values.ndim}")
    dims = dict(zip(attrs, values.shape, strict=True))
    return values.reshape([dims.get(a, 1) for a in target])


def sum_to(values: np.ndarray, attrs: Clique, keep: Clique) -> np.ndarray:
    """Marginalise a table over ``attrs`` onto the (sorted) subset ``keep``."""
    axes = tuple(i for i, a in enumerate(attrs) if a not in keep)
    return values.sum(axis=axes) if axes else values


def logsumexp_to(values: np.ndarray, attrs: Clique, keep: Clique) -> np.ndarray:
    """``log(sum(exp(values)))`` over the attributes of ``attrs`` that are not in ``keep``."""
    axes = tuple(i for i, a in enumerate(attrs) if a not in keep)
    if not axes:
        return values
    top = values.max(axis=axes, keepdims=True)
    out = np.log(np.exp(values - top).sum(axis=axes))
    return out + top.reshape(out.shape)


def _split_attr(attrs: Clique, subsets: Sequence[Clique],
                domain: Sequence[int]) -> int | None:
    """The attribute missing from most ``subsets`` (largest domain first), if any is missing."""
    return _split_cached(attrs, tuple(subsets), tuple(domain[a] for a in attrs))


@functools.lru_cache(maxsize=4096)
def _split_cached(attrs: Clique, subsets: tuple[Clique, ...],
                  sizes: tuple[int, ...]) -> int | None:
    best = max(range(len(attrs)), key=lambda i: (sum(attrs[i] not in s for s in subsets),
                                                 sizes[i]))
    return attrs[best] if any(attrs[best] not in s for s in subsets) else None


def sum_many(values: np.ndarray, attrs: Clique, targets: Sequence[Clique],
             domain: Sequence[int]) -> dict[Clique, np.ndarray]:
    """Marginals of one table onto many subsets, sharing partial sums between them.

    Summing out the attribute that most targets lack first, recursively, costs a few passes
    over the table instead of one per target.
    """
    x = _split_attr(attrs, targets, domain)
    if x is None:
        return {t: values for t in targets}
    without = [t for t in targets if x not in t]
    rest = [t for t in targets if x in t]
    out = sum_many(values.sum(axis=attrs.index(x)), tuple(a for a in attrs if a != x),
                   without, domain)
    if rest:
        out.update(sum_many(values, attrs, rest, domain))
    return out


def add_many(attrs: Clique, parts: Sequence[tuple[Clique, np.ndarray]],
             domain: Sequence[int]) -> np.ndarray:
    """Sum of tables over subsets of ``attrs``, broadcast (the transpose of :func:`sum_many`)."""
    x = _split_attr(attrs, [r for r, _ in parts], domain)
    if x is None:
        total = parts[0][1]
        for _, p in parts[1:]:
            total = total + p
        return total
    sub = tuple(a for a in attrs if a != x)
    out = expand(add_many(sub, [(r, p) for r, p in parts if x not in r], domain), sub, attrs,
                 domain)
    rest = [(r, p) for r, p in parts if x in r]
    return out + add_many(attrs, rest, domain) if rest else out


def calibrate(tree: JunctionTree, domain: Sequence[int],
              log_potentials: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Clique marginals (probabilities summing to one) of ``exp(sum of log_potentials)``.

    One upward pass of log-space messages, then a downward pass that turns each clique's
    upward table into its marginal: ``P(C) = P(C \\ S | S) P(S)`` with ``P(S)`` from the parent.
    """
    cl, sep = tree.cliques, tree.separators
    kids = tree.children
    up: list[np.ndarray] = [np.empty(0)] * len(cl)
    msg: list[np.ndarray] = [np.empty(0)] * len(cl)
    for c in reversed(tree.order):
        acc = log_potentials[c]
        for k in kids[c]:
            acc = acc + expand(msg[k], sep[k], cl[c], domain)
        up[c] = acc
        if tree.parent[c] >= 0:
            msg[c] = logsumexp_to(acc, cl[c], sep[c])
    root = tree.order[0]
    mu: list[np.ndarray] = [np.empty(0)] * len(cl)
    top = up[root].max()
    mu[root] = np.exp(up[root] - top)
    mu[root] /= mu[root].sum()
    for c in tree.order[1:]:
        p = tree.parent[c]
        p_sep = sum_to(mu[p], cl[p], sep[c])
        cond = np.exp(up[c] - expand(msg[c], sep[c], cl[c], domain))
        mu[c] = cond * expand(p_sep, sep[c], cl[c], domain)
    return mu


def _steiner(tree: JunctionTree, homes: set[int]) -> set[int]:
    """Cliques on the paths between the ``homes`` (the smallest subtree covering them)."""
    def path_to_root(i: int) -> list[int]:
        out = [i]
        while tree.parent[out[-1]] >= 0:
            out.append(tree.parent[out[-1]])
        return out

    paths = [path_to_root(h) for h in homes]
    common = set.intersection(*(set(p) for p in paths))
    keep: set[int] = set()
    for p in paths:
        for node in p:
            keep.add(node)
            if node in common:
                break
    return keep


def project(tree: JunctionTree, domain: Sequence[int], marginals: Sequence[np.ndarray],
            attrs: Clique) -> np.ndarray:
    """Marginal table (probabilities) over the sorted attribute tuple ``attrs``.

    When no clique holds ``attrs``, the joint of the covering subtree, ``P(top) * prod P(C \\ S |
    S)``, is summed out from the leaves up. By the running-intersection property, a variable
    of a clique that is in neither its separators within the subtree nor ``attrs`` appears in
    no other clique of the subtree, so it is summed out of that clique first.
    """
    home = tree.home(attrs)
    if home >= 0:
        return sum_to(marginals[home], tree.cliques[home], attrs)
    nodes = _steiner(tree, {tree.home((a,)) for a in attrs})
    top = min(nodes, key=tree.order.index)
    want = set(attrs)
    carried: dict[int, tuple[Clique, np.ndarray]] = {}
    for n in reversed(tree.order):
        if n not in nodes:
            continue
        kids = [k for k in tree.children[n] if k in carried]
        up = set(tree.separators[n]) if n != top else set()
        needed = up | want | {a for k in kids for a in tree.separators[k]}
        scope = tuple(a for a in tree.cliques[n] if a in needed)
        table = sum_to(marginals[n], tree.cliques[n], scope)
        if n != top:  # conditional P(C \\ S | S) below the top of the subtree
            s = tree.separators[n]
            den = expand(sum_to(table, scope, s), s, scope, domain)
            table = np.divide(table, den, out=np.zeros_like(table), where=den > 0)
        for k in kids:
            k_scope, k_table = carried.pop(k)
            scope, table = _multiply(scope, table, k_scope, k_table, domain)
        kept = tuple(a for a in scope if a in up | want)
        carried[n] = (kept, sum_to(table, scope, kept))
    return carried[top][1]


def _multiply(a_attrs: Clique, a: np.ndarray, b_attrs: Clique, b: np.ndarray,
              domain: Sequence[int]) -> tuple[Clique, np.ndarray]:
    scope = tuple(sorted(set(a_attrs) | set(b_attrs)))
    return scope, expand(a, a_attrs, scope, domain) * expand(b, b_attrs, scope, domain)


def _systematic_counts(totals: np.ndarray, probs: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Integer counts per (group, value) summing to ``totals`` with expectation ``totals*probs``.

    Each count is the floor or the ceiling of its expectation (systematic sampling on the
    cumulative expected counts, one uniform offset per group).
    """
    expected = totals[:, None] * probs
    cum = np.cumsum(expected, axis=1)
    cum[:, -1] = totals  # guard against rounding drift
    u = rng.random(len(totals))[:, None]
    edges = np.floor(cum + u)
    counts = np.diff(np.concatenate([np.floor(u), edges], axis=1), axis=1)
    return counts.astype(np.int64)


def _assign(group: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Value index per row: rows of group ``g`` receive the values of ``counts[g]`` at random."""
    n_groups, n_values = counts.shape
    order = rng.permutation(len(group))
    order = order[np.argsort(group[order], kind="stable")]
    values = np.repeat(np.tile(np.arange(n_values), n_groups), counts.ravel())
    out = np.empty(len(group), dtype=np.int64)
    out[order] = values
    return out


def sample(tree: JunctionTree, domain: Sequence[int], marginals: Sequence[np.ndarray],
           n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """``n_rows`` × d integer codes drawn from the model by rounded ancestral sampling."""
    codes = np.zeros((n_rows, len(domain)), dtype=np.int64)
    done: set[int] = set()
    for c in tree.order:
        attrs = tree.cliques[c]
        given = tuple(a for a in attrs if a in done)
        new = tuple(a for a in attrs if a not in done)
        if not new:
            continue
        table = np.transpose(marginals[c], [attrs.index(a) for a in given + new])
        g_size = int(np.prod([domain[a] for a in given], dtype=np.int64))
        table = table.reshape(g_size, -1)
        mass = table.sum(axis=1, keepdims=True)
        probs = np.divide(table, mass, out=np.full_like(table, 1.0 / table.shape[1]),
                          where=mass > 0)
        group = (np.asarray(np.ravel_multi_index(codes[:, list(given)].T,
                                                 [domain[a] for a in given]), dtype=np.int64)
                 if given else np.zeros(n_rows, dtype=np.int64))
        totals = np.bincount(group, minlength=g_size).astype(float)
        values = _assign(group, _systematic_counts(totals, probs, rng), rng)
        codes[:, list(new)] = np.stack(
            np.unravel_index(values, [domain[a] for a in new]), axis=1)
        done.update(new)
    return codes
