"""Seed derivation: one rule for every child seed dpsynth draws from a root seed."""

from __future__ import annotations

import numpy as np

from dpsynth.errors import param_error


def child_seed(root: int, *path: int) -> int:
    """A 63-bit seed for the purpose ``path`` under ``root`` (split, attempt k, run i...).

    Derived with numpy's ``SeedSequence`` so that children of one root are independent and
    the same ``(root, path)`` always gives the same seed.
    """
    state = np.random.SeedSequence([int(root), *(int(p) for p in path)]).generate_state(
        2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def child_rng(root: int, *path: int) -> np.random.Generator:
    """A generator for the purpose ``path`` under ``root``: ``SeedSequence([root, *path])``.

    Unlike :func:`child_seed` it hands the whole sequence to the generator (no 63-bit seed in
    between), so the streams are those numpy gives for ``default_rng(SeedSequence(...))``.
    """
    return np.random.default_rng(np.random.SeedSequence([int(root), *(int(p) for p in path)]))


def seed_sequence(root: int, index: int) -> np.random.SeedSequence:
    """The seed sequence of run ``index`` under ``root`` (independent of the backend)."""
    return np.random.SeedSequence(int(root), spawn_key=(int(index),))


def resolve_seed(random_state: int | np.random.Generator | None, owner: str) -> int:
    """One non-negative integer seed from a ``random_state`` argument, to record and replay.

    ``None`` draws a fresh seed from the operating system's entropy.
    """
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if (isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer))
            or random_state < 0):
        raise param_error("random_state", "a non-negative integer, a numpy Generator or None",
                          random_state, owner)
    return int(random_state)


__all__ = ["child_rng", "child_seed", "resolve_seed", "seed_sequence"]
