"""Domain compression: merge the values a noisy one-way marginal shows to be rare.

Values whose noisy count is at most ``threshold`` noise standard deviations (3 by default)
are merged into one "other" code per column, as MST does (McKenna, Miklau and Sheldon,
"Winning the NIST Contest: A scalable and general approach to differentially private synthetic
data", Journal of Privacy and Confidentiality, 2021). This thins out high-cardinality
categoricals and empty bins. It is post-processing of the DP one-way measurements, so it
costs no budget. Decoding an "other" code draws one of its values in proportion to their
(non-negative part of the) noisy counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpsynth.synthesizers.marginal.measure import Measurement


@dataclass(frozen=True)
class ColumnMerge:
    """Values kept (new codes ``0..len(kept)-1``) and values merged into code ``len(kept)``."""

    kept: tuple[int, ...]
    merged: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    @property
    def size(self) -> int:
        return len(self.kept) + int(bool(self.merged))

    def lookup(self, old_size: int) -> np.ndarray:
        table = np.full(old_size, len(self.kept), dtype=np.int64)
        table[list(self.kept)] = np.arange(len(self.kept))
        return table

    def to_dict(self) -> dict[str, Any]:
        return {"kept": list(self.kept), "merged": list(self.merged),
                "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnMerge:
        return cls(tuple(int(v) for v in data["kept"]), tuple(int(v) for v in data["merged"]),
                   tuple(float(w) for w in data["weights"]))


def plan_merge(first: Measurement, threshold: float) -> ColumnMerge:
    """Merge the values of a one-way measurement whose noisy count is ≤ threshold × its std."""
    y = np.asarray(first.values, dtype=float)
    small = y <= threshold * first.sigma
    if small.sum() < 2:
        return ColumnMerge(tuple(range(len(y))))
    w = np.clip(y[small], 0.0, None)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    return ColumnMerge(tuple(int(v) for v in np.flatnonzero(~small)),
                       tuple(int(v) for v in np.flatnonzero(small)),
                       tuple(float(x) for x in w))


def merged_measurement(first: Measurement, merge: ColumnMerge, attr: int) -> Measurement:
    """The one-way measurement on the compressed codes (the "other" cell sums its values)."""
    y = np.asarray(first.values, dtype=float)
    std = np.asarray(first.std, dtype=float)
    if not merge.merged:
        return Measurement((attr,), y, first.std, first.sigma)
    std = np.broadcast_to(std, y.shape)
    kept, merged = list(merge.kept), list(merge.merged)
    values = np.append(y[kept], y[merged].sum())
    stds = np.append(std[kept], np.sqrt(np.sum(std[merged] ** 2)))
    return Measurement((attr,), values, stds, first.sigma)


def compress_codes(codes: np.ndarray, merges: Sequence[ColumnMerge],
                   old_domain: Sequence[int]) -> np.ndarray:
    out = np.empty_like(codes)
    for i, (m, size) in enumerate(zip(merges, old_domain, strict=True)):
        out[:, i] = m.lookup(size)[codes[:, i]]
    return out


def expand_codes(codes: np.ndarray, merges: Sequence[ColumnMerge],
                 rng: np.random.Generator) -> np.ndarray:
    """Compressed codes back to the original codes (an "other" code draws one of its values)."""
    out = np.empty_like(codes)
    for i, m in enumerate(merges):
        col = codes[:, i]
        kept = np.asarray(m.kept + (0,), dtype=np.int64)
        out[:, i] = kept[col]
        other = col == len(m.kept)
        if m.merged and other.any():
            out[other, i] = rng.choice(np.asarray(m.merged), size=int(other.sum()),
                                       p=np.asarray(m.weights))
    return out
