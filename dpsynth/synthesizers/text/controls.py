"""The control-code distribution: the joint histogram of the control columns, released with DP.

Synthetic records need control values (a ticket's category) drawn from the private data's
distribution. The joint histogram over the *declared* categories is released with the
Gaussian mechanism (one record changes one cell by one: L2 sensitivity 1 under adding or
removing a record), negative counts are set to zero and the rest normalised: post-processing
(Dwork and Roth, "The Algorithmic Foundations of Differential Privacy", 2014, §3.5 and App. A).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.accounting import NoiseSource
from dpsynth.errors import ParameterError
from dpsynth.schema import Schema

MAX_CELLS = 100_000


def _values(schema: Schema, name: str) -> list[Any]:
    """The declared categories of column ``name``, and ``None`` if it is nullable."""
    col = schema[name]
    cats = list(col.categories or ())
    return cats + [None] if col.nullable else cats


def domain_size(schema: Schema, columns: Sequence[str]) -> int:
    """How many combinations :func:`control_domain` lists, without listing them."""
    return math.prod(len(_values(schema, name)) for name in columns)


def control_domain(schema: Schema, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Every combination of the declared categories of ``columns`` (``None`` if nullable)."""
    values = [_values(schema, name) for name in columns]
    size = domain_size(schema, columns)
    if size > MAX_CELLS:
        raise ParameterError(f"The control columns {list(columns)} have {size} combinations; "
                             f"at most {MAX_CELLS} are supported. Use fewer control columns.")
    return [tuple(c) for c in itertools.product(*values)]


def cell_index(frame: pd.DataFrame, columns: Sequence[str],
               domain: Sequence[tuple[Any, ...]]) -> np.ndarray:
    """Index into ``domain`` of each row's control values (values compared as strings)."""
    lookup = {tuple(_key(v) for v in combo): i for i, combo in enumerate(domain)}
    if not columns:
        return np.zeros(len(frame), dtype=np.int64)
    keys = zip(*(frame[c].tolist() for c in columns), strict=True)
    return np.array([lookup[tuple(_key(v) for v in k)] for k in keys], dtype=np.int64)


def _key(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


@dataclass(frozen=True)
class ControlDistribution:
    """Released probabilities of the control combinations."""

    columns: tuple[str, ...]
    domain: tuple[tuple[Any, ...], ...]
    probs: np.ndarray

    @classmethod
    def release(cls, cells: np.ndarray, columns: Sequence[str], domain: Sequence[tuple[Any, ...]],
                *, sigma: float | None, noise: NoiseSource | None) -> ControlDistribution:
        """From each record's cell: exact when ``sigma`` is None (non-private), else noisy."""
        counts = np.bincount(cells, minlength=len(domain)).astype(float)
        if sigma is not None:
            if noise is None:
                raise ParameterError("A noisy release needs a noise source.")
            counts = counts + noise.normal(len(domain), scale=sigma)
        counts = np.clip(counts, 0.0, None)
        total = counts.sum()
        probs = counts / total if total > 0 else np.full(len(domain), 1.0 / len(domain))
        return cls(tuple(columns), tuple(tuple(c) for c in domain), probs)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Cell indices of ``n`` synthetic records."""
        return rng.choice(len(self.domain), size=n, p=self.probs)

    def to_state(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "domain": [list(c) for c in self.domain]}

    @classmethod
    def from_state(cls, state: dict[str, Any], probs: np.ndarray) -> ControlDistribution:
        return cls(tuple(state["columns"]), tuple(tuple(c) for c in state["domain"]),
                   np.asarray(probs, dtype=float))


__all__ = ["ControlDistribution", "cell_index", "control_domain"]
