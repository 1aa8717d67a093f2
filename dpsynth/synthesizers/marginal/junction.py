"""Junction trees over discrete attributes: triangulation, maximal cliques, the clique tree.

A graphical model whose factors are the measured marginals is made tractable by triangulating
its graph (greedy elimination, smallest new clique first), keeping the maximal cliques and
joining them in a maximum-weight spanning tree on the size of their intersections, which is a
junction tree for a triangulated graph (Jensen and Jensen, "Optimal junction trees", UAI 1994).
Attributes are integers ``0..d-1``; cliques are sorted tuples of them. Pure functions only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Clique = tuple[int, ...]


@dataclass(frozen=True)
class JunctionTree:
    """Maximal cliques joined in a tree; ``order`` visits parents before children.

    ``parent[i]`` is ``-1`` for the root; ``separators[i]`` is ``cliques[i] ∩
    cliques[parent[i]]`` (empty for the root and between disconnected components).
    """

    cliques: tuple[Clique, ...]
    parent: tuple[int, ...]
    order: tuple[int, ...]
    separators: tuple[Clique, ...]

    @property
    def children(self) -> tuple[tuple[int, ...], ...]:
        kids: list[list[int]] = [[] for _ in self.cliques]
        for i, p in enumerate(self.parent):
            if p >= 0:
                kids[p].append(i)
        return tuple(tuple(k) for k in kids)

    def size(self, domain: Sequence[int]) -> int:
        """Number of cells of all clique tables together (the model size)."""
        return sum(cells(domain, c) for c in self.cliques)

    def home(self, attrs: Iterable[int]) -> int:
        """Index of the smallest clique containing ``attrs`` (``-1`` if none does)."""
        want = set(attrs)
        best, best_len = -1, math.inf
        for i, c in enumerate(self.cliques):
            if want.issubset(c) and len(c) < best_len:
                best, best_len = i, len(c)
        return best


def cells(domain: Sequence[int], attrs: Iterable[int]) -> int:
    """Number of cells of the marginal table over ``attrs``."""
    return math.prod(int(domain[a]) for a in attrs)


def _eliminate(domain: Sequence[int], adjacency: dict[int, set[int]]) -> list[frozenset[int]]:
    """Greedy elimination: always remove the node whose new clique has the fewest cells."""
    adj = {v: set(n) for v, n in adjacency.items()}
    induced: list[frozenset[int]] = []
    while adj:
        v = min(adj, key=lambda u: (cells(domain, adj[u]) * domain[u], u))
        nbrs = adj.pop(v)
        induced.append(frozenset(nbrs | {v}))
        for a in nbrs:
            adj[a].discard(v)
            adj[a] |= nbrs - {a}
    return induced


def _maximal(sets: Iterable[frozenset[int]]) -> list[Clique]:
    unique = sorted(set(sets), key=lambda s: (-len(s), sorted(s)))
    kept: list[frozenset[int]] = []
    for s in unique:
        if not any(s <= k for k in kept):
            kept.append(s)
    return [tuple(sorted(s)) for s in kept]


def _spanning_tree(cliques: list[Clique]) -> list[tuple[int, int]]:
    """Kruskal on intersection sizes (zero-weight edges join disconnected components)."""
    edges = sorted(
        ((len(set(a) & set(b)), i, j) for i, a in enumerate(cliques)
         for j, b in enumerate(cliques) if i < j),
        key=lambda e: (-e[0], e[1], e[2]),
    )
    root = list(range(len(cliques)))

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    tree = []
    for _, i, j in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            root[ri] = rj
            tree.append((i, j))
    return tree


def build_junction_tree(domain: Sequence[int], cliques: Iterable[Iterable[int]]) -> JunctionTree:
    """Junction tree covering every attribute of ``domain`` and every set in ``cliques``."""
    adjacency: dict[int, set[int]] = {v: set() for v in range(len(domain))}
    for cl in cliques:
        members = set(cl)
        for a in members:
            adjacency[a] |= members - {a}
    maximal = _maximal(_eliminate(domain, adjacency))
    maximal.sort(key=lambda c: (-cells(domain, c), c))  # the largest clique is the root
    neighbours: list[list[int]] = [[] for _ in maximal]
    for i, j in _spanning_tree(maximal):
        neighbours[i].append(j)
        neighbours[j].append(i)
    parent = [-1] * len(maximal)
    order, seen = [0], {0}
    for node in order:  # breadth-first from the root
        for nb in sorted(neighbours[node]):
            if nb not in seen:
                seen.add(nb)
                parent[nb] = node
                order.append(nb)
    seps = tuple(
        () if p < 0 else tuple(sorted(set(maximal[i]) & set(maximal[p])))
        for i, p in enumerate(parent)
    )
    return JunctionTree(tuple(maximal), tuple(parent), tuple(order), seps)


def model_size(domain: Sequence[int], cliques: Iterable[Iterable[int]]) -> int:
    """Cells of the junction tree the measured ``cliques`` would need."""
    return build_junction_tree(domain, cliques).size(domain)
