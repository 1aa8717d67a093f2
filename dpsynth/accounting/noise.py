"""Random sources for DP noise: seeded (tests, research) or cryptographically secure (release).

A :class:`NoiseSource` is made once per ``fit`` from ``random_state`` and ``secure_mode``:

* seeded: a NumPy ``Generator`` (PCG64); reproducible, **not** for releases, since an attacker
  who learns the seed can subtract the noise;
* secure: every uniform draw comes from the operating system's CSPRNG (``os.urandom``), turned
  into Gaussian noise by the Box–Muller transform and Laplace noise by inversion. Floating-point
  artefacts of continuous noise (Mironov, CCS 2012) are not fully removed by this; the dataset
  card records which mode was used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from dpsynth.errors import PrivacyError, param_error

_TWO_PI = 2.0 * np.pi


def _secure_uniform(size: int) -> np.ndarray:
    """Uniform floats in the open interval (0, 1) with 53 random bits each, from os.urandom."""
    words = np.frombuffer(os.urandom(8 * size), dtype=np.uint64) >> np.uint64(11)
    return (words.astype(np.float64) + 0.5) * 2.0**-53


@dataclass
class NoiseSource:
    """Draws noise for DP mechanisms; see the module docstring."""

    secure: bool
    seed: int | None = None
    _rng: np.random.Generator | None = field(default=None, repr=False)

    @classmethod
    def create(cls, random_state: int | None, secure_mode: bool) -> NoiseSource:
        if secure_mode:
            if random_state is not None:
                raise param_error("random_state", "None when secure_mode=True (secure noise "
                                  "cannot be seeded)", random_state)
            return cls(secure=True)
        if random_state is None:
            seed = int.from_bytes(os.urandom(8), "little") >> 1
        elif isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
            seed = int(random_state)
        else:
            raise param_error("random_state", "None or an int", random_state)
        return cls(secure=False, seed=seed, _rng=np.random.default_rng(seed))

    def uniform(self, size: int) -> np.ndarray:
        if self.secure:
            return _secure_uniform(size)
        assert self._rng is not None
        u = self._rng.random(size)
        return np.where(u == 0.0, 2.0**-54, u)

    def normal(self, size: int, scale: float = 1.0) -> np.ndarray:
        if not self.secure:
            assert self._rng is not None
            return self._rng.normal(0.0, scale, size)
        half = (size + 1) // 2
        u1, u2 = _secure_uniform(half), _secure_uniform(half)
        radius = np.sqrt(-2.0 * np.log(u1))
        z = np.concatenate([radius * np.cos(_TWO_PI * u2), radius * np.sin(_TWO_PI * u2)])
        return scale * z[:size]

    def laplace(self, size: int, scale: float = 1.0) -> np.ndarray:
        if not self.secure:
            assert self._rng is not None
            return self._rng.laplace(0.0, scale, size)
        u = _secure_uniform(size) - 0.5
        return -scale * np.sign(u) * np.log1p(-2.0 * np.abs(u))

    def gumbel(self, size: int, scale: float = 1.0) -> np.ndarray:
        """Gumbel noise: argmax(score + Gumbel(2Δ/ε)) is the exponential mechanism."""
        noise: np.ndarray = -scale * np.log(-np.log(self.uniform(size)))
        return noise

    def bernoulli(self, p: float, size: int) -> np.ndarray:
        return self.uniform(size) < p

    def child_seed(self) -> int:
        """A seed for a dependent generator (torch, sampling). Refused in secure mode."""
        if self.secure:
            raise PrivacyError("Seeded generators cannot be derived from a secure noise source.")
        assert self._rng is not None
        return int(self._rng.integers(0, 2**62))
