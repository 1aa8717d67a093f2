"""Multi-process DP-SGD training: what a ``torchrun`` script needs (imports torch).

Start every process with ``torchrun``, call :func:`init_from_env` once, then fit a DP-SGD
generator with ``distributed=True``; only the :attr:`Replica.leader` process should save the
model. How the noise, the sampling and the ledger stay exact across processes is explained in
:mod:`dpsynth.synthesizers._distributed` and ``docs/distributed.md``.
"""

from __future__ import annotations

from dpsynth.synthesizers._distributed import Replica, init_from_env

__all__ = ["Replica", "init_from_env"]
