"""Noisy marginal measurements: the only place where the private rows meet the noise.

A marginal (the table of counts of one set of attributes) changes by one in one cell when one
row is added or removed, so its L2 sensitivity is 1 and the Gaussian mechanism with standard
deviation ``sigma`` releases it with noise multiplier ``sigma`` (Dwork and Roth, "The
Algorithmic Foundations of Differential Privacy", 2014, Appendix A). Measuring ``k`` marginals
at the same ``sigma`` is ``GaussianEvent(sigma, count=k)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dpsynth.accounting import NoiseSource
from dpsynth.synthesizers.marginal.junction import Clique

if TYPE_CHECKING:
    from dpsynth.synthesizers.marginal.counts import CountSource


@dataclass(frozen=True)
class Measurement:
    """A noisy marginal over ``attrs`` (sorted): ``values`` are counts, ``std`` their noise.

    ``std`` is a scalar, or an array shaped like ``values`` when cells have different noise
    (a compressed "other" cell sums several noisy cells). ``sigma`` is the noise multiplier of
    the Gaussian mechanism that produced it (0 for the non-private reference).
    """

    attrs: Clique
    values: np.ndarray
    std: float | np.ndarray
    sigma: float


def marginal_counts(codes: np.ndarray, attrs: Clique, domain: Sequence[int]) -> np.ndarray:
    """Exact counts of the marginal over ``attrs`` (private: never released without noise)."""
    shape = [int(domain[a]) for a in attrs]
    if not attrs:
        return np.array(float(len(codes)))
    flat = np.ravel_multi_index(codes[:, list(attrs)].T, shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape).astype(float)


def measure(codes: np.ndarray | CountSource, attrs: Clique, domain: Sequence[int],
            sigma: float, noise: NoiseSource | None) -> Measurement:
    """Release the marginal over ``attrs`` with Gaussian noise of std ``sigma``.

    ``codes`` is the rows × columns code matrix or a :class:`~.counts.CountSource`.

    ``noise=None`` (or ``sigma=0``) is the exact, non-private measurement of the reference
    fit (``epsilon=inf``); it is then weighted as if its noise were one row.
    """
    attrs = tuple(sorted(attrs))
    if isinstance(codes, np.ndarray):
        counts = marginal_counts(codes, attrs, domain)
    else:
        counts = codes.counts([attrs], domain)[0]
    return add_noise(attrs, counts, sigma, noise)


def add_noise(attrs: Clique, counts: np.ndarray, sigma: float,
              noise: NoiseSource | None) -> Measurement:
    """The Gaussian mechanism on exact ``counts`` (see :func:`measure`)."""
    if noise is None or sigma == 0:
        return Measurement(attrs, counts, 1.0, 0.0)
    noisy = counts + noise.normal(counts.size, scale=sigma).reshape(counts.shape)
    return Measurement(attrs, noisy, float(sigma), float(sigma))
